"""Properties of the aggregated posterior q(z) = 1/N sum_n q(z | x_n) over the evaluation set.

These are what several objectives claim to change: beta-TCVAE and FactorVAE lower the total
correlation of q(z), DIP-VAE decorrelates it, AAE / WAE / MMD-VAE / InfoVAE pull it toward the
prior p(z) = N(0, I).

ELBO decomposition (Hoffman & Johnson 2016, "ELBO surgery"; Chen et al. 2018, "Isolating
Sources of Disentanglement in VAEs", section 3). With the index n uniform over the N
evaluation images and z ~ q(z | x_n)::

    E_n KL(q(z|x_n) || p(z)) = I(n; z)                                  index-code MI   (mi)
                             + KL(q(z) || prod_d q(z_d))                total correlation (tc)
                             + sum_d KL(q(z_d) || p(z_d))               dimension-wise KL (dimwise_kl)

Each term is estimated by Monte Carlo with one z_i ~ q(z | x_i) per image and the exact
mixture densities of the N posteriors::

    log q(z_i)   = logsumexp_n log q(z_i | x_n) - log N
    log q(z_id)  = logsumexp_n log q(z_id | x_n) - log N

so mi <= log N (the own posterior's term alone gives log q(z_i) >= log q(z_i|x_i) - log N:
the estimator's ceiling, stored beside mi_xz), and the three estimates sum exactly to the
Monte Carlo estimate of the mean KL on the same samples. The index-code mi is the estimator
and the draws (same seed) of `mi_xz`'s lower bound (`vaebench.metrics.mutual_information`),
so it is stored once, as `mi_xz`; here it is a by-product of the tc pass, kept in the note.
The mixture is evaluated in row chunks, so memory is O(chunk x N x D), not O(N^2 D).

prior_mmd: the unbiased MMD^2 (the one estimator of `vaebench.variants.mmd`) between samples
of q(z) (one z per image) and as many samples of N(0, I), with the inverse multiquadratic
kernel of WAE (Tolstikhin et al. 2018, section 4: C = 2 d). Defaults: at most
PRIOR_MMD_SAMPLES codes (a seeded subset), 0 in expectation when q(z) = p(z).

cov_offdiag: the mean absolute off-diagonal entry of Cov_x[E[z|x]], the quantity DIP-VAE
(Kumar et al. 2018, eq. 6) penalises.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric
from vaebench.params import Param
from vaebench.variants.mmd import kernel_scale, mmd_unbiased

CHUNK_ELEMENTS = 2**24  # entries of the (chunk, N, D) log-density block held at once
PRIOR_MMD_SAMPLES = 2_000  # codes compared with as many prior samples
LOG_2PI = math.log(2 * math.pi)


def _as_float64(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).to(torch.float64)


def elbo_decomposition(mu: Any, logvar: Any, *, seed: int = 0, chunk: int | None = None) -> dict[str, float]:
    """{'mi', 'tc', 'dimwise_kl', 'kl'} in nats for posteriors N(mu_n, diag exp(logvar_n)), n = 1..N.

    kl is the Monte Carlo estimate of E_n KL(q(z|x_n) || p(z)) on the same samples: the exact
    sum of the three terms. mi is at most log N (see the module docstring).
    """
    m, lv = _as_float64(mu), _as_float64(logvar)
    if m.ndim != 2 or m.shape != lv.shape:
        raise ValueError(f"mu and logvar must both be (N, D), got {tuple(m.shape)} and {tuple(lv.shape)}")
    n, d = m.shape
    if n < 2:
        raise ValueError(f"need at least 2 posteriors, got {n}")
    generator = torch.Generator().manual_seed(seed)
    z = m + torch.exp(0.5 * lv) * torch.randn(m.shape, generator=generator, dtype=torch.float64)
    inv_var = torch.exp(-lv)  # (N, D)
    chunk = chunk or max(1, CHUNK_ELEMENTS // (n * d))
    log_n = math.log(n)
    totals = {"mi": 0.0, "tc": 0.0, "dimwise_kl": 0.0, "kl": 0.0}
    for start in range(0, n, chunk):
        zc = z[start : start + chunk]  # (c, D)
        # log q(z_id | x_n) for every row i of the chunk and every n: (c, N, D)
        log_q = -0.5 * ((zc[:, None, :] - m[None]) ** 2 * inv_var[None] + lv[None] + LOG_2PI)
        own = -0.5 * ((zc - m[start : start + chunk]) ** 2 * inv_var[start : start + chunk]
                      + lv[start : start + chunk] + LOG_2PI).sum(1)
        log_qz = torch.logsumexp(log_q.sum(2), dim=1) - log_n  # (c,)
        log_qzd = torch.logsumexp(log_q, dim=1) - log_n  # (c, D)
        log_pz = (-0.5 * (zc**2 + LOG_2PI)).sum(1)
        marginals = log_qzd.sum(1)
        totals["mi"] += float((own - log_qz).sum())
        totals["tc"] += float((log_qz - marginals).sum())
        totals["dimwise_kl"] += float((marginals - log_pz).sum())
        totals["kl"] += float((own - log_pz).sum())
    return {k: v / n for k, v in totals.items()}


def prior_mmd(z: Any, *, seed: int = 0, kernel: str = "imq", max_samples: int = PRIOR_MMD_SAMPLES) -> float:
    """Unbiased MMD^2 between codes z (N, D) (a seeded subset of at most `max_samples`) and as many N(0, I) samples."""
    codes = _as_float64(z)
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"z must be (N, D) with N >= 2, got {tuple(codes.shape)}")
    generator = torch.Generator().manual_seed(seed)
    if len(codes) > max_samples:
        codes = codes[torch.randperm(len(codes), generator=generator)[:max_samples]]
    prior = torch.randn(codes.shape, generator=generator, dtype=torch.float64)
    return float(mmd_unbiased(codes, prior, kernel, kernel_scale(codes.shape[1])))


def latent_covariance_offdiagonal(mu: Any) -> float:
    """Mean |Cov[E[z|x]]_ij| over i != j (unbiased covariance of the posterior means); 0 for one latent."""
    m = np.asarray(mu, dtype=np.float64)
    if m.ndim != 2 or len(m) < 2:
        raise ValueError(f"mu must be (N, D) with N >= 2, got {m.shape}")
    d = m.shape[1]
    if d < 2:
        return 0.0
    cov = np.cov(m, rowvar=False)
    return float(np.abs(cov[~np.eye(d, dtype=bool)]).mean())


def _sampled_codes(ctx: EvaluationContext) -> np.ndarray:
    """One z ~ q(z|x) per test image, from the evaluation seed."""
    generator = np.random.default_rng(ctx.seed)
    return ctx.mu + np.exp(0.5 * ctx.logvar) * generator.standard_normal(ctx.mu.shape)


@register_metric(
    "elbo_decomposition", family="aggregate_posterior", needs_density=True,
    description="total correlation and dimension-wise KL of the aggregated posterior (Chen et al. 2018, sec. 3)",
    values=[MetricValue("tc", higher_is_better=False), MetricValue("dimwise_kl", higher_is_better=False)],
    abs_tol=0.05, rel_tol=0.02, min_images=2,  # an aggregate posterior of at least two posteriors
)
def _elbo_decomposition(ctx: EvaluationContext) -> dict[str, float]:
    terms = elbo_decomposition(ctx.mu, ctx.logvar, seed=ctx.seed)
    for name in ("tc", "dimwise_kl"):
        ctx.notes[name] = f"N={len(ctx.mu)}; index-code mi = {terms['mi']:.4g}, the stored mi_xz (ceiling log N)"
    return {"tc": terms["tc"], "dimwise_kl": terms["dimwise_kl"]}


@register_metric(
    "prior_mmd", family="aggregate_posterior",
    description="unbiased MMD^2 (imq kernel) between the aggregated posterior and the prior N(0, I)",
    values=[MetricValue("prior_mmd", higher_is_better=False)],
    # its kernel matrices are samples^2 float64 each: 10,000 is 800 MB apiece
    params=[Param("prior_mmd_samples", PRIOR_MMD_SAMPLES, minimum=2, maximum=10_000,
                  doc="codes compared with as many prior samples")],
    abs_tol=1e-3, rel_tol=0.05, min_images=2,  # the unbiased MMD needs two codes
)
def _prior_mmd(ctx: EvaluationContext) -> dict[str, float]:
    value = prior_mmd(_sampled_codes(ctx), seed=ctx.seed, max_samples=ctx.params["prior_mmd_samples"])
    return {"prior_mmd": value}


@register_metric(
    "cov_offdiag", family="aggregate_posterior",
    description="mean absolute off-diagonal covariance of the posterior means (what DIP-VAE penalises)",
    values=[MetricValue("cov_offdiag", higher_is_better=False)], abs_tol=0.01, rel_tol=0.05,
    min_images=2,  # a covariance
)
def _cov_offdiag(ctx: EvaluationContext) -> dict[str, float]:
    return {"cov_offdiag": latent_covariance_offdiagonal(ctx.mu)}
