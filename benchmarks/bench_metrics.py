"""Metric speed: mi_xz (both bounds, one pass) on 10,000 x 10 and 100,000 x 10 posteriors, the
Frechet distance of 64-d features of 10,000 images, and iwae_nll throughput (K = 1000
importance samples per image).

Run: .venv/bin/python -m pytest benchmarks/bench_metrics.py --benchmark-only
Targets (issues): mi_xz under 1 s at 10,000 and under 30 s at 100,000 codes. `extra_info`
holds images per second for iwae_nll.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaebench import data
from vaebench.metrics.fid import feature_statistics, frechet_distance
from vaebench.metrics.likelihood import importance_weighted_nll
from vaebench.metrics.mutual_information import mutual_information_bounds
from vaebench.variants import build_variant

N, D, FEATURES = 10_000, 10, 64
MI_LARGE = 100_000
IWAE_K, IWAE_IMAGES = 1000, 4
IWAE_MODELS = {"conv64": ("conv", 64), "conv32": ("conv", 32), "mlp32": ("mlp", 32)}


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


def posteriors(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, D)), rng.normal(-2.0, 0.5, size=(n, D))


def test_mi_xz_10000x10(benchmark):
    mu, logvar = posteriors(N)
    benchmark.group = "mi_xz"
    benchmark.extra_info["shape"] = [N, D]
    lower, upper = benchmark.pedantic(mutual_information_bounds, args=(mu, logvar), kwargs={"seed": 0}, rounds=5,
                                      iterations=1, warmup_rounds=1)
    assert 0 < lower <= np.log(N) and lower <= upper


def test_mi_xz_100000x10(benchmark):
    mu, logvar = posteriors(MI_LARGE)
    benchmark.group = "mi_xz"
    benchmark.extra_info["shape"] = [MI_LARGE, D]
    lower, upper = benchmark.pedantic(mutual_information_bounds, args=(mu, logvar), kwargs={"seed": 0}, rounds=3,
                                      iterations=1)
    assert 0 < lower <= np.log(MI_LARGE) and lower <= upper


def test_frechet_distance_64d_10000_images(benchmark):
    rng = np.random.default_rng(0)
    real = rng.normal(size=(N, FEATURES)).astype(np.float32)
    fake = (rng.normal(size=(N, FEATURES)) @ rng.normal(size=(FEATURES, FEATURES)) / 8 + 0.1).astype(np.float32)

    def run() -> float:
        return frechet_distance(*feature_statistics(real), *feature_statistics(fake))

    benchmark.group = "frechet distance"
    benchmark.extra_info["features"] = [N, FEATURES]
    assert benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=1) > 0


@pytest.mark.parametrize("name", IWAE_MODELS)
def test_iwae_nll_throughput(benchmark, name):
    architecture, size = IWAE_MODELS[name]
    dataset = data.get("dsprites", size=size)
    torch.manual_seed(0)
    model = build_variant("vae", {}, image_shape=dataset.image_shape, latent_dim=D, architecture=architecture,
                          likelihood="bernoulli").eval()
    images = torch.from_numpy(dataset.images(dataset.test_indices[:IWAE_IMAGES]))
    benchmark.group = "iwae_nll"
    benchmark.extra_info.update({"k": IWAE_K, "images": IWAE_IMAGES})
    nll = benchmark.pedantic(importance_weighted_nll, args=(model, images), kwargs={"k": IWAE_K, "seed": 0},
                             rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["images_per_second"] = IWAE_IMAGES / benchmark.stats.stats.mean
    assert np.all(np.isfinite(nll))


# pythae's and Burda et al.'s likelihood protocols: the 784-400-40 ReLU VAE of pythae's reproduction,
# K = 200 (pythae) and K = 5,000 (Burda et al.), float64 log-sum-exp; seconds per test image in
# extra_info (x 10,000 for a whole binarised-MNIST test split). One thread, as a run's scoring gets.
PUBLISHED_K = {200: 20, 5000: 2}  # K: images timed


@pytest.mark.parametrize("k", PUBLISHED_K)
def test_iwae_nll_mlp_784_400_40(benchmark, k):
    from vaebench.bench.spec import freeze

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_variant("vae", {}, image_shape=(1, 28, 28), latent_dim=40, architecture="mlp",
                          likelihood="bernoulli", network=freeze({"hidden": (400,)})).eval()
    images = (torch.rand(PUBLISHED_K[k], 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    benchmark.group = "iwae_nll published K"
    nll = benchmark.pedantic(importance_weighted_nll, args=(model, images),
                             kwargs={"k": k, "seed": 0, "float64_logsumexp": True}, rounds=3, iterations=1,
                             warmup_rounds=1)
    per_image = benchmark.stats.stats.median / len(images)
    benchmark.extra_info.update({"k": k, "images": len(images), "seconds_per_image": per_image,
                                 "test_split_10000_minutes": per_image * 10_000 / 60})
    assert np.all(np.isfinite(nll))
