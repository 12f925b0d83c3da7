"""The comparison table of `vaebench results`: one row per setting, mean ± sd over seeds."""

from __future__ import annotations

import json

import pandas as pd

from vaebench.bench.store import ResultsStore
from vaebench.metrics import METRICS
from vaebench.metrics.registry import metric_info_for_value

FORMATS = ("table", "csv", "json", "markdown")
ID_COLUMNS = ["suite", "dataset", "variant", "setting"]


def metric_columns(frame: pd.DataFrame, *, per_latent: bool = False) -> list[str]:
    """Metric value columns in registry order; per-latent values (kl_dim_i) only on request."""
    names = [c for c in frame.columns if metric_info_for_value(c) is not None]
    if not per_latent:
        names = [c for c in names if not c.startswith("kl_dim_")]
    order = {n: i for i, n in enumerate(METRICS.names())}
    return sorted(names, key=lambda c: (order.get(metric_info_for_value(c).name, 99), c))


def per_run_frame(store: ResultsStore) -> pd.DataFrame:
    frame = store.wide()
    return frame[["run_id", *ID_COLUMNS, "seed", "status", "wall_time_s", "steps_per_s", *metric_columns(frame)]]


def comparison_frame(store: ResultsStore) -> pd.DataFrame:
    """Per setting: completed runs (n), diverged/failed counts, and mean and sd of each metric."""
    return comparison_from_wide(store.wide())


def comparison_from_wide(frame: pd.DataFrame) -> pd.DataFrame:
    """`comparison_frame` of an already loaded `ResultsStore.wide()` frame."""
    metrics = metric_columns(frame)
    done = frame[frame["status"] == "done"]
    grouped = frame.groupby(ID_COLUMNS, sort=True)
    out = grouped["status"].agg(
        n=lambda s: int((s == "done").sum()), diverged=lambda s: int((s == "diverged").sum()),
        failed=lambda s: int((s == "failed").sum()),
    )
    if metrics and not done.empty:
        stats = done.groupby(ID_COLUMNS)[metrics].agg(["mean", "std"])
        stats.columns = [f"{m}_{s}" for m, s in stats.columns]
        out = out.join(stats, how="left")
    return out.reset_index()


def _cell(mean: float, sd: float) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.4g}" if pd.isna(sd) else f"{mean:.4g} ± {sd:.2g}"


def display_frame(comparison: pd.DataFrame) -> pd.DataFrame:
    """The comparison with 'mean ± sd' text cells and the direction in each metric's header."""
    shown = comparison[["dataset", "setting", "n", "diverged", "failed"]].copy()
    for col in comparison.columns:
        if col.endswith("_mean"):
            name = col[: -len("_mean")]
            arrow = "↑" if metric_info_for_value(name).higher_is_better else "↓"
            shown[f"{name} {arrow}"] = [
                _cell(m, s) for m, s in zip(comparison[col], comparison[f"{name}_std"])
            ]
    return shown


def format_results(store: ResultsStore, fmt: str, *, per_run: bool = False) -> str:
    frame = per_run_frame(store) if per_run else comparison_frame(store)
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return json.dumps(json.loads(frame.to_json(orient="records")), indent=2)
    shown = frame if per_run else display_frame(frame)
    if fmt == "markdown":
        return _markdown(shown)
    return shown.to_string(index=False)


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(_md_escape(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _md_escape(value: object) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|")
