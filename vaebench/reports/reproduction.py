"""Published beside measured: `vaebench compare DIR` and the report's section of the same name.

Reads only the store. A run reproduces the references its environment names (`reproduces`, written
by a suite whose variant entries say so, `vaebench.bench.reproduction`). For each reference and
each setting (a spec less its seed) that reproduces it:

    measured      over the seeds' completed runs, each run's value of the reference's metric:
                  kind "metric": the stored value named `metric.name`;
                  kind "curve":  the mean of the training curve `metric.name` (a name, or names
                  joined by " + ", summed step by step) over the steps of the last epoch,
                  epoch = steps / `protocol.epochs` (the last logged value without epochs)
    mean, CI      the mean over seeds and its 95% Student-t interval,
                  mean +- t(0.975, n - 1) * sd / sqrt(n), sd with n - 1; no interval with one seed
    difference    mean - published value
    verdict       "reproduced" when |difference| <= the reference's tolerance, else "differs";
                  "not run" when no run has a value (none stored yet, or every one failed or diverged)
    departures    the reference's stated departures, then those read off the runs: importance
                  samples other than the published number, a subset of the test split, another
                  way of drawing the training batches (`protocol.sampler`), another batch size,
                  a selection other than the published one, fewer logged steps than the last
                  epoch holds

The interval is Student's t, not the bootstrap of the comparison tables: with the 1 to 5 seeds of
a reproduction a percentile bootstrap is far too narrow, and the t interval can be checked by hand.
The verdict reads the mean alone, as the tolerance is defined (|measured - published|); the
interval and the number of seeds beside it say how much that mean can be trusted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from vaebench.bench.spec import RunSpec, RunStatus
from vaebench.reference import REFERENCES, Reference
from vaebench.reports.tables import Cell, Column, Table, markdown_escape, render_markdown

CONFIDENCE = 0.95
VERDICTS = ("reproduced", "differs", "not run")
CURVE_SEPARATOR = " + "
_IMAGES_NOTE = re.compile(r"images=(\d+)/(\d+)")
DEFAULT_IWAE_K = 1000  # vaebench.metrics.likelihood.DEFAULT_K, read from the spec when it is not written


@dataclass(frozen=True)
class Interval:
    """Mean and 95% Student-t interval over n values (NaN bounds with fewer than two)."""

    n: int
    mean: float
    low: float
    high: float


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of the finite `values` and its two-sided Student-t interval."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return Interval(0, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size < 2:
        return Interval(1, mean, math.nan, math.nan)
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Interval(int(x.size), mean, mean - half, mean + half)


@dataclass(frozen=True)
class ReproductionRow:
    """One reference beside one setting's runs."""

    reference: Reference
    setting: str
    run_ids: tuple[str, ...]
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    measured: Interval
    verdict: str
    departures: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def difference(self) -> float:
        return self.measured.mean - self.reference.value if self.measured.n else math.nan


def verdict_of(mean: float, n: int, published: float, tolerance: float) -> str:
    if n == 0 or not math.isfinite(mean):
        return "not run"
    return "reproduced" if abs(mean - published) <= tolerance else "differs"


def curve_value(curves: pd.DataFrame, name: str, steps: int, epochs: int | None) -> tuple[float, int, int]:
    """(mean of the curve over the last epoch's logged steps, logged steps used, steps the epoch holds).

    `name` may join several curves with " + " (summed at the steps where all are logged)."""
    parts = [n.strip() for n in name.split(CURVE_SEPARATOR.strip())]
    series = None
    for part in parts:
        c = curves[curves["name"] == part].set_index("step")["value"]
        series = c if series is None else series + c  # NaN where a part is not logged
    if series is None or series.dropna().empty:
        return math.nan, 0, 0
    series = series.dropna().sort_index()
    if epochs is None:
        return float(series.iloc[-1]), 1, 1
    epoch_steps = steps // epochs
    window = series[(series.index > steps - epoch_steps) & (series.index <= steps)]
    if window.empty:
        return math.nan, 0, epoch_steps
    return float(window.mean()), int(len(window)), epoch_steps


