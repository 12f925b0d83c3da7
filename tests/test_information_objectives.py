"""The information objectives: MI-VAE's estimators of I(x; z) against a linear-Gaussian channel's
closed form, InfoVAE's published weights, and MMD-VAE's deterministic code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaebench import data
from vaebench.errors import ConfigError
from vaebench.variants import VARIANTS, build_variant
from vaebench.variants.aggregate import minibatch_mutual_information
from vaebench.variants.gaussian import kl_to_standard_normal
from vaebench.variants.mmd import kernel_scale, mmd_unbiased

B, D, N = 64, 10, 10**6  # batch, latents, dataset size


pytestmark = pytest.mark.usefixtures("one_thread")


def channel_batches(target: float, batches: int, seed: int = 0):
    """x ~ N(0, I_D), z | x ~ N(a x, s^2 I) with s = exp(log_s), a set so that I(x; z) = target at
    s = 1: per batch (x, eps), and the closed forms I and dI/dlog s = -D (a^2/s^2) / (1 + a^2/s^2)."""
    a = math.sqrt(math.exp(2 * target / D) - 1)
    g = torch.Generator().manual_seed(seed)
    draws = [(torch.randn(B, D, generator=g, dtype=torch.float64), torch.randn(B, D, generator=g, dtype=torch.float64))
             for _ in range(batches)]
    return a, draws, 0.5 * D * math.log1p(a * a), -D * a * a / (1 + a * a)


def estimates(a: float, draws, weighting: str) -> tuple[float, float]:
    """The mean estimate of I and of its derivative with respect to log s, at s = 1."""
    values, grads = [], []
    for x, eps in draws:
        log_s = torch.zeros((), dtype=torch.float64, requires_grad=True)
        mu = a * x
        z = mu + torch.exp(log_s) * eps
        estimate = minibatch_mutual_information(z, mu, (2 * log_s).expand(B, D), weighting, N)
        (grad,) = torch.autograd.grad(estimate, log_s)
        values.append(estimate.item())
        grads.append(grad.item())
    return float(np.mean(values)), float(np.mean(grads))


def weights_by_hand(weighting: str, b: int, n: int) -> np.ndarray:
    """w_ij of the three weightings, written out (Chen et al. 2018, eq. 5 and appendix C.2)."""
    if weighting == "minibatch":
        return np.full((b, b), 1 / b)
    if weighting == "mws":
        return np.full((b, b), 1 / (n * b))
    m = b - 1
    w = np.full((b, b), 1 / m)
    for i in range(b):
        w[i, (i + 1) % b] = (n - m) / (n * m)
        w[i, i] = 1 / n
    return w


@pytest.mark.parametrize("weighting", ["minibatch", "mss", "mws"])
def test_estimators_match_a_direct_computation(weighting):
    g = torch.Generator().manual_seed(1)
    z, mu = torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randn(8, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(8, 3, generator=g, dtype=torch.float64) * 0.3
    q = torch.distributions.Normal(mu.unsqueeze(0), torch.exp(0.5 * logvar).unsqueeze(0))
    log_q = q.log_prob(z.unsqueeze(1)).sum(-1).numpy()  # [i, j] = log q(z_i | x_j)
    w = weights_by_hand(weighting, 8, 100)
    expected = np.mean([log_q[i, i] - np.log(np.sum(w[i] * np.exp(log_q[i]))) for i in range(8)])
    got = float(minibatch_mutual_information(z, mu, logvar, weighting, 100))
    assert got == pytest.approx(expected, rel=1e-10)


def test_below_log_b_every_estimator_is_close_to_the_closed_form():
    a, draws, exact, _ = channel_batches(1.0, 100)
    assert estimates(a, draws, "minibatch")[0] == pytest.approx(exact, abs=0.05)
    assert estimates(a, draws, "mss")[0] == pytest.approx(exact, abs=0.1)


@pytest.mark.parametrize("target", [6.0, 8.0])
def test_above_log_b_the_minibatch_form_is_capped_and_mss_is_not(target):
    """True I above log B = 4.16: the minibatch estimate stays under log B (3.81 at I = 6, 4.07 at
    I = 8) and its gradient with respect to the posterior scale nearly vanishes (-1.5 and -0.53
    against -7.0 and -8.0); the mss estimate, an upper bound in expectation (8.08 and 11.15),
    exceeds the truth and keeps a gradient of the closed form's sign and order (-11.7, -10.3).
    mws is the minibatch estimate plus log N, with the same gradient."""
    a, draws, exact, exact_grad = channel_batches(target, 100)
    minibatch, minibatch_grad = estimates(a, draws, "minibatch")
    mss, mss_grad = estimates(a, draws, "mss")
    mws, mws_grad = estimates(a, draws, "mws")
    assert minibatch < math.log(B) < exact - 1.5
    assert abs(minibatch_grad) < 0.25 * abs(exact_grad)
    assert exact < mss < exact + 0.5 * exact
    assert 1.0 < mss_grad / exact_grad < 2.0
    assert mws == pytest.approx(minibatch + math.log(N), abs=1e-9)
    assert mws_grad == pytest.approx(minibatch_grad, abs=1e-9)


def test_mss_rises_with_the_true_information_where_the_minibatch_form_saturates():
    low, high = (estimates(*channel_batches(t, 50)[:2], "minibatch")[0] for t in (6.0, 8.0))
    mss_low, mss_high = (estimates(*channel_batches(t, 50)[:2], "mss")[0] for t in (6.0, 8.0))
    assert high - low < 0.4
    assert mss_high - mss_low > 2.0


@pytest.fixture(scope="module")
def batch():
    dataset = data.get("dsprites", size=32)
    return torch.from_numpy(dataset.images(np.random.default_rng(0).choice(dataset.train_indices, 16)))


def make(name: str, hparams: dict):
    torch.manual_seed(0)
    return build_variant(
        name, hparams, image_shape=(1, 32, 32), latent_dim=D, architecture="mlp", likelihood="bernoulli"
    )


@pytest.mark.parametrize("estimator", ["mss", "minibatch", "mws"])
def test_mi_vae_loss_is_the_elbo_minus_gamma_times_the_estimate(batch, estimator):
    model = make("mi_vae", {"gamma": 2.0, "estimator": estimator, "dataset_size": 5000})
    torch.manual_seed(1)
    losses = model.loss(batch, 0)
    torch.manual_seed(1)
    mu, logvar = model.encode(batch)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = -model.log_likelihood(batch, z).mean()
    kl = kl_to_standard_normal(mu, logvar).sum(1).mean()
    mi = minibatch_mutual_information(z, mu, logvar, estimator, 5000)
    torch.testing.assert_close(losses.total, recon + kl - 2.0 * mi)
    torch.testing.assert_close(losses.terms["mi"], mi)


def test_mi_vae_defaults_and_the_dataset_size_from_the_training_split():
    h = make("mi_vae", {}).hparams
    assert (h.gamma, h.estimator) == (1.0, "mss")
    dataset = data.get("dsprites", size=32, test_size=2000)
    hparams = VARIANTS.get("mi_vae").Hyperparameters.for_dataset({}, dataset)
    assert hparams.dataset_size == len(dataset.train_indices) == 735_280
    with pytest.raises(ConfigError) as err:
        make("mi_vae", {"estimator": "exact"})
    assert err.value.key == "estimator"


def test_info_vae_published_defaults_and_what_alpha_does(batch):
    """alpha = 0, lambda = 1000: KL weight 1, divergence weight 999; alpha = 1 drops the KL."""
    model = make("info_vae", {})
    assert (model.hparams.alpha, model.hparams.lambda_) == (0.0, 1000.0)
    assert model.weights() == (1.0, 999.0)
    assert make("info_vae", {"alpha": 1.0}).weights() == (0.0, 1000.0)
    assert make("info_vae", {"alpha": -3.0, "lambda_": 4.0}).weights() == (4.0, 0.0)  # beta-VAE, beta = 4


def test_mmd_vae_codes_are_deterministic_by_default(batch):
    """z = mu(x): the loss is the reconstruction from mu plus lambda * MMD(mu, prior draws)."""
    model = make("mmd_vae", {})
    assert model.hparams.encoder == "deterministic"
    torch.manual_seed(2)
    losses = model.loss(batch, 0)
    mu, _ = model.encode(batch)
    torch.manual_seed(2)
    prior = torch.randn_like(mu)
    expected = -model.log_likelihood(batch, mu).mean() + 1000.0 * mmd_unbiased(mu, prior, "rbf", kernel_scale(D))
    torch.testing.assert_close(losses.total, expected)
    gaussian = make("mmd_vae", {"encoder": "gaussian"})
    torch.manual_seed(2)
    a = gaussian.loss(batch, 0).total
    torch.manual_seed(2)
    b = gaussian.loss(batch, 0).total
    torch.manual_seed(3)
    assert torch.equal(a, b) and not torch.equal(a, gaussian.loss(batch, 0).total)


def test_a_collapsed_deterministic_code_is_pushed_apart_by_the_mmd_term():
    """Codes that are all equal (no information) are far from the prior: the MMD term is
    positive and its gradient moves the codes. A Gaussian encoder's collapsed state,
    q(z|x) = N(0, I) for every x, is the prior itself: MMD^2 = 0 in expectation there."""
    codes = torch.zeros(64, D, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    prior = torch.randn(64, D, generator=g)
    mmd = mmd_unbiased(codes + 1e-3 * torch.randn(64, D, generator=g), prior, "rbf")
    (grad,) = torch.autograd.grad(mmd, codes)
    assert float(mmd) > 0.05
    assert float(grad.norm()) > 1e-3
    draws = torch.stack([mmd_unbiased(torch.randn(64, D, generator=g), torch.randn(64, D, generator=g), "rbf")
                         for _ in range(200)])
    assert abs(float(draws.mean())) < 4 * float(draws.std()) / math.sqrt(200)
