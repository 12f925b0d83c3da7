"""One run: seed, build, train for a budget of steps with checkpoints, score, return a RunResult.

A spec with a learning-rate schedule (`vaebench.bench.schedules`) sets every optimizer's rate
before each update from the step, and logs it as the curve '<phase>/lr'. A spec with a
`selection` validates the model along training and scores the best one on validation
(`vaebench.bench.selection`); the checkpoint then also holds the best model.

Resuming is exact: a checkpoint holds the model, every optimizer, the step, the curves so
far and the states of torch's and NumPy's generators, so a run killed at any point and
resumed gives the same numbers, bit for bit, as one that was never interrupted.
Checkpoints are plain tensors and containers and load with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import logging
import math
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vaebench import data
from vaebench.bench.contract import non_finite_parameter
from vaebench.bench.environment import describe_environment
from vaebench.bench.evaluate import evaluate
from vaebench.bench.identity import changes, made_from
from vaebench.bench.optim import (
    Diverged,
    build_optimizers,
    check_implementations,
    optimisation_step,
    resolved_implementation,
)
from vaebench.bench.sampler import BatchSampler
from vaebench.bench.schedules import lr_multiplier
from vaebench.bench.seeding import seed_everything
from vaebench.bench.selection import VALIDATION_CURVE, BestValidation, best_model_path, validation_loss
from vaebench.bench.spec import ProgressFn, RunResult, RunSpec, RunStatus, RunTask
from vaebench.bench.trajectory import AlongScores, along_scorer, images_drawn_along  # scoring along training
from vaebench.errors import NonFiniteOutputError, VaebenchError
from vaebench.files import atomic_torch_save
from vaebench.metrics import METRICS
from vaebench.plugins import USER_CODE_ERRORS, import_entry_point_plugins, import_plugins, user_code_failure
from vaebench.tracking.hooks import LogFn, open_run_tracking
from vaebench.variants import Variant, build_variant

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
    log.warning("checkpoint %s is unusable (%s: %s); moved to %s, the run restarts from step 0",
                path, type(reason).__name__, reason, aside)
    return aside


STALE_SUFFIX = ".stale"


def set_aside_stale_checkpoint(path: Path, changed: list[str]) -> Path:
    """Rename a checkpoint made from other code or data than the run has now to `<name>.stale` (kept for
    inspection, never resumed) and log what changed."""
    aside = path.with_name(path.name + STALE_SUFFIX)
    os.replace(path, aside)
    log.warning("checkpoint %s was made from other code or data (%s); moved to %s, the run restarts from step 0",
                path, "; ".join(changed), aside)
    return aside


def model_path(run_dir: Path, run_id: str) -> Path:
    return Path(run_dir) / "models" / f"{run_id}.pt"


def build_model(spec: RunSpec, dataset: data.ImageDataset) -> Variant:
    return build_variant(
        spec.variant, dict(spec.hyperparameters), image_shape=dataset.image_shape, latent_dim=spec.latent_dim,
        architecture=spec.architecture, likelihood=spec.likelihood, network=spec.network,
    )


class Trainer:
    """The training state of one run, with save / restore for checkpoints."""

    def __init__(self, spec: RunSpec, dataset: data.ImageDataset, device: torch.device,
                 made_from: dict[str, str] | None = None):
        self.spec = spec
        self.made_from = made_from or {}
        self.dataset = dataset
        self.device = device
        self.rng = seed_everything(spec.seed)
        self.model = build_model(spec, dataset).to(device)
        self.phases = self.model.phases()
        self.optimizers = build_optimizers(self.phases, spec.optimizer, spec.learning_rate,
                                           implementation=spec.optimizer_implementation, options=spec.optimizer_options)
        self.implementations = [resolved_implementation(opt) for opt in self.optimizers]
        self.base_lrs = [[group["lr"] for group in opt.param_groups] for opt in self.optimizers]
        self.step = 0
        self.curves: list[tuple[int, str, float]] = []
        self.train_time_s = 0.0
        self.sampler = BatchSampler(spec.sampler or "replacement", dataset.train_indices, spec.batch_size, spec.seed)
        self.selector = BestValidation.for_spec(dict(spec.selection), spec.steps, dataset)
        # scoring along training (vaebench.bench.trajectory): the scores so far (checkpointed) and the hook
        self.along = AlongScores()
        self.score_along: Callable[[Trainer], float] | None = None

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "optimizer_implementations": list(self.implementations),
            "step": self.step,
            "curves": [list(c) for c in self.curves],
            "train_time_s": self.train_time_s,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": self.rng.bit_generator.state,
            "made_from": dict(self.made_from),
            **({"selection": self.selector.state()} if self.selector is not None else {}),
            "along": self.along.to_state(),  # scoring along training
        }

    def restore(self, state: dict[str, Any]) -> None:
        check_implementations(state.get("optimizer_implementations"), self.optimizers)
        self.model.load_state_dict(state["model"])
        for opt, opt_state in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        self.step = int(state["step"])
        self.curves = [(int(s), str(n), float(v)) for s, n, v in state["curves"]]
        self.train_time_s = float(state["train_time_s"])
        torch.set_rng_state(state["torch_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
        if self.selector is not None:
            self.selector.restore(state["selection"])
        self.along = AlongScores.from_state(state.get("along"))  # scoring along training

    def schedule_learning_rates(self) -> None:
        """Every optimizer's rate for the next update: its base rate times the schedule's multiplier
        at this step (a function of the step alone, so resuming needs no schedule state)."""
        multiplier = lr_multiplier(self.step, self.spec.lr_schedule)
        for opt, bases in zip(self.optimizers, self.base_lrs):
            for group, base in zip(opt.param_groups, bases):
                group["lr"] = base * multiplier

    def batch(self) -> torch.Tensor:
        """The training batch of the next step (`vaebench.bench.sampler`)."""
        return self.dataset.training_batch(self.sampler.indices(self.step, self.rng), self.device, self.rng)

    def validate(self, selector: BestValidation) -> None:
        """The validation loss of the model as it is now, logged and offered to the selector."""
        loss = validation_loss(self.model, self.dataset, selector.indices, batch_size=self.spec.batch_size,
                               step=self.step, seed=self.spec.seed, device=self.device)
        self.curves.append((self.step, VALIDATION_CURVE, loss))
        selector.observe(self.model, self.step, loss)

    def train(self, checkpoint: Path | None, progress: ProgressFn | None, on_log: LogFn | None = None) -> None:
        """Train up to the budget, checkpointing every `checkpoint_every` steps and at the end; `on_log(step,
        terms)` gets each logged step's loss terms before the checkpoint that covers them is written."""
        spec = self.spec
        self.model.train()
        if self.selector is not None and checkpoint is not None:
            self.selector.best_file = best_model_path(checkpoint)
            self.selector.save_best_file()  # a resumed run's copy, from its checkpoint
        started = time.perf_counter()
        while self.step < spec.steps:
            if spec.lr_schedule:
                self.schedule_learning_rates()
            terms = optimisation_step(self.phases, self.optimizers, self.batch(), self.step)
            self.step += 1
            if self.step % spec.log_every == 0 or self.step == spec.steps:
                logged = {name: float(v) for name, v in terms.items()}
                if spec.lr_schedule:
                    logged.update((f"{phase.name}/lr", opt.param_groups[0]["lr"])
                                  for phase, opt in zip(self.phases, self.optimizers))
                self.curves.extend((self.step, name, value) for name, value in logged.items())
                if on_log is not None:  # the trackers' time is not training time
                    paused = time.perf_counter()
                    on_log(self.step, logged)
                    started += time.perf_counter() - paused
                if progress is not None:
                    progress(spec.run_id, self.step)
            if self.selector is not None and self.selector.due(self.step):
                self.validate(self.selector)
            if self.score_along is not None:  # scoring along training: its time is not training time
                started += self.score_along(self)
            if checkpoint is not None and (self.step % spec.checkpoint_every == 0 or self.step == spec.steps):
                self.check_parameters()
                self.train_time_s += time.perf_counter() - started
                atomic_torch_save(self.state(), checkpoint)
                started = time.perf_counter()
        self.train_time_s += time.perf_counter() - started
        self.check_parameters()

    def check_parameters(self) -> None:
        """Diverged at this step if the last update left a parameter NaN or infinite: the loss is checked
        before each update, so the last step's update (and a checkpoint's weights) is checked here."""
        bad = non_finite_parameter(self.model)
        if bad is not None:
            raise Diverged(self.step, bad, what="parameter")


