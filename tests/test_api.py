"""The documented Python API: vaebench.run, load_results, load_model."""

from __future__ import annotations

import tomllib

import torch

import vaebench
from helpers import tiny_suite_text
from vaebench.bench.store import ResultsStore


def test_run_a_suite_given_as_a_dict_and_load_everything(tmp_path):
    table = tomllib.loads(tiny_suite_text(steps=6, checkpoint_every=3))
    frame = vaebench.run(table, out=tmp_path / "run")
    assert len(frame) == 2 and set(frame["variant"]) == {"vae", "beta_vae"}
    assert {"hyperparameters.beta", "dataset_params.size", "kl", "recon_bce", "kl_dim_0"} <= set(frame.columns)
    assert frame.equals(vaebench.load_results(tmp_path / "run"))
    with ResultsStore(tmp_path / "run", create=False) as store:
        stored = store.metrics()
    row = frame[frame["variant"] == "vae"].iloc[0]
    assert row["kl"] == stored[(stored["run_id"] == row["run_id"]) & (stored["name"] == "kl")]["value"].item()

    model = vaebench.load_model(tmp_path / "run", row["run_id"])
    state = torch.load(tmp_path / "run" / "models" / f"{row['run_id']}.pt", weights_only=True)
    assert not model.training and all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    again = vaebench.run(table, out=tmp_path / "run")  # nothing new to train: the same frame
    assert again.equals(frame)
