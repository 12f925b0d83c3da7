"""The static binarisation of MNIST (Larochelle & Murray 2011), from the user's local files.

The standard files are three text files, one image per line, 784 values 0 or 1 (28 x 28, row
by row) separated by white space:

    binarized_mnist_train.amat   50,000 images
    binarized_mnist_valid.amat   10,000 images
    binarized_mnist_test.amat    10,000 images

each plain or gzipped (detected from the content). `path` is a directory holding them, or
holding `binarized_mnist.npz`, or the path of such an .npz: one archive with the keys `train`,
`valid` and `test`, each (N, 784) or (N, 28, 28), of 0/1 values (uint8, bool, integers or
floats). A directory holding both reads the text files. Nothing checks the counts against the
standard 50,000 / 10,000 / 10,000 (a small test file works the same way); every value must be
0 or 1, and a malformed file is a DataError naming the file, the line or key, and the problem.

Images are indexed train, then valid, then test, as float32 (N, 1, 28, 28). The split is the
one each paper uses:

    train = "train"          the 50,000 training images (pythae; Burda et al.'s code for the
                             fixed binarisation)
    train = "train+valid"    train and valid together (60,000), for papers that train on both
    test  = "test"           the 10,000 test images; "valid" evaluates on the validation images
                             (not allowed with train = "train+valid": they would overlap)

`validation_indices` are the valid images whenever they are not trained on, for a protocol that
selects its model on them (pythae keeps the epoch with the lowest validation loss).

`describe()` carries the files' `fingerprint` (name, size, modification time) and
`content_sha256`, the SHA-256 of the decoded 0/1 bytes of train, valid and test in that order,
so the same images read from the .amat files or from an .npz have the same content hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vaebench.data.base import ImageDataset
from vaebench.data.files import (
    PathLike,
    fingerprint,
    npz_array_header,
    open_npz,
    read_maybe_gzipped,
    read_npz,
    required_path,
)
from vaebench.data.registry import path_param, register_dataset
from vaebench.errors import ConfigError, DataError
from vaebench.params import Param

SPLITS = ("train", "valid", "test")
AMAT_FILES = {split: f"binarized_mnist_{split}.amat" for split in SPLITS}
NPZ_FILE = "binarized_mnist.npz"
PIXELS = 784
TRAIN_CHOICES = ("train", "train+valid")
TEST_CHOICES = ("test", "valid")
_EXPECTED = (f"a directory holding {', '.join(AMAT_FILES.values())} (each plain or .gz) or {NPZ_FILE}, "
             "or the path of such an .npz (keys train, valid, test)")
_NPZ_EXPECTED = "an .npz archive with the keys train, valid and test, each (N, 784) or (N, 28, 28) of 0/1 values"

# byte classes of an .amat file: 1 a digit 0/1, 2 a blank (space, tab, carriage return), 3 a newline
_BYTE_CLASS = np.zeros(256, dtype=np.uint8)
_BYTE_CLASS[[ord("0"), ord("1")]] = 1
_BYTE_CLASS[[ord(" "), ord("\t"), ord("\r")]] = 2
_BYTE_CLASS[ord("\n")] = 3


def read_amat(path: PathLike) -> np.ndarray:
    """The (N, 784) uint8 0/1 images of an .amat text file (plain or gzipped): one image per
    line, 784 values separated by white space; blank lines are skipped.

    Values written as single digits are parsed with array operations; any other spelling
    (0.0, 1.000) is parsed line by line and must equal 0 or 1.
    """
    path = Path(path)
    raw = read_maybe_gzipped(path, "a binarised MNIST .amat file (one image per line, 784 values 0 or 1)")
    buf = np.frombuffer(raw, dtype=np.uint8)
    cls = _BYTE_CLASS[buf]
    digit = cls == 1
    if cls.all() and not np.any(digit[1:] & digit[:-1]):
        starts = np.concatenate([[0], np.flatnonzero(cls == 3) + 1])
        starts = starts[starts < len(buf)]
        lengths = np.diff(np.append(starts, len(buf)))
        if len(lengths) and np.all(lengths == lengths[0]):  # lines of one length (the standard files): rows
            counts = digit.reshape(len(lengths), lengths[0]).sum(axis=1)
        else:
            counts = (np.add.reduceat(digit.view(np.uint8), starts, dtype=np.int64) if len(buf)
                      else np.zeros(0, np.int64))
        _check_counts(path, counts)
        return (buf[digit] - ord("0")).reshape(-1, PIXELS)
    return _read_amat_slowly(path, raw)


def _check_counts(path: Path, counts: np.ndarray) -> None:
    """Every non-blank line holds 784 values, and there is at least one."""
    bad = np.flatnonzero((counts != 0) & (counts != PIXELS))
    if len(bad):
        raise DataError(f"{path}: line {bad[0] + 1} holds {counts[bad[0]]} values; expected {PIXELS} "
                        "(one 28 x 28 image per line)")
    if not np.any(counts):
        raise DataError(f"{path}: holds no images; expected one image per line, {PIXELS} values 0 or 1")


def _read_amat_slowly(path: Path, raw: bytes) -> np.ndarray:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a text file (byte {err.start} is not ASCII); expected one image per line, "
                        f"{PIXELS} values 0 or 1") from None
    rows, counts = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        counts.append(len(tokens))
        if not tokens:
            continue
        if len(tokens) != PIXELS:
            _check_counts(path, np.asarray(counts))
        try:
            values = np.array([float(t) for t in tokens])
        except ValueError:
            token = next(t for t in tokens if not _is_number(t))
            raise DataError(f"{path}: line {number}: {token!r} is not a number; expected 784 values 0 or 1") from None
        wrong = np.flatnonzero((values != 0) & (values != 1))
        if len(wrong):
            raise DataError(f"{path}: line {number}, value {wrong[0] + 1} is {tokens[wrong[0]]}; expected 0 or 1")
        rows.append(values.astype(np.uint8))
    _check_counts(path, np.asarray(counts, dtype=np.int64))
    return np.stack(rows)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_binarized_npz(path: PathLike) -> dict[str, np.ndarray]:
    """{"train", "valid", "test"}: the (N, 784) uint8 0/1 images of a binarised-MNIST .npz."""
    path = Path(path)
    out = {}
    with open_npz(path, _NPZ_EXPECTED) as archive:
        missing = [k for k in SPLITS if k not in archive.files]
        if missing:
            raise DataError(f"{path}: has no key {missing[0]!r} (keys: {', '.join(archive.files) or 'none'}); "
                            f"expected {_NPZ_EXPECTED}")
        for key in SPLITS:
            shape, dtype = npz_array_header(path, key)
            if shape[1:] not in ((PIXELS,), (28, 28)) or len(shape) < 2 or shape[0] < 1 or dtype.kind not in "biuf":
                raise DataError(f"{path}: key {key!r}: holds {dtype} data of shape {shape}; expected {_NPZ_EXPECTED}")
            values = read_npz(archive, path, key).reshape(shape[0], PIXELS)
            wrong = np.flatnonzero(~((values == 0) | (values == 1)).all(axis=1))
            if len(wrong):
                row = values[wrong[0]]
                col = int(np.flatnonzero(~((row == 0) | (row == 1)))[0])
                raise DataError(f"{path}: key {key!r}: image {wrong[0]}, pixel {col} is {row[col].item()!r}; "
                                "expected 0 or 1 (the static binarisation)")
            out[key] = values.astype(np.uint8)
    return out


def _files(path: PathLike | None) -> tuple[list[Path], str]:
    """(the files to read, "amat" or "npz") at the user's `path`."""
    p = required_path(path, "binarized_mnist", _EXPECTED)
    if p.is_dir():
        amat = [p / name for name in AMAT_FILES.values()]
        found = [f for f in amat if f.is_file()]
        if len(found) == len(amat):
            return amat, "amat"
        if (p / NPZ_FILE).is_file():
            return [p / NPZ_FILE], "npz"
        if found:
            missing = next(f for f in amat if not f.is_file())
            raise DataError(f"{missing}: no such file; dataset 'binarized_mnist' expected {_EXPECTED}")
        raise DataError(f"{p}: holds neither the three .amat files nor {NPZ_FILE}; dataset 'binarized_mnist' "
                        f"expected {_EXPECTED}")
    if p.is_file():
        return [p], "npz"
    raise DataError(f"{p}: no such file or directory; dataset 'binarized_mnist' expected {_EXPECTED}")


