"""Live tracking in TensorBoard and MLflow: what a sweep writes is read back with each tool's own reader
(TensorBoard's EventAccumulator and event file loader; MLflow's client on a store in the test's
temporary directory) and compared with the results store; tracking leaves a run's numbers bit-identical;
a resumed run appends without duplicating points; --jobs 2 and Ray; a missing extra is one line.

The tests that need a tracker skip, with the extra to install, when it is not installed.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import ONE_VAE, VAE_AND_BETA, tiny_suite_text
from vaebench.bench.executors import InProcessExecutor
from vaebench.bench.runner import make_executor, run_suite
from vaebench.bench.spec import RunResult, RunTask
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import load_suite
from vaebench.bench.train import checkpoint_path, execute_run
from vaebench.cli import main
from vaebench.errors import ConfigError
from vaebench.tracking import (
    SweepTracking,
    TrackingConfig,
    TrackingRequest,
    parse_track_option,
    recorded_tracking,
    resolve_tracking,
)
from vaebench.tracking.common import spec_params
from vaebench.tracking.config import DEFAULT

TRACK_BOTH = '\n[tracking]\ntensorboard = true\nmlflow = true\n'


@pytest.fixture(autouse=True)
def _no_telemetry_home(monkeypatch, tmp_path):
    """MLflow would keep an installation id under $XDG_CONFIG_HOME/mlflow if its telemetry were on."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    yield
    assert not (tmp_path / "xdg" / "mlflow").exists(), "MLflow telemetry wrote its installation id"


# -- readers: each tool's own ----------------------------------------------------------------------


