"""MNIST and Fashion-MNIST from their IDX files in a local directory (nothing is downloaded).

The directory holds the four standard files, each plain or gzipped (detected from the
content, not the name); the dotted spelling some mirrors use (`train-images.idx3-ubyte`)
is accepted too:

    train-images-idx3-ubyte   train-labels-idx1-ubyte   (the 60,000 training images)
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte    (the 10,000 test images)

Images are float32 in [0, 1] (byte / 255), shape (N, 1, H, W) with H x W as in the file
(28 x 28 for both datasets). The split is the standard one: indices 0..N-1 run over the
training file then the test file, so `train_indices` are the training file's images and
`test_indices` the test file's. `labels(indices)` are the (n, 1) integer classes.

`binarize` (default "none") makes the images binary, each pixel a Bernoulli draw with its
intensity (`vaebench.data.binarize`):

    "static"    one draw of every image, fixed by `binarize_seed` (a seeded static binarisation);
    "dynamic"   a fresh draw of every pixel for every training batch, from the run's generator,
                as Burda et al. 2016 train on MNIST; `images()` (evaluation, test images, FID
                statistics) give the fixed draw of "static" with the same `binarize_seed`, as
                Burda et al.'s code binarises the test set once with a fixed seed.

The IDX format (LeCun et al.): a big-endian header of two zero bytes, a type code (0x08
ubyte, 0x09 byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of
dimensions, then one uint32 per dimension; the data follows, big-endian, row-major.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vaebench.data.base import ImageDataset, to_device
from vaebench.data.binarize import BINARIZE_MODES, bernoulli_bytes
from vaebench.data.files import MAX_READ_BYTES, PathLike, fingerprint, open_maybe_gzipped, read_at_most, required_path
from vaebench.data.registry import path_param, register_dataset
from vaebench.errors import ConfigError, DataError
from vaebench.params import Param

IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_LIST = ", ".join(f"0x{code:02X} {dt.name}" for code, dt in IDX_TYPES.items())

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
STANDARD_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


# An IDX file's data is held in memory: a header declaring more is refused before anything is read or
# inflated (MNIST's training images are 47 MB; a 6 MB gzip bomb inflates to gigabytes).
MAX_IDX_BYTES = MAX_READ_BYTES


def read_idx(path: PathLike) -> np.ndarray:
    """The array stored in an IDX file (plain or gzipped), in native byte order. The header is read first:
    data it declares beyond MAX_IDX_BYTES is refused before anything is inflated, and no more than the
    declared bytes (plus one, to see trailing data) are ever read."""
    path = Path(path)
    with open_maybe_gzipped(path, "an IDX file") as stream:
        head = read_at_most(stream, 4, path)
        if len(head) < 4 or head[:2] != b"\0\0":
            magic = head.hex() or "empty"
            raise DataError(
                f"{path}: not an IDX file: magic number 0x{magic}; an IDX file starts with two zero bytes, "
                f"a type code ({_TYPE_LIST}) and the number of dimensions"
            )
        code, ndim = head[2], head[3]
        if code not in IDX_TYPES:
            raise DataError(f"{path}: IDX type code 0x{code:02X} is not one of {_TYPE_LIST}")
        if ndim == 0:
            raise DataError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
        raw_dims = read_at_most(stream, 4 * ndim, path)
        if len(raw_dims) < 4 * ndim:
            raise DataError(f"{path}: truncated IDX header: {ndim} dimensions need {4 + 4 * ndim} bytes, "
                            f"the file has {4 + len(raw_dims)}")
        dims = struct.unpack(f">{ndim}I", raw_dims)
        dtype = IDX_TYPES[code]
        count = math.prod(dims)  # exact: a product of four uint32 dimensions overflows int64
        expected = count * dtype.itemsize
        if expected > MAX_IDX_BYTES:
            raise DataError(f"{path}: IDX header declares {dtype.name} data of shape {dims} ({expected:,d} bytes), "
                            f"more than the limit of {MAX_IDX_BYTES:,d} bytes for an IDX file "
                            "(MNIST's largest is 47 MB); refused before reading it")
        body = read_at_most(stream, expected + 1, path)
    if len(body) != expected:
        actual = "more" if len(body) > expected else str(len(body))
        raise DataError(
            f"{path}: IDX header declares {dtype.name} data of shape {dims} ({expected} bytes), "
            f"but {actual} bytes follow the header ({'truncated' if len(body) < expected else 'trailing data'})"
        )
    array = np.frombuffer(body, dtype=dtype, count=count).reshape(dims)
    return array.astype(dtype.newbyteorder("=")) if dtype.itemsize > 1 else array


def find_idx_file(directory: Path, stem: str, dataset: str) -> Path:
    """`stem` (or its dotted spelling), plain or .gz, inside `directory`."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise DataError(
        f"{directory / stem}: no such file (nor {stem}.gz); dataset {dataset!r} expected a directory holding "
        f"the four IDX files {', '.join(STANDARD_FILES)} (each plain or .gz)"
    )


