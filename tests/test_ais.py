"""AIS, BDMC, the IWAE curve and the AIS rate-distortion curve, against exact answers.

The reference is a linear Gaussian model, p(z) = N(0, I_d), p(x | z) = N(W z + b, sigma^2 I_n),
whose answers are known in closed form and computed here independently of vaebench (scipy, and
float64 linear algebra):

    log p(x) = log N(x; b, W W^T + sigma^2 I)

Rate-distortion (Huang et al. 2020), distortion d(x, z) = -log p(x | z), rate KL(q || p(z)). For
beta >= 0 the optimal encoder is q_beta(z) = p(z) p(x | z)^beta / Z(beta); its log density is
quadratic in z, so it is Gaussian:

    log q_beta(z) = -|z|^2 / 2 - beta |x - b - W z|^2 / (2 sigma^2) + const
    precision  P_beta = I + (beta / sigma^2) W^T W,   covariance S = P_beta^-1
    mean       m = S (beta / sigma^2) W^T (x - b)

    D(beta) = E_q[-log p(x|z)] = (n/2) log(2 pi sigma^2) + (|x - b - W m|^2 + tr(W S W^T)) / (2 sigma^2)
    R(beta) = KL(N(m, S) || N(0, I)) = (tr S + |m|^2 - d - log det S) / 2

and, independently, the log partition function: p(x | z)^beta = (2 pi sigma^2)^(-n beta / 2)
exp(-beta |x - W z - b|^2 / (2 sigma^2)) = (2 pi sigma^2)^(-n beta / 2) (2 pi sigma^2 / beta)^(n / 2)
N(x; W z + b, (sigma^2 / beta) I), so (for beta > 0)

    log Z(beta) = -(n beta / 2) log(2 pi sigma^2) + (n / 2) log(2 pi sigma^2 / beta)
                  + log N(x; b, W W^T + (sigma^2 / beta) I),

and R(beta) = -beta D(beta) - log Z(beta) (the identity AIS uses), with -d log Z / d beta = D(beta).
The tests check these closed forms against each other first, then AIS against them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from vaebench import data
from vaebench.metrics import (
    METRICS,
    EvaluationContext,
    ais_bdmc,
    ais_log_likelihood,
    ais_nll,
    ais_rate_distortion,
    annealing_schedule,
    importance_weighted_nll,
    importance_weighted_nll_curve,
    simulate,
)
from vaebench.metrics.ais import curve_indices, rate_distortion_schedule
from vaebench.metrics.registry import curve_declaration
from vaebench.variants import build_variant

pytestmark = pytest.mark.usefixtures("one_thread")

DATA_DIM, LATENT_DIM, SIGMA = 8, 3, 0.5
# AIS with 1000 distributions (geometric schedule), 1 leapfrog step and 64 chains is within this
# of the exact log p(x) on every image of the linear Gaussian model (the largest error measured
# over two seeds: 0.09 nats; with 16 chains: 0.37)
TOLERANCE = 0.2


class LinearGaussian:
    """p(z) = N(0, I), p(x | z) = N(W z + b, sigma^2 I), float64; a mean-field encoder for IWAE:
    the exact posterior mean and the diagonal Gaussian of the posterior precision's diagonal
    (the best diagonal q by KL(q || posterior)), `var_scale` making it poorer."""

    def __init__(self, seed: int = 0, var_scale: float = 1.0):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(size=(DATA_DIM, LATENT_DIM))
        self.b = rng.normal(size=DATA_DIM)
        self.w, self.bt = torch.tensor(self.W), torch.tensor(self.b)
        precision = np.eye(LATENT_DIM) + self.W.T @ self.W / SIGMA**2
        self.gain = torch.tensor(np.linalg.solve(precision, self.W.T) / SIGMA**2)  # x - b -> posterior mean
        self.logvar = torch.tensor(np.log(var_scale / np.diag(precision)))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        mean = z @ self.w.T + self.bt
        return (-0.5 * ((x - mean) / SIGMA) ** 2 - math.log(SIGMA) - 0.5 * math.log(2 * math.pi)).sum(1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = (x - self.bt) @ self.gain.T
        return mu, self.logvar.expand_as(mu)

    def sample(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, LATENT_DIM))
        x = z @ self.W.T + self.b + SIGMA * rng.normal(size=(n, DATA_DIM))
        return torch.tensor(x), torch.tensor(z)


def exact_log_likelihood(model: LinearGaussian, x: torch.Tensor) -> np.ndarray:
    cov = model.W @ model.W.T + SIGMA**2 * np.eye(DATA_DIM)
    return multivariate_normal(model.b, cov).logpdf(x.numpy())


def exact_rate_distortion(model: LinearGaussian, x: torch.Tensor, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """(rate, distortion) per image at beta, from q_beta's Gaussian form (module docstring)."""
    W, xb = model.W, x.numpy() - model.b
    S = np.linalg.inv(np.eye(LATENT_DIM) + beta / SIGMA**2 * W.T @ W)
    m = xb @ (S @ W.T).T * beta / SIGMA**2  # (N, d)
    resid = ((xb - m @ W.T) ** 2).sum(1)
    distortion = 0.5 * DATA_DIM * math.log(2 * math.pi * SIGMA**2) + (resid + np.trace(W @ S @ W.T)) / (2 * SIGMA**2)
    rate = 0.5 * (np.trace(S) + (m**2).sum(1) - LATENT_DIM - np.linalg.slogdet(S)[1])
    return rate, distortion


