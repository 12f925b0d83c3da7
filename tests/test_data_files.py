"""File-backed datasets: MNIST / Fashion-MNIST IDX, the dSprites .npz and 3dshapes .h5.

Every fixture file is written here, small, in the published format (the real files are
never needed and nothing is downloaded).
"""

from __future__ import annotations

import gzip
import io
import itertools
import os
import pickle
import struct
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import files_suite, write_idx, write_mnist
from vaebench import data
from vaebench.bench.suite import load_suite
from vaebench.data.base import fixed_split
from vaebench.data.idx import read_idx
from vaebench.errors import ConfigError, DataError, MissingDependencyError

# ---------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_round_trip(tmp_path, gz):
    raw = write_mnist(tmp_path / "mnist", gz=gz)
    ds = data.get("mnist", path=str(tmp_path / "mnist"))
    assert ds.name == "mnist" and not ds.has_factors
    assert ds.image_shape == (1, 28, 28) and len(ds) == 10
    np.testing.assert_array_equal(ds.train_indices, np.arange(7))
    np.testing.assert_array_equal(ds.test_indices, np.arange(7, 10))
    x = ds.images(np.arange(10))
    assert x.dtype == np.float32 and x.shape == (10, 1, 28, 28)
    assert x.min() == 0.0 and x.max() == 1.0
    pixels = np.concatenate([raw["train_x"], raw["test_x"]])
    np.testing.assert_array_equal(np.rint(x[:, 0] * 255).astype(np.uint8), pixels)
    np.testing.assert_array_equal(ds.images([9, 2, 2])[:, 0], x[[9, 2, 2], 0])
    y = ds.labels(ds.test_indices)
    assert y.shape == (3, 1) and y.dtype == np.int64
    np.testing.assert_array_equal(y[:, 0], raw["test_y"])
    np.testing.assert_array_equal(ds.labels([0, 1])[:, 0], raw["train_y"][:2])
    assert ds.describe()["path"] == str(tmp_path / "mnist")


def test_fashion_mnist_and_the_dotted_file_names(tmp_path):
    names = ("train-images.idx3-ubyte", "train-labels.idx1-ubyte", "t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte")
    raw = write_mnist(tmp_path, gz=True, names=names, seed=3)
    ds = data.get("fashion_mnist", path=str(tmp_path))
    assert ds.name == "fashion_mnist"
    np.testing.assert_array_equal(ds.labels(ds.train_indices)[:, 0], raw["train_y"])


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_parses_the_header(tmp_path, dtype, gz):
    array = (np.arange(2 * 3 * 5) * 7 - 40).reshape(2, 3, 5)
    array = (array % 256 if dtype == "u1" else array * (1000 if dtype in ("i4", "f8") else 1)).astype(dtype)
    if dtype.startswith("f"):
        array = array / 3
    out = read_idx(write_idx(tmp_path / "a", array, gz))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative and out.shape == (2, 3, 5)
    np.testing.assert_array_equal(out, array)


def _corrupt(name: str, raw: bytes) -> bytes:
    return {
        "bad magic": b"\x89PNG\r\n\x1a\n" + raw[8:],
        "unknown type code": raw[:2] + b"\x07" + raw[3:],
        "zero dimensions": raw[:3] + b"\x00" + raw[4:],
        "truncated header": raw[:9],
        "truncated data": raw[:-5],
        "trailing data": raw + b"\x00",
        "empty": b"",
        "broken gzip": gzip.compress(raw)[:30],
    }[name]


@pytest.mark.parametrize("corruption, message", [
    ("bad magic", "not an IDX file: magic number 0x89504e47"),
    ("unknown type code", "type code 0x07 is not one of"),
    ("zero dimensions", "0 dimensions"),
    ("truncated header", "truncated IDX header"),
    ("truncated data", "truncated"),
    ("trailing data", "trailing data"),
    ("empty", "not an IDX file"),
    ("broken gzip", "does not decompress"),
])
def test_idx_format_errors_name_the_file(tmp_path, corruption, message):
    write_mnist(tmp_path)
    target = tmp_path / "t10k-images-idx3-ubyte"
    target.write_bytes(_corrupt(corruption, target.read_bytes()))
    with pytest.raises(DataError, match=message) as err:
        data.get("mnist", path=str(tmp_path))
    assert str(err.value).startswith(str(target) + ":")


