"""The metric registry: each metric declares the values it produces, their directions, its
family and its parameters; the harness, tables, plots, baselines and claims read only that.

Metric functions themselves are pure (arrays in, floats out) and live in their own modules;
each module registers its metrics with the decorator `register_metric` on the function that
adapts an `EvaluationContext` to the pure function. The harness only ever calls `compute`.

    @register_metric(
        "mig", family="disentanglement", values=[MetricValue("mig", higher_is_better=True)],
        description="mutual information gap", needs_factors=True,
        params=[Param("mig_n_bins", 20, minimum=2)],
    )
    def _compute_mig(ctx: EvaluationContext) -> dict[str, float]:
        return {"mig": mutual_information_gap(ctx.codes, ctx.factors, n_bins=ctx.params["mig_n_bins"])}

A metric's parameters belong to it: `MetricInfo.compute` hands the function a context whose
`params` hold exactly the parameters the metric declares, each the run's value or the default,
so a metric never validates or defaults a parameter itself, and reads no other metric's. A suite
sets them in one table, `[evaluation.params] key = value`, checked once when it loads
(`check_metric_params`). Metrics that read one setting share one key by declaring the same `Param`
object (iwae_nll and iwae_curve: `iwae_k`); a second, different declaration of a key is a
ValueError at registration.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaebench.params import Param, check_params
from vaebench.registry import Registry

FAMILIES = (
    "reconstruction",
    "likelihood",
    "information",
    "aggregate_posterior",
    "disentanglement",
    "sample_quality",
)


@dataclass
class EvaluationContext:
    """What the harness hands every metric: the test split encoded once, and the model.

    mu, logvar: (N, D) float64 numpy arrays, the encoder's posterior on the test images (logvar
        is -inf for a deterministic encoder's point mass).
    factors: (N, K) integer factor indices of the test images, or None without ground truth.
    params: the run's metric parameters (a suite's [evaluation.params], checked when it loaded); the
        function of a metric sees in their place its own, complete (`MetricInfo.compute`).
    notes, ceilings: what a metric stores beside a value: a free-text note, and the value's ceiling
        (a number) for a value declared with a `Ceiling`.
    """

    model: Any  # an nn.Module behind vaebench.bench.contract.CheckedModel, whose attributes are the model's
    dataset: Any
    test_indices: np.ndarray
    test_images: torch.Tensor
    mu: np.ndarray
    logvar: np.ndarray
    factors: np.ndarray | None
    seed: int
    device: torch.device
    cache_dir: Path
    params: dict[str, Any] = field(default_factory=dict)
    # value name -> a free-text note stored beside the value (e.g. FID's feature network + hash)
    notes: dict[str, str] = field(default_factory=dict)
    # value name -> the most the value can be on its evaluation set (a value declared with a Ceiling)
    ceilings: dict[str, float] = field(default_factory=dict)
    # intermediate results shared between metrics (e.g. one decoding pass of the test set), keyed
    # by a name or by a tuple of a name and the inputs the result depends on
    cache: dict[Hashable, Any] = field(default_factory=dict)
    # (index, curve name, value) rows a metric produces beside its values, e.g. the points of
    # ais_rate_distortion's curve; stored in the store's `curves` table with the index as the step.
    # Each name must be one the metric declares in `MetricInfo.curves`.
    curves: list[tuple[int, str, float]] = field(default_factory=list)
    # the names of the metrics this evaluation computes, so that one metric can do the work of
    # another it contains (ais_rate_distortion's path holds ais_nll's); empty: unknown
    metrics: tuple[str, ...] = ()

    @property
    def codes(self) -> np.ndarray:
        """The representation scored by disentanglement metrics: the posterior means."""
        return self.mu


ROLES = ("rate", "distortion")


@dataclass(frozen=True)
class Ceiling:
    """The most a value can be on its evaluation set. The metric reports it per run (`ctx.ceilings`, e.g.
    mi_xz's log N), and the store keeps it beside the value as a number.

    margin: a mean within `margin` of the ceiling is flagged as saturated in reports (the
        value then says only that the quantity is at least about the ceiling).
    meaning: what the ceiling is, for the reports' footnote.
    note_pattern: where stores written before ceilings were stored as numbers kept it: a regular
        expression whose first group, found in the value's note, is the ceiling (to the note's
        precision). Read only for rows without a stored ceiling (`from_note`).
    """

    margin: float
    meaning: str
    note_pattern: str | None = None

    def from_note(self, note: str | None) -> float | None:
        """The ceiling an older store recorded in `note`, or None when it records none."""
        found = re.search(self.note_pattern, note or "") if self.note_pattern else None
        return float(found.group(1)) if found else None


@dataclass(frozen=True)
class MetricValue:
    """One value a metric produces: a name, or a per-latent pattern such as 'kl_dim_{i}'.

    role: what reports may use the value as: "rate" (nats of KL per image, the x axis of the
    rate-distortion plane) or "distortion" (reconstruction nats per image, its y axis).
    ceiling: the value's known upper limit, where its estimator has one (reports show it and
    flag values that reach it).
    """

    name: str
    higher_is_better: bool
    description: str = ""
    role: str | None = None
    ceiling: Ceiling | None = None

    def __post_init__(self) -> None:
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"value {self.name!r}: role must be one of {', '.join(ROLES)}, got {self.role!r}")

    @property
    def per_latent(self) -> bool:
        return "{i}" in self.name

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.name).replace(r"\{i\}", r"\d+") + r"\Z")

    def matches(self, value_name: str) -> bool:
        return self._pattern.match(value_name) is not None

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"


@dataclass(frozen=True)
class MetricInfo:
    """A registry entry.

    name: the stable metric name of DESIGN.md (what a suite's `metrics` lists).
    family: one of FAMILIES; tables group columns by it.
    values: every value `compute` may return, with its direction.
    function: context -> {value name: value}, the registered function (`compute` calls it).
    needs_factors: only defined on datasets with ground-truth factors.
    needs_decoder: uses the model's decoder (skipped for an encoder-only external model).
    needs_density: uses the density of q(z|x) (skipped for a deterministic encoder, whose
        posterior is a point mass: its KL to the prior and its I(x; z) are infinite).
    images_drawn: its params -> how many images the metric draws from the dataset beyond the test
        split (the factor scores); the harness materialises a dataset when training and scoring
        together draw at least as many images as it holds.
    opt_in: computed only when a suite names it (too costly for "every metric that applies").
    curves: the names of the curves `compute` may add to `ctx.curves` (points indexed 0, 1, ...,
        stored beside the training curves; reports tell them apart by this declaration).
    min_images: (its params, simulated) -> the fewest test images it can be computed on (`simulated`: the
        dataset draws fresh samples from a factor grid, which some protocols use instead of the test split).
    min_latents: the fewest latent dimensions it can be computed with.
        Both are checked when a suite loads (and by `vaebench evaluate`), never found after training.
    params: the keys this metric reads from [evaluation.params], with types, ranges and defaults; the
        only ones its function sees.
    abs_tol, rel_tol: default regression tolerances for `vaebench baseline`.
    """

    name: str
    family: str
    description: str
    values: tuple[MetricValue, ...]
    function: Callable[[EvaluationContext], dict[str, float]]
    needs_factors: bool = False
    needs_decoder: bool = False
    needs_density: bool = False
    images_drawn: Callable[[Mapping[str, Any]], int] | None = None
    opt_in: bool = False
    curves: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    abs_tol: float = 1e-6
    rel_tol: float = 1e-6
    min_images: Callable[[Mapping[str, Any], bool], int] | None = None
    min_latents: int = 1

    def params_of(self, run_params: Mapping[str, Any]) -> dict[str, Any]:
        """This metric's parameters in a run: the run's value of each key it declares, or its default
        (`run_params`: a RunSpec's metric_params, checked when the suite loaded)."""
        return {p.key: run_params.get(p.key, p.default) for p in self.params}

    def compute(self, ctx: EvaluationContext) -> dict[str, float]:
        """{value name: value} on `ctx`; the function sees in `ctx.params` this metric's own parameters
        (`params_of`), and shares everything else in `ctx` (notes, cache, curves) with the other metrics."""
        view = copy.copy(ctx)  # shallow: the notes, cache and curves stay the context's own
        view.params = self.params_of(ctx.params)
        return self.function(view)

    def needed_test_images(self, run_params: Mapping[str, Any], simulated: bool) -> int:
        """The fewest test images this metric can be computed on with a run's metric parameters."""
        return int(self.min_images(self.params_of(run_params), simulated)) if self.min_images is not None else 1

    def images_drawn_with(self, run_params: Mapping[str, Any]) -> int:
        """The images this metric draws from the dataset beyond the test split, with a run's metric parameters."""
        return int(self.images_drawn(self.params_of(run_params))) if self.images_drawn is not None else 0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"metric {self.name!r}: family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if not self.values:
            raise ValueError(f"metric {self.name!r} declares no values")

    def value(self, value_name: str) -> MetricValue | None:
        """The declaration of one of this metric's values, or None."""
        return next((v for v in self.values if v.matches(value_name)), None)

    @property
    def higher_is_better(self) -> bool:
        """The direction of the headline (first) value, as torchmetrics' `higher_is_better`."""
        return self.values[0].higher_is_better

    @property
    def direction(self) -> str:
        return self.values[0].direction


METRICS: Registry[MetricInfo] = Registry("metric")


def at_least(n: int) -> Callable[[Mapping[str, Any], bool], int]:
    """A `min_images` of n test images whatever the params (e.g. 2 for a covariance)."""
    return lambda params, simulated: n


def register_metric(
    name: str,
    *,
    family: str,
    description: str,
    values: Sequence[MetricValue],
    needs_factors: bool = False,
    needs_decoder: bool = False,
    needs_density: bool = False,
    images_drawn: Callable[[Mapping[str, Any]], int] | None = None,
    opt_in: bool = False,
    curves: Iterable[str] = (),
    params: Iterable[Param] = (),
    abs_tol: float = 1e-6,
    rel_tol: float = 1e-6,
    min_images: Callable[[Mapping[str, Any], bool], int] | int | None = None,
    min_latents: int = 1,
) -> Callable[[Callable[[EvaluationContext], dict[str, float]]], Callable[[EvaluationContext], dict[str, float]]]:
    """Decorator: register the function as the `compute` of metric `name` (see the module docstring)."""

    def decorator(
        compute: Callable[[EvaluationContext], dict[str, float]],
    ) -> Callable[[EvaluationContext], dict[str, float]]:
        info = MetricInfo(
            name=name, family=family, description=description, values=tuple(values), function=compute,
            needs_factors=needs_factors, needs_decoder=needs_decoder, needs_density=needs_density,
            images_drawn=images_drawn,
            opt_in=opt_in, curves=tuple(curves), params=tuple(params), abs_tol=abs_tol, rel_tol=rel_tol,
            min_images=at_least(min_images) if isinstance(min_images, int) else min_images, min_latents=min_latents,
        )
        if name not in METRICS:  # a name registered twice is the registry's error
            check_unclaimed(info)
        METRICS.add(name, info)
        return compute

    return decorator


def _overlap(a: MetricValue, b: MetricValue) -> bool:
    """Whether some stored name could be either value (a per-latent pattern covers its instances)."""
    return any(x.matches(y.name.replace("{i}", "0")) for x, y in ((a, b), (b, a)))


def check_unclaimed(info: MetricInfo) -> None:
    """ValueError unless every value name of `info` is its own: a value name belongs to one metric (a
    second claim on `kl` would replace the built-in value in the store), and a parameter key is
    declared once (several metrics may share a key only with the same declaration)."""
    values = list(info.values)
    for i, value in enumerate(values):
        for twin in values[i + 1:]:
            if _overlap(value, twin):
                raise ValueError(f"metric {info.name!r} declares the value {value.name!r} twice ({twin.name!r})")
    for other_name, other in METRICS.items():
        for value in values:
            taken = next((v for v in other.values if _overlap(value, v)), None)
            if taken is not None:
                raise ValueError(f"metric {info.name!r}: the value name {value.name!r} belongs to metric "
                                 f"{other_name!r} ({taken.name!r}); choose another name")
        for param in info.params:
            declared = next((p for p in other.params if p.key == param.key), None)
            if declared is not None and declared != param:
                raise ValueError(f"metric {info.name!r}: the parameter {param.key!r} is declared by metric "
                                 f"{other_name!r} as {declared.allowed()} (default {declared.default!r}); "
                                 "choose another key")


@dataclass(frozen=True)
class ValueDeclaration:
    """A stored value's metric and its own declaration (direction, per-latent)."""

    metric: MetricInfo
    value: MetricValue

    @property
    def higher_is_better(self) -> bool:
        return self.value.higher_is_better


def declaration_of(value_name: str) -> ValueDeclaration | None:
    """The registry's declaration of a stored value name, or None for an undeclared name."""
    for _, info in METRICS.items():
        value = info.value(value_name)
        if value is not None:
            return ValueDeclaration(info, value)
    return None


def curve_declaration(curve_name: str) -> MetricInfo | None:
    """The metric that declares an evaluation curve of this name, or None (a training curve)."""
    return next((info for _, info in METRICS.items() if curve_name in info.curves), None)


def value_with_role(role: str, names: Iterable[str]) -> str | None:
    """The first of `names` declared with `role` ("rate" or "distortion"), or None."""
    for name in names:
        declared = declaration_of(name)
        if declared is not None and declared.value.role == role:
            return name
    return None


def metric_param_declarations() -> dict[str, Param]:
    """Every key [evaluation.params] allows, with its one declaration (`check_unclaimed` refuses a key
    declared two ways)."""
    return {p.key: p for _, info in METRICS.items() for p in info.params}


def check_metric_params(given: Mapping[str, Any], *, file: str | None = None) -> dict[str, Any]:
    """[evaluation.params] checked against the metrics' declarations (the one check, when a suite loads):
    the given keys, their values converted (an int where a float is declared); a ConfigError names the key."""
    declared = metric_param_declarations()
    checked = check_params(given, declared.values(), file=file, prefix="evaluation.params.")
    return {key: checked[key] for key in given}
