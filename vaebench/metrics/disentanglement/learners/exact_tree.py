"""Exact tree growing: the splits of scikit-learn's best splitter, from presorted rows.

For every node and every feature, sklearn's ``BestSplitter`` sorts the node's samples by the
feature (values rounded to float32), considers a threshold between every two consecutive
values that differ by more than ``FEATURE_THRESHOLD`` (1e-7), at their midpoint
``a / 2 + b / 2``, and keeps the split with the largest squared-error decrease

    n * impurity - n_l * impurity_l - n_r * impurity_r = n / (n_l n_r) * (S_l - n_l * S / n)^2

(S: the sum of the node's residuals, S_l of its left part). It visits the features in a random
order and keeps the first of equally good candidates, so an exact tie between features (two
features that split the node's samples the same way, which happened in 6-8% of the splits of
the tests' codes, mostly in small nodes) goes to a random one of them; within a feature the
lowest threshold wins. A node splits unless it holds one sample or its impurity is at most
machine epsilon. This grower makes the same choices without sorting per node:

- every feature is sorted once; each tree keeps, per feature, its samples sorted by
  (node, value): all nodes of a level lie side by side in one row per feature, and one scan
  of a node's part of a row gives the sums S_l of all its candidates;
- after a level's splits, each row is partitioned stably (left children, then right children):
  the layout of the next level, still sorted within each node;
- residuals enter the sums in 64-bit fixed point (rounded to multiples of 2**-k with
  n * 2**k < 2**62), so the sums are exact integers whatever the order of the samples; the
  rounding, below 1e-15 per residual, is of the size of sklearn's own floating-point
  rounding, so only candidates whose gains agree to about 15 digits may be ordered
  differently;
- exact ties between features are broken at random with one uniform number per node, drawn
  from a generator seeded with ``seed``, as sklearn's ``random_state`` does (with another
  stream of random numbers: the two pick the same split only where there is no tie);
- the scan and the partition are one compiled loop (numba, ``cache=True``: compiled on first
  use after an install or an edit, then loaded from numba's cache) over the (feature, sample)
  entries of every node, one tree after another on one thread, with a branch-free partition
  (the routes are unpredictable). It replaces a vectorised NumPy form of the same algorithm,
  which made about fifteen passes over (tree, feature, sample) arrays per level and was bound
  by memory traffic and per-node Python work. Its time against that form and against
  scikit-learn's ``GradientBoostingClassifier``, and the compilation's: README, Performance.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from vaebench.metrics.disentanglement.learners.boosting import MAX_DEPTH

#: sklearn's tree splitter: no threshold between values that differ by at most this.
FEATURE_THRESHOLD = 1e-7
#: sklearn's tree builder: a node whose impurity is at most this is a leaf.
EPSILON = float(np.finfo(np.float64).eps)
#: Internal nodes of a depth-MAX_DEPTH tree: one tie-breaking uniform number each.
N_SPLIT_NODES = 2**MAX_DEPTH - 1


class ExactTreeGrower:
    """:class:`.boosting.TreeGrower` with the exact splits of sklearn's best splitter."""

    def __init__(self, x_train: np.ndarray, x_test: np.ndarray, seed: int = 0):
        self.rng = np.random.default_rng(seed)  # breaks exact ties between features
        x32 = np.asarray(x_train, dtype=np.float32)
        self.n = n = x32.shape[0]
        self.x_t = np.ascontiguousarray(x32.T, dtype=np.float64)  # (d, n): the values the trees compare
        self.x_test = np.ascontiguousarray(np.asarray(x_test, dtype=np.float32), dtype=np.float64)
        self.order = np.ascontiguousarray(np.argsort(x32, axis=0, kind="stable").T)  # (d, n)
        # fixed point: |residual| <= 1, so every prefix sum stays below n * scale < 2**62
        self.scale = float(2 ** (62 - math.ceil(math.log2(n + 1))))
        # sqrt(n / (n_l n_r)) = sqrt(n) * root[n_l] * root[n_r]
        self.root = np.concatenate([[0.0], 1.0 / np.sqrt(np.arange(1, n + 1))])

    def grow(self, residual: np.ndarray, importance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        residual_t = np.ascontiguousarray(residual.T, dtype=np.float64)  # (T, n)
        n_trees = residual_t.shape[0]
        fixed = np.rint(residual_t * self.scale).astype(np.int64)
        ties = self.rng.random((n_trees, N_SPLIT_NODES))
        leaf = np.empty((n_trees, self.n), dtype=np.int64)
        leaf_test = np.empty((n_trees, self.x_test.shape[0]), dtype=np.int64)
        _grow_trees(fixed, residual_t * residual_t, self.order, self.x_t, self.x_test, self.root, self.scale,
                    ties, importance, leaf, leaf_test)
        return leaf.T, leaf_test.T


@numba.njit(cache=True)
def _grow_trees(fixed, squared, order, x_t, x_test, root, scale, ties, importance, leaf, leaf_test):
    """Grow one depth-MAX_DEPTH tree per row of ``fixed`` (T, n): the residuals in fixed point.

    squared: (T, n) squared residuals (float64); order: (d, n) each feature's sorted samples;
    x_t: (d, n) training values; x_test: (n_test, d); root[k] = 1 / sqrt(k), root[0] = 0;
    ties: (T, N_SPLIT_NODES) uniform numbers, one per node in the order the nodes are split.
    Adds each split's gain / n to ``importance`` (in place, trees and nodes in order) and
    writes the leaf (0 .. 2**MAX_DEPTH - 1) of every training and test sample into ``leaf``
    and ``leaf_test`` (T, n) and (T, n_test).
    """
    n_trees, n = fixed.shape
    d = order.shape[0]
    max_segments = 2**MAX_DEPTH
    perm = np.empty((d, n), dtype=np.int64)
    spare = np.empty((d, n), dtype=np.int64)
    go_right = np.zeros(n, dtype=np.int64)
    node = np.empty(n, dtype=np.int64)
    # the segments of the rows at one level, in layout order, and the next level's
    seg_size = np.empty(max_segments, dtype=np.int64)
    seg_node = np.empty(max_segments, dtype=np.int64)
    next_size = np.empty(max_segments, dtype=np.int64)
    next_node = np.empty(max_segments, dtype=np.int64)
    split_feature = np.zeros((MAX_DEPTH, max_segments), dtype=np.int64)
    split_threshold = np.empty((MAX_DEPTH, max_segments), dtype=np.float64)
    tied = np.empty((2, d), dtype=np.int64)  # the features of an exact tie and their positions
    for t in range(n_trees):
        perm[:, :] = order
        node[:] = 0
        n_segments = 1
        seg_size[0], seg_node[0] = n, 0
        tie_draw = 0
        for level in range(MAX_DEPTH):
            split_threshold[level, :] = np.inf
            go_right[:] = 0
            start = 0
            for s in range(n_segments):
                size = seg_size[s]
                gain, f, q = -1.0, 0, 0
                total, impurity = _sum_and_impurity(fixed[t], squared[t], perm[0], start, size, scale)
                if size > 1 and impurity > EPSILON:
                    gain, f, q = _best_split(fixed[t], perm, x_t, root, scale, start, size, total, tied,
                                             ties[t, tie_draw])
                    tie_draw += 1
                if gain >= 0:
                    importance[f] += gain / n
                    split_feature[level, seg_node[s]] = f
                    split_threshold[level, seg_node[s]] = x_t[f, perm[f, q]] / 2.0 + x_t[f, perm[f, q + 1]] / 2.0
                    for p in range(q + 1, start + size):
                        go_right[perm[f, p]] = 1
                    next_size[s] = q + 1 - start
                else:  # a leaf: every sample goes to the left child
                    next_size[s] = size
                next_size[n_segments + s] = size - next_size[s]
                next_node[s] = 2 * seg_node[s]
                next_node[n_segments + s] = 2 * seg_node[s] + 1
                start += size
            if level + 1 < MAX_DEPTH:
                _partition(perm, spare, go_right, next_size[:n_segments].sum())
                perm, spare = spare, perm
            for i in range(n):
                node[i] = 2 * node[i] + go_right[i]
            n_segments *= 2
            seg_size[:n_segments] = next_size[:n_segments]
            seg_node[:n_segments] = next_node[:n_segments]
        leaf[t, :] = node
        # test samples follow the thresholds: right when x[feature] > threshold
        for j in range(x_test.shape[0]):
            k = 0
            for level in range(MAX_DEPTH):
                k = 2 * k + (x_test[j, split_feature[level, k]] > split_threshold[level, k])
            leaf_test[t, j] = k


@numba.njit(cache=True)
def _sum_and_impurity(fixed, squared, row, start, size, scale):
    """(the exact fixed-point sum, the squared-error impurity) of the residuals of the samples
    row[start : start + size] (impurity 0 for an empty node)."""
    total = 0
    total_sq = 0.0
    for p in range(start, start + size):
        total += fixed[row[p]]
        total_sq += squared[row[p]]
    if size == 0:
        return total, 0.0
    mean = total / (scale * size)
    return total, total_sq / size - mean * mean


# inlined: called as a function it ran the DCI benchmark slower (README, Performance)
@numba.njit(cache=True, inline="always")
def _best_split(fixed, perm, x_t, root, scale, start, size, total, tied, draw):
    """(gain, feature, last left position) of the best split of the node perm[:, start : start
    + size] whose residuals sum to ``total`` (fixed point): the first position of the largest
    gain of each feature, and among features with equal gains the one that ``draw`` (uniform
    in [0, 1)) picks; gain -1 where no two neighbours of any feature differ by more than
    FEATURE_THRESHOLD.

    gain = n / (n_l n_r) * (S_l - n_l * S / n)^2 with S_l - n_l S / n = running sum minus
    rint(n_l * S / n), an exact integer difference in fixed point, then weighted by
    sqrt(n) * root[n_l] * root[n_r] / scale.
    """
    node_mean = total / size
    node_weight = math.sqrt(size) / scale
    best = -1.0
    n_tied = 0
    for f in range(perm.shape[0]):
        feature_best = -1.0
        feature_position = -1
        running = 0
        for p in range(start, start + size - 1):
            running += fixed[perm[f, p]]
            n_l = p - start + 1
            excess = running - np.int64(np.rint(n_l * node_mean))
            gain = excess * (root[n_l] * root[size - n_l] * node_weight)
            gain *= gain
            if gain > feature_best and x_t[f, perm[f, p + 1]] > x_t[f, perm[f, p]] + FEATURE_THRESHOLD:
                feature_best = gain
                feature_position = p
        if feature_position < 0:
            continue
        if feature_best > best:
            best = feature_best
            n_tied = 0
        if feature_best == best:
            tied[0, n_tied] = f
            tied[1, n_tied] = feature_position
            n_tied += 1
    if n_tied == 0:
        return -1.0, 0, 0
    pick = min(int(draw * n_tied), n_tied - 1)
    return best, tied[0, pick], tied[1, pick]


@numba.njit(cache=True)
def _partition(perm, out, go_right, n_left):
    """out[f] = the samples of perm[f] with go_right 0, then those with go_right 1, each in
    their order (so each child stays a sorted segment); ``n_left``: how many go left."""
    for f in range(perm.shape[0]):
        left, right = 0, n_left
        for p in range(perm.shape[1]):  # without a branch: the routes are unpredictable
            i = perm[f, p]
            r = go_right[i]
            out[f, right if r else left] = i
            left += 1 - r
            right += r
