"""Data paths naming an environment variable (`${VAEBENCH_DATA}/binarized_mnist`): expanded where
the dataset is built, kept as written in the spec (so a run id is the same on every machine)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from vaebench import data
from vaebench.bench.suite import load_suite
from vaebench.data.data_root import expand_path_variables
from vaebench.errors import ConfigError


def test_expansion():
    env = {"VAEBENCH_DATA": "/data", "X_1": "x"}
    assert expand_path_variables("${VAEBENCH_DATA}/binarized_mnist", env) == "/data/binarized_mnist"
    assert expand_path_variables("$VAEBENCH_DATA/a/$X_1", env) == "/data/a/x"
    assert expand_path_variables("plain/path", env) == "plain/path"
    assert expand_path_variables("~/d", {}) == os.path.expanduser("~/d")


@pytest.mark.parametrize("text, env, message", [
    ("${VAEBENCH_DATA}/b", {}, "names the environment variable VAEBENCH_DATA, which is not set .*--data-root"),
    ("${VAEBENCH_DATA}/b", {"VAEBENCH_DATA": ""}, "VAEBENCH_DATA, which is not set"),
    ("$OTHER/b", {}, "names the environment variable OTHER, which is not set$"),
    ("a/$/b", {}, "a '\\$' must start a variable name"),
    ("${1X}/b", {}, "a '\\$' must start a variable name"),
])
def test_errors_name_the_variable(text, env, message):
    with pytest.raises(ConfigError, match=message) as info:
        expand_path_variables(text, env)
    assert info.value.key == "path"


def test_the_spec_keeps_the_text_and_the_run_id_is_the_same_on_every_machine(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {s: rng.integers(0, 2, (n, 784), dtype=np.uint8) for s, n in (("train", 8), ("valid", 2), ("test", 3))}
    for machine in ("m1", "m2"):
        (tmp_path / machine / "binarized_mnist").mkdir(parents=True)
        np.savez(tmp_path / machine / "binarized_mnist" / "binarized_mnist.npz", **arrays)
    suite = tmp_path / "s.toml"
    suite.write_text('[budget]\nsteps = 2\n[model]\narchitecture = "mlp"\n[[datasets]]\nname = "binarized_mnist"\n'
                     'path = "${VAEBENCH_DATA}/binarized_mnist"\n[[variants]]\nname = "vae"\n')
    ids = []
    for machine in ("m1", "m2"):
        monkeypatch.setenv("VAEBENCH_DATA", str(tmp_path / machine))
        spec = load_suite(suite).specs[0]
        assert dict(spec.dataset_params)["path"] == "${VAEBENCH_DATA}/binarized_mnist"
        ds = data.get(spec.dataset, **dict(spec.dataset_params))
        assert str(ds.path) == str(tmp_path / machine / "binarized_mnist")
        ids.append(spec.run_id)
    assert ids[0] == ids[1]
    monkeypatch.delenv("VAEBENCH_DATA")
    with pytest.raises(ConfigError, match="key 'datasets\\[0\\].path': .*VAEBENCH_DATA, which is not set"):
        load_suite(suite)
