"""Files written whole or not at all, and content hashes: the one place for both.

`atomic_write` writes to a temporary file beside the target and renames it over the
target, so a kill or a full disk never leaves a half-written file under the real name;
`content_hash` is the identity of a JSON-able value (a run spec, a cache key), and
`file_sha256` the identity of a file's bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch

TMP_SUFFIX = ".tmp"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def content_hash(value: Any, length: int = 16) -> str:
    """The first `length` hex digits of the SHA-256 of `value`'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def file_sha256(path: str | Path) -> str:
    """The SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# file_sha256 by (device, inode, size, mtime, ctime): a file is read once per process until it changes
# (any write or replacement changes its ctime, which no user call can set back)
_SHA256_SEEN: dict[tuple, str] = {}


def file_sha256_once(path: str | Path) -> str:
    """`file_sha256`, remembered in this process while the file's stat data stays the same."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _SHA256_SEEN:
        _SHA256_SEEN[key] = file_sha256(path)
    return _SHA256_SEEN[key]


def safe_text(text: str) -> str:
    """`text` encodable as UTF-8: a file name's undecodable bytes (which Python keeps as lone surrogates)
    written as \\xNN, any other lone surrogate as \\uNNNN. For text that goes into the store, a file or
    the terminal, where a surrogate would raise UnicodeEncodeError."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape" if _only_escapes(text) else "backslashreplace").decode(
            "utf-8", "backslashreplace")


def _only_escapes(text: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`safe_text` with control characters other than newline and tab written as \\xNN: terminal escape
    sequences in a crafted store or file name are shown, not obeyed by the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", safe_text(text))


def safe_value(value: Any) -> Any:
    """`value` (a JSON-able structure) with every string, key or value, passed through `safe_text`."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_value(k): safe_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe_value(v) for v in value]
    return value


def finite_or_none(value: Any) -> float | None:
    """A number as a store or a baseline keeps it: a finite float, or None (NULL, null) for None, NaN and infinities."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def temporary_path(path: Path) -> Path:
    """A hidden sibling of `path` unique to this host and process, ending in TMP_SUFFIX."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}{TMP_SUFFIX}")


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save through `atomic_write`."""
    with atomic_write(path) as f:
        torch.save(obj, f)
