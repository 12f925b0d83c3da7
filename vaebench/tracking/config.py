"""Which trackers a sweep writes to, and where: the suite's `[tracking]` table, `--track`, and their resolution.

    [tracking]
    tensorboard = true                  # or a directory; true: <run dir>/tensorboard
    mlflow = "sqlite:///lab/mlflow.db"  # or a directory, or any MLflow tracking URI; true: <run dir>/mlflow
    experiment = "my-sweep"             # the MLflow experiment (default: the suite's name)

    vaebench run SUITE --track tensorboard,mlflow          # on, where the suite says, else the defaults
    vaebench run SUITE --track mlflow=http://host:5000     # a destination on the command line
    vaebench run SUITE --track none                        # off, whatever the suite says

A relative path in a suite file is relative to the suite file's directory (as its plugins are); on
the command line, to the working directory. An MLflow destination without a URI scheme is a
directory holding a SQLite store (`mlflow.db`) and the artifacts (`mlartifacts/`); MLflow's own
file store (`file:` URIs) is in maintenance mode and refused by MLflow unless
MLFLOW_ALLOW_FILE_STORE=true. Nothing here imports a tracker: that happens only when a sweep
starts (`vaebench.tracking.hooks`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vaebench.errors import ConfigError

TRACKERS = ("tensorboard", "mlflow")
TABLE_KEYS = (*TRACKERS, "experiment")
DEFAULT = "<run dir>"  # a tracker named without a destination: its default place in the run directory
RECORD_NAME = "tracking.json"  # in the run directory: the trackers of its last sweep (read by `vaebench report`)
URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
EXPERIMENT_PATTERN = re.compile(r"\S(.{0,498}\S)?\Z")


@dataclass(frozen=True)
class TrackingRequest:
    """The trackers a suite or the command line names: None is off, DEFAULT its place in the run
    directory, anything else an absolute directory or an MLflow URI."""

    tensorboard: str | None = None
    mlflow: str | None = None
    experiment: str | None = None

    @property
    def enabled(self) -> bool:
        return self.tensorboard is not None or self.mlflow is not None


@dataclass(frozen=True)
class TrackingConfig:
    """Where one sweep's runs are tracked, resolved: what the workers and the driver receive.

    tensorboard: a log directory; run `r` writes to `<tensorboard>/<r>`.
    mlflow: a tracking URI as MLflow takes it; mlflow_artifacts: the artifact root of a local store (an
    experiment this sweep creates keeps its artifacts in a folder of it; None: MLflow's or the server's choice).
    """

    tensorboard: str | None = None
    mlflow: str | None = None
    mlflow_artifacts: str | None = None
    experiment: str = "vaebench"
    suite: str = ""

    @property
    def enabled(self) -> bool:
        return self.tensorboard is not None or self.mlflow is not None

    @property
    def trackers(self) -> tuple[str, ...]:
        return tuple(name for name in TRACKERS if getattr(self, name) is not None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrackingConfig:
        return cls(**{k: d[k] for k in ("tensorboard", "mlflow", "mlflow_artifacts", "experiment", "suite") if k in d})


def _destination(value: Any, *, base: Path, file: str | None, key: str, kind: str) -> str | None:
    """true -> DEFAULT, false -> None, a path -> absolute (against `base`), an MLflow URI as it is."""
    if value is True:
        return DEFAULT
    if value is False:
        return None
    if not isinstance(value, str) or not value.strip():
        allowed = ("true, false, a directory or an MLflow tracking URI" if kind == "mlflow"
                   else "true, false or a directory")
        raise ConfigError(f"must be {allowed}, got {value!r}", file=file, key=key)
    value = value.strip()
    if kind == "mlflow" and URI_SCHEME.match(value):
        database = value[len("sqlite:///"):] if value.startswith("sqlite:///") else None
        if database and database != ":memory:" and not database.startswith("/"):  # every worker: the same file
            return "sqlite:///" + str((base / database).resolve())
        return value
    if kind == "tensorboard" and URI_SCHEME.match(value):
        raise ConfigError(f"must be a local directory, got the URI {value!r}", file=file, key=key)
    return str((base / Path(value).expanduser()).resolve())


def parse_tracking_table(raw: Any, *, file: str) -> TrackingRequest:
    """The suite's `[tracking]` table (absent: off); relative paths against the suite file's directory."""
    if raw is None:
        return TrackingRequest()
    if not isinstance(raw, dict):
        raise ConfigError("must be a table", file=file, key="tracking")
    for key in raw:
        if key not in TABLE_KEYS:
            raise ConfigError(f"unknown key; allowed: {', '.join(TABLE_KEYS)}", file=file, key=f"tracking.{key}")
    base = Path(file).parent
    experiment = raw.get("experiment")
    if experiment is not None and (not isinstance(experiment, str) or not EXPERIMENT_PATTERN.match(experiment)):
        raise ConfigError(f"must be a name of 1 to 500 characters, got {experiment!r}", file=file,
                          key="tracking.experiment")
    return TrackingRequest(
        tensorboard=_destination(raw.get("tensorboard", False), base=base, file=file, key="tracking.tensorboard",
                                 kind="tensorboard"),
        mlflow=_destination(raw.get("mlflow", False), base=base, file=file, key="tracking.mlflow", kind="mlflow"),
        experiment=experiment,
    )


def parse_track_option(text: str, suite_request: TrackingRequest) -> TrackingRequest:
    """`--track`: comma-separated `tensorboard`, `mlflow`, `NAME=DESTINATION`, or `none`.

    Exactly the named trackers are on: each at the destination given here, else the suite's,
    else its default; relative paths against the working directory."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    allowed = "comma-separated tensorboard, mlflow, tensorboard=DIR, mlflow=URI_OR_DIR, or none"
    if items == ["none"]:
        return TrackingRequest(experiment=suite_request.experiment)
    if not items:
        raise ConfigError(f"must be {allowed}", key="--track")
    chosen: dict[str, str] = {}
    for item in items:
        name, sep, destination = item.partition("=")
        name = name.strip()
        if name not in TRACKERS:
            raise ConfigError(f"unknown tracker {name!r}; allowed: {allowed}", key="--track")
        if name in chosen:
            raise ConfigError(f"names {name} twice", key="--track")
        if sep:
            chosen[name] = _destination(destination, base=Path.cwd(), file=None, key="--track", kind=name) or ""
        else:
            chosen[name] = getattr(suite_request, name) or DEFAULT
        if not chosen[name]:
            raise ConfigError(f"{name}=false: leave {name} out instead", key="--track")
    return TrackingRequest(chosen.get("tensorboard"), chosen.get("mlflow"), suite_request.experiment)


