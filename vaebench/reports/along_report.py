"""The report's parts over training: claims at every budget, metrics along training, learning curves.

`vaebench report` (vaebench.reports.report) writes what `AlongReport.build` returns:

    along.csv               per setting, budget and value: n, mean, sd, 95% bootstrap CI over seeds
    along_runs.csv          per run and budget: every value scored there
    claims_along.csv        the claims table at every budget (a `step` column)
    claims_trajectory.md / .csv   per claim: the verdict at each budget, in words, and whether it is stable
    plots/along_training.png / .svg, plots/learning_curves_<setting>.png / .svg

and two sections of report.html: "Along training" (with two budgets or more) and "Learning curves".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vaebench.reports import html as h, tables as T
from vaebench.reports.comparison import setting_labels
from vaebench.reports.plots import Plot, drawable
from vaebench.reports.trajectories import (
    STABLE_OVER,
    along_runs,
    along_summary,
    budgets,
    claims_along,
    comparisons,
    protocol_note,
    read_frames,
    verdict_trajectories,
)
from vaebench.reports.trajectory_plots import along_plots, learning_curve_plots


@dataclass
class AlongReport:
    steps: list[int]
    summary: pd.DataFrame
    per_run: pd.DataFrame
    claims: pd.DataFrame
    trajectories: pd.DataFrame
    protocol: str
    along: list[Plot] = field(default_factory=list)
    curves: list[Plot] = field(default_factory=list)

    @classmethod
    def build(cls, run_dir: str | Path, run_ids: set[str] | None = None) -> AlongReport:
        frames = read_frames(run_dir, run_ids)
        steps = budgets(frames)
        by_step = comparisons(frames)  # one comparison per budget
        per_run = along_runs(by_step)
        summary = along_summary(by_step)
        claims = claims_along(by_step)
        trajectories = verdict_trajectories(claims) if not claims.empty else pd.DataFrame()
        runs = frames.runs.assign(setting=setting_labels(frames.runs)) if not frames.runs.empty else frames.runs
        # values no axis can hold (infinite, beyond PLOT_LIMIT) are left out of the plots; the tables keep them
        numeric = summary.select_dtypes("number").columns if not summary.empty else []
        drawn_summary, _ = drawable(summary, [c for c in numeric if c not in ("step", "n")])
        drawn_curves, _ = drawable(frames.curves, ["value"])
        plots = along_plots(drawn_summary) if len(steps) > 1 else []
        return cls(steps, summary, per_run, claims, trajectories, protocol_note(frames), plots,
                   _unique(learning_curve_plots(drawn_curves, runs)))

    @property
    def plots(self) -> list[Plot]:
        return [*self.along, *self.curves]

    def files(self) -> dict[str, str]:
        """File name -> text, for the report directory."""
        out: dict[str, str] = {}
        if len(self.steps) > 1:
            out["along.csv"] = self.summary.to_csv(index=False)
            values = [c for c in self.per_run.columns if c not in ("spec", "environment")]
            out["along_runs.csv"] = self.per_run[values].to_csv(index=False)
            if not self.claims.empty:
                out["claims_along.csv"] = self.claims.to_csv(index=False)
                out["claims_trajectory.csv"] = self.trajectories.to_csv(index=False)
                out["claims_trajectory.md"] = T.render_markdown(self.trajectory_view())
        return out

    def trajectory_view(self) -> T.Table:
        steps = [str(s) for s in self.steps if str(s) in self.trajectories.columns]
        columns = [T.Column("dataset"), T.Column("setting"), T.Column("claim")]
        columns += [T.Column(f"{int(s):,d} steps") for s in steps] + [T.Column("trajectory"), T.Column("stable")]
        rows = []
        for r in self.trajectories.to_dict("records"):
            stable = {True: "yes", False: "no", None: "–"}[r["stable"]]
            rows.append([T.Cell(str(r["dataset"])), T.Cell(str(r["setting"])), T.Cell(str(r["claim"]))]
                        + [T.Cell(str(r[s])) for s in steps]
                        + [T.Cell(str(r["trajectory"])), T.Cell(stable, bold=r["stable"] is False)])
        caption = ("Each claim's verdict at every budget: the claims table (one-sided Mann-Whitney, Holm-corrected "
                   f"across the claims of that budget) on the models as they were at that step ({self.protocol}). "
                   "A verdict is stable "
                   f"when it is the same at the last {STABLE_OVER} budgets; 'no' (bold) marks those that changed.")
        return T.Table(columns, rows, caption=caption)

    def sections(self, figures: list[tuple[Plot, bytes]]) -> list[h.Section]:
        """The report's sections, with the PNGs of `self.plots` as saved (`figures`)."""
        png = {plot.name: data for plot, data in figures}
        sections = []
        if len(self.steps) > 1:
            budgets_text = ", ".join(f"{s:,d}" for s in self.steps)
            parts = [f"<p>{h.e(f'Budgets: {budgets_text} steps; values: {self.protocol}.')}</p>"]
            if not self.trajectories.empty:
                parts.append(T.render_html(self.trajectory_view(), css_class="claims-along"))
            parts += [h.figure(png[p.name], p.title) for p in self.along if p.name in png]
            sections.append(h.Section("along", "Along training", "\n".join(parts)))
        if self.curves:
            body = "\n".join(h.figure(png[p.name], p.title) for p in self.curves if p.name in png)
            sections.append(h.Section("learning-curves", "Learning curves per setting", body))
        return sections


def _unique(plots: list[Plot]) -> list[Plot]:
    """Plots with distinct file names (two settings whose names slug alike get a counter)."""
    seen: dict[str, int] = {}
    for plot in plots:
        count = seen.get(plot.name, 0)
        seen[plot.name] = count + 1
        if count:
            plot.name = f"{plot.name}_{count + 1}"
    return plots
