"""The typed comparison, the setting identity, the run status and ceilings stored as numbers; and stores
written before `setting_key` and `ceiling` existed, read and resumed."""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from pathlib import Path

import pytest

from test_reports_fixtures import EVIL, make_store, spec_for
from vaebench.bench.spec import RunResult, RunStatus
from vaebench.bench.store import ResultsStore
from vaebench.cli import main
from vaebench.reports.comparison import Comparison

# ---------------------------------------------------------------- the setting identity


def test_the_setting_key_is_the_spec_without_its_seed():
    spec = spec_for("vae", {}, 0)
    assert dataclasses.replace(spec, seed=7).setting_key() == spec.setting_key()
    assert dataclasses.replace(spec, steps=200).setting_key() != spec.setting_key()
    assert spec.setting_key() != spec.run_id


def test_the_store_keeps_each_runs_setting_key(tmp_path):
    make_store(tmp_path / "run", seeds=(0, 1))
    with sqlite3.connect(tmp_path / "run" / "results.sqlite") as conn:
        stored = dict(conn.execute("SELECT run_id, setting_key FROM runs"))
    with ResultsStore(tmp_path / "run", create=False) as store:
        runs = store.runs()
    assert stored == {r: s.setting_key() for r, s in zip(runs["run_id"], runs["spec"])}
    assert len(set(stored.values())) == len(stored) // 2  # two seeds per setting


def test_a_comparison_row_is_one_suites_setting(tmp_path):
    make_store(tmp_path / "run", seeds=(0, 1))
    make_store(tmp_path / "run", seeds=(2,), suite="other")
    with ResultsStore(tmp_path / "run", create=False) as store:
        comparison = Comparison.build(store)
    vae = [s for s in comparison.settings if s.variant == "vae"]
    assert [(s.suite, s.done) for s in vae] == [("other", 1), ("synthetic", 2)]
    assert len({s.key for s in vae}) == 1
    kl = [comparison.summary(s, "kl") for s in vae]
    assert [k.n for k in kl] == [1, 2] and all(k.higher_is_better is False for k in kl)


# ---------------------------------------------------------------- statuses


def test_a_status_is_one_of_runstatus():
    spec = spec_for("vae", {}, 0)
    assert RunResult(spec=spec, status="diverged").status is RunStatus.DIVERGED
    with pytest.raises(ValueError):
        RunResult(spec=spec, status="crashed")
    assert [s.severity for s in RunStatus] == [0, 1, 2] and not RunStatus.FAILED.recorded


def test_the_stores_status_constraint_is_runstatus(tmp_path):
    with ResultsStore(tmp_path):
        pass
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        schema = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
    assert "CHECK (status IN ('done', 'diverged', 'failed'))" in schema


# ---------------------------------------------------------------- ceilings and rendering


def test_a_ceiling_is_stored_as_a_number(tmp_path):
    spec = spec_for("vae", {}, 0, metrics=("mi_xz",))
    with ResultsStore(tmp_path) as store:
        store.write_result(RunResult(spec=spec, status="done", metrics={"mi_xz": 7.0, "mi_xz_upper": 8.0},
                                     notes={"mi_xz": "N=2000"}, ceilings={"mi_xz": math.log(2000)}),
                           suite="s", setting="vae")
        metrics = store.metrics().set_index("name")
        comparison = Comparison.build(store)
    assert metrics.loc["mi_xz", "ceiling"] == math.log(2000)  # exactly: not read back from text
    assert math.isnan(metrics.loc["mi_xz_upper", "ceiling"])
    assert comparison.summary(comparison.settings[0], "mi_xz").ceiling == math.log(2000)


def test_results_markdown_is_escaped(tmp_path, capsys):
    run = make_store(tmp_path / "run", seeds=(0,), evil=True)
    assert main(["results", str(run), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert EVIL not in out and "&lt;script&gt;" in out
    assert main(["results", str(run), "--format", "markdown", "--per-run"]) == 0
    assert EVIL not in capsys.readouterr().out


# ---------------------------------------------------------------- a store written before this version

# the schema of the stores written before `setting_key` and `ceiling` existed
OLD_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, suite TEXT NOT NULL, variant TEXT NOT NULL, setting TEXT NOT NULL,
    dataset TEXT NOT NULL, seed INTEGER NOT NULL, spec TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'diverged', 'failed')), diverged_step INTEGER, error TEXT,
    steps_done INTEGER NOT NULL, wall_time_s REAL NOT NULL, steps_per_s REAL NOT NULL, finished_at TEXT NOT NULL,
    environment TEXT NOT NULL);
CREATE TABLE metrics (run_id TEXT NOT NULL REFERENCES runs(run_id), name TEXT NOT NULL, value REAL, note TEXT,
    PRIMARY KEY (run_id, name));
CREATE TABLE curves (run_id TEXT NOT NULL REFERENCES runs(run_id), step INTEGER NOT NULL, name TEXT NOT NULL,
    value REAL, PRIMARY KEY (run_id, step, name));
