"""Metrics: pure functions on arrays/tensors, and the registry the harness reads.

Importing this package registers every metric module.
"""

from vaebench.metrics import (  # noqa: F401 - each module registers its metrics
    aggregate_posterior,
    ais,
    disentanglement,
    factor_scores,
    fid,
    likelihood,
    mutual_information,
    prdc,
    reconstruction,
)
from vaebench.metrics.aggregate_posterior import elbo_decomposition, latent_covariance_offdiagonal, prior_mmd
from vaebench.metrics.ais import (
    BDMCBounds,
    RateDistortionCurve,
    ais_bdmc,
    ais_log_likelihood,
    ais_nll,
    ais_rate_distortion,
    annealing_schedule,
    simulate,
)
from vaebench.metrics.disentanglement import (
    dci,
    downstream_accuracy,
    explicitness,
    interventional_robustness_score,
    modularity,
    mutual_information_gap,
    separated_attribute_predictability,
)
from vaebench.metrics.likelihood import importance_weighted_nll, importance_weighted_nll_curve
from vaebench.metrics.mutual_information import latent_mutual_information, latent_mutual_information_upper
from vaebench.metrics.registry import METRICS, EvaluationContext, MetricInfo, MetricValue, register_metric

__all__ = [
    "METRICS", "EvaluationContext", "MetricInfo", "MetricValue", "register_metric",
    "elbo_decomposition", "latent_covariance_offdiagonal", "prior_mmd",
    "importance_weighted_nll", "importance_weighted_nll_curve",
    "latent_mutual_information", "latent_mutual_information_upper",
    "ais_nll", "ais_log_likelihood", "ais_bdmc", "BDMCBounds", "ais_rate_distortion", "RateDistortionCurve",
    "annealing_schedule", "simulate",
    "dci", "downstream_accuracy", "explicitness", "interventional_robustness_score", "modularity",
    "mutual_information_gap", "separated_attribute_predictability",
]
