"""Discretization of continuous codes: disentanglement_lib's histogram discretizer.

Scores built on discrete mutual information (MIG, modularity, the unsupervised mutual
information) bin each code dimension into ``N_BINS`` equal-width bins over its own range,
as disentanglement_lib's ``histogram_discretizer`` with ``discretizer.num_bins = 20`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaebench.metrics.disentanglement.checks import check_codes, check_n_bins

#: Equal-width bins per code dimension (disentanglement_lib: ``discretizer.num_bins = 20``).
N_BINS = 20


def histogram_discretize(codes: Any, n_bins: int = N_BINS) -> np.ndarray:
    """Bin each code dimension into ``n_bins`` equal-width bins over its own [min, max].

    Returns (N, D) int64 bin indices in 0..n_bins-1: disentanglement_lib's
    ``_histogram_discretize``, i.e. ``np.digitize(z, np.histogram(z, n_bins)[1][:-1]) - 1``
    per column, with the same bin edges and the same decisions at the edges (the maximum
    falls in the last bin; np.histogram widens the range of a constant column to
    [v - 0.5, v + 0.5]), vectorised over columns.
    """
    return histogram_bins(check_codes(codes), check_n_bins(n_bins))


def histogram_bins(codes: np.ndarray, n_bins: int) -> np.ndarray:
    """:func:`histogram_discretize` on already validated float64 codes."""
    low = codes.min(axis=0)
    high = codes.max(axis=0)
    flat = low == high
    low = np.where(flat, low - 0.5, low)
    high = np.where(flat, high + 0.5, high)
    scaled = codes - low
    scaled *= n_bins / (high - low)
    bins = scaled.astype(np.int64)  # floor: scaled >= 0
    np.minimum(bins, n_bins - 1, out=bins)
    # the floor can be one bin off only within rounding distance of an edge: there, compare
    # with np.histogram's edges exactly, as np.digitize does
    fraction = scaled - bins
    near = np.flatnonzero((fraction < 1e-9) | (fraction > 1 - 1e-9))
    if near.size:
        edges = np.linspace(low, high, n_bins + 1, axis=1)  # (D, n_bins + 1), as np.histogram
        column = near % codes.shape[1]
        value = codes.ravel()[near]
        b = bins.ravel()[near]
        b -= value < edges[column, b]
        b += (b + 1 <= n_bins - 1) & (value >= edges[column, np.minimum(b + 1, n_bins - 1)])
        bins.ravel()[near] = b
    return bins
