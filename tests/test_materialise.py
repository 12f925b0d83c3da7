"""The materialised dataset cache: the same bits as rendering, built once, verified, shared, and a
run on it gives the same numbers as a run that renders every batch."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vaebench import data
from vaebench.bench.executors import InProcessExecutor
from vaebench.bench.runner import run_suite
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import load_suite
from vaebench.bench.train import Trainer
from vaebench.data import array_cache, materialise
from vaebench.data.materialise import open_mask_store, pack_masks, unpack_masks, unpack_rows

SIZE = 32


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """A cache holding the 32 px dSprites masks, built once for this module (about 6 s)."""
    directory = tmp_path_factory.mktemp("cache")
    ds = data.get("dsprites", size=SIZE)
    assert ds.materialised(directory, images_to_draw=len(ds)) is not ds
    return directory


def _cache_files(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "datasets").glob("dsprites_masks-*"))


def _indices(ds, n=3000, seed=0) -> np.ndarray:
    """Random indices of the whole grid, both sides of every block the build wrote, and the test split."""
    rng = np.random.default_rng(seed)
    edges = np.arange(0, len(ds) + 1, materialise.BUILD_CHUNK)
    edges = np.unique(np.clip(np.concatenate([edges - 1, edges]), 0, len(ds) - 1))
    return np.concatenate([rng.integers(0, len(ds), n), edges, ds.test_indices[:500]])


@pytest.mark.parametrize("name", ["dsprites", "color_dsprites", "noisy_dsprites"])
def test_materialised_images_are_the_rendered_bits(cache_dir, name):
    rendered = data.get(name, size=SIZE)
    view = rendered.materialised(cache_dir, images_to_draw=0)  # one cache of masks serves all three
    assert view is not rendered and view._store is not None and rendered._store is None
    idx = _indices(rendered)
    np.testing.assert_array_equal(view.images(idx), rendered.images(idx))
    factors = rendered.sample_factors(700, np.random.default_rng(1))
    np.testing.assert_array_equal(view.images_from_factors(factors), rendered.images_from_factors(factors))
    assert view.describe() == rendered.describe() and view.image_shape == rendered.image_shape
    np.testing.assert_array_equal(view.train_indices, rendered.train_indices)


def test_files_sizes_and_sidecar(cache_dir):
    files = {p.suffix: p for p in _cache_files(cache_dir)}
    npy, sidecar = files[".npy"], files[".json"]
    assert npy.stat().st_size == 128 + 737_280 * SIZE * SIZE // 8  # 94 MB: the .npy header, then 1 bit a pixel
    recorded = json.loads(sidecar.read_text())
    assert recorded["description"]["params"] == {"size": SIZE} and recorded["shape"] == [737_280, 128]
    assert recorded["sha256"] == hashlib.sha256(npy.read_bytes()).hexdigest()


def test_not_built_unless_it_pays(tmp_path):
    ds = data.get("dsprites", size=SIZE)
    assert ds.materialised(tmp_path, images_to_draw=len(ds) - 1) is ds
    assert not (tmp_path / "datasets").exists()


def test_datasets_without_a_cache_are_themselves(tmp_path):
    digits = data.get("digits")
    assert digits.materialised(tmp_path, images_to_draw=10**9) is digits
    assert not (tmp_path / "datasets").exists()


# A small stand-in renderer (35-pixel masks: the last byte of a row is padded) for the mechanics.
TOY_SHAPE = (5, 7)
TOY_N = 3000


def _toy_render(indices: np.ndarray, salt: int = 0) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64)
    pixels = np.arange(TOY_SHAPE[0] * TOY_SHAPE[1])
    return (((idx[:, None] * 2654435761 + pixels * 40503 + salt) >> 7) % 3 == 0).reshape(len(idx), *TOY_SHAPE)


def _open_toy(cache_dir: Path, images_to_draw: int = TOY_N, render=_toy_render):
    return open_mask_store(cache_dir, kind="toy", params={"n": TOY_N}, num_images=TOY_N, mask_shape=TOY_SHAPE,
                           render=render, images_to_draw=images_to_draw)


@pytest.fixture
def fresh_process(monkeypatch):
    """This process's memory maps forgotten, as in a new worker."""
    monkeypatch.setattr(array_cache, "_MAPPED", {})


def test_packing_round_trips_with_padding(tmp_path, fresh_process):
    store = _open_toy(tmp_path)
    idx = np.array([0, 5, TOY_N - 1, 5, 17])
    np.testing.assert_array_equal(store.masks(idx), _toy_render(idx))
    assert store.packed.shape == (TOY_N, 5)  # ceil(35 / 8)
    np.testing.assert_array_equal(unpack_masks(pack_masks(_toy_render(idx)), TOY_SHAPE), _toy_render(idx))


