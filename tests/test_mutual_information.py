"""mi_xz: the lower and leave-one-out upper bounds on I(x; z) against the closed form of a
linear-Gaussian channel, against a direct computation, and the registered metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaebench import data
from vaebench.metrics import METRICS, EvaluationContext
from vaebench.metrics.mutual_information import (  # also registers mi_xz
    latent_mutual_information,
    latent_mutual_information_upper,
    log_density_matrix,
    mutual_information_bounds,
)
from vaebench.metrics.registry import check_metric_params
from vaebench.variants.gaussian import pairwise_log_normal

pytestmark = pytest.mark.usefixtures("one_thread")


def gaussian_channel(
    seed: int, n: int, dim: int, target: float, s: float = 1.0
) -> tuple[np.ndarray, np.ndarray, float]:
    """x ~ N(0, I_dim), z | x ~ N(a x, s^2 I) with a chosen so that I(x; z) = target:
    posteriors of n draws, and the closed form I(x; z) = 1/2 log det(I + A A^T / s^2)."""
    a = s * math.sqrt(math.exp(2 * target / dim) - 1)
    x = np.random.default_rng(seed).normal(size=(n, dim))
    mu = a * x
    logvar = np.full_like(mu, 2 * math.log(s))
    exact = 0.5 * np.linalg.slogdet(np.eye(dim) + a * a * np.eye(dim) / s**2)[1]
    return mu, logvar, float(exact)


def linear_gaussian(seed: int, n: int, x_dim: int, z_dim: int, s: float) -> tuple[np.ndarray, np.ndarray, float]:
    """A dense random A (z_dim x x_dim): posteriors of n draws and 1/2 log det(I + A A^T / s^2)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(z_dim, x_dim))
    mu = rng.normal(size=(n, x_dim)) @ a.T
    exact = 0.5 * np.linalg.slogdet(np.eye(z_dim) + a @ a.T / s**2)[1]
    return mu, np.full_like(mu, 2 * math.log(s)), float(exact)


def direct_bounds(mu: np.ndarray, logvar: np.ndarray, seed: int) -> tuple[float, float]:
    """The two bounds from the full (N, N, D) pairwise matrix, with the metric's noise draws."""
    mu_t, lv_t = torch.from_numpy(mu), torch.from_numpy(logvar)
    eps = torch.randn((1, *mu_t.shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)[0]
    z = mu_t + torch.exp(0.5 * lv_t) * eps
    log_q = pairwise_log_normal(z, mu_t, lv_t).sum(-1)  # [i, n] = log q(z_i | x_n)
    n = len(mu)
    own = log_q.diagonal()
    lower = own - (torch.logsumexp(log_q, dim=1) - math.log(n))
    others = log_q.masked_fill(torch.eye(n, dtype=torch.bool), -math.inf)
    upper = own - (torch.logsumexp(others, dim=1) - math.log(n - 1))
    return float(lower.mean()), float(upper.mean())


@pytest.mark.parametrize("x_dim, z_dim, s", [(2, 2, 0.5), (3, 3, 0.7), (10, 10, 3.0), (4, 2, 1.0)])
def test_both_bounds_match_the_closed_form_well_inside_the_ceiling(x_dim, z_dim, s):
    mu, logvar, exact = linear_gaussian(x_dim + z_dim, 10_000, x_dim, z_dim, s)
    assert 1.0 < exact < 0.5 * math.log(10_000)
    lower, upper = mutual_information_bounds(mu, logvar, seed=0)
    assert lower == pytest.approx(exact, abs=0.05)
    assert upper == pytest.approx(exact, abs=0.05)


def test_above_the_ceiling_the_lower_bound_is_pinned_and_the_upper_bound_brackets():
    """True I = 9 nats > log 2,000 = 7.60: the 2,000-point lower bound sits under its ceiling
    (7.00 measured), far below the truth; the upper bound lies above the truth and falls toward
    it as N grows (11.02 at N = 2,000, 9.72 at N = 20,000)."""
    small_mu, small_lv, exact = gaussian_channel(0, 2_000, 10, 9.0)
    large_mu, large_lv, _ = gaussian_channel(0, 20_000, 10, 9.0)
    ceiling = math.log(2_000)
    lower_small, upper_small = mutual_information_bounds(small_mu, small_lv, seed=0)
    lower_large, upper_large = mutual_information_bounds(large_mu, large_lv, seed=0)
    assert ceiling - 0.7 < lower_small <= ceiling < exact - 1.0
    assert lower_small < lower_large <= math.log(20_000)
    assert exact - 0.05 < upper_large < upper_small
    assert upper_large - exact < 0.5 * (upper_small - exact)


def test_with_room_under_the_ceiling_the_large_sample_bounds_are_within_a_tenth_of_a_nat():
    """True I = 4 nats, N = 20,000 (log N = 9.9): lower 3.990, upper 4.025 measured."""
    mu, logvar, exact = gaussian_channel(1, 20_000, 10, 4.0)
    lower, upper = mutual_information_bounds(mu, logvar, seed=0)
    assert abs(lower - exact) < 0.1
    assert abs(upper - exact) < 0.1
    assert lower <= upper


def test_blocks_match_a_direct_computation_including_rows_that_underflow():
    """Blocks of 7 x 5 (the diagonal crosses block boundaries) against the full pairwise matrix.
    Ten sharp posteriors far from everything make rows whose leave-one-out sum underflows
    float64; they go through the log-sum-exp fallback (the path an overflowing row takes too)."""
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(40, 3))
    logvar = rng.normal(-1.0, 0.5, size=(40, 3))
    mu[:10] *= 300.0
    logvar[:10] = -12.0
    expected = direct_bounds(mu, logvar, seed=3)
    assert expected[1] > 1e4  # the far rows dominate the upper bound: their sums are about exp(-1e5)
    got = mutual_information_bounds(mu, logvar, seed=3, block_rows=7, block_cols=5)
    assert got == pytest.approx(expected, rel=1e-9)
    assert mutual_information_bounds(mu, logvar, seed=3) == pytest.approx(expected, rel=1e-9)


