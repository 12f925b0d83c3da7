"""Regression checks: `vaebench baseline` / `vaebench check` and `assert_matches_baseline`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_reports_fixtures import make_store, spec_for
from vaebench.bench.spec import RunResult
from vaebench.bench.store import ResultsStore
from vaebench.cli import main
from vaebench.errors import BaselineMismatchError
from vaebench.metrics import METRICS
from vaebench.reports.check import (
    Tolerance,
    assert_matches_baseline,
    check_against_baseline,
    load_baseline,
    tolerance_for,
    write_baseline,
)

ROOT = Path(__file__).resolve().parent.parent
SMOKE_SUITE = ROOT / "suites" / "smoke.toml"
SMOKE_BASELINE = ROOT / "baselines" / "smoke.json"


@pytest.fixture
def run(tmp_path) -> Path:
    return make_store(tmp_path / "run", seeds=(0, 1))


@pytest.fixture
def baseline(run, tmp_path) -> Path:
    out = tmp_path / "baseline.json"
    assert main(["baseline", str(run), "--out", str(out)]) == 0
    return out


def edit(path: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def first_run(data: dict) -> dict:
    return data["runs"][sorted(data["runs"])[0]]


def check(run: Path, baseline: Path, capsys) -> tuple[int, str, str]:
    code = main(["check", str(run), "--baseline", str(baseline)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_baseline_file_holds_every_run_value_and_registry_tolerances(run, baseline):
    data = load_baseline(baseline)
    assert data["suite"] == "synthetic"
    with ResultsStore(run, create=False) as store:
        runs, metrics = store.runs(), store.metrics()
    assert set(data["runs"]) == set(runs["run_id"])
    entry = data["runs"][runs["run_id"].iloc[0]]
    assert {"setting", "dataset", "seed", "status", "metrics"} <= set(entry)
    assert "kl_dim_0" in entry["metrics"] and "recon_bce" in entry["metrics"]
    assert len(metrics) == sum(len(e["metrics"]) for e in data["runs"].values())
    for name in ("recon_bce", "kl", "active_units"):
        info = METRICS.get(name)
        assert data["tolerances"][name] == {"abs": info.abs_tol, "rel": info.rel_tol}


def test_unchanged_results_pass(run, baseline, capsys):
    code, out, _ = check(run, baseline, capsys)
    assert code == 0 and out.startswith("OK:")


def test_a_value_beyond_tolerance_is_a_regression(run, baseline, capsys):
    tol = tolerance_for("recon_bce", {})
    def worse(data):  # the baseline was better (lower), so the results moved worse
        old = first_run(data)["metrics"]["recon_bce"]
        first_run(data)["metrics"]["recon_bce"] = old - (tol.abs + tol.rel * abs(old) + 0.5)
    code, out, _ = check(run, edit(baseline, worse), capsys)
    assert code == 1
    assert "REGRESSION: 1 value(s)" in out and "recon_bce" in out and "worse" in out


def test_a_move_in_the_better_direction_is_flagged_too(run, baseline, capsys):
    edit(baseline, lambda d: first_run(d)["metrics"].__setitem__("active_units", -5.0))  # now higher: better
    code, out, _ = check(run, baseline, capsys)
    assert code == 1 and "better" in out and "active_units" in out


def test_a_move_within_tolerance_passes(run, baseline, capsys):
    tol = tolerance_for("recon_bce", {})
    def nudge(data):
        old = first_run(data)["metrics"]["recon_bce"]
        first_run(data)["metrics"]["recon_bce"] = old + 0.9 * (tol.abs + tol.rel * abs(old))
    code, out, _ = check(run, edit(baseline, nudge), capsys)
    assert code == 0, out


def test_tolerances_in_the_file_are_honoured(run, baseline, capsys):
    edit(baseline, lambda d: first_run(d)["metrics"].__setitem__("kl", first_run(d)["metrics"]["kl"] + 3.0))
    assert check(run, baseline, capsys)[0] == 1
    edit(baseline, lambda d: d["tolerances"].__setitem__("kl", {"abs": 5.0}))  # rel keeps its default
    assert check(run, baseline, capsys)[0] == 0
    edit(baseline, lambda d: d["tolerances"].__setitem__("kl", {"abs": 0.0, "rel": 0.0}))
    code, out, _ = check(run, baseline, capsys)
    assert code == 1 and "±(0 + 0·|old|)" in out
    # a per-value entry overrides its metric's: kl_dim_0 exact, everything else default
    edit(baseline, lambda d: d["tolerances"].update({"kl": {"abs": 5.0}, "kl_dim_0": {"abs": 0.0, "rel": 0.0}}))
    edit(baseline, lambda d: first_run(d)["metrics"].update(kl_dim_0=first_run(d)["metrics"]["kl_dim_0"] + 1e-3))
    code, out, _ = check(run, baseline, capsys)
    assert code == 1 and "kl_dim_0" in out and " kl " not in out


def test_tolerance_formula():
    tol = Tolerance(abs=1.0, rel=0.1)
    assert tol.allows(10.0, 12.0)  # |2| <= 1 + 0.1 * 10
    assert not tol.allows(10.0, 12.001)
    assert tol.allows(-10.0, -8.0) and not tol.allows(-10.0, -7.9)
    assert tol.allows(None, None) and not tol.allows(None, 1.0) and not tol.allows(1.0, None)


def test_a_value_that_became_nan_is_a_regression(run, baseline, capsys):
    with ResultsStore(run, create=False) as store:
        row = store.runs().iloc[0]
        metrics = store.metrics()
    values = {r.name: r.value for r in metrics[metrics["run_id"] == row["run_id"]].itertuples()}
    values["neg_elbo"] = float("nan")
    with ResultsStore(run) as store:
        result = RunResult(spec=row["spec"], status="done", metrics=values)
        store.write_result(result, suite=row["suite"], setting=row["setting"])
    code, out, _ = check(run, baseline, capsys)
    assert code == 1 and "neg_elbo" in out and "nan" in out and "worse" in out


def test_a_run_that_now_diverges_is_a_regression(run, baseline, capsys):
    with ResultsStore(run, create=False) as store:
        row = store.runs().iloc[0]
    with ResultsStore(run) as store:
        store.write_result(RunResult(spec=row["spec"], status="diverged", diverged_step=3,
                                     error="loss is nan"), suite=row["suite"], setting=row["setting"])
    code, out, _ = check(run, baseline, capsys)
    assert code == 1 and "status" in out and "diverged" in out


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["runs"].pop(sorted(d["runs"])[0]), "not in the baseline"),
        (lambda d: d["runs"].__setitem__("0" * 16, first_run(d)), "missing from the results"),
        (lambda d: first_run(d)["metrics"].__setitem__("fid", 3.0), "metrics missing"),
        (lambda d: d.__setitem__("suite", "other"), "suite 'other' has no runs"),
        (lambda d: d["tolerances"].__setitem__("kl", {"abs": -1}), "tolerances.kl.abs"),
        (lambda d: d.pop("runs"), "key 'runs'"),
        (lambda d: first_run(d)["metrics"].__setitem__("kl", "high"), "must be a number"),
    ],
)
def test_a_baseline_that_does_not_match_is_a_user_error(run, baseline, capsys, change, message):
    code, out, err = check(run, edit(baseline, change), capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"vaebench: error: {baseline}: ") and message in err
    assert err.count("\n") == 1  # one line
    with pytest.raises(BaselineMismatchError, match=message):
        check_against_baseline(run, baseline)


def test_malformed_or_missing_baseline_files(run, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"runs": ')
    code, _, err = check(run, bad, capsys)
    assert code == 2 and f"{bad}: not valid JSON" in err
    code, _, err = check(run, tmp_path / "absent.json", capsys)
    assert code == 2 and "no such baseline file" in err


def test_a_new_run_in_the_results_is_a_mismatch(run, baseline, capsys):
    spec = spec_for("vae", {}, 7)
    with ResultsStore(run) as store:
        store.write_result(RunResult(spec=spec, status="done", metrics={"kl": 1.0}), suite="synthetic", setting="vae")
    code, _, err = check(run, baseline, capsys)
    assert code == 2 and spec.run_id in err and "vae seed 7" in err


def test_rewriting_a_baseline_keeps_its_tolerance_overrides(run, baseline):
    edit(baseline, lambda d: d["tolerances"].update({"kl": {"abs": 9.0, "rel": 0.5}, "kl_dim_2": {"abs": 0.0}}))
    write_baseline(run, baseline)
    data = load_baseline(baseline)
    assert data["tolerances"]["kl"] == {"abs": 9.0, "rel": 0.5}
    assert data["tolerances"]["kl_dim_2"] == {"abs": 0.0}
    assert data["tolerances"]["recon_bce"]["abs"] == METRICS.get("recon_bce").abs_tol


def test_no_baseline_of_failed_runs(tmp_path, capsys):
    run = make_store(tmp_path / "run", seeds=(0,), failed=True)
    assert main(["baseline", str(run), "--out", str(tmp_path / "b.json")]) == 2
    assert "failed" in capsys.readouterr().err and not (tmp_path / "b.json").exists()


def test_assert_matches_baseline_for_users_tests(run, baseline):
    outcome = assert_matches_baseline(run, baseline)
    assert outcome.regressions == 0 and outcome.checked > 0
    data = json.loads(baseline.read_text())
    assert_matches_baseline(run, data)  # an already parsed baseline works too
    first_run(data)["metrics"]["recon_mse"] += 100.0
    with pytest.raises(AssertionError, match="recon_mse") as info:
        assert_matches_baseline(run, data)
    assert "REGRESSION" in str(info.value) and "better" in str(info.value)


# ---------------------------------------------------------------- the checked-in smoke baseline


@pytest.mark.slow
def test_smoke_suite_matches_the_checked_in_baseline(tmp_path):
    if not SMOKE_BASELINE.exists():
        pytest.skip(f"{SMOKE_BASELINE} is absent: write it with "
                    f"`vaebench run {SMOKE_SUITE} --out DIR && vaebench baseline DIR --out {SMOKE_BASELINE}`")
    out = tmp_path / "smoke"
    assert main(["run", str(SMOKE_SUITE), "--out", str(out), "--quiet"]) == 0
    assert_matches_baseline(out, SMOKE_BASELINE)
