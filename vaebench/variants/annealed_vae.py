"""AnnealedVAE: beta-VAE with a controlled capacity increase (Burgess et al. 2018,
"Understanding disentangling in beta-VAE", arXiv:1804.03599).

    L(x, step) = E_q(z|x)[-log p(x|z)] + gamma * | KL(q(z|x) || N(0, I)) - C(step) |
    C(step)    = min(C_max, C_max * step / C_stop_steps)

with one reparameterised sample per image and the analytic KL, both batch means (the
absolute value is taken of the batch-mean KL, as in disentanglement_lib). Defaults are the
paper's dSprites setting, also disentanglement_lib's: gamma = 1000, C_max = 25 nats reached
linearly at step 100 000.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vaebench.params import hyperparameter
from vaebench.variants.base import GaussianEncoderVariant, Hyperparameters, Losses
from vaebench.variants.claims import Claim, ClaimSpec
from vaebench.variants.registry import register_variant


@dataclass(frozen=True)
class AnnealedVAEHyperparameters(Hyperparameters):
    gamma: float = hyperparameter(1000.0, minimum=0.0)
    c_max: float = hyperparameter(25.0, minimum=0.0)
    c_stop_steps: int = hyperparameter(100000, minimum=1)


def capacity(c_max: float, c_stop_steps: int, step: int) -> float:
    """C(step) = min(C_max, C_max * step / C_stop_steps), in nats."""
    return min(c_max, c_max * step / c_stop_steps)


def final_capacity(spec: ClaimSpec) -> float:
    """C at a run's last step (steps - 1), the KL the objective holds the model at when training ends."""
    h = dict(spec.hyperparameters)
    return capacity(h["c_max"], h["c_stop_steps"], spec.steps - 1)


CAPACITY_TOLERANCE = 1.0  # nats: how far the final KL may be from C for the claim to hold


@register_variant("annealed_vae")
class AnnealedVAE(GaussianEncoderVariant[AnnealedVAEHyperparameters]):
    """beta-VAE whose KL is pulled towards a capacity C that grows linearly to C_max."""

    Hyperparameters = AnnealedVAEHyperparameters
    # Burgess et al. 2018, sec. 4: gamma |KL - C| holds the KL at the capacity C
    claims = (Claim("kl", "near", f"the final KL is within {CAPACITY_TOLERANCE:g} nat of the capacity C",
                    target=final_capacity, tolerance=CAPACITY_TOLERANCE),)

    def capacity(self, step: int) -> float:
        h = self.hparams
        return capacity(h.c_max, h.c_stop_steps, step)

    def loss(self, x: torch.Tensor, step: int) -> Losses:
        t = self.sample_terms(x)
        recon = t["recon"].mean()
        kl = t["kl_dims"].sum(1).mean()
        capacity = self.capacity(step)
        total = recon + self.hparams.gamma * (kl - capacity).abs()
        return Losses(total, {"recon": recon, "kl": kl, "capacity": torch.tensor(capacity)})
