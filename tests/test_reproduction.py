"""Published beside measured: `vaebench compare` on a synthetic store against hand-worked numbers,
`vaebench reproduce --list` and `reproduce ID`, and the suite key `reproduces`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vaebench.bench.executors import InProcessExecutor
from vaebench.bench.reproduction import suite_for_reference
from vaebench.bench.runner import run_suite
from vaebench.bench.spec import RunResult, RunSpec, RunStatus
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import load_suite
from vaebench.cli import main
from vaebench.errors import ConfigError, UnknownNameError
from vaebench.reference import REFERENCES
from vaebench.reports.reproduction import compare_store, curve_value, t_interval

pytestmark = pytest.mark.usefixtures("one_thread")

PYTHAE = "pythae2022-vae-binarized-mnist"
BURDA = "burda2016-iwae-k50-l1"
TCVAE = "pythae2022-betatcvae-dsprites-modified-elbo"


# ------------------------------------------------------------------------------ the interval

def test_t_interval_by_hand():
    # three values 89.9, 90.1, 90.3: mean 90.1, sd 0.2, t(0.975, 2) = 4.302653, half-width
    # 4.302653 * 0.2 / sqrt(3) = 0.496827
    i = t_interval([89.9, 90.1, 90.3])
    assert (i.n, i.mean) == (3, pytest.approx(90.1))
    assert (i.low, i.high) == (pytest.approx(89.603173, abs=1e-6), pytest.approx(90.596827, abs=1e-6))
    # two values 86.0, 86.4: sd 0.282843, t(0.975, 1) = 12.706205, half-width 2.541241
    j = t_interval([86.0, 86.4, math.nan])
    assert j.n == 2 and (j.low, j.high) == (pytest.approx(83.658759, abs=1e-6), pytest.approx(88.741241, abs=1e-6))
    one = t_interval([5.0])
    assert (one.n, one.mean) == (1, 5.0) and math.isnan(one.low) and math.isnan(one.high)
    assert t_interval([]).n == 0


def test_curve_value_is_the_mean_over_the_last_epoch():
    import pandas as pd

    curves = pd.DataFrame({"step": [1, 2, 3, 4, 1, 2, 3, 4], "name": ["a"] * 4 + ["b"] * 4,
                           "value": [10.0, 20.0, 30.0, 40.0, 1.0, 2.0, 3.0, 4.0]})
    assert curve_value(curves, "a", steps=4, epochs=2) == (35.0, 2, 2)  # steps 3 and 4
    assert curve_value(curves, "a + b", steps=4, epochs=2) == (38.5, 2, 2)  # (33 + 44) / 2
    assert curve_value(curves, "a", steps=4, epochs=None) == (40.0, 1, 1)
    assert math.isnan(curve_value(curves, "c", steps=4, epochs=2)[0])


# --------------------------------------------------------------------------- a synthetic store

def _spec(seed: int, *, variant: str = "vae", metric_params: dict | None = None, selection: dict | None = None,
          batch_size: int = 100, steps: int = 10, dataset: str = "binarized_mnist", sampler: str = "") -> RunSpec:
    return RunSpec.from_dict({
        "variant": variant, "hyperparameters": {}, "dataset": dataset, "dataset_params": {}, "architecture": "mlp",
        "latent_dim": 40, "likelihood": "bernoulli", "steps": steps, "batch_size": batch_size, "optimizer": "adam",
        "learning_rate": 1e-4, "checkpoint_every": 5, "log_every": 1, "seed": seed, "metrics": ["iwae_nll"],
        "metric_params": metric_params or {}, **({"selection": selection} if selection else {}),
        **({"sampler": sampler} if sampler else {}),
    })


def _write(store: ResultsStore, spec: RunSpec, reproduces: list[str], *, status: str = "done",
           metrics: dict | None = None, notes: dict | None = None, curves: list | None = None) -> None:
    result = RunResult(spec=spec, status=RunStatus(status), metrics=metrics or {}, notes=notes or {},
                       curves=curves or [], environment={"reproduces": reproduces})
    store.write_result(result, suite="synthetic", setting=spec.variant)


@pytest.fixture
def synthetic_store(tmp_path) -> Path:
    full = {"iwae_k": 200, "iwae_images": 10000}
    selected = {"kind": "best_validation", "every": 500}
    with ResultsStore(tmp_path) as store:
        for seed, value in zip((0, 1, 2), (89.9, 90.1, 90.3)):  # pythae's protocol, three seeds
            _write(store, _spec(seed, metric_params=full, selection=selected, sampler="shuffle"), [PYTHAE],
                   metrics={"iwae_nll": value}, notes={"iwae_nll": "k=200, images=10000/10000"})
        for seed, value in zip((0, 1), (86.0, 86.4)):  # another setting: K = 100 on a subset, final model
            _write(store, _spec(seed, variant="iwae", metric_params={"iwae_k": 100}, batch_size=20), [BURDA],
                   metrics={"iwae_nll": value}, notes={"iwae_nll": "k=100, images=100/10000"})
        _write(store, _spec(2, variant="iwae", metric_params={"iwae_k": 100}, batch_size=20), [BURDA],
               status="diverged")
        _write(store, _spec(0, variant="beta_tcvae", dataset="dsprites", batch_size=1000), [TCVAE], status="failed")
        # a training-curve value: 100 steps, 50 epochs in the reference -> the last epoch is steps 99 and 100
        curve = [(s, "model/loss", 700.0 + s - 98 * (s >= 99)) for s in range(1, 101)]  # ..., 798, 701, 702
        _write(store, _spec(1, variant="beta_tcvae", dataset="dsprites", batch_size=1000, steps=100),
               ["pythae2022-betatcvae-dsprites-modified-elbo-official"], curves=curve)
        _write(store, _spec(7), [], metrics={"iwae_nll": 1.0})  # reproduces nothing: not listed
    return tmp_path


def test_compare_verdicts_against_hand_worked_numbers(synthetic_store):
    rows = {r.reference.id: r for r in compare_store(str(synthetic_store))}
    assert set(rows) == {PYTHAE, BURDA, TCVAE, "pythae2022-betatcvae-dsprites-modified-elbo-official"}

    vae = rows[PYTHAE]  # published 89.78, tolerance 0.5
    assert vae.values == (89.9, 90.1, 90.3) and vae.seeds == (0, 1, 2) and vae.measured.n == 3
    assert vae.difference == pytest.approx(0.32) and vae.verdict == "reproduced"
    assert (vae.measured.low, vae.measured.high) == (pytest.approx(89.603173, abs=1e-6),
                                                     pytest.approx(90.596827, abs=1e-6))
    checked = [d for d in vae.departures if d not in REFERENCES[PYTHAE].departures]
    assert checked == []  # K, the whole split, the sampler, the batch and the selection are pythae's

    iwae = rows[BURDA]  # published 84.78, tolerance 1.0
    assert iwae.values == (86.0, 86.4) and iwae.difference == pytest.approx(1.42) and iwae.verdict == "differs"
    assert (iwae.measured.low, iwae.measured.high) == (pytest.approx(83.658759, abs=1e-6),
                                                       pytest.approx(88.741241, abs=1e-6))
    assert "100 importance samples per image; the source uses 5,000" in iwae.departures
    assert "scored on 100 of the 10,000 test images; the source uses all" in iwae.departures
    assert "seed 2: diverged" in iwae.departures
    assert ("training batches drawn uniformly with replacement; the source: passes over the training split in "
            "file order, unshuffled") in iwae.departures
    assert not any("batch size" in d for d in iwae.departures)  # Burda's batch is 20, as here

    failed = rows[TCVAE]
    assert failed.verdict == "not run" and failed.measured.n == 0 and "seed 0: failed" in failed.departures
    official = rows["pythae2022-betatcvae-dsprites-modified-elbo-official"]  # 712.26, tolerance 4
    assert official.values == (701.5,) and official.verdict == "differs"
    assert official.difference == pytest.approx(-10.76) and math.isnan(official.measured.low)


def test_compare_all_lists_the_references_no_run_names(synthetic_store):
    rows = compare_store(str(synthetic_store), every=True)
    assert len(rows) == len(REFERENCES)
    assert {r.reference.id for r in rows if r.verdict == "not run"} == set(REFERENCES) - {
        PYTHAE, BURDA, "pythae2022-betatcvae-dsprites-modified-elbo-official"}


def test_a_departure_read_off_the_spec(tmp_path):
    with ResultsStore(tmp_path) as store:  # pythae's protocol without selection, batch 64, default K, 300 steps
        result = RunResult(spec=_spec(0, batch_size=64, steps=300), status="done", metrics={"iwae_nll": 95.0},
                           notes={"iwae_nll": "k=1000, images=100/10000"},
                           environment={"reproduces": [PYTHAE], "train_images": 50_000})
        store.write_result(result, suite="synthetic", setting="vae")
    (row,) = compare_store(str(tmp_path))
    assert row.verdict == "differs" and row.difference == pytest.approx(5.22)
    found = [d for d in row.departures if d not in REFERENCES[PYTHAE].departures]
    # ceil(50,000 / 64) = 782 steps an epoch; 300 / 782 = 0.3836
    assert found == ["300 steps = 0.3836 epochs of 782 steps; the source trains 500 epochs",
                     "1,000 importance samples per image; the source uses 200",
                     "training batches drawn uniformly with replacement; the source: a shuffled pass over the "
                     "training split per epoch", "batch size 64; the source uses 100",
                     "scores the final model; the source keeps the best on validation",
                     "scored on 100 of the 10,000 test images; the source uses all"]


def test_compare_command_formats(synthetic_store, capsys):
    assert main(["compare", str(synthetic_store)]) == 0
    out = capsys.readouterr().out
    header, *lines = out.splitlines()
    assert header.split() == ["reference", "source", "setting", "metric", "published", "measured", "95%", "CI",
                              "seeds", "difference", "tolerance", "verdict"]
    vae_line = next(line for line in lines if line.startswith(PYTHAE))
    assert "89.78 ± 0.01" in vae_line and "90.10" in vae_line and "[89.60, 90.60]" in vae_line
    assert vae_line.split()[-5:] == ["3", "+0.32", "±", "0.5", "reproduced"]
    assert "differs" in next(line for line in lines if line.startswith(BURDA))
    assert f"{TCVAE} (beta_tcvae): departures" in out
    assert main(["compare", str(synthetic_store), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    vae = next(r for r in records if r["reference"] == PYTHAE)
    assert vae["values"] == [89.9, 90.1, 90.3] and vae["verdict"] == "reproduced" and vae["seeds"] == 3
    assert main(["compare", str(synthetic_store), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("reference,source,setting,metric,published")
    assert main(["compare", str(synthetic_store), "--format", "markdown"]) == 0
    assert "| reference | source |" in capsys.readouterr().out
    assert main(["compare", str(synthetic_store), "--format", "html"]) == 2
    assert "--format" in capsys.readouterr().err


def test_report_has_the_section(synthetic_store, tmp_path):
    from vaebench.reports.report import write_report

    written = write_report(synthetic_store, tmp_path / "report")
    names = {p.name for p in written}
    assert {"reproduction.md", "reproduction.csv"} <= names
    text = (tmp_path / "report" / "reproduction.md").read_text()
    assert PYTHAE in text and "reproduced" in text and "not run" in text
    assert "Published and measured" in (tmp_path / "report" / "report.html").read_text()


# ------------------------------------------------------------------------------ reproduce --list

def test_reproduce_list(capsys):
    assert main(["reproduce", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "source", "value", "metric", "suite"]
    assert len(lines) == 1 + len(REFERENCES)
    by_id = {line.split()[0]: line for line in lines[1:]}
    assert set(by_id) == set(REFERENCES)
    assert "Chadebec, Vincent & Allassonnière 2022  89.78 ± 0.01" in by_id[PYTHAE]
    assert by_id[PYTHAE].rstrip().endswith(" pythae2022-vae.toml")
    assert by_id["burda2016-iwae-k50-l2"].rstrip().endswith(" –")  # no suite: the two-layer network is not built
    assert "Burda, Grosse & Salakhutdinov 2016" in by_id[BURDA] and " 84.78 " in by_id[BURDA]


@pytest.mark.parametrize("argv, message", [
    (["reproduce"], "give a reference id"),
    (["reproduce", "--list", PYTHAE], "not both"),
    (["reproduce", "nope"], "unknown reference 'nope'"),
    (["reproduce", "burda2016-iwae-k50-l2"], "no suite reproduces 'burda2016-iwae-k50-l2'"),
    (["reproduce", PYTHAE, "--data-root", "/no/such/dir"], "--data-root.*no such directory"),
])
def test_reproduce_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and pytest.importorskip("re").search(message, err)


# ------------------------------------------------------------------------------ the suite key

SUITE = """\
[budget]
steps = 4
batch_size = 4
checkpoint_every = 2
[model]
architecture = "mlp"
hidden = [16]
latent_dim = 2
[[datasets]]
name = "{dataset}"
{dataset_params}
{variants}
[evaluation]
metrics = ["iwae_nll"]
[evaluation.params]
iwae_k = 4
iwae_images = 1000
"""


@pytest.fixture
def tiny_binarized(tmp_path) -> Path:
    d = tmp_path / "data" / "binarized_mnist"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    splits: dict[str, Any] = {s: rng.integers(0, 2, (n, 784), dtype=np.uint8)
                              for s, n in (("train", 16), ("valid", 4), ("test", 5))}
    np.savez(d / "binarized_mnist.npz", **splits)
    return d


def _load(tmp_path: Path, variants: str, dataset: str = "binarized_mnist", dataset_params: str | None = None):
    if dataset_params is None:
        dataset_params = f'path = "{tmp_path / "data" / "binarized_mnist"}"'
    path = tmp_path / "s.toml"
    path.write_text(SUITE.format(dataset=dataset, dataset_params=dataset_params, variants=variants))
    return load_suite(path)


def test_reproduces_is_recorded_and_compared(tmp_path, tiny_binarized):
    suite = _load(tmp_path, f'[[variants]]\nname = "vae"\nreproduces = "{PYTHAE}"\n'
                            '[[variants]]\nname = "iwae"\nk = 2\n')
    plain = _load(tmp_path, '[[variants]]\nname = "vae"\n[[variants]]\nname = "iwae"\nk = 2\n')
    assert [s.run_id for s in suite.specs] == [s.run_id for s in plain.specs]  # not part of the spec
    vae, iwae = suite.specs
    assert suite.reproduces == {vae: (PYTHAE,)}
    assert suite_for_reference(suite, PYTHAE).specs == (vae,)
    with pytest.raises(ConfigError, match=f"no run of this suite reproduces '{BURDA}'; its entries reproduce: "
                                          f"{PYTHAE}"):
        suite_for_reference(suite, BURDA)
    out = tmp_path / "run"
    assert run_suite(suite, out, InProcessExecutor()).statuses == {"done": 2}
    with ResultsStore(out, create=False) as store:
        runs = store.runs().set_index("run_id")
        stored = store.metrics().set_index(["run_id", "name"])["value"]
    assert runs.loc[vae.run_id, "environment"]["reproduces"] == [PYTHAE]
    described = runs.loc[vae.run_id, "environment"]["dataset"]  # the data actually read
    assert described["path"] == str(tiny_binarized) and len(described["content_sha256"]) == 64
    assert "reproduces" not in runs.loc[iwae.run_id, "environment"]
    (row,) = compare_store(str(out))
    assert row.reference.id == PYTHAE and row.values == (stored[(vae.run_id, "iwae_nll")],)
    assert row.verdict in ("reproduced", "differs") and row.run_ids == (vae.run_id,)


@pytest.mark.parametrize("variants, key, message", [
    ('[[variants]]\nname = "vae"\nreproduces = "nope"', "variants[0].reproduces", "unknown reference 'nope'"),
    ('[[variants]]\nname = "vae"\nreproduces = []', "variants[0].reproduces", "non-empty array"),
    ('[[variants]]\nname = "vae"\nreproduces = 3', "variants[0].reproduces", "a reference id or"),
    (f'[[variants]]\nname = "iwae"\nk = [1, 5]\nreproduces = "{BURDA}"', "variants[0].k", "is a grid"),
    (f'[[variants]]\nname = "vae"\n[[variants]]\nname = "iwae"\nreproduces = "{BURDA}"', "variants[1].reproduces",
     "'burda2016-iwae-k50-l1' is a value on dataset 'mnist', not 'binarized_mnist'"),
])
def test_reproduces_errors_name_the_key(tmp_path, tiny_binarized, variants, key, message):
    with pytest.raises((ConfigError, UnknownNameError), match=message) as info:
        _load(tmp_path, variants)
    assert info.value.key == key


def test_training_losses_of_the_last_epoch_end_to_end(tmp_path):
    """A beta-TCVAE run reproducing pythae's two training losses: the compared values are the means
    of the logged terms over the last of the reference's 50 epochs (here 100 steps: steps 99, 100)."""
    variants = ('[[variants]]\nname = "beta_tcvae"\nreproduces = ["pythae2022-betatcvae-dsprites-modified-elbo", '
                '"pythae2022-betatcvae-dsprites-elbo"]\n')
    text = SUITE.format(dataset="dsprites", dataset_params="size = 32\ntest_size = 50", variants=variants)
    text = text.replace("steps = 4\n", "steps = 100\nlog_every = 1\n").replace('["iwae_nll"]', '["recon_bce"]')
    (tmp_path / "s.toml").write_text(text)
    suite = load_suite(tmp_path / "s.toml")
    out = tmp_path / "run"
    assert run_suite(suite, out, InProcessExecutor()).statuses == {"done": 1}
    with ResultsStore(out, create=False) as store:
        curves = store.curves()
    last = curves[curves["step"] > 98].pivot(index="step", columns="name", values="value")
    rows = {r.reference.id: r for r in compare_store(str(out))}
    modified = rows["pythae2022-betatcvae-dsprites-modified-elbo"]
    elbo = rows["pythae2022-betatcvae-dsprites-elbo"]
    assert modified.values == (pytest.approx(last["model/loss"].mean(), rel=1e-12),)
    by_hand = (last["model/recon"] + last["model/mi"] + last["model/tc"] + last["model/dim_kl"]).mean()
    assert elbo.values == (pytest.approx(by_hand, rel=1e-12),)
    # the beta-weighted TC makes the modified loss the larger: loss - elbo = 5 x TC per step
    assert modified.values[0] - elbo.values[0] == pytest.approx(5 * last["model/tc"].mean(), rel=1e-5)
    assert not any("logged steps" in d for d in modified.departures)
