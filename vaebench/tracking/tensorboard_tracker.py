"""TensorBoard: one log directory per run, `<dir>/<run_id>`, written as event files that
TensorBoard's readers (its Python EventAccumulator and its Rust data server) read while a sweep runs.

What a run's directory holds, all in TensorBoard's own formats (records written with
`tensorboard.summary.writer.record_writer`, summaries as its protos; no TensorFlow):

    train/<term>                scalars along training, flushed at every logged step (the worker)
    spec                        text: the run's spec (JSON), at step 0
    _hparams_/session_*         the HParams dashboard: the spec flattened, grouped by setting; end status
    eval/<value>                scalars: the final metrics, at the run's last step (the driver)
    grids/<name>                images: the image grids (the driver)

Resuming. Event files are append-only, so each attempt of a run writes a new file, named to sort
after every file already there (TensorBoard reads a directory's files in name order). A run
resumed from its checkpoint at step s writes only steps > s, and its file opens with a
SessionLog START at step s + 1: TensorBoard's EventAccumulator then discards the scalars and images
> s that an interrupted attempt wrote, and the Rust data server does the same by itself (a step that
goes back preempts the points at or after it). Points at or before s are the earlier attempt's; they
are on disk because every point is flushed before the checkpoint that covers it is written. A
run that starts again from step 0 opens with START at step 0, which discards every earlier point.
The spec and the HParams session start (tensors, which a START does not purge) are written once, by
the first attempt that finds the run's directory without event files.

Scalars are TensorBoard's `simple_value`, a float32; the store and MLflow keep the float64.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vaebench.bench.spec import RunResult, RunStatus, RunTask
from vaebench.errors import MissingDependencyError
from vaebench.tracking.common import CURVE_PREFIX, GRID_FOLDER, METRIC_PREFIX, REPORT_FOLDER, spec_params

INSTALL_HINT = "pip install 'vaebench[tensorboard]'"
EVENT_FILE = re.compile(r"events\.out\.tfevents\.(\d{10})\.")
FILE_VERSION = "brain.Event:2"


def check_installed() -> None:
    """A MissingDependencyError that says how to install TensorBoard, unless it imports."""
    try:
        from tensorboard.compat.proto import event_pb2  # noqa: F401 - imported to see that it imports
        from tensorboard.summary.writer.record_writer import RecordWriter  # noqa: F401 - likewise
    except ImportError as err:
        raise MissingDependencyError(
            f"tracking with TensorBoard needs the tensorboard package, which does not import ({err}); "
            f"install it with: {INSTALL_HINT}"
        ) from None


class EventFile:
    """A new event file in `logdir`, named to sort after every event file there; each write is flushed."""

    def __init__(self, logdir: Path):
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._pb = event_pb2
        logdir.mkdir(parents=True, exist_ok=True)
        stamps = [int(m.group(1)) for p in logdir.iterdir() if (m := EVENT_FILE.match(p.name))]
        stamp = max([int(time.time()), *(s + 1 for s in stamps)])
        self.path = logdir / f"events.out.tfevents.{stamp:010d}.{socket.gethostname()}.{os.getpid()}.vaebench"
        self._writer = RecordWriter(open(self.path, "xb"))
        self.write(event_pb2.Event(wall_time=time.time(), file_version=FILE_VERSION))

    def write(self, event: Any) -> None:
        self._writer.write(event.SerializeToString())
        self._writer.flush()

    def summary(self, step: int, values: list[Any]) -> None:
        from tensorboard.compat.proto import summary_pb2

        self.write(self._pb.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values)))

    def start(self, step: int) -> None:
        """A SessionLog START at `step`: readers discard the points at or after `step` written before it."""
        self.write(self._pb.Event(wall_time=time.time(), step=step,
                                  session_log=self._pb.SessionLog(status=self._pb.SessionLog.START)))

    def close(self) -> None:
        if not self._writer.closed:
            self._writer.close()


# -- summaries (TensorBoard's protos) -------------------------------------------------------------


def scalars(prefix: str, values: Mapping[str, float]) -> list[Any]:
    from tensorboard.compat.proto.summary_pb2 import Summary

    return [Summary.Value(tag=f"{prefix}{name}", simple_value=float(value)) for name, value in values.items()]


def image(tag: str, png: bytes) -> Any:
    """An image summary of PNG bytes, kept as they are."""
    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    with Image.open(io.BytesIO(png)) as im:
        width, height = im.size
        channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}.get(im.mode, 3)
    return Summary.Value(tag=tag, image=Summary.Image(height=height, width=width, colorspace=channels,
                                                      encoded_image_string=png))


def text(tag: str, markdown: str) -> Any:
    """A text summary (the Text dashboard renders it as Markdown)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.text import metadata as text_metadata
    from tensorboard.util import tensor_util

    return Summary.Value(tag=tag, metadata=text_metadata.create_summary_metadata(display_name=tag, description=""),
                         tensor=tensor_util.make_tensor_proto(markdown))