def _accumulator(logdir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def tb_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = _accumulator(logdir)
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def tb_raw_steps(logdir: Path, tag: str) -> list[int]:
    """Every step written for `tag` in the directory's event files, purged or not (TensorBoard's file loader)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps = []
    for path in sorted(logdir.iterdir()):
        for event in EventFileLoader(str(path)).Load():
            steps += [event.step for v in event.summary.value if v.tag == tag]
    return steps


def tb_text(acc, tag: str) -> list[str]:
    from tensorboard.util import tensor_util

    return [tensor_util.make_ndarray(e.tensor_proto).item().decode() for e in acc.Tensors(tag)]


def mlflow_client(uri: str):
    from vaebench.tracking.mlflow_tracker import client, import_mlflow

    import_mlflow()
    return client(uri)


def mlflow_runs(uri: str, experiment: str) -> dict[str, list]:
    """{vaebench run id: [MLflow runs tagged with it]} of the experiment."""
    c = mlflow_client(uri)
    exp = c.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} in {uri}"
    runs: dict[str, list] = {}
    for run in c.search_runs([exp.experiment_id], max_results=1000):
        runs.setdefault(run.data.tags.get("vaebench.run_id", "<report>"), []).append(run)
    return runs


def mlflow_history(c, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in c.get_metric_history(run_id, key))


def store_rows(run_dir: Path):
    with ResultsStore(run_dir, create=False) as store:
        runs = {r["run_id"]: r for r in store.runs().to_dict("records")}
        metrics = {(r.run_id, r.name): r.value for r in store.metrics().itertuples()}
        curves = {(r.run_id, r.step, r.name): r.value for r in store.curves().itertuples()}
        artifacts = store.artifacts()
    return runs, metrics, curves, artifacts


def store_curves(curves: dict, run_id: str) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for (rid, step, name), value in sorted(curves.items()):
        if rid == run_id:
            out.setdefault(f"train/{name}", []).append((step, value))
    return out


def assert_tracked(out: Path, config: TrackingConfig) -> None:
    """Every run of the store is one TensorBoard directory and one MLflow run holding its curves, params,
    final metrics and grids, equal to the store's."""
    runs, metrics, curves, artifacts = store_rows(out)
    assert runs
    assert config.mlflow is not None and config.tensorboard is not None
    c = mlflow_client(config.mlflow)
    tracked = mlflow_runs(config.mlflow, config.experiment)
    assert set(tracked) == set(runs)
    for run_id, row in runs.items():
        expected_curves = store_curves(curves, run_id)
        expected_metrics = {f"eval/{name}": v for (rid, name), v in metrics.items() if rid == run_id}
        assert expected_curves and expected_metrics
        # TensorBoard: float32 scalars, one point per logged step; the grids' PNG bytes; the spec
        logdir = Path(config.tensorboard) / run_id
        scalars = tb_scalars(logdir)
        assert {t for t in scalars if t.startswith("train/")} == set(expected_curves)
        for tag, points in expected_curves.items():
            assert scalars[tag] == [(s, float(np.float32(v))) for s, v in points]
        assert {t for t in scalars if t.startswith("eval/")} == set(expected_metrics)
        for tag, value in expected_metrics.items():
            assert scalars[tag] == [(row["steps_done"], float(np.float32(value)))]
        acc = _accumulator(logdir)
        grids = {name: png for (rid, name), png in artifacts.items() if rid == run_id}
        assert len(grids) == 3
        for name, png in grids.items():
            assert [(e.step, e.encoded_image_string) for e in acc.Images(f"grids/{name}")] == [(row["steps_done"], png)]
        (spec_text,) = tb_text(acc, "spec")  # once, whatever attempts the run took
        assert spec_text.count(f'"seed": {row["seed"]}') == 1
        from tensorboard.plugins.hparams import plugin_data_pb2

        content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
        assert start.hparams["variant"].string_value == row["spec"].variant
        assert start.hparams["seed"].number_value == row["seed"]
        # MLflow: one run, float64 histories equal to the store's, params = the spec flattened, grids as artifacts
        assert len(tracked[run_id]) == 1
        run = tracked[run_id][0]
        assert run.info.status == "FINISHED" and run.data.tags["vaebench.status"] == "done"
        assert run.data.params == {k: str(v) for k, v in spec_params(row["spec"]).items()}
        for key, points in expected_curves.items():
            assert mlflow_history(c, run.info.run_id, key) == points
        for key, value in expected_metrics.items():
            assert mlflow_history(c, run.info.run_id, key) == [(row["steps_done"], value)]
        for name, png in grids.items():
            path = c.download_artifacts(run.info.run_id, f"grids/{name}.png", str(out / "downloaded"))
            assert Path(path).read_bytes() == png


# -- configuration (no tracker needed) -------------------------------------------------------------


def test_tracking_table_is_parsed_against_the_suite_files_directory(write_suite, tmp_path):
    suite = load_suite(write_suite(tiny_suite_text(variants=ONE_VAE)
                                   + '\n[tracking]\ntensorboard = "tb"\nmlflow = "sqlite:///db/m.db"\n'
                                     'experiment = "lab sweep"\n'))
    assert suite.tracking == TrackingRequest(str(tmp_path / "tb"), f"sqlite:///{tmp_path / 'db' / 'm.db'}", "lab sweep")
    assert load_suite(write_suite(tiny_suite_text(variants=ONE_VAE))).tracking == TrackingRequest()
    both = load_suite(write_suite(tiny_suite_text(variants=ONE_VAE) + TRACK_BOTH)).tracking
    assert both == TrackingRequest(DEFAULT, DEFAULT, None)
    config = resolve_tracking(both, tmp_path / "out", "tiny")
    assert config.tensorboard == str(tmp_path / "out" / "tensorboard")
    assert config.mlflow == f"sqlite:///{tmp_path / 'out' / 'mlflow' / 'mlflow.db'}"
    assert config.mlflow_artifacts == (tmp_path / "out" / "mlflow" / "mlartifacts").as_uri()
    assert config.experiment == "tiny" and config.suite == "tiny"
    server = resolve_tracking(TrackingRequest(mlflow="http://mlflow.lab:5000"), tmp_path, "s")
    assert (server.mlflow, server.mlflow_artifacts, server.tensorboard) == ("http://mlflow.lab:5000", None, None)


@pytest.mark.parametrize("table, key, message", [
    ('tensorboard = 1', "tracking.tensorboard", "must be true, false or a directory"),
    ('mlflow = ""', "tracking.mlflow", "must be true, false, a directory or an MLflow tracking URI"),
    ('tensorboard = "s3://bucket/tb"', "tracking.tensorboard", "must be a local directory"),
    ('wandb = true', "tracking.wandb", "unknown key; allowed: tensorboard, mlflow, experiment"),
    ('experiment = ""', "tracking.experiment", "must be a name of 1 to 500 characters"),
])
def test_a_bad_tracking_table_names_the_file_and_the_key(write_suite, table, key, message):
    path = write_suite(tiny_suite_text(variants=ONE_VAE) + f"\n[tracking]\n{table}\n")
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    assert err.value.file == str(path) and err.value.key == key and message in str(err.value)


def test_track_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = TrackingRequest(tensorboard="/suite/tb", mlflow=None, experiment="e")
    assert parse_track_option("tensorboard,mlflow", suite) == TrackingRequest("/suite/tb", DEFAULT, "e")
    assert parse_track_option("mlflow", suite) == TrackingRequest(None, DEFAULT, "e")  # exactly the named ones
    assert parse_track_option("none", suite) == TrackingRequest(None, None, "e")
    assert parse_track_option(" tensorboard=logs , mlflow=sqlite:///x.db", suite) == TrackingRequest(
        str(tmp_path / "logs"), f"sqlite:///{tmp_path / 'x.db'}", "e")
    assert parse_track_option("mlflow=http://h:5000/a=b", suite).mlflow == "http://h:5000/a=b"
    for bad, message in [("wandb", "unknown tracker 'wandb'"), ("", "must be comma-separated"),
                         ("mlflow,mlflow", "names mlflow twice"), ("tensorboard=", "must be true, false or a dir")]:
        with pytest.raises(ConfigError, match=message) as err:
            parse_track_option(bad, suite)
        assert err.value.key == "--track"


@pytest.mark.parametrize("tracker, module, where", [
    ("mlflow", "mlflow", "--track"), ("tensorboard", "tensorboard", "--track"), ("mlflow", "mlflow", "suite"),
])
def test_a_tracker_without_its_extra_is_one_line(write_suite, tmp_path, monkeypatch, capsys, tracker, module, where):
    monkeypatch.setitem(sys.modules, module, None)  # `import <module>` now raises ImportError
    text = tiny_suite_text(variants=ONE_VAE) + (f"\n[tracking]\n{tracker} = true\n" if where == "suite" else "")
    out = tmp_path / "out"
    args = ["run", str(write_suite(text)), "--out", str(out), "--quiet"]
    args += ["--track", tracker] if where != "suite" else []
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("vaebench: error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"install it with: pip install 'vaebench[{tracker}]'" in err
    assert not out.exists()  # nothing ran, nothing was written


# -- a sweep, tracked ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracked_and_plain(tmp_path_factory):
    """One 40-step VAE run in process, without tracking and with both trackers: (plain dir, tracked dir, config)."""
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra: pip install 'vaebench[tensorboard]'")
    pytest.importorskip("mlflow", reason="needs the mlflow extra: pip install 'vaebench[mlflow]'")
    base = tmp_path_factory.mktemp("sweep")
    plain_suite, tracked_suite = base / "plain.toml", base / "tracked.toml"
    plain_suite.write_text(tiny_suite_text(variants=ONE_VAE))
    tracked_suite.write_text(tiny_suite_text(variants=ONE_VAE) + TRACK_BOTH)
    connections: list = []
    real_connect = socket.socket.connect

    def connect(sock, address):  # nothing may leave this process but to a server the user names
        connections.append(address)
        return real_connect(sock, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(base / "xdg"))
        mp.setattr(socket.socket, "connect", connect)
        run_suite(load_suite(plain_suite), base / "plain", InProcessExecutor(), threads=1)
        run_suite(load_suite(tracked_suite), base / "tracked", InProcessExecutor(), threads=1)
    assert connections == [] and not (base / "xdg" / "mlflow").exists()
    from mlflow.telemetry.client import get_telemetry_client

    assert get_telemetry_client() is None
    return base / "plain", base / "tracked", recorded_tracking(base / "tracked")


def test_tracking_leaves_the_numbers_bit_identical(tracked_and_plain):
    plain, tracked, _ = tracked_and_plain
    _, plain_metrics, plain_curves, plain_artifacts = store_rows(plain)
    _, metrics, curves, artifacts = store_rows(tracked)
    assert plain_metrics and plain_curves
    assert metrics.keys() == plain_metrics.keys() and curves.keys() == plain_curves.keys()
    assert all(metrics[k] == plain_metrics[k] or (np.isnan(metrics[k]) and np.isnan(plain_metrics[k])) for k in metrics)
    assert all(curves[k] == plain_curves[k] for k in curves)
    assert artifacts == plain_artifacts


def test_a_sweep_tracks_curves_spec_metrics_and_grids(tracked_and_plain):
    _, tracked, config = tracked_and_plain
    assert config.tensorboard == str(tracked.resolve() / "tensorboard") and config.experiment == "tiny"
    assert not (Path.cwd() / "mlruns").exists()  # MLflow's default artifact place: not used
    assert_tracked(tracked, config)
    plain = tracked_and_plain[0]
    assert recorded_tracking(plain) is None  # an untracked sweep records no trackers


def test_the_report_goes_to_the_trackers_of_the_directorys_sweep(tracked_and_plain, capsys):
    plain, tracked, config = tracked_and_plain
    assert main(["report", str(plain)]) == 0
    assert "logged" not in capsys.readouterr().out  # a directory whose sweep tracked nothing: the report alone
    for _ in range(2):  # a second report replaces the first, in the same tracker run
        assert main(["report", str(tracked)]) == 0
    out = capsys.readouterr().out
    assert out.count("report logged to TensorBoard") == 2 and out.count("report logged to MLflow") == 2
    report = tracked / "report"
    c = mlflow_client(config.mlflow)
    reports = mlflow_runs(config.mlflow, config.experiment)["<report>"]
    assert len(reports) == 1 and reports[0].info.status == "FINISHED"
    downloaded = Path(c.download_artifacts(reports[0].info.run_id, "report/comparison.md", str(tracked / "dl")))
    assert downloaded.read_bytes() == (report / "comparison.md").read_bytes()
    acc = _accumulator(Path(config.tensorboard) / "report")
    assert [e.step for e in acc.Tensors("report/comparison")] == [0, 1]  # each report once, the latest last
    assert tb_text(acc, "report/comparison") == [(report / "comparison.md").read_text()] * 2
    pngs = sorted(report.rglob("*.png"))
    assert pngs
    for png in pngs:
        tag = f"report/{png.relative_to(report).with_suffix('').as_posix()}"
        logged = [(e.step, e.encoded_image_string) for e in acc.Images(tag)]
        assert logged == [(0, png.read_bytes()), (1, png.read_bytes())]


# -- resuming --------------------------------------------------------------------------------------


class Interrupted(BaseException):
    """Stands for a worker killed mid-run (execute_run lets a BaseException through)."""


@pytest.mark.parametrize("keep_checkpoint", [True, False])
def test_a_resumed_run_appends_to_the_same_tracker_run_without_duplicates(write_suite, tmp_path, keep_checkpoint):
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra")
    pytest.importorskip("mlflow", reason="needs the mlflow extra")
    suite = load_suite(write_suite(tiny_suite_text(variants=ONE_VAE) + TRACK_BOTH))
    out = tmp_path / "out"
    config = resolve_tracking(suite.tracking, out, suite.name)
    spec = suite.specs[0]

    def stop_at_30(run_id, step):  # after step 30 is logged; the last checkpoint is step 20's
        if step == 30:
            raise Interrupted

    with pytest.raises(Interrupted):
        execute_run(RunTask(spec, "vae", str(out), threads=1, tracking=config), stop_at_30)
    assert checkpoint_path(out, spec.run_id).exists()
    if not keep_checkpoint:  # e.g. a checkpoint found corrupt: the run trains again from step 0
        checkpoint_path(out, spec.run_id).unlink()
    run_suite(suite, out, InProcessExecutor(), threads=1)  # the suite's [tracking]
    runs, _, curves, _ = store_rows(out)
    assert runs[spec.run_id]["environment"]["resumed_from_step"] == (20 if keep_checkpoint else 0)
    assert_tracked(out, config)  # every point once, equal to the store's
    logdir = Path(config.tensorboard) / spec.run_id
    assert len(list(logdir.iterdir())) == 3  # the interrupted attempt, the resumed one, the driver's
    raw = tb_raw_steps(logdir, "train/model/loss")
    # on disk the interrupted attempt's step 30 (and, from step 0, 10 and 20) is there twice: the readers drop it
    assert raw == ([10, 20, 30, 30, 40] if keep_checkpoint else [10, 20, 30, 10, 20, 30, 40])
    # a run tracked without the driver's start: the worker created the experiment itself
    assert len(mlflow_runs(config.mlflow, config.experiment)[spec.run_id]) == 1


# -- failed runs and the driver alone --------------------------------------------------------------


@pytest.mark.parametrize("status", ["failed", "diverged"])
def test_a_run_that_failed_before_training_is_one_failed_tracker_run(write_suite, tmp_path, status):
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra")
    pytest.importorskip("mlflow", reason="needs the mlflow extra")
    suite = load_suite(write_suite(tiny_suite_text(variants=ONE_VAE)))
    spec = suite.specs[0]
    config = resolve_tracking(TrackingRequest(DEFAULT, DEFAULT), tmp_path / "out", suite.name)
    trackers = SweepTracking(config)
    trackers.start(tmp_path / "out")
    error = "WorkerCrashedError (Ray task failed 3 time(s), retries exhausted): the worker died"
    result = RunResult(spec=spec, status=status, error=error, diverged_step=7 if status == "diverged" else None)
    trackers.finished(result, "vae")
    trackers.close()
    run = mlflow_runs(config.mlflow, config.experiment)[spec.run_id]
    assert len(run) == 1
    run = run[0]
    assert run.info.status == "FAILED" and run.data.tags["vaebench.status"] == status
    assert run.data.tags["vaebench.error"] == error and run.data.params["variant"] == "vae"
    assert ("vaebench.diverged_step" in run.data.tags) == (status == "diverged")
    c = mlflow_client(config.mlflow)
    assert Path(c.download_artifacts(run.info.run_id, "error.txt", str(tmp_path / "dl"))).read_text() == error
    acc = _accumulator(Path(config.tensorboard) / spec.run_id)
    assert tb_text(acc, "status") == [f"**{status}**\n\n```\n{error}\n```"]
    assert len(tb_text(acc, "spec")) == 1


def test_mlflows_file_store_is_refused_in_one_line_unless_allowed(write_suite, tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow", reason="needs the mlflow extra")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = (tmp_path / "mlruns").as_uri()
    args = ["run", str(write_suite(tiny_suite_text(variants=ONE_VAE))), "--out", str(tmp_path / "out"), "--quiet",
            "--track", f"mlflow={uri}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"MLflow cannot use {uri}" in err and "MLFLOW_ALLOW_FILE_STORE" in err
    # allowed: the driver's side writes MLflow's file store, and MLflow's client reads it back
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    spec = load_suite(args[1]).specs[0]
    config = resolve_tracking(TrackingRequest(mlflow=uri), tmp_path / "out2", "tiny")
    trackers = SweepTracking(config)
    trackers.start(tmp_path / "out2")
    trackers.finished(RunResult(spec=spec, status="done", metrics={"neg_elbo": 1.25}, steps_done=40), "vae")
    run = mlflow_runs(uri, "tiny")[spec.run_id][0]
    assert mlflow_history(mlflow_client(uri), run.info.run_id, "eval/neg_elbo") == [(40, 1.25)]
    assert (tmp_path / "mlruns").is_dir()


def test_no_mlflow_server_at_the_uri_is_one_line(write_suite, tmp_path, capsys):
    pytest.importorskip("mlflow", reason="needs the mlflow extra")
    with socket.socket() as sock:  # a port that was free a moment ago, on this machine
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["run", str(write_suite(tiny_suite_text(variants=ONE_VAE))), "--out", str(tmp_path / "o"), "--quiet",
            "--track", f"mlflow=http://127.0.0.1:{port}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"no MLflow server answers at http://127.0.0.1:{port}" in err


# -- other executors -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_process_pool_tracks_every_run_once(write_suite, tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra")
    pytest.importorskip("mlflow", reason="needs the mlflow extra")
    out = tmp_path / "out"
    suite = write_suite(tiny_suite_text(variants=VAE_AND_BETA))
    args = ["run", str(suite), "--out", str(out), "--quiet", "--jobs", "2", "--track",
            f"tensorboard,mlflow={tmp_path / 'lab-mlflow'}"]
    assert main(args) == 0
    config = recorded_tracking(out)
    assert config.mlflow == f"sqlite:///{tmp_path / 'lab-mlflow' / 'mlflow.db'}"
    assert_tracked(out, config)
    assert len(store_rows(out)[0]) == 2


@pytest.mark.slow
def test_ray_tracks_every_run_once(tmp_path, write_suite):
    ray = pytest.importorskip("ray")
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra")
    pytest.importorskip("mlflow", reason="needs the mlflow extra")
    import shutil
    import tempfile

    temp_dir = tempfile.mkdtemp(prefix="r", dir="/tmp")  # Ray's socket paths must be short
    suite = load_suite(write_suite(tiny_suite_text(variants=VAE_AND_BETA) + TRACK_BOTH))
    out = tmp_path / "ray"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp_path / "home"))  # Ray writes ~/.ray
        mp.delenv("RAY_ADDRESS", raising=False)
        mp.delenv("RAY_AUTH_MODE", raising=False)
        assert not ray.is_initialized()
        try:
            ray.init(num_cpus=2, _temp_dir=temp_dir, object_store_memory=80 * 1024**2, include_dashboard=False)
        except RuntimeError as err:
            # Alone this test passes; after test_ray's module-scoped instance, in the same process, Ray's
            # GCS server has twice missed its start timeout on the 2-core CI machine (an open problem)
            if "Timed out" not in str(err):
                raise
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)
            pytest.skip(f"a second local Ray instance in this process did not start: {str(err).splitlines()[0]}")
        try:
            summary = run_suite(suite, out, make_executor("ray"), threads=1)
        finally:
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)
    assert summary.statuses == {"done": 2}
    assert_tracked(out, recorded_tracking(out))


# -- a tracker never changes or fails a run --------------------------------------------------------


def test_a_trackers_random_draws_leave_the_runs_generators_as_they_were():
    import random

    import torch

    from vaebench.tracking.hooks import RunTracking

    class Greedy:  # a tracker library that draws from every global generator
        def log_curves(self, step, values):
            random.random(), np.random.rand(), torch.rand(3)

        def close(self):
            pass

    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    RunTracking([("Greedy", Greedy())], "r").log_curves(10, {"loss": 1.0})
    assert random.getstate() == before[0]
    assert (np.random.get_state()[1] == before[1]).all() and torch.equal(torch.get_rng_state(), before[2])


def test_a_tracker_failing_mid_run_is_a_warning_and_the_run_goes_on(write_suite, tmp_path, monkeypatch, caplog):
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra")
    pytest.importorskip("mlflow", reason="needs the mlflow extra")
    from vaebench.tracking.tensorboard_tracker import TensorBoardRun

    real = TensorBoardRun.log_curves

    def full_disk_at_20(self, step, values):
        if step == 20:
            raise OSError(28, "No space left on device")
        real(self, step, values)

    monkeypatch.setattr(TensorBoardRun, "log_curves", full_disk_at_20)
    suite = load_suite(write_suite(tiny_suite_text(variants=ONE_VAE) + TRACK_BOTH))
    out = tmp_path / "out"
    assert run_suite(suite, out, InProcessExecutor(), threads=1).statuses == {"done": 1}
    assert "TensorBoard tracking stopped for run" in caplog.text and "No space left on device" in caplog.text
    config = recorded_tracking(out)
    run_id = suite.specs[0].run_id
    assert [s for s, _ in tb_scalars(Path(config.tensorboard) / run_id)["train/model/loss"]] == [10]
    c = mlflow_client(config.mlflow)
    (run,) = mlflow_runs(config.mlflow, config.experiment)[run_id]
    assert [s for s, _ in mlflow_history(c, run.info.run_id, "train/model/loss")] == [10, 20, 30, 40]
