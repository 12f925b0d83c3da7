"""Procedural dSprites (Matthey et al. 2017) with the exact factor grid of the original.

Factors (all 3 * 6 * 40 * 32 * 32 = 737,280 combinations addressable, rendered on demand):

    shape        3   square, ellipse, heart
    scale        6   linspace(0.5, 1, 6)
    orientation 40   linspace(0, 2 pi, 40)   (as in the original file, 0 and 2 pi both appear)
    posX        32   linspace(0, 1, 32)
    posY        32   linspace(0, 1, 32)

The image index is the mixed-radix number of the factor indices (shape most significant),
the order of the original `latents_classes` (whose constant colour column is dropped).
Each pixel is 1 where its centre lies inside the rotated, scaled shape: binary images at
`size` 64 (the original) or rendered directly at 32. `mode="color"` paints the sprite in a
per-image random colour, `mode="noisy"` puts it on a per-image uniform-noise background
(Locatello et al. 2019); both are deterministic functions of the image index.

`materialised(cache_dir, ...)` returns a view of the dataset whose masks are gathered from a
bit-packed cache of the whole grid (`vaebench.data.materialise`) instead of rendered; colour
and noise are still drawn per batch, by the same code, so its images are the same bits. On a
CUDA device the binary images of a view are gathered and unpacked on the device (`batch`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vaebench.data.base import GroundTruthDataset, fixed_split
from vaebench.data.materialise import MaskStore, open_mask_store, unpack_rows
from vaebench.errors import ConfigError
from vaebench.data.registry import register_dataset

SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * np.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
MODES = ("binary", "color", "noisy")

# Geometry, in units of the image side: sprite half-extent at scale 1, and the range of centres.
_HALF_EXTENT = 0.14
_CENTRE_LOW, _CENTRE_SPAN = 0.22, 0.56
# Every shape lies within this many half-extents of its centre (the square's corner: 0.8 * sqrt 2).
_MAX_RADIUS = 1.25
_RENDER_CHUNK = 1024


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A counter-based hash: uint64 -> uint64 (Steele et al. 2014), for per-index randomness."""
    x = (x + np.uint64(0x9E3779B97F4A7C15)).astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform_from_counter(counter: np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1) that depend only on the integer counters."""
    with np.errstate(over="ignore"):
        bits = _splitmix64(counter.astype(np.uint64))
    return (bits >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)


def shape_masks(factors: np.ndarray, size: int, window: int | None = None) -> np.ndarray:
    """(n, size, size) boolean masks of the sprites described by (n, 5) factor indices.

    A pixel is set when its centre lies inside the rotated, scaled shape. Only a
    `window` x `window` patch around each sprite's centre is evaluated (the default covers
    the largest sprite at any rotation); `window=size` evaluates every pixel.
    """
    f = np.asarray(factors)
    n = len(f)
    if window is None:
        window = min(size, int(np.ceil(2 * _MAX_RADIUS * _HALF_EXTENT * size)) + 2)
    half = (_HALF_EXTENT * SCALES[f[:, 1]]).astype(np.float32)[:, None, None]
    theta = ORIENTATIONS[f[:, 2]].astype(np.float32)[:, None, None]
    cx = (_CENTRE_LOW + _CENTRE_SPAN * POSITIONS[f[:, 3]]).astype(np.float32)
    cy = (_CENTRE_LOW + _CENTRE_SPAN * POSITIONS[f[:, 4]]).astype(np.float32)
    offsets = np.arange(window)
    cols = np.clip(np.floor(cx * size).astype(np.int64) - window // 2, 0, size - window)[:, None] + offsets
    rows = np.clip(np.floor(cy * size).astype(np.int64) - window // 2, 0, size - window)[:, None] + offsets
    dx = ((cols + 0.5) / size).astype(np.float32)[:, None, :] - cx[:, None, None]
    dy = ((rows + 0.5) / size).astype(np.float32)[:, :, None] - cy[:, None, None]
    cos, sin = np.cos(theta), np.sin(theta)
    a = (cos * dx + sin * dy) / half
    b = (-sin * dx + cos * dy) / half
    patch = np.zeros((n, window, window), dtype=bool)
    for shape, inside in enumerate((_inside_square, _inside_ellipse, _inside_heart)):
        sel = f[:, 0] == shape
        if sel.any():
            patch[sel] = inside(a[sel], b[sel])
    masks = np.zeros((n, size, size), dtype=bool)
    masks[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]] = patch
    return masks


def _inside_square(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(a), np.abs(b)) <= 0.8


def _inside_ellipse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a**2 + (b / 0.5) ** 2 <= 1.0


def _inside_heart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The heart curve (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, point up in image coordinates."""
    x, y = 1.15 * a, -1.15 * b + 0.15
    return (x**2 + y**2 - 1.0) ** 3 - x**2 * y**3 <= 0.0


