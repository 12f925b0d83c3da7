"""Scoring a trained model: encode the test split once, then feed every requested metric."""

from __future__ import annotations

from pathlib import Path

import torch

from vaebench.bench.seeding import derived_seed, seed_everything
from vaebench.bench.spec import RunSpec
from vaebench.data import ImageDataset
from vaebench.metrics import METRICS, EvaluationContext
from vaebench.bench.grids import model_image_grids
from vaebench.variants.base import encode_in_batches


def evaluate(
    model: torch.nn.Module, dataset: ImageDataset, spec: RunSpec, *, device: torch.device, cache_dir: Path,
    grids: bool = True,
) -> tuple[dict[str, float], dict[str, str], dict[str, bytes], list[tuple[int, str, float]]]:
    """Every metric of `spec` on the test split: (values, notes per value, artifacts: the image grids,
    curves: the (index, name, value) points of the curves metrics produce, e.g. ais_rate_distortion's)."""
    seed = derived_seed(spec.seed, "evaluate")
    seed_everything(seed)
    model.eval()
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
        factors=dataset.factors(test_indices) if dataset.has_factors else None,
        seed=seed,
        device=device,
        cache_dir=cache_dir,
        params=dict(spec.metric_params),
    )
    values: dict[str, float] = {}
    point_mass = getattr(model, "deterministic_encoder", False)
    for name in spec.metrics:
        info = METRICS.get(name)
        if info.needs_density and point_mass:
            continue  # a point mass has no density: KL, ELBO and I(x; z) are infinite (not stored)
        curves_before = len(ctx.curves)
        for value_name, value in info.compute(ctx).items():
            if info.value(value_name) is None:
                raise RuntimeError(f"metric {name!r} returned {value_name!r}, which it does not declare")
            values[value_name] = float(value)
        for _, curve, _ in ctx.curves[curves_before:]:
            if curve not in info.curves:
                raise RuntimeError(f"metric {name!r} produced the curve {curve!r}, which it does not declare")
    # image grids for reports (PNG bytes), last: a pixelcnn decoder samples them with the global
    # generator (see model_image_grids), which no metric may depend on
    artifacts: dict[str, bytes] = model_image_grids(model, images, seed=seed) if grids else {}
    curves = [(int(step), str(curve), float(value)) for step, curve, value in ctx.curves]
    return values, dict(ctx.notes), artifacts, curves
