"""Scoring a trained model: encode the test split once, then feed every requested metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from vaebench.bench.contract import checked
from vaebench.bench.grids import model_image_grids
from vaebench.bench.seeding import derived_seed, seed_everything
from vaebench.bench.spec import ExternalSpec, RunSpec
from vaebench.data import GroundTruthDataset, ImageDataset
from vaebench.errors import ContractError
from vaebench.metrics import METRICS, EvaluationContext, MetricInfo
from vaebench.variants.base import encode_in_batches, point_mass_posterior


@dataclass
class Scores:
    """What `evaluate` gives: the values, the notes and ceilings metrics stored beside some of them
    (`EvaluationContext.notes`, `.ceilings`), the image grids (PNG), and the (index, name, value) points
    of the curves metrics produce (e.g. ais_rate_distortion's)."""

    values: dict[str, float]
    notes: dict[str, str] = field(default_factory=dict)
    ceilings: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    curves: list[tuple[int, str, float]] = field(default_factory=list)


def evaluate(
    model: torch.nn.Module, dataset: ImageDataset, spec: RunSpec | ExternalSpec, *, device: torch.device,
    cache_dir: Path, grids: bool = True, name: str | None = None,
) -> Scores:
    """Every metric of `spec` on the test split, with the image grids unless `grids` is False.

    The model is scored through its checked contract (`bench.contract`): a batch on which it breaks
    it (a wrong shape, a NaN code) is a ContractError, never a value computed on part of the data."""
    seed = derived_seed(spec.seed, "evaluate")
    seed_everything(seed)
    model.eval()
    model = checked(model, image_shape=dataset.image_shape, latent_dim=spec.latent_dim,
                    name=name or f"variant {spec.variant!r}")
    test_indices = dataset.test_indices
    images = torch.from_numpy(dataset.images(test_indices))
    mu, logvar = (t.numpy() for t in encode_in_batches(model, images, device))
    ctx = EvaluationContext(
        model=model,
        dataset=dataset,
        test_indices=test_indices,
        test_images=images,
        mu=mu,
        logvar=logvar,
        # has_factors: a GroundTruthDataset, or a user's dataset with factors behind its checked contract
        factors=cast(GroundTruthDataset, dataset).factors(test_indices) if dataset.has_factors else None,
        seed=seed,
        device=device,
        cache_dir=cache_dir,
        params=dict(spec.metric_params),
        metrics=tuple(spec.metrics),
    )
    values: dict[str, float] = {}
    point_mass = point_mass_posterior(model)
    for name in spec.metrics:
        info = METRICS.get(name)
        if info.needs_density and point_mass:
            continue  # a point mass has no density: KL, ELBO and I(x; z) are infinite (not stored)
        curves_before = len(ctx.curves)
        for value_name, value in metric_values(name, info, info.compute(ctx)).items():
            values[value_name] = value
        for _, curve, _ in ctx.curves[curves_before:]:
            if curve not in info.curves:
                raise ContractError(f"metric {name!r} produced the curve {curve!r}, which it does not declare")
    # image grids for reports (PNG bytes), last: a pixelcnn decoder samples them with the global
    # generator (see model_image_grids), which no metric may depend on
    artifacts: dict[str, bytes] = model_image_grids(model, images, seed=seed) if grids else {}
    curves = [(int(step), str(curve), float(value)) for step, curve, value in ctx.curves]
    ceilings = {k: float(v) for k, v in ctx.ceilings.items() if k in values}
    return Scores(values, dict(ctx.notes), ceilings, artifacts, curves)


def metric_values(name: str, info: MetricInfo, returned: Any) -> dict[str, float]:
    """What a metric's `compute` returned, as {declared value name: float}; a ContractError otherwise."""
    if not isinstance(returned, dict):
        raise ContractError(f"metric {name!r} returned {type(returned).__name__}; expected a dict of value names "
                            "to numbers")
    out = {}
    for value_name, value in returned.items():
        if not isinstance(value_name, str) or info.value(value_name) is None:
            raise ContractError(f"metric {name!r} returned {value_name!r}, which it does not declare; declared: "
                                f"{', '.join(v.name for v in info.values)}")
        try:
            if isinstance(value, (str, bytes)):
                raise TypeError
            out[value_name] = float(value)
        except (TypeError, ValueError, OverflowError, RuntimeError):
            raise ContractError(f"metric {name!r} returned {type(value).__name__} for {value_name!r}; "
                                "expected one number") from None
    return out
