"""Classifier-based disentanglement scores: beta-VAE (Higgins et al. 2017) and FactorVAE (Kim & Mnih 2018).

Both intervene on the ground-truth generator: sample factor vectors, render them with
``dataset.images_from_factors`` and encode the images (the representation is the posterior
mean). Procedure and defaults follow disentanglement_lib (Locatello et al. 2019,
``evaluation/metrics/beta_vae.py`` and ``factor_vae.py``), the reference behind most
published tables; the constants below are its gin defaults.

beta-VAE score (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with a
Constrained Variational Framework"). One training point: draw a factor k uniformly, draw
``batch_size`` pairs of factor vectors (v1_l, v2_l) that agree on factor k, and take
the feature

    f = (1/L) sum_l | z(v1_l) - z(v2_l) |          (L = batch_size, z = posterior mean)

with label k. A logistic regression is fitted on ``num_train`` points; the score is its
accuracy on ``num_eval`` fresh points.

FactorVAE score (Kim & Mnih 2018, "Disentangling by Factorising"). The global variance
s_d^2 of each code dimension is estimated on ``num_variance_estimate`` random images;
dimensions with s_d < ``PRUNE_THRESHOLD`` (collapsed) are dropped. One vote: draw a factor
k, draw ``batch_size`` factor vectors sharing a random value of factor k, and vote
(k, argmin_d Var_l(z_d) / s_d^2) over the active dimensions d. The classifier maps each
dimension d to its majority factor argmax_k V[k, d] of the ``num_train`` training votes V;
the score is the fraction of ``num_eval`` fresh votes it classifies correctly,
sum_d V'[argmax_k V[k, d], d] / sum V'.

Accuracies are in [0, 1]; chance is 1/K for K factors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vaebench.errors import ConfigError
from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric
from vaebench.params import Param
from vaebench.variants.base import ENCODE_BATCH, EncodingModel, encode_in_batches

# disentanglement_lib defaults (beta_vae_sklearn / factor_vae_metric gin configs)
BATCH_SIZE = 64  # pairs (beta-VAE) or images (FactorVAE) per training point
NUM_TRAIN = 10_000  # training points
NUM_EVAL = 5_000  # evaluation points
NUM_VARIANCE_ESTIMATE = 10_000  # images for FactorVAE's global variances
PRUNE_THRESHOLD = 0.05  # FactorVAE: dims whose global std is below this are collapsed
LOGREG_MAX_ITER = 1_000  # sklearn's lbfgs default of 100 often stops before convergence here

IMAGES_PER_BLOCK = 8_192  # images rendered and encoded at once

Encoder = Callable[[np.ndarray], np.ndarray]


def encode_factors(encode: Encoder, dataset: Any, factors: np.ndarray) -> np.ndarray:
    """(n, D) codes of the images of (n, K) factor vectors, rendered and encoded in blocks."""
    codes = []
    for start in range(0, len(factors), IMAGES_PER_BLOCK):
        images = dataset.images_from_factors(factors[start : start + IMAGES_PER_BLOCK])
        codes.append(np.asarray(encode(images), dtype=np.float64))
    return np.concatenate(codes)


def _check(dataset: Any, **counts: tuple[int, int]) -> None:
    """A ConfigError for a dataset without factors or a count below its minimum (key: (value, minimum))."""
    if not getattr(dataset, "has_factors", False):
        raise ConfigError(f"needs a dataset with ground-truth factors, got {getattr(dataset, 'name', dataset)!r}")
    for key, (value, minimum) in counts.items():
        if int(value) < minimum:
            raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", key=key)


def _beta_vae_points(encode: Encoder, dataset: Any, num_points: int, batch_size: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(num_points, D) features mean_l |z1_l - z2_l| and their (num_points,) fixed-factor labels."""
    num_factors = len(dataset.factor_sizes)
    points_per_block = max(1, IMAGES_PER_BLOCK // (2 * batch_size))
    features, labels = [], []
    for start in range(0, num_points, points_per_block):
        p = min(points_per_block, num_points - start)
        k = rng.integers(0, num_factors, size=p)
        f1 = dataset.sample_factors(p * batch_size, rng).reshape(p, batch_size, -1)
        f2 = dataset.sample_factors(p * batch_size, rng).reshape(p, batch_size, -1)
        f2[np.arange(p), :, k] = f1[np.arange(p), :, k]
        z = encode_factors(encode, dataset, np.concatenate([f1, f2]).reshape(2 * p * batch_size, -1))
        z1, z2 = z.reshape(2, p, batch_size, -1)
        features.append(np.abs(z1 - z2).mean(axis=1))
        labels.append(k)
    return np.concatenate(features), np.concatenate(labels)


def beta_vae_score(
    encode: Encoder,
    dataset: Any,
    *,
    seed: int = 0,
    batch_size: int = BATCH_SIZE,
    num_train: int = NUM_TRAIN,
    num_eval: int = NUM_EVAL,
) -> float:
    """Higgins et al. 2017 beta-VAE score: held-out accuracy of a logistic regression (see module doc).

    encode: numpy images (n, C, H, W) -> (n, D) numpy codes.
    dataset: a GroundTruthDataset (sample_factors, images_from_factors, factor_sizes).
    """
    from sklearn.linear_model import LogisticRegression

    _check(dataset, batch_size=(batch_size, 1), num_train=(num_train, 1), num_eval=(num_eval, 1))
    rng = np.random.default_rng(seed)
    x_train, y_train = _beta_vae_points(encode, dataset, num_train, batch_size, rng)
    x_eval, y_eval = _beta_vae_points(encode, dataset, num_eval, batch_size, rng)
    if len(np.unique(y_train)) < 2:  # one class only (tiny num_train): predict it
        return float(np.mean(y_eval == y_train[0]))
    model = LogisticRegression(max_iter=LOGREG_MAX_ITER)
    model.fit(x_train, y_train)
    return float(model.score(x_eval, y_eval))


def _factor_vae_votes(encode: Encoder, dataset: Any, num_points: int, batch_size: int, rng: np.random.Generator,
                      global_variances: np.ndarray, active: np.ndarray) -> np.ndarray:
    """(K, D) vote counts: votes[k, d] = points with factor k fixed whose argmin normalised variance is d."""
    num_factors = len(dataset.factor_sizes)
    votes = np.zeros((num_factors, len(global_variances)), dtype=np.int64)
    active_dims = np.flatnonzero(active)
    points_per_block = max(1, IMAGES_PER_BLOCK // batch_size)
    for start in range(0, num_points, points_per_block):
        p = min(points_per_block, num_points - start)
        k = rng.integers(0, num_factors, size=p)
        f = dataset.sample_factors(p * batch_size, rng).reshape(p, batch_size, -1)
        f[np.arange(p), :, k] = f[np.arange(p), 0, k][:, None]
        z = encode_factors(encode, dataset, f.reshape(p * batch_size, -1)).reshape(p, batch_size, -1)
        local = z[:, :, active_dims].var(axis=1, ddof=1) / global_variances[active_dims]
        np.add.at(votes, (k, active_dims[np.argmin(local, axis=1)]), 1)
    return votes


def factor_vae_score(
    encode: Encoder,
    dataset: Any,
    *,
    seed: int = 0,
    batch_size: int = BATCH_SIZE,
    num_train: int = NUM_TRAIN,
    num_eval: int = NUM_EVAL,
    num_variance_estimate: int = NUM_VARIANCE_ESTIMATE,
    prune_threshold: float = PRUNE_THRESHOLD,
) -> float:
    """Kim & Mnih 2018 FactorVAE score: held-out accuracy of the majority-vote classifier (see module doc).

    Returns 0.0 when every dimension is collapsed (global std < prune_threshold), as
    disentanglement_lib does.
    """
    _check(dataset, batch_size=(batch_size, 2), num_train=(num_train, 1), num_eval=(num_eval, 1),
           num_variance_estimate=(num_variance_estimate, 2))
    rng = np.random.default_rng(seed)
    z = encode_factors(encode, dataset, dataset.sample_factors(num_variance_estimate, rng))
    global_variances = z.var(axis=0, ddof=1)
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        return 0.0
    train = _factor_vae_votes(encode, dataset, num_train, batch_size, rng, global_variances, active)
    classifier = np.argmax(train, axis=0)  # majority factor of each dimension
    held_out = _factor_vae_votes(encode, dataset, num_eval, batch_size, rng, global_variances, active)
    return float(held_out[classifier, np.arange(held_out.shape[1])].sum() / held_out.sum())


def model_encoder(model: EncodingModel, device: torch.device | str = "cpu",
                  batch_size: int = ENCODE_BATCH) -> Encoder:
    """numpy images -> (n, D) float64 posterior means of `model`, in batches, without gradients."""

    def encode(images: np.ndarray) -> np.ndarray:
        return encode_in_batches(model, images, device, batch_size)[0].numpy()

    return encode


def _sample_count(key: str, default: int, doc: str, maximum: int = 1_000_000) -> Param:
    """A count of points or images; bounded, so a value the evaluation could not hold is refused at load."""
    return Param(key, default, minimum=1, maximum=maximum, doc=doc)


@register_metric(
    "beta_vae", family="disentanglement",
    description="beta-VAE score (Higgins et al. 2017): accuracy of a linear classifier of the fixed factor",
    values=[MetricValue("beta_vae", higher_is_better=True)], needs_factors=True,
    # pairs of batches for every training and evaluation point
    images_drawn=lambda p: 2 * p["beta_vae_batch_size"] * (p["beta_vae_num_train"] + p["beta_vae_num_eval"]),
    params=[
        _sample_count("beta_vae_batch_size", BATCH_SIZE, "pairs per training point", maximum=10_000),
        _sample_count("beta_vae_num_train", NUM_TRAIN, "training points"),
        _sample_count("beta_vae_num_eval", NUM_EVAL, "evaluation points"),
    ],
    abs_tol=1e-2, rel_tol=0.0,
)
def _beta_vae(ctx: EvaluationContext) -> dict[str, float]:
    p = ctx.params
    score = beta_vae_score(
        model_encoder(ctx.model, ctx.device), ctx.dataset, seed=ctx.seed, batch_size=p["beta_vae_batch_size"],
        num_train=p["beta_vae_num_train"], num_eval=p["beta_vae_num_eval"],
    )
    return {"beta_vae": score}


@register_metric(
    "factor_vae", family="disentanglement",
    description="FactorVAE score (Kim & Mnih 2018): majority-vote accuracy on the least-varying code",
    values=[MetricValue("factor_vae", higher_is_better=True)], needs_factors=True,
    images_drawn=lambda p: (p["factor_vae_batch_size"] * (p["factor_vae_num_train"] + p["factor_vae_num_eval"])
                            + p["factor_vae_num_variance_estimate"]),
    params=[
        _sample_count("factor_vae_batch_size", BATCH_SIZE, "images per vote", maximum=10_000),
        _sample_count("factor_vae_num_train", NUM_TRAIN, "training votes"),
        _sample_count("factor_vae_num_eval", NUM_EVAL, "evaluation votes"),
        _sample_count("factor_vae_num_variance_estimate", NUM_VARIANCE_ESTIMATE, "images for the global variances"),
    ],
    abs_tol=1e-2, rel_tol=0.0,
)
def _factor_vae(ctx: EvaluationContext) -> dict[str, float]:
    p = ctx.params
    score = factor_vae_score(
        model_encoder(ctx.model, ctx.device), ctx.dataset, seed=ctx.seed, batch_size=p["factor_vae_batch_size"],
        num_train=p["factor_vae_num_train"], num_eval=p["factor_vae_num_eval"],
        num_variance_estimate=p["factor_vae_num_variance_estimate"],
    )
    return {"factor_vae": score}
