"""`vaebench report DIR [--out DIR]`: every table, plot and image grid of a run directory, and one HTML file.

Reads only the store. Writes into the report directory:

    comparison.md / .tex / .csv / .html   mean and 95% bootstrap CI per setting and metric, best marked
    ranks.md / .tex / .csv                mean rank of each setting over metrics
    reproduction.md / .csv                published values beside the measured ones, when runs reproduce some
    pairwise.md / .tex / .csv             Holm-corrected Mann-Whitney U tests between settings
    plots/<name>.png and .svg             metric_<m>, rate_distortion, sweep_<variant>_<param>,
                                          metric_correlation, training_curves, ais_rate_distortion,
                                          iwae_curve (the last two when those opt-in metrics ran)
    grids/<setting>-<run_id>-<grid>.png   reconstructions, prior samples, latent traversals
    along*.csv, claims_along.csv, claims_trajectory.md / .csv, plots/along_training, learning_curves_<setting>:
                                          over training (vaebench.reports.along_report)
    report.html                           all of the above and the run metadata, self-contained
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vaebench.bench.grids import GRID_NAMES
from vaebench.bench.spec import RunStatus
from vaebench.bench.store import ResultsStore
from vaebench.errors import DataError
from vaebench.files import safe_text, temporary_path
from vaebench.reports import html as h, plots as P, tables as T
from vaebench.reports.along_report import AlongReport  # claims at every budget, along training, learning curves
from vaebench.reports.claims import claims_display, claims_table
from vaebench.reports.comparison import Comparison
from vaebench.reports.reproduction import format_rows, reproduction_html, reproduction_rows

GRID_CAPTIONS = {
    "grid_reconstructions": "test images (top) and reconstructions (bottom)",
    "grid_samples": "samples from the prior",
    "grid_traversals": "latent traversals: row i sweeps latent i from -3 to 3, the others fixed",
}


@dataclass
class ReportData:
    """Everything a report needs, read from the store once."""

    path: Path
    comparison: Comparison
    curves: pd.DataFrame
    artifacts: dict[tuple[str, str], bytes]

    @classmethod
    def load(cls, run_dir: str | Path, run_ids: set[str] | None = None) -> ReportData:
        with ResultsStore(run_dir, create=False, run_ids=run_ids) as store:
            comparison, curves, artifacts, path = Comparison.build(store), store.curves(), store.artifacts(), store.path
        if comparison.empty:
            raise DataError(f"{path}: the results store holds no runs (run `vaebench run` first)")
        return cls(path, comparison, curves, artifacts)

    @property
    def runs(self) -> pd.DataFrame:
        """The store's runs, settings labelled as the tables show them."""
        return self.comparison.runs

    @property
    def metrics(self) -> list[str]:
        """The values the tables and plots show: the declared, non-per-latent ones."""
        return self.comparison.value_names()


@dataclass
class Tables:
    comparison: pd.DataFrame  # long: one row per setting and metric (comparison.csv)
    pairwise: pd.DataFrame
    ranks: pd.DataFrame
    comparison_view: T.Table
    pairwise_view: T.Table
    ranks_view: T.Table
    claims: pd.DataFrame
    claims_view: T.Table


def build_tables(data: ReportData) -> Tables:
    comp = T.comparison_long(data.comparison, data.metrics)
    pairs = T.pairwise_frame(data.comparison, data.metrics)
    ranks = T.ranks_frame(data.comparison, data.metrics)
    claims = claims_table(data.comparison)
    return Tables(
        comp, pairs, ranks,
        T.comparison_display(data.comparison, data.metrics, title=suite_title(data.runs)),
        T.pairwise_display(pairs, data.metrics),
        T.ranks_display(ranks, data.metrics),
        claims, claims_display(claims),
    )


def build_plots(data: ReportData) -> tuple[list[P.Plot], str]:
    """The plots, and a note on the values they leave out (too large to draw), or ''."""
    wide, n_wide = P.drawable(data.comparison.per_run(), data.comparison.value_names(per_latent=True))
    curves, n_curves = P.drawable(data.curves, ["value"])
    plots = [
        *P.metric_plots(wide, data.comparison, data.metrics),
        *P.rate_distortion(wide),
        *P.sweep_plots(data.runs, wide, data.metrics),
        *P.correlation_plot(wide, data.metrics),
        *P.curve_plots(curves, wide),
        *P.ais_rate_distortion_plots(curves, wide),
        *P.iwae_curve_plots(wide),
    ]
    note = ""
    if n_wide or n_curves:
        note = (f"Not drawn: {n_wide} metric value(s) and {n_curves} curve point(s) beyond ±{P.PLOT_LIMIT:g}, "
                "too large to place on an axis (the tables give them).")
    return plots, note