def exact_distortion_variance(model: LinearGaussian, x: torch.Tensor, beta: float) -> np.ndarray:
    """Var_{q_beta}[-log p(x|z)] per image: -log p(x|z) = const + |r - W e|^2 / (2 sigma^2) with
    r = x - b - W m and e ~ N(0, S), and Var |r - W e|^2 = 2 tr(M^2) + 4 r^T M r, M = W S W^T."""
    W, xb = model.W, x.numpy() - model.b
    S = np.linalg.inv(np.eye(LATENT_DIM) + beta / SIGMA**2 * W.T @ W)
    m = xb @ (S @ W.T).T * beta / SIGMA**2
    r, M = xb - m @ W.T, W @ S @ W.T
    return (2 * np.trace(M @ M) + 4 * np.einsum("ni,ij,nj->n", r, M, r)) / (4 * SIGMA**4)


def exact_log_partition(model: LinearGaussian, x: torch.Tensor, beta: float) -> np.ndarray:
    """log int p(z) p(x|z)^beta dz (beta > 0), through the marginal of a Gaussian with variance sigma^2 / beta."""
    n, s2 = DATA_DIM, SIGMA**2
    cov = model.W @ model.W.T + s2 / beta * np.eye(n)
    return (-0.5 * n * beta * math.log(2 * math.pi * s2) + 0.5 * n * math.log(2 * math.pi * s2 / beta)
            + multivariate_normal(model.b, cov).logpdf(x.numpy()))


# ---------------------------------------------------------------- the closed forms themselves


@pytest.mark.parametrize("beta", [0.01, 0.3, 1.0, 7.0])
def test_the_closed_forms_agree(beta):
    model = LinearGaussian()
    x, _ = model.sample(5, seed=1)
    rate, distortion = exact_rate_distortion(model, x, beta)
    log_z = exact_log_partition(model, x, beta)
    np.testing.assert_allclose(rate, -beta * distortion - log_z, rtol=1e-9, atol=1e-9)
    h = 1e-5 * beta
    derivative = (exact_log_partition(model, x, beta + h) - exact_log_partition(model, x, beta - h)) / (2 * h)
    np.testing.assert_allclose(-derivative, distortion, rtol=1e-5)
    if beta == 1.0:
        np.testing.assert_allclose(log_z, exact_log_likelihood(model, x), rtol=1e-12)
        np.testing.assert_allclose(rate + distortion, -exact_log_likelihood(model, x), rtol=1e-12)
    assert np.all(rate >= 0)


def test_schedules_run_from_zero_to_one():
    for kind in ("sigmoid", "geometric"):
        betas = annealing_schedule(50, kind)
        assert betas.shape == (51,) and betas[0] == 0.0 and betas[-1] == 1.0 and np.all(np.diff(betas) > 0)
    path = rate_distortion_schedule(50, 100.0)
    assert path.shape == (101,) and path[50] == 1.0 and path[-1] == pytest.approx(100.0) and np.all(np.diff(path) > 0)
    chosen = curve_indices(path, 12)
    assert chosen[0] == 0 and 50 in chosen and chosen[-1] == 100 and chosen == sorted(set(chosen))
    with pytest.raises(ValueError, match="unknown schedule"):
        annealing_schedule(10, "linear")


# ---------------------------------------------------------------- AIS against the exact answers


