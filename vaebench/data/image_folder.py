"""A folder of PNG and JPEG images: CelebA (img_align_celeba), CelebA-HQ, LSUN exports, a lab's own images.

Files
    Every `*.png`, `*.jpg` and `*.jpeg` (any case) under `path`, recursively, sorted by their
    path relative to `path` (POSIX form, code-point order): image index i is the i-th file.
    Hidden files and directories (names starting with ".", such as macOS's `._x.jpg`) are
    skipped; links to files are read, links to directories are not followed; anything but a
    regular file (a FIFO or device with an image's name, whose opening would block) is skipped.

Pixels (defaults: size 64, channels 3)
    Each image is decoded with Pillow and converted to grey (`channels = 1`: Pillow's "L",
    ITU-R 601-2 luma L = 299/1000 R + 587/1000 G + 114/1000 B) or to RGB (`channels = 3`; an
    alpha channel is dropped, a palette expanded), resized so that its shorter side is `size`
    (bilinear, antialiased when shrinking; the longer side becomes int(size * long / short)) and
    centre-cropped to size x size (top = round((h - size) / 2), left = round((w - size) / 2)):
    torchvision's `Resize(size)` then `CenterCrop(size)` on a PIL image, the preprocessing of
    CelebA and LSUN in most VAE papers. EXIF orientation is ignored, as torchvision's
    ImageFolder ignores it. Images are float32 byte / 255, shape (N, channels, size, size).
    16-bit and floating-point images (Pillow modes such as "I;16", "I", "F") are refused:
    converting them to 8 bits would clip, not scale.

Labels
    With `labels = true` an image's class is the first directory of its path under `path`
    (torchvision ImageFolder's convention): classes are the sorted directory names and
    `labels(indices)` the (n, 1) class numbers; every image must then lie in a sub-directory.

Split
    A seeded permutation holds out `test_size` images (default 1,000: a folder has no standard
    split, and the test split is encoded whole at evaluation).

Checks when the dataset is built (at suite load, exit 2 with the file and the problem)
    the folder exists and holds images; every file's header opens with Pillow and gives a
    supported mode and a non-empty size. Reading the headers, not decoding the pixels, keeps
    this affordable (benchmarks/bench_image_folder.py; README, Performance). A file
    whose header reads but whose data does not decode (a truncated JPEG) is a DataError naming it
    when it is decoded: when the cache is built, which the driver does before any run starts
    (`bench.runner.prepare_datasets`), so the sweep stops with that line (exit 2). A cache the
    disk cannot hold (N x channels x size x size bytes) is refused before it is written.

Decoded once, cached (`materialised`, called by the harness with `<run dir>/cache`)
    Every image is decoded once into `<run dir>/cache/datasets/image_folder-<key>.npy`, uint8
    (N, channels, size, size), memory-mapped by every run and worker process and verified by its
    SHA-256 (see `vaebench.data.array_cache`). `key` hashes the folder's fingerprint (each file's
    relative path, size, modification and status-change time: see `vaebench.data.files`), `channels`, `size` and
    Pillow's version, so an edited, added or removed file, or another decoder, is a new cache
    entry. It is built whatever the number of images a run draws: the runs of a sweep share it,
    and a run that draws each image once already pays one decode per image; a batch is then a
    gather instead of 64 decodes (same benchmark). A dataset that is not
    materialised (the dry run's calibration) decodes the images it is asked for each time.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

from vaebench.data.array_cache import CachedArray, open_array_cache
from vaebench.data.base import ImageDataset, fixed_split
from vaebench.data.files import PathLike, fingerprint, required_path
from vaebench.data.registry import path_param, register_dataset, split_params
from vaebench.errors import ConfigError, DataError
from vaebench.files import content_hash
from vaebench.params import Param

EXTENSIONS = (".png", ".jpg", ".jpeg")
# Pillow modes that convert to 8-bit L and RGB without rescaling.
SUPPORTED_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
RESAMPLE = Image.Resampling.BILINEAR  # torchvision.transforms.Resize's default interpolation
DECODE_CHUNK = 1024  # images decoded and written to the cache at once
# part of the cache key and of `describe()`: another version may resize differently
DECODER = f"Pillow {PIL.__version__}"
_EXPECTED = "a directory of PNG or JPEG images (searched recursively)"

# Cache builds that failed in this process, by cache key: the next run fails at once with the same line.
_FAILED: dict[tuple[str, str], DataError] = {}


def list_images(root: Path) -> list[Path]:
    """The image files under `root` in index order (see the module docstring)."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        found += [Path(directory, f) for f in files if not f.startswith(".") and f.lower().endswith(EXTENSIONS)
                  and Path(directory, f).is_file()]  # not a FIFO or device named *.png (opening one blocks)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def decode_image(file: Path, channels: int, size: int) -> np.ndarray:
    """(channels, size, size) uint8: the image converted, resized and centre-cropped as the module docstring says."""
    try:
        with Image.open(file) as opened:
            image = opened.convert("L" if channels == 1 else "RGB")
            w, h = image.size
            if w <= h:
                new_w, new_h = size, int(size * h / w)
            else:
                new_w, new_h = int(size * w / h), size
            image = image.resize((new_w, new_h), RESAMPLE)
            top, left = round((new_h - size) / 2), round((new_w - size) / 2)
            pixels = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(f"{file}: cannot be decoded as an image ({err})") from None
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def _check_header(file: Path) -> None:
    try:
        with Image.open(file) as image:
            mode, (w, h) = image.mode, image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(f"{file}: not a readable image ({err}); expected a PNG or JPEG file") from None
    if mode not in SUPPORTED_MODES:
        raise DataError(f"{file}: Pillow mode {mode!r} (16-bit or floating-point pixels) is not supported; "
                        "convert the images to 8-bit grey or RGB")
    if w < 1 or h < 1:
        raise DataError(f"{file}: the image is {w}x{h} pixels; expected at least 1x1")


