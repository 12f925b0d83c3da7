"""Users' own data: an image folder, the CIFAR-10 python batches and an .npz of images (and factors).

Every fixture file is written here, small, in the format the loader reads (nothing is
downloaded). Expected values come from the formats' definitions, computed here
independently of the loaders.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vaebench import data
from vaebench.bench.executors import InProcessExecutor, ProcessPoolRunExecutor
from vaebench.bench.runner import run_suite
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import load_suite
from vaebench.cli import main
from vaebench.data import array_cache, image_folder
from vaebench.data.base import fixed_split
from vaebench.errors import ConfigError, DataError


def _get(name: str, **params):
    """A freshly built dataset (`data.get` caches by parameters; these tests rewrite files in place)."""
    return data.DATASETS.get(name)(**params)


# ---------------------------------------------------------------------------- end to end

SUITE = """
name = "{name}"
seeds = {seeds}
[budget]
steps = 3
batch_size = 4
checkpoint_every = 3
log_every = 1
[model]
architecture = "mlp"
latent_dim = 2
[[datasets]]
name = "{name}"
{dataset_lines}
[[variants]]
name = "vae"
[evaluation]
metrics = {metrics}
"""


def suite_text(name: str, dataset_lines: str, metrics: str = '["recon_mse", "kl"]', seeds: str = "[0]") -> str:
    return SUITE.format(name=name, dataset_lines=dataset_lines, metrics=metrics, seeds=seeds)


def run_tiny_suite(tmp_path: Path, name: str, dataset_lines: str, metrics: str = '["recon_mse", "kl"]') -> dict:
    """Run a 3-step suite on dataset `name` in process; the metric values of its one run."""
    suite = tmp_path / f"{name}.toml"
    suite.write_text(suite_text(name, dataset_lines, metrics))
    out = tmp_path / f"run-{name}"
    summary = run_suite(load_suite(suite), out, InProcessExecutor(), threads=1)
    with ResultsStore(out, create=False) as store:
        runs, values = store.runs(), store.metrics()
    assert summary.statuses == {"done": 1}, runs["error"].tolist()
    assert runs["status"].tolist() == ["done"] and runs["dataset"].tolist() == [name]
    return dict(zip(values["name"], values["value"]))


# ---------------------------------------------------------------------------- image folder


def save_image(path: Path, pixels: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **kwargs)
    return path


def triangle_resize(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """An antialiased bilinear resize from its definition: each output pixel is the average of the
    input pixels weighted by a triangle of half-width max(1, input/output) around its centre."""

    def weights(n_in: int, n_out: int) -> np.ndarray:
        scale = n_in / n_out
        centres = (np.arange(n_out) + 0.5) * scale
        w = np.clip(1 - np.abs(np.arange(n_in)[None, :] + 0.5 - centres[:, None]) / max(scale, 1.0), 0, None)
        return w / w.sum(axis=1, keepdims=True)

    rows, columns = weights(image.shape[0], out_h), weights(image.shape[1], out_w)
    return np.einsum("oh,hwc,pw->opc", rows, image.astype(np.float64), columns)


def test_image_folder_lists_sorts_and_labels(tmp_path):
    root = tmp_path / "imgs"
    names = ["dog/b.png", "cat/z.JPG", "dog/a/deep.jpeg", "cat/a.png", "bird/x.png"]
    for i, name in enumerate(names):
        save_image(root / name, np.full((5, 5, 3), 10 * i, np.uint8))
    (root / "cat" / "notes.txt").write_text("not an image")
    save_image(root / "cat" / ".hidden.png", np.zeros((5, 5, 3), np.uint8))
    save_image(root / ".thumbs" / "t.png", np.zeros((5, 5, 3), np.uint8))
    ds = _get("image_folder", path=str(root), size=5, labels=True, test_size=2, split_seed=4)
    order = ["bird/x.png", "cat/a.png", "cat/z.JPG", "dog/a/deep.jpeg", "dog/b.png"]
    assert [f.relative_to(root).as_posix() for f in ds.files] == order
    assert ds.classes == ("bird", "cat", "dog") and ds.image_shape == (3, 5, 5) and len(ds) == 5
    np.testing.assert_array_equal(ds.labels(np.arange(5))[:, 0], [0, 1, 1, 2, 2])
    assert ds.labels([4, 0]).shape == (2, 1)
    train, test = fixed_split(5, 2, 4)
    np.testing.assert_array_equal(ds.test_indices, test)
    assert _get("image_folder", path=str(root), size=5, test_size=2).labels([0]) is None
    x = ds.images([1, 0])
    assert x.dtype == np.float32 and x.shape == (2, 3, 5, 5)
    assert np.all(x[1] == np.float32(40) / 255) and np.all(x[0] == np.float32(30) / 255)


@pytest.mark.parametrize("h, w", [(8, 12), (12, 8), (9, 15)])
def test_image_folder_resizes_the_short_side_and_crops_the_centre(tmp_path, h, w):
    pixels = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    save_image(tmp_path / "f" / "a.png", pixels)
    size = 4
    new_h, new_w = (int(size * h / w), size) if w <= h else (size, int(size * w / h))
    top, left = round((new_h - size) / 2), round((new_w - size) / 2)
    expected = triangle_resize(pixels, new_h, new_w)[top : top + size, left : left + size].transpose(2, 0, 1)
    got = image_folder.decode_image(tmp_path / "f" / "a.png", channels=3, size=size).astype(np.float64)
    assert got.shape == (3, size, size)
    assert np.abs(got - expected).max() <= 1.0  # Pillow rounds to bytes between its two passes
    grey = image_folder.decode_image(tmp_path / "f" / "a.png", channels=1, size=size).astype(np.float64)
    luma = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # ITU-R 601-2
    expected_grey = triangle_resize(np.rint(luma)[:, :, None], new_h, new_w)[top : top + size, left : left + size, 0]
    assert grey.shape == (1, size, size) and np.abs(grey[0] - expected_grey).max() <= 1.0


def test_image_folder_pixels_of_images_already_at_size_are_exact(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (2, 6, 6, 3), dtype=np.uint8)
    save_image(tmp_path / "f" / "0.png", rgb[0])
    save_image(tmp_path / "f" / "1.png", np.dstack([rgb[1], np.full((6, 6), 128, np.uint8)]))  # RGBA: alpha dropped
    palette = Image.fromarray(rgb[0]).convert("P")
    palette.save(tmp_path / "f" / "2.png")
    ds = _get("image_folder", path=str(tmp_path / "f"), size=6, test_size=1)
    x = ds.images([0, 1, 2])
    np.testing.assert_array_equal(x[:2], rgb.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(x[2], np.asarray(palette.convert("RGB")).transpose(2, 0, 1) / np.float32(255))
    grey = _get("image_folder", path=str(tmp_path / "f"), size=6, channels=1, test_size=1).images([0])[0, 0]
    luma = rgb[0].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(grey * 255 - luma).max() <= 0.5 + 1e-4  # Pillow's fixed-point luma, rounded


def test_image_folder_reads_jpeg(tmp_path):
    save_image(tmp_path / "f" / "a.jpg", np.full((16, 16, 3), (200, 40, 90), np.uint8), quality=95)
    save_image(tmp_path / "f" / "b.jpeg", np.full((16, 16), 77, np.uint8), quality=95)
    x = _get("image_folder", path=str(tmp_path / "f"), size=8, test_size=1).images([0, 1]) * 255
    assert np.abs(x[0] - np.array([200, 40, 90])[:, None, None]).max() <= 3
    assert np.abs(x[1] - 77).max() <= 3


def _folder(tmp_path: Path, n: int = 6, side: int = 8) -> Path:
    root, rng = tmp_path / "folder", np.random.default_rng(2)
    for i in range(n):
        save_image(root / f"{i:02d}.png", rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
    return root


def test_image_folder_cache_is_built_once_verified_and_keyed_by_the_files(tmp_path, monkeypatch, caplog):
    root = _folder(tmp_path)
    cache = tmp_path / "run" / "cache"
    ds = _get("image_folder", path=str(root), size=8, test_size=2)
    on_demand = ds.images(np.arange(6))
    view = ds.materialised(cache, images_to_draw=1)
    (npy,) = (cache / "datasets").glob("image_folder-*.npy")
    assert npy.with_suffix(".json").is_file() and view is not ds and ds._cache is None
    np.testing.assert_array_equal(view.images(np.arange(6)), on_demand)  # the same bits either way
    np.testing.assert_array_equal(np.load(npy), np.rint(on_demand * 255).astype(np.uint8))
    np.testing.assert_array_equal(view.images([5, 0, 5]), on_demand[[5, 0, 5]])

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(image_folder, "decode_image", no_decoding)
    again = pickle.loads(pickle.dumps(ds.materialised(cache, images_to_draw=1)))  # an existing cache is reused
    array_cache._MAPPED.clear()  # as in a fresh process: the pickled view maps and verifies the file again
    np.testing.assert_array_equal(again.images(np.arange(6)), on_demand)
    monkeypatch.undo()

    raw = bytearray(npy.read_bytes())
    raw[-1] ^= 0xFF  # one altered byte in the cache
    npy.write_bytes(bytes(raw))
    array_cache._MAPPED.clear()
    with caplog.at_level(logging.WARNING, logger="vaebench.data.array_cache"):
        rebuilt = ds.materialised(cache, images_to_draw=1)
    assert "rebuilt" in caplog.text
    np.testing.assert_array_equal(rebuilt.images(np.arange(6)), on_demand)

    stat = (root / "03.png").stat()
    (root / "03.png").write_bytes((root / "02.png").read_bytes())  # another image of the same size,
    os.utime(root / "03.png", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # its mtime set back (touch -r)
    assert (root / "03.png").stat().st_size == stat.st_size  # the same stat data but its ctime
    changed = _get("image_folder", path=str(root), size=8, test_size=2)
    assert changed.fingerprint != ds.fingerprint and changed.describe()["fingerprint"] == changed.fingerprint
    changed.materialised(cache, images_to_draw=1)
    _get("image_folder", path=str(root), size=4, test_size=2).materialised(cache, images_to_draw=1)
    assert len(list((cache / "datasets").glob("image_folder-*.npy"))) == 3
    assert not list(cache.rglob("*.tmp"))


def test_image_folder_an_image_that_does_not_decode_fails_when_the_cache_is_built(tmp_path, monkeypatch):
    root = _folder(tmp_path, n=3, side=32)
    jpeg = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    (root / "01.png").unlink()
    broken = root / "01.jpg"
    broken.write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) * 2 // 3])  # the header reads, the data stops
    ds = _get("image_folder", path=str(root), size=8, test_size=1)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=f"^{broken}: cannot be decoded as an image"):
        ds.materialised(cache, images_to_draw=1)
    assert not list(cache.rglob("*.npy")) and not list(cache.rglob("*.tmp"))
    monkeypatch.setattr(image_folder, "open_array_cache", lambda *a, **k: pytest.fail("decoded again"))
    with pytest.raises(DataError, match=f"^{broken}: cannot be decoded"):  # the next run fails at once
        ds.materialised(cache, images_to_draw=1)


def test_image_folder_errors_at_load(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    with pytest.raises(DataError, match=f"^{root}: holds no PNG or JPEG images"):
        _get("image_folder", path=str(root))
    (root / "readme.txt").write_text("x")
    save_image(root / ".hidden.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="holds no PNG or JPEG images"):
        _get("image_folder", path=str(root))
    with pytest.raises(DataError, match=f"^{tmp_path / 'absent'}: no such directory"):
        _get("image_folder", path=str(tmp_path / "absent"))
    with pytest.raises(DataError, match="a file, not a directory"):
        _get("image_folder", path=str(root / "readme.txt"))
    with pytest.raises(ConfigError, match="key 'path': required"):
        _get("image_folder")
    save_image(root / "cls" / "a.png", np.zeros((4, 4, 3), np.uint8))
    save_image(root / "top.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match=f"^{root / 'top.png'}: lies directly in {root}; with labels = true"):
        _get("image_folder", path=str(root), labels=True, test_size=1)
    with pytest.raises(ConfigError, match="key 'channels': must be 1 \\(grey\\) or 3 \\(RGB\\), got 2"):
        _get("image_folder", path=str(root), channels=2)
    with pytest.raises(ConfigError, match="key 'size': must be >= 1"):
        _get("image_folder", path=str(root), size=0)
    with pytest.raises(ConfigError, match="key 'test_size': must be between 1 and 1"):
        _get("image_folder", path=str(root))
    (root / "garbage.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(DataError, match=f"^{root / 'garbage.png'}: not a readable image"):
        _get("image_folder", path=str(root), test_size=1)
    (root / "garbage.png").write_bytes(b"")
    with pytest.raises(DataError, match=f"^{root / 'garbage.png'}: not a readable image"):
        _get("image_folder", path=str(root), test_size=1)
    (root / "garbage.png").unlink()
    Image.fromarray(np.full((4, 4), 40000, np.uint16)).save(root / "deep.png")  # 16-bit grey
    with pytest.raises(DataError, match=f"^{root / 'deep.png'}: Pillow mode 'I;16' .* is not supported"):
        _get("image_folder", path=str(root), test_size=1)


def test_a_suite_runs_on_an_image_folder(tmp_path):
    root, rng = tmp_path / "faces", np.random.default_rng(4)
    for i in range(12):
        save_image(root / ("a" if i % 2 else "b") / f"{i}.png", rng.integers(0, 256, (10, 7, 3), dtype=np.uint8))
    params = f"path = '{root}'\nsize = 6\nchannels = 1\nlabels = true\ntest_size = 4"
    values = run_tiny_suite(tmp_path, "image_folder", params)
    assert np.isfinite(values["recon_mse"]) and values["kl"] >= 0
    assert len(list((tmp_path / "run-image_folder" / "cache" / "datasets").glob("image_folder-*.npy"))) == 1


@pytest.mark.slow
def test_two_worker_processes_share_one_cache_and_give_the_in_process_numbers(tmp_path):
    root = _folder(tmp_path, n=10)
    suite = tmp_path / "suite.toml"
    suite.write_text(suite_text("image_folder", f"path = '{root}'\nsize = 8\ntest_size = 3", seeds="[0, 1]"))
    values = {}
    for label, executor in (("pool", ProcessPoolRunExecutor(2)), ("in_process", InProcessExecutor())):
        out = tmp_path / label
        assert run_suite(load_suite(suite), out, executor, threads=1).statuses == {"done": 2}
        with ResultsStore(out, create=False) as store:
            metrics = store.metrics()[["run_id", "name", "value"]]
            values[label] = metrics.sort_values(["run_id", "name"]).reset_index(drop=True)
        assert len(list((out / "cache" / "datasets").glob("image_folder-*.npy"))) == 1
    pd.testing.assert_frame_equal(values["pool"], values["in_process"])


# ---------------------------------------------------------------------------- CIFAR-10


def _py2_str(b: bytes) -> bytes:
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def _py2_int(v: int) -> bytes:
    return b"J" + struct.pack("<i", v)


def py2_batch(images: np.ndarray, labels: list[int], spec: bytes = b"u1", rows: int | None = None) -> bytes:
    """A batch pickled as Python 2's cPickle (protocol 2) wrote the published files: py2 strings,
    numpy.core.multiarray._reconstruct, a dtype with its state, the bytes of the array.
    `spec` and `rows` override the dtype and the number of rows the pickle declares."""
    rows = images.shape[0] if rows is None else rows
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
             + _py2_int(0) + b"\x85" + _py2_str(b"b") + b"\x87R"
             + b"(" + _py2_int(1) + _py2_int(rows) + _py2_int(images.shape[1]) + b"\x86"
             + b"cnumpy\ndtype\n" + _py2_str(spec) + _py2_int(0) + _py2_int(1) + b"\x87R"
             + b"(" + _py2_int(3) + _py2_str(b"|") + b"NNN" + _py2_int(-1) + _py2_int(-1) + _py2_int(0) + b"tb"
             + b"\x89" + _py2_str(images.tobytes()) + b"tb")
    label_list = b"](" + b"".join(_py2_int(v) for v in labels) + b"e"
    return (b"\x80\x02}(" + _py2_str(b"batch_label") + _py2_str(b"a batch") + _py2_str(b"data") + array
            + _py2_str(b"labels") + label_list + _py2_str(b"filenames") + b"](" + _py2_str(b"x.png") + b"eu.")


CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


def write_cifar(directory: Path, per_batch: int = 3, writer=py2_batch) -> tuple[np.ndarray, np.ndarray]:
    """The six batches; image j's pixel (channel c, row r, column k) = (j * 7 + c * 50 + r + k) % 256."""
    directory.mkdir(parents=True, exist_ok=True)
    n = per_batch * len(CIFAR_FILES)
    j, c, r, k = np.meshgrid(np.arange(n), np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    images = ((j * 7 + c * 50 + r + k) % 256).astype(np.uint8)
    labels = np.arange(n) % 10
    for b, name in enumerate(CIFAR_FILES):
        rows = slice(b * per_batch, (b + 1) * per_batch)
        # a row: the red plane, then green, then blue, each 32 x 32 row-major
        flat = np.concatenate([images[rows, ch].reshape(per_batch, 1024) for ch in range(3)], axis=1)
        (directory / name).write_bytes(writer(flat, labels[rows].tolist()))
    return images, labels


def py3_batch(images: np.ndarray, labels: list[int]) -> bytes:
    return pickle.dumps({b"batch_label": b"b", b"data": images, b"labels": labels}, protocol=4)


@pytest.mark.parametrize("writer", [py2_batch, py3_batch])
def test_cifar10_reads_the_python_batches(tmp_path, writer):
    images, labels = write_cifar(tmp_path / "cifar-10-batches-py", writer=writer)
    for path in (tmp_path, tmp_path / "cifar-10-batches-py"):  # the directory or the one holding it
        ds = _get("cifar10", path=str(path))
        assert ds.image_shape == (3, 32, 32) and len(ds) == 18 and not ds.has_factors
        np.testing.assert_array_equal(ds.train_indices, np.arange(15))
        np.testing.assert_array_equal(ds.test_indices, np.arange(15, 18))
        x = ds.images(np.arange(18))
        assert x.dtype == np.float32 and x.shape == (18, 3, 32, 32)
        np.testing.assert_array_equal(x, images / np.float32(255))
        np.testing.assert_array_equal(ds.labels([17, 0])[:, 0], labels[[17, 0]])
        assert ds.describe()["path"] == str(tmp_path / "cifar-10-batches-py")


class _Exploit:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def _crafted(name: str, target: Path) -> bytes:
    ok = np.zeros((2, 3072), np.uint8)
    return {
        "runs a command": pickle.dumps({b"data": _Exploit(target), b"labels": [0, 0]}, protocol=4),
        "calls eval": b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.",
        "allocates a huge array": b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
                                  + _py2_int(2**30) + b"\x85" + _py2_str(b"b") + b"\x87R.",
        "calls ndarray itself": b"\x80\x02cnumpy\nndarray\n" + _py2_int(2**30) + b"\x85R.",
        "an object dtype": py2_batch(ok, [0, 0], spec=b"O8"),
        "shape and bytes disagree": py2_batch(ok, [0, 0], rows=10**6),
        "a pickled list": pickle.dumps([ok, [0, 0]], protocol=4),
        "CIFAR-100 keys": pickle.dumps({b"data": ok, b"fine_labels": [0, 0]}, protocol=4),
        "float data": pickle.dumps({b"data": ok.astype(np.float32), b"labels": [0, 0]}, protocol=4),
        "wrong width": pickle.dumps({b"data": ok[:, :1024], b"labels": [0, 0]}, protocol=4),
        "label 10": pickle.dumps({b"data": ok, b"labels": [0, 10]}, protocol=4),
        "count mismatch": pickle.dumps({b"data": ok, b"labels": [0]}, protocol=4),
        "no images": pickle.dumps({b"data": ok[:0], b"labels": []}, protocol=4),
        "garbage": b"this is not a pickle",
        "truncated": py2_batch(ok, [0, 0])[:500],
    }[name]


@pytest.mark.parametrize("case, message", [
    ("runs a command", "refused to load posix.system"),
    ("calls eval", "refused to load builtins.eval"),
    ("allocates a huge array", "numpy array reconstruction with arguments a pickled array never has"),
    ("calls ndarray itself", "not a CIFAR-10 python batch (TypeError"),
    ("an object dtype", "key b'data': a numpy array of type 'O8'; expected uint8 images (n, 3072)"),
    ("shape and bytes disagree", "key b'data': shape (1000000, 3072) needs 3072000000 bytes, 6144 are stored"),
    ("a pickled list", "holds a pickled list; a CIFAR-10 batch is a dict"),
    ("CIFAR-100 keys", "key b'labels' missing (the batch holds: b'data', b'fine_labels')"),
    ("float data", "key b'data': a numpy array of type 'f4'; expected uint8 images (n, 3072)"),
    ("wrong width", "key b'data': an array of shape (2, 1024); expected uint8 images (n, 3072)"),
    ("label 10", "holds the class 10; CIFAR-10's classes are 0-9"),
    ("count mismatch", "key b'data' holds 2 images but b'labels' 1 labels"),
    ("no images", "key b'data' holds no images"),
    ("garbage", "not a CIFAR-10 python batch"),
    ("truncated", "not a CIFAR-10 python batch"),
])
def test_cifar10_refuses_files_that_are_not_batches(tmp_path, case, message):
    target = tmp_path / "pwned"
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(_crafted(case, target))
    with pytest.raises(DataError) as err:
        _get("cifar10", path=str(tmp_path))
    assert str(err.value).startswith(f"{tmp_path / 'data_batch_3'}: ") and message in str(err.value)
    assert not target.exists()


def test_cifar10_path_errors(tmp_path):
    with pytest.raises(DataError, match=f"^{tmp_path / 'absent'}: no such directory; dataset 'cifar10' expected"):
        _get("cifar10", path=str(tmp_path / "absent"))
    write_cifar(tmp_path)
    (tmp_path / "data_batch_5").unlink()
    with pytest.raises(DataError, match=f"^{tmp_path / 'data_batch_5'}: no such file"):
        _get("cifar10", path=str(tmp_path))
    with pytest.raises(ConfigError, match="key 'path': required"):
        _get("cifar10")


def test_a_suite_runs_on_cifar10(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py", per_batch=4)
    values = run_tiny_suite(tmp_path, "cifar10", f"path = '{tmp_path}'")
    assert np.isfinite(values["recon_mse"]) and values["kl"] >= 0


# ---------------------------------------------------------------------------- .npz images and factors

GRID = ([0, 2, 7], [10, 11], [-1, 5])  # factor values: a 3 x 2 x 2 grid of 12 combinations


def _labelled(n: int, side: int = 4) -> np.ndarray:
    """(n, side, side) uint8 images whose pixel (0, 0) is the row number and the rest 200."""
    images = np.full((n, side, side), 200, np.uint8)
    images[:, 0, 0] = np.arange(n)
    return images


def test_npz_images_without_factors(tmp_path):
    rgb = np.random.default_rng(5).random((5, 3, 4, 3))
    np.savez(tmp_path / "float.npz", images=rgb, other=np.arange(3))
    ds = _get("npz", path=str(tmp_path / "float.npz"), test_size=2, split_seed=1)
    assert not ds.has_factors and ds.image_shape == (3, 3, 4) and len(ds) == 5 and ds.labels([0]) is None
    np.testing.assert_array_equal(ds.images([4, 0]), rgb[[4, 0]].transpose(0, 3, 1, 2).astype(np.float32))
    np.testing.assert_array_equal(ds.test_indices, fixed_split(5, 2, 1)[1])
    grey = _labelled(5)
    np.savez_compressed(tmp_path / "bytes.npz", images=grey[..., None])
    x = _get("npz", path=str(tmp_path / "bytes.npz"), test_size=2).images([3])
    np.testing.assert_array_equal(x, grey[[3], None] / np.float32(255))
    binary = (grey > 100).astype(np.uint8)  # 0/1 bytes are taken as binary images
    np.savez(tmp_path / "binary.npz", images=binary)
    from_binary = _get("npz", path=str(tmp_path / "binary.npz"), test_size=2)
    np.testing.assert_array_equal(from_binary.images([1])[0, 0], binary[1])
    np.savez(tmp_path / "bool.npz", images=binary.astype(bool))
    ds = _get("npz", path=str(tmp_path / "bool.npz"), test_size=2)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ds)).images([2])[0, 0], binary[2])