def test_ais_agrees_with_the_exact_log_likelihood():
    model = LinearGaussian()
    x, _ = model.sample(10, seed=2)
    settings = dict(latent_dim=LATENT_DIM, distributions=1000, leapfrog=1, chains=64)
    estimate = ais_log_likelihood(model, x, **settings)
    assert estimate.shape == (10,) and estimate.dtype == np.float64
    error = estimate - exact_log_likelihood(model, x)
    assert np.max(np.abs(error)) < TOLERANCE, error  # per image
    assert abs(error.mean()) < 0.1, error
    np.testing.assert_array_equal(ais_nll(model, x, **settings), -estimate)


def test_bdmc_brackets_the_exact_log_likelihood_and_closes():
    model = LinearGaussian()
    x, z = model.sample(12, seed=3)  # simulated from the model: z is an exact posterior sample
    exact = exact_log_likelihood(model, x)
    gaps = []
    for distributions in (3, 30, 1000):
        bounds = ais_bdmc(model, x, z, distributions=distributions, leapfrog=1, chains=8, seed=0)
        # stochastic bounds: they hold on average (a single image's may cross, rarely by much),
        # up to Monte Carlo error once they have closed
        assert bounds.lower.mean() <= exact.mean() + 0.05 and bounds.upper.mean() >= exact.mean() - 0.05
        gaps.append(float(bounds.gap.mean()))
    assert gaps[0] > gaps[1] > gaps[2], gaps
    assert bounds.lower.mean() < exact.mean() + 0.05
    assert gaps[0] > 3.0 and abs(gaps[2]) < 0.1, gaps
    # closed: both near the exact value on every image
    assert np.max(np.abs(bounds.lower - exact)) < 0.5 and np.max(np.abs(bounds.upper - exact)) < 0.5


def test_iwae_curve_rises_toward_the_exact_log_likelihood():
    model = LinearGaussian(var_scale=4.0)  # a mean-field encoder, too broad: the K = 1 bound is loose
    x, _ = model.sample(50, seed=4)
    exact = exact_log_likelihood(model, x).mean()
    ks = (1, 10, 100, 1000)
    curve = importance_weighted_nll_curve(model, x, ks=ks, seed=0)
    assert curve.shape == (4, 50)
    gaps = curve.mean(axis=1) + exact  # -log p(x) estimates minus the exact one
    assert gaps[0] > 1.0 and all(a > b for a, b in zip(gaps, gaps[1:])) and -0.02 < gaps[-1] < 0.1, gaps
    # the last row is iwae_nll with the same draws
    np.testing.assert_array_equal(curve[-1], importance_weighted_nll(model, x, k=1000, seed=0))


def test_rate_distortion_curve_matches_the_analytic_one():
    model = LinearGaussian()
    n_images, chains = 10, 16
    x, _ = model.sample(n_images, seed=5)
    settings = dict(latent_dim=LATENT_DIM, distributions=500, leapfrog=1, chains=chains)
    curve = ais_rate_distortion(model, x, beta_max=20.0, points=12, **settings)
    assert curve.rate.shape == curve.distortion.shape == (n_images, len(curve.beta))
    assert curve.beta[0] == 0.0 and curve.beta[-1] == pytest.approx(20.0) and 1.0 in curve.beta
    assert np.all(curve.rate[:, 0] == 0.0)
    for j, beta in enumerate(curve.beta):
        rate, distortion = exact_rate_distortion(model, x, beta)
        # the mean over images and chains of -log p(x|z), z ~ q_beta: within 4 standard errors (from
        # the exact variance) plus a little for the chains' lag behind q_beta
        se = math.sqrt(exact_distortion_variance(model, x, beta).mean() / (n_images * chains))
        assert abs(curve.mean_distortion[j] - distortion.mean()) < 4 * se + 0.05, (beta, j)
        assert abs(curve.mean_rate[j] - rate.mean()) < beta * 4 * se + 0.15, (beta, curve.mean_rate[j], rate.mean())
    one = curve.at(1.0)
    np.testing.assert_allclose(curve.log_partition[:, one], exact_log_likelihood(model, x), atol=0.5)
    # the path up to beta = 1 is ais_nll's, draw for draw
    same = ais_nll(model, x, **settings)
    np.testing.assert_array_equal(-curve.log_partition[:, one], same)


