"""Arrays cached on disk: a uint8 array built once, memory-mapped and verified on opening.

For images that are expensive to produce (an image folder's PNG and JPEG files, decoded,
converted and resized; dSprites' rendered masks, bit-packed by `vaebench.data.materialise`),
`open_array_cache` stores the result once, under the run directory's cache, and every run and
worker process then maps the same file; a batch is an index gather.

What is stored, and where
    `<cache_dir>/datasets/<kind>-<key>.npy`: the array, a .npy file (uint8, C order).
    `<kind>-<key>.json`: the description it was built from, its shape and the SHA-256 of the .npy file.
    `<kind>-<key>.lock`: the lock builders take.
    `key` = `content_hash` of {format, kind, the caller's description, shape}; the description
    names everything the bytes depend on (for an image folder: the files' fingerprint, the
    decoding parameters and the decoder's version), so a change of any of them is a new entry
    and a stale entry is never read.

Integrity and concurrency
    The array, then its sidecar, are written through `atomic_write` (a temporary file renamed
    into place), so a file under its final name is complete. Opening checks the array's SHA-256
    against the sidecar, once per process and file: a missing, truncated or altered file is
    logged and rebuilt. Builders hold an exclusive `fcntl` lock and look again once they have it,
    so processes asking at once build it once (a file that changed while one waited is verified,
    one that did not is rebuilt without hashing it twice); readers need no lock. A `CachedArray` pickles as
    its path and hash; a process that unpickles it maps and verifies the file again.

When to build
    A caller that would not draw enough rows to repay the build passes `build=False`: an
    existing, verified entry is used, and a missing one is not built (None is returned).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from vaebench.errors import DataError
from vaebench.files import atomic_write, content_hash, file_sha256

log = logging.getLogger(__name__)

FORMAT = 1

# fill(start, stop) -> the uint8 rows start..stop-1 of the array
FillFn = Callable[[int, int], np.ndarray]

# Verified memory maps by path: once per process and file.
_MAPPED: dict[str, np.ndarray] = {}


class CachedArray:
    """A verified uint8 array in the cache, memory-mapped read-only."""

    def __init__(self, path: Path, sha256: str):
        self.path = path
        self.sha256 = sha256

    @property
    def array(self) -> np.ndarray:
        mapped = _MAPPED.get(str(self.path))
        if mapped is None:
            if not _verified(self.path, self.sha256):
                raise DataError(f"{self.path}: changed since it was built; expected SHA-256 {self.sha256}")
            mapped = _MAPPED[str(self.path)]
        return mapped


def open_array_cache(cache_dir: str | Path, *, kind: str, description: dict, shape: tuple[int, ...],
                     fill: FillFn, chunk: int, build: bool = True) -> CachedArray | None:
    """The verified uint8 array of `shape` described by `description`, from `cache_dir`/datasets;
    built first, `chunk` rows at a time from `fill`, when it is missing or does not verify, if
    `build` (otherwise None)."""
    shape = tuple(int(d) for d in shape)
    key = content_hash({"format": FORMAT, "kind": kind, "description": description, "shape": list(shape)})
    stem = Path(cache_dir) / "datasets" / f"{kind}-{key}"
    path, sidecar = stem.with_suffix(".npy"), stem.with_suffix(".json")
    sha, seen = _recorded_sha(sidecar), _identity(path, sidecar)
    if sha is not None and (str(path) in _MAPPED or _verified(path, sha)):
        return CachedArray(path, sha)
    if not build:
        return None
    check_free_space(path.parent, int(np.prod(shape, dtype=np.int64)), what=f"the {kind} cache")
    with _exclusive(stem.with_suffix(".lock")):
        if _identity(path, sidecar) != seen:  # another process wrote it while this one waited
            sha = _recorded_sha(sidecar)
            if sha is not None and _verified(path, sha):
                return CachedArray(path, sha)
        sha = _build(path, sidecar, description, shape, fill, chunk)
        _map(path)
    return CachedArray(path, sha)


def check_free_space(directory: Path, nbytes: int, *, what: str) -> None:
    """DataError, before anything is written, when `directory`'s file system has less than `nbytes` free."""
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if nbytes > free:
        raise DataError(f"{directory}: {what} needs {human_bytes(nbytes)} and the disk has {human_bytes(free)} free; "
                        "free some space, or use a smaller image size or dataset")


def human_bytes(nbytes: int) -> str:
    """1536 -> '1.5 KB' (powers of 1024)."""
    size = float(nbytes)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PB"


def _identity(*paths: Path) -> tuple:
    """What changes when a file is replaced or rewritten: (inode, size, mtime) of each, None if absent."""
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


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
        log.warning("%s: SHA-256 %s, but its sidecar records %s: not used (rebuilt where the caller builds)",
                    path, actual, sha)
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


def _build(path: Path, sidecar: Path, description: dict, shape: tuple[int, ...], fill: FillFn, chunk: int) -> str:
    """Write the array from `fill` (then the sidecar); returns the file's SHA-256."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    digest = hashlib.sha256(header.getvalue())
    with atomic_write(path) as f:
        f.write(header.getvalue())
        for start in range(0, shape[0], chunk):
            stop = min(shape[0], start + chunk)
            block = np.ascontiguousarray(fill(start, stop))
            expected = (stop - start, *shape[1:])
            if block.dtype != np.uint8 or block.shape != expected:
                raise ValueError(f"fill({start}, {stop}) gave {block.dtype} {block.shape}, expected uint8 {expected}")
            digest.update(block.data)
            f.write(block.data)
    sha = digest.hexdigest()
    with atomic_write(sidecar, "w") as f:
        json.dump({"description": description, "shape": list(shape), "sha256": sha}, f, indent=1)
    log.info("cached %s: %d rows, %d MB", path, shape[0], path.stat().st_size >> 20)
    return sha
