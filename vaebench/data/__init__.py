"""Datasets: `get(name, **params)` returns an ImageDataset (GroundTruthDataset where factors exist)."""

from __future__ import annotations

import inspect
from functools import lru_cache, partial
from typing import Any

# each module registers its datasets with @register_dataset
from vaebench.data import (  # noqa: F401
    binarized_mnist, cars3d, cifar10, digits, dsprites, idx, image_folder, mpi3d, npz_dsprites, npz_images,
    scream_dsprites, shapes3d, smallnorb,
)
from vaebench.data.base import GroundTruthDataset, ImageDataset
from vaebench.data.checked import checked
from vaebench.data.data_root import expand_path_variables
from vaebench.data.registry import DATASETS, register_dataset
from vaebench.errors import ConfigError


def _parameters(name: str) -> list[inspect.Parameter]:
    """The keyword parameters a dataset accepts: its factory's, less those its registration fixes."""
    factory = DATASETS.get(name)
    fixed = factory.keywords if isinstance(factory, partial) else {}
    return [p for p in inspect.signature(factory).parameters.values() if p.name not in fixed]


def dataset_parameters(name: str) -> list[str]:
    """The names of the parameters a suite may set for dataset `name`."""
    return [p.name for p in _parameters(name)]


def dataset_defaults(name: str) -> dict[str, Any]:
    """The parameters of dataset `name` that have a default, with it."""
    return {p.name: p.default for p in _parameters(name) if p.default is not inspect.Parameter.empty}


def check_dataset_params(name: str, params: dict[str, Any]) -> None:
    allowed = dataset_parameters(name)
    for key in params:
        if key not in allowed:
            raise ConfigError(f"unknown parameter for dataset {name!r}; allowed: {', '.join(allowed)}", key=key)


def get(name: str, **params: Any) -> ImageDataset:
    """The dataset `name` built with `params` (cached: datasets are immutable). A `path` naming an
    environment variable is expanded first (`vaebench.data.data_root`), so the cache follows it."""
    DATASETS.get(name)
    check_dataset_params(name, params)
    if isinstance(params.get("path"), str):
        params = {**params, "path": expand_path_variables(params["path"])}
    return _build(name, tuple(sorted(params.items())))


@lru_cache(maxsize=8)
def _build(name: str, params: tuple) -> ImageDataset:
    """The dataset; a user's (a plugin's) behind its checked contract (`vaebench.data.checked`)."""
    return checked(DATASETS.get(name)(**dict(params)), name)


__all__ = ["DATASETS", "GroundTruthDataset", "ImageDataset", "get", "check_dataset_params", "register_dataset"]
