"""DIP-VAE (Kumar, Sattigeri and Balakrishnan 2018, "Variational Inference of Disentangled
Latent Concepts from Unlabeled Observations", ICLR).

    L(x) = E_q(z|x)[-log p(x|z)] + KL(q(z|x) || N(0, I))
           + lambda_od * sum_{i != j} Cov[z]_ij^2 + lambda_d * sum_i (Cov[z]_ii - 1)^2

one reparameterised sample per image, analytic KL, batch means; the covariance is over the batch:

- type "i"  (DIP-VAE-I):  Cov = Cov_p(x)[mu(x)]                               (eq. 6)
- type "ii" (DIP-VAE-II): Cov = Cov_p(x)[mu(x)] + E_p(x)[diag exp(logvar(x))]  (eq. 7: Cov_q(z)[z])

Cov_p(x)[mu] = mean(mu mu^T) - mean(mu) mean(mu)^T (divided by B, as disentanglement_lib).
lambda_d = lambda_d_factor * lambda_od. Defaults as in disentanglement_lib: lambda_od = 10,
lambda_d_factor = 10 for type "i" and 1 for type "ii" (the paper's choices lambda_d = 10
lambda_od and lambda_d = lambda_od); a `lambda_d_factor` left unset (nan) takes the type's value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vaebench.params import hyperparameter
from vaebench.variants.base import GaussianEncoderVariant, Hyperparameters, Losses
from vaebench.variants.claims import Claim
from vaebench.variants.registry import register_variant

DIP_TYPES = ("i", "ii")
DEFAULT_LAMBDA_D_FACTOR = {"i": 10.0, "ii": 1.0}


def covariance_of_means(mu: torch.Tensor) -> torch.Tensor:
    """(D, D) Cov[mu] over the batch, mean(mu mu^T) - mean(mu) mean(mu)^T."""
    centred = mu - mu.mean(0, keepdim=True)
    return centred.T @ centred / mu.shape[0]


def dip_covariance(mu: torch.Tensor, logvar: torch.Tensor, dip_type: str) -> torch.Tensor:
    """The covariance DIP-VAE regularises: Cov[mu] (type i) or Cov_q[z] = Cov[mu] + E[diag exp(logvar)] (ii)."""
    cov = covariance_of_means(mu)
    if dip_type == "i":
        return cov
    if dip_type == "ii":
        return cov + torch.diag(logvar.exp().mean(0))
    raise ValueError(f"unknown DIP-VAE type {dip_type!r}; allowed: {', '.join(DIP_TYPES)}")


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """lambda_od * sum_{i != j} cov_ij^2 + lambda_d * sum_i (cov_ii - 1)^2: zero iff cov = I."""
    diag = cov.diagonal()
    off_diagonal = cov - torch.diag(diag)
    return lambda_od * off_diagonal.pow(2).sum() + lambda_d * (diag - 1.0).pow(2).sum()


@dataclass(frozen=True)
class DIPVAEHyperparameters(Hyperparameters):
    type: str = hyperparameter("i", choices=DIP_TYPES)
    lambda_od: float = hyperparameter(10.0, minimum=0.0)
    lambda_d_factor: float = hyperparameter(math.nan, minimum=0.0)

    def __post_init__(self) -> None:
        if math.isnan(self.lambda_d_factor) and self.type in DEFAULT_LAMBDA_D_FACTOR:
            object.__setattr__(self, "lambda_d_factor", DEFAULT_LAMBDA_D_FACTOR[self.type])
        super().__post_init__()

    @property
    def lambda_d(self) -> float:
        return self.lambda_d_factor * self.lambda_od


@register_variant("dip_vae")
class DIPVAE(GaussianEncoderVariant[DIPVAEHyperparameters]):
    """VAE + a penalty pulling the (mean or full) aggregated-posterior covariance to the identity."""

    Hyperparameters = DIPVAEHyperparameters
    # Kumar et al. 2018, sec. 3: the penalty pulls Cov[E[z|x]] to the identity (decorrelated means)
    claims = (Claim("cov_offdiag", "lower", "decorrelates the posterior means (lower off-diagonal covariance)"),)

    def loss(self, x: torch.Tensor, step: int) -> Losses:
        h = self.hparams
        t = self.sample_terms(x)
        recon = t["recon"].mean()
        kl = t["kl_dims"].sum(1).mean()
        dip = dip_penalty(dip_covariance(t["mu"], t["logvar"], h.type), h.lambda_od, h.lambda_d)
        return Losses(recon + kl + dip, {"recon": recon, "kl": kl, "dip": dip})
