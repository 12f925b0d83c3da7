"""The `mlp` network's declared widths and activation: the published MLPs, canonical options,
the [model] keys, and run ids that do not move for specs written before the options existed."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from torch import nn

from helpers import ONE_VAE, tiny_suite_text
from vaebench.bench.spec import RunSpec
from vaebench.bench.suite import load_suite
from vaebench.bench.train import build_model
from vaebench.errors import ConfigError
from vaebench.variants import build_variant
from vaebench.variants.networks import canonical_network, make_decoder, make_encoder, network_options


def layout(module: nn.Sequential) -> list:
    """[(in, out) for a Linear, the class name otherwise], in order."""
    return [(m.in_features, m.out_features) if isinstance(m, nn.Linear) else type(m).__name__
            for m in module if not isinstance(m, (nn.Flatten, nn.Unflatten))]


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_default_mlp_is_unchanged():
    enc, dec = make_encoder("mlp", (1, 28, 28), 10), make_decoder("mlp", (1, 28, 28), 10)
    assert layout(enc) == [(784, 512), "ReLU", (512, 256), "ReLU", (256, 20)]
    assert layout(dec) == [(10, 256), "ReLU", (256, 512), "ReLU", (512, 784)]
    torch.manual_seed(0)
    default = build_variant("vae", {}, image_shape=(1, 28, 28), latent_dim=10, architecture="mlp",
                            likelihood="bernoulli")
    torch.manual_seed(0)
    spelled = build_variant("vae", {}, image_shape=(1, 28, 28), latent_dim=10, architecture="mlp",
                            likelihood="bernoulli", network={"hidden": (512, 256), "activation": "relu"})
    for (name, a), b in zip(default.state_dict().items(), spelled.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_published_mlps():
    # pythae's reproduction of Rezende & Mohamed's VAE: 784-400-40 ReLU
    enc, dec = (f("mlp", (1, 28, 28), 40, **o) for f, o in zip((make_encoder, make_decoder),
                                                                network_options({"hidden": (400,)})))
    assert layout(enc) == [(784, 400), "ReLU", (400, 80)] and layout(dec) == [(40, 400), "ReLU", (400, 784)]
    assert n_params(enc) == 784 * 400 + 400 + 400 * 80 + 80 and n_params(dec) == 40 * 400 + 400 + 400 * 784 + 784
    # Burda et al. 2016, one stochastic layer: 784-200-200-50 tanh, mirrored
    e, d = network_options({"hidden": (200, 200), "activation": "tanh"})
    enc, dec = make_encoder("mlp", (1, 28, 28), 50, **e), make_decoder("mlp", (1, 28, 28), 50, **d)
    assert layout(enc) == [(784, 200), "Tanh", (200, 200), "Tanh", (200, 100)]
    assert layout(dec) == [(50, 200), "Tanh", (200, 200), "Tanh", (200, 784)]
    # rtqichen/beta-tcvae's dSprites MLP: 4096-1200-1200 ReLU encoder, 1200-1200-1200 tanh decoder
    e, d = network_options({"hidden": (1200, 1200), "decoder_hidden": (1200, 1200, 1200),
                            "decoder_activation": "tanh"})
    enc, dec = make_encoder("mlp", (1, 64, 64), 10, **e), make_decoder("mlp", (1, 64, 64), 10, **d)
    assert layout(enc) == [(4096, 1200), "ReLU", (1200, 1200), "ReLU", (1200, 20)]
    assert layout(dec) == [(10, 1200), "Tanh", (1200, 1200), "Tanh", (1200, 1200), "Tanh", (1200, 4096)]
    assert dec(torch.zeros(3, 10)).shape == (3, 1, 64, 64) and enc(torch.zeros(3, 1, 64, 64)).shape == (3, 20)


@pytest.mark.parametrize("given, canonical", [
    ({}, {}),
    ({"hidden": [512, 256], "activation": "relu"}, {}),
    ({"hidden": [400]}, {"hidden": (400,)}),
    ({"hidden": [400], "decoder_hidden": [400]}, {"hidden": (400,)}),  # the mirror, written out
    ({"hidden": [200, 100], "decoder_hidden": [200, 100]}, {"hidden": (200, 100), "decoder_hidden": (200, 100)}),
    ({"activation": "tanh", "decoder_activation": "tanh"}, {"activation": "tanh"}),
    ({"decoder_activation": "tanh"}, {"decoder_activation": "tanh"}),
    ({"decoder_hidden": [256, 512]}, {}),
])
def test_canonical_options(given, canonical):
    assert canonical_network("mlp", given) == canonical


@pytest.mark.parametrize("architecture, given, key, message", [
    ("mlp", {"width": [3]}, "width", "unknown network option; allowed: hidden, activation"),
    ("mlp", {"hidden": []}, "hidden", "non-empty array"),
    ("mlp", {"hidden": [400, 0]}, "hidden", "integers in 1..65536"),
    ("mlp", {"hidden": [2.5]}, "hidden", "integers"),
    ("mlp", {"hidden": [True]}, "hidden", "integers"),
    ("mlp", {"hidden": 400}, "hidden", "non-empty array"),
    ("mlp", {"decoder_hidden": [1] * 33}, "decoder_hidden", "at most 32"),
    ("mlp", {"activation": "swish"}, "activation", "must be one of 'relu', 'tanh'"),
    ("conv", {"hidden": [400]}, "hidden", "applies to architecture 'mlp' only"),
    ("burgess", {"activation": "relu"}, "activation", "applies to architecture 'mlp' only"),
])
def test_option_errors(architecture, given, key, message):
    with pytest.raises(ConfigError, match=message) as info:
        canonical_network(architecture, given)
    assert info.value.key == key


def _suite(tmp_path, model: str, name: str = "suite.toml"):
    text = tiny_suite_text(variants=ONE_VAE).replace(
        '[model]\narchitecture = "mlp"', f'[model]\narchitecture = "mlp"\n{model}')
    assert model == "" or model in text
    path = tmp_path / name
    path.write_text(text)
    return path


def test_model_keys_in_a_suite(tmp_path):
    plain = load_suite(_suite(tmp_path, "")).specs[0]
    spelled = load_suite(_suite(tmp_path, 'hidden = [512, 256]\nactivation = "relu"', "b.toml")).specs[0]
    assert plain.network == () and spelled == plain and spelled.run_id == plain.run_id
    pythae = load_suite(_suite(tmp_path, "hidden = [400]", "c.toml")).specs[0]
    assert pythae.network == (("hidden", (400,)),) and pythae.run_id != plain.run_id
    as_dict = pythae.to_dict()
    assert as_dict["network"] == {"hidden": [400]}
    back = RunSpec.from_dict(json.loads(pythae.canonical_json()))
    assert back == pythae and back.run_id == pythae.run_id and hash(back) == hash(pythae)
    model = build_model(pythae, type("D", (), {"image_shape": (1, 64, 64)})())
    assert layout(model.encoder)[:2] == [(4096, 400), "ReLU"]
    grid = load_suite(_suite(tmp_path, 'hidden = [[400], [200, 200]]\nactivation = ["relu", "tanh"]', "d.toml"))
    assert sorted(dict(s.network).get("hidden", ()) for s in grid.specs) == [(200, 200), (200, 200), (400,), (400,)]
    assert len({s.run_id for s in grid.specs}) == 4


@pytest.mark.parametrize("model, key, message", [
    ("hidden = [0]", "model.hidden", "integers in 1..65536"),
    ('activation = "swish"', "model.activation", "must be one of"),
    ('hiden = [400]', "model.hiden", "unknown key; allowed: architecture, latent_dim, likelihood, hidden"),
    ("hidden = []", "model.hidden", "non-empty array"),
])
def test_model_key_errors_name_the_file_and_key(tmp_path, model, key, message):
    path = _suite(tmp_path, model)
    with pytest.raises(ConfigError, match=message) as info:
        load_suite(path)
    assert info.value.key == key and info.value.file == str(path)


def test_an_option_for_a_fixed_architecture_is_an_error(tmp_path):
    path = tmp_path / "conv.toml"
    path.write_text(tiny_suite_text().replace('architecture = "mlp"', 'architecture = "conv"\nhidden = [400]'))
    with pytest.raises(ConfigError, match="key 'model.hidden': applies to architecture 'mlp' only"):
        load_suite(path)


LEGACY = {  # a spec as stored before the network options existed (keys and values as the store holds them)
    "variant": "vae", "hyperparameters": {}, "dataset": "dsprites", "dataset_params": {"size": 32},
    "architecture": "mlp", "latent_dim": 3, "likelihood": "bernoulli", "steps": 2, "batch_size": 8,
    "optimizer": "adam", "learning_rate": 0.001, "checkpoint_every": 500, "log_every": 50, "seed": 0,
    "metrics": ["recon_mse"], "metric_params": {},
}


def test_run_ids_of_specs_without_options_are_unchanged():
    spec = RunSpec.from_dict(LEGACY)
    assert spec.network == () and spec.to_dict() == LEGACY
    text = json.dumps(LEGACY, sort_keys=True, separators=(",", ":"))
    assert spec.run_id == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_the_dry_run_calibrates_each_network_apart(tmp_path):
    from vaebench.bench.cost import _calibration_key

    grid = load_suite(_suite(tmp_path, "hidden = [[400], [200, 200]]")).specs
    assert len({_calibration_key(s) for s in grid}) == 2
