"""MI-VAE: the VAE with a mutual-information bonus,

    L(x) = -ELBO(x) - gamma * I(x; z)
         = E_q(z|x)[-log p(x|z)] + KL(q(z|x) || N(0, I)) - gamma * I(x; z),

one reparameterised sample per image, analytic KL, batch means. I(x; z) = E[log q(z|x) - log q(z)]
is estimated on the minibatch with q the batch's aggregated posterior,
log q(z_i) = logsumexp_j log q(z_i|x_j) - log B (`aggregate.minibatch_mutual_information`;
at most log B). Maximising I(x; z) alongside the ELBO counters posterior collapse, as in
InfoVAE (Zhao et al. 2017) and the MI-regularised VAEs after it (e.g. Rezaabad and
Vishwanath 2020, "Learning Representations by Maximizing Mutual Information in VAEs").

Default gamma = 1: since E_x KL(q(z|x) || p(z)) = I(x; z) + KL(q(z) || p(z)) (Hoffman and
Johnson 2016, "ELBO surgery"), gamma = 1 removes exactly the MI penalty hidden in the ELBO's
KL and leaves recon + KL(q(z) || p(z)) in expectation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vaebench.variants.aggregate import minibatch_mutual_information
from vaebench.variants.base import GaussianEncoderVariant, Hyperparameters, Losses
from vaebench.variants.registry import register_variant


@dataclass(frozen=True)
class MIVAEHyperparameters(Hyperparameters):
    gamma: float = 1.0

    def validate(self) -> None:
        self.require_nonnegative("gamma")


@register_variant("mi_vae")
class MIVAE(GaussianEncoderVariant):
    """-ELBO - gamma * I(x; z), I on the minibatch aggregated posterior."""

    Hyperparameters = MIVAEHyperparameters

    def loss(self, x: torch.Tensor, step: int) -> Losses:
        t = self.sample_terms(x)
        recon = t["recon"].mean()
        kl = t["kl_dims"].sum(1).mean()
        mi = minibatch_mutual_information(t["z"], t["mu"], t["logvar"])
        return Losses(recon + kl - self.hparams.gamma * mi, {"recon": recon, "kl": kl, "mi": mi})
