"""Datasets registered by name, with the decorator every dataset (and a plugin's) uses."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, TypeVar

from vaebench.registry import Registry

DATASETS: Registry[Callable[..., Any]] = Registry("dataset")

F = TypeVar("F", bound=Callable[..., Any])


def register_dataset(name: str, **fixed: Any) -> Callable[[F], F]:
    """Register a dataset class or factory under `name`; `fixed` keyword arguments are bound
    and are no longer parameters a suite may set (e.g. @register_dataset("noisy_dsprites", mode="noisy"))."""

    def decorator(factory: F) -> F:
        DATASETS.add(name, partial(factory, **fixed) if fixed else factory)
        return factory

    return decorator
