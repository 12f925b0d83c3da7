"""Entropy and mutual information of discrete variables: the one place these formulas live.

Logs are natural (nats) unless a base is given. The estimators are the plug-in ones of
disentanglement_lib (``discrete_entropy``, ``discrete_mutual_info``), i.e. those of
``sklearn.metrics.mutual_info_score``:

    H(v)    = -sum_x p(x) log p(x)
    I(a; b) = sum_xy p(x, y) log(p(x, y) / (p(x) p(y)))

with p the empirical frequencies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaebench.metrics.disentanglement.checks import check_labels, encode_labels
from vaebench.metrics.disentanglement.discretize import histogram_bins


def entropy(weights: np.ndarray, *, axis: int = -1, base: float | None = None) -> np.ndarray:
    """Entropy -sum p log p of the non-negative weights normalised to p along ``axis``.

    In nats, or with log base ``base``. Counts give the plug-in entropy; DCI applies it to
    rows and columns of its importance matrix (as ``scipy.stats.entropy(w, base=...)``).
    """
    weights = np.asarray(weights, dtype=np.float64)
    p = weights / weights.sum(axis=axis, keepdims=True)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    h = np.clip(-plogp.sum(axis=axis), 0.0, None)
    return h if base is None else h / np.log(base)


def mutual_information_matrix(a: np.ndarray, a_sizes: np.ndarray, b: np.ndarray, b_sizes: np.ndarray) -> np.ndarray:
    """I(a_i; b_j) in nats for compactly encoded label matrices a (N, D) and b (N, K).

    The plug-in estimate of sklearn.metrics.mutual_info_score. Joint counts of all D columns
    of ``a`` with one column of ``b`` come from one np.bincount over joint indices.
    """
    n, d = a.shape
    k = b.shape[1]
    # marginal counts of every column of a, flattened with column offsets
    a_offsets = np.concatenate([[0], np.cumsum(a_sizes)[:-1]])
    a_flat = a + a_offsets
    total_a = int(a_sizes.sum())
    a_counts = np.bincount(a_flat.ravel(), minlength=total_a).astype(np.float64)
    column_of = np.repeat(np.arange(d), a_sizes)  # column of each flat a value
    mi = np.empty((d, k))
    for j in range(k):  # one vectorised count per factor: all D code dims at once
        nb = int(b_sizes[j])
        b_counts = np.bincount(b[:, j], minlength=nb).astype(np.float64)
        joint = (a_flat * nb + b[:, j : j + 1]).ravel()  # index of (column, a value, b value)
        if total_a * nb <= 8 * joint.size + 1024:
            counts = np.bincount(joint, minlength=total_a * nb).astype(np.float64)
            nz = np.flatnonzero(counts)
            c = counts[nz]
        else:  # many distinct values: count only the occupied cells
            nz, occupied = np.unique(joint, return_counts=True)
            c = occupied.astype(np.float64)
        a_index, b_index = np.divmod(nz, nb)
        # p(x, y) / (p(x) p(y)) = c n / (n_x n_y): exact products of integers, one rounding,
        # so an exactly independent pair (such as a constant column) scores exactly 0
        terms = c * np.log(c * n / (a_counts[a_index] * b_counts[b_index]))
        mi[:, j] = np.bincount(column_of[a_index], weights=terms, minlength=d) / n
    mi[mi < np.finfo(np.float64).eps] = 0.0  # rounding, as sklearn's mutual_info_score
    return mi


def label_entropies(labels: np.ndarray) -> np.ndarray:
    """Plug-in entropies (K,) in nats of the columns of compactly encoded (N, K) labels."""
    return np.array([entropy(np.bincount(column)) for column in labels.T], dtype=float)


def discrete_entropy(labels: Any) -> np.ndarray:
    """Plug-in entropy H(v_j) = -sum_v p(v) log p(v) in nats of each column of (N, K) labels.

    Equals ``sklearn.metrics.mutual_info_score(v, v)`` (disentanglement_lib's
    ``discrete_entropy``). Returns a (K,) array.
    """
    labels, _ = encode_labels(check_labels(labels, "labels", "n_columns"))
    return label_entropies(labels)


def discrete_mutual_information(codes_discrete: Any, factors: Any) -> np.ndarray:
    """Plug-in mutual information I(z_i; v_j) in nats between every pair of columns.

    ``codes_discrete`` is (N, D) integer labels (e.g. from :func:`histogram_discretize`),
    ``factors`` is (N, K) integer labels. Returns the (D, K) matrix whose entry (i, j)
    equals ``sklearn.metrics.mutual_info_score(factors[:, j], codes_discrete[:, i])``
    (disentanglement_lib's ``discrete_mutual_info``), computed with one bincount over
    joint indices per factor.
    """
    codes_discrete = check_labels(codes_discrete, "codes_discrete", "n_codes")
    factors = check_labels(factors, "factors", "n_factors")
    if codes_discrete.shape[0] != factors.shape[0]:
        raise ValueError(
            "codes_discrete and factors must have the same number of rows; got "
            f"{codes_discrete.shape[0]} and {factors.shape[0]}"
        )
    a, a_sizes = encode_labels(codes_discrete)
    b, b_sizes = encode_labels(factors)
    return mutual_information_matrix(a, a_sizes, b, b_sizes)


def binned_mutual_information(codes: np.ndarray, labels: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(I(z_i; v_j) (D, K), H(v_j) (K,)) in nats for validated codes binned into ``n_bins``
    equal-width bins and compactly encoded factors (MIG's and modularity's inputs)."""
    bins = histogram_bins(codes, n_bins)
    a_sizes = np.full(codes.shape[1], n_bins, dtype=np.int64)
    b_sizes = labels.max(axis=0) + 1
    return mutual_information_matrix(bins, a_sizes, labels, b_sizes), label_entropies(labels)
