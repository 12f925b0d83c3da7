"""AIS against IWAE at equal decoder evaluations, on a linear Gaussian model with an exact log p(x);
and the cost of `ais_nll` on 100 test images with an mlp and a pixelcnn decoder.

    .venv/bin/python -m pytest benchmarks/bench_ais.py --benchmark-only
    .venv/bin/python benchmarks/bench_ais.py            (prints the table)

The cost benchmark (`test_ais_nll_on_100_test_images`) runs `ais_nll` at its defaults (500
distributions, geometric schedule, 1 leapfrog step, 16 chains and the 2-chain pilot) on 100 test
images, one thread: the VAE with the `mlp` networks on dSprites at 32 px (10 latents), and with the
`pixelcnn` decoder on scikit-learn's digits (10 latents; the information suite's setting). The
models are freshly initialised: the work (1 + 500 x 1 decoder forward and backward passes per
chain, 18 chains per image) does not depend on the weights. `extra_info` holds the seconds per
image, from which a full test split's cost follows.

Model: p(z) = N(0, I_8), p(x | z) = N(W z + b, 0.3^2 I_32), W = U diag(s) V^T with random
orthonormal U, V and singular values s from 0.5 to 10 (geometric), b standard normal: log p(x) =
log N(x; b, W W^T + 0.3^2 I) exactly (scipy). The posterior is Gaussian, narrow (standard
deviations 0.03 to 0.5) and correlated.
IWAE's proposal is the best an amortised diagonal-Gaussian encoder can be: the exact posterior
mean with the variances 1 / diag(posterior precision) (the mean-field optimum of KL(q || p(z|x))).
AIS: the default schedule (geometric), 1 leapfrog step, 16 chains, and as many distributions as
the budget allows.

Decoder evaluations per image: IWAE's K samples cost K forward passes; an AIS chain costs
1 + distributions x leapfrog passes, each forward and backward (a backward pass costs about two
forward ones, so AIS is charged a third of its real cost here; the wall-clock column shows both),
for the 16 chains and the pilot's 2. `extra_info` holds, per budget, both estimators' mean and
largest absolute error (nats) over 20 images simulated from the model, and their wall-clock time.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from vaebench import data
from vaebench.metrics import ais_log_likelihood, ais_nll, importance_weighted_nll
from vaebench.metrics.ais import PILOT_CHAINS
from vaebench.variants import build_variant

DATA_DIM, LATENT_DIM, SIGMA, IMAGES, CHAINS = 32, 8, 0.3, 20, 16
BUDGETS = (1_800, 18_000, 180_000)  # decoder evaluations per image
SINGULAR_VALUES = np.geomspace(0.5, 10.0, LATENT_DIM)  # W's


class LinearGaussian:
    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        u, _ = np.linalg.qr(rng.normal(size=(DATA_DIM, LATENT_DIM)))
        v, _ = np.linalg.qr(rng.normal(size=(LATENT_DIM, LATENT_DIM)))
        self.W = u @ np.diag(SINGULAR_VALUES) @ v.T  # a rotated spectrum: a correlated posterior
        self.b = rng.normal(size=DATA_DIM)
        self.w, self.bt = torch.tensor(self.W), torch.tensor(self.b)
        precision = np.eye(LATENT_DIM) + self.W.T @ self.W / SIGMA**2
        self.gain = torch.tensor(np.linalg.solve(precision, self.W.T) / SIGMA**2)
        self.logvar = torch.tensor(-np.log(np.diag(precision)))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        mean = z @ self.w.T + self.bt
        return (-0.5 * ((x - mean) / SIGMA) ** 2 - math.log(SIGMA) - 0.5 * math.log(2 * math.pi)).sum(1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = (x - self.bt) @ self.gain.T
        return mu, self.logvar.expand_as(mu)

    def sample(self, n: int, seed: int) -> torch.Tensor:
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, LATENT_DIM))
        return torch.tensor(z @ self.W.T + self.b + SIGMA * rng.normal(size=(n, DATA_DIM)))

    def exact(self, x: torch.Tensor) -> np.ndarray:
        return multivariate_normal(self.b, self.W @ self.W.T + SIGMA**2 * np.eye(DATA_DIM)).logpdf(x.numpy())


def ais_distributions(budget: int) -> int:
    """The most distributions (1 leapfrog step) whose chains and pilot fit the budget."""
    return max(1, budget // (CHAINS + PILOT_CHAINS) - 1)


def compare(budget: int) -> dict[str, float]:
    model = LinearGaussian()
    x = model.sample(IMAGES, seed=1)
    exact = model.exact(x)
    started = time.perf_counter()
    iwae = -importance_weighted_nll(model, x, k=budget, seed=0, chunk=65_536)
    iwae_s = time.perf_counter() - started
    started = time.perf_counter()
    distributions = ais_distributions(budget)
    ais = ais_log_likelihood(model, x, latent_dim=LATENT_DIM, distributions=distributions, leapfrog=1, chains=CHAINS,
                             seed=0)
    ais_s = time.perf_counter() - started
    return {
        "budget": budget, "ais_distributions": distributions,
        "iwae_mean_abs_error": float(np.abs(iwae - exact).mean()),
        "iwae_max_abs_error": float(np.abs(iwae - exact).max()),
        "ais_mean_abs_error": float(np.abs(ais - exact).mean()),
        "ais_max_abs_error": float(np.abs(ais - exact).max()),
        "iwae_seconds": iwae_s, "ais_seconds": ais_s,
    }


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("budget", BUDGETS)
def test_ais_against_iwae_at_equal_decoder_evaluations(benchmark, budget):
    benchmark.group = "ais_vs_iwae"
    result = benchmark.pedantic(compare, args=(budget,), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    if budget >= 18_000:  # below, AIS has too few distributions (99) to beat the encoder's proposal
        assert result["ais_mean_abs_error"] < result["iwae_mean_abs_error"], result


COST_IMAGES = 100
COST_MODELS = {"mlp-dsprites32": ("mlp", "dsprites", {"size": 32}), "pixelcnn-digits": ("pixelcnn", "digits", {})}


@pytest.mark.parametrize("name", COST_MODELS)
def test_ais_nll_on_100_test_images(benchmark, name):
    architecture, dataset_name, dataset_params = COST_MODELS[name]
    dataset = data.get(dataset_name, **dataset_params)
    torch.manual_seed(0)
    model = build_variant("vae", {}, image_shape=dataset.image_shape, latent_dim=10, architecture=architecture,
                          likelihood="bernoulli").eval()
    images = torch.from_numpy(dataset.images(dataset.test_indices[:COST_IMAGES]))
    benchmark.group = "ais_nll_cost"
    nll = benchmark.pedantic(ais_nll, args=(model, images), kwargs={"latent_dim": 10, "seed": 0}, rounds=1,
                             iterations=1)
    benchmark.extra_info["seconds_per_image"] = benchmark.stats.stats.max / COST_IMAGES
    benchmark.extra_info["test_images"] = len(dataset.test_indices)
    assert nll.shape == (COST_IMAGES,) and np.isfinite(nll).all()


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(f"{'evaluations':>11} {'T':>6} {'IWAE mean|err|':>15} {'max':>7} {'AIS mean|err|':>14} {'max':>7} "
          f"{'IWAE s':>7} {'AIS s':>7}")
    for b in BUDGETS:
        r = compare(b)
        print(f"{b:>11,} {r['ais_distributions']:>6} {r['iwae_mean_abs_error']:>15.3f} {r['iwae_max_abs_error']:>7.3f} "
              f"{r['ais_mean_abs_error']:>14.3f} {r['ais_max_abs_error']:>7.3f} {r['iwae_seconds']:>7.1f} "
              f"{r['ais_seconds']:>7.1f}", flush=True)
