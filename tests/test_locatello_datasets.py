"""The datasets of Locatello et al. 2019 read from their publishers' files: smallnorb, cars3d, mpi3d,
scream_dsprites, and the published-digest check.

Every fixture file is written here, small, in the published format, from the format's definition
(not with the loaders' code); expected pixels come from disentanglement_lib's own PIL calls run
here. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import logging
import os
import pickle
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from scipy.stats import chisquare

from helpers import files_suite, write_maybe_gzipped
from vaebench import data
from vaebench.bench.suite import load_suite
from vaebench.data import mpi3d as mpi3d_module, published
from vaebench.errors import ConfigError, DataError
from vaebench.metrics import METRICS, EvaluationContext
from vaebench.metrics.disentanglement.protocol import PROTOCOL_PARAMS, scored_samples


@pytest.fixture(autouse=True)
def digest_cache(tmp_path, monkeypatch):
    """File digests are kept under a temporary directory, and nothing is remembered between tests."""
    monkeypatch.setenv("VAEBENCH_CACHE_DIR", str(tmp_path / "vaebench_cache"))
    monkeypatch.setattr(published, "_DIGESTS", {})
    monkeypatch.setattr(published, "_WARNED", set())
    data._build.cache_clear()
    yield
    data._build.cache_clear()


class ProjectionEncoder(torch.nn.Module):
    """A fixed 'model': mu = the mean pixel of each image quadrant."""

    def encode(self, x):
        h = x.shape[-1] // 2
        quadrants = [x[..., :h, :h], x[..., :h, h:], x[..., h:, :h], x[..., h:, h:]]
        mu = torch.stack([q.mean(dim=(1, 2, 3)) for q in quadrants], dim=1)
        return mu, torch.full_like(mu, -2.0)


def fresh_context(dataset, **params) -> EvaluationContext:
    """The context of a disentanglement score, its protocol's parameters complete (as `MetricInfo.compute`
    hands them to the score), so `scored_samples` reads them directly too."""
    images = torch.from_numpy(dataset.images(dataset.test_indices))
    with torch.no_grad():
        mu, logvar = ProjectionEncoder().encode(images)
    return EvaluationContext(
        model=ProjectionEncoder(), dataset=dataset, test_indices=dataset.test_indices, test_images=images,
        mu=mu.double().numpy(), logvar=logvar.double().numpy(), factors=dataset.factors(dataset.test_indices),
        seed=0, device=torch.device("cpu"), cache_dir=Path("."),
        params={**{p.key: p.default for p in PROTOCOL_PARAMS}, **params},
    )


def check_fresh_protocol(dataset, n_train=600, n_test=200):
    """The fresh-sample protocol draws uniform factor vectors, encodes their images, and scores them."""
    ctx = fresh_context(dataset, disentanglement_num_train=n_train, disentanglement_num_test=n_test)
    (sample,) = scored_samples(ctx)
    assert sample.factors.shape == (n_train + n_test, len(dataset.factor_sizes))
    for column, size in zip(sample.factors.T, dataset.factor_sizes):
        assert column.min() >= 0 and column.max() < size
        if size > 1:
            assert chisquare(np.bincount(column, minlength=size)).pvalue > 1e-4
    with torch.no_grad():  # one block of rows: the images the protocol asked for in one call
        expected, _ = ProjectionEncoder().encode(torch.from_numpy(dataset.images_from_factors(sample.factors)))
    np.testing.assert_allclose(sample.codes, expected.double().numpy(), rtol=1e-6, atol=1e-7)
    assert np.isfinite(METRICS.get("mig").compute(ctx)["mig"])
    return sample


# ---------------------------------------------------------------------------- SmallNORB

NORB_MAGIC = {np.dtype("u1"): 0x1E3D4C55, np.dtype("<i4"): 0x1E3D4C54}
TRAIN, TEST = "5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing"


def norb_bytes(array: np.ndarray) -> bytes:
    """A NORB binary matrix from the format's definition: magic, ndim, max(3, ndim) dims (1-padded), data."""
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    return struct.pack("<ii", NORB_MAGIC[array.dtype], array.ndim) + struct.pack(f"<{len(dims)}i", *dims) + \
        array.tobytes()


