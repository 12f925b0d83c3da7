"""Downstream-task scores (Locatello et al. 2019, "Challenging Common Assumptions in the
Unsupervised Learning of Disentangled Representations", ICML, Sec. 5.4), as disentanglement_lib's
``evaluation/metrics/downstream_task.py``: for each factor j a classifier trained on m rows
predicts v_j on held-out rows::

    downstream_<learner>_<m> = 1/K sum_j (held-out accuracy of the classifier of v_j trained on m rows)

for m in ``TRAIN_SIZES`` = 10, 100, 1000, 10000 (disentanglement_lib's ``m:mean_test_accuracy``).
In [0, 1]; higher is better.

Learners (disentanglement_lib's ``utils.py``; gin ``downstream_task_logistic_regression.gin``
and ``downstream_task_boosted_trees.gin``, ``num_test = 5000`` points):

- "logreg": ``LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5))`` on the raw codes, choosing
  C among 10 values by 5-fold cross-validated accuracy (``LOGREG_CS``, ``LOGREG_FOLDS``);
- "gbt": ``GradientBoostingClassifier()``, here DCI's default learner (:mod:`.learners.boosting`
  with the exact splits of :mod:`.learners.exact_tree`); ``downstream_gbt_learner = "gbt"``
  fits scikit-learn's own.

Departures from disentanglement_lib:

- rows (:mod:`.protocol`): by default 10,000 fresh training and 5,000 fresh test samples per
  evaluation seed; the classifier for m trains on the first m training rows (the training
  sets are nested, where disentanglement_lib draws each afresh); with
  ``disentanglement_protocol = "test_split"`` the training rows are a random ``TRAIN_FRACTION``
  (2/3) of the test split and the test rows the rest; a training size larger than the
  training rows is not scored (no value);
- the logistic regression is scikit-learn's current multinomial ``LogisticRegressionCV``
  (scoring by accuracy, as its old default); the scikit-learn of disentanglement_lib's time
  fitted one-vs-rest models instead;
- a factor with one class among the m training rows is predicted as that class; single-valued
  factors are ignored.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from vaebench.metrics.disentanglement.checks import check_choice, check_inputs
from vaebench.metrics.disentanglement.learners.boosting import boosted_trees
from vaebench.metrics.disentanglement.learners.exact_tree import ExactTreeGrower
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

#: Training set sizes (disentanglement_lib: ``downstream_task.num_train = [10, 100, 1000, 10000]``).
TRAIN_SIZES = (10, 100, 1000, 10_000)
#: LogisticRegressionCV's grid of 10 inverse regularisations and its 5 folds.
LOGREG_CS = 10
LOGREG_FOLDS = 5
#: "logreg": cross-validated logistic regression; "exact-gbt" / "gbt": gradient-boosted trees,
#: exact and vectorised / scikit-learn's GradientBoostingClassifier.
LEARNERS = ("logreg", "exact-gbt", "gbt")


def _fit_predict(learner: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """Predicted labels of x_test from a classifier of y_train on x_train."""
    classes = np.unique(y_train)
    if len(classes) == 1:
        return np.full(len(x_test), classes[0])
    if learner == "exact-gbt":
        return boosted_trees(x_train, y_train, x_test, functools.partial(ExactTreeGrower, seed=seed))[1]
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)  # sklearn 1.9's notices of changing defaults
        if learner == "gbt":
            from sklearn.ensemble import GradientBoostingClassifier

            model = GradientBoostingClassifier(random_state=seed)
        else:
            from sklearn.linear_model import LogisticRegressionCV
            from sklearn.model_selection import KFold

            model = LogisticRegressionCV(Cs=LOGREG_CS, cv=KFold(n_splits=LOGREG_FOLDS), scoring="accuracy")
        return model.fit(x_train, y_train).predict(x_test)


def downstream_accuracy(
    codes: Any, factors: Any, *, learner: str = "logreg", train_sizes: tuple[int, ...] = TRAIN_SIZES, seed: int = 0,
    train_size: int | None = None,
) -> dict[int, float]:
    """{m: mean over factors of the held-out accuracy of ``learner`` trained on m rows} for
    every m in ``train_sizes`` that the training rows hold (module docstring). The training rows
    are a random ``TRAIN_FRACTION`` of the rows (``seed``), or the first ``train_size`` rows when
    it is given; the test rows are the rest."""
    check_choice(learner, LEARNERS, "downstream learner")
    codes, labels = check_inputs(codes, factors)
    train, test = train_test_split(codes.shape[0], seed, train_size)
    scores = {}
    for m in train_sizes:
        if m > len(train):
            continue
        rows = train[:m]
        accuracy = [
            np.mean(_fit_predict(learner, codes[rows], labels[rows, j], codes[test], seed) == labels[test, j])
            for j in range(labels.shape[1])
        ]
        scores[m] = float(np.mean(accuracy))
    return scores


def _register(name: str, what: str, params: list[Param], learner_of: Callable[[EvaluationContext], str], *,
              opt_in: bool = False) -> None:
    @register_metric(
        name, family="disentanglement", opt_in=opt_in,
        description=f"downstream task (Locatello et al. 2019): {what} predicting the factors from 10 to 10,000 "
        "training rows",
        values=[MetricValue(f"{name}_{m}{suffix}", higher_is_better=True)
                for suffix in VALUE_SUFFIXES for m in TRAIN_SIZES],
        needs_factors=True, params=[*params, *PROTOCOL_PARAMS],
        abs_tol=0.03, rel_tol=0.0, min_images=scored_rows(15),  # 10 training rows (2/3) and a test row
    )
    def _compute(ctx: EvaluationContext) -> dict[str, float]:
        learner = learner_of(ctx)
        values = {}
        for sample in scored_samples(ctx):
            scores = downstream_accuracy(sample.codes, sample.factors, learner=learner, seed=ctx.seed,
                                         train_size=sample.train_size)
            for m, accuracy in scores.items():
                values[f"{name}_{m}{sample.suffix}"] = accuracy
                if learner != "exact-gbt":
                    ctx.notes[f"{name}_{m}{sample.suffix}"] = sklearn_note()
        return values


# opt-in: sklearn's LogisticRegressionCV is slow at the quick suite's size (README, Performance)
_register("downstream_logreg", "cross-validated logistic regression", [], lambda ctx: "logreg", opt_in=True)
_register(
    "downstream_gbt", "gradient-boosted trees",
    [Param("downstream_gbt_learner", "exact-gbt", choices=("exact-gbt", "gbt"),
           doc="exact-gbt: GradientBoostingClassifier's trees, exact and vectorised; gbt: scikit-learn's own")],
    lambda ctx: ctx.params["downstream_gbt_learner"],
)
