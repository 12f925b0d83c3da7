"""The Python API, for scripts and notebooks:

    import vaebench
    results = vaebench.run("suites/smoke.toml", out="runs/smoke")   # or a dict shaped like a suite file
    frame = vaebench.load_results("runs/smoke")                     # one row per run, metrics as columns
    model = vaebench.load_model("runs/smoke", frame.run_id[0])      # the trained variant, eval mode

The same harness as the command line: the same run ids, store, resume and determinism.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from vaebench.bench.spec import ExternalSpec
from vaebench.bench.store import ResultsStore, pivot_values
from vaebench.bench.suite import Suite, load_suite, suite_from_table
from vaebench.errors import DataError


def run(suite: str | Path | dict[str, Any], out: str | Path | None = None, *, jobs: int = 1,
        executor: str = "local", device: str = "cpu") -> pd.DataFrame:
    """Train and score every run of `suite` not yet in `out` (default runs/<suite name>); `load_results(out)`."""
    from vaebench.bench.executors import threads_per_job
    from vaebench.bench.runner import make_executor, run_suite

    loaded: Suite = suite_from_table(suite) if isinstance(suite, dict) else load_suite(suite)
    out_dir = Path(out) if out is not None else Path("runs") / loaded.name
    run_suite(loaded, out_dir, make_executor(executor, jobs=jobs), device=device, threads=threads_per_job(jobs))
    return load_results(out_dir)


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """One row per run: run_id, suite, setting, status, timings, the spec's fields flattened
    (`variant`, `hyperparameters.beta`, `dataset_params.size`, ...: `RunSpec.flat`) and one column per metric value."""
    with ResultsStore(run_dir, create=False) as store:
        runs, metrics = store.runs(), store.metrics()
    rows = []
    for r in runs.to_dict("records"):
        row = {k: r[k] for k in ("run_id", "suite", "setting", "status", "steps_done", "wall_time_s", "steps_per_s")}
        row.update(r["spec"].flat())
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame if metrics.empty else frame.merge(pivot_values(metrics), on="run_id", how="left")


def load_model(run_dir: str | Path, run_id: str) -> torch.nn.Module:
    """The trained model of a finished run, on the CPU in eval mode (weights loaded with weights_only=True)."""
    from vaebench import data
    from vaebench.bench.train import build_model, model_path

    with ResultsStore(run_dir, create=False) as store:
        runs = store.runs()
    row = runs[runs["run_id"] == run_id]
    if row.empty:
        raise DataError(f"{run_dir}: no run {run_id!r}")
    spec = row.iloc[0]["spec"]  # parsed by the store, which names a run whose spec it cannot read
    if isinstance(spec, ExternalSpec):
        raise DataError(f"{run_dir}: run {run_id} scored a model trained elsewhere ({spec.model}); "
                        "vaebench evaluate keeps no copy of it")
    path = model_path(Path(run_dir), run_id)
    if not path.is_file():
        raise DataError(f"{path}: no saved model (the run did not finish, or it was pruned)")
    model = build_model(spec, data.get(spec.dataset, **dict(spec.dataset_params)))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
