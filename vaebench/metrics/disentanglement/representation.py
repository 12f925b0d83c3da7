"""Which representation the disentanglement scores see: the posterior means, a sample, or both.

disentanglement_lib scores two post-processed representations of every model
(``postprocess_configs/mean.gin`` and ``sampled.gin``): the encoder's mean, and one draw

    z = mu + exp(logvar / 2) * eps,   eps ~ N(0, I)

per image. The suite parameter ``disentanglement_representation`` picks "mean" (default),
"sampled" or "both"; values scored on the sample carry the suffix ``_sampled`` (``mig_sampled``,
``dci_d_sampled``, ...). The draw is seeded by the run's seed and shared by every score of
the run, so all sampled values describe the same sample (:func:`.protocol.scored_samples`).
"""

from __future__ import annotations

import numpy as np

from vaebench.params import Param

REPRESENTATIONS = ("mean", "sampled", "both")
#: Value-name suffix of each representation.
SUFFIX = {"mean": "", "sampled": "_sampled"}
#: Every suffix a disentanglement value may carry (for the registry's value declarations).
VALUE_SUFFIXES = tuple(SUFFIX.values())

REPRESENTATION_PARAM = Param(
    "disentanglement_representation", "mean", choices=REPRESENTATIONS,
    doc="codes the disentanglement scores see: posterior means, one seeded sample of q(z|x), or both",
)

# stream of the seeded generator that draws the sample (independent of the train/test splits)
_SAMPLE_STREAM = 0x5A3


def sampled_codes(mu: np.ndarray, logvar: np.ndarray, seed: int) -> np.ndarray:
    """One draw mu + exp(logvar / 2) * eps, eps ~ N(0, I), from default_rng([seed, stream])."""
    eps = np.random.default_rng([seed, _SAMPLE_STREAM]).standard_normal(mu.shape)
    return mu + np.exp(logvar / 2.0) * eps