def suite_title(runs: pd.DataFrame) -> str:
    return ", ".join(sorted(runs["suite"].unique()))


def grid_runs(data: ReportData) -> list[dict[str, Any]]:
    """Per dataset and setting, the completed run with the lowest seed that has image grids."""
    have = {run_id for run_id, name in data.artifacts if name in GRID_NAMES}
    chosen = []
    frame = data.runs[(data.runs["status"] == RunStatus.DONE) & data.runs["run_id"].isin(have)]
    for _, group in frame.groupby(["suite", "dataset", "setting"], sort=True):
        chosen.append(group.sort_values("seed").iloc[0].to_dict())
    return chosen


def write_report(run_dir: str | Path, out_dir: str | Path, *, run_ids: set[str] | None = None) -> list[Path]:
    """Write every table, plot, grid and the HTML report of `run_dir`'s store into `out_dir`.

    The files are written into a temporary sibling directory and moved into `out_dir` only once all of
    them are written: a report that fails (a full disk, values no plot can draw) leaves nothing there."""
    data = ReportData.load(run_dir, run_ids)
    along = AlongReport.build(run_dir, run_ids)  # over training: claims at every budget, along training, curves
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file, not a report directory")
    with staged_files(out) as staging:
        written = _write_report_files(data, along, staging)
    return [out / path.relative_to(staging) for path in written]


@contextmanager
def staged_files(out: Path) -> Iterator[Path]:
    """A temporary directory beside `out` to write into; on success its files are moved into `out` (each by
    a rename), on error it is removed and `out` is left as it was."""
    staging = temporary_path(out)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            target = out / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_report_files(data: ReportData, along: AlongReport, out: Path) -> list[Path]:
    written: list[Path] = []

    def write(name: str, text: str) -> None:
        path = out / name
        path.write_text(safe_text(text), encoding="utf-8")
        written.append(path)

    t = build_tables(data)
    write("comparison.md", T.render_markdown(t.comparison_view))
    write("comparison.tex", T.render_latex(t.comparison_view, label="tab:vaebench-comparison"))
    write("comparison.csv", t.comparison.to_csv(index=False))
    write("comparison.html", standalone_table(f"Comparison: {suite_title(data.runs)}", t.comparison_view))
    write("claims.md", T.render_markdown(t.claims_view))
    write("claims.csv", t.claims.to_csv(index=False))
    write("ranks.md", T.render_markdown(t.ranks_view))
    write("ranks.tex", T.render_latex(t.ranks_view, label="tab:vaebench-ranks"))
    write("ranks.csv", t.ranks.to_csv(index=False))
    write("pairwise.md", T.render_markdown(t.pairwise_view))
    write("pairwise.tex", T.render_latex(t.pairwise_view, label="tab:vaebench-pairwise"))
    write("pairwise.csv", t.pairwise.to_csv(index=False))
    reproduced = reproduction_rows(data.runs, data.comparison.stored, data.curves)
    if reproduced:
        write("reproduction.md", format_rows(reproduced, "markdown"))
        write("reproduction.csv", format_rows(reproduced, "csv"))

    figures: list[tuple[P.Plot, bytes]] = []
    plots, plot_note = build_plots(data)
    for plot in plots:
        png, svg, png_data = P.save(plot, out / "plots")
        written += [png, svg]
        figures.append((plot, png_data))

    for name, text in along.files().items():
        write(name, text)
    along_figures = []
    for plot in along.plots:
        png, svg, png_data = P.save(plot, out / "plots")
        written += [png, svg]
        along_figures.append((plot, png_data))

    grids: list[tuple[dict[str, Any], str, bytes]] = []
    for run in grid_runs(data):
        for name in GRID_NAMES:
            grid = data.artifacts.get((run["run_id"], name))
            if grid is None:
                continue
            path = out / "grids" / f"{P.slug(run['setting'])}-{run['run_id']}-{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(grid)
            written.append(path)
            grids.append((run, name, grid))

    write("report.html", render_report(data, t, figures, grids, plot_note, extra=along.sections(along_figures)))
    return written


def standalone_table(title: str, table: T.Table) -> str:
    return h.Page(title, sections=[h.Section("table", "Table", T.render_html(table, css_class="comparison"))]).render()