def test_device_unpack_equals_host_unpack(tmp_path, fresh_process):
    """`unpack_rows`, the GPU path's gather, run here on CPU tensors (no GPU on this machine)."""
    store = _open_toy(tmp_path)
    idx = np.random.default_rng(0).integers(0, TOY_N, 257)
    on_device = unpack_rows(torch.from_numpy(np.array(store.packed)), torch.from_numpy(idx), TOY_SHAPE)
    assert on_device.dtype == torch.float32
    np.testing.assert_array_equal(on_device.numpy(), _toy_render(idx).astype(np.float32))


def test_copy_to_a_device_only_when_it_fits(tmp_path, fresh_process, monkeypatch):
    """The GPU path's upload, run with CPU tensors: the device reports its free memory."""
    store = _open_toy(tmp_path)
    nbytes = store.packed.nbytes
    free = int(nbytes / materialise.DEVICE_MEMORY_FRACTION)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free, 0))
    copied = materialise._to_device(store.packed, torch.device("cpu"))
    np.testing.assert_array_equal(copied.numpy(), store.packed)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free - 1, 0))
    assert materialise._to_device(store.packed, torch.device("cpu")) is None


def test_dsprites_batch_on_the_cpu_is_its_images(cache_dir):
    view = data.get("dsprites", size=SIZE).materialised(cache_dir, images_to_draw=0)
    idx = _indices(view, n=64)[:64]
    batch = view.batch(idx, torch.device("cpu"))
    np.testing.assert_array_equal(batch.numpy(), data.get("dsprites", size=SIZE).images(idx))
    packed = torch.from_numpy(np.array(view._store.packed))  # what the CUDA path gathers from
    np.testing.assert_array_equal(unpack_rows(packed, torch.from_numpy(idx), (SIZE, SIZE))[:, None], batch)


def test_an_existing_cache_is_reused_not_rebuilt(tmp_path, fresh_process):
    _open_toy(tmp_path)
    npy = next((tmp_path / "datasets").glob("toy-*.npy"))
    built = npy.stat().st_mtime_ns
    array_cache._MAPPED.clear()
    assert _open_toy(tmp_path, images_to_draw=0) is not None
    assert npy.stat().st_mtime_ns == built


def test_a_changed_renderer_gets_its_own_cache(tmp_path, fresh_process):
    a = _open_toy(tmp_path)
    b = _open_toy(tmp_path, render=lambda idx: _toy_render(idx, salt=1))
    assert a.cached.path != b.cached.path
    np.testing.assert_array_equal(b.masks(np.arange(10)), _toy_render(np.arange(10), salt=1))


def test_a_corrupted_cache_is_logged_and_rebuilt(tmp_path, fresh_process, caplog):
    npy = _open_toy(tmp_path).cached.path
    raw = bytearray(npy.read_bytes())
    raw[-3] ^= 0xFF
    npy.write_bytes(bytes(raw))
    array_cache._MAPPED.clear()
    with caplog.at_level(logging.WARNING, logger="vaebench.data.array_cache"):
        assert _open_toy(tmp_path, images_to_draw=0) is None  # not used; too few images to rebuild it
        store = _open_toy(tmp_path)
    assert sum("not used" in r.getMessage() for r in caplog.records) == 2
    np.testing.assert_array_equal(store.masks(np.arange(TOY_N)), _toy_render(np.arange(TOY_N)))


def test_a_truncated_cache_is_rebuilt(tmp_path, fresh_process):
    npy = _open_toy(tmp_path).cached.path
    npy.write_bytes(npy.read_bytes()[:-100])
    array_cache._MAPPED.clear()
    np.testing.assert_array_equal(_open_toy(tmp_path).masks([TOY_N - 1]), _toy_render([TOY_N - 1]))


def _slow_counting_render(log_path: str):
    def render(indices):
        if len(indices) == TOY_N:  # the build's one block (the key's probe renders 1024 images)
            with open(log_path, "a") as f:
                f.write(f"{os.getpid()}\n")
            import time

            time.sleep(1.0)
        return _toy_render(indices)

    return render


def _build_in_child(cache_dir: str, log_path: str, queue) -> None:
    store = _open_toy(Path(cache_dir), render=_slow_counting_render(log_path))
    queue.put((store.cached.sha256, np.array_equal(store.masks(np.arange(TOY_N)), _toy_render(np.arange(TOY_N)))))


