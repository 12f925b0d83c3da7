"""The materialised dataset cache (vaebench.data.materialise): the time to build it for procedural
dSprites at 32 and 64 px, its size on disk, and the time to get a training batch of 64 images
from it, against rendering the same batch on demand.

Run: .venv/bin/python -m pytest benchmarks/bench_data.py --benchmark-only
A batch is what `Trainer.batch` does on the CPU: draw 64 indices of the training split with a
NumPy generator, then `dataset.batch(indices, cpu)`. The build benchmark also checks 4,096
random images of the cache against rendering (at 64 px the tests check only the 32 px cache).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from vaebench import data
from vaebench.data import array_cache

SIZES = (32, 64)
BATCH = 64


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.mark.parametrize("size", SIZES)
def test_build_cache(benchmark, tmp_path, size):
    dataset = data.get("dsprites", size=size)
    def fresh_directory():
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
        array_cache._MAPPED.clear()
        return (tmp_path / "cache",), {}

    def build(cache_dir):
        return dataset.materialised(cache_dir, images_to_draw=len(dataset))

    view = benchmark.pedantic(build, setup=fresh_directory, rounds=2, iterations=1)
    benchmark.group = "materialise dsprites"
    benchmark.extra_info["bytes_on_disk"] = view._store.cached.path.stat().st_size
    benchmark.extra_info["images"] = len(dataset)
    idx = np.random.default_rng(0).integers(0, len(dataset), 4096)
    np.testing.assert_array_equal(view.images(idx), dataset.images(idx))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cache")
    for size in SIZES:
        dataset = data.get("dsprites", size=size)
        dataset.materialised(directory, images_to_draw=len(dataset))
    return directory


@pytest.mark.parametrize("source", ["materialised", "rendered"])
@pytest.mark.parametrize("size", SIZES)
def test_batch_of_64(benchmark, cache_dir, size, source):
    dataset = data.get("dsprites", size=size)
    if source == "materialised":
        dataset = dataset.materialised(cache_dir, images_to_draw=0)
        assert dataset._store is not None
    train, rng, cpu = dataset.train_indices, np.random.default_rng(0), torch.device("cpu")

    def batch():
        return dataset.batch(train[rng.integers(0, len(train), size=BATCH)], cpu)

    benchmark.group = f"batch of {BATCH}, dsprites {size} px"
    x = benchmark(batch)
    assert x.shape == (BATCH, 1, size, size)