def run_value(ref: Reference, run: Mapping[str, Any], metrics: pd.DataFrame,
              curves: pd.DataFrame) -> tuple[float, list[str]]:
    """One run's measured value of `ref` (NaN when it has none) and what was noticed measuring it."""
    spec: RunSpec = run["spec"]
    notes: list[str] = []
    if ref.metric.kind == "curve":
        value, used, epoch = curve_value(curves[curves["run_id"] == run["run_id"]], ref.metric.name,
                                         int(spec.steps), ref.protocol.epochs)
        if 0 < used < epoch:
            notes.append(f"the training loss is averaged over {used:,d} logged steps of the last epoch's "
                         f"{epoch:,d} (log_every = {spec.log_every}; the source averages every step)")
        return value, notes
    row = metrics[(metrics["run_id"] == run["run_id"]) & (metrics["name"] == ref.metric.name)]
    if row.empty or row["value"].isna().all():
        return math.nan, notes
    note = row["note"].iloc[0]
    if isinstance(note, str) and (m := _IMAGES_NOTE.search(note)) and int(m.group(1)) < int(m.group(2)):
        notes.append(f"scored on {int(m.group(1)):,d} of the {int(m.group(2)):,d} test images; the source uses all")
    return float(row["value"].iloc[0]), notes


SAMPLER_WORDS = {  # vaebench.bench.sampler.SAMPLERS
    "replacement": "drawn uniformly with replacement",
    "shuffle": "a shuffled pass over the training split per epoch",
    "sequential": "passes over the training split in file order, unshuffled",
}