def test_idx_contents_that_are_not_mnist(tmp_path):
    raw = write_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", raw["train_y"])  # labels where images belong
    with pytest.raises(DataError,
                       match=r"train-images-idx3-ubyte: holds uint8 data of shape \(7,\); expected ubyte images"):
        data.get("mnist", path=str(tmp_path))
    write_idx(tmp_path / "train-images-idx3-ubyte", raw["train_x"][:5])
    with pytest.raises(DataError, match="holds 5 images but train-labels-idx1-ubyte holds 7 labels"):
        data.get("mnist", path=str(tmp_path))
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((7, 32, 32), np.uint8))
    with pytest.raises(DataError, match="training images are 32x32 and the test images 28x28"):
        data.get("mnist", path=str(tmp_path))


def test_mnist_path_errors(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=f"{missing}: no such directory; dataset 'mnist' expected a directory"):
        data.get("mnist", path=str(missing))
    write_mnist(tmp_path / "m")
    with pytest.raises(DataError, match="a file, not a directory"):
        data.get("mnist", path=str(tmp_path / "m" / "train-images-idx3-ubyte"))
    (tmp_path / "m" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=f"{tmp_path / 'm' / 't10k-labels-idx1-ubyte'}: no such file"):
        data.get("mnist", path=str(tmp_path / "m"))
    with pytest.raises(ConfigError, match="key 'path': required") as err:
        data.get("mnist")
    assert err.value.key == "path"


def _suite(tmp_path: Path, dataset_lines: str, architecture: str = "mlp") -> Path:
    return files_suite(tmp_path / "suite.toml", f'name = "mnist"\n{dataset_lines}', architecture=architecture)


def test_a_suite_file_can_name_mnist(tmp_path):
    write_mnist(tmp_path / "mnist", gz=True)
    suite = load_suite(_suite(tmp_path, f"path = '{tmp_path / 'mnist'}'", architecture="conv"))
    (spec,) = suite.specs
    assert spec.dataset == "mnist" and dict(spec.dataset_params) == {"path": str(tmp_path / "mnist")}


@pytest.mark.slow
def test_a_run_trains_and_scores_on_mnist_files(tmp_path):
    from vaebench.bench.spec import RunTask
    from vaebench.bench.train import execute_run

    write_mnist(tmp_path / "mnist")
    spec = load_suite(_suite(tmp_path, f"path = '{tmp_path / 'mnist'}'")).specs[0]
    result = execute_run(RunTask(spec, spec.variant, str(tmp_path / "run")))
    assert result.status == "done", result.error
    assert result.steps_done == 2 and np.isfinite(result.metrics["recon_mse"]) and result.metrics["kl"] >= 0


def test_suite_file_dataset_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'datasets\[0\]\.test_size': unknown parameter for dataset 'mnist'; "
                                          r"allowed: path, binarize, binarize_seed"):
        load_suite(_suite(tmp_path, "path = 'x'\ntest_size = 3"))
    with pytest.raises(ConfigError, match=r"key 'datasets\[0\]\.path': required"):
        load_suite(_suite(tmp_path, ""))
    with pytest.raises(DataError, match=f"{tmp_path / 'absent'}: no such directory"):
        load_suite(_suite(tmp_path, f"path = '{tmp_path / 'absent'}'"))


# ---------------------------------------------------------------------------- dSprites .npz

DSPRITES_CLASSES = ([0, 2], [1, 5], [0, 13, 39], [4, 31], [0, 7])  # a complete 2 x 2 x 3 x 2 x 2 sub-grid


def _row_bits(n: int, side: int = 8) -> np.ndarray:
    """(n, side, side) binary images whose first row spells the row number in binary."""
    imgs = np.zeros((n, side, side), dtype=np.uint8)
    imgs[:, 0, :] = (np.arange(n)[:, None] >> np.arange(side)) & 1
    imgs[:, -1, -1] = 1
    return imgs


def _row_of(images: np.ndarray) -> np.ndarray:
    return (np.rint(images[:, 0, 0, :]).astype(np.int64) << np.arange(images.shape[-1])).sum(axis=1)


