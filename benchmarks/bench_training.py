"""Training throughput: the harness's loop against a bare PyTorch loop of the same network, batch and optimizer.

Run: .venv/bin/python -m pytest benchmarks/bench_training.py --benchmark-only
The harness draws and renders each batch from the dataset, checks every loss for
divergence, logs curves and writes checkpoints; the bare loop indexes a pre-rendered
tensor. Both train `STEPS` steps per round, with the quick suite's logging and checkpoint
intervals (every 50 and 250 steps); the README reports the ratio of their means.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaebench import data
from vaebench.bench.suite import RunSpec
from vaebench.bench.train import Trainer, build_model

STEPS = 250
ARCHITECTURES = {"conv32": ("conv", 32), "mlp32": ("mlp", 32)}


def _spec(architecture: str, size: int) -> RunSpec:
    return RunSpec(
        variant="vae", hyperparameters=(), dataset="dsprites", dataset_params=(("size", size),),
        architecture=architecture, latent_dim=10, likelihood="bernoulli", steps=STEPS, batch_size=64,
        optimizer="adam", learning_rate=1e-4, checkpoint_every=250, log_every=50, seed=0, metrics=(),
    )


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_harness_loop(benchmark, tmp_path, name):
    spec = _spec(*ARCHITECTURES[name])
    dataset = data.get("dsprites", size=spec.dataset_params[0][1])
    trainer = Trainer(spec, dataset, torch.device("cpu"))

    def run():
        trainer.step = 0
        trainer.train(tmp_path / "ckpt.pt", None)

    benchmark.group = f"training {name}"
    benchmark.extra_info["steps"] = STEPS
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_bare_pytorch_loop(benchmark, name):
    spec = _spec(*ARCHITECTURES[name])
    dataset = data.get("dsprites", size=spec.dataset_params[0][1])
    torch.manual_seed(0)
    model = build_model(spec, dataset)
    pool = torch.from_numpy(dataset.images(dataset.train_indices[:4096]))
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    rng = np.random.default_rng(0)

    def run():
        for _ in range(STEPS):
            x = pool[torch.from_numpy(rng.integers(0, len(pool), spec.batch_size))]
            optimizer.zero_grad()
            model.loss(x, 0).total.backward()
            optimizer.step()

    benchmark.group = f"training {name}"
    benchmark.extra_info["steps"] = STEPS
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
