"""The report's tables: comparison (mean and 95% bootstrap CI over seeds), pairwise tests, ranks.

Each table is built once as numbers (a DataFrame, written as CSV) and once as a `Table` of text
cells, which `render_markdown`, `render_latex` (booktabs) and `render_html` turn into text: the
one renderer of each format, also `vaebench results`'. Every string in a cell is escaped for its
format by the renderer, so text from a user's suite file (suite names, settings, dataset names)
can never become markup. The comparison tables read a `vaebench.reports.comparison.Comparison`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vaebench.bench.spec import RunStatus
from vaebench.reports.comparison import (
    ID_COLUMNS,
    Comparison,
    Setting,
    SettingSummary,
    ceiling_mark,
    count_mark,
    counts,
    footnotes,
)
from vaebench.reports.stats import (
    ALPHA,
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE,
    higher_is_better,
    min_attainable_p,
    pairwise_tests,
    rank_table,
)

NUMBER_FORMAT = "{:.4g}"


@dataclass
class Cell:
    text: str
    bold: bool = False


@dataclass
class Column:
    """A header: `direction` ('higher' | 'lower' | None) is drawn as an arrow after the name."""

    name: str
    direction: str | None = None
    numeric: bool = False


@dataclass
class Table:
    columns: list[Column]
    rows: list[list[Cell]]
    caption: str = ""
    notes: list[str] = field(default_factory=list)


def fmt(value: float) -> str:
    """A number for a report cell: '–' for none, 'overflow' for an aggregate that overflowed (see `stats`)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "overflow"
    return NUMBER_FORMAT.format(value)


def direction_of(metric: str) -> str:
    return "higher" if higher_is_better(metric) else "lower"


