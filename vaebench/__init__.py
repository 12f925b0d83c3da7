"""vaebench: a benchmark and evaluation suite for VAE-family generative models.

The public API, imported on first use so that `import vaebench` stays light:

    vaebench.run, vaebench.load_results, vaebench.load_model          (vaebench.api)
    vaebench.register_variant, vaebench.register_metric, vaebench.register_dataset
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "run": "vaebench.api",
    "load_results": "vaebench.api",
    "load_model": "vaebench.api",
    "register_variant": "vaebench.variants",
    "register_metric": "vaebench.metrics",
    "register_dataset": "vaebench.data",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vaebench' has no attribute {name!r}")
