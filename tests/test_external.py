"""`vaebench evaluate`: a model trained elsewhere, scored into the same store as a suite's runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import ONE_VAE, tiny_suite_text
from vaebench.api import load_model, load_results
from vaebench.bench.executors import InProcessExecutor
from vaebench.bench.runner import run_suite
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import load_suite
from vaebench.cli import main

METRICS = '["recon_mse", "recon_bce", "neg_elbo", "kl", "active_units", "mi_xz"]'


class Exported(nn.Module):
    """A harness-trained VAE's networks as a TorchScript module with encode and decode methods."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module | None):
        super().__init__()
        self.encoder = encoder
        if decoder is not None:
            self.decoder = decoder

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]


class ExportedWithDecoder(Exported):
    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_torchscript_model_scores_as_the_harness_did(write_suite, tmp_path, capsys):
    text = tiny_suite_text(steps=10, checkpoint_every=5, variants=ONE_VAE, metrics=METRICS)
    suite = load_suite(write_suite(text))
    out = tmp_path / "run"
    run_suite(suite, out, InProcessExecutor(), threads=1)
    trained = load_results(out).iloc[0]
    model = load_model(out, trained["run_id"])
    scripted = torch.jit.script(ExportedWithDecoder(model.encoder, model.decoder))
    scripted.save(str(tmp_path / "mine.pt"))

    assert main(["evaluate", str(tmp_path / "mine.pt"), "--dataset", "dsprites", "--param", "size=32",
                 "--param", "test_size=200", "--metrics", "recon_mse,recon_bce,neg_elbo,kl,active_units,mi_xz",
                 "--out", str(out), "--name", "my_vae"]) == 0
    frame = load_results(out)
    external = frame[frame["variant"] == "external"].iloc[0]
    for name in ("recon_mse", "recon_bce", "neg_elbo", "kl", "active_units", "mi_xz"):
        assert external[name] == trained[name], name  # the same weights, seed and data give the same numbers
    capsys.readouterr()
    assert main(["results", str(out), "--metrics", "kl,neg_elbo"]) == 0
    table = capsys.readouterr().out
    assert "external(my_vae)" in table and "vae" in table


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_encoder_only_model_scores_what_it_can_and_skips_the_rest(tmp_path, capsys):
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 8))
    torch.jit.script(Exported(encoder, None)).save(str(tmp_path / "encoder.pt"))
    out = tmp_path / "run"
    assert main(["evaluate", str(tmp_path / "encoder.pt"), "--dataset", "dsprites", "--param", "size=32",
                 "--param", "test_size=500", "--metrics", "mig,kl,active_units,recon_bce,fid", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipped recon_bce: needs a decoder" in printed and "skipped fid: needs a decoder" in printed
    with ResultsStore(out, create=False) as store:
        names = set(store.metrics()["name"])
        assert {"mig", "kl", "active_units"} <= names and not {"recon_bce", "fid"} & names
        assert store.artifacts() == {}  # no decoder, no image grids


def test_a_model_that_is_not_torchscript_is_one_line(tmp_path, capsys):
    (tmp_path / "nope.pt").write_bytes(b"not a model")
    assert main(["evaluate", str(tmp_path / "nope.pt"), "--dataset", "digits", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a TorchScript module" in err[0]
