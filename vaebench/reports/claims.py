"""Claims verdicts (`vaebench claims`): does each objective do, over seeds, what its paper says?

For every claim a variant declares (vaebench.variants.claims) and every setting of that variant
in the store, the partner is the `vae` with default hyperparameters trained on the same
dataset, networks, budget and metric options (every spec field but the variant, its
hyperparameters and the seed equal). Over the completed seeds of each:

    effect    = mean(claimant) - mean(partner), with a percentile bootstrap CI (independent
                resampling of each side, BOOTSTRAP_RESAMPLES, fixed seed)
    p         = one-sided Mann-Whitney U p-value in the claimed direction; p_against in the
                other; both Holm-corrected across every tested claim
    verdict   = holds (adjusted p < ALPHA), fails (adjusted p_against < ALPHA), or inconclusive,
                with `seeds_needed`: the seeds per side at which a one-sided test of level
                ALPHA / m would have 80% power at the observed effect and spread (normal
                approximation), and at least the smallest n at which Mann-Whitney can reach it.

Each side's values are those of its completed runs with a finite value; `runs` and `partner_runs`
count every run of the two settings (diverged and failed ones too), so the table says how many
were left out (`n` of `runs`).

A "near" claim (the annealed VAE's KL at its capacity C) has no partner: it holds when the CI
of the claimant's mean lies inside target ± tolerance, fails when it lies wholly outside, and is
inconclusive otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from vaebench.bench.spec import ExternalSpec, RunSpec
from vaebench.files import content_hash
from vaebench.plugins import calling_user_code
from vaebench.reports.comparison import Comparison, Setting
from vaebench.reports.stats import (
    ALPHA,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    holm,
    mean_ci,
    mean_sd,
    min_attainable_p,
    scale_of,
)
from vaebench.reports.tables import Cell, Column, Table, ci_cell
from vaebench.variants import VARIANTS
from vaebench.variants.claims import Claim

POWER = 0.8
COLUMNS = ["dataset", "setting", "claim", "value", "n", "runs", "partner_n", "partner_runs", "effect", "ci_low",
           "ci_high", "p", "p_holm", "verdict", "seeds_needed"]
LEFT_OUT_NOTE = ("n/runs: the values used of the setting's runs; diverged and failed runs, and runs without a finite "
                 "value, are left out")


@dataclass(frozen=True)
class _Tested:
    """A claim with the values of its two sides: a near claim's `partner` is empty, the others' `target` NaN."""

    claim: Claim
    dataset: str
    setting: str
    values: np.ndarray
    partner: np.ndarray
    target: float
    runs: int = 0
    partner_runs: int = 0


def _context(spec: RunSpec | ExternalSpec) -> str:
    """What must be equal between a claimant and its partner: everything but the variant, its hyperparameters
    and seed."""
    return content_hash({k: v for k, v in spec.to_dict().items() if k not in ("variant", "hyperparameters", "seed")})


def difference_ci(a: np.ndarray, b: np.ndarray, *, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap CI (95%) of mean(a) - mean(b), resampling each side independently."""
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    s = max(scale_of(a), scale_of(b))  # 1 for ordinary values; exact powers of two near the float maximum
    a, b = a / s, b / s
    rng = np.random.default_rng(seed)
    diffs = (rng.choice(a, (BOOTSTRAP_RESAMPLES, len(a))).mean(1)
             - rng.choice(b, (BOOTSTRAP_RESAMPLES, len(b))).mean(1))
    return float(np.quantile(diffs, 0.025)) * s, float(np.quantile(diffs, 0.975)) * s


def seeds_needed(a: np.ndarray, b: np.ndarray, alpha: float) -> int:
    """Seeds per side for a one-sided test at level `alpha` with POWER at the observed effect (normal approx.)."""
    effect = abs(a.mean() - b.mean())
    sd = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2) if len(a) > 1 and len(b) > 1 else math.nan
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(POWER)
    n = 2 * (z * sd / effect) ** 2 if effect > 0 and math.isfinite(sd) else math.inf
    floor = next(k for k in range(2, 100) if min_attainable_p(k, k) / 2 < alpha)  # one-sided
    return int(max(floor, math.ceil(n))) if math.isfinite(n) else -1


