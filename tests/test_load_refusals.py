"""Refuse at load, not after training, and never a traceback: every grid is counted before it is
expanded, every metric and variant states what it needs and is checked when the suite loads,
`vaebench evaluate` takes a suite's validation path, and sizes are compared with limits before
anything is allocated."""

from __future__ import annotations

import pytest

from vaebench.bench import suite as suite_module
from vaebench.cli import main

from conftest import tiny_suite_text

ONE_VAE = '[[variants]]\nname = "vae"\n'


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("vaebench: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


# ---------------------------------------------------------------- grids are counted before they are expanded


def test_a_model_grid_is_counted_before_it_is_expanded_and_names_its_key(write_suite, capsys, monkeypatch):
    checked = []
    real = suite_module.check_params

    def counting(*args, **kwargs):
        checked.append(1)
        if len(checked) > 1000:
            raise AssertionError("the [model] grid is being expanded before it is counted")
        return real(*args, **kwargs)

    monkeypatch.setattr(suite_module, "check_params", counting)
    dims = ", ".join(str(d) for d in range(1, 10_001))
    text = tiny_suite_text(variants=ONE_VAE).replace("latent_dim = 4", f"latent_dim = [{dims}]")
    text = text.replace('architecture = "mlp"', "architecture = [" + ", ".join(['"mlp"'] * 10_000) + "]")
    assert main(["run", str(write_suite(text)), "--dry-run"]) == 2
    line = _one_error_line(capsys)
    assert "key 'model.latent_dim'" in line or "key 'model.architecture'" in line
    assert "100,000,000 runs (1 seeds x 100,000,000 [model] settings x 1 datasets x 1 variant settings)" in line


@pytest.mark.parametrize("edit, key", [
    (lambda t: t.replace("latent_dim = 4", "latent_dim = [" + ", ".join(map(str, range(1, 201))) + "]")
     .replace('"mlp"', "[" + ", ".join(['"mlp"'] * 60) + "]"), "model.latent_dim"),
    (lambda t: t.replace("seeds = [0]", "seeds = [" + ", ".join(map(str, range(20_000))) + "]"), "seeds"),
    (lambda t: t.replace('name = "vae"\n', 'name = "beta_vae"\nbeta = [' + ", ".join(map(str, range(1, 20_001)))
                         + "]\n"), "variants[0].beta"),
])
def test_a_grid_beyond_max_runs_names_the_key_at_fault(write_suite, capsys, edit, key):
    assert main(["run", str(write_suite(edit(tiny_suite_text(variants=ONE_VAE)))), "--dry-run"]) == 2
    line = _one_error_line(capsys)
    assert f"key '{key}'" in line and "more than max_runs = 10,000" in line
