"""The report's plots (seaborn on matplotlib's Agg canvas; PNG and SVG), read from the comparison's frames.

Every function returns a list of `Plot`s (a name, a title and a matplotlib Figure) and draws
nothing it has no data for. Figures are created without pyplot, so no global figure state or
backend is touched; `save` writes each as PNG and SVG with no timestamps in the files.

    metric_plots        per metric: each seed's value and the mean with its bootstrap CI, by setting (a Comparison)
    rate_distortion     rate against distortion (the values declared with those roles: kl, recon_bce), per run
    sweep_plots         metric against a hyperparameter a grid sweeps (beta, or whichever varies)
    correlation_plot    Spearman correlations between metrics across completed runs
    curve_plots         training curves (the store's `curves` table), mean and sd over seeds
    ais_rate_distortion_plots  each run's AIS rate-distortion curve (ais_rate_distortion) beside its
                        own (KL, reconstruction) point, the prior's zero-rate distortion marked
    iwae_curve_plots    iwae_nll against K (iwae_curve), with ais_nll where measured
"""

from __future__ import annotations

import math
import re
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vaebench.bench.spec import RunSpec, RunStatus
from vaebench.metrics.registry import curve_declaration, value_with_role
from vaebench.reports.comparison import Comparison
from vaebench.reports.stats import higher_is_better

STYLE = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.9), "svg.hashsalt": "vaebench"}
LEGEND_WRAP = 45  # characters per line of a long setting in a legend
PREFERRED_SWEEP = ("beta", "gamma", "lambda_", "alpha", "c_max")
DPI = 110


JITTER, JITTER_SEED = 0.12, 0  # the seeds' horizontal spread in a metric plot (a fixed draw: plots are reproducible)
PLOT_LIMIT = 1e300  # matplotlib cannot place values near the float maximum (its tick arithmetic overflows)


def drawable(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """`frame` with the values of `columns` that are infinite or beyond ±PLOT_LIMIT set to NaN (not drawn),
    and how many there were: a report draws what it can and says what it left out."""
    out = frame.copy()
    left_out = 0
    for column in columns:
        if column in out:
            values = pd.to_numeric(out[column], errors="coerce")
            beyond = values.notna() & ~(values.abs() <= PLOT_LIMIT)
            left_out += int(beyond.sum())
            out[column] = values.mask(beyond)
    return out, left_out


def drawn(value: float) -> float:
    """`value`, or NaN (not drawn) where it is infinite or beyond ±PLOT_LIMIT (as `drawable` masks a column)."""
    return value if abs(value) <= PLOT_LIMIT else math.nan


@dataclass
class Plot:
    name: str  # file stem, safe for a path
    title: str
    figure: Figure


def slug(text: str) -> str:
    """A file-name-safe version of `text` (letters, digits, '.', '_' and '-')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_.") or "x"


def mpl_text(text: object) -> str:
    """A label drawn literally: '$' would start matplotlib's mathtext."""
    return str(text).replace("$", r"\$")


def _figure(ncols: int = 1, nrows: int = 1, *, width: float = 5.0, height: float = 3.6) -> tuple[Figure, np.ndarray]:
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width * ncols, height * nrows), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _arrow(metric: str) -> str:
    return f"{metric} ({'higher' if higher_is_better(metric) else 'lower'} is better)"


def _done(wide: pd.DataFrame) -> pd.DataFrame:
    return wide[wide["status"] == RunStatus.DONE]


def _suffix(key: str, many: bool) -> str:
    return f"_{slug(key)}" if many else ""


