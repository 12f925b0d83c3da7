"""mi_xz: the aggregated-posterior estimate of I(x; z) against the closed form for a linear-Gaussian encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaebench.metrics import METRICS, EvaluationContext
from vaebench.metrics.mutual_information import (  # also registers mi_xz
    _component_factor,
    _log_mean_density_ratio,
    _sample_factor,
    latent_mutual_information,
    log_density_matrix,
)
from vaebench.variants.gaussian import pairwise_log_normal

N = 10_000


def linear_gaussian(seed: int, x_dim: int, z_dim: int, s: float) -> tuple[np.ndarray, np.ndarray, float]:
    """x ~ N(0, I), z | x ~ N(A x, s^2 I): posteriors of N draws, and I(x; z) = 1/2 log det(I + A A^T / s^2)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(z_dim, x_dim))
    x = rng.normal(size=(N, x_dim))
    mu = x @ a.T
    logvar = np.full_like(mu, 2 * math.log(s))
    exact = 0.5 * np.linalg.slogdet(np.eye(z_dim) + a @ a.T / s**2)[1]
    return mu, logvar, exact


@pytest.mark.parametrize("x_dim, z_dim, s", [(2, 2, 0.5), (3, 3, 0.7), (10, 10, 3.0), (4, 2, 1.0)])
def test_matches_the_closed_form(x_dim, z_dim, s):
    mu, logvar, exact = linear_gaussian(x_dim + z_dim, x_dim, z_dim, s)
    assert 1.0 < exact < 0.5 * math.log(N)  # well inside the estimator's range
    assert latent_mutual_information(mu, logvar, seed=0) == pytest.approx(exact, abs=0.05)


def test_uninformative_and_fully_informative_limits():
    rng = np.random.default_rng(0)
    # posteriors that ignore x: I = 0
    assert abs(latent_mutual_information(np.zeros((2000, 3)), np.zeros((2000, 3)))) < 1e-9
    # far-apart, sharp posteriors: every z is identified, I = log N
    mu = rng.normal(size=(2000, 5)) * 100
    assert latent_mutual_information(mu, np.full_like(mu, -10.0)) == pytest.approx(math.log(2000), abs=1e-6)


def test_chunking_seed_and_input_types():
    mu, logvar, _ = linear_gaussian(1, 3, 3, 0.7)
    mu, logvar = mu[:3000], logvar[:3000]
    value = latent_mutual_information(mu, logvar, seed=1)
    assert latent_mutual_information(mu, logvar, seed=1, chunk=97) == pytest.approx(value, abs=1e-9)
    assert latent_mutual_information(torch.from_numpy(mu).float(), torch.from_numpy(logvar).float(),
                                     seed=1) == pytest.approx(value, abs=1e-5)
    state = torch.get_rng_state()
    assert latent_mutual_information(mu, logvar, seed=1) == value
    assert torch.equal(state, torch.get_rng_state())
    assert latent_mutual_information(mu, logvar, seed=2) != value


def test_overflowing_rows_fall_back_to_their_maximum():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 3, generator=g, dtype=torch.float64)
    mu = torch.randn(40, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(40, 3, generator=g, dtype=torch.float64)
    components_t = torch.cat([_component_factor(mu, logvar), torch.ones(40, 1, dtype=torch.float64)], 1).T
    shift = torch.tensor([0.0, 1000.0, 0.0, 2000.0, 0.0], dtype=torch.float64)  # rows 1 and 3 overflow exp
    left = torch.cat([_sample_factor(z), shift[:, None]], dim=1)
    result = _log_mean_density_ratio(left, components_t, torch.empty(5, 40, dtype=torch.float64))
    expected = torch.logsumexp(log_density_matrix(z, mu, logvar) + shift[:, None], dim=1) - math.log(40)
    assert torch.allclose(result, expected, atol=1e-9)


def test_log_density_matrix_matches_the_elementwise_density():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 4, generator=g, dtype=torch.float64)
    mu = torch.randn(9, 4, generator=g, dtype=torch.float64)
    logvar = torch.randn(9, 4, generator=g, dtype=torch.float64)
    expected = pairwise_log_normal(z, mu, logvar).sum(-1)
    assert torch.allclose(log_density_matrix(z, mu, logvar), expected, atol=1e-10)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="must both be"):
        latent_mutual_information(np.zeros((5, 2)), np.zeros((5, 3)))


def test_registered_metric(tmp_path):
    mu, logvar, exact = linear_gaussian(0, 2, 2, 0.5)
    info = METRICS.get("mi_xz")
    assert info.higher_is_better
    ctx = EvaluationContext(
        model=None, dataset=None, test_indices=np.arange(N), test_images=torch.zeros(N, 1), mu=mu, logvar=logvar,
        factors=None, seed=0, device=torch.device("cpu"), cache_dir=tmp_path,
    )
    assert info.compute(ctx) == {"mi_xz": pytest.approx(exact, abs=0.05)}