@register_dataset("binarized_mnist", params=[
    path_param("a directory holding the .amat files"),
    Param("train", "train", doc="the training split: " + " or ".join(map(repr, TRAIN_CHOICES))),
    Param("test", "test", doc="the split scored: " + " or ".join(map(repr, TEST_CHOICES))),
])
class BinarizedMNIST(ImageDataset):
    """Larochelle & Murray's binarised MNIST from .amat or .npz files; see the module docstring."""

    name = "binarized_mnist"
    image_shape = (1, 28, 28)

    def __init__(self, path: PathLike | None = None, train: str = "train", test: str = "test"):
        if train not in TRAIN_CHOICES:
            raise ConfigError(f"must be one of {', '.join(map(repr, TRAIN_CHOICES))}, got {train!r}", key="train")
        if test not in TEST_CHOICES:
            raise ConfigError(f"must be one of {', '.join(map(repr, TEST_CHOICES))}, got {test!r}", key="test")
        if train == "train+valid" and test == "valid":
            raise ConfigError("test = 'valid' would evaluate on training images when train = 'train+valid'; "
                              "use test = 'test'", key="test")
        files, kind = _files(path)
        self.path = Path(required_path(path, self.name, _EXPECTED))
        self.files = files
        self.fingerprint = fingerprint(files)
        splits = {s: read_amat(f) for s, f in zip(SPLITS, files)} if kind == "amat" else read_binarized_npz(files[0])
        self.split_sizes = {s: len(splits[s]) for s in SPLITS}
        self._pixels = np.concatenate([splits[s] for s in SPLITS]).reshape(-1, 28, 28)
        self.num_images = len(self._pixels)
        blocks, start = {}, 0
        for s in SPLITS:
            blocks[s] = np.arange(start, start + self.split_sizes[s])
            start += self.split_sizes[s]
        self.train, self.test = train, test
        self.train_indices = blocks["train"] if train == "train" else np.concatenate([blocks["train"], blocks["valid"]])
        self.test_indices = blocks[test]
        self.validation_indices = blocks["valid"] if train == "train" else np.arange(0)
        self._content_sha256: str | None = None

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._pixels[np.asarray(indices, dtype=np.int64)].astype(np.float32)[:, None]

    @property
    def content_sha256(self) -> str:
        """SHA-256 of the decoded 0/1 bytes, train then valid then test (784 bytes an image)."""
        if self._content_sha256 is None:
            self._content_sha256 = hashlib.sha256(np.ascontiguousarray(self._pixels).tobytes()).hexdigest()
        return self._content_sha256

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path), "fingerprint": self.fingerprint,
                "content_sha256": self.content_sha256, "split_sizes": dict(self.split_sizes),
                "train": self.train, "test": self.test}
