"""FID and KID in a named feature network, for generated samples and for reconstructions.

Frechet distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge
to a Local Nash Equilibrium") between Gaussians fitted to the features of two image sets::

    FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

Kernel distance (Binkowski et al. 2018, "Demystifying MMD GANs"): the unbiased MMD^2 with the
cubic polynomial kernel k(a, b) = (a.b / F + 1)^3 on F-d features, averaged over
``KID_SUBSETS`` random subsets of ``KID_SUBSET_SIZE`` images of each set.

Both go through torchmetrics (``FrechetInceptionDistance`` / ``KernelInceptionDistance``)
with a custom feature module (``feature=<nn.Module>``), which torchmetrics accepts without
torch-fidelity; the Frechet formula is torchmetrics' ``_compute_fid``, which
:func:`frechet_distance` also calls, so there is one implementation. The feature network
(see :mod:`vaebench.metrics.feature_network`) is by default a classifier trained on the
dataset itself; ``feature_network = "inception"`` with ``inception_weights = PATH`` uses a
user's InceptionV3 TorchScript file for the standard 2048-d FID.

Registered values (lower is better; real = the test images):

    fid, kid              real vs generated: z ~ N(0, I) decoded to the likelihood's mean image
    fid_recon, kid_recon  real vs reconstructions: the mean image decoded from the posterior mean

Generated and reconstructed images are clipped to [0, 1], the range of real images. The
real features and their statistics (mean, covariance) are cached per dataset, test subset
and feature network, on disk under ``<cache_dir>/fid_stats/`` and in the process. Each value's
note is ``feature=<name>:<hash>``. FID is biased upward for small sample sizes: compare
values computed with the same ``fid_images``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance, _compute_fid
from torchmetrics.image.kid import KernelInceptionDistance

from vaebench.errors import ConfigError
from vaebench.metrics.feature_network import (
    FEATURE_DIM,
    FEATURE_NETWORKS,
    SEED as FEATURE_SEED,
    TRAIN_STEPS as FEATURE_STEPS,
    FeatureNetwork,
    torchscript_feature_network,
    trained_feature_network,
)
from vaebench.metrics.registry import EvaluationContext, MetricInfo, register_metric

FEATURE_NETWORK = "trained"  # or "inception" (with inception_weights = PATH)
FID_IMAGES = 10_000  # real test images (a fixed random subset of a larger split) and as many samples
KID_SUBSETS = 100  # torchmetrics' and Binkowski et al.'s defaults
KID_SUBSET_SIZE = 1_000  # capped at the number of images
KID_DEGREE = 3
BATCH_SIZE = 500  # images decoded and passed through the feature network at once
SUBSET_SEED = 0  # which test images when fid_images < the test split: the same for every run

ArrayLike = np.ndarray | torch.Tensor


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), in float64.

    The trace of the matrix square root is the sum of the square roots of the eigenvalues
    of sigma1 sigma2 (torchmetrics' ``_compute_fid``, the formula FrechetInceptionDistance uses).
    """
    args = [torch.as_tensor(a, dtype=torch.float64) for a in (mu1, sigma1, mu2, sigma2)]
    return float(_compute_fid(*args))


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
    def from_features(cls, features: torch.Tensor) -> "RealStatistics":
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
    if path is not None and path.exists():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        stats = RealStatistics(stored["features"], stored["mean"], stored["cov"])
    else:
        stats = RealStatistics.from_features(extract_features(network, images, batch_size=batch_size, device=device))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            torch.save({"features": stats.features, "mean": stats.mean, "cov": stats.cov, "network": network.tag}, tmp)
            os.replace(tmp, path)
    _REAL_STATISTICS[memo] = stats
    return stats