def write_norb(path: Path, array: np.ndarray, gz: bool) -> Path:
    return write_maybe_gzipped(path, norb_bytes(array), gz)


def norb_images(states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 2, 96, 96) uint8 stereo pairs: textured images with sharp edges (LANCZOS overshoots), the second
    camera's image different from the first."""
    n = len(states)
    images = rng.integers(0, 60, size=(n, 2, 96, 96)).astype(np.uint8)
    for i, s in enumerate(states):
        top, left = 10 + 8 * s[2], 10 + 5 * s[3]
        images[i, 0, top:top + 30, left:left + 20] = 200 + 10 * s[0] + 5 * s[4]
        images[i, 0, :, 90 - 3 * s[1]:] = 255
        images[i, 1] = 255 - images[i, 0]
    return images


def write_smallnorb(directory: Path, gz=(True, False), seed=0, drop_row=False):
    """Two chunks (instances 4, 6 and 0, 1) of a 2 categories x 2 elevations x 3 azimuths x 2 lightings
    grid, rows shuffled; returns {chunk: (states (N, 5) as stored, images)}."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for chunk, instances, zipped in ((TRAIN, (4, 6), gz[0]), (TEST, (0, 1), gz[1])):
        states = np.array(list(itertools.product((0, 1), instances, (0, 1), (0, 2, 4), (0, 1))), dtype=np.int32)
        states = states[rng.permutation(len(states))]
        if drop_row and chunk == TEST:
            states = states[1:]
        images = norb_images(states, rng)
        write_norb(directory / f"smallnorb-{chunk}-dat.mat", images, zipped)
        write_norb(directory / f"smallnorb-{chunk}-cat.mat", np.ascontiguousarray(states[:, 0]), zipped)
        write_norb(directory / f"smallnorb-{chunk}-info.mat", np.ascontiguousarray(states[:, 1:]), zipped)
        out[chunk] = (states, images)
    return out


def study_resize_norb(image: np.ndarray) -> np.ndarray:
    """disentanglement_lib's _resize_images on one image, as it reads it (int8), clipped to [0, 1]."""
    resized = np.asarray(Image.fromarray(image.view(np.int8)).resize((64, 64), Image.Resampling.LANCZOS))
    return np.clip(resized / 255.0, 0.0, 1.0)


def test_smallnorb_images_factors_and_order(tmp_path):
    written = write_smallnorb(tmp_path / "norb")
    ds = data.get("smallnorb", path=str(tmp_path / "norb"), test_size=16)
    assert ds.factor_names == ("category", "elevation", "azimuth", "lighting")
    assert ds.factor_sizes == (2, 2, 3, 2) and ds.state_sizes == (2, 4, 2, 3, 2) and ds.num_images == 96
    assert ds.image_shape == (1, 64, 64) and len(ds.train_indices) == 80
    assert np.array_equal(ds.factor_values[2], [0, 2, 4])  # azimuth keeps the file's values
    states = np.concatenate([written[TRAIN][0], written[TEST][0]])
    images = np.concatenate([written[TRAIN][1], written[TEST][1]])
    instances = np.unique(states[:, 1])
    indices = np.arange(96)
    expected_state = np.stack(np.unravel_index(indices, (2, 4, 2, 3, 2)), axis=1)  # category most significant
    assert np.array_equal(ds.factors(indices), expected_state[:, [0, 2, 3, 4]])
    assert np.array_equal(ds.instances(indices), expected_state[:, 1])
    got = ds.images(indices)
    assert got.dtype == np.float32 and got.shape == (96, 1, 64, 64) and 0 <= got.min() and got.max() <= 1
    for i in indices:
        s = expected_state[i]
        value = (s[0], instances[s[1]], s[2], (0, 2, 4)[s[3]], s[4])
        (row,) = np.flatnonzero((states == value).all(axis=1))
        np.testing.assert_allclose(got[i, 0], study_resize_norb(images[row, 0]), atol=1e-6)
    # the study's 32-bit resize overshoots at the sharp edges: the clipped values are what vaebench keeps
    raw = np.asarray(Image.fromarray(images[0, 0].view(np.int8)).resize((64, 64), Image.Resampling.LANCZOS))
    assert raw.min() < 0 or raw.max() > 255
    assert np.array_equal(ds.index_of(ds.factors(indices), ds.instances(indices)), indices)
    with pytest.raises(ValueError, match="instance"):
        ds.index_of(ds.factors(indices))
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._pixels is None and np.array_equal(copy.images(indices[:5]), got[:5])


