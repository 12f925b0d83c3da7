"""The DCI learners against scikit-learn run in the test: the exact tree grower against
DecisionTreeRegressor, the boosted classifier against GradientBoostingClassifier, and DCI's
scores from the default learner against disentanglement_lib's learner on noisy, mixed and
realistic codes.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.tree import DecisionTreeRegressor

from vaebench.metrics.disentanglement import dci
from vaebench.metrics.disentanglement.learners.boosting import MAX_DEPTH, boosted_trees
from vaebench.metrics.disentanglement.learners.exact_tree import ExactTreeGrower


def grow_one(x: np.ndarray, residual: np.ndarray, x_test: np.ndarray, seed: int = 0):
    """One exact tree on ``residual``: (leaf of every training sample, of every test sample,
    summed gain / n per feature)."""
    importance = np.zeros(x.shape[1])
    leaf, leaf_test = ExactTreeGrower(x, x_test, seed=seed).grow(residual[:, None], importance)
    return leaf[:, 0], leaf_test[:, 0], importance


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labelings group the samples the same way (labels may differ)."""
    pairs = np.unique(np.stack([a, b], axis=1), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def tree_cases():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4))
    yield "continuous", x, rng.normal(size=500) + (x[:, 0] > 0.3) - 0.5 * (x[:, 2] < -1)
    # values equal in float32 (as sklearn's trees see them) and a few exact duplicates:
    # a feature with few ties, checked after the search
    x = rng.normal(size=(500, 4))
    x[::50, 1] = x[1::50, 1]
    x[::40, 2] = x[1::40, 2] + 1e-9
    yield "few ties", x, rng.normal(size=500) + 2 * (x[:, 1] > 0.0) + x[:, 2]
    # a discrete feature (many ties, masked up front) next to continuous ones
    x = np.column_stack([rng.integers(0, 5, 500), rng.normal(size=(500, 2))]).astype(float)
    yield "discrete", x, (x[:, 0] == 2) + 0.3 * rng.normal(size=500)


@pytest.mark.parametrize("name, x, residual", list(tree_cases()), ids=[c[0] for c in tree_cases()])
def test_exact_tree_matches_sklearn_decision_tree(name, x, residual):
    x_test = np.random.default_rng(1).normal(size=(300, x.shape[1])) * x.std(axis=0) + x.mean(axis=0)
    reference = DecisionTreeRegressor(max_depth=MAX_DEPTH, random_state=0).fit(x, residual)
    leaf, leaf_test, importance = grow_one(x, residual, x_test)
    # the same leaves (a tie between features splits the samples the same way either way) ...
    assert same_partition(leaf, reference.apply(x))
    # ... the same summed squared-error decrease ...
    total = reference.tree_.compute_feature_importances(normalize=False).sum()
    assert importance.sum() == pytest.approx(total, rel=1e-9)
    # ... and the same thresholds: test points land in the same leaves
    assert same_partition(leaf_test, reference.apply(x_test))


def test_exact_tree_by_hand():
    # four samples, one feature: residuals (1, 1, -1, -1) split between x = 2 and x = 3 at
    # the midpoint 2.5 with decrease n * var = 4; then each side is constant: leaves
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    leaf, leaf_test, importance = grow_one(x, np.array([1.0, 1.0, -1.0, -1.0]), np.array([[2.4], [2.6]]))
    assert importance == pytest.approx([4.0 / 4], rel=1e-12)
    assert leaf.tolist() == [0, 0, 4, 4]  # root left -> children all left: leaf 000; right: 100
    assert leaf_test.tolist() == [0, 4]


def test_exact_tree_breaks_ties_between_features_at_random():
    # two identical features: every split ties; the seed picks which one splits
    rng = np.random.default_rng(2)
    column = rng.normal(size=300)
    x = np.column_stack([column, column])
    residual = rng.normal(size=300) + (column > 0)
    shares = [grow_one(x, residual, x, seed=seed)[2] for seed in range(40)]
    first = np.array([s[0] / s.sum() for s in shares])
    assert 0.2 < first.mean() < 0.8 and first.min() < first.max()
    # the leaves do not depend on the choice; a seed gives the same trees every time
    assert all(same_partition(grow_one(x, residual, x, seed=seed)[0], grow_one(x[:, :1], residual, x[:, :1])[0])
               for seed in range(3))
    assert np.array_equal(grow_one(x, residual, x, seed=7)[2], grow_one(x, residual, x, seed=7)[2])