class _OncePerBatch(nn.Module):
    """The feature module shared by a FID and a KID metric: the second call on the same batch reuses the first's output."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.inner = module
        self.num_features = int(module.num_features)
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._last is None or self._last[0] is not x:
            self._last = (x, self.inner(x))
        return self._last[1]

    def forget(self) -> None:
        self._last = None


class DistanceAccumulator:
    """FID and KID of fake images, fed in batches, against fixed real statistics, through torchmetrics.

    The real statistics are loaded into the metrics' state (torchmetrics keeps them across
    resets with reset_real_features=False), so real images are never re-encoded.
    """

    def __init__(self, network: FeatureNetwork, real: RealStatistics, *, kid: bool = True,
                 kid_subsets: int = KID_SUBSETS, kid_subset_size: int = KID_SUBSET_SIZE,
                 device: torch.device | str = "cpu"):
        device = torch.device(device)
        shared = self._shared = _OncePerBatch(network.module).to(device)
        n = len(real.features)
        if n < 2:
            raise ValueError(f"need at least 2 real images, got {n}")
        self.fid = FrechetInceptionDistance(feature=shared, reset_real_features=False, normalize=True).to(device)
        mean, cov = real.mean.to(device), real.cov.to(device)
        self.fid.real_features_sum = n * mean
        self.fid.real_features_cov_sum = (n - 1) * cov + n * torch.outer(mean, mean)
        self.fid.real_features_num_samples = torch.tensor(n, device=device)
        self.kid: KernelInceptionDistance | None = None
        if kid:
            with warnings.catch_warnings():  # "will save all extracted features in buffer": intended
                warnings.simplefilter("ignore", UserWarning)
                self.kid = KernelInceptionDistance(feature=shared, subsets=kid_subsets, subset_size=kid_subset_size,
                                                   degree=KID_DEGREE, reset_real_features=False,
                                                   normalize=True).to(device)
            self.kid.real_features.append(real.features.to(device))
        self.num_real = n
        self.num_fake = 0

    @torch.no_grad()
    def update(self, fake_images: torch.Tensor) -> None:
        self.fid.update(fake_images, real=False)
        if self.kid is not None:
            self.kid.update(fake_images, real=False)
        self.num_fake += len(fake_images)

    def release_batch(self) -> None:
        """Drop the reference to the last batch (kept so FID and KID extract its features once)."""
        self._shared.forget()

    def fid_value(self) -> float:
        return float(self.fid.compute())

    def kid_value(self, seed: int) -> float:
        """Mean MMD^2 over the subsets; subsets drawn by torch's CPU generator seeded with `seed` in a fork.

        torchmetrics draws the subsets with torch.randperm on the global generator; the fork
        restores the global state afterwards, so the value depends on `seed` only.
        """
        if self.kid is None:
            raise RuntimeError("built with kid=False")
        self.kid.subset_size = min(self.kid.subset_size, self.num_real, self.num_fake)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            mean, _ = self.kid.compute()
        return float(mean)


def _as_batches(images: ArrayLike, batch_size: int):
    x = torch.as_tensor(images)
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size]


def frechet_inception_distance(real_images: ArrayLike, fake_images: ArrayLike, network: FeatureNetwork, *,
                               batch_size: int = BATCH_SIZE, device: torch.device | str = "cpu") -> float:
    """FID between two image sets (N, C, H, W) in [0, 1] in the feature network (no caching)."""
    real = RealStatistics.from_features(extract_features(network, real_images, batch_size=batch_size, device=device))
    acc = DistanceAccumulator(network, real, kid=False, device=device)
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


def feature_network_from_params(params: dict[str, Any], dataset: Any, cache_dir: Path | str) -> FeatureNetwork:
    """The feature network a run's metric parameters name (see the module doc for the keys)."""
    weights = params.get("inception_weights")
    kind = params.get("feature_network", "inception" if weights else FEATURE_NETWORK)
    if kind not in FEATURE_NETWORKS:
        raise ConfigError(f"must be one of {', '.join(FEATURE_NETWORKS)}, got {kind!r}", key="feature_network")
    if kind == "inception":
        if not weights:
            raise ConfigError("feature_network 'inception' needs the path of a TorchScript file", key="inception_weights")
        return torchscript_feature_network(weights, tuple(dataset.image_shape))
    return trained_feature_network(
        dataset, cache_dir,
        steps=int(params.get("feature_network_steps", FEATURE_STEPS)),
        seed=int(params.get("feature_network_seed", FEATURE_SEED)),
    )