def frame_table(frame: pd.DataFrame) -> Table:
    """A DataFrame as a `Table`: floats with 4 significant digits, numeric columns right-aligned."""
    columns = [Column(str(c), numeric=pd.api.types.is_numeric_dtype(frame[c])) for c in frame.columns]
    rows = [[Cell(f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row]
            for row in frame.itertuples(index=False)]
    return Table(columns, rows)


def group_of(settings: Sequence[Setting]) -> list[str]:
    """The fields that separate comparable rows: the dataset, and the suite when there are several."""
    return ["suite", "dataset"] if len({s.suite for s in settings}) > 1 else ["dataset"]


def _group_key(setting: Setting, group: Sequence[str]) -> tuple[str, ...]:
    return tuple(getattr(setting, g) for g in group)


# ---------------------------------------------------------------- comparison


def best_means(comparison: Comparison, metrics: Sequence[str]) -> dict[tuple[str, str, str], bool]:
    """(suite, setting key, metric) -> whether the setting's mean is the best in its column among the rows of
    the same dataset (and suite), in the metric's direction; ties are all best."""
    group = group_of(comparison.settings)
    best: dict[tuple[str, str, str], bool] = {}
    for metric in metrics:
        summaries = [comparison.summary(s, metric) for s in comparison.settings]
        means: dict[tuple[str, ...], list[float]] = {}
        for s in summaries:
            if not math.isnan(s.mean):
                means.setdefault(_group_key(s.setting, group), []).append(s.mean)
        pick = max if higher_is_better(metric) else min
        for s in summaries:
            found = means.get(_group_key(s.setting, group), [])
            best[(s.setting.suite, s.setting.key, metric)] = bool(found) and s.mean == pick(found)
    return best


def comparison_long(comparison: Comparison, metrics: Sequence[str]) -> pd.DataFrame:
    """The comparison as a tidy frame for CSV: one row per setting and metric, with its direction."""
    best = best_means(comparison, metrics)
    rows = []
    for setting in comparison.sorted_settings():
        for m in metrics:
            s = comparison.summary(setting, m)
            n, of = counts(s)
            rows.append({
                **dict(zip(ID_COLUMNS, setting.ids)), "n": setting.done, "diverged": setting.diverged,
                "failed": setting.failed, "metric": m, "direction": direction_of(m), "mean": s.mean, "sd": s.sd,
                "ci_low": s.ci_low, "ci_high": s.ci_high, "best": best[(setting.suite, setting.key, m)],
                "ceiling": math.nan if s.ceiling is None else s.ceiling, "values": n, "of": of,
            })
    columns = [*ID_COLUMNS, "n", "diverged", "failed", "metric", "direction", "mean", "sd", "ci_low", "ci_high", "best",
               "ceiling", "values", "of"]
    return pd.DataFrame(rows, columns=columns)


def ci_cell(mean: float, low: float, high: float) -> str:
    """'mean [low, high]'; the mean alone where the CI is undefined (one seed)."""
    if mean is None or math.isnan(mean):
        return "–"
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return fmt(mean)
    return f"{fmt(mean)} [{fmt(low)}, {fmt(high)}]"


def _summary_cell(summary: SettingSummary, best: bool) -> Cell:
    return Cell(ci_cell(summary.mean, summary.ci_low, summary.ci_high) + ceiling_mark(summary) + count_mark(summary),
                best)


def comparison_display(comparison: Comparison, metrics: Sequence[str], *, title: str = "") -> Table:
    settings = comparison.sorted_settings()
    group = group_of(settings)
    counted = [c for c in ("diverged", "failed") if sum(getattr(s, c) for s in settings) > 0]
    columns = [Column(c) for c in group] + [Column("setting"), Column("n", numeric=True)]
    columns += [Column(c, numeric=True) for c in counted]
    columns += [Column(m, direction_of(m), numeric=True) for m in metrics]
    best = best_means(comparison, metrics)
    rows = []
    for s in settings:
        cells = [Cell(str(getattr(s, c))) for c in group] + [Cell(s.label), Cell(str(s.done))]
        cells += [Cell(str(getattr(s, c))) for c in counted]
        cells += [_summary_cell(comparison.summary(s, m), best[(s.suite, s.key, m)]) for m in metrics]
        rows.append(cells)
    caption = (
        f"Mean over seeds and {CONFIDENCE:.0%} bootstrap confidence interval (percentile, "
        f"{BOOTSTRAP_RESAMPLES} resamples, fixed seed); the mean alone where a setting has one seed. "
        "Arrows give each metric's direction; the best value in each column is in bold."
    )
    return Table(columns, rows, caption=f"{title}: {caption}" if title else caption,
                 notes=footnotes(comparison, metrics))


# ---------------------------------------------------------------- pairwise tests and ranks


def pairwise_frame(comparison: Comparison, metrics: Sequence[str]) -> pd.DataFrame:
    """`stats.pairwise_tests` over the completed runs, within each dataset (and suite, when there are several)."""
    wide = comparison.per_run()
    done = wide[wide["status"] == RunStatus.DONE]
    group = group_of(comparison.settings)
    frame = done.assign(dataset=_joined(done, group)) if len(group) > 1 else done
    return pairwise_tests(frame, metrics)


def pairwise_display(pairs: pd.DataFrame, metrics: Sequence[str]) -> Table:
    """Rows: pairs of settings; cells: Holm-adjusted p, bold and naming the better side if significant."""
    shown = [m for m in metrics if m in set(pairs["metric"])]
    columns = [Column("dataset"), Column("setting A"), Column("setting B")]
    columns += [Column(m, direction_of(m), numeric=True) for m in shown]
    rows = []
    smallest = math.inf
    for (dataset, a, b), g in pairs.groupby(["dataset", "setting_a", "setting_b"], sort=False):
        by_metric = {r["metric"]: r for r in g.to_dict("records")}
        cells = [Cell(str(dataset)), Cell(str(a)), Cell(str(b))]
        for m in shown:
            r = by_metric.get(m)
            if r is None or not math.isfinite(r["p_holm"]):
                cells.append(Cell("–"))
                continue
            smallest = min(smallest, min_attainable_p(r["n_a"], r["n_b"]))
            side = "A" if r["better"] == a else "B" if r["better"] == b else ""
            text = f"{r['p_holm']:.2g}" + (f" ({side})" if r["significant"] and side else "")
            cells.append(Cell(text, bold=bool(r["significant"])))
        rows.append(cells)
    caption = (
        "Two-sided Mann-Whitney U tests between settings over seeds, Holm-corrected within each metric "
        f"and dataset. Cells: adjusted p; bold: significant at alpha = {ALPHA:g}, with (A) or (B) the "
        "better setting in the metric's direction; –: fewer than two seeds on a side."
    )
    notes = []
    if math.isfinite(smallest) and smallest >= ALPHA:
        notes.append(
            f"With these seed counts the smallest attainable p-value is {smallest:.2g}, not below alpha = {ALPHA:g}: "
            "no difference can be significant; run more seeds."
        )
    return Table(columns, rows, caption=caption, notes=notes)


def ranks_frame(comparison: Comparison, metrics: Sequence[str]) -> pd.DataFrame:
    """`stats.rank_table` of the settings' means, within each dataset (and suite, when there are several)."""
    settings = comparison.sorted_settings()
    group = group_of(settings)
    means = pd.DataFrame([{"dataset": " / ".join(_group_key(s, group)), "setting": s.label,
                           **{m: comparison.summary(s, m).mean for m in metrics}} for s in settings],
                         columns=["dataset", "setting", *metrics])
    return rank_table(means, metrics)


def ranks_display(ranks: pd.DataFrame, metrics: Sequence[str]) -> Table:
    shown = [m for m in metrics if m in ranks]
    columns = [Column("dataset"), Column("setting")] + [Column(m, direction_of(m), numeric=True) for m in shown]
    columns.append(Column("mean rank", numeric=True))
    rows = []
    best = ranks.groupby("dataset")["mean_rank"].transform("min") if not ranks.empty else pd.Series(dtype=float)
    for i, r in enumerate(ranks.to_dict("records")):
        cells = [Cell(str(r["dataset"])), Cell(str(r["setting"]))]
        cells += [Cell(fmt(r[m]), bold=r[m] == 1) for m in shown]
        is_best = bool(np.isfinite(r["mean_rank"]) and r["mean_rank"] == best.iloc[i])
        cells.append(Cell(fmt(r["mean_rank"]), bold=is_best))
        rows.append(cells)
    caption = (
        "Rank of each setting's mean within each metric (1 = best in the metric's direction, ties share "
        "the average rank) and the mean rank over metrics."
    )
    return Table(columns, rows, caption=caption)


def _joined(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    return frame[list(columns)].astype(str).agg(" / ".join, axis=1)


# ---------------------------------------------------------------- renderers

ARROWS = {"higher": "↑", "lower": "↓"}
LATEX_ARROWS = {"higher": r"$\uparrow$", "lower": r"$\downarrow$"}
LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "|": r"\textbar{}", "–": "--", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
}


def latex_escape(text: str) -> str:
    """Text safe in LaTeX text mode: \\ & % $ # _ { } ~ ^ < > | escaped, newlines as spaces."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text).replace("\n", " ").replace("\r", " "))


def markdown_escape(text: str) -> str:
    """A markdown table cell: '|' escaped, no newlines, and no raw HTML (< > & as entities)."""
    text = html.escape(str(text), quote=False).replace("|", "\\|")
    return " ".join(text.splitlines())


def render_markdown(table: Table) -> str:
    header = [markdown_escape(c.name) + (f" {ARROWS[c.direction]}" if c.direction else "") for c in table.columns]
    rule = ["---:" if c.numeric else "---" for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    for row in table.rows:
        cells = [f"**{markdown_escape(c.text)}**" if c.bold else markdown_escape(c.text) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    extra = [markdown_escape(t) for t in [table.caption, *table.notes] if t]
    return "\n".join(lines + ([""] + extra if extra else [])) + "\n"


def render_latex(table: Table, *, label: str = "") -> str:
    """A booktabs table (needs \\usepackage{booktabs}); every cell and the caption escaped."""
    spec = "".join("r" if c.numeric else "l" for c in table.columns)
    header = " & ".join(
        latex_escape(c.name) + (f" {LATEX_ARROWS[c.direction]}" if c.direction else "") for c in table.columns
    )
    body = []
    for row in table.rows:
        cells = [f"\\textbf{{{latex_escape(c.text)}}}" if c.bold else latex_escape(c.text) for c in row]
        if cells and cells[0].startswith("["):  # would read as the optional argument of the previous row's \\
            cells[0] = "{}" + cells[0]
        body.append(" & ".join(cells) + r" \\")
    caption = " ".join(latex_escape(t) for t in [table.caption, *table.notes] if t)
    lines = [
        "% generated by vaebench; requires \\usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        f"\\caption{{{caption}}}" if caption else "",
        f"\\label{{{latex_escape(label)}}}" if label else "",
        f"\\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        header + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def render_html(table: Table, *, css_class: str = "") -> str:
    """An HTML <table>; every text escaped with html.escape."""
    e = html.escape
    cls = f' class="{e(css_class)}"' if css_class else ""
    head = []
    for c in table.columns:
        arrow = ""
        if c.direction:
            arrow = f' <span class="dir" title="{c.direction} is better">{ARROWS[c.direction]}</span>'
        attrs = ' class="num"' if c.numeric else ""
        head.append(f"<th{attrs}>{e(c.name)}{arrow}</th>")
    out = [f"<table{cls}>"]
    if table.caption:
        out.append(f"<caption>{e(table.caption)}</caption>")
    out.append("<thead><tr>" + "".join(head) + "</tr></thead>")
    out.append("<tbody>")
    for row in table.rows:
        cells = []
        for col, cell in zip(table.columns, row):
            text = f"<strong>{e(cell.text)}</strong>" if cell.bold else e(cell.text)
            classes = " ".join(n for n, on in (("num", col.numeric), ("best", cell.bold)) if on)
            attrs = f' class="{classes}"' if classes else ""
            cells.append(f"<td{attrs}>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    out.extend(f'<p class="note">{e(n)}</p>' for n in table.notes)
    return "\n".join(out)
