"""Where runs execute locally, behind the `Executor` interface: in process, or a process pool.

An executor takes run tasks and yields RunResults as they finish; it never writes the
store (the driver alone does). Progress reports (run_id, step) go to `on_progress`.
The Ray executor (`ray_executor.py`) implements the same interface.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from vaebench.bench.spec import ProgressFn, RunResult, RunStatus, RunTask
from vaebench.bench.train import execute_run


class Executor:
    def start(self) -> None:
        """Acquire what the runs need (e.g. a cluster connection) before the driver writes anything."""

    def run(self, tasks: list[RunTask], on_progress: ProgressFn | None = None) -> Iterator[RunResult]:
        raise NotImplementedError


class InProcessExecutor(Executor):
    """Runs one after another in this process."""

    def run(self, tasks: list[RunTask], on_progress: ProgressFn | None = None) -> Iterator[RunResult]:
        for task in tasks:
            yield execute_run(task, on_progress)


_PROGRESS_QUEUE: Any = None  # set in each worker by _init_worker
PARENT_POLL_S = 0.5


def _init_worker(progress_queue: Any, driver_pid: int) -> None:
    """In each pool worker: keep the progress queue, and exit as soon as the driver is gone.

    A driver killed with SIGKILL cannot stop its pool; each worker watches its parent pid
    and ends itself within PARENT_POLL_S, so an interrupted sweep leaves no process behind.
    """
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue

    def watch() -> None:
        while os.getppid() == driver_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="vaebench-parent-watch").start()


def _report_progress(run_id: str, step: int) -> None:
    _PROGRESS_QUEUE.put((run_id, step))


def _execute_in_worker(task: RunTask) -> RunResult:
    return execute_run(task, _report_progress)


class ProcessPoolRunExecutor(Executor):
    """`jobs` worker processes (spawned), each run with cores // jobs torch threads."""

    def __init__(self, jobs: int):
        self.jobs = jobs

    def run(self, tasks: list[RunTask], on_progress: ProgressFn | None = None) -> Iterator[RunResult]:
        ctx = multiprocessing.get_context("spawn")
        progress_q = ctx.Queue()
        pool = ProcessPoolExecutor(
            self.jobs, mp_context=ctx, initializer=_init_worker, initargs=(progress_q, os.getpid())
        )
        try:
            task_of = {pool.submit(_execute_in_worker, t): t for t in tasks}
            pending = set(task_of)
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(progress_q, on_progress)
                for future in done:
                    yield _result_of(future, task_of[future])
            _drain(progress_q, on_progress)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            progress_q.close()


def _result_of(future: Any, task: RunTask) -> RunResult:
    """The future's RunResult; a failed one when its worker process died without returning one (killed, out of
    memory, or os._exit() in user code: the pool is then broken, and every run still in it fails alike)."""
    try:
        return future.result()
    except BrokenProcessPool:
        return RunResult(spec=task.spec, status=RunStatus.FAILED,
                         error="the worker process died before returning this run's result (killed, out of memory, "
                               "or os._exit() in user code); run the same command again to retry it")


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
