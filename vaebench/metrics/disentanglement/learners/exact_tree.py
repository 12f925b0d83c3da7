"""Exact tree growing: the splits of scikit-learn's best splitter, from sorted-order prefix sums.

For every node and every feature, sklearn's ``BestSplitter`` sorts the node's samples by the
feature (values rounded to float32), considers a threshold between every two consecutive
values that differ by more than ``FEATURE_THRESHOLD`` (1e-7), at their midpoint
``a / 2 + b / 2``, and keeps the split with the largest squared-error decrease

    n_node * impurity - n_l * impurity_l - n_r * impurity_r
        = n_node / (n_l n_r) * (S_l - n_l * S_node / n_node)^2             (S: residual sums)

taking the first such candidate in its visiting order; a node splits unless it holds one
sample or its impurity is at most machine epsilon. This grower finds the same splits without
sorting per node:

- every feature is sorted once; each tree keeps, per feature, its samples sorted by
  (node, value): all nodes of a level lie side by side in one row per feature, so one
  ``np.cumsum`` per row gives the prefix sums S_l of every candidate of every node;
- after a level's splits, each row is partitioned stably (left children, then right children)
  by index arithmetic: the layout of the next level, still sorted within each node;
- residuals enter the prefix sums in 64-bit fixed point (rounded to multiples of 2**-k with
  n * 2**k < 2**62), so the sums are exact integers (and ``np.cumsum`` on int64 is several
  times faster than on float64); the rounding, below 1e-15 per residual, is of the size of
  sklearn's own floating-point rounding;
- many trees (the trees of a stage, one per class) are processed at once in chunks of about
  ``CHUNK_ELEMENTS`` (tree, feature, sample) entries.

Departures from sklearn, all about exact ties: sklearn visits the features of each node in a
random order and keeps the first of equally good candidates, so between features that give
exactly the same decrease (duplicated or equivalent features) it picks at random; this grower
takes the lowest feature index. Candidates whose decreases differ only by floating-point
rounding may be ordered differently. Neither moved DCI's scores by more than 0.001 in the tests.
"""

from __future__ import annotations

import math

import numpy as np

from vaebench.metrics.disentanglement.learners.boosting import MAX_DEPTH

#: sklearn's tree splitter: no threshold between values that differ by at most this.
FEATURE_THRESHOLD = 1e-7
#: sklearn's tree builder: a node whose impurity is at most this is a leaf.
EPSILON = np.finfo(np.float64).eps
#: (tree, feature, sample) entries processed at once (sized so the work arrays stay in cache).
CHUNK_ELEMENTS = 2**18
#: A feature with more than this fraction of tied neighbours (a discrete code) has its
#: invalid split positions masked up front; one with fewer is checked after the search.
HEAVY_TIES = 0.01


