"""Refuse at load, not after training, and never a traceback: every grid is counted before it is
expanded, every metric and variant states what it needs and is checked when the suite loads,
`vaebench evaluate` takes a suite's validation path, and sizes are compared with limits before
anything is allocated."""

from __future__ import annotations

import pytest

from helpers import ONE_VAE, one_error_line, tiny_suite_text
from vaebench.bench import suite as suite_module
from vaebench.cli import main

# ---------------------------------------------------------------- grids are counted before they are expanded


def test_a_model_grid_is_counted_before_it_is_expanded_and_names_its_key(write_suite, capsys, monkeypatch):
    checked = []
    real = suite_module.check_params

    def counting(*args, **kwargs):
        checked.append(1)
        if len(checked) > 1000:
            raise AssertionError("the [model] grid is being expanded before it is counted")
        return real(*args, **kwargs)

    monkeypatch.setattr(suite_module, "check_params", counting)
    dims = ", ".join(str(d) for d in range(1, 10_001))
    text = tiny_suite_text(variants=ONE_VAE).replace("latent_dim = 4", f"latent_dim = [{dims}]")
    text = text.replace('architecture = "mlp"', "architecture = [" + ", ".join(['"mlp"'] * 10_000) + "]")
    assert main(["run", str(write_suite(text)), "--dry-run"]) == 2
    line = one_error_line(capsys)
    assert "key 'model.latent_dim'" in line or "key 'model.architecture'" in line
    assert "100,000,000 runs (1 seeds x 100,000,000 [model] settings x 1 datasets x 1 variant settings)" in line


@pytest.mark.parametrize("edit, key", [
    (lambda t: t.replace("latent_dim = 4", "latent_dim = [" + ", ".join(map(str, range(1, 201))) + "]")
     .replace('"mlp"', "[" + ", ".join(['"mlp"'] * 60) + "]"), "model.latent_dim"),
    (lambda t: t.replace("seeds = [0]", "seeds = [" + ", ".join(map(str, range(20_000))) + "]"), "seeds"),
    (lambda t: t.replace('name = "vae"\n', 'name = "beta_vae"\nbeta = [' + ", ".join(map(str, range(1, 20_001)))
                         + "]\n"), "variants[0].beta"),
])
def test_a_grid_beyond_max_runs_names_the_key_at_fault(write_suite, capsys, edit, key):
    assert main(["run", str(write_suite(edit(tiny_suite_text(variants=ONE_VAE)))), "--dry-run"]) == 2
    line = one_error_line(capsys)
    assert f"key '{key}'" in line and "more than max_runs = 10,000" in line


# ---------------------------------------------------------------- what each metric and variant needs

NEEDS_SUITE = '''
seeds = [0]
[budget]
steps = 5
batch_size = {batch_size}
[model]
architecture = "mlp"
latent_dim = {latent_dim}
[[datasets]]
name = "{dataset}"
{dataset_params}
[[variants]]
name = "{variant}"
{hyperparameters}
[evaluation]
metrics = [{metrics}]
{params}
'''


def _needs(write_suite, *, batch_size=8, latent_dim=3, dataset="digits", dataset_params="test_size = 20",
           variant="vae", hyperparameters="", metrics='"kl"', params="") -> str:
    return str(write_suite(NEEDS_SUITE.format(**locals() | {"write_suite": None})))


