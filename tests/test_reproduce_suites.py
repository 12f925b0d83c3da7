"""suites/reproduce/*.toml: each loads (on stand-in data files), names the references it reproduces
and is named back by them, follows their protocol where a spec can show it, and dry-runs; on the
real binarised MNIST (../shared/data, skipped without it) the budgets are the published ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import write_mnist
from vaebench.bench import cost
from vaebench.bench.reproduction import REPOSITORY
from vaebench.bench.schedules import burda_milestones
from vaebench.bench.suite import load_suite
from vaebench.cli import main
from vaebench.reference import REFERENCES
from vaebench.reports.reproduction import checked_departures

SUITES = sorted((REPOSITORY / "suites" / "reproduce").glob("*.toml"))
SHARED = REPOSITORY.parent / "shared" / "data"


@pytest.fixture(scope="module")
def stand_in_data(tmp_path_factory) -> Path:
    """A data root with small files in the standard formats: binarized_mnist/ and mnist/."""
    root = tmp_path_factory.mktemp("data")
    (root / "binarized_mnist").mkdir()
    rng = np.random.default_rng(0)
    splits: dict[str, Any] = {s: rng.integers(0, 2, (n, 784), dtype=np.uint8)
                              for s, n in (("train", 40), ("valid", 10), ("test", 10))}
    np.savez(root / "binarized_mnist" / "binarized_mnist.npz", **splits)
    write_mnist(root / "mnist", n_train=40, n_test=10)
    return root


def test_there_is_a_suite_per_protocol():
    assert [p.name for p in SUITES] == ["burda2016-static.toml", "burda2016.toml", "pythae2022-betatcvae.toml",
                                        "pythae2022-iwae.toml", "pythae2022-vae.toml"]


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_suite_loads_and_matches_its_references(path, stand_in_data, monkeypatch):
    monkeypatch.setenv("VAEBENCH_DATA", str(stand_in_data))
    suite = load_suite(path)
    relative = path.relative_to(REPOSITORY).as_posix()
    named = {ref_id for ids in suite.reproduces.values() for ref_id in ids}
    assert named and all(spec in suite.reproduces for spec in suite.specs)  # every run reproduces something
    assert named == {r.id for r in REFERENCES.values() if r.suite == relative}  # and the references name it back
    for spec in suite.specs:
        for ref_id in suite.reproduces[spec]:
            ref = REFERENCES[ref_id]
            assert ref.dataset.name == spec.dataset
            assert checked_departures(ref, spec) == [], ref_id  # K, batch, selection as published
            assert ref.protocol.batch_size in (None, spec.batch_size)  # the official run's is not stated
            assert ref.departures, ref_id  # every departure is stated
            if ref.metric.kind == "curve":
                assert spec.log_every == 1  # the published value is an average over every step of an epoch
            else:
                assert spec.metrics[0] == ref.metric.name
                assert dict(spec.metric_params)["iwae_float64"] is True
            hp = dict(ref.protocol.hyperparameters)
            if "k" in hp:
                assert dict(spec.hyperparameters)["k"] == hp["k"]
        assert dict(spec.dataset_params).get("path", "${VAEBENCH_DATA}").startswith("${VAEBENCH_DATA}")
        assert spec.optimizer_implementation == "fused"


def test_dry_run_gives_the_cost(stand_in_data, monkeypatch, capsys):
    monkeypatch.setattr(cost, "calibrate", lambda spec, device="cpu": 0.002)  # 2 ms a step
    assert main(["reproduce", "burda2016-iwae-k50-l1", "--dry-run", "--data-root", str(stand_in_data)]) == 0
    out = capsys.readouterr().out
    assert "burda2016-iwae-k50-l1: 84.78 (iwae_nll), Burda, Grosse & Salakhutdinov 2016" in out
    assert "suite suites/reproduce/burda2016.toml: 3 of its runs reproduce it" in out
    assert "departure: trains on all 60,000 training images" in out
    runs = [line for line in out.splitlines() if "seed=" in line]
    assert len(runs) == 3 and all("iwae(k=50)" in line for line in runs)
    steps = 3280 * 2  # 40 stand-in training images in batches of 20: 2 steps an epoch
    assert all(f"{steps:,d} steps" in line for line in runs)
    assert f"total: {3 * steps:,d} gradient steps" in out


def test_dry_run_calibrates_the_pythae_vae(stand_in_data, capsys):
    assert main(["reproduce", "pythae2022-vae-binarized-mnist", "--dry-run", "--data-root", str(stand_in_data)]) == 0
    out = capsys.readouterr().out
    assert "3 of its runs reproduce it" in out and "estimated training time on this machine" in out
    assert out.count("+ validation ~") == 3 and out.count(", iwae_nll ~") == 3
    assert "validation and iwae_nll scoring, measured on a few images" in out


def test_evaluation_cost_arithmetic(stand_in_data, monkeypatch):
    """Each timed piece takes 1 s by a fake clock: validation = 1 s / images timed x validation images x
    passes; iwae_nll = 1 s / images timed x images scored."""
    import itertools

    monkeypatch.setenv("VAEBENCH_DATA", str(stand_in_data))
    spec = load_suite(REPOSITORY / "suites/reproduce/pythae2022-vae.toml").specs[0]
    clock = itertools.count()
    monkeypatch.setattr(cost.time, "perf_counter", lambda: float(next(clock)))
    got = cost.evaluation_seconds(spec)
    # stand-in data: 40 training images, batch 100 -> 1 step an epoch, 500 steps, a validation each;
    # the 10 validation images are all timed (2 batches of 100 hold them); iwae_nll: 10 test images,
    # K = 200 -> 20,000 // 200 = 100 timed, capped at the 10 there are
    assert got == {"validation": 1 / 10 * 10 * 500, "iwae_nll": 1 / 10 * 10}


@pytest.mark.skipif(not (SHARED / "binarized_mnist").is_dir(), reason="../shared/data/binarized_mnist is not here")
def test_published_budgets_on_the_real_data(monkeypatch):
    monkeypatch.setenv("VAEBENCH_DATA", str(SHARED))
    vae = load_suite(REPOSITORY / "suites/reproduce/pythae2022-vae.toml").specs[0]
    assert vae.steps == 500 * 500 and vae.batch_size == 100 and vae.learning_rate == 1e-4 and vae.latent_dim == 40
    assert dict(vae.lr_schedule) == {"kind": "multistep", "factor": 10 ** (-1 / 5),
                                     "milestones": tuple(m * 500 for m in (200, 350, 500, 750, 1000))}
    assert dict(vae.selection) == {"kind": "best_validation", "every": 500}
    assert dict(vae.network) == {"hidden": (400,)} and dict(vae.metric_params)["iwae_k"] == 200
    iwae = load_suite(REPOSITORY / "suites/reproduce/pythae2022-iwae.toml").specs[0]
    assert iwae.steps == 3280 * 2500 and dict(iwae.optimizer_options) == {"eps": 1e-4}
    assert dict(iwae.lr_schedule)["milestones"] == tuple(m * 2500 for m in (2, 5, 14, 28, 41, 122, 365, 1094))
    assert dict(iwae.lr_schedule)["factor"] == 10 ** (-1 / 7)
    static = load_suite(REPOSITORY / "suites/reproduce/burda2016-static.toml").specs[0]
    assert static.steps == 3280 * 2500 and static.selection == ()
    assert dict(static.lr_schedule)["milestones"] == tuple(m * 2500 for m in burda_milestones())


def test_one_calibration_per_hyperparameter_setting(stand_in_data, monkeypatch):
    """An IWAE step's cost grows with k: k = 1, 5, 50 are calibrated apiece (seeds share one)."""
    monkeypatch.setenv("VAEBENCH_DATA", str(stand_in_data))
    calls = []
    def fake_calibrate(spec, device="cpu"):
        k = dict(spec.hyperparameters)["k"]
        calls.append(k)
        return 0.001 * k

    monkeypatch.setattr(cost, "calibrate", fake_calibrate)
    rows, _ = cost.estimate(load_suite(REPOSITORY / "suites/reproduce/burda2016.toml"))
    assert sorted(calls) == [1, 5, 50] and len(rows) == 9
    assert {dict(s.hyperparameters)["k"]: t for s, t in rows} == {k: 0.001 * k * 3280 * 2 for k in (1, 5, 50)}