def write_dsprites(path: Path, order: str = "canonical", scale: int = 1, drop=None, **overrides) -> dict:
    classes = np.array(list(itertools.product(*DSPRITES_CLASSES)))
    if order == "shuffled":
        classes = classes[np.random.default_rng(5).permutation(len(classes))]
    latents = np.concatenate([np.zeros((len(classes), 1), np.int64), classes], axis=1)
    arrays: dict[str, Any] = {"imgs": _row_bits(len(latents)) * np.uint8(scale), "latents_classes": latents,
                              "latents_values": latents.astype(np.float64)}
    arrays.update(overrides)
    for key in drop or ():
        del arrays[key]
    np.savez_compressed(path, **arrays)
    return arrays


@pytest.fixture
def dsprites_npz(tmp_path):
    path = tmp_path / "dsprites.npz"
    return path, write_dsprites(path)


def test_dsprites_file_in_published_order(dsprites_npz):
    path, arrays = dsprites_npz
    ds = data.get("dsprites_file", path=str(path), test_size=10, split_seed=3)
    assert ds.has_factors and ds.factor_names == data.get("dsprites").factor_names
    assert ds.factor_sizes == (2, 2, 3, 2, 2) and len(ds) == 48 and ds.image_shape == (1, 8, 8)
    assert ds._row_of_index is None  # rows already in mixed-radix order: image index = row
    x = ds.images(np.arange(48))
    assert x.dtype == np.float32 and set(np.unique(x)) == {0.0, 1.0}
    np.testing.assert_array_equal(_row_of(x), np.arange(48))
    np.testing.assert_array_equal(ds.factors(np.arange(48)), list(itertools.product(*map(range, ds.factor_sizes))))
    np.testing.assert_array_equal(ds.factor_values[2], DSPRITES_CLASSES[2])
    train, test = fixed_split(48, 10, 3)
    np.testing.assert_array_equal(ds.train_indices, train)
    np.testing.assert_array_equal(ds.test_indices, test)
    np.testing.assert_array_equal(ds.labels([4, 1]), ds.factors([4, 1]))


def test_dsprites_file_maps_indices_through_latents_classes(tmp_path, dsprites_npz):
    path, _ = dsprites_npz
    shuffled_path = tmp_path / "shuffled.npz"
    shuffled = write_dsprites(shuffled_path, order="shuffled")
    ds = data.get("dsprites_file", path=str(shuffled_path), test_size=5)
    canonical = data.get("dsprites_file", path=str(path), test_size=5)
    assert ds._row_of_index is not None and ds.factor_sizes == canonical.factor_sizes
    idx = np.array([47, 0, 13, 13, 30])
    rows = _row_of(ds.images(idx))  # the file row each image came from
    file_classes = shuffled["latents_classes"][rows, 1:]
    expected = np.stack([np.searchsorted(DSPRITES_CLASSES[j], file_classes[:, j]) for j in range(5)], axis=1)
    np.testing.assert_array_equal(ds.factors(idx), expected)
    f = ds.sample_factors(20, np.random.default_rng(0))
    rows = _row_of(ds.images_from_factors(f))
    file_classes = shuffled["latents_classes"][rows, 1:]
    got = np.stack([np.searchsorted(DSPRITES_CLASSES[j], file_classes[:, j]) for j in range(5)], 1)
    np.testing.assert_array_equal(got, f)


