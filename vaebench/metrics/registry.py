"""The metric registry: name, direction, defaults and how the harness computes each metric.

Metric functions themselves are pure (arrays in, floats out) and live in their own modules;
each module registers a `MetricInfo` whose `compute` adapts an `EvaluationContext` to the
pure function. The harness only ever calls `compute`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vaebench.registry import Registry


@dataclass
class EvaluationContext:
    """What the harness hands every metric: the test split encoded once, and the model.

    mu, logvar: (N, D) float64 numpy arrays, the encoder's posterior on the test images.
    factors: (N, K) integer factor indices of the test images, or None without ground truth.
    """

    model: torch.nn.Module
    dataset: Any
    test_indices: np.ndarray
    test_images: torch.Tensor
    mu: np.ndarray
    logvar: np.ndarray
    factors: np.ndarray | None
    seed: int
    device: torch.device
    cache_dir: Path
    params: dict[str, Any] = field(default_factory=dict)
    # metric name -> a free-text note stored beside the value (e.g. FID's feature network + hash)
    notes: dict[str, str] = field(default_factory=dict)
    # intermediate results shared between metrics (e.g. one decoding pass of the test set)
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def codes(self) -> np.ndarray:
        """The representation scored by disentanglement metrics: the posterior means."""
        return self.mu


@dataclass(frozen=True)
class MetricInfo:
    """A registry entry.

    name: the stable metric name of DESIGN.md.
    higher_is_better: the direction.
    needs_factors: only defined on datasets with ground-truth factors.
    compute: context -> {value name: value}; a metric may yield several values (kl -> kl_dim_i).
    abs_tol, rel_tol: default regression tolerances for `vaebench baseline`.
    defaults: the keyword defaults of the pure function, for documentation and reports.
    """

    name: str
    higher_is_better: bool
    description: str
    compute: Callable[[EvaluationContext], dict[str, float]]
    needs_factors: bool = False
    abs_tol: float = 1e-6
    rel_tol: float = 1e-6
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"


METRICS: Registry[MetricInfo] = Registry("metric")


def register_metric(info: MetricInfo) -> MetricInfo:
    METRICS.add(info.name, info)
    return info


def metric_info_for_value(value_name: str) -> MetricInfo | None:
    """The entry a stored value belongs to: 'kl_dim_3' -> kl, 'fid_recon' -> fid ... ."""
    if value_name in METRICS:
        return METRICS.get(value_name)
    for name, info in METRICS.items():
        if value_name.startswith(name + "_"):
            return info
    return None
