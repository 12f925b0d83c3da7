"""Tests of vaebench.metrics.disentanglement: MIG, SAP, DCI, modularity and their estimators.

The DCI learners (exact, binned, sklearn) are compared in test_disentanglement_learners.py.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from disentanglement_codes import perfect_code, rotated_code, sample_factors
from vaebench.errors import ConfigError
from vaebench.metrics import disentanglement as dm
from vaebench.metrics.disentanglement.dci import completeness, disentanglement
from vaebench.metrics.disentanglement.protocol import train_test_split
from vaebench.metrics.disentanglement.sap import score_matrix
from vaebench.metrics.registry import METRICS, check_metric_params

# dSprites' factor grid without the single-valued colour: shape, scale, orientation, x, y
DSPRITES_SIZES = (3, 6, 40, 32, 32)
N = 5000


@pytest.fixture(scope="module")
def dsprites():
    factors = sample_factors(N, DSPRITES_SIZES, seed=0)
    return SimpleNamespace(
        factors=factors,
        perfect=perfect_code(factors, seed=1),
        rotated=rotated_code(factors, seed=2, extra_dims=2),
    )


# DCI fits 100 stages of one tree per class (113 classes here): it gets fewer rows
DCI_ROWS = 3000


@pytest.fixture(scope="module")
def dci_scores(dsprites):
    factors = dsprites.factors[:DCI_ROWS]
    return {
        "perfect": dm.dci(dsprites.perfect[:DCI_ROWS], factors),
        "rotated": dm.dci(dsprites.rotated[:DCI_ROWS], factors),
    }


# ------------------------------------------------------------------ estimators by hand

# 8 rows: v1, v2 independent and uniform; z1 = v1; z2 is a threshold code
V1 = np.array([0, 0, 0, 0, 1, 1, 1, 1])
V2 = np.array([0, 0, 1, 1, 0, 0, 1, 1])
Z2 = np.array([0, 0, 0, 1, 1, 1, 1, 1])
LOG2 = math.log(2)
# I(z2; v1): cells (z, v) = (0,0): 3, (1,0): 1, (1,1): 4; p(z2=0) = 3/8, p(v1) = 1/2
MI_Z2_V1 = 3 / 8 * math.log((3 / 8) / (3 / 8 * 1 / 2)) + 1 / 8 * math.log(
    (1 / 8) / (5 / 8 * 1 / 2)
) + 4 / 8 * math.log((4 / 8) / (5 / 8 * 1 / 2))
# I(z2; v2): cells (0,0): 2, (0,1): 1, (1,0): 2, (1,1): 3
MI_Z2_V2 = (
    2 / 8 * math.log((2 / 8) / (3 / 16))
    + 1 / 8 * math.log((1 / 8) / (3 / 16))
    + 2 / 8 * math.log((2 / 8) / (5 / 16))
    + 3 / 8 * math.log((3 / 8) / (5 / 16))
)


def test_hand_example_numbers():
    # the closed forms above, evaluated: guards the expected values themselves
    assert MI_Z2_V1 == pytest.approx(0.380396, abs=1e-6)
    assert MI_Z2_V2 == pytest.approx(0.033822, abs=1e-6)


def test_discrete_mutual_information_by_hand():
    codes = np.stack([V1, Z2], axis=1)
    factors = np.stack([V1, V2], axis=1)
    expected = np.array([[LOG2, 0.0], [MI_Z2_V1, MI_Z2_V2]])
    np.testing.assert_allclose(dm.discrete_mutual_information(codes, factors), expected, atol=1e-12)
    np.testing.assert_allclose(dm.discrete_entropy(factors), [LOG2, LOG2], atol=1e-12)
    # H(Z2) = -(3/8 log 3/8 + 5/8 log 5/8)
    h_z2 = -(3 / 8 * math.log(3 / 8) + 5 / 8 * math.log(5 / 8))
    np.testing.assert_allclose(dm.discrete_entropy(Z2[:, None]), [h_z2], atol=1e-12)


def test_mig_by_hand():
    codes = np.stack([V1, Z2], axis=1).astype(float)
    factors = np.stack([V1, V2], axis=1)
    # v1: top two are z1 (log 2) and z2; v2: z2 then z1 (0); both entropies are log 2
    expected = ((LOG2 - MI_Z2_V1) / LOG2 + (MI_Z2_V2 - 0.0) / LOG2) / 2
    assert dm.mutual_information_gap(codes, factors) == pytest.approx(expected, abs=1e-12)
    assert dm.mig is dm.mutual_information_gap


def test_modularity_by_hand():
    # z1 = v1 informs one factor (score 1); z2 = 2 v1 + v2 informs both equally:
    # m = (log 2, log 2), delta = log^2 2 / (log^2 2 (K - 1)) = 1, score 0
    codes = np.stack([V1, 2 * V1 + V2], axis=1).astype(float)
    factors = np.stack([V1, V2], axis=1)
    assert dm.modularity(codes, factors) == pytest.approx(0.5, abs=1e-12)
    # three factors: z2 = 2 v1 + v2 has m = (log 2, log 2, 0): delta = 1/2, score 1/2
    v3 = np.array([0, 1, 0, 1, 1, 0, 1, 0])  # independent of v1 and v2 on these rows
    factors3 = np.stack([V1, V2, v3], axis=1)
    assert dm.modularity(codes, factors3) == pytest.approx((1.0 + 0.5) / 2, abs=1e-12)


def test_discrete_mutual_information_matches_sklearn():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(2, 400))
        codes = rng.integers(0, rng.integers(1, 25), size=(n, 3))
        if trial % 3 == 1:
            codes = codes * 100_003 - 5  # sparse, negative labels
        if trial % 3 == 2:
            codes = rng.integers(0, 10**9, size=(n, 3))  # nearly all distinct: sparse count path
        factors = rng.integers(0, rng.integers(1, 12), size=(n, 2))
        expected = np.array(
            [[mutual_info_score(factors[:, j], codes[:, i]) for j in range(2)] for i in range(3)]
        )
        np.testing.assert_allclose(
            dm.discrete_mutual_information(codes, factors), expected, atol=1e-12
        )
        entropy = [mutual_info_score(factors[:, j], factors[:, j]) for j in range(2)]
        np.testing.assert_allclose(dm.discrete_entropy(factors), entropy, atol=1e-12)


def reference_histogram_discretize(codes, n_bins):
    """disentanglement_lib's _histogram_discretize (on (N, D) codes), bins counted from 0."""
    out = np.zeros(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram(codes[:, i], n_bins)[1]
        out[:, i] = np.digitize(codes[:, i], edges[:-1]) - 1
    return out


def test_histogram_discretize_matches_disentanglement_lib():
    rng = np.random.default_rng(1)
    cases = [
        rng.normal(size=(500, 4)),
        rng.integers(-5, 5, size=(300, 3)) * 0.37,  # many values exactly on bin edges
        np.round(rng.uniform(size=(400, 2)), 2) * 7.3 - 3.1,
        np.column_stack([np.full(50, 2.5), np.arange(50.0)]),  # a constant column
    ]
    for codes in cases:
        for n_bins in (2, 7, 20, 41):
            got = dm.histogram_discretize(codes, n_bins)
            np.testing.assert_array_equal(got, reference_histogram_discretize(codes, n_bins))
            assert got.min() >= 0 and got.max() <= n_bins - 1


def test_dci_entropy_scores_by_hand():
    # one code per factor: fully disentangled and complete
    assert disentanglement(np.eye(2)) == pytest.approx(1.0, abs=1e-9)
    assert completeness(np.eye(2)) == pytest.approx(1.0, abs=1e-9)
    # one code carries both factors equally, the other nothing: D = 0, C = 1
    r = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert disentanglement(r) == pytest.approx(0.0, abs=1e-9)
    assert completeness(r) == pytest.approx(1.0, abs=1e-9)
    # R = [[.5, 0], [.5, 1]]: D_1 = 1, D_2 = 1 - H_2(1/3, 2/3), rho = (1/4, 3/4);
    # C_1 = 1 - H_2(1/2, 1/2) = 0, C_2 = 1, factor weights (1/2, 1/2)
    r = np.array([[0.5, 0.0], [0.5, 1.0]])
    h = -(1 / 3 * math.log2(1 / 3) + 2 / 3 * math.log2(2 / 3))
    assert disentanglement(r) == pytest.approx(0.25 + 0.75 * (1 - h), abs=1e-9)
    assert completeness(r) == pytest.approx(0.5, abs=1e-9)
    # no importance at all (a code that predicts nothing) scores 0
    assert disentanglement(np.zeros((3, 2))) == pytest.approx(0.0, abs=1e-9)
    assert completeness(np.zeros((3, 2))) == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------ metrics on known codes


def test_perfect_code_scores_near_maximum(dsprites, dci_scores):
    codes, factors = dsprites.perfect, dsprites.factors
    # 20 bins merge values of the 40- and 32-valued factors, which caps MIG near 0.90;
    # with a bin per value the gap is the full entropy
    assert 0.85 < dm.mig(codes, factors) < 0.92
    assert dm.mig(codes, factors, n_bins=40) > 0.95
    assert dm.modularity(codes, factors) > 0.99
    scores = dci_scores["perfect"]
    assert scores["disentanglement"] > 0.98
    assert scores["completeness"] > 0.98
    assert scores["informativeness"] > 0.98


def test_perfect_code_sap_near_maximum_on_few_valued_factors():
    # SAP's best possible value is below 1: the best code's accuracy (1 on a perfect
    # code) minus the runner-up's, which is at chance (about 1 / n_classes). A one-feature
    # linear classifier separates two or three ordered classes.
    sizes = (2, 3, 2, 3)
    factors = sample_factors(N, sizes, seed=3)
    ceiling = np.mean([1 - 1 / s for s in sizes])
    assert dm.sap(perfect_code(factors, seed=4), factors) > ceiling - 0.05


def test_perfect_code_sap_on_dsprites_grid(dsprites):
    # With 32 or 40 classes, one-vs-rest linear SVMs on one feature only recover the
    # extreme classes, so disentanglement_lib's SAP stays far below 1 even for a perfect
    # code: the shape (3) and scale (6) factors carry the score.
    perfect = dm.sap(dsprites.perfect, dsprites.factors)
    assert 0.15 < perfect < 0.4
    assert dm.sap(dsprites.rotated, dsprites.factors) < 0.4 * perfect


def test_rotated_code_scores_markedly_lower(dsprites, dci_scores):
    perfect, rotated, factors = dsprites.perfect, dsprites.rotated, dsprites.factors
    assert dm.mig(rotated, factors) < 0.3 * dm.mig(perfect, factors)
    assert dm.sap(rotated, factors) < 0.4 * dm.sap(perfect, factors)
    # modularity squares the MI, so mixing costs it less than the other metrics
    assert dm.modularity(rotated, factors) < dm.modularity(perfect, factors) - 0.05
    for key in ("disentanglement", "completeness"):
        assert dci_scores["rotated"][key] < 0.5 * dci_scores["perfect"][key]
    # informativeness measures information, which a rotation keeps; axis-aligned trees
    # still find it harder to read off a rotated code
    assert dci_scores["rotated"]["informativeness"] < dci_scores["perfect"]["informativeness"]


def test_constant_code_scores_zero(dsprites):
    factors = dsprites.factors
    codes = np.full((N, 4), 3.0)
    assert dm.mig(codes, factors) == 0.0
    assert dm.sap(codes, factors) == 0.0
    assert dm.modularity(codes, factors) == 0.0
    scores = dm.dci(codes[:1000], factors[:1000])
    assert scores["disentanglement"] == pytest.approx(0.0, abs=1e-9)
    assert scores["completeness"] == pytest.approx(0.0, abs=1e-9)
    # nothing to read: predicting from a constant is chance (the majority class)
    majority = np.mean([np.bincount(f).max() / len(f) for f in factors[:1000].T])
    assert scores["informativeness"] < majority + 0.05


def test_constant_factor_is_ignored(dsprites):
    codes, factors = dsprites.perfect[:1000], dsprites.factors[:1000]
    with_colour = np.column_stack([np.zeros(1000, dtype=int), factors])  # dSprites' colour
    assert dm.mig(codes, with_colour) == dm.mig(codes, factors)
    assert dm.modularity(codes, with_colour) == dm.modularity(codes, factors)
    assert dm.sap(codes, with_colour) == dm.sap(codes, factors)


# ------------------------------------------------------------------ fast vs exact learners


@pytest.mark.parametrize("code", ["perfect", "rotated"])
def test_sap_svm1d_agrees_with_linearsvc(dsprites, code):
    codes, factors = getattr(dsprites, code), dsprites.factors
    fast = dm.sap(codes, factors, learner="svm1d")
    exact = dm.sap(codes, factors, learner="linearsvc")
    assert abs(fast - exact) <= 0.02
    # the score matrices themselves agree point for point up to a few test points
    train, test = train_test_split(N, 0)
    matrices = [
        score_matrix(codes[train], factors[train], codes[test], factors[test], learner)
        for learner in ("svm1d", "linearsvc")
    ]
    assert np.abs(matrices[0] - matrices[1]).max() <= 0.005


# GradientBoostingClassifier fits (number of classes) trees per stage, so the comparison
# uses a smaller grid and fewer rows to stay within seconds.
SMALL_SIZES = (3, 6, 8, 5, 4)


@pytest.mark.parametrize("learner", ["exact-gbt", "hist-gbt"])
@pytest.mark.parametrize("code", ["perfect", "rotated"])
def test_dci_fast_learners_agree_with_gradient_boosting(code, learner):
    # (the exact learner's tighter agreement on noisy codes: test_disentanglement_learners.py)
    factors = sample_factors(1500, SMALL_SIZES, seed=0)
    make = perfect_code if code == "perfect" else rotated_code
    codes = make(factors, seed=1)
    fast = dm.dci(codes, factors, learner=learner)
    exact = dm.dci(codes, factors, learner="gbt")
    for key in ("disentanglement", "completeness", "informativeness"):
        assert abs(fast[key] - exact[key]) <= 0.02, (key, fast, exact)


# ------------------------------------------------------------------ determinism, inputs


def test_seeded_metrics_are_deterministic():
    factors = sample_factors(600, SMALL_SIZES, seed=7)
    codes = rotated_code(factors, seed=8, extra_dims=2)
    # the metrics must not read the global RNGs: reseed them between calls (and restore)
    state = np.random.get_state()
    try:
        np.random.seed(1)
        first = (dm.sap(codes, factors, seed=7), dm.dci(codes, factors, seed=7))
        np.random.seed(2)
        second = (dm.sap(codes, factors, seed=7), dm.dci(codes, factors, seed=7))
    finally:
        np.random.set_state(state)
    assert first == second
    # the seed does choose the split
    assert dm.dci(codes, factors, seed=8) != first[1]
    with pytest.raises(ValueError, match="seed must be a non-negative integer; got None"):
        dm.sap(codes, factors, seed=None)


def registry_context(codes, factors, **params):
    """What the harness hands a metric: the codes as posterior means, every metric's params."""
    return SimpleNamespace(
        dataset=None, mu=codes, logvar=np.full(codes.shape, -4.0), codes=codes, factors=factors, seed=0,
        params=check_metric_params(params), notes={}, cache={},
    )


def test_registry_entries():
    factors = sample_factors(600, (3, 4), seed=5)
    context = registry_context(perfect_code(factors, seed=6), factors)
    expected = {
        "mig": {"mig"},
        "sap": {"sap"},
        "dci": {"dci_d", "dci_c", "dci_i"},
        "modularity": {"modularity"},
    }
    for name, keys in expected.items():
        info = METRICS.get(name)
        assert info.family == "disentanglement" and info.needs_factors
        assert all(value.higher_is_better for value in info.values)
        values = info.compute(context)
        assert set(values) == keys
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values.values())
        assert all(info.value(key) is not None for key in keys)
    params = {p.key: p.default for p in METRICS.get("mig").params}
    assert params["mig_n_bins"] == dm.N_BINS
    assert METRICS.get("dci").compute(context)["dci_d"] == dm.dci(context.codes, factors)["disentanglement"]
    # options from the suite's [evaluation.params]; a bad one names its key
    context = registry_context(context.codes, factors, mig_n_bins=3, sap_learner="linearsvc")
    assert METRICS.get("mig").compute(context)["mig"] == dm.mig(context.codes, factors, n_bins=3)
    assert METRICS.get("sap").compute(context)["sap"] == dm.sap(context.codes, factors, learner="linearsvc")
    with pytest.raises(ConfigError, match="evaluation.params.dci_learner.*must be one of 'exact-gbt'"):
        check_metric_params({"dci_learner": "forest"})


