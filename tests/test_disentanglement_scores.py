"""Tests of disentanglement_lib's further scores: explicitness, IRS, the unsupervised scores
and the downstream tasks; and the sampled representation. Each is checked against a closed
form, a case worked by hand, or disentanglement_lib's own computation written out here.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.linalg
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score as sklearn_mutual_info, roc_auc_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer

from disentanglement_codes import perfect_code, rotated_code, sample_factors
from vaebench.metrics.disentanglement import (
    downstream_accuracy,
    explicitness,
    gaussian_total_correlation,
    gaussian_wasserstein_correlation,
    irs,
    mutual_info_score,
    unsupervised_scores,
)
from vaebench.metrics.disentanglement.protocol import train_test_split
from vaebench.metrics.disentanglement.representation import sampled_codes
from vaebench.metrics.registry import METRICS, check_metric_params


def with_covariance(cov, n=2000, seed=0):
    """n rows whose sample covariance (np.cov, ddof 1) is exactly ``cov`` (up to rounding)."""
    z = np.random.default_rng(seed).normal(size=(n, len(cov)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return z @ np.linalg.cholesky(cov).T


# ------------------------------------------------------------------------------ explicitness


def reference_explicitness(codes, factors, seed):
    """disentanglement_lib's explicitness_per_factor (with its scikit-learn's one-vs-rest
    liblinear LogisticRegression()), on vaebench's split."""
    train, test = train_test_split(len(codes), seed)
    mean, std = codes[train].mean(axis=0), codes[train].std(axis=0)
    x_train, x_test = (codes[train] - mean) / std, (codes[test] - mean) / std
    scores = []
    for j in range(factors.shape[1]):
        model = OneVsRestClassifier(LogisticRegression(solver="liblinear")).fit(x_train, factors[train, j])
        labels = MultiLabelBinarizer().fit_transform(factors[test, j][:, None])
        scores.append(roc_auc_score(labels, model.predict_proba(x_test)))
    return float(np.mean(scores))


def test_explicitness_equals_disentanglement_libs_computation():
    factors = sample_factors(1500, (2, 3, 5), seed=0)
    codes = perfect_code(factors, seed=1) + np.random.default_rng(2).normal(size=(1500, 3))
    assert explicitness(codes, factors, seed=3) == pytest.approx(reference_explicitness(codes, factors, 3), abs=1e-9)


def test_explicitness_by_hand():
    # a binary factor read off one code dimension without error: every positive outranks every
    # negative, AUC 1; a constant code gives every row the same probability: AUC 1/2
    factors = sample_factors(300, (2,), seed=4)
    assert explicitness(factors * 2.0 - 0.3, factors) == 1.0
    assert explicitness(np.column_stack([np.full(300, 0.2), np.full(300, 0.2)]), factors) == 0.5


def test_explicitness_of_perfect_and_rotated_codes():
    factors = sample_factors(3000, (2, 3, 4), seed=5)
    perfect = explicitness(perfect_code(factors, 6), factors)
    assert perfect > 0.97
    # a rotation keeps what a linear classifier of all codes can read: explicitness measures
    # information, not its alignment with the axes
    assert explicitness(rotated_code(factors, 6), factors) == pytest.approx(perfect, abs=0.02)


# ------------------------------------------------------------------------------------- IRS


def reference_irs(codes, factors, quantile=0.99):
    """disentanglement_lib's compute_irs written out: factors through its histogram
    discretizer (20 bins), constant dims dropped, scalable_disentanglement_score's loops."""
    ys = np.stack([np.digitize(f, np.histogram(f, 20)[1][:-1]) for f in factors.T.astype(float)], axis=1)
    z = codes[:, codes.var(axis=0) > 0]
    max_dev = np.max(np.abs(z - z.mean(axis=0)), axis=0)
    cum = np.zeros((z.shape[1], ys.shape[1]))
    for i in range(ys.shape[1]):
        values = np.unique(ys[:, i])
        for value in values:
            match = ys[:, i] == value
            cum[:, i] += np.percentile(np.abs(z[match] - z[match].mean(axis=0)), quantile * 100, axis=0)
        cum[:, i] /= len(values)
    return float(np.average((1.0 - cum / max_dev[:, None]).max(axis=1), weights=max_dev))


def test_irs_equals_disentanglement_libs_computation():
    factors = sample_factors(2000, (3, 6, 40), seed=7)  # 40 values: merged into 20 bins
    codes = np.column_stack([rotated_code(factors, 8), np.full(2000, 1.5)])  # and a constant dim
    assert irs(codes, factors) == pytest.approx(reference_irs(codes, factors), abs=1e-12)


