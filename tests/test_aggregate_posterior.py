"""Aggregate-posterior metrics against closed forms: ELBO decomposition, prior MMD, off-diagonal covariance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vaebench.metrics import METRICS
from vaebench.metrics.aggregate_posterior import elbo_decomposition, latent_covariance_offdiagonal, prior_mmd


def linear_gaussian(a: np.ndarray, s: float, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x ~ N(0, I_K), q(z|x) = N(A x, s^2 I): posteriors (mu, logvar) of n images."""
    x = np.random.default_rng(seed).standard_normal((n, a.shape[1]))
    return x @ a.T, np.full((n, a.shape[0]), math.log(s**2))


def closed_form(a: np.ndarray, s: float) -> dict[str, float]:
    """q(z) = N(0, S), S = A A^T + s^2 I: the three terms and their sum, exactly."""
    d = a.shape[0]
    cov = a @ a.T + s**2 * np.eye(d)
    logdet = np.linalg.slogdet(cov)[1]
    diag = np.diag(cov)
    return {
        "mi": 0.5 * (logdet - d * math.log(s**2)),
        "tc": 0.5 * (np.log(diag).sum() - logdet),
        "dimwise_kl": 0.5 * (diag - 1 - np.log(diag)).sum(),
        "kl": 0.5 * (np.trace(cov) - d - d * math.log(s**2)),
    }


A = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.5, 0.9], [0.3, 0.0, 0.4]])


def test_linear_gaussian_terms_match_their_closed_forms():
    s = 0.7
    exact = closed_form(A, s)
    assert exact["tc"] > 0.2 and exact["mi"] < math.log(8000) - 4  # well below the estimator's ceiling
    estimate = elbo_decomposition(*linear_gaussian(A, s, 8000), seed=1)
    for key in ("mi", "tc", "dimwise_kl", "kl"):
        assert estimate[key] == pytest.approx(exact[key], abs=0.08), (key, estimate[key], exact[key])


def test_the_three_terms_sum_to_the_mean_kl_and_its_error_shrinks():
    s = 0.7
    exact = closed_form(A, s)["kl"]
    errors = []
    for n in (250, 4000):
        est = elbo_decomposition(*linear_gaussian(A, s, n, seed=n), seed=2)
        assert est["mi"] + est["tc"] + est["dimwise_kl"] == pytest.approx(est["kl"], rel=1e-12)
        errors.append(np.mean([abs(elbo_decomposition(*linear_gaussian(A, s, n, seed=n + r), seed=r)["kl"] - exact)
                               for r in range(4)]))
    assert errors[1] < errors[0]


def test_independent_factors_have_no_total_correlation():
    diagonal = np.diag([1.0, 0.6, 1.4])
    est = elbo_decomposition(*linear_gaussian(diagonal, 0.5, 6000), seed=0)
    assert abs(est["tc"]) < 0.03 and est["mi"] > 1.0


def test_the_estimate_is_pinned_below_log_n_and_does_not_depend_on_the_chunk():
    mu, logvar = linear_gaussian(10 * A, 0.01, 300)  # true mi far above log 300
    est = elbo_decomposition(mu, logvar, seed=0)
    assert est["mi"] <= math.log(300) + 1e-9 and est["mi"] > math.log(300) - 0.05
    chunked = elbo_decomposition(mu, logvar, seed=0, chunk=7)
    assert all(chunked[k] == pytest.approx(est[k], rel=1e-12) for k in est)


def test_prior_mmd_is_near_zero_for_prior_samples_and_grows_with_a_shift_or_scale():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2000, 5))
    assert abs(prior_mmd(z, seed=1)) < 3e-3
    shifted = [prior_mmd(z + shift, seed=1) for shift in (0.25, 0.5, 1.0)]
    scaled = [prior_mmd(z * scale, seed=1) for scale in (1.5, 2.0, 3.0)]
    assert 3e-3 < shifted[0] < shifted[1] < shifted[2] and 3e-3 < scaled[0] < scaled[1] < scaled[2]


def test_off_diagonal_covariance_by_hand():
    mu = np.array([[0.0, 0.0, 1.0], [1.0, 2.0, 1.0], [2.0, 4.0, 1.0]])  # cov: var 1, 4, 0; cov(0,1) = 2
    assert latent_covariance_offdiagonal(mu) == pytest.approx((2 + 2 + 0 + 0 + 0 + 0) / 6)
    assert latent_covariance_offdiagonal(mu[:, :1]) == 0.0


def test_registered_with_their_directions():
    assert {v.name for v in METRICS.get("elbo_decomposition").values} == {"tc", "dimwise_kl"}
    assert not METRICS.get("prior_mmd").higher_is_better and not METRICS.get("cov_offdiag").higher_is_better


def test_the_decompositions_mi_is_the_stored_mi_xz():
    """One quantity, one estimator: the index-code mi of the decomposition is mi_xz's lower bound on
    the same draws (the decomposition's mi is a by-product of its tc pass and is not stored)."""
    from vaebench.metrics.mutual_information import latent_mutual_information

    rng = np.random.default_rng(3)
    mu, logvar = rng.normal(size=(700, 4)), rng.normal(-1.0, 0.3, size=(700, 4))
    for seed in (0, 5):
        assert elbo_decomposition(mu, logvar, seed=seed)["mi"] == pytest.approx(
            latent_mutual_information(mu, logvar, seed=seed), abs=1e-9
        )
