"""Results at every budget: the store as it was at a step scored along training (`vaebench.bench.trajectory`).

A budget is a step at which runs were scored: a step of a spec's `at_steps` (values in the
store's `metrics_along` table), or the end of a run (its final scoring, the `metrics` table).
Where a run has values scored along training at a step, they are its values at that budget,
also at the end of its budget (a suite with `at_images` scores the end on its smaller
protocol, so that a trajectory is on one protocol); the final scoring is the rest.
`at_budget(frames, step)` gives the store's frames as if each run had been trained for `step`
steps: the model at step N of a run is the final model of the same run with `steps = N`
(training up to N does not depend on the budget), so each run scored at N is a completed run
at budget N, its spec's `steps` set to N (a claim's target, such as the annealed VAE's
capacity, is then the one of that budget). A run that diverged before N is a diverged run
at N; a run with no score at N is not part of budget N.

Everything downstream (the comparison table of `vaebench results --step N`, the claims
verdicts) is the code that makes the final tables, fed with these frames: one formula, one place.

    StoreFrames            the store's runs, final metrics and along-training values, read once
    budgets(frames)        the scored steps
    at_budget(frames, N)   a read-only store-like view at budget N (runs, metrics, wide, curves)
    comparisons(frames)    the `Comparison` of every budget
    claims_along(frames)   `claims_table` at every budget (Holm within each budget's claims)
    verdict_trajectories   per claim: its verdict at each budget, the trajectory in words, stable or not
    protocol_note(frames)  on what the budgets' values were scored (the test images of scoring along training)
    along_summary(...)     per setting, budget and value: n, mean, sd and 95% bootstrap CI over seeds
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vaebench.bench.spec import RunSpec, RunStatus
from vaebench.bench.store import ResultsStore
from vaebench.errors import ConfigError, DataError
from vaebench.reports.claims import COLUMNS as CLAIM_COLUMNS, claims_table
from vaebench.reports.comparison import ID_COLUMNS, Comparison, value_order
from vaebench.reports.stats import natural_key
from vaebench.reports.summary import format_results, per_run_frame, results_frame

# a verdict is stable when it is the same at this many last budgets (it has not changed over them)
STABLE_OVER = 2
UNTESTED = "untested"


@dataclass
class StoreFrames:
    """What every budget view is made from, read from a store once."""

    path: Path
    runs: pd.DataFrame  # spec (a RunSpec) and environment parsed
    metrics: pd.DataFrame  # final scoring: run_id, name, value, note, ceiling
    along: pd.DataFrame  # along training: run_id, step, name, value, note, ceiling
    curves: pd.DataFrame

    @classmethod
    def read(cls, store: ResultsStore) -> StoreFrames:
        return cls(store.path, store.runs(), store.metrics(), store.along(), store.curves())


def budgets(frames: StoreFrames) -> list[int]:
    """Every step at which runs were scored: along training, and the ends of the completed runs (trained here:
    a model scored by `vaebench evaluate`, an ExternalSpec, has no budget)."""
    steps = set(int(s) for s in frames.along["step"].unique())
    steps |= {int(r["spec"].steps) for r in frames.runs.to_dict("records")
              if r["status"] == RunStatus.DONE and isinstance(r["spec"], RunSpec)}
    return sorted(steps)


def _reached(run: dict, step: int) -> bool:
    """Whether a run's training got to `step` (a diverged run: its divergence came at that step or later)."""
    if run["status"] == RunStatus.DONE:
        return True
    diverged = run.get("diverged_step")
    return (run["status"] == RunStatus.DIVERGED and diverged is not None and not pd.isna(diverged)
            and int(diverged) >= step)


def runs_at(frames: StoreFrames, step: int) -> pd.DataFrame:
    """The runs of budget `step`, each as a run of `step` steps (see the module docstring): those scored
    there along training, and those whose budget ends there. A run's spec there is its spec with `steps`
    set to N, and its setting key that spec's."""
    scored = set(frames.along.loc[frames.along["step"] == step, "run_id"])
    rows = []
    for r in frames.runs.to_dict("records"):
        spec = r["spec"]
        if not isinstance(spec, RunSpec):  # a model scored by `vaebench evaluate` has no budget
            continue
        ends = spec.steps == step
        if not (ends or step in spec.at_steps):
            continue
        if r["run_id"] in scored or (not ends and _reached(r, step)):
            r.update(status=RunStatus.DONE.value, steps_done=step, diverged_step=None, error=None)
        r["spec"] = dataclasses.replace(spec, steps=step)
        r["setting_key"] = r["spec"].setting_key()
        rows.append(r)
    return pd.DataFrame(rows, columns=frames.runs.columns)


