"""Scoring along training (vaebench.bench.trajectory): the suite keys, the final numbers untouched by it,
values equal to the final scoring of a shorter run, exact resume after a kill, the store's new table."""

from __future__ import annotations

import copy
import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vaebench import data
from vaebench.bench import trajectory
from vaebench.bench.evaluate import evaluate
from vaebench.bench.executors import InProcessExecutor
from vaebench.bench.runner import run_suite
from vaebench.bench.spec import AlongValue, RunResult, RunSpec, RunStatus
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import load_suite
from vaebench.bench.train import Trainer, build_model, images_to_draw, load_checkpoint
from vaebench.cli import main
from vaebench.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

SUITE = """
name = "along"
seeds = [0]

[budget]
steps = {steps}
batch_size = 32
checkpoint_every = {checkpoint_every}
log_every = 5

[model]
architecture = "mlp"
latent_dim = 4

[[datasets]]
name = "dsprites"
size = 32
test_size = 200

[[variants]]
name = "vae"

[[variants]]
name = "aae"

[evaluation]
metrics = ["recon_bce", "kl", "elbo_decomposition", "prior_mmd", "cov_offdiag", "iwae_nll"]
{along}

[evaluation.params]
iwae_k = 5
iwae_images = 20
"""
# the metrics that draw random numbers (posterior samples, prior samples, importance samples)
AT_METRICS = 'at_metrics = ["kl", "elbo_decomposition", "prior_mmd", "iwae_nll"]'


def _suite(tmp_path: Path, along: str = "", *, steps: int = 30, checkpoint_every: int = 10, name: str = "s") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(SUITE.format(steps=steps, checkpoint_every=checkpoint_every, along=along))
    return path


def _frames(run_dir: Path) -> dict[str, pd.DataFrame]:
    """Each table keyed by (variant, seed) instead of run_id (suites with and without at_steps differ in it)."""
    with ResultsStore(run_dir, create=False) as store:
        runs = store.runs().set_index("run_id")
        out = {"metrics": store.metrics(), "curves": store.curves(), "along": store.along()}
    for key, frame in out.items():
        frame = frame.assign(variant=frame["run_id"].map(runs["variant"]), seed=frame["run_id"].map(runs["seed"]))
        sort = [c for c in ("variant", "seed", "step", "name") if c in frame]
        out[key] = frame.drop(columns="run_id").sort_values(sort).reset_index(drop=True)
    return out


# ---------------------------------------------------------------- the suite's keys


def test_the_three_spacings_give_steps_and_the_spec_keeps_them(tmp_path):
    specs = {key: load_suite(_suite(tmp_path, text, steps=700, name=key)).specs[0] for key, text in [
        ("explicit", "at_steps = [100, 350, 700]"), ("every", "at_every = 200"), ("halvings", "at_halvings = 2"),
        ("none", ""), ("images", f"at_steps = [100]\n{AT_METRICS}\nat_images = 50"),
        ("all_images", "at_steps = [100]\nat_images = 5000"),
    ]}
    assert specs["explicit"].at_steps == (100, 350, 700)
    assert specs["every"].at_steps == (200, 400, 600)
    assert specs["halvings"].at_steps == (175, 350, 700)
    assert specs["explicit"].at_metrics == specs["explicit"].metrics  # default: every metric of the suite
    assert specs["images"].at_metrics == ("kl", "elbo_decomposition", "prior_mmd", "iwae_nll")
    assert specs["images"].at_images == 50 and specs["all_images"].at_images == 0  # more than the split: all of it
    # a suite without the keys keeps its spec JSON and run id: the fields are left out when empty
    assert not {"at_steps", "at_metrics", "at_images"} & set(specs["none"].to_dict())
    for spec in specs.values():
        assert RunSpec.from_dict(spec.to_dict()) == spec and RunSpec.from_dict(spec.to_dict()).run_id == spec.run_id
    assert specs["explicit"].run_id != specs["none"].run_id


