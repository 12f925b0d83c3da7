"""The report's plots over training steps: values scored along training, and learning curves per setting.

    along_plots           per dataset: one panel per value scored at two or more budgets, one line per
                          setting (the mean over seeds) with its 95% bootstrap CI as a band
                          (`vaebench.reports.trajectories.along_summary`, i.e. `stats.mean_ci`)
    learning_curve_plots  per setting: one panel per logged training term, one line per seed, and a
                          dashed red line at the step where a run diverged

Figures are made like the other report plots (`vaebench.reports.plots`: no pyplot, Agg canvas).
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd

from vaebench.bench.spec import RunStatus
from vaebench.reports.comparison import value_order
from vaebench.reports.plots import STYLE, Plot, _arrow, _figure, mpl_text, slug
from vaebench.reports.stats import natural_key

DIVERGED_COLOR = "red"


def _panels(n: int) -> tuple[int, int]:
    ncols = min(3, n)
    return ncols, math.ceil(n / ncols)


def along_plots(summary: pd.DataFrame) -> list[Plot]:
    """Each value against the budget (steps), per dataset; nothing without two budgets."""
    if summary.empty or summary["step"].nunique() < 2:
        return []
    datasets = sorted(summary["dataset"].unique())
    plots = []
    for dataset in datasets:
        part = summary[summary["dataset"] == dataset]
        values = [v for v in value_order(list(dict.fromkeys(part["value"])))  # registry order
                  if part.loc[part["value"] == v, "step"].nunique() >= 2]
        if not values:
            continue
        settings = sorted(part["setting"].unique(), key=natural_key)
        steps = sorted(part["step"].unique())
        ncols, nrows = _panels(len(values))
        fig, axes = _figure(ncols, nrows, width=4.4, height=3.2)
        with matplotlib.rc_context(STYLE):
            for ax, value in zip(axes.flat, values):
                for i, setting in enumerate(settings):
                    line = part[(part["value"] == value) & (part["setting"] == setting)].sort_values("step")
                    if line.empty:
                        continue
                    color = f"C{i % 10}"
                    marker = "osD^v<>ph*"[(i // 10) % 10]
                    ax.plot(line["step"], line["mean"], marker=marker, color=color, label=mpl_text(setting),
                            markersize=4)
                    band = line[np.isfinite(line["ci_low"]) & np.isfinite(line["ci_high"])]
                    if not band.empty:
                        ax.fill_between(band["step"], band["ci_low"], band["ci_high"], color=color, alpha=0.15,
                                        linewidth=0)
                ax.set_xticks(steps, [f"{s:,d}" for s in steps])
                ax.set_xlabel("steps")
                ax.set_ylabel(mpl_text(_arrow(value)), fontsize="small")
                ax.set_title(mpl_text(value))
            for ax in list(axes.flat)[len(values):]:
                ax.set_visible(False)
            handles, labels = axes.flat[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside right upper", fontsize="x-small")
            fig.suptitle(mpl_text(f"along training on {dataset}: mean over seeds and 95% bootstrap CI"))
        suffix = f"_{slug(dataset)}" if len(datasets) > 1 else ""
        plots.append(Plot(f"along_training{suffix}", f"Metrics along training ({dataset})", fig))
    return plots


def learning_curve_plots(curves: pd.DataFrame, runs: pd.DataFrame) -> list[Plot]:
    """Per dataset and setting: the stored training curves of each seed; a diverged run's step marked.

    `runs`: the store's runs with settings distinguished (dataset, setting, seed, status, diverged_step)."""
    if curves.empty or runs.empty:
        return []
    plots = []
    groups = runs.groupby(["dataset", "setting"], sort=True)
    many_datasets = runs["dataset"].nunique() > 1
    for (dataset, setting), group in groups:
        part = curves[curves["run_id"].isin(set(group["run_id"]))].dropna(subset=["value"])
        if part.empty:
            continue
        names = sorted(part["name"].unique(), key=lambda n: (not n.endswith("loss"), n))
        ncols, nrows = _panels(len(names))
        fig, axes = _figure(ncols, nrows, width=4.0, height=2.8)
        diverged = group[group["status"] == RunStatus.DIVERGED].dropna(subset=["diverged_step"])
        with matplotlib.rc_context(STYLE):
            for ax, name in zip(axes.flat, names):
                for i, run in enumerate(group.sort_values("seed").to_dict("records")):
                    line = part[(part["run_id"] == run["run_id"]) & (part["name"] == name)].sort_values("step")
                    if not line.empty:
                        ax.plot(line["step"], line["value"], color=f"C{i % 10}", linewidth=1.0,
                                label=f"seed {run['seed']}")
                for run in diverged.to_dict("records"):
                    ax.axvline(int(run["diverged_step"]), color=DIVERGED_COLOR, linestyle="--", linewidth=1.0,
                               label=f"seed {run['seed']} diverged at step {int(run['diverged_step']):,d}")
                ax.set_title(mpl_text(name), fontsize="small")
                ax.set_xlabel("steps")
            for ax in list(axes.flat)[len(names):]:
                ax.set_visible(False)
            handles, labels = axes.flat[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside right upper", fontsize="x-small")
            note = f"; {len(diverged)} diverged (dashed red)" if len(diverged) else ""
            fig.suptitle(mpl_text(f"{setting} on {dataset}: training curves per seed{note}"))
        name = f"learning_curves_{slug(dataset) + '_' if many_datasets else ''}{slug(setting)}"
        plots.append(Plot(name, f"Learning curves: {setting} ({dataset})", fig))
    return plots
