"""Codes with known disentanglement for the score tests: factors drawn uniformly, a perfect
code (one rescaled, shifted code dimension per factor) and the same code rotated at random."""

from __future__ import annotations

import numpy as np


def sample_factors(n, sizes, seed):
    """(n, K) integer factors, column j uniform over range(sizes[j])."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, n) for s in sizes], axis=1)


def perfect_code(factors, seed):
    """A permuted, rescaled and shifted copy of the factors: one code dim per factor."""
    rng = np.random.default_rng(seed)
    k = factors.shape[1]
    permutation = rng.permutation(k)
    return factors[:, permutation] * rng.uniform(0.5, 2.0, k) + rng.normal(size=k)


def rotated_code(factors, seed, extra_dims=0):
    """The perfect code standardized, padded with `extra_dims` zero dims and rotated at random."""
    code = perfect_code(factors, seed)
    z = (code - code.mean(axis=0)) / code.std(axis=0)
    z = np.hstack([z, np.zeros((len(z), extra_dims))])
    q, r = np.linalg.qr(np.random.default_rng(seed + 1).normal(size=(z.shape[1],) * 2))
    return z @ (q * np.sign(np.diag(r)))  # a Haar-random orthogonal matrix
