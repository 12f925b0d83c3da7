"""Where runs execute locally, behind the `Executor` interface: in process, or a process pool.

An executor takes run tasks and yields RunResults as they finish; it never writes the
store (the driver alone does). Progress reports (run_id, step) go to `on_progress`.
The Ray executor (`ray_executor.py`) implements the same interface.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Iterator

from vaebench.bench.spec import ProgressFn, RunResult, RunTask
from vaebench.bench.train import execute_run


class Executor:
    def run(self, tasks: list[RunTask], on_progress: ProgressFn | None = None) -> Iterator[RunResult]:
        raise NotImplementedError


class InProcessExecutor(Executor):
    """Runs one after another in this process."""

    def run(self, tasks: list[RunTask], on_progress: ProgressFn | None = None) -> Iterator[RunResult]:
        for task in tasks:
            yield execute_run(task, on_progress)


class _QueueProgress:
    """A picklable progress callback that forwards (run_id, step) through a manager queue."""

    def __init__(self, q: Any):
        self.q = q

    def __call__(self, run_id: str, step: int) -> None:
        self.q.put((run_id, step))


class ProcessPoolRunExecutor(Executor):
    """`jobs` worker processes (spawned), each run with cores // jobs torch threads."""

    def __init__(self, jobs: int):
        self.jobs = jobs

    def run(self, tasks: list[RunTask], on_progress: ProgressFn | None = None) -> Iterator[RunResult]:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Manager() as manager, ProcessPoolExecutor(self.jobs, mp_context=ctx) as pool:
            progress_q = manager.Queue()
            forward = _QueueProgress(progress_q)
            pending = {
                pool.submit(execute_run, t, forward) for t in tasks
            }
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(progress_q, on_progress)
                for future in done:
                    yield future.result()
            _drain(progress_q, on_progress)


def _drain(q: Any, on_progress: ProgressFn | None) -> None:
    while True:
        try:
            run_id, step = q.get_nowait()
        except queue.Empty:
            return
        if on_progress is not None:
            on_progress(run_id, step)


def threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)