@pytest.mark.parametrize("kwargs, key, words", [
    ({"dataset_params": "test_size = 1", "metrics": '"mi_xz"'}, "datasets[0].test_size",
     "metric 'mi_xz' needs at least 2 test images, and dataset 'digits' holds out 1"),
    ({"dataset_params": "test_size = 1", "metrics": '"prior_mmd"'}, "datasets[0].test_size",
     "'prior_mmd' needs at least 2"),
    ({"dataset_params": "test_size = 1", "metrics": '"cov_offdiag"'}, "datasets[0].test_size", "needs at least 2"),
    ({"dataset_params": "test_size = 1", "metrics": '"elbo_decomposition"'}, "datasets[0].test_size", "at least 2"),
    ({"dataset_params": "test_size = 1", "metrics": '"fid"'}, "datasets[0].test_size", "'fid' needs at least 2"),
    ({"dataset_params": "test_size = 2", "metrics": '"sap"', "dataset": "dsprites",
      "params": '[evaluation.params]\ndisentanglement_protocol = "test_split"'}, "datasets[0].test_size",
     "metric 'sap' needs at least 3 test images, and dataset 'dsprites' holds out 2"),
    ({"dataset_params": "test_size = 1", "metrics": '"unsupervised"'}, "datasets[0].test_size", "at least 2 test"),
    ({"latent_dim": 1, "metrics": '"unsupervised"'}, "model.latent_dim",
     "metric 'unsupervised' needs at least 2 latent dimensions, got 1"),
    ({"batch_size": 1, "variant": "mmd_vae"}, "budget.batch_size", "variant 'mmd_vae' (encoder='deterministic', "),
    ({"batch_size": 1, "variant": "wae"}, "budget.batch_size", "needs batches of at least 2 images, got 1"),
    ({"batch_size": 1, "variant": "info_vae"}, "budget.batch_size", "needs batches of at least 2 images, got 1"),
    ({"batch_size": 1, "variant": "mi_vae"}, "budget.batch_size", "needs batches of at least 2 and at most 1778"),
    ({"batch_size": 1, "variant": "beta_tcvae", "hyperparameters": 'estimator = "mss"'}, "budget.batch_size",
     "needs batches of at least 2 and at most 1778 images, got 1"),
    ({"batch_size": 64, "variant": "beta_tcvae", "hyperparameters": 'estimator = "mss"\ndataset_size = 10'},
     "budget.batch_size", "needs batches of at least 2 and at most 11 images, got 64"),
])
def test_settings_that_cannot_be_scored_are_refused_at_load(write_suite, tmp_path, capsys, kwargs, key, words):
    suite = _needs(write_suite, **kwargs)
    assert main(["run", suite, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    line = one_error_line(capsys)
    assert f"key '{key}'" in line and words in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kwargs", [
    {"dataset_params": "test_size = 2", "metrics": '"mi_xz", "prior_mmd", "cov_offdiag", "unsupervised"',
     "latent_dim": 2},
    {"batch_size": 2, "variant": "mmd_vae"},
    {"batch_size": 1, "variant": "info_vae", "hyperparameters": 'divergence = "kl"'},
    {"batch_size": 1, "variant": "mi_vae", "hyperparameters": 'estimator = "minibatch"'},
    {"dataset_params": "test_size = 1", "metrics": '"mi_xz"', "params": '[evaluation.params]\nmi_xz_set = "sample"'},
])
def test_the_smallest_settings_that_can_be_scored_load(write_suite, kwargs):
    from vaebench.bench.suite import load_suite

    assert load_suite(_needs(write_suite, **kwargs)).specs


# ---------------------------------------------------------------- evaluate validates like a suite

EXTERNAL = '''
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self, side):
        super().__init__()
        self.encoder = nn.Linear(64, 4)
        self.decoder = nn.Linear(2, side * side)
        self.side = side

    def encode(self, x):
        mu, logvar = self.encoder(x.flatten(1)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z):
        return self.decoder(z).view(len(z), 1, self.side, self.side)


def good():
    return Model(8)


def wrong_decoder():
    return Model(7)
'''


@pytest.fixture
def external_model(tmp_path, monkeypatch) -> str:
    (tmp_path / "external_models.py").write_text(EXTERNAL)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "external_models"