def test_dsprites_file_scales_bytes_and_finds_the_standard_name(tmp_path):
    write_dsprites(tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz", scale=255)
    ds = data.get("dsprites_file", path=str(tmp_path), test_size=4)
    x = ds.images(np.arange(48))
    assert x.max() == 1.0 and set(np.unique(x)) == {0.0, 1.0}
    np.testing.assert_array_equal(_row_of(x), np.arange(48))
    again = pickle.loads(pickle.dumps(ds))
    assert again._imgs is None
    np.testing.assert_array_equal(again.images([3, 40]), x[[3, 40]])


@pytest.mark.parametrize("case, message", [
    ("no imgs", "key 'imgs' missing (the archive holds: latents_classes, latents_values)"),
    ("no latents", "key 'latents_classes' missing"),
    ("missing combination", "not a complete factor grid: the factors (shape, scale, orientation, posX, posY) take "
                            "2 x 2 x 3 x 2 x 2 = 48 value combinations, each expected exactly once, and the "
                            "combination (shape=2, scale=5, orientation=39, posX=31, posY=7) is missing"),
    ("repeated combination", "appears 2 times"),
    ("colour varies", "column 0 (colour) varies"),
    ("count mismatch", "key 'imgs' holds 47 images but 'latents_classes' 48 rows"),
    ("five columns", "key 'latents_classes': shape (48, 5); expected (N, 6)"),
    ("float images", "key 'imgs': float64 array of shape (48, 8, 8); expected uint8 images"),
])
def test_dsprites_file_format_errors(tmp_path, case, message):
    path = tmp_path / "d.npz"
    latents = np.concatenate([np.zeros((48, 1), np.int64), np.array(list(itertools.product(*DSPRITES_CLASSES)))], 1)
    spoil = {
        "no imgs": dict(drop=["imgs"]),
        "no latents": dict(drop=["latents_classes"]),
        "missing combination": dict(latents_classes=latents[:-1], imgs=_row_bits(47)),
        "repeated combination": dict(latents_classes=np.concatenate([latents[:-1], latents[:1]])),
        "colour varies": dict(
            latents_classes=np.concatenate([latents[:, :1] + (np.arange(48) % 2)[:, None], latents[:, 1:]], 1)),
        "count mismatch": dict(imgs=_row_bits(47)),
        "five columns": dict(latents_classes=latents[:, 1:]),
        "float images": dict(imgs=_row_bits(48).astype(np.float64)),
    }[case]
    write_dsprites(path, **spoil)
    with pytest.raises(DataError) as err:
        data.get("dsprites_file", path=str(path), test_size=4)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_dsprites_file_path_errors(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path / 'absent.npz'}: no such file; dataset 'dsprites_file' expected "
                                        "the dSprites archive dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"):
        data.get("dsprites_file", path=str(tmp_path / "absent.npz"))
    with pytest.raises(DataError, match=f"{tmp_path / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz'}: no such file"):
        data.get("dsprites_file", path=str(tmp_path))
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(DataError, match=f"{tmp_path / 'text.npz'}: not a NumPy .npz archive"):
        data.get("dsprites_file", path=str(tmp_path / "text.npz"))
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(DataError, match="a single .npy array, not an .npz archive"):
        data.get("dsprites_file", path=str(tmp_path / "one.npy"))
    with pytest.raises(ConfigError, match="key 'path': required"):
        data.get("dsprites_file")


# ---------------------------------------------------------------------------- 3dshapes .h5

SHAPES_VALUES = ([0.0, 0.5], [0.1, 0.9], [0.3, 0.7], [0.75, 1.25], [0.0, 3.0], [-30.0, 0.0, 30.0])  # 96 rows


def _pixel_code(n: int) -> np.ndarray:
    """(n, 4, 4, 3) RGB images: red is the row number, green 255 - row, blue a gradient."""
    imgs = np.zeros((n, 4, 4, 3), dtype=np.uint8)
    imgs[..., 0] = np.arange(n)[:, None, None]
    imgs[..., 1] = 255 - np.arange(n)[:, None, None]
    imgs[..., 2] = np.arange(16).reshape(4, 4) * 16
    return imgs


def write_shapes3d(path: Path, order: str = "canonical", **datasets) -> dict:
    h5py = pytest.importorskip("h5py")
    labels = np.array(list(itertools.product(*SHAPES_VALUES)), dtype=np.float64)
    if order == "shuffled":
        labels = labels[np.random.default_rng(2).permutation(len(labels))]
    arrays = {"images": _pixel_code(len(labels)), "labels": labels, **datasets}
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if value is not None:
                f.create_dataset(key, data=value)
    return arrays