def checked_departures(ref: Reference, spec: RunSpec, environment: Mapping[str, Any] | None = None) -> list[str]:
    """Departures from the published protocol read off a run's spec (and, for the budget in
    epochs, its environment's `train_images`)."""
    out = []
    train_images = (environment or {}).get("train_images")
    if ref.protocol.epochs is not None and train_images and spec.batch_size:
        epoch = math.ceil(train_images / spec.batch_size)
        if spec.steps != ref.protocol.epochs * epoch:
            out.append(f"{spec.steps:,d} steps = {spec.steps / epoch:,.4g} epochs of {epoch:,d} steps; "
                       f"the source trains {ref.protocol.epochs:,d} epochs")
    params = dict(spec.metric_params)
    if ref.metric.importance_samples is not None and ref.metric.name == "iwae_nll":
        k = params.get("iwae_k", DEFAULT_IWAE_K)
        if k != ref.metric.importance_samples:
            out.append(f"{k:,d} importance samples per image; the source uses {ref.metric.importance_samples:,d}")
    sampler = spec.sampler or "replacement"
    if ref.protocol.sampler is not None and sampler != ref.protocol.sampler:
        out.append(f"training batches {SAMPLER_WORDS[sampler]}; the source: {SAMPLER_WORDS[ref.protocol.sampler]}")
    if ref.protocol.batch_size is not None and spec.batch_size != ref.protocol.batch_size:
        out.append(f"batch size {spec.batch_size}; the source uses {ref.protocol.batch_size}")
    published_best = ref.protocol.selection.lower().startswith("best on validation")
    selects = bool(spec.selection)
    if published_best and not selects:
        out.append("scores the final model; the source keeps the best on validation")
    elif selects and ref.protocol.selection.lower().startswith(("the final model", "none")):
        out.append("scores the best model on validation; the source scores the final one")
    return out


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def reproduction_rows(runs: pd.DataFrame, metrics: pd.DataFrame, curves: pd.DataFrame, *,
                      references: Mapping[str, Reference] = REFERENCES, every: bool = False) -> list[ReproductionRow]:
    """One row per (reference, setting) that a run of the store reproduces; with `every`, also one
    "not run" row for each reference no run names."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    unknown: set[str] = set()
    for run in runs.to_dict("records"):
        if not isinstance(run["spec"], RunSpec):  # a model scored by `vaebench evaluate` reproduces nothing
            continue
        for ref_id in run["environment"].get("reproduces", []):
            if ref_id not in references:
                unknown.add(ref_id)
                continue
            groups.setdefault((ref_id, run["setting_key"]), []).append(run)
    rows = []
    for (ref_id, _), members in sorted(groups.items(), key=lambda kv: kv[0][0]):
        ref = references[ref_id]
        members = sorted(members, key=lambda r: int(r["seed"]))
        values, seeds, ids, notes = [], [], [], []
        for run in members:
            if run["status"] != RunStatus.DONE:
                notes.append(f"seed {run['seed']}: {run['status']}")
                continue
            value, noticed = run_value(ref, run, metrics, curves)
            notes.extend(noticed)
            if math.isfinite(value):
                values.append(value)
                seeds.append(int(run["seed"]))
                ids.append(run["run_id"])
        measured = t_interval(values)
        departures = _unique([*ref.departures, *checked_departures(ref, members[0]["spec"], members[0]["environment"]),
                              *notes])
        rows.append(ReproductionRow(ref, str(members[0]["setting"]), tuple(ids), tuple(seeds), tuple(values), measured,
                                    verdict_of(measured.mean, measured.n, ref.value, ref.tolerance), departures))
    if every:
        named = {ref_id for ref_id, _ in groups}
        for ref_id in sorted(set(references) - named):
            ref = references[ref_id]
            rows.append(ReproductionRow(ref, "", (), (), (), t_interval([]), "not run", ref.departures))
    return rows


# ----------------------------------------------------------------------------------------- output

COLUMNS = ("reference", "source", "setting", "metric", "published", "measured", "95% CI", "seeds", "difference",
           "tolerance", "verdict")


def _number(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if value is not None and math.isfinite(value) else "–"


def _published(ref: Reference) -> str:
    text = _number(ref.value)
    return f"{text} ± {_number(ref.uncertainty)}" if ref.uncertainty is not None else text


def display_rows(rows: Sequence[ReproductionRow]) -> list[dict[str, str]]:
    """Each row as the text of COLUMNS (and its departures), for every output format."""
    out = []
    for r in rows:
        m = r.measured
        out.append({
            "reference": r.reference.id, "source": r.reference.source.citation, "setting": r.setting or "–",
            "metric": r.reference.metric.name + (f" (K = {r.reference.metric.importance_samples:,d})"
                                                 if r.reference.metric.importance_samples else ""),
            "published": _published(r.reference), "measured": _number(m.mean),
            "95% CI": f"[{_number(m.low)}, {_number(m.high)}]" if m.n >= 2 else "–",
            "seeds": str(m.n), "difference": f"{r.difference:+.2f}" if m.n else "–",
            "tolerance": f"± {r.reference.tolerance:g}", "verdict": r.verdict,
            "departures": "; ".join(r.departures),
        })
    return out


def rows_frame(rows: Sequence[ReproductionRow]) -> pd.DataFrame:
    """The numbers (CSV / JSON): one row per reference and setting."""
    return pd.DataFrame([{
        "reference": r.reference.id, "source": r.reference.source.citation, "setting": r.setting,
        "metric": r.reference.metric.name, "published": r.reference.value,
        "published_uncertainty": r.reference.uncertainty,
        "mean": r.measured.mean, "ci_low": r.measured.low, "ci_high": r.measured.high, "seeds": r.measured.n,
        "difference": r.difference, "tolerance": r.reference.tolerance, "verdict": r.verdict,
        "values": list(r.values), "run_ids": list(r.run_ids), "departures": list(r.departures),
    } for r in rows], columns=["reference", "source", "setting", "metric", "published", "published_uncertainty",
                               "mean", "ci_low", "ci_high", "seeds", "difference", "tolerance", "verdict", "values",
                               "run_ids", "departures"])


def format_text(rows: Sequence[ReproductionRow]) -> str:
    """A plain-text table, then each row's departures as numbered notes."""
    if not rows:
        return ("no run in this store reproduces a published value (a reproduction suite's variant entries "
                "name them: reproduces = ...)")
    shown = display_rows(rows)
    widths = {c: max(len(c), *(len(r[c]) for r in shown)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip()]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS).rstrip() for r in shown]
    for i, (row, r) in enumerate(zip(shown, rows), start=1):
        if r.departures:
            lines.append(f"\n[{i}] {row['reference']} ({row['setting']}): departures from the published protocol")
            lines += [f"    - {d}" for d in r.departures]
    return "\n".join(lines)