def write_factor_npz(path: Path, rows: np.ndarray, **extra) -> dict:
    arrays = {"images": _labelled(len(rows)), "factors": rows, **extra}
    np.savez(path, **arrays)
    return arrays


def test_npz_factors_rank_values_sample_rows_and_find_images(tmp_path):
    grid = np.array(list(itertools.product(*GRID)))
    rows = np.concatenate([grid, grid[[3, 3, 8]]])[np.random.default_rng(1).permutation(15)]  # duplicates, shuffled
    path = tmp_path / "f.npz"
    write_factor_npz(path, rows, factor_names=np.array(["colour", "size", "tilt"]))
    ds = _get("npz", path=str(path), test_size=5)
    assert ds.has_factors and ds.complete_grid and ds.factor_names == ("colour", "size", "tilt")
    assert ds.factor_sizes == (3, 2, 2) and len(ds) == 15
    for j, values in enumerate(GRID):
        np.testing.assert_array_equal(ds.factor_values[j], values)
    ranks = np.stack([np.searchsorted(GRID[j], rows[:, j]) for j in range(3)], axis=1)  # value -> its rank
    np.testing.assert_array_equal(ds.factors(np.arange(15)), ranks)
    np.testing.assert_array_equal(ds.labels([2, 7]), ranks[[2, 7]])
    drawn = np.random.default_rng(3).integers(0, 15, size=40)  # rows drawn uniformly, with this rng
    np.testing.assert_array_equal(ds.sample_factors(40, np.random.default_rng(3)), ranks[drawn])
    queries = ranks[[0, 5, 14]]
    x = ds.images_from_factors(np.concatenate([queries, ranks]))
    found = np.rint(x[:, 0, 0, 0] * 255).astype(int)  # the row each image came from
    lowest = [int(np.flatnonzero((ranks == q).all(axis=1)).min()) for q in np.concatenate([queries, ranks])]
    np.testing.assert_array_equal(found, lowest)
    assert len(set(found)) == 12  # a vector held by several rows gives one image, the lowest row's

    incomplete = tmp_path / "incomplete.npz"
    write_factor_npz(incomplete, grid[grid[:, 0] != 7][:-1])  # 7 of the 12 combinations
    ds = _get("npz", path=str(incomplete), test_size=2)
    assert not ds.complete_grid and ds.factor_names == ("factor_0", "factor_1", "factor_2")
    with pytest.raises(DataError, match=fr"^{incomplete}: no image has the factor values \(factor_0=2, factor_1=11, "
                                        r"factor_2=5\); the file holds 7 of the 8 combinations"):
        ds.images_from_factors([[0, 0, 0], [1, 1, 1]])
    with pytest.raises(DataError, match=r"no image has the factor values \(factor_0=index 2, factor_1=10"):
        ds.images_from_factors([[2, 0, 0]])