def resolve_tracking(request: TrackingRequest, run_dir: str | Path, suite_name: str) -> TrackingConfig:
    """The sweep's TrackingConfig: defaults placed in `run_dir`, a directory for MLflow as a SQLite store."""
    run_dir = Path(run_dir).resolve()
    tensorboard = request.tensorboard
    if tensorboard == DEFAULT:
        tensorboard = str(run_dir / "tensorboard")
    mlflow, artifacts = request.mlflow, None
    if mlflow is not None:
        mlflow, artifacts = mlflow_store(str(run_dir / "mlflow") if mlflow == DEFAULT else mlflow)
    return TrackingConfig(tensorboard=tensorboard, mlflow=mlflow, mlflow_artifacts=artifacts,
                          experiment=request.experiment or suite_name, suite=suite_name)


def mlflow_store(destination: str) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment) of an MLflow destination.

    A directory: `sqlite:///<dir>/mlflow.db` and `<dir>/mlartifacts`. A `sqlite:` URI: its artifacts
    beside the database file (MLflow would otherwise put them under the working directory, which
    differs between workers). Any other URI: MLflow's own choice (a server decides for itself)."""
    if not URI_SCHEME.match(destination):
        directory = Path(destination)
        return f"sqlite:///{directory / 'mlflow.db'}", (directory / "mlartifacts").as_uri()
    if destination.startswith("sqlite:///") and destination != "sqlite:///:memory:":
        database = Path(destination[len("sqlite:///"):])
        if database.is_absolute():
            return destination, (database.parent / "mlartifacts").as_uri()
    return destination, None


def record_tracking(run_dir: str | Path, config: TrackingConfig) -> None:
    """Keep the sweep's trackers in the run directory (removed when a sweep tracks nothing)."""
    path = Path(run_dir) / RECORD_NAME
    if not config.enabled:
        path.unlink(missing_ok=True)
        return
    from vaebench.files import atomic_write

    with atomic_write(path, "w") as f:
        f.write(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")


def recorded_tracking(run_dir: str | Path) -> TrackingConfig | None:
    """The trackers the run directory's last sweep wrote to, or None."""
    path = Path(run_dir) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        return TrackingConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"not a tracking record ({err}); delete it or run the suite again", file=str(path)) from None