@register_dataset("dsprites", mode="binary")
@register_dataset("color_dsprites", mode="color")
@register_dataset("noisy_dsprites", mode="noisy")
class DSprites(GroundTruthDataset):
    """Procedural dSprites; see the module docstring for the factor grid and rendering."""

    factor_names = ("shape", "scale", "orientation", "posX", "posY")
    factor_sizes = (3, 6, 40, 32, 32)
    _store: MaskStore | None = None  # set on the view `materialised` returns

    def __init__(self, size: int = 64, mode: str = "binary", test_size: int = 10_000, split_seed: int = 0):
        if size not in (32, 64):
            raise ConfigError(f"must be 32 or 64, got {size!r}", key="size")
        if mode not in MODES:
            raise ConfigError(f"must be one of {', '.join(MODES)}, got {mode!r}", key="mode")
        self.size = size
        self.mode = mode
        self.name = "dsprites" if mode == "binary" else f"{mode}_dsprites"
        channels = 1 if mode == "binary" else 3
        self.image_shape = (channels, size, size)
        self.num_images = int(np.prod(self.factor_sizes))
        self.train_indices, self.test_indices = fixed_split(self.num_images, test_size, split_seed)

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        if len(idx) <= _RENDER_CHUNK:  # a training batch: no copy into a preallocated array
            return self._render(idx)
        out = np.empty((len(idx), *self.image_shape), dtype=np.float32)
        for start in range(0, len(idx), _RENDER_CHUNK):
            chunk = idx[start : start + _RENDER_CHUNK]
            out[start : start + len(chunk)] = self._render(chunk)
        return out

    def render_masks(self, indices: np.ndarray) -> np.ndarray:
        """(n, size, size) boolean sprite masks of the images at `indices`, rendered now."""
        return shape_masks(self.factors(indices), self.size)

    def materialised(self, cache_dir: str | Path, *, images_to_draw: int) -> DSprites:
        """This dataset with its masks gathered from the cache under `cache_dir` (the masks do not
        depend on `mode`, so the three dSprites datasets of one size share it); see
        `vaebench.data.materialise` for when it is built."""
        store = open_mask_store(
            cache_dir, kind="dsprites_masks", params={"size": self.size}, num_images=self.num_images,
            mask_shape=(self.size, self.size), render=self.render_masks, images_to_draw=images_to_draw,
        )
        if store is None:
            return self
        view = copy.copy(self)
        view._store = store
        return view

    def batch(self, indices: np.ndarray, device: torch.device) -> torch.Tensor:
        """Binary images of a materialised dataset are gathered and unpacked on a CUDA device that
        holds the masks; every other case is `ImageDataset.batch`."""
        if self._store is not None and self.mode == "binary" and device.type == "cuda":
            packed = self._store.on_device(device)
            if packed is not None:
                idx = torch.from_numpy(np.asarray(indices, dtype=np.int64)).to(device, non_blocking=True)
                return unpack_rows(packed, idx, self._store.mask_shape)[:, None]
        return super().batch(indices, device)

    def _render(self, idx: np.ndarray) -> np.ndarray:
        masks = self.render_masks(idx) if self._store is None else self._store.masks(idx)
        mask = masks.astype(np.float32)[:, None]
        if self.mode == "binary":
            return mask
        pixels = 3 * self.size * self.size
        if self.mode == "color":
            colour = 0.5 + 0.5 * _uniform_from_counter(idx[:, None] * 3 + np.arange(3))
            return mask * colour[:, :, None, None]
        counters = idx[:, None] * pixels + np.arange(pixels)
        noise = _uniform_from_counter(counters).reshape(len(idx), 3, self.size, self.size)
        return np.where(mask > 0, 1.0, noise).astype(np.float32)
