"""MLflow: one MLflow run per vaebench run, found by its tag `vaebench.run_id`, in the sweep's experiment.

Only MLflow's client API (`MlflowClient`) is used, with the URI the sweep names: no global
MLflow state, no environment variables read for the destination. MLflow's usage telemetry is
switched off before MLflow is imported (MLFLOW_DISABLE_TELEMETRY): nothing is sent anywhere
unless the URI names a server.

    params      the spec flattened (`hyperparameters.beta`, `dataset_params.size`, ...) and the run id (worker)
    spec.json   the spec as an artifact (worker)
    train/<term>   metric history along training, logged at every logged step (worker)
    eval/<value>   the final metrics, at the run's last step (driver)
    grids/<name>.png   the image grids (driver); error.txt for a run that failed
    tags        vaebench.run_id, vaebench.setting, vaebench.suite, vaebench.status; run status FINISHED or FAILED

The driver creates the experiment before any worker starts (so workers never race to create a
store or an experiment); each attempt of a run looks its MLflow run up by tag, or creates it.

Resuming: MLflow's metric history is append-only, so before logging, a run reads each metric's last
step (`get_metric_history`) and logs only later steps. An interrupted attempt's points past its
checkpoint stay, and the resumed attempt, which recomputes them, does not log them again.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vaebench.bench.spec import ExternalSpec, RunResult, RunSpec, RunStatus
from vaebench.errors import ConfigError, MissingDependencyError
from vaebench.tracking.common import (
    CURVE_PREFIX,
    GRID_FOLDER,
    METRIC_PREFIX,
    REPORT_FOLDER,
    REPORT_TAG,
    RUN_ID_TAG,
    run_label,
    spec_params,
)
from vaebench.tracking.config import TrackingConfig

INSTALL_HINT = "pip install 'vaebench[mlflow]'"
MAX_TAG_CHARS = 5000
log = logging.getLogger(__name__)


def import_mlflow() -> Any:
    """The `mlflow` module with its telemetry off and its INFO logging quiet, or a MissingDependencyError."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # before the import: `import mlflow` starts telemetry
    try:
        import mlflow
        from mlflow.tracking import MlflowClient  # noqa: F401 - imported to see that it imports
    except ImportError as err:
        raise MissingDependencyError(
            f"tracking with MLflow needs the mlflow package, which does not import ({err}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    try:  # MLflow imported earlier in this process, before the variable was set: drop its telemetry client
        from mlflow.telemetry.client import set_telemetry_client

        set_telemetry_client()
    except ImportError:  # an MLflow without telemetry
        pass
    for name in ("mlflow", "alembic"):  # "Creating initial MLflow database tables..." and the like
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


def check_installed() -> None:
    import_mlflow()


def client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def check_server(uri: str, key: str, timeout_s: float = 10.0) -> None:
    """A ConfigError now if nothing answers at an http(s) URI's host and port (MLflow would retry for minutes)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
    except OSError as err:
        raise ConfigError(f"no MLflow server answers at {uri} ({err.strerror or err})", key=key) from None


def experiment_id(mlflow_client: Any, config: TrackingConfig, key: str) -> str:
    """The id of the sweep's experiment, created if it does not exist (its artifacts in a folder named after it
    under the config's artifact root, when the store is local)."""
    from mlflow.exceptions import MlflowException

    experiment = mlflow_client.get_experiment_by_name(config.experiment)
    if experiment is None:
        artifacts = None
        if config.mlflow_artifacts is not None:  # one folder per experiment under the store's artifact root
            artifacts = f"{config.mlflow_artifacts.rstrip('/')}/{re.sub(r'[^A-Za-z0-9._-]', '_', config.experiment)}"
        try:
            return mlflow_client.create_experiment(config.experiment, artifact_location=artifacts)
        except MlflowException:  # another driver created it meanwhile
            experiment = mlflow_client.get_experiment_by_name(config.experiment)
            if experiment is None:
                raise
    if experiment.lifecycle_stage != "active":
        raise ConfigError(f"the MLflow experiment {config.experiment!r} in {config.mlflow} is deleted; restore it "
                          "(mlflow experiments restore) or name another one with [tracking] experiment", key=key)
    return experiment.experiment_id


def find_run(mlflow_client: Any, exp_id: str, tag: str, value: str) -> str | None:
    quote = "'" if "'" not in value else '"'
    runs = mlflow_client.search_runs([exp_id], filter_string=f"tags.`{tag}` = {quote}{value}{quote}", max_results=2)
    if len(runs) > 1:
        log.warning("MLflow experiment %s holds %d runs tagged %s = %s; vaebench uses the first", exp_id, len(runs),
                    tag, value)
    return runs[0].info.run_id if runs else None


def run_for(mlflow_client: Any, config: TrackingConfig, spec: RunSpec | ExternalSpec, setting: str) -> str:
    """The MLflow run of the vaebench run `spec`: found by its tag, or created; its params logged."""
    from mlflow.entities import Param

    exp_id = experiment_id(mlflow_client, config, key="tracking.mlflow")
    run_id = find_run(mlflow_client, exp_id, RUN_ID_TAG, spec.run_id)
    if run_id is None:
        tags = {RUN_ID_TAG: spec.run_id, "vaebench.setting": setting, "vaebench.suite": config.suite}
        run_id = mlflow_client.create_run(exp_id, tags=tags, run_name=run_label(setting, spec)).info.run_id
    logged = mlflow_client.get_run(run_id).data.params
    missing = [Param(k, str(v)) for k, v in spec_params(spec).items() if k not in logged]
    if missing:  # an attempt that died before logging them, or a run created by the driver
        mlflow_client.log_batch(run_id, params=missing)
    return run_id


def last_steps(mlflow_client: Any, run_id: str) -> dict[str, int]:
    """Each metric's last logged step in the run."""
    keys = mlflow_client.get_run(run_id).data.metrics
    return {key: max(m.step for m in mlflow_client.get_metric_history(run_id, key)) for key in keys}


class MetricLog:
    """Appends points to a run's metric histories, never a step at or before a metric's last one."""

    def __init__(self, mlflow_client: Any, run_id: str):
        self.client = mlflow_client
        self.run_id = run_id
        self.last = last_steps(mlflow_client, run_id)

    def log(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        new = [Metric(key, float(v), now, step) for key, v in values.items() if step > self.last.get(key, -1)]
        if new:
            self.client.log_batch(self.run_id, metrics=new)
            self.last.update((m.key, step) for m in new)


def tracking_uri(config: TrackingConfig) -> str:
    """The configuration's MLflow tracking URI; MLflow is tracked only where it has one."""
    if config.mlflow is None:
        raise ValueError("this tracking configuration does not track MLflow")
    return config.mlflow


# -- the worker's side ----------------------------------------------------------------------------


class MlflowRun:
    """One attempt of a run, in the worker: the run found or created, params, then every logged step."""

    def __init__(self, config: TrackingConfig, spec: RunSpec, setting: str):
        import_mlflow()
        self.client = client(tracking_uri(config))
        self.run_id = run_for(self.client, config, spec, setting)
        self.client.update_run(self.run_id, status="RUNNING")
        self.client.log_text(self.run_id, spec.canonical_json(), "spec.json")
        self.metrics = MetricLog(self.client, self.run_id)

    def log_curves(self, step: int, values: Mapping[str, float]) -> None:
        self.metrics.log(step, {f"{CURVE_PREFIX}{name}": v for name, v in values.items()})

    def close(self) -> None:
        pass  # the driver ends the run once its result is in


# -- the driver's side ----------------------------------------------------------------------------


class MlflowSweep:
    """The driver: the experiment before any run starts, then each finished run's metrics, grids and end."""

    def __init__(self, config: TrackingConfig, key: str = "tracking.mlflow or --track mlflow"):
        self.config = config
        self.key = key
        self.client: Any = None

    def start(self) -> None:
        from mlflow.exceptions import MlflowException

        import_mlflow()
        uri = tracking_uri(self.config)
        check_server(uri, self.key)
        try:
            self.client = client(uri)
            experiment_id(self.client, self.config, self.key)
        except MlflowException as err:
            message = " ".join(str(err.message).split())
            raise ConfigError(f"MLflow cannot use {uri}: {message}", key=self.key) from None

    def finished(self, result: RunResult, setting: str) -> None:
        from mlflow.entities import RunTag

        run_id = run_for(self.client, self.config, result.spec, setting)
        MetricLog(self.client, run_id).log(result.steps_done,
                                           {f"{METRIC_PREFIX}{k}": v for k, v in result.metrics.items()})
        with tempfile.TemporaryDirectory(prefix="vaebench-mlflow-") as tmp:
            for name, png in sorted(result.artifacts.items()):
                path = Path(tmp) / f"{name}.png"
                path.write_bytes(png)
                self.client.log_artifact(run_id, str(path), GRID_FOLDER)
        tags = [RunTag("vaebench.status", str(result.status))]
        if result.diverged_step is not None:
            tags.append(RunTag("vaebench.diverged_step", str(result.diverged_step)))
        if result.error:
            self.client.log_text(run_id, result.error, "error.txt")
            tags.append(RunTag("vaebench.error", result.error[:MAX_TAG_CHARS]))
        self.client.log_batch(run_id, tags=tags)
        self.client.set_terminated(run_id, "FINISHED" if result.status == RunStatus.DONE else "FAILED")

    def close(self) -> None:
        self.client = None


def log_report(config: TrackingConfig, report_dir: Path, run_dir: Path) -> str:
    """The report's files as artifacts `report/...` of the experiment's run tagged with the run directory
    (created once, named 'report'); the MLflow run id."""
    import_mlflow()
    mlflow_client = client(tracking_uri(config))
    exp_id = experiment_id(mlflow_client, config, key="tracking.mlflow")
    where = str(run_dir.resolve())
    run_id = find_run(mlflow_client, exp_id, REPORT_TAG, where)
    if run_id is None:
        tags = {REPORT_TAG: where, "vaebench.suite": config.suite}
        run_id = mlflow_client.create_run(exp_id, tags=tags, run_name=f"report: {config.suite}").info.run_id
    mlflow_client.log_artifacts(run_id, str(report_dir), REPORT_FOLDER)
    mlflow_client.set_terminated(run_id, "FINISHED")
    return run_id
