"""Datasets registered by name with the parameters a suite may set, with the decorator every
dataset (and a plugin's) uses.

A dataset declares its parameters as `Param`s, as variants' hyperparameters and metrics' options
are declared (`vaebench.params`):

    @register_dataset("squares", params=[Param("count", 240, minimum=1), *split_params(test_size=40)])
    class Squares(ImageDataset):
        def __init__(self, count: int = 240, test_size: int = 40): ...

`vaebench.data.get` builds it with every declared parameter, given or default; an undeclared
key is an error naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from vaebench.params import Param
from vaebench.registry import Registry


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its factory (the registration's fixed keywords bound) and its declared parameters."""

    factory: Callable[..., Any]
    params: tuple[Param, ...] = ()

    def __call__(self, **params: Any) -> Any:
        """The dataset built by its factory with `params` (unchecked: `vaebench.data.get` checks them)."""
        return self.factory(**params)

    def param(self, key: str) -> Param | None:
        """The declaration of parameter `key`, or None when the dataset declares no such parameter."""
        return next((p for p in self.params if p.key == key), None)


DATASETS: Registry[DatasetEntry] = Registry("dataset")

F = TypeVar("F", bound=Callable[..., Any])


def register_dataset(name: str, *, params: Iterable[Param] = (), **fixed: Any) -> Callable[[F], F]:
    """Register a dataset class or factory under `name`, with the parameters a suite may set (`params`);
    `fixed` keyword arguments are bound and are not parameters (e.g.
    @register_dataset("noisy_dsprites", params=DSPRITES_PARAMS, mode="noisy")).
    A key declared twice, or both declared and fixed, is a ValueError at registration."""
    declared = tuple(params)
    keys = [p.key for p in declared]
    twice = sorted({k for k in keys if keys.count(k) > 1} | (set(keys) & set(fixed)))
    if twice:
        raise ValueError(f"dataset {name!r} declares the parameter(s) {', '.join(map(repr, twice))} twice "
                         "(or both declares and fixes them)")

    def decorator(factory: F) -> F:
        DATASETS.add(name, DatasetEntry(partial(factory, **fixed) if fixed else factory, declared))
        return factory

    return decorator


def path_param(what: str) -> Param:
    """The `path` parameter of a dataset read from files: `what` it names (a file or a directory)."""
    return Param("path", None, type=str, doc=f"{what} (or ${{VAEBENCH_DATA}}/...; vaebench.data.data_root)")


def split_params(test_size: int) -> tuple[Param, Param]:
    """`test_size` (default `test_size`) and `split_seed` (default 0): the parameters of a dataset that
    holds out a random test split (`vaebench.data.base.fixed_split`)."""
    return (Param("test_size", test_size, doc="images held out as the test split"),
            Param("split_seed", 0, doc="seed of the random train/test split"))
