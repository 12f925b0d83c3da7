"""What a run is made from beyond its spec: the code and the data, by content.

A run's id is its spec, so an edited plugin or a replaced data file keeps the id. A run that
trains in pieces (killed, then resumed from a checkpoint) must not train its first steps on one
version and the rest on another: its checkpoints record `made_from(...)`, and a checkpoint made
from anything else is not resumed (`changes` says what differs; the run restarts from step 0,
with a log line and a note in its environment).

    code  the SHA-256 of each plugin's source (`vaebench.plugins`), and the versions of vaebench
          and torch
    data  the SHA-256 of every file the dataset reads (`ImageDataset.source_files()`; none for a
          procedural dataset, whose images are code), each file read once per process until it
          changes (`vaebench.files.file_sha256_once`)
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

import torch

from vaebench.data import ImageDataset
from vaebench.files import file_sha256_once


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def code_identity(plugins: list[dict[str, str]]) -> dict[str, str]:
    """{what: identity} of the code a run executes: each plugin's source hash, vaebench's and torch's versions."""
    code = {f"plugin {p['name']}": p.get("source") or p.get("version", "") for p in plugins}
    code.update({"package vaebench": _version("vaebench"), "package torch": str(torch.__version__)})
    return code


def data_identity(dataset: ImageDataset) -> dict[str, str]:
    """{file: 'sha256:<hex>'} of every file the dataset reads."""
    return {f"data file {path}": f"sha256:{file_sha256_once(path)}" for path in dataset.source_files()}


def made_from(dataset: ImageDataset, plugins: list[dict[str, str]]) -> dict[str, str]:
    """Everything a run is made from besides its spec, as {what: identity}."""
    return {**code_identity(plugins), **data_identity(dataset)}


def changes(recorded: Any, current: dict[str, str]) -> list[str]:
    """What differs between a checkpoint's record and now, in words; [] when they agree."""
    if not isinstance(recorded, dict):
        return ["the checkpoint records no identity of its code and data"]
    out = []
    for what in sorted(set(recorded) | set(current)):
        before, now = recorded.get(what), current.get(what)
        if before != now:
            out.append(f"{what}: {_short(before)} -> {_short(now)}")
    return out


def _short(identity: Any) -> str:
    if identity is None:
        return "absent"
    text = str(identity)
    return text[:19] + "..." if text.startswith("sha256:") and len(text) > 19 else text
