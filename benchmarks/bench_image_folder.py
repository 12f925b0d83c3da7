"""The image folder dataset (vaebench.data.image_folder) on CelebA-like files: building it (the
header check of every file, at suite load), decoding the folder into its cache, and a training
batch of 64 images decoded on demand against gathered from the cache.

Run: .venv/bin/python -m pytest benchmarks/bench_image_folder.py --benchmark-only
The folder: 512 JPEG files (quality 95) of 178 x 218 smooth random RGB images, the size of
CelebA's img_align_celeba, decoded to 64 x 64 RGB. Per-image figures are the timings / 512
(build, cache) or / 64 (batch).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from vaebench import data
from vaebench.data import array_cache

N_FILES = 512
BATCH = 64


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba_like")
    rng = np.random.default_rng(0)
    for i in range(N_FILES):
        coarse = rng.integers(0, 256, (28, 23, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((178, 218), Image.Resampling.BICUBIC).save(root / f"{i:06d}.jpg", quality=95)
    return root


def _build(folder):
    return data.DATASETS.get("image_folder")(path=str(folder), size=64, test_size=64)


def test_build_checks_every_header(benchmark, folder):
    benchmark.group = "image_folder"
    benchmark.extra_info["files"] = N_FILES
    benchmark.pedantic(_build, args=(folder,), rounds=3, iterations=1)


def test_decode_into_cache(benchmark, folder, tmp_path):
    dataset = _build(folder)

    def fresh_directory():
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
        array_cache._MAPPED.clear()
        return (tmp_path / "cache",), {}

    benchmark.group = "image_folder"
    benchmark.extra_info["files"] = N_FILES
    view = benchmark.pedantic(lambda d: dataset.materialised(d, images_to_draw=0), setup=fresh_directory,
                              rounds=2, iterations=1)
    idx = np.arange(0, N_FILES, 37)
    np.testing.assert_array_equal(view.images(idx), dataset.images(idx))


@pytest.mark.parametrize("source", ["cache", "decoded"])
def test_batch(benchmark, folder, tmp_path, source):
    dataset = _build(folder)
    if source == "cache":
        dataset = dataset.materialised(tmp_path / "cache", images_to_draw=0)
    rng = np.random.default_rng(0)
    benchmark.group = "image_folder batch of 64"
    benchmark(lambda: dataset.images(dataset.train_indices[rng.integers(0, len(dataset.train_indices), BATCH)]))
