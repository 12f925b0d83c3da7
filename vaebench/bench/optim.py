"""Optimizers for a variant's phases, and the one optimisation step every run takes.

The training loop, never a variant, zeroes gradients, back-propagates and steps: for each
phase in order, `loss = phase.loss(x, step)`, gradients of `loss.total` w.r.t. the phase's
parameters only, then that phase's optimizer steps.

Implementation ([budget] optimizer_implementation; RunSpec.optimizer_implementation): "default"
is what PyTorch picks (the for-loop on the CPU, foreach on CUDA); "foreach" and "fused" ask for
those. They give different rounding, so the same spec with another implementation is another
run (the field is part of the spec, left out of its JSON at "default": existing run ids are
unchanged). Each repeats itself bit for bit. The implementation PyTorch actually used is recorded
in the run's environment and in its checkpoint, and a checkpoint made with another one is not
resumed (`check_implementations`). Fused Adam is the faster, most where the optimizer's step
is a large part of a training step, on small MLPs (benchmarks/bench_optimizer.py; README,
Performance). The harness keeps PyTorch's default unless a suite asks; the reproduction suites ask for fused.

Options ([budget] adam_eps; RunSpec.optimizer_options): Adam's epsilon (pythae's IWAE and
beta-TCVAE scripts and Burda et al. use 1e-4; PyTorch's default is 1e-8).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from vaebench.errors import ConfigError
from vaebench.variants.base import Phase

OPTIMIZERS = ("adam", "sgd", "rmsprop")
IMPLEMENTATIONS = ("default", "foreach", "fused")
FUSED = ("adam", "sgd")  # PyTorch has no fused RMSprop


class Diverged(Exception):
    """A loss term, or (after a step) a parameter, became NaN or infinite."""

    def __init__(self, step: int, term: str, *, what: str = "loss term"):
        super().__init__(f"{what} {term!r} is not finite at step {step}")
        self.step = step
        self.term = term


def check_optimizer_options(optimizer: str, implementation: str, eps: float | None, *, file: str | None = None) -> None:
    """ConfigError for an implementation or option the optimizer does not have."""
    if implementation not in IMPLEMENTATIONS:
        raise ConfigError(f"must be one of {', '.join(map(repr, IMPLEMENTATIONS))}, got {implementation!r}", file=file,
                          key="budget.optimizer_implementation")
    if implementation == "fused" and optimizer not in FUSED:
        raise ConfigError(f"PyTorch has no fused {optimizer}; fused is for {', '.join(FUSED)}", file=file,
                          key="budget.optimizer_implementation")
    if eps is not None and optimizer != "adam":
        raise ConfigError(f"applies to optimizer = 'adam' only, not {optimizer!r}", file=file, key="budget.adam_eps")


def _implementation_kwargs(implementation: str) -> dict[str, Any]:
    return {"foreach": {"foreach": True}, "fused": {"fused": True}}.get(implementation or "default", {})


def resolved_implementation(optimizer: torch.optim.Optimizer) -> str:
    """The implementation `optimizer` steps with: "fused", "foreach" or "for-loop" (PyTorch's
    default resolved as it resolves it: foreach when every parameter is on a CUDA device)."""
    defaults = optimizer.defaults
    if defaults.get("fused"):
        return "fused"
    if defaults.get("foreach") is not None:
        return "foreach" if defaults["foreach"] else "for-loop"
    params = [p for group in optimizer.param_groups for p in group["params"]]
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach

        _, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
    except (ImportError, TypeError):  # a PyTorch without the private helper: its documented rule
        foreach = bool(params) and all(p.device.type == "cuda" for p in params)
    return "foreach" if foreach else "for-loop"


def check_implementations(recorded: list[str] | None, optimizers: list[torch.optim.Optimizer]) -> None:
    """ValueError when a checkpoint's optimizers stepped with other implementations than these
    (a checkpoint written before implementations were recorded counts as PyTorch's default)."""
    current = [resolved_implementation(opt) for opt in optimizers]
    if recorded is None:
        fresh: list[torch.optim.Optimizer] = []
        for opt in optimizers:
            optimizer_class: Callable[..., torch.optim.Optimizer] = type(opt)  # Adam, SGD or RMSprop: all take lr
            fresh.append(optimizer_class(opt.param_groups[0]["params"], lr=1.0))
        recorded = [resolved_implementation(opt) for opt in fresh]
    if list(recorded) != current:
        raise ValueError(f"the checkpoint's optimizers stepped with {recorded}, this run's with {current}; "
                         "resuming would not give the numbers of an uninterrupted run")


def build_optimizers(phases: list[Phase], optimizer: str, learning_rate: float, *, implementation: str = "",
                     options: Any = ()) -> list[torch.optim.Optimizer]:
    """One optimizer per phase; a phase's own learning rate / betas override the budget's.
    `implementation` and `options` (e.g. {"eps": 1e-4}) are the spec's (see the module docstring)."""
    options = dict(options)
    check_optimizer_options(optimizer, implementation or "default", options.get("eps"))
    out: list[torch.optim.Optimizer] = []
    for phase in phases:
        lr = phase.learning_rate if phase.learning_rate is not None else learning_rate
        kwargs: dict[str, Any] = {"lr": lr, **_implementation_kwargs(implementation)}
        if optimizer == "adam":
            if options.get("eps") is not None:
                kwargs["eps"] = options["eps"]
            if phase.betas is not None:
                kwargs["betas"] = phase.betas
            out.append(torch.optim.Adam(phase.parameters, **kwargs))
        elif optimizer == "sgd":
            out.append(torch.optim.SGD(phase.parameters, **kwargs))
        elif optimizer == "rmsprop":
            out.append(torch.optim.RMSprop(phase.parameters, **kwargs))
        else:
            raise ConfigError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}",
                              key="budget.optimizer")
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
