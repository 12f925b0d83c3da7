"""The comparison table of `vaebench results`: one row per setting, mean ± sd over seeds.

A row pools runs whose specs differ in the seed alone. Runs of one label whose specs differ
otherwise (another budget, dataset parameter or network) are separate rows, their label
extended by what differs, e.g. ``vae [steps=2000]``. Which value columns exist, their
direction and their family come from the metric registry's declarations only.

The terminal table fits `width` columns (default 120): the metrics the suite names come
first, grouped by family; columns that do not fit are listed under the table. `metrics`
chooses the columns (metric names or value names), `all_values` shows every value.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from vaebench.bench.store import ResultsStore
from vaebench.errors import ConfigError
from vaebench.files import content_hash
from vaebench.metrics import METRICS
from vaebench.metrics.registry import FAMILIES, declaration_of
from vaebench.reports.stats import SCALE_ABOVE, mean_sd, natural_key

FORMATS = ("table", "csv", "json", "markdown")
ID_COLUMNS = ["suite", "dataset", "variant", "setting"]
TERMINAL_WIDTH = 120
# wide-frame column of a value's per-run ceiling; in a comparison, "<value>_ceiling" (the lowest)
CEILING_PREFIX = "ceiling:"
# wide-frame column: 1 where a run stored the value as NULL (it was not finite), for values that have such runs
NULL_PREFIX = "null:"


def value_columns(frame: pd.DataFrame, *, per_latent: bool = False) -> list[str]:
    """The frame's metric value columns in registry order (family, metric, value); per-latent values on request."""
    names = []
    for column in frame.columns:
        declared = declaration_of(column)
        if declared is not None and (per_latent or not declared.value.per_latent):
            names.append(column)
    metric_order = {n: i for i, n in enumerate(METRICS.names())}

    def key(column: str) -> tuple:
        declared = declaration_of(column)
        return (FAMILIES.index(declared.metric.family), metric_order[declared.metric.name], natural_key(column))

    return sorted(names, key=key)


def _flatten(spec: dict[str, Any]) -> dict[str, Any]:
    flat = {}
    for key, value in spec.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        elif isinstance(value, list):
            flat[key] = ",".join(map(str, value))
        else:
            flat[key] = value
    return flat


def _short_key(field: str) -> str:
    return field.split(".", 1)[1] if field.startswith(("dataset_params.", "hyperparameters.")) else field


def distinguish_settings(runs: pd.DataFrame) -> pd.Series:
    """Each run's setting label, extended where one label covers runs that differ in more than the seed."""
    specs = runs["spec"].map(lambda s: {k: v for k, v in s.items() if k != "seed"})
    setting_id = specs.map(content_hash)
    labels = runs["setting"].copy()
    for _, group in runs.groupby(["suite", "dataset", "setting"], sort=False):
        ids = setting_id[group.index].unique()
        if len(ids) < 2:
            continue
        flat = {i: _flatten(specs[group.index[setting_id[group.index] == i][0]]) for i in ids}
        fields = sorted({f for spec in flat.values() for f in spec})
        differing = [f for f in fields if len({json.dumps(spec.get(f), sort_keys=True) for spec in flat.values()}) > 1]
        for index in group.index:
            spec = flat[setting_id[index]]
            extra = ", ".join(f"{_short_key(f)}={spec.get(f)}" for f in differing)
            labels[index] = f"{runs.at[index, 'setting']} [{extra}]"
    return labels


def wide_frame(store: ResultsStore) -> pd.DataFrame:
    """`store.wide()` with settings distinguished (see `distinguish_settings`), a column
    `ceiling:<value>` per run for each value whose declaration has a `Ceiling` (read from the
    value's note), and a column `null:<value>` (1 for a run that stored it as NULL: not finite)
    for each value some run could not give: the frame every table groups."""
    wide = store.wide()
    if wide.empty:
        return wide
    runs = store.runs().set_index("run_id").loc[wide["run_id"]].reset_index()
    wide["setting"] = distinguish_settings(runs).to_numpy()
    stored = store.metrics()
    nulls = stored[stored["value"].isna()]
    for value, rows in nulls.groupby("name"):
        wide[NULL_PREFIX + value] = wide["run_id"].isin(set(rows["run_id"])).astype(int)
    bounded = [v for v in value_columns(wide, per_latent=True) if declaration_of(v).value.ceiling is not None]
    notes = stored if bounded else None  # the notes are read only where a ceiling lives in them
    for value in bounded:
        ceiling = declaration_of(value).value.ceiling
        rows = notes[notes["name"] == value]
        per_run = dict(zip(rows["run_id"], (ceiling.of(n) for n in rows["note"])))
        wide[CEILING_PREFIX + value] = wide["run_id"].map(per_run).astype(float)
    return wide


def per_run_frame(store: ResultsStore) -> pd.DataFrame:
    frame = wide_frame(store)
    return frame[["run_id", *ID_COLUMNS, "seed", "status", "wall_time_s", "steps_per_s", *value_columns(frame)]]


