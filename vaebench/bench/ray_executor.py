"""The Ray executor: every run is a Ray task on whatever cluster `ray.init(address=...)` reaches.

Ray is an optional extra (`pip install vaebench[ray]`), imported only when this executor
is constructed. Each run asks Ray for `threads` CPUs (its torch threads) and, with
`device="cuda"`, one GPU. Workers return RunResults; the driver alone writes the store.

A task that fails at the Ray level (its worker killed, its node lost, an out-of-memory
kill, ...) is submitted again, up to `max_retries` times; the new attempt resumes from the
run's last checkpoint in the run directory (`execute_run` does that by itself), which is
why the run directory must be on a filesystem every node reaches at the same path. A run
whose attempts are all used up comes back as a `failed` RunResult carrying the last error,
and the rest of the sweep goes on. A run's own failure (divergence, a bug) is not a Ray
failure: `execute_run` turns it into the result's status and it is not retried here.

Per-step progress travels from the workers through a small Ray actor that the driver
drains while it waits for results.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from vaebench.bench.executors import Executor
from vaebench.bench.spec import ProgressFn, RunResult, RunStatus, RunTask
from vaebench.bench.train import execute_run
from vaebench.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'vaebench[ray]'"
POLL_S = 0.25
MAX_ERROR_CHARS = 4000
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

RunFn = Callable[[RunTask, ProgressFn | None], RunResult]


def import_ray() -> Any:
    """The `ray` module, or a MissingDependencyError that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise MissingDependencyError(
            f"--executor ray needs Ray, which is not installed ({err}); install it with: {INSTALL_HINT}"
        ) from None
    return ray


def check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """A ConfigError now if nothing listens at a HOST:PORT address (Ray itself would retry for minutes)."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        return  # 'local', 'auto' and anything else: Ray's to resolve
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ConfigError(
            f"nothing answers at {target} ({err.strerror or err}); start the cluster's head there "
            "(`ray start --head`) or fix the address",
            key="--address",
        ) from None


def resolve_address(address: str | None) -> str:
    """Where `ray.init` connects: the given address, else $RAY_ADDRESS, else 'local' (start a new instance).

    'local' rather than Ray's default of None, which would silently join the last cluster
    that `ray start` launched on this machine (someone else's, on a shared machine).
    """
    return address or os.environ.get("RAY_ADDRESS") or "local"


class _ActorProgress:
    """A picklable progress callback for a worker: forwards (run_id, step) to the progress actor."""

    def __init__(self, actor: Any):
        self.actor = actor

    def __call__(self, run_id: str, step: int) -> None:
        try:
            self.actor.report.remote(run_id, step)
        except Exception:  # noqa: BLE001 - progress is best effort; it must never fail a run
            pass


class _ProgressBuffer:
    """The actor's class: collects (run_id, step) reports until the driver drains them."""

    def __init__(self) -> None:
        self.items: list[tuple[str, int]] = []

    def report(self, run_id: str, step: int) -> None:
        self.items.append((run_id, step))

    def drain(self) -> list[tuple[str, int]]:
        items, self.items = self.items, []
        return items


def _run_on_worker(run_fn: RunFn, task: RunTask, progress_actor: Any) -> RunResult:
    """The body of a run's Ray task."""
    import ray

    progress = _ActorProgress(progress_actor) if progress_actor is not None else None
    result = run_fn(task, progress)
    result.environment["ray_node_ip"] = ray.util.get_node_ip_address()
    return result


def _failed_result(task: RunTask, error: BaseException, attempts: int) -> RunResult:
    text = f"{type(error).__name__} (Ray task failed {attempts} time(s), retries exhausted): {error}"
    text = ANSI_ESCAPE.sub("", text)  # Ray colours the task name in its messages
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 15] + "\n[... truncated]"
    return RunResult(spec=task.spec, status=RunStatus.FAILED, error=text, environment={"ray_attempts": attempts})