IDX_PARAMS = (
    path_param("a directory holding the four IDX files"),
    Param("binarize", "none", doc="none, or how to binarise: " + ", ".join(BINARIZE_MODES[1:])),
    Param("binarize_seed", 0, doc="seed of a random binarisation"),
)


@register_dataset("mnist", params=IDX_PARAMS)
class MNIST(ImageDataset):
    """MNIST from its IDX files; see the module docstring."""

    name = "mnist"

    def __init__(self, path: PathLike | None = None, binarize: str = "none", binarize_seed: int = 0):
        if binarize not in BINARIZE_MODES:
            raise ConfigError(f"must be one of {', '.join(repr(m) for m in BINARIZE_MODES)}, got {binarize!r}",
                              key="binarize")
        if isinstance(binarize_seed, bool) or not isinstance(binarize_seed, int) or not 0 <= binarize_seed < 2**63:
            raise ConfigError(f"must be an integer >= 0, got {binarize_seed!r}", key="binarize_seed")
        what = f"a directory holding {', '.join(STANDARD_FILES)} (each plain or .gz)"
        directory = required_path(path, self.name, what)
        if not directory.is_dir():
            kind = "a file, not a directory" if directory.exists() else "no such directory"
            raise DataError(f"{directory}: {kind}; dataset {self.name!r} expected {what}")
        self.path = directory
        files = [find_idx_file(directory, stem, self.name) for stem in STANDARD_FILES]
        self.fingerprint = fingerprint(files)
        self._files = files
        train_x, train_y = self._read_pair(*files[:2])
        test_x, test_y = self._read_pair(*files[2:])
        if train_x.shape[1:] != test_x.shape[1:]:
            raise DataError(
                f"{directory}: the training images are {train_x.shape[1]}x{train_x.shape[2]} and the test images "
                f"{test_x.shape[1]}x{test_x.shape[2]}; expected one image size"
            )
        self._pixels = np.concatenate([train_x, test_x])
        self._labels = np.concatenate([train_y, test_y]).astype(np.int64)
        self.image_shape = (1, *train_x.shape[1:])
        self.num_images = len(self._pixels)
        self.train_indices = np.arange(len(train_x))
        self.test_indices = np.arange(len(train_x), self.num_images)
        self.binarize, self.binarize_seed = binarize, binarize_seed
        self._binary = (None if binarize == "none"
                        else bernoulli_bytes(self._pixels, np.random.default_rng(binarize_seed)))

    def _read_pair(self, images_file: Path, labels_file: Path) -> tuple[np.ndarray, np.ndarray]:
        images, labels = read_idx(images_file), read_idx(labels_file)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{images_file}: holds {images.dtype} data of shape {images.shape}; "
                            "expected ubyte images (N, H, W)")
        if min(images.shape) < 1:
            raise DataError(f"{images_file}: holds an empty array of shape {images.shape}; "
                            "expected ubyte images (N, H, W), each of N, H, W >= 1")
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DataError(f"{labels_file}: holds {labels.dtype} data of shape {labels.shape}; "
                            "expected integer labels (N,)")
        if len(images) != len(labels):
            raise DataError(f"{images_file}: holds {len(images)} images "
                            f"but {labels_file.name} holds {len(labels)} labels")
        if labels.min() < 0:
            raise DataError(f"{labels_file}: holds the negative label {labels.min()}; expected classes 0, 1, ...")
        return images, labels

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        if self._binary is not None:
            return self._binary[idx].astype(np.float32)[:, None]
        return (self._pixels[idx].astype(np.float32) / np.float32(255))[:, None]

    def training_batch(self, indices: np.ndarray, device: torch.device, rng: np.random.Generator) -> torch.Tensor:
        """With binarize = "dynamic", a fresh binarisation of the images at `indices` drawn from `rng`."""
        if self.binarize != "dynamic":
            return super().training_batch(indices, device, rng)
        pixels = self._pixels[np.asarray(indices, dtype=np.int64)]
        return to_device(bernoulli_bytes(pixels, rng).astype(np.float32)[:, None], device)

    def labels(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._labels[np.asarray(indices, dtype=np.int64)][:, None]

    def source_files(self) -> list[Path]:
        return list(self._files)

    def describe(self) -> dict:
        out = {**super().describe(), "path": str(self.path), "fingerprint": self.fingerprint}
        if self.binarize != "none":
            out.update(binarize=self.binarize, binarize_seed=self.binarize_seed)
        return out


@register_dataset("fashion_mnist", params=IDX_PARAMS)
class FashionMNIST(MNIST):
    """Fashion-MNIST (Xiao et al. 2017): the same four IDX files, clothing classes 0-9."""

    name = "fashion_mnist"
