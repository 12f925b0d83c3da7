"""Datasets: the procedural dSprites grid and renderer, digits, and the fixed splits."""

from __future__ import annotations

import numpy as np
import pytest

from vaebench import data
from vaebench.data.dsprites import CENTRE_LOW, CENTRE_SPAN, POSITIONS, shape_masks
from vaebench.errors import ConfigError


@pytest.fixture(scope="module", params=[64, 32])
def sprites(request):
    return data.get("dsprites", size=request.param)


def _factor(shape=0, scale=5, orientation=0, x=16, y=16):
    return np.array([[shape, scale, orientation, x, y]])


def test_factor_grid_is_the_original():
    ds = data.get("dsprites")
    assert ds.factor_sizes == (3, 6, 40, 32, 32)
    assert ds.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert len(ds) == 737_280
    assert ds.image_shape == (1, 64, 64)
    last = ds.factors([len(ds) - 1])
    np.testing.assert_array_equal(last, [[2, 5, 39, 31, 31]])
    idx = np.array([0, 1, 32, 1024, 40960, 737_279, 123_456])
    np.testing.assert_array_equal(ds.index_of(ds.factors(idx)), idx)


def test_centroid_is_where_posx_and_posy_say(sprites):
    size = sprites.size
    for shape in (0, 1):  # the square and the ellipse are symmetric about their centre
        for x, y in [(0, 0), (31, 5), (10, 31), (16, 16)]:
            img = sprites.images_from_factors(_factor(shape=shape, x=x, y=y))[0, 0]
            rows, cols = np.nonzero(img)
            expected_x = (CENTRE_LOW + CENTRE_SPAN * POSITIONS[x]) * size
            expected_y = (CENTRE_LOW + CENTRE_SPAN * POSITIONS[y]) * size
            assert abs(cols.mean() + 0.5 - expected_x) < 0.75
            assert abs(rows.mean() + 0.5 - expected_y) < 0.75


def test_centroid_moves_monotonically_with_position(sprites):
    f = np.repeat(_factor(shape=2, orientation=7), 32, axis=0)
    f[:, 3] = np.arange(32)
    imgs = sprites.images_from_factors(f)[:, 0]
    centroid_x = [np.nonzero(im)[1].mean() for im in imgs]
    assert np.all(np.diff(centroid_x) >= 0)
    assert abs(centroid_x[-1] - centroid_x[0] - CENTRE_SPAN * sprites.size) < 1.5


def test_area_grows_with_scale(sprites):
    for shape in range(3):
        f = np.repeat(_factor(shape=shape), 6, axis=0)
        f[:, 1] = np.arange(6)
        areas = sprites.images_from_factors(f).sum(axis=(1, 2, 3))
        if sprites.size == 64:
            assert np.all(np.diff(areas) > 0), areas
        else:  # at 32 px two neighbouring scales can cover the same pixel centres
            assert np.all(np.diff(areas) >= 0) and areas[-1] > 2 * areas[0], areas


def test_shapes_differ(sprites):
    imgs = sprites.images_from_factors(np.concatenate([_factor(shape=s, orientation=3) for s in range(3)]))
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(imgs[a] - imgs[b]).sum() >= 3


def test_same_index_same_image_and_binary(sprites):
    idx = np.array([5, 99_999, 700_000])
    a, b = sprites.images(idx), data.get("dsprites", size=sprites.size).images(idx[::-1])[::-1]
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and set(np.unique(a)) <= {0.0, 1.0}


