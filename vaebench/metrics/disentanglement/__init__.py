"""Disentanglement scores of codes, one module per score.

Every score takes ``codes``, an (N, D) float array (one row per image, e.g. the posterior
means), and, except the unsupervised ones, ``factors``, an (N, K) array of integer factor
indices, and returns plain floats.
Definitions and defaults follow disentanglement_lib (Locatello et al. 2019, "Challenging
Common Assumptions in the Unsupervised Learning of Disentangled Representations", ICML), the
reference implementation behind most published tables; each module states its formula, its
paper, disentanglement_lib's defaults and every departure from its protocol.

Scores with ground-truth factors: :mod:`.mig` (MIG), :mod:`.sap` (SAP), :mod:`.dci` (DCI),
:mod:`.modularity`, :mod:`.explicitness`, :mod:`.irs` (IRS), :mod:`.downstream` (downstream
tasks); without factors: :mod:`.unsupervised` (total correlation, Wasserstein correlation,
mutual information between code dimensions).
Shared pieces: :mod:`.checks` (input checking), :mod:`.discretize` (histogram binning),
:mod:`.information` (entropy and mutual information), :mod:`.protocol` (train/test split),
:mod:`.representation` (mean or sampled codes), :mod:`.learners` (the exact fast learners).

Importing this package registers every score with the metric registry (each score module
registers itself; the imports below load them all). The package attributes ``dci``,
``modularity``, ``explicitness`` and ``irs`` are the score functions; import from their modules
with ``from vaebench.metrics.disentanglement.dci import ...``.
"""

from vaebench.metrics.disentanglement.dci import dci
from vaebench.metrics.disentanglement.discretize import N_BINS, histogram_discretize
from vaebench.metrics.disentanglement.downstream import downstream_accuracy
from vaebench.metrics.disentanglement.explicitness import explicitness
from vaebench.metrics.disentanglement.information import discrete_entropy, discrete_mutual_information
from vaebench.metrics.disentanglement.irs import interventional_robustness_score, irs
from vaebench.metrics.disentanglement.mig import mig, mutual_information_gap
from vaebench.metrics.disentanglement.modularity import modularity
from vaebench.metrics.disentanglement.protocol import TRAIN_FRACTION
from vaebench.metrics.disentanglement.sap import sap, separated_attribute_predictability
from vaebench.metrics.disentanglement.unsupervised import (
    gaussian_total_correlation,
    gaussian_wasserstein_correlation,
    mutual_info_score,
    unsupervised_scores,
)

__all__ = [
    "N_BINS",
    "TRAIN_FRACTION",
    "histogram_discretize",
    "discrete_entropy",
    "discrete_mutual_information",
    "mutual_information_gap",
    "mig",
    "separated_attribute_predictability",
    "sap",
    "dci",
    "modularity",
    "explicitness",
    "interventional_robustness_score",
    "irs",
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
    "mutual_info_score",
    "unsupervised_scores",
    "downstream_accuracy",
]
