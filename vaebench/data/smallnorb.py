"""SmallNORB (LeCun et al. 2004) from the published NORB binary matrix files, as Locatello et al. 2019 use it.

Files (in the directory `path`; each plain or gzipped, as published at
https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/; a name ending in .mat.gz is read through gzip)::

    smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat[.gz]    instances 4, 6, 7, 8, 9
    smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat,info}.mat[.gz]     instances 0, 1, 2, 3, 5

Where both the plain and the gzipped file are present, the gzipped one (the published download,
whose SHA-256 is checked) is read. `dat`: a byte matrix (N, 2, 96, 96), a stereo pair per row;
`cat`: an integer vector (N,), the category; `info`: an integer matrix (N, 4): instance,
elevation, azimuth (0, 2, ..., 34) and lighting. Each file starts with the NORB header: int32
magic (the element type), int32 ndim, then max(3, ndim) int32 dimensions, little-endian.

As disentanglement_lib (``data/ground_truth/norb.py``) builds it: the two files are joined
(training rows, then testing rows: 48,600 images), only the first image of each stereo pair is
used, and it is resized to 64 x 64 with PIL's ANTIALIAS filter (LANCZOS). disentanglement_lib
reads the byte matrix as int8, so PIL receives a 32-bit integer image ("I" mode, pixel values
0-255) and resizes it in 32 bits, without the 8-bit clipping and rounding of each pass; this
module resizes the same 32-bit image, then clips to [0, 255] (LANCZOS overshoots at sharp edges
by up to a few grey levels: disentanglement_lib keeps values slightly below 0 and above 1,
vaebench's images lie in [0, 1]). Pixels are byte / 255, shape (N, 1, 64, 64).

Factors (Locatello et al.'s four, in disentanglement_lib's order; index = rank of the file's value)::

    category    5    animal, human, airplane, truck, car
    elevation   9    30 to 70 degrees in steps of 5
    azimuth    18    0 to 340 degrees in steps of 20 (the file's 0, 2, ..., 34)
    lighting    6

The instance (10 per category) is not a factor: ``sample_factors`` draws the four factors
uniformly, and ``images_from_factors`` draws an instance uniformly for each row, as
disentanglement_lib's ``SplitDiscreteStateSpace`` does. The draw comes from a generator seeded
with the SHA-256 of the requested factor array, so the same request gives the same images (the
fresh-sample protocol's factors are themselves drawn with the evaluation seed). The image index
is the mixed-radix number of (category, instance, elevation, azimuth, lighting), first most
significant; ``factors(indices)`` drops the instance, ``instances(indices)`` gives it.

Checks when the dataset is built (at suite load; one line naming the file): the six files exist,
each header has a known type and the expected shape, the stored length (for a .gz, the length
its trailer records) is what the header declares, the rows of each pair of files agree, and the
labels form a complete grid. The published files' SHA-256 are checked (a file that differs gets
one warning line; see `vaebench.data.published`) and recorded in each run's environment.
``cat`` and ``info`` are read at construction; the images are decoded and resized on first use,
kept as uint8 (190 MiB for the published files), and dropped when the dataset is pickled.

Split: a seeded permutation holds out `test_size` images (default 5,000, about a tenth); the
study trains on all 48,600 and scores on fresh samples.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from vaebench.data.base import GroundTruthDataset, fixed_split
from vaebench.data.files import PathLike, fingerprint, infer_grid, required_path
from vaebench.data.published import check_published
from vaebench.data.registry import path_param, register_dataset, split_params
from vaebench.errors import DataError

CHUNKS = ("5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing")  # disentanglement_lib's order
KINDS = ("dat", "cat", "info")
SIZE = 64  # Locatello et al.: every dataset at 64 x 64
RESAMPLE = Image.Resampling.LANCZOS  # PIL's ANTIALIAS, disentanglement_lib's filter
CAMERA = 0  # the first image of each stereo pair, as disentanglement_lib
STATE_NAMES = ("category", "instance", "elevation", "azimuth", "lighting")
LATENT = (0, 2, 3, 4)  # the instance is drawn, not a factor
# the NORB header's magic number -> element type (https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/)
MATRIX_TYPES: dict[int, np.dtype] = {
    0x1E3D4C55: np.dtype(np.uint8),
    0x1E3D4C54: np.dtype("<i4"),
    0x1E3D4C56: np.dtype("<i2"),
    0x1E3D4C51: np.dtype("<f4"),
    0x1E3D4C53: np.dtype("<f8"),
}
_EXPECTED = ("the six SmallNORB files smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat and "
             "smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat,info}.mat (each plain or .gz)")


def file_name(chunk: str, kind: str) -> str:
    return f"smallnorb-{chunk}-{kind}.mat"


def _open(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def read_header(f: io.BufferedIOBase, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """(element type, shape, header bytes) of a NORB binary matrix whose file `f` is at its start."""
    head = f.read(8)
    if len(head) < 8:
        raise DataError(f"{path}: {len(head)} bytes, shorter than a NORB matrix header")
    magic, ndim = (int(v) for v in np.frombuffer(head, "<i4"))
    if magic not in MATRIX_TYPES:
        raise DataError(f"{path}: magic number {magic:#x} is not a NORB matrix type "
                        f"(expected one of {', '.join(f'{m:#x}' for m in MATRIX_TYPES)})")
    if not 0 < ndim <= 8:
        raise DataError(f"{path}: the header declares {ndim} dimensions; expected 1 to 8")
    stored = max(3, ndim)
    raw = f.read(4 * stored)
    if len(raw) < 4 * stored:
        raise DataError(f"{path}: the header is truncated")
    dims = tuple(int(d) for d in np.frombuffer(raw, "<i4")[:ndim])
    if any(d < 0 for d in dims):
        raise DataError(f"{path}: negative dimension in the header {dims}")
    return MATRIX_TYPES[magic], dims, 8 + 4 * stored


def _stored_length(path: Path) -> int:
    """The file's data length: its size, or for a .gz the uncompressed size its trailer records (mod 2^32)."""
    if not path.name.endswith(".gz"):
        return path.stat().st_size
    with open(path, "rb") as f:
        f.seek(0, 2)
        if f.tell() < 18:
            raise DataError(f"{path}: too short for a gzip file")
        f.seek(-4, 2)
        return int.from_bytes(f.read(4), "little")