def _npz_with_member(path: Path, key: str, raw: bytes, **arrays) -> None:
    np.savez(path, **arrays)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(f"{key}.npy", raw)


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize("case, message", [
    ("no images", "key 'images' missing (the archive holds: factors)"),
    ("channels first",
     "key 'images': uint8 array of shape (12, 3, 4, 4); expected (N, H, W) or (N, H, W, C) with C 1 or 3"),
    ("int images", "key 'images': int32 array of shape (12, 4, 4)"),
    ("object images", "key 'images': an array of Python objects (stored as a pickle, which is never loaded)"),
    ("no pixels", "key 'images': shape (12, 0, 4) holds no pixels"),
    ("truncated images",
     "key 'images': the header declares uint8 data of shape (12, 4, 4) (192 bytes), "
     "but 150 bytes are stored (truncated)"),
    ("float factors", "key 'factors': float64 array of shape (12, 3); expected integers (N, K)"),
    ("factors per row", "key 'images' holds 12 images but 'factors' 11 rows"),
    ("one-dimensional factors", "key 'factors': int64 array of shape (12,)"),
    ("a constant factor", "factor 'factor_1' takes the single value 4; a factor needs at least two values"),
    ("names of the wrong length", "key 'factor_names': <U1 array of shape (2,); expected 3 strings"),
    ("repeated names", "key 'factor_names': ['a', 'b', 'a']; expected 3 distinct, non-empty names"),
    ("names without factors", "key 'factor_names' without the key 'factors'"),
])
def test_npz_format_errors(tmp_path, case, message):
    path = tmp_path / "d.npz"
    images, factors = _labelled(12), np.array(list(itertools.product(*GRID)))
    {
        "no images": lambda: np.savez(path, factors=factors),
        "channels first": lambda: np.savez(path, images=np.zeros((12, 3, 4, 4), np.uint8)),
        "int images": lambda: np.savez(path, images=images.astype(np.int32)),
        "object images": lambda: np.savez(path, images=np.array([None] * 12, dtype=object)),
        "no pixels": lambda: np.savez(path, images=np.zeros((12, 0, 4), np.uint8)),
        "truncated images": lambda: _npz_with_member(path, "images", _npy_bytes(images)[:-42], factors=factors),
        "float factors": lambda: np.savez(path, images=images, factors=factors.astype(float)),
        "factors per row": lambda: np.savez(path, images=images, factors=factors[:11]),
        "one-dimensional factors": lambda: np.savez(path, images=images, factors=factors[:, 0]),
        "a constant factor": lambda: np.savez(path, images=images,
                                              factors=np.stack([factors[:, 0], np.full(12, 4)], 1)),
        "names of the wrong length": lambda: np.savez(path, images=images, factors=factors,
                                                      factor_names=np.array(["a", "b"])),
        "repeated names": lambda: np.savez(path, images=images, factors=factors,
                                           factor_names=np.array(["a", "b", "a"])),
        "names without factors": lambda: np.savez(path, images=images, factor_names=np.array(["a"])),
    }[case]()
    with pytest.raises(DataError) as err:
        _get("npz", path=str(path), test_size=2)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_npz_float_images_outside_the_unit_interval_fail_when_read(tmp_path):
    for bad in (np.full((3, 2, 2), 1.5), np.full((3, 2, 2), np.nan)):
        np.savez(tmp_path / "f.npz", images=bad)
        ds = _get("npz", path=str(tmp_path / "f.npz"), test_size=1)
        with pytest.raises(DataError, match=f"^{tmp_path / 'f.npz'}: key 'images': float values from .* "
                                            "float images must lie in \\[0, 1\\]"):
            ds.images([0])


