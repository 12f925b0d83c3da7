"""Image grids of a trained model, made at evaluation time and kept in the store as PNG artifacts.

Reports read only the store, and the model exists only while a run is scored, so
`vaebench.bench.evaluate` calls `model_image_grids` and the store keeps the PNG bytes
(reports read them by the names in GRID_NAMES):

    grid_reconstructions   row 1: the first n test images; row 2: their reconstructions
                           (the likelihood's mean decoded from the posterior mean)
    grid_samples           n x n decodings of z ~ N(0, I) (the prior), from a generator seeded by `seed`
    grid_traversals        one row per latent d (top row = latent 0): the posterior mean of the first
                           test image with z_d swept over n values from -3 to 3, the others fixed

Pure functions otherwise: `make_grid` (tensors -> one image array) and `png_bytes` (array -> PNG).
"""

from __future__ import annotations

import io

import numpy as np
import torch

from vaebench.bench.contract import CheckedModel

GRID_NAMES = ("grid_reconstructions", "grid_samples", "grid_traversals")
TRAVERSAL_RANGE = (-3.0, 3.0)
PADDING = 2


def make_grid(images: torch.Tensor, nrow: int, *, padding: int = PADDING, pad_value: float = 1.0) -> np.ndarray:
    """(N, C, H, W) images in [0, 1] -> one (H', W', C) float array, `nrow` images per row, padded.

    The last row is filled with padding when N is not a multiple of `nrow`.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    x = images.detach().to("cpu", torch.float32).clamp(0, 1).numpy()
    n, c, h, w = x.shape
    cols = min(nrow, max(n, 1))
    rows = max(1, -(-n // cols))
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c), pad_value, dtype=np.float32)
    for i in range(n):
        r, k = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[top : top + h, left : left + w] = x[i].transpose(1, 2, 0)
    return grid


def png_bytes(grid: np.ndarray) -> bytes:
    """A (H, W, 1 or 3) or (H, W) array in [0, 1] -> PNG bytes (8-bit greyscale or RGB, pixel =
    round(255 x)), no timestamps. Pillow writes it: importing matplotlib for this would cost every
    fresh worker process its import time (README, Performance)."""
    from PIL import Image

    arr = np.asarray(grid, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"grid must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {arr.shape}")
    pixels = np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def tensor_grid_png(images: torch.Tensor, nrow: int) -> bytes:
    """(N, C, H, W) images in [0, 1] -> PNG bytes of their grid."""
    return png_bytes(make_grid(images, nrow))


def _mean_image(model: CheckedModel, z: torch.Tensor) -> torch.Tensor:
    params = model.decode(z)
    likelihood = getattr(model, "likelihood", None)
    return likelihood.mean(params) if likelihood is not None else params


@torch.no_grad()
def model_image_grids(model: CheckedModel, test_images: torch.Tensor, *, seed: int, n: int = 8) -> dict[str, bytes]:
    """PNG grids of reconstructions, prior samples and latent traversals (see the module docstring).

    Uses its own seeded generator for the prior samples. An autoregressive decoder (`pixelcnn`)
    draws its images pixel by pixel from torch's global generator, so for such a model the grids
    advance it: the harness makes them after every metric (`evaluate`), where no number of the
    run depends on it any more, and they are still the same for the same seed. Leaves the model
    in eval mode.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    if len(test_images) == 0:
        raise ValueError("no test images")
    model.eval()
    device = next(model.parameters()).device
    x = test_images[:n].to(device, torch.float32)
    mu, _ = model.encode(x)
    latent_dim = mu.shape[1]

    recon = _mean_image(model, mu)
    pairs = torch.cat([x.cpu(), recon.float().cpu()])  # row 1 originals, row 2 reconstructions

    generator = torch.Generator(device="cpu").manual_seed(int(seed) % 2**63)
    z = torch.randn(n * n, latent_dim, generator=generator).to(device)
    samples = _mean_image(model, z).float().cpu()

    steps = torch.linspace(*TRAVERSAL_RANGE, n)
    base = mu[:1].cpu().float().repeat(latent_dim * n, 1)
    for d in range(latent_dim):
        base[d * n : (d + 1) * n, d] = steps
    traversals = _mean_image(model, base.to(device)).float().cpu()

    return {
        "grid_reconstructions": tensor_grid_png(pairs, len(x)),
        "grid_samples": tensor_grid_png(samples, n),
        "grid_traversals": tensor_grid_png(traversals, n),
    }