def metric_plots(wide: pd.DataFrame, comparison: Comparison, metrics: Sequence[str]) -> list[Plot]:
    """Per metric and dataset: the seeds as points (`wide`: the comparison's runs, `drawable`) and the mean
    with its 95% bootstrap CI (the comparison's summaries; what is beyond PLOT_LIMIT is not drawn)."""
    done = _done(wide)
    settings = comparison.sorted_settings()
    datasets = sorted({s.dataset for s in settings})
    plots = []
    for metric in metrics:
        for dataset in datasets:
            summaries = [comparison.summary(setting, metric) for setting in settings if setting.dataset == dataset]
            rows = [s for s in summaries if not math.isnan(drawn(s.mean))]
            if not rows:
                continue
            settings_shown = [s.setting.label for s in rows]
            with matplotlib.rc_context(STYLE):
                fig, axes = _figure(width=max(4.5, 1.1 * len(settings_shown) + 2))
                ax = axes[0, 0]
                seeds = done[(done["dataset"] == dataset) & done["setting"].isin(settings_shown)]
                positions = {s: i for i, s in enumerate(settings_shown)}
                if not seeds.empty:  # the seeds, spread along x by a fixed draw, not the global RNG
                    jitter = np.random.default_rng(JITTER_SEED).uniform(-JITTER, JITTER, len(seeds))
                    ax.scatter(seeds["setting"].map(positions).to_numpy(float) + jitter, seeds[metric], s=16,
                               color="0.55", alpha=0.8, linewidths=0, zorder=3)
                x = np.array([positions[s] for s in settings_shown], dtype=float)
                mean = np.array([drawn(s.mean) for s in rows])
                low, high = np.array([drawn(s.ci_low) for s in rows]), np.array([drawn(s.ci_high) for s in rows])
                has_ci = np.isfinite(low) & np.isfinite(high)
                ax.errorbar(
                    x[has_ci], mean[has_ci], yerr=[mean[has_ci] - low[has_ci], high[has_ci] - mean[has_ci]],
                    fmt="o", color="C0", capsize=5, markersize=7, label="mean, 95% CI", zorder=5,
                )
                ax.plot(x[~has_ci], mean[~has_ci], "o", color="C0", markersize=7, zorder=5)
                ax.set_xticks(x, [mpl_text(s) for s in settings_shown], rotation=20, ha="right")
                ax.set_xlim(-0.5, len(settings_shown) - 0.5)
                ax.set_xlabel("")
                ax.set_ylabel(mpl_text(_arrow(metric)))
                ax.set_title(mpl_text(f"{metric} on {dataset}"))
            name = f"metric_{slug(metric)}{_suffix(dataset, len(datasets) > 1)}"
            plots.append(Plot(name, f"{metric} by setting ({dataset})", fig))
    return plots


def rate_distortion(wide: pd.DataFrame) -> list[Plot]:
    """The rate-distortion plane, one point per completed run, coloured by variant, marker by setting.

    Rate and distortion are the values the registry declares with those roles (kl, recon_bce).
    """
    done = _done(wide)
    rate, distortion = value_with_role("rate", done.columns), value_with_role("distortion", done.columns)
    if rate is None or distortion is None:
        return []
    ylabel = f"distortion: {distortion} (nats)"
    frame = done.assign(rate=done[rate], distortion=done[distortion]).dropna(subset=["rate", "distortion"])
    if frame.empty:
        return []
    datasets = sorted(frame["dataset"].unique())
    legend_lines = frame["variant"].nunique() + sum(
        textwrap.fill(t, LEGEND_WRAP).count("\n") + 1 for t in frame["setting"].unique()
    )
    fig, axes = _figure(len(datasets), width=10.0, height=max(4.4, 0.2 * legend_lines + 1.0))
    with matplotlib.rc_context(STYLE):
        for ax, dataset in zip(axes[0], datasets):
            part = frame[frame["dataset"] == dataset]
            part = part.assign(
                variant=part["variant"].map(mpl_text),
                setting=part["setting"].map(lambda t: mpl_text(textwrap.fill(t, LEGEND_WRAP))),
            )
            sns.scatterplot(
                data=part, x="rate", y="distortion", hue="variant", style="setting", s=60, ax=ax,
                hue_order=sorted(part["variant"].unique()), style_order=sorted(part["setting"].unique()),
            )
            ax.set_xlabel(f"rate: {rate} (nats)")
            ax.set_ylabel(ylabel)
            ax.set_title(mpl_text(f"rate-distortion on {dataset}"))
            # outside the axes: with many settings an inside legend covers the points
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return [Plot("rate_distortion", "Rate-distortion plane", fig)]


