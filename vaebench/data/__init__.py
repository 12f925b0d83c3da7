"""Datasets: `get(name, **params)` returns an ImageDataset (GroundTruthDataset where factors exist)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

# each module registers its datasets with @register_dataset
from vaebench.data import (  # noqa: F401 - each module registers its datasets
    binarized_mnist,
    cars3d,
    cifar10,
    digits,
    dsprites,
    idx,
    image_folder,
    mpi3d,
    npz_dsprites,
    npz_images,
    scream_dsprites,
    shapes3d,
    smallnorb,
)
from vaebench.data.base import GroundTruthDataset, ImageDataset
from vaebench.data.checked import checked
from vaebench.data.data_root import expand_path_variables
from vaebench.data.registry import DATASETS, register_dataset
from vaebench.errors import ConfigError
from vaebench.params import Param


def dataset_params(name: str) -> tuple[Param, ...]:
    """The parameters a suite may set for dataset `name`, as it declares them (`register_dataset`)."""
    return DATASETS.get(name).params


def dataset_parameters(name: str) -> list[str]:
    """The names of the parameters a suite may set for dataset `name`."""
    return [p.key for p in dataset_params(name)]


def check_dataset_params(name: str, params: Mapping[str, Any]) -> None:
    """ConfigError naming the first key of `params` that dataset `name` does not declare."""
    allowed = dataset_parameters(name)
    for key in params:
        if key not in allowed:
            listed = ", ".join(allowed) or (
                "none (a dataset declares its parameters: register_dataset(name, params=...))")
            raise ConfigError(f"unknown parameter for dataset {name!r}; allowed: {listed}", key=key)


def get(name: str, **params: Any) -> ImageDataset:
    """The dataset `name` built with `params` and the declared defaults of the others (cached: datasets
    are immutable). A `path` naming an environment variable is expanded first
    (`vaebench.data.data_root`), so the cache follows it."""
    check_dataset_params(name, params)
    if isinstance(params.get("path"), str):
        params = {**params, "path": expand_path_variables(params["path"])}
    return _build(name, tuple((p.key, params.get(p.key, p.default)) for p in dataset_params(name)))


@lru_cache(maxsize=8)
def _build(name: str, params: tuple[tuple[str, Any], ...]) -> ImageDataset:
    """The dataset; a user's (a plugin's) behind its checked contract (`vaebench.data.checked`)."""
    return checked(DATASETS.get(name)(**dict(params)), name)


__all__ = ["DATASETS", "GroundTruthDataset", "ImageDataset", "get", "check_dataset_params", "dataset_params",
           "register_dataset"]
