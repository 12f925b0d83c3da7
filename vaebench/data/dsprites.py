"""Procedural dSprites (Matthey et al. 2017): the factor grid of the published archive, and images
equal to its images.

Factors (all 3 * 6 * 40 * 32 * 32 = 737,280 combinations addressable, rendered on demand):

    shape        3   square, ellipse, heart
    scale        6   linspace(0.5, 1, 6)
    orientation 40   linspace(0, 2 pi, 40)   (as in the original file, 0 and 2 pi both appear)
    posX        32   linspace(0, 1, 32)
    posY        32   linspace(0, 1, 32)

The image index is the mixed-radix number of the factor indices (shape most significant),
the order of the original `latents_classes` (whose constant colour column is dropped).

Geometry (recovered from the 320 frames of the official `dsprites.gif`, a lossless latent
traversal of the archive: every shape at every scale and orientation at position (0, 0), and the
heart round the border of the position grid; no generator code was published). In units of the
image side W, with pixel (row i, column j) centred at ((j + 0.5) / W, (i + 0.5) / W):

    centre     (0.25 + 0.5 posX, 0.25 + 0.5 posY): the sprite moves over the middle half of the image
    rotation   by the orientation angle, counter-clockwise as seen in the image (y pointing down)
    scale      every length multiplied by the scale value
    square     half side 0.14997 (the frames bound it to (0.149947, 0.149998): a 20 px side at scale 1)
    ellipse    semi-axes 0.199467 (along the sprite's x) and 0.112692
    heart      a polar outline about the centre: radius at 2-degree steps (`HEART_RADII`), linear in
               the angle between them, mirror-symmetric about the heart's axis; tip down at 0

A pixel is set when its centre lies inside the shape (ties impossible: the frames leave margins of
at least 0.0003 px for the ellipse and 0.0014 px for the heart; float64 throughout). The square and
ellipse constants are the centres of the intervals every frame allows (the ellipse's axes: the
largest-margin solution of the linear program over its 64 frames); the heart has no closed form
that fits (a circle-and-line construction and the classic sin^3 heart curve leave pixel errors), so
its outline is the smoothest one (least total second difference of the radii) that every one of
its 192 frames' pixels satisfies with a margin of 0.0015 px. All 320 frames are reproduced pixel for
pixel (`tests/test_dsprites_frames.py`, against ../shared/data/dsprites). Squares and ellipses at
other positions were not in the frames: their geometry is the same rigid motion the heart frames
pin down at every border position.

At `size` 32 each pixel is the majority of its 2 x 2 block of the 64 px image, a tie (2 of 4) set:
a function of the published images, so the archive reduced by the same rule gives the same 32 px
images. `distinct_images` counts the distinct images of the whole grid.

`mode="color"` paints the sprite in a per-image random colour, `mode="noisy"` puts it on a
per-image uniform-noise background (Locatello et al. 2019); both are deterministic functions of the
image index and of the binary mask.

`materialised(cache_dir, ...)` returns a view of the dataset whose masks are gathered from a
bit-packed cache of the whole grid (`vaebench.data.materialise`) instead of rendered; colour
and noise are still drawn per batch, by the same code, so its images are the same bits. On a
CUDA device the binary images of a view are gathered and unpacked on the device (`batch`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numba
import numpy as np
import torch

from vaebench.data.base import GroundTruthDataset, fixed_split
from vaebench.data.materialise import MaskStore, open_mask_store, unpack_rows
from vaebench.data.registry import register_dataset, split_params
from vaebench.errors import ConfigError
from vaebench.params import Param

FACTOR_SIZES = (3, 6, 40, 32, 32)
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * np.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
MODES = ("binary", "color", "noisy")

# The renderer's identity: part of every dSprites run's spec (`DSprites.version`), so runs and
# caches made with another renderer are never mixed with these.
RENDERER_VERSION = "frames-2017"

# Geometry, in units of the image side (see the module docstring for where each value comes from).
CENTRE_LOW, CENTRE_SPAN = 0.25, 0.5
SQUARE_HALF_SIDE = 0.14997
ELLIPSE_SEMI_AXES = (0.199467, 0.112692)
# The heart's radius at angles -90, -88, ..., 90 degrees from the sprite's x axis, turning towards its
# tip (the right half, notch to tip); the left half mirrors it: r(180 - a) = r(a).
HEART_ANGLES = np.radians(np.arange(-90.0, 90.5, 2.0))
HEART_RADII = np.array([
    0.080550, 0.089703, 0.098855, 0.108008, 0.115920, 0.123139, 0.130358, 0.136033, 0.141706, 0.146286,
    0.150866, 0.155445, 0.159111, 0.161936, 0.164761, 0.167259, 0.169387, 0.171116, 0.172844, 0.173752,
    0.174661, 0.175273, 0.175483, 0.175692, 0.175902, 0.175208, 0.174514, 0.173822, 0.172609, 0.171398,
    0.170011, 0.168233, 0.166398, 0.164564, 0.161769, 0.158975, 0.156172, 0.153280, 0.149966, 0.146942,
    0.143595, 0.140248, 0.136902, 0.133555, 0.130208, 0.127092, 0.123978, 0.120930, 0.117881, 0.115094,
    0.112850, 0.110608, 0.108366, 0.106422, 0.104477, 0.102531, 0.101222, 0.099911, 0.098600, 0.097289,
    0.096405, 0.095519, 0.094647, 0.093777, 0.092906, 0.092675, 0.092442, 0.092211, 0.091978, 0.092169,
    0.092358, 0.092547, 0.092738, 0.093264, 0.094144, 0.095023, 0.095903, 0.096784, 0.098411, 0.100039,
    0.101667, 0.103600, 0.105533, 0.108467, 0.111402, 0.115023, 0.118797, 0.123647, 0.128495, 0.138784,
    0.150116,
])
# Every shape lies within this distance of its centre at scale 1 (the square's corner).
_MAX_RADIUS = SQUARE_HALF_SIDE * np.sqrt(2)
_NATIVE_SIZE = 64  # the archive's images; 32 px images are reduced from these
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


def shape_masks(factors: np.ndarray, size: int = 64) -> np.ndarray:
    """(n, size, size) boolean masks of the sprites described by (n, 5) factor indices.

    64 px: a pixel is set when its centre lies inside the sprite (geometry in the module
    docstring); only the pixels within the largest sprite's reach of the centre are tested.
    32 px: a pixel is set when at least 2 of the 4 pixels of its 2 x 2 block at 64 px are.
    """
    if size not in (32, 64):
        raise ValueError(f"dSprites renders at 64 px or reduces to 32, not {size}")
    f = np.asarray(factors, dtype=np.int64).reshape(-1, 5)
    theta = ORIENTATIONS[f[:, 2]]
    masks = np.zeros((len(f), size, size), dtype=np.bool_)
    _rasterise(
        f[:, 0], (CENTRE_LOW + CENTRE_SPAN * POSITIONS[f[:, 3]]) * _NATIVE_SIZE,
        (CENTRE_LOW + CENTRE_SPAN * POSITIONS[f[:, 4]]) * _NATIVE_SIZE, np.cos(theta), np.sin(theta),
        SCALES[f[:, 1]] * _NATIVE_SIZE, _NATIVE_SIZE // size, masks,
    )
    return masks


@numba.njit(cache=True)
def _rasterise(shape, cx, cy, cos, sin, extent, block, masks):  # pragma: no cover - compiled
    """Set masks[k, i, j] when at least half (rounded up) of the centres of the block x block 64 px
    pixels that make up pixel (i, j) lie inside sprite k. Sprite k: the shape index, its centre
    (cx, cy) and unit length (`extent`) in 64 px pixels, the rotation's cos and sin."""
    size = masks.shape[1]
    native = size * block
    needed = (block * block + 1) // 2
    first_angle, step = HEART_ANGLES[0], HEART_ANGLES[1] - HEART_ANGLES[0]
    for k in range(len(shape)):
        reach = _MAX_RADIUS * extent[k] + 1.0
        lo_col = max(0, int(np.floor(cx[k] - reach))) // block
        hi_col = min(native, int(np.ceil(cx[k] + reach)) + 1) // block + 1
        lo_row = max(0, int(np.floor(cy[k] - reach))) // block
        hi_row = min(native, int(np.ceil(cy[k] + reach)) + 1) // block + 1
        for i in range(lo_row, min(hi_row, size)):
            for j in range(lo_col, min(hi_col, size)):
                count = 0
                for sub in range(block * block):
                    dy = i * block + sub // block + 0.5 - cy[k]
                    dx = j * block + sub % block + 0.5 - cx[k]
                    # the pixel centre in the sprite's own frame, in image sides at scale 1
                    a = (cos[k] * dx - sin[k] * dy) / extent[k]
                    b = (sin[k] * dx + cos[k] * dy) / extent[k]
                    if shape[k] == 0:
                        inside = max(abs(a), abs(b)) <= SQUARE_HALF_SIDE
                    elif shape[k] == 1:
                        inside = (a / ELLIPSE_SEMI_AXES[0]) ** 2 + (b / ELLIPSE_SEMI_AXES[1]) ** 2 <= 1.0
                    else:  # the heart: b points to its tip; the left half mirrors the right
                        angle = np.arctan2(b, a)
                        if angle > np.pi / 2:
                            angle = np.pi - angle
                        elif angle < -np.pi / 2:
                            angle = -np.pi - angle
                        position = min((angle - first_angle) / step, len(HEART_RADII) - 1.0)
                        knot = min(int(position), len(HEART_RADII) - 2)
                        weight = position - knot
                        radius = (1.0 - weight) * HEART_RADII[knot] + weight * HEART_RADII[knot + 1]
                        inside = np.hypot(a, b) <= radius
                    count += inside
                masks[k, i, j] = count >= needed


