"""Binarising grey-level images: every pixel an independent Bernoulli draw with its intensity.

    x_bin = 1 if u < b else 0,   u uniform on {0, 1, ..., 254},   b the pixel's byte (0..255)

so P(x_bin = 1) = b / 255 exactly, the pixel's intensity in [0, 1]: a byte of 0 is always 0, 255
always 1. This is the binarisation of Burda et al. 2016 ("Importance Weighted Autoencoders";
their code, yburda/iwae `datasets.py`, sets a pixel where uniform <= intensity, the same
distribution up to float rounding): drawn afresh for every training batch ("dynamic"), or
once with a fixed seed ("static", e.g. for a test set).

Draws come from a NumPy Generator passed in, so the caller decides the stream: the run's
generator for training batches (checkpointed, so resume is exact), a generator seeded by the
dataset's `binarize_seed` for the fixed draw.
"""

from __future__ import annotations

import numpy as np

BINARIZE_MODES = ("none", "static", "dynamic")


def bernoulli_bytes(pixels: np.ndarray, rng: np.random.Generator, chunk: int = 1 << 24) -> np.ndarray:
    """uint8 0/1 array shaped like the uint8 `pixels`: pixel i is 1 with probability pixels[i] / 255.

    One uint8 draw per pixel, in C order, `chunk` pixels per call to the generator (bounding
    the memory of a large array). The bits are a function of the generator's state and of
    `chunk`: NumPy discards the unused bytes of its 32-bit draws at the end of each call, so a
    different chunk gives a different (equally valid) draw. Callers keep the default."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"bernoulli_bytes needs uint8 pixels, got {pixels.dtype}")
    flat = np.ascontiguousarray(pixels).reshape(-1)
    out = np.empty(flat.shape, dtype=np.uint8)
    for start in range(0, flat.size, chunk):
        stop = min(start + chunk, flat.size)
        draws = rng.integers(0, 255, size=stop - start, dtype=np.uint8)
        np.less(draws, flat[start:stop], out=out[start:stop], casting="unsafe")
    return out.reshape(pixels.shape)
