"""Progress display for a sweep: a rich bar (runs done, current step, ETA), or log lines with --quiet."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vaebench.bench.runner import SweepProgress
from vaebench.bench.spec import RunResult, RunTask


class RichProgress(SweepProgress):
    """Overall bar over gradient steps of all pending runs (so the ETA is in steps), plus runs done."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
        )
        self.steps: dict[str, int] = {}
        self.budget: dict[str, int] = {}
        self.done = 0

    def start(self, total_runs: int, pending: list[RunTask]) -> None:
        self.budget = {t.run_id: t.spec.steps for t in pending}
        self.total_runs = total_runs
        self.done = total_runs - len(pending)
        self.progress.start()
        self.task = self.progress.add_task("steps", total=max(1, sum(self.budget.values())), info=self._info(""))

    def _info(self, current: str) -> str:
        return f"runs {self.done}/{self.total_runs} {current}"

    def step(self, run_id: str, step: int) -> None:
        self.steps[run_id] = step
        self.progress.update(
            self.task, completed=sum(self.steps.values()), info=self._info(escape(f"[{run_id[:8]} step {step}]"))
        )

    def finished(self, result: RunResult) -> None:
        self.done += 1
        self.steps[result.run_id] = self.budget.get(result.run_id, 0)
        self.progress.update(self.task, completed=sum(self.steps.values()), info=self._info(""))

    def close(self) -> None:
        self.progress.stop()


class LogProgress(SweepProgress):
    """One line per finished run, on stderr."""

    def start(self, total_runs: int, pending: list[RunTask]) -> None:
        self.total, self.done = total_runs, total_runs - len(pending)
        print(f"{len(pending)} of {total_runs} runs to do", file=sys.stderr)

    def finished(self, result: RunResult) -> None:
        self.done += 1
        spec = result.spec
        print(
            f"[{self.done}/{self.total}] {result.run_id} {spec.variant} seed={spec.seed}: {result.status}"
            f" ({result.wall_time_s:.1f} s)",
            file=sys.stderr,
        )


def make_progress(quiet: bool) -> SweepProgress:
    return LogProgress() if quiet else RichProgress()