def test_limits_of_the_lower_bound_and_the_upper_bound_without_a_ceiling():
    # posteriors that ignore x: both bounds are 0 exactly
    zeros = np.zeros((500, 3))
    assert mutual_information_bounds(zeros, zeros) == (pytest.approx(0.0, abs=1e-12), pytest.approx(0.0, abs=1e-12))
    # far-apart, sharp posteriors: every z is identified; the lower bound is at its ceiling log N,
    # the upper bound far above it
    mu = np.random.default_rng(0).normal(size=(500, 5)) * 100
    lower, upper = mutual_information_bounds(mu, np.full_like(mu, -10.0))
    assert lower == pytest.approx(math.log(500), abs=1e-9)
    assert upper > 100 * math.log(500)


def test_public_functions_are_the_bounds():
    mu, logvar, _ = linear_gaussian(1, 3_000, 3, 3, 0.7)
    lower, upper = mutual_information_bounds(mu, logvar, seed=1)
    assert latent_mutual_information(mu, logvar, seed=1) == lower
    assert latent_mutual_information_upper(mu, logvar, seed=1) == upper


def test_float32_tensors_give_the_float64_arrays_estimate():
    mu, logvar, _ = linear_gaussian(1, 3_000, 3, 3, 0.7)
    lower, _ = mutual_information_bounds(mu, logvar, seed=1)
    as_float32 = latent_mutual_information(torch.from_numpy(mu).float(), torch.from_numpy(logvar).float(), seed=1)
    assert as_float32 == pytest.approx(lower, abs=1e-5)


def test_the_seed_chooses_the_draws_and_the_global_rng_is_left_alone():
    mu, logvar, _ = linear_gaussian(1, 3_000, 3, 3, 0.7)
    lower, upper = mutual_information_bounds(mu, logvar, seed=1)
    state = torch.get_rng_state()
    assert mutual_information_bounds(mu, logvar, seed=1) == (lower, upper)
    assert torch.equal(state, torch.get_rng_state())
    assert latent_mutual_information(mu, logvar, seed=2) != lower


def test_the_estimates_are_exported_from_the_metrics_package():
    import vaebench.metrics as metrics

    assert metrics.latent_mutual_information is latent_mutual_information
    assert metrics.latent_mutual_information_upper is latent_mutual_information_upper
    assert {"latent_mutual_information", "latent_mutual_information_upper"} <= set(metrics.__all__)


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
    with pytest.raises(ValueError, match="at least 2"):
        latent_mutual_information_upper(np.zeros((1, 2)), np.zeros((1, 2)))


class LinearEncoder(torch.nn.Module):
    """encode(x) = (x W, constant log-variance): posteriors whose bounds the test recomputes."""

    def __init__(self, pixels: int, latent: int = 3):
        super().__init__()
        self.weight = torch.randn(pixels, latent, generator=torch.Generator().manual_seed(0)) * 0.5

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = x.flatten(1) @ self.weight
        return mu, torch.full_like(mu, -1.0)


def context(dataset, model, params: dict, tmp_path) -> EvaluationContext:
    test = dataset.test_indices
    images = torch.from_numpy(dataset.images(test))
    mu, logvar = (t.double().numpy() for t in model.encode(images))
    return EvaluationContext(
        model=model, dataset=dataset, test_indices=test, test_images=images, mu=mu, logvar=logvar, factors=None,
        seed=5, device=torch.device("cpu"), cache_dir=tmp_path, params=check_metric_params(params),
    )


@pytest.mark.parametrize("chosen, size", [("test", 360), ("sample", 500), ("all", 1797)])
def test_registered_metric_values_notes_and_evaluation_sets(tmp_path, chosen, size):
    """digits (1,797 images, 360 in the test split) under a linear encoder: the evaluation set's
    size is in the note with its ceiling, and both values equal the bounds on those posteriors."""
    info = METRICS.get("mi_xz")
    assert info.family == "information"
    assert {v.name for v in info.values} == {"mi_xz", "mi_xz_upper"}
    assert all(v.higher_is_better for v in info.values)
    dataset = data.get("digits")
    model = LinearEncoder(64)
    ctx = context(dataset, model, {"mi_xz_set": chosen, "mi_xz_images": 500}, tmp_path)
    values = info.compute(ctx)
    if chosen == "test":
        indices = dataset.test_indices
    elif chosen == "all":
        indices = np.arange(dataset.num_images)
    else:
        indices = np.sort(np.random.default_rng(0).choice(dataset.num_images, size=500, replace=False))
    mu, logvar = (t.double().numpy() for t in model.encode(torch.from_numpy(dataset.images(indices))))
    lower, upper = mutual_information_bounds(mu, logvar, seed=5)
    assert values == {"mi_xz": pytest.approx(lower, abs=1e-9), "mi_xz_upper": pytest.approx(upper, abs=1e-9)}
    assert ctx.notes["mi_xz"] == f"N={size} ceiling=log N={math.log(size):.3f}"
    assert f"N={size}" in ctx.notes["mi_xz_upper"]