def distinct_images(size: int = 64, chunk: int = 8192) -> int:
    """The number of distinct images in the whole grid at `size`.

    Each image's packed mask is hashed to 128 bits (two independent multiply-add hashes of its
    64-bit words); two distinct images share a hash with probability about N^2 / 2^129, and such a
    collision could only lower the count.
    """
    factors = np.stack(np.unravel_index(np.arange(int(np.prod(FACTOR_SIZES))), FACTOR_SIZES), axis=1)
    words = -(-size * size // 64)
    multipliers = np.random.default_rng(0).integers(1, 2**63, size=(2, words), dtype=np.uint64) | np.uint64(1)
    hashes = []
    for start in range(0, len(factors), chunk):
        masks = shape_masks(factors[start : start + chunk], size).reshape(-1, size * size)
        packed = np.packbits(masks, axis=1)
        packed = np.pad(packed, ((0, 0), (0, words * 8 - packed.shape[1]))).view(">u8").astype(np.uint64)
        with np.errstate(over="ignore"):
            hashes.append(np.stack([(packed * m).sum(axis=1, dtype=np.uint64) for m in multipliers], axis=1))
    return len(np.unique(np.concatenate(hashes), axis=0))


DSPRITES_PARAMS = (Param("size", 64, doc="32 or 64 px"), *split_params(test_size=10_000))


@register_dataset("dsprites", params=DSPRITES_PARAMS, mode="binary")
@register_dataset("color_dsprites", params=DSPRITES_PARAMS, mode="color")
@register_dataset("noisy_dsprites", params=DSPRITES_PARAMS, mode="noisy")
class DSprites(GroundTruthDataset):
    """Procedural dSprites; see the module docstring for the factor grid and rendering."""

    factor_names = ("shape", "scale", "orientation", "posX", "posY")
    factor_sizes = FACTOR_SIZES
    version = RENDERER_VERSION
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
