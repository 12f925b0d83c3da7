"""What the file-backed datasets share: resolving the user's path, the identity of the files read,
checked .npz archives, and factor grids read from a file.

Nothing is ever downloaded: every loader reads the standard file from a local `path` the
user gives, and a missing or malformed file is one `DataError` naming the file and what
was expected (a missing `path` parameter is a `ConfigError` on the key `path`). Loaders
check shapes, dtypes and counts when the dataset is built (at suite load), so a broken
file stops the suite before any run starts.

A dataset's `describe()` carries `fingerprint(files)`: the hash of each file's name, size,
modification time and status-change time (nanoseconds). Caches keyed by `describe()` (FID
statistics, feature networks, decoded images) therefore change when a file is replaced or
edited. Stat data, not the bytes: hashing the bytes would read every file (a 1.4 GB image
folder, a 3 GB archive) in every process that builds the dataset, while a `stat` costs
microseconds a file (README, Performance). The status-change time (ctime) is what makes it
complete: every write, copy or rename onto the file sets it to now, and no user call sets it
back (`touch -r` restores only the modification time); the price is that a change of metadata
alone (chmod, a copy of the folder elsewhere) also counts as a change and rebuilds the caches.
A run's checkpoints record the files' SHA-256 instead (`vaebench.bench.identity`).

An .npz archive is checked without decompressing its arrays (`npz_array_header`): each
member's .npy header gives shape and dtype, and the member's stored length must be that
header plus shape x itemsize bytes, so a truncated or padded array is found at load.

Ground-truth files (the dSprites .npz, 3dshapes .h5) store one row of factor labels per
image. `FileGroundTruthDataset` does not assume the file holds the full published grid in
a particular order; it reads the grid from the labels:

- each factor's values are the distinct values in its column, sorted; a factor index is
  the rank of the value (dSprites' classes 0..k-1 stay 0..k-1, 3dshapes' float values
  such as orientation -30..30 become 0..14);
- the rows must form a complete grid, every combination of those values exactly once,
  else a `DataError` names the first missing or repeated combination (`sample_factors`
  and the disentanglement metrics need every combination to exist);
- image index = the mixed-radix number of the factor indices (first factor most
  significant), as for every `GroundTruthDataset`; the file's row of an index comes from
  the labels, so any row order works. The published files are stored in exactly that
  order, so for them the map is the identity and is not stored.

The published files therefore give the published grids (dSprites 3 x 6 x 40 x 32 x 32,
3dshapes 10 x 10 x 10 x 8 x 4 x 15) with image index = file row, and a small file holding
a complete sub-grid (a test fixture, a subsampled copy) works the same way with its own,
smaller `factor_sizes`.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from vaebench.data.base import GroundTruthDataset, fixed_split
from vaebench.data.data_root import expand_path_variables
from vaebench.errors import ConfigError, DataError
from vaebench.files import content_hash

PathLike = str | os.PathLike
_GZIP_MAGIC = b"\x1f\x8b"

# An array a loader reads into memory whole (an .npz member, a label table): a header declaring more is
# refused before it is read or inflated. The published dSprites images, the largest such array, are 2.8 GiB.
MAX_ARRAY_BYTES = 4 * 2**30


def check_declared_size(nbytes: int, path: Path, key: str, what: str) -> None:
    """DataError when an array's header declares more than MAX_ARRAY_BYTES (checked before reading it)."""
    if nbytes > MAX_ARRAY_BYTES:
        raise DataError(f"{path}: key {key!r}: the header declares {what} ({nbytes:,d} bytes), more than the limit of "
                        f"{MAX_ARRAY_BYTES:,d} bytes for an array read into memory; refused before reading it")


def required_path(path: PathLike | None, dataset: str, expected: str) -> Path:
    """The user's `path` with environment variables (`${VAEBENCH_DATA}`, see `vaebench.data.data_root`)
    and ~ expanded; a ConfigError on the key `path` when it was not given."""
    if path is None or str(path) == "":
        raise ConfigError(f"required: dataset {dataset!r} reads {expected} from a local path", key="path")
    return Path(expand_path_variables(os.fspath(path)))


