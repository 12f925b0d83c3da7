"""A name -> object registry with one clear error for unknown names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from vaebench.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects registered by name: variants, datasets, metrics, architectures."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj

    def get(self, name: str, *, file: str | None = None, key: str | None = None) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            allowed = ", ".join(sorted(self._items))
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; allowed: {allowed}", file=file, key=key
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())