@pytest.mark.parametrize("extra, key, words", [
    (["--param", "test_size=1e3"], "--param test_size", "must be an integer, got 1000.0"),
    (["--param", 'test_size="100"'], "--param test_size", "must be an integer, got '100'"),
    (["--param", "split_seed=-5"], "--param", "bad parameter value"),
    (["--param", "no_such_key=1"], "--param no_such_key", "unknown parameter for dataset 'digits'"),
    (["--seed", str(2**70)], "--seed", "must be an integer >= 0 and <= 2.14748e+09"),
    (["--metrics", "mig"], "--metrics", "metric 'mig' needs ground-truth factors"),
    (["--metrics", "no_such_metric"], "--metrics", "unknown metric 'no_such_metric'"),
    (["--param", "test_size=1", "--metrics", "mi_xz"], "--param test_size", "'mi_xz' needs at least 2 test images"),
    (["--likelihood", "poisson"], "--likelihood", "unknown likelihood 'poisson'"),
    (["--device", "tpu"], "--device", "must be one of 'cpu', 'cuda', got 'tpu'"),
])
def test_evaluate_refuses_bad_input_in_one_line_before_writing(external_model, tmp_path, capsys, extra, key, words):
    out = tmp_path / "run"
    assert main(["evaluate", f"{external_model}:good", "--dataset", "digits", "--metrics", "kl", "--out", str(out),
                 *extra]) == 2
    line = one_error_line(capsys)
    assert f"key '{key}'" in line and words in line
    assert not out.exists()