def test_ais_is_seeded_and_deterministic():
    model = LinearGaussian()
    x, _ = model.sample(6, seed=6)
    state = torch.random.get_rng_state()
    kwargs = dict(latent_dim=LATENT_DIM, distributions=20, leapfrog=2, chains=4, chunk=8)
    a = ais_nll(model, x, seed=3, **kwargs)
    b = ais_nll(model, x, seed=3, **kwargs)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, ais_nll(model, x, seed=4, **kwargs))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is untouched
    bounds = ais_bdmc(model, x, x[:, :LATENT_DIM], seed=3, distributions=20, leapfrog=2, chains=4, chunk=8)
    again = ais_bdmc(model, x, x[:, :LATENT_DIM], seed=3, distributions=20, leapfrog=2, chains=4, chunk=8)
    np.testing.assert_array_equal(bounds.lower, again.lower)
    np.testing.assert_array_equal(bounds.upper, again.upper)
    np.testing.assert_array_equal(bounds.lower, -a)  # the forward pass is ais_nll's


def test_bad_arguments_are_refused():
    model = LinearGaussian()
    x, _ = model.sample(2, seed=0)
    with pytest.raises(ValueError, match="chains must be >= 1"):
        ais_nll(model, x, latent_dim=LATENT_DIM, chains=0)
    with pytest.raises(ValueError, match="number of distributions"):
        ais_nll(model, x, latent_dim=LATENT_DIM, distributions=0)
    with pytest.raises(ValueError, match="beta_max"):
        ais_rate_distortion(model, x, latent_dim=LATENT_DIM, beta_max=0.5)


# ---------------------------------------------------------------- vaebench variants


@pytest.mark.parametrize("architecture, dataset_args", [("mlp", {"name": "dsprites", "size": 32, "test_size": 20}),
                                                        ("pixelcnn", {"name": "digits"})])
def test_a_registry_variant_runs_through_ais(architecture, dataset_args):
    dataset = data.get(**dataset_args)
    torch.manual_seed(0)
    model = build_variant("vae", {}, image_shape=dataset.image_shape, latent_dim=3, architecture=architecture,
                          likelihood="bernoulli")
    model.train()
    images = torch.from_numpy(dataset.images(dataset.test_indices[:3]))
    kwargs = dict(latent_dim=3, distributions=8, leapfrog=2, chains=3)
    nll = ais_nll(model, images, **kwargs)
    assert nll.shape == (3,) and np.all(np.isfinite(nll)) and np.all(nll > 0)  # Bernoulli pixels: p(x) <= 1
    assert model.training  # its mode is restored
    curve = ais_rate_distortion(model, images, beta_max=4.0, points=5, **kwargs)
    assert np.all(np.isfinite(curve.rate)) and np.all(np.isfinite(curve.distortion))
    np.testing.assert_array_equal(-curve.log_partition[:, curve.at(1.0)], nll)
    x, z = simulate(model, 2, latent_dim=3, seed=0)
    assert x.shape == (2, *dataset.image_shape) and set(torch.unique(x).tolist()) <= {0.0, 1.0}
    again, _ = simulate(model, 2, latent_dim=3, seed=0)
    assert torch.equal(x, again)
    bounds = ais_bdmc(model, x, z, distributions=8, leapfrog=2, chains=3)
    assert np.all(np.isfinite(bounds.lower)) and np.all(np.isfinite(bounds.upper))


def test_the_metrics_are_opt_in_and_declare_what_they_store():
    for name in ("ais_nll", "ais_bdmc_gap", "ais_rate_distortion", "iwae_curve"):
        assert METRICS.get(name).opt_in and METRICS.get(name).needs_decoder
    assert not METRICS.get("iwae_nll").opt_in
    assert curve_declaration("ais_rd_rate").name == "ais_rate_distortion" and curve_declaration("loss") is None