GOOD_CODES = np.random.default_rng(0).normal(size=(20, 3))
GOOD_FACTORS = np.arange(40).reshape(20, 2) % 3


@pytest.mark.parametrize(
    "codes, factors, match",
    [
        (GOOD_CODES[:, 0], GOOD_FACTORS, "codes must be a 2-D array"),
        (GOOD_CODES[None], GOOD_FACTORS, "codes must be a 2-D array"),
        (GOOD_CODES, GOOD_FACTORS[:, 0], "factors must be a 2-D array"),
        (GOOD_CODES[:19], GOOD_FACTORS, "same number of rows; got 19 and 20"),
        (np.where(np.eye(20, 3) > 0, np.nan, GOOD_CODES), GOOD_FACTORS, "codes must be finite"),
        (np.where(np.eye(20, 3) > 0, np.inf, GOOD_CODES), GOOD_FACTORS, "codes must be finite"),
        (GOOD_CODES.astype(str), GOOD_FACTORS, "codes must hold real numbers"),
        (GOOD_CODES, GOOD_FACTORS + 0.5, "factors must hold integer indices"),
        (GOOD_CODES, GOOD_FACTORS.astype(str), "factors must hold integer indices"),
        (GOOD_CODES[:1], GOOD_FACTORS[:1], "codes must have at least 2 rows"),
        (GOOD_CODES, np.zeros((20, 2), dtype=int), "factors: every factor column"),
    ],
)
@pytest.mark.parametrize("metric", [dm.mig, dm.sap, dm.dci, dm.modularity])
def test_invalid_inputs(metric, codes, factors, match):
    with pytest.raises(ValueError, match=match):
        metric(codes, factors)


def test_invalid_options():
    with pytest.raises(ValueError, match="n_bins must be an integer >= 2"):
        dm.mig(GOOD_CODES, GOOD_FACTORS, n_bins=1)
    with pytest.raises(ValueError, match="n_bins must be an integer >= 2"):
        dm.modularity(GOOD_CODES, GOOD_FACTORS, n_bins=2.5)
    with pytest.raises(ValueError, match="unknown SAP learner 'svc'; allowed: svm1d, linearsvc"):
        dm.sap(GOOD_CODES, GOOD_FACTORS, learner="svc")
    with pytest.raises(ValueError, match="unknown DCI learner 'xgboost'; allowed: exact-gbt, hist-gbt, gbt"):
        dm.dci(GOOD_CODES, GOOD_FACTORS, learner="xgboost")
    with pytest.raises(ValueError, match="codes_discrete must be a 2-D array"):
        dm.discrete_mutual_information(np.arange(5), np.arange(5)[:, None])
    # integer-valued floats are accepted as factor indices
    assert dm.mig(GOOD_CODES, GOOD_FACTORS.astype(float)) == dm.mig(GOOD_CODES, GOOD_FACTORS)