def test_smallnorb_draws_an_instance_per_image(tmp_path):
    write_smallnorb(tmp_path / "norb")
    ds = data.get("smallnorb", path=str(tmp_path / "norb"), test_size=16)
    factors = np.tile([[1, 0, 2, 1]], (400, 1))
    images = ds.images_from_factors(factors)
    assert np.array_equal(images, ds.images_from_factors(factors))  # the same request, the same images
    per_instance = ds.images(ds.index_of(np.tile([[1, 0, 2, 1]], (4, 1)), np.arange(4)))
    matches = [np.flatnonzero([np.array_equal(img, ref) for ref in per_instance]) for img in images]
    assert all(len(m) == 1 for m in matches)  # each image is the factors' image for one instance
    counts = np.bincount([m[0] for m in matches], minlength=4)
    assert chisquare(counts).pvalue > 1e-3, counts  # uniform over the instances
    other = ds.images_from_factors(np.tile([[1, 0, 2, 1]], (401, 1)))[:400]
    assert not np.array_equal(other, images)  # another request, other draws


def test_smallnorb_fresh_sample_protocol(tmp_path):
    write_smallnorb(tmp_path / "norb")
    check_fresh_protocol(data.get("smallnorb", path=str(tmp_path / "norb"), test_size=16))


def test_smallnorb_published_digests_are_checked(tmp_path, caplog, monkeypatch):
    write_smallnorb(tmp_path / "norb", gz=(True, False))
    with caplog.at_level(logging.WARNING, logger="vaebench.data.published"):
        ds = data.get("smallnorb", path=str(tmp_path / "norb"), test_size=16)
    files = ds.data_files()
    assert set(files) == {f"smallnorb-{TRAIN}-{k}.mat.gz" for k in ("dat", "cat", "info")} | \
        {f"smallnorb-{TEST}-{k}.mat" for k in ("dat", "cat", "info")}
    for name, record in files.items():
        assert record["sha256"] == hashlib.sha256((tmp_path / "norb" / name).read_bytes()).hexdigest()
        assert record["published"] is (False if name.endswith(".gz") else None)  # no digest of the plain files
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 3 and all("not the published" in line and "TensorFlow Datasets" in line for line in lines)
    assert any(f"smallnorb-{TRAIN}-dat.mat.gz" in line and "5ffd6272a07d" in line for line in lines)
    # a file whose digest is the published one passes without a line
    dat = tmp_path / "norb" / f"smallnorb-{TRAIN}-dat.mat.gz"
    expected = published.PUBLISHED[dat.name]
    monkeypatch.setitem(published.PUBLISHED, dat.name, published.PublishedDigest(
        "sha256", hashlib.sha256(dat.read_bytes()).hexdigest(), expected.source, dat.stat().st_size))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vaebench.data.published"):
        assert published.check_published(dat)["published"] is True
    assert not caplog.records