@pytest.mark.parametrize("order", ["canonical", "shuffled"])
def test_shapes3d_round_trip(tmp_path, order):
    path = tmp_path / "3dshapes.h5"
    arrays = write_shapes3d(path, order)
    ds = data.get("shapes3d", path=str(path), test_size=16, split_seed=1)
    assert ds.factor_names == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert ds.factor_sizes == (2, 2, 2, 2, 2, 3) and len(ds) == 96 and ds.image_shape == (3, 4, 4)
    assert (ds._row_of_index is None) == (order == "canonical")
    for j, values in enumerate(SHAPES_VALUES):
        np.testing.assert_array_equal(ds.factor_values[j], values)
    idx = np.array([95, 3, 3, 0, 50, 3, 7])  # any order, repeats included
    x = ds.images(idx)
    assert x.dtype == np.float32 and x.shape == (7, 3, 4, 4) and x.flags.c_contiguous
    rows = np.rint(x[:, 0, 0, 0] * 255).astype(np.int64)
    np.testing.assert_array_equal(x, arrays["images"][rows].transpose(0, 3, 1, 2) / np.float32(255))
    values = arrays["labels"][rows]
    np.testing.assert_array_equal(values, [[SHAPES_VALUES[j][k] for j, k in enumerate(f)] for f in ds.factors(idx)])
    if order == "canonical":
        np.testing.assert_array_equal(rows, idx)
    assert ds.images([]).shape == (0, 3, 4, 4)
    train, test = fixed_split(96, 16, 1)
    np.testing.assert_array_equal(ds.test_indices, test)
    again = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(again.images(idx), x)


@pytest.mark.parametrize("case, message", [
    ("no images", "key 'images' missing (the file holds: labels)"),
    ("no labels", "key 'labels' missing (the file holds: images)"),
    ("missing combination", "not a complete factor grid"),
    ("float images", "key 'images': float32 array of shape (96, 4, 4, 3); expected uint8 images (N, H, W, 3)"),
    ("count mismatch", "key 'images' holds 95 images but 'labels' 96 rows"),
    ("five factors", "key 'labels': expected a numeric (N, 6) array, got float64 (96, 5)"),
])
def test_shapes3d_format_errors(tmp_path, case, message):
    labels = np.array(list(itertools.product(*SHAPES_VALUES)))
    spoil = {
        "no images": dict(images=None),
        "no labels": dict(labels=None),
        "missing combination": dict(labels=labels[:-1], images=_pixel_code(95)),
        "float images": dict(images=_pixel_code(96).astype(np.float32)),
        "count mismatch": dict(images=_pixel_code(95)),
        "five factors": dict(labels=labels[:, :5]),
    }[case]
    path = tmp_path / "s.h5"
    write_shapes3d(path, **spoil)
    with pytest.raises(DataError) as err:
        data.get("shapes3d", path=str(path), test_size=4)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_shapes3d_path_errors(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path / '3dshapes.h5'}: no such file; dataset 'shapes3d' expected "
                                        "the 3dshapes HDF5 file 3dshapes.h5"):
        data.get("shapes3d", path=str(tmp_path))
    (tmp_path / "3dshapes.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match=f"{tmp_path / '3dshapes.h5'}: not a readable HDF5 file"):
        data.get("shapes3d", path=str(tmp_path))


def test_shapes3d_without_h5py_says_how_to_install_it(tmp_path, monkeypatch):
    path = tmp_path / "3dshapes.h5"
    write_shapes3d(path)
    monkeypatch.setitem(sys.modules, "h5py", None)  # `import h5py` now raises ImportError
    with pytest.raises(MissingDependencyError, match="pip install h5py"):
        data.get("shapes3d", path=str(path), test_size=4)


# ---------------------------------------------------------------------------- registry


def test_registered_datasets_and_their_parameters():
    expected = {
        "mnist": ["path", "binarize", "binarize_seed"], "fashion_mnist": ["path", "binarize", "binarize_seed"],
        "binarized_mnist": ["path", "train", "test"], "dsprites_file": ["path", "test_size", "split_seed"],
        "shapes3d": ["path", "test_size", "split_seed"],
        "dsprites": ["size", "test_size", "split_seed"], "color_dsprites": ["size", "test_size", "split_seed"],
        "digits": ["test_size", "split_seed"],
        "image_folder": ["path", "size", "channels", "labels", "test_size", "split_seed"], "cifar10": ["path"],
        "npz": ["path", "test_size", "split_seed"],
    }
    for name, params in expected.items():
        assert data.dataset_parameters(name) == params
    with pytest.raises(ConfigError, match="key 'mode': unknown parameter for dataset 'dsprites'"):
        data.get("dsprites", mode="color")
    assert data.get("color_dsprites", size=32).image_shape == (3, 32, 32)


# ---------------------------------------------------------------------------- files that load but are broken (issue 10)


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_dsprites_file_with_a_truncated_imgs_array_is_refused_at_load(tmp_path):
    path = tmp_path / "d.npz"
    write_dsprites(path, drop=["imgs"])
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("imgs.npy", _npy_bytes(_row_bits(48))[:-100])
    with pytest.raises(DataError, match=fr"^{path}: key 'imgs': the header declares uint8 data of shape \(48, 8, 8\) "
                                        r"\(3072 bytes\), but 2972 bytes are stored \(truncated\)"):
        data.get("dsprites_file", path=str(path), test_size=4)
    write_dsprites(path)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:-200])  # a copy that stopped early: the archive's directory is gone
    with pytest.raises(DataError, match=f"^{cut}: not a NumPy .npz archive"):
        data.get("dsprites_file", path=str(cut), test_size=4)