@register_dataset("image_folder", params=[
    path_param("a directory of image files"),
    Param("size", 64, doc="side of the square images, in pixels"),
    Param("channels", 3, doc="1 (grey) or 3 (RGB)"),
    Param("labels", False, doc="the images' subdirectories are their labels"),
    *split_params(test_size=1000),
])
class ImageFolder(ImageDataset):
    """Images decoded from a folder of PNG/JPEG files; see the module docstring."""

    name = "image_folder"
    _cache: CachedArray | None = None  # set on the view `materialised` returns

    def __init__(self, path: PathLike | None = None, size: int = 64, channels: int = 3, labels: bool = False,
                 test_size: int = 1000, split_seed: int = 0):
        if size < 1:
            raise ConfigError(f"must be >= 1, got {size}", key="size")
        if channels not in (1, 3):
            raise ConfigError(f"must be 1 (grey) or 3 (RGB), got {channels}", key="channels")
        root = required_path(path, self.name, _EXPECTED)
        if not root.is_dir():
            kind = "a file, not a directory" if root.exists() else "no such directory"
            raise DataError(f"{root}: {kind}; dataset {self.name!r} expected {_EXPECTED}")
        self.path = root
        self.files = list_images(root)
        if not self.files:
            raise DataError(f"{root}: holds no PNG or JPEG images (searched recursively, hidden files skipped); "
                            f"dataset {self.name!r} expected {_EXPECTED}")
        for file in self.files:
            _check_header(file)
        self.fingerprint = fingerprint(self.files, root)
        self.size, self.channels = size, channels
        self.image_shape = (channels, size, size)
        self.num_images = len(self.files)
        self.classes: tuple[str, ...] | None = None
        self._labels: np.ndarray | None = None
        if labels:
            self._init_labels()
        self.train_indices, self.test_indices = fixed_split(self.num_images, test_size, split_seed)

    def _init_labels(self) -> None:
        parts = [f.relative_to(self.path).parts for f in self.files]
        top = next((f for f, p in zip(self.files, parts) if len(p) == 1), None)
        if top is not None:
            raise DataError(f"{top}: lies directly in {self.path}; with labels = true every image must lie in a "
                            "sub-directory named after its class")
        self.classes = tuple(sorted({p[0] for p in parts}))
        number = {c: i for i, c in enumerate(self.classes)}
        self._labels = np.array([number[p[0]] for p in parts], dtype=np.int64)

    def _decode(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *self.image_shape), dtype=np.uint8)
        for i, index in enumerate(indices):
            out[i] = decode_image(self.files[index], self.channels, self.size)
        return out

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_images):
            raise IndexError(f"image index out of range 0..{self.num_images - 1} in dataset {self.name!r}")
        pixels = self._decode(idx) if self._cache is None else self._cache.array[idx]
        return pixels.astype(np.float32) / np.float32(255)

    def labels(self, indices: Sequence[int] | np.ndarray) -> np.ndarray | None:
        if self._labels is None:
            return None
        return self._labels[np.asarray(indices, dtype=np.int64)][:, None]

    def materialised(self, cache_dir: str | Path, *, images_to_draw: int) -> ImageFolder:
        """This dataset served from its decoded images under `cache_dir`, decoded first when they are
        not there (whatever `images_to_draw`: see the module docstring)."""
        description = {"fingerprint": self.fingerprint, "num_images": self.num_images, "channels": self.channels,
                       "size": self.size, "decoder": DECODER}
        key = (str(Path(cache_dir).resolve()), content_hash(description))
        if key in _FAILED:
            raise _FAILED[key]
        try:
            cache = open_array_cache(
                cache_dir, kind=self.name, description=description, shape=(self.num_images, *self.image_shape),
                fill=lambda start, stop: self._decode(np.arange(start, stop)), chunk=DECODE_CHUNK,
            )
        except DataError as err:
            _FAILED[key] = err
            raise
        view = copy.copy(self)
        view._cache = cache
        return view

    def source_files(self) -> list[Path]:
        return list(self.files)

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path), "fingerprint": self.fingerprint,
                "decoder": DECODER, "classes": list(self.classes) if self.classes else None}
