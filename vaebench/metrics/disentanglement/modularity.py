"""Modularity (Ridgeway & Mozer 2018, "Learning Deep Disentangled Embeddings with the
F-Statistic Loss", NeurIPS, Sec. 3), as in disentanglement_lib's
``evaluation/metrics/modularity_explicitness.py``. With m_ij = I(z_i; v_j) the plug-in
mutual information (nats) of binned code dimension i and factor j and theta_i = max_j m_ij::

    delta_i    = sum_{j != argmax_j m_ij} m_ij^2 / (theta_i^2 (K - 1))
    modularity = 1/D sum_i (1 - delta_i)

In [0, 1]; higher is better. A code dimension with theta_i = 0 scores 0 (disentanglement_lib
divides by zero there).

disentanglement_lib defaults (gin ``modularity_explicitness.gin``): ``discretizer.num_bins =
20`` equal-width bins (``N_BINS``, :mod:`.discretize`), ``num_train = 10000`` points.

Rows (:mod:`.protocol`): by default 10,000 fresh samples of the factor grid per evaluation seed,
as disentanglement_lib; the encoded test split with ``disentanglement_protocol = "test_split"``.

Departures from disentanglement_lib:
single-valued factors are ignored; an uninformative code dimension scores 0 instead of NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaebench.metrics.disentanglement.checks import check_inputs, check_n_bins
from vaebench.metrics.disentanglement.discretize import N_BINS
from vaebench.metrics.disentanglement.information import binned_mutual_information
from vaebench.metrics.disentanglement.protocol import PROTOCOL_PARAMS, scored_rows, scored_samples
from vaebench.metrics.disentanglement.representation import VALUE_SUFFIXES
from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric
from vaebench.params import Param


def modularity(codes: Any, factors: Any, *, n_bins: int = N_BINS) -> float:
    """Modularity (Ridgeway & Mozer 2018) as in disentanglement_lib.

    With m_ij = I(z_i; v_j) on ``n_bins`` equal-width bins and theta_i = max_j m_ij,
    modularity = 1/D sum_i (1 - sum_{j != argmax} m_ij^2 / (theta_i^2 (K - 1))); a code
    dimension carrying no information (theta_i = 0) scores 0. In [0, 1]; higher is better.
    """
    codes, labels = check_inputs(codes, factors)
    mi, _ = binned_mutual_information(codes, labels, check_n_bins(n_bins))
    squared = mi**2
    theta = squared.max(axis=1)
    k = squared.shape[1]
    informative = theta > 0
    deviation = np.zeros(mi.shape[0])
    if k > 1:
        deviation[informative] = (squared.sum(axis=1) - theta)[informative] / (theta[informative] * (k - 1))
    scores = np.where(informative, 1.0 - deviation, 0.0)
    return float(np.mean(scores))


@register_metric(
    "modularity", family="disentanglement",
    description="modularity (Ridgeway & Mozer 2018) of the binned codes",
    values=[MetricValue("modularity" + suffix, higher_is_better=True) for suffix in VALUE_SUFFIXES],
    needs_factors=True,
    params=[
        Param("modularity_n_bins", N_BINS, minimum=2, maximum=1000,
              doc="equal-width bins per code dimension (disentanglement_lib: 20)"),
        *PROTOCOL_PARAMS,
    ],
    abs_tol=0.05, rel_tol=0.0,
    min_images=scored_rows(2),
)
def _compute_modularity(ctx: EvaluationContext) -> dict[str, float]:
    return {
        "modularity" + sample.suffix: modularity(
            sample.train_codes, sample.train_factors, n_bins=ctx.params["modularity_n_bins"]
        )
        for sample in scored_samples(ctx)
    }
