"""Scoring along training: the model as it is at chosen steps, scored by a subset of the suite's metrics.

A suite names the steps in its [evaluation] table, in one of three ways, and what is scored:

    at_steps = [175, 350, 700] explicit steps, increasing, at most the budget's steps
    at_every = 100             every 100 steps up to the budget (100, 200, ...; the end if a multiple)
    at_halvings = 2            the budget halved 2, 1 and 0 times: steps / 4, steps / 2, steps (rounded)
    at_metrics = ["kl", ...]   the metrics scored there (default: all of the suite's `metrics`)
    at_images = 1000           on this many test images, a fixed random subset of the test split
                               (default: the whole test split, the final scoring's)

The final scoring (every metric, on the whole test split) is unchanged whatever these say. On
the whole test split the end of the budget is not scored twice: the final scoring's values are
the same numbers (same seed, same images), so the trajectory ends with them. With `at_images`
the end is scored like the other steps when listed, so that a trajectory is on one protocol.
With an `epochs` budget the steps are resolved per dataset, like the budget itself.

At each of those steps the training loop calls the scorer (`AlongScorer`), which scores the
model with `vaebench.bench.evaluate.evaluate` as the final scoring does (the same evaluation
seed and metric parameters, no image grids), on the `at_metrics` only. It saves
every random generator it could touch (Python's, NumPy's global, torch's CPU and CUDA ones) and
restores them afterwards, and puts the model back in training mode, so the training that
follows is the same, bit for bit, as without the scoring: a run's final numbers do not depend
on `at_steps`. Because training up to step N does not depend on the budget either, the value
at step N equals the final value of the same run with `steps = N` (tested).

The scores are part of the training state (`AlongScores`): they are checkpointed with the
model, so a run killed and resumed scores every step once, with the same numbers. Their time
is not training time (`steps_per_s` is unchanged); it is stored as the environment's
`along_scoring_time_s` and counted in the run's wall time.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaebench.bench.spec import AlongValue
from vaebench.errors import ConfigError

ALONG_KEYS = ("at_steps", "at_every", "at_halvings", "at_metrics", "at_images")
SUBSET_SEED = 0  # which test images `at_images` keeps: the same for every run, so runs compare
SPACING_KEYS = ("at_steps", "at_every", "at_halvings")


# ---------------------------------------------------------------- the suite's plan


@dataclass(frozen=True)
class AlongPlan:
    """What a suite's [evaluation] table asks for; `steps_for` / `metrics_for` resolve it per run."""

    file: str
    steps: tuple[int, ...] = ()
    every: int | None = None
    halvings: int | None = None
    metrics: tuple[str, ...] | None = None
    images: int = 0

    @property
    def empty(self) -> bool:
        return not self.steps and self.every is None and self.halvings is None

    def steps_for(self, budget_steps: int, dataset: str) -> tuple[int, ...]:
        """The steps at which a run of `budget_steps` on `dataset` is scored, ascending, each at most the budget."""
        if self.steps:
            late = [s for s in self.steps if s > budget_steps]
            if late:
                raise ConfigError(f"steps {late} are beyond the budget of {budget_steps:,d} steps on dataset "
                                  f"{dataset!r}", file=self.file, key="evaluation.at_steps")
            return self.steps
        if self.every is not None:
            if self.every > budget_steps:
                raise ConfigError(f"{self.every:,d} gives no step within the budget of {budget_steps:,d} steps on "
                                  f"dataset {dataset!r}", file=self.file, key="evaluation.at_every")
            return tuple(range(self.every, budget_steps + 1, self.every))
        if self.halvings is not None:
            return tuple(sorted({s for i in range(self.halvings + 1) if (s := round(budget_steps / 2**i)) >= 1}))
        return ()

    def images_for(self, test_images: int) -> int:
        """`at_images` for a test split of `test_images`: 0 (the whole split) when it asks for as many or more."""
        return self.images if self.images < test_images else 0

    def metrics_for(self, run_metrics: Sequence[str]) -> tuple[str, ...]:
        """The metrics scored along training, in the order of the run's own; all of them by default."""
        if self.metrics is None:
            return tuple(run_metrics)
        missing = [m for m in self.metrics if m not in run_metrics]
        if missing:
            raise ConfigError(f"{missing} are not among the suite's metrics ({', '.join(run_metrics)}); "
                              "at_metrics must be a subset of them", file=self.file, key="evaluation.at_metrics")
        return tuple(m for m in run_metrics if m in self.metrics)


def _positive_int(value: Any, file: str, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"must be an integer >= 1, got {value!r}", file=file, key=f"evaluation.{key}")
    return value