def _reference_masks(factors: np.ndarray) -> np.ndarray:
    """The module docstring's geometry evaluated at every pixel centre of the 64 px image, in plain
    NumPy (the renderer tests only the pixels near each sprite, in compiled code)."""
    from vaebench.data import dsprites as d

    centres = np.arange(64) + 0.5
    out = np.zeros((len(factors), 64, 64), dtype=bool)
    for k, (shape, scale, orientation, x, y) in enumerate(factors):
        dx = centres[None, :] - (d.CENTRE_LOW + d.CENTRE_SPAN * d.POSITIONS[x]) * 64
        dy = centres[:, None] - (d.CENTRE_LOW + d.CENTRE_SPAN * d.POSITIONS[y]) * 64
        theta, unit = d.ORIENTATIONS[orientation], d.SCALES[scale] * 64
        a = (np.cos(theta) * dx - np.sin(theta) * dy) / unit
        b = (np.sin(theta) * dx + np.cos(theta) * dy) / unit
        if shape == 0:
            out[k] = np.maximum(np.abs(a), np.abs(b)) <= d.SQUARE_HALF_SIDE
        elif shape == 1:
            out[k] = (a / d.ELLIPSE_SEMI_AXES[0]) ** 2 + (b / d.ELLIPSE_SEMI_AXES[1]) ** 2 <= 1
        else:
            angle = np.arctan2(b, a)
            mirrored = np.where(angle > np.pi / 2, np.pi - angle, np.where(angle < -np.pi / 2, -np.pi - angle, angle))
            out[k] = np.hypot(a, b) <= np.interp(mirrored, d.HEART_ANGLES, d.HEART_RADII)
    return out


def test_renderer_equals_the_geometry_evaluated_at_every_pixel():
    f = data.get("dsprites").sample_factors(1500, np.random.default_rng(1))
    f[:5] = [[0, 5, 5, 0, 0], [0, 5, 5, 31, 31], [1, 5, 20, 31, 0], [2, 5, 33, 0, 31], [0, 5, 4, 31, 31]]  # corners
    np.testing.assert_array_equal(shape_masks(f, 64), _reference_masks(f))


def test_32_px_is_the_2x2_majority_of_64_px_ties_set():
    f = data.get("dsprites").sample_factors(1500, np.random.default_rng(2))
    big = shape_masks(f, 64).astype(int)
    votes = big[:, ::2, ::2] + big[:, 1::2, ::2] + big[:, ::2, 1::2] + big[:, 1::2, 1::2]
    np.testing.assert_array_equal(shape_masks(f, 32), votes >= 2)
    assert (votes == 2).any()  # the tie rule is exercised


def test_colour_and_noisy_variants_are_deterministic():
    for name in ("color_dsprites", "noisy_dsprites"):
        ds = data.get(name, size=32)
        a = ds.images([3, 4])
        assert a.shape == (2, 3, 32, 32) and 0 <= a.min() and a.max() <= 1
        np.testing.assert_array_equal(a, ds.images([3, 4]))
        assert not np.array_equal(a[0], a[1])


def test_split_is_fixed_disjoint_and_complete():
    ds = data.get("dsprites", size=32, test_size=500)
    again = data.get("dsprites", size=64, test_size=500)
    np.testing.assert_array_equal(ds.test_indices, again.test_indices)
    assert len(np.intersect1d(ds.train_indices, ds.test_indices)) == 0
    assert len(ds.train_indices) + len(ds.test_indices) == len(ds)


def test_digits():
    ds = data.get("digits")
    x = ds.images(ds.test_indices)
    assert x.shape == (360, 1, 8, 8) and x.min() == 0 and x.max() == 1
    assert set(np.unique(ds.labels(ds.train_indices))) == set(range(10))
    assert not ds.has_factors


def test_bad_dataset_parameters():
    with pytest.raises(ConfigError, match="size"):
        data.get("dsprites", size=48)
    with pytest.raises(ConfigError, match="colour"):
        data.get("dsprites", colour=True)


def test_colour_and_noise_are_drawn_on_the_binary_masks():
    """color_dsprites: the sprite's pixels in one colour in [0.5, 1), black elsewhere; noisy_dsprites:
    the sprite white on noise. Both from the same masks as `dsprites`."""
    idx = np.array([0, 123_457, 600_001])
    mask = data.get("dsprites", size=32).images(idx)[:, 0] > 0
    colour = data.get("color_dsprites", size=32).images(idx)
    noisy = data.get("noisy_dsprites", size=32).images(idx)
    for k in range(len(idx)):
        lit = colour[k].max(axis=0) > 0
        np.testing.assert_array_equal(lit, mask[k])
        rgb = colour[k][:, mask[k]]
        assert np.all(rgb == rgb[:, :1]) and np.all((0.5 <= rgb) & (rgb < 1))
        assert np.all(noisy[k][:, mask[k]] == 1.0) and np.all(noisy[k][:, ~mask[k]] < 1.0)