def test_irs_by_hand():
    # z = v (one factor, values 0/1): within each value z is constant, so PIDA = 0, IRS = 1;
    # z = v + e with e = +-0.1 alternating: |z - E| = 0.1 for every row, the deviation from
    # the mean is max |z - 0.5| = 0.6: IRS = 1 - 0.1 / 0.6
    v = np.repeat([0, 1], 50)[:, None]
    assert irs(v.astype(float), v) == 1.0
    e = np.tile([0.1, -0.1], 50)[:, None]
    assert irs(v + e, v) == pytest.approx(1 - 0.1 / 0.6, abs=1e-12)
    assert irs(np.full((100, 2), 3.0), v) == 0.0  # every code dimension constant


def test_irs_perfect_and_rotated_codes():
    factors = sample_factors(3000, (3, 6, 8), seed=9)
    assert irs(perfect_code(factors, 10), factors) == pytest.approx(1.0, abs=1e-12)
    assert irs(rotated_code(factors, 10), factors) < 0.6


# --------------------------------------------------------------------------- unsupervised


@pytest.mark.parametrize("rho", [0.0, 0.3, -0.8])
def test_gaussian_scores_closed_forms(rho):
    # unit variances, correlation rho: TC = -1/2 log(1 - rho^2); V = I so the Wasserstein
    # correlation is 2 tr C - 2 tr C^1/2 = 4 - 2 (sqrt(1 + rho) + sqrt(1 - rho))
    cov = np.array([[1.0, rho], [rho, 1.0]])
    assert gaussian_total_correlation(cov) == pytest.approx(-0.5 * math.log(1 - rho**2), abs=1e-12)
    expected = 4 - 2 * (math.sqrt(1 + rho) + math.sqrt(1 - rho))
    assert gaussian_wasserstein_correlation(cov) == pytest.approx(expected, abs=1e-12)


def test_gaussian_scores_of_sample_covariance():
    cov = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])
    scores = unsupervised_scores(with_covariance(cov))
    # disentanglement_lib's own expressions of the same covariance
    tc = 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])
    wc = 2 * np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(cov * np.diag(cov)[:, None])).real
    assert scores["gaussian_total_correlation"] == pytest.approx(tc, rel=1e-9)
    assert scores["gaussian_wasserstein_correlation"] == pytest.approx(wc, rel=1e-9)
    assert scores["gaussian_wasserstein_correlation_norm"] == pytest.approx(wc / np.trace(cov), rel=1e-9)
    # scaling the codes scales the Wasserstein correlation by s^2 and leaves its norm alone
    scaled = unsupervised_scores(3.0 * with_covariance(cov))
    assert scaled["gaussian_wasserstein_correlation"] == pytest.approx(9 * wc, rel=1e-9)
    assert scaled["gaussian_wasserstein_correlation_norm"] == pytest.approx(wc / np.trace(cov), rel=1e-9)
    # a constant dimension is independent of the rest and leaves the Gaussian scores alone
    padded = unsupervised_scores(np.column_stack([with_covariance(cov), np.full(2000, 4.0)]))
    assert padded["gaussian_total_correlation"] == pytest.approx(tc, rel=1e-9)


def test_mutual_info_score_against_sklearn():
    codes = with_covariance(np.array([[1.0, 0.7, 0.0], [0.7, 1.0, 0.2], [0.0, 0.2, 1.0]]), n=3000)
    binned = np.stack([np.digitize(c, np.histogram(c, 20)[1][:-1]) for c in codes.T], axis=1)
    pairs = [sklearn_mutual_info(binned[:, i], binned[:, j]) for i in range(3) for j in range(3) if i != j]
    assert mutual_info_score(codes) == pytest.approx(np.mean(pairs), abs=1e-12)
    # a copied dimension: I(z; z) = H(binned z)
    z = codes[:, :1]
    assert mutual_info_score(np.hstack([z, z])) == pytest.approx(sklearn_mutual_info(binned[:, 0], binned[:, 0]))


def test_unsupervised_scores_of_perfect_and_rotated_codes():
    factors = sample_factors(5000, (3, 6, 8, 5), seed=11)
    perfect = unsupervised_scores(perfect_code(factors, 12))
    rotated = unsupervised_scores(rotated_code(factors, 12))
    # independent factors: every score near 0 (plug-in MI keeps its small positive bias)
    assert perfect["gaussian_total_correlation"] < 0.005
    assert perfect["gaussian_wasserstein_correlation_norm"] < 0.005
    assert perfect["mutual_info_score"] < 0.03
    # the rotation mixes the factors into every dimension but keeps the dimensions
    # uncorrelated: the Gaussian scores (second moments) stay near 0, the mutual information
    # (all dependence) grows
    assert rotated["gaussian_total_correlation"] < 0.005
    assert rotated["mutual_info_score"] > 3 * perfect["mutual_info_score"]