class ExactTreeGrower:
    """:class:`.boosting.TreeGrower` with the exact splits of sklearn's best splitter."""

    def __init__(self, x_train: np.ndarray, x_test: np.ndarray):
        x32 = np.asarray(x_train, dtype=np.float32)
        self.x = x32.astype(np.float64)  # the values the trees compare: rounded to float32
        self.x_test = np.asarray(x_test, dtype=np.float32).astype(np.float64)
        self.n, self.d = n, d = x32.shape
        order = np.argsort(x32, axis=0, kind="stable").T  # (d, n)
        self.order = np.ascontiguousarray(order)
        values = np.take_along_axis(self.x.T, order, axis=1)
        ties = (values[:, 1:] <= values[:, :-1] + FEATURE_THRESHOLD).sum(axis=1)
        self.heavy = np.flatnonzero(ties > HEAVY_TIES * n)
        self.light = np.flatnonzero((ties > 0) & (ties <= HEAVY_TIES * n))
        # fixed point: |residual| <= 1, so every prefix sum stays below n * scale < 2**62
        self.scale = float(2 ** (62 - math.ceil(math.log2(n + 1))))
        self.chunk = max(1, CHUNK_ELEMENTS // (d * n))
        c = self.chunk
        rows = np.arange(c * d).reshape(c, d, 1) * n
        # work arrays (chunk, d, n); a sample of tree t is addressed as t * n + i
        self.perm0 = np.ascontiguousarray(self.order[None] + (np.arange(c) * n)[:, None, None])
        self.row_position = rows + np.arange(n)  # flat index of every (tree, feature, position)
        self.row_offset = rows
        self.perms = (np.empty((c, d, n), dtype=np.int64), np.empty((c, d, n), dtype=np.int64))
        self.prefix = np.empty((c, d, n), dtype=np.int64)
        self.routes = np.empty((c, d, n), dtype=np.int64)
        self.gains = np.empty((c, d, n), dtype=np.float64)
        self.slot = np.tile(np.arange(n), c)
        # the root's n_l at every position, and sqrt(n / (n_l n_r)) / scale (any finite value at
        # the last position, which is masked)
        self.n_left0 = np.arange(1, n + 1)
        self.weight0 = np.sqrt(n / (self.n_left0 * np.maximum(n - self.n_left0, 1))) / self.scale
        self.x_offset = np.tile(np.arange(n) * d, c)  # row of sample i in the flat x, per tree
        self.x_test_offset = np.tile(np.arange(self.x_test.shape[0]) * d, c)
        if self.heavy.size or self.light.size:  # x of sample i of tree t at [f, t * n + i]
            self.x_by_slot = np.tile(np.ascontiguousarray(self.x.T), (1, c))

    def grow(self, residual: np.ndarray, importance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        residual_t = np.ascontiguousarray(residual.T)  # (T, n)
        n_trees = residual_t.shape[0]
        leaf = np.empty((n_trees, self.n), dtype=np.int64)
        leaf_test = np.empty((n_trees, self.x_test.shape[0]), dtype=np.int64)
        for start in range(0, n_trees, self.chunk):
            chunk = slice(start, min(n_trees, start + self.chunk))
            leaf[chunk], leaf_test[chunk] = self._grow_chunk(residual_t[chunk], importance)
        return leaf.T, leaf_test.T

    def _grow_chunk(self, residual: np.ndarray, importance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grow one tree per row of ``residual`` (c, n); returns the leaves (c, n), (c, n_test)."""
        c, n = residual.shape
        d, n_test = self.d, self.x_test.shape[0]
        trees = np.arange(c)
        fixed = np.rint(residual * self.scale).astype(np.int64)
        squared = residual * residual
        slot = self.slot[: c * n]  # position of every sample in its tree's row
        node = np.zeros(c * n, dtype=np.int64)  # node of (tree t, sample i) at [t * n + i]
        node_test = np.zeros(c * n_test, dtype=np.int64)
        tree_of, tree_of_test = np.repeat(trees, n), np.repeat(trees, n_test)
        perm = self.perm0[:c]
        prefix, gains = self.prefix[:c], self.gains[:c]
        layout = np.zeros(1, dtype=np.int64)  # node id of each segment of a row, left to right
        size = np.full((c, 1), n)  # samples per segment (tree, layout position)
        for level in range(MAX_DEPTH):
            m = 2**level
            flat_node = node + tree_of * m  # (tree, node id) of every sample
            start = np.cumsum(size, axis=1) - size
            end = start + size
            # prefix sums of the fixed-point residuals along every (tree, feature) row
            if level == 0:
                np.take(fixed, self.order, axis=1, out=prefix, mode="clip")
            else:
                np.take(fixed.ravel(), perm, out=prefix, mode="clip")
            np.cumsum(prefix, axis=2, out=prefix)
            # the gain of the split after position p of a segment of n samples with sum S:
            #   n / (n_l n_r) * (S_l - n_l * S / n)^2
            # S_l - n_l S / n is prefix[p] - (prefix before the segment + n_l * S / n); the
            # segments' sums are exact integers, the same in every feature's row
            last = prefix[trees[:, None], 0, end - 1]  # (the first segment of a row is never empty)
            seg_sum = np.diff(last, axis=1, prepend=0)
            if level == 0:
                shift = np.rint(self.n_left0 * (seg_sum / n)).astype(np.int64)
                weight = self.weight0
            else:
                seg_size = size.ravel()
                segment = np.repeat(np.arange(c * m), seg_size)  # segment of every (tree, position)
                n_left = slot - start.ravel()[segment] + 1
                n_seg = seg_size[segment]
                mean = (seg_sum.ravel() / np.maximum(seg_size, 1))[segment]
                shift = (last - seg_sum).ravel()[segment] + np.rint(n_left * mean).astype(np.int64)
                weight = np.sqrt(n_seg / (n_left * np.maximum(n_seg - n_left, 1))) / self.scale
            prefix -= shift.reshape(c, 1, n)
            np.copyto(gains, prefix, casting="unsafe")
            gains *= weight.reshape(-1, 1, n)
            gains *= gains
            # no split after a segment's last position, nor between tied values
            nonempty = size.ravel() > 0
            gains[np.repeat(trees, m)[nonempty], :, (end.ravel() - 1)[nonempty]] = -1.0
            self._mask_ties(gains, perm, self.heavy)
            best, feature, position = self._best_splits(gains, start, size)
            a, b = self._values_around(perm, feature, position)
            inside = position < end - 1
            if self.light.size and (inside & (b <= a + FEATURE_THRESHOLD)).any():
                self._mask_ties(gains, perm, self.light)  # rare: a tie won; search again
                best, feature, position = self._best_splits(gains, start, size)
                a, b = self._values_around(perm, feature, position)
                inside = position < end - 1
            # split decision, as sklearn's tree builder: impurity = mean of r^2 - (mean of r)^2
            total_sq = np.bincount(flat_node, weights=squared.ravel(), minlength=c * m).reshape(c, m)[:, layout]
            with np.errstate(divide="ignore", invalid="ignore"):
                impurity = total_sq / size - (seg_sum / (self.scale * size)) ** 2
            split = (size > 1) & (impurity > EPSILON) & (best >= 0) & inside
            importance += np.bincount(feature[split], weights=best[split], minlength=d) / n
            threshold = np.where(split, a / 2.0 + b / 2.0, np.inf)
            # route every sample (node-id order): right when x[feature] > threshold
            by_node = np.argsort(layout)
            feature, threshold = feature[:, by_node].ravel(), threshold[:, by_node].ravel()
            go_right = self.x.ravel()[self.x_offset[: c * n] + feature[flat_node]] > threshold[flat_node]
            flat_test = node_test + tree_of_test * m
            go_right_test = self.x_test.ravel()[self.x_test_offset[: c * n_test] + feature[flat_test]] > threshold[flat_test]
            if level + 1 < MAX_DEPTH:
                perm = self._partition(perm, go_right, self.perms[level % 2][:c])
                n_right = np.bincount(flat_node, weights=go_right, minlength=c * m).reshape(c, m)[:, layout]
                n_right = n_right.astype(np.int64)
                size = np.concatenate([size - n_right, n_right], axis=1)
                layout = np.concatenate([2 * layout, 2 * layout + 1])
            node = 2 * node + go_right
            node_test = 2 * node_test + go_right_test
        return node.reshape(c, n), node_test.reshape(c, n_test)

    def _mask_ties(self, gains: np.ndarray, perm: np.ndarray, features: np.ndarray) -> None:
        """Set gains[t, f, p] = -1 where the next sample in the row is within FEATURE_THRESHOLD."""
        for f in features:
            values = self.x_by_slot[f][perm[:, f]]
            tied = values[:, 1:] <= values[:, :-1] + FEATURE_THRESHOLD
            gains[:, f, :-1][tied] = -1.0

    def _best_splits(
        self, gains: np.ndarray, start: np.ndarray, size: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(best gain, feature, position) per (tree, segment); the first of equal gains in
        (feature, position) order; gain -1 where a segment has no candidate."""
        c, d, n = gains.shape
        m = start.shape[1]
        trees = np.arange(c)
        if m == 1:
            flat = gains.reshape(c, d * n).argmax(axis=1)
            feature, position = np.divmod(flat, n)
            return gains.reshape(c, d * n)[trees, flat][:, None], feature[:, None], position[:, None]
        # maximum of every (tree, feature, segment); empty segments are cut off afterwards
        first = np.minimum(start, n - 1)
        seg_max = np.maximum.reduceat(gains.ravel(), (self.row_offset[:c] + first[:, None, :]).ravel())
        seg_max = seg_max.reshape(c, d, m)
        seg_max[np.broadcast_to((size == 0)[:, None, :], seg_max.shape)] = -1.0
        feature = seg_max.argmax(axis=1)
        best = np.take_along_axis(seg_max, feature[:, None, :], axis=1)[:, 0, :]
        # first position of the best gain in the chosen feature's row of each segment
        reps = size.ravel()
        row = gains.reshape(c * d, n)[
            (trees[:, None] * d + np.repeat(feature.ravel(), reps).reshape(c, n)), np.arange(n)
        ]
        hit = row == np.repeat(best.ravel(), reps).reshape(c, n)
        candidate = np.where(hit, np.arange(n), n).ravel()
        position = np.minimum.reduceat(candidate, (trees[:, None] * n + first).ravel()).reshape(c, m)
        return best, feature, position

    def _values_around(self, perm: np.ndarray, feature: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x of the samples at ``position`` and at the next position of each chosen (tree, feature) row."""
        c, d, n = perm.shape
        slot = (np.arange(c)[:, None] * d + feature) * n + np.minimum(position, n - 2)
        flat = perm.ravel()
        return self.x[flat[slot] % n, feature], self.x[flat[slot + 1] % n, feature]

    def _partition(self, perm: np.ndarray, go_right: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The next level's rows: each row's left-going samples, then its right-going ones,
        both in their current order (so each child stays a sorted segment)."""
        c = perm.shape[0]
        right = self.routes[:c]
        np.take(go_right.astype(np.int64), perm, out=right, mode="clip")
        seen = self.prefix[:c]  # right-going samples up to and including each position
        np.cumsum(right, axis=2, out=seen)
        # destination in the flat (c, d, n) array: a left-goer at row position p goes to
        # row + p - seen, a right-goer to row + n_left + seen - 1
        n_left = (self.n - go_right.reshape(c, self.n).sum(axis=1))[:, None, None] + self.row_offset[:c] - 1
        jump = self.gains[:c].view(np.int64)
        np.add(seen, seen, out=jump)
        jump += n_left
        jump -= self.row_position[:c]
        jump *= right
        destination = np.subtract(self.row_position[:c], seen, out=seen)
        destination += jump
        out.ravel()[destination.ravel()] = perm.ravel()
        return out

