"""Cache entries that are verified on load: never a wrong number from an edited or stale file.

An entry is a dict of tensors saved with the `key` it was computed from (a content hash of
its inputs) and the SHA-256 of its own tensors. `load_entry` returns None, and logs why, when
the file is missing, unreadable, computed from something else or altered since it was
written; the caller then recomputes and stores it again. Entries load with
`torch.load(weights_only=True)` and are written atomically.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from vaebench.files import atomic_torch_save

log = logging.getLogger(__name__)


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of the tensors, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def store_entry(path: str | Path, key: str, tensors: dict[str, torch.Tensor]) -> None:
    """Save `tensors` under `key` with their content hash."""
    atomic_torch_save({"key": key, "sha256": tensors_sha256(tensors), "tensors": tensors}, path)


def load_entry(path: str | Path, key: str) -> dict[str, torch.Tensor] | None:
    """The tensors stored under `key` at `path` if the file is intact; None (with a log line) otherwise."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        tensors = entry["tensors"]
        stored_key, stored_sha = entry["key"], entry["sha256"]
    except Exception as exc:  # noqa: BLE001 - a truncated, foreign or crafted file
        log.warning("cache %s is unreadable (%s); recomputing it", path, type(exc).__name__)
        return None
    if stored_key != key:
        log.warning("cache %s was computed from other inputs (key %s, expected %s); recomputing it",
                    path, stored_key, key)
        return None
    if not isinstance(tensors, dict) or tensors_sha256(tensors) != stored_sha:
        log.warning("cache %s does not match its content hash (edited or corrupt); recomputing it", path)
        return None
    return tensors
