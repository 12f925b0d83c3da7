"""Declared parameters: one way to state a parameter's type, default and range, and check it.

Suite tables ([budget], [model], [evaluation.params]), a variant's hyperparameters and a
metric's options are all declared as `Param`s and checked by `check_params`, so every bad
value gives the same one-line `ConfigError` naming the file, the key and what is allowed,
in the style of scikit-learn's declarative parameter constraints.

    >>> check_params({"steps": 10}, [Param("steps", 1000, minimum=1)])
    {'steps': 10}
"""

from __future__ import annotations

import builtins
import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaebench.errors import ConfigError, DataError

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclass(frozen=True)
class Param:
    """One parameter: `key`, `default`, and what a given value must be.

    type: int, float, str or bool (default: the type of `default`); an int is accepted
        for a float and converted, a bool is never accepted for a number.
    minimum, maximum: inclusive bounds for numbers; `greater_than`, `less_than` exclusive ones.
    choices: the allowed values (names such as a kernel or learner).
    existing_file: the value is the path of a file that must exist (a DataError when the suite loads).
    doc: one line for `vaebench list` and the docs.
    from_dataset: for a variant's hyperparameter whose value follows from the data (default None): the
        function of the dataset a run trains on that gives the value the suite leaves unset, e.g. the size
        of its training split (`vaebench.variants.Hyperparameters.for_dataset`, the one hook).
    """

    key: str
    default: Any
    type: type | None = None
    minimum: float | None = None
    maximum: float | None = None
    greater_than: float | None = None
    less_than: float | None = None
    choices: tuple[Any, ...] | None = None
    existing_file: bool = False
    doc: str = ""
    from_dataset: Callable[[Any], Any] | None = None

    @property
    def value_type(self) -> builtins.type:
        return self.type if self.type is not None else type(self.default)

    def allowed(self) -> str:
        """What a value must be, in words: 'an integer >= 1', "one of 'imq', 'rbf'"."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        bounds = []
        if self.greater_than is not None:
            bounds.append(f"> {self.greater_than:g}")
        if self.minimum is not None:
            bounds.append(f">= {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"<= {self.maximum:g}")
        if self.less_than is not None:
            bounds.append(f"< {self.less_than:g}")
        return " ".join([_TYPE_NAMES.get(self.value_type, self.value_type.__name__), " and ".join(bounds)]).strip()

    def check(self, value: Any, *, file: str | None = None, prefix: str = "") -> Any:
        """The value, converted (int -> float where a float is declared); ConfigError if not allowed.

        None is allowed where the default is None (an optional parameter left unset)."""
        if value is None and self.default is None:
            return None
        expected = self.value_type
        ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if ok and expected is float and not math.isfinite(value):
            ok = False
        if ok and self.choices is not None:
            ok = value in self.choices
        if ok and expected in (int, float):
            ok = (
                (self.minimum is None or value >= self.minimum)
                and (self.maximum is None or value <= self.maximum)
                and (self.greater_than is None or value > self.greater_than)
                and (self.less_than is None or value < self.less_than)
            )
        if not ok:
            raise ConfigError(f"must be {self.allowed()}, got {value!r}", file=file, key=f"{prefix}{self.key}")
        if self.existing_file and not Path(value).expanduser().is_file():
            where = f"{file}: " if file else ""
            raise DataError(f"{where}key '{prefix}{self.key}': no such file: {value}")
        return value


def check_params(
    given: Mapping[str, Any], declared: Iterable[Param], *, file: str | None = None, prefix: str = ""
) -> dict[str, Any]:
    """Every declared parameter, given or default, checked; an undeclared key is an error."""
    params = {p.key: p for p in declared}
    for key in given:
        if key not in params:
            allowed = ", ".join(params) or "none"
            raise ConfigError(f"unknown key; allowed: {allowed}", file=file, key=f"{prefix}{key}")
    return {
        key: (p.check(given[key], file=file, prefix=prefix) if key in given else p.default) for key, p in params.items()
    }


def hyperparameter(default: Any, **constraints: Any) -> Any:
    """A dataclass field declared as a `Param` (used by variants' Hyperparameters classes):

        beta: float = hyperparameter(4.0, minimum=0.0, doc="weight of the KL term")
        dataset_size: int | None = hyperparameter(None, type=int, minimum=1, from_dataset=training_images)
    """
    return dataclasses.field(default=default, metadata={"constraints": constraints})


def dataclass_params(cls: type) -> list[Param]:
    """The `Param`s of a dataclass whose fields are declared with `hyperparameter` (or plain defaults)."""
    return [
        Param(f.name, f.default, **dict(f.metadata.get("constraints", {})))
        for f in dataclasses.fields(cls)
    ]
