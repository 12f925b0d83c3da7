"""Which trained model a run scores: the final one, or the one with the lowest validation loss.

    [budget]
    epochs = 500
    select = "best_validation"     # default "final"
    validate_every = 1             # in the budget's unit: epochs with `epochs`, else steps
                                   # (default 1 with an epochs budget; required with a steps budget)

Published protocols differ here: pythae's trainer keeps the epoch with the lowest loss on its
evaluation set (the validation split) and reports that model; Burda et al. report the final one.
With `select = "best_validation"` the run

- computes the validation loss after every `validate_every` units and after the last step: the
  mean over the dataset's `validation_indices` (every image once, in index order, batches of the
  budget's batch size, each batch's mean loss weighted by its size) of the variant's own training
  loss `model.loss(x, step).total`, in eval mode and without gradients. Its random draws (the
  reparameterisation noise) come from torch's generator reseeded with `derived_seed(seed,
  "validation")` inside a fork of the generator state: every validation uses the same draws, the
  loss is a function of the model alone, and the training streams are left exactly as they were
  (a run with selection trains bit-identically to the same run without it);
- keeps the model of the lowest loss (the earliest on a tie, as pythae's strict `<`), in memory
  and in `checkpoints/<run id>.best.pt` beside the run's checkpoint, and logs the curve
  'validation/loss';
- scores that model. The run's environment records the kind, the interval, the selected step
  and its loss, and how many validations were made.

The run's checkpoint holds the best model's weights, its step and loss, so a run killed and
resumed selects the same model, bit for bit (the .best.pt file is a copy for the user, rewritten
from the checkpoint on resume). The spec records the selection as {"kind": "best_validation",
"every": <steps>} (`RunSpec.selection`), left out of the spec's JSON when the model is the final
one, so specs without the option keep their run ids.

Departure from pythae: pythae's validation loss draws fresh noise at every evaluation (its global
generator, which also drives training); here the draws are fixed per run so that selection
neither disturbs training nor depends on when it is evaluated. The expectation is the same.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaebench.bench.seeding import derived_seed
from vaebench.errors import ConfigError
from vaebench.files import atomic_torch_save
from vaebench.params import Param
from vaebench.variants.base import Variant

SELECTIONS = ("final", "best_validation")
SELECTION_PARAMS = (
    Param("select", "final", choices=SELECTIONS,
          doc="the model a run scores: the final one, or the best on validation"),
    Param("validate_every", None, type=int, minimum=1,
          doc="best_validation: units (epochs with an epochs budget, else steps) between validations"),
)
SELECTION_KEYS = tuple(p.key for p in SELECTION_PARAMS)
VALIDATION_CURVE = "validation/loss"
VALIDATION_PURPOSE = "validation"


@dataclass(frozen=True)
class SelectionPlan:
    """The [budget]'s selection as written: the kind and the interval in the budget's unit."""

    select: str = "final"
    validate_every: int | None = None


def parse_selection(given: Mapping[str, Any], *, epochs_budget: bool, file: str) -> SelectionPlan:
    """The selection keys of [budget] (`select`, `validate_every`), checked."""
    values = {p.key: p.check(given[p.key], file=file, prefix="budget.") if p.key in given else p.default
              for p in SELECTION_PARAMS}
    select, every = values["select"], values["validate_every"]
    if select == "final":
        if every is not None:
            raise ConfigError("applies to select = 'best_validation' only", file=file, key="budget.validate_every")
        return SelectionPlan()
    if every is None:
        if not epochs_budget:
            raise ConfigError("required by select = 'best_validation' with a steps budget: the steps between "
                              "validations, an integer >= 1", file=file, key="budget.validate_every")
        every = 1
    return SelectionPlan(select, every)


def selection_in_steps(plan: SelectionPlan, unit_steps: int) -> dict[str, Any]:
    """The canonical selection of a spec: {} for the final model, else kind and interval in steps."""
    if plan.select == "final":
        return {}
    if plan.validate_every is None:
        raise ValueError(f"selection {plan.select!r} without its validation interval")
    return {"kind": plan.select, "every": plan.validate_every * unit_steps}


def check_validation_split(dataset: Any, plan: SelectionPlan, *, file: str, key: str) -> None:
    """ConfigError unless `dataset` has a validation split when the plan needs one."""
    if plan.select == "final":
        return
    indices = getattr(dataset, "validation_indices", None)
    if indices is None or len(indices) == 0:
        why = ("has no validation split" if indices is None
               else "holds no validation images with these parameters "
                    "(e.g. binarized_mnist with train = 'train+valid')")
        raise ConfigError(f"select = 'best_validation' needs a validation split; dataset {dataset.name!r} {why}",
                          file=file, key=key)


def validation_indices(dataset: Any) -> np.ndarray:
    """The indices of the dataset's validation split (`check_validation_split` saw that it has one)."""
    return np.asarray(dataset.validation_indices)


