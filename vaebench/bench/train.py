"""One run: seed, build, train for a budget of steps with checkpoints, score, return a RunResult.

A spec with a learning-rate schedule (`vaebench.bench.schedules`) sets every optimizer's rate
before each update from the step, and logs it as the curve '<phase>/lr'.

Resuming is exact: a checkpoint holds the model, every optimizer, the step, the curves so
far and the states of torch's and NumPy's generators, so a run killed at any point and
resumed gives the same numbers, bit for bit, as one that was never interrupted.
Checkpoints are plain tensors and containers and load with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

from vaebench import data
from vaebench.bench.environment import describe_environment
from vaebench.bench.evaluate import evaluate
from vaebench.bench.optim import Diverged, build_optimizers, optimisation_step
from vaebench.bench.schedules import lr_multiplier
from vaebench.bench.seeding import seed_everything
from vaebench.bench.spec import ProgressFn, RunResult, RunSpec, RunTask
from vaebench.bench.trajectory import AlongScores, along_scorer, images_drawn_along  # scoring along training
from vaebench.files import atomic_torch_save
from vaebench.metrics import METRICS
from vaebench.metrics.registry import check_metric_params
from vaebench.plugins import imported_plugins, import_plugins
from vaebench.variants import build_variant

log = logging.getLogger(__name__)

def checkpoint_path(run_dir: Path, run_id: str) -> Path:
    return Path(run_dir) / "checkpoints" / f"{run_id}.pt"


CORRUPT_SUFFIX = ".corrupt"


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint's state, or None: when there is none, or when it does not load (truncated,
    foreign, or a crafted pickle that `weights_only=True` refuses); such a file is renamed
    `<name>.corrupt` and the run restarts from step 0, which the log says."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(state, dict) or not {"model", "optimizers", "step", "curves"} <= set(state):
            raise ValueError("not a vaebench checkpoint")
        return state
    except Exception as exc:  # noqa: BLE001 - any unreadable file is handled the same way
        discard_checkpoint(path, exc)
        return None


def discard_checkpoint(path: Path, reason: BaseException) -> Path:
    """Rename an unusable checkpoint to `<name>.corrupt` (kept for inspection) and log it."""
    aside = path.with_name(path.name + CORRUPT_SUFFIX)
    os.replace(path, aside)
    log.warning("checkpoint %s is unusable (%s); moved to %s, the run restarts from step 0",
                path, type(reason).__name__, aside)
    return aside


def model_path(run_dir: Path, run_id: str) -> Path:
    return Path(run_dir) / "models" / f"{run_id}.pt"


def build_model(spec: RunSpec, dataset: data.ImageDataset) -> torch.nn.Module:
    return build_variant(
        spec.variant, dict(spec.hyperparameters), image_shape=dataset.image_shape, latent_dim=spec.latent_dim,
        architecture=spec.architecture, likelihood=spec.likelihood, network=spec.network,
    )


class Trainer:
    """The training state of one run, with save / restore for checkpoints."""

    def __init__(self, spec: RunSpec, dataset: data.ImageDataset, device: torch.device):
        self.spec = spec
        self.dataset = dataset
        self.device = device
        self.rng = seed_everything(spec.seed)
        self.model = build_model(spec, dataset).to(device)
        self.phases = self.model.phases()
        self.optimizers = build_optimizers(self.phases, spec.optimizer, spec.learning_rate)
        self.base_lrs = [[group["lr"] for group in opt.param_groups] for opt in self.optimizers]
        self.step = 0
        self.curves: list[tuple[int, str, float]] = []
        self.train_time_s = 0.0
        # scoring along training (vaebench.bench.trajectory): the scores so far (checkpointed) and the hook
        self.along = AlongScores()
        self.score_along: Callable[["Trainer"], float] | None = None

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "step": self.step,
            "curves": [list(c) for c in self.curves],
            "train_time_s": self.train_time_s,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": self.rng.bit_generator.state,
            "along": self.along.to_state(),  # scoring along training
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for opt, opt_state in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        self.step = int(state["step"])
        self.curves = [(int(s), str(n), float(v)) for s, n, v in state["curves"]]
        self.train_time_s = float(state["train_time_s"])
        torch.set_rng_state(state["torch_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.along = AlongScores.from_state(state.get("along"))  # scoring along training

    def schedule_learning_rates(self) -> None:
        """Every optimizer's rate for the next update: its base rate times the schedule's multiplier
        at this step (a function of the step alone, so resuming needs no schedule state)."""
        multiplier = lr_multiplier(self.step, self.spec.lr_schedule)
        for opt, bases in zip(self.optimizers, self.base_lrs):
            for group, base in zip(opt.param_groups, bases):
                group["lr"] = base * multiplier

    def batch(self) -> torch.Tensor:
        train = self.dataset.train_indices
        idx = train[self.rng.integers(0, len(train), size=self.spec.batch_size)]
        return self.dataset.training_batch(idx, self.device, self.rng)

    def train(self, checkpoint: Path | None, progress: ProgressFn | None) -> None:
        """Train up to the budget, checkpointing every `checkpoint_every` steps and at the end."""
        spec = self.spec
        self.model.train()
        started = time.perf_counter()
        while self.step < spec.steps:
            if spec.lr_schedule:
                self.schedule_learning_rates()
            terms = optimisation_step(self.phases, self.optimizers, self.batch(), self.step)
            self.step += 1
            if self.step % spec.log_every == 0 or self.step == spec.steps:
                self.curves.extend((self.step, name, float(v)) for name, v in terms.items())
                if spec.lr_schedule:
                    self.curves.extend((self.step, f"{phase.name}/lr", opt.param_groups[0]["lr"])
                                       for phase, opt in zip(self.phases, self.optimizers))
                if progress is not None:
                    progress(spec.run_id, self.step)
            if self.score_along is not None:  # scoring along training: its time is not training time
                started += self.score_along(self)
            if checkpoint is not None and (self.step % spec.checkpoint_every == 0 or self.step == spec.steps):
                self.train_time_s += time.perf_counter() - started
                atomic_torch_save(self.state(), checkpoint)
                started = time.perf_counter()
        self.train_time_s += time.perf_counter() - started


def images_to_draw(spec: RunSpec) -> int:
    """Images a run draws from its dataset: its training batches, and the factor scores' samples."""
    params = check_metric_params(dict(spec.metric_params))
    drawn = [METRICS.get(m).images_drawn for m in spec.metrics]
    return (spec.steps * spec.batch_size + sum(count(params) for count in drawn if count is not None)
            + images_drawn_along(spec))  # scoring along training


