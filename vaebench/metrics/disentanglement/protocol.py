"""Pieces of disentanglement_lib's evaluation protocol shared by several scores: the
train/test split of the scored rows, the gap between the best two entries, and the note
that records the scikit-learn version beside a value a scikit-learn model produced.

Departure from disentanglement_lib: it draws a fresh training sample and a fresh test
sample of factors for each score; vaebench scores the test split it encoded once, and splits
its rows at random (``np.random.default_rng(seed).permutation``) into ``TRAIN_FRACTION`` for
training and the rest for testing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaebench.metrics.disentanglement.checks import check_seed

#: Fraction of rows a score's predictors are trained on; the rest is the test set
#: (disentanglement_lib's DCI and modularity/explicitness: 10000 train and 5000 test points,
#: i.e. 2/3 and 1/3).
TRAIN_FRACTION = 2.0 / 3.0


def train_test_split(n: int, seed: Any) -> tuple[np.ndarray, np.ndarray]:
    """Random ``TRAIN_FRACTION`` / rest split of n rows, drawn from default_rng(seed)."""
    seed = check_seed(seed)
    n_train = min(max(int(round(n * TRAIN_FRACTION)), 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return order[:n_train], order[n_train:]


def top_two(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest and second largest entry of each column (the second is 0 with one row)."""
    if matrix.shape[0] == 1:
        return matrix[0], np.zeros(matrix.shape[1])
    top = np.sort(matrix, axis=0)
    return top[-1], top[-2]


def sklearn_note() -> str:
    """The note stored beside a value computed with a scikit-learn model: 'sklearn=X.Y.Z'."""
    import sklearn

    return f"sklearn={sklearn.__version__}"
