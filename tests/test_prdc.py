"""Precision, recall, density and coverage: against the authors' `prdc` package on the same features,
a hand-worked case, known answers (identical, disjoint, a dropped mode), and the registered metric."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import scipy.spatial.distance
import torch

from helpers import FEATURE_STEPS, scored_context, tiny_vae
from vaebench.data import get
from vaebench.errors import ConfigError
from vaebench.metrics import (
    METRICS,
    feature_network as fn,
    fid,
    prdc as ours,  # also registers prdc
)


def reference(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """The authors' package (Naeem et al. 2020, `pip install prdc`), its progress print silenced."""
    compute_prdc = pytest.importorskip("prdc", reason="the reference package prdc is not installed "
                                       "(pip install prdc; it is in the test extras)").compute_prdc
    with contextlib.redirect_stdout(io.StringIO()):
        values = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    return {name: float(v) for name, v in values.items()}


def gaussian(rng: np.random.Generator, n: int, d: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return rng.normal(shift, scale, size=(n, d))


@pytest.mark.parametrize("n_real, n_fake, d, k, shift, scale", [
    (300, 300, 8, 5, 0.0, 1.0),     # one distribution
    (400, 250, 16, 5, 0.5, 1.0),    # shifted fakes, unequal sizes
    (250, 400, 4, 3, 0.0, 0.5),     # concentrated fakes: density above 1, recall down
    (200, 200, 32, 10, 0.0, 2.0),   # spread fakes: precision down
    (150, 180, 2, 1, 1.0, 1.0),
])
def test_equals_the_reference_package(n_real, n_fake, d, k, shift, scale):
    rng = np.random.default_rng(n_real + d + k)
    real = gaussian(rng, n_real, d)
    fake = gaussian(rng, n_fake, d, shift, scale)
    expected = reference(real, fake, k)
    assert ours.precision_recall_density_coverage(real, fake, nearest_k=k) == pytest.approx(expected, abs=1e-12)


def test_blocks_do_not_change_the_values(monkeypatch):
    """The row blocks (here 7 rows of 300 at a time) give the one-matrix values, and float32 input equals float64."""
    rng = np.random.default_rng(5)
    real, fake = gaussian(rng, 300, 6), gaussian(rng, 300, 6, 0.3, 1.2)
    expected = reference(real, fake, 5)
    monkeypatch.setattr(ours, "CHUNK_ELEMENTS", 7 * 300)
    assert ours.precision_recall_density_coverage(real, fake) == pytest.approx(expected, abs=1e-12)
    as_float32 = ours.precision_recall_density_coverage(torch.from_numpy(real).float(), fake.astype(np.float32))
    assert as_float32 == pytest.approx(reference(real.astype(np.float32), fake.astype(np.float32), 5), abs=1e-12)


def test_radii_are_the_kth_nearest_other_point():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    x[10] = x[11]  # a repeated point is a neighbour at distance 0
    d = scipy.spatial.distance.cdist(x, x)
    for k in (1, 4):
        brute = np.array([np.sort(np.delete(row, i))[k - 1] for i, row in enumerate(d)])
        assert np.allclose(ours.nearest_neighbour_radii(x, k), brute, rtol=1e-10, atol=1e-7)
    assert ours.nearest_neighbour_radii(x, 1)[10] == 0.0


def two_modes(rng: np.random.Generator, n: int, d: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussians 40 apart (no k-NN ball reaches across): mode A and mode B, n points each."""
    return gaussian(rng, n, d), gaussian(rng, n, d, shift=40.0 / math.sqrt(d))


def hand_worked():
    """1-d, k = 1. Real 0, 1, 3 (radii 1, 1, 2); fake 0.4, 2.5, 10 (radii 2.1, 2.1, 7.5).

    precision: 0.4 (in the ball of 0) and 2.5 (of 3), not 10 -> 2/3; recall: every real point
    lies within 2.1 of 0.4 or 2.5 -> 1; density: 0.4 in 2 balls, 2.5 in 1, 10 in none -> 3/3;
    coverage: each real ball holds a fake -> 1.
    """
    return np.array([[0.0], [1.0], [3.0]]), np.array([[0.4], [2.5], [10.0]]), 1


def identical():
    """Two copies of one set: each fake lies in its twin's ball and (strictly) in k - 1 others' -> all 1."""
    x = gaussian(np.random.default_rng(1), 500, 10)
    return x, x.copy(), 5


def disjoint():
    rng = np.random.default_rng(2)
    return gaussian(rng, 400, 10), gaussian(rng, 400, 10, shift=50.0), 5


def copy_of_one_mode():
    """Fakes = the real points of mode A exactly: every fake in its own real ball, mode B's balls empty."""
    a, b = two_modes(np.random.default_rng(3), 300)
    return np.concatenate([a, b]), a.copy(), 5


KNOWN_ANSWERS = {
    "hand_worked": (hand_worked, {"precision": 2 / 3, "recall": 1.0, "density": 1.0, "coverage": 1.0}),
    "identical": (identical, {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}),
    "disjoint": (disjoint, {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}),
    "copy_of_one_mode": (copy_of_one_mode, {"precision": 1.0, "recall": 0.5, "density": 1.0, "coverage": 0.5}),
}


@pytest.mark.parametrize("case", KNOWN_ANSWERS)
def test_known_answers(case):
    make, expected = KNOWN_ANSWERS[case]
    real, fake, k = make()
    assert ours.precision_recall_density_coverage(real, fake, nearest_k=k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("case", KNOWN_ANSWERS)
def test_known_answers_equal_the_reference_package(case):
    real, fake, k = KNOWN_ANSWERS[case][0]()
    assert reference(real, fake, k) == pytest.approx(KNOWN_ANSWERS[case][1], abs=1e-12)


def test_dropping_a_mode_loses_recall_not_precision():
    """torch-fidelity's issue 58 (precision and recall swapped): a generator that draws fresh samples of
    only one of the two real modes must keep its precision and lose recall (and coverage)."""
    rng = np.random.default_rng(4)
    a, b = two_modes(rng, 1000)
    real = np.concatenate([a, b])
    full = np.concatenate(two_modes(rng, 1000))
    dropped = gaussian(rng, 2000, a.shape[1])  # as many fakes, all from mode A
    both = ours.precision_recall_density_coverage(real, full)
    one = ours.precision_recall_density_coverage(real, dropped)
    assert one == pytest.approx(reference(real, dropped, 5), abs=1e-12)
    assert both["precision"] > 0.9 and both["recall"] > 0.9 and both["coverage"] > 0.9, both
    assert one["precision"] > 0.9, one  # every fake is realistic ...
    assert one["recall"] <= 0.5 and one["coverage"] <= 0.5, one  # ... but half the real images are missed
    assert one["precision"] - one["recall"] > 0.4, one
    # the converse, a generator adding an unreal mode: precision falls, recall stays
    spurious = np.concatenate([gaussian(rng, 1000, 8), gaussian(rng, 1000, 8, shift=-40.0 / math.sqrt(8))])
    half_real = ours.precision_recall_density_coverage(np.concatenate([a, gaussian(rng, 1000, 8)]), spurious)
    assert half_real["precision"] <= 0.5 and half_real["recall"] > 0.9, half_real


def test_a_collapsed_generator_has_full_precision_and_no_recall():
    """torch-fidelity issue 58's case: nearly the same realistic image every time (it reported precision
    4e-05 and recall 0.99). Every fake lies in the ball of the real point it copies (and of the few
    real points whose balls hold that point: coverage about k / N), and the fakes' own balls are too
    small to hold any real point but that one."""
    rng = np.random.default_rng(7)
    real = gaussian(rng, 1000, 8)
    fake = real[0] + 1e-3 * gaussian(rng, 1000, 8)
    values = ours.precision_recall_density_coverage(real, fake)
    assert values["precision"] == 1.0 and values["recall"] <= 0.001 and values["coverage"] < 0.02, values
    assert values == pytest.approx(reference(real, fake, 5), abs=1e-12)


def test_bad_arguments():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="1 <= k < N"):
        ours.precision_recall_density_coverage(x, np.ones((10, 3)), nearest_k=5)
    with pytest.raises(ValueError, match="width"):
        ours.precision_recall_density_coverage(np.ones((10, 3)), np.ones((10, 4)))
    with pytest.raises(ValueError, match="2-d"):
        ours.nearest_neighbour_radii(np.ones(10))


# -- the registered metric: FID's feature network, images and decoding pass ------------------------------

@pytest.fixture(scope="module")
def dataset():
    return get("dsprites", size=32, test_size=3000)


@pytest.fixture(scope="module")
def network(dataset, cache_dir):
    return fn.trained_feature_network(dataset, cache_dir, steps=FEATURE_STEPS)


def test_registered_prdc_uses_fids_features(dataset, cache_dir, network):
    info = METRICS.get("prdc")
    names = {f"{v}{s}" for s in ("", "_recon") for v in ("precision", "recall", "density", "coverage")}
    assert {v.name for v in info.values} == names and all(v.higher_is_better for v in info.values)
    assert info.family == "sample_quality" and info.needs_decoder
    params = {"feature_network_steps": FEATURE_STEPS, "fid_images": 400, "prdc_nearest_k": 4}
    ctx = scored_context(dataset, tiny_vae(dataset), cache_dir, params)
    values = info.compute(ctx)
    assert set(values) == names
    state = ctx.cache["fid_kid"]  # the pass FID and KID read: the same images and features
    real = state["real"].features.double().numpy()
    assert len(real) == 400
    for suffix, acc in (("", state["generated"]), ("_recon", state["reconstructed"])):
        expected = reference(real, acc.fake_features.numpy(), 4)
        assert {n: values[n + suffix] for n in expected} == pytest.approx(expected, abs=1e-12)
        assert ctx.notes["precision" + suffix] == f"feature={network.tag} k=4"
    fid_values = METRICS.get("fid").compute(ctx)
    assert ctx.cache["fid_kid"] is state and math.isfinite(fid_values["fid"])
    again = scored_context(dataset, tiny_vae(dataset), cache_dir, params)
    assert info.compute(again) == values  # seeded
    with pytest.raises(ConfigError, match="prdc_nearest_k"):
        info.compute(scored_context(dataset, tiny_vae(dataset), cache_dir, {**params, "fid_images": 4}))


def test_a_generator_of_one_half_of_the_image_loses_recall_in_the_feature_network(dataset, network):
    """Images: real = 1000 test images; fakes = 1000 other test images, all, or only those with the sprite in
    the left half (posX < 16, a dropped mode). The trained network's features are dominated by position
    (squares only, as fakes, keep a recall of about 1 in it), so the mode is dropped along posX."""
    test = np.random.default_rng(0).permutation(dataset.test_indices)  # the indices are in factor order
    real_idx, pool = test[:1000], test[1000:]
    left = pool[dataset.factors(pool)[:, list(dataset.factor_names).index("posX")] < 16]

    def features(indices):
        return fid.extract_features(network, torch.from_numpy(dataset.images(np.sort(indices[:1000]))))

    real, all_positions, left_only = features(real_idx), features(pool), features(left)
    full = ours.precision_recall_density_coverage(real, all_positions)
    dropped = ours.precision_recall_density_coverage(real, left_only)
    assert dropped == pytest.approx(reference(real.double().numpy(), left_only.double().numpy(), 5), abs=1e-12)
    assert full["precision"] > 0.9 and full["recall"] > 0.9, full
    assert dropped["precision"] > 0.9, (full, dropped)  # the fakes are real images ...
    assert dropped["recall"] < 0.7 and dropped["coverage"] < 0.7, (full, dropped)  # ... of half the real ones
