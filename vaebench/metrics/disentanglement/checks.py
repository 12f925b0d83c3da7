"""Input checking for the disentanglement scores: the one place where codes, factors and
options are validated (and labels encoded compactly), so every score rejects bad input with
the same message.

Codes are (N, D) finite real arrays (one row per image); factors are (N, K) integer indices
(integer-valued floats are accepted). Options passed to the pure functions by hand (n_bins,
learners, seeds) are checked here too; in a suite, `ctx.params` is already checked by the
registry's `Param` declarations.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def encode_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relabel each column of (N, K) integer labels to 0..n_values-1, keeping the order of values.

    Returns (labels (N, K) int64, n_values (K,)).
    """
    n, k = labels.shape
    out = np.empty((n, k), dtype=np.int64)
    sizes = np.empty(k, dtype=np.int64)
    for j in range(k):  # K columns, each O(N): one pass, not a loop over value pairs
        column = labels[:, j]
        low, high = int(column.min()), int(column.max())
        if high - low < 4 * n:
            present = np.bincount(column - low, minlength=high - low + 1) > 0
            lut = np.cumsum(present) - 1
            out[:, j] = lut[column - low]
            sizes[j] = lut[-1] + 1
        else:
            values, out[:, j] = np.unique(column, return_inverse=True)
            sizes[j] = len(values)
    return out, sizes


def _as_2d(array: Any, name: str, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, {what}); got an array of shape {array.shape}"
        )
    if array.shape[0] < 2:
        raise ValueError(f"{name} must have at least 2 rows (samples); got {array.shape[0]}")
    if array.shape[1] < 1:
        raise ValueError(f"{name} must have at least 1 column ({what}); got 0")
    return array


def check_codes(codes: Any, name: str = "codes") -> np.ndarray:
    """(N, D) codes as a C-contiguous float64 array; ValueError unless finite and real."""
    array = _as_2d(codes, name, "n_codes")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite; found NaN or infinity")
    return array


def check_labels(labels: Any, name: str, what: str) -> np.ndarray:
    """(N, K) integer labels as int64; integer-valued floats are accepted."""
    array = _as_2d(labels, name, what)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ValueError(f"{name} must be finite integer indices; found NaN or infinity")
        if not (array == np.round(array)).all():
            raise ValueError(f"{name} must hold integer indices; found non-integer values")
    elif array.dtype.kind not in "biu":
        raise ValueError(f"{name} must hold integer indices; got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def check_inputs(codes: Any, factors: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 codes and the factors relabelled 0..n_values-1, constant factors dropped.

    A factor that takes a single value (such as dSprites' colour) carries no information;
    every score ignores it (disentanglement_lib divides by its zero entropy or fails to fit).
    At least one factor must vary.
    """
    codes = check_codes(codes)
    factors = check_labels(factors, "factors", "n_factors")
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"codes and factors must have the same number of rows; got {codes.shape[0]} and {factors.shape[0]}"
        )
    labels, sizes = encode_labels(factors)
    varying = sizes > 1
    if not varying.any():
        raise ValueError("factors: every factor column takes a single value, so no metric is defined")
    return codes, labels[:, varying]


def check_n_bins(n_bins: Any) -> int:
    """The number of histogram bins: an integer >= 2."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2; got {n_bins!r}")
    return int(n_bins)


def check_choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    """One of the named options (a learner, a representation)."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")
    return value


def check_seed(seed: Any) -> int:
    """A non-negative integer seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)
