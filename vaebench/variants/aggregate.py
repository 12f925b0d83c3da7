"""Minibatch estimators of the aggregated posterior q(z) = E_p(x)[q(z|x)] of a diagonal-Gaussian encoder.

For a batch of B images with posteriors q(z|x_j) = N(mu_j, diag exp(logvar_j)) and codes
z_i ~ q(z|x_i), each estimator writes q at z_i as a weighted mixture of the batch's posteriors,

    log q(z_i)      ~= logsumexp_j [ log w_ij + sum_d log q(z_id | x_j) ]       (joint)
    log q_d(z_id)   ~= logsumexp_j [ log w_ij + log q(z_id | x_j) ]             (marginal of dim d)

with one of three weightings (rows of w, one per code):

- "minibatch": w_ij = 1/B. The batch itself is the population. Used for InfoVAE's
  KL(q(z) || p(z)), and available to the MI-VAE's I(x; z) = E[log q(z|x) - log q(z)]: that
  estimate is at most log B (4.16 nats at B = 64) and biased low when I is not small
  against log B; once the codes of a batch are told apart, its gradient vanishes.
- "mws", minibatch weighted sampling (Chen et al. 2018, "Isolating Sources of Disentanglement
  in VAEs", NeurIPS, eq. 5): w_ij = 1/(N B) for a dataset of N images, exactly as the paper
  writes it. These weights sum to 1/N, not 1: log q(z) carries an offset of -log N, the total
  correlation one of +(D - 1) log N, the index-code MI +log N and the dimension-wise KL
  -D log N. The offsets are constants (no effect on gradients) and cancel in the sum
  MI + TC + dim-KL, but they are in the values these terms report.
- "mss", minibatch stratified sampling (Chen et al. 2018, appendix C.2): with M = B - 1, the
  own posterior gets w_ii = 1/N, one other image (here j = i + 1 mod B) the stratum weight
  (N - M)/(N M), the remaining B - 2 images 1/M; each row sums to 1, so for large B the
  estimate converges to q(z). These are the weights of the authors' code; their code puts the
  1/N and stratum weights in columns 0 and 1 of every row rather than relative to each code's
  own image (rtqichen/beta-tcvae pull request #1); here they sit on the diagonal, as the
  derivation requires.

The ELBO's KL decomposes exactly, per code, as (Chen et al. 2018, eq. 2)

    log q(z|x) - log p(z) = [log q(z|x) - log q(z)]              index-code MI
                          + [log q(z) - sum_d log q_d(z_d)]        total correlation
                          + [sum_d log q_d(z_d) - log p_d(z_d)]    dimension-wise KL

and `kl_decomposition` returns the three batch means.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vaebench.errors import ConfigError
from vaebench.params import hyperparameter
from vaebench.variants.gaussian import log_standard_normal, pairwise_log_normal

ESTIMATORS = ("mws", "mss")
WEIGHTINGS = ("minibatch", *ESTIMATORS)


def training_images(dataset: Any) -> int:
    """The N of the "mws" and "mss" weights for a run on `dataset`: the size of its training split."""
    return len(dataset.train_indices)


def dataset_size_hyperparameter() -> Any:
    """The `dataset_size` hyperparameter of a variant whose estimator weighs by N: the training split's
    size of the run's dataset (`training_images`) unless the suite sets it."""
    return hyperparameter(None, type=int, minimum=1, from_dataset=training_images,
                          doc="training images N, for the estimator's weights (default: the training split's size)")


def batch_size_range(weighting: str, dataset_size: int | None) -> tuple[int, int | None]:
    """The batch sizes a weighting is defined for: minibatch stratified sampling needs B >= 2 and
    B - 1 <= N (`log_importance_weights`; no upper bound while N is unknown); the others any B."""
    if weighting != "mss":
        return 1, None
    return 2, (dataset_size + 1 if dataset_size is not None else None)


