"""Training throughput: the harness's loop against a bare PyTorch loop of the same network, batch and optimizer.

Run: .venv/bin/python -m pytest benchmarks/bench_training.py --benchmark-only
The harness draws and renders each batch from the dataset, checks every loss for
divergence, logs curves and writes checkpoints; the bare loop indexes a pre-rendered
tensor. Both train `STEPS` steps per round, with the quick suite's logging and checkpoint
intervals (every 50 and 250 steps); the README reports the ratio of their means.
"""

from __future__ import annotations

import time

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
    benchmark.group = f"training {name}"
    benchmark.extra_info["steps"] = STEPS
    benchmark.pedantic(_harness_loop(name, tmp_path / "ckpt.pt"), rounds=3, iterations=1, warmup_rounds=1)


def _bare_loop(name: str):
    """A plain PyTorch loop over a pre-rendered pool: the same network, batch and optimizer."""
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

    return run


def _harness_loop(name: str, checkpoint):
    spec = _spec(*ARCHITECTURES[name])
    trainer = Trainer(spec, data.get("dsprites", size=spec.dataset_params[0][1]), torch.device("cpu"))

    def run():
        trainer.step = 0
        trainer.train(checkpoint, None)

    return run


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_bare_pytorch_loop(benchmark, name):
    benchmark.group = f"training {name}"
    benchmark.extra_info["steps"] = STEPS
    benchmark.pedantic(_bare_loop(name), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_harness_to_bare_ratio_interleaved(benchmark, tmp_path, name):
    """Harness and bare loop alternated round by round, so drift of the machine's speed hits
    both alike; extra_info holds each round's ratio and their median."""
    harness, bare = _harness_loop(name, tmp_path / "ckpt.pt"), _bare_loop(name)
    harness(), bare()  # warm-up
    ratios: list[float] = []

    def pair():
        started = time.perf_counter()
        harness()
        middle = time.perf_counter()
        bare()
        ratios.append((middle - started) / (time.perf_counter() - middle))

    benchmark.group = f"ratio {name}"
    benchmark.pedantic(pair, rounds=7, iterations=1)
    benchmark.extra_info["ratios"] = [round(r, 4) for r in ratios]
    benchmark.extra_info["median_ratio"] = float(np.median(ratios))
    print(f"\n{name}: harness / bare per round {np.round(ratios, 3).tolist()}, median {np.median(ratios):.3f}")