@pytest.mark.parametrize("n_classes", [2, 4])
def test_exact_boosting_matches_gradient_boosting_classifier(n_classes):
    rng = np.random.default_rng(n_classes)
    x = rng.normal(size=(600, 4))
    y = np.digitize(x[:, 0] + 0.5 * x[:, 1] + 0.5 * rng.normal(size=600), np.linspace(-1, 1, n_classes - 1))
    train, test = slice(0, 400), slice(400, None)
    importance, prediction = boosted_trees(x[train], y[train], x[test], ExactTreeGrower)
    model = GradientBoostingClassifier(random_state=0).fit(x[train], y[train])
    np.testing.assert_allclose(importance, model.feature_importances_, atol=0.01)
    assert np.mean(prediction == model.predict(x[test])) >= 0.98


# ------------------------------------------------------------- DCI against sklearn's learner

SIZES = (3, 5, 6)
N_ROWS = 1200


def dci_code(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes of three kinds for factors of sizes SIZES (values scaled to [0, 1]):
    noisy: a noisy copy of each factor plus two noise dims; mixed: every pair of factors
    summed and subtracted; realistic: one clean factor, two factors rotated together, a dim
    mixing two factors, two near-collapsed dims and a constant one, all noisy."""
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(0, s, N_ROWS) for s in SIZES], axis=1)
    v = factors / np.array(SIZES)
    if kind == "noisy":
        codes = np.hstack([v + 0.05 * rng.normal(size=v.shape), 0.1 * rng.normal(size=(N_ROWS, 2))])
    elif kind == "mixed":
        pairs = [(0, 1), (1, 2), (2, 0)]
        codes = np.column_stack([v[:, i] + v[:, j] for i, j in pairs] + [v[:, i] - v[:, j] for i, j in pairs])
        codes += 0.05 * rng.normal(size=codes.shape)
    else:
        angle = 0.6
        rotated = v[:, 1:3] @ np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        codes = np.column_stack([v[:, 0], rotated, 0.5 * v[:, 0] + v[:, 2]]) + 0.1 * rng.normal(size=(N_ROWS, 4))
        codes = np.hstack([codes, 0.01 * rng.normal(size=(N_ROWS, 2)), np.full((N_ROWS, 1), 0.3)])
    return codes, factors


@functools.cache
def sklearn_dci(kind: str, seed: int) -> dict[str, float]:
    return dci(*dci_code(kind, seed), learner="gbt")


@pytest.mark.parametrize("kind", ["noisy", "mixed", "realistic"])
def test_dci_default_learner_equals_sklearns_within_0_005(kind):
    # disentanglement_lib's learner breaks exact ties between features at random (its
    # random_state), which moves its own scores by up to 0.005 on these codes (0.01 on some
    # others); the default learner is within the same distance of it
    codes, factors = dci_code(kind, seed=0)
    ours = dci(codes, factors)
    theirs = sklearn_dci(kind, 0)
    for key in ("disentanglement", "completeness", "informativeness"):
        assert abs(ours[key] - theirs[key]) <= 0.005, (key, ours, theirs)


def test_binned_learner_is_further_from_sklearn_on_noisy_codes():
    # why it is no longer the default: 256 quantile bins cost 0.02 on this noisy code
    codes, factors = dci_code("noisy", seed=0)
    binned = dci(codes, factors, learner="hist-gbt")
    theirs = sklearn_dci("noisy", 0)
    assert theirs["disentanglement"] - binned["disentanglement"] > 0.01


def test_dci_by_hand_through_the_learner():
    rng = np.random.default_rng(3)
    v1, v2 = rng.integers(0, 2, 600), rng.integers(0, 3, 600)
    factors = np.stack([v1, v2], axis=1)
    constant = np.full(600, 0.7)
    # one code dimension per factor and a constant one: R = [[r1, 0], [0, r2], [0, 0]],
    # so D = C = 1, and both factors are read off exactly: I = 1
    scores = dci(np.column_stack([v1, v2, constant]).astype(float), factors)
    assert scores == pytest.approx({"disentanglement": 1.0, "completeness": 1.0, "informativeness": 1.0}, abs=1e-9)
    # one dimension carries both factors (3 v1 + v2 takes six distinct values), the constant
    # one none: each factor's importances (summing to 1) all go to it, R = [[1, 1], [0, 0]]:
    # D_1 = 1 - H_2(1/2, 1/2) = 0 with weight 1; C_j = 1 - H_2(1, 0) = 1
    scores = dci(np.column_stack([3 * v1 + v2, constant]).astype(float), factors)
    assert scores == pytest.approx({"disentanglement": 0.0, "completeness": 1.0, "informativeness": 1.0}, abs=1e-9)
