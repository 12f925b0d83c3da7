"""Exact tree growing: the splits of scikit-learn's best splitter, from sorted-order prefix sums.

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
  (node, value): all nodes of a level lie side by side in one row per feature, so one
  ``np.cumsum`` per row gives the sums S_l of every candidate of every node;
- after a level's splits, each row is partitioned stably (left children, then right children)
  by index arithmetic: the layout of the next level, still sorted within each node;
- residuals enter the sums in 64-bit fixed point (rounded to multiples of 2**-k with
  n * 2**k < 2**62), so the sums are exact integers (and ``np.cumsum`` on int64 is several
  times faster than on float64); the rounding, below 1e-15 per residual, is of the size of
  sklearn's own floating-point rounding, so only candidates whose gains agree to about 15
  digits may be ordered differently;
- exact ties between features are broken at random by a generator seeded with ``seed``, as
  sklearn's ``random_state`` does (with another stream of random numbers: the two pick the same
  split only where there is no tie);
- many trees (one per class in a stage) are processed at once, in chunks of about
  ``CHUNK_ELEMENTS`` (tree, feature, sample) entries.
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

    def __init__(self, x_train: np.ndarray, x_test: np.ndarray, seed: int = 0):
        self.rng = np.random.default_rng(seed)  # breaks exact ties between features
        x32 = np.asarray(x_train, dtype=np.float32)
        self.x = x32.astype(np.float64)  # the values the trees compare: rounded to float32
        self.x_test = np.asarray(x_test, dtype=np.float32).astype(np.float64)
        self.n, self.d = n, d = x32.shape
        self.order = np.ascontiguousarray(np.argsort(x32, axis=0, kind="stable").T)  # (d, n)
        values = np.take_along_axis(self.x.T, self.order, axis=1)
        ties = (values[:, 1:] <= values[:, :-1] + FEATURE_THRESHOLD).sum(axis=1)
        self.heavy = np.flatnonzero(ties > HEAVY_TIES * n)
        self.light = np.flatnonzero((ties > 0) & (ties <= HEAVY_TIES * n))
        # fixed point: |residual| <= 1, so every prefix sum stays below n * scale < 2**62
        self.scale = float(2 ** (62 - math.ceil(math.log2(n + 1))))
        # sqrt(n / (n_l n_r)) = sqrt(n) * root[n_l] * root[n_r], with root[0] = 0 (no split
        # after a segment's last position)
        self.root = np.concatenate([[0.0], 1.0 / np.sqrt(np.arange(1, n + 1))])
        self.n_left = np.arange(1, n + 1)
        self.weight0 = self.root[1:] * self.root[n - 1 :: -1] * (math.sqrt(n) / self.scale)
        # work arrays of a chunk of c trees, (c, d, n); sample i of tree t is addressed t * n + i
        self.chunk = c = max(1, CHUNK_ELEMENTS // (d * n))
        self.perm0 = np.ascontiguousarray(self.order[None] + (np.arange(c) * n)[:, None, None])
        self.row_position = np.arange(c * d).reshape(c, d, 1) * n + np.arange(n)
        self.perms = (np.empty((c, d, n), dtype=np.int64), np.empty((c, d, n), dtype=np.int64))
        self.prefix = np.empty((c, d, n), dtype=np.int64)
        self.routes = np.empty((c, d, n), dtype=np.int64)
        self.gains = np.empty((c, d, n), dtype=np.float64)
        self.shift = np.empty((c, 1, n), dtype=np.int64)
        self.weight = np.empty((c, 1, n), dtype=np.float64)
        self.x_test_offset = np.arange(self.x_test.shape[0]) * d  # flat row of each test sample
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
        scale = self.scale
        fixed = np.rint(residual * scale).astype(np.int64)
        squared = residual * residual
        node = np.zeros((c, n), dtype=np.int64)
        node_test = np.zeros((c, self.x_test.shape[0]), dtype=np.int64)
        go_right = np.empty((c, n), dtype=np.int64)
        perm = self.perm0[:c]
        prefix, gains, shift, weight = self.prefix[:c], self.gains[:c], self.shift[:c], self.weight[:c]
        # the segments of each tree's rows, left to right: (start, end, node id)
        segments: list[list[tuple[int, int, int]]] = [[(0, n, 0)] for _ in range(c)]
        for level in range(MAX_DEPTH):
            m = 2**level
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
            if level == 0:  # one segment per tree, the same positions in every tree
                totals = prefix[:, 0, n - 1]
                shift[:, 0] = np.rint(np.outer(totals / n, self.n_left))
                weight[:] = self.weight0
                sums = {(t, 0): int(totals[t]) for t in range(c)}
            else:
                sums = {}
                for t in range(c):
                    for s, e, _ in segments[t]:
                        before = int(prefix[t, 0, s - 1]) if s else 0
                        total = int(prefix[t, 0, e - 1]) - before
                        size = e - s
                        sums[t, s] = total
                        shift[t, 0, s:e] = np.rint(self.n_left[:size] * (total / size))
                        shift[t, 0, s:e] += before
                        np.multiply(self.root[1 : size + 1], self.root[size - 1 :: -1], out=weight[t, 0, s:e])
                        weight[t, 0, s:e] *= math.sqrt(size) / scale
            prefix -= shift
            np.copyto(gains, prefix, casting="unsafe")
            gains *= weight
            gains *= gains
            self._mask_ties(gains, perm, self.heavy)
            # the best split of every segment, as sklearn's tree builder decides it
            node_sq = np.bincount((node + np.arange(c)[:, None] * m).ravel(), weights=squared.ravel(), minlength=c * m)
            split_feature = np.zeros((c, m), dtype=np.int64)
            threshold = np.full((c, m), np.inf)
            go_right[:] = 0
            next_segments: list[list[tuple[int, int, int]]] = []
            for t in range(c):
                lefts, rights = [], []
                for s, e, node_id in segments[t]:
                    size = e - s
                    mean = sums[t, s] / (scale * size)
                    impurity = node_sq[t * m + node_id] / size - mean * mean
                    found = self._best_split(gains, perm, t, s, e) if size > 1 and impurity > EPSILON else None
                    if found is None:  # a leaf: every sample goes to the left child
                        lefts.append((2 * node_id, size))
                        continue
                    gain, f, p, a, b = found
                    importance[f] += gain / n
                    split_feature[t, node_id] = f
                    threshold[t, node_id] = a / 2.0 + b / 2.0
                    go_right[t, perm[t, f, p + 1 : e] - t * n] = 1
                    lefts.append((2 * node_id, p + 1 - s))
                    rights.append((2 * node_id + 1, e - p - 1))
                # the next level's layout: every left child, then every right child
                layout, position = [], 0
                for child, size in lefts + rights:
                    layout.append((position, position + size, child))
                    position += size
                next_segments.append(layout)
            # test samples follow the thresholds: right when x[feature] > threshold
            flat = node_test + np.arange(c)[:, None] * m
            values = self.x_test.ravel()[self.x_test_offset + split_feature.ravel()[flat]]
            node_test = 2 * node_test + (values > threshold.ravel()[flat])
            if level + 1 < MAX_DEPTH:
                perm = self._partition(perm, go_right, self.perms[level % 2][:c])
            node = 2 * node + go_right
            segments = next_segments
        return node, node_test

    def _best_split(
        self, gains: np.ndarray, perm: np.ndarray, t: int, s: int, e: int
    ) -> tuple[float, int, int, float, float] | None:
        """The best split of segment [s, e) of tree t: (gain, feature, last left position,
        x there, x at the next position); among features with equal best gains a random one,
        within the feature the first position; None where no two neighbours differ by more
        than FEATURE_THRESHOLD."""
        n = self.n
        block = gains[t, :, s:e]
        block[:, -1] = -1.0  # no split after the segment's last sample
        for attempt in range(2):
            row_max = block.max(axis=1)
            tied = np.flatnonzero(row_max == row_max.max())
            f = int(tied[0] if len(tied) == 1 else tied[self.rng.integers(len(tied))])
            q = int(block[f].argmax())
            gain = float(block[f, q])
            if gain < 0:
                return None
            a = self.x[perm[t, f, s + q] - t * n, f]
            b = self.x[perm[t, f, s + q + 1] - t * n, f]
            if b > a + FEATURE_THRESHOLD:
                return gain, f, s + q, a, b
            # rare: two tied values of a feature with few ties won; mask those and search again
            self._mask_ties(gains[t : t + 1, :, s:e], perm[t : t + 1, :, s:e], self.light)
        return None

    def _mask_ties(self, gains: np.ndarray, perm: np.ndarray, features: np.ndarray) -> None:
        """Set gains[t, f, p] = -1 where the next sample in the row is within FEATURE_THRESHOLD."""
        for f in features:
            values = self.x_by_slot[f][perm[:, f]]
            tied = values[:, 1:] <= values[:, :-1] + FEATURE_THRESHOLD
            gains[:, f, :-1][tied] = -1.0

    def _partition(self, perm: np.ndarray, go_right: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The next level's rows: each row's left-going samples, then its right-going ones,
        both in their current order (so each child stays a sorted segment)."""
        c, d, n = perm.shape
        right = self.routes[:c]
        np.take(go_right, perm, out=right, mode="clip")
        seen = self.prefix[:c]  # right-going samples up to and including each position
        np.cumsum(right, axis=2, out=seen)
        # destination of position p: a left-goer goes to row + p - seen, a right-goer to
        # row + n_left + seen - 1 = (row + p - seen) + (2 seen + n_left - 1 - p)
        n_left = n - go_right.sum(axis=1)
        jump = self.gains[:c].view(np.int64)
        np.add(seen, seen, out=jump)
        jump += (n_left[:, None] - 1 - np.arange(n)).reshape(c, 1, n)
        jump *= right
        destination = np.subtract(self.row_position[:c], seen, out=seen)
        destination += jump
        out.ravel()[destination.ravel()] = perm.ravel()
        return out
