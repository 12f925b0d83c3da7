"""The driver: expand a suite, skip what the store already has, execute the rest, store each result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vaebench.bench.executors import Executor, InProcessExecutor, ProcessPoolRunExecutor
from vaebench.bench.spec import RunResult, RunTask
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import Suite
from vaebench.bench.train import checkpoint_path
from vaebench.errors import ConfigError

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
    with ResultsStore(out) as store:
        completed = store.completed_run_ids()
        tasks = [
            RunTask(spec, suite.setting(spec), str(out), device, threads)
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


def make_executor(name: str, *, jobs: int = 1, address: str | None = None, max_retries: int = 2) -> Executor:
    """The executor `name` (one of EXECUTORS); Ray is imported only when chosen."""
    if name == "local":
        return InProcessExecutor() if jobs == 1 else ProcessPoolRunExecutor(jobs)
    if name == "ray":
        from vaebench.bench.ray_executor import RayExecutor

        return RayExecutor(address=address, max_retries=max_retries, jobs=jobs)
    raise ConfigError(f"unknown executor {name!r}; allowed: {', '.join(EXECUTORS)}", key="--executor")