def _at_defaults(spec: RunSpec | ExternalSpec) -> bool:
    """A registered variant at its default hyperparameters (a possible partner)."""
    if not isinstance(spec, RunSpec) or spec.variant not in VARIANTS:
        return False
    hyperparameters = dict(spec.hyperparameters)
    return all(hyperparameters.get(k) == v for k, v in VARIANTS.get(spec.variant).Hyperparameters().to_dict().items())


def _values(comparison: Comparison, settings: list[Setting], value: str) -> np.ndarray:
    """The finite values of `value` of the settings' completed runs, setting after setting, in seed order."""
    found = [comparison.summary(s, value) for s in settings]
    return np.array([v for s in found if s is not None for v in s.values], dtype=float)


def _collect(comparison: Comparison) -> list[_Tested]:
    """The claims that can be tested: per setting label, dataset and setting key (the settings of that key
    in every suite together) with a completed run, each claim of its variant that applies."""
    claimants: dict[tuple[str, str, str], list[Setting]] = {}
    partners: dict[tuple[str, str], list[Setting]] = {}  # (variant, context) -> its settings at default hyperparameters
    runs_of_key: dict[str, int] = {}
    for s in comparison.settings:
        runs_of_key[s.key] = runs_of_key.get(s.key, 0) + s.runs
        if s.done:
            claimants.setdefault((s.label, s.dataset, s.key), []).append(s)
        if _at_defaults(s.spec):
            partners.setdefault((s.variant, _context(s.spec)), []).append(s)
    tested = []
    for (label, dataset, key), settings in sorted(claimants.items(), key=lambda kv: kv[0]):
        spec = settings[0].spec
        if not isinstance(spec, RunSpec) or spec.variant not in VARIANTS:  # an ExternalSpec claims nothing
            continue
        for claim in VARIANTS.get(spec.variant).claims:
            with calling_user_code(f"the claim {claim.value!r} of variant {spec.variant!r}"):  # a plugin's callbacks
                applies = bool(claim.applies(spec))
                target = float(claim.target(spec)) if applies and claim.target is not None else math.nan
            if not applies or not comparison.has_value(claim.value):
                continue
            mine = _values(comparison, settings, claim.value)
            if claim.direction == "near":
                tested.append(_Tested(claim, dataset, label, mine, np.array([]), target, runs_of_key[key]))
                continue
            partner = partners.get((claim.partner, _context(spec)), [])
            theirs = _values(comparison, [p for p in partner if p.done], claim.value)
            if len(mine) and len(theirs):
                tested.append(_Tested(claim, dataset, label, mine, theirs, math.nan, runs_of_key[key],
                                      sum(p.runs for p in partner)))
    return tested


