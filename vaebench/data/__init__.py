"""Datasets: `get(name, **params)` returns an ImageDataset (GroundTruthDataset where factors exist)."""

from __future__ import annotations

import inspect
from functools import lru_cache, partial
from typing import Any, Callable

from vaebench.data.base import GroundTruthDataset, ImageDataset
from vaebench.data.digits import Digits
from vaebench.data.dsprites import DSprites
from vaebench.data.idx import MNIST, FashionMNIST
from vaebench.data.npz_dsprites import DSpritesFile
from vaebench.data.shapes3d import Shapes3D
from vaebench.errors import ConfigError
from vaebench.registry import Registry

DATASETS: Registry[Callable[..., ImageDataset]] = Registry("dataset")
DATASETS.add("dsprites", partial(DSprites, mode="binary"))
DATASETS.add("color_dsprites", partial(DSprites, mode="color"))
DATASETS.add("noisy_dsprites", partial(DSprites, mode="noisy"))
DATASETS.add("digits", Digits)
DATASETS.add("mnist", MNIST)
DATASETS.add("fashion_mnist", FashionMNIST)
DATASETS.add("dsprites_file", DSpritesFile)
DATASETS.add("shapes3d", Shapes3D)


def dataset_parameters(name: str) -> list[str]:
    """The keyword parameters a dataset accepts: its factory's, less those its registration fixes."""
    factory = DATASETS.get(name)
    fixed = factory.keywords if isinstance(factory, partial) else {}
    return [p for p in inspect.signature(factory).parameters if p not in fixed]


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
