"""Datasets: `get(name, **params)` returns an ImageDataset (GroundTruthDataset where factors exist)."""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any, Callable

from vaebench.data.base import GroundTruthDataset, ImageDataset
from vaebench.data.digits import Digits
from vaebench.data.dsprites import DSprites
from vaebench.errors import ConfigError
from vaebench.registry import Registry

DATASETS: Registry[Callable[..., ImageDataset]] = Registry("dataset")
DATASETS.add("dsprites", DSprites)
DATASETS.add("color_dsprites", lambda **p: DSprites(mode="color", **p))
DATASETS.add("noisy_dsprites", lambda **p: DSprites(mode="noisy", **p))
DATASETS.add("digits", Digits)


def dataset_parameters(name: str) -> list[str]:
    """The keyword parameters a dataset accepts."""
    factory = DATASETS.get(name)
    target = DSprites if factory not in (Digits, DSprites) and "dsprites" in name else factory
    return [p for p in inspect.signature(target).parameters if p != "mode"]


def check_dataset_params(name: str, params: dict[str, Any]) -> None:
    allowed = dataset_parameters(name)
    for key in params:
        if key not in allowed:
            raise ConfigError(f"unknown parameter for dataset {name!r}; allowed: {', '.join(allowed)}", key=key)


def get(name: str, **params: Any) -> ImageDataset:
    """The dataset `name` built with `params` (cached: datasets are immutable)."""
    DATASETS.get(name)
    check_dataset_params(name, params)
    return _build(name, tuple(sorted(params.items())))


@lru_cache(maxsize=8)
def _build(name: str, params: tuple) -> ImageDataset:
    return DATASETS.get(name)(**dict(params))


__all__ = ["DATASETS", "GroundTruthDataset", "ImageDataset", "get", "check_dataset_params"]