def test_two_processes_asking_at_once_build_it_once(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue, log_path = ctx.Queue(), str(tmp_path / "builds.log")
    children = [ctx.Process(target=_build_in_child, args=(str(tmp_path), log_path, queue)) for _ in range(2)]
    for child in children:
        child.start()
    results = [queue.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert len(Path(log_path).read_text().split()) == 1
    assert results[0] == results[1] and results[0][1]
    assert not list((tmp_path / "datasets").glob(".*tmp"))


def test_a_view_pickles_small_and_maps_again(cache_dir, fresh_process):
    view = data.get("dsprites", size=SIZE).materialised(cache_dir, images_to_draw=0)
    blob = pickle.dumps(view)
    assert len(blob) < 20 * view.num_images  # the split's indices, not the 94 MB of masks
    array_cache._MAPPED.clear()
    idx = _indices(view, n=100)
    np.testing.assert_array_equal(pickle.loads(blob).images(idx), data.get("dsprites", size=SIZE).images(idx))


def _spec(steps: int):
    suite = load_suite(Path(__file__).resolve().parent.parent / "suites" / "smoke.toml")
    return dataclasses.replace(suite.specs[0], steps=steps, checkpoint_every=10, log_every=5)


def test_training_on_the_cache_is_bit_identical_and_resumes_exactly(cache_dir, tmp_path):
    rendered = data.get("dsprites", size=SIZE, test_size=1000)
    view = rendered.materialised(cache_dir, images_to_draw=0)
    cpu = torch.device("cpu")
    reference = Trainer(_spec(20), rendered, cpu)  # each trainer seeds torch's global generator: build, then train
    reference.train(None, None)
    on_cache = Trainer(_spec(20), view, cpu)
    on_cache.train(None, None)
    assert on_cache.curves == reference.curves
    first_half = Trainer(_spec(10), view, cpu)
    first_half.train(None, None)
    checkpoint = first_half.state()  # now: it holds torch's global generator, which the next Trainer reseeds
    resumed = Trainer(_spec(20), view, cpu)
    resumed.restore(checkpoint)
    resumed.train(None, None)
    assert resumed.curves == reference.curves
    for name, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name


def test_a_run_directory_with_the_cache_gives_the_same_numbers(cache_dir, write_suite, tmp_path, fresh_process):
    suite = load_suite(write_suite(steps=20))
    with_cache = tmp_path / "with_cache"
    (with_cache / "cache" / "datasets").mkdir(parents=True)
    for path in _cache_files(cache_dir):
        os.link(path, with_cache / "cache" / "datasets" / path.name)
    for out in (with_cache, tmp_path / "rendered"):
        run_suite(suite, out, InProcessExecutor(), threads=1)
    assert [Path(p).parent.parent.parent for p in array_cache._MAPPED] == [with_cache]  # the runs used it
    assert not (tmp_path / "rendered" / "cache" / "datasets").exists()  # 20 steps do not pay for a build
    frames = []
    for out in (with_cache, tmp_path / "rendered"):
        with ResultsStore(out, create=False) as store:
            frames.append((store.metrics().sort_values(["run_id", "name"]).reset_index(drop=True),
                           store.curves().sort_values(["run_id", "name", "step"]).reset_index(drop=True)))
    assert len(frames[0][0]) > 0
    pd.testing.assert_frame_equal(frames[0][0], frames[1][0], check_exact=True)
    pd.testing.assert_frame_equal(frames[0][1], frames[1][1], check_exact=True)


def test_the_factor_scores_samples_count_toward_materialising():
    """beta_vae draws 2 x 64 images for each of 10,000 + 5,000 points, factor_vae 64 for each of
    10,000 + 5,000 votes and 10,000 for the variances (disentanglement_lib's defaults): a run that
    scores them draws more than the 737,280 images of dSprites, so its dataset is materialised."""
    from vaebench.bench.train import images_to_draw

    spec = dataclasses.replace(_spec(100), batch_size=32)
    assert images_to_draw(spec) == 100 * 32
    scored = dataclasses.replace(spec, metrics=("kl", "beta_vae", "factor_vae"))
    assert images_to_draw(scored) == 100 * 32 + 2 * 64 * 15_000 + (64 * 15_000 + 10_000)
    small = dataclasses.replace(scored, metric_params=(("beta_vae_num_train", 100),))
    assert images_to_draw(small) == images_to_draw(scored) - 2 * 64 * (10_000 - 100)
