"""Suite files: expansion into RunSpecs, and one clear line with exit code 2 for every bad input."""

from __future__ import annotations

import pytest

from helpers import tiny_suite_text
from vaebench.bench.suite import load_suite
from vaebench.cli import main


def test_grid_expands_over_variants_hyperparameters_and_seeds(write_suite):
    variants = '[[variants]]\nname = "vae"\n\n[[variants]]\nname = "beta_vae"\nbeta = [1.0, 4.0, 8]\n'
    suite = load_suite(write_suite(seeds="[0, 1]", variants=variants))
    assert len(suite.specs) == (1 + 3) * 2
    betas = sorted({dict(s.hyperparameters).get("beta") for s in suite.specs if s.variant == "beta_vae"})
    assert betas == [1.0, 4.0, 8.0]
    assert len({s.run_id for s in suite.specs}) == len(suite.specs)


def test_run_id_is_a_content_hash(write_suite):
    a = load_suite(write_suite(name="first")).specs
    b = load_suite(write_suite(name="second", filename="other.toml")).specs
    assert [s.run_id for s in a] == [s.run_id for s in b]  # the suite name is not part of a run
    c = load_suite(write_suite(steps=41, filename="third.toml")).specs
    assert not {s.run_id for s in a} & {s.run_id for s in c}


def test_defaults_are_filled_in(write_suite):
    tc = load_suite(write_suite(variants='[[variants]]\nname = "beta_tcvae"\n', filename="tc.toml")).specs[0]
    assert dict(tc.hyperparameters)["dataset_size"] == 737_280 - 200  # the training split of tiny suites
    spec = load_suite(write_suite(variants='[[variants]]\nname = "beta_vae"\n')).specs[0]
    assert dict(spec.hyperparameters) == {"beta": 4.0}
    assert spec.to_dict()["metrics"][0] == "recon_mse"


BAD_INPUTS = [
    ("malformed", 'name = "x"\nseeds = [0\n', None, "not valid TOML"),
    ("unknown_variant", None, ('name = "beta_vae"', 'name = "gamma_vae"'), "variants[1].name"),
    ("unknown_dataset", None, ('name = "dsprites"', 'name = "mnist_online"'), "datasets[0].name"),
    ("unknown_metric", None, ('"active_units"]', '"active_units", "sharpness"]'), "evaluation.metrics"),
    ("unknown_key", None, ("[budget]", "[budget]\nepochs = 3"), "budget.epochs"),
    ("unknown_top_key", None, ('name = "tiny"', 'name = "tiny"\nowner = "me"'), "'owner'"),
    ("negative_beta", None, ("beta = 4.0", "beta = -1.0"), "variants[1].beta"),
    ("zero_steps", None, ("steps = 40", "steps = 0"), "budget.steps"),
    ("bad_type", None, ("beta = 4.0", 'beta = "big"'), "variants[1].beta"),
    ("unknown_hyperparameter", None, ("beta = 4.0", "beta = 4.0\ngamma = 2.0"), "variants[1].gamma"),
    ("bad_dataset_param", None, ("\nsize = 32", "\nsize = 31"), "datasets[0].size"),
    ("burgess_at_32px", None, ('architecture = "mlp"', 'architecture = "burgess"'), "model.architecture"),
]


@pytest.mark.parametrize("case, text, replace, expected", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(write_suite, tmp_path, capsys, case, text, replace, expected):
    if text is None:
        base = tiny_suite_text()
        assert replace[0] in base
        text = base.replace(replace[0], replace[1], 1)
    path = write_suite(text=text)
    out = tmp_path / "out"
    code = main(["run", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and expected in lines[0]
    assert "Traceback" not in err
    assert not out.exists()


def test_missing_suite_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("args, key", [
    (["--jobs", "0"], "--jobs"), (["--executor", "slurm"], "--executor"), (["--device", "tpu"], "--device"),
])
def test_bad_command_line_options(write_suite, capsys, args, key):
    assert main(["run", str(write_suite()), *args]) == 2
    err = capsys.readouterr().err
    assert key in err and len(err.strip().splitlines()) == 1


def test_results_of_a_directory_without_store(tmp_path, capsys):
    assert main(["results", str(tmp_path)]) == 2
    assert "no results store" in capsys.readouterr().err
