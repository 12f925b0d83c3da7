"""Metrics: pure functions on arrays/tensors, and the registry the harness reads.

Importing this package registers every metric module.
"""

from vaebench.metrics import (  # noqa: F401  (each module registers its metrics)
    disentanglement,
    factor_scores,
    fid,
    likelihood,
    mutual_information,
    reconstruction,
)
from vaebench.metrics.registry import METRICS, EvaluationContext, MetricInfo, MetricValue, register_metric

__all__ = ["METRICS", "EvaluationContext", "MetricInfo", "MetricValue", "register_metric"]
