"""Latent mutual information I(x; z) of the encoder, bracketed by a lower and an upper bound (nats).

For N images x_1..x_N drawn from the data distribution, posteriors q(z | x_n) = N(mu_n, diag
exp(logvar_n)) and one draw z_i ~ q(z | x_i) per image, the two estimates differ only in the
mixture that stands for the aggregated posterior q(z) at z_i (Poole, Ozair, van den Oord,
Alemi and Tucker 2019, "On variational bounds of mutual information", ICML: the bounds for a
known conditional, "structured bounds with tractable encoders": the minibatch lower bound and
the leave-one-out upper bound, here with the whole evaluation set as the batch):

    lower  I_N  = 1/N sum_i [ log q(z_i | x_i) - log 1/N     sum_n      q(z_i | x_n) ]   <= log N
    upper  I_N' = 1/N sum_i [ log q(z_i | x_i) - log 1/(N-1) sum_{n!=i} q(z_i | x_n) ]

In expectation over the sample, lower <= I(x; z) <= upper, and both tighten as N grows. The
lower bound contains its own posterior in the mixture, so it can never exceed log N (its
ceiling): with the 2,000 test images of the quick suite that is 7.60 nats, and a value near
the ceiling says only that I(x; z) is at least about log N. The upper bound has no such
ceiling. The lower bound is the plug-in estimator of Hoffman and Johnson 2016 ("ELBO
surgery") and of He et al. 2019 ("Lagging inference networks"); `mi_xz` stores it with its
ceiling log N (a number beside the value; its N in the value's note), and `mi_xz_upper`
beside it, so the bracket is visible.

Computation: `NUM_SAMPLES` draw(s) per image; the N x N matrix of log-density ratios
log q(z_i | x_n) - log q(z_i | x_i) is formed one block of `BLOCK_ROWS` x `BLOCK_COLS` at
a time (one matrix product per block, see `log_density_matrix`) and reduced at once, so
memory is O(N D) plus one block whatever N. Both bounds come from the same pass: the
diagonal (own) term of each row is exactly 1 after the shift and is added analytically to
the leave-one-out sum. The ratios are formed in bits (the component factor times
`BITS_PER_NAT`) and exponentiated with exp2: the same sums as with exp to float64 rounding,
and torch's float64 exp2 is the faster of the two. Rows whose sum overflows or underflows
float64 are recomputed with a log-sum-exp. The cost is O(N^2 D); the matrix products and the
exponentials dominate (timings: README, Performance). Taking the exponentials in float32
(tried) sent too many rows to the float64 log-sum-exp fallback, and torch's float64-to-float32
conversion costs about as much as the float64 exp2 it would replace.

Evaluation set (`mi_xz_set`): "test" (default) the test split the harness encoded; "sample"
`mi_xz_images` images drawn once, without replacement and with the fixed seed
`SAMPLE_SEED`, from the whole dataset (the same images for every run); "all" every image of
the dataset (for procedural dSprites the full factor grid), encoded `ENCODE_CHUNK` images at
a time with `encode_in_batches`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vaebench.metrics.registry import Ceiling, EvaluationContext, MetricValue, register_metric
from vaebench.params import Param
from vaebench.variants.base import encode_in_batches
from vaebench.variants.gaussian import LOG_2PI, log_normal

NUM_SAMPLES = 1  # z ~ q(z|x_i) draws per image
# One block of the ratio matrix: 64 MiB of float64. Smaller blocks fit the cache but multiply the
# parallel regions, and on a shared machine two threads then wait on each other (the two block
# sizes timed: README, Performance).
BLOCK_ROWS, BLOCK_COLS = 2048, 4096
EVALUATION_SETS = ("test", "sample", "all")
SAMPLE_IMAGES = 20_000  # default size of the "sample" evaluation set
SAMPLE_SEED = 0  # the "sample" set is the same for every run and seed
ENCODE_CHUNK = 20_000  # images rendered and encoded at once for "sample" and "all" (80 MiB at 32 px)
# A lower bound within this many nats of its ceiling log N is flagged as saturated in reports.
SATURATION_MARGIN = 0.5
# A row's leave-one-out sum below this is recomputed with a log-sum-exp (float64 underflow).
_TINY = 1e-280
# The ratio matrix is formed in bits and exponentiated with exp2: log2(e) bits per nat.
BITS_PER_NAT = 1.0 / math.log(2.0)

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


def _as_posteriors(mu: ArrayLike, logvar: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    mu_t = torch.as_tensor(mu).to(torch.float64)
    lv_t = torch.as_tensor(logvar).to(torch.float64)
    if mu_t.ndim != 2 or mu_t.shape != lv_t.shape:
        raise ValueError(f"mu and logvar must both be (N, D), got {tuple(mu_t.shape)} and {tuple(lv_t.shape)}")
    if mu_t.shape[0] < 2:
        raise ValueError(f"need at least 2 posteriors, got {mu_t.shape[0]}")
    return mu_t, lv_t


def _leave_one_out_log_sums(left: torch.Tensor, column_blocks: list[torch.Tensor], first_row: int) -> torch.Tensor:
    """log sum_{n != m} q(z_m | x_n) / q(z_m | x_m) for the rows m = first_row + 0..len(left)-1.

    left: (M, 2D+2) rows [z^2, z, 1, -log q(z_m|x_m)]; column_blocks: the (2D+2, ...) column
    blocks of the transposed component factor with a row of ones appended, times
    ``BITS_PER_NAT``, in order: each product is a log-ratio in bits, so e^r is taken as
    2^(r log2 e). Each row's own entry (the diagonal of the full matrix) is set to -inf
    before the exponential.
    """
    sums = torch.zeros(len(left), dtype=left.dtype, device=left.device)
    buffer = torch.empty((len(left), column_blocks[0].shape[1]), dtype=left.dtype, device=left.device)
    first_col = 0
    for block in column_blocks:
        ratios = torch.mm(left, block, out=buffer[:, : block.shape[1]])
        ratios.diagonal(offset=first_row - first_col).fill_(-math.inf)
        sums += ratios.exp2_().sum(dim=1)
        first_col += block.shape[1]
    bad = ~torch.isfinite(sums) | (sums < _TINY)
    out = sums.log_()
    # overflow (another component far denser at z_m) or underflow: exact log-sum-exp, a few rows at a time
    bad_rows = bad.nonzero().squeeze(1)
    step = max(1, buffer.numel() // sum(block.shape[1] for block in column_blocks))
    for rows in bad_rows.split(step):
        full = torch.cat([left[rows] @ block for block in column_blocks], dim=1)
        full[torch.arange(len(rows), device=rows.device), first_row + rows] = -math.inf
        out[rows] = torch.logsumexp(full / BITS_PER_NAT, dim=1)
    return out


def mutual_information_bounds(
    mu: ArrayLike,
    logvar: ArrayLike,
    *,
    seed: int = 0,
    num_samples: int = NUM_SAMPLES,
    block_rows: int = BLOCK_ROWS,
    block_cols: int = BLOCK_COLS,
) -> tuple[float, float]:
    """(lower, upper) bounds on I(x; z) in nats from one pass (see the module docstring).

    mu, logvar: (N, D) numpy arrays or tensors (computed in float64 on their device).
    seed: seeds the z ~ q(z|x) draws (a private torch.Generator; the global RNGs are untouched).
    num_samples: draws per image; block_rows, block_cols: the block of the N x N ratio matrix
        held at once (the result does not depend on them beyond float64 rounding).
    """
    mu_t, lv_t = _as_posteriors(mu, logvar)
    n, d = mu_t.shape
    generator = torch.Generator(device=mu_t.device).manual_seed(seed)
    components = _component_factor(mu_t, lv_t)
    # (2D+2, N), in bits
    components_t = torch.cat([components, torch.ones_like(components[:, :1])], dim=1).T * BITS_PER_NAT
    column_blocks = [components_t[:, c : c + block_cols].contiguous() for c in range(0, n, block_cols)]
    # all the noise up front, so the estimate does not depend on the block sizes
    eps = torch.randn((num_samples, n, d), generator=generator, dtype=torch.float64, device=mu_t.device)
    loo = torch.empty((num_samples, n), dtype=torch.float64, device=mu_t.device)
    for sample in range(num_samples):
        for start in range(0, n, block_rows):
            m, lv = mu_t[start : start + block_rows], lv_t[start : start + block_rows]
            z = m + torch.exp(0.5 * lv) * eps[sample, start : start + block_rows]
            log_q_own = log_normal(z, m, lv).sum(1)
            left = torch.cat([_sample_factor(z), -log_q_own[:, None]], dim=1)
            loo[sample, start : start + block_rows] = _leave_one_out_log_sums(left, column_blocks, start)
    # log q(z_i)/q(z_i|x_i) with the own term (exactly 1 after the shift) in, and left out
    lower = -(torch.logaddexp(torch.zeros_like(loo), loo) - math.log(n)).mean()
    upper = -(loo - math.log(n - 1)).mean()
    return float(lower), float(upper)


def latent_mutual_information(
    mu: ArrayLike, logvar: ArrayLike, *, seed: int = 0, num_samples: int = NUM_SAMPLES
) -> float:
    """The lower bound on I(x; z) in nats, at most its ceiling math.log(len(mu)) (see the module docstring)."""
    return mutual_information_bounds(mu, logvar, seed=seed, num_samples=num_samples)[0]


def latent_mutual_information_upper(
    mu: ArrayLike, logvar: ArrayLike, *, seed: int = 0, num_samples: int = NUM_SAMPLES
) -> float:
    """The leave-one-out upper bound on I(x; z) in nats, no ceiling (see the module docstring)."""
    return mutual_information_bounds(mu, logvar, seed=seed, num_samples=num_samples)[1]


def evaluation_posteriors(ctx: EvaluationContext) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar) of the evaluation set chosen by `mi_xz_set` (see the module docstring)."""
    chosen = ctx.params["mi_xz_set"]
    if chosen == "test":
        return ctx.mu, ctx.logvar
    total = ctx.dataset.num_images
    if chosen == "all":
        indices = np.arange(total)
    else:
        count = min(ctx.params["mi_xz_images"], total)
        indices = np.sort(np.random.default_rng(SAMPLE_SEED).choice(total, size=count, replace=False))
    parts = [
        encode_in_batches(ctx.model, ctx.dataset.images(indices[start : start + ENCODE_CHUNK]), ctx.device)
        for start in range(0, len(indices), ENCODE_CHUNK)
    ]
    return torch.cat([p[0] for p in parts]).numpy(), torch.cat([p[1] for p in parts]).numpy()