def test_npz_path_errors(tmp_path):
    with pytest.raises(DataError, match=f"^{tmp_path / 'absent.npz'}: no such file; dataset 'npz' expected"):
        _get("npz", path=str(tmp_path / "absent.npz"))
    with pytest.raises(DataError, match=f"^{tmp_path}: a directory, not a file"):
        _get("npz", path=str(tmp_path))
    (tmp_path / "t.npz").write_text("text")
    with pytest.raises(DataError, match=f"^{tmp_path / 't.npz'}: not a NumPy .npz archive"):
        _get("npz", path=str(tmp_path / "t.npz"))
    np.savez(tmp_path / "ok.npz", images=_labelled(3))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "ok.npz").read_bytes()[:-30])  # the archive's directory is gone
    with pytest.raises(DataError, match=f"^{tmp_path / 'cut.npz'}: not a NumPy .npz archive"):
        _get("npz", path=str(tmp_path / "cut.npz"))


def test_a_suite_scores_mig_on_an_npz_with_factors(tmp_path):
    grid = np.array(list(itertools.product(*GRID)))
    rows = np.tile(grid, (3, 1))  # 36 rows, each combination three times
    images = np.zeros((36, 6, 6), np.uint8)
    images[np.arange(36), np.searchsorted(GRID[0], rows[:, 0]), 2 * np.searchsorted(GRID[1], rows[:, 1])] = 255
    images[np.arange(36), 5, 5 - np.searchsorted(GRID[2], rows[:, 2])] = 255
    np.savez(tmp_path / "shapes.npz", images=images, factors=rows, factor_names=np.array(["a", "b", "c"]))
    params = f"path = '{tmp_path / 'shapes.npz'}'\ntest_size = 12"
    values = run_tiny_suite(tmp_path, "npz", params, '["recon_mse", "mig"]')
    assert 0.0 <= values["mig"] <= 1.0 and np.isfinite(values["recon_mse"])


# ---------------------------------------------------------------------------- at suite load, from the command line


@pytest.mark.parametrize("name", ["image_folder", "cifar10", "npz"])
def test_a_broken_file_stops_the_suite_at_load_with_one_line(tmp_path, capsys, name):
    if name == "image_folder":
        _folder(tmp_path, n=3)
        broken = tmp_path / "folder" / "01.png"
        broken.write_bytes(b"")
        lines = f"path = '{tmp_path / 'folder'}'\ntest_size = 1"
    elif name == "cifar10":
        write_cifar(tmp_path)
        broken = tmp_path / "test_batch"
        broken.write_bytes(broken.read_bytes()[:-7])
        lines = f"path = '{tmp_path}'"
    else:
        broken = tmp_path / "x.npz"
        np.savez(broken, images=_labelled(12), factors=np.zeros((11, 2), np.int64))
        lines = f"path = '{broken}'\ntest_size = 2"
    suite = tmp_path / "suite.toml"
    suite.write_text(suite_text(name, lines, '["recon_mse"]'))
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vaebench: error: {broken}: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "results.sqlite").exists()