def test_the_registered_metrics_through_evaluate(tmp_path):
    from vaebench.bench.evaluate import evaluate
    from vaebench.bench.spec import RunResult, RunSpec
    from vaebench.bench.store import ResultsStore
    from vaebench.bench.train import build_model

    metrics = ("neg_elbo", "kl", "iwae_nll", "iwae_curve", "ais_nll", "ais_bdmc_gap", "ais_rate_distortion")
    params = {"ais_distributions": 6, "ais_leapfrog": 1, "ais_chains": 2, "ais_images": 3, "ais_rd_points": 4,
              "ais_rd_beta_max": 3.0, "iwae_k": 100, "iwae_images": 5}
    spec = RunSpec(
        variant="vae", hyperparameters=(), dataset="dsprites", dataset_params=(("size", 32), ("test_size", 30)),
        architecture="mlp", latent_dim=3, likelihood="bernoulli", steps=1, batch_size=8, optimizer="adam",
        learning_rate=1e-3, checkpoint_every=1, log_every=1, seed=0, metrics=metrics,
        metric_params=tuple(sorted(params.items())),
    )
    dataset = data.get("dsprites", size=32, test_size=30)
    torch.manual_seed(0)
    model = build_model(spec, dataset).eval()
    scores = evaluate(model, dataset, spec, device=torch.device("cpu"), cache_dir=tmp_path, grids=False)
    values, notes, curves = scores.values, scores.notes, scores.curves
    assert {"ais_nll", "ais_elbo_gap", "ais_bdmc_gap", "ais_rd_zero_rate_distortion", "ais_posterior_rate",
            "ais_posterior_distortion", "iwae_nll_k1", "iwae_nll_k10", "iwae_nll_k100"} <= set(values)
    assert values["iwae_nll_k100"] == values["iwae_nll"]  # the same draws
    assert values["iwae_nll_k1"] >= values["iwae_nll_k10"] - 1.0
    assert all(math.isfinite(v) for v in values.values())
    assert all(text in notes["ais_nll"] for text in ("6 distributions", "2 chains", "images=3/30"))
    assert "forward" in notes["ais_bdmc_gap"] and "the first 10 of the same draws" in notes["iwae_nll_k10"]
    names = {name for _, name, _ in curves}
    assert names == {"ais_rd_beta", "ais_rd_rate", "ais_rd_distortion"}
    points = sorted({step for step, _, _ in curves})
    assert points == list(range(len(points))) and len(points) >= 3
    beta = {step: v for step, name, v in curves if name == "ais_rd_beta"}
    rate = {step: v for step, name, v in curves if name == "ais_rd_rate"}
    assert beta[0] == 0.0 and rate[0] == 0.0 and beta[points[-1]] == pytest.approx(3.0)
    # a store keeps them beside the training curves
    result = RunResult(spec=spec, status="done", metrics=values, notes=notes, curves=[(0, "loss", 1.0), *curves])
    with ResultsStore(tmp_path / "store") as store:
        store.write_result(result, suite="t", setting="vae")
        stored = store.curves()
    assert set(stored["name"]) == names | {"loss"}


def test_ais_nll_and_the_rate_distortion_curve_share_one_path(tmp_path, monkeypatch):
    """Requested together, the two metrics run one AIS path (ais_nll read off it at beta = 1) and
    give exactly the values each gives alone."""
    from vaebench.bench.evaluate import evaluate
    from vaebench.bench.spec import RunSpec
    from vaebench.bench.train import build_model
    from vaebench.metrics import ais as ais_module

    params = {"ais_distributions": 5, "ais_chains": 2, "ais_images": 3, "ais_rd_points": 4, "ais_rd_beta_max": 3.0}
    dataset = data.get("dsprites", size=32, test_size=30)
    calls = []
    for real in ("ais_nll", "ais_rate_distortion"):
        function = getattr(ais_module, real)
        monkeypatch.setattr(ais_module, real, lambda *a, _f=function, _n=real, **k: calls.append(_n) or _f(*a, **k))

    def scored(metrics):
        spec = RunSpec(
            variant="vae", hyperparameters=(), dataset="dsprites", dataset_params=(("size", 32), ("test_size", 30)),
            architecture="mlp", latent_dim=3, likelihood="bernoulli", steps=1, batch_size=8, optimizer="adam",
            learning_rate=1e-3, checkpoint_every=1, log_every=1, seed=0, metrics=metrics,
            metric_params=tuple(sorted(params.items())),
        )
        torch.manual_seed(0)
        model = build_model(spec, dataset).eval()
        calls.clear()
        scores = evaluate(model, dataset, spec, device=torch.device("cpu"), cache_dir=tmp_path, grids=False)
        return scores.values, scores.notes, scores.curves, list(calls)

    both, both_notes, both_curves, both_calls = scored(("kl", "ais_nll", "ais_rate_distortion"))
    alone_nll, nll_notes, _, nll_calls = scored(("kl", "ais_nll"))
    alone_rd, _, rd_curves, rd_calls = scored(("kl", "ais_rate_distortion"))
    assert both_calls == ["ais_rate_distortion"] and nll_calls == ["ais_nll"] and rd_calls == ["ais_rate_distortion"]
    assert both["ais_nll"] == alone_nll["ais_nll"] and both["ais_elbo_gap"] == alone_nll["ais_elbo_gap"]
    assert both_notes["ais_nll"] == nll_notes["ais_nll"]
    for name in ("ais_rd_zero_rate_distortion", "ais_posterior_rate", "ais_posterior_distortion"):
        assert both[name] == alone_rd[name]
    assert both_curves == rd_curves


