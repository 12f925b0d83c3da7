"""FID and KID in a named feature network, for generated samples and for reconstructions.

Frechet distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge
to a Local Nash Equilibrium") between Gaussians fitted to the features of two image sets::

    FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

Kernel distance (Binkowski et al. 2018, "Demystifying MMD GANs"): the unbiased MMD^2 with the
cubic polynomial kernel k(a, b) = (a.b / F + 1)^3 on F-d features, averaged over
``KID_SUBSETS`` random subsets of ``KID_SUBSET_SIZE`` images of each set.

Both are computed here, in float64, by :func:`frechet_distance` and :func:`kernel_distance`
(tests check them against a closed form and against torchmetrics' public
``FrechetInceptionDistance`` / ``KernelInceptionDistance`` on the same features), so the real
images' statistics can be cached and reused without reaching into a library's private state.
KID draws its subsets as torchmetrics does (``randperm`` of the real, then of the fake
features, per subset), from a private generator seeded with the evaluation seed. The feature network
(see :mod:`vaebench.metrics.feature_network`) is by default a classifier trained on the
dataset itself; ``feature_network = "inception"`` with ``inception_weights = PATH`` uses a
user's InceptionV3 TorchScript file for the standard 2048-d FID.

Registered values (lower is better; real = the test images):

    fid, kid              real vs generated: z ~ N(0, I) decoded to the likelihood's mean image
    fid_recon, kid_recon  real vs reconstructions: the mean image decoded from the posterior mean

Generated and reconstructed images are clipped to [0, 1], the range of real images. The
real features and their statistics (mean, covariance) are cached per dataset, test subset
and feature network, on disk under ``<cache_dir>/fid_stats/`` and in the process. Each value's
note is ``feature=<name>:<hash>``. The same decoding pass and features serve precision, recall,
density and coverage (:mod:`vaebench.metrics.prdc`). FID is biased upward for small sample sizes: compare
values computed with the same ``fid_images``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vaebench.cache import load_entry, store_entry
from vaebench.errors import ConfigError
from vaebench.files import content_hash
from vaebench.metrics.feature_network import (
    FEATURE_NETWORKS,
    SEED as FEATURE_SEED,
    TRAIN_STEPS as FEATURE_STEPS,
    FeatureNetwork,
    torchscript_feature_network,
    trained_feature_network,
)
from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric
from vaebench.params import Param

FID_IMAGES = 10_000  # real test images (a fixed random subset of a larger split) and as many samples
KID_SUBSETS = 100  # torchmetrics' and Binkowski et al.'s defaults
KID_SUBSET_SIZE = 1_000  # capped at the number of images
KID_DEGREE = 3
BATCH_SIZE = 500  # images decoded and passed through the feature network at once
SUBSET_SEED = 0  # which test images when fid_images < the test split: the same for every run

ArrayLike = np.ndarray | torch.Tensor


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), in float64.

    Tr((sigma1 sigma2)^(1/2)) is the sum of the square roots of the eigenvalues of
    sigma1 sigma2 (real and >= 0 for covariance matrices; round-off imaginary parts and
    tiny negative values are dropped).
    """
    m1, s1, m2, s2 = (torch.as_tensor(a, dtype=torch.float64) for a in (mu1, sigma1, mu2, sigma2))
    eigenvalues = torch.linalg.eigvals(s1 @ s2)
    trace_sqrt = eigenvalues.sqrt().real.sum()
    return float((m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * trace_sqrt)


def polynomial_mmd(a: torch.Tensor, b: torch.Tensor, degree: int = KID_DEGREE) -> float:
    """Unbiased MMD^2 with the kernel k(x, y) = (x.y / F + 1)^degree between (m, F) and (m, F) features:

        1/(m(m-1)) sum_{i != j} [k(a_i, a_j) + k(b_i, b_j)] - 2/m^2 sum_{i, j} k(a_i, b_j)
    """
    features = a.shape[1]
    k_aa = (a @ a.T / features + 1) ** degree
    k_bb = (b @ b.T / features + 1) ** degree
    k_ab = (a @ b.T / features + 1) ** degree
    m = a.shape[0]
    within = (k_aa.sum() - k_aa.diagonal().sum() + k_bb.sum() - k_bb.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * k_ab.sum() / (m * m))


def kernel_distance(real_features: ArrayLike, fake_features: ArrayLike, *, subsets: int = KID_SUBSETS,
                    subset_size: int = KID_SUBSET_SIZE, degree: int = KID_DEGREE, seed: int = 0) -> float:
    """KID: the mean of :func:`polynomial_mmd` over `subsets` random subsets of `subset_size` rows of each set.

    subset_size is capped at the smaller set; subsets are drawn by torch.randperm from a
    generator seeded with `seed` (the real subset first, then the fake, per subset).
    """
    real = torch.as_tensor(real_features, dtype=torch.float64)
    fake = torch.as_tensor(fake_features, dtype=torch.float64)
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError(f"KID needs at least 2 images in each set, got {len(real)} and {len(fake)}")
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        real_subset = real[torch.randperm(len(real), generator=generator)[:size]]
        fake_subset = fake[torch.randperm(len(fake), generator=generator)[:size]]
        values.append(polynomial_mmd(real_subset, fake_subset, degree))
    return float(np.mean(values))


def feature_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and unbiased covariance (F, F) of (N, F) features, float64."""
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False, ddof=1)


@torch.no_grad()
def extract_features(network: FeatureNetwork | nn.Module, images: ArrayLike, *, batch_size: int = BATCH_SIZE,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, F) float32 CPU features of images (N, C, H, W) in [0, 1], in batches."""
    module = network.module if isinstance(network, FeatureNetwork) else network
    module = module.to(device)
    x = torch.as_tensor(images)
    return torch.cat([module(x[s : s + batch_size].to(device)).float().cpu() for s in range(0, len(x), batch_size)])


@dataclass(frozen=True)
class RealStatistics:
    """Features of the real images in one feature network, and their mean and covariance (float64)."""

    features: torch.Tensor
    mean: torch.Tensor
    cov: torch.Tensor

    @classmethod
    def from_features(cls, features: torch.Tensor) -> RealStatistics:
        mean, cov = feature_statistics(features)
        return cls(features.float(), torch.from_numpy(mean), torch.from_numpy(cov))


_REAL_STATISTICS: dict[tuple[str, str, str], RealStatistics] = {}


def real_statistics(network: FeatureNetwork, images: ArrayLike, *, key: str, cache_dir: Path | str | None = None,
                    batch_size: int = BATCH_SIZE, device: torch.device | str = "cpu") -> RealStatistics:
    """The real images' features and statistics: from this process, else `cache_dir`, else computed.

    key: names the image set (e.g. a hash of the dataset description and indices); the cache
    is per (network name, network hash, key).
    """
    path = None if cache_dir is None else Path(cache_dir) / "fid_stats" / f"{network.name}-{network.hash}-{key}.pt"
    memo = (network.tag, key, str(path))
    if memo in _REAL_STATISTICS:
        return _REAL_STATISTICS[memo]
    stored = load_entry(path, f"{network.tag}:{key}") if path is not None else None
    if stored is not None:
        stats = RealStatistics(stored["features"], stored["mean"], stored["cov"])
    else:
        stats = RealStatistics.from_features(extract_features(network, images, batch_size=batch_size, device=device))
        if path is not None:
            entry = {"features": stats.features, "mean": stats.mean, "cov": stats.cov}
            store_entry(path, f"{network.tag}:{key}", entry)
    _REAL_STATISTICS[memo] = stats
    return stats


class DistanceAccumulator:
    """FID and KID of fake images, fed in batches, against fixed real statistics.

    The fake images' features are extracted once per batch and kept (KID needs them; FID
    needs their mean and covariance), so one decoding pass serves both distances.
    """

    def __init__(self, network: FeatureNetwork, real: RealStatistics, *, kid_subsets: int = KID_SUBSETS,
                 kid_subset_size: int = KID_SUBSET_SIZE, device: torch.device | str = "cpu"):
        if len(real.features) < 2:
            raise ValueError(f"need at least 2 real images, got {len(real.features)}")
        self.module = network.module.to(device)
        self.real = real
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        self._fake: list[torch.Tensor] = []

    @torch.no_grad()
    def update(self, fake_images: torch.Tensor) -> None:
        self._fake.append(self.module(fake_images).double().cpu())

    @property
    def fake_features(self) -> torch.Tensor:
        return torch.cat(self._fake)

    def fid_value(self) -> float:
        mean, cov = feature_statistics(self.fake_features)
        return frechet_distance(self.real.mean, self.real.cov, mean, cov)

    def kid_value(self, seed: int) -> float:
        return kernel_distance(self.real.features, self.fake_features, subsets=self.kid_subsets,
                               subset_size=self.kid_subset_size, seed=seed)


def _as_batches(images: ArrayLike, batch_size: int) -> Iterator[torch.Tensor]:
    x = torch.as_tensor(images)
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size]


