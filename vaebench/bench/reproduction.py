"""Suites that reproduce published values: the `reproduces` key of a variant entry, and the suite
`vaebench reproduce REFERENCE_ID` runs.

    [[variants]]
    name = "iwae"
    k = 50
    reproduces = "burda2016-iwae-k50-l1"          # or a list: one run may reproduce several values

Each id must be a reference of `vaebench.reference` on the same dataset as the suite's; an entry
that reproduces something is one setting (no grid: a grid point would silently inherit values
published for another). The ids are recorded in each run's environment (`reproduces`), which is
what `vaebench compare` reads; they are not part of the spec, so adding them changes no run id.

A reference's `suite` is a path relative to the repository (`suites/reproduce/...`); `vaebench
reproduce ID` loads it and runs only the specs that reproduce ID.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from vaebench.errors import ConfigError, UnknownNameError

REPRODUCES_KEY = "reproduces"
REPOSITORY = Path(__file__).resolve().parents[2]


def _references() -> dict:
    from vaebench.reference import REFERENCES

    return REFERENCES


def pop_reproduces(params: dict[str, Any], *, file: str, prefix: str) -> tuple[str, ...]:
    """Remove `reproduces` from a variant entry's parameters and return its checked reference ids."""
    value = params.pop(REPRODUCES_KEY, None)
    if value is None:
        return ()
    key = f"{prefix}{REPRODUCES_KEY}"
    ids = [value] if isinstance(value, str) else value
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ConfigError(f"must be a reference id or a non-empty array of them, got {value!r}", file=file, key=key)
    known = _references()
    for ref_id in ids:
        if ref_id not in known:
            raise UnknownNameError(f"unknown reference {ref_id!r}; known: {', '.join(sorted(known))} "
                                   "(vaebench reproduce --list)", file=file, key=key)
    grid = [k for k, v in params.items() if isinstance(v, list)]
    if grid:
        raise ConfigError(f"an entry that reproduces published values is one setting, but {grid[0]!r} is a grid; "
                          "write one [[variants]] entry per setting", file=file, key=f"{prefix}{grid[0]}")
    return tuple(dict.fromkeys(ids))


def check_reference_dataset(ids: tuple[str, ...], dataset: str, *, file: str, key: str) -> None:
    """ConfigError unless every reference in `ids` was published on `dataset`."""
    known = _references()
    for ref_id in ids:
        published_on = known[ref_id].dataset.name
        if published_on != dataset:
            raise ConfigError(f"reference {ref_id!r} is a value on dataset {published_on!r}, not {dataset!r}",
                              file=file, key=key)


def reference_suite_path(reference_id: str) -> Path:
    """The suite file that reproduces `reference_id` (its `suite`, relative to the repository)."""
    from vaebench.reference import get_reference

    ref = get_reference(reference_id)
    if ref.suite is None:
        raise ConfigError(f"no suite reproduces {reference_id!r} (its entry in {Path(ref.source.file).name} names "
                          "none); `vaebench reproduce --list` shows those that have one", key="reference")
    path = REPOSITORY / ref.suite
    if not path.is_file():
        raise ConfigError(f"the suite of {reference_id!r}, {ref.suite}, is not at {path} (vaebench's suites/ folder "
                          "is in its source repository)", key="reference")
    return path


def suite_for_reference(suite: Any, reference_id: str) -> Any:
    """`suite` restricted to the runs that reproduce `reference_id` (a ConfigError if there is none)."""
    chosen = tuple(spec for spec in suite.specs if reference_id in suite.reproduces.get(spec, ()))
    if not chosen:
        named = sorted({r for ids in suite.reproduces.values() for r in ids})
        raise ConfigError(f"no run of this suite reproduces {reference_id!r}; its entries reproduce: "
                          f"{', '.join(named) or 'nothing'}", file=suite.path, key="variants")
    return dataclasses.replace(suite, specs=chosen)
