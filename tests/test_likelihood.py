"""iwae_nll: the importance-weighted estimate on a linear-Gaussian model with a known likelihood."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from vaebench.metrics import METRICS, EvaluationContext
from vaebench.metrics.likelihood import importance_weighted_nll  # also registers iwae_nll
from vaebench.variants.likelihoods import Gaussian

DATA_DIM, LATENT_DIM, SIGMA = 8, 3, 0.5


class PPCA:
    """Probabilistic PCA: z ~ N(0, I), x = W z + b + N(0, sigma^2 I), with orthogonal columns of W.

    W = U diag(s) makes the exact posterior diagonal: q(z|x) = N(M^-1 W^T (x - b), sigma^2 M^-1),
    M = W^T W + sigma^2 I = diag(s^2 + sigma^2). `mean_scale` / `var_scale` != 1 give a poorer encoder.
    """

    def __init__(self, seed: int = 0, mean_scale: float = 1.0, var_scale: float = 1.0):
        rng = np.random.default_rng(seed)
        u, _ = np.linalg.qr(rng.normal(size=(DATA_DIM, LATENT_DIM)))
        self.W = torch.tensor(u * np.array([2.0, 1.5, 1.0]), dtype=torch.float64)
        self.b = torch.tensor(rng.normal(size=DATA_DIM), dtype=torch.float64)
        self.likelihood = Gaussian(SIGMA)
        s2 = (self.W**2).sum(0)
        self.post_gain = (self.W / (s2 + SIGMA**2)).T  # M^-1 W^T, (q, d)
        self.post_logvar = torch.log(SIGMA**2 / (s2 + SIGMA**2) * var_scale)
        self.mean_scale = mean_scale

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.mean_scale * (x - self.b) @ self.post_gain.T
        return mu, self.post_logvar.expand_as(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W.T + self.b

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.likelihood.log_prob(x, self.decode(z))

    def sample(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, LATENT_DIM, generator=g, dtype=torch.float64)
        return self.decode(z) + SIGMA * torch.randn(n, DATA_DIM, generator=g, dtype=torch.float64)

    def exact_nll(self, x: torch.Tensor) -> np.ndarray:
        cov = (self.W @ self.W.T).numpy() + SIGMA**2 * np.eye(DATA_DIM)
        return -multivariate_normal(self.b.numpy(), cov).logpdf(x.numpy())


def test_exact_posterior_gives_the_exact_likelihood():
    model = PPCA()
    x = model.sample(100, seed=1)
    estimate = importance_weighted_nll(model, x, k=1000, seed=0)
    assert estimate.shape == (100,)
    assert np.max(np.abs(estimate - model.exact_nll(x))) < 0.05 * DATA_DIM


def test_poor_encoder_tightens_with_k():
    x = PPCA().sample(200, seed=2)
    exact = PPCA().exact_nll(x).mean()
    poor = PPCA(mean_scale=0.6, var_scale=3.0)
    gaps = [importance_weighted_nll(poor, x, k=k, seed=0).mean() - exact for k in (1, 10, 100, 1000)]
    assert gaps[0] > 1.0  # the single-sample bound is loose for this encoder
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps
    assert -0.02 < gaps[-1] < 0.1 * gaps[0], gaps


def test_chunk_size_bounds_memory_without_biasing_the_estimate():
    model = PPCA(mean_scale=0.9, var_scale=1.5)
    x = model.sample(20, seed=3)
    whole = importance_weighted_nll(model, x, k=300, chunk=10_000, seed=5)  # all images at once
    one_image = importance_weighted_nll(model, x, k=300, chunk=64, seed=5)  # one image, 64 samples per round
    # other draws, the same estimate up to Monte Carlo error (about 0.03 nats per image here)
    assert np.max(np.abs(whole - one_image)) < 0.15
    assert abs(whole.mean() - one_image.mean()) < 0.03


def test_seeded_and_independent_of_the_global_rng():
    model = PPCA(mean_scale=0.8, var_scale=2.0)
    x = model.sample(10, seed=4)
    torch.manual_seed(123)
    a = importance_weighted_nll(model, x, k=50, seed=7)
    state = torch.get_rng_state()
    b = importance_weighted_nll(model, x, k=50, seed=7)
    assert torch.equal(state, torch.get_rng_state())
    assert np.array_equal(a, b)
    assert not np.array_equal(a, importance_weighted_nll(model, x, k=50, seed=8))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k must be"):
        importance_weighted_nll(PPCA(), PPCA().sample(2, 0), k=0)


def _context(model: PPCA, x: torch.Tensor, params: dict, tmp_path) -> EvaluationContext:
    n = len(x)
    return EvaluationContext(
        model=model, dataset=None, test_indices=np.arange(n), test_images=x, mu=np.zeros((n, LATENT_DIM)),
        logvar=np.zeros((n, LATENT_DIM)), factors=None, seed=0, device=torch.device("cpu"), cache_dir=tmp_path,
        params=params,
    )


def test_registered_metric_uses_params(tmp_path):
    model = PPCA()
    x = model.sample(50, seed=6)
    info = METRICS.get("iwae_nll")
    assert not info.higher_is_better
    ctx = _context(model, x, {"iwae_k": 20, "iwae_images": 50}, tmp_path)
    values = info.compute(ctx)
    assert set(values) == {"iwae_nll"}
    assert abs(values["iwae_nll"] - model.exact_nll(x).mean()) < 1e-6
    assert ctx.notes["iwae_nll"] == "k=20, images=50/50"
    subset = _context(model, x, {"iwae_k": 20, "iwae_images": 30}, tmp_path)
    info.compute(subset)
    assert subset.notes["iwae_nll"] == "k=20, images=30/50"


class Float32PPCA(PPCA):
    """The same model in float32 (a network's dtype), with a poorer encoder so the weights spread."""

    def __init__(self):
        super().__init__(seed=3, mean_scale=0.7, var_scale=2.5)
        self.W, self.b = self.W.float(), self.b.float()
        self.post_gain, self.post_logvar = self.post_gain.float(), self.post_logvar.float()


def test_float64_logsumexp_against_scipy():
    from scipy.special import logsumexp

    from vaebench.variants.gaussian import log_normal, log_standard_normal

    model = Float32PPCA()
    x = PPCA(seed=3).sample(6, seed=9).float()
    k = 5000
    got = importance_weighted_nll(model, x, k=k, chunk=k * 6, seed=11, float64_logsumexp=True)
    # independently: the same draws (one round of k samples of all 6 images from the seeded generator),
    # the float32 log-weights, then scipy's log-sum-exp in float64
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        mu, logvar = model.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn((k, *mu.shape), dtype=mu.dtype)
    log_px_z = model.log_likelihood(x.expand(k, *x.shape).reshape(k * 6, -1), z.reshape(k * 6, -1)).view(k, 6)
    log_w = (log_px_z + log_standard_normal(z).sum(-1) - log_normal(z, mu, logvar).sum(-1)).numpy().astype(np.float64)
    expected = -(logsumexp(log_w, axis=0) - np.log(k))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    in_float32 = importance_weighted_nll(model, x, k=k, chunk=k * 6, seed=11)
    assert np.max(np.abs(in_float32 - expected)) < 1e-3  # the same estimate, rounded in float32


def test_the_whole_split_in_float64_when_asked(tmp_path):
    model = Float32PPCA()
    x = PPCA(seed=3).sample(40, seed=6).float()
    ctx = _context(model, x, {"iwae_k": 30, "iwae_images": 40, "iwae_float64": True}, tmp_path)
    value = METRICS.get("iwae_nll").compute(ctx)["iwae_nll"]
    assert ctx.notes["iwae_nll"] == "k=30, images=40/40, float64 log-sum-exp"
    assert value == importance_weighted_nll(model, x, k=30, seed=0, float64_logsumexp=True).mean()