def test_evaluate_on_cuda_without_cuda_is_one_line(external_model, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    args = ["evaluate", f"{external_model}:good", "--dataset", "digits", "--device", "cuda", "--out", str(out)]
    assert main(args) == 2
    assert "CUDA is not available on this machine" in one_error_line(capsys)
    assert not out.exists()


def test_evaluate_refuses_a_decoder_of_the_wrong_shape_before_writing(external_model, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["evaluate", f"{external_model}:wrong_decoder", "--dataset", "digits", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert ("external model 'external_models:wrong_decoder': decode returned the likelihood parameters of shape "
            "(2, 1, 7, 7) for a batch of 2; expected (2, 1, 8, 8)") in line
    assert not out.exists()


def test_evaluate_stores_canonical_dataset_parameters(external_model, tmp_path):
    from vaebench.api import load_results

    out = tmp_path / "run"
    for extra in ([], ["--param", "test_size=360"]):  # digits' default: the same run
        assert main(["evaluate", f"{external_model}:good", "--dataset", "digits", "--metrics", "kl", "--out",
                     str(out), *extra]) == 0
    assert len(load_results(out)) == 1


# ---------------------------------------------------------------- sizes compared with limits; hostile files

FOLDER_SUITE = '''
seeds = [0]
[budget]
steps = 2
batch_size = 4
[model]
architecture = "{architecture}"
latent_dim = 2
[[datasets]]
name = "image_folder"
path = "{path}"
size = {size}
channels = 1
test_size = 2
[[variants]]
name = "vae"
[evaluation]
metrics = ["kl"]
'''


def _folder(root, n: int = 6, truncated_name: bytes | None = None):
    import io
    import os

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / f"{i:02d}.png")
    if truncated_name is not None:
        png = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(png, "PNG")
        with open(os.fsencode(root) + b"/" + truncated_name, "wb") as f:
            f.write(png.getvalue()[: len(png.getvalue()) // 2])  # the header reads, the pixels do not
    return root


def test_a_truncated_image_with_a_non_utf8_name_is_one_line_exit_2(write_suite, tmp_path, capsys):
    root = _folder(tmp_path / "folder", truncated_name=b"bad\xff\xfe.png")
    suite = write_suite(FOLDER_SUITE.format(architecture="mlp", path=root, size=8))
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 2
    line = one_error_line(capsys)
    assert f"{root}/bad\\xff\\xfe.png: cannot be decoded as an image (image file is truncated)" in line
    from vaebench.bench.store import ResultsStore

    with ResultsStore(out, create=False) as store:
        assert store.runs().empty  # refused before any run trained


def test_text_utf8_cannot_encode_is_stored_escaped(tmp_path):
    from vaebench.bench.spec import RunResult
    from vaebench.bench.store import ResultsStore
    from vaebench.bench.suite import load_suite

    path = tmp_path / "suite.toml"
    path.write_text(NEEDS_SUITE.format(batch_size=8, latent_dim=2, dataset="digits", dataset_params="", variant="vae",
                                       hyperparameters="", metrics='"kl"', params=""))
    (spec,) = load_suite(path).specs
    name = b"/data/bad\xff.png".decode("utf-8", "surrogateescape")
    result = RunResult(spec=spec, status="failed", error=f"{name}: cannot be decoded",
                       environment={"made_from": {f"data file {name}": "sha256:0"}})
    with ResultsStore(tmp_path / "run") as store:
        store.write_result(result, suite="s", setting="vae")
    with ResultsStore(tmp_path / "run", create=False) as store:
        run = store.runs().iloc[0]
    assert run["error"] == "/data/bad\\xff.png: cannot be decoded"
    assert list(run["environment"]["made_from"]) == ["data file /data/bad\\xff.png"]


@pytest.mark.parametrize("architecture, parameters", [("mlp", "9,225,265,220"), ("conv", "4,617,101,573")])
def test_a_network_too_large_for_the_images_is_refused_before_allocating(write_suite, tmp_path, capsys, architecture,
                                                                        parameters):
    root = _folder(tmp_path / "folder")
    suite = write_suite(FOLDER_SUITE.format(architecture=architecture, path=root, size=3000))
    assert main(["run", str(suite), "--dry-run"]) == 2
    line = one_error_line(capsys)
    assert "key 'model.architecture'" in line
    assert f"the {architecture!r} encoder and decoder for 1x3000x3000 images and 2 latents have {parameters} " in line
    assert "more than the limit of 100,000,000" in line


def test_a_test_split_too_large_to_score_is_refused_at_load(write_suite, capsys):
    text = tiny_suite_text(variants=ONE_VAE).replace("size = 32\ntest_size = 200", "size = 64\ntest_size = 300000")
    assert main(["run", str(write_suite(text)), "--dry-run"]) == 2
    line = one_error_line(capsys)
    assert "key 'datasets[0].test_size'" in line and "(300,000 images of 1x64x64, encoded at once as float32)" in line


def _mnist_with(directory, train_images: bytes):
    import gzip
    import struct

    import numpy as np

    def idx(array):
        return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()

    directory.mkdir()
    (directory / "train-images-idx3-ubyte.gz").write_bytes(train_images)
    (directory / "train-labels-idx1-ubyte").write_bytes(idx(np.zeros(100, np.uint8)))
    (directory / "t10k-images-idx3-ubyte").write_bytes(idx(np.zeros((10, 28, 28), np.uint8)))
    (directory / "t10k-labels-idx1-ubyte").write_bytes(idx(np.zeros(10, np.uint8)))
    return gzip


def _bomb(header: bytes, zeros: int) -> bytes:
    import zlib

    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)  # a gzip stream
    block = bytes(1 << 20)
    parts = [deflate.compress(header)]
    for _ in range(zeros >> 20):
        parts.append(deflate.compress(block))
    return b"".join(parts) + deflate.flush()


@pytest.mark.parametrize("dims, zeros, words", [
    ((7_653_061, 28, 28), 8 << 20, "declares uint8 data of shape (7653061, 28, 28) (5,999,999,824 bytes), more than "
                                   "the limit of 1,073,741,824 bytes"),
    ((100, 28, 28), 200 << 20, "declares uint8 data of shape (100, 28, 28) (78400 bytes), but more bytes follow the "
                               "header (trailing data)"),
])
def test_a_gzip_bomb_as_an_mnist_file_is_refused_before_inflating(tmp_path, capsys, dims, zeros, words):
    import struct
    import tracemalloc

    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", *dims)
    _mnist_with(tmp_path / "mnist", _bomb(header, zeros))
    tracemalloc.start()
    try:
        assert main(["evaluate", "no_such_model:make", "--dataset", "mnist", "--param", f'path="{tmp_path / "mnist"}"',
                     "--out", str(tmp_path / "run")]) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert words in one_error_line(capsys)
    assert peak < 32 << 20  # the stream was not inflated (it holds 200 MB of zeros)


def test_a_dataset_cache_the_disk_cannot_hold_is_refused_before_writing(write_suite, tmp_path, capsys, monkeypatch):
    from collections import namedtuple

    from vaebench.data import array_cache

    root = _folder(tmp_path / "folder")
    suite = write_suite(FOLDER_SUITE.format(architecture="conv", path=root, size=64))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(array_cache.shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 2
    line = one_error_line(capsys)
    assert "the image_folder cache needs 24.0 KB and the disk has 1000 bytes free" in line
    assert not list((out / "cache" / "datasets").glob("*.npy"))


def test_an_npz_member_declaring_more_than_memory_allows_is_refused_at_load(tmp_path, capsys, monkeypatch):
    import numpy as np

    from vaebench.data import files

    np.savez(tmp_path / "images.npz", images=np.zeros((40, 8, 8), np.uint8))
    monkeypatch.setattr(files, "MAX_ARRAY_BYTES", 1000)
    assert main(["evaluate", "no_such:model", "--dataset", "npz", "--param", f'path="{tmp_path / "images.npz"}"',
                 "--out", str(tmp_path / "run")]) == 2
    line = one_error_line(capsys)
    assert "key 'images': the header declares uint8 data of shape (40, 8, 8) (2,560 bytes), more than the limit" in line


@pytest.mark.parametrize("param, value", [
    ("mig_n_bins", 10**9), ("prior_mmd_samples", 10**6), ("iwae_chunk", 10**9), ("disentanglement_num_train", 10**9),
    ("beta_vae_batch_size", 10**9), ("mi_xz_images", 10**9), ("iwae_k", 10**12),
])
def test_metric_sample_counts_beyond_what_memory_holds_are_refused_at_load(write_suite, capsys, param, value):
    text = tiny_suite_text(variants=ONE_VAE) + f"[evaluation.params]\n{param} = {value}\n"
    assert main(["run", str(write_suite(text)), "--dry-run"]) == 2
    line = one_error_line(capsys)
    assert f"key 'evaluation.params.{param}'" in line and "<=" in line


def test_suites_and_parameters_nested_too_deeply_are_one_line(write_suite, tmp_path, capsys):
    suite = write_suite("name = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert main(["run", str(suite), "--dry-run"]) == 2
    assert "nested too deeply to read" in one_error_line(capsys)
    assert main(["evaluate", "x:y", "--dataset", "digits", "--param", "test_size=" + "[" * 50_000 + "]" * 50_000,
                 "--out", str(tmp_path / "run")]) == 2
    assert "key '--param': test_size: nested too deeply to read" in one_error_line(capsys)


@pytest.mark.parametrize("metrics, words", [("", "must be a non-empty array of metric names"),
                                             ('"kl", "mig", "kl"', "names 'kl' more than once")])
def test_an_empty_or_repeated_metric_list_is_refused(write_suite, capsys, metrics, words):
    text = tiny_suite_text(variants=ONE_VAE, metrics=f"[{metrics}]")
    assert main(["run", str(write_suite(text)), "--dry-run"]) == 2
    line = one_error_line(capsys)
    assert "key 'evaluation.metrics'" in line and words in line


def test_a_fifo_named_like_an_image_is_skipped_not_opened(tmp_path):
    import os

    from vaebench import data

    root = _folder(tmp_path / "folder", n=4)
    os.mkfifo(root / "stuck.png")  # opening it for reading would wait for a writer forever
    dataset = data.get("image_folder", path=str(root), size=8, test_size=1)
    assert dataset.num_images == 4 and all(f.name != "stuck.png" for f in dataset.files)
