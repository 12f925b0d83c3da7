"""Unsupervised scores of the codes' dependence (no factors needed), as disentanglement_lib's
``evaluation/metrics/unsupervised_metrics.py`` (Locatello et al. 2019, "Challenging Common
Assumptions in the Unsupervised Learning of Disentangled Representations", ICML, Sec. 5.2).

With C the (D, D) sample covariance of the codes (``np.cov``, ddof 1) and V = diag(C) the
covariance with the off-diagonal entries zeroed:

- Gaussian total correlation: KL(N(0, C) || N(0, V)) = 1/2 (sum_i log C_ii - log det C), the
  total correlation of a Gaussian with covariance C (nats);
- Gaussian Wasserstein correlation: W_2^2(N(0, C), N(0, V)) = 2 tr C - 2 tr (V^1/2 C V^1/2)^1/2
  (disentanglement_lib writes tr sqrtm(C V), whose eigenvalues are those of V^1/2 C V^1/2);
  its normalised form divides by tr C;
- mutual information score: the mean over ordered pairs i != j of the plug-in I(z_i; z_j)
  of the codes binned into ``N_BINS`` = 20 equal-width bins (nats).

All are 0 for independent (uncorrelated) dimensions; lower is better.

disentanglement_lib defaults (gin ``unsupervised.gin``): ``num_train = 10000`` points,
``discretizer.num_bins = 20``.

Rows (:mod:`.protocol`): by default 10,000 fresh samples of the factor grid per evaluation seed,
as disentanglement_lib; the encoded test split with ``disentanglement_protocol = "test_split"``.

Departures from disentanglement_lib: a constant code dimension (C_ii = 0), for which the
Gaussian scores are undefined (log 0), is left out of them (it is independent of the others);
the mutual information score needs at least two code dimensions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaebench.metrics.disentanglement.checks import check_codes, check_n_bins
from vaebench.metrics.disentanglement.discretize import N_BINS, histogram_bins
from vaebench.metrics.disentanglement.information import mutual_information_matrix
from vaebench.metrics.disentanglement.protocol import PROTOCOL_PARAMS, scored_rows, scored_samples
from vaebench.metrics.disentanglement.representation import VALUE_SUFFIXES
from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric

VALUE_NAMES = (
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
    "gaussian_wasserstein_correlation_norm",
    "mutual_info_score",
)


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """1/2 (sum_i log C_ii - log det C): KL between N(0, C) and N(0, diag C), in nats."""
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """2 tr C - 2 tr (V^1/2 C V^1/2)^1/2 with V = diag C: W_2^2 between N(0, C) and N(0, V)."""
    root_v = np.sqrt(np.diag(cov))
    eigenvalues = np.linalg.eigvalsh(cov * root_v[:, None] * root_v[None, :])
    return float(2.0 * np.trace(cov) - 2.0 * np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))


def mutual_info_score(codes: Any, *, n_bins: int = N_BINS) -> float:
    """Mean plug-in mutual information (nats) between distinct code dimensions binned into
    ``n_bins`` equal-width bins: sum_{i != j} I(z_i; z_j) / (D^2 - D)."""
    codes = check_codes(codes)
    d = codes.shape[1]
    if d < 2:
        raise ValueError("codes must have at least 2 columns for the mutual information score; got 1")
    bins = histogram_bins(codes, check_n_bins(n_bins))
    sizes = np.full(d, n_bins, dtype=np.int64)
    mi = mutual_information_matrix(bins, sizes, bins, sizes)
    np.fill_diagonal(mi, 0.0)
    return float(mi.sum() / (d * d - d))


def unsupervised_scores(codes: Any, *, n_bins: int = N_BINS) -> dict[str, float]:
    """The four scores of the module docstring, by their disentanglement_lib names."""
    codes = check_codes(codes)
    varying = codes.var(axis=0) > 0
    cov = np.atleast_2d(np.cov(codes[:, varying], rowvar=False))
    gaussian = cov.shape[0] > 0
    wasserstein = gaussian_wasserstein_correlation(cov) if gaussian else 0.0
    return {
        "gaussian_total_correlation": gaussian_total_correlation(cov) if gaussian else 0.0,
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": float(wasserstein / np.trace(cov)) if gaussian else 0.0,
        "mutual_info_score": mutual_info_score(codes, n_bins=n_bins),
    }


@register_metric(
    "unsupervised", family="disentanglement",
    description="dependence between code dimensions: Gaussian total and Wasserstein correlation, "
    "mean pairwise mutual information (Locatello et al. 2019)",
    values=[MetricValue(name + suffix, higher_is_better=False) for suffix in VALUE_SUFFIXES for name in VALUE_NAMES],
    params=list(PROTOCOL_PARAMS),
    abs_tol=0.05, rel_tol=0.05,
    min_images=scored_rows(2),  # and two latents: a mutual information between code dimensions
    min_latents=2,
)
def _compute_unsupervised(ctx: EvaluationContext) -> dict[str, float]:
    values = {}
    for sample in scored_samples(ctx):
        values.update({name + sample.suffix: value for name, value in unsupervised_scores(sample.train_codes).items()})
    return values
