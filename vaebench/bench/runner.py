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
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from vaebench.bench.executors import Executor, InProcessExecutor, ProcessPoolRunExecutor
from vaebench.bench.spec import RunResult, RunTask
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import Suite
from vaebench.bench.train import checkpoint_path, model_path
from vaebench.errors import ConfigError, RunDirectoryBusyError
from vaebench.files import TMP_SUFFIX

log = logging.getLogger(__name__)
LOCK_NAME = ".vaebench.lock"

EXECUTORS = ("local", "ray")


@dataclass
class SweepSummary:
    total: int
    skipped: int
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.statuses.get("failed", 0)


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
) -> SweepSummary:
    """Run every spec of `suite` not yet completed in `out_dir`'s store; the driver alone writes it."""
    out = Path(out_dir)
    progress = progress or SweepProgress()
    executor.start()
    with run_directory_lock(out), ResultsStore(out) as store:
        remove_temporary_files(out)
        store.record_suite(suite.name, [spec.run_id for spec in suite.specs])
        completed = store.completed_run_ids()
        tasks = [
            RunTask(spec, suite.setting(spec), str(out), device, threads, suite.plugins, suite.reproduces.get(spec, ()))
            for spec in suite.specs if spec.run_id not in completed
        ]
        settings = {task.run_id: task.setting for task in tasks}
        summary = SweepSummary(total=len(suite.specs), skipped=len(suite.specs) - len(tasks))
        progress.start(len(suite.specs), tasks)
        try:
            for result in executor.run(tasks, progress.step):
                store.write_result(result, suite=suite.name, setting=settings[result.run_id])
                if result.status != "failed":
                    checkpoint_path(out, result.run_id).unlink(missing_ok=True)
                summary.statuses[result.status] = summary.statuses.get(result.status, 0) + 1
                progress.finished(result)
        finally:
            progress.close()
    return summary


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
    for tmp in out.rglob(f"*{TMP_SUFFIX}"):
        log.info("removing %s, left by an interrupted run", tmp)
        tmp.unlink(missing_ok=True)


def make_executor(name: str, *, jobs: int = 1, address: str | None = None, max_retries: int = 2) -> Executor:
    """The executor `name` (one of EXECUTORS); Ray is imported only when chosen."""
    if name == "local":
        return InProcessExecutor() if jobs == 1 else ProcessPoolRunExecutor(jobs)
    if name == "ray":
        from vaebench.bench.ray_executor import RayExecutor

        return RayExecutor(address=address, max_retries=max_retries, jobs=jobs)
    raise ConfigError(f"unknown executor {name!r}; allowed: {', '.join(EXECUTORS)}", key="--executor")
