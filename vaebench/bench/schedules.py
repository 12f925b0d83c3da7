"""Learning-rate schedules and budgets in epochs: the [budget] keys that published protocols need.

    [budget]
    epochs = 500                     # instead of `steps`: passes over the training split
    lr_schedule = "multistep"        # constant (default) | multistep | exponential | burda
    lr_milestones = [200, 350]       # multistep: in the budget's unit (epochs with `epochs`, else steps)
    lr_factor = 0.630957             # multistep: the factor at each milestone; exponential: per unit

An epoch is `steps_per_epoch = ceil(N / batch_size)` gradient steps, N the dataset's training
images: a pass over the training split under `sampler = "shuffle"` or "sequential", a pass in
expectation only under the default, batches drawn with replacement (`vaebench.bench.sampler`).
The suite converts everything to steps when it loads, so a spec holds `steps` and its schedule in
steps (`RunSpec.lr_schedule`):

    multistep     lr(s) = lr_0 * factor ** #{m in milestones : m <= s}
    exponential   lr(s) = lr_0 * factor ** floor(s / every)      every = steps_per_epoch or 1
    burda         multistep with factor 10^(-1/7) and milestones at 1, 4, 13, 40, 121, 364, 1093
                  epochs: Burda et al. 2016 ("Importance Weighted Autoencoders", sec. 5) train
                  3^i passes at learning rate 0.001 * 10^(-i/7), i = 0..7 (3,280 passes), here
                  lr_0 = the budget's learning_rate. Their code (yburda/iwae, experiments.py)
                  rounds the factor to two digits (7.2e-4 for 7.197e-4, ...); this is the formula.

s counts the steps already taken (0 for the first update); a milestone m means the m-th unit
is the first at the lower rate, as PyTorch's MultiStepLR stepped once per epoch gives. The rate
is a function of the step alone, so a checkpoint needs no schedule state and a resumed run is
bit-identical. Every optimizer is scaled by the same multiplier, a phase with its own rate
(a discriminator's) included.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

SCHEDULES = ("constant", "multistep", "exponential", "burda")
BURDA_FACTOR = 10 ** (-1 / 7)
BURDA_STAGES = 8  # i = 0..7


def burda_milestones() -> list[int]:
    """Epochs at which Burda et al.'s rate drops: the cumulative passes 1, 4, 13, ..., 1093."""
    return [sum(3**j for j in range(i + 1)) for i in range(BURDA_STAGES - 1)]


def burda_epochs() -> int:
    """Their whole budget, sum of 3^i for i = 0..7: 3,280 passes."""
    return sum(3**i for i in range(BURDA_STAGES))


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Gradient steps in one epoch: ceil(train_size / batch_size)."""
    return math.ceil(train_size / batch_size)


def schedule_in_steps(kind: str, *, milestones: Iterable[int] = (), factor: float | None = None,
                      unit_steps: int = 1, epoch_steps: int = 1) -> dict[str, Any]:
    """The canonical schedule in steps: {} for constant, else kind "multistep" (milestones, factor)
    or "exponential" (factor, every). `unit_steps`: steps per unit of the milestones and of the
    exponential's factor (an epoch's steps with an epoch budget, else 1); `epoch_steps`: the
    steps of an epoch, for the burda schedule, whose milestones are always epochs."""
    if kind == "constant":
        return {}
    if kind == "burda":
        return {"kind": "multistep", "milestones": tuple(m * epoch_steps for m in burda_milestones()),
                "factor": BURDA_FACTOR}
    if kind not in ("multistep", "exponential"):
        raise ValueError(f"unknown schedule {kind!r}")
    if factor is None:
        raise ValueError(f"schedule {kind!r} needs a factor")
    if kind == "multistep":
        return {"kind": "multistep", "milestones": tuple(int(m) * unit_steps for m in milestones),
                "factor": float(factor)}
    return {"kind": "exponential", "factor": float(factor), "every": unit_steps}


def lr_multiplier(step: int, schedule: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> float:
    """The factor on the base learning rate for the update after `step` steps."""
    schedule = dict(schedule)
    if not schedule:
        return 1.0
    if schedule["kind"] == "multistep":
        return schedule["factor"] ** sum(1 for m in schedule["milestones"] if m <= step)
    if schedule["kind"] == "exponential":
        return schedule["factor"] ** (step // schedule["every"])
    raise ValueError(f"unknown schedule {schedule['kind']!r}")