def claims_table(comparison: Comparison, *, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per tested claim (see the module docstring); empty when no claim can be tested."""
    tested = _collect(comparison)
    rows: list[dict[str, Any]] = []
    p_for: list[float] = []
    p_against: list[float] = []
    for t in tested:
        c = t.claim
        if c.direction == "near":
            mean, low, high = mean_ci(t.values.tolist())
            rows.append({"effect": mean - t.target, "ci_low": low - t.target, "ci_high": high - t.target,
                         "partner_n": 0, "claim": f"{c.value} near {t.target:.3g} ± {c.tolerance:g}"})
            p_for.append(math.nan)
            p_against.append(math.nan)
            continue
        low, high = difference_ci(t.values, t.partner)
        rows.append({"effect": mean_sd(t.values)[0] - mean_sd(t.partner)[0], "ci_low": low, "ci_high": high,
                     "partner_n": len(t.partner), "claim": f"{c.value} {c.direction} than {c.partner}"})
        claimed = "less" if c.direction == "lower" else "greater"
        other = "greater" if claimed == "less" else "less"
        p_for.append(float(stats.mannwhitneyu(t.values, t.partner, alternative=claimed).pvalue))
        p_against.append(float(stats.mannwhitneyu(t.values, t.partner, alternative=other).pvalue))
    adjusted_for, adjusted_against = holm(p_for), holm(p_against)
    m = max(1, int(np.isfinite(p_for).sum()))
    for row, t, p, adj, adj_against in zip(rows, tested, p_for, adjusted_for, adjusted_against):
        row.update({"dataset": t.dataset, "setting": t.setting, "value": t.claim.value, "n": len(t.values),
                    "runs": t.runs, "partner_runs": t.partner_runs, "p": p, "p_holm": adj})
        if t.claim.direction == "near":
            tol = t.claim.tolerance
            inside = -tol <= row["ci_low"] and row["ci_high"] <= tol
            outside = row["ci_low"] > tol or row["ci_high"] < -tol
            row["verdict"] = "holds" if inside else "fails" if outside else "inconclusive"
            row["seeds_needed"] = -1
        else:
            row["verdict"] = "holds" if adj < alpha else "fails" if adj_against < alpha else "inconclusive"
            inconclusive = row["verdict"] == "inconclusive"
            row["seeds_needed"] = seeds_needed(t.values, t.partner, alpha / m) if inconclusive else 0
    return pd.DataFrame(rows, columns=COLUMNS)


def claims_display(table: pd.DataFrame) -> Table:
    """The verdicts as a report table (Markdown, LaTeX and HTML renderers of vaebench.reports.tables)."""
    columns = [Column("dataset"), Column("setting"), Column("claim"), Column("n", numeric=True),
               Column("partner n", numeric=True), Column("effect [95% CI]", numeric=True),
               Column("p (Holm)", numeric=True), Column("verdict"), Column("seeds needed", numeric=True)]
    rows = [
        [Cell(r["dataset"]), Cell(r["setting"]), Cell(r["claim"]), Cell(_of(r["n"], r["runs"])),
         Cell(_of(r["partner_n"], r["partner_runs"])),
         Cell(ci_cell(r["effect"], r["ci_low"], r["ci_high"])),
         Cell(f"{r['p_holm']:.3g}" if math.isfinite(r["p_holm"]) else "-"),
         Cell(r["verdict"], r["verdict"] != "inconclusive"),
         Cell(str(r["seeds_needed"]) if r["seeds_needed"] > 0 else "")]
        for r in table.to_dict("records")
    ]
    caption = ("Each variant's claim against the suite's vae of the same setup: difference of means (claimant - "
               f"partner) with a bootstrap CI, one-sided Mann-Whitney p Holm-corrected across claims, alpha {ALPHA}; "
               "seeds needed: per side, for 80% power at the observed effect.")
    return Table(columns, rows, caption=caption, notes=[LEFT_OUT_NOTE] if _left_out(table) else [])


def _signed(value: float) -> str:
    """'+1.23' / '-0.5'; 'overflow' for a difference of finite means that is not finite."""
    return "overflow" if math.isinf(value) else f"{value:+.3g}"


def _of(n: int, runs: int) -> str:
    """'n', or 'n/runs' when runs of the setting were left out."""
    return f"{n}/{runs}" if n < runs else str(n)


def _left_out(table: pd.DataFrame) -> bool:
    return bool(((table["n"] < table["runs"]) | (table["partner_n"] < table["partner_runs"])).any())


def format_claims(table: pd.DataFrame) -> str:
    """The verdicts as a terminal table, with a one-line summary."""
    if table.empty:
        return "no claim can be tested here (each claim needs its variant and a `vae` partner of the same setup)"
    shown = table.assign(
        effect=[f"{_signed(e)} [{_signed(lo)}, {_signed(hi)}]" if not math.isnan(lo) else _signed(e)
                for e, lo, hi in zip(table["effect"], table["ci_low"], table["ci_high"])],
        p_holm=[f"{p:.3g}" if math.isfinite(p) else "-" for p in table["p_holm"]],
        seeds_needed=[str(s) if s > 0 else "" for s in table["seeds_needed"]],
        n=[_of(n, r) for n, r in zip(table["n"], table["runs"])],
        partner_n=[_of(n, r) for n, r in zip(table["partner_n"], table["partner_runs"])],
    )[["setting", "claim", "n", "partner_n", "effect", "p_holm", "verdict", "seeds_needed"]]
    counts = table["verdict"].value_counts()
    summary = ", ".join(f"{counts.get(v, 0)} {v}" for v in ("holds", "fails", "inconclusive"))
    note = f"\n{LEFT_OUT_NOTE}" if _left_out(table) else ""
    return (shown.to_string(index=False) + f"\n{len(table)} claims: {summary} (one-sided Mann-Whitney, Holm, "
            f"alpha {ALPHA})" + note)
