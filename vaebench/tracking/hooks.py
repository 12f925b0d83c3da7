"""What the harness calls: the worker's `open_run_tracking`, the driver's `SweepTracking`, and `log_report`.

Who writes what. The worker that trains a run (in process, in a pool process, on a Ray node)
opens the run in each tracker by an id derived from the run id, logs the spec, and logs every
training point as the loop logs it. The driver, which alone receives RunResults, creates the
trackers' stores before any run starts and, once a run's result is in the store, logs its final
metrics and image grids and ends it. A run directory on a filesystem every worker reaches is
already required (checkpoints); the tracking destinations must be reachable from every worker too.

Tracking never changes a run: every tracker call runs with the global random generators restored
afterwards, and a tracker that fails in a worker (a full disk, a lost server) is logged as a
warning and left off for the rest of that run; the run goes on. One that fails in the driver for
a finished run is a warning for that run; the driver tries again for the next. Errors a user can fix before
anything runs (an extra not installed, a store MLflow refuses, no server at the URI) stop
`vaebench run` with one line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vaebench.bench.spec import RunResult, RunTask
from vaebench.tracking.common import rng_untouched
from vaebench.tracking.config import TrackingConfig, record_tracking, recorded_tracking

log = logging.getLogger(__name__)

LogFn = Callable[[int, Mapping[str, float]], None]


def check_installed(config: TrackingConfig) -> None:
    """A MissingDependencyError naming the extra to install for the first tracker of `config` that does not import."""
    if config.tensorboard is not None:
        from vaebench.tracking import tensorboard_tracker

        tensorboard_tracker.check_installed()
    if config.mlflow is not None:
        from vaebench.tracking import mlflow_tracker

        mlflow_tracker.check_installed()


def _best_effort(sinks: list[tuple[str, Any]], method: str, *args: Any, what: str, drop: bool = True) -> None:
    """Call `method` on every (tracker name, sink); one that raises is warned about, and dropped if `drop`."""
    for entry in list(sinks):
        name, sink = entry
        try:
            with rng_untouched():
                getattr(sink, method)(*args)
        except Exception as err:  # noqa: BLE001 - a tracker must never fail a run
            if drop:
                log.warning("%s tracking stopped for %s: %s: %s", name, what, type(err).__name__, err)
                sinks.remove(entry)
            else:
                log.warning("%s tracking failed for %s: %s: %s", name, what, type(err).__name__, err)


class RunTracking:
    """A run's trackers in the worker: `log_curves(step, values)` as the training loop logs, then `close()`."""

    def __init__(self, sinks: list[tuple[str, Any]], run_id: str):
        self._sinks = sinks
        self._run_id = run_id

    @property
    def trackers(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._sinks)

    def log_curves(self, step: int, values: Mapping[str, float]) -> None:
        if self._sinks:
            _best_effort(self._sinks, "log_curves", step, dict(values), what=f"run {self._run_id}")

    def close(self) -> None:
        _best_effort(self._sinks, "close", what=f"run {self._run_id}")
        self._sinks = []


def open_run_tracking(task: RunTask, resumed_at: int) -> RunTracking:
    """The trackers of `task` (none when its sweep tracks nothing), opened for an attempt that trains from
    step `resumed_at`; one that cannot open is a warning, and the run trains without it."""
    config: TrackingConfig | None = getattr(task, "tracking", None)
    sinks: list[tuple[str, Any]] = []
    if config is None or not config.enabled:
        return RunTracking(sinks, task.run_id)
    openers: list[tuple[str, Callable[[], Any]]] = []
    if config.tensorboard is not None:
        from vaebench.tracking.tensorboard_tracker import TensorBoardRun

        log_dir = config.tensorboard
        openers.append(("TensorBoard", lambda: TensorBoardRun(log_dir, task, resumed_at)))
    if config.mlflow is not None:
        from vaebench.tracking.mlflow_tracker import MlflowRun

        openers.append(("MLflow", lambda: MlflowRun(config, task.spec, task.setting)))
    for name, opener in openers:
        try:
            with rng_untouched():
                sinks.append((name, opener()))
        except Exception as err:  # noqa: BLE001 - the run trains without this tracker
            log.warning("%s tracking is off for run %s: %s: %s", name, task.run_id, type(err).__name__, err)
    return RunTracking(sinks, task.run_id)


class SweepTracking:
    """The driver's side of a sweep's tracking; does nothing when `config` is None or names no tracker.

    Constructing it checks that the trackers' packages import (MissingDependencyError naming the
    extra), before an executor starts; `start` creates the stores and records the config in the
    run directory (for `vaebench report`); `finished` logs a stored result; `close` ends."""

    def __init__(self, config: TrackingConfig | None):
        self.config = config if config is not None and config.enabled else None
        self._sinks: list[tuple[str, Any]] = []
        if self.config is not None:
            check_installed(self.config)

    def start(self, run_dir: str | Path) -> None:
        record_tracking(run_dir, self.config or TrackingConfig())
        if self.config is None:
            return
        if self.config.tensorboard is not None:
            from vaebench.tracking.tensorboard_tracker import TensorBoardSweep

            self._sinks.append(("TensorBoard", TensorBoardSweep(self.config.tensorboard)))
        if self.config.mlflow is not None:
            from vaebench.tracking.mlflow_tracker import MlflowSweep

            self._sinks.append(("MLflow", MlflowSweep(self.config)))
        for _, sink in self._sinks:  # a user error here (a refused store, no server) stops the sweep in one line
            with rng_untouched():
                sink.start()

    def finished(self, result: RunResult, setting: str) -> None:
        if self._sinks:
            _best_effort(self._sinks, "finished", result, setting, what=f"run {result.run_id}", drop=False)

    def close(self) -> None:
        _best_effort(self._sinks, "close", what="the sweep")
        self._sinks = []


def log_report(run_dir: str | Path, report_dir: str | Path) -> list[str]:
    """Log a written report to the trackers of the run directory's last sweep; one line per tracker written
    (a tracker whose package is missing is a warning on the log, not an error: the report is written)."""
    config = recorded_tracking(run_dir)
    if config is None or not config.enabled:
        return []
    report, lines = Path(report_dir), []
    if config.tensorboard is not None:
        from vaebench.tracking import tensorboard_tracker

        try:
            tensorboard_tracker.check_installed()
            where = tensorboard_tracker.log_report(config.tensorboard, report)
            lines.append(f"report logged to TensorBoard: {where}")
        except Exception as err:  # noqa: BLE001 - the report itself is written; the tracker is extra
            log.warning("the report was not logged to TensorBoard: %s", err)
    if config.mlflow is not None:
        from vaebench.tracking import mlflow_tracker

        try:
            run_id = mlflow_tracker.log_report(config, report, Path(run_dir))
            lines.append(f"report logged to MLflow: run {run_id} of experiment {config.experiment!r} "
                         f"at {config.mlflow}")
        except Exception as err:  # noqa: BLE001 - the report itself is written; the tracker is extra
            log.warning("the report was not logged to MLflow: %s", err)
    return lines
