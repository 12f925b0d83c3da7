"""DCI disentanglement, completeness and informativeness (Eastwood & Williams 2018, "A
Framework for the Quantitative Evaluation of Disentangled Representations", ICLR, Sec. 2).

One classifier per factor j predicts v_j from all codes; its feature importances form column
j of the importance matrix R (D x K). With P_ij = R_ij / sum_k R_ik and
P~_ij = R_ij / sum_l R_lj::

    D_i = 1 - H_K(P_i.)                       (entropy with log base K)
    disentanglement = sum_i rho_i D_i,        rho_i = sum_j R_ij / sum_ij R_ij
    C_j = 1 - H_D(P~_.j)                      (entropy with log base D)
    completeness    = sum_j w_j C_j,          w_j = sum_i R_ij / sum_ij R_ij
    informativeness = 1/K sum_j (held-out accuracy of the predictor of v_j)

All three in [0, 1]; higher is better.

disentanglement_lib (``evaluation/metrics/dci.py``, gin ``dci.gin``): ``num_train = 10000``,
``num_test = 5000`` points; the learner is ``GradientBoostingClassifier()`` with its defaults
(100 stages of depth-3 trees, learning rate 0.1, :mod:`.learners.boosting`); R = |feature
importances|; ``ENTROPY_EPS`` = 1e-11 is added to R inside the entropies; an all-zero R gives
weights 1. Completeness is weighted by each factor's share of the importance: tree-ensemble
importances sum to one per factor, so that is the plain mean over factors unless a predictor
uses no code at all (then that factor gets weight 0; an all-zero R scores 0).

Departures from disentanglement_lib:

- rows (:mod:`.protocol`): by default 10,000 fresh training and 5,000 fresh test samples per
  evaluation seed, as disentanglement_lib, drawn once per run for every score (its scores draw
  one after another); with ``disentanglement_protocol = "test_split"`` the test split, split at
  random into ``TRAIN_FRACTION`` (2/3) training and 1/3 test rows;
- the default learner "exact-gbt" is :mod:`.learners.boosting` with the exact splitter of
  :mod:`.learners.exact_tree`: the trees, importances and predictions of
  ``GradientBoostingClassifier()``, without its per-node sorting. Like sklearn it breaks exact
  ties between features (6-8% of the splits on the tests' codes) at random, seeded with
  ``seed``, but with its own random numbers, so the two agree as two sklearn fits with
  different ``random_state`` do: within 0.005 on D, C and I on the tests' noisy, mixed and
  realistic codes (sklearn against itself: up to 0.005 there, 0.01 on some codes).
  ``"gbt"`` fits ``GradientBoostingClassifier(random_state=seed)`` itself; ``"hist-gbt"`` bins
  each code dimension into 256 quantile bins first (:mod:`.learners.histogram_tree`), which
  scored disentanglement and completeness up to 0.045 lower on noisy codes;
- single-valued factors are ignored; a factor with one class in the training rows is
  predicted as that class and uses no code; with one factor every code is trivially
  disentangled (D_i = 1), with one code dimension every factor is complete (C_j = 1).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from vaebench.metrics.disentanglement.checks import check_choice, check_inputs
from vaebench.metrics.disentanglement.information import entropy
from vaebench.metrics.disentanglement.learners.boosting import TreeGrower, boosted_trees
from vaebench.metrics.disentanglement.learners.exact_tree import ExactTreeGrower
from vaebench.metrics.disentanglement.learners.histogram_tree import HistogramTreeGrower
from vaebench.metrics.disentanglement.protocol import (
    PROTOCOL_PARAMS,
    scored_rows,
    scored_samples,
    sklearn_note,
    train_test_split,
)
from vaebench.metrics.disentanglement.representation import VALUE_SUFFIXES
from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric
from vaebench.params import Param

#: "exact-gbt" (default): GradientBoostingClassifier()'s model with exact splits, vectorised;
#: "hist-gbt": the same model on 256 quantile bins per code (approximate); "gbt":
#: sklearn's GradientBoostingClassifier itself, as disentanglement_lib.
LEARNERS = ("exact-gbt", "hist-gbt", "gbt")
LEARNER = "exact-gbt"
#: Added to the importance matrix inside the entropies (disentanglement_lib: 1e-11).
ENTROPY_EPS = 1e-11


def dci(codes: Any, factors: Any, *, seed: int = 0, learner: str = LEARNER,
        train_size: int | None = None) -> dict[str, float]:
    """DCI disentanglement, completeness and informativeness (Eastwood & Williams 2018).

    Fits one gradient-boosted classifier per factor on a random ``TRAIN_FRACTION`` of the
    rows (``seed``), or on the first ``train_size`` rows when it is given, takes its
    impurity-based feature importances as the columns of R (D x K) and its held-out accuracy
    as informativeness; disentanglement and completeness are the importance-weighted entropy
    scores of the module docstring. ``learner``: "exact-gbt" (default), "hist-gbt" or "gbt"
    (see the module docstring).

    Returns ``{"disentanglement": ..., "completeness": ..., "informativeness": ...}``.
    """
    check_choice(learner, LEARNERS, "DCI learner")
    codes, labels = check_inputs(codes, factors)
    train, test = train_test_split(codes.shape[0], seed, train_size)
    importance, accuracy = importance_matrix(codes[train], labels[train], codes[test], labels[test], learner, seed)
    return {
        "disentanglement": disentanglement(importance),
        "completeness": completeness(importance),
        "informativeness": float(np.mean(accuracy)),
    }


def importance_matrix(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, learner: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Importance matrix R (D, K) and held-out accuracy (K,) of the per-factor predictors."""
    d, k = x_train.shape[1], y_train.shape[1]
    importance = np.zeros((d, k))
    accuracy = np.zeros(k)
    for j in range(k):
        classes = np.unique(y_train[:, j])
        if len(classes) == 1:  # nothing to learn: predict the one class, use no code
            accuracy[j] = np.mean(y_test[:, j] == classes[0])
            continue
        if learner == "gbt":
            from sklearn.ensemble import GradientBoostingClassifier

            model = GradientBoostingClassifier(random_state=seed).fit(x_train, y_train[:, j])
            importance[:, j] = np.abs(model.feature_importances_)
            prediction = model.predict(x_test)
        else:
            grower: Callable[[np.ndarray, np.ndarray], TreeGrower] = (
                functools.partial(ExactTreeGrower, seed=seed) if learner == "exact-gbt" else HistogramTreeGrower)
            importance[:, j], prediction = boosted_trees(x_train, y_train[:, j], x_test, grower)
        accuracy[j] = np.mean(prediction == y_test[:, j])
    return importance, accuracy