def _hparams_value(tag: str, data: Any) -> Any:
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata as hparams_metadata

    return Summary.Value(tag=tag, metadata=hparams_metadata.create_summary_metadata(data),
                         tensor=hparams_metadata.NULL_TENSOR)


def session_start(params: Mapping[str, Any], group: str) -> Any:
    """The HParams dashboard's session start: `params` as hyperparameters; runs of one `group` are seeds."""
    from tensorboard.plugins.hparams import metadata as hparams_metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionStartInfo(group_name=group, start_time_secs=time.time())
    for key, value in params.items():
        if isinstance(value, bool):
            info.hparams[key].bool_value = value
        elif isinstance(value, (int, float)):
            info.hparams[key].number_value = float(value)
        else:
            info.hparams[key].string_value = str(value)
    data = plugin_data_pb2.HParamsPluginData(session_start_info=info, version=hparams_metadata.PLUGIN_DATA_VERSION)
    return _hparams_value(hparams_metadata.SESSION_START_INFO_TAG, data)


def session_end(succeeded: bool) -> Any:
    from tensorboard.plugins.hparams import api_pb2, metadata as hparams_metadata, plugin_data_pb2

    status = api_pb2.Status.STATUS_SUCCESS if succeeded else api_pb2.Status.STATUS_FAILURE
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    data = plugin_data_pb2.HParamsPluginData(session_end_info=info, version=hparams_metadata.PLUGIN_DATA_VERSION)
    return _hparams_value(hparams_metadata.SESSION_END_INFO_TAG, data)


def _run_header(task_spec: Any, setting: str) -> list[Any]:
    params = {**spec_params(task_spec), "setting": setting}
    spec_json = json.dumps(task_spec.to_dict(), indent=2, sort_keys=True)
    return [session_start(params, group=task_spec.setting_key()), text("spec", f"```json\n{spec_json}\n```")]


def run_dir(root: str, run_id: str) -> Path:
    return Path(root) / run_id


def has_events(logdir: Path) -> bool:
    return logdir.is_dir() and any(EVENT_FILE.match(p.name) for p in logdir.iterdir())


# -- the worker's side ----------------------------------------------------------------------------


class TensorBoardRun:
    """One attempt of a run, in the worker: the spec, then every logged step as it comes."""

    def __init__(self, root: str, task: RunTask, resumed_at: int):
        logdir = run_dir(root, task.run_id)
        fresh = not has_events(logdir)
        self.events = EventFile(logdir)
        self.events.start(resumed_at + 1 if resumed_at else 0)
        if fresh:
            self.events.summary(0, _run_header(task.spec, task.setting))

    def log_curves(self, step: int, values: Mapping[str, float]) -> None:
        self.events.summary(step, scalars(CURVE_PREFIX, values))

    def close(self) -> None:
        self.events.close()


# -- the driver's side ----------------------------------------------------------------------------


class TensorBoardSweep:
    """The driver: creates the log directory, and writes each finished run's metrics and grids."""

    def __init__(self, root: str):
        self.root = root

    def start(self) -> None:
        Path(self.root).mkdir(parents=True, exist_ok=True)

    def finished(self, result: RunResult, setting: str) -> None:
        logdir = run_dir(self.root, result.run_id)
        fresh = not has_events(logdir)
        events = EventFile(logdir)
        try:
            if fresh:  # the worker wrote nothing (it failed before training): the spec still goes in
                events.summary(0, _run_header(result.spec, setting))
            values = scalars(METRIC_PREFIX, result.metrics)
            values += [image(f"{GRID_FOLDER}/{name}", png) for name, png in sorted(result.artifacts.items())]
            status = f"**{result.status}**" + (f"\n\n```\n{result.error}\n```" if result.error else "")
            values += [text("status", status), session_end(result.status == RunStatus.DONE)]
            events.summary(result.steps_done, values)
        finally:
            events.close()

    def close(self) -> None:
        pass


def log_report(root: str, report_dir: Path) -> Path:
    """The report's plots and grids as images and its Markdown tables as text, in the run `<root>/report`,
    at step n for the n-th report written there (from 0): TensorBoard shows the latest, and keeps the others."""
    logdir = Path(root) / REPORT_FOLDER
    step = sum(1 for p in logdir.iterdir() if EVENT_FILE.match(p.name)) if logdir.is_dir() else 0
    events = EventFile(logdir)
    try:
        values = []
        for path in sorted(p for p in report_dir.rglob("*") if p.is_file()):
            tag = f"{REPORT_FOLDER}/{path.relative_to(report_dir).with_suffix('').as_posix()}"
            if path.suffix == ".png":
                values.append(image(tag, path.read_bytes()))
            elif path.suffix == ".md":
                values.append(text(tag, path.read_text(encoding="utf-8")))
        events.summary(step, values)
    finally:
        events.close()
    return events.path.parent
