"""The comparison every report reads, built once from a store: per setting and stored value, the
values over seeds, n, mean, sd, the 95% bootstrap CI and the ceiling, as typed rows.

    store (or a store at one budget) --Comparison.build--> Comparison
        runs        the store's runs, `spec` a RunSpec, `setting` the label a table shows
        settings    Setting: suite, dataset, variant, label, key (RunSpec.setting_key()), its runs by status
        summaries   SettingSummary: setting, metric (the value's name), higher_is_better, values, n, of,
                    mean, sd, ci_low, ci_high, ceiling
        per_run()   one row per run with a column per value (for plots and pairwise tests)

A setting is one suite's runs whose specs differ in the seed alone: their `setting_key`, stored with
each run. Its label is the one the suite gave, extended where one label of a suite and dataset
covers several settings (`setting_labels`: e.g. ``vae [steps=2000]``). Which values exist, their
direction and their ceiling come from the metric registry's declarations and the store's rows.

Everything a user reads is a rendering of it: `vaebench results` (summary.py), the report's tables
in Markdown, LaTeX, HTML and CSV (tables.py), its plots (plots.py), the claims verdicts (claims.py)
and the values along training, one comparison per budget (trajectories.py).

    mean, sd     `stats.mean_sd` of the finite values of the setting's completed runs (seed order)
    CI           `stats.mean_ci` of the same values (computed when first read)
    n, of        how many values the mean is from, and of how many completed runs computed the value
                 (the others stored it as NULL: not finite)
    ceiling      the lowest ceiling of those runs' values (mi_xz's log N), where the value has one
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import pandas as pd

from vaebench.bench.spec import ExternalSpec, RunSpec, RunStatus
from vaebench.bench.store import wide_runs
from vaebench.metrics import METRICS
from vaebench.metrics.registry import FAMILIES, declaration_of
from vaebench.reports.stats import mean_ci, mean_sd, natural_key

ID_COLUMNS = ["suite", "dataset", "variant", "setting"]


class StoreReader(Protocol):
    """What a comparison reads: a `ResultsStore`, or the store at one budget (`trajectories.StoreAtStep`)."""

    def runs(self) -> pd.DataFrame: ...

    def metrics(self) -> pd.DataFrame: ...


@dataclass(frozen=True)
class Setting:
    """One suite's runs whose specs differ in the seed alone."""

    key: str  # RunSpec.setting_key()
    suite: str
    dataset: str
    variant: str
    label: str  # what tables show (`setting_labels`)
    spec: RunSpec | ExternalSpec  # its first run's (the fields but the seed are every run's)
    done: int  # completed runs
    diverged: int
    failed: int

    @property
    def runs(self) -> int:
        return self.done + self.diverged + self.failed

    @property
    def ids(self) -> tuple[str, str, str, str]:
        """(suite, dataset, variant, label): the ID_COLUMNS of a table row."""
        return self.suite, self.dataset, self.variant, self.label


@dataclass(frozen=True)
class SettingSummary:
    """One stored value of one setting over its completed runs (see the module docstring)."""

    setting: Setting
    metric: str  # the stored value's name, e.g. kl or kl_dim_0
    higher_is_better: bool | None  # None: no imported metric declares the value
    values: tuple[float, ...]  # the finite values, in seed order
    of: int
    ceiling: float | None

    @property
    def n(self) -> int:
        return len(self.values)

    @cached_property
    def _mean_sd(self) -> tuple[float, float]:
        return mean_sd(self.values)

    @property
    def mean(self) -> float:
        return self._mean_sd[0]

    @property
    def sd(self) -> float:
        return self._mean_sd[1]

    @cached_property
    def _ci(self) -> tuple[float, float, float]:
        return mean_ci(self.values)

    @property
    def ci_low(self) -> float:
        return self._ci[1]

    @property
    def ci_high(self) -> float:
        return self._ci[2]

    @property
    def direction(self) -> str | None:
        """'higher' or 'lower' (is better); None for an undeclared value."""
        return None if self.higher_is_better is None else "higher" if self.higher_is_better else "lower"


