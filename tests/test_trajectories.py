"""Results at every budget (vaebench.reports.trajectories) on stores whose numbers are made up and known:
the table at one budget, claims verdicts at every budget and their trajectory, the report's parts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from test_reports_fixtures import spec_for
from vaebench.bench.spec import AlongValue, RunResult, RunStatus
from vaebench.bench.store import ResultsStore
from vaebench.cli import main
from vaebench.reports.along_report import AlongReport
from vaebench.reports.stats import mean_ci
from vaebench.reports.trajectories import (
    StoreFrames,
    at_budget,
    budgets,
    claims_along,
    comparisons,
    is_stable,
    trajectory_text,
    verdict_trajectories,
)
from vaebench.reports.trajectory_plots import learning_curve_plots
from vaebench.variants import VARIANTS

SEEDS = range(6)
STEPS = 300  # the budget; scored along training at 100 and 200
# value means at (100, 200, the end): what each setting's claim should give at each budget
PLAN = {
    ("vae", "tc"): (1.0, 1.0, 1.0), ("vae", "cov_offdiag"): (0.10, 0.10, 0.10),
    ("beta_tcvae", "tc"): (1.0, 0.5, 0.5),                   # inconclusive, then holds
    ("dip_vae", "cov_offdiag"): (0.30, 0.30, 0.05),           # fails, fails, holds
}


def _spec(variant: str, seed: int, hp: dict | None = None):
    full = {**VARIANTS.get(variant).Hyperparameters().to_dict(), **(hp or {})}
    spec = spec_for(variant, full, seed, metrics=("tc", "cov_offdiag", "kl"))
    return dataclasses.replace(spec, steps=STEPS, at_steps=(100, 200), at_metrics=spec.metrics)


def _write(path, plan=PLAN, *, diverged: dict[str, int] | None = None) -> dict[tuple, float]:
    """A store following `plan`; returns every value written, keyed (variant, seed, step, value)."""
    rng = np.random.default_rng(1)
    written = {}
    with ResultsStore(path) as store:
        for variant in sorted({v for v, _ in plan}):
            for seed in SEEDS:
                spec = _spec(variant, seed)
                stop = (diverged or {}).get(variant) if seed == 0 else None
                along: list[AlongValue] = []
                final: dict[str, float] = {}
                for i, step in enumerate((100, 200, STEPS)):
                    if stop is not None and step > stop:
                        break
                    for (v, value), means in plan.items():
                        if v == variant:
                            x = float(rng.normal(means[i], 0.01 * means[i]))
                            written[(variant, seed, step, value)] = x
                            if step == STEPS:
                                final[value] = x
                            else:
                                along.append(AlongValue(step, value, x))
                curves = [(s, "model/loss", 100.0 / s) for s in range(10, (stop or STEPS) + 1, 10)]
                status = RunStatus.DIVERGED if stop is not None else RunStatus.DONE
                store.write_result(RunResult(spec=spec, status=status, metrics=final, along=along, curves=curves,
                                             steps_done=stop or STEPS, diverged_step=stop), suite="s", setting=variant)
    return written


# ---------------------------------------------------------------- words


def test_trajectory_in_words_and_stability():
    assert trajectory_text([700, 1400, 2800, 5600], ["fails", "inconclusive", "holds", "holds"]) == \
        "fails at 700, inconclusive at 1,400, holds from 2,800 on"
    assert trajectory_text([100, 200, 300], ["fails", "fails", "holds"]) == "fails from 100 to 200, holds at 300"
    assert trajectory_text([100], ["holds"]) == "holds at 100"
    assert is_stable(["fails", "holds", "holds"]) is True
    assert is_stable(["holds", "holds", "fails"]) is False
    assert is_stable(["holds"]) is None  # one budget: cannot tell


# ---------------------------------------------------------------- the store at one budget


def test_the_table_at_one_budget_is_the_mean_of_the_values_scored_there(tmp_path, capsys):
    written = _write(tmp_path)
    with ResultsStore(tmp_path, create=False) as store:
        frames = StoreFrames.read(store)
    assert budgets(frames) == [100, 200, 300]
    view = at_budget(frames, 200)
    wide = view.wide().set_index("variant")
    by_hand = np.mean([written[("beta_tcvae", s, 200, "tc")] for s in SEEDS])
    assert wide.loc["beta_tcvae", "tc"].mean() == pytest.approx(by_hand, rel=1e-12)
    assert (view.runs()["spec"].map(lambda s: s.steps) == 200).all()
    assert main(["results", str(tmp_path), "--step", "200", "--format", "csv"]) == 0
    csv = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out)).set_index("variant")
    assert csv.loc["beta_tcvae", "step"] == 200
    assert csv.loc["beta_tcvae", "tc_mean"] == pytest.approx(by_hand, rel=1e-9)
    assert main(["results", str(tmp_path), "--step", "all", "--format", "json"]) == 0
    rows = pd.read_json(__import__("io").StringIO(capsys.readouterr().out))
    assert sorted(rows["step"].unique()) == [100, 200, 300] and len(rows) == 3 * 3
    assert main(["results", str(tmp_path), "--step", "all"]) == 0
    out = capsys.readouterr().out
    assert "step 100 (scored along training on the whole test split)" in out
    assert "step 300 (the end of the budget: the final scoring)" in out
    for bad in ("150", "abc"):
        assert main(["results", str(tmp_path), "--step", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "scored steps: 100, 200, 300" in err and "--step" in err


def test_a_run_that_diverged_later_counts_at_the_budgets_it_reached(tmp_path, capsys):
    _write(tmp_path, diverged={"beta_tcvae": 150})
    with ResultsStore(tmp_path, create=False) as store:
        frames = StoreFrames.read(store)
    for step, done, diverged in ((100, 6, 0), (200, 5, 1), (300, 5, 1)):
        runs = at_budget(frames, step).runs()
        part = runs[runs["variant"] == "beta_tcvae"]
        assert (part["status"] == "done").sum() == done and (part["status"] == "diverged").sum() == diverged, step
    assert main(["results", str(tmp_path), "--step", "200"]) == 0
    assert "diverged" in capsys.readouterr().out


# ---------------------------------------------------------------- claims at every budget


def test_claims_at_every_budget_follow_the_evidence(tmp_path, capsys):
    written = _write(tmp_path)
    with ResultsStore(tmp_path, create=False) as store:
        along = claims_along(comparisons(StoreFrames.read(store)))
    verdict = along.set_index(["step", "value"])["verdict"]
    assert [verdict[(s, "tc")] for s in (100, 200, 300)] == ["inconclusive", "holds", "holds"]
    assert [verdict[(s, "cov_offdiag")] for s in (100, 200, 300)] == ["fails", "fails", "holds"]
    # independently at 100: one-sided Mann-Whitney and Holm over the budget's two claims, by hand
    mine = [written[("beta_tcvae", s, 100, "tc")] for s in SEEDS]
    theirs = [written[("vae", s, 100, "tc")] for s in SEEDS]
    p = stats.mannwhitneyu(mine, theirs, alternative="less").pvalue
    p_dip = stats.mannwhitneyu([written[("dip_vae", s, 100, "cov_offdiag")] for s in SEEDS],
                               [written[("vae", s, 100, "cov_offdiag")] for s in SEEDS], alternative="less").pvalue
    at_100 = along[along["step"] == 100].set_index("value")
    assert at_100.loc["tc", "p"] == pytest.approx(p)
    holm = min(1.0, 2 * p) if p <= p_dip else min(1.0, max(2 * p_dip, p))  # Holm over two p-values
    assert at_100.loc["tc", "p_holm"] == pytest.approx(holm)

    traj = verdict_trajectories(along).set_index("value")
    assert traj.loc["tc", "trajectory"] == "inconclusive at 100, holds from 200 on" and traj.loc["tc", "stable"]
    assert traj.loc["cov_offdiag", "trajectory"] == "fails from 100 to 200, holds at 300"
    assert traj.loc["cov_offdiag", "stable"] == False  # noqa: E712 - not None: two budgets or more

    assert main(["claims", str(tmp_path)]) == 0  # the final verdicts (at 300) hold: exit 0 as before
    out = capsys.readouterr().out
    assert "2 claims: 2 holds, 0 fails, 0 inconclusive" in out
    assert "at 100, 200, 300 steps on the values scored along training on the whole test split" in out
    assert "inconclusive at 100, holds from 200 on" in out
    assert "1 of 2 verdicts are not stable" in out and "dip_vae: cov_offdiag lower than vae" in out


def test_a_near_claim_has_the_target_of_its_budget(tmp_path):
    hp = {"gamma": 1000.0, "c_max": 6.0, "c_stop_steps": STEPS}
    with ResultsStore(tmp_path) as store:
        for seed in SEEDS:
            spec = dataclasses.replace(_spec("annealed_vae", seed, hp), at_steps=(150,))
            x = 3.0 + 0.01 * seed  # at 150 the capacity is 6 * 149 / 300 = 2.98: near it; far from 6
            store.write_result(RunResult(spec=spec, status="done", metrics={"kl": 6.0 + 0.01 * seed},
                                         along=[(150, "kl", x, None)], steps_done=STEPS), suite="s", setting="annealed")
    with ResultsStore(tmp_path, create=False) as store:
        along = claims_along(comparisons(StoreFrames.read(store))).set_index("step")
    assert along.loc[150, "claim"] == "kl near 2.98 ± 1" and along.loc[150, "verdict"] == "holds"
    assert along.loc[STEPS, "claim"] == "kl near 5.98 ± 1" and along.loc[STEPS, "verdict"] == "holds"


def test_one_budget_prints_no_trajectory(tmp_path, capsys):
    plan = {k: v for k, v in PLAN.items() if k[0] in ("vae", "beta_tcvae")}
    with ResultsStore(tmp_path) as store:
        for variant in ("vae", "beta_tcvae"):
            for seed in SEEDS:
                spec = dataclasses.replace(_spec(variant, seed), at_steps=(), at_metrics=())
                store.write_result(RunResult(spec=spec, status="done", steps_done=STEPS,
                                             metrics={"tc": plan[(variant, "tc")][2] + 0.01 * seed}),
                                   suite="s", setting=variant)
    assert main(["claims", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 claims: 1 holds" in out and "along training" not in out


# ---------------------------------------------------------------- the report


def test_the_report_has_the_along_training_section_and_its_numbers(tmp_path):
    written = _write(tmp_path, diverged={"dip_vae": 150})
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    report = tmp_path / "report"
    html = (report / "report.html").read_text()
    assert 'id="along"' in html and 'id="learning-curves"' in html and "Metrics along training" in html
    assert "inconclusive at 100, holds from 200 on" in html
    for name in ("along_training", "learning_curves_vae", "learning_curves_dip_vae"):
        assert (report / "plots" / f"{name}.png").stat().st_size > 0
    summary = pd.read_csv(report / "along.csv")
    row = summary[(summary["setting"] == "beta_tcvae") & (summary["step"] == 100) & (summary["value"] == "tc")].iloc[0]
    values = [written[("beta_tcvae", s, 100, "tc")] for s in SEEDS]
    mean, low, high = mean_ci(values)  # the band is the comparison tables' bootstrap CI
    assert (row["n"], row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((6, mean, low, high))
    assert row["sd"] == pytest.approx(np.std(values, ddof=1))
    trajectory = pd.read_csv(report / "claims_trajectory.csv").set_index("value")
    assert list(trajectory.loc["tc", ["100", "200", "300"]]) == ["inconclusive", "holds", "holds"]
    assert "| dip_vae |" in (report / "claims_trajectory.md").read_text()


def test_learning_curves_mark_the_divergence(tmp_path):
    _write(tmp_path, diverged={"dip_vae": 150})
    with ResultsStore(tmp_path, create=False) as store:
        runs, curves = store.runs(), store.curves()
    plots = {p.name: p for p in learning_curve_plots(curves, runs)}
    assert set(plots) == {"learning_curves_beta_tcvae", "learning_curves_dip_vae", "learning_curves_vae"}
    ax = plots["learning_curves_dip_vae"].figure.axes[0]
    marks = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [150, 150]
    assert "diverged at step 150" in marks[0].get_label()
    assert len(ax.get_lines()) == len(SEEDS) + 1
    clean = plots["learning_curves_vae"].figure.axes[0]
    assert not [line for line in clean.get_lines() if line.get_linestyle() == "--"]
    seed0 = [line for line in ax.get_lines() if line.get_label() == "seed 0"][0]
    assert max(seed0.get_xdata()) == 150  # its curve stops where it diverged


def test_a_store_without_along_values_has_no_along_section(tmp_path):
    from test_reports_fixtures import make_store

    make_store(tmp_path)
    report = AlongReport.build(tmp_path)
    assert report.steps == [100] and report.along == [] and report.files() == {}
    assert len(report.curves) == 4  # one per setting
    assert [s.id for s in report.sections([(p, b"") for p in report.plots])] == ["learning-curves"]