def check_matrix(path: Path, dtype: np.dtype, ndim: int) -> tuple[int, ...]:
    """The shape of the NORB matrix in `path`; a DataError unless it has `dtype`, `ndim` dimensions and
    the stored length its header declares."""
    try:
        with _open(path) as f:
            found, shape, header = read_header(f, path)
    except (OSError, EOFError, zlib.error) as err:
        kind = "gzip" if path.name.endswith(".gz") else "NORB"
        raise DataError(f"{path}: not a readable {kind} file ({err})") from None
    if found != dtype or len(shape) != ndim:
        raise DataError(f"{path}: a {found} matrix of shape {shape}; expected a {ndim}-d {dtype} matrix")
    expected = header + math.prod(shape) * dtype.itemsize
    stored = _stored_length(path)
    gz = path.name.endswith(".gz")
    if stored != (expected % 2**32 if gz else expected):
        what = "its gzip trailer records" if gz else "the file holds"
        raise DataError(f"{path}: the header declares {shape} ({expected} bytes with the header), but {what} "
                        f"{stored} bytes (truncated or not one NORB matrix)")
    return shape


def read_matrix(path: Path) -> np.ndarray:
    """A whole (small) NORB matrix."""
    try:
        with _open(path) as f:
            dtype, shape, _ = read_header(f, path)
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot be read ({err})") from None
    count = math.prod(shape)
    if len(data) != count * dtype.itemsize:
        raise DataError(f"{path}: {len(data)} data bytes, the header declares {count * dtype.itemsize}")
    return np.frombuffer(data, dtype).reshape(shape)


def resize_as_disentanglement_lib(image: np.ndarray) -> np.ndarray:
    """A (H, W) uint8 image at SIZE x SIZE: LANCZOS on the 32-bit integer image PIL builds from
    disentanglement_lib's int8 array, clipped to [0, 255]."""
    resized = Image.fromarray(image.astype(np.int32)).resize((SIZE, SIZE), RESAMPLE)
    return np.clip(np.asarray(resized), 0, 255).astype(np.uint8)


@register_dataset("smallnorb", params=[path_param("the directory of the smallNORB files"),
                                      *split_params(test_size=5_000)])