def swept_parameters(runs: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(dataset, variant, hyperparameter) where the variant's settings take several numeric values of it.

    `runs`: the store's runs() frame (`spec` a RunSpec). Ordered with beta and other main weights first.
    """
    found = []
    for (dataset, variant), group in runs.groupby(["dataset", "variant"], sort=True):
        hps = pd.DataFrame([dict(s.hyperparameters) for s in group["spec"] if isinstance(s, RunSpec)])
        for col in hps.columns:
            vals = hps[col]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
            if numeric and vals.nunique() > 1:
                found.append((dataset, variant, col))
    rank = {p: i for i, p in enumerate(PREFERRED_SWEEP)}
    return sorted(found, key=lambda t: (t[0], t[1], rank.get(t[2], len(rank)), t[2]))


def sweep_plots(runs: pd.DataFrame, wide: pd.DataFrame, metrics: Sequence[str]) -> list[Plot]:
    """Per swept hyperparameter: each metric against it (mean over seeds, sd band; log x for wide ranges)."""
    done = _done(wide)
    hp = {r: dict(s.hyperparameters) for r, s in zip(runs["run_id"], runs["spec"]) if isinstance(s, RunSpec)}
    sweeps = swept_parameters(runs)
    many_datasets = runs["dataset"].nunique() > 1
    plots = []
    for dataset, variant, param in sweeps:
        part = done[(done["dataset"] == dataset) & (done["variant"] == variant)].copy()
        if part.empty:
            continue
        part[param] = [float(hp[r][param]) for r in part["run_id"]]
        part = part[part[param].abs() <= PLOT_LIMIT]  # a hyperparameter too large to place on an axis
        if part.empty:
            continue
        others = sorted({k for r in part["run_id"] for k, v in hp[r].items() if k != param})
        varying = [k for k in others if len({repr(hp[r].get(k)) for r in part["run_id"]}) > 1]
        part["others"] = [
            mpl_text(", ".join(f"{k}={hp[r].get(k)}" for k in varying)) or variant for r in part["run_id"]
        ]
        shown = [m for m in metrics if m in part and part[m].notna().any()]
        if not shown:
            continue
        ncols = min(3, len(shown))
        nrows = math.ceil(len(shown) / ncols)
        fig, axes = _figure(ncols, nrows, width=4.2, height=3.2)
        with matplotlib.rc_context(STYLE):
            for ax, metric in zip(axes.flat, shown):
                sns.lineplot(
                    data=part, x=param, y=metric, hue="others" if varying else None, marker="o", errorbar="sd",
                    estimator="mean", ax=ax, legend=bool(varying) and ax is axes.flat[0],
                )
                values = part[param]
                if (values > 0).all() and values.max() / values.min() >= 8:  # a geometric grid such as 1, 4, 16
                    ax.set_xscale("log")
                    ticks = sorted(values.unique())
                    ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
                    ax.minorticks_off()
                ax.set_xlabel(mpl_text(param))
                ax.set_ylabel(mpl_text(_arrow(metric)))
            for ax in list(axes.flat)[len(shown):]:
                ax.set_visible(False)
            fig.suptitle(mpl_text(f"{variant}: metrics against {param} on {dataset} (mean ± sd over seeds)"))
        name = f"sweep_{slug(variant)}_{slug(param)}{_suffix(dataset, many_datasets)}"
        plots.append(Plot(name, f"{variant}: metrics against {param} ({dataset})", fig))
    return plots


def correlation_plot(wide: pd.DataFrame, metrics: Sequence[str]) -> list[Plot]:
    """Spearman rank correlation between metrics over completed runs (needs 3 runs and 2 varying metrics)."""
    done = _done(wide)
    cols = [m for m in metrics if m in done and done[m].notna().sum() >= 3 and done[m].nunique() > 1]
    if len(done) < 3 or len(cols) < 2:
        return []
    corr = done[cols].corr(method="spearman", min_periods=3)
    size = 2.5 + 0.7 * len(cols)
    fig, axes = _figure(width=size + 1.5, height=size)
    with matplotlib.rc_context(STYLE), warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # seaborn 0.13 calls cmap.set_bad
        sns.heatmap(
            corr, vmin=-1, vmax=1, center=0, cmap="vlag", annot=len(cols) <= 14, fmt=".2f", square=True,
            ax=axes[0, 0], cbar_kws={"label": "Spearman correlation"},
        )
        axes[0, 0].tick_params(axis="x", labelrotation=45)
        axes[0, 0].tick_params(axis="y", labelrotation=0)
        axes[0, 0].set_title(f"metric correlation over {len(done)} runs")
    return [Plot("metric_correlation", "Correlation between metrics across runs", fig)]


def curve_plots(curves: pd.DataFrame, wide: pd.DataFrame) -> list[Plot]:
    """Training curves per dataset: one panel per logged term, one line per setting (mean ± sd over seeds)."""
    if curves.empty:
        return []
    curves = curves[[curve_declaration(n) is None for n in curves["name"]]]  # not a metric's curves
    ids = wide[["run_id", "dataset", "setting"]]
    frame = curves.merge(ids, on="run_id", how="inner").dropna(subset=["value"])
    if frame.empty:
        return []
    datasets = sorted(frame["dataset"].unique())
    plots = []
    for dataset in datasets:
        part = frame[frame["dataset"] == dataset]
        part = part.assign(setting=part["setting"].map(mpl_text))
        names = sorted(part["name"].unique(), key=lambda n: (n != "loss", n))
        ncols = min(3, len(names))
        nrows = math.ceil(len(names) / ncols)
        fig, axes = _figure(ncols, nrows, width=4.2, height=3.0)
        with matplotlib.rc_context(STYLE):
            order = sorted(part["setting"].unique())
            for i, (ax, name) in enumerate(zip(axes.flat, names)):
                sns.lineplot(
                    data=part[part["name"] == name], x="step", y="value", hue="setting", hue_order=order,
                    errorbar="sd", estimator="mean", ax=ax, legend=i == 0,
                )
                ax.set_title(mpl_text(name))
                ax.set_ylabel("")
                if i == 0 and ax.get_legend() is not None:
                    ax.legend(fontsize="x-small")
            for ax in list(axes.flat)[len(names):]:
                ax.set_visible(False)
            fig.suptitle(mpl_text(f"training curves on {dataset} (mean ± sd over seeds)"))
        plots.append(Plot(f"training_curves{_suffix(dataset, len(datasets) > 1)}", f"Training curves ({dataset})", fig))
    return plots


RD_CURVES = ("ais_rd_beta", "ais_rd_rate", "ais_rd_distortion")
IWAE_K_VALUE = re.compile(r"iwae_nll_k(\d+)\Z")


def ais_rate_distortion_plots(curves: pd.DataFrame, wide: pd.DataFrame) -> list[Plot]:
    """Per dataset: every completed run's AIS rate-distortion curve (ais_rate_distortion's curves:
    rate against distortion along beta), coloured by setting, with the run's own encoder point
    (kl, neg_elbo - kl: its rate and its distortion -log p(x|z) under its own likelihood), the
    curve's zero-rate end (the prior's distortion, a square) and its beta = 1 point (the exact
    posterior, a circle: rate + distortion = -log p(x))."""
    if curves.empty:
        return []
    frame = curves[curves["name"].isin(RD_CURVES)].dropna(subset=["value"])
    done = _done(wide)
    frame = frame[frame["run_id"].isin(done["run_id"])]
    if frame.empty:
        return []
    points = frame.pivot_table(index=["run_id", "step"], columns="name", values="value").reset_index()
    if not set(RD_CURVES) <= set(points.columns):
        return []
    points = points.merge(done[["run_id", "dataset", "setting"]], on="run_id").sort_values(["run_id", "step"])
    datasets = sorted(points["dataset"].unique())
    fig, axes = _figure(len(datasets), width=7.5, height=5.0)
    with matplotlib.rc_context(STYLE):
        for ax, dataset in zip(axes[0], datasets):
            part = points[points["dataset"] == dataset]
            settings = sorted(part["setting"].unique())
            colours = {s: f"C{i % 10}" for i, s in enumerate(settings)}
            for run_id, run in part.groupby("run_id", sort=True):
                setting = run["setting"].iloc[0]
                colour = colours[setting]
                label = mpl_text(textwrap.fill(setting, LEGEND_WRAP)) if run_id == part[
                    part["setting"] == setting]["run_id"].min() else None
                ax.plot(run["ais_rd_rate"], run["ais_rd_distortion"], "-", color=colour, lw=1.2, alpha=0.8,
                        label=label)
                prior = run[run["ais_rd_beta"] == 0.0]
                ax.plot(prior["ais_rd_rate"], prior["ais_rd_distortion"], "s", color=colour, ms=6)
                one = run.iloc[[int(np.argmin(np.abs(run["ais_rd_beta"].to_numpy() - 1.0)))]]
                ax.plot(one["ais_rd_rate"], one["ais_rd_distortion"], "o", color=colour, ms=6, mfc="white")
                own = done[done["run_id"] == run_id]
                if {"kl", "neg_elbo"} <= set(own.columns) and own[["kl", "neg_elbo"]].notna().all(axis=None):
                    kl, neg_elbo = float(own["kl"].iloc[0]), float(own["neg_elbo"].iloc[0])
                    ax.plot([kl], [neg_elbo - kl], "*", color=colour, ms=11, mec="black", mew=0.5)
            for marker, text, face in (("s", "zero rate: decoding from the prior", None),
                                       ("o", "beta = 1: the exact posterior", "white"),
                                       ("*", "the model's encoder (kl, neg_elbo - kl)", None)):
                ax.plot([], [], marker, color="0.3", mfc=face, label=text)
            ax.set_xlabel("rate (nats)")
            ax.set_ylabel("distortion: -log p(x|z) (nats)")
            ax.set_title(mpl_text(f"AIS rate-distortion on {dataset}"))
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return [Plot("ais_rate_distortion", "Rate-distortion curves by AIS", fig)]


def _ais_level(runs: pd.DataFrame) -> float | None:
    """Where AIS sits on the IWAE curve's axis: the mean over runs of iwae_nll_k1 - ais_elbo_gap.

    ais_nll scores fewer images than iwae_nll (a subset of them), and -log p(x) varies between
    images far more than the gap between two estimates of it does: the ELBO-to-AIS gap measured
    on ais_nll's images, placed below the curve's K = 1 point, compares; ais_nll itself would not.
    Without the gap (a deterministic encoder has no ELBO), ais_nll itself."""
    if "ais_nll" not in runs.columns or runs["ais_nll"].isna().all():
        return None
    if {"iwae_nll_k1", "ais_elbo_gap"} <= set(runs.columns):
        level = (runs["iwae_nll_k1"] - runs["ais_elbo_gap"]).dropna()
        if not level.empty:
            return float(level.mean())
    return float(runs["ais_nll"].dropna().mean())


def iwae_curve_plots(wide: pd.DataFrame) -> list[Plot]:
    """Per dataset: iwae_nll at each K of iwae_curve (mean over seeds, per setting; log K axis),
    and AIS of the same setting as a dashed line where ais_nll was measured (`_ais_level`): the
    bound tightening with K, and the gap from the ELBO (K = 1) to AIS."""
    done = _done(wide)
    ks = sorted((int(m.group(1)), c) for c in done.columns if (m := IWAE_K_VALUE.match(str(c))))
    if not ks:
        return []
    long = done.melt(id_vars=["run_id", "dataset", "setting"], value_vars=[c for _, c in ks], var_name="value_name",
                     value_name="nll").dropna(subset=["nll"])
    if long.empty:
        return []
    long["K"] = long["value_name"].map({c: k for k, c in ks})
    datasets = sorted(long["dataset"].unique())
    fig, axes = _figure(len(datasets), width=7.0, height=4.2)
    with matplotlib.rc_context(STYLE):
        for ax, dataset in zip(axes[0], datasets):
            part = long[long["dataset"] == dataset]
            settings = sorted(part["setting"].unique())
            for i, setting in enumerate(settings):
                colour = f"C{i % 10}"
                mean = part[part["setting"] == setting].groupby("K")["nll"].mean()
                ax.plot(mean.index, mean.to_numpy(), "o-", color=colour,
                        label=mpl_text(textwrap.fill(setting, LEGEND_WRAP)))
                level = _ais_level(done[(done["dataset"] == dataset) & (done["setting"] == setting)])
                if level is not None:
                    ax.axhline(level, color=colour, ls="--", lw=1.0)
            if "ais_nll" in done.columns and done["ais_nll"].notna().any():
                ax.plot([], [], "--", color="0.3", label=textwrap.fill(
                    "AIS: the K = 1 value minus ais_elbo_gap (the ELBO-to-AIS gap on ais_nll's images)", LEGEND_WRAP))
            ax.set_xscale("log")
            shown_ks = sorted(part["K"].unique())
            ax.set_xticks(shown_ks, [f"{k:,}" for k in shown_ks])
            ax.minorticks_off()
            ax.set_xlabel("K (importance samples; K = 1: the ELBO)")
            ax.set_ylabel("-log p(x) estimate (nats)")
            ax.set_title(mpl_text(f"iwae_nll against K on {dataset} (mean over seeds)"))
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return [Plot("iwae_curve", "The importance-weighted bound against K", fig)]


def save(plot: Plot, directory: Path) -> tuple[Path, Path, bytes]:
    """Write `name`.png and `name`.svg into `directory`; return both paths and the PNG bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    png, svg = directory / f"{plot.name}.png", directory / f"{plot.name}.svg"
    with matplotlib.rc_context(STYLE):
        plot.figure.savefig(png, format="png", metadata={"Software": None})
        plot.figure.savefig(svg, format="svg", metadata={"Date": None})
    return png, svg, png.read_bytes()