def metrics_at(frames: StoreFrames, step: int, runs: pd.DataFrame) -> pd.DataFrame:
    """The values of budget `step` in the `metrics` table's long format (run_id, name, value, note, ceiling):
    a run's values scored there along training, else, at the end of its budget, its final scoring's."""
    along = frames.along[(frames.along["step"] == step) & frames.along["run_id"].isin(set(runs["run_id"]))]
    scored = set(along["run_id"])
    ends = {r for r, spec in zip(frames.runs["run_id"], frames.runs["spec"])
            if isinstance(spec, RunSpec) and spec.steps == step} - scored
    final = frames.metrics[frames.metrics["run_id"].isin(ends & set(runs["run_id"]))]
    parts = [p for p in (final, along[list(frames.metrics.columns)]) if not p.empty]
    if not parts:
        return frames.metrics.iloc[0:0]
    return pd.concat(parts, ignore_index=True).sort_values(["run_id", "name"], ignore_index=True)


class StoreAtStep:
    """A read-only view of a store at one budget, with the reading methods the tables use."""

    def __init__(self, frames: StoreFrames, step: int):
        self.path, self.step = frames.path, step
        self._runs = runs_at(frames, step)
        self._metrics = metrics_at(frames, step, self._runs)
        ids = set(self._runs["run_id"])
        self._curves = frames.curves[frames.curves["run_id"].isin(ids) & (frames.curves["step"] <= step)]

    def runs(self) -> pd.DataFrame:
        return self._runs.copy()

    def metrics(self) -> pd.DataFrame:
        return self._metrics.copy()

    def curves(self) -> pd.DataFrame:
        return self._curves.copy()

    def artifacts(self, run_id: str | None = None) -> dict[tuple[str, str], bytes]:
        return {}  # the image grids are of the final models only

    wide = ResultsStore.wide  # the same pivot as the store's, over this view's runs() and metrics()


def at_budget(frames: StoreFrames, step: int) -> StoreAtStep:
    return StoreAtStep(frames, step)


def parse_step(text: str, frames: StoreFrames) -> list[int]:
    """`--step`: one scored step, or 'all' (every budget); ConfigError naming the budgets otherwise."""
    available = budgets(frames)
    shown = ", ".join(f"{s}" for s in available) or "none"
    if text.strip().lower() == "all":
        if not available:
            raise ConfigError("no run of this store has been scored", key="--step")
        return available
    try:
        step = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise ConfigError(f"must be a step or 'all', got {text!r}; scored steps: {shown}", key="--step") from None
    if step not in available:
        raise ConfigError(f"no run was scored at step {step}; scored steps: {shown} "
                          "(suites score along training with [evaluation] at_steps)", key="--step")
    return [step]


# ---------------------------------------------------------------- `vaebench results --step`


def format_results_at(store: ResultsStore, step_text: str, fmt: str, **options: Any) -> str:
    """`vaebench results DIR --step N|all`: the comparison (or per-run) table at each chosen budget.

    CSV and JSON: one frame, the budget in a `step` column first; table and Markdown: one table
    per budget under a 'step N' line."""
    frames = StoreFrames.read(store)
    steps = parse_step(step_text, frames)
    if fmt in ("csv", "json"):
        parts = []
        for step in steps:
            comparison = Comparison.build(at_budget(frames, step))
            frame = per_run_frame(comparison) if options.get("per_run") else results_frame(comparison)
            parts.append(frame.assign(step=step)[["step", *frame.columns]])
        frame = pd.concat(parts, ignore_index=True)
        if fmt == "csv":
            return frame.to_csv(index=False)
        return json.dumps(json.loads(frame.to_json(orient="records")), indent=2)
    blocks = []
    for step in steps:
        text = format_results(at_budget(frames, step), fmt, **options)
        header = f"step {step:,d}{_step_kind(frames, step)}"
        blocks.append(f"## {header}\n\n{text}" if fmt == "markdown" else f"{header}\n{text}")
    return "\n\n".join(blocks)