def render_report(
    data: ReportData, t: Tables, figures: list[tuple[P.Plot, bytes]], grids: list[tuple[dict[str, Any], str, bytes]],
    plot_note: str = "",
    extra: list[h.Section] | None = None,
) -> str:
    runs = data.runs
    statuses = runs["status"].value_counts().to_dict()
    subtitle = (
        f"{len(runs)} runs ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}) of "
        f"{runs['setting'].nunique()} settings on {runs['dataset'].nunique()} dataset(s), "
        f"seeds {sorted(int(s) for s in runs['seed'].unique())}; store {data.path}"
    )
    page = h.Page(f"vaebench report: {suite_title(runs)}", subtitle)
    for sid, title, view in (("comparison", "Comparison", t.comparison_view), ("ranks", "Ranks", t.ranks_view),
                             ("pairwise", "Pairwise tests", t.pairwise_view), ("claims", "Claims", t.claims_view)):
        page.sections.append(h.Section(sid, title, T.render_html(view, css_class=sid)))
    reproduced = reproduction_rows(data.runs, data.comparison.stored, data.curves)
    if reproduced:
        page.sections.append(h.Section("reproduction", "Published and measured", reproduction_html(reproduced)))
    if figures or plot_note:
        body = "\n".join(h.figure(png, plot.title) for plot, png in figures)
        if plot_note:
            body = f'<p class="note">{h.e(plot_note)}</p>\n' + body
        page.sections.append(h.Section("plots", "Plots", body))
    page.sections.extend(extra or [])  # sections over training (vaebench.reports.along_report)
    if grids:
        parts = []
        for run in {r["run_id"]: r for r, _, _ in grids}.values():
            parts.append(f"<h3>{h.e(run['setting'])} on {h.e(run['dataset'])} (seed {h.e(str(run['seed']))})</h3>")
            parts.extend(
                h.figure(png, f"{run['setting']}: {GRID_CAPTIONS[name]}", css_class="grid")
                for r, name, png in grids if r["run_id"] == run["run_id"]
            )
        page.sections.append(h.Section("grids", "Image grids", "\n".join(parts)))
    page.sections.append(h.Section("runs", "Runs", runs_html(runs)))
    page.sections.append(h.Section("environment", "Environment", environment_html(runs)))
    return page.render()


def run_metadata(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: identity, seed, budget, outcome and timings, from the spec and the runs table."""
    rows = []
    for r in runs.to_dict("records"):
        spec = r["spec"].to_dict()  # as stored: an ExternalSpec's with its placeholders for the training fields
        env = r["environment"]
        rows.append({
            "run_id": r["run_id"], "suite": r["suite"], "dataset": r["dataset"],
            "dataset params": spec.get("dataset_params", {}), "setting": r["setting"], "seed": r["seed"],
            "status": r["status"], "steps": f"{r['steps_done']}/{spec.get('steps')}",
            "batch": spec.get("batch_size"), "optimizer": f"{spec.get('optimizer')} lr={spec.get('learning_rate')}",
            "model": f"{spec.get('architecture')} z={spec.get('latent_dim')} {spec.get('likelihood')}",
            "wall time (s)": r["wall_time_s"], "scoring (s)": env.get("scoring_time_s"),
            "steps/s": r["steps_per_s"], "finished": r["finished_at"],
        })
    return pd.DataFrame(rows)


def runs_html(runs: pd.DataFrame) -> str:
    meta = run_metadata(runs)
    numeric = ("seed", "batch", "wall time (s)", "scoring (s)", "steps/s")
    parts = [h.frame_table(meta, css_class="runs", numeric=numeric)]
    metrics = sorted({m for s in runs["spec"] for m in s.metrics})
    params = sorted({json_text(dict(s.metric_params)) for s in runs["spec"]})
    parts.append(h.key_value_table([("metrics", ", ".join(metrics)), ("metric params", "; ".join(params))]))
    errors = runs[runs["error"].notna() & (runs["error"] != "")]
    if not errors.empty:
        parts.append("<h3>Diverged and failed runs</h3>")
        for r in errors.to_dict("records"):
            step = f" at step {int(r['diverged_step'])}" if pd.notna(r.get("diverged_step")) else ""
            what = f"{r['setting']} on {r['dataset']}, seed {r['seed']}: {r['status']}{step}"
            parts.append(f"<p>{h.e(what)}</p>")
            parts.append(h.pre(str(r["error"])))
    return "\n".join(parts)


def json_text(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


def environment_html(runs: pd.DataFrame) -> str:
    """Each environment field with its distinct values over runs (and how many runs had each)."""
    values: dict[str, dict[str, int]] = {}
    for env in runs["environment"]:
        flat = {**{k: v for k, v in env.items() if k != "packages"},
                **{f"package {p}": v for p, v in (env.get("packages") or {}).items()}}
        for k, v in flat.items():
            if k in ("scoring_time_s", "along_scoring_time_s"):
                continue
            counts = values.setdefault(k, {})
            counts[str(v)] = counts.get(str(v), 0) + 1
    rows = []
    for k in sorted(values):
        counts = values[k]
        if len(counts) == 1:
            shown = next(iter(counts))
        else:
            shown = "; ".join(f"{v} ({n} runs)" for v, n in sorted(counts.items()))
        rows.append((k, shown))
    return h.key_value_table(rows, css_class="environment")
