"""Images, and optionally their ground-truth factors, from one NumPy .npz archive of the user's.

Keys (other keys are ignored)
    images         (N, H, W) or (N, H, W, C) with C 1 or 3: uint8, bool, or float16/32/64 in [0, 1]
    factors        optional, (N, K) integers: row i holds the factor values of image i
    factor_names   optional (only with factors), K distinct non-empty strings; default factor_0 ...

Pixels: float images are used as they are and must lie in [0, 1] (checked when the images are
first read); uint8 images are byte / 255, except that an array whose largest value is 1 or less
is taken as 0/1 images and kept as it is (the rule of `dsprites_file`, for binary images saved
as bytes); bool images are 0/1. Images are float32 (N, C, H, W).

With factors, the dataset is a `GroundTruthDataset`, so every disentanglement metric runs on it:
    - factor index = the rank of the value among the distinct values of its column (values
      0, 2, 7 become indices 0, 1, 2; `factor_values` keeps the values), and `factor_sizes` is the
      number of distinct values of each factor; every factor must take at least two values;
    - `factors(indices)` are the factor indices of those rows (image index = file row);
    - `sample_factors(n, rng)` draws n rows uniformly (with replacement) and returns their factor
      vectors: on a complete grid with one image per combination this is the uniform
      distribution over the grid that disentanglement_lib samples;
    - `images_from_factors(f)` returns, for each requested vector, the image of the lowest-numbered
      row that has it (rows sharing a vector are otherwise interchangeable); a vector that no row
      has is a DataError naming it. The rows need not form a complete grid, but the intervention
      scores (beta_vae, factor_vae) build vectors by mixing those of different rows and need
      every combination to exist: `complete_grid` says whether it does.

Checks when the dataset is built (at suite load, exit 2 with the file and the problem): the
archive opens, `images` exists with a supported shape and dtype and, like every array read, is
stored at the length its header declares (`vaebench.data.files.npz_array_header`); `factors`
has one integer row per image; `factor_names` matches. `factors` and `factor_names` are read at
construction; the images, like `dsprites_file`'s, on their first use (an .npz cannot be
memory-mapped), kept as stored, and dropped when the dataset is pickled.

Split: a seeded permutation holds out `test_size` rows (default 1,000: a user's file has no
standard split, and the test split is encoded whole at evaluation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vaebench.data.base import GroundTruthDataset, ImageDataset, fixed_split
from vaebench.data.files import PathLike, fingerprint, npz_array_header, open_npz, read_npz, required_path
from vaebench.data.registry import path_param, register_dataset, split_params
from vaebench.errors import DataError

_EXPECTED = "an .npz archive with the key images (N, H, W[, C]) and optionally factors (N, K) and factor_names (K,)"
_IMAGE_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.bool_, np.float16, np.float32, np.float64))


class NpzImages(ImageDataset):
    """The images of an .npz archive; see the module docstring."""

    name = "npz"

    def __init__(self, file: Path, shape: tuple[int, ...], test_size: int, split_seed: int):
        self.path = file
        self.fingerprint = fingerprint([file])
        self.num_images = shape[0]
        self.image_shape = (shape[3] if len(shape) == 4 else 1, shape[1], shape[2])
        self.train_indices, self.test_indices = fixed_split(self.num_images, test_size, split_seed)
        self._pixels: np.ndarray | None = None
        self._divisor = np.float32(1)

    def _read_pixels(self) -> np.ndarray:
        """(N, H, W, C) as stored (floats as float32), read and checked on first use."""
        if self._pixels is None:
            with open_npz(self.path, _EXPECTED) as archive:
                pixels = read_npz(archive, self.path, "images")
            pixels = pixels.reshape(self.num_images, *self.image_shape[1:], self.image_shape[0])
            if pixels.dtype.kind == "f":
                pixels = pixels.astype(np.float32, copy=False)
                low, high = float(pixels.min()), float(pixels.max())
                if not (0.0 <= low and high <= 1.0):  # also False for NaN
                    raise DataError(f"{self.path}: key 'images': float values from {low} to {high}; "
                                    "float images must lie in [0, 1]")
            elif pixels.dtype == np.uint8 and pixels.max() > 1:
                self._divisor = np.float32(255)
            self._pixels = pixels
        return self._pixels

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        pixels = self._read_pixels()[np.asarray(indices, dtype=np.int64)]
        return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32) / self._divisor

    def source_files(self) -> list[Path]:
        return [self.path]

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path), "fingerprint": self.fingerprint}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pixels": None}  # a pickled copy reads the archive again when used


class NpzGroundTruth(NpzImages, GroundTruthDataset):
    """An .npz archive's images with their factors; see the module docstring."""

    has_factors = True

    def __init__(self, file: Path, shape: tuple[int, ...], factors: np.ndarray, names: tuple[str, ...],
                 test_size: int, split_seed: int):
        super().__init__(file, shape, test_size, split_seed)
        self.factor_names = names
        values, ranks = zip(*(np.unique(column, return_inverse=True) for column in factors.T))
        self.factor_values = tuple(values)
        self.factor_sizes = tuple(len(v) for v in values)
        for name, v in zip(names, values):
            if len(v) < 2:
                raise DataError(f"{file}: key 'factors': factor {name!r} takes the single value {v[0]}; "
                                "a factor needs at least two values (drop the column)")
        combinations = math.prod(self.factor_sizes)
        if combinations >= 2**63:
            raise DataError(f"{file}: key 'factors': {combinations} factor combinations, too many to index")
        self._ranks = np.stack([r.reshape(-1) for r in ranks], axis=1).astype(np.int64)
        codes = self._ranks @ self._radix
        order = np.argsort(codes, kind="stable")
        first = np.r_[True, np.diff(codes[order]) != 0]
        self._codes, self._rows = codes[order][first], order[first]  # each vector once, with its lowest row
        self.complete_grid = len(self._codes) == combinations

    def factors(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._ranks[np.asarray(indices, dtype=np.int64)]

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, K) factor vectors of n rows drawn uniformly."""
        return self._ranks[rng.integers(0, self.num_images, size=n)]

    def index_of(self, factors: np.ndarray) -> np.ndarray:
        """The lowest-numbered row holding each (n, K) factor vector; a DataError names a vector no row holds."""
        f = np.asarray(factors, dtype=np.int64).reshape(-1, len(self.factor_sizes))
        sizes = np.asarray(self.factor_sizes)
        inside = ((f >= 0) & (f < sizes)).all(axis=1)
        codes = np.where(inside, f.clip(0, sizes - 1) @ self._radix, -1)
        pos = np.minimum(np.searchsorted(self._codes, codes), len(self._codes) - 1)
        found = inside & (self._codes[pos] == codes)
        if not found.all():
            vector = f[np.flatnonzero(~found)[0]]
            described = ", ".join(
                f"{n}={self.factor_values[j][k].item()}" if 0 <= k < sizes[j] else f"{n}=index {k}"
                for j, (n, k) in enumerate(zip(self.factor_names, vector))
            )
            raise DataError(
                f"{self.path}: no image has the factor values ({described}); the file holds {len(self._codes)} of "
                f"the {math.prod(self.factor_sizes)} combinations, and factor interventions (beta_vae, factor_vae) "
                "need every combination"
            )
        return self._rows[pos]

    def describe(self) -> dict:
        return {**super().describe(), "factor_names": list(self.factor_names), "factor_sizes": list(self.factor_sizes)}


def _read_factors(archive: np.lib.npyio.NpzFile, file: Path, num_images: int) -> tuple[np.ndarray, tuple[str, ...]]:
    npz_array_header(file, "factors")
    factors = read_npz(archive, file, "factors")
    if factors.ndim != 2 or factors.shape[1] < 1 or factors.dtype.kind not in "biu":
        raise DataError(f"{file}: key 'factors': {factors.dtype} array of shape {factors.shape}; expected integers "
                        "(N, K), one row of factor values per image (discretise continuous factors into bins)")
    if len(factors) != num_images:
        raise DataError(f"{file}: key 'images' holds {num_images} images but 'factors' {len(factors)} rows")
    k = factors.shape[1]
    if "factor_names" not in archive.files:
        return factors, tuple(f"factor_{j}" for j in range(k))
    npz_array_header(file, "factor_names")
    stored = read_npz(archive, file, "factor_names")
    if stored.dtype.kind not in "SU" or stored.shape != (k,):
        raise DataError(f"{file}: key 'factor_names': {stored.dtype} array of shape {stored.shape}; "
                        f"expected {k} strings, one per column of 'factors'")
    names = tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in stored.tolist())
    if any(not n for n in names) or len(set(names)) != k:
        raise DataError(f"{file}: key 'factor_names': {list(names)}; expected {k} distinct, non-empty names")
    return factors, names


@register_dataset("npz", params=[path_param("the .npz file"), *split_params(test_size=1000)])
def npz_dataset(path: PathLike | None = None, test_size: int = 1000, split_seed: int = 0) -> NpzImages:
    """The archive at `path`: an `NpzGroundTruth` when it holds factors, else `NpzImages`."""
    file = required_path(path, "npz", _EXPECTED)
    if not file.is_file():
        kind = "a directory, not a file" if file.is_dir() else "no such file"
        raise DataError(f"{file}: {kind}; dataset 'npz' expected {_EXPECTED}")
    with open_npz(file, _EXPECTED) as archive:
        if "images" not in archive.files:
            held = ", ".join(archive.files) or "nothing"
            raise DataError(f"{file}: key 'images' missing (the archive holds: {held}); expected {_EXPECTED}")
        shape, dtype = npz_array_header(file, "images")
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3)) or dtype not in _IMAGE_DTYPES:
            raise DataError(f"{file}: key 'images': {dtype} array of shape {shape}; expected (N, H, W) or "
                            "(N, H, W, C) with C 1 or 3, of uint8, bool or float")
        if min(shape[:3]) < 1:
            raise DataError(f"{file}: key 'images': shape {shape} holds no pixels")
        if "factors" not in archive.files:
            if "factor_names" in archive.files:
                raise DataError(f"{file}: key 'factor_names' without the key 'factors'")
            return NpzImages(file, shape, test_size, split_seed)
        factors, names = _read_factors(archive, file, shape[0])
    return NpzGroundTruth(file, shape, factors, names, test_size, split_seed)
