"""Gradient-boosted classification trees: the model of scikit-learn's
``GradientBoostingClassifier()`` (Friedman 2001, "Greedy Function Approximation: A Gradient
Boosting Machine", Ann. Statist., Algorithm 6 "L_K-TreeBoost"), the learner disentanglement_lib
fits for DCI.

With defaults (``N_STAGES`` = 100 stages, ``MAX_DEPTH`` = 3, ``LEARNING_RATE`` = 0.1, log
loss, no subsampling): the raw score starts at the log prior, log(p_1 / p_0) for two classes
or log p_k per class for K > 2. Each stage fits one depth-3 least-squares regression tree to
the negative gradient of the log loss (the residual y - p; one tree per class with K > 2
classes and softmax probabilities, one tree with the logistic link for two), sets each leaf
to one Newton step

    value = (K-1)/K * sum_leaf (y - p) / sum_leaf p (1 - p)      ((K-1)/K = 1 for two classes)

(no step where the denominator is below 1e-150, as sklearn's ``_safe_divide``), and adds
``LEARNING_RATE`` times the leaf value to the raw score. Prediction: argmax of the raw scores
(two classes: class 1 where the raw score is >= 0). Feature importance: the squared-error
decrease of every split (n_node * impurity - n_left * impurity_left - n_right *
impurity_right), summed over all trees per feature and normalised to sum 1 (sklearn averages
the trees' unnormalised importances and normalises the average: the same).

How a tree finds its splits is the grower's job (:class:`TreeGrower`): the exact splitter
of :mod:`.exact_tree` or the binned one of :mod:`.histogram_tree`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from scipy.special import expit, softmax

#: GradientBoostingClassifier's defaults: boosting stages, tree depth, shrinkage.
N_STAGES = 100
MAX_DEPTH = 3
LEARNING_RATE = 0.1


class TreeGrower(Protocol):
    """Grows the regression trees of one boosting stage on fixed training and test codes."""

    def grow(self, residual: np.ndarray, importance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fit one depth-``MAX_DEPTH`` least-squares tree to each column of ``residual`` (n, T).

        Adds each split's squared-error decrease / n to ``importance[feature]`` (in place) and
        returns the leaf (0 .. 2**MAX_DEPTH - 1) of every training sample (n, T) and test
        sample (n_test, T) in each tree. A node that does not split sends all its samples left.
        """
        ...


def boosted_trees(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    grower: Callable[[np.ndarray, np.ndarray], TreeGrower],
) -> tuple[np.ndarray, np.ndarray]:
    """Fit the boosted classifier of the module docstring on (x_train, y_train).

    x_train: (n, D) float64 codes; y_train: (n,) integer labels (at least two classes);
    x_test: (n_test, D). ``grower(x_train, x_test)`` makes the tree grower. Returns
    (feature importances (D,), summing to 1 unless no tree splits; predicted labels of x_test).
    """
    classes, y = np.unique(y_train, return_inverse=True)
    n, d = x_train.shape
    n_test = x_test.shape[0]
    n_classes = len(classes)
    trees = grower(x_train, x_test)
    prior = np.bincount(y, minlength=n_classes) / n
    if n_classes == 2:  # one tree per stage on the log-odds
        n_trees, target = 1, (y == 1).astype(np.float64)[:, None]
        raw0 = np.log(prior[1] / prior[0])
        newton_factor = 1.0
    else:
        n_trees, target = n_classes, np.eye(n_classes)[y]
        raw0 = np.log(prior)
        newton_factor = (n_classes - 1) / n_classes
    raw = np.broadcast_to(raw0, (n, n_trees)).copy()
    raw_test = np.broadcast_to(raw0, (n_test, n_trees)).copy()
    importance = np.zeros(d)
    n_leaves = 2**MAX_DEPTH
    offsets = np.arange(n_trees) * n_leaves  # leaf l of tree t is value[t * n_leaves + l]
    for _ in range(N_STAGES):
        prob = expit(raw) if n_classes == 2 else softmax(raw, axis=1)
        residual = target - prob
        leaf, leaf_test = trees.grow(residual, importance)
        leaf += offsets
        leaf_test += offsets
        # leaf values: one Newton step per leaf, as sklearn's _update_terminal_regions
        numerator = np.bincount(leaf.ravel(), weights=residual.ravel(), minlength=n_trees * n_leaves)
        hessian = (prob * (1 - prob)).ravel()
        denominator = np.bincount(leaf.ravel(), weights=hessian, minlength=n_trees * n_leaves)
        tiny = np.abs(denominator) < 1e-150  # sklearn's _safe_divide: no step
        value = np.where(tiny, 0.0, newton_factor * numerator / np.where(tiny, 1.0, denominator))
        raw += LEARNING_RATE * value[leaf]
        raw_test += LEARNING_RATE * value[leaf_test]
    if importance.sum() > 0:
        importance /= importance.sum()
    if n_classes == 2:
        return importance, classes[(raw_test[:, 0] >= 0).astype(np.int64)]
    return importance, classes[np.argmax(raw_test, axis=1)]
