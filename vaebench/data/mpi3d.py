"""MPI3D (Gondal et al. 2019, "On the Transfer of Inductive Bias from Simulation to the Real World")
from the published archives `mpi3d_toy.npz`, `mpi3d_realistic.npz` and `mpi3d_real.npz`.

Files: one archive (``path``: the file, or a directory holding ``mpi3d_<variant>.npz``), with the
key ``images``, uint8 (1,036,800, 64, 64, 3), downloaded from
https://github.com/rr-learning/disentanglement_dataset. The archive has no labels: as its
README says, ``images.reshape([6, 6, 2, 3, 3, 40, 40, 64, 64, 3])`` puts the seven factors
on the first axes, so the image index is the mixed-radix number of the factor indices (first
most significant) and equals the archive row. Factors (the publisher's names and values)::

    object_color      6   white, green, red, blue, brown, olive
    object_shape      6   cone, cube, cylinder, hexagonal, pyramid, sphere
    object_size       2   small, large
    camera_height     3   top, center, bottom
    background_color  3   purple, sea green, salmon
    horizontal_axis  40   first degree of freedom of the robot arm
    vertical_axis    40   second degree of freedom

An archive of 460,800 images is read as the grid (4, 4, 2, 3, 3, 40, 40): the early
``mpi3d_toy`` that disentanglement_lib's download script fetches
(``sim_toy_64x_ordered_without_heldout_factors.npz``), for which its ``data/ground_truth/mpi3d.py``
states those sizes; disentanglement_lib applies them to every variant, which misindexes the
final 1,036,800-image archives, so this module takes the grid from the image count (GRIDS).
Every factor is a factor (no nuisance): ``sample_factors`` and ``images_from_factors`` are
GroundTruthDataset's. Pixels are byte / 255, shape (N, 3, 64, 64), as disentanglement_lib's.

Reading: an archive whose ``images`` member is stored uncompressed (``np.savez``) is mapped
read-only from the file (`vaebench.data.files.npz_memmap`): nothing is read until an image is,
and every process shares the page cache. A compressed member (``np.savez_compressed``) is
decompressed whole on first use and kept (12.7 GB for a published-size archive).

Checks when the dataset is built (at suite load; one line naming the file): the archive opens,
``images`` is uint8 (N, H, W, 3) stored at the length its header declares, N is the size of a
known grid, and a file named like another variant's archive is refused. The file's MD5 is
compared with the one disent lists for the variant (no SHA-256 is published; a file that
differs gets one warning line, see `vaebench.data.published`); its SHA-256 goes into each run's
environment. Hashing reads the whole archive once; its digests are then kept.

Split: a seeded permutation holds out `test_size` images (default 10,000).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vaebench.data.base import GroundTruthDataset, fixed_split
from vaebench.data.files import PathLike, fingerprint, npz_array_header, npz_memmap, open_npz, read_npz, required_path
from vaebench.data.published import check_published
from vaebench.data.registry import path_param, register_dataset, split_params
from vaebench.errors import ConfigError, DataError
from vaebench.params import Param

VARIANTS = ("toy", "realistic", "real")
FACTOR_NAMES = ("object_color", "object_shape", "object_size", "camera_height", "background_color",
                "horizontal_axis", "vertical_axis")
# image count -> factor sizes: the published archives, and disentanglement_lib's early mpi3d_toy
GRIDS: dict[int, tuple[int, ...]] = {
    1_036_800: (6, 6, 2, 3, 3, 40, 40),
    460_800: (4, 4, 2, 3, 3, 40, 40),
}


def standard_name(variant: str) -> str:
    return f"mpi3d_{variant}.npz"


@register_dataset("mpi3d", params=[
    path_param("the MPI3D archive"), Param("variant", "toy", doc="the archive: " + ", ".join(VARIANTS)),
    *split_params(test_size=10_000),
])
class MPI3D(GroundTruthDataset):
    """MPI3D from a published archive; see the module docstring."""

    name = "mpi3d"
    factor_names = FACTOR_NAMES

    def __init__(self, path: PathLike | None = None, variant: str = "toy", test_size: int = 10_000,
                 split_seed: int = 0):
        if variant not in VARIANTS:
            raise ConfigError(f"must be one of {', '.join(map(repr, VARIANTS))}, got {variant!r}", key="variant")
        expected = f"the MPI3D archive {standard_name(variant)} (key images, uint8 (N, 64, 64, 3))"
        given = required_path(path, self.name, expected)
        file = given / standard_name(variant) if given.is_dir() else given
        if not file.is_file():
            raise DataError(f"{file}: no such file; dataset 'mpi3d' (variant {variant!r}) expected {expected}")
        others = [v for v in VARIANTS if v != variant and file.name == standard_name(v)]
        if others:
            raise ConfigError(f"the file {file} is the {others[0]!r} archive; set variant = {others[0]!r} "
                              f"(the variant names the published file whose digest is checked)", key="variant")
        with open_npz(file, expected) as archive:
            if "images" not in archive.files:
                raise DataError(f"{file}: key 'images' missing (the archive holds: "
                                f"{', '.join(archive.files) or 'nothing'}); expected {expected}")
        shape, dtype = npz_array_header(file, "images")
        if len(shape) != 4 or shape[3] != 3 or min(shape[1:3]) < 1 or dtype != np.uint8:
            raise DataError(f"{file}: key 'images': {dtype} array of shape {shape}; expected uint8 images (N, H, W, 3)")
        if shape[0] not in GRIDS:
            known = "; ".join(f"{n} = {' x '.join(map(str, s))}" for n, s in GRIDS.items())
            raise DataError(f"{file}: key 'images' holds {shape[0]} images, not a known MPI3D grid ({known})")
        self.path = file
        self.variant = variant
        self.factor_sizes = GRIDS[shape[0]]
        self.num_images = math.prod(self.factor_sizes)
        self.image_shape = (3, shape[1], shape[2])
        self.train_indices, self.test_indices = fixed_split(self.num_images, test_size, split_seed)
        self.fingerprint = fingerprint([file])
        self._data_files = {file.name: check_published(file, standard_name(variant))}
        self._images: np.ndarray | None = None

    def _array(self) -> np.ndarray:
        if self._images is None:
            mapped = npz_memmap(self.path, "images")
            if mapped is None:
                with open_npz(self.path, standard_name(self.variant)) as archive:
                    mapped = read_npz(archive, self.path, "images")
            self._images = mapped
        return self._images

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_images):
            raise IndexError(f"image index out of range 0..{self.num_images - 1} in dataset 'mpi3d'")
        if len(idx) == 0:
            return np.empty((0, *self.image_shape), dtype=np.float32)
        # a memory map reads pages in increasing order fastest: gather each needed row once, in order
        unique, inverse = np.unique(idx, return_inverse=True)
        pixels = self._array()[unique][inverse.reshape(-1)]
        return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path), "variant": self.variant,
                "fingerprint": self.fingerprint, "factor_sizes": list(self.factor_sizes)}

    def data_files(self) -> dict[str, dict]:
        return dict(self._data_files)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_images": None}  # a pickled copy maps (or reads) the archive again