def log_importance_weights(
    batch_size: int,
    weighting: str,
    dataset_size: int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(B, B) log w_ij of a weighting (see the module docstring); `dataset_size` N for mws / mss."""
    b = batch_size
    if weighting == "minibatch":
        return torch.full((b, b), -math.log(b), dtype=dtype, device=device)
    if weighting not in ESTIMATORS:
        raise ValueError(f"unknown weighting {weighting!r}; allowed: {', '.join(WEIGHTINGS)}")
    if dataset_size is None or dataset_size < 1:
        raise ConfigError(
            f"must be a positive dataset size for {weighting!r}, got {dataset_size!r}", key="dataset_size"
        )
    n = float(dataset_size)
    if weighting == "mws":
        return torch.full((b, b), -math.log(n * b), dtype=dtype, device=device)
    m = b - 1
    if m < 1:
        raise ConfigError("minibatch stratified sampling needs batches of at least 2 images", key="batch_size")
    if dataset_size < m:
        raise ConfigError(
            f"must be at least the batch size - 1 ({m}) for minibatch stratified sampling, got {dataset_size}",
            key="dataset_size",
        )
    w = torch.full((b, b), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(b)
    w[rows, (rows + 1) % b] = (n - m) / (n * m)
    w[rows, rows] = 1.0 / n
    return w.log().to(dtype=dtype, device=device)


def log_aggregate_posterior(log_q_pairs: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """log q(z_i), (B,), from the pairwise log densities (B, B, D) of `pairwise_log_normal`."""
    return torch.logsumexp(log_weights + log_q_pairs.sum(-1), dim=1)


def log_marginal_posteriors(log_q_pairs: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """log q_d(z_id), (B, D): each dimension's aggregated marginal at each code."""
    return torch.logsumexp(log_weights.unsqueeze(-1) + log_q_pairs, dim=1)


def _log_posterior_at_own_code(log_q_pairs: torch.Tensor) -> torch.Tensor:
    """log q(z_i | x_i), (B,)."""
    return log_q_pairs.sum(-1).diagonal()


def minibatch_mutual_information(
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    weighting: str = "minibatch",
    dataset_size: int | None = None,
) -> torch.Tensor:
    """I(x; z) ~= mean_i [log q(z_i|x_i) - log q(z_i)], log q(z_i) from a weighting of the batch.

    z (B, D) holds one code per image, z_i ~ q(z | x_i). "minibatch": at most log B, whatever
    the true I. "mss": the own posterior weighs 1/N, so the estimate can reach log N (and is
    biased high when the batch holds few of z_i's neighbours). "mws": the minibatch estimate
    plus the constant log N (the same gradient). See the module docstring.
    """
    pairs = pairwise_log_normal(z, mu, logvar)
    log_w = log_importance_weights(z.shape[0], weighting, dataset_size, dtype=z.dtype, device=z.device)
    return (_log_posterior_at_own_code(pairs) - log_aggregate_posterior(pairs, log_w)).mean()


def minibatch_kl_to_prior(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z) || N(0, I)) ~= mean_i [log q(z_i) - log p(z_i)], q(z) the minibatch aggregated posterior."""
    pairs = pairwise_log_normal(z, mu, logvar)
    log_w = log_importance_weights(z.shape[0], "minibatch", dtype=z.dtype, device=z.device)
    return (log_aggregate_posterior(pairs, log_w) - log_standard_normal(z).sum(-1)).mean()


def kl_decomposition(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, estimator: str, dataset_size: int | None
) -> dict[str, torch.Tensor]:
    """Batch means of the index-code MI ("mi"), total correlation ("tc") and dimension-wise KL ("dim_kl")."""
    pairs = pairwise_log_normal(z, mu, logvar)
    log_w = log_importance_weights(z.shape[0], estimator, dataset_size, dtype=z.dtype, device=z.device)
    log_qz = log_aggregate_posterior(pairs, log_w)
    log_qz_product = log_marginal_posteriors(pairs, log_w).sum(-1)
    return {
        "mi": (_log_posterior_at_own_code(pairs) - log_qz).mean(),
        "tc": (log_qz - log_qz_product).mean(),
        "dim_kl": (log_qz_product - log_standard_normal(z).sum(-1)).mean(),
    }


def total_correlation(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, estimator: str, dataset_size: int
) -> torch.Tensor:
    """TC = KL(q(z) || prod_d q_d(z_d)) ~= mean_i [log q(z_i) - sum_d log q_d(z_id)]."""
    return kl_decomposition(z, mu, logvar, estimator, dataset_size)["tc"]
