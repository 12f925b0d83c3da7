"""The dataset contract: images by index, a fixed split, and ground-truth factors where they exist."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vaebench.errors import ConfigError

# The test split is encoded whole at evaluation, as float32: more than this is refused when the dataset loads.
MAX_TEST_SPLIT_BYTES = 4 * 2**30


def test_split_bytes(dataset: ImageDataset) -> int:
    """The bytes of the dataset's test split as the float32 array evaluation holds."""
    c, h, w = dataset.image_shape
    return len(dataset.test_indices) * int(c) * int(h) * int(w) * 4


def fixed_split(n: int, test_size: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation of range(n): (train indices, test indices), both sorted."""
    if not 0 < test_size < n:
        raise ConfigError(f"must be between 1 and {n - 1}, got {test_size}", key="test_size")
    order = np.random.default_rng(split_seed).permutation(n)
    return np.sort(order[test_size:]), np.sort(order[:test_size])


def to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """Host images as a tensor on `device`; to a CUDA device through pinned memory, asynchronously."""
    x = torch.from_numpy(images)
    return x.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else x.to(device)


class ImageDataset:
    """Images as float32 in [0, 1], shape (N, C, H, W), addressed by index.

    Subclasses set `name`, `image_shape` (C, H, W), `num_images`, `train_indices`,
    `test_indices`, and implement `images(indices)`.
    """

    name: str
    image_shape: tuple[int, int, int]
    num_images: int
    train_indices: np.ndarray
    test_indices: np.ndarray
    has_factors: bool = False
    # What determines the images beyond the dataset's name and parameters (a procedural renderer's
    # version): part of every run's spec and of every cache key made from the images, so results
    # and caches of another version are never mixed with these. Empty: the parameters say it all.
    version: str = ""

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def batch(self, indices: np.ndarray, device: torch.device) -> torch.Tensor:
        """The images at `indices` as a tensor on `device`: a training batch.

        On a CUDA device the host's images go through pinned memory with an asynchronous copy,
        so the host draws the next batch while the device works.
        """
        return to_device(self.images(indices), device)

    def training_batch(self, indices: np.ndarray, device: torch.device, rng: np.random.Generator) -> torch.Tensor:
        """The training batch of the images at `indices`: `batch(indices, device)`, unless the
        dataset draws something afresh for every batch (the dynamic binarisation of `mnist`).
        Such a draw comes from `rng`, the run's generator, whose state every checkpoint holds, so
        a run stays deterministic and a resumed run bit-identical."""
        return self.batch(indices, device)

    def materialised(self, cache_dir: str | Path, *, images_to_draw: int) -> ImageDataset:
        """This dataset served from a cache of its images under `cache_dir`, for a caller that
        will draw about `images_to_draw` images (see `vaebench.data.materialise`).

        The default is the dataset itself: images held in memory already, and users' files, are
        read as they are. Procedural datasets override it.
        """
        return self

    def __len__(self) -> int:
        return self.num_images

    def labels(self, indices: np.ndarray) -> np.ndarray | None:
        """Class labels (for a feature network), or None. Ground-truth datasets use factors."""
        return None

    def source_files(self) -> list[Path]:
        """The files the images are read from (none for a procedural dataset). Their content is part of
        what a run is made from: a run resumed after one of them changed restarts (`bench.identity`)."""
        return []

    def describe(self) -> dict:
        described = {"name": self.name, "image_shape": list(self.image_shape), "num_images": self.num_images}
        return {**described, "version": self.version} if self.version else described

    def data_files(self) -> dict[str, dict]:
        """The files the dataset reads, by name: {"sha256": hex, "published": whether it is the
        published file (None: no published digest)}; recorded in each run's environment (see
        `vaebench.data.published`). Empty for datasets that read no file or do not hash theirs."""
        return {}


class GroundTruthDataset(ImageDataset):
    """A dataset whose images are a deterministic function of discrete factors.

    Factors are integer indices, one column per factor, in `factor_names` order; image
    index and factor vector are related by mixed-radix encoding over `factor_sizes`
    (first factor most significant), as in the original dSprites file.
    """

    has_factors = True
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]

    @property
    def _radix(self) -> np.ndarray:
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]])

    def factors(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """(n, K) integer factor indices of the images at `indices`."""
        idx = np.asarray(indices, dtype=np.int64)
        return (idx[:, None] // self._radix[None, :]) % np.asarray(self.factor_sizes)[None, :]

    def index_of(self, factors: np.ndarray) -> np.ndarray:
        """Image indices of (n, K) factor vectors."""
        return np.asarray(factors, dtype=np.int64) @ self._radix

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, K) factor vectors drawn uniformly from the full grid."""
        return np.stack([rng.integers(0, s, size=n) for s in self.factor_sizes], axis=1)

    def images_from_factors(self, factors: np.ndarray) -> np.ndarray:
        return self.images(self.index_of(factors))

    def labels(self, indices: np.ndarray) -> np.ndarray | None:
        return self.factors(indices)
