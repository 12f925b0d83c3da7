"""Explicitness (Ridgeway & Mozer 2018, "Learning Deep Disentangled Embeddings with the
F-Statistic Loss", NeurIPS, Sec. 3), as in disentanglement_lib's
``evaluation/metrics/modularity_explicitness.py``: for each factor j, a one-vs-rest logistic
regression predicts v_j from all standardised codes; with p_c(x) its predicted probability of
class c (the one-vs-rest sigmoids normalised to sum 1)::

    explicitness_j = 1/|C_j| sum_{c in C_j} AUC( p_c(x) on the test rows, 1[v_j = c] )
    explicitness   = 1/K sum_j explicitness_j

AUC is the area under the ROC curve (the probability that a random positive scores above a
random negative, ties counting one half; ``sklearn.metrics.roc_auc_score``, macro-averaged
over the classes). In [0, 1]; 0.5 is chance; higher is better.

disentanglement_lib (gin ``modularity_explicitness.gin``): ``num_train = 10000``, ``num_test =
5000`` points; codes standardised with the training rows' mean and standard deviation;
``LogisticRegression()`` with the defaults of the scikit-learn of its time (0.20): liblinear,
one-vs-rest, C = 1 (``LOGREG_C``), L2 penalty, intercept_scaling 1. Current scikit-learn's
default is a multinomial model; this module keeps disentanglement_lib's one-vs-rest
liblinear model (``OneVsRestClassifier(LogisticRegression(solver="liblinear"))``).

Departures from disentanglement_lib:

- rows (:mod:`.protocol`): by default 10,000 fresh training and 5,000 fresh test samples per
  evaluation seed, as disentanglement_lib, shared with the other scores of the run; with
  ``disentanglement_protocol = "test_split"`` the test split, split at random 2/3 / 1/3;
- a code dimension that is constant on the training rows is left at 0 after standardising
  (disentanglement_lib divides by its zero deviation);
- the AUC averages over the classes present in both the training and the test rows (with
  a class missing from either, disentanglement_lib's binarised labels and probabilities do
  not line up); a factor with one class in training scores 0.5 (chance);
- single-valued factors are ignored.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from vaebench.metrics.disentanglement.checks import check_inputs
from vaebench.metrics.disentanglement.protocol import (
    PROTOCOL_PARAMS,
    scored_rows,
    scored_samples,
    sklearn_note,
    train_test_split,
)
from vaebench.metrics.disentanglement.representation import VALUE_SUFFIXES
from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric

#: Inverse regularisation of the logistic regressions (sklearn's default C = 1).
LOGREG_C = 1.0


def standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets standardised with the training rows' mean and standard deviation (ddof 0);
    a dimension constant in training is centred only."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def one_vs_rest_logistic_regression(x_train: np.ndarray, y_train: np.ndarray) -> Any:
    """disentanglement_lib's classifier: liblinear logistic regressions, one per class."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return OneVsRestClassifier(LogisticRegression(C=LOGREG_C, solver="liblinear")).fit(x_train, y_train)


def macro_auc(y_true: np.ndarray, probability: np.ndarray, classes: np.ndarray) -> float:
    """Mean over ``classes`` present in ``y_true`` (with both positives and negatives) of the
    ROC-AUC of column c of ``probability`` for the labels 1[y_true = classes[c]]."""
    from sklearn.metrics import roc_auc_score

    aucs = [
        roc_auc_score(y_true == label, probability[:, c])
        for c, label in enumerate(classes)
        if 0 < np.sum(y_true == label) < len(y_true)
    ]
    return float(np.mean(aucs)) if aucs else 0.5


def explicitness(codes: Any, factors: Any, *, seed: int = 0, train_size: int | None = None) -> float:
    """Explicitness (Ridgeway & Mozer 2018): mean over factors of the macro ROC-AUC of a
    one-vs-rest logistic regression on the standardised codes (module docstring), trained on
    a random ``TRAIN_FRACTION`` of the rows (``seed``), or on the first ``train_size`` rows when it
    is given, and tested on the rest. In [0, 1], 0.5 is chance; higher is better."""
    codes, labels = check_inputs(codes, factors)
    train, test = train_test_split(codes.shape[0], seed, train_size)
    x_train, x_test = standardize(codes[train], codes[test])
    scores = []
    for y_train, y_test in zip(labels[train].T, labels[test].T):
        classes = np.unique(y_train)
        if len(classes) == 1:
            scores.append(0.5)
            continue
        model = one_vs_rest_logistic_regression(x_train, y_train)
        scores.append(macro_auc(y_test, model.predict_proba(x_test), classes))
    return float(np.mean(scores))


@register_metric(
    "explicitness", family="disentanglement",
    description="explicitness (Ridgeway & Mozer 2018): ROC-AUC of one-vs-rest logistic regressions",
    values=[MetricValue("explicitness" + suffix, higher_is_better=True) for suffix in VALUE_SUFFIXES],
    needs_factors=True, params=list(PROTOCOL_PARAMS),
    abs_tol=0.02, rel_tol=0.0,
    min_images=scored_rows(2),
)
def _compute_explicitness(ctx: EvaluationContext) -> dict[str, float]:
    values = {}
    for sample in scored_samples(ctx):
        values["explicitness" + sample.suffix] = explicitness(
            sample.codes, sample.factors, seed=ctx.seed, train_size=sample.train_size
        )
        ctx.notes["explicitness" + sample.suffix] = sklearn_note()
    return values
