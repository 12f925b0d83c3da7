"""scikit-learn's bundled handwritten digits (UCI optdigits): 1,797 real 8x8 images, 10 labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vaebench.data.base import ImageDataset, fixed_split
from vaebench.data.registry import register_dataset, split_params


@register_dataset("digits", params=split_params(test_size=360))
class Digits(ImageDataset):
    """8x8 grey images scaled from 0..16 to [0, 1]; `labels` are the digits 0-9."""

    name = "digits"
    image_shape = (1, 8, 8)

    def __init__(self, test_size: int = 360, split_seed: int = 0):
        from sklearn.datasets import load_digits

        bunch = load_digits()
        self._images = (bunch.images.astype(np.float32) / 16.0)[:, None]
        self._labels = bunch.target.astype(np.int64)
        self.num_images = len(self._images)
        self.train_indices, self.test_indices = fixed_split(self.num_images, test_size, split_seed)

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._images[np.asarray(indices, dtype=np.int64)]

    def labels(self, indices: np.ndarray) -> np.ndarray:
        return self._labels[np.asarray(indices, dtype=np.int64)][:, None]
