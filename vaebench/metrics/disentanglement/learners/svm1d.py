"""One-feature linear SVMs solved exactly: SAP's learner, vectorised over every problem.

Each problem is scikit-learn's ``LinearSVC(C, class_weight="balanced")`` (liblinear's primal,
squared hinge loss, L2 penalty on the weight and on the intercept, intercept_scaling=1) on a
single feature::

    min_{w,b} 1/2 (w^2 + b^2) + sum_i C_i max(0, 1 - y_i (w x_i + b))^2

with y_i = +1 on the positive class. More than two classes: one-vs-rest, positives weighted
C_i = C * the class's balanced weight and negatives C_i = C, as liblinear does; two classes:
a single problem with class 1 positive and each class's C times its balanced weight.
Balanced weights are n / (n_classes * count(class)).

On the sorted feature the points with non-zero loss are a prefix or a suffix of each class,
so the objective, its gradient and its generalized Hessian need only prefix sums of 1, x and
x^2 per class, located with np.searchsorted; a damped Newton method (Armijo backtracking)
then converges in a few iterations for all problems at once. liblinear stops at a tolerance
instead, so its solutions differ from these where it stops short of the optimum.
"""

from __future__ import annotations

import numpy as np


def svm1d_score_matrix(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, c: float
) -> np.ndarray:
    """(D, K) held-out accuracies of the one-feature SVMs predicting factor j from code dim i.

    x_*: (N, D) float64 codes; y_*: (N, K) int64 labels >= 0; c: the SVM's C. A factor with
    a single class in training always predicts it.
    """
    n, d = x_train.shape
    k = y_train.shape[1]
    y_tr = np.empty_like(y_train)
    y_te = np.empty_like(y_test)
    m = np.empty(k, dtype=np.int64)  # classes seen in training, per factor
    for j in range(k):
        size = int(max(y_train[:, j].max(), y_test[:, j].max())) + 1
        present = np.bincount(y_train[:, j], minlength=size) > 0
        lut = np.where(present, np.cumsum(present) - 1, -1)
        y_tr[:, j], y_te[:, j], m[j] = lut[y_train[:, j]], lut[y_test[:, j]], present.sum()
    m_max = int(m.max())

    # --- each code dim sorted, and the points grouped by (factor, code dim, class)
    x_t = np.ascontiguousarray(x_train.T)
    order = np.argsort(x_t, axis=1)  # (d, n); the order among ties does not matter
    xs = np.take_along_axis(x_t, order, axis=1)  # (d, n) sorted values
    # rank of the first occurrence of each sorted value: x < t  <=>  rank(x) < #{x' < t}
    is_new = np.ones((d, n), dtype=bool)
    is_new[:, 1:] = xs[:, 1:] != xs[:, :-1]
    first_rank = np.maximum.accumulate(np.where(is_new, np.arange(n), 0), axis=1)
    # group id (j * d + i) * m_max + class of every point, in the sorted order of code dim i
    n_groups = k * d * m_max
    small = np.int16 if n_groups < np.iinfo(np.int16).max else np.int64
    group: np.ndarray = y_tr.T.astype(small)[:, order]  # (k, d, n)
    group += (np.arange(k * d, dtype=small) * small(m_max)).reshape(k, d, 1)
    group = group.ravel()
    grouped = np.argsort(group, kind="stable")  # x stays sorted within each group
    gcount = np.bincount(group, minlength=n_groups)
    gstart = np.concatenate([[0], np.cumsum(gcount)[:-1]])
    group_sorted = np.repeat(np.arange(n_groups), gcount)
    # value and rank of every grouped point: the flat index (j, i, p) of the point at sorted
    # position p of code dim i, for factor j
    gx = np.broadcast_to(xs, (k, d, n)).reshape(-1)[grouped]
    gkey = np.broadcast_to(first_rank, (k, d, n)).reshape(-1)[grouped]
    gkey += group_sorted * (n + 1)
    g1 = np.zeros(len(gx) + 1)
    g2 = np.zeros(len(gx) + 1)
    np.cumsum(gx, out=g1[1:])
    gx *= gx
    np.cumsum(gx, out=g2[1:])
    a1 = np.zeros((d, n + 1))
    a2 = np.zeros((d, n + 1))
    np.cumsum(xs, axis=1, out=a1[:, 1:])
    np.cumsum(xs * xs, axis=1, out=a2[:, 1:])
    a1, a2 = a1.ravel(), a2.ravel()

    # --- the problems of one code dim: (factor, positive class, C+, C-); the same per dim
    b_factor, b_class, b_cpos, b_cneg = [], [], [], []
    for j in range(k):
        counts = np.bincount(y_tr[:, j], minlength=m[j]).astype(np.float64)
        weight = n / (m[j] * counts)  # class_weight="balanced"
        classes: list[int] = []
        class_cpos: list[float] = []
        class_cneg: list[float] = []
        if m[j] == 2:
            classes, class_cpos, class_cneg = [1], [c * weight[1]], [c * weight[0]]
        elif m[j] > 2:
            classes, class_cpos, class_cneg = list(range(m[j])), list(c * weight), [c] * m[j]
        b_factor += [j] * len(classes)
        b_class += classes
        b_cpos += class_cpos
        b_cneg += class_cneg
    per_dim = len(b_factor)
    p_dim = np.repeat(np.arange(d), per_dim)
    p_group = (np.tile(b_factor, d) * d + p_dim) * m_max + np.tile(b_class, d)
    cpos = np.tile(np.array(b_cpos, dtype=np.float64), d)
    cneg = np.tile(np.array(b_cneg, dtype=np.float64), d)
    start = gstart[p_group]
    base = p_group * (n + 1)
    total_rank = np.full(len(p_group), n)

    def rank_below(t: np.ndarray) -> np.ndarray:
        """#training points with x < t on each problem's code dim."""
        t = t.reshape(d, per_dim)
        return np.concatenate([np.searchsorted(xs[i], t[i], side="left") for i in range(d)])

    def class_prefix(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Count, sum of x and of x^2 over the positive class among the r smallest x."""
        end = np.searchsorted(gkey, base + r, side="left")
        return end - start, g1[end] - g1[start], g2[end] - g2[start]

    def all_prefix(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        flat = p_dim * (n + 1) + r
        return r, a1[flat], a2[flat]

    cls_total = class_prefix(total_rank)
    all_total = all_prefix(total_rank)

    def moments(w: np.ndarray, b: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Sums of 1, x, x^2 over the positives and over the negatives with non-zero loss."""
        # w >= 0: positives x < t_pos (prefix), negatives x > t_neg (suffix)
        # w < 0:  positives x > t_pos (suffix), negatives x < t_neg (prefix)
        # w == 0: t = -inf or +inf selects all or none
        up = w >= 0
        with np.errstate(divide="ignore", invalid="ignore"):
            t_pos = np.where(w != 0, (1.0 - b) / w, np.where(b < 1, np.inf, -np.inf))
            t_neg = np.where(w != 0, (-1.0 - b) / w, np.where(b > -1, -np.inf, np.inf))
        r_pos = rank_below(np.where(up, t_pos, np.nextafter(t_pos, np.inf)))  # x <= t: < next
        r_neg = rank_below(np.where(up, np.nextafter(t_neg, np.inf), t_neg))
        cp = class_prefix(r_pos)
        cn = class_prefix(r_neg)
        an = all_prefix(r_neg)
        pos = [np.where(up, cp[q], cls_total[q] - cp[q]) for q in range(3)]
        neg = [np.where(up, all_total[q] - an[q] - (cls_total[q] - cn[q]), an[q] - cn[q]) for q in range(3)]
        return pos, neg

    def objective(w: np.ndarray, b: np.ndarray, pos: list[np.ndarray], neg: list[np.ndarray]) -> np.ndarray:
        return (
            0.5 * (w * w + b * b)
            + cpos * ((1 - b) ** 2 * pos[0] - 2 * (1 - b) * w * pos[1] + w * w * pos[2])
            + cneg * ((1 + b) ** 2 * neg[0] + 2 * (1 + b) * w * neg[1] + w * w * neg[2])
        )

    w = np.zeros(len(p_group))
    b = np.zeros(len(p_group))
    pos, neg = moments(w, b)
    f = objective(w, b, pos, neg)
    for _ in range(100):
        h0 = cpos * pos[0] + cneg * neg[0]
        h1 = cpos * pos[1] + cneg * neg[1]
        h2 = cpos * pos[2] + cneg * neg[2]
        gw = w + 2 * (w * h2 + b * h1 - cpos * pos[1] + cneg * neg[1])
        gb = b + 2 * (w * h1 + b * h0 - cpos * pos[0] + cneg * neg[0])
        hww, hwb, hbb = 1 + 2 * h2, 2 * h1, 1 + 2 * h0
        det = hww * hbb - hwb * hwb
        dw = -(hbb * gw - hwb * gb) / det
        db = -(hww * gb - hwb * gw) / det
        moving = (np.abs(dw) > 1e-12 * (1 + np.abs(w))) | (np.abs(db) > 1e-12 * (1 + np.abs(b)))
        if not moving.any():
            break
        slope = gw * dw + gb * db
        step = moving.astype(np.float64)
        for _ in range(50):  # backtracking (Armijo) line search, per problem
            nw, nb = w + step * dw, b + step * db
            npos, nneg = moments(nw, nb)
            nf = objective(nw, nb, npos, nneg)
            ok = nf <= f + 1e-4 * step * slope + 1e-12 * np.abs(f)
            if ok.all():
                break
            step = np.where(ok, step, 0.5 * step)
        w, b, f, pos, neg = nw, nb, nf, npos, nneg

    # --- held-out accuracy of each (code dim, factor) predictor
    scores = np.zeros((d, k))
    w_lines, b_lines = w.reshape(d, per_dim), b.reshape(d, per_dim)  # (code dim, problem)
    factor_start = np.searchsorted(np.asarray(b_factor, dtype=np.int64), np.arange(k))
    for j in range(k):
        truth = y_te[:, j]
        if m[j] == 1:  # one class seen: always predicted
            scores[:, j] = np.mean(truth == 0)
            continue
        lines = slice(factor_start[j], factor_start[j] + (1 if m[j] == 2 else int(m[j])))
        for i in range(d):
            x = x_test[:, i]
            if m[j] == 2:  # sklearn: decision_function > 0 -> classes_[1]
                prediction = (w_lines[i, lines][0] * x + b_lines[i, lines][0] > 0).astype(np.int64)
            else:
                breaks, winners = upper_envelope(w_lines[i, lines], b_lines[i, lines])
                prediction = winners[np.searchsorted(breaks, x, side="right")]
            scores[i, j] = np.mean(prediction == truth)
    return scores


def upper_envelope(slopes: np.ndarray, intercepts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """argmax_c (slopes[c] x + intercepts[c]) as a step function of x.

    Returns (breaks (P-1,), winners (P,)): winners[p] is the argmax for
    breaks[p-1] <= x < breaks[p]. Among lines of equal slope the larger intercept wins,
    the lower index on a full tie (as np.argmax).
    """
    order = np.lexsort((np.arange(len(slopes)), -intercepts, slopes)).tolist()
    w, b = slopes.tolist(), intercepts.tolist()
    hull: list[int] = []
    for c in order:
        if hull and w[hull[-1]] == w[c]:
            continue  # same slope, no larger intercept: never the argmax
        while len(hull) >= 2:
            p, q = hull[-2], hull[-1]
            # q never wins if c overtakes p no later than q does
            if (b[p] - b[c]) * (w[q] - w[p]) <= (b[p] - b[q]) * (w[c] - w[p]):
                hull.pop()
            else:
                break
        hull.append(c)
    winners = np.array(hull, dtype=np.int64)
    breaks = (intercepts[winners[:-1]] - intercepts[winners[1:]]) / (slopes[winners[1:]] - slopes[winners[:-1]])
    return breaks, winners