def value_order(names: Sequence[str], *, per_latent: bool = False) -> list[str]:
    """The declared value names among `names` in registry order (family, metric, value); the per-latent
    ones on request."""
    declared = {n: d for n in names if (d := declaration_of(n)) is not None and (per_latent or not d.value.per_latent)}
    metric_order = {n: i for i, n in enumerate(METRICS.names())}

    def key(name: str) -> tuple:
        d = declared[name]
        return FAMILIES.index(d.metric.family), metric_order[d.metric.name], natural_key(name)

    return sorted(declared, key=key)


def _short_key(field_name: str) -> str:
    return field_name.split(".", 1)[1] if field_name.startswith(("dataset_params.", "hyperparameters.")) else field_name


def setting_labels(runs: pd.DataFrame) -> pd.Series:
    """Each run's setting label: the one stored with it, extended by the fields that differ where one label
    of a suite and dataset covers runs of several settings (`setting_key`s), e.g. ``vae [steps=2000]``."""
    labels = runs["setting"].copy()
    for _, group in runs.groupby(["suite", "dataset", "setting"], sort=False):
        keys = group["setting_key"].unique()
        if len(keys) < 2:
            continue
        first = {k: group.loc[group["setting_key"] == k, "spec"].iloc[0] for k in keys}
        flat = {k: {f: v for f, v in spec.flat().items() if f != "seed"} for k, spec in first.items()}
        fields = sorted({f for spec in flat.values() for f in spec})
        differing = [f for f in fields if len({json.dumps(spec.get(f), sort_keys=True) for spec in flat.values()}) > 1]
        for index in group.index:
            spec = flat[runs.at[index, "setting_key"]]
            extra = ", ".join(f"{_short_key(f)}={spec.get(f)}" for f in differing)
            labels[index] = f"{runs.at[index, 'setting']} [{extra}]"
    return labels


@dataclass(frozen=True, eq=False)
class Comparison:
    """The store's runs grouped into settings and summarised per value (see the module docstring)."""

    runs: pd.DataFrame  # the store's runs; `setting` is the label tables show
    stored: pd.DataFrame  # long: run_id, name, value, note, ceiling
    settings: tuple[Setting, ...]  # ordered by suite, dataset, variant, label
    summaries: tuple[SettingSummary, ...]  # per value name (registry order), per setting
    _index: dict[tuple[str, str, str], SettingSummary] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, store: StoreReader) -> Comparison:
        """Read the store's runs and values once and summarise them."""
        return cls.of(store.runs(), store.metrics())

    @classmethod
    def of(cls, runs: pd.DataFrame, stored: pd.DataFrame) -> Comparison:
        """The comparison of a store's runs (`ResultsStore.runs`) and long values (`ResultsStore.metrics`)."""
        if not runs.empty:
            runs = runs.assign(setting=setting_labels(runs))
        grouped: list[tuple[Setting, list[str]]] = []  # each setting with its completed runs, in seed order
        for (suite, key), group in runs.groupby(["suite", "setting_key"], sort=False):
            first = group.iloc[0]
            status = group["status"]
            setting = Setting(key, suite, first["dataset"], first["variant"], first["setting"], first["spec"],
                              int((status == RunStatus.DONE).sum()), int((status == RunStatus.DIVERGED).sum()),
                              int((status == RunStatus.FAILED).sum()))
            grouped.append((setting, list(group.loc[status == RunStatus.DONE, "run_id"])))
        grouped.sort(key=lambda g: (*g[0].ids, g[0].key))
        settings = [s for s, _ in grouped]
        rows = {(r, n): (v, c) for r, n, v, c in zip(stored["run_id"], stored["name"], stored["value"],
                                                     stored["ceiling"])}
        names = sorted(set(stored["name"]))
        ordered = value_order(names, per_latent=True)
        ordered += [n for n in names if n not in set(ordered)]  # undeclared values (a plugin not imported)
        summaries = []
        for name in ordered:
            declared = declaration_of(name)
            for setting, done in grouped:
                found = [rows[(r, name)] for r in done if (r, name) in rows]
                ceilings = [c for _, c in found if c is not None and not math.isnan(c)]
                summaries.append(SettingSummary(
                    setting, name, None if declared is None else declared.higher_is_better,
                    tuple(float(v) for v, _ in found if v is not None and math.isfinite(v)), len(found),
                    min(ceilings) if ceilings else None,
                ))
        index = {(s.setting.suite, s.setting.key, s.metric): s for s in summaries}
        return cls(runs, stored, tuple(settings), tuple(summaries), index)

    @property
    def empty(self) -> bool:
        return not self.settings

    def summary(self, setting: Setting, metric: str) -> SettingSummary:
        """The setting's summary of the value `metric` (one with no values where no run of the store has it)."""
        found = self._index.get((setting.suite, setting.key, metric))
        if found is None:
            declared = declaration_of(metric)
            return SettingSummary(setting, metric, None if declared is None else declared.higher_is_better, (), 0, None)
        return found

    def value_names(self, *, per_latent: bool = False) -> list[str]:
        """The declared values some run stored, in registry order; per-latent ones on request."""
        return value_order(sorted(set(self.stored["name"])), per_latent=per_latent)

    def has_value(self, metric: str) -> bool:
        """Whether some run of the store has the value (declared or not)."""
        return bool((self.stored["name"] == metric).any())

    def suite_metric_order(self) -> list[str]:
        """The metric names the runs' suites list, in their order (first suite first)."""
        order: list[str] = []
        for spec in self.runs["spec"]:
            order.extend(m for m in spec.metrics if m not in order)
        return order

    @cached_property
    def _per_run(self) -> pd.DataFrame:
        return wide_runs(self.runs, self.stored)

    def per_run(self) -> pd.DataFrame:
        """One row per run (the store's order): run_id, ID_COLUMNS, seed, status, timings, a column per value."""
        return self._per_run.copy()

    def sorted_settings(self) -> list[Setting]:
        """The settings in natural order of (suite, dataset, variant, label): 'beta=2.0' before 'beta=16.0'."""
        return sorted(self.settings, key=lambda s: tuple(natural_key(v) for v in s.ids))


