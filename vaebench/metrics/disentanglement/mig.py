"""Mutual information gap (Chen et al. 2018, "Isolating Sources of Disentanglement in
Variational Autoencoders", NeurIPS, Sec. 4.1)::

    MIG = 1/K sum_j [ I(z_(1); v_j) - I(z_(2); v_j) ] / H(v_j)

where z_(1), z_(2) are the code dimensions with the largest and second largest mutual
information with factor v_j. I and H are plug-in estimates (nats) on codes binned into
equal-width bins (:mod:`.information`, :mod:`.discretize`). In [0, 1]; higher is better.

disentanglement_lib (``evaluation/metrics/mig.py``, gin ``mig.gin``) defaults:
``discretizer.num_bins = 20`` (``N_BINS``, :mod:`.discretize`) on ``num_train = 10000`` points.

Rows (:mod:`.protocol`): by default 10,000 fresh samples of the factor grid per evaluation seed,
as disentanglement_lib; the encoded test split with ``disentanglement_protocol = "test_split"``.

Departures from disentanglement_lib:

- factors that take a single value are ignored (disentanglement_lib divides by their zero
  entropy);
- with a single code dimension the second-best mutual information is 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaebench.metrics.disentanglement.checks import check_inputs, check_n_bins
from vaebench.metrics.disentanglement.discretize import N_BINS
from vaebench.metrics.disentanglement.information import binned_mutual_information
from vaebench.metrics.disentanglement.protocol import PROTOCOL_PARAMS, scored_rows, scored_samples, top_two
from vaebench.metrics.disentanglement.representation import VALUE_SUFFIXES
from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric
from vaebench.params import Param


def mutual_information_gap(codes: Any, factors: Any, *, n_bins: int = N_BINS) -> float:
    """MIG (Chen et al. 2018): mean over factors of the normalized gap between the two codes
    with the highest mutual information with it.

    MIG = 1/K sum_j (I(z_(1); v_j) - I(z_(2); v_j)) / H(v_j), with each code dimension
    binned into ``n_bins`` equal-width bins (:func:`histogram_discretize`). In [0, 1];
    higher is better. A factor with more than ``n_bins`` values cannot reach 1 because
    binning merges its values.
    """
    codes, labels = check_inputs(codes, factors)
    mi, entropy = binned_mutual_information(codes, labels, check_n_bins(n_bins))
    first, second = top_two(mi)
    return float(np.mean((first - second) / entropy))


mig = mutual_information_gap


@register_metric(
    "mig", family="disentanglement",
    description="mutual information gap (Chen et al. 2018) of the binned codes",
    values=[MetricValue("mig" + suffix, higher_is_better=True) for suffix in VALUE_SUFFIXES],
    needs_factors=True,
    params=[
        Param("mig_n_bins", N_BINS, minimum=2, maximum=1000,
              doc="equal-width bins per code dimension (disentanglement_lib: 20)"),
        *PROTOCOL_PARAMS,
    ],
    # for given codes the score is deterministic, so a baseline moves only when the trained
    # model does (another platform, library version or device); a few hundredths is the
    # size of such drift and well below a real change in disentanglement
    abs_tol=0.05, rel_tol=0.0,
    min_images=scored_rows(2),
)
def _compute_mig(ctx: EvaluationContext) -> dict[str, float]:
    return {
        "mig" + sample.suffix: mutual_information_gap(
            sample.train_codes, sample.train_factors, n_bins=ctx.params["mig_n_bins"]
        )
        for sample in scored_samples(ctx)
    }
