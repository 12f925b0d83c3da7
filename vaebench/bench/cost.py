"""`vaebench run --dry-run`: the runs, the total gradient steps, and a time estimate from a short
measured calibration of each distinct (dataset, network, variant) on this machine.

Where a run also validates along training (best-on-validation selection) or scores `iwae_nll`
(K decodings per test image: README, Performance, for its cost on a whole test split), those
costs are measured too, on a few images, and printed under the run: they can rival the training
itself."""

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


VALIDATION_SAMPLE_BATCHES = 2
IWAE_SAMPLE_PAIRS = 20_000  # (image, sample) pairs decoded to time iwae_nll (at least one image)


def evaluation_seconds(spec: RunSpec, device: str = "cpu") -> dict[str, float]:
    """Measured estimates of a run's validation passes (all of them) and of its iwae_nll scoring:
    {"validation": s, "iwae_nll": s}, each only where the run has it."""
    from vaebench.bench.selection import validation_indices, validation_loss
    from vaebench.metrics import METRICS
    from vaebench.metrics.likelihood import importance_weighted_nll

    out: dict[str, float] = {}
    if not spec.selection and "iwae_nll" not in spec.metrics:
        return out
    dataset = data.get(spec.dataset, **dict(spec.dataset_params))
    with torch.random.fork_rng(devices=[]):
        seed_everything(spec.seed)
        model = build_model(spec, dataset).to(device).eval()
        dev = torch.device(device)
        if spec.selection:
            every = dict(spec.selection)["every"]
            passes = spec.steps // every + (spec.steps % every != 0)
            indices = validation_indices(dataset)
            sample = indices[: VALIDATION_SAMPLE_BATCHES * spec.batch_size]
            started = time.perf_counter()
            validation_loss(model, dataset, sample, batch_size=spec.batch_size, step=0, seed=spec.seed, device=dev)
            out["validation"] = (time.perf_counter() - started) / len(sample) * len(indices) * passes
        if "iwae_nll" in spec.metrics:
            params = METRICS.get("iwae_nll").params_of(dict(spec.metric_params))
            k = params["iwae_k"]
            n = min(params["iwae_images"], len(dataset.test_indices))
            timed = max(1, min(n, IWAE_SAMPLE_PAIRS // k))
            images = torch.from_numpy(dataset.images(dataset.test_indices[:timed]))
            started = time.perf_counter()
            importance_weighted_nll(model, images, k=k, chunk=params["iwae_chunk"], seed=0, device=dev,
                                    float64_logsumexp=params["iwae_float64"])
            out["iwae_nll"] = (time.perf_counter() - started) / timed * n
    return out


def _calibration_key(spec: RunSpec) -> tuple:
    return (spec.dataset, spec.dataset_params, spec.architecture, spec.network, spec.latent_dim, spec.variant,
            spec.hyperparameters,  # an IWAE step decodes k samples a image
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
    evaluations: dict[tuple, dict[str, float]] = {}
    evaluation_total = 0.0
    for spec, seconds in rows:
        print(f"  {spec.run_id}  {spec.dataset:16s} {suite.setting(spec):40s} seed={spec.seed:<3d} "
              f"{spec.steps:>8,d} steps  ~{_duration(seconds)}")
        key = (_calibration_key(spec), spec.steps, spec.selection, spec.metrics, spec.metric_params)
        if key not in evaluations:
            evaluations[key] = evaluation_seconds(spec, device)
        if evaluations[key]:
            evaluation_total += sum(evaluations[key].values())
            parts = ", ".join(f"{name} ~{_duration(s)}" for name, s in evaluations[key].items())
            print(f"  {'':16s}  + {parts}")
    steps = sum(s.steps for s, _ in rows)
    variants = Counter(s.variant for s, _ in rows)
    if evaluation_total:
        print(f"validation and iwae_nll scoring, measured on a few images: ~{_duration(evaluation_total)} in all "
              f"(= {evaluation_total / 3600:.1f} h)")
    print(f"total: {steps:,d} gradient steps over {len(variants)} variants; "
          f"estimated training time on this machine ({device}, one run at a time): {_duration(total)} "
          f"(= {total / 3600:.1f} h; "
          f"{'validation and iwae_nll: above' if evaluation_total else 'scoring not included'})")