def frechet_inception_distance(real_images: ArrayLike, fake_images: ArrayLike, network: FeatureNetwork, *,
                               batch_size: int = BATCH_SIZE, device: torch.device | str = "cpu") -> float:
    """FID between two image sets (N, C, H, W) in [0, 1] in the feature network (no caching)."""
    real = RealStatistics.from_features(extract_features(network, real_images, batch_size=batch_size, device=device))
    acc = DistanceAccumulator(network, real, device=device)
    for batch in _as_batches(fake_images, batch_size):
        acc.update(batch.to(device))
    return acc.fid_value()


def kernel_inception_distance(real_images: ArrayLike, fake_images: ArrayLike, network: FeatureNetwork, *,
                              subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = 0,
                              batch_size: int = BATCH_SIZE, device: torch.device | str = "cpu") -> float:
    """KID (mean over subsets) between two image sets in the feature network (no caching)."""
    real = RealStatistics.from_features(extract_features(network, real_images, batch_size=batch_size, device=device))
    acc = DistanceAccumulator(network, real, kid_subsets=subsets, kid_subset_size=subset_size, device=device)
    for batch in _as_batches(fake_images, batch_size):
        acc.update(batch.to(device))
    return acc.kid_value(seed)


# [evaluation.params] keys of the feature pass: which feature network, and how many images
FEATURE_PARAMS = (
    Param("feature_network", "auto", choices=("auto", *FEATURE_NETWORKS),
          doc="'trained' (a classifier trained on the dataset), 'inception' (needs inception_weights); "
          "auto: inception when inception_weights is set"),
    Param("inception_weights", None, type=str, existing_file=True, doc="path of an InceptionV3 TorchScript file"),
    Param("feature_network_steps", FEATURE_STEPS, minimum=1, maximum=1_000_000,
          doc="training steps of the trained feature network"),
    Param("feature_network_seed", FEATURE_SEED, minimum=0, doc="seed of the trained feature network"),
    Param("fid_images", FID_IMAGES, minimum=2, doc="real test images (a fixed subset) and as many generated"),
)
KID_PARAMS = (
    Param("kid_subsets", KID_SUBSETS, minimum=1, maximum=10_000, doc="random subsets averaged"),
    Param("kid_subset_size", KID_SUBSET_SIZE, minimum=2, doc="images per subset (capped at the set sizes)"),
)


