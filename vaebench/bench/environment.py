"""The environment recorded with every run: package versions, git commit, device, threads."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from typing import Any

import torch

from vaebench.errors import ConfigError

PACKAGES = ("vaebench", "torch", "torchmetrics", "numpy", "scipy", "scikit-learn", "pandas")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the working directory's repository, if it is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


DEVICES = ("cpu", "cuda")


def check_device(device: str, *, key: str = "--device") -> torch.device:
    """The device `device` names: a ConfigError unless it is one of DEVICES and, for cuda, CUDA is available."""
    if device not in DEVICES:
        raise ConfigError(f"must be one of {', '.join(map(repr, DEVICES))}, got {device!r}", key=key)
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA is not available on this machine; use --device cpu", key=key)
    return torch.device(device)


def describe_environment(device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {
        "packages": {p: _version(p) for p in PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "device": f"{device.type}: {name}",
        "torch_threads": torch.get_num_threads(),
    }