def test_smallnorb_prefers_the_gzipped_download(tmp_path):
    write_smallnorb(tmp_path / "norb", gz=(False, False))
    plain = data.get("smallnorb", path=str(tmp_path / "norb"), test_size=16)
    for name in list((tmp_path / "norb").iterdir()):
        (tmp_path / "norb" / (name.name + ".gz")).write_bytes(gzip.compress(name.read_bytes()))
    data._build.cache_clear()
    both = data.get("smallnorb", path=str(tmp_path / "norb"), test_size=16)
    assert all(n.endswith(".gz") for n in both.data_files())
    assert np.array_equal(both.images(np.arange(96)), plain.images(np.arange(96)))


@pytest.mark.parametrize("case, message", [
    ("missing", r"testing-cat\.mat: no such file \(nor smallnorb-5x01235x9x18x6x2x96x96-testing-cat\.mat\.gz\)"),
    ("magic", r"training-info\.mat: magic number 0x1234 is not a NORB matrix type"),
    ("truncated", r"training-dat\.mat: the header declares \(48, 2, 96, 96\) .* but the file holds"),
    ("gz_truncated", r"testing-dat\.mat\.gz: the header declares .* but its gzip trailer records"),
    ("rows", r"training-dat\.mat: 48 images, but smallnorb-5x46789x9x18x6x2x96x96-training-cat\.mat has 47 rows"),
    ("type", r"training-cat\.mat: a uint8 matrix of shape \(48,\); expected a 1-d int32 matrix"),
    ("grid", r"not a complete factor grid"),
    ("a_file", r"a file; dataset 'smallnorb' expected a directory"),
])
def test_smallnorb_file_errors_name_the_file(tmp_path, case, message):
    directory = tmp_path / "norb"
    written = write_smallnorb(directory, gz=(False, True), drop_row=case == "grid")
    train = directory / f"smallnorb-{TRAIN}-dat.mat"
    if case == "missing":
        (directory / f"smallnorb-{TEST}-cat.mat.gz").unlink()
    elif case == "magic":
        info = directory / f"smallnorb-{TRAIN}-info.mat"
        info.write_bytes(struct.pack("<i", 0x1234) + info.read_bytes()[4:])
    elif case == "truncated":
        train.write_bytes(train.read_bytes()[:-100])
    elif case == "gz_truncated":
        test = directory / f"smallnorb-{TEST}-dat.mat.gz"
        test.write_bytes(gzip.compress(gzip.decompress(test.read_bytes())[:-100]))
    elif case == "rows":
        write_norb(directory / f"smallnorb-{TRAIN}-cat.mat", np.ascontiguousarray(written[TRAIN][0][1:, 0]), False)
    elif case == "type":
        (directory / f"smallnorb-{TRAIN}-cat.mat").write_bytes(
            norb_bytes(written[TRAIN][0][:, 0].astype(np.uint8)))
    path = train if case == "a_file" else directory
    with pytest.raises(DataError, match=message):
        data.get("smallnorb", path=str(path), test_size=16)
    with pytest.raises(ConfigError, match="key 'path': required"):
        data.get("smallnorb")


@pytest.mark.slow
def test_a_run_records_the_files_digests_in_its_environment(tmp_path):
    from vaebench.bench.spec import RunTask
    from vaebench.bench.train import execute_run

    write_smallnorb(tmp_path / "norb")
    suite = files_suite(tmp_path / "suite.toml", f'name = "smallnorb"\npath = "{tmp_path / "norb"}"\ntest_size = 16')
    spec = load_suite(suite).specs[0]
    result = execute_run(RunTask(spec, spec.variant, str(tmp_path / "run")))
    assert result.status == "done", result.error
    files = result.environment["data_files"]
    name = f"smallnorb-{TRAIN}-dat.mat.gz"
    assert files[name] == {"sha256": hashlib.sha256((tmp_path / "norb" / name).read_bytes()).hexdigest(),
                           "published": False}


# ---------------------------------------------------------------------------- the digest cache

