"""IWAE (Burda, Grosse and Salakhutdinov 2016, "Importance Weighted Autoencoders", ICLR).

    L_K(x) = -log (1/K) sum_k p(x, z_k) / q(z_k | x),   z_1..z_K ~ q(z | x) independently,

batch mean; w_k = p(x | z_k) p(z_k) / q(z_k | x) with p(z) = N(0, I). K = 1 is the negative
ELBO with a Monte Carlo KL; the bound tightens as K grows. Default K = 5 (one of the paper's
K = 1, 5, 50). `importance_weighted_bound` (on `importance_log_weights`) is the one
implementation of the bound: the iwae objective, the iwae_nll metric and its curve over K use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from vaebench.params import hyperparameter
from vaebench.variants.base import EncodingModel, GaussianEncoderVariant, Hyperparameters, Losses
from vaebench.variants.claims import Claim
from vaebench.variants.gaussian import log_normal, log_standard_normal, reparameterize
from vaebench.variants.registry import register_variant

# Decoder inputs per chunk when chunk_size is not given: bounds memory at K * B images.
_IMAGES_PER_CHUNK = 4096


class GenerativeModel(EncodingModel, Protocol):
    """What the importance-weighted estimate needs (every vaebench variant has it)."""

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor: ...


def importance_log_weights(model: GenerativeModel, x: torch.Tensor, k: int,
                           chunk_size: int | None = None) -> torch.Tensor:
    """(K, B) log importance weights log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x), z_k ~ q(z|x).

    `model` has encode(x) -> (mu, logvar) and log_likelihood(x, z) -> (B,) (any Variant).
    The K samples are drawn and decoded `chunk_size` at a time (default: as many as keep a
    chunk to about 4096 images), in order, so the result does not depend on the chunking for
    a given RNG state. Row k is the k-th draw: the first K' rows are a K'-sample draw.
    """
    if k < 1:
        raise ValueError(f"the number of importance samples must be >= 1, got {k}")
    mu, logvar = model.encode(x)
    batch = x.shape[0]
    if chunk_size is None:
        chunk_size = max(1, _IMAGES_PER_CHUNK // batch)
    log_weights = []
    for start in range(0, k, chunk_size):
        n = min(chunk_size, k - start)
        mu_n, logvar_n = mu.expand(n, *mu.shape), logvar.expand(n, *logvar.shape)
        z = reparameterize(mu_n, logvar_n)  # (n, B, D)
        x_n = x.expand(n, *x.shape).reshape(n * batch, *x.shape[1:])
        log_px_z = model.log_likelihood(x_n, z.reshape(n * batch, -1)).view(n, batch)
        log_pz = log_standard_normal(z).sum(-1)
        log_qz_x = log_normal(z, mu_n, logvar_n).sum(-1)
        log_weights.append(log_px_z + log_pz - log_qz_x)
    return torch.cat(log_weights, 0)


def importance_weighted_bound(model: GenerativeModel, x: torch.Tensor, k: int,
                              chunk_size: int | None = None) -> torch.Tensor:
    """Per-image log p(x) estimates (B,): logsumexp_k log w_k - log K, K samples of q(z|x)
    (`importance_log_weights`, whose arguments these are). Differentiable; wrap in
    torch.no_grad() for evaluation."""
    return torch.logsumexp(importance_log_weights(model, x, k, chunk_size), dim=0) - math.log(k)


@dataclass(frozen=True)
class IWAEHyperparameters(Hyperparameters):
    k: int = hyperparameter(5, minimum=1)


@register_variant("iwae")
class IWAE(GaussianEncoderVariant[IWAEHyperparameters]):
    """Minimise the negative K-sample importance-weighted bound."""

    Hyperparameters = IWAEHyperparameters
    # Burda et al. 2016, sec. 3: the K-sample bound is tighter, and training on it raises log p(x)
    claims = (Claim("iwae_nll", "lower", "a tighter bound gives a lower negative log-likelihood"),)

    def loss(self, x: torch.Tensor, step: int) -> Losses:
        bound = importance_weighted_bound(self, x, self.hparams.k).mean()
        return Losses(-bound, {"iwae_bound": bound})
