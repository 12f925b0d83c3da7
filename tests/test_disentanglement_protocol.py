"""disentanglement_lib's protocol: fresh samples of the factor grid per evaluation seed, the
first num_train rows training the predictors and the other num_test testing them, and the
test-split mode for datasets without a simulator."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.svm import LinearSVC

from disentanglement_codes import sample_factors
from vaebench import data
from vaebench.metrics import METRICS, EvaluationContext
from vaebench.metrics.disentanglement import dci, mig, separated_attribute_predictability
from vaebench.metrics.disentanglement.protocol import PROTOCOL_PARAMS, scored_samples, train_test_split


class ProjectionEncoder(torch.nn.Module):
    """A fixed 'model': mu = mean pixel of each of four image quadrants, logvar = -2; counts its calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def encode(self, x):
        self.calls += 1
        h = x.shape[-1] // 2
        quadrants = [x[..., :h, :h], x[..., :h, h:], x[..., h:, :h], x[..., h:, h:]]
        mu = torch.stack([q.mean(dim=(1, 2, 3)) for q in quadrants], dim=1)
        return mu, torch.full_like(mu, -2.0)


def quadrant_means(images: np.ndarray) -> np.ndarray:
    """The same code computed independently in numpy."""
    h = images.shape[-1] // 2
    blocks = [images[..., :h, :h], images[..., :h, h:], images[..., h:, :h], images[..., h:, h:]]
    return np.stack([b.mean(axis=(1, 2, 3), dtype=np.float64) for b in blocks], axis=1)


@pytest.fixture(scope="module")
def dsprites():
    return data.get("dsprites", size=32, test_size=200)


def context(dataset, seed=0, **params):
    """The context of a disentanglement score, its protocol's parameters complete (as `MetricInfo.compute`
    hands them to the score), so `scored_samples` reads them directly too."""
    model = ProjectionEncoder()
    images = torch.from_numpy(dataset.images(dataset.test_indices))
    mu = quadrant_means(images.numpy())
    return EvaluationContext(
        model=model, dataset=dataset, test_indices=dataset.test_indices, test_images=images, mu=mu,
        logvar=np.full(mu.shape, -2.0), factors=dataset.factors(dataset.test_indices) if dataset.has_factors else None,
        seed=seed, device=torch.device("cpu"), cache_dir=Path("."),
        params={**{p.key: p.default for p in PROTOCOL_PARAMS}, **params},
    )


def test_train_size_takes_the_first_rows_and_the_random_split_stays():
    train, test = train_test_split(9, seed=0, train_size=6)
    assert train.tolist() == list(range(6)) and test.tolist() == [6, 7, 8]
    train, test = train_test_split(9, seed=0)
    assert len(train) == 6 and sorted([*train, *test]) == list(range(9)) and train.tolist() != list(range(6))
    with pytest.raises(ValueError, match="train_size must be between 1 and 8"):
        train_test_split(9, seed=0, train_size=9)


def test_dci_with_a_train_size_equals_gradient_boosting_on_those_rows():
    factors = sample_factors(900, (3, 4), seed=1)
    codes = factors + np.random.default_rng(2).normal(scale=0.7, size=factors.shape) @ [[1.0, 0.3], [0.2, 1.0]]
    scores = dci(codes, factors, learner="gbt", train_size=600)
    importance = np.stack([
        np.abs(GradientBoostingClassifier(random_state=0).fit(codes[:600], factors[:600, j]).feature_importances_)
        for j in range(2)
    ], axis=1)  # (D, K)
    p_code = importance / importance.sum(axis=1, keepdims=True)
    d_i = 1 + np.sum(p_code * np.log(p_code + 1e-11), axis=1) / math.log(2)
    p_factor = importance / importance.sum(axis=0, keepdims=True)
    c_j = 1 + np.sum(p_factor * np.log(p_factor + 1e-11), axis=0) / math.log(2)
    assert scores["disentanglement"] == pytest.approx(np.sum(d_i * importance.sum(1) / importance.sum()), abs=1e-6)
    assert scores["completeness"] == pytest.approx(np.sum(c_j * importance.sum(0) / importance.sum()), abs=1e-6)
    accuracy = [
        np.mean(GradientBoostingClassifier(random_state=0).fit(codes[:600], factors[:600, j])
                .predict(codes[600:]) == factors[600:, j])
        for j in range(2)
    ]
    assert scores["informativeness"] == pytest.approx(np.mean(accuracy), abs=1e-9)


