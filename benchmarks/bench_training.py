"""Training throughput: the harness's loop against a bare PyTorch loop of the same network, batch and optimizer.

Run: .venv/bin/python -m pytest benchmarks/bench_training.py --benchmark-only
The harness draws each batch from the dataset materialised in the run directory's cache (as
a suite's runs do once the cache is built: the build is timed in bench_data.py), checks every
loss for divergence, logs curves every 50 steps and writes a checkpoint every 500 steps and at
the end of a round; the bare loop indexes a pre-rendered tensor. Both train `STEPS[name]` steps
per round: 500 (one checkpoint per round), and 50 for the 64 px network of Locatello et
al. 2019 (`locatello`), whose steps take about a second on this 2-core CPU (a checkpoint every 50 steps:
ten times the suites' rate, so its ratio errs against the harness). The README reports the
median of the interleaved rounds' ratios.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from vaebench import data
from vaebench.bench.suite import RunSpec
from vaebench.bench.train import Trainer, build_model

ARCHITECTURES = {"conv32": ("conv", 32), "mlp32": ("mlp", 32), "locatello64": ("locatello", 64)}
STEPS = {"conv32": 500, "mlp32": 500, "locatello64": 50}
CHECKPOINT_EVERY, LOG_EVERY = 500, 50


def _spec(name: str) -> RunSpec:
    architecture, size = ARCHITECTURES[name]
    return RunSpec(
        variant="vae", hyperparameters=(), dataset="dsprites", dataset_params=(("size", size),),
        architecture=architecture, latent_dim=10, likelihood="bernoulli", steps=STEPS[name], batch_size=64,
        optimizer="adam", learning_rate=1e-4, checkpoint_every=CHECKPOINT_EVERY, log_every=LOG_EVERY, seed=0,
        metrics=(),
    )


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One run directory's cache for the module: each size's masks are built once, as in a suite."""
    return tmp_path_factory.mktemp("cache")


def _materialised(name: str, cache_dir):
    dataset = data.get("dsprites", size=ARCHITECTURES[name][1])
    return dataset.materialised(cache_dir, images_to_draw=len(dataset))


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_harness_loop(benchmark, tmp_path, cache_dir, name):
    benchmark.group = f"training {name}"
    benchmark.extra_info["steps"] = STEPS[name]
    benchmark.pedantic(_harness_loop(name, tmp_path / "ckpt.pt", cache_dir), rounds=3, iterations=1, warmup_rounds=1)


def _bare_loop(name: str):
    """A plain PyTorch loop over a pre-rendered pool: the same network, batch and optimizer."""
    spec = _spec(name)
    dataset = data.get("dsprites", size=ARCHITECTURES[name][1])
    torch.manual_seed(0)
    model = build_model(spec, dataset)
    pool = torch.from_numpy(dataset.images(dataset.train_indices[:4096]))
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    rng = np.random.default_rng(0)

    def run():
        for _ in range(spec.steps):
            x = pool[torch.from_numpy(rng.integers(0, len(pool), spec.batch_size))]
            optimizer.zero_grad()
            model.loss(x, 0).total.backward()
            optimizer.step()

    return run


def _harness_loop(name: str, checkpoint, cache_dir):
    trainer = Trainer(_spec(name), _materialised(name, cache_dir), torch.device("cpu"))

    def run():
        trainer.step = 0
        trainer.train(checkpoint, None)

    return run


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_bare_pytorch_loop(benchmark, name):
    benchmark.group = f"training {name}"
    benchmark.extra_info["steps"] = STEPS[name]
    benchmark.pedantic(_bare_loop(name), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_harness_to_bare_ratio_interleaved(benchmark, tmp_path, cache_dir, name):
    """Harness and bare loop alternated round by round, so drift of the machine's speed hits
    both alike; extra_info holds each round's ratio and their median."""
    harness, bare = _harness_loop(name, tmp_path / "ckpt.pt", cache_dir), _bare_loop(name)
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
    benchmark.extra_info["steps_per_round"] = STEPS[name]
    print(f"\n{name}: harness / bare per round {np.round(ratios, 3).tolist()}, median {np.median(ratios):.3f}, "
          f"quartiles {np.quantile(ratios, 0.25):.3f} to {np.quantile(ratios, 0.75):.3f}")
