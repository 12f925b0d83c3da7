"""VAE (Kingma and Welling 2014) and beta-VAE (Higgins et al. 2017).

    L_beta(x) = E_q(z|x)[-log p(x|z)] + beta * KL(q(z|x) || N(0, I))

with one reparameterised sample per image, averaged over the batch; beta = 1 is the VAE's
negative ELBO. KL of the diagonal Gaussian posterior is analytic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from vaebench.params import hyperparameter
from vaebench.variants.base import GaussianEncoderVariant, H, Hyperparameters, HyperparametersClass, Losses
from vaebench.variants.claims import Claim
from vaebench.variants.registry import register_variant


@dataclass(frozen=True)
class VAEHyperparameters(Hyperparameters):
    pass


@register_variant("vae")
class VAE(GaussianEncoderVariant[H]):
    """The VAE: minimise the negative ELBO. (Generic in its hyperparameters for beta-VAE's.)"""

    Hyperparameters: ClassVar[HyperparametersClass] = VAEHyperparameters  # (beta_vae names its own)

    def kl_weight(self, step: int) -> float:
        return 1.0

    def loss(self, x: torch.Tensor, step: int) -> Losses:
        t = self.sample_terms(x)
        recon = t["recon"].mean()
        kl = t["kl_dims"].sum(1).mean()
        return Losses(recon + self.kl_weight(step) * kl, {"recon": recon, "kl": kl})


@dataclass(frozen=True)
class BetaVAEHyperparameters(Hyperparameters):
    beta: float = hyperparameter(4.0, minimum=0.0)


@register_variant("beta_vae")
class BetaVAE(VAE[BetaVAEHyperparameters]):
    """beta-VAE (Higgins et al. 2017, ICLR): the KL term weighted by beta (default 4)."""

    Hyperparameters = BetaVAEHyperparameters
    # Higgins et al. 2017, sec. 2: beta > 1 limits the capacity of the latent channel (a lower rate)
    claims = (Claim("kl", "lower", "beta > 1 lowers the rate KL(q(z|x) || p(z)) below the VAE's",
                    applies=lambda spec: dict(spec.hyperparameters).get("beta", 4.0) > 1),)

    def kl_weight(self, step: int) -> float:
        return self.hparams.beta
