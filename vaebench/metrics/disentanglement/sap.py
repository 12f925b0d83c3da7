"""Separated attribute predictability (Kumar et al. 2018, "Variational Inference of
Disentangled Latent Concepts from Unlabeled Observations", ICLR, Sec. 3)::

    S_ij = held-out accuracy of a classifier predicting factor v_j from code dimension z_i alone
    SAP  = 1/K sum_j [ S_(1)j - S_(2)j ]          (the top two entries of column j)

disentanglement_lib's discrete-factor variant (``evaluation/metrics/sap_score.py``, gin
``sap_score.gin``): ``LinearSVC(C=0.01, class_weight="balanced")`` per (code dimension,
factor) pair (``SVM_C``), 10000 training and 5000 test points. Its best value is below 1:
the runner-up code still scores chance accuracy (about 1/n_classes), and a one-feature linear
one-vs-rest classifier recovers only the extreme classes of a factor with many values, so
even a perfect code scores about 0.2 on dSprites' factors (shape and scale carry the score;
orientation and position add little). In [0, 1); higher is better.

Departures from disentanglement_lib:

- rows (:mod:`.protocol`): by default 10,000 fresh training and 5,000 fresh test samples per
  evaluation seed, as disentanglement_lib, drawn once per run for every score (its scores draw
  one after another); with ``disentanglement_protocol = "test_split"`` the test split, split at
  random into ``TRAIN_FRACTION`` (2/3) training and 1/3 test rows;
- the default learner "svm1d" (:mod:`.learners.svm1d`) solves LinearSVC's optimization
  problem to convergence for one feature, vectorised over all problems; LinearSVC itself
  (liblinear, which stops at a tolerance) stays selectable as ``learner="linearsvc"`` (slower:
  README, Performance). They differ only where liblinear stops short of the optimum: on well-scaled codes
  a few test points at most; on badly conditioned ones (e.g. codes offset by 1000) single
  accuracies can move by a few hundredths, and "svm1d" is the one at the optimum;
- single-valued factors are ignored; with a single code dimension the runner-up scores 0.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from vaebench.metrics.disentanglement.checks import check_choice, check_inputs
from vaebench.metrics.disentanglement.learners.svm1d import svm1d_score_matrix
from vaebench.metrics.disentanglement.protocol import (
    PROTOCOL_PARAMS,
    scored_rows,
    scored_samples,
    sklearn_note,
    top_two,
    train_test_split,
)
from vaebench.metrics.disentanglement.representation import VALUE_SUFFIXES
from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric
from vaebench.params import Param

#: Regularization of the per-(code, factor) linear SVM (disentanglement_lib: C=0.01,
#: class_weight="balanced", squared hinge loss, L2 penalty, intercept scaling 1).
SVM_C = 0.01
#: "svm1d" (default): LinearSVC's problem solved exactly (:mod:`.learners.svm1d`);
#: "linearsvc": sklearn's LinearSVC itself, as disentanglement_lib.
LEARNERS = ("svm1d", "linearsvc")
LEARNER = "svm1d"


def separated_attribute_predictability(codes: Any, factors: Any, *, seed: int = 0, learner: str = LEARNER,
                                       train_size: int | None = None) -> float:
    """SAP (Kumar et al. 2018), disentanglement_lib's discrete-factor variant.

    S_ij is the held-out accuracy of a linear SVM predicting factor j from code dimension i
    alone (squared hinge loss, L2 penalty on weight and intercept, C = ``SVM_C``,
    class_weight "balanced", one-vs-rest for more than two classes), trained on a random
    ``TRAIN_FRACTION`` of the rows (``seed``), or on the first ``train_size`` rows when it is
    given, and tested on the rest;
    SAP = 1/K sum_j (S_(1)j - S_(2)j). In [0, 1), higher is better; even a perfect code
    stays well below 1 (see the module docstring). ``learner``: "svm1d" or "linearsvc".
    """
    check_choice(learner, LEARNERS, "SAP learner")
    codes, labels = check_inputs(codes, factors)
    train, test = train_test_split(codes.shape[0], seed, train_size)
    scores = score_matrix(codes[train], labels[train], codes[test], labels[test], learner, seed)
    first, second = top_two(scores)
    return float(np.mean(first - second))


sap = separated_attribute_predictability


def score_matrix(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, learner: str, seed: int = 0
) -> np.ndarray:
    """(D, K) held-out accuracies S_ij of the per-(code dim, factor) linear SVMs."""
    if learner == "linearsvc":
        return _linearsvc_score_matrix(x_train, y_train, x_test, y_test, seed)
    return svm1d_score_matrix(x_train, y_train, x_test, y_test, SVM_C)


def _linearsvc_score_matrix(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seed: int
) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    d, k = x_train.shape[1], y_train.shape[1]
    scores = np.zeros((d, k))
    for j in range(k):
        classes = np.unique(y_train[:, j])
        for i in range(d):
            if len(classes) == 1:
                prediction = np.full(len(x_test), classes[0])
            else:
                model = LinearSVC(C=SVM_C, class_weight="balanced", random_state=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model.fit(x_train[:, i : i + 1], y_train[:, j])
                prediction = model.predict(x_test[:, i : i + 1])
            scores[i, j] = np.mean(prediction == y_test[:, j])
    return scores


@register_metric(
    "sap", family="disentanglement",
    description="separated attribute predictability (Kumar et al. 2018), one-feature linear SVMs",
    values=[MetricValue("sap" + suffix, higher_is_better=True) for suffix in VALUE_SUFFIXES],
    needs_factors=True,
    params=[
        Param("sap_learner", LEARNER, choices=LEARNERS,
              doc="svm1d: LinearSVC's problem solved exactly; linearsvc: scikit-learn's LinearSVC"),
        *PROTOCOL_PARAMS,
    ],
    abs_tol=0.03, rel_tol=0.0,
    min_images=scored_rows(3),  # its test_split protocol trains on 2 of 3 rows: each SVM needs two
)
def _compute_sap(ctx: EvaluationContext) -> dict[str, float]:
    learner = ctx.params["sap_learner"]
    values = {}
    for sample in scored_samples(ctx):
        values["sap" + sample.suffix] = separated_attribute_predictability(
            sample.codes, sample.factors, seed=ctx.seed, learner=learner, train_size=sample.train_size
        )
        if learner == "linearsvc":
            ctx.notes["sap" + sample.suffix] = sklearn_note()
    return values
