"""The comparison table of `vaebench results`: one row per setting, mean ± sd over seeds.

A row is a setting of `vaebench.reports.comparison` (runs whose specs differ in the seed alone,
labelled as there, e.g. ``vae [steps=2000]`` where one label covers several). Which value columns
exist, their direction and their family come from the metric registry's declarations only.

The terminal table fits `width` columns (default 120): the metrics the suite names come
first, grouped by family; columns that do not fit are listed under the table. `metrics`
chooses the columns (metric names or value names), `all_values` shows every value. Markdown is
`vaebench.reports.tables.render_markdown`'s; CSV and JSON are `results_frame`: one row per
setting with `<value>_mean`, `_std`, `_count`, `_of` and `_ceiling` columns, the comparison
written wide for a spreadsheet.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pandas as pd

from vaebench.errors import ConfigError
from vaebench.metrics.registry import FAMILIES, declaration_of
from vaebench.reports.comparison import (
    ID_COLUMNS,
    Comparison,
    SettingSummary,
    StoreReader,
    ceiling_mark,
    count_mark,
    counts,
    footnotes,
)
from vaebench.reports.stats import natural_key
from vaebench.reports.tables import Cell, Column, Table, direction_of, frame_table, render_markdown

FORMATS = ("table", "csv", "json", "markdown")
TERMINAL_WIDTH = 120
COUNTS = ("n", "diverged", "failed")  # the run counts of a setting: columns of whole numbers


def results_frame(comparison: Comparison) -> pd.DataFrame:
    """The comparison as `vaebench results` writes CSV and JSON: per setting n (completed runs), diverged,
    failed, and per value its mean, sd, `<value>_count` (the finite values the mean is from), `<value>_of`
    (the completed runs that computed it) and, for a value declared with a ceiling, `<value>_ceiling`
    (the lowest of the runs'). A setting without a completed run has none of these (NaN)."""
    values = comparison.value_names(per_latent=True) if any(s.done for s in comparison.settings) else []
    bounded = [v for v in values if (d := declaration_of(v)) is not None and d.value.ceiling is not None]
    rows = []
    for setting in comparison.settings:
        row: dict[str, object] = dict(zip(ID_COLUMNS, setting.ids))
        row.update(n=setting.done, diverged=setting.diverged, failed=setting.failed)
        summaries = {v: comparison.summary(setting, v) for v in values}
        for v, s in summaries.items():
            row.update({f"{v}_mean": s.mean, f"{v}_std": s.sd, f"{v}_count": counts(s)[0]})
        row.update({f"{v}_of": counts(s)[1] for v, s in summaries.items()})
        row.update({f"{v}_ceiling": math.nan if s.ceiling is None else s.ceiling
                    for v, s in summaries.items() if v in bounded})
        rows.append(row)
    columns = [*ID_COLUMNS, "n", "diverged", "failed", *(f"{v}_{c}" for v in values for c in ("mean", "std", "count")),
               *(f"{v}_of" for v in values), *(f"{v}_ceiling" for v in bounded)]
    return pd.DataFrame(rows, columns=columns)


def per_run_frame(comparison: Comparison) -> pd.DataFrame:
    """One row per run: identity, seed, status, timings and its (non-per-latent) values."""
    frame = comparison.per_run()
    return frame[["run_id", *ID_COLUMNS, "seed", "status", "wall_time_s", "steps_per_s", *comparison.value_names()]]


def number(value: float, spec: str) -> str:
    """A finite number formatted with `spec`; 'overflow' for an aggregate of finite values that is not
    (stored values are always finite: an infinite mean or sd overflowed)."""
    return "overflow" if math.isinf(value) else format(value, spec)


def _cell(summary: SettingSummary) -> str:
    mean, sd = summary.mean, summary.sd
    if math.isnan(mean):
        return "-" + count_mark(summary)
    text = number(mean, ".4g") if math.isnan(sd) else f"{number(mean, '.4g')} ± {number(sd, '.2g')}"
    return text + ceiling_mark(summary) + count_mark(summary)


def choose_columns(available: Sequence[str], requested: Sequence[str] | None, suite_order: Sequence[str]) -> list[str]:
    """The value columns to show: those `requested` names (metric names, whose per-latent values come
    only with --all, or value names, in that order), else
    the available non-per-latent values ordered by family, then by the suite's metric order."""
    declared = {v: d for v in available if (d := declaration_of(v)) is not None}
    if requested:
        chosen: list[str] = []
        for name in requested:
            # a metric name brings its values, without the per-latent ones (those by value name or --all)
            matches = [v for v in available if v == name or (
                declared[v].metric.name == name and not declared[v].value.per_latent)]
            if not matches:
                raise ConfigError(f"no values of {name!r} in these results; available: {', '.join(available)}",
                                  key="--metrics")
            chosen.extend(m for m in matches if m not in chosen)
        return chosen
    rank = {m: i for i, m in enumerate(suite_order)}
    shown = [v for v in available if not declared[v].value.per_latent]

    def key(value: str) -> tuple:
        d = declared[value]
        return FAMILIES.index(d.metric.family), rank.get(d.metric.name, len(rank)), natural_key(value)

    return sorted(shown, key=key)


def display_table(comparison: Comparison, values: Sequence[str]) -> Table:
    """The comparison with 'mean ± sd' text cells, the direction in each value's header, and its footnotes."""
    settings = comparison.settings
    fixed = ["dataset", "setting", "n"]
    if len({s.suite for s in settings}) > 1:
        fixed.insert(0, "suite")
    fixed += [c for c in COUNTS[1:] if sum(getattr(s, c) for s in settings) > 0]
    columns = [Column(c, numeric=c in COUNTS) for c in fixed]
    columns += [Column(v, direction_of(v), numeric=True) for v in values]
    rows = []
    for s in settings:
        fields = {"suite": s.suite, "dataset": s.dataset, "setting": s.label, "n": s.done, "diverged": s.diverged,
                  "failed": s.failed}
        cells = [Cell(str(fields[c])) for c in fixed]
        cells += [Cell(_cell(comparison.summary(s, v))) for v in values]
        rows.append(cells)
    return Table(columns, rows, notes=_footnote(comparison, values))


def _footnote(comparison: Comparison, values: Sequence[str]) -> list[str]:
    """The table's footnotes on one line."""
    notes = footnotes(comparison, values)
    return ["; ".join(notes)] if notes else []


def render_text(table: Table) -> str:
    """A table as aligned plain text (pandas' layout), its notes under it."""
    text = _text_frame(table).to_string(index=False)
    return "\n".join([text, *table.notes])


def _text_frame(table: Table) -> pd.DataFrame:
    """The cells as a frame for pandas' layout, the run counts as integers (laid out as numbers)."""
    headers = [c.name + (f" {'↑' if c.direction == 'higher' else '↓'}" if c.direction else "") for c in table.columns]
    frame = pd.DataFrame([[c.text for c in row] for row in table.rows], columns=headers)
    for header, column in zip(headers, table.columns):
        if column.name in COUNTS:
            frame[header] = frame[header].astype(int)
    return frame


def fit_width(table: Table, fixed: int, width: int) -> tuple[Table, list[str]]:
    """The first `fixed` columns and as many value columns as fit `width` characters; the rest's names."""
    frame = _text_frame(table)
    keep = list(range(fixed))
    left_out: list[str] = []
    for i in range(fixed, len(table.columns)):
        if left_out or len(frame.iloc[:, keep + [i]].to_string(index=False).splitlines()[0]) > width:
            left_out.append(table.columns[i].name)
        else:
            keep.append(i)
    kept = Table([table.columns[i] for i in keep], [[row[i] for i in keep] for row in table.rows], table.caption,
                 table.notes)
    return kept, left_out


def format_results(
    store: StoreReader,
    fmt: str,
    *,
    per_run: bool = False,
    metrics: Sequence[str] | None = None,
    all_values: bool = False,
    width: int = TERMINAL_WIDTH,
) -> str:
    """`vaebench results`: the comparison (or per-run) table as text, CSV, JSON or Markdown."""
    comparison = Comparison.build(store)
    frame = per_run_frame(comparison) if per_run else results_frame(comparison)
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return json.dumps(json.loads(frame.to_json(orient="records")), indent=2)
    if per_run:
        return render_markdown(frame_table(frame)).rstrip("\n") if fmt == "markdown" else frame.to_string(index=False)
    if comparison.empty:
        return "(no runs)"
    available = comparison.value_names(per_latent=True)
    values = available if all_values else choose_columns(available, metrics, comparison.suite_metric_order())
    table = display_table(comparison, values)
    if fmt == "markdown":
        return render_markdown(table).rstrip("\n")
    left_out: list[str] = []
    if not (all_values or metrics):
        table, left_out = fit_width(table, len(table.columns) - len(values), width)
        table.notes = _footnote(comparison, [v for v in values if v not in left_out])
    text = render_text(table)
    if left_out:
        text += f"\n({len(left_out)} more: {', '.join(left_out)}; show them with --metrics NAME,... or --all)"
    return text
