"""The variants: their shared estimators against closed forms, validation, and short training runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaebench import data
from vaebench.bench.optim import build_optimizers, optimisation_step
from vaebench.errors import ConfigError
from vaebench.variants import VARIANTS, build_variant
from vaebench.variants.aggregate import (
    kl_decomposition,
    log_importance_weights,
    minibatch_mutual_information,
    total_correlation,
)
from vaebench.variants.dip_vae import dip_covariance, dip_penalty
from vaebench.variants.factor_vae import permute_dims
from vaebench.variants.gaussian import kl_to_standard_normal, log_normal, log_standard_normal
from vaebench.variants.iwae import importance_weighted_bound
from vaebench.variants.mmd import kernel_scale, mmd_unbiased

IMAGE_SHAPE = (1, 32, 32)
LATENT = 10


def make(name: str, hparams: dict | None = None, *, architecture: str = "mlp", seed: int = 0):
    """The variant as the harness builds it for a run on 32 px dSprites (hyperparameters that follow from
    the data, such as `dataset_size`, completed from it)."""
    torch.manual_seed(seed)
    return build_variant(
        name,
        VARIANTS.get(name).Hyperparameters.for_dataset(hparams or {}, data.get("dsprites", size=32)).to_dict(),
        image_shape=IMAGE_SHAPE,
        latent_dim=LATENT,
        architecture=architecture,
        likelihood="bernoulli",
    )


@pytest.fixture(scope="module")
def dsprites():
    return data.get("dsprites", size=32)


@pytest.fixture(scope="module")
def batch(dsprites):
    rng = np.random.default_rng(0)
    return torch.from_numpy(dsprites.images(rng.choice(dsprites.train_indices, 32)))


# --- Gaussian formulas, VAE and beta-VAE ------------------------------------------------


def test_analytic_kl_equals_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(16, 5, dtype=torch.float64), torch.randn(16, 5, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p)
    torch.testing.assert_close(kl_to_standard_normal(mu, logvar), expected, rtol=1e-12, atol=1e-12)


def test_beta_vae_with_beta_one_is_the_vae_and_beta_weights_the_kl(batch):
    vae, beta_one = make("vae"), make("beta_vae", {"beta": 1.0})
    for a, b in zip(vae.state_dict().values(), beta_one.state_dict().values()):
        assert torch.equal(a, b)
    torch.manual_seed(1)
    expected = vae.loss(batch, 0)
    torch.manual_seed(1)
    got = beta_one.loss(batch, 0)
    assert torch.equal(got.total, expected.total)
    beta_four = make("beta_vae", {"beta": 4.0})
    torch.manual_seed(1)
    four = beta_four.loss(batch, 0)
    torch.testing.assert_close(four.total, expected.terms["recon"] + 4.0 * expected.terms["kl"])


# --- MMD --------------------------------------------------------------------------------


def _mmd_by_loops(x: torch.Tensor, y: torch.Tensor, kernel: str) -> float:
    c = kernel_scale(x.shape[1])

    def k(a, b):
        sq = float(((a - b) ** 2).sum())
        return c / (c + sq) if kernel == "imq" else math.exp(-sq / c)

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_matches_a_double_loop(kernel):
    torch.manual_seed(0)
    x = torch.randn(7, 3, dtype=torch.float64)
    y = 0.5 + 1.5 * torch.randn(9, 3, dtype=torch.float64)
    assert float(mmd_unbiased(x, y, kernel)) == pytest.approx(_mmd_by_loops(x, y, kernel), rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_is_unbiased_for_samples_of_one_distribution(kernel):
    """Over many draws of two small samples from N(0, I), the U-statistic averages to 0
    (within 4 standard errors), while the biased V-statistic (diagonal kept) is clearly > 0."""
    torch.manual_seed(0)
    draws, n, d = 2000, 8, 2
    x, y = torch.randn(draws, n, d, dtype=torch.float64), torch.randn(draws, n, d, dtype=torch.float64)
    u = torch.stack([mmd_unbiased(x[i], y[i], kernel) for i in range(draws)])
    c = kernel_scale(d)

    def k(a, b):
        sq = (a.unsqueeze(2) - b.unsqueeze(1)).pow(2).sum(-1)
        return c / (c + sq) if kernel == "imq" else torch.exp(-sq / c)

    v = k(x, x).mean((1, 2)) + k(y, y).mean((1, 2)) - 2 * k(x, y).mean((1, 2))
    se = float(u.std()) / math.sqrt(draws)
    assert abs(float(u.mean())) < 4 * se
    assert float(v.mean()) > 20 * se


def test_mmd_separates_different_distributions():
    torch.manual_seed(0)
    x = torch.randn(500, 4)
    same = float(mmd_unbiased(x, torch.randn(500, 4), "imq"))
    shifted = float(mmd_unbiased(x, torch.randn(500, 4) + 1.0, "imq"))
    assert shifted > 10 * abs(same)


# --- aggregated-posterior estimators -----------------------------------------------------


def test_mss_weights_sit_on_each_codes_own_image_and_rows_sum_to_one():
    b, n = 6, 1000
    w = log_importance_weights(b, "mss", n, dtype=torch.float64).exp()
    m = b - 1
    torch.testing.assert_close(w.sum(1), torch.ones(b, dtype=torch.float64))
    torch.testing.assert_close(w.diagonal(), torch.full((b,), 1.0 / n, dtype=torch.float64))
    for i in range(b):
        assert float(w[i, (i + 1) % b]) == pytest.approx((n - m) / (n * m))
        others = [j for j in range(b) if j not in (i, (i + 1) % b)]
        torch.testing.assert_close(w[i, others], torch.full((b - 2,), 1.0 / m, dtype=torch.float64))
    mws = log_importance_weights(b, "mws", n, dtype=torch.float64)
    torch.testing.assert_close(mws, torch.full((b, b), -math.log(n * b), dtype=torch.float64))


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_kl_decomposition_sums_to_the_monte_carlo_kl(estimator):
    torch.manual_seed(0)
    mu, logvar = torch.randn(50, 4, dtype=torch.float64), 0.3 * torch.randn(50, 4, dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    parts = kl_decomposition(z, mu, logvar, estimator, 10000)
    mc_kl = (log_normal(z, mu, logvar) - log_standard_normal(z)).sum(1).mean()
    torch.testing.assert_close(parts["mi"] + parts["tc"] + parts["dim_kl"], mc_kl)


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_total_correlation_converges_to_the_gaussian_closed_form(estimator):
    """Posteriors q(z|n) = N(mu_n, s^2 I) with mu_n ~ N(0, Sigma - s^2 I): the aggregated
    posterior is exactly N(0, Sigma), whose TC is 0.5 (sum_i log Sigma_ii - log det Sigma)
    = 0.367 nats. The dataset is large (N = 1e6, a fresh mu per image), so the estimate must
    approach the closed form as B grows; tolerance 4 / sqrt(B) (about 4 standard errors of
    the per-code average). MWS is compared after removing its documented constant (D-1) log N."""
    torch.manual_seed(0)
    sigma = torch.tensor([[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]], dtype=torch.float64)
    s2, n, d = 0.2, 10**6, 3
    exact = float(0.5 * (sigma.diagonal().log().sum() - torch.logdet(sigma)))
    chol = torch.linalg.cholesky(sigma - s2 * torch.eye(d, dtype=torch.float64))
    offset = (d - 1) * math.log(n) if estimator == "mws" else 0.0
    for b in (128, 512, 2048):
        mu = torch.randn(b, d, dtype=torch.float64) @ chol.T
        z = mu + math.sqrt(s2) * torch.randn_like(mu)
        tc = float(total_correlation(z, mu, torch.full_like(mu, math.log(s2)), estimator, n)) - offset
        assert abs(tc - exact) < 4 / math.sqrt(b), (b, tc, exact)


def test_minibatch_mutual_information_matches_a_linear_gaussian_encoder():
    """x ~ N(0, I_2), z | x ~ N(A x, s^2 I): I(x; z) = 0.5 log det(I + A A^T / s^2) = 1.087 nats.
    The minibatch estimator is at most log B (7.6 at B = 2048) and biased low; at this B the
    bias is about 0.02 nats and the standard error about 0.02: tolerance 0.08 nats."""
    torch.manual_seed(0)
    a = torch.tensor([[1.0, 0.5], [-0.3, 0.8]], dtype=torch.float64)
    s, b = 0.7, 2048
    exact = float(0.5 * torch.logdet(torch.eye(2, dtype=torch.float64) + a @ a.T / s**2))
    x = torch.randn(b, 2, dtype=torch.float64)
    mu = x @ a.T
    z = mu + s * torch.randn_like(mu)
    estimate = float(minibatch_mutual_information(z, mu, torch.full_like(mu, 2 * math.log(s))))
    assert estimate <= math.log(b)
    assert abs(estimate - exact) < 0.08, (estimate, exact)


# --- IWAE --------------------------------------------------------------------------------


def test_iwae_with_one_sample_is_the_elbo(batch):
    model = make("iwae", {"k": 1})
    torch.manual_seed(3)
    t = model.sample_terms(batch)
    elbo = -t["recon"] - (log_normal(t["z"], t["mu"], t["logvar"]) - log_standard_normal(t["z"])).sum(1)
    torch.manual_seed(3)
    bound = importance_weighted_bound(model, batch, 1)
    assert bound.shape == (batch.shape[0],)
    torch.testing.assert_close(bound, elbo)
    torch.manual_seed(3)
    torch.testing.assert_close(model.loss(batch, 0).total, -elbo.mean())


def test_iwae_bound_is_independent_of_chunking_and_tighter_with_more_samples(batch):
    model = make("iwae")
    with torch.no_grad():
        torch.manual_seed(4)
        whole = importance_weighted_bound(model, batch, 7)
        torch.manual_seed(4)
        chunked = importance_weighted_bound(model, batch, 7, chunk_size=2)
        torch.testing.assert_close(chunked, whole)
        # K samples in sequence are K one-sample bounds: the K-sample bound is their log-mean-exp.
        torch.manual_seed(4)
        singles = torch.stack([importance_weighted_bound(model, batch, 1) for _ in range(7)])
        torch.testing.assert_close(whole, torch.logsumexp(singles, 0) - math.log(7))
        torch.manual_seed(5)
        one = importance_weighted_bound(model, batch, 1)
        torch.manual_seed(5)
        fifty = importance_weighted_bound(model, batch, 50)
    assert float(fifty.mean()) > float(one.mean())


# --- DIP-VAE -----------------------------------------------------------------------------


def test_dip_penalties_vanish_for_identity_covariance():
    torch.manual_seed(0)
    raw = torch.randn(200, 4, dtype=torch.float64)
    centred = raw - raw.mean(0)
    whitened = centred @ torch.linalg.inv(torch.linalg.cholesky(centred.T @ centred / 200)).T
    cov_i = dip_covariance(whitened, torch.zeros_like(whitened), "i")
    torch.testing.assert_close(cov_i, torch.eye(4, dtype=torch.float64))
    assert float(dip_penalty(cov_i, 10.0, 100.0)) < 1e-20
    # Type ii: Cov[mu] = 0.6 I plus posterior variances 0.4 gives Cov_q[z] = I.
    mu = whitened * math.sqrt(0.6)
    logvar = torch.full_like(mu, math.log(0.4))
    assert float(dip_penalty(dip_covariance(mu, logvar, "ii"), 10.0, 10.0)) < 1e-20
    assert float(dip_penalty(dip_covariance(mu, logvar, "i"), 10.0, 10.0)) == pytest.approx(10.0 * 4 * 0.4**2)


def test_dip_penalty_weights_off_diagonal_and_diagonal_terms():
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    assert float(dip_penalty(cov, 3.0, 7.0)) == pytest.approx(3.0 * 2 * 0.25 + 7.0 * 1.0)


def test_dip_vae_lambda_d_factor_defaults_by_type():
    assert make("dip_vae").hparams.lambda_d == 100.0
    assert make("dip_vae", {"type": "ii"}).hparams.lambda_d == 10.0
    assert make("dip_vae", {"type": "ii", "lambda_d_factor": 3}).hparams.lambda_d == 30.0


# --- annealed VAE, InfoVAE / MMD-VAE -------------------------------------------------------


def test_annealed_vae_capacity_schedule_and_loss(batch):
    model = make("annealed_vae", {"c_max": 20.0, "c_stop_steps": 1000, "gamma": 100.0})
    assert [model.capacity(s) for s in (0, 500, 1000, 5000)] == [0.0, 10.0, 20.0, 20.0]
    torch.manual_seed(2)
    losses = model.loss(batch, 250)
    expected = losses.terms["recon"] + 100.0 * (losses.terms["kl"] - 5.0).abs()
    torch.testing.assert_close(losses.total, expected)


def test_mmd_vae_is_info_vae_with_alpha_one(batch):
    info = make("info_vae", {"alpha": 1.0, "lambda_": 500.0})
    mmd = make("mmd_vae", {"lambda_": 500.0, "encoder": "gaussian"})
    torch.manual_seed(6)
    a = info.loss(batch, 0)
    torch.manual_seed(6)
    b = mmd.loss(batch, 0)
    torch.testing.assert_close(a.total, b.total)
    torch.testing.assert_close(b.total, b.terms["recon"] + 500.0 * b.terms["mmd"])


@pytest.mark.parametrize("divergence,term", [("mmd", "mmd"), ("kl", "kl_qz")])
def test_info_vae_weights(batch, divergence, term):
    model = make("info_vae", {"alpha": 0.25, "lambda_": 10.0, "divergence": divergence})
    torch.manual_seed(7)
    losses = model.loss(batch, 0)
    t = losses.terms
    torch.testing.assert_close(losses.total, t["recon"] + 0.75 * t["kl"] + 9.25 * t[term])
    assert float(t[term].detach()) != float(t["kl"].detach())


@pytest.mark.parametrize("cost,term", [("nll", "recon"), ("squared_error", "sq_error")])
def test_wae_cost(batch, cost, term):
    model = make("wae", {"cost": cost, "lambda_": 3.0})
    torch.manual_seed(8)
    losses = model.loss(batch, 0)
    torch.testing.assert_close(losses.total, losses.terms[term] + 3.0 * losses.terms["mmd"])
    with torch.no_grad():
        mean = torch.sigmoid(model.decode(model.encode(batch)[0]))
    torch.testing.assert_close(losses.terms["sq_error"], (batch - mean).pow(2).sum((1, 2, 3)).mean())


# --- adversarial variants ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["aae", "factor_vae"])
def test_adversarial_phases_keep_the_discriminator_apart(batch, name):
    model = make(name, {"discriminator_width": 32})
    phases = {p.name: p for p in model.phases()}
    disc = {id(p) for p in model.discriminator.parameters()}
    auto = {id(p) for p in model.autoencoder_parameters()}
    assert {id(p) for p in phases["model"].parameters} == auto
    assert {id(p) for p in phases["discriminator"].parameters} == disc
    if name == "aae":
        assert {id(p) for p in phases["generator"].parameters} == {id(p) for p in model.encoder.parameters()}
    else:
        assert phases["discriminator"].learning_rate == 1e-4 and phases["discriminator"].betas == (0.5, 0.9)
    # The discriminator's loss does not reach the encoder: its codes are detached.
    model.zero_grad(set_to_none=True)
    phases["discriminator"].loss(batch, 0).total.backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.discriminator.parameters())


def test_permute_dims_shuffles_each_dimension_separately():
    torch.manual_seed(0)
    z = torch.arange(40.0).view(10, 4) + 100 * torch.arange(4.0)
    permuted = permute_dims(z)
    assert torch.equal(permuted.sort(0).values, z.sort(0).values)
    rows_kept = (permuted.unsqueeze(1) == z.unsqueeze(0)).all(-1).any(1)
    assert not rows_kept.all()


# --- hyperparameter validation -------------------------------------------------------------

BAD_HYPERPARAMETERS = [
    ("beta_vae", "beta", -1.0),
    ("annealed_vae", "gamma", -1.0),
    ("annealed_vae", "c_max", -0.5),
    ("annealed_vae", "c_stop_steps", 0),
    ("info_vae", "divergence", "js"),
    ("info_vae", "kernel", "laplace"),
    ("info_vae", "alpha", 2.0),
    ("info_vae", "lambda_", -1.0),
    ("mmd_vae", "lambda_", -1.0),
    ("mmd_vae", "kernel", "linear"),
    ("mi_vae", "gamma", -0.1),
    ("aae", "encoder", "stochastic"),
    ("beta_tcvae", "beta", -6.0),
    ("beta_tcvae", "estimator", "mcmc"),
    ("beta_tcvae", "dataset_size", 0),
    ("factor_vae", "gamma", -35.0),
    ("factor_vae", "discriminator_beta1", 1.0),
    ("dip_vae", "type", "iii"),
    ("dip_vae", "lambda_od", -10.0),
    ("wae", "kernel", "gauss"),
    ("wae", "encoder", "vampprior"),
    ("wae", "cost", "l1"),
    ("wae", "lambda_", -10.0),
    ("iwae", "k", 0),
]


@pytest.mark.parametrize("name,key,value", BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_are_config_errors_naming_the_key(name, key, value):
    with pytest.raises(ConfigError) as err:
        make(name, {key: value})
    assert err.value.key == key
    assert f"'{key}'" in str(err.value)


def test_mss_rejects_a_dataset_smaller_than_the_batch():
    z = torch.zeros(8, 2)
    with pytest.raises(ConfigError, match="dataset_size"):
        total_correlation(z, z, z, "mss", 3)


# --- every variant trains -----------------------------------------------------------------

# Small discriminators keep the run short (the defaults are the papers' 1000-unit layers).
TRAINING_OVERRIDES = {"aae": {"discriminator_width": 128}, "factor_vae": {"discriminator_width": 128}}




@pytest.mark.parametrize("name", VARIANTS.names())
def test_every_variant_trains_on_dsprites(dsprites, name, one_thread):
    """200 Adam steps (lr 1e-3, batches of 64, dSprites 32 px, MLP networks, 10 latents,
    Bernoulli likelihood): every loss stays finite and the reconstruction term (the total
    for iwae) falls: the mean of the last 20 steps is below 0.7 x that of the first 20."""
    model = make(name, TRAINING_OVERRIDES.get(name))
    phases = model.phases()
    optimizers = build_optimizers(phases, "adam", 1e-3)
    rng = np.random.default_rng(0)
    history = []
    for step in range(200):
        x = torch.from_numpy(dsprites.images(rng.choice(dsprites.train_indices, 64)))
        terms = optimisation_step(phases, optimizers, x, step)
        assert all(math.isfinite(float(v)) for v in terms.values()), (step, terms)
        history.append(float(terms["model/recon" if "model/recon" in terms else "model/loss"]))
    assert np.mean(history[-20:]) < 0.7 * np.mean(history[:20])


@pytest.mark.parametrize("name", VARIANTS.names())
def test_every_variant_steps_with_the_conv_networks(batch, name):
    model = make(name, TRAINING_OVERRIDES.get(name), architecture="conv")
    phases = model.phases()
    terms = optimisation_step(phases, build_optimizers(phases, "adam", 1e-3), batch, 0)
    assert terms and all(math.isfinite(float(v)) for v in terms.values())


def test_locatello_network_is_the_studys_table():
    """Locatello et al. 2019, Table 1 (disentanglement_lib's conv_encoder / deconv_decoder), counted
    layer by layer here: (in, out, kernel) of each convolution, then the dense layers."""
    from vaebench.variants.networks import make_decoder, make_encoder

    convs = [(1, 32, 4), (32, 32, 4), (32, 64, 2), (64, 64, 2)]
    encoder_params = sum(i * o * k * k + o for i, o, k in convs) + (1024 * 256 + 256) + (256 * 20 + 20)
    deconvs = [(64, 64), (64, 32), (32, 32), (32, 1)]
    decoder_params = (10 * 256 + 256) + (256 * 1024 + 1024) + sum(i * o * 16 + o for i, o in deconvs)
    encoder, decoder = make_encoder("locatello", (1, 64, 64), 10), make_decoder("locatello", (1, 64, 64), 10)
    assert sum(p.numel() for p in encoder.parameters()) == encoder_params
    assert sum(p.numel() for p in decoder.parameters()) == decoder_params
    x = torch.zeros(2, 1, 64, 64)
    sides = []
    for layer in encoder:
        x = layer(x)
        if isinstance(layer, torch.nn.Conv2d):
            sides.append(x.shape[-1])
    assert sides == [32, 16, 8, 4] and x.shape == (2, 20)
    assert decoder(torch.zeros(2, 10)).shape == (2, 1, 64, 64)
    with pytest.raises(ConfigError, match="'locatello' is defined for 64 px images, got 32 px"):
        make_encoder("locatello", (1, 32, 32), 10)


def test_a_deterministic_encoder_is_evaluated_as_a_point_mass(tmp_path):
    """aae, wae and mmd_vae code z = mu(x): the unused log-variance head must not leak into the
    metrics (it did: sampled codes got unit-variance noise). Sampled codes are the means, and the
    metrics that need a density are not stored."""
    from vaebench.bench.evaluate import evaluate
    from vaebench.bench.seeding import derived_seed
    from vaebench.bench.spec import RunSpec
    from vaebench.bench.train import build_model
    from vaebench.metrics.aggregate_posterior import prior_mmd
    from vaebench.variants.base import encode_in_batches

    dataset = data.get("dsprites", size=32, test_size=300)
    metrics = ("recon_bce", "kl", "neg_elbo", "mi_xz", "elbo_decomposition", "prior_mmd", "active_units")
    values = {}
    for variant in ("aae", "vae"):
        spec = RunSpec(
            variant=variant, hyperparameters=(), dataset="dsprites", dataset_params=(("size", 32), ("test_size", 300)),
            architecture="mlp", latent_dim=4, likelihood="bernoulli", steps=1, batch_size=8, optimizer="adam",
            learning_rate=1e-3, checkpoint_every=1, log_every=1, seed=0, metrics=metrics,
        )
        torch.manual_seed(0)
        model = build_model(spec, dataset).eval()
        values[variant] = evaluate(model, dataset, spec, device=torch.device("cpu"), cache_dir=tmp_path,
                                   grids=False).values
        if variant == "aae":
            images = torch.from_numpy(dataset.images(dataset.test_indices))
            mu, logvar = encode_in_batches(model, images)
            assert torch.isneginf(logvar).all()
            with torch.no_grad():
                x_hat = model.likelihood.mean(model.decode(mu.float()))
            bce = torch.nn.functional.binary_cross_entropy(x_hat.double(), images.double(), reduction="none")
            assert values["aae"]["recon_bce"] == pytest.approx(float(bce.sum((1, 2, 3)).mean()), rel=1e-5)
            # prior_mmd compares the codes themselves, the means, with the prior
            seed = derived_seed(0, "evaluate")
            assert values["aae"]["prior_mmd"] == pytest.approx(prior_mmd(mu.numpy(), seed=seed), rel=1e-9)
    assert set(values["aae"]) == {"recon_bce", "prior_mmd", "active_units"}
    assert {"kl", "neg_elbo", "mi_xz", "tc"} <= set(values["vae"])
