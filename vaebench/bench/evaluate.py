"""Scoring a trained model: encode the test split once, then feed every requested metric."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vaebench.bench.seeding import derived_seed, seed_everything
from vaebench.bench.suite import RunSpec
from vaebench.data import ImageDataset
from vaebench.metrics import METRICS, EvaluationContext
from vaebench.reports.grids import model_image_grids

ENCODE_BATCH = 500


@torch.no_grad()
def encode_dataset(model: torch.nn.Module, images: torch.Tensor, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar) of every image, float64 (N, D), in batches."""
    mus, logvars = [], []
    for start in range(0, len(images), ENCODE_BATCH):
        mu, logvar = model.encode(images[start : start + ENCODE_BATCH].to(device))
        mus.append(mu.double().cpu())
        logvars.append(logvar.double().cpu())
    return torch.cat(mus).numpy(), torch.cat(logvars).numpy()


def evaluate(
    model: torch.nn.Module, dataset: ImageDataset, spec: RunSpec, *, device: torch.device, cache_dir: Path
) -> tuple[dict[str, float], dict[str, str], dict[str, bytes]]:
    """Every metric of `spec` on the test split: (values, notes per value, artifacts)."""
    seed = derived_seed(spec.seed, "evaluate")
    seed_everything(seed)
    model.eval()
    test_indices = dataset.test_indices
    images = torch.from_numpy(dataset.images(test_indices))
    mu, logvar = encode_dataset(model, images, device)
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
    for name in spec.metrics:
        values.update({k: float(v) for k, v in METRICS.get(name).compute(ctx).items()})
    # image grids for reports (PNG bytes); own seeded generator, so no metric value changes
    artifacts: dict[str, bytes] = model_image_grids(model, images, seed=seed)
    return values, dict(ctx.notes), artifacts
