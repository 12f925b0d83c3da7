"""Cars3D (Reed et al. 2015, "Deep Visual Analogy-Making") from its `car_*_mesh.mat` files, as Locatello
et al. 2019 use it.

Files: the directory `path` holding the 183 MATLAB files ``car_XXX_mesh.mat`` of the archive
``nips2015-analogy-data.tar.gz`` (http://www.scottreed.info/files/, its ``data/cars`` folder).
Each holds ``im``, uint8 (128, 128, 3, 24, 4): an RGB image per azimuth (24) and elevation (4).
The object index is the file's position in ``list.txt`` (the archive's list of the files, without
the extension) when the directory has one, else in the sorted file names. disentanglement_lib
numbers the objects in the order its directory listing returns them, which the file system
decides; the two numberings name the same images, only the object labels are permuted.

As disentanglement_lib (``data/ground_truth/cars3d.py``): every image is shrunk to 64 x 64 with
PIL's ``thumbnail`` and the ANTIALIAS filter (LANCZOS; for these square images the same pixels
as ``resize((64, 64), LANCZOS)``, which this module calls), in 8-bit RGB. Pixels are byte / 255,
shape (N, 3, 64, 64).

Factors (disentanglement_lib's order; image index = the mixed-radix number, first most significant)::

    elevation    4
    azimuth     24
    object     183

Every factor is a factor (no nuisance), so ``sample_factors`` and ``images_from_factors`` are
GroundTruthDataset's: uniform draws of the grid, and the image of each vector.

Checks when the dataset is built (at suite load; one line naming the file): the directory
holds the files (the ones ``list.txt`` names, if present), each is a MATLAB file whose ``im`` is
uint8 (H, W, 3, azimuths, elevations) with the same shape in every file (read from the files'
headers with ``scipy.io.whosmat``, without reading the images). No digest of these files is
published (disent lists only the MD5 of the archive): their SHA-256 is recorded in each run's
environment as one entry, the SHA-256 of the ``sha256sum`` listing of the files
(``<hex>  <name>\\n`` per file, in name order; ``sha256sum car_*_mesh.mat | sha256sum`` in the C
locale prints it). The images are decoded and resized on first use, kept as uint8 (206 MiB for
the published files), and dropped when the dataset is pickled.

Split: a seeded permutation holds out `test_size` images (default 2,000 of 17,568, about a
tenth); the study trains on all of them and scores on fresh samples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from vaebench.data.base import GroundTruthDataset, fixed_split
from vaebench.data.files import PathLike, fingerprint, required_path
from vaebench.data.published import file_digests
from vaebench.data.registry import path_param, register_dataset, split_params
from vaebench.errors import DataError

SIZE = 64  # Locatello et al.: every dataset at 64 x 64
RESAMPLE = Image.Resampling.LANCZOS  # PIL's ANTIALIAS, disentanglement_lib's filter
PATTERN = "car_*_mesh.mat"
LIST_FILE = "list.txt"
_EXPECTED = "the directory of the Cars3D files car_*_mesh.mat (data/cars of nips2015-analogy-data.tar.gz)"


def resize_as_disentanglement_lib(image: np.ndarray) -> np.ndarray:
    """A (H, W, 3) uint8 image at SIZE x SIZE: LANCZOS in 8-bit RGB."""
    return np.asarray(Image.fromarray(image).resize((SIZE, SIZE), RESAMPLE))


def _car_files(directory: Path) -> list[Path]:
    listing = directory / LIST_FILE
    if listing.is_file():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        files = [directory / (n if n.endswith(".mat") else f"{n}.mat") for n in names]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise DataError(f"{missing[0]}: no such file, but {listing} lists it ({len(missing)} of its "
                            f"{len(files)} files are missing)")
        if len(set(files)) != len(files):
            raise DataError(f"{listing}: names a file twice")
        return files
    files = sorted(directory.glob(PATTERN))
    if not files:
        raise DataError(f"{directory}: holds no {PATTERN} files; dataset 'cars3d' expected {_EXPECTED}")
    return files


def _image_shape(file: Path) -> tuple[int, ...]:
    try:
        variables = {name: (shape, kind) for name, shape, kind in scipy.io.whosmat(str(file))}
    except Exception as err:  # noqa: BLE001 - any failure to parse is the user's file
        raise DataError(f"{file}: not a MATLAB .mat file scipy.io can read ({err.__class__.__name__}: {err})") from None
    if "im" not in variables:
        raise DataError(f"{file}: no variable 'im' (the file holds: {', '.join(variables) or 'nothing'}); "
                        "expected the images of one car")
    shape, kind = variables["im"]
    if len(shape) != 5 or shape[2] != 3 or kind != "uint8" or min(shape) < 1:
        raise DataError(f"{file}: variable 'im' is {kind} of shape {tuple(shape)}; expected uint8 "
                        "(height, width, 3, azimuths, elevations)")
    return tuple(int(d) for d in shape)


@register_dataset("cars3d", params=[path_param("the directory of the .mat files"), *split_params(test_size=2_000)])
class Cars3D(GroundTruthDataset):
    """Cars3D from the published .mat files; see the module docstring."""

    name = "cars3d"
    factor_names = ("elevation", "azimuth", "object")

    def __init__(self, path: PathLike | None = None, test_size: int = 2_000, split_seed: int = 0):
        directory = required_path(path, self.name, _EXPECTED)
        if not directory.is_dir():
            raise DataError(f"{directory}: {'a file' if directory.exists() else 'no such directory'}; "
                            f"dataset 'cars3d' expected {_EXPECTED}")
        self.path = directory
        self._files = _car_files(directory)
        shape = _image_shape(self._files[0])
        for file in self._files[1:]:
            other = _image_shape(file)
            if other != shape:
                raise DataError(f"{file}: 'im' has shape {other}, {self._files[0].name}'s has {shape}; "
                                "every car must have the same views")
        azimuths, elevations = shape[3], shape[4]
        self.factor_sizes = (elevations, azimuths, len(self._files))
        self.num_images = elevations * azimuths * len(self._files)
        self.image_shape = (3, SIZE, SIZE)
        self.train_indices, self.test_indices = fixed_split(self.num_images, test_size, split_seed)
        self.fingerprint = fingerprint(self._files, root=directory)
        listing = "".join(f"{file_digests(f)['sha256']}  {f.name}\n" for f in sorted(self._files, key=lambda f: f.name))
        self._data_files = {f"{PATTERN} ({len(self._files)} files)": {
            "sha256": hashlib.sha256(listing.encode()).hexdigest(), "published": None}}
        self._pixels: np.ndarray | None = None

    def _decode(self) -> np.ndarray:
        elevations, azimuths, objects = self.factor_sizes
        out = np.empty((self.num_images, SIZE, SIZE, 3), dtype=np.uint8)
        for obj, file in enumerate(self._files):
            try:
                im = scipy.io.loadmat(str(file), variable_names=["im"])["im"]
            except Exception as err:  # noqa: BLE001 - a file that changed or is corrupt past its header
                raise DataError(f"{file}: cannot be read ({err.__class__.__name__}: {err})") from None
            for e in range(elevations):
                for a in range(azimuths):
                    out[(e * azimuths + a) * objects + obj] = resize_as_disentanglement_lib(
                        np.ascontiguousarray(im[:, :, :, a, e]))
        return out

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_images):
            raise IndexError(f"image index out of range 0..{self.num_images - 1} in dataset 'cars3d'")
        if self._pixels is None:
            self._pixels = self._decode()
        return np.ascontiguousarray(self._pixels[idx].transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path), "fingerprint": self.fingerprint,
                "factor_sizes": list(self.factor_sizes)}  # the fingerprint lists the files in object order

    def data_files(self) -> dict[str, dict]:
        return dict(self._data_files)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pixels": None}  # a pickled copy decodes the files again when used
