"""dSprites from the published archive `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz` (Matthey et al. 2017).

The archive holds `imgs` (737,280 x 64 x 64 uint8, values 0/1) and `latents_classes`
(737,280 x 6: colour, shape, scale, orientation, posX, posY); `latents_values` is not
needed. Colour is constant and is dropped, leaving the five factors of the procedural
`dsprites` dataset, with the same names.

The factor grid and the index -> row map come from `latents_classes` (see
`vaebench.data.files`): the published archive gives factor sizes (3, 6, 40, 32, 32) and
image index = archive row, i.e. the same factors, index order and (with the same
`test_size` and `split_seed`) the same train/test split as the procedural dataset. An
archive holding any complete sub-grid, in any row order, also loads.

Construction reads `latents_classes` (35 MB) and checks `imgs`' header and stored length
without decompressing it (see `vaebench.data.files.npz_array_header`). An .npz cannot be
memory-mapped, so `imgs` is decompressed once, on the first `images` call, and kept as uint8
(2.9 GB for the published archive; each process that uses the dataset holds its own copy).
Pixels are scaled to [0, 1]: kept as they are when the largest is at most 1 (the published 0/1
images), divided by 255 otherwise.
"""

from __future__ import annotations

import numpy as np

from vaebench.data.files import FileGroundTruthDataset, PathLike, find_file, npz_array_header, open_npz, read_npz
from vaebench.data.registry import path_param, register_dataset, split_params
from vaebench.errors import DataError

STANDARD_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
_EXPECTED = f"the dSprites archive {STANDARD_NAME} (keys imgs and latents_classes)"


@register_dataset("dsprites_file", params=[path_param("the dSprites archive"), *split_params(test_size=10_000)])
class DSpritesFile(FileGroundTruthDataset):
    """dSprites read from the published .npz; see the module docstring."""

    name = "dsprites_file"
    factor_names = ("shape", "scale", "orientation", "posX", "posY")

    def __init__(self, path: PathLike | None = None, test_size: int = 10_000, split_seed: int = 0):
        file = find_file(path, self.name, STANDARD_NAME, _EXPECTED)
        with open_npz(file, _EXPECTED) as archive:
            for key in ("imgs", "latents_classes"):
                if key not in archive.files:
                    raise DataError(
                        f"{file}: key {key!r} missing (the archive holds: {', '.join(archive.files) or 'nothing'}); "
                        f"expected {_EXPECTED}"
                    )
            npz_array_header(file, "latents_classes")
            classes = read_npz(archive, file, "latents_classes")
        shape, dtype = npz_array_header(file, "imgs")
        if len(shape) != 3 or min(shape[1:]) < 1 or dtype not in (np.uint8, np.bool_):
            raise DataError(f"{file}: key 'imgs': {dtype} array of shape {shape}; expected uint8 images (N, H, W)")
        if classes.ndim != 2 or classes.shape[1] != 6:
            raise DataError(
                f"{file}: key 'latents_classes': shape {classes.shape}; expected (N, 6) columns "
                "colour, shape, scale, orientation, posX, posY"
            )
        if len(classes) != shape[0]:
            raise DataError(f"{file}: key 'imgs' holds {shape[0]} images but 'latents_classes' {len(classes)} rows")
        if len(classes) and np.any(classes[:, 0] != classes[0, 0]):
            raise DataError(f"{file}: key 'latents_classes': column 0 (colour) varies; dSprites has one colour")
        self.image_shape = (1, shape[1], shape[2])
        self._init_grid(file, classes[:, 1:], "latents_classes", test_size, split_seed)
        self._imgs: np.ndarray | None = None
        self._divisor = np.float32(1)

    def _pixels(self) -> np.ndarray:
        if self._imgs is None:
            with open_npz(self.path, _EXPECTED) as archive:
                imgs = read_npz(archive, self.path, "imgs")
            if len(imgs) and imgs.max() > 1:
                self._divisor = np.float32(255)
            self._imgs = imgs
        return self._imgs

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        pixels = self._pixels()[rows]
        return (pixels.astype(np.float32) / self._divisor)[:, None]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_imgs": None}  # a pickled copy decompresses the archive again when used
