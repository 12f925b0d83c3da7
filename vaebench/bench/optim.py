"""Optimizers for a variant's phases, and the one optimisation step every run takes.

The training loop, never a variant, zeroes gradients, back-propagates and steps: for each
phase in order, `loss = phase.loss(x, step)`, gradients of `loss.total` w.r.t. the phase's
parameters only, then that phase's optimizer steps.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vaebench.errors import ConfigError
from vaebench.variants.base import Phase

OPTIMIZERS = ("adam", "sgd", "rmsprop")


class Diverged(Exception):
    """A loss term, or (after a step) a parameter, became NaN or infinite."""

    def __init__(self, step: int, term: str, *, what: str = "loss term"):
        super().__init__(f"{what} {term!r} is not finite at step {step}")
        self.step = step
        self.term = term


def build_optimizers(phases: list[Phase], optimizer: str, learning_rate: float) -> list[torch.optim.Optimizer]:
    """One optimizer per phase; a phase's own learning rate / betas override the budget's."""
    out = []
    for phase in phases:
        lr = phase.learning_rate if phase.learning_rate is not None else learning_rate
        kwargs: dict[str, Any] = {"lr": lr}
        if optimizer == "adam":
            if phase.betas is not None:
                kwargs["betas"] = phase.betas
            out.append(torch.optim.Adam(phase.parameters, **kwargs))
        elif optimizer == "sgd":
            out.append(torch.optim.SGD(phase.parameters, **kwargs))
        elif optimizer == "rmsprop":
            out.append(torch.optim.RMSprop(phase.parameters, **kwargs))
        else:
            raise ConfigError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}", key="budget.optimizer")
    return out


def optimisation_step(
    phases: list[Phase], optimizers: list[torch.optim.Optimizer], x: torch.Tensor, step: int
) -> dict[str, torch.Tensor]:
    """Step every phase once on batch x; returns the detached loss terms, '<phase>/<term>'.

    Raises Diverged if any phase's total loss is not finite (checked before its step, so a
    diverged run never applies a NaN update).
    """
    terms: dict[str, torch.Tensor] = {}
    for phase, opt in zip(phases, optimizers):
        opt.zero_grad(set_to_none=True)
        losses = phase.loss(x, step)
        total = losses.total.detach()
        if not math.isfinite(float(total)):
            raise Diverged(step, f"{phase.name}/loss")
        losses.total.backward(inputs=phase.parameters)
        opt.step()
        terms[f"{phase.name}/loss"] = total
        for name, value in losses.terms.items():
            terms[f"{phase.name}/{name}"] = value.detach()
    return terms