def test_dsprites_file_without_rows_is_refused_at_load(tmp_path):
    path = tmp_path / "d.npz"
    write_dsprites(path, imgs=np.zeros((0, 8, 8), np.uint8), latents_classes=np.zeros((0, 6), np.int64))
    with pytest.raises(DataError, match=f"^{path}: holds no images \\(key 'latents_classes' has 0 rows\\)"):
        data.get("dsprites_file", path=str(path), test_size=4)


@pytest.mark.parametrize("which", ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"])
def test_mnist_file_with_zero_images_is_refused_at_load(tmp_path, which):
    write_mnist(tmp_path)
    write_idx(tmp_path / which, np.zeros((0, 28, 28), np.uint8))
    write_idx(tmp_path / which.replace("images-idx3", "labels-idx1"), np.zeros(0, np.uint8))
    with pytest.raises(DataError, match=fr"^{tmp_path / which}: holds an empty array of shape \(0, 28, 28\)"):
        data.get("mnist", path=str(tmp_path))


def test_idx_dimensions_whose_product_overflows_are_refused(tmp_path):
    # 2**31 * 2**31 * 4 = 2**64: as an int64 product this wraps to 0 and matched an empty body
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**31, 2**31, 4))
    with pytest.raises(DataError, match=fr"^{path}: IDX header declares uint8 data of shape "
                                        fr"\(2147483648, 2147483648, 4\) \({2**64:,d} bytes\), more than the limit"):
        read_idx(path)


def test_mnist_negative_labels_are_refused(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, -3, 2], np.int8))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: holds the negative label -3"):
        data.get("mnist", path=str(tmp_path))


@pytest.mark.parametrize("key", ["images", "labels"])
def test_shapes3d_key_that_is_a_group_is_refused_at_load(tmp_path, key):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "3dshapes.h5"
    write_shapes3d(path, **{key: None})
    with h5py.File(path, "a") as f:
        f.create_group(key).create_dataset("inner", data=np.zeros(3))
    with pytest.raises(DataError, match=f"^{path}: key '{key}' is an HDF5 group, not a dataset"):
        data.get("shapes3d", path=str(path), test_size=4)


def test_shapes3d_scalar_labels_are_refused_at_load(tmp_path):
    path = tmp_path / "3dshapes.h5"
    write_shapes3d(path, labels=np.float64(3.0))
    with pytest.raises(DataError, match=fr"^{path}: key 'labels': shape \(\); expected \(N, 6\) factor values"):
        data.get("shapes3d", path=str(path), test_size=4)


def test_describe_carries_the_files_fingerprint(tmp_path):
    write_mnist(tmp_path / "m")
    path = tmp_path / "d.npz"
    write_dsprites(path)

    def fingerprints() -> dict[str, str]:
        mnist = data.DATASETS.get("mnist")(path=str(tmp_path / "m"))
        dsprites = data.DATASETS.get("dsprites_file")(path=str(path), test_size=4)
        return {"mnist": mnist.describe()["fingerprint"], "dsprites_file": dsprites.describe()["fingerprint"]}

    before = fingerprints()
    os.utime(tmp_path / "m" / "t10k-images-idx3-ubyte", ns=(1, 1))
    os.utime(path, ns=(1, 1))
    after = fingerprints()
    assert after["mnist"] != before["mnist"]
    assert after["dsprites_file"] != before["dsprites_file"]
