"""What a variant's objective promises, declared beside it as data (`Variant.claims`).

A claim names a stored value, a direction and a partner: "beta_tcvae's `tc` is lower than the
suite's `vae` on the same dataset, networks and budget". A "near" claim compares the value
with a target computed from the run (the annealed VAE's KL against its capacity C at the last
step). `applies` limits a claim to some runs (beta-VAE's lower KL only for beta > 1; the MI
objectives' higher I(x;z) only with the `pixelcnn` decoder, where a VAE can ignore z).
`vaebench claims` (vaebench.reports.claims) turns the claims into verdicts over seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

DIRECTIONS = ("lower", "higher", "near")


class ClaimSpec(Protocol):
    """What a claim's callbacks read of a run: its `vaebench.bench.spec.RunSpec` (named here by the fields
    claims read; the variants layer does not import the harness)."""

    @property
    def variant(self) -> str: ...

    @property
    def hyperparameters(self) -> tuple[tuple[str, Any], ...]: ...

    @property
    def architecture(self) -> str: ...

    @property
    def steps(self) -> int: ...


def always(spec: ClaimSpec) -> bool:
    return True


@dataclass(frozen=True)
class Claim:
    """value: the stored value name; direction: lower / higher than the partner's, or near `target`.

    applies(spec) -> whether the claim is about this run; target(spec) -> the value a "near"
    claim expects, within `tolerance` (in the value's units). `spec` is the run's RunSpec.
    """

    value: str
    direction: str
    statement: str
    partner: str = "vae"
    applies: Callable[[ClaimSpec], bool] = always
    target: Callable[[ClaimSpec], float] | None = None
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"claim direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if (self.direction == "near") != (self.target is not None):
            raise ValueError("a 'near' claim needs a target, and only it")


def with_pixelcnn(spec: ClaimSpec) -> bool:
    """The run uses the autoregressive decoder, powerful enough to ignore z."""
    return spec.architecture == "pixelcnn"
