"""The harness end to end: determinism, divergence, exact resume after SIGKILL, the store, executors."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers import REPO
from vaebench.bench.executors import InProcessExecutor, ProcessPoolRunExecutor
from vaebench.bench.runner import run_suite
from vaebench.bench.spec import RunResult
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import load_suite
from vaebench.cli import main
from vaebench.variants import VARIANTS
from vaebench.variants.vae import VAE


class DivergingVAE(VAE):
    """A VAE whose loss turns NaN at step 15 (for the divergence test only)."""

    name = "test_diverging_vae"

    def loss(self, x, step):
        losses = super().loss(x, step)
        if step >= 15:
            losses.total = losses.total * float("nan")
        return losses


@pytest.fixture
def diverging_variant(monkeypatch):
    """Registered for one test only, so no other test sees it."""
    monkeypatch.setitem(VARIANTS._items, DivergingVAE.name, DivergingVAE)


def _metrics(run_dir: Path) -> pd.DataFrame:
    with ResultsStore(run_dir, create=False) as store:
        return store.metrics().sort_values(["run_id", "name"]).reset_index(drop=True)


def _curves(run_dir: Path) -> pd.DataFrame:
    with ResultsStore(run_dir, create=False) as store:
        return store.curves().sort_values(["run_id", "name", "step"]).reset_index(drop=True)


def test_same_suite_and_seed_give_bit_identical_numbers(write_suite, tmp_path):
    suite = load_suite(write_suite(steps=30))
    for name in ("a", "b"):
        run_suite(suite, tmp_path / name, InProcessExecutor(), threads=2)
    a, b = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert len(a) == 2 * (5 + 4)  # recon_mse, recon_bce, neg_elbo, kl, active_units + kl_dim_0..3 per run
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(_curves(tmp_path / "a"), _curves(tmp_path / "b"), check_exact=True)
    other_seed = load_suite(write_suite(steps=30, seeds="[1]", filename="s1.toml"))
    run_suite(other_seed, tmp_path / "c", InProcessExecutor(), threads=2)
    assert not _metrics(tmp_path / "c")["value"].equals(a["value"])


def test_diverging_run_is_recorded_and_the_sweep_goes_on(diverging_variant, write_suite, tmp_path, capsys):
    variants = '[[variants]]\nname = "test_diverging_vae"\n\n[[variants]]\nname = "vae"\n'
    path = write_suite(steps=30, variants=variants)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    with ResultsStore(tmp_path / "out", create=False) as store:
        runs = store.runs().set_index("variant")
        wide = store.wide().set_index("variant")
    assert runs.loc["test_diverging_vae", "status"] == "diverged"
    assert runs.loc["test_diverging_vae", "diverged_step"] == 15
    assert "not finite" in runs.loc["test_diverging_vae", "error"]
    assert runs.loc["vae", "status"] == "done"
    assert wide.loc["vae", "neg_elbo"] > 0
    assert "1 diverged" in capsys.readouterr().out
    # a second run skips both: a diverged run is an outcome, not a failure
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "2 already in" in capsys.readouterr().out


def test_run_records_environment_timing_and_curves(write_suite, tmp_path):
    run_suite(load_suite(write_suite(steps=20)), tmp_path, InProcessExecutor(), threads=1)
    with ResultsStore(tmp_path, create=False) as store:
        runs, curves = store.runs(), store.curves()
    env = runs["environment"].iloc[0]
    assert env["packages"]["torch"] == torch.__version__.split("+")[0] or env["packages"]["torch"].startswith("2.")
    assert env["device"].startswith("cpu") and env["torch_threads"] == 1
    assert (runs["seed"] == 0).all() and (runs["steps_done"] == 20).all()
    assert (runs["wall_time_s"] > 0).all() and (runs["steps_per_s"] > 0).all()
    assert set(curves["step"]) == {10, 20} and "model/loss" in set(curves["name"])
    assert all((tmp_path / "models" / f"{r}.pt").exists() for r in runs["run_id"])
    assert not list((tmp_path / "checkpoints").glob("*.pt"))  # removed once the result is stored


def test_models_and_checkpoints_load_with_weights_only(write_suite, tmp_path):
    run_suite(load_suite(write_suite(steps=20)), tmp_path, InProcessExecutor(), threads=1)
    for path in (tmp_path / "models").glob("*.pt"):
        state = torch.load(path, weights_only=True)
        assert any(k.startswith("encoder.") for k in state)


def test_writing_a_run_twice_keeps_one_row_set(tmp_path):
    spec = load_suite(REPO / "suites" / "smoke.toml").specs[0]
    result = RunResult(spec=spec, status="done", metrics={"kl": 1.0},
                       curves=[(1, "model/loss", 2.0)])
    with ResultsStore(tmp_path) as store:
        store.write_result(result, suite="smoke", setting="vae")
        result.metrics = {"kl": 3.0}
        store.write_result(result, suite="smoke", setting="vae")
        assert len(store.runs()) == 1 and store.metrics()["value"].tolist() == [3.0]
        assert len(store.curves()) == 1


def _wait_for(predicate, timeout: float) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def _stored_runs(run_dir: Path) -> int:
    db = run_dir / "results.sqlite"
    if not db.exists():
        return 0
    try:
        return sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.parametrize("kill_when", ["first_checkpoint", "after_first_result"])
def test_sigkill_then_rerun_resumes_exactly(write_suite, tmp_path, kill_when):
    path = write_suite(steps=120, checkpoint_every=30)
    reference = tmp_path / "reference"
    run_suite(load_suite(path), reference, InProcessExecutor(), threads=1)

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vaebench.cli", "run", str(path), "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if kill_when == "first_checkpoint":
            _wait_for(lambda: any((out / "checkpoints").glob("*.pt")), 120)
        else:
            _wait_for(lambda: _stored_runs(out) >= 1, 120)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _stored_runs(out) < 2

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    with ResultsStore(out, create=False) as store:
        runs = store.runs()
    assert len(runs) == 2 and runs["run_id"].is_unique and (runs["status"] == "done").all()
    assert runs["environment"].map(lambda e: e["resumed_from_step"]).max() >= 30 or kill_when == "after_first_result"
    pd.testing.assert_frame_equal(_metrics(out), _metrics(reference), check_exact=True)
    pd.testing.assert_frame_equal(_curves(out), _curves(reference), check_exact=True)


def test_process_pool_runs_every_spec(write_suite, tmp_path):
    suite = load_suite(write_suite(steps=20, seeds="[0, 1]"))
    steps: list[tuple[str, int]] = []

    class Recorder:
        def start(self, total, pending): ...
        def step(self, run_id, step): steps.append((run_id, step))
        def finished(self, result): ...
        def close(self): ...

    summary = run_suite(suite, tmp_path, ProcessPoolRunExecutor(2), threads=1, progress=Recorder())
    assert summary.statuses == {"done": 4}
    assert {r for r, _ in steps} == {s.run_id for s in suite.specs}
    # the pool's numbers equal the in-process ones at the same thread count
    run_suite(suite, tmp_path / "inproc", InProcessExecutor(), threads=1)
    pd.testing.assert_frame_equal(_metrics(tmp_path), _metrics(tmp_path / "inproc"), check_exact=True)


def test_results_formats(write_suite, tmp_path, capsys):
    run_suite(load_suite(write_suite(steps=10)), tmp_path, InProcessExecutor(), threads=1)
    for fmt, marker in [("table", "neg_elbo ↓"), ("markdown", "| dataset |"), ("csv", "neg_elbo_mean"),
                        ("json", '"neg_elbo_mean"')]:
        assert main(["results", str(tmp_path), "--format", fmt]) == 0
        assert marker in capsys.readouterr().out
    assert main(["results", str(tmp_path), "--format", "xml"]) == 2
