"""Datasets materialised once: every image's binary mask rendered once into a bit-packed array on
disk, memory-mapped and shared by every run and worker process; a batch is then an index gather
and an unpack.

Why: procedural dSprites renders each batch from its factors (measured on this project's 2-core
machine: 0.41 to 0.6 ms for 64 images at 32 px, 1.1 to 1.5 ms at 64 px), work a bare PyTorch loop
over a tensor never does; on a GPU that rendering would also run on the host while the device
waits. Gathering 64 images from the materialised array takes about 20 us at 32 px (see
benchmarks/bench_data.py for the figures).

What is stored, and where
    `<cache_dir>/datasets/<kind>-<key>.npy`: uint8 (N, ceil(H*W/8)), row i = `np.packbits` of image
    i's (H, W) mask, row-major, most significant bit first. The whole grid is stored, because the
    factor scores sample any index of it: 94 MB for dSprites at 32 px, 377 MB at 64 px.
    `<kind>-<key>.json`: the key's description and the SHA-256 of the .npy file.
    `<kind>-<key>.lock`: the lock builders take.
    `key` = `content_hash` of {format, kind, the parameters that determine the masks, N, the mask
    shape, and the SHA-256 of the masks of `PROBE_IMAGES` images rendered now}: a change of the
    renderer changes the probe, hence the key, so a stale cache is never used.
    Only the masks are stored; what a dataset draws on top of them (dSprites' colour or noise
    background, a deterministic function of the index) is still computed per batch, by the same
    code as on demand, so the images are the same bits either way.

Integrity and concurrency
    The array and its sidecar are each written to a temporary file and renamed (`atomic_write`),
    the array first. Opening checks the file's SHA-256 against the sidecar (once per process and
    file): a missing, truncated or altered file is logged and rebuilt. Builders hold an exclusive
    `fcntl` lock on the .lock file and look again once they have it, so two processes asking at
    once build it once; readers need no lock, because a file under its final name is complete.

When to build
    Building renders every image once, at the same cost per image as rendering on demand
    (measured: 8.5 us per image when building, 8.8 us per image in batches of 64, dSprites at
    32 px), so a cache pays for itself once its users draw at least N images: `open_mask_store`
    builds only when the caller says it will draw that many (`images_to_draw >= N`), and uses an
    existing, verified cache whatever the number.

On a device
    `MaskStore.on_device` copies the packed array to the device when it takes at most
    `DEVICE_MEMORY_FRACTION` of the device's free memory; batches are then gathered and unpacked
    there (`unpack_rows`), with no host work but the index draw. Otherwise batches are gathered on
    the host and copied from pinned memory (`ImageDataset.batch`).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from vaebench.errors import DataError
from vaebench.files import atomic_write, content_hash, file_sha256

log = logging.getLogger(__name__)

FORMAT = 1
# Images rendered to fingerprint the renderer in the cache key (about 10 ms at 32 px, 25 ms at 64 px).
PROBE_IMAGES = 1024
# Images rendered per block while building: a few tens of MB of intermediate arrays at 64 px.
BUILD_CHUNK = 8192
# The largest share of a device's free memory the packed masks may take (the rest is the model's).
DEVICE_MEMORY_FRACTION = 0.25

RenderFn = Callable[[np.ndarray], np.ndarray]

# Verified memory maps, and their copies on devices, by path: once per process and file.
_MAPPED: dict[str, np.ndarray] = {}
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
    """The bit-packed masks of one dataset, memory-mapped read-only from the cache.

    Pickles as its path and hash; a process that unpickles it maps (and verifies) the file again.
    """

    def __init__(self, path: Path, sha256: str, mask_shape: tuple[int, int]):
        self.path = path
        self.sha256 = sha256
        self.mask_shape = mask_shape

    @property
    def packed(self) -> np.ndarray:
        mapped = _MAPPED.get(str(self.path))
        if mapped is None:
            if not _verified(self.path, self.sha256):
                raise DataError(f"{self.path}: changed since it was verified: expected SHA-256 {self.sha256}")
            mapped = _MAPPED[str(self.path)]
        return mapped

    def masks(self, indices: np.ndarray) -> np.ndarray:
        """(n, H, W) boolean masks of the images at `indices`."""
        return unpack_masks(self.packed[np.asarray(indices, dtype=np.int64)], self.mask_shape)

    def on_device(self, device: torch.device) -> torch.Tensor | None:
        """The packed array on `device`, copied once per process; None when it does not fit."""
        key = (str(self.path), str(device))
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
    description = {
        "format": FORMAT, "kind": kind, "params": params, "num_images": num_images,
        "mask_shape": list(mask_shape), "probe": _probe_hash(render, num_images),
    }
    stem = Path(cache_dir) / "datasets" / f"{kind}-{content_hash(description)}"
    path, sidecar = stem.with_suffix(".npy"), stem.with_suffix(".json")
    sha, seen = _recorded_sha(sidecar), _identity(path, sidecar)
    if sha is not None and (str(path) in _MAPPED or _verified(path, sha)):
        return MaskStore(path, sha, mask_shape)
    if images_to_draw < num_images:
        return None
    with _exclusive(stem.with_suffix(".lock")):
        if _identity(path, sidecar) != seen:  # another process wrote it while this one waited
            sha = _recorded_sha(sidecar)
            if sha is not None and _verified(path, sha):
                return MaskStore(path, sha, mask_shape)
        sha = _build(path, sidecar, description, num_images, mask_shape, render)
        _map(path)
    return MaskStore(path, sha, mask_shape)


def _identity(*paths: Path) -> tuple:
    """What changes when a file is replaced or rewritten: (inode, size, mtime) of each, None if absent."""
    out = []
    for path in paths:
        try:
            st = path.stat()
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def _probe_hash(render: RenderFn, num_images: int) -> str:
    probe = np.unique(np.linspace(0, num_images - 1, PROBE_IMAGES).round().astype(np.int64))
    return hashlib.sha256(pack_masks(render(probe)).tobytes()).hexdigest()


def _recorded_sha(sidecar: Path) -> str | None:
    try:
        return json.loads(sidecar.read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _verified(path: Path, sha: str) -> bool:
    """Whether `path` hashes to `sha`; if so its memory map is registered for this process."""
    if not path.is_file():
        return False
    actual = file_sha256(path)
    if actual != sha:
        log.warning("%s: SHA-256 %s, but its sidecar records %s: not used (rebuilt when worth building)", path, actual, sha)
        return False
    _map(path)
    return True


def _map(path: Path) -> None:
    # a plain ndarray over the map: indexing an np.memmap costs a few microseconds more per batch
    _MAPPED[str(path)] = np.asarray(np.load(path, mmap_mode="r"))


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(path: Path, sidecar: Path, description: dict, num_images: int, mask_shape: tuple[int, int],
           render: RenderFn) -> str:
    """Render, pack and write every mask (then the sidecar); returns the file's SHA-256."""
    header = io.BytesIO()
    shape = (num_images, packed_width(mask_shape))
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    digest = hashlib.sha256(header.getvalue())
    with atomic_write(path) as f:
        f.write(header.getvalue())
        for start in range(0, num_images, BUILD_CHUNK):
            block = pack_masks(render(np.arange(start, min(num_images, start + BUILD_CHUNK)))).tobytes()
            digest.update(block)
            f.write(block)
    sha = digest.hexdigest()
    with atomic_write(sidecar, "w") as f:
        json.dump({**description, "shape": list(shape), "sha256": sha}, f, indent=1)
    log.info("materialised %s: %d images, %d MB", path, num_images, path.stat().st_size >> 20)
    return sha
