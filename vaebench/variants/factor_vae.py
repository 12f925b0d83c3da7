"""FactorVAE (Kim and Mnih 2018, "Disentangling by Factorising", ICML).

    model (encoder + decoder):  E_q(z|x)[-log p(x|z)] + KL(q(z|x) || N(0, I)) + gamma * E_q(z)[log D(z) / (1 - D(z))]
    discriminator (D only):     0.5 (BCE(D(sg[z]), 1) + BCE(D(perm(sg[z])), 0))

one reparameterised sample per image, analytic KL, batch means. The discriminator D tells
codes z ~ q(z) (label 1) from codes whose every dimension is permuted independently across the
batch, samples of prod_j q(z_j) (label 0); its logit log D/(1 - D) estimates
log q(z) / prod_j q(z_j), so its batch mean estimates the total correlation (reported "tc").
sg: the discriminator phase detaches the codes. The permuted codes come from the same batch,
as in disentanglement_lib (the paper draws a second batch).

Defaults: gamma = 35 (the paper sweeps gamma from 10 to 100 on dSprites; disentanglement_lib
sweeps 10..100 without a default); D as in the paper: 6 hidden layers of 1000 leaky-ReLU
(slope 0.2) units; its optimizer is Adam with lr 1e-4, betas (0.5, 0.9) (the paper's; those
phase settings override the run's, the model phase uses the run's optimizer and rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vaebench.params import hyperparameter
from vaebench.variants.base import GaussianEncoderVariant, Hyperparameters, Losses, Phase
from vaebench.variants.claims import Claim
from vaebench.variants.discriminator import Discriminator, discriminator_loss
from vaebench.variants.gaussian import reparameterize
from vaebench.variants.registry import register_variant


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Each column of z (B, D) shuffled independently across the batch (global RNG)."""
    order = torch.argsort(torch.rand(z.shape, device=z.device), dim=0)
    return z.gather(0, order)


@dataclass(frozen=True)
class FactorVAEHyperparameters(Hyperparameters):
    gamma: float = hyperparameter(35.0, minimum=0.0)
    discriminator_width: int = hyperparameter(1000, minimum=1)
    discriminator_depth: int = hyperparameter(6, minimum=0)
    discriminator_learning_rate: float = hyperparameter(1e-4, greater_than=0.0)
    discriminator_beta1: float = hyperparameter(0.5, minimum=0.0, less_than=1.0)
    discriminator_beta2: float = hyperparameter(0.9, minimum=0.0, less_than=1.0)


@register_variant("factor_vae")
class FactorVAE(GaussianEncoderVariant[FactorVAEHyperparameters]):
    """VAE + gamma * TC, the TC estimated by a discriminator on permuted codes."""

    Hyperparameters = FactorVAEHyperparameters
    # Kim & Mnih 2018, sec. 3: the discriminator's TC penalty makes q(z) factorise
    claims = (Claim("tc", "lower", "lowers the total correlation of the aggregated posterior"),)

    def __init__(self, hparams: FactorVAEHyperparameters, **kwargs: Any):
        super().__init__(hparams, **kwargs)
        self.discriminator = Discriminator(
            self.latent_dim, hparams.discriminator_width, hparams.discriminator_depth, negative_slope=0.2
        )

    def loss(self, x: torch.Tensor, step: int) -> Losses:
        t = self.sample_terms(x)
        recon = t["recon"].mean()
        kl = t["kl_dims"].sum(1).mean()
        tc = self.discriminator(t["z"]).mean()
        return Losses(recon + kl + self.hparams.gamma * tc, {"recon": recon, "kl": kl, "tc": tc})

    def discriminator_phase_loss(self, x: torch.Tensor, step: int) -> Losses:
        with torch.no_grad():
            z = reparameterize(*self.encode(x))
        z = z.detach()
        loss = discriminator_loss(self.discriminator(z), self.discriminator(permute_dims(z)))
        return Losses(loss, {"discriminator": loss})

    def phases(self) -> list[Phase]:
        h = self.hparams
        return [
            Phase("model", self.autoencoder_parameters(), self.loss),
            Phase(
                "discriminator",
                list(self.discriminator.parameters()),
                self.discriminator_phase_loss,
                learning_rate=h.discriminator_learning_rate,
                betas=(h.discriminator_beta1, h.discriminator_beta2),
            ),
        ]