def test_sap_with_a_train_size_equals_linear_svms_on_those_rows():
    factors = sample_factors(600, (2, 3), seed=3)
    codes = factors[:, ::-1] + np.random.default_rng(4).normal(scale=0.4, size=factors.shape)
    matrix = np.array([[
        np.mean(LinearSVC(C=0.01, class_weight="balanced").fit(codes[:400, i:i + 1], factors[:400, j])
                .predict(codes[400:, i:i + 1]) == factors[400:, j])
        for j in range(2)] for i in range(2)])
    top = np.sort(matrix, axis=0)
    expected = np.mean(top[-1] - top[-2])
    assert separated_attribute_predictability(codes, factors, train_size=400) == pytest.approx(expected, abs=0.01)


def test_fresh_rows_are_uniform_draws_of_the_grid_encoded_once(dsprites):
    ctx = context(dsprites, disentanglement_num_train=3000, disentanglement_num_test=1000)
    (sample,) = scored_samples(ctx)
    assert sample.codes.shape == (4000, 4) and sample.train_size == 3000
    # uniform and independent over the grid: every factor's values equally often
    for column, size in zip(sample.factors.T, dsprites.factor_sizes):
        assert chisquare(np.bincount(column, minlength=size)).pvalue > 1e-3
    assert len(np.unique(dsprites.index_of(sample.factors))) > 3900  # not the 200 test images
    # the codes are the model's codes of those images, computed independently here
    images = data.get("dsprites", size=32).images(dsprites.index_of(sample.factors))
    np.testing.assert_allclose(sample.codes, quadrant_means(images), rtol=1e-6, atol=1e-7)
    calls = ctx.model.calls
    values = {**METRICS.get("mig").compute(ctx), **METRICS.get("dci").compute(ctx)}
    assert ctx.model.calls == calls  # every score reuses the one encoding
    # MIG on the num_train rows, DCI trained on them and tested on the rest
    assert values["mig"] == mig(sample.codes[:3000], sample.factors[:3000])
    expected = dci(sample.codes, sample.factors, seed=ctx.seed, train_size=3000)
    assert values["dci_d"] == expected["disentanglement"] and values["dci_i"] == expected["informativeness"]


def test_each_evaluation_seed_draws_its_own_rows_and_a_seed_repeats_exactly(dsprites):
    params = {"disentanglement_num_train": 500, "disentanglement_num_test": 100}
    first, again, other = (scored_samples(context(dsprites, seed=s, **params))[0] for s in (5, 5, 6))
    assert np.array_equal(first.factors, again.factors) and np.array_equal(first.codes, again.codes)
    assert not np.array_equal(first.factors, other.factors)
    mig_of = [METRICS.get("mig").compute(context(dsprites, seed=s, **params))["mig"] for s in range(4)]
    assert len(set(mig_of)) == 4  # the spread over seeds includes the ground truth's sampling


def test_test_split_protocol_scores_the_encoded_test_split(dsprites):
    ctx = context(dsprites, disentanglement_protocol="test_split", disentanglement_representation="both")
    mean, sampled = scored_samples(ctx)
    assert mean.codes is ctx.mu and mean.train_size is None and sampled.suffix == "_sampled"
    values = METRICS.get("mig").compute(ctx)
    assert values["mig"] == mig(ctx.mu, ctx.factors)
    assert ctx.model.calls == 0  # nothing encoded beyond the harness's test split


def test_a_dataset_without_a_simulator_uses_its_test_split():
    digits = data.get("digits")
    ctx = context(digits)  # the default protocol asks for fresh rows; digits has no factor grid
    (sample,) = scored_samples(ctx)
    assert sample.codes is ctx.mu and sample.factors is None and sample.train_size is None
    assert set(METRICS.get("unsupervised").compute(ctx)) >= {"gaussian_total_correlation"}
