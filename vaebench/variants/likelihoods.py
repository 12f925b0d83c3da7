"""Decoder likelihoods p(x | z): the decoder outputs their parameters, one value per pixel."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vaebench.registry import Registry


class Likelihood:
    """log p(x | params) summed over pixels, and the mean image."""

    name: str

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ p(x | params) (the global RNG without a generator)."""
        raise NotImplementedError


class Bernoulli(Likelihood):
    """x_p ~ Bernoulli(sigmoid(logit_p)); log p = -sum_p BCE(logit_p, x_p). x may be in [0, 1]."""

    name = "bernoulli"

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        nll = F.binary_cross_entropy_with_logits(params, x, reduction="none")
        return -nll.flatten(1).sum(1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        u = torch.rand(params.shape, generator=generator, dtype=params.dtype, device=params.device)
        return (u < torch.sigmoid(params)).to(params.dtype)


class Gaussian(Likelihood):
    """x_p ~ N(mu_p, sigma^2) with a fixed sigma (default 1):
    log p = -sum_p [(x-mu)^2/(2 sigma^2) + log(sigma sqrt(2 pi))]."""

    name = "gaussian"

    def __init__(self, sigma: float = 1.0):
        self.sigma = sigma

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        sq = (x - params).pow(2).flatten(1).sum(1)
        pixels = x[0].numel()
        return -0.5 * sq / self.sigma**2 - pixels * (math.log(self.sigma) + 0.5 * math.log(2 * math.pi))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(params.shape, generator=generator, dtype=params.dtype, device=params.device)
        return params + self.sigma * noise


LIKELIHOODS: Registry[type[Likelihood]] = Registry("likelihood")
LIKELIHOODS.add("bernoulli", Bernoulli)
LIKELIHOODS.add("gaussian", Gaussian)
