"""CIFAR-10 (Krizhevsky 2009) from the python version of its files, `cifar-10-batches-py/`.

`path` is that directory (or the one holding it); it must hold the six batches

    data_batch_1 ... data_batch_5   the 50,000 training images, in this order
    test_batch                      the 10,000 test images

(`batches.meta`, the class names, is not needed). Each batch is a Python pickle of a dict whose
`b"data"` is a uint8 (n, 3072) array, each row an image as 1,024 red, 1,024 green and 1,024 blue
values, each plane a 32 x 32 image in row-major order, and whose `b"labels"` is a list of n
classes 0-9 (`b"batch_label"` and `b"filenames"` are not used). The batches were written by
Python 2; their strings are read as bytes (`encoding="bytes"`, as the dataset's page does).

Unpickling is restricted and inert: a pickle can name any importable function and call it,
and numpy's own array unpickling trusts the dtype and state it is given. `_BatchUnpickler`
therefore resolves only the three names a pickled array uses (numpy's `_reconstruct`,
`numpy.ndarray`, `numpy.dtype`) and maps them to stand-ins that merely record their
arguments and state; no numpy code sees the file's contents. The recorded array is then
accepted only as a C-order uint8 matrix whose bytes match its shape, and read with
`np.frombuffer`. Any other name (`os.system`, `builtins.eval`, ...) is a DataError, so a
crafted file cannot run code. Dicts, lists, bytes, strings and integers need no name.

Split: the standard one. Indices 0..49,999 are the training batches in order, 50,000..59,999
`test_batch`. Images are float32 byte / 255, shape (N, 3, 32, 32); `labels(indices)` are the
(n, 1) classes. All images are held in memory (184 MB as bytes).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vaebench.data.base import ImageDataset
from vaebench.data.files import PathLike, fingerprint, required_path
from vaebench.data.registry import path_param, register_dataset
from vaebench.errors import DataError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
STANDARD_DIRECTORY = "cifar-10-batches-py"
NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
_EXPECTED = f"the directory {STANDARD_DIRECTORY} holding {', '.join(TRAIN_BATCHES)} and {TEST_BATCH}"



class _NdarrayType:
    """Stands for numpy.ndarray in a batch: the first argument of `_reconstruct`."""


class _PickledArray:
    """A pickled numpy array as recorded here: its state (version, shape, dtype, fortran order, bytes)."""

    state: object = None

    def __setstate__(self, state: object) -> None:
        self.state = state


class _PickledDtype:
    """A pickled numpy dtype as recorded here: its type string (such as "u1"); its state is ignored."""

    def __init__(self, spec: object, align: object = 0, copy: object = 0):
        self.spec = spec.decode("ascii", "replace") if isinstance(spec, bytes) else spec

    def __setstate__(self, state: object) -> None:
        pass


def _reconstruct(cls: object, shape: object, dtype_code: object) -> _PickledArray:
    if cls is not _NdarrayType or shape != (0,):
        raise pickle.UnpicklingError("numpy array reconstruction with arguments a pickled array never has")
    return _PickledArray()


class _BatchUnpickler(pickle.Unpickler):
    """Resolves only the names a pickled numpy array uses, to inert stand-ins (see the module docstring)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): _NdarrayType,
        ("numpy", "dtype"): _PickledDtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR-10 batch names only numpy's "
                                         "array reconstruction") from None