def comparison_frame(store: ResultsStore) -> pd.DataFrame:
    """Per setting: completed runs (n), diverged/failed counts, and mean and sd of each metric."""
    return comparison_from_wide(wide_frame(store))


def comparison_from_wide(frame: pd.DataFrame, *, per_latent: bool = False) -> pd.DataFrame:
    """`comparison_frame` of an already loaded `wide_frame`: per setting n (completed runs), diverged,
    failed, and per value its mean, sd, `<value>_count` (the finite values the mean is from) and
    `<value>_of` (the completed runs that computed it: the count plus those that stored no finite value)."""
    metrics = value_columns(frame, per_latent=per_latent)
    done = frame[frame["status"] == "done"]
    grouped = frame.groupby(ID_COLUMNS, sort=True)
    out = grouped["status"].agg(
        n=lambda s: int((s == "done").sum()), diverged=lambda s: int((s == "diverged").sum()),
        failed=lambda s: int((s == "failed").sum()),
    )
    if metrics and not done.empty:
        with np.errstate(over="ignore", invalid="ignore"):  # values near the float maximum: recomputed below
            stats = done.groupby(ID_COLUMNS)[metrics].agg(["mean", "std", "count"])
        stats.columns = [f"{m}_{s}" for m, s in stats.columns]
        for m in metrics:  # values near the float maximum: the mean and sd of the scaled values (no overflow)
            if (done[m].abs() >= SCALE_ABOVE).any():
                exact = done.groupby(ID_COLUMNS)[m].agg(lambda v: mean_sd(v.tolist()))
                stats[f"{m}_mean"] = [ms[0] for ms in exact.reindex(stats.index)]
                stats[f"{m}_std"] = [ms[1] for ms in exact.reindex(stats.index)]
        for m in metrics:
            nulls = done[NULL_PREFIX + m] if NULL_PREFIX + m in done else pd.Series(0, index=done.index)
            stats[f"{m}_of"] = stats[f"{m}_count"] + nulls.groupby([done[c] for c in ID_COLUMNS]).sum()
        out = out.join(stats, how="left")
        ceilings = [c for c in frame.columns if c.startswith(CEILING_PREFIX) and c[len(CEILING_PREFIX):] in metrics]
        if ceilings:
            lowest = done.groupby(ID_COLUMNS)[ceilings].min()
            lowest.columns = [f"{c[len(CEILING_PREFIX):]}_ceiling" for c in ceilings]
            out = out.join(lowest, how="left")
    return out.reset_index()


def ceiling_mark(value: str, mean: float, ceiling: float) -> str:
    """' ≤c' after a value with a known ceiling c, ' ≤c!' when the mean is within the ceiling's
    margin of it (saturated); '' without a ceiling."""
    declared = declaration_of(value).value.ceiling
    if declared is None or pd.isna(ceiling) or pd.isna(mean):
        return ""
    return f" ≤{ceiling:.3g}" + ("!" if mean >= ceiling - declared.margin else "")


def ceiling_footnote(values: Sequence[str]) -> str:
    """The explanation of the ceiling marks of `values`, or '' when none has a ceiling."""
    parts = []
    for value in values:
        declared = declaration_of(value).value.ceiling
        if declared is not None:
            parts.append(f"{value} ≤c: at most c, {declared.meaning}; ! within {declared.margin:g} of c "
                         "(saturated: it may be higher)")
    return "; ".join(parts)


def count_mark(count: float, of: float) -> str:
    """' (k/n)' after a mean that comes from k finite values of the n runs that computed it; '' when all did."""
    if pd.isna(of) or pd.isna(count) or int(count) >= int(of):
        return ""
    return f" ({int(count)}/{int(of)})"


COUNT_FOOTNOTE = "(k/n): the mean and sd of the k runs, of n, whose value is finite (the others stored none)"


def number(value: float, spec: str) -> str:
    """A finite number formatted with `spec`; 'overflow' for an aggregate of finite values that is not
    (stored values are always finite: an infinite mean or sd overflowed)."""
    return "overflow" if math.isinf(value) else format(value, spec)


def _cell(mean: float, sd: float, mark: str = "", counted: str = "") -> str:
    if pd.isna(mean):
        return "-" + counted
    return (number(mean, ".4g") if pd.isna(sd) else f"{number(mean, '.4g')} ± {number(sd, '.2g')}") + mark + counted


def _header(value: str) -> str:
    return f"{value} {'↑' if declaration_of(value).higher_is_better else '↓'}"


def suite_metric_order(store: ResultsStore) -> list[str]:
    """The metric names the store's suites list, in their order (first suite first)."""
    order: list[str] = []
    for spec in store.runs()["spec"]:
        order.extend(m for m in spec.get("metrics", []) if m not in order)
    return order


