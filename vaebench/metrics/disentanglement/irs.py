"""Interventional robustness score (Suter et al. 2019, "Robustly Disentangled Causal
Mechanisms: Validating Deep Representations for Interventional Robustness", ICML, Sec. 4),
as in disentanglement_lib's ``evaluation/metrics/irs.py``.

Code dimensions that are constant are dropped. For code dimension i and factor j, with
E_jk the mean of z_i over the rows where factor j takes its k-th value (K_j values)::

    PIDA_ij = 1/K_j sum_k Q_q( |z_i - E_jk| over those rows )     (Q_q: the q-quantile)
    IRS_ij  = 1 - PIDA_ij / max_rows |z_i - mean(z_i)|
    IRS     = sum_i w_i max_j IRS_ij / sum_i w_i,    w_i = max_rows |z_i - mean(z_i)|

A dimension that moves only with one factor keeps IRS_ij near 1 for it. Higher is better;
IRS_ij can fall below 0 for a dimension that ignores every factor.

disentanglement_lib defaults (gin ``irs.gin``): ``diff_quantile = 0.99`` (``DIFF_QUANTILE``;
``np.percentile``'s linear interpolation), ``num_train = 10000`` points; the factors are first
binned by the histogram discretizer with ``num_bins = 20`` (``FACTOR_BINS``, so a factor with
more than 20 values has neighbouring values merged).

Rows (:mod:`.protocol`): by default 10,000 fresh samples of the factor grid per evaluation seed,
as disentanglement_lib; the encoded test split with ``disentanglement_protocol = "test_split"``.

Departures from disentanglement_lib: single-valued factors are ignored; with every code dimension constant the
score is 0, as disentanglement_lib.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaebench.metrics.disentanglement.checks import check_inputs, encode_labels
from vaebench.metrics.disentanglement.discretize import histogram_bins
from vaebench.metrics.disentanglement.protocol import PROTOCOL_PARAMS, scored_rows, scored_samples
from vaebench.metrics.disentanglement.representation import VALUE_SUFFIXES
from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric

#: Quantile of the deviations from each factor value's mean code (disentanglement_lib: 0.99;
#: the paper's version is 1.0, the maximum).
DIFF_QUANTILE = 0.99
#: Histogram bins of the factors (disentanglement_lib's discretizer: 20 equal-width bins).
FACTOR_BINS = 20


def irs_matrix(codes: np.ndarray, labels: np.ndarray,
               diff_quantile: float = DIFF_QUANTILE) -> tuple[np.ndarray, np.ndarray]:
    """(IRS_ij (D, K), max deviation w_i (D,)) of validated codes and compactly encoded factors."""
    max_deviation = np.max(np.abs(codes - codes.mean(axis=0)), axis=0)
    pida = np.zeros((codes.shape[1], labels.shape[1]))
    for j, column in enumerate(labels.T):
        values = np.unique(column)
        for value in values:
            rows = codes[column == value]
            pida[:, j] += np.percentile(np.abs(rows - rows.mean(axis=0)), diff_quantile * 100, axis=0)
        pida[:, j] /= len(values)
    return 1.0 - pida / max_deviation[:, None], max_deviation


def interventional_robustness_score(codes: Any, factors: Any, *, diff_quantile: float = DIFF_QUANTILE) -> float:
    """IRS (Suter et al. 2019) as in disentanglement_lib: the max-deviation-weighted mean over
    non-constant code dimensions of max_j IRS_ij (module docstring). Higher is better."""
    codes, labels = check_inputs(codes, factors)
    binned, _ = encode_labels(histogram_bins(labels.astype(np.float64), FACTOR_BINS))
    active = codes.var(axis=0) > 0
    if not active.any():
        return 0.0
    matrix, weight = irs_matrix(codes[:, active], binned, diff_quantile)
    return float(np.average(matrix.max(axis=1), weights=weight))


irs = interventional_robustness_score


@register_metric(
    "irs", family="disentanglement",
    description="interventional robustness score (Suter et al. 2019)",
    values=[MetricValue("irs" + suffix, higher_is_better=True) for suffix in VALUE_SUFFIXES],
    needs_factors=True, params=list(PROTOCOL_PARAMS),
    abs_tol=0.05, rel_tol=0.0,
    min_images=scored_rows(2),
)
def _compute_irs(ctx: EvaluationContext) -> dict[str, float]:
    return {
        "irs" + sample.suffix: interventional_robustness_score(sample.train_codes, sample.train_factors)
        for sample in scored_samples(ctx)
    }
