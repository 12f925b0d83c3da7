"""Published values as typed data: the schema of a reference file and its loader.

One TOML file per source (a paper, or a library's published reproduction table):

    [source]        id, authors, year, title, venue, arxiv and/or doi (or url), code (optional),
                    read ("paper" | "code" | "secondary"): how the values were checked, and
                    read_in: where, when not in the paper itself (required unless read = "paper")
    [defaults]      optional: any entry key but `id`, shared by every entry; an entry's own value
                    wins, key by key inside the dataset / protocol / metric tables
    [[references]]  one published value each:
        id                      unique across every file, e.g. "burda2016-iwae-k50-l1"
        where                   the table or figure and its row, e.g. "Table 1, MNIST, 1 layer, IWAE, k = 50"
        quote                   the line of the source the value was read from, verbatim
        model                   what the row is
        value                   the published number (as a vaebench value: a -log p(x) is positive)
        uncertainty, uncertainty_kind   the published +-, and what it is (both or neither)
        tolerance, tolerance_reason     how close a reproduction must come (|measured - value|), and why
        reproduces              optional: the id of the entry this one reproduces (pythae's run of a paper)
        suite                   optional: the suite file that reproduces it, relative to the repository
        departures              optional: what vaebench's suite knowingly does differently
        [dataset]   name (a vaebench dataset), preprocessing, train, validation (optional), test
        [protocol]  architecture, objective, hyperparameters (table, optional), optimizer, schedule,
                    batch_size / epochs / steps (integers, optional), budget, selection, sampler (optional:
                    "replacement" | "shuffle" | "sequential", how the source draws its batches:
                    vaebench.bench.sampler)
        [metric]    name (a vaebench metric value, or for kind = "curve" a logged training curve, or curves
                    joined by " + ", summed step by step), kind, unit,
                    estimator, split ("train" | "validation" | "test"), importance_samples (optional)

A protocol item the sources do not state is written as text saying so (e.g. "not stated in the
sources read"), never left out, so a reader sees what is unknown. Every mistake is a
`ConfigError` naming the file and the key (`references[2].metric.split`).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaebench.bench.sampler import SAMPLERS
from vaebench.errors import ConfigError
from vaebench.params import Param

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}\Z")
ARXIV_PATTERN = re.compile(r"\d{4}\.\d{4,5}(v\d+)?\Z")
DOI_PATTERN = re.compile(r"10\.\d{4,9}/\S+\Z")
READ_KINDS = ("paper", "code", "secondary")
METRIC_KINDS = ("metric", "curve")
SPLITS = ("train", "validation", "test")

Frozen = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Source:
    """Where the values of one file were published, and how they were checked."""

    id: str
    authors: tuple[str, ...]
    year: int
    title: str
    venue: str
    read: str
    file: str
    arxiv: str | None = None
    doi: str | None = None
    url: str | None = None
    code: str | None = None
    read_in: str | None = None

    @property
    def citation(self) -> str:
        """'Burda, Grosse & Salakhutdinov 2016' (first author 'et al.' beyond three)."""
        surnames = [a.split()[-1] for a in self.authors]
        if len(surnames) > 3:
            names = f"{surnames[0]} et al."
        elif len(surnames) > 1:
            names = ", ".join(surnames[:-1]) + " & " + surnames[-1]
        else:
            names = surnames[0]
        return f"{names} {self.year}"


@dataclass(frozen=True)
class DatasetProtocol:
    name: str
    preprocessing: str
    train: str
    test: str
    validation: str | None = None


@dataclass(frozen=True)
class TrainingProtocol:
    architecture: str
    objective: str
    optimizer: str
    schedule: str
    budget: str
    selection: str
    hyperparameters: Frozen = ()
    batch_size: int | None = None
    epochs: int | None = None
    steps: int | None = None
    sampler: str | None = None


@dataclass(frozen=True)
class MetricProtocol:
    name: str
    estimator: str
    split: str
    kind: str = "metric"
    unit: str = "nats"
    importance_samples: int | None = None


@dataclass(frozen=True)
class Reference:
    """One published value with its source, protocol and the tolerance a reproduction must meet."""

    id: str
    source: Source
    where: str
    quote: str
    model: str
    value: float
    tolerance: float
    tolerance_reason: str
    dataset: DatasetProtocol
    protocol: TrainingProtocol
    metric: MetricProtocol
    uncertainty: float | None = None
    uncertainty_kind: str | None = None
    reproduces: str | None = None
    suite: str | None = None
    departures: tuple[str, ...] = field(default_factory=tuple)


def _text(key: str, default: str | None = None) -> Param:
    return Param(key, default, type=str)


# (declared fields, the keys among them that must be given); a field not given takes its default
SOURCE_FIELDS = (
    (_text("id"), _text("title"), _text("venue"), Param("year", None, type=int, minimum=1900, maximum=2100),
     Param("read", None, type=str, choices=READ_KINDS), _text("arxiv"), _text("doi"), _text("url"), _text("code"),
     _text("read_in")),
    {"id", "title", "venue", "year", "read"},
)
DATASET_FIELDS = (
    (_text("name"), _text("preprocessing"), _text("train"), _text("test"), _text("validation")),
    {"name", "preprocessing", "train", "test"},
)
PROTOCOL_FIELDS = (
    (_text("architecture"), _text("objective"), _text("optimizer"), _text("schedule"), _text("budget"),
     _text("selection"), Param("batch_size", None, type=int, minimum=1), Param("epochs", None, type=int, minimum=1),
     Param("steps", None, type=int, minimum=1), Param("sampler", None, type=str, choices=SAMPLERS)),
    {"architecture", "objective", "optimizer", "schedule", "budget", "selection"},
)
METRIC_FIELDS = (
    (_text("name"), _text("estimator"), Param("split", None, type=str, choices=SPLITS),
     Param("kind", "metric", choices=METRIC_KINDS), _text("unit", "nats"),
     Param("importance_samples", None, type=int, minimum=1)),
    {"name", "estimator", "split"},
)
ENTRY_FIELDS = (
    (_text("id"), _text("where"), _text("quote"), _text("model"), Param("value", None, type=float),
     Param("tolerance", None, type=float, greater_than=0.0), _text("tolerance_reason"),
     Param("uncertainty", None, type=float, minimum=0.0), _text("uncertainty_kind"), _text("reproduces"),
     _text("suite")),
    {"id", "where", "quote", "model", "value", "tolerance", "tolerance_reason"},
)
ENTRY_TABLES = ("dataset", "protocol", "metric")
TOP_LEVEL_KEYS = ("source", "defaults", "references")


def _check_fields(table: Mapping[str, Any], spec: tuple[tuple[Param, ...], set[str]], *, file: str, prefix: str,
                  extra: Iterable[str] = ()) -> dict[str, Any]:
    """The declared fields of `table`, checked and defaults filled in: a required field must be
    given, an undeclared key (other than `extra`, parsed by the caller) is an error, and text
    may not be blank."""
    fields, required = spec
    declared = {p.key: p for p in fields}
    allowed = [*declared, *extra]
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key; allowed: {', '.join(allowed)}", file=file, key=f"{prefix}{key}")
    out: dict[str, Any] = {}
    for key, p in declared.items():
        if key not in table:
            if key in required:
                raise ConfigError(f"required: {p.allowed()}", file=file, key=f"{prefix}{key}")
            out[key] = p.default
            continue
        value = p.check(table[key], file=file, prefix=prefix)
        if isinstance(value, str) and not value.strip():
            raise ConfigError("must not be blank", file=file, key=f"{prefix}{key}")
        out[key] = value
    return out


def _table(raw: Mapping[str, Any], key: str, *, file: str, prefix: str, required: bool = True) -> dict[str, Any]:
    value = raw.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        what = "required: a table" if value is None else f"must be a table, got {type(value).__name__}"
        raise ConfigError(what, file=file, key=f"{prefix}{key}")
    return value


def _strings(raw: Mapping[str, Any], key: str, *, file: str, prefix: str, required: bool) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None and not required:
        return ()
    if (not isinstance(value, list) or (required and not value)
            or not all(isinstance(v, str) and v.strip() for v in value)):
        raise ConfigError(f"must be a {'non-empty ' if required else ''}array of non-blank strings, got {value!r}",
                          file=file, key=f"{prefix}{key}")
    return tuple(value)


def _identifier(value: str, *, file: str, key: str) -> str:
    if not ID_PATTERN.match(value):
        raise ConfigError(f"must be 1 to 100 lower-case letters, digits, '.', '_' or '-', starting with a letter or "
                          f"digit, got {value!r}", file=file, key=key)
    return value


def _parse_source(raw: Mapping[str, Any], file: str) -> Source:
    table = _table(raw, "source", file=file, prefix="")
    fields = _check_fields(table, SOURCE_FIELDS, file=file, prefix="source.", extra=("authors",))
    authors = _strings(table, "authors", file=file, prefix="source.", required=True)
    _identifier(fields["id"], file=file, key="source.id")
    if fields["arxiv"] is not None and not ARXIV_PATTERN.match(fields["arxiv"]):
        raise ConfigError(f"must be an arXiv identifier such as '1509.00519', got {fields['arxiv']!r}",
                          file=file, key="source.arxiv")
    if fields["doi"] is not None and not DOI_PATTERN.match(fields["doi"]):
        raise ConfigError(f"must be a DOI such as '10.1000/xyz', got {fields['doi']!r}", file=file, key="source.doi")
    if fields["arxiv"] is None and fields["doi"] is None and fields["url"] is None:
        raise ConfigError("required: one of arxiv, doi or url identifies the source", file=file, key="source")
    if fields["read"] != "paper" and fields["read_in"] is None:
        raise ConfigError(f"required: read = {fields['read']!r} must say where the values were read",
                          file=file, key="source.read_in")
    return Source(authors=authors, file=file, **fields)


def _merge(defaults: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """`entry` over `defaults`; the dataset / protocol / metric tables merge key by key."""
    merged = {**defaults, **entry}
    for key in ENTRY_TABLES:
        if isinstance(defaults.get(key), dict) and isinstance(entry.get(key), dict):
            merged[key] = {**defaults[key], **entry[key]}
    if isinstance(defaults.get("protocol"), dict) and isinstance(entry.get("protocol"), dict):
        hp_d, hp_e = defaults["protocol"].get("hyperparameters"), entry["protocol"].get("hyperparameters")
        if isinstance(hp_d, dict) and isinstance(hp_e, dict):
            merged["protocol"]["hyperparameters"] = {**hp_d, **hp_e}
    return merged


def _hyperparameters(table: Mapping[str, Any], *, file: str, prefix: str) -> Frozen:
    value = table.get("hyperparameters", {})
    if not isinstance(value, dict):
        raise ConfigError("must be a table", file=file, key=f"{prefix}hyperparameters")
    for k, v in value.items():
        if not isinstance(v, (str, int, float, bool)) or (isinstance(v, float) and not math.isfinite(v)):
            raise ConfigError(f"must be a string, number or boolean, got {v!r}", file=file,
                              key=f"{prefix}hyperparameters.{k}")
    return tuple(sorted(value.items()))


def _parse_entry(entry: Mapping[str, Any], source: Source, file: str, prefix: str) -> Reference:
    fields = _check_fields(entry, ENTRY_FIELDS, file=file, prefix=prefix, extra=(*ENTRY_TABLES, "departures"))
    _identifier(fields["id"], file=file, key=f"{prefix}id")
    if (fields["uncertainty"] is None) != (fields["uncertainty_kind"] is None):
        raise ConfigError("uncertainty and uncertainty_kind go together: give both or neither", file=file,
                          key=f"{prefix}{'uncertainty_kind' if fields['uncertainty'] is not None else 'uncertainty'}")
    if fields["reproduces"] is not None:
        _identifier(fields["reproduces"], file=file, key=f"{prefix}reproduces")
    dataset_t = _table(entry, "dataset", file=file, prefix=prefix)
    protocol_t = _table(entry, "protocol", file=file, prefix=prefix)
    metric_t = _table(entry, "metric", file=file, prefix=prefix)
    dataset = DatasetProtocol(**_check_fields(dataset_t, DATASET_FIELDS, file=file, prefix=f"{prefix}dataset."))
    protocol = TrainingProtocol(
        hyperparameters=_hyperparameters(protocol_t, file=file, prefix=f"{prefix}protocol."),
        **_check_fields(protocol_t, PROTOCOL_FIELDS, file=file, prefix=f"{prefix}protocol.",
                        extra=("hyperparameters",)),
    )
    metric = MetricProtocol(**_check_fields(metric_t, METRIC_FIELDS, file=file, prefix=f"{prefix}metric."))
    departures = _strings(entry, "departures", file=file, prefix=prefix, required=False)
    return Reference(source=source, dataset=dataset, protocol=protocol, metric=metric, departures=departures, **fields)


def parse_reference_table(raw: Mapping[str, Any], *, file: str) -> tuple[Source, tuple[Reference, ...]]:
    """(the source, its entries) of one parsed reference file, every key checked."""
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"unknown key; allowed: {', '.join(TOP_LEVEL_KEYS)}", file=file, key=key)
    source = _parse_source(raw, file)
    defaults = _table(raw, "defaults", file=file, prefix="", required=False)
    if "id" in defaults:
        raise ConfigError("an entry's id cannot have a default", file=file, key="defaults.id")
    entries = raw.get("references")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ConfigError("must be a non-empty array of tables ([[references]])", file=file, key="references")
    refs = tuple(_parse_entry(_merge(defaults, e), source, file, f"references[{i}].") for i, e in enumerate(entries))
    return source, refs


def load_reference_file(path: str | Path) -> tuple[Source, tuple[Reference, ...]]:
    """Parse and check one reference file."""
    file = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ConfigError("no such file", file=file) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"not valid TOML: {err}", file=file) from None
    return parse_reference_table(raw, file=file)


def load_references(paths: Iterable[str | Path]) -> dict[str, Reference]:
    """Every entry of the files at `paths` by id: ids unique across files (entries and sources),
    and each `reproduces` naming an entry that exists."""
    out: dict[str, Reference] = {}
    sources: dict[str, str] = {}
    for path in paths:
        source, refs = load_reference_file(path)
        if source.id in sources:
            raise ConfigError(f"source id {source.id!r} is also used by {sources[source.id]}", file=str(path),
                              key="source.id")
        sources[source.id] = str(path)
        for i, ref in enumerate(refs):
            if ref.id in out:
                raise ConfigError(f"reference id {ref.id!r} is also used in {out[ref.id].source.file}",
                                  file=str(path), key=f"references[{i}].id")
            out[ref.id] = ref
    for ref in out.values():
        if ref.reproduces is not None and ref.reproduces not in out:
            i = [r.id for r in out.values() if r.source.file == ref.source.file].index(ref.id)
            raise ConfigError(f"no reference has the id {ref.reproduces!r}; known: {', '.join(sorted(out))}",
                              file=ref.source.file, key=f"references[{i}].reproduces")
        if ref.reproduces == ref.id:
            raise ConfigError("an entry cannot reproduce itself", file=ref.source.file, key="reproduces")
    return out
