"""Regression checks on metric scores: `vaebench baseline` writes them, `vaebench check` compares.

A baseline file (JSON) holds, per run id, the run's metric values (every stored value, per-latent
ones included) with its setting, dataset and seed for readability, the suite's name, and one
tolerance per metric:

    {
      "vaebench_baseline": 1,
      "suite": "smoke",
      "tolerances": {"recon_bce": {"abs": 1.0, "rel": 0.05}, "kl": {"abs": 0.5, "rel": 0.1}, ...},
      "runs": {"8045ad319f0171b7": {"setting": "vae", "dataset": "dsprites", "seed": 0,
                                    "status": "done", "metrics": {"kl": 12.3, "kl_dim_0": 2.1, ...}}}
    }

Tolerances default to the metric registry's `abs_tol` / `rel_tol`; edit the file to override
them (either key may be left out; a value name such as "kl_dim_3" overrides its metric's entry).
Rewriting a baseline over an existing file keeps that file's tolerances where they differ from
the registry's defaults (the overrides); the rest are written afresh from the registry.

A value has moved beyond tolerance when |new - old| > abs + rel * |old|, or when it became or
stopped being undefined (NaN). Any such move counts as a regression, better or worse (the table
says which, in the metric's direction): a regression test on scores pins them, so an improvement
must be accepted by regenerating the baseline. A run whose status changed (done -> diverged or
failed) counts too. A baseline that does not describe the same runs and metrics (other run ids,
missing runs or metrics, malformed JSON) raises BaselineMismatchError.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaebench.bench.spec import RunStatus
from vaebench.bench.store import ResultsStore
from vaebench.errors import BaselineMismatchError, ConfigError, DataError
from vaebench.files import atomic_write, finite_or_none
from vaebench.metrics.registry import declaration_of

FORMAT_KEY = "vaebench_baseline"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Tolerance:
    abs: float
    rel: float

    def allows(self, old: float | None, new: float | None) -> bool:
        """Within tolerance: both undefined, or both finite with |new - old| <= abs + rel * |old|."""
        if old is None or new is None:
            return old is None and new is None
        return abs(new - old) <= self.abs + self.rel * abs(old)

    def describe(self) -> str:
        return f"±({self.abs:g} + {self.rel:g}·|old|)"


@dataclass
class Deviation:
    """One value (or a run's status) that moved beyond tolerance."""

    run_id: str
    setting: str
    dataset: str
    seed: int
    metric: str
    old: float | str | None
    new: float | str | None
    tolerance: Tolerance | None
    verdict: str  # "better" | "worse" | "changed"


@dataclass
class CheckOutcome:
    baseline: str
    runs: int
    checked: int
    deviations: list[Deviation] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> int:
        return len(self.deviations)

    @property
    def table(self) -> str:
        return format_outcome(self)


# ---------------------------------------------------------------- tolerances


def default_tolerance(value_name: str) -> Tolerance:
    declared = declaration_of(value_name)
    if declared is None:
        return Tolerance(0.0, 0.0)
    return Tolerance(float(declared.metric.abs_tol), float(declared.metric.rel_tol))


def tolerance_for(value_name: str, overrides: Mapping[str, Mapping[str, float]]) -> Tolerance:
    """The file's entry for the value name, else for its registry metric, else the registry default."""
    base = default_tolerance(value_name)
    declared = declaration_of(value_name)
    entry = overrides.get(value_name)
    if entry is None and declared is not None:
        entry = overrides.get(declared.metric.name)
    if entry is None:
        return base
    return Tolerance(float(entry.get("abs", base.abs)), float(entry.get("rel", base.rel)))


# ---------------------------------------------------------------- writing


def baseline_dict(run_dir: str | Path, *, suite: str | None = None, run_ids: set[str] | None = None,
                  tolerances: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """The baseline of one suite's runs in `run_dir` (the only suite there unless `suite` names one).

    run_ids: the runs of a suite file (`--suite FILE`), whatever suite name they were first stored under;
    `suite` is then that file's suite name.
    """
    with ResultsStore(run_dir, create=False, run_ids=run_ids) as store:
        runs, metrics, path = store.runs(), store.metrics(), store.path
    suites = sorted(runs["suite"].unique())
    if not suites:
        raise DataError(f"{path}: the results store holds no runs (run `vaebench run` first)")
    if run_ids is not None:
        runs = runs.assign(suite=suite)
        suites = [suite]
    if suite is None:
        if len(suites) > 1:
            raise DataError(f"{path}: holds runs of several suites ({', '.join(suites)}); a baseline covers one")
        suite = suites[0]
    elif suite not in suites:
        raise DataError(f"{path}: no runs of suite {suite!r}; it has {', '.join(suites)}")
    runs = runs[runs["suite"] == suite]
    failed = runs[runs["status"] == RunStatus.FAILED]
    if not failed.empty:
        listed = ", ".join(f"{r.setting} seed {r.seed}" for r in failed.itertuples())
        raise DataError(f"{path}: {len(failed)} run(s) failed ({listed}); rerun `vaebench run` before taking a "
                        "baseline")
    values: dict[str, dict[str, float | None]] = {}
    for row in metrics.itertuples(index=False):
        values.setdefault(row.run_id, {})[row.name] = finite_or_none(row.value)
    entries = {}
    names: set[str] = set()
    for r in runs.sort_values("run_id").itertuples():
        run_metrics = dict(sorted(values.get(r.run_id, {}).items()))
        names.update(run_metrics)
        entries[r.run_id] = {
            "setting": r.setting, "dataset": r.dataset, "seed": int(r.seed), "status": r.status, "metrics": run_metrics,
        }
    overrides = dict(tolerances or {})
    metric_names = sorted({d.metric.name if (d := declaration_of(n)) is not None else n for n in names})
    tol = {}
    for name in metric_names:
        t = tolerance_for(name, overrides)
        tol[name] = {"abs": t.abs, "rel": t.rel}
    for name, entry in sorted(overrides.items()):  # per-value overrides (kl_dim_3) are kept as written
        if name not in tol:
            tol[name] = dict(entry)
    return {FORMAT_KEY: FORMAT_VERSION, "suite": suite, "tolerances": tol, "runs": entries}


def write_baseline(run_dir: str | Path, out_file: str | Path, *, suite: str | None = None,
                   run_ids: set[str] | None = None) -> Path:
    """Write the baseline of `run_dir` to `out_file` (JSON), keeping the tolerance overrides of a baseline there.

    `out_file` must be absent or a vaebench baseline already: anything else is refused, never
    overwritten. The file is written whole or not at all (temporary file and rename).
    """
    out = Path(out_file)
    overrides: dict[str, Any] = {}
    if out.is_dir():
        raise ConfigError(f"{out} is a directory; give the baseline's file name", key="--out")
    if out.exists():
        try:
            previous = load_baseline(out).get("tolerances", {})
        except BaselineMismatchError:
            raise ConfigError(f"{out} exists and is not a vaebench baseline; refusing to overwrite it",
                              key="--out") from None
        # keep what differs from the registry's defaults: entries equal to a default follow the registry
        overrides = {k: v for k, v in previous.items() if tolerance_for(k, {k: v}) != default_tolerance(k)}
    data = baseline_dict(run_dir, suite=suite, run_ids=run_ids, tolerances=overrides)
    try:
        with atomic_write(out, "w") as f:
            f.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    except OSError as err:
        raise ConfigError(f"cannot write {out}: {err.strerror}", key="--out") from None
    return out


# ---------------------------------------------------------------- reading


def _mismatch(file: str, what: str) -> BaselineMismatchError:
    return BaselineMismatchError(f"{file}: {what}")


def _is_number(value: Any) -> bool:
    """An int or float that a float can hold (a 400-digit integer is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _validate(data: Any, file: str) -> dict[str, Any]:
    """Check the structure of a parsed baseline; every problem names the key."""
    if not isinstance(data, dict):
        raise _mismatch(file, "not a baseline: the top level must be a JSON object")
    if data.get(FORMAT_KEY) != FORMAT_VERSION:
        raise _mismatch(file, f"key '{FORMAT_KEY}': must be {FORMAT_VERSION}, got {data.get(FORMAT_KEY)!r}")
    if not isinstance(data.get("suite"), str) or not data["suite"]:
        raise _mismatch(file, "key 'suite': must be the suite's name (a string)")
    tolerances = data.get("tolerances", {})
    if not isinstance(tolerances, dict):
        raise _mismatch(file, "key 'tolerances': must be an object of {\"metric\": {\"abs\": .., \"rel\": ..}}")
    for name, entry in tolerances.items():
        if not isinstance(entry, dict) or set(entry) - {"abs", "rel"}:
            raise _mismatch(file, f"key 'tolerances.{name}': must be an object with 'abs' and/or 'rel'")
        for k, v in entry.items():
            if not _is_number(v) or not math.isfinite(v) or v < 0:
                raise _mismatch(file, f"key 'tolerances.{name}.{k}': must be a number >= 0, got {v!r}")
    runs = data.get("runs")
    if not isinstance(runs, dict) or not runs:
        raise _mismatch(file, "key 'runs': must be a non-empty object keyed by run id")
    for run_id, entry in runs.items():
        where = f"runs.{run_id}"
        if not isinstance(entry, dict):
            raise _mismatch(file, f"key '{where}': must be an object")
        if entry.get("status", RunStatus.DONE) not in set(RunStatus):
            raise _mismatch(file, f"key '{where}.status': must be one of {', '.join(RunStatus)}")
        metrics = entry.get("metrics")
        if not isinstance(metrics, dict):
            raise _mismatch(file, f"key '{where}.metrics': must be an object of metric values")
        for name, v in metrics.items():
            if v is not None and not _is_number(v):
                raise _mismatch(file, f"key '{where}.metrics.{name}': must be a number or null, got {v!r}")
    return data


def load_baseline(file: str | Path) -> dict[str, Any]:
    """Read and validate a baseline file; BaselineMismatchError names the file and what is wrong."""
    path = Path(file)
    try:
        text = path.read_text()
    except FileNotFoundError:
        what = "no such baseline file (write one with `vaebench baseline DIR --out FILE`)"
        raise _mismatch(str(file), what) from None
    except (OSError, UnicodeDecodeError) as err:
        raise _mismatch(str(file), f"cannot read it: {err}") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise _mismatch(str(file), f"not valid JSON: {err}") from None
    except RecursionError:
        raise _mismatch(str(file), "not a baseline: nested too deeply") from None
    return _validate(data, str(file))


# ---------------------------------------------------------------- checking


def _short(ids: list[str], labels: Mapping[str, str]) -> str:
    shown = ", ".join(f"{i} ({labels[i]})" if i in labels else i for i in ids[:3])
    return shown + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")


def _verdict(metric: str, old: float | None, new: float | None) -> str:
    if old is None or new is None:
        return "worse" if new is None else "better"
    declared = declaration_of(metric)
    if declared is None or new == old:
        return "changed"
    return "better" if (new > old) == declared.higher_is_better else "worse"


def check_against_baseline(run_dir: str | Path, baseline_file: str | Path | Mapping[str, Any], *,
                           run_ids: set[str] | None = None) -> CheckOutcome:
    """Compare the run directory's scores with a baseline (a file, or an already parsed dict)."""
    if isinstance(baseline_file, Mapping):
        file = "<baseline>"
        baseline = _validate(dict(baseline_file), file)
    else:
        file = str(baseline_file)
        baseline = load_baseline(baseline_file)
    with ResultsStore(run_dir, create=False, run_ids=run_ids) as store:
        runs, metrics, store_path = store.runs(), store.metrics(), store.path
    hint = f"; regenerate it with `vaebench baseline {run_dir} --out {file}` if the suite changed on purpose"
    suite = baseline["suite"]
    if run_ids is None:  # with --suite FILE, the file's runs whatever suite name they were stored under
        runs = runs[runs["suite"] == suite]
    if runs.empty:
        raise _mismatch(file, f"suite {suite!r} has no runs in {store_path}{hint}")
    expected = baseline["runs"]
    labels = {r: f"{e.get('setting', '?')} seed {e.get('seed', '?')}" for r, e in expected.items()}
    labels.update({r.run_id: f"{r.setting} seed {r.seed}" for r in runs.itertuples()})
    have = set(runs["run_id"])
    missing = sorted(set(expected) - have)
    extra = sorted(have - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} baseline run(s) missing from the results: {_short(missing, labels)}")
        if extra:
            parts.append(f"{len(extra)} run(s) not in the baseline: {_short(extra, labels)}")
        raise _mismatch(file, f"different run ids than {store_path}: " + "; ".join(parts) + hint)

    values: dict[str, dict[str, float | None]] = {}
    for row in metrics.itertuples(index=False):
        values.setdefault(row.run_id, {})[row.name] = finite_or_none(row.value)
    overrides = baseline.get("tolerances", {})
    outcome = CheckOutcome(baseline=file, runs=len(expected), checked=0)
    lacking = []
    for r in runs.sort_values(["dataset", "setting", "seed"]).itertuples():
        entry = expected[r.run_id]
        old_status = RunStatus(entry.get("status", RunStatus.DONE))
        ident = dict(run_id=r.run_id, setting=r.setting, dataset=r.dataset, seed=int(r.seed))
        if r.status != old_status:
            verdict = "worse" if RunStatus(r.status).severity > old_status.severity else "better"
            outcome.deviations.append(Deviation(**ident, metric="status", old=old_status, new=r.status,
                                                tolerance=None, verdict=verdict))
            continue
        now = values.get(r.run_id, {})
        absent = sorted(set(entry["metrics"]) - set(now))
        if absent:
            lacking.append(f"{labels[r.run_id]} lacks {', '.join(absent[:4])}" + (" ..." if len(absent) > 4 else ""))
            continue
        outcome.unchecked.extend(f"{labels[r.run_id]}: {n}" for n in sorted(set(now) - set(entry["metrics"])))
        for name, old in sorted(entry["metrics"].items()):
            old = finite_or_none(old)
            new = now[name]
            tol = tolerance_for(name, overrides)
            outcome.checked += 1
            if not tol.allows(old, new):
                outcome.deviations.append(Deviation(**ident, metric=name, old=old, new=new, tolerance=tol,
                                                    verdict=_verdict(name, old, new)))
    if lacking:
        raise _mismatch(file, f"metrics missing from the results in {store_path}: " + "; ".join(lacking[:3]) + hint)
    return outcome


def assert_matches_baseline(results_dir: str | Path, baseline: str | Path | Mapping[str, Any]) -> CheckOutcome:
    """For users' own test suites: raise AssertionError with the table if any score moved beyond tolerance.

    A baseline that does not match the results raises BaselineMismatchError (a VaebenchError).
    """
    outcome = check_against_baseline(results_dir, baseline)
    if outcome.regressions:
        raise AssertionError("metric scores moved beyond tolerance of the baseline\n" + outcome.table)
    return outcome


# ---------------------------------------------------------------- the table


def _num(value: float | str | None) -> str:
    if value is None:
        return "nan"
    if isinstance(value, str):
        return value
    return f"{value:.6g}"


def format_outcome(outcome: CheckOutcome) -> str:
    """What `vaebench check` prints: a summary line, then one row per value beyond tolerance."""
    if not outcome.deviations:
        lines = [f"OK: all {outcome.checked} values of {outcome.runs} runs are within tolerance of {outcome.baseline}"]
    else:
        worse = sum(d.verdict == "worse" for d in outcome.deviations)
        better = sum(d.verdict == "better" for d in outcome.deviations)
        lines = [
            f"REGRESSION: {len(outcome.deviations)} value(s) moved beyond tolerance of {outcome.baseline} "
            f"({worse} worse, {better} better; {outcome.checked} values of {outcome.runs} runs checked)",
            "",
        ]
        header = ["setting", "dataset", "seed", "metric", "baseline", "now", "change", "tolerance", "verdict"]
        rows = []
        for d in outcome.deviations:
            if isinstance(d.old, float) and isinstance(d.new, float):
                change = f"{d.new - d.old:+.4g}" + (f" ({(d.new - d.old) / abs(d.old):+.1%})" if d.old else "")
            else:
                change = "-"
            rows.append([d.setting, d.dataset, str(d.seed), d.metric, _num(d.old), _num(d.new), change,
                         d.tolerance.describe() if d.tolerance else "-", d.verdict])
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        lines.extend("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
    if outcome.unchecked:
        lines.append(f"note: {len(outcome.unchecked)} value(s) not in the baseline, not checked "
                     f"(e.g. {outcome.unchecked[0]})")
    return "\n".join(lines)
