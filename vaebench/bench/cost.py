"""`vaebench run --dry-run`: the runs, the total gradient steps, and a time estimate from a short
measured calibration of each distinct (dataset, network, variant) on this machine."""

from __future__ import annotations

import math
import time
from collections import Counter

import torch

from vaebench import data
from vaebench.bench.optim import Diverged, build_optimizers, optimisation_step
from vaebench.bench.seeding import seed_everything
from vaebench.bench.spec import RunSpec
from vaebench.bench.suite import Suite
from vaebench.bench.train import build_model

CALIBRATION_STEPS = 10
WARMUP_STEPS = 3


def calibrate(spec: RunSpec, device: str = "cpu") -> float:
    """Measured seconds per gradient step of `spec`'s model, batch and optimizer; NaN if it diverges at once."""
    dataset = data.get(spec.dataset, **dict(spec.dataset_params))
    rng = seed_everything(spec.seed)
    model = build_model(spec, dataset).to(device)
    phases = model.phases()
    optimizers = build_optimizers(phases, spec.optimizer, spec.learning_rate,
                                  implementation=spec.optimizer_implementation, options=spec.optimizer_options)
    idx = dataset.train_indices[rng.integers(0, len(dataset.train_indices), spec.batch_size)]
    x = torch.from_numpy(dataset.images(idx)).to(device)
    try:
        for step in range(WARMUP_STEPS):
            optimisation_step(phases, optimizers, x, step)
        started = time.perf_counter()
        for step in range(CALIBRATION_STEPS):
            optimisation_step(phases, optimizers, x, step)
    except Diverged:
        return math.nan
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / CALIBRATION_STEPS


def _calibration_key(spec: RunSpec) -> tuple:
    return (spec.dataset, spec.dataset_params, spec.architecture, spec.network, spec.latent_dim, spec.variant,
            spec.batch_size, spec.optimizer_implementation, spec.optimizer_options)


def estimate(suite: Suite, device: str = "cpu") -> tuple[list[tuple[RunSpec, float]], float]:
    """[(spec, estimated training seconds)] and the total."""
    per_step: dict[tuple, float] = {}
    rows = []
    for spec in suite.specs:
        key = _calibration_key(spec)
        if key not in per_step:
            per_step[key] = calibrate(spec, device)
        rows.append((spec, spec.steps * per_step[key]))
    return rows, sum(t for _, t in rows if not math.isnan(t))


def _duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "? (diverged in calibration)"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def print_dry_run(suite: Suite, device: str = "cpu") -> None:
    rows, total = estimate(suite, device)
    print(f"suite {suite.name!r}: {len(rows)} runs")
    for spec, seconds in rows:
        print(f"  {spec.run_id}  {spec.dataset:16s} {suite.setting(spec):40s} seed={spec.seed:<3d} "
              f"{spec.steps:>8,d} steps  ~{_duration(seconds)}")
    steps = sum(s.steps for s, _ in rows)
    variants = Counter(s.variant for s, _ in rows)
    print(f"total: {steps:,d} gradient steps over {len(variants)} variants; "
          f"estimated training time on this machine ({device}, one run at a time): {_duration(total)} "
          f"(= {total / 3600:.1f} h; scoring not included)")
