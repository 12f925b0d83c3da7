"""The Ray executor: missing extra, a self-started local instance, bit-identical numbers to the local
executor, a worker SIGKILLed mid-run resumed from its checkpoint, retries counted and exhausted.

Every Ray instance here has 2 CPUs, its temp dir under /tmp (Ray's socket paths are short) and
HOME in pytest's tmp dir (Ray writes ~/.ray/auth_token), and is shut down afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers import LAB_PLUGIN, LAB_SUITE, ONE_VAE, REPO
from vaebench.bench.executors import InProcessExecutor
from vaebench.bench.runner import SweepProgress, make_executor, run_suite
from vaebench.bench.spec import RunResult, RunTask
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import load_suite
from vaebench.bench.train import checkpoint_path, execute_run
from vaebench.cli import main
from vaebench.errors import ConfigError, MissingDependencyError

SMOKE = REPO / "suites" / "smoke.toml"
RAY_CPUS = 2
OBJECT_STORE_BYTES = 80 * 1024**2


def _short_tmp() -> str:
    return tempfile.mkdtemp(prefix="r", dir="/tmp")


def _store_rows(run_dir: Path) -> tuple[dict, dict, dict]:
    """(runs by run_id, {(run_id, metric): value}, {(run_id, step, name): value}) of a store."""
    with ResultsStore(run_dir, create=False) as store:
        runs = {r["run_id"]: r for r in store.runs().to_dict("records")}
        metrics = {(r.run_id, r.name): r.value for r in store.metrics().itertuples()}
        curves = {(r.run_id, r.step, r.name): r.value for r in store.curves().itertuples()}
    return runs, metrics, curves


def _assert_bit_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differ = {k: (a[k], b[k]) for k in a if not (a[k] == b[k] or (a[k] is None and b[k] is None))}
    assert not differ


# -- without Ray --------------------------------------------------------------------------------


def test_missing_ray_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'vaebench\[ray\]'"):
        make_executor("ray")
    out = tmp_path / "out"
    assert main(["run", str(SMOKE), "--executor", "ray", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "vaebench[ray]" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing ran, nothing was written


def test_address_resolution(monkeypatch):
    from vaebench.bench.ray_executor import resolve_address

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_address(None) == "local"  # a fresh local instance, never someone's `ray start` cluster
    assert resolve_address("head:6379") == "head:6379"
    monkeypatch.setenv("RAY_ADDRESS", "env-head:6379")  # as `ray job submit` sets it
    assert resolve_address(None) == "env-head:6379"
    assert resolve_address("head:6379") == "head:6379"


# -- with Ray -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_home(tmp_path_factory) -> str:
    """HOME for every Ray instance of this module: one, since Ray caches its auth token per process."""
    return str(tmp_path_factory.mktemp("home"))


@pytest.fixture
def ray_env(monkeypatch, ray_home):
    """HOME under pytest's tmp dir, no inherited Ray address or auth mode; the ray module."""
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("HOME", ray_home)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # ray.init sets it; undone afterwards
    return ray


def test_cli_ray_executor_starts_and_stops_a_local_instance(ray_env, monkeypatch, write_suite, tmp_path):
    ray = ray_env
    assert not ray.is_initialized(), "this test must run before the module's shared Ray instance starts"
    temp_dir = _short_tmp()
    calls = []
    real_init = ray.init

    def init(*args, **kwargs):  # the executor's own ray.init, kept to 2 CPUs and a short temp dir
        calls.append(kwargs.get("address"))
        return real_init(*args, **kwargs, num_cpus=RAY_CPUS, _temp_dir=temp_dir,
                         object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False)

    monkeypatch.setattr(ray, "init", init)
    out = tmp_path / "out"
    try:
        code = main(["run", str(write_suite(steps=20, checkpoint_every=10)), "--executor", "ray", "--out", str(out),
                     "--jobs", str(os.cpu_count()), "--quiet"])
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert code == 0
    assert calls == ["local"]
    assert not ray.is_initialized()  # the instance it started is shut down again
    runs, metrics, _ = _store_rows(out)
    assert sorted(r["status"] for r in runs.values()) == ["done", "done"]
    assert all(r["environment"]["ray_attempts"] == 1 and r["environment"]["torch_threads"] == 1 for r in runs.values())
    assert len(metrics) == 2 * (5 + 4)


