"""The dataset contract, checked on every draw from a user's dataset: float32 images in [0, 1].

A dataset registered by a plugin is served through `CheckedDataset` (`vaebench.data.get` wraps
it), so every array it hands the harness, a training batch, the test split, a metric's draw,
images made from factors, is checked where it is drawn: dtype float32, shape (n, *image_shape),
every value in [0, 1] (no NaN). A breach is a ContractError naming the dataset, the method and
what it returned, instead of a model trained on pixels in [0, 255]. The suite loader draws two
images of such a dataset when it loads, so a dataset that breaks the contract from its first
image is refused before anything runs.

vaebench's own datasets are not wrapped: their images are bytes / 255 (or / 16), rendered in
[0, 1], or floats checked when read from the file (`npz`), and their tests check the range.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch

from vaebench.data.base import ImageDataset
from vaebench.errors import ContractError

CONTRACT = "float32 images in [0, 1], shape (n, C, H, W)"


def is_users(dataset: Any) -> bool:
    """Whether a dataset comes from outside vaebench (a plugin's class)."""
    return not type(dataset).__module__.startswith("vaebench.")


def check_images(images: Any, count: int, image_shape: tuple[int, ...], what: str) -> None:
    """ContractError unless `images` (a numpy array or tensor) is float32 (count, *image_shape) in [0, 1]."""
    expected = (count, *image_shape)
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        raise ContractError(f"{what} returned {type(images).__name__}; the contract is {CONTRACT}")
    dtype = str(images.dtype).replace("torch.", "")
    if tuple(images.shape) != expected or dtype != "float32":
        raise ContractError(f"{what} returned {dtype} of shape {tuple(images.shape)} for {count} images; expected "
                            f"float32 {expected} ({CONTRACT})")
    if count == 0:
        return
    low, high = (float(v) for v in ((images.min(), images.max()) if isinstance(images, np.ndarray)
                                    else torch.aminmax(images.detach())))
    if not (0.0 <= low and high <= 1.0):  # also False for NaN
        raise ContractError(f"{what} returned values from {low:g} to {high:g} for {count} images; the contract is "
                            f"{CONTRACT} (scale bytes by 1/255)")


class CheckedDataset:
    """A user's dataset whose every draw is checked (see the module docstring); all else is the dataset's."""

    def __init__(self, inner: ImageDataset, name: str):
        # a user's dataset, duck-typed: a ground-truth one has images_from_factors without subclassing
        self._inner: Any = inner
        self._name = name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __len__(self) -> int:
        return len(self._inner)

    def _what(self, method: str) -> str:
        return f"dataset {self._name!r}: {method}"

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        out = self._inner.images(indices)
        check_images(out, len(indices), tuple(self._inner.image_shape), self._what("images(indices)"))
        return out

    def batch(self, indices: np.ndarray, device: torch.device) -> torch.Tensor:
        out = self._inner.batch(indices, device)
        check_images(out, len(indices), tuple(self._inner.image_shape), self._what("batch(indices)"))
        return out

    def training_batch(self, indices: np.ndarray, device: torch.device, rng: np.random.Generator) -> torch.Tensor:
        out = self._inner.training_batch(indices, device, rng)
        check_images(out, len(indices), tuple(self._inner.image_shape), self._what("batch(indices)"))
        return out

    def images_from_factors(self, factors: np.ndarray) -> np.ndarray:
        out = self._inner.images_from_factors(factors)
        check_images(out, len(factors), tuple(self._inner.image_shape), self._what("images_from_factors(factors)"))
        return out

    def materialised(self, cache_dir: Any, *, images_to_draw: int) -> CheckedDataset:
        return CheckedDataset(self._inner.materialised(cache_dir, images_to_draw=images_to_draw), self._name)


def checked(dataset: ImageDataset, name: str) -> ImageDataset:
    """A user's dataset behind its checked contract; vaebench's own as they are."""
    if is_users(dataset) and not isinstance(dataset, CheckedDataset):
        return cast(ImageDataset, CheckedDataset(dataset, name))  # stands in for the dataset, attribute for attribute
    return dataset
