"""Published values as data: one TOML file per source under `vaebench/reference/sources/`,
schema-checked when this package is imported (`vaebench.reference.schema` documents the format;
`SOURCES.md` beside it says where each value was read).

    >>> from vaebench.reference import REFERENCES, get_reference
    >>> get_reference("burda2016-iwae-k50-l1").value
    84.78
"""

from __future__ import annotations

from pathlib import Path

from vaebench.errors import UnknownNameError
from vaebench.reference.schema import (
    DatasetProtocol,
    MetricProtocol,
    Reference,
    Source,
    TrainingProtocol,
    load_reference_file,
    load_references,
    parse_reference_table,
)

SOURCES_DIR = Path(__file__).with_name("sources")


def shipped_files() -> list[Path]:
    """The reference files shipped with vaebench, in name order."""
    return sorted(SOURCES_DIR.glob("*.toml"))


REFERENCES: dict[str, Reference] = load_references(shipped_files())


def get_reference(reference_id: str) -> Reference:
    """The shipped reference `reference_id`; UnknownNameError listing the known ids otherwise."""
    try:
        return REFERENCES[reference_id]
    except KeyError:
        raise UnknownNameError(f"unknown reference {reference_id!r}; known: {', '.join(sorted(REFERENCES))}",
                               key="reference") from None


__all__ = [
    "DatasetProtocol", "MetricProtocol", "REFERENCES", "Reference", "SOURCES_DIR", "Source", "TrainingProtocol",
    "get_reference", "load_reference_file", "load_references", "parse_reference_table", "shipped_files",
]