def _image_set_key(dataset: Any, indices: np.ndarray) -> str:
    text = json.dumps({"dataset": dataset.describe(),
                       "indices_sha256": hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@torch.no_grad()
def _distance_pass(ctx: EvaluationContext) -> dict[str, Any]:
    """One decoding pass shared by fid and kid: accumulators for generated and reconstructed images."""
    if "fid_kid" in ctx.cache:
        return ctx.cache["fid_kid"]
    p = ctx.params
    network = feature_network_from_params(p, ctx.dataset, ctx.cache_dir)
    n_test = len(ctx.test_images)
    n = min(int(p.get("fid_images", FID_IMAGES)), n_test)
    if n < 2:
        raise ConfigError(f"must be >= 2, got {p.get('fid_images')!r}", key="fid_images")
    chosen = np.arange(n_test)
    if n < n_test:
        chosen = np.sort(np.random.default_rng(SUBSET_SEED).choice(n_test, size=n, replace=False))
    real_images = ctx.test_images[torch.from_numpy(chosen)]
    real = real_statistics(network, real_images, key=_image_set_key(ctx.dataset, ctx.test_indices[chosen]),
                           cache_dir=ctx.cache_dir, device=ctx.device)
    kid_args = {"kid_subsets": int(p.get("kid_subsets", KID_SUBSETS)),
                "kid_subset_size": int(p.get("kid_subset_size", KID_SUBSET_SIZE))}
    generated = DistanceAccumulator(network, real, device=ctx.device, **kid_args)
    reconstructed = DistanceAccumulator(network, real, device=ctx.device, **kid_args)
    model = ctx.model
    generator = torch.Generator(device="cpu").manual_seed(ctx.seed)
    latent_dim = ctx.mu.shape[1]
    for start in range(0, n, BATCH_SIZE):
        x = real_images[start : start + BATCH_SIZE].to(ctx.device)
        z = torch.randn((len(x), latent_dim), generator=generator).to(ctx.device)
        generated.update(model.likelihood.mean(model.decode(z)).clamp(0, 1))
        reconstructed.update(model.likelihood.mean(model.decode(model.encode(x)[0])).clamp(0, 1))
    generated.release_batch()
    reconstructed.release_batch()
    ctx.cache["fid_kid"] = {"network": network, "generated": generated, "reconstructed": reconstructed}
    return ctx.cache["fid_kid"]


def _note(ctx: EvaluationContext, network: FeatureNetwork, *names: str) -> None:
    for name in names:
        ctx.notes[name] = f"feature={network.tag}"


def _fid(ctx: EvaluationContext) -> dict[str, float]:
    state = _distance_pass(ctx)
    _note(ctx, state["network"], "fid", "fid_recon")
    return {"fid": state["generated"].fid_value(), "fid_recon": state["reconstructed"].fid_value()}


def _kid(ctx: EvaluationContext) -> dict[str, float]:
    state = _distance_pass(ctx)
    _note(ctx, state["network"], "kid", "kid_recon")
    return {"kid": state["generated"].kid_value(ctx.seed), "kid_recon": state["reconstructed"].kid_value(ctx.seed)}


_SHARED_DEFAULTS = {"feature_network": FEATURE_NETWORK, "images": FID_IMAGES, "feature_dim": FEATURE_DIM,
                    "feature_steps": FEATURE_STEPS, "feature_seed": FEATURE_SEED}

register_metric(
    MetricInfo(
        name="fid",
        higher_is_better=False,
        description="Frechet distance of test images to generated (fid) and reconstructed (fid_recon) images, "
        "in a named feature network",
        compute=_fid,
        abs_tol=1e-3,
        rel_tol=1e-3,
        defaults=dict(_SHARED_DEFAULTS),
    )
)
register_metric(
    MetricInfo(
        name="kid",
        higher_is_better=False,
        description="kernel (polynomial MMD^2) distance of test images to generated (kid) and reconstructed "
        "(kid_recon) images, in a named feature network",
        compute=_kid,
        abs_tol=1e-4,
        rel_tol=1e-3,
        defaults={**_SHARED_DEFAULTS, "subsets": KID_SUBSETS, "subset_size": KID_SUBSET_SIZE, "degree": KID_DEGREE},
    )
)
