"""Variants registered by name, and the one function that builds any of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from vaebench.registry import Registry
from vaebench.variants.base import Variant
from vaebench.variants.networks import check_network_size

VARIANTS: Registry[type[Variant]] = Registry("variant")
V = TypeVar("V", bound=type[Variant])


# the variant name under which the store keeps models trained elsewhere (vaebench.bench.spec.ExternalSpec)
RESERVED = ("external",)


def register_variant(name: str) -> Callable[[V], V]:
    """Register a variant class under `name` (not one of RESERVED: a ValueError at registration)."""
    if name in RESERVED:
        raise ValueError(f"variant name {name!r} is reserved: the store keeps models trained elsewhere under it")

    def decorator(cls: V) -> V:
        cls.name = name
        VARIANTS.add(name, cls)
        return cls

    return decorator


def build_variant(
    name: str,
    hyperparameters: dict[str, Any],
    *,
    image_shape: tuple[int, int, int],
    latent_dim: int,
    architecture: str,
    likelihood: str,
    network: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
) -> Variant:
    """The variant `name` with validated hyperparameters (ConfigError names a bad key).

    network: the `mlp` options (hidden widths, activation; `vaebench.variants.networks`), as a
    mapping or a RunSpec's frozen items; passed on only when given, so a plugin's variant whose
    constructor predates them still builds."""
    cls = VARIANTS.get(name)
    hparams = cls.Hyperparameters.from_dict(hyperparameters)
    network = dict(network)
    check_network_size(architecture, image_shape, latent_dim, network)  # before anything is allocated
    extra = {"network": network} if network else {}
    return cls(hparams, image_shape=image_shape, latent_dim=latent_dim, architecture=architecture,
               likelihood=likelihood, **extra)
