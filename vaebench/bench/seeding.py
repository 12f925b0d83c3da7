"""The one place that seeds Python, NumPy and torch and asks torch for deterministic kernels.

Everything else takes an explicit `np.random.Generator` / `torch.Generator`, or relies on
torch's global generator as seeded here (model initialisation, reparameterisation noise).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> np.random.Generator:
    """Seed every global RNG with `seed`, make torch deterministic, return a NumPy generator for data."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    return np.random.default_rng(seed)


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for a sub-task (evaluation, a metric) that depends only on the run seed and the purpose."""
    import hashlib

    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little")