def disentanglement(importance: np.ndarray) -> float:
    """sum_i rho_i (1 - H_K(P_i.)) of the (D, K) importance matrix (module docstring)."""
    d, k = importance.shape
    if k == 1:
        per_code = np.ones(d)  # one factor: every code is trivially specific
    else:
        per_code = 1.0 - entropy(importance + ENTROPY_EPS, axis=1, base=k)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    rho = weights.sum(axis=1) / weights.sum()
    return float(np.sum(per_code * rho))


def completeness(importance: np.ndarray) -> float:
    """sum_j w_j (1 - H_D(P~_.j)) of the (D, K) importance matrix (module docstring)."""
    d, k = importance.shape
    if d == 1:
        per_factor = np.ones(k)
    else:
        per_factor = 1.0 - entropy(importance + ENTROPY_EPS, axis=0, base=d)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    share = weights.sum(axis=0) / weights.sum()
    return float(np.sum(per_factor * share))


# value name (before the representation's suffix) -> the score of `dci` it holds
VALUE_NAMES = {"dci_d": "disentanglement", "dci_c": "completeness", "dci_i": "informativeness"}


@register_metric(
    "dci", family="disentanglement",
    description="DCI disentanglement, completeness, informativeness (Eastwood & Williams 2018) from "
    "gradient-boosted trees",
    values=[
        MetricValue(name + suffix, higher_is_better=True, description=what)
        for suffix in VALUE_SUFFIXES
        for name, what in VALUE_NAMES.items()
    ],
    needs_factors=True,
    params=[
        Param("dci_learner", LEARNER, choices=LEARNERS,
              doc="exact-gbt: GradientBoostingClassifier's trees, exact and vectorised; hist-gbt: on 256 "
              "quantile bins (approximate); gbt: scikit-learn's GradientBoostingClassifier"),
        *PROTOCOL_PARAMS,
    ],
    abs_tol=0.05, rel_tol=0.0,
    min_images=scored_rows(2),
)
def _compute_dci(ctx: EvaluationContext) -> dict[str, float]:
    learner = ctx.params["dci_learner"]
    values = {}
    for sample in scored_samples(ctx):
        scores = dci(sample.codes, sample.factors, seed=ctx.seed, learner=learner, train_size=sample.train_size)
        names = {name + sample.suffix: score for name, score in VALUE_NAMES.items()}
        values.update({name: scores[score] for name, score in names.items()})
        if learner == "gbt":
            ctx.notes.update({name: sklearn_note() for name in names})
    return values