@torch.no_grad()
def validation_loss(model: Variant, dataset: Any, indices: np.ndarray, *, batch_size: int, step: int,
                    seed: int, device: torch.device) -> float:
    """The mean training loss of `model` on the images at `indices` (see the module docstring):
    deterministic for a given model and seed, and leaving every global generator as it was."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(derived_seed(seed, VALIDATION_PURPOSE))
            for start in range(0, len(indices), batch_size):
                idx = indices[start : start + batch_size]
                x = dataset.batch(idx, device)
                total += float(model.loss(x, step).total) * len(idx)
                count += len(idx)
    finally:
        model.train(was_training)
    return total / count


def best_model_path(checkpoint: Path) -> Path:
    """`checkpoints/<run id>.best.pt` beside the run's checkpoint `checkpoints/<run id>.pt`."""
    return checkpoint.with_name(checkpoint.stem + ".best.pt")


@dataclass
class BestValidation:
    """The state of best-on-validation selection during one run."""

    every: int
    final_step: int
    indices: np.ndarray
    best_loss: float = float("inf")
    best_step: int = -1
    best_model: dict[str, torch.Tensor] | None = None
    validations: int = 0
    best_file: Path | None = field(default=None, repr=False)

    @classmethod
    def for_spec(cls, selection: Mapping[str, Any], final_step: int, dataset: Any) -> BestValidation | None:
        if not selection:
            return None
        if selection["kind"] != "best_validation":
            raise ValueError(f"unknown selection {selection['kind']!r}")
        return cls(every=int(selection["every"]), final_step=final_step, indices=validation_indices(dataset))

    def due(self, step: int) -> bool:
        """Whether the model after `step` steps is validated: every `every` steps, and the last."""
        return step % self.every == 0 or step == self.final_step

    def observe(self, model: torch.nn.Module, step: int, loss: float) -> bool:
        """Record the validation loss of the model after `step` steps; True when it is the new best
        (strictly lower; a NaN loss never is), whose weights are then kept."""
        self.validations += 1
        if not loss < self.best_loss:
            return False
        self.best_loss, self.best_step = loss, step
        self.best_model = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self.save_best_file()
        return True

    def save_best_file(self) -> None:
        if self.best_file is not None and self.best_model is not None:
            atomic_torch_save({"model": self.best_model, "step": self.best_step, "validation_loss": self.best_loss},
                              self.best_file)

    def state(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss, "best_step": self.best_step, "best_model": self.best_model,
                "validations": self.validations}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.best_loss = float(state["best_loss"])
        self.best_step = int(state["best_step"])
        self.best_model = copy.copy(state["best_model"]) if state["best_model"] is not None else None
        self.validations = int(state["validations"])
        self.save_best_file()

    def select(self, model: torch.nn.Module) -> None:
        """Load the best weights into `model` (the model a run scores)."""
        if self.best_model is None:
            raise RuntimeError("no validation was made: nothing to select")
        model.load_state_dict(self.best_model)

    def describe(self) -> dict[str, Any]:
        """What the run's environment records."""
        return {"kind": "best_validation", "every_steps": self.every, "selected_step": self.best_step,
                "validation_loss": self.best_loss, "validations": self.validations,
                "validation_images": int(len(self.indices))}

    def discard_best_file(self) -> None:
        if self.best_file is not None:
            self.best_file.unlink(missing_ok=True)
