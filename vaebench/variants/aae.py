"""Adversarial Autoencoder (Makhzani et al. 2015, "Adversarial Autoencoders", arXiv:1511.05644).

A discriminator D on latent codes tells prior samples z' ~ p(z) = N(0, I) (label 1) from
codes z = q(x) of the data (label 0). Each batch is stepped in three phases, each with its
own optimizer, in the paper's order:

    model (reconstruction), encoder + decoder:  E[-log p(x | z)],            z = q(x)
    discriminator, D only:                      0.5 (BCE(D(z'), 1) + BCE(D(sg[z]), 0))
    generator, encoder only:                    BCE(D(z), 1) = E[-log D(z)]

(sg: the codes are detached, so the discriminator loss reaches only D). All terms are batch
means. The paper's experiments use a deterministic encoder, so `encoder = "deterministic"`
(z = mu, the log-variance output is unused) is the default; `"gaussian"` uses one
reparameterised sample z ~ N(mu, exp(logvar)). D follows the paper's MNIST networks: two
hidden layers of 1000 ReLU units (`discriminator_width`, `discriminator_depth`). All phases
use the run's optimizer and learning rate (the paper's SGD-with-momentum rates were tuned per
dataset). The reconstruction term is the likelihood's negative log-likelihood, like every variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vaebench.params import hyperparameter
from vaebench.variants.base import ChosenEncoder, Hyperparameters, Losses, Phase, Variant
from vaebench.variants.claims import Claim
from vaebench.variants.discriminator import Discriminator, discriminator_loss, fooling_loss
from vaebench.variants.gaussian import ENCODERS, sample_code
from vaebench.variants.registry import register_variant


@dataclass(frozen=True)
class AAEHyperparameters(ChosenEncoder, Hyperparameters):
    encoder: str = hyperparameter("deterministic", choices=ENCODERS)
    discriminator_width: int = hyperparameter(1000, minimum=1)
    discriminator_depth: int = hyperparameter(2, minimum=0)


@register_variant("aae")
class AAE(Variant[AAEHyperparameters]):
    """Adversarial autoencoder: reconstruction, discriminator and generator phases."""

    Hyperparameters = AAEHyperparameters
    # Makhzani et al. 2016, sec. 2: adversarial training matches the aggregated posterior to the prior
    claims = (Claim("prior_mmd", "lower", "matches the aggregated posterior to the prior"),)

    def __init__(self, hparams: AAEHyperparameters, **kwargs: Any):
        super().__init__(hparams, **kwargs)
        self.discriminator = Discriminator(self.latent_dim, hparams.discriminator_width, hparams.discriminator_depth)

    def code(self, x: torch.Tensor) -> torch.Tensor:
        return sample_code(*self.encode(x), self.hparams.encoder)

    def loss(self, x: torch.Tensor, step: int) -> Losses:
        """The reconstruction phase: E[-log p(x | z)] over the encoder and decoder."""
        recon = -self.log_likelihood(x, self.code(x)).mean()
        return Losses(recon, {"recon": recon})

    def discriminator_phase_loss(self, x: torch.Tensor, step: int) -> Losses:
        with torch.no_grad():
            z = self.code(x)
        z = z.detach()
        loss = discriminator_loss(self.discriminator(torch.randn_like(z)), self.discriminator(z))
        return Losses(loss, {"discriminator": loss})

    def generator_phase_loss(self, x: torch.Tensor, step: int) -> Losses:
        loss = fooling_loss(self.discriminator(self.code(x)))
        return Losses(loss, {"generator": loss})

    def phases(self) -> list[Phase]:
        return [
            Phase("model", self.autoencoder_parameters(), self.loss),
            Phase("discriminator", list(self.discriminator.parameters()), self.discriminator_phase_loss),
            Phase("generator", list(self.encoder.parameters()), self.generator_phase_loss),
        ]