def test_a_metric_producing_an_undeclared_curve_fails_the_run(monkeypatch):
    from pathlib import Path

    from vaebench.bench.evaluate import evaluate
    from vaebench.bench.spec import RunSpec
    from vaebench.errors import ContractError
    from vaebench.metrics.registry import MetricInfo, MetricValue

    def compute(ctx: EvaluationContext) -> dict[str, float]:
        ctx.curves.append((0, "bogus_curve", 1.0))
        return {"bogus": 1.0}

    monkeypatch.setitem(METRICS._items, "bogus", MetricInfo("bogus", "information", "t", (MetricValue("bogus", True),),
                                                            compute))
    dataset = data.get("dsprites", size=32, test_size=20)
    model = build_variant("vae", {}, image_shape=dataset.image_shape, latent_dim=2, architecture="mlp",
                          likelihood="bernoulli")
    spec = RunSpec(
        variant="vae", hyperparameters=(), dataset="dsprites", dataset_params=(("size", 32), ("test_size", 20)),
        architecture="mlp", latent_dim=2, likelihood="bernoulli", steps=1, batch_size=8, optimizer="adam",
        learning_rate=1e-3, checkpoint_every=1, log_every=1, seed=0, metrics=("bogus",),
    )
    with pytest.raises(ContractError, match="produced the curve 'bogus_curve', which it does not declare"):
        evaluate(model, dataset, spec, device=torch.device("cpu"), cache_dir=Path("unused"), grids=False)


def test_the_report_draws_the_rate_distortion_and_iwae_curves(tmp_path):
    from test_reports_fixtures import fake_metrics, setting_label, spec_for
    from vaebench.bench.spec import RunResult
    from vaebench.bench.store import ResultsStore
    from vaebench.reports import plots as P
    from vaebench.reports.comparison import Comparison
    from vaebench.reports.report import write_report

    metrics = ("kl", "neg_elbo", "iwae_nll", "iwae_curve", "ais_nll", "ais_rate_distortion")
    with ResultsStore(tmp_path / "run") as store:
        for offset, (variant, hp) in enumerate([("vae", {}), ("beta_vae", {"beta": 4.0})]):
            for seed in (0, 1):
                spec = spec_for(variant, hp, seed, metrics=metrics)
                values = {**fake_metrics(offset, seed), "iwae_nll_k1": 100.0 + offset, "iwae_nll_k10": 97.0 + offset,
                          "iwae_nll_k100": 96.0 + offset, "iwae_nll": 96.0 + offset, "ais_nll": 95.0 + offset,
                          "ais_elbo_gap": 4.5}
                beta = [0.0, 0.01, 0.1, 1.0, 10.0]
                rate = [0.0, 2.0, 8.0, 20.0 - offset, 30.0]
                distortion = [180.0, 150.0, 110.0, 80.0 + offset, 70.0]
                points = [(i, name, v[i]) for i in range(5) for name, v in
                          (("ais_rd_beta", beta), ("ais_rd_rate", rate), ("ais_rd_distortion", distortion))]
                curves = [(s, "loss", 100.0 / s) for s in (10, 20)] + points
                store.write_result(RunResult(spec=spec, status="done", metrics=values, curves=curves, steps_done=100),
                                   suite="s", setting=setting_label(spec))
    written = {p.name for p in write_report(tmp_path / "run", tmp_path / "report")}
    assert {"ais_rate_distortion.png", "ais_rate_distortion.svg", "iwae_curve.png", "training_curves.png"} <= written
    with ResultsStore(tmp_path / "run", create=False) as store:
        curves, wide = store.curves(), Comparison.build(store).per_run()
    (training,) = P.curve_plots(curves, wide)
    titles = {ax.get_title() for ax in training.figure.axes if ax.get_visible()}
    assert titles == {"loss"}  # a metric's curves are not training curves
    (rd,) = P.ais_rate_distortion_plots(curves, wide)
    assert len(rd.figure.axes[0].lines) >= 4 * 4  # per run: the curve, its two marked ends, the model's point
    (iwae,) = P.iwae_curve_plots(wide)
    levels = sorted(line.get_ydata()[0] for line in iwae.figure.axes[0].lines if line.get_linestyle() == "--"
                    and len(line.get_ydata()))
    assert levels == [95.5, 96.5]  # the K = 1 values less the ELBO-to-AIS gap