def format_markdown(rows: Sequence[ReproductionRow]) -> str:
    if not rows:
        return "No run in this store reproduces a published value.\n"
    shown = display_rows(rows)
    table = Table([Column(c) for c in COLUMNS], [[Cell(r[c]) for c in COLUMNS] for r in shown])
    lines = [render_markdown(table).rstrip("\n")]
    for row, r in zip(shown, rows):
        if r.departures:
            reference, setting = markdown_escape(row["reference"]), markdown_escape(row["setting"])
            lines.append(f"\n**{reference}** ({setting}), departures:\n")
            lines += [f"- {markdown_escape(d)}" for d in r.departures]
    return "\n".join(lines) + "\n"


FORMATS = ("table", "markdown", "csv", "json")


def format_rows(rows: Sequence[ReproductionRow], fmt: str) -> str:
    if fmt == "table":
        return format_text(rows)
    if fmt == "markdown":
        return format_markdown(rows)
    frame = rows_frame(rows)
    if fmt == "csv":
        return frame.assign(values=frame["values"].map(lambda v: " ".join(map(repr, v))),
                            run_ids=frame["run_ids"].map(" ".join),
                            departures=frame["departures"].map("; ".join)).to_csv(index=False)
    return frame.to_json(orient="records", indent=2)


def compare_store(path: str, *, run_ids: set[str] | None = None, every: bool = False) -> list[ReproductionRow]:
    """The rows of the store at `path` (a run directory or a .sqlite file)."""
    from vaebench.bench.store import ResultsStore

    with ResultsStore(path, create=False, run_ids=run_ids) as store:
        return reproduction_rows(store.runs(), store.metrics(), store.curves(), every=every)


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def list_references(references: Mapping[str, Reference] = REFERENCES) -> str:
    """`vaebench reproduce --list`: id, source, value (and its metric, and the file name of the suite
    under suites/reproduce/ that reproduces it)."""
    rows = [(r.id, r.source.citation, _published(r), _short(r.metric.name),
             r.suite.rsplit("/", 1)[-1] if r.suite else "–") for r in references.values()]
    rows.sort()
    header = ("id", "source", "value", "metric", "suite")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def reproduction_html(rows: Sequence[ReproductionRow]) -> str:
    """The report's section: the table, then each row's departures (every string escaped)."""
    from vaebench.reports import html as h

    shown = display_rows(rows)
    frame = pd.DataFrame([{c: r[c] for c in COLUMNS} for r in shown], columns=list(COLUMNS))
    parts = [h.frame_table(frame, css_class="reproduction", numeric=("published", "measured", "seeds", "difference")),
             "<p>Measured: mean over seeds with its 95% Student-t interval; verdict: reproduced when |difference| "
             "is within the reference's tolerance.</p>"]
    for row, r in zip(shown, rows):
        if r.departures:
            parts.append(f"<h3>{h.e(row['reference'])} ({h.e(row['setting'])}): departures</h3>")
            parts.append("<ul>" + "".join(f"<li>{h.e(d)}</li>" for d in r.departures) + "</ul>")
    return "\n".join(parts)