def prepared_trainer(spec: RunSpec, dataset: data.ImageDataset, device: torch.device, checkpoint: Path,
                     identity: dict[str, str], environment: dict[str, Any]) -> Trainer:
    """The run's trainer: restored from its checkpoint when that was made from the same code and data
    (`bench.identity`), else at step 0; a restart for changed code or data is noted in `environment`."""
    state = load_checkpoint(checkpoint, device)
    if state is not None and not isinstance(state.get("made_from"), dict):  # foreign, or older than the record
        discard_checkpoint(checkpoint, ValueError("no record of the code and data it was made from"))
        state = None
    if state is not None:
        changed = changes(state["made_from"], identity)
        if changed:
            set_aside_stale_checkpoint(checkpoint, changed)
            environment["restarted_because"] = changed
            state = None
    trainer = Trainer(spec, dataset, device, identity)
    if state is not None:
        try:
            trainer.restore(state)
        except Exception as exc:  # noqa: BLE001 - a checkpoint of another model or format
            discard_checkpoint(checkpoint, exc)
            trainer = Trainer(spec, dataset, device, identity)
    return trainer


def images_to_draw(spec: RunSpec) -> int:
    """Images a run draws from its dataset: its training batches, and the factor scores' samples."""
    params = dict(spec.metric_params)
    return (spec.steps * spec.batch_size + sum(METRICS.get(m).images_drawn_with(params) for m in spec.metrics)
            + images_drawn_along(spec))  # scoring along training