def choose_columns(available: Sequence[str], requested: Sequence[str] | None, suite_order: Sequence[str]) -> list[str]:
    """The value columns to show: those `requested` names (metric names, whose per-latent values come
    only with --all, or value names, in that order), else
    the available non-per-latent values ordered by family, then by the suite's metric order."""
    if requested:
        chosen = []
        for name in requested:
            # a metric name brings its values, without the per-latent ones (those by value name or --all)
            matches = [v for v in available if v == name or (
                declaration_of(v).metric.name == name and not declaration_of(v).value.per_latent)]
            if not matches:
                raise ConfigError(f"no values of {name!r} in these results; available: {', '.join(available)}",
                                  key="--metrics")
            chosen.extend(m for m in matches if m not in chosen)
        return chosen
    rank = {m: i for i, m in enumerate(suite_order)}
    shown = [v for v in available if not declaration_of(v).value.per_latent]

    def key(value: str) -> tuple:
        declared = declaration_of(value)
        return (FAMILIES.index(declared.metric.family), rank.get(declared.metric.name, len(rank)), natural_key(value))

    return sorted(shown, key=key)


def display_frame(comparison: pd.DataFrame, values: Sequence[str]) -> pd.DataFrame:
    """The comparison with 'mean ± sd' text cells and the direction in each value's header."""
    columns = ["dataset", "setting", "n"]
    if comparison["suite"].nunique() > 1:
        columns.insert(0, "suite")
    columns += [c for c in ("diverged", "failed") if comparison[c].sum() > 0]
    shown = comparison[columns].copy()
    for value in values:
        mean = comparison.get(f"{value}_mean", pd.Series(float("nan"), index=comparison.index))
        sd = comparison.get(f"{value}_std", pd.Series(float("nan"), index=comparison.index))
        ceiling = comparison.get(f"{value}_ceiling", pd.Series(float("nan"), index=comparison.index))
        count = comparison.get(f"{value}_count", pd.Series(float("nan"), index=comparison.index))
        of = comparison.get(f"{value}_of", pd.Series(float("nan"), index=comparison.index))
        shown[_header(value)] = [_cell(m, s, ceiling_mark(value, m, c), count_mark(k, o))
                                 for m, s, c, k, o in zip(mean, sd, ceiling, count, of)]
    return shown


def has_partial_counts(comparison: pd.DataFrame, values: Sequence[str]) -> bool:
    """Whether some mean of `values` comes from fewer runs than computed it (see `count_mark`)."""
    return any(count_mark(k, o) for v in values if f"{v}_count" in comparison
               for k, o in zip(comparison[f"{v}_count"], comparison[f"{v}_of"]))


def fit_width(shown: pd.DataFrame, fixed: int, width: int) -> tuple[pd.DataFrame, list[str]]:
    """The first `fixed` columns and as many value columns as fit `width` characters; the rest's names."""
    keep = list(shown.columns[:fixed])
    left_out = []
    for column in shown.columns[fixed:]:
        if left_out or len(shown[keep + [column]].to_string(index=False).splitlines()[0]) > width:
            left_out.append(column.rsplit(" ", 1)[0])
        else:
            keep.append(column)
    return shown[keep], left_out


def format_results(
    store: ResultsStore,
    fmt: str,
    *,
    per_run: bool = False,
    metrics: Sequence[str] | None = None,
    all_values: bool = False,
    width: int = TERMINAL_WIDTH,
) -> str:
    """`vaebench results`: the comparison (or per-run) table as text, CSV, JSON or Markdown."""
    if per_run:
        frame = per_run_frame(store)
        if fmt == "csv":
            return frame.to_csv(index=False)
        if fmt == "json":
            return json.dumps(json.loads(frame.to_json(orient="records")), indent=2)
        return _markdown(frame) if fmt == "markdown" else frame.to_string(index=False)
    wide = wide_frame(store)
    comparison = comparison_from_wide(wide, per_latent=True)
    if fmt == "csv":
        return comparison.to_csv(index=False)
    if fmt == "json":
        return json.dumps(json.loads(comparison.to_json(orient="records")), indent=2)
    if comparison.empty:
        return "(no runs)"
    available = value_columns(wide, per_latent=True)
    values = available if all_values else choose_columns(available, metrics, suite_metric_order(store))
    shown = display_frame(comparison, values)
    footnote = _footnotes(comparison, values)
    if fmt == "markdown":
        return _markdown(shown) + (f"\n\n{footnote}" if footnote else "")
    left_out: list[str] = []
    if not (all_values or metrics):
        fixed = len(shown.columns) - len(values)
        shown, left_out = fit_width(shown, fixed, width)
        footnote = _footnotes(comparison, [v for v in values if v not in left_out])
    text = shown.to_string(index=False)
    if footnote:
        text += f"\n{footnote}"
    if left_out:
        text += f"\n({len(left_out)} more: {', '.join(left_out)}; show them with --metrics NAME,... or --all)"
    return text


def _footnotes(comparison: pd.DataFrame, values: Sequence[str]) -> str:
    notes = [ceiling_footnote(values), COUNT_FOOTNOTE if has_partial_counts(comparison, values) else ""]
    return "; ".join(n for n in notes if n)


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(_md_escape(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _md_escape(value: object) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|")
