"""3dshapes (Burgess & Kim 2018) from the published HDF5 file `3dshapes.h5`.

The file holds `images` (480,000 x 64 x 64 x 3 uint8) and `labels` (480,000 x 6 float64,
the factor values). Factors, in the file's order (first most significant):

    floor_hue    10   hues in [0, 1)
    wall_hue     10   hues in [0, 1)
    object_hue   10   hues in [0, 1)
    scale         8   object sizes, smallest first
    shape         4   four object shapes, 0-3
    orientation  15   azimuth, -30 to 30 degrees

A factor index is the rank of the label value among that factor's values (`factor_values`
keeps the values); the grid and the index -> row map come from `labels` (see
`vaebench.data.files`), so the published file gives the sizes above with image index =
file row, and a file holding any complete sub-grid, in any row order, also loads.

Construction reads `labels` (23 MB) and checks `images`' shape; images are read from the
file by index as they are needed (never all 5.9 GB at once) and returned as float32 in
[0, 1], shape (N, 3, 64, 64). h5py is an optional dependency (`pip install h5py`),
imported only when a shapes3d dataset is built. The file is opened once per process.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from vaebench.data.files import FileGroundTruthDataset, PathLike, check_declared_size, find_file
from vaebench.data.registry import path_param, register_dataset, split_params
from vaebench.errors import DataError, MissingDependencyError

STANDARD_NAME = "3dshapes.h5"
_EXPECTED = f"the 3dshapes HDF5 file {STANDARD_NAME} (datasets images and labels)"


def import_h5py() -> Any:
    """The `h5py` module, or a MissingDependencyError that says how to install it."""
    try:
        import h5py
    except ImportError as err:
        raise MissingDependencyError(
            f"dataset 'shapes3d' reads HDF5 files with h5py, which is not installed ({err}); "
            "install it with: pip install h5py"
        ) from None
    return h5py


@register_dataset("shapes3d", params=[path_param("the 3dshapes.h5 file"), *split_params(test_size=10_000)])
class Shapes3D(FileGroundTruthDataset):
    """3dshapes read from the published .h5; see the module docstring."""

    name = "shapes3d"
    factor_names = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")

    def __init__(self, path: PathLike | None = None, test_size: int = 10_000, split_seed: int = 0):
        file = find_file(path, self.name, STANDARD_NAME, _EXPECTED)
        self.path = file
        self._handle: Any = None
        self._pid: int | None = None
        images = self._dataset("images")
        labels_node = self._dataset("labels")
        labels_bytes = int(np.prod(labels_node.shape, dtype=np.int64)) * labels_node.dtype.itemsize
        check_declared_size(labels_bytes, file, "labels",
                            f"{labels_node.dtype} data of shape {tuple(labels_node.shape)}")
        try:
            labels = labels_node[()]
        except OSError as err:
            raise DataError(f"{file}: key 'labels': cannot be read ({err})") from None
        shape = tuple(images.shape)
        if len(shape) != 4 or shape[3] not in (1, 3) or min(shape[1:3]) < 1 or images.dtype != np.uint8:
            raise DataError(f"{file}: key 'images': {images.dtype} array of shape {shape}; "
                            "expected uint8 images (N, H, W, 3)")
        if np.ndim(labels) != 2:
            raise DataError(f"{file}: key 'labels': shape {np.shape(labels)}; "
                            f"expected (N, {len(self.factor_names)}) factor values")
        if len(labels) != shape[0]:
            raise DataError(f"{file}: key 'images' holds {shape[0]} images but 'labels' {len(labels)} rows")
        self.image_shape = (shape[3], shape[1], shape[2])
        self._init_grid(file, labels, "labels", test_size, split_seed)

    def _file(self) -> Any:
        if self._handle is None or self._pid != os.getpid():  # an h5py handle must not cross a fork
            h5py = import_h5py()
            try:
                self._handle = h5py.File(self.path, "r")
            except OSError as err:
                raise DataError(f"{self.path}: not a readable HDF5 file ({err}); expected {_EXPECTED}") from None
            self._pid = os.getpid()
        return self._handle

    def _dataset(self, key: str) -> Any:
        handle = self._file()
        if key not in handle:
            raise DataError(
                f"{self.path}: key {key!r} missing (the file holds: {', '.join(handle.keys()) or 'nothing'}); "
                f"expected {_EXPECTED}"
            )
        node = handle[key]
        if not isinstance(node, import_h5py().Dataset):
            raise DataError(f"{self.path}: key {key!r} is an HDF5 {type(node).__name__.lower()}, not a dataset; "
                            f"expected {_EXPECTED}")
        return node

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        images = self._dataset("images")
        if len(rows) == 0:
            return np.empty((0, *self.image_shape), dtype=np.float32)
        # h5py selects only increasing, distinct rows: read each needed row once, then reorder.
        unique, inverse = np.unique(rows, return_inverse=True)
        pixels = images[unique][inverse.reshape(-1)]
        out = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)
        out /= np.float32(255)
        return out

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handle": None, "_pid": None}  # a pickled copy reopens the file
