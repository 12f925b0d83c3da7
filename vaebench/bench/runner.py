"""The driver: expand a suite, skip what the store already has, execute the rest, store each result.

One driver at a time per run directory: `run_suite` holds an exclusive lock on
`<run dir>/.vaebench.lock` (released by the OS when the driver dies) and refuses to start
while another driver holds it. At start it deletes the temporary files a killed run left
behind; every file is written through a temporary sibling and a rename (`vaebench.files`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from vaebench import data
from vaebench.bench.executors import Executor, InProcessExecutor, ProcessPoolRunExecutor
from vaebench.bench.spec import RunResult, RunStatus, RunTask
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import Suite
from vaebench.bench.train import checkpoint_path, images_to_draw, model_path
from vaebench.errors import ConfigError, RunDirectoryBusyError
from vaebench.files import TMP_SUFFIX
from vaebench.plugins import plugin_source
from vaebench.tracking import SweepTracking, TrackingConfig, resolve_tracking

log = logging.getLogger(__name__)
LOCK_NAME = ".vaebench.lock"

EXECUTORS = ("local", "ray")


@dataclass
class SweepSummary:
    total: int
    skipped: int
    statuses: dict[RunStatus, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.statuses.get(RunStatus.FAILED, 0)


class SweepProgress:
    """What the driver tells a progress display: started, a run's step, a run's result."""

    def start(self, total_runs: int, pending: list[RunTask]) -> None: ...

    def step(self, run_id: str, step: int) -> None: ...

    def finished(self, result: RunResult) -> None: ...

    def close(self) -> None: ...


def run_suite(
    suite: Suite,
    out_dir: str | Path,
    executor: Executor,
    *,
    device: str = "cpu",
    threads: int | None = None,
    progress: SweepProgress | None = None,
    tracking: TrackingConfig | None = None,
) -> SweepSummary:
    """Run every spec of `suite` not yet completed in `out_dir`'s store; the driver alone writes it.

    tracking: where runs are tracked live (vaebench.tracking); None: as the suite's [tracking] says."""
    out = Path(out_dir)
    progress = progress or SweepProgress()
    trackers = SweepTracking(tracking if tracking is not None else resolve_tracking(suite.tracking, out, suite.name))
    executor.start()
    with run_directory_lock(out), ResultsStore(out) as store:
        remove_temporary_files(out)
        trackers.start(out)
        store.record_suite(suite.name, [spec.run_id for spec in suite.specs])
        completed = store.completed_run_ids()
        tasks = [
            RunTask(spec, suite.setting(spec), str(out), device, threads, suite.plugins, trackers.config,
                    suite.reproduces.get(spec, ()))
            for spec in suite.specs if spec.run_id not in completed
        ]
        pending = {task.run_id: task for task in tasks}
        warn_stale_plugins(store, {spec.run_id for spec in suite.specs} & completed, suite.plugins)
        prepare_datasets(tasks, out)
        summary = SweepSummary(total=len(suite.specs), skipped=len(suite.specs) - len(tasks))
        progress.start(len(suite.specs), tasks)
        try:
            for result in executor.run(tasks, progress.step):
                task = pending[result.run_id]
                store.write_result(result, suite=suite.name, setting=task.setting)
                if result.status.recorded:
                    checkpoint_path(out, result.run_id).unlink(missing_ok=True)
                summary.statuses[result.status] = summary.statuses.get(result.status, 0) + 1
                trackers.finished(result, task.setting)
                progress.finished(result)
        finally:
            progress.close()
            trackers.close()
    return summary


def warn_stale_plugins(store: ResultsStore, completed: set[str], plugins: tuple[str, ...]) -> list[str]:
    """Log, per plugin, how many of the suite's completed runs (kept and skipped) were made from another
    version of its source than the one imported now: their results do not come from the code as it is."""
    if not completed or not plugins:
        return []
    current = {name: plugin_source(name) for name in plugins}
    stale: dict[str, int] = {}
    runs = store.runs()
    for env in runs.loc[runs["run_id"].isin(completed), "environment"]:
        recorded = {p.get("name"): p.get("source") for p in env.get("plugins", []) if isinstance(p, dict)}
        for name, source in current.items():
            if recorded.get(name) != source:
                stale[name] = stale.get(name, 0) + 1
    lines = [f"{n} completed run(s) in {store.path.parent} were made from another version of plugin {name} than "
             "the one imported now; they are kept and skipped (run into another --out to redo them)"
             for name, n in sorted(stale.items())]
    for line in lines:
        log.warning(line)
    return lines


def prepare_datasets(tasks: list[RunTask], out: Path) -> None:
    """Build the caches of the pending runs' datasets here, in the driver, before any run starts (each
    run would otherwise build it first thing): a file that does not decode (a truncated image) or a cache
    the disk cannot hold stops the sweep with one line, exit 2, instead of failing every run."""
    drawn: dict[tuple[str, tuple], int] = {}
    for task in tasks:
        key = (task.spec.dataset, task.spec.dataset_params)
        drawn[key] = max(drawn.get(key, 0), images_to_draw(task.spec))
    for (name, params), images in drawn.items():
        data.get(name, **dict(params)).materialised(out / "cache", images_to_draw=images)


@contextmanager
def run_directory_lock(out: Path) -> Iterator[None]:
    """Hold the run directory's lock, or raise RunDirectoryBusyError naming the driver that holds it."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a run directory", key="--out")
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise RunDirectoryBusyError(
                f"{out}: another vaebench run ({holder}) is using this run directory; wait for it to finish "
                "or choose another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


def forget_runs(out: Path, run_ids: list[str]) -> None:
    """Delete runs from the store with their checkpoints and models, holding the run directory's lock."""
    with run_directory_lock(out), ResultsStore(out) as store:
        store.forget(run_ids)
        for run_id in run_ids:
            checkpoint_path(out, run_id).unlink(missing_ok=True)
            model_path(out, run_id).unlink(missing_ok=True)


def remove_temporary_files(out: Path) -> None:
    """Delete the temporary files a killed driver or worker left in the run directory."""
    for tmp in sorted(out.rglob(f"*{TMP_SUFFIX}")):
        log.info("removing %s, left by an interrupted run", tmp)
        if tmp.is_dir() and not tmp.is_symlink():  # a report's staging directory
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def make_executor(name: str, *, jobs: int = 1, address: str | None = None, max_retries: int = 2) -> Executor:
    """The executor `name` (one of EXECUTORS); Ray is imported only when chosen."""
    if name == "local":
        return InProcessExecutor() if jobs == 1 else ProcessPoolRunExecutor(jobs)
    if name == "ray":
        from vaebench.bench.ray_executor import RayExecutor

        return RayExecutor(address=address, max_retries=max_retries, jobs=jobs)
    raise ConfigError(f"unknown executor {name!r}; allowed: {', '.join(EXECUTORS)}", key="--executor")