class SmallNORB(GroundTruthDataset):
    """SmallNORB from the published files; see the module docstring."""

    name = "smallnorb"
    factor_names = tuple(STATE_NAMES[i] for i in LATENT)

    def __init__(self, path: PathLike | None = None, test_size: int = 5_000, split_seed: int = 0):
        directory = required_path(path, self.name, _EXPECTED)
        if not directory.is_dir():
            raise DataError(f"{directory}: {'a file' if directory.exists() else 'no such directory'}; "
                            f"dataset 'smallnorb' expected a directory holding {_EXPECTED}")
        self.path = directory
        self._files = {(chunk, kind): self._find(directory, chunk, kind) for chunk in CHUNKS for kind in KINDS}
        labels, pairs = [], []
        for chunk in CHUNKS:
            dat = check_matrix(self._files[chunk, "dat"], MATRIX_TYPES[0x1E3D4C55], 4)
            cat = check_matrix(self._files[chunk, "cat"], MATRIX_TYPES[0x1E3D4C54], 1)
            info = check_matrix(self._files[chunk, "info"], MATRIX_TYPES[0x1E3D4C54], 2)
            if dat[1] != 2 or min(dat[2:]) < 1 or info[1] != 4:
                raise DataError(f"{self._files[chunk, 'dat']}: shape {dat} with info {info}; expected stereo "
                                "pairs (N, 2, H, W) and info (N, 4): instance, elevation, azimuth, lighting")
            if not dat[0] == cat[0] == info[0]:
                raise DataError(f"{self._files[chunk, 'dat']}: {dat[0]} images, but {self._files[chunk, 'cat'].name} "
                                f"has {cat[0]} rows and {self._files[chunk, 'info'].name} {info[0]}")
            pairs.append(dat)
            labels.append(np.column_stack([read_matrix(self._files[chunk, "cat"]),
                                           read_matrix(self._files[chunk, "info"])]))
        if pairs[0][2:] != pairs[1][2:]:
            raise DataError(f"{self._files[CHUNKS[1], 'dat']}: images of {pairs[1][2:]} pixels, the training file's "
                            f"are {pairs[0][2:]}")
        self._chunk_rows = [p[0] for p in pairs]
        self._source_shape = pairs[0][2:]
        all_labels = np.concatenate(labels)
        if len(all_labels) == 0:
            raise DataError(f"{self._files[CHUNKS[0], 'dat']}: the files hold no images")
        where = self._files[CHUNKS[0], "info"]
        self.state_sizes, self.state_values, codes = infer_grid(all_labels, STATE_NAMES, where, "cat and info")
        self.factor_sizes = tuple(self.state_sizes[i] for i in LATENT)
        self.factor_values = tuple(self.state_values[i] for i in LATENT)
        self.num_images = len(codes)
        self._row_of_index = np.argsort(codes)
        self.image_shape = (1, SIZE, SIZE)
        self.train_indices, self.test_indices = fixed_split(self.num_images, test_size, split_seed)
        files = list(self._files.values())
        self.fingerprint = fingerprint(files, root=directory)
        self._data_files = {file.name: check_published(file) for file in files}
        self._pixels: np.ndarray | None = None

    @staticmethod
    def _find(directory: Path, chunk: str, kind: str) -> Path:
        name = file_name(chunk, kind)
        for candidate in (directory / f"{name}.gz", directory / name):
            if candidate.is_file():
                return candidate
        raise DataError(f"{directory / name}: no such file (nor {name}.gz); dataset 'smallnorb' expected {_EXPECTED}")

    # -- the state: (category, instance, elevation, azimuth, lighting) --------------------------------

    @property
    def _state_radix(self) -> np.ndarray:
        sizes = np.asarray(self.state_sizes, dtype=np.int64)
        return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]])

    def _states(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_images):
            raise IndexError(f"image index out of range 0..{self.num_images - 1} in dataset 'smallnorb'")
        return (idx[:, None] // self._state_radix[None, :]) % np.asarray(self.state_sizes)[None, :]

    def factors(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """(n, 4) indices of category, elevation, azimuth and lighting of the images at `indices`."""
        return self._states(indices)[:, list(LATENT)]

    def instances(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """(n,) instance indices of the images at `indices`."""
        return self._states(indices)[:, 1]

    def index_of(self, factors: np.ndarray, instances: np.ndarray | None = None) -> np.ndarray:
        """Image indices of (n, 4) factor vectors and (n,) instances (an image needs both)."""
        if instances is None:
            raise ValueError("a SmallNORB image is given by its factors and an instance; use images_from_factors "
                             "to draw the instances")
        f = np.asarray(factors, dtype=np.int64).reshape(-1, len(LATENT))
        state = np.insert(f, 1, np.asarray(instances, dtype=np.int64).reshape(-1), axis=1)
        return state @ self._state_radix

    def images_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """Images of (n, 4) factor vectors, each of an instance drawn uniformly (see the module docstring)."""
        f = np.ascontiguousarray(factors, dtype=np.int64).reshape(-1, len(LATENT))
        seed = int.from_bytes(hashlib.sha256(f.tobytes()).digest()[:8], "little")
        instances = np.random.default_rng(seed).integers(0, self.state_sizes[1], size=len(f))
        return self.images(self.index_of(f, instances))

    # -- pixels ---------------------------------------------------------------------------------------

    def _decode(self) -> np.ndarray:
        out = np.empty((self.num_images, SIZE, SIZE), dtype=np.uint8)  # in file-row order
        row = 0
        for chunk, rows in zip(CHUNKS, self._chunk_rows):
            path = self._files[chunk, "dat"]
            pixels = math.prod(self._source_shape)
            try:
                with _open(path) as f:
                    read_header(f, path)
                    for _ in range(rows):
                        pair = f.read(2 * pixels)
                        if len(pair) != 2 * pixels:
                            raise DataError(f"{path}: truncated after {row} images")
                        image = np.frombuffer(pair, np.uint8)[CAMERA * pixels:(CAMERA + 1) * pixels]
                        out[row] = resize_as_disentanglement_lib(image.reshape(self._source_shape))
                        row += 1
            except (OSError, EOFError, zlib.error) as err:
                raise DataError(f"{path}: cannot be read ({err})") from None
        return out

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        if self._pixels is None:
            self._pixels = self._decode()
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        self._states(idx)  # range check
        rows = self._row_of_index[idx]
        return (self._pixels[rows].astype(np.float32) / np.float32(255))[:, None]

    def labels(self, indices: np.ndarray) -> np.ndarray:
        return self.factors(indices)

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path), "fingerprint": self.fingerprint,
                "state_sizes": list(self.state_sizes), "resize": "PIL LANCZOS, 32-bit, clipped"}

    def data_files(self) -> dict[str, dict]:
        return dict(self._data_files)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pixels": None}  # a pickled copy decodes the files again when used