def test_file_digests_are_kept_by_file_version(tmp_path, monkeypatch):
    file = tmp_path / "f.bin"
    file.write_bytes(b"abc" * 1000)
    first = published.file_digests(file)
    assert first == {"sha256": hashlib.sha256(b"abc" * 1000).hexdigest(), "md5": hashlib.md5(b"abc" * 1000).hexdigest()}
    assert len(list(published.digest_cache_dir().glob("*.json"))) == 1
    monkeypatch.setattr(published, "_DIGESTS", {})  # a new process: the digests come from the disk

    def no_reading(*args, **kwargs):
        raise AssertionError("the file was read again")

    monkeypatch.setattr(published, "open", no_reading, raising=False)
    assert published.file_digests(file) == first
    monkeypatch.delattr(published, "open")
    file.write_bytes(b"abd" * 1000)  # another version of the file (its mtime changes)
    os.utime(file, ns=(1, 10**18))
    assert published.file_digests(file)["sha256"] == hashlib.sha256(b"abd" * 1000).hexdigest()


def test_an_unwritable_digest_cache_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("x")
    monkeypatch.setenv("VAEBENCH_CACHE_DIR", str(blocker))
    file = tmp_path / "f.bin"
    file.write_bytes(b"xyz")
    assert published.file_digests(file)["md5"] == hashlib.md5(b"xyz").hexdigest()


# ---------------------------------------------------------------------------- Cars3D

def write_cars(directory: Path, names=("car_001_mesh", "car_002_mesh", "car_003_mesh"), listing=None,
               shape=(128, 128, 3, 3, 2), seed=0) -> dict[str, np.ndarray]:
    """MATLAB v5 files holding 'im' (H, W, 3, azimuths, elevations) uint8, as the published car_*_mesh.mat."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        im = rng.integers(0, 256, size=shape, dtype=np.uint8)
        im[20:80, 30:90] = rng.integers(0, 256, size=(1, 1, 3, *shape[3:]), dtype=np.uint8)
        scipy.io.savemat(str(directory / f"{name}.mat"), {"im": im, "mask": np.zeros(shape[:2], np.uint8)})
        out[name] = im
    if listing is not None:
        (directory / "list.txt").write_text("".join(f"{n}\n" for n in listing))
    return out


def study_thumbnail(image: np.ndarray) -> np.ndarray:
    """disentanglement_lib's _load_mesh on one view: PIL thumbnail with ANTIALIAS (LANCZOS), / 255."""
    picture = Image.fromarray(image)
    picture.thumbnail((64, 64), Image.Resampling.LANCZOS)
    return np.asarray(picture).transpose(2, 0, 1) / 255.0


@pytest.mark.parametrize("listed", [True, False])
def test_cars3d_images_and_factors(tmp_path, listed):
    order = ["car_003_mesh", "car_001_mesh", "car_002_mesh"]
    cars = write_cars(tmp_path / "cars", listing=order if listed else None)
    objects = order if listed else sorted(cars)
    ds = data.get("cars3d", path=str(tmp_path / "cars"), test_size=6)
    assert ds.factor_names == ("elevation", "azimuth", "object") and ds.factor_sizes == (2, 3, 3)
    assert ds.num_images == 18 and ds.image_shape == (3, 64, 64)
    indices = np.arange(18)
    got = ds.images(indices)
    assert got.dtype == np.float32
    for i, (e, a, o) in enumerate(itertools.product(range(2), range(3), range(3))):
        assert ds.factors([i]).tolist() == [[e, a, o]]
        np.testing.assert_allclose(got[i], study_thumbnail(np.ascontiguousarray(cars[objects[o]][:, :, :, a, e])),
                                   atol=1e-6)
    assert np.array_equal(ds.images_from_factors(ds.factors(indices[::-1])), got[::-1])
    check_fresh_protocol(ds, n_train=300, n_test=100)