class RayExecutor(Executor):
    """Runs as Ray tasks: `num_cpus` = the task's threads, `num_gpus=1` on cuda.

    address: a Ray cluster address (`HEAD:6379`, `ray://HEAD:10001`, `auto`); None uses
        $RAY_ADDRESS if set, else starts a local Ray instance for the sweep. If Ray is already
        initialised in this process, that connection is used as it is and left open.
    max_retries: how many times a task that failed at the Ray level is submitted again.
    jobs: accepted for the common interface; on Ray the cluster's resources decide how many
        runs go at once (the CLI turns --jobs into threads per run, i.e. CPUs per task).
    run_fn: what a worker runs for a task (execute_run; tests substitute a wrapper).
    """

    def __init__(self, address: str | None = None, max_retries: int = 2, jobs: int = 1, run_fn: RunFn = execute_run):
        if max_retries < 0:
            raise ConfigError(f"must be >= 0, got {max_retries}", key="--max-retries")
        self.ray = import_ray()
        self.address = address
        self.max_retries = max_retries
        self.jobs = jobs
        self.run_fn = run_fn
        self._owns_connection = False

    def start(self) -> None:
        """Connect to Ray now, so a bad address is refused before anything is written."""
        self._owns_connection = self._connect() or self._owns_connection

    # -- connection and resources -------------------------------------------------------------

    def _connect(self) -> bool:
        """Initialise Ray unless it already is; True when this call started the connection."""
        ray = self.ray
        if ray.is_initialized():
            return False
        address = resolve_address(self.address)
        check_reachable(address)
        refused = (ConnectionError, ValueError, TimeoutError,
                   getattr(ray.exceptions, "AuthenticationError", ConnectionError))
        try:
            ray.init(address=address)
        except refused as err:
            raise ConfigError(
                f"cannot connect to the Ray cluster at {address!r}: {err} (is its head running and reachable? a "
                "cluster with token authentication also needs RAY_AUTH_MODE=token and its token in "
                "~/.ray/auth_token or $RAY_AUTH_TOKEN)",
                key="--address",
            ) from None
        return True

    @staticmethod
    def resources(task: RunTask) -> dict[str, float]:
        """What one run asks Ray for."""
        return {"num_cpus": float(task.threads or 1), "num_gpus": 1.0 if task.device == "cuda" else 0.0}

    def _check_feasible(self, tasks: list[RunTask]) -> None:
        """Fail fast where no node of the cluster could ever run a task (Ray would wait forever)."""
        nodes = [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]
        max_cpus = max((r.get("CPU", 0.0) for r in nodes), default=0.0)
        max_gpus = max((r.get("GPU", 0.0) for r in nodes), default=0.0)
        need = [self.resources(t) for t in tasks]
        cpus = max(n["num_cpus"] for n in need)
        if cpus > max_cpus:
            raise ConfigError(
                f"each run asks Ray for {cpus:g} CPUs (its torch threads) but the largest node of the Ray "
                f"cluster has {max_cpus:g}; raise --jobs to give each run fewer threads",
                key="--jobs",
            )
        if any(n["num_gpus"] for n in need) and max_gpus < 1:
            raise ConfigError("no node of the Ray cluster has a GPU; use --device cpu", key="--device")

    # -- the sweep ----------------------------------------------------------------------------

    def run(self, tasks: list[RunTask], on_progress: ProgressFn | None = None) -> Iterator[RunResult]:
        if not tasks:
            self._release()
            return
        ray = self.ray
        # Workers may run elsewhere and in another working directory: give them absolute paths.
        tasks = [replace(t, run_dir=os.path.abspath(t.run_dir)) for t in tasks]
        self.start()
        actor = None
        inflight: dict[Any, tuple[RunTask, int]] = {}
        try:
            self._check_feasible(tasks)
            if on_progress is not None:
                actor = ray.remote(num_cpus=0)(_ProgressBuffer).remote()
            remote = ray.remote(_run_on_worker)

            def submit(task: RunTask, attempt: int) -> None:
                ref = remote.options(
                    **self.resources(task), max_retries=0, retry_exceptions=False, name=f"vaebench-run-{task.run_id}"
                ).remote(self.run_fn, task, actor)
                inflight[ref] = (task, attempt)

            for task in tasks:
                submit(task, 1)
            while inflight:
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=POLL_S)
                actor = self._drain(actor, on_progress)
                for ref in ready:
                    task, attempt = inflight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as err:
                        run_id = task.run_id
                        if attempt <= self.max_retries:
                            log.warning(
                                "run %s: Ray task failed (%s); retry %d of %d, resuming from its checkpoint",
                                run_id, type(err).__name__, attempt, self.max_retries,
                            )
                            submit(task, attempt + 1)
                            continue
                        log.warning("run %s: Ray task failed %d time(s); marking it failed", run_id, attempt)
                        result = _failed_result(task, err, attempt)
                    result.environment["ray_attempts"] = attempt
                    yield result
            self._drain(actor, on_progress)
        finally:
            for ref in inflight:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - clean-up: a task Ray has lost already is no error
                    pass
            if actor is not None:
                try:
                    ray.kill(actor)
                except Exception:  # noqa: BLE001 - clean-up: an actor Ray has lost already is no error
                    pass
            self._release()

    def _release(self) -> None:
        """Shut Ray down if this executor started it."""
        if self._owns_connection:
            self.ray.shutdown()
            self._owns_connection = False

    def _drain(self, actor: Any, on_progress: ProgressFn | None) -> Any:
        """Forward the progress reports collected so far; the actor, or None once it is lost."""
        if actor is None or on_progress is None:
            return actor
        try:
            items = self.ray.get(actor.drain.remote(), timeout=30)
        except self.ray.exceptions.RayError as err:
            log.warning("per-step progress lost (%s); finished runs are still reported", type(err).__name__)
            return None
        for run_id, step in items:
            on_progress(run_id, step)
        return actor