# ------------------------------------------------------------------------------ downstream


def test_downstream_accuracy_by_hand():
    factors = sample_factors(900, (2, 3), seed=13)  # 600 training rows: sizes 10 and 100
    # a constant code: each classifier predicts the training rows' majority class
    constant = np.full((900, 2), 0.5)
    train, test = train_test_split(900, 0)
    for learner in ("logreg", "exact-gbt"):
        scores = downstream_accuracy(constant, factors, learner=learner)
        assert set(scores) == {10, 100}
        for m, score in scores.items():
            majority = [np.bincount(factors[train[:m], j]).argmax() for j in range(2)]
            assert score == pytest.approx(np.mean([np.mean(factors[test, j] == majority[j]) for j in range(2)]))
    # a perfect code: boosted trees read every factor off its dimension from 100 rows on
    assert downstream_accuracy(perfect_code(factors, 14), factors, learner="exact-gbt")[100] == 1.0


def test_downstream_gbt_default_learner_agrees_with_sklearn():
    factors = sample_factors(1600, (3, 4), seed=15)
    codes = rotated_code(factors, 16) + 0.1 * np.random.default_rng(17).normal(size=(1600, 2))
    ours = downstream_accuracy(codes, factors, learner="exact-gbt", train_sizes=(100, 1000))
    theirs = downstream_accuracy(codes, factors, learner="gbt", train_sizes=(100, 1000))
    assert ours == pytest.approx(theirs, abs=0.01)


# ------------------------------------------------------------------- registry, representation


def registry_context(mu, factors, **params):
    return SimpleNamespace(
        dataset=None, mu=mu, logvar=np.full(mu.shape, -2.0), codes=mu, factors=factors, seed=3,
        params=check_metric_params(params), notes={}, cache={},
    )


NEW_METRICS = {
    "explicitness": ["explicitness"],
    "irs": ["irs"],
    "unsupervised": [
        "gaussian_total_correlation", "gaussian_wasserstein_correlation", "gaussian_wasserstein_correlation_norm",
        "mutual_info_score",
    ],
    "downstream_logreg": ["downstream_logreg_10", "downstream_logreg_100"],
    "downstream_gbt": ["downstream_gbt_10", "downstream_gbt_100"],
}


def test_registry_entries_of_the_new_scores():
    factors = sample_factors(600, (2, 3), seed=18)
    context = registry_context(perfect_code(factors, 19), factors)
    for name, keys in NEW_METRICS.items():
        info = METRICS.get(name)
        assert info.family == "disentanglement"
        assert info.needs_factors == (name != "unsupervised")
        values = info.compute(context)
        assert sorted(values) == sorted(keys)
        for key in keys:
            assert info.value(key).higher_is_better == (name != "unsupervised")
    # the scikit-learn version is noted beside every value a scikit-learn model produced
    import sklearn

    assert context.notes["explicitness"] == f"sklearn={sklearn.__version__}"
    assert "downstream_logreg_10" in context.notes and "downstream_gbt_10" not in context.notes


def test_sampled_representation():
    factors = sample_factors(600, (2, 3), seed=20)
    mu = perfect_code(factors, 21)
    both = registry_context(mu, factors, disentanglement_representation="both")
    values = METRICS.get("mig").compute(both)
    sampled = sampled_codes(mu, both.logvar, both.seed)
    # z = mu + exp(logvar / 2) eps: the standardised difference is standard normal
    eps = (sampled - mu) / np.exp(both.logvar / 2)
    assert abs(eps.mean()) < 0.05 and abs(eps.std() - 1) < 0.05
    from vaebench.metrics.disentanglement import mig

    assert values == {"mig": mig(mu, factors), "mig_sampled": mig(sampled, factors)}
    # every score of a run sees the same draw; "sampled" alone reports only suffixed values
    only = registry_context(mu, factors, disentanglement_representation="sampled")
    assert set(METRICS.get("dci").compute(only)) == {"dci_d_sampled", "dci_c_sampled", "dci_i_sampled"}
    assert np.array_equal(only.cache["disentanglement.sampled_codes.test_split"], sampled)