def test_cars3d_records_the_sha256sum_listing(tmp_path):
    write_cars(tmp_path / "cars")
    ds = data.get("cars3d", path=str(tmp_path / "cars"), test_size=6)
    ((name, record),) = ds.data_files().items()
    assert name == "car_*_mesh.mat (3 files)" and record["published"] is None
    files = sorted((tmp_path / "cars").glob("car_*_mesh.mat"))
    listing = "".join(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n" for f in files)
    assert record["sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    if shutil.which("sha256sum"):  # what the module's docstring says a user can run
        out = subprocess.run("sha256sum car_*_mesh.mat | sha256sum", shell=True, cwd=tmp_path / "cars",
                             capture_output=True, text=True, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
        assert out.stdout.split()[0] == record["sha256"]


@pytest.mark.parametrize("case, message", [
    ("empty", r"cars: holds no car_\*_mesh\.mat files"),
    ("listed_missing", r"car_009_mesh\.mat: no such file, but .*list\.txt lists it"),
    ("no_im", r"car_002_mesh\.mat: no variable 'im' \(the file holds: mask\)"),
    ("shape", r"car_002_mesh\.mat: 'im' has shape \(128, 128, 3, 2, 2\), car_001_mesh\.mat's has"),
    ("dtype", r"car_001_mesh\.mat: variable 'im' is double of shape"),
    ("not_mat", r"car_003_mesh\.mat: not a MATLAB \.mat file"),
])
def test_cars3d_file_errors_name_the_file(tmp_path, case, message):
    directory = tmp_path / "cars"
    if case == "empty":
        directory.mkdir()
    else:
        write_cars(directory, listing=["car_001_mesh", "car_009_mesh"] if case == "listed_missing" else None)
    if case == "no_im":
        scipy.io.savemat(str(directory / "car_002_mesh.mat"), {"mask": np.zeros((4, 4), np.uint8)})
    elif case == "shape":
        write_cars(directory, names=("car_002_mesh",), shape=(128, 128, 3, 2, 2))
    elif case == "dtype":
        scipy.io.savemat(str(directory / "car_001_mesh.mat"), {"im": np.zeros((8, 8, 3, 3, 2))})
    elif case == "not_mat":
        (directory / "car_003_mesh.mat").write_bytes(b"not a matlab file" * 10)
    with pytest.raises(DataError, match=message):
        data.get("cars3d", path=str(directory), test_size=6)


# ---------------------------------------------------------------------------- MPI3D

SMALL_GRID = (2, 2, 1, 1, 2, 3, 3)  # 72 images: a stand-in for the published 6 x 6 x 2 x 3 x 3 x 40 x 40


@pytest.fixture
def small_grid(monkeypatch):
    monkeypatch.setitem(mpi3d_module.GRIDS, 72, SMALL_GRID)


def write_mpi3d(path: Path, compressed: bool = False, seed: int = 0, n: int = 72) -> np.ndarray:
    images = np.random.default_rng(seed).integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(path, images=images)
    return images


@pytest.mark.parametrize("compressed", [False, True])
def test_mpi3d_images_and_factors(tmp_path, small_grid, compressed):
    images = write_mpi3d(tmp_path / "mpi3d_real.npz", compressed)
    ds = data.get("mpi3d", path=str(tmp_path), variant="real", test_size=10)
    assert ds.factor_names == ("object_color", "object_shape", "object_size", "camera_height", "background_color",
                               "horizontal_axis", "vertical_axis")
    assert ds.factor_sizes == SMALL_GRID and ds.num_images == 72 and ds.image_shape == (3, 64, 64)
    # the README's reading: images.reshape([*factor sizes, 64, 64, 3])
    grid = images.reshape(*SMALL_GRID, 64, 64, 3)
    indices = np.array([71, 0, 5, 5, 40])
    got = ds.images(indices)
    for i, image in zip(indices, got):
        f = ds.factors([i])[0]
        np.testing.assert_allclose(image, grid[tuple(f)].transpose(2, 0, 1) / 255.0, atol=1e-7)
    assert (data.files.npz_memmap(ds.path, "images") is None) == compressed
    copy = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(copy.images(indices), got)


def test_mpi3d_fresh_sample_protocol_and_published_digest(tmp_path, small_grid, caplog, monkeypatch):
    write_mpi3d(tmp_path / "mpi3d_toy.npz")
    with caplog.at_level(logging.WARNING, logger="vaebench.data.published"):
        ds = data.get("mpi3d", path=str(tmp_path / "mpi3d_toy.npz"), test_size=10)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "mpi3d_toy.npz: not the published mpi3d_toy.npz (MD5" in line and "55889cb7c7dfc655d6e0277beee88868" in line
    assert ds.data_files()["mpi3d_toy.npz"]["published"] is False
    check_fresh_protocol(ds, n_train=500, n_test=100)
    # renamed, the file is still checked against the variant's published digest
    renamed = tmp_path / "elsewhere" / "my_copy.npz"
    renamed.parent.mkdir()
    shutil.copy(tmp_path / "mpi3d_toy.npz", renamed)
    monkeypatch.setitem(published.PUBLISHED, "mpi3d_toy.npz", published.PublishedDigest(
        "md5", hashlib.md5(renamed.read_bytes()).hexdigest(), "a test"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vaebench.data.published"):
        assert data.get("mpi3d", path=str(renamed), test_size=10).data_files()["my_copy.npz"]["published"] is True
    assert not caplog.records


def test_mpi3d_errors(tmp_path, small_grid):
    write_mpi3d(tmp_path / "mpi3d_real.npz")
    with pytest.raises(ConfigError, match="key 'variant': the file .*mpi3d_real.npz is the 'real' archive; set"):
        data.get("mpi3d", path=str(tmp_path / "mpi3d_real.npz"))
    with pytest.raises(ConfigError, match="key 'variant': must be one of 'toy', 'realistic', 'real', got 'sim'"):
        data.get("mpi3d", path=str(tmp_path), variant="sim")
    with pytest.raises(DataError, match=r"mpi3d_toy\.npz: no such file; dataset 'mpi3d' \(variant 'toy'\)"):
        data.get("mpi3d", path=str(tmp_path))
    write_mpi3d(tmp_path / "mpi3d_toy.npz", n=70)
    with pytest.raises(DataError, match="holds 70 images, not a known MPI3D grid .*1036800 = 6 x 6 x 2 x 3 x 3 x 40"):
        data.get("mpi3d", path=str(tmp_path))
    np.savez(tmp_path / "mpi3d_realistic.npz", images=np.zeros((72, 64, 64, 3), np.float32))
    with pytest.raises(DataError, match=r"key 'images': float32 array of shape \(72, 64, 64, 3\); expected uint8"):
        data.get("mpi3d", path=str(tmp_path), variant="realistic")
    np.savez(tmp_path / "mpi3d_realistic.npz", pictures=np.zeros((72, 64, 64, 3), np.uint8))
    with pytest.raises(DataError, match=r"key 'images' missing \(the archive holds: pictures\)"):
        data.get("mpi3d", path=str(tmp_path), variant="realistic")


# ---------------------------------------------------------------------------- Scream-dSprites

def write_scream(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def random_picture(seed=0, height=500, width=400) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_scream_dsprites_is_the_studys_construction(tmp_path):
    picture = random_picture()
    file = write_scream(tmp_path / "scream" / "scream.png", picture)
    ds = data.get("scream_dsprites", path=str(file), size=32, test_size=50)
    sprites = data.get("dsprites", size=32, test_size=50)
    assert ds.factor_names == sprites.factor_names and ds.factor_sizes == sprites.factor_sizes
    assert np.array_equal(ds.test_indices, sprites.test_indices) and ds.image_shape == (3, 32, 32)
    # the study's background, computed here: thumbnail((350, 274)), a patch at (x, y), (patch + c) / 2
    thumb = Image.fromarray(picture)
    thumb.thumbnail((350, 274))
    scream = np.asarray(thumb) / 255.0
    assert scream.shape == (274, 219, 3)
    indices = np.array([0, 12345, 700000, 12345])
    got = ds.images(indices)
    masks = sprites.images(indices)[:, 0] > 0.5
    for image, mask, i in zip(got, masks, indices):
        rng = np.random.default_rng([0x5C12EA, int(i)])  # the per-index generator the module documents
        x, y, c = rng.integers(0, 274 - 32), rng.integers(0, 219 - 32), rng.uniform(0, 1, size=3)
        background = (scream[x:x + 32, y:y + 32] + c) / 2
        expected = np.where(mask[..., None], 1 - background, background).transpose(2, 0, 1)
        np.testing.assert_allclose(image, expected, atol=1e-6)
    assert np.array_equal(got[1], got[3])  # an index always names the same pixels
    assert np.array_equal(ds.factors(indices), sprites.factors(indices))


def test_scream_dsprites_on_a_plain_picture_has_two_colours_that_sum_to_one(tmp_path):
    file = write_scream(tmp_path / "scream.png", np.full((300, 380, 3), 100, dtype=np.uint8))
    ds = data.get("scream_dsprites", path=str(file), test_size=50)  # size 64, the study's
    assert ds.image_shape == (3, 64, 64)
    images = ds.images(np.arange(0, 737280, 73728))
    masks = data.get("dsprites", test_size=50).images(np.arange(0, 737280, 73728))[:, 0] > 0.5
    for image, mask in zip(images, masks):
        background, sprite = image[:, ~mask], image[:, mask]
        for channel in range(3):
            (b,), (s,) = np.unique(background[channel]), np.unique(sprite[channel])
            assert b + s == pytest.approx(1.0, abs=1e-6)  # sprite pixels invert the background
            assert 100 / 255 / 2 <= b <= (100 / 255 + 1) / 2  # (picture + c) / 2 with c in [0, 1)


def test_scream_dsprites_materialised_fresh_protocol_and_digest(tmp_path, caplog):
    file = write_scream(tmp_path / "scream" / "scream.jpg", random_picture(1))
    with caplog.at_level(logging.WARNING, logger="vaebench.data.published"):
        ds = data.get("scream_dsprites", path=str(tmp_path / "scream"), size=32, test_size=50)
    assert not caplog.records  # no published digest: recorded, not checked
    assert ds.data_files() == {"scream.jpg": {"sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
                                              "published": None}}
    view = ds.materialised(tmp_path / "cache", images_to_draw=10**7)
    assert view is not ds and view._sprites is not ds._sprites
    indices = np.array([3, 99, 500000])
    assert np.array_equal(view.images(indices), ds.images(indices))
    check_fresh_protocol(ds, n_train=300, n_test=100)


def test_scream_dsprites_file_errors(tmp_path):
    with pytest.raises(DataError, match=r"scream\.jpg: no such file; dataset 'scream_dsprites' expected"):
        data.get("scream_dsprites", path=str(tmp_path))
    (tmp_path / "scream.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"scream\.jpg: not an image Pillow can read"):
        data.get("scream_dsprites", path=str(tmp_path))
    small = write_scream(tmp_path / "small.png", random_picture(height=60, width=80))
    with pytest.raises(DataError, match=r"small\.png: 80 x 60 pixels after thumbnail\(350, 274\); patches of 64 px"):
        data.get("scream_dsprites", path=str(small))
    with pytest.raises(ConfigError, match="key 'size': must be 32 or 64"):
        data.get("scream_dsprites", path=str(small), size=48)


def test_registered_parameters():
    assert data.dataset_parameters("smallnorb") == ["path", "test_size", "split_seed"]
    assert data.dataset_parameters("cars3d") == ["path", "test_size", "split_seed"]
    assert data.dataset_parameters("mpi3d") == ["path", "variant", "test_size", "split_seed"]
    assert data.dataset_parameters("scream_dsprites") == ["path", "size", "test_size", "split_seed"]