def _uint8_matrix(value: object, file: Path, key: str) -> np.ndarray:
    """The (n, m) uint8 array a recorded `_PickledArray` holds; a DataError for anything else."""
    state = value.state if isinstance(value, _PickledArray) else None
    if not (isinstance(state, tuple) and len(state) == 5):
        raise DataError(f"{file}: key {key}: a {type(value).__name__}; "
                        "expected a numpy array of uint8 images (n, 3072)")
    _, shape, dtype, fortran, raw = state
    spec = dtype.spec if isinstance(dtype, _PickledDtype) else dtype
    if spec != "u1" or fortran is not False or not isinstance(raw, bytes):
        raise DataError(f"{file}: key {key}: a numpy array of type {spec!r}; expected uint8 images (n, 3072)")
    if not (isinstance(shape, tuple) and len(shape) == 2 and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise DataError(f"{file}: key {key}: an array of shape {shape!r}; expected uint8 images (n, 3072)")
    if len(raw) != shape[0] * shape[1]:
        raise DataError(f"{file}: key {key}: shape {shape} needs {shape[0] * shape[1]} bytes, {len(raw)} are stored")
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def read_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, 3, 32, 32), int64 labels (n,)) of one CIFAR-10 batch file, checked."""
    try:
        raw = file.read_bytes()
    except OSError as err:
        raise DataError(f"{file}: cannot be read: {err.strerror or err}") from None
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # noqa: BLE001 - whatever a malformed pickle raises, the file is not a batch
        raise DataError(f"{file}: not a CIFAR-10 python batch ({type(err).__name__}: {err})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{file}: holds a pickled {type(batch).__name__}; a CIFAR-10 batch is a dict")
    for key in (b"data", b"labels"):
        if key not in batch:
            held = ", ".join(repr(k) for k in batch) or "nothing"
            raise DataError(f"{file}: key {key!r} missing (the batch holds: {held}); expected a CIFAR-10 python batch")
    data, labels = _uint8_matrix(batch[b"data"], file, "b'data'"), batch[b"labels"]
    if data.shape[1] != 3072:
        raise DataError(f"{file}: key b'data': an array of shape {data.shape}; expected uint8 images (n, 3072)")
    if len(data) == 0:
        raise DataError(f"{file}: key b'data' holds no images")
    if not isinstance(labels, list) or not all(type(v) is int for v in labels):
        raise DataError(f"{file}: key b'labels': expected a list of integer classes")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(data):
        raise DataError(f"{file}: key b'data' holds {len(data)} images but b'labels' {len(labels)} labels")
    bad = (labels < 0) | (labels >= NUM_CLASSES)
    if bad.any():
        raise DataError(f"{file}: key b'labels' holds the class {labels[bad][0]}; "
                        f"CIFAR-10's classes are 0-{NUM_CLASSES - 1}")
    return data.reshape(len(data), *IMAGE_SHAPE), labels


@register_dataset("cifar10", params=[path_param("the directory of the python batches")])
class CIFAR10(ImageDataset):
    """CIFAR-10 from its python batches; see the module docstring."""

    name = "cifar10"
    image_shape = IMAGE_SHAPE

    def __init__(self, path: PathLike | None = None):
        directory = required_path(path, self.name, _EXPECTED)
        if (directory / STANDARD_DIRECTORY).is_dir():
            directory = directory / STANDARD_DIRECTORY
        if not directory.is_dir():
            kind = "a file, not a directory" if directory.exists() else "no such directory"
            raise DataError(f"{directory}: {kind}; dataset {self.name!r} expected {_EXPECTED}")
        files = [directory / name for name in (*TRAIN_BATCHES, TEST_BATCH)]
        for file in files:
            if not file.is_file():
                raise DataError(f"{file}: no such file; dataset {self.name!r} expected {_EXPECTED}")
        self.path = directory
        self.fingerprint = fingerprint(files)
        self._files = files
        batches = [read_batch(file) for file in files]
        self._pixels = np.concatenate([images for images, _ in batches])
        self._labels = np.concatenate([labels for _, labels in batches])
        self.num_images = len(self._pixels)
        num_test = len(batches[-1][0])
        self.train_indices = np.arange(self.num_images - num_test)
        self.test_indices = np.arange(self.num_images - num_test, self.num_images)

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._pixels[np.asarray(indices, dtype=np.int64)].astype(np.float32) / np.float32(255)

    def labels(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._labels[np.asarray(indices, dtype=np.int64)][:, None]

    def source_files(self) -> list[Path]:
        return list(self._files)

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path), "fingerprint": self.fingerprint}