def find_file(path: PathLike | None, dataset: str, standard_name: str, expected: str) -> Path:
    """The file at `path`, or `standard_name` inside it when `path` is a directory."""
    p = required_path(path, dataset, expected)
    if p.is_dir():
        if (p / standard_name).is_file():
            return p / standard_name
        raise DataError(f"{p / standard_name}: no such file; dataset {dataset!r} expected {expected}")
    if not p.is_file():
        raise DataError(f"{p}: no such file; dataset {dataset!r} expected {expected}")
    return p


# Files read whole into memory are refused beyond this size once inflated (MNIST's largest IDX file is
# 47 MB, the binarised MNIST training .amat 78 MB; a 6 MB gzip bomb inflates to gigabytes).
MAX_READ_BYTES = 2**30


def open_maybe_gzipped(path: Path, expected: str) -> io.BufferedIOBase:
    """The file's content as a stream, inflated on the fly when it starts like a gzip file (detected
    from the content, not the name); a DataError naming the file and what was `expected` otherwise."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; expected {expected}") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read: {err.strerror or err}") from None
    if f.read(2) == _GZIP_MAGIC:
        f.seek(0)
        return gzip.GzipFile(fileobj=f, mode="rb")
    f.seek(0)
    return f


def read_at_most(stream: io.BufferedIOBase, n: int, path: Path) -> bytes:
    """At most n bytes of `stream` (fewer at its end); a DataError for a gzip stream that does not inflate."""
    try:
        return stream.read(n)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: starts like a gzip file but does not decompress: {err}") from None


def read_maybe_gzipped(path: Path, expected: str, limit: int = MAX_READ_BYTES) -> bytes:
    """The bytes of the file at `path`, inflated when gzipped; refused, before more is inflated, beyond
    `limit` bytes."""
    with open_maybe_gzipped(path, expected) as stream:
        raw = read_at_most(stream, limit + 1, path)
    if len(raw) > limit:
        raise DataError(f"{path}: holds more than {limit:,d} bytes (inflated); refused before reading further; "
                        f"expected {expected}")
    return raw


def fingerprint(files: Iterable[Path], root: Path | None = None) -> str:
    """The identity of `files`: a hash of each one's name (relative to `root`), size, mtime and ctime in ns."""
    entries = []
    for file in files:
        try:
            st = file.stat()
        except OSError as err:
            raise DataError(f"{file}: cannot be read: {err.strerror or err}") from None
        name = file.relative_to(root).as_posix() if root is not None else file.name
        entries.append([name, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
    return content_hash(entries)


def open_npz(path: Path, expected: str) -> np.lib.npyio.NpzFile:
    """The .npz archive at `path` (arrays are read on access, never unpickled)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a NumPy .npz archive ({err}); expected {expected}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single .npy array, not an .npz archive; expected {expected}")
    return archive


def npz_array_header(path: Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the array `key` of an .npz archive, read from its header without reading
    its data; a DataError when the member's length is not what the header declares."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(f"{key}.npy")
            with zf.open(info) as member:
                version = np.lib.format.read_magic(member)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(member)
                header_bytes = member.tell()
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: key {key!r}: not a readable .npy array ({err})") from None
    if dtype.hasobject:
        raise DataError(f"{path}: key {key!r}: an array of Python objects (stored as a pickle, which is never loaded); "
                        "expected a numeric array")
    shape = tuple(int(d) for d in shape)
    check_declared_size(math.prod(shape) * dtype.itemsize, path, key, f"{dtype} data of shape {shape}")
    expected = header_bytes + math.prod(shape) * dtype.itemsize
    if info.file_size != expected:
        problem = "truncated" if info.file_size < expected else "trailing data"
        raise DataError(
            f"{path}: key {key!r}: the header declares {dtype} data of shape {shape} "
            f"({expected - header_bytes} bytes), "
            f"but {info.file_size - header_bytes} bytes are stored ({problem})"
        )
    return shape, dtype


def npz_memmap(path: Path, key: str) -> np.ndarray | None:
    """The array `key` of an .npz archive mapped read-only from the file, without reading it, when the
    member is stored uncompressed (what `np.savez` writes) in C order; None when it is compressed
    (`np.savez_compressed`) or in Fortran order, which must be read whole. Checked with
    `npz_array_header` first."""
    shape, dtype = npz_array_header(path, key)
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(f"{key}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)  # the local file header: its name and extra field lengths are at bytes 26-29
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise ValueError("no local file header where the central directory points")
            name_length, extra_length = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
            f.seek(info.header_offset + 30 + name_length + extra_length)
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _, fortran_order, _ = read(f)
            offset = f.tell()
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: key {key!r}: not a readable .npy array ({err})") from None
    if fortran_order:
        return None
    return np.asarray(np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape))


def read_npz(archive: np.lib.npyio.NpzFile, path: Path, key: str) -> np.ndarray:
    """The array `key` of an open archive; a DataError naming the file when it cannot be read."""
    try:
        return archive[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(f"{path}: key {key!r}: cannot be read ({err})") from None


def infer_grid(labels: np.ndarray, names: Sequence[str], file: Path, key: str
               ) -> tuple[tuple[int, ...], tuple[np.ndarray, ...], np.ndarray]:
    """(factor sizes, sorted values per factor, grid index of every row) of per-row labels.

    Raises DataError unless the rows hold every combination of the values exactly once.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != len(names) or labels.dtype.kind not in "biuf":
        raise DataError(f"{file}: key {key!r}: expected a numeric (N, {len(names)}) array, "
                        f"got {labels.dtype} {labels.shape}")
    values, ranks = [], []
    for j in range(len(names)):
        v, r = np.unique(labels[:, j], return_inverse=True)
        values.append(v)
        ranks.append(r.reshape(-1).astype(np.int64))
    sizes = tuple(len(v) for v in values)
    radix = np.concatenate([np.cumprod(np.asarray(sizes[::-1], dtype=np.int64))[::-1][1:], [1]])
    codes = np.stack(ranks, axis=1) @ radix
    total = int(np.prod(sizes, dtype=np.int64))
    counts = np.bincount(codes, minlength=total)
    bad = np.flatnonzero(counts != 1)
    if len(bad):
        digits = (bad[0] // radix) % np.asarray(sizes)
        combo = ", ".join(f"{n}={values[j][d].item()}" for j, (n, d) in enumerate(zip(names, digits)))
        problem = "is missing" if counts[bad[0]] == 0 else f"appears {counts[bad[0]]} times"
        raise DataError(
            f"{file}: key {key!r}: the {len(labels)} rows are not a complete factor grid: the factors "
            f"({', '.join(names)}) take {' x '.join(map(str, sizes))} = {total} value combinations, each expected "
            f"exactly once, and the combination ({combo}) {problem}"
        )
    return sizes, tuple(values), codes


class FileGroundTruthDataset(GroundTruthDataset):
    """A ground-truth dataset whose images are rows of a file; see the module docstring.

    Subclasses call `_init_grid` from their constructor and implement `_read_rows(rows)`:
    float32 images in [0, 1] of the file rows `rows`, in that order.
    """

    path: Path
    fingerprint: str
    factor_values: tuple[np.ndarray, ...]
    _row_of_index: np.ndarray | None

    def _init_grid(self, path: Path, labels: np.ndarray, key: str, test_size: int, split_seed: int) -> None:
        self.path = path
        self.fingerprint = fingerprint([path])
        if len(labels) == 0:
            raise DataError(f"{path}: holds no images (key {key!r} has 0 rows)")
        self.factor_sizes, self.factor_values, codes = infer_grid(labels, self.factor_names, path, key)
        self.num_images = len(codes)
        in_order = np.array_equal(codes, np.arange(self.num_images))
        self._row_of_index = None if in_order else np.argsort(codes)
        self.train_indices, self.test_indices = fixed_split(self.num_images, test_size, split_seed)

    def rows(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The file rows holding the images at `indices`."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_images):
            raise IndexError(f"image index out of range 0..{self.num_images - 1} in dataset {self.name!r}")
        return idx if self._row_of_index is None else self._row_of_index[idx]

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._read_rows(self.rows(indices))

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def source_files(self) -> list[Path]:
        return [self.path]

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path), "fingerprint": self.fingerprint,
                "factor_sizes": list(self.factor_sizes)}