CREATE TABLE artifacts (run_id TEXT NOT NULL REFERENCES runs(run_id), name TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (run_id, name));
CREATE TABLE suite_runs (suite TEXT NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (suite, run_id));
CREATE TABLE metrics_along (run_id TEXT NOT NULL REFERENCES runs(run_id), step INTEGER NOT NULL,
    name TEXT NOT NULL, value REAL, note TEXT, PRIMARY KEY (run_id, step, name));
"""
NOTE = f"N=2000 ceiling=log N={math.log(2000):.3f}"


def _old_store(path: Path) -> list:
    """A store as the previous version wrote it: mi_xz's ceiling only in its note, no setting keys."""
    path.mkdir(parents=True)
    specs = [dataclasses.replace(spec_for("vae", {}, seed, metrics=("mi_xz",)), steps=300, at_steps=(100,),
                                 at_metrics=("mi_xz",)) for seed in (0, 1)]
    with sqlite3.connect(path / "results.sqlite") as conn:
        conn.executescript(OLD_SCHEMA)
        for spec, value in zip(specs, (7.2, 7.3)):
            conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (spec.run_id, "old", "vae", "vae", "dsprites", spec.seed, spec.canonical_json(), "done", None,
                          None, 300, 1.0, 300.0, "2024-06-01T00:00:00+0000", json.dumps({})))
            conn.execute("INSERT INTO metrics VALUES (?, ?, ?, ?)", (spec.run_id, "mi_xz", value, NOTE))
            conn.execute("INSERT INTO metrics_along VALUES (?, ?, ?, ?, ?)", (spec.run_id, 100, "mi_xz", 5.0, NOTE))
    return specs


def test_a_store_written_before_setting_keys_and_ceilings_is_read(tmp_path, capsys):
    specs = _old_store(tmp_path / "old")
    with ResultsStore(tmp_path / "old", create=False) as store:
        runs, metrics, along = store.runs(), store.metrics(), store.along()
    assert list(runs["setting_key"]) == [s.setting_key() for s in specs]  # computed from the spec
    assert list(metrics["ceiling"]) == list(along["ceiling"]) == [round(math.log(2000), 3)] * 2  # from the note
    assert main(["results", str(tmp_path / "old")]) == 0
    assert "≤7.6!" in capsys.readouterr().out
    assert main(["results", str(tmp_path / "old"), "--step", "100"]) == 0
    assert "≤7.6" in capsys.readouterr().out


def test_a_driver_adds_the_new_columns_to_an_older_store_and_writes_into_it(tmp_path):
    specs = _old_store(tmp_path / "old")
    new = dataclasses.replace(specs[0], seed=2)
    with ResultsStore(tmp_path / "old") as store:  # as a resumed sweep opens it
        store.write_result(RunResult(spec=new, status="done", metrics={"mi_xz": 7.4}, notes={"mi_xz": NOTE},
                                     ceilings={"mi_xz": math.log(2000)}), suite="old", setting="vae")
    with ResultsStore(tmp_path / "old", create=False) as store:
        runs = store.runs().set_index("run_id")
        ceilings = store.metrics().set_index("run_id")["ceiling"]
        comparison = Comparison.build(store)
    assert runs.loc[new.run_id, "setting_key"] == new.setting_key() == runs.loc[specs[0].run_id, "setting_key"]
    assert ceilings[new.run_id] == math.log(2000) and ceilings[specs[0].run_id] == round(math.log(2000), 3)
    (setting,) = comparison.settings
    summary = comparison.summary(setting, "mi_xz")
    assert summary.n == 3 and summary.ceiling == math.log(2000)  # the lowest of the runs' (7.6009 < 7.601)


def test_a_model_scored_by_evaluate_is_a_setting_with_no_budget(tmp_path, capsys):
    from vaebench.bench.spec import ExternalSpec
    from vaebench.reports.trajectories import StoreFrames, budgets

    external = ExternalSpec(model="sha256:abc", label="enc", dataset="dsprites", dataset_params=(("size", 32),),
                            latent_dim=3, likelihood="bernoulli", seed=0, metrics=("kl",))
    with ResultsStore(tmp_path) as store:
        store.write_result(RunResult(spec=external, status=RunStatus.DONE, metrics={"kl": 2.0}), suite="external",
                           setting="external(enc)")
        store.write_result(RunResult(spec=spec_for("vae", {}, 0), status=RunStatus.DONE, metrics={"kl": 3.0}),
                           suite="s", setting="vae")
        runs = store.runs().set_index("run_id")
        frames = StoreFrames.read(store)
        comparison = Comparison.build(store)
    assert runs.loc[external.run_id, "spec"] == external
    assert runs.loc[external.run_id, "setting_key"] == external.setting_key()
    assert budgets(frames) == [100]  # the trained run's; the external model has none
    assert sorted(s.label for s in comparison.settings) == ["external(enc)", "vae"]
    for argv in (["results", str(tmp_path)], ["results", str(tmp_path), "--step", "all"], ["claims", str(tmp_path)],
                 ["report", str(tmp_path), "--out", str(tmp_path / "report")]):
        assert main(argv) == 0, argv
    assert "external(enc)" in (tmp_path / "report" / "comparison.md").read_text()