def execute_run(task: RunTask, progress: ProgressFn | None = None) -> RunResult:
    """Train and score one run; never raises for a run's own failure (it becomes the status)."""
    spec = task.spec
    if task.threads:
        torch.set_num_threads(task.threads)
    dev = torch.device(task.device)
    run_dir_path = Path(task.run_dir)
    ckpt = checkpoint_path(run_dir_path, spec.run_id)
    result = RunResult(spec=spec, status="done", environment=describe_environment(dev))
    resumed_at = 0
    try:
        import_plugins(task.plugins)
        result.environment["plugins"] = imported_plugins()
        dataset = data.get(spec.dataset, **dict(spec.dataset_params)).materialised(
            run_dir_path / "cache", images_to_draw=images_to_draw(spec)
        )
        files = dataset.data_files()  # SHA-256s: a number on a modified file is never taken for the published one
        if files:
            result.environment["data_files"] = files
        trainer = Trainer(spec, dataset, dev)
        state = load_checkpoint(ckpt, dev)
        if state is not None:
            try:
                trainer.restore(state)
                resumed_at = trainer.step
            except Exception as exc:  # noqa: BLE001 - a checkpoint of another model or format
                discard_checkpoint(ckpt, exc)
                trainer = Trainer(spec, dataset, dev)
        trainer.score_along = along_scorer(spec, dataset, dev, run_dir_path / "cache")  # None without at_steps
        try:
            trainer.train(ckpt, progress)
        except Diverged as err:
            result.status, result.diverged_step, result.error = "diverged", err.step, str(err)
        result.steps_done = trainer.step
        result.curves = trainer.curves
        if spec.at_steps:  # scoring along training
            result.along, result.environment["along_scoring_time_s"] = trainer.along.rows, trainer.along.time_s
        result.steps_per_s = trainer.step / trainer.train_time_s if trainer.train_time_s > 0 else 0.0
        scoring_started = time.perf_counter()
        if result.status == "done":
            atomic_torch_save(trainer.model.state_dict(), model_path(run_dir_path, spec.run_id))
            result.metrics, result.notes, result.artifacts = evaluate(
                trainer.model, dataset, spec, device=dev, cache_dir=run_dir_path / "cache"
            )
        result.environment["scoring_time_s"] = time.perf_counter() - scoring_started
        result.wall_time_s = trainer.train_time_s + result.environment["scoring_time_s"] + trainer.along.time_s
    except Exception as err:  # a bug or resource failure in one run must not stop the sweep
        result.status = "failed"
        result.error = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}"
    result.environment["resumed_from_step"] = resumed_at
    return result

