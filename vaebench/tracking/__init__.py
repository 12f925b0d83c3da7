"""Live tracking of a sweep in TensorBoard and MLflow, off by default (optional extras
`vaebench[tensorboard]`, `vaebench[mlflow]`).

    config.py               [tracking] in a suite, --track on the command line, resolved per run directory
    hooks.py                what the harness calls: the worker's run tracking, the driver's sweep tracking, the report
    tensorboard_tracker.py  event files, one log directory per run
    mlflow_tracker.py       one MLflow run per vaebench run, by the tag vaebench.run_id
    common.py               names, the spec as parameters, the guard of the random generators

Importing this package imports neither tracker; they are imported when a sweep that names them starts.
"""

from vaebench.tracking.config import (
    TrackingConfig,
    TrackingRequest,
    parse_track_option,
    parse_tracking_table,
    recorded_tracking,
    resolve_tracking,
)
from vaebench.tracking.hooks import RunTracking, SweepTracking, log_report, open_run_tracking

__all__ = [
    "TrackingConfig", "TrackingRequest", "parse_track_option", "parse_tracking_table", "recorded_tracking",
    "resolve_tracking", "RunTracking", "SweepTracking", "log_report", "open_run_tracking",
]
