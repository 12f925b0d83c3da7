"""Latent mutual information I(x; z) under the encoder's aggregated posterior (nats).

With the empirical data distribution over the N test images and the aggregated posterior
q(z) = (1/N) sum_n q(z | x_n) (Hoffman & Johnson 2016, "ELBO surgery"; the estimator of
Dieng et al. 2019 and He et al. 2019, "Lagging inference networks")::

    I(x; z) = E_{x_i} E_{z ~ q(z|x_i)} [ log q(z | x_i) - log (1/N) sum_n q(z | x_n) ]

estimated with ``NUM_SAMPLES`` draw(s) z ~ q(z | x_i) per image, where q(z | x) is the diagonal
Gaussian N(mu(x), exp(logvar(x))). The sum over n runs over the *whole* test set (not a
minibatch), in blocks of about ``CHUNK_ELEMENTS`` entries, so memory stays bounded. The
estimate is bounded by log N (the aggregated posterior is a mixture of N components), so it
is only meaningful well below log N.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vaebench.metrics.registry import EvaluationContext, MetricInfo, register_metric
from vaebench.variants.gaussian import LOG_2PI, log_normal

NUM_SAMPLES = 1  # z ~ q(z|x_i) draws per image
CHUNK_ELEMENTS = 2**23  # entries of the (samples x N) log-density block held at once (64 MiB, one reused buffer)

ArrayLike = np.ndarray | torch.Tensor


def log_density_matrix(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(M, N) matrix of log N(z_m; mu_n, diag exp(logvar_n)), summed over the D dimensions.

    Equal to ``vaebench.variants.gaussian.pairwise_log_normal(z, mu, logvar).sum(-1)``, without
    its (M, N, D) intermediate: the square is expanded so that the whole matrix is one matrix
    product of (M, 2D+1) and (2D+1, N) factors,

        sum_d (z_d - mu_d)^2 / v_d = z^2 . (1/v) - 2 z . (mu/v) + sum_d mu_d^2 / v_d.

    Use float64 inputs: the expansion cancels large terms when |z|, |mu| >> sqrt(v).
    """
    return _sample_factor(z) @ _component_factor(mu, logvar).T


def _sample_factor(z: torch.Tensor) -> torch.Tensor:
    """(M, 2D+1) left factor [z^2, z, 1] of :func:`log_density_matrix`."""
    return torch.cat([z * z, z, torch.ones_like(z[:, :1])], dim=1)


def _component_factor(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(N, 2D+1) right factor of :func:`log_density_matrix`, the -1/2 folded in."""
    inv_var = torch.exp(-logvar)
    const = (mu * mu * inv_var).sum(1) + logvar.sum(1) + mu.shape[1] * LOG_2PI
    return torch.cat([-0.5 * inv_var, mu * inv_var, -0.5 * const[:, None]], dim=1)


def _log_mean_density_ratio(left: torch.Tensor, components_t: torch.Tensor, buffer: torch.Tensor) -> torch.Tensor:
    """log (1/N) sum_n q(z_m | x_n) / q(z_m | x_m) for each row m of `left` (its last column holds -log q(z_m|x_m)).

    components_t: (2D+2, N), the transposed right factor. buffer: (>= M, N) scratch space,
    reused across chunks (a fresh 10^7-element allocation per chunk costs as much as the
    arithmetic). Shifting by the own component's density puts every row's largest terms
    near 0 (the own term is exactly 1), so the max pass of a logsumexp is skipped; a row
    that overflows because another component is far denser at z_m is redone with its maximum.
    """
    n = components_t.shape[1]
    block = torch.mm(left, components_t, out=buffer[: len(left)])
    sums = block.exp_().sum(dim=1)
    bad = ~torch.isfinite(sums)
    out = sums.log_() - math.log(n)
    if bad.any():
        out[bad] = torch.logsumexp(left[bad] @ components_t, dim=1) - math.log(n)
    return out


def latent_mutual_information(
    mu: ArrayLike,
    logvar: ArrayLike,
    *,
    seed: int = 0,
    num_samples: int = NUM_SAMPLES,
    chunk: int | None = None,
) -> float:
    """I(x; z) in nats for posteriors q(z | x_n) = N(mu_n, diag exp(logvar_n)), n = 1..N.

    mu, logvar: (N, D) numpy arrays or tensors (computed in float64 on their device).
    seed: seeds the z ~ q(z|x) draws (a private torch.Generator).
    num_samples: draws per image; chunk: rows of the log-density matrix held at once
        (default: CHUNK_ELEMENTS // N).
    """
    mu_t = torch.as_tensor(mu).to(torch.float64)
    lv_t = torch.as_tensor(logvar).to(torch.float64)
    if mu_t.ndim != 2 or mu_t.shape != lv_t.shape:
        raise ValueError(f"mu and logvar must both be (N, D), got {tuple(mu_t.shape)} and {tuple(lv_t.shape)}")
    n = mu_t.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 posteriors, got {n}")
    chunk = chunk if chunk is not None else max(1, CHUNK_ELEMENTS // n)
    generator = torch.Generator(device=mu_t.device).manual_seed(seed)
    log_n = math.log(n)
    components = _component_factor(mu_t, lv_t)
    components_t = torch.cat([components, torch.ones_like(components[:, :1])], dim=1).T.contiguous()  # (2D+2, N)
    buffer = torch.empty((min(chunk, n), n), dtype=torch.float64, device=mu_t.device)
    total = torch.zeros((), dtype=torch.float64, device=mu_t.device)
    # all the noise up front, so the estimate does not depend on `chunk`
    eps = torch.randn((num_samples, n, mu_t.shape[1]), generator=generator, dtype=torch.float64, device=mu_t.device)
    for sample in range(num_samples):
        for start in range(0, n, chunk):
            m, lv = mu_t[start : start + chunk], lv_t[start : start + chunk]
            z = m + torch.exp(0.5 * lv) * eps[sample, start : start + chunk]
            log_q_own = log_normal(z, m, lv).sum(1)
            left = torch.cat([_sample_factor(z), -log_q_own[:, None]], dim=1)
            # log q(z|x_i) - log (1/N) sum_n q(z|x_n)
            total -= _log_mean_density_ratio(left, components_t, buffer).sum()
    return float(total / (n * num_samples))


def _compute(ctx: EvaluationContext) -> dict[str, float]:
    return {"mi_xz": latent_mutual_information(ctx.mu, ctx.logvar, seed=ctx.seed)}


register_metric(
    MetricInfo(
        name="mi_xz",
        higher_is_better=True,
        description="I(x; z) under the aggregated posterior over the whole test set (nats; bounded by log N)",
        compute=_compute,
        abs_tol=1e-3,
        rel_tol=1e-3,
        defaults={"num_samples": NUM_SAMPLES, "chunk_elements": CHUNK_ELEMENTS},
    )
)
