"""Binarised MNIST: the static binarisation of Larochelle & Murray from .amat or .npz files, and
the static / dynamic binarisation of `mnist` (vaebench.data.binarize)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import files_suite, write_mnist
from vaebench import data
from vaebench.bench.spec import RunSpec
from vaebench.bench.suite import load_suite
from vaebench.bench.train import Trainer
from vaebench.data.binarize import bernoulli_bytes
from vaebench.data.binarized_mnist import read_amat, read_binarized_npz
from vaebench.errors import ConfigError, DataError
from vaebench.files import file_sha256

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "binarized_mnist"
SHARED_SHA256 = "7a049ae3a0d88e964af4b41bbdb14e4303595e1c5de65f8bd2455cdcebb3514b"  # ../shared/data/README.md
SIZES = {"train": 5, "valid": 3, "test": 4}


def splits(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {s: rng.integers(0, 2, (n, 784), dtype=np.uint8) for s, n in SIZES.items()}
    out["train"][0] = 0
    out["train"][1] = 1  # an all-black and an all-white image
    return out


def amat_text(images: np.ndarray, spelling: str = "{}", newline: str = "\n") -> str:
    return "".join(" ".join(spelling.format(v) for v in row) + newline for row in images)


def write_amat(directory: Path, arrays: dict[str, np.ndarray], gz: bool = False, **spelling) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for split, images in arrays.items():
        raw = amat_text(images, **spelling).encode()
        (directory / f"binarized_mnist_{split}.amat").write_bytes(gzip.compress(raw) if gz else raw)
    return directory


def expected_sha256(arrays: dict[str, np.ndarray]) -> str:
    joined = b"".join(arrays[s].astype(np.uint8).tobytes() for s in ("train", "valid", "test"))
    return hashlib.sha256(joined).hexdigest()


# ------------------------------------------------------------------------------- file formats

@pytest.mark.parametrize("gz", [False, True])
def test_amat_round_trip(tmp_path, gz):
    arrays = splits()
    ds = data.get("binarized_mnist", path=str(write_amat(tmp_path / "bm", arrays, gz=gz)))
    assert ds.name == "binarized_mnist" and ds.image_shape == (1, 28, 28) and ds.num_images == 12
    everything = np.concatenate([arrays["train"], arrays["valid"], arrays["test"]])
    got = ds.images(np.arange(12))
    assert got.dtype == np.float32 and got.shape == (12, 1, 28, 28)
    np.testing.assert_array_equal(got.reshape(12, 784), everything)
    np.testing.assert_array_equal(ds.train_indices, np.arange(5))
    np.testing.assert_array_equal(ds.validation_indices, np.arange(5, 8))
    np.testing.assert_array_equal(ds.test_indices, np.arange(8, 12))
    described = ds.describe()
    assert described["content_sha256"] == expected_sha256(arrays)
    assert described["split_sizes"] == SIZES and described["fingerprint"]


@pytest.mark.parametrize("dtype, shape", [(np.uint8, (784,)), (np.bool_, (28, 28)), (np.float32, (784,)),
                                          (np.int64, (28, 28))])
def test_npz_holds_the_same_images(tmp_path, dtype, shape):
    arrays = splits(1)
    np.savez(tmp_path / "binarized_mnist.npz", **{s: a.astype(dtype).reshape(-1, *shape) for s, a in arrays.items()})
    from_dir = data.get("binarized_mnist", path=str(tmp_path))
    from_file = data.get("binarized_mnist", path=str(tmp_path / "binarized_mnist.npz"))
    amat = data.get("binarized_mnist", path=str(write_amat(tmp_path / "amat", arrays)))
    for ds in (from_dir, from_file):
        np.testing.assert_array_equal(ds.images(np.arange(12)), amat.images(np.arange(12)))
        assert ds.content_sha256 == amat.content_sha256 == expected_sha256(arrays)


def test_a_directory_with_both_formats_reads_the_text_files(tmp_path):
    write_amat(tmp_path, splits(0))
    np.savez(tmp_path / "binarized_mnist.npz", **splits(1))
    ds = data.get("binarized_mnist", path=str(tmp_path))
    assert [f.suffix for f in ds.files] == [".amat"] * 3 and ds.content_sha256 == expected_sha256(splits(0))


def test_other_spellings_of_the_values(tmp_path):
    arrays = splits(2)
    for spelling, newline in [("{}.0", "\n"), ("{}", "\r\n"), ("{:.3f}", "  \n\n")]:
        d = write_amat(tmp_path / f"{spelling}{len(newline)}", arrays, spelling=spelling, newline=newline)
        for split in arrays:
            np.testing.assert_array_equal(read_amat(d / f"binarized_mnist_{split}.amat"), arrays[split])


@pytest.mark.parametrize("text, message", [
    ("0 " * 783 + "\n", "line 1 holds 783 values; expected 784"),
    ("0 " * 784 + "\n" + "1 " * 785 + "\n", "line 2 holds 785 values"),
    ("0 " * 783 + "2\n", "line 1, value 784 is 2; expected 0 or 1"),
    ("0 " * 783 + "0.5\n", "line 1, value 784 is 0.5; expected 0 or 1"),
    ("0 " * 783 + "x\n", "line 1: 'x' is not a number"),
    ("0 " * 782 + "10\n", "line 1 holds 783 values"),
    ("\n \n", "holds no images"),
    ("", "holds no images"),
])
def test_malformed_amat_files(tmp_path, text, message):
    path = tmp_path / "binarized_mnist_train.amat"
    path.write_text(text)
    with pytest.raises(DataError, match=f"{path}: .*{message}" if message[0] != "h" else f"{path}: {message}"):
        read_amat(path)


def test_malformed_npz_files(tmp_path):
    good = splits()
    cases = [
        ({k: v for k, v in good.items() if k != "valid"}, "has no key 'valid'"),
        ({**good, "test": good["test"].reshape(4, 28, 28, 1)},
         "key 'test': holds uint8 data of shape \\(4, 28, 28, 1\\)"),
        ({**good, "train": np.where(np.arange(784) == 9, 2, good["train"])}, "key 'train': image 0, pixel 9 is 2"),
        ({**good, "valid": np.full((3, 784), np.nan)}, "key 'valid': image 0, pixel 0 is nan"),
    ]
    for i, (arrays, message) in enumerate(cases):
        path = tmp_path / f"{i}.npz"
        np.savez(path, **arrays)
        with pytest.raises(DataError, match=f"{path}: {message}"):
            read_binarized_npz(path)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a NumPy .npz archive"):
        data.get("binarized_mnist", path=str(tmp_path / "bad.npz"))


def test_path_errors(tmp_path):
    with pytest.raises(ConfigError, match="key 'path': required"):
        data.get("binarized_mnist")
    with pytest.raises(DataError, match="holds neither the three .amat files nor binarized_mnist.npz"):
        data.get("binarized_mnist", path=str(tmp_path))
    (tmp_path / "binarized_mnist_train.amat").write_text("0 " * 784 + "\n")
    with pytest.raises(DataError, match="binarized_mnist_valid.amat: no such file"):
        data.get("binarized_mnist", path=str(tmp_path))
    with pytest.raises(DataError, match="no such file or directory"):
        data.get("binarized_mnist", path=str(tmp_path / "absent"))


# ------------------------------------------------------------------------------------- splits

def test_train_on_train_and_valid(tmp_path):
    path = str(write_amat(tmp_path, splits()))
    ds = data.get("binarized_mnist", path=path, train="train+valid")
    np.testing.assert_array_equal(ds.train_indices, np.arange(8))
    np.testing.assert_array_equal(ds.test_indices, np.arange(8, 12))
    assert len(ds.validation_indices) == 0
    on_valid = data.get("binarized_mnist", path=path, test="valid")
    np.testing.assert_array_equal(on_valid.test_indices, np.arange(5, 8))
    with pytest.raises(ConfigError, match="key 'test': test = 'valid' would evaluate on training images"):
        data.get("binarized_mnist", path=path, train="train+valid", test="valid")
    with pytest.raises(ConfigError, match="key 'train': must be one of 'train', 'train\\+valid', got 'all'"):
        data.get("binarized_mnist", path=path, train="all")


def _suite(tmp_path: Path, dataset: str) -> Path:
    return files_suite(tmp_path / "suite.toml", dataset, metrics='"recon_bce"')


def test_suite_parameters_and_their_errors(tmp_path):
    d = write_amat(tmp_path / "bm", splits())
    spec = load_suite(_suite(tmp_path, f"name = 'binarized_mnist'\npath = '{d}'\ntrain = 'train'")).specs[0]
    assert dict(spec.dataset_params) == {"path": str(d)}  # a parameter at its default is dropped
    with pytest.raises(ConfigError, match=r"key 'datasets\[0\]\.train': must be one of"):
        load_suite(_suite(tmp_path, f"name = 'binarized_mnist'\npath = '{d}'\ntrain = 'everything'"))


# --------------------------------------------------------------------------- the real copy

@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/binarized_mnist is absent (a copy of the real files)")
def test_the_real_binarised_mnist():
    file = SHARED / "binarized_mnist.npz"
    assert file_sha256(file) == SHARED_SHA256
    ds = data.get("binarized_mnist", path=str(SHARED))
    assert ds.split_sizes == {"train": 50_000, "valid": 10_000, "test": 10_000}
    assert (len(ds.train_indices), len(ds.validation_indices), len(ds.test_indices)) == (50_000, 10_000, 10_000)
    with np.load(file) as z:  # read independently of the loader
        raw = {s: z[s] for s in ("train", "valid", "test")}
    assert all(a.shape[1:] == (784,) and set(np.unique(a)) == {0, 1} for a in raw.values())
    assert ds.content_sha256 == expected_sha256(raw)
    test = ds.images(ds.test_indices)
    assert set(np.unique(test)) == {0.0, 1.0}
    np.testing.assert_array_equal(test.reshape(-1, 784), raw["test"])
    assert 0.1 < float(test.mean()) < 0.2  # about 13% of binarised MNIST's pixels are on


# ----------------------------------------------------------------- binarising grey images

def test_bernoulli_bytes_has_the_pixel_intensity_as_probability():
    rng = np.random.default_rng(0)
    n = 200_000
    levels = np.array([0, 1, 64, 128, 254, 255], dtype=np.uint8)
    draws = bernoulli_bytes(np.repeat(levels[None], n, axis=0), rng)
    assert draws.dtype == np.uint8 and set(np.unique(draws)) <= {0, 1}
    freq, p = draws.mean(axis=0), levels / 255
    assert freq[0] == 0.0 and freq[-1] == 1.0  # exact at the ends
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12)
    with pytest.raises(TypeError):
        bernoulli_bytes(np.zeros(3, dtype=np.float32), rng)


def test_bernoulli_bytes_is_a_function_of_the_generator_state():
    pixels = np.random.default_rng(1).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    a = bernoulli_bytes(pixels, np.random.default_rng(7))
    np.testing.assert_array_equal(a, bernoulli_bytes(pixels, np.random.default_rng(7)))
    assert not np.array_equal(a, bernoulli_bytes(pixels, np.random.default_rng(8)))
    chunked = bernoulli_bytes(pixels, np.random.default_rng(7), chunk=1000)
    np.testing.assert_array_equal(chunked, bernoulli_bytes(pixels, np.random.default_rng(7), chunk=1000))


def test_static_binarisation_of_mnist(tmp_path):
    raw = write_mnist(tmp_path, n_train=40, n_test=10)
    grey = data.get("mnist", path=str(tmp_path))
    s0 = data.get("mnist", path=str(tmp_path), binarize="static")
    again = data.get("mnist", path=str(tmp_path), binarize="static", binarize_seed=0)
    s1 = data.get("mnist", path=str(tmp_path), binarize="static", binarize_seed=1)
    idx = np.arange(50)
    x0 = s0.images(idx)
    assert x0.dtype == np.float32 and set(np.unique(x0)) == {0.0, 1.0}
    np.testing.assert_array_equal(x0, again.images(idx))
    assert not np.array_equal(x0, s1.images(idx))
    expected = bernoulli_bytes(np.concatenate([raw["train_x"], raw["test_x"]]), np.random.default_rng(0))
    np.testing.assert_array_equal(x0[:, 0], expected)
    assert x0[0, 0, 0, 0] == 0.0 and x0[0, 0, 0, 1] == 1.0  # bytes 0 and 255
    assert len(np.unique(grey.images(idx))) > 2  # the grey images are untouched
    assert s0.describe()["binarize"] == "static" and "binarize" not in grey.describe()
    assert s0.labels(idx).tolist() == grey.labels(idx).tolist()


def test_dynamic_binarisation_draws_each_batch_from_the_run_generator(tmp_path):
    write_mnist(tmp_path, n_train=40, n_test=10)
    ds = data.get("mnist", path=str(tmp_path), binarize="dynamic", binarize_seed=3)
    static = data.get("mnist", path=str(tmp_path), binarize="static", binarize_seed=3)
    idx = np.arange(40)
    np.testing.assert_array_equal(ds.images(idx), static.images(idx))  # evaluation sees the fixed draw
    cpu = torch.device("cpu")
    rng = np.random.default_rng(5)
    first, second = ds.training_batch(idx, cpu, rng), ds.training_batch(idx, cpu, rng)
    assert first.dtype == torch.float32 and first.shape == (40, 1, 28, 28)
    assert set(first.unique().tolist()) == {0.0, 1.0} and not torch.equal(first, second)
    replay = np.random.default_rng(5)
    assert torch.equal(ds.training_batch(idx, cpu, replay), first)
    grey = data.get("mnist", path=str(tmp_path))
    g = np.random.default_rng(5)
    assert torch.equal(grey.training_batch(idx, cpu, g), grey.batch(idx, cpu))
    assert g.bit_generator.state == np.random.default_rng(5).bit_generator.state  # draws nothing


def test_binarize_parameter_errors(tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(ConfigError, match="key 'binarize': must be one of 'none', 'static', 'dynamic', got 'yes'"):
        data.get("mnist", path=str(tmp_path), binarize="yes")
    with pytest.raises(ConfigError, match="key 'binarize_seed': must be an integer >= 0"):
        data.get("mnist", path=str(tmp_path), binarize="static", binarize_seed=-1)
    with pytest.raises(ConfigError, match=r"key 'datasets\[0\]\.binarize': must be one of"):
        load_suite(_suite(tmp_path, f"name = 'mnist'\npath = '{tmp_path}'\nbinarize = 'always'"))


def test_mnist_run_ids_do_not_change_with_the_new_parameters(tmp_path):
    write_mnist(tmp_path)
    plain = load_suite(_suite(tmp_path, f"name = 'mnist'\npath = '{tmp_path}'")).specs[0]
    spelled = load_suite(_suite(tmp_path, f"name = 'mnist'\npath = '{tmp_path}'\nbinarize = 'none'\nbinarize_seed = 0"))
    assert spelled.specs[0].run_id == plain.run_id
    assert dict(plain.dataset_params) == {"path": str(tmp_path)}
    dynamic = load_suite(_suite(tmp_path, f"name = 'mnist'\npath = '{tmp_path}'\nbinarize = 'dynamic'")).specs[0]
    assert dict(dynamic.dataset_params)["binarize"] == "dynamic" and dynamic.run_id != plain.run_id


def _spec(tmp_path: Path, steps: int) -> RunSpec:
    suite = load_suite(_suite(tmp_path, f"name = 'mnist'\npath = '{tmp_path}'\nbinarize = 'dynamic'"))
    return RunSpec.from_dict({**suite.specs[0].to_dict(), "steps": steps, "checkpoint_every": 1000})


def test_dynamic_binarisation_trains_deterministically_and_resumes_exactly(tmp_path):
    write_mnist(tmp_path, n_train=30, n_test=5)
    cpu = torch.device("cpu")
    ds = data.get("mnist", path=str(tmp_path), binarize="dynamic")

    def trained(steps: int, state=None) -> Trainer:
        trainer = Trainer(_spec(tmp_path, steps), ds, cpu)
        if state is not None:
            trainer.restore(state)
        trainer.train(None, None)
        return trainer

    straight, again = trained(6), trained(6)
    halfway = trained(3)  # what a checkpoint at step 3 holds
    resumed = trained(6, halfway.state())
    for other in (again, resumed):
        for (name, a), b in zip(straight.model.state_dict().items(), other.model.state_dict().values()):
            assert torch.equal(a, b), name
        assert [c for c in other.curves if c[0] == 6] == [c for c in straight.curves if c[0] == 6]
    assert resumed.rng.bit_generator.state == straight.rng.bit_generator.state
    # the batches really were drawn afresh: training on the fixed draw gives other weights
    fixed = Trainer(_spec(tmp_path, 6), data.get("mnist", path=str(tmp_path), binarize="static"), cpu)
    fixed.train(None, None)
    assert not torch.equal(next(iter(fixed.model.parameters())), next(iter(straight.model.parameters())))
