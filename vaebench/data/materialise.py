"""Datasets materialised once: every image's binary mask rendered once into a bit-packed array on
disk, memory-mapped and shared by every run and worker process; a batch is then an index gather
and an unpack.

Why: procedural dSprites renders each batch from its factors, work a bare PyTorch loop over a
tensor never does; on a GPU that rendering would also run on the host while the device waits.
Gathering the batch from the materialised array is several times faster (benchmarks/bench_data.py;
README, Performance).

What is stored, and where
    An entry of the array cache (`vaebench.data.array_cache`, which also gives the integrity
    checks, the build lock and the memory map): uint8 (N, ceil(H*W/8)), row i = `np.packbits` of
    image i's (H, W) mask, row-major, most significant bit first. The whole grid is stored,
    because the factor scores sample any index of it: 94 MB for dSprites at 32 px, 377 MB at 64 px.
    Its key describes {kind, the parameters that determine the masks, N, the mask shape, and the
    SHA-256 of the masks of `PROBE_IMAGES` images rendered now}: a change of the renderer changes
    the probe, hence the key, so a stale cache is never used.
    Only the masks are stored; what a dataset draws on top of them (dSprites' colour or noise
    background, a deterministic function of the index) is still computed per batch, by the same
    code as on demand, so the images are the same bits either way.

When to build
    Building renders every image once, at about the same cost per image as rendering on demand
    (README, Performance), so a cache pays for itself once its users draw at least N images: `open_mask_store`
    builds only when the caller says it will draw that many (`images_to_draw >= N`), and uses an
    existing, verified cache whatever the number.

On a device
    `MaskStore.on_device` copies the packed array to the device when it takes at most
    `DEVICE_MEMORY_FRACTION` of the device's free memory; batches are then gathered and unpacked
    there (`unpack_rows`), with no host work but the index draw. Otherwise batches are gathered on
    the host and copied from pinned memory (`ImageDataset.batch`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vaebench.data.array_cache import CachedArray, open_array_cache

log = logging.getLogger(__name__)

# Images rendered to fingerprint the renderer in the cache key (their cost: README, Performance).
PROBE_IMAGES = 1024
# Images rendered per block while building: a few tens of MB of intermediate arrays at 64 px.
BUILD_CHUNK = 8192
# The largest share of a device's free memory the packed masks may take (the rest is the model's).
DEVICE_MEMORY_FRACTION = 0.25

RenderFn = Callable[[np.ndarray], np.ndarray]

# Copies of the packed masks on devices, by path and device: once per process.
_ON_DEVICE: dict[tuple[str, str], torch.Tensor | None] = {}


def packed_width(mask_shape: tuple[int, int]) -> int:
    """Bytes per image of the packed masks."""
    return -(-mask_shape[0] * mask_shape[1] // 8)


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """(n, H, W) boolean masks -> (n, ceil(H*W/8)) uint8, most significant bit first."""
    return np.packbits(masks.reshape(len(masks), -1), axis=1)


def unpack_masks(packed: np.ndarray, mask_shape: tuple[int, int]) -> np.ndarray:
    """The inverse of `pack_masks` on the host: (n, ceil(H*W/8)) uint8 -> (n, H, W) bool."""
    h, w = mask_shape
    return np.unpackbits(packed, axis=1, count=h * w).reshape(len(packed), h, w).view(np.bool_)


def unpack_rows(packed: torch.Tensor, indices: torch.Tensor, mask_shape: tuple[int, int]) -> torch.Tensor:
    """Rows `indices` of packed masks, unpacked where `packed` lives: (n, H, W) float32 in {0, 1}.

    The device's twin of `unpack_masks` (same bit order: bit 7 of byte 0 is pixel (0, 0)).
    """
    h, w = mask_shape
    rows = packed.index_select(0, indices)
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=packed.device)
    bits = (rows.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(len(indices), -1)[:, : h * w].reshape(len(indices), h, w).to(torch.float32)


class MaskStore:
    """The bit-packed masks of one dataset, memory-mapped read-only from the array cache.

    Pickles as its cache entry's path and hash; a process that unpickles it maps (and verifies)
    the file again.
    """

    def __init__(self, cached: CachedArray, mask_shape: tuple[int, int]):
        self.cached = cached
        self.mask_shape = mask_shape

    @property
    def packed(self) -> np.ndarray:
        return self.cached.array

    def masks(self, indices: np.ndarray) -> np.ndarray:
        """(n, H, W) boolean masks of the images at `indices`."""
        return unpack_masks(self.packed[np.asarray(indices, dtype=np.int64)], self.mask_shape)

    def on_device(self, device: torch.device) -> torch.Tensor | None:
        """The packed array on `device`, copied once per process; None when it does not fit."""
        key = (str(self.cached.path), str(device))
        if key not in _ON_DEVICE:
            _ON_DEVICE[key] = _to_device(self.packed, device)
        return _ON_DEVICE[key]


def _to_device(packed: np.ndarray, device: torch.device) -> torch.Tensor | None:
    free, _ = torch.cuda.mem_get_info(device)
    if packed.nbytes > DEVICE_MEMORY_FRACTION * free:
        log.info("materialised masks (%d MB) exceed %.0f%% of %s's free memory: batches are copied from the host",
                 packed.nbytes >> 20, 100 * DEVICE_MEMORY_FRACTION, device)
        return None
    out = torch.empty(packed.shape, dtype=torch.uint8, device=device)
    for start in range(0, len(packed), 1 << 16):
        block = np.array(packed[start : start + (1 << 16)])
        out[start : start + len(block)].copy_(torch.from_numpy(block))
    return out


def open_mask_store(
    cache_dir: str | Path,
    *,
    kind: str,
    params: dict,
    num_images: int,
    mask_shape: tuple[int, int],
    render: RenderFn,
    images_to_draw: int,
) -> MaskStore | None:
    """The verified mask store of `kind` with `params` under `cache_dir`/datasets, built first
    when missing if `images_to_draw >= num_images`; None when it is missing and not worth building.

    `render(indices)` gives the (n, H, W) boolean masks of the images at `indices`.
    """
    description = {"params": params, "mask_shape": list(mask_shape), "probe": _probe_hash(render, num_images)}
    cached = open_array_cache(
        cache_dir, kind=kind, description=description, shape=(num_images, packed_width(mask_shape)),
        fill=lambda start, stop: pack_masks(render(np.arange(start, stop))), chunk=BUILD_CHUNK,
        build=images_to_draw >= num_images,
    )
    return None if cached is None else MaskStore(cached, mask_shape)


def _probe_hash(render: RenderFn, num_images: int) -> str:
    probe = np.unique(np.linspace(0, num_images - 1, PROBE_IMAGES).round().astype(np.int64))
    return hashlib.sha256(pack_masks(render(probe)).tobytes()).hexdigest()