def test_an_address_where_nothing_listens_is_a_user_error(ray_env, write_suite, tmp_path, capsys):
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["run", str(write_suite()), "--executor", "ray", "--address", f"127.0.0.1:{port}",
            "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"key '--address': nothing answers at 127.0.0.1:{port}" in err and "Traceback" not in err
    assert not ray_env.is_initialized()


@pytest.fixture(scope="module")
def ray_cluster(ray_home):
    """One local Ray instance (2 CPUs) shared by the tests below; shut down at the end of the module."""
    ray = pytest.importorskip("ray")
    cloudpickle = pytest.importorskip("ray.cloudpickle")

    temp_dir = _short_tmp()
    module = sys.modules[__name__]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", ray_home)
        mp.delenv("RAY_ADDRESS", raising=False)
        mp.delenv("RAY_AUTH_MODE", raising=False)
        ray.init(num_cpus=RAY_CPUS, _temp_dir=temp_dir, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False)
        cloudpickle.register_pickle_by_value(module)  # workers cannot import this test module
        try:
            yield ray
        finally:
            cloudpickle.unregister_pickle_by_value(module)
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


class RecordingProgress(SweepProgress):
    def __init__(self) -> None:
        self.steps: dict[str, list[int]] = {}
        self.finished_runs: list[str] = []

    def step(self, run_id: str, step: int) -> None:
        self.steps.setdefault(run_id, []).append(step)

    def finished(self, result: RunResult) -> None:
        self.finished_runs.append(result.run_id)


@pytest.mark.slow
def test_ray_gives_the_local_executors_numbers_bit_for_bit(ray_cluster, tmp_path):
    suite = load_suite(SMOKE)
    local = run_suite(suite, tmp_path / "local", InProcessExecutor(), threads=1)
    on_ray = run_suite(suite, tmp_path / "ray", make_executor("ray"), threads=1)
    assert local.statuses == on_ray.statuses == {"done": 2}
    local_runs, local_metrics, local_curves = _store_rows(tmp_path / "local")
    ray_runs, ray_metrics, ray_curves = _store_rows(tmp_path / "ray")
    assert ray_runs.keys() == local_runs.keys() == {s.run_id for s in suite.specs}
    assert len(ray_metrics) == 2 * (5 + 6)  # 5 metrics + kl_dim_0..5 per run
    _assert_bit_identical(ray_metrics, local_metrics)
    _assert_bit_identical(ray_curves, local_curves)
    for run in ray_runs.values():
        assert run["environment"]["torch_threads"] == 1 and run["environment"]["ray_attempts"] == 1
        assert "ray_node_ip" in run["environment"]


def _attempts(run_dir: str, run_id: str) -> list[int]:
    path = Path(run_dir) / f"attempts-{run_id}"
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _log_attempt(run_dir: str, run_id: str) -> int:
    with open(Path(run_dir) / f"attempts-{run_id}", "a") as f:
        f.write(f"{os.getpid()}\n")
    return len(_attempts(run_dir, run_id))


def _stall_seed0_once_after_checkpoint(task: RunTask, progress):
    """execute_run; the seed-0 run's first attempt, once it has a checkpoint, writes its PID and waits to be killed."""
    run_dir = task.run_dir
    victim = task.spec.seed == 0 and _log_attempt(run_dir, task.run_id) == 1

    def hook(rid, step):
        if progress is not None:
            progress(rid, step)
        if victim and checkpoint_path(Path(run_dir), rid).exists():
            tmp = Path(run_dir) / "victim.pid.tmp"
            tmp.write_text(str(os.getpid()))
            os.replace(tmp, Path(run_dir) / "victim.pid")
            time.sleep(120)  # the test kills this process long before

    return execute_run(task, hook)


def _crash_seed0_always(task: RunTask, progress):
    """The seed-0 run's worker dies (SIGKILL) on every attempt; other runs are normal."""
    _log_attempt(task.run_dir, task.run_id)
    if task.spec.seed == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return execute_run(task, progress)


@pytest.mark.slow
def test_worker_killed_mid_run_is_retried_and_resumes_from_its_checkpoint(ray_cluster, write_suite, tmp_path):
    suite = load_suite(write_suite(seeds="[0, 1]", steps=60, checkpoint_every=20,
                                   variants=ONE_VAE))
    victim_id = next(s.run_id for s in suite.specs if s.seed == 0)
    out = tmp_path / "ray"
    pid_file = out / "victim.pid"
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 240
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    progress = RecordingProgress()
    executor = make_executor("ray", max_retries=1)
    executor.run_fn = _stall_seed0_once_after_checkpoint
    summary = run_suite(suite, out, executor, threads=1, progress=progress)
    thread.join(timeout=5)

    assert len(killed) == 1, "the victim never wrote its PID"
    attempts = _attempts(str(out), victim_id)
    assert len(attempts) == 2 and attempts[0] == killed[0] != attempts[1]  # killed once, run again elsewhere
    assert summary.statuses == {"done": 2}
    runs, metrics, curves = _store_rows(out)
    assert set(runs) == {s.run_id for s in suite.specs}  # exactly one row per run
    with ResultsStore(out, create=False) as store:
        assert len(store.runs()) == 2
    assert runs[victim_id]["environment"]["ray_attempts"] == 2
    assert runs[victim_id]["environment"]["resumed_from_step"] == 20  # from the checkpoint, not from scratch
    other = next(r for r in runs if r != victim_id)
    assert runs[other]["environment"]["ray_attempts"] == 1
    # progress: every run reported its steps up to the budget, and finished exactly once
    assert sorted(progress.finished_runs) == sorted(runs)
    assert all(max(progress.steps[r]) == 60 for r in runs)
    # the resumed run's numbers are those of a run never interrupted
    run_suite(suite, tmp_path / "local", InProcessExecutor(), threads=1)
    _, local_metrics, local_curves = _store_rows(tmp_path / "local")
    _assert_bit_identical(metrics, local_metrics)
    _assert_bit_identical(curves, local_curves)


@pytest.mark.slow
@pytest.mark.parametrize("max_retries", [0, 2])
def test_a_run_that_keeps_crashing_is_failed_after_max_retries(ray_cluster, write_suite, tmp_path, max_retries):
    suite = load_suite(write_suite(seeds="[0, 1]", steps=10, checkpoint_every=10,
                                   variants=ONE_VAE))
    crasher = next(s.run_id for s in suite.specs if s.seed == 0)
    out = tmp_path / "ray"
    executor = make_executor("ray", max_retries=max_retries)
    executor.run_fn = _crash_seed0_always
    summary = run_suite(suite, out, executor, threads=1)
    assert summary.statuses == {"failed": 1, "done": 1}  # the rest of the sweep completes
    assert len(set(_attempts(str(out), crasher))) == max_retries + 1  # each attempt a new worker process
    runs, _, _ = _store_rows(out)
    assert runs[crasher]["status"] == "failed"
    assert "WorkerCrashedError" in runs[crasher]["error"]
    assert f"failed {max_retries + 1} time(s)" in runs[crasher]["error"]
    assert runs[crasher]["environment"]["ray_attempts"] == max_retries + 1
    other = next(r for r in runs if r != crasher)
    assert runs[other]["status"] == "done" and len(_attempts(str(out), other)) == 1


def test_a_run_no_node_can_hold_fails_fast(ray_cluster, tmp_path, capsys):
    spec = load_suite(SMOKE).specs[0]
    executor = make_executor("ray")
    with pytest.raises(ConfigError, match=r"--jobs.*largest node of the Ray cluster has 2"):
        list(executor.run([RunTask(spec, "vae", str(tmp_path), "cpu", RAY_CPUS + 1)]))
    with pytest.raises(ConfigError, match=r"--device.*no node of the Ray cluster has a GPU"):
        list(executor.run([RunTask(spec, "vae", str(tmp_path), "cuda", 1)]))
    # on Ray the GPUs are the cluster's: the CLI asks the cluster, not the driver machine
    args = ["run", str(SMOKE), "--executor", "ray", "--device", "cuda", "--jobs", str(os.cpu_count()), "--quiet",
            "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert "no node of the Ray cluster has a GPU" in capsys.readouterr().err
    assert ray_cluster.is_initialized()  # an instance the executor did not start stays up


@pytest.mark.slow
def test_a_plugin_runs_on_ray_with_the_local_numbers(ray_cluster, tmp_path):
    plugin = tmp_path / "ray_lab_plugin.py"
    plugin.write_text(LAB_PLUGIN.replace('"lab_', '"rlab_'))
    path = tmp_path / "suite.toml"
    path.write_text(LAB_SUITE.format(name="rlab", plugins=f'"{plugin}"').replace('"lab_squares"', '"rlab_squares"')
                    .replace('"lab_vae"', '"rlab_vae"').replace('"lab_code_norm"', '"rlab_code_norm"'))
    suite = load_suite(path)
    run_suite(suite, tmp_path / "local", InProcessExecutor(), threads=1)
    run_suite(suite, tmp_path / "ray", make_executor("ray"), threads=1)
    _, local_metrics, local_curves = _store_rows(tmp_path / "local")
    _, ray_metrics, ray_curves = _store_rows(tmp_path / "ray")
    assert any(name == "rlab_code_norm" for _, name in ray_metrics)
    _assert_bit_identical(local_metrics, ray_metrics)
    _assert_bit_identical(local_curves, ray_curves)