def execute_run(task: RunTask, progress: ProgressFn | None = None) -> RunResult:
    """Train and score one run; never raises for a run's own failure (it becomes the status)."""
    spec = task.spec
    if task.threads:
        torch.set_num_threads(task.threads)
    dev = torch.device(task.device)
    run_dir_path = Path(task.run_dir)
    ckpt = checkpoint_path(run_dir_path, spec.run_id)
    result = RunResult(spec=spec, status=RunStatus.DONE, environment=describe_environment(dev))
    if task.reproduces:
        result.environment["reproduces"] = list(task.reproduces)
    resumed_at = 0
    try:
        plugins = run_plugins(task.plugins)
        result.environment["plugins"] = plugins
        dataset = data.get(spec.dataset, **dict(spec.dataset_params)).materialised(
            run_dir_path / "cache", images_to_draw=images_to_draw(spec)
        )
        files = dataset.data_files()  # SHA-256s: a number on a modified file is never taken for the published one
        if files:
            result.environment["data_files"] = files
        # what was read: the path as expanded here (a spec may name ${VAEBENCH_DATA}), file fingerprints, hashes
        result.environment["dataset"] = dataset.describe()
        result.environment["train_images"] = int(len(dataset.train_indices))  # what an epoch is
        identity = made_from(dataset, plugins)
        result.environment["made_from"] = identity
        trainer = prepared_trainer(spec, dataset, dev, ckpt, identity, result.environment)
        resumed_at = trainer.step
        result.environment["optimizer_implementation"] = trainer.implementations
        tracking = open_run_tracking(task, resumed_at)
        trainer.score_along = along_scorer(spec, dataset, dev, run_dir_path / "cache")  # None without at_steps
        try:
            trainer.train(ckpt, progress, tracking.log_curves)
        except Diverged as err:
            result.status, result.diverged_step, result.error = RunStatus.DIVERGED, err.step, str(err)
        finally:
            tracking.close()
        result.steps_done = trainer.step
        result.curves = trainer.curves
        if spec.at_steps:  # scoring along training
            result.along, result.environment["along_scoring_time_s"] = trainer.along.rows, trainer.along.time_s
        result.steps_per_s = trainer.step / trainer.train_time_s if trainer.train_time_s > 0 else 0.0
        scoring_started = time.perf_counter()
        if result.status is RunStatus.DONE:
            if trainer.selector is not None:
                trainer.selector.select(trainer.model)
                result.environment["selection"] = trainer.selector.describe()
            score(trainer, dataset, run_dir_path, result)
        if trainer.selector is not None:
            trainer.selector.discard_best_file()  # the scored model is in models/; the checkpoint holds it too
        result.environment["scoring_time_s"] = time.perf_counter() - scoring_started
        result.wall_time_s = trainer.train_time_s + result.environment["scoring_time_s"] + trainer.along.time_s
    except USER_CODE_ERRORS as err:  # a bug, a resource failure or user code's sys.exit() must not stop the sweep
        result.status = RunStatus.FAILED
        result.error = run_error(err)
    result.environment["resumed_from_step"] = resumed_at
    return result


def score(trainer: Trainer, dataset: data.ImageDataset, run_dir: Path, result: RunResult) -> None:
    """Score the trained model into `result` and save it. A model whose outputs are not finite diverged
    (at its last step); one whose scores are all NaN or infinite failed: neither is `done`."""
    spec = trainer.spec
    try:
        scores = evaluate(trainer.model, dataset, spec, device=trainer.device, cache_dir=run_dir / "cache")
        result.metrics, result.notes, result.ceilings = scores.values, scores.notes, scores.ceilings
        result.artifacts = scores.artifacts
        result.curves = [*result.curves, *scores.curves]  # a metric's curves (steps index its points)
    except NonFiniteOutputError as err:
        result.status, result.diverged_step = RunStatus.DIVERGED, trainer.step
        result.error = f"the trained model gives non-finite outputs after step {trainer.step}: {err}"
        return
    if result.metrics and not any(math.isfinite(v) for v in result.metrics.values()):
        result.status = RunStatus.FAILED
        result.error = (f"scoring gave no finite value ({', '.join(sorted(result.metrics))} are all NaN or "
                        "infinite); a run is done only when its scores are")
        return
    atomic_torch_save(trainer.model.state_dict(), model_path(run_dir, spec.run_id))


def run_plugins(names: tuple[str, ...]) -> list[dict[str, str]]:
    """Import the run's plugins (the installed ones and its suite's); their descriptions, for its environment."""
    suite_plugins = import_plugins(names)
    return [p.describe() for p in (*import_entry_point_plugins(), *suite_plugins)]


def run_error(err: BaseException) -> str:
    """What a failed run stores as its error: one line for a user's mistake (a VaebenchError) and for an
    exit from user code, naming the module; the error and its traceback otherwise (a bug to report)."""
    if isinstance(err, VaebenchError):
        return " ".join(str(err).split())
    if isinstance(err, SystemExit):
        return user_code_failure(err, "the run")
    return f"{type(err).__name__}: {err}\n{''.join(traceback.format_exception(err, limit=8))}"