def _step_kind(frames: StoreFrames, step: int) -> str:
    """What the values at `step` are: scored along training (with the protocol's test images), the final scoring."""
    along = frames.along[frames.along["step"] == step]
    trained = [(r, spec) for r, spec in zip(frames.runs["run_id"], frames.runs["spec"]) if isinstance(spec, RunSpec)]
    images = {spec.at_images for r, spec in trained if r in set(along["run_id"])}
    ends = any(spec.steps == step for _, spec in trained)
    what = []
    if not along.empty:
        on = ", ".join(f"{n:,d} test images" if n else "the whole test split" for n in sorted(images))
        what.append(f"scored along training on {on}")
    if ends and not (not along.empty and along["run_id"].nunique() == len(frames.runs)):
        what.append("the end of the budget: the final scoring" + (" where not scored along training" if what else ""))
    return f" ({'; '.join(what)})" if what else ""


# ---------------------------------------------------------------- claims at every budget


def comparisons(frames: StoreFrames) -> dict[int, Comparison]:
    """The comparison at every budget (`at_budget`), by step."""
    return {step: Comparison.build(at_budget(frames, step)) for step in budgets(frames)}


def claims_along(by_step: dict[int, Comparison]) -> pd.DataFrame:
    """`claims_table` at every budget (`comparisons`), one row per claim and budget (a `step` column first)."""
    parts = []
    for step, comparison in by_step.items():
        table = claims_table(comparison)
        if not table.empty:
            parts.append(table.assign(step=step)[["step", *table.columns]])
    if not parts:
        return pd.DataFrame(columns=["step", *CLAIM_COLUMNS])
    return pd.concat(parts, ignore_index=True)


def trajectory_text(steps: list[int], verdicts: list[str]) -> str:
    """The verdicts in words: 'fails at 700, inconclusive at 1,400, holds from 2,800 on'."""
    segments: list[tuple[str, list[int]]] = []
    for step, verdict in zip(steps, verdicts):
        if segments and segments[-1][0] == verdict:
            segments[-1][1].append(step)
        else:
            segments.append((verdict, [step]))
    parts = []
    for i, (verdict, at) in enumerate(segments):
        last = i == len(segments) - 1
        if len(at) == 1:
            parts.append(f"{verdict} at {at[0]:,d}")
        elif last:
            parts.append(f"{verdict} from {at[0]:,d} on")
        else:
            parts.append(f"{verdict} from {at[0]:,d} to {at[-1]:,d}")
    return ", ".join(parts)


def is_stable(verdicts: list[str]) -> bool | None:
    """Stable: the same verdict at the last STABLE_OVER budgets; None with fewer budgets (cannot tell)."""
    if len(verdicts) < STABLE_OVER:
        return None
    return len(set(verdicts[-STABLE_OVER:])) == 1


def verdict_trajectories(along: pd.DataFrame) -> pd.DataFrame:
    """Per claim (dataset, setting, value): its verdict at every budget of the store (UNTESTED where it
    could not be tested), the trajectory in words and whether the last verdict is stable.

    Columns: dataset, setting, value, claim (as worded at the last budget), one column per budget
    (its step), final (the last budget's verdict), trajectory, stable (True / False / None)."""
    steps = sorted(int(s) for s in along["step"].unique())
    rows = []
    for (dataset, setting, value), group in along.groupby(["dataset", "setting", "value"], sort=False):
        by_step = dict(zip(group["step"].astype(int), group["verdict"]))
        tested = [s for s in steps if s in by_step]
        first = tested[0]
        verdicts = [by_step.get(s, UNTESTED) for s in steps if s >= first]
        row = {"dataset": dataset, "setting": setting, "value": value,
               "claim": group.sort_values("step")["claim"].iloc[-1]}
        row.update({str(s): by_step.get(s, UNTESTED) for s in steps})
        row.update({"final": verdicts[-1], "trajectory": trajectory_text([s for s in steps if s >= first], verdicts),
                    "stable": is_stable(verdicts)})
        rows.append(row)
    columns = ["dataset", "setting", "value", "claim", *map(str, steps), "final", "trajectory", "stable"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["dataset", "setting", "value"], key=lambda c: c.map(natural_key), ignore_index=True)