# the one decoding pass fid, kid and prdc share (`feature_pass`) reads all of these, so each of them declares them
FEATURE_PASS_PARAMS = FEATURE_PARAMS + KID_PARAMS


def feature_network_from_params(params: Mapping[str, Any], dataset: Any, cache_dir: Path | str) -> FeatureNetwork:
    """The feature network that `params` name: a metric's parameters, complete and checked (the
    FEATURE_PARAMS keys are read, others ignored)."""
    weights = params["inception_weights"]
    kind = params["feature_network"]
    if kind == "auto":
        kind = "inception" if weights else "trained"
    if kind == "inception":
        if not weights:
            raise ConfigError("feature_network 'inception' needs the path of a TorchScript file",
                              key="evaluation.params.inception_weights")
        return torchscript_feature_network(weights, tuple(dataset.image_shape))
    return trained_feature_network(
        dataset, cache_dir, steps=params["feature_network_steps"], seed=params["feature_network_seed"]
    )


def _image_set_key(dataset: Any, indices: np.ndarray) -> str:
    indices_sha256 = hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()
    return content_hash({"dataset": dataset.describe(), "indices_sha256": indices_sha256})


@torch.no_grad()
def feature_pass(ctx: EvaluationContext) -> dict[str, Any]:
    """One decoding pass shared by fid, kid and prdc: accumulators for generated and reconstructed images.

    Returns (and caches in ``ctx.cache["fid_kid"]``) {"network": the FeatureNetwork, "real": the
    RealStatistics of the chosen test images, "generated" / "reconstructed": DistanceAccumulators
    holding the fake images' features}.
    """
    if "fid_kid" in ctx.cache:
        return ctx.cache["fid_kid"]
    p = ctx.params
    network = feature_network_from_params(p, ctx.dataset, ctx.cache_dir)
    n_test = len(ctx.test_images)
    n = min(p["fid_images"], n_test)
    chosen = np.arange(n_test)
    if n < n_test:
        chosen = np.sort(np.random.default_rng(SUBSET_SEED).choice(n_test, size=n, replace=False))
    real_images = ctx.test_images[torch.from_numpy(chosen)]
    real = real_statistics(network, real_images, key=_image_set_key(ctx.dataset, ctx.test_indices[chosen]),
                           cache_dir=ctx.cache_dir, device=ctx.device)
    kid_args = {"kid_subsets": p["kid_subsets"], "kid_subset_size": p["kid_subset_size"]}
    generated = DistanceAccumulator(network, real, device=ctx.device, **kid_args)
    reconstructed = DistanceAccumulator(network, real, device=ctx.device, **kid_args)
    model = ctx.model
    generator = torch.Generator(device="cpu").manual_seed(ctx.seed)
    latent_dim = ctx.mu.shape[1]
    # the reconstructions decode the posterior means the harness already computed (no second encoding)
    means = torch.as_tensor(ctx.mu[chosen], dtype=torch.float32)
    for start in range(0, n, BATCH_SIZE):
        z = torch.randn((len(means[start : start + BATCH_SIZE]), latent_dim), generator=generator).to(ctx.device)
        generated.update(model.likelihood.mean(model.decode(z)).clamp(0, 1))
        mean_codes = means[start : start + BATCH_SIZE].to(ctx.device)
        reconstructed.update(model.likelihood.mean(model.decode(mean_codes)).clamp(0, 1))
    ctx.cache["fid_kid"] = {"network": network, "real": real, "generated": generated, "reconstructed": reconstructed}
    return ctx.cache["fid_kid"]