@register_metric(
    "mi_xz",
    family="information",
    needs_density=True,
    description="I(x; z) of the encoder on an evaluation set of N images: a lower bound (at most its "
    "ceiling log N, stored beside it) and the leave-one-out upper bound (no ceiling)",
    values=[
        MetricValue("mi_xz", higher_is_better=True, description="lower bound, nats; at most log N",
                    ceiling=Ceiling(SATURATION_MARGIN, "log N of the N images it is estimated on",
                                    note_pattern=r"ceiling=log N=([0-9.]+)")),
        MetricValue("mi_xz_upper", higher_is_better=True, description="leave-one-out upper bound, nats"),
    ],
    params=[
        Param("mi_xz_set", "test", choices=EVALUATION_SETS,
              doc="evaluation set: the test split, a fixed sample of mi_xz_images images, or every image"),
        Param("mi_xz_images", SAMPLE_IMAGES, minimum=2, maximum=1_000_000, doc="images in the 'sample' evaluation set"),
    ],
    abs_tol=1e-3,
    rel_tol=1e-3,
    min_images=lambda params, simulated: 2 if params["mi_xz_set"] == "test" else 1,  # a mixture of two posteriors
)
def _compute_mi_xz(ctx: EvaluationContext) -> dict[str, float]:
    mu, logvar = evaluation_posteriors(ctx)
    lower, upper = mutual_information_bounds(mu, logvar, seed=ctx.seed)
    n = len(mu)
    ctx.notes["mi_xz"] = f"N={n} ceiling=log N={math.log(n):.3f}"
    ctx.ceilings["mi_xz"] = math.log(n)
    ctx.notes["mi_xz_upper"] = f"N={n} leave-one-out, no ceiling"
    return {"mi_xz": lower, "mi_xz_upper": upper}
