"""Scream-dSprites (Locatello et al. 2019): dSprites on patches of Munch's "The Scream", from the picture
the user supplies.

The image: the file at `path` (or ``scream.jpg`` in the directory `path`), the one
disentanglement_lib's download script fetches as ``scream/scream.jpg`` from
https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg. It is converted to RGB,
shrunk with PIL's ``thumbnail((350, 274))`` (Pillow's default filter; the aspect ratio is kept)
and scaled to [0, 1], as disentanglement_lib's ``ScreamDSprites`` does.

An image, as disentanglement_lib's ``sample_observations_from_factors`` builds it: a random
`size` x `size` patch of the shrunk picture, top-left corner at row ``x`` in [0, H - size) and
column ``y`` in [0, W - size) (numpy's exclusive upper bound, as the study's ``randint``), is
averaged with a random colour ``c``, uniform in [0, 1)^3: ``background = (patch + c) / 2``; the
pixels of the dSprites sprite are inverted, ``1 - background``. The sprite masks are the
binary ``dsprites`` dataset's (`vaebench.data.dsprites`, through its public API: the registered
``dsprites`` dataset's ``images``, ``materialised``), so the factors, factor sizes, image index
and train/test split (for the same `size`, `test_size` and `split_seed`) are dSprites':

    shape 3, scale 6, orientation 40, posX 32, posY 32

Departure: the study draws the patch and the colour afresh at every draw of an image; here
they are a deterministic function of the image index (drawn from ``default_rng([STREAM, index])``:
x, then y, then c), the convention of vaebench's noisy and colour dSprites, so an image index
always names the same pixels (training batches, the test split, FID's images) and
``images_from_factors`` (GroundTruthDataset's: the image of each vector's index) serves the
fresh-sample disentanglement protocol.

Checks when the dataset is built (at suite load; one line naming the file): the file opens as an
image and its shrunk copy is larger than `size` on both sides. No digest of the picture is
published (Wikimedia's file can be replaced): its SHA-256 is recorded in each run's environment
(see `vaebench.data.published`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from vaebench.data import dsprites  # noqa: F401  (registers "dsprites", whose masks this dataset paints)
from vaebench.data.base import GroundTruthDataset
from vaebench.data.files import PathLike, find_file, fingerprint
from vaebench.data.published import check_published
from vaebench.data.registry import DATASETS, path_param, register_dataset, split_params
from vaebench.errors import DataError
from vaebench.params import Param

STANDARD_NAME = "scream.jpg"  # disentanglement_lib's scream/scream.jpg
THUMBNAIL = (350, 274)  # disentanglement_lib: scream.thumbnail((350, 274, 3))
STREAM = 0x5C12EA  # the per-index generator's first key: default_rng([STREAM, index])
_EXPECTED = "the picture of The Scream (disentanglement_lib's scream.jpg, Wikimedia's The_Scream.jpg)"


def load_scream(file: Path, size: int) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]: the picture converted to RGB and shrunk with thumbnail(THUMBNAIL)."""
    try:
        with Image.open(file) as opened:
            picture = opened.convert("RGB")
            picture.thumbnail(THUMBNAIL)
            pixels = np.asarray(picture, dtype=np.float32) / np.float32(255)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DataError(f"{file}: not an image Pillow can read ({err.__class__.__name__}: {err}); "
                        f"expected {_EXPECTED}") from None
    if min(pixels.shape[:2]) <= size:
        raise DataError(f"{file}: {pixels.shape[1]} x {pixels.shape[0]} pixels after thumbnail{THUMBNAIL}; "
                        f"patches of {size} px need more than {size} on each side")
    return pixels


@register_dataset("scream_dsprites", params=[
    path_param("the picture of The Scream"), Param("size", 64, doc="32 or 64 px"), *split_params(test_size=10_000),
])
class ScreamDSprites(GroundTruthDataset):
    """dSprites on patches of The Scream; see the module docstring."""

    name = "scream_dsprites"

    def __init__(self, path: PathLike | None = None, size: int = 64, test_size: int = 10_000, split_seed: int = 0):
        sprites = DATASETS.get("dsprites")(size=size, test_size=test_size, split_seed=split_seed)
        file = find_file(path, self.name, STANDARD_NAME, _EXPECTED)
        self.path = file
        self.size = size
        self.scream = load_scream(file, size)
        self._sprites: Any = sprites
        self.factor_names = tuple(sprites.factor_names)
        self.factor_sizes = tuple(sprites.factor_sizes)
        self.num_images = sprites.num_images
        self.train_indices, self.test_indices = sprites.train_indices, sprites.test_indices
        self.image_shape = (3, size, size)
        self.fingerprint = fingerprint([file])
        self._data_files = {file.name: check_published(file)}

    def factors(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._sprites.factors(indices)

    def backgrounds(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The patch rows x, columns y (n,) and colours c (n, 3) of the images at `indices`."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        height, width = self.scream.shape[:2]
        x, y, c = np.empty(len(idx), np.int64), np.empty(len(idx), np.int64), np.empty((len(idx), 3))
        for j, i in enumerate(idx):
            rng = np.random.default_rng([STREAM, int(i)])
            x[j] = rng.integers(0, height - self.size)
            y[j] = rng.integers(0, width - self.size)
            c[j] = rng.uniform(0.0, 1.0, size=3)
        return x, y, c

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        masks = self._sprites.images(idx)[:, 0] > 0.5  # (n, size, size): the binary dSprites images
        x, y, c = self.backgrounds(idx)
        s = self.size
        patches = np.stack([self.scream[a:a + s, b:b + s] for a, b in zip(x, y)]) if len(idx) else \
            np.empty((0, s, s, 3), dtype=np.float32)
        background = (patches + c[:, None, None, :].astype(np.float32)) / np.float32(2)
        out = np.where(masks[..., None], np.float32(1) - background, background)
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2), dtype=np.float32)

    def materialised(self, cache_dir: str | Path, *, images_to_draw: int) -> ScreamDSprites:
        """This dataset with its sprite masks from dSprites' cache (see `DSprites.materialised`)."""
        sprites = self._sprites.materialised(cache_dir, images_to_draw=images_to_draw)
        if sprites is self._sprites:
            return self
        view = copy.copy(self)
        view._sprites = sprites
        return view

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path), "fingerprint": self.fingerprint,
                "sprites": self._sprites.describe(), "stream": STREAM}

    def data_files(self) -> dict[str, dict]:
        return dict(self._data_files)