def _note(ctx: EvaluationContext, network: FeatureNetwork, *names: str) -> None:
    for name in names:
        ctx.notes[name] = f"feature={network.tag}"


@register_metric(
    "fid", needs_decoder=True, family="sample_quality",
    description="Frechet distance of test images to generated (fid) and reconstructed (fid_recon) images, "
    "in a named feature network",
    values=[MetricValue("fid", higher_is_better=False), MetricValue("fid_recon", higher_is_better=False)],
    params=FEATURE_PASS_PARAMS, abs_tol=1e-3, rel_tol=1e-3, min_images=2,  # a covariance of the real images' features
)
def _fid(ctx: EvaluationContext) -> dict[str, float]:
    state = feature_pass(ctx)
    _note(ctx, state["network"], "fid", "fid_recon")
    return {"fid": state["generated"].fid_value(), "fid_recon": state["reconstructed"].fid_value()}


@register_metric(
    "kid", needs_decoder=True, family="sample_quality",
    description="kernel (polynomial MMD^2) distance of test images to generated (kid) and reconstructed "
    "(kid_recon) images, in a named feature network",
    values=[MetricValue("kid", higher_is_better=False), MetricValue("kid_recon", higher_is_better=False)],
    params=FEATURE_PASS_PARAMS, abs_tol=1e-4, rel_tol=1e-3, min_images=2,  # the unbiased MMD
)
def _kid(ctx: EvaluationContext) -> dict[str, float]:
    state = feature_pass(ctx)
    _note(ctx, state["network"], "kid", "kid_recon")
    return {"kid": state["generated"].kid_value(ctx.seed), "kid_recon": state["reconstructed"].kid_value(ctx.seed)}
