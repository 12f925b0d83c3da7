"""Importance-weighted estimate of the negative log-likelihood -log p(x) (nats per image).

Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders", with the encoder
q(z | x) = N(mu(x), diag exp(logvar(x))) as the proposal and the prior p(z) = N(0, I)::

    log p(x) ~= log (1/K) sum_{k=1..K} w_k,     w_k = p(x | z_k) p(z_k) / q(z_k | x),  z_k ~ q(z | x)
             =  logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K

The estimate is a lower bound on log p(x) in expectation, tightening monotonically in K and
exact for any K when q(z | x) is the true posterior; `iwae_nll` reports its negative (an
upper bound on -log p(x)). The bound itself is computed by
:func:`vaebench.variants.iwae.importance_weighted_bound` (on `importance_log_weights`), the
one implementation shared with the IWAE objective; this module evaluates it in batches, at
most ``CHUNK`` (image, sample) pairs decoded at once, so memory does not grow with K, and
draws the samples from a seeded RNG of its own.

The IWAE curve (`importance_weighted_nll_curve`, the opt-in metric `iwae_curve`): the estimate
at K = 1, 10, 100, ... and the largest K, each from the first K of one set of K draws, so the
values show how the bound tightens with K without the noise of separate draws. K = 1 is a
one-sample estimate of the negative ELBO; the largest K is `iwae_nll` itself (the same draws).

Precision: the log-weights are the model's (float32); with `float64_logsumexp` (the metric's
`iwae_float64 = true`) they are cast to float64 before the log-sum-exp over the K samples, the
step whose float32 rounding grows with K (a sum of up to K terms in [0, 1] after the max is taken
out), and the mean over images is float64 either way. `iwae_images` at or above the test split's
size scores every test image (the note says "images=N/N").
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric
from vaebench.params import Param
from vaebench.variants.iwae import GenerativeModel, importance_log_weights

DEFAULT_K = 1000  # importance samples per image (Burda et al. 2016 evaluate with K = 5000)
CHUNK = 1024  # (image, sample) pairs decoded at once
# Test images scored by the registered metric (a fixed random subset): K = 1000 decodes
# 1000 images per test image (its cost per image: benchmarks/bench_metrics.py; README,
# Performance). Set the `iwae_images` parameter to the test-set size for a full-test-set number.
DEFAULT_IMAGES = 100
SUBSET_SEED = 0  # which test images: the same subset for every run, so runs compare


def _model_device(model: Any) -> torch.device:
    try:
        return next(iter(model.parameters())).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def _log_weight_batches(
    model: GenerativeModel, images: torch.Tensor | np.ndarray, k: int, chunk: int, seed: int,
    device: torch.device | str | None,
) -> Iterator[torch.Tensor]:
    """Yield (K, B) log weights (`importance_log_weights`) per batch of images, on the device."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    x_all = torch.as_tensor(images)
    device = torch.device(device) if device is not None else _model_device(model)
    per_round = min(k, chunk)  # samples per decoding round
    batch = max(1, chunk // per_round)  # images per round
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        for start in range(0, len(x_all), batch):
            x = x_all[start : start + batch].to(device)
            yield importance_log_weights(model, x, k, chunk_size=per_round)


def _nll_from_log_weights(log_weights: torch.Tensor, k: int, float64: bool = False) -> torch.Tensor:
    """(B,) float64 -log p(x) estimates from the first k rows of (K, B) log weights (the log-sum-exp in
    float64 when `float64`, else in their dtype)."""
    first = log_weights[:k].double() if float64 else log_weights[:k]
    return -(torch.logsumexp(first, dim=0) - math.log(k)).double().cpu()


@torch.no_grad()
def importance_weighted_nll(
    model: GenerativeModel,
    images: torch.Tensor | np.ndarray,
    *,
    k: int = DEFAULT_K,
    chunk: int = CHUNK,
    seed: int = 0,
    device: torch.device | str | None = None,
    float64_logsumexp: bool = False,
) -> np.ndarray:
    """(N,) float64: -log p(x_n) estimated with `k` importance samples per image (nats).

    model: encode(x) -> (mu, logvar) and log_likelihood(x, z) -> (B,) log p(x | z).
    images: (N, C, H, W) (or (N, ...)) tensor or array, in the model's input format.
    chunk: at most this many (image, sample) pairs are decoded at once: batches of
        chunk // k images with all k samples when k <= chunk, otherwise one image at a time
        with its samples split into chunks of `chunk`.
    seed: seeds the z ~ q(z|x) draws. They come from torch's generator on `device`, seeded
        inside a fork of the RNG state, so the global state is left as it was.
    device: where to run the model (default: the device of its parameters).
    float64_logsumexp: the log-sum-exp over the K log-weights in float64 (else in their dtype).
    """
    return torch.cat([_nll_from_log_weights(lw, k, float64_logsumexp)
                      for lw in _log_weight_batches(model, images, k, chunk, seed, device)]).numpy()


def curve_ks(k: int) -> list[int]:
    """The K of the IWAE curve up to `k`: 1, 10, 100, ... below k, and k."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return [10**e for e in range(int(math.log10(k)) + 1) if 10**e < k] + [k]


@torch.no_grad()
def importance_weighted_nll_curve(
    model: GenerativeModel,
    images: torch.Tensor | np.ndarray,
    *,
    ks: Sequence[int] = (1, 10, 100, 1000),
    chunk: int = CHUNK,
    seed: int = 0,
    device: torch.device | str | None = None,
    float64_logsumexp: bool = False,
) -> np.ndarray:
    """(len(ks), N) float64: -log p(x_n) estimated with each K in `ks` from one set of max(ks) draws.

    Row j uses the first ks[j] of the max(ks) samples drawn per image, so the rows differ only
    by how many of the same samples they use (the curve is not blurred by independent draws).
    The row of K = max(ks) equals `importance_weighted_nll(..., k=max(ks))` with the same seed
    and chunk, bit for bit. Arguments as `importance_weighted_nll`.
    """
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be integers >= 1, got {ks}")
    k_max = max(ks)
    rows = [torch.stack([_nll_from_log_weights(lw, k, float64_logsumexp) for k in ks])
            for lw in _log_weight_batches(model, images, k_max, chunk, seed, device)]
    return torch.cat(rows, dim=1).numpy()


def scored_subset(n: int, size: int) -> np.ndarray:
    """The sorted indices of the test images iwae_nll scores: all n, or a fixed random `size` of them."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(SUBSET_SEED).choice(n, size=size, replace=False))


# the test images iwae_nll scores; AIS scores a subset of them, so its metrics declare it too
IWAE_IMAGES = Param("iwae_images", DEFAULT_IMAGES, minimum=1, doc="test images scored (a fixed random subset)")
IWAE_PARAMS = [
    Param("iwae_k", DEFAULT_K, minimum=1, maximum=1_000_000, doc="importance samples per image"),
    IWAE_IMAGES,
    Param("iwae_chunk", CHUNK, minimum=1, maximum=65_536, doc="(image, sample) pairs decoded at once"),
    Param("iwae_float64", False, doc="the log-sum-exp over the K log-weights in float64"),
]


def _iwae_curve(ctx: EvaluationContext) -> tuple[list[int], np.ndarray, str]:
    """(ks, (len(ks), n) estimates, note) on the metric's test subset; computed once per evaluation
    for iwae_nll and iwae_curve together (the last row is iwae_nll's)."""
    k, n_images = ctx.params["iwae_k"], ctx.params["iwae_images"]
    float64 = ctx.params["iwae_float64"]
    key = ("iwae_curve", k, n_images, ctx.params["iwae_chunk"], float64)
    if key not in ctx.cache:
        n = len(ctx.test_images)
        chosen = scored_subset(n, n_images)
        ks = curve_ks(k)
        nll = importance_weighted_nll_curve(
            ctx.model, ctx.test_images[torch.from_numpy(chosen)], ks=ks, chunk=ctx.params["iwae_chunk"],
            seed=ctx.seed, device=ctx.device, float64_logsumexp=float64,
        )
        precision = ", float64 log-sum-exp" if float64 else ""
        ctx.cache[key] = (ks, nll, f"k={k}, images={len(chosen)}/{n}{precision}")
    return ctx.cache[key]


@register_metric(
    "iwae_nll", needs_decoder=True, family="likelihood",
    description="importance-weighted estimate of -log p(x), K samples per image (nats, Burda et al. 2016)",
    values=[MetricValue("iwae_nll", higher_is_better=False)],
    params=IWAE_PARAMS,
    abs_tol=1e-2, rel_tol=1e-4,
)
def _compute(ctx: EvaluationContext) -> dict[str, float]:
    _, nll, note = _iwae_curve(ctx)
    ctx.notes["iwae_nll"] = note
    return {"iwae_nll": float(nll[-1].mean())}


@register_metric(
    "iwae_curve", needs_decoder=True, family="likelihood", opt_in=True,
    description="iwae_nll at K = 1, 10, 100, ... up to iwae_k from one set of draws (iwae_nll_k<K>, nats): "
                "how the bound tightens with K; K = 1 estimates the negative ELBO",
    values=[MetricValue("iwae_nll_k{i}", higher_is_better=False)],
    params=IWAE_PARAMS,
    abs_tol=1e-2, rel_tol=1e-4,
)
def _compute_curve(ctx: EvaluationContext) -> dict[str, float]:
    ks, nll, note = _iwae_curve(ctx)
    values = {}
    for k, row in zip(ks, nll):
        values[f"iwae_nll_k{k}"] = float(row.mean())
        ctx.notes[f"iwae_nll_k{k}"] = f"the first {k} of the same draws; {note}"
    return values
