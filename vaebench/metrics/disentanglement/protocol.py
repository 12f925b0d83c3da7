"""disentanglement_lib's evaluation protocol: which rows the scores see and how they are split,
the gap between the best two entries, and the note that records the scikit-learn version
beside a value a scikit-learn model produced.

The rows (``disentanglement_protocol``)

- "fresh" (default, for datasets with a simulator: every ``GroundTruthDataset``, whose images
  are a function of their factors): as disentanglement_lib's ``generate_batch_factor_code``,
  ``disentanglement_num_train + disentanglement_num_test`` factor vectors (10,000 + 5,000, its
  gin defaults) are drawn uniformly and independently from the factor grid with the run's
  evaluation seed, their images rendered (or gathered from the materialised cache) and
  encoded in batches, once per run and shared by every score. Scores that train a predictor
  (SAP, DCI, explicitness, downstream tasks) train on the first ``num_train`` rows and test on
  the other ``num_test``; scores that only need one sample (MIG, modularity, IRS, the
  unsupervised scores) use the first ``num_train`` rows, as disentanglement_lib's
  ``num_train = 10000`` of those scores. Each evaluation seed draws its own sample, so the
  spread over seeds includes the sampling of the ground truth, as in the published tables.
- "test_split": the test split the harness encoded once (any size, and the only choice for a
  dataset whose factors are labels without a simulator); predictors train on a random
  ``TRAIN_FRACTION`` (2/3) of its rows (``np.random.default_rng(seed).permutation``) and test
  on the rest.

Departures from disentanglement_lib that remain: it seeds every score with
``evaluation.random_seed = 0`` (the same sample for every model); vaebench seeds with the
run's evaluation seed. Its scores draw their samples one after another from one generator,
so its MIG sample is not the same as its DCI training sample; here all scores of a run share
one sample. The pure functions (``dci(codes, factors, ...)`` and the rest) take whatever rows
they are given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vaebench.metrics.disentanglement.checks import check_seed
from vaebench.metrics.disentanglement.representation import REPRESENTATION_PARAM, SUFFIX, sampled_codes
from vaebench.metrics.registry import EvaluationContext
from vaebench.params import Param

#: Fraction of rows a score's predictors are trained on when no training size is given (the
#: "test_split" protocol): disentanglement_lib's 10000 train and 5000 test points, i.e. 2/3 and 1/3.
TRAIN_FRACTION = 2.0 / 3.0
#: disentanglement_lib's sample sizes (``num_train`` / ``num_test`` of its metric gin configs).
NUM_TRAIN = 10_000
NUM_TEST = 5_000
PROTOCOLS = ("fresh", "test_split")

PROTOCOL_PARAMS = (
    Param("disentanglement_protocol", "fresh", choices=PROTOCOLS,
          doc="fresh: samples drawn from the factor grid per evaluation seed (disentanglement_lib); "
              "test_split: the encoded test split"),
    Param("disentanglement_num_train", NUM_TRAIN, minimum=2, maximum=1_000_000,
          doc="fresh protocol: training rows of the predictors, and the rows of MIG, modularity, IRS "
              "and the unsupervised scores (disentanglement_lib: 10000)"),
    Param("disentanglement_num_test", NUM_TEST, minimum=1, maximum=1_000_000,
          doc="fresh protocol: held-out rows of SAP, DCI, explicitness and the downstream tasks "
              "(disentanglement_lib: 5000)"),
    REPRESENTATION_PARAM,
)

# stream of the generator that draws the fresh factors (independent of the representation's draw)
_FACTOR_STREAM = 0xD15
# factor vectors rendered and encoded at once
_BLOCK = 8_192


def scored_rows(minimum: int) -> Callable[[Mapping[str, Any], bool], int]:
    """A disentanglement score's `min_images`: none of the test split under the fresh protocol on a dataset
    with a simulator (its rows are disentanglement_num_train + num_test fresh samples), else `minimum`
    test images (the test_split protocol, or a dataset without a simulator)."""

    def needed(params: Mapping[str, Any], simulated: bool) -> int:
        return 1 if simulated and params["disentanglement_protocol"] == "fresh" else minimum

    return needed


def train_test_split(n: int, seed: Any, train_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Training and test rows of n rows: the first ``train_size`` and the rest when it is given
    (rows that are already independent samples), else a random ``TRAIN_FRACTION`` / rest split
    drawn from default_rng(seed)."""
    seed = check_seed(seed)
    if train_size is not None:
        if not 0 < int(train_size) < n:
            raise ValueError(f"train_size must be between 1 and {n - 1} for {n} rows, got {train_size!r}")
        return np.arange(int(train_size)), np.arange(int(train_size), n)
    n_train = min(max(int(round(n * TRAIN_FRACTION)), 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return order[:n_train], order[n_train:]


@dataclass(frozen=True)
class ScoredSample:
    """The rows one representation's scores see.

    suffix: the value-name suffix of the representation ("" for the mean, "_sampled").
    codes, factors: (N, D) codes and (N, K) factor indices.
    train_size: the first ``train_size`` rows train a score's predictors and the rest test
        them; None: a random ``TRAIN_FRACTION`` split (the "test_split" protocol).
    """

    suffix: str
    codes: np.ndarray
    factors: np.ndarray | None
    train_size: int | None

    @property
    def train_codes(self) -> np.ndarray:
        """The rows of a score that needs one sample: the training rows, or all of them."""
        return self.codes if self.train_size is None else self.codes[: self.train_size]

    @property
    def train_factors(self) -> np.ndarray | None:
        if self.factors is None or self.train_size is None:
            return self.factors
        return self.factors[: self.train_size]


def scored_samples(ctx: EvaluationContext) -> list[ScoredSample]:
    """The rows of each representation the suite asks for, under the suite's protocol."""
    fresh = ctx.params["disentanglement_protocol"] == "fresh" and hasattr(ctx.dataset, "sample_factors")
    factors: np.ndarray | None
    if fresh:
        mu, logvar, factors = _fresh_posterior(ctx)
        train_size = ctx.params["disentanglement_num_train"]
    else:
        mu, logvar, factors, train_size = ctx.mu, ctx.logvar, ctx.factors, None
    choice = ctx.params[REPRESENTATION_PARAM.key]
    samples = []
    for name in ("mean", "sampled") if choice == "both" else (choice,):
        if name == "mean":
            codes = mu
        else:
            key = f"disentanglement.sampled_codes.{'fresh' if fresh else 'test_split'}"
            if key not in ctx.cache:
                ctx.cache[key] = sampled_codes(mu, logvar, ctx.seed)
            codes = ctx.cache[key]
        samples.append(ScoredSample(SUFFIX[name], codes, factors, train_size))
    return samples


def _fresh_posterior(ctx: EvaluationContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu, logvar, factors) of num_train + num_test images of factors drawn from the grid with
    the evaluation seed; computed once per run."""
    key = "disentanglement.fresh_posterior"
    if key not in ctx.cache:
        from vaebench.variants.base import encode_in_batches

        n = ctx.params["disentanglement_num_train"] + ctx.params["disentanglement_num_test"]
        factors = ctx.dataset.sample_factors(n, np.random.default_rng([ctx.seed, _FACTOR_STREAM]))
        mus, logvars = [], []
        for start in range(0, n, _BLOCK):
            images = ctx.dataset.images_from_factors(factors[start : start + _BLOCK])
            mu, logvar = encode_in_batches(ctx.model, images, ctx.device)
            mus.append(mu.numpy())
            logvars.append(logvar.numpy())
        ctx.cache[key] = (np.concatenate(mus), np.concatenate(logvars), factors)
    return ctx.cache[key]


def top_two(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest and second largest entry of each column (the second is 0 with one row)."""
    if matrix.shape[0] == 1:
        return matrix[0], np.zeros(matrix.shape[1])
    top = np.sort(matrix, axis=0)
    return top[-1], top[-2]


def sklearn_note() -> str:
    """The note stored beside a value computed with a scikit-learn model: 'sklearn=X.Y.Z'."""
    import sklearn

    return f"sklearn={sklearn.__version__}"
