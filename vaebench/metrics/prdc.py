"""Precision, recall, density and coverage of generated and reconstructed images, in FID's feature network.

FID folds fidelity (are the samples like real images?) and diversity (do the samples cover the
real images?) into one number; a VAE's blurry samples fail on fidelity in ways it hides. These
four values separate the two, from k-nearest-neighbour balls in feature space. With real
features X_1..X_N, fake features Y_1..Y_M and NND_k(x) the distance from x to its k-th nearest
neighbour in its own set (the point itself not counted)::

    precision = 1/M  sum_j 1[ exists i: ||Y_j - X_i|| < NND_k(X_i) ]     fake inside the real manifold
    recall    = 1/N  sum_i 1[ exists j: ||X_i - Y_j|| < NND_k(Y_j) ]     real inside the fake manifold
    density   = 1/(kM) sum_j sum_i 1[ ||Y_j - X_i|| < NND_k(X_i) ]       how many real balls hold each fake
    coverage  = 1/N  sum_i 1[ exists j: ||X_i - Y_j|| < NND_k(X_i) ]     real balls holding a fake

Precision and recall: Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for
Assessing Generative Models" (NeurIPS). Density and coverage: Naeem et al. 2020, "Reliable
Fidelity and Diversity Metrics for Generative Models" (ICML), whose authors' package ``prdc``
(PyPI, NAVER) is the reference the tests run on the same features. Precision is the *fake*
samples' fidelity and recall the *real* samples' coverage: a generator that drops a mode loses
recall and coverage, not precision (torch-fidelity had the two swapped, its issue 58; a test
here keeps them the right way round). Precision, recall and coverage lie in [0, 1]; density is
unbounded above, about 1 when the two sets come from one distribution (exactly 1 for two copies
of one set of distinct points), above 1 when the fakes crowd where real images are dense.

Registered as ``prdc`` (higher is better; real = FID's test images):

    precision, recall, density, coverage                   real vs generated (z ~ N(0, I) decoded)
    precision_recon, recall_recon, density_recon, coverage_recon   real vs reconstructions

on exactly the images and features FID uses: the same feature network (``feature_network``,
default the classifier trained on the dataset), the same ``fid_images`` test images and as
many generated and reconstructed images, from the one decoding pass FID and KID share
(:func:`vaebench.metrics.fid.feature_pass`). Each value's note is ``feature=<name>:<hash> k=<k>``.

Defaults: ``prdc_nearest_k`` = NEAREST_K = 5, the value both papers recommend (Naeem et al.
with 10,000 real and fake images, FID's default ``fid_images`` here).

Departures and choices:

- Balls are open (``<``), as in the authors' ``prdc`` package; both papers write the closed ball
  (``<=``, also Kynkaanniemi et al.'s own code). The two differ only on exact ties; a set whose
  points repeat (a collapsed decoder that maps every z to one image) has radius 0 and so an
  empty manifold here: its recall is 0.
- Distances are Euclidean in float64 (``||a||^2 + ||b||^2 - 2 a.b``, clipped at 0, as
  scikit-learn's ``pairwise_distances``, which the package calls), computed in row blocks of at
  most CHUNK_ELEMENTS entries instead of the package's full N x M matrices (10,000 x 10,000
  float64 is 800 MB), so memory stays bounded; the values are the same.
- The real images' radii are computed once per evaluation and shared by the generated and the
  reconstructed values.
- Like FID, the values depend on the sample size and on the feature network: compare values
  computed with the same ``fid_images``, ``prdc_nearest_k`` and network.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from vaebench.errors import ConfigError
from vaebench.metrics.fid import FEATURE_PASS_PARAMS, feature_pass
from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric
from vaebench.params import Param

NEAREST_K = 5  # Kynkaanniemi et al. 2019 and Naeem et al. 2020 (prdc's README)
CHUNK_ELEMENTS = 1 << 22  # distance-matrix entries held at once (32 MiB of float64)

VALUE_NAMES = ("precision", "recall", "density", "coverage")

ArrayLike = np.ndarray | torch.Tensor


def _as_features(features: ArrayLike, what: str) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"{what} features must be a 2-d (N, F) array, got shape {f.shape}")
    return f


def _distance_blocks(a: np.ndarray, b: np.ndarray, *, same: bool = False) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, Euclidean distances of a[rows] to every row of b) in blocks of rows.

    same: `b` is `a`; the self-distances (the diagonal) are set to 0, as scikit-learn does.
    """
    a_sq = np.einsum("ij,ij->i", a, a)
    b_sq = a_sq if same else np.einsum("ij,ij->i", b, b)
    step = max(1, CHUNK_ELEMENTS // max(1, len(b)))
    for start in range(0, len(a), step):
        rows = slice(start, min(start + step, len(a)))
        d = a[rows] @ b.T
        d *= -2.0
        d += a_sq[rows, None]
        d += b_sq[None, :]
        np.maximum(d, 0.0, out=d)
        np.sqrt(d, out=d)
        if same:
            idx = np.arange(rows.start, rows.stop)
            d[idx - rows.start, idx] = 0.0
        yield rows, d


def nearest_neighbour_radii(features: ArrayLike, nearest_k: int = NEAREST_K) -> np.ndarray:
    """(N,) distance of each row to its `nearest_k`-th nearest other row (NND_k), float64.

    The (k+1)-th smallest distance of the row, its own distance 0 included, so a repeated point
    counts as a neighbour at distance 0.
    """
    f = _as_features(features, "the")
    if nearest_k < 1 or len(f) <= nearest_k:
        raise ValueError(f"the k-th nearest neighbour needs 1 <= k < N, got k={nearest_k} and N={len(f)}")
    radii = np.empty(len(f))
    for rows, d in _distance_blocks(f, f, same=True):
        radii[rows] = np.partition(d, nearest_k, axis=1)[:, nearest_k]
    return radii


def precision_recall_density_coverage(real_features: ArrayLike, fake_features: ArrayLike, *,
                                      nearest_k: int = NEAREST_K,
                                      real_radii: np.ndarray | None = None) -> dict[str, float]:
    """{"precision", "recall", "density", "coverage"} of fake (M, F) against real (N, F) features.

    The formulas are in the module docstring. real_radii: the real features'
    :func:`nearest_neighbour_radii` for this `nearest_k`, when already computed (reused, not checked).
    """
    real = _as_features(real_features, "real")
    fake = _as_features(fake_features, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake features differ in width: {real.shape[1]} and {fake.shape[1]}")
    if real_radii is None:
        real_radii = nearest_neighbour_radii(real, nearest_k)
    elif len(real_radii) != len(real):
        raise ValueError(f"{len(real_radii)} real radii for {len(real)} real features")
    fake_radii = nearest_neighbour_radii(fake, nearest_k)
    balls_holding = np.zeros(len(fake), dtype=np.int64)  # per fake: real balls it lies in
    recalled = np.zeros(len(real), dtype=bool)
    covered = np.zeros(len(real), dtype=bool)
    for rows, d in _distance_blocks(real, fake):
        inside_real_balls = d < real_radii[rows, None]
        balls_holding += inside_real_balls.sum(axis=0)
        covered[rows] = inside_real_balls.any(axis=1)
        recalled[rows] = (d < fake_radii[None, :]).any(axis=1)
    return {
        "precision": float((balls_holding > 0).mean()),
        "recall": float(recalled.mean()),
        "density": float(balls_holding.sum() / (nearest_k * len(fake))),
        "coverage": float(covered.mean()),
    }


PRDC_PARAMS = (
    Param("prdc_nearest_k", NEAREST_K, minimum=1,
          doc="k of the k-nearest-neighbour balls of precision, recall, density and coverage"),
)


def _real_radii(ctx: EvaluationContext, real_features: torch.Tensor, nearest_k: int) -> np.ndarray:
    key = ("prdc_real_radii", nearest_k)
    if key not in ctx.cache:
        ctx.cache[key] = nearest_neighbour_radii(real_features, nearest_k)
    return ctx.cache[key]


@register_metric(
    "prdc", needs_decoder=True, family="sample_quality",
    description="precision, recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020) of "
    "generated and reconstructed (_recon) images against test images, in FID's feature network",
    values=[MetricValue(f"{name}{suffix}", higher_is_better=True)
            for suffix in ("", "_recon") for name in VALUE_NAMES],
    params=FEATURE_PASS_PARAMS + PRDC_PARAMS, abs_tol=1e-3, rel_tol=1e-3,
)
def _prdc(ctx: EvaluationContext) -> dict[str, float]:
    k = ctx.params["prdc_nearest_k"]
    state: dict[str, Any] = feature_pass(ctx)
    real = state["real"].features
    if len(real) <= k:
        raise ConfigError(f"must be less than the {len(real)} images scored (fid_images and the test split), "
                          f"got {k}", key="evaluation.params.prdc_nearest_k")
    radii = _real_radii(ctx, real, k)
    values: dict[str, float] = {}
    for suffix, accumulator in (("", state["generated"]), ("_recon", state["reconstructed"])):
        scores = precision_recall_density_coverage(real, accumulator.fake_features, nearest_k=k, real_radii=radii)
        for name, value in scores.items():
            values[name + suffix] = value
            ctx.notes[name + suffix] = f"feature={state['network'].tag} k={k}"
    return values