def protocol_note(frames: StoreFrames) -> str:
    """On what the budgets' values were scored: 'the values scored along training on 1,000 test images'."""
    scored = set(frames.along["run_id"])
    images = sorted({spec.at_images for r, spec in zip(frames.runs["run_id"], frames.runs["spec"])
                     if r in scored and isinstance(spec, RunSpec)})
    if not images:
        return "the final scoring"
    on = " or ".join(f"{n:,d} test images" if n else "the whole test split" for n in images)
    ends = "" if all(images) else "; at the end of a budget on the whole split, the final scoring"
    return f"the values scored along training on {on}{ends}"


def format_trajectories(trajectories: pd.DataFrame, steps: list[int], protocol: str = "") -> str:
    """The verdicts along training as a terminal table, with the claims that are not stable named."""
    if trajectories.empty or len(steps) < 2:
        return ""
    shown = trajectories.assign(stable=trajectories["stable"].map({True: "yes", False: "NO", None: "-"}))
    shown = shown[["setting", "claim", "trajectory", "stable"]]
    budgets_text = ", ".join(f"{s:,d}" for s in steps)
    on = f" on {protocol}" if protocol else ""
    lines = [f"verdicts along training, at {budgets_text} steps{on} (each budget tested on its own: Holm within it); "
             f"stable: the same verdict at the last {STABLE_OVER} budgets",
             shown.to_string(index=False)]
    unstable = trajectories[trajectories["stable"] == False]  # noqa: E712 - None is 'cannot tell', not unstable
    if unstable.empty:
        lines.append(f"every verdict is stable over the last {STABLE_OVER} budgets")
    else:
        names = "; ".join(f"{r['setting']}: {r['claim']}" for r in unstable.to_dict("records"))
        lines.append(f"{len(unstable)} of {len(trajectories)} verdicts are not stable (they changed between the last "
                     f"{STABLE_OVER} budgets): {names}")
    return "\n".join(lines)


def claims_trajectory_text(frames: StoreFrames) -> str:
    """What `vaebench claims` prints below the final verdicts: the trajectories ('' with one budget)."""
    steps = budgets(frames)
    if len(steps) < 2:
        return ""
    return format_trajectories(verdict_trajectories(claims_along(comparisons(frames))), steps, protocol_note(frames))


# ---------------------------------------------------------------- values along training, per setting


def along_runs(by_step: dict[int, Comparison]) -> pd.DataFrame:
    """One row per run and budget (a `step` column), with each value scored there (`Comparison.per_run`)."""
    parts = [c.per_run().assign(step=step) for step, c in by_step.items() if not c.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run_id", "step", *ID_COLUMNS])


def along_values(by_step: dict[int, Comparison]) -> list[str]:
    """The declared non-per-latent values some completed run has at two or more budgets (those a line can be
    drawn for), in the order they first appear over the budgets."""
    seen: dict[str, int] = {}
    for comparison in by_step.values():
        for name in sorted(set(comparison.stored["name"])):
            seen.setdefault(name, 0)
        for name in {s.metric for s in comparison.summaries if s.n}:
            seen[name] += 1
    drawn = set(value_order(list(seen)))
    return [name for name, steps in seen.items() if name in drawn and steps >= 2]


def along_summary(by_step: dict[int, Comparison]) -> pd.DataFrame:
    """Per dataset, setting, budget and value: n, mean, sd and the 95% bootstrap CI over seeds (a setting's
    `SettingSummary` at that budget), for the `along_values`."""
    columns = [*ID_COLUMNS, "step", "value", "n", "mean", "sd", "ci_low", "ci_high"]
    values = along_values(by_step)
    rows = []
    for step, comparison in by_step.items():
        for setting in comparison.settings:
            for value in values:
                s = comparison.summary(setting, value)
                if s is None or not s.n:
                    continue
                rows.append({**dict(zip(ID_COLUMNS, setting.ids)), "step": int(step), "value": value, "n": s.n,
                             "mean": s.mean, "sd": s.sd, "ci_low": s.ci_low, "ci_high": s.ci_high})
    rows.sort(key=lambda r: (r["suite"], r["dataset"], r["variant"], r["setting"], r["step"]))
    return pd.DataFrame(rows, columns=columns)


def read_frames(run_dir: str | Path, run_ids: set[str] | None = None) -> StoreFrames:
    with ResultsStore(run_dir, create=False, run_ids=run_ids) as store:
        frames = StoreFrames.read(store)
    if frames.runs.empty:
        raise DataError(f"{frames.path}: the results store holds no runs (run `vaebench run` first)")
    return frames