def parse_along(table: dict[str, Any], file: str) -> AlongPlan:
    """The plan of an [evaluation] table (its `at_*` keys); an empty plan without them."""
    given = [k for k in SPACING_KEYS if k in table]
    if len(given) > 1:
        raise ConfigError(f"give one of {', '.join(SPACING_KEYS)}, not {' and '.join(given)}",
                          file=file, key=f"evaluation.{given[1]}")
    metrics = table.get("at_metrics")
    if metrics is not None:
        if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
            raise ConfigError("must be a non-empty array of metric names", file=file, key="evaluation.at_metrics")
    for key in ("at_metrics", "at_images"):
        if key in table and not given:
            raise ConfigError(f"is about scoring along training, but no steps are given ({', '.join(SPACING_KEYS)})",
                              file=file, key=f"evaluation.{key}")
    images = _positive_int(table["at_images"], file, "at_images") if "at_images" in table else 0
    if images == 1:
        raise ConfigError("must be at least 2 (the aggregate-posterior metrics compare images)", file=file,
                          key="evaluation.at_images")
    if "at_steps" in table:
        steps = table["at_steps"]
        if not isinstance(steps, list) or not steps:
            raise ConfigError(f"must be a non-empty array of increasing integers >= 1, got {steps!r}",
                              file=file, key="evaluation.at_steps")
        checked = [_positive_int(s, file, "at_steps") for s in steps]
        if any(a >= b for a, b in zip(checked, checked[1:])):
            raise ConfigError(f"must be increasing, got {steps!r}", file=file, key="evaluation.at_steps")
        return AlongPlan(file, steps=tuple(checked), metrics=tuple(metrics) if metrics else None, images=images)
    every = _positive_int(table["at_every"], file, "at_every") if "at_every" in table else None
    halvings = _positive_int(table["at_halvings"], file, "at_halvings") if "at_halvings" in table else None
    return AlongPlan(file, every=every, halvings=halvings, metrics=tuple(metrics) if metrics else None, images=images)


# ---------------------------------------------------------------- the training side


@dataclass
class AlongScores:
    """The values scored so far and the seconds spent scoring: part of a checkpoint (plain containers)."""

    rows: list[AlongValue] = field(default_factory=list)
    time_s: float = 0.0

    def to_state(self) -> dict[str, Any]:
        return {"rows": [list(r) for r in self.rows], "time_s": self.time_s}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> AlongScores:
        """The scores of a checkpoint; none from one written before scoring along training existed."""
        if not state:
            return cls()
        rows = [AlongValue(*row) for row in state["rows"]]  # a checkpoint written before ceilings has 4 items
        rows = [AlongValue(int(r.step), str(r.name), float(r.value), None if r.note is None else str(r.note),
                           None if r.ceiling is None else float(r.ceiling)) for r in rows]
        return cls(rows, float(state["time_s"]))

    def scored_steps(self) -> set[int]:
        return {r[0] for r in self.rows}


@contextmanager
def generators_preserved(device: torch.device) -> Iterator[None]:
    """Restore, on exit, every random generator a scoring pass may reseed or draw from: Python's,
    NumPy's global one, torch's CPU one and (on a CUDA device) that device's."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


@dataclass
class AlongScorer:
    """The training loop's hook: at each of the spec's `at_steps`, score the model with `at_metrics`.

    Called after every optimisation step as `scorer(trainer)`; returns the seconds it spent (not
    training time). A step already in the trainer's scores (restored from a checkpoint) is not
    scored again, nor the end of the budget on the whole test split (the final scoring's values).
    """

    spec: Any  # RunSpec
    dataset: Any  # ImageDataset
    device: torch.device
    cache_dir: Path

    def __call__(self, trainer: Any) -> float:
        if trainer.step not in self.spec.at_steps or trainer.step in trainer.along.scored_steps():
            return 0.0
        if trainer.step == self.spec.steps and not self.spec.at_images:
            return 0.0
        started = time.perf_counter()
        trainer.along.rows.extend(self.score(trainer.model, trainer.step))
        spent = time.perf_counter() - started
        trainer.along.time_s += spent
        return spent

    def score(self, model: torch.nn.Module, step: int) -> list[AlongValue]:
        """The `at_metrics` of `model` at `step`, scored like the final scoring; the generators and the
        model's training mode are as they were on return."""
        from vaebench.bench.evaluate import evaluate  # the one scoring path (imported late: it imports the metrics)

        subset = dataclasses.replace(self.spec, metrics=self.spec.at_metrics)
        was_training = model.training
        with generators_preserved(self.device):
            scores = evaluate(model, scoring_subset(self.dataset, self.spec.at_images), subset,
                              device=self.device, cache_dir=self.cache_dir, grids=False)
        model.train(was_training)
        return [AlongValue(step, name, value, scores.notes.get(name), scores.ceilings.get(name))
                for name, value in sorted(scores.values.items())]


class _SmallerTestSplit:
    """The dataset with a smaller test split (every other attribute is the dataset's)."""

    def __init__(self, dataset: Any, test_indices: np.ndarray):
        self._dataset = dataset
        self.test_indices = test_indices

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dataset, name)


def scoring_subset(dataset: Any, images: int) -> Any:
    """`dataset` scored on `images` of its test images (a fixed random subset, in the split's order);
    the dataset itself for 0 or at least the whole split."""
    test = np.asarray(dataset.test_indices)
    if not images or images >= len(test):
        return dataset
    keep = np.sort(np.random.default_rng(SUBSET_SEED).choice(len(test), size=images, replace=False))
    return _SmallerTestSplit(dataset, test[keep])


def along_scorer(spec: Any, dataset: Any, device: torch.device, cache_dir: Path) -> AlongScorer | None:
    """The hook for a run, or None when its spec scores nothing along training."""
    return AlongScorer(spec, dataset, device, Path(cache_dir)) if spec.at_steps else None


def images_drawn_along(spec: Any) -> int:
    """Images the factor scores draw at the steps along training (they draw at every scoring)."""
    if not spec.at_steps:
        return 0
    from vaebench.metrics import METRICS

    params = dict(spec.metric_params)
    scorings = sum(1 for step in spec.at_steps if step != spec.steps or spec.at_images)
    return scorings * sum(METRICS.get(m).images_drawn_with(params) for m in spec.at_metrics)
