"""Diagonal-Gaussian formulas shared by every objective and metric (one place for each)."""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-dimension KL(N(mu, exp(logvar)) || N(0, 1)) = 0.5 (mu^2 + exp(logvar) - 1 - logvar)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Element-wise log N(z; mu, exp(logvar)) = -0.5 (log 2 pi + logvar + (z - mu)^2 / exp(logvar))."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """Element-wise log N(z; 0, 1)."""
    return -0.5 * (LOG_2PI + z.pow(2))


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) (Kingma and Welling 2014)."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def pairwise_log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Every code under every posterior of a batch: (B, B', D), [i, j, d] = log N(z_id; mu_jd, exp(logvar_jd))."""
    return log_normal(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))


ENCODERS = ("deterministic", "gaussian")


def sample_code(mu: torch.Tensor, logvar: torch.Tensor, encoder: str) -> torch.Tensor:
    """The code of a `deterministic` encoder (z = mu; the log-variance output is unused) or a
    `gaussian` one (z ~ N(mu, exp(logvar)), reparameterised)."""
    if encoder == "deterministic":
        return mu
    if encoder == "gaussian":
        return reparameterize(mu, logvar)
    raise ValueError(f"unknown encoder {encoder!r}; allowed: {', '.join(ENCODERS)}")