@pytest.mark.parametrize("along, key, message", [
    ("at_steps = [100, 800]", "evaluation.at_steps", "beyond the budget of 700"),
    ("at_steps = [200, 100]", "evaluation.at_steps", "increasing"),
    ("at_steps = [0]", "evaluation.at_steps", "integer >= 1"),
    ("at_steps = []", "evaluation.at_steps", "non-empty"),
    ("at_steps = [100]\nat_every = 50", "evaluation.at_every", "not at_steps and at_every"),
    ("at_every = 800", "evaluation.at_every", "no step within the budget"),
    ("at_halvings = true", "evaluation.at_halvings", "integer >= 1"),
    ("at_steps = [100]\nat_metrics = [\"mig\"]", "evaluation.at_metrics", "subset"),
    ("at_metrics = [\"kl\"]", "evaluation.at_metrics", "no steps are given"),
    ("at_steps = [100]\nat_images = 1", "evaluation.at_images", "at least 2"),
    ("at_step = [100]", "evaluation.at_step", "allowed: metrics, params, at_steps"),
])
def test_bad_keys_name_the_file_and_the_key(tmp_path, capsys, along, key, message):
    path = _suite(tmp_path, along, steps=700)
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    assert f"key '{key}'" in str(err.value) and message in str(err.value) and str(path) in str(err.value)
    assert main(["run", str(path), "--dry-run"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# ---------------------------------------------------------------- what scoring along training must not change


def test_final_numbers_are_bit_identical_with_and_without_scoring_along_training(tmp_path, monkeypatch):
    plain = load_suite(_suite(tmp_path, "", name="plain"))
    along = load_suite(_suite(tmp_path, f"at_steps = [5, 10, 20]\n{AT_METRICS}", name="along"))
    run_suite(plain, tmp_path / "plain", InProcessExecutor(), threads=1)
    run_suite(along, tmp_path / "along", InProcessExecutor(), threads=1)
    a, b = _frames(tmp_path / "plain"), _frames(tmp_path / "along")
    pd.testing.assert_frame_equal(a["metrics"], b["metrics"], check_exact=True)
    pd.testing.assert_frame_equal(a["curves"], b["curves"], check_exact=True)
    assert a["along"].empty
    scored = b["along"]
    assert set(scored["step"]) == {5, 10, 20}  # the end (30) on the whole test split: the final scoring's values
    vae = scored[scored["variant"] == "vae"]
    assert {"kl", "tc", "dimwise_kl", "prior_mmd", "iwae_nll"} <= set(vae["name"])
    assert not set(scored.loc[scored["variant"] == "aae", "name"]) & {"kl", "tc"}  # a point mass has no density
    assert vae.groupby("name")["value"].nunique().min() > 1  # the model changes between the steps

    # the test can fail: scoring that reseeds the generators without restoring them changes the final numbers
    monkeypatch.setattr(trajectory, "generators_preserved", lambda device: _no_restore())
    run_suite(along, tmp_path / "leaky", InProcessExecutor(), threads=1)
    leaky = _frames(tmp_path / "leaky")
    assert not leaky["metrics"]["value"].equals(b["metrics"]["value"])


class _no_restore:
    def __enter__(self): ...

    def __exit__(self, *exc): ...


def test_a_value_along_training_is_the_final_value_of_the_shorter_run(tmp_path):
    """Training up to step N does not depend on the budget: the model at step 20 of a 30-step run is the
    final model of the 20-step run, and scoring it along training gives the final scoring's numbers."""
    long = load_suite(_suite(tmp_path, f"at_steps = [20]\n{AT_METRICS}", name="long"))
    short = load_suite(_suite(tmp_path, "", steps=20, name="short"))
    run_suite(long, tmp_path / "long", InProcessExecutor(), threads=1)
    run_suite(short, tmp_path / "short", InProcessExecutor(), threads=1)
    along, final = _frames(tmp_path / "long")["along"], _frames(tmp_path / "short")["metrics"]
    assert len(along) > 0
    merged = along.merge(final, on=["variant", "seed", "name"], suffixes=("_along", "_final"), validate="one_to_one")
    assert len(merged) == len(along)
    assert (merged["value_along"] == merged["value_final"]).all()
    assert (merged["note_along"].fillna("") == merged["note_final"].fillna("")).all()


def test_at_images_scores_a_fixed_subset_and_the_end_on_it(tmp_path):
    suite = load_suite(_suite(tmp_path, f"at_steps = [10, 30]\n{AT_METRICS}\nat_images = 50", name="subset"))
    run_suite(suite, tmp_path / "out", InProcessExecutor(), threads=1)
    with ResultsStore(tmp_path / "out", create=False) as store:
        runs, along, final = store.runs(), store.along(), store.metrics()
    spec = next(s for s in suite.specs if s.variant == "vae")
    scored = along[(along["run_id"] == spec.run_id) & (along["step"] == 30)].set_index("name")
    assert scored.loc["tc", "note"].startswith("N=50;") and scored.loc["iwae_nll", "note"] == "k=5, images=20/50"
    # independently: the stored final model, scored on 50 test images drawn with the documented seed
    dataset = data.get(spec.dataset, **dict(spec.dataset_params))
    test = np.asarray(dataset.test_indices)
    chosen = test[np.sort(np.random.default_rng(0).choice(len(test), 50, replace=False))]
    subset = copy.copy(dataset)
    subset.test_indices = chosen
    model = build_model(spec, dataset)
    model.load_state_dict(torch.load(tmp_path / "out" / "models" / f"{spec.run_id}.pt", weights_only=True))
    values = evaluate(model, subset, dataclasses.replace(spec, metrics=spec.at_metrics),
                      device=torch.device("cpu"), cache_dir=tmp_path / "out" / "cache", grids=False).values
    assert {k: scored.loc[k, "value"] for k in values} == values
    whole = final[final["run_id"] == spec.run_id].set_index("name")["value"]
    assert whole["tc"] != values["tc"]  # the final scoring is on the whole test split (200 images)
    assert runs.set_index("run_id").loc[spec.run_id, "environment"]["along_scoring_time_s"] > 0


# ---------------------------------------------------------------- resume


class Killed(Exception):
    pass


def _trainer(spec: RunSpec, cache: Path) -> Trainer:
    dataset = data.get(spec.dataset, **dict(spec.dataset_params))
    dataset = dataset.materialised(cache, images_to_draw=images_to_draw(spec))
    trainer = Trainer(spec, dataset, torch.device("cpu"))
    trainer.score_along = trajectory.along_scorer(spec, dataset, torch.device("cpu"), cache)
    return trainer


@pytest.mark.parametrize("kill_at", [10, 12, 18])
def test_a_run_killed_anywhere_resumes_with_every_score_once(tmp_path, kill_at):
    """Checkpoints at 8, 16, 24; scores at 10 and 20. Killed at 10 (before that step's scoring) or 12, a run
    resumes from step 8 and scores 10 again; killed at 18, from step 16 with the score of step 10 restored."""
    base = load_suite(_suite(tmp_path, f"at_steps = [10, 20]\n{AT_METRICS}")).specs[0]
    spec = dataclasses.replace(base, steps=24, checkpoint_every=8, log_every=1)
    straight = _trainer(spec, tmp_path / "cache")
    straight.train(None, None)

    ckpt = tmp_path / "ckpt.pt"
    first = _trainer(spec, tmp_path / "cache")

    def kill(run_id: str, step: int) -> None:
        if step == kill_at:
            raise Killed

    with pytest.raises(Killed):
        first.train(ckpt, kill)
    resumed = _trainer(spec, tmp_path / "cache")
    resumed.restore(load_checkpoint(ckpt, torch.device("cpu")))
    assert resumed.step == 8 * (kill_at // 8)
    assert resumed.along.scored_steps() == ({10} if kill_at > 16 else set())
    resumed.train(ckpt, None)
    assert resumed.along.rows == straight.along.rows  # nothing lost, nothing twice, the same numbers
    assert sorted({r[0] for r in straight.along.rows}) == [10, 20]
    assert resumed.curves == straight.curves
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    # a checkpoint written before scoring along training existed restores with no scores
    state = load_checkpoint(ckpt, torch.device("cpu"))
    del state["along"]
    old = _trainer(spec, tmp_path / "cache")
    old.restore(state)
    assert old.along.rows == [] and old.along.time_s == 0.0


def _stored(run_dir: Path) -> int:
    try:
        return sqlite3.connect(run_dir / "results.sqlite").execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_sigkill_then_rerun_on_a_process_pool_gives_the_uninterrupted_numbers(tmp_path):
    path = _suite(tmp_path, f"at_steps = [10, 30]\n{AT_METRICS}", steps=40, checkpoint_every=20)
    run_suite(load_suite(path), tmp_path / "reference", InProcessExecutor(), threads=1)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vaebench.cli", "run", str(path), "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not any((out / "checkpoints").glob("*.pt")) and time.time() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _stored(out) < 2
    rerun = subprocess.run(cmd + ["--jobs", "2"], env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    with ResultsStore(out, create=False) as store:
        runs = store.runs()
    assert runs["environment"].map(lambda e: e["resumed_from_step"]).max() >= 20
    a, b = _frames(tmp_path / "reference"), _frames(out)
    for key in ("along", "metrics", "curves"):
        pd.testing.assert_frame_equal(a[key], b[key], check_exact=True)
    assert not b["along"].duplicated(["variant", "seed", "step", "name"]).any()


# ---------------------------------------------------------------- the store


def _result(step_values: dict[int, float]) -> RunResult:
    spec = load_suite(Path(__file__).resolve().parent.parent / "suites" / "smoke.toml").specs[0]
    return RunResult(spec=spec, status=RunStatus.DONE, metrics={"kl": 1.0}, steps_done=spec.steps,
                     along=[AlongValue(s, "kl", v, "a note") for s, v in step_values.items()])


def test_a_runs_rows_are_replaced_and_forgotten_with_it(tmp_path):
    with ResultsStore(tmp_path) as store:
        store.write_result(_result({10: 3.0, 20: 2.0}), suite="s", setting="vae")
        store.write_result(_result({10: 5.0}), suite="s", setting="vae")  # a rerun replaces every row
        assert store.along()[["step", "name", "value", "note"]].values.tolist() == [[10, "kl", 5.0, "a note"]]
        store.forget(list(store.runs()["run_id"]))
        assert store.along().empty and store.runs().empty


def test_a_store_written_before_the_table_is_read_by_every_command(tmp_path, capsys):
    with ResultsStore(tmp_path) as store:
        store.write_result(_result({10: 3.0}), suite="smoke", setting="vae")
    conn = sqlite3.connect(tmp_path / "results.sqlite")
    conn.execute("DROP TABLE metrics_along")
    conn.commit()
    conn.close()
    with ResultsStore(tmp_path, create=False) as store:
        assert store.along().empty and list(store.along().columns) == ["run_id", "step", "name", "value", "note",
                                                                       "ceiling"]
    for argv in (["results", str(tmp_path)], ["results", str(tmp_path), "--step", "all"], ["claims", str(tmp_path)],
                 ["report", str(tmp_path), "--out", str(tmp_path / "report")], ["baseline", str(tmp_path), "--out",
                 str(tmp_path / "b.json")], ["check", str(tmp_path), "--baseline", str(tmp_path / "b.json")]):
        assert main(argv) == 0, argv
    capsys.readouterr()
    assert main(["results", str(tmp_path), "--step", "10"]) == 2
    assert "scored steps: 300" in capsys.readouterr().err  # the smoke suite's budget: its final scoring
    with ResultsStore(tmp_path) as store:  # a driver adds the table
        store.write_result(_result({10: 3.0}), suite="smoke", setting="vae")
        assert len(store.along()) == 1


def test_a_foreign_along_table_is_one_line(tmp_path, capsys):
    with ResultsStore(tmp_path) as store:
        store.write_result(_result({}), suite="smoke", setting="vae")
    conn = sqlite3.connect(tmp_path / "results.sqlite")
    conn.execute("DROP TABLE metrics_along")
    conn.execute("CREATE TABLE metrics_along (x TEXT)")
    conn.commit()
    conn.close()
    assert main(["results", str(tmp_path), "--step", "all"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "metrics_along" in err