# ---------------------------------------------------------------- what a cell says beside a mean


def ceiling_mark(summary: SettingSummary) -> str:
    """' ≤c' after a value with a known ceiling c, ' ≤c!' when the mean is within the ceiling's
    margin of it (saturated); '' without a ceiling."""
    declared = declaration_of(summary.metric)
    ceiling = declared.value.ceiling if declared is not None else None
    if ceiling is None or summary.ceiling is None or math.isnan(summary.mean):
        return ""
    return f" ≤{summary.ceiling:.3g}" + ("!" if summary.mean >= summary.ceiling - ceiling.margin else "")


def ceiling_footnote(values: Sequence[str]) -> str:
    """The explanation of the ceiling marks of `values`, or '' when none has a ceiling."""
    parts = []
    for value in values:
        declared = declaration_of(value)
        ceiling = declared.value.ceiling if declared is not None else None
        if ceiling is not None:
            parts.append(f"{value} ≤c: at most c, {ceiling.meaning}; ! within {ceiling.margin:g} of c "
                         "(saturated: it may be higher)")
    return "; ".join(parts)


def count_mark(summary: SettingSummary) -> str:
    """' (k/n)' after a mean that comes from k finite values of the n runs that computed it; '' when all did."""
    return f" ({summary.n}/{summary.of})" if summary.n < summary.of else ""


COUNT_FOOTNOTE = "(k/n): the mean and sd of the k runs, of n, whose value is finite (the others stored none)"


def footnotes(comparison: Comparison, values: Sequence[str]) -> list[str]:
    """The notes under a table of `values`: what the ceiling marks and the (k/n) counts mean, where used."""
    partial = any(count_mark(s) for s in comparison.summaries if s.metric in set(values))
    return [n for n in (ceiling_footnote(values), COUNT_FOOTNOTE if partial else "") if n]


def counts(summary: SettingSummary) -> tuple[float, float]:
    """(n, of) as a numeric table gives them: NaN for a setting with no completed run (nothing computed)."""
    return (summary.n, summary.of) if summary.setting.done else (math.nan, math.nan)
