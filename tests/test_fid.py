"""FID / KID: the closed form, behaviour on real and corrupted images, caching, and the TorchScript option."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from helpers import FEATURE_STEPS, scored_context, tiny_vae
from vaebench.data import get
from vaebench.errors import ConfigError, DataError
from vaebench.files import content_hash
from vaebench.metrics import (
    METRICS,
    feature_network as fn,
    fid,  # also registers fid and kid
)


@pytest.fixture(scope="module")
def dataset():
    return get("dsprites", size=32, test_size=2000)


@pytest.fixture(scope="module")
def trained(dataset, cache_dir):
    """The network trained once for this module, and whether training left torch's global RNG alone."""
    before = torch.get_rng_state()
    network = fn.trained_feature_network(dataset, cache_dir, steps=FEATURE_STEPS)
    return network, torch.equal(before, torch.get_rng_state())


@pytest.fixture(scope="module")
def network(trained):
    return trained[0]


@pytest.fixture(scope="module")
def real_images(dataset):
    return torch.from_numpy(dataset.images(dataset.test_indices))


def random_covariance(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


@pytest.mark.parametrize("d", [1, 5, 32])
def test_frechet_distance_matches_the_closed_form(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_covariance(rng, d), random_covariance(rng, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8, abs=1e-8)
    assert fid.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_features_matches_their_statistics():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(500, 4)), rng.normal(1.0, 2.0, size=(400, 4))
    (m1, s1), (m2, s2) = fid.feature_statistics(a), fid.feature_statistics(b)
    assert np.allclose(s1, np.cov(a, rowvar=False))
    # two unit-variance-ish Gaussians 1 apart per dim, the second with std 2: about 4 * (1 + 1 + 4 - 2 * 2)
    assert fid.frechet_distance(m1, s1, m2, s2) == pytest.approx(8.0, rel=0.25)


def test_trained_network_is_seeded_and_leaves_the_global_rng_alone(trained):
    network, rng_untouched = trained
    assert rng_untouched
    assert network.num_features == fn.FEATURE_DIM
    assert network.name == "dsprites-convnet64" and len(network.hash) == 16


def distances(network, stats: fid.RealStatistics, fake: torch.Tensor) -> tuple[float, float]:
    """(FID, KID) of fake images against real statistics."""
    acc = fid.DistanceAccumulator(network, stats, kid_subsets=20, kid_subset_size=500)
    acc.update(fake)
    return acc.fid_value(), acc.kid_value(seed=0)


def test_real_halves_are_close_and_noise_is_far(network, real_images):
    a, b = real_images[:1000], real_images[1000:]
    stats = fid.RealStatistics.from_features(fid.extract_features(network, a))
    noise = torch.rand(a.shape, generator=torch.Generator().manual_seed(0))
    halves = distances(network, stats, b)
    against_noise = distances(network, stats, noise)
    assert 0 <= halves[0] < 0.01 * against_noise[0], (halves, against_noise)
    assert abs(halves[1]) < 0.01 * against_noise[1], (halves, against_noise)


def test_one_call_fid_is_the_frechet_distance_of_the_features(network, real_images):
    a, b = real_images[:300], real_images[300:600]
    (m1, s1), (m2, s2) = (fid.feature_statistics(fid.extract_features(network, x)) for x in (a, b))
    expected = fid.frechet_distance(m1, s1, m2, s2)
    assert fid.frechet_inception_distance(a, b, network, batch_size=128) == pytest.approx(expected, rel=1e-5)


def test_distances_grow_with_noise(network, real_images):
    a, b = real_images[:1000], real_images[1000:]
    stats = fid.RealStatistics.from_features(fid.extract_features(network, a))
    eps = torch.randn(b.shape, generator=torch.Generator().manual_seed(1))
    fids, kids = zip(*(distances(network, stats, (b + sigma * eps).clamp(0, 1)) for sigma in (0.0, 0.1, 0.2, 0.4)))
    assert all(x < y for x, y in zip(fids, fids[1:])), fids
    assert all(x < y for x, y in zip(kids, kids[1:])), kids


def test_kid_is_seeded_and_leaves_the_global_rng_alone(network, real_images):
    a, b = real_images[:600], (real_images[600:1200] + 0.1).clamp(0, 1)
    state = torch.get_rng_state()
    first = fid.kernel_inception_distance(a, b, network, subset_size=200, subsets=5, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    assert first == fid.kernel_inception_distance(a, b, network, subset_size=200, subsets=5, seed=3)
    assert first != fid.kernel_inception_distance(a, b, network, subset_size=200, subsets=5, seed=4)


def test_network_hash_is_its_specs_and_moves_with_every_input(dataset, network):
    spec = fn.trained_network_spec(dataset, steps=FEATURE_STEPS)
    assert content_hash(spec) == network.hash
    for change in ({"steps": FEATURE_STEPS + 1}, {"seed": 1}, {"learning_rate": 3e-4}, {"num_features": 32}):
        assert content_hash(fn.trained_network_spec(dataset, **{"steps": FEATURE_STEPS, **change})) != network.hash
    other = get("dsprites", size=32, test_size=2000, split_seed=1)  # other training indices
    assert content_hash(fn.trained_network_spec(other, steps=FEATURE_STEPS)) != network.hash


def test_network_is_kept_in_process_and_reloaded_from_the_disk_cache(dataset, cache_dir, network, monkeypatch):
    path = cache_dir / "feature_networks" / f"{network.name}-{network.hash}.pt"
    assert path.is_file()
    assert fn.trained_feature_network(dataset, cache_dir, steps=FEATURE_STEPS) is network  # in-process
    monkeypatch.setattr(fn, "_NETWORKS", {})
    monkeypatch.setattr(fn, "train_feature_network", lambda *a, **k: pytest.fail("retrained despite the cache"))
    loaded = fn.trained_feature_network(dataset, cache_dir, steps=FEATURE_STEPS)
    x = torch.from_numpy(dataset.images(dataset.test_indices[:50]))
    assert torch.equal(loaded.module(x), network.module(x))


def test_real_statistics_are_cached(network, real_images, cache_dir, monkeypatch):
    stats = fid.real_statistics(network, real_images[:300], key="abc", cache_dir=cache_dir)
    mean, cov = fid.feature_statistics(stats.features)
    assert np.allclose(stats.mean.numpy(), mean) and np.allclose(stats.cov.numpy(), cov)
    assert (cache_dir / "fid_stats" / f"{network.name}-{network.hash}-abc.pt").is_file()
    monkeypatch.setattr(fid, "extract_features", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    assert fid.real_statistics(network, real_images[:300], key="abc", cache_dir=cache_dir) is stats
    monkeypatch.setattr(fid, "_REAL_STATISTICS", {})
    again = fid.real_statistics(network, real_images[:300], key="abc", cache_dir=cache_dir)
    assert torch.equal(again.features, stats.features) and torch.equal(again.cov, stats.cov)


def test_registered_fid_and_kid(dataset, cache_dir, network):
    fid_info, kid_info = METRICS.get("fid"), METRICS.get("kid")
    assert not any(v.higher_is_better for v in (*fid_info.values, *kid_info.values))
    params = {"feature_network_steps": FEATURE_STEPS, "fid_images": 400, "kid_subset_size": 200, "kid_subsets": 10}
    model = tiny_vae(dataset)
    ctx = scored_context(dataset, model, cache_dir, params)
    encode = model.encode
    model.encode = lambda x: pytest.fail("FID re-encoded the test images the harness already encoded")
    values = {**fid_info.compute(ctx), **kid_info.compute(ctx)}
    model.encode = encode
    assert set(values) == {"fid", "fid_recon", "kid", "kid_recon"}
    assert all(math.isfinite(v) and v > 0 for v in values.values()), values
    for name in values:
        assert ctx.notes[name] == f"feature={network.name}:{network.hash}"
    again = scored_context(dataset, model, cache_dir, params)
    assert {**kid_info.compute(again), **fid_info.compute(again)} == values  # seeded; order does not matter


class TinyInception(nn.Module):
    """Stands in for inception-2015-12-05.pt: uint8 (N, 3, H, W) -> features with return_features=True."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        features = nn.functional.adaptive_avg_pool2d(x.float() / 255.0, 4).flatten(1)
        if return_features:
            return features
        return features.sum(1, keepdim=True)


def test_torchscript_feature_network_option(dataset, tmp_path):
    path = tmp_path / "tiny_inception.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(TinyInception()).save(str(path))
    network = fn.torchscript_feature_network(path, dataset.image_shape)
    assert network.num_features == 48  # 3 channels x 4 x 4: called with return_features=True on RGB input
    params = {"feature_network": "inception", "inception_weights": str(path), "fid_images": 300,
              "kid_subset_size": 100, "kid_subsets": 5}
    ctx = scored_context(dataset, tiny_vae(dataset), tmp_path / "cache", params)
    values = METRICS.get("fid").compute(ctx)
    assert set(values) == {"fid", "fid_recon"} and all(v > 0 for v in values.values())
    assert ctx.notes["fid"] == f"feature=inception:{network.hash}"
    assert not (tmp_path / "cache" / "feature_networks").exists()  # nothing trained


def _feature_network(given: dict, dataset, tmp_path):
    """The feature network of [evaluation.params] `given`, checked as a suite checks it."""
    from vaebench.metrics.registry import check_metric_params

    return fid.feature_network_from_params(METRICS.get("fid").params_of(check_metric_params(given)), dataset, tmp_path)


def test_feature_network_user_errors(dataset, tmp_path):
    missing = tmp_path / "nowhere" / "inception-2015-12-05.pt"
    with pytest.raises(DataError, match="inception-2015-12-05.pt"):
        _feature_network({"inception_weights": str(missing)}, dataset, tmp_path)
    not_torchscript = tmp_path / "weights.pt"
    not_torchscript.write_bytes(b"not a model")
    with pytest.raises(DataError, match="weights.pt"):
        _feature_network({"inception_weights": str(not_torchscript)}, dataset, tmp_path)
    with pytest.raises(ConfigError, match="feature_network"):
        _feature_network({"feature_network": "vgg"}, dataset, tmp_path)
    with pytest.raises(ConfigError, match="inception_weights"):
        _feature_network({"feature_network": "inception"}, dataset, tmp_path)


class FixedFeatures(nn.Module):
    """A deterministic 6-d feature map of 32 px images, for comparing with torchmetrics."""

    num_features = 6
    weights: torch.Tensor

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.register_buffer("weights", torch.randn(32 * 32, 6, generator=generator, dtype=torch.float64) / 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x.double().flatten(1) @ self.weights)


def test_fid_and_kid_equal_torchmetrics_public_api(real_images):
    """Our float64 FID and seeded KID against torchmetrics' FrechetInceptionDistance / KernelInceptionDistance."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    features = FixedFeatures()
    real, fake = real_images[:300], (real_images[300:600] * 0.7).clamp(0, 1)
    network = fn.FeatureNetwork(features, "fixed", "0")
    acc = fid.DistanceAccumulator(network, fid.RealStatistics.from_features(features(real)),
                                  kid_subsets=7, kid_subset_size=50)
    acc.update(fake)
    reference_fid = FrechetInceptionDistance(feature=features, normalize=True)
    reference_fid.update(real, real=True)
    reference_fid.update(fake, real=False)
    assert acc.fid_value() == pytest.approx(float(reference_fid.compute()), rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reference_kid = KernelInceptionDistance(feature=features, subsets=7, subset_size=50, normalize=True)
    reference_kid.update(real, real=True)
    reference_kid.update(fake, real=False)
    torch.manual_seed(11)  # torchmetrics draws its subsets from the global generator
    assert acc.kid_value(seed=11) == pytest.approx(float(reference_kid.compute()[0]), rel=1e-6)


def test_polynomial_mmd_matches_a_double_loop():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 0.5

    def k(x, y):
        return (x @ y / 3 + 1) ** 3

    within = sum(k(a[i], a[j]) + k(b[i], b[j]) for i in range(6) for j in range(6) if i != j) / 30
    across = sum(k(a[i], b[j]) for i in range(6) for j in range(6)) / 36
    assert fid.polynomial_mmd(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(within - 2 * across)


def test_an_edited_statistics_cache_is_recomputed(network, real_images, tmp_path, monkeypatch, caplog):
    stats = fid.real_statistics(network, real_images[:200], key="edit", cache_dir=tmp_path)
    path = tmp_path / "fid_stats" / f"{network.name}-{network.hash}-edit.pt"
    entry = torch.load(path, weights_only=True)
    entry["tensors"]["mean"] = entry["tensors"]["mean"] + 1.0  # a hand edit that keeps the file loadable
    torch.save(entry, path)
    monkeypatch.setattr(fid, "_REAL_STATISTICS", {})
    with caplog.at_level("WARNING"):
        again = fid.real_statistics(network, real_images[:200], key="edit", cache_dir=tmp_path)
    assert torch.equal(again.mean, stats.mean) and "does not match its content hash" in caplog.text
    path.write_bytes(b"not a checkpoint")
    monkeypatch.setattr(fid, "_REAL_STATISTICS", {})
    with caplog.at_level("WARNING"):
        third = fid.real_statistics(network, real_images[:200], key="edit", cache_dir=tmp_path)
    assert torch.equal(third.mean, stats.mean) and "unreadable" in caplog.text
