"""What both trackers share: the names they log under, the spec as flat parameters, and the guard
that keeps a tracker's code away from the run's random generators."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from vaebench.bench.spec import ExternalSpec, RunSpec

CURVE_PREFIX = "train/"  # a loss term logged along training: train/<term>, at its step
METRIC_PREFIX = "eval/"  # a final metric value: eval/<value name>, at the run's last step
GRID_FOLDER = "grids"  # the image grids: grids/<grid name> (TensorBoard tag, MLflow artifact folder)
REPORT_FOLDER = "report"
RUN_ID_TAG = "vaebench.run_id"
REPORT_TAG = "vaebench.report"  # the MLflow run holding a run directory's report: its absolute path


def spec_params(spec: RunSpec | ExternalSpec) -> dict[str, Any]:
    """The spec as flat parameters, `hyperparameters.beta` style (`flat()`, as `vaebench.api.load_results`
    flattens it), plus the run id."""
    return {"run_id": spec.run_id, **spec.flat()}


def run_label(setting: str, spec: RunSpec | ExternalSpec) -> str:
    """A tracker run's display name: the setting and the seed."""
    return f"{setting} seed={spec.seed}"


@contextmanager
def rng_untouched() -> Iterator[None]:
    """Run a tracker's code with Python's, NumPy's and torch's global generators restored afterwards.

    Tracking must not change a run's numbers; this holds whatever a tracker library does inside
    (a random retry delay, a random file name) with the generators a run relies on."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
