"""The latent-space discriminator of the adversarial variants (aae, factor_vae) and its loss.

`Discriminator`: an MLP on codes z (B, D) -> one logit per code, `depth` hidden layers of
`width` units (ReLU, or leaky ReLU with `negative_slope` > 0). One logit with a sigmoid is the
same model family as the two-logit softmax of Kim and Mnih (2018): logit = log D / (1 - D).

`discriminator_loss`: binary cross-entropy, "positive" samples labelled 1 and "negative" 0,
averaged over the two sets: 0.5 * (BCE(pos, 1) + BCE(neg, 0)), each a batch mean.
The callers pass detached codes, so this loss reaches only the discriminator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Discriminator(nn.Module):
    """z (B, D) -> logits (B,)."""

    def __init__(self, latent_dim: int, width: int, depth: int, negative_slope: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        d = latent_dim
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.LeakyReLU(negative_slope) if negative_slope > 0 else nn.ReLU()]
            d = width
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


def discriminator_loss(positive_logits: torch.Tensor, negative_logits: torch.Tensor) -> torch.Tensor:
    """0.5 * (BCE(positive, 1) + BCE(negative, 0)), batch means."""
    pos = F.binary_cross_entropy_with_logits(positive_logits, torch.ones_like(positive_logits))
    neg = F.binary_cross_entropy_with_logits(negative_logits, torch.zeros_like(negative_logits))
    return 0.5 * (pos + neg)


def fooling_loss(logits: torch.Tensor) -> torch.Tensor:
    """BCE(logits, 1): the generator's loss for making the discriminator call its samples positive."""
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
