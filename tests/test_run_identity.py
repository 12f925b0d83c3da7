"""A run is made from its spec, its code and its data: a checkpoint made from another version of a
plugin or of a data file is never resumed (the run restarts from step 0 and says why)."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers import plugin_suite
from vaebench import data
from vaebench.bench.spec import RunTask
from vaebench.bench.suite import load_suite
from vaebench.bench.train import checkpoint_path, execute_run

pytestmark = pytest.mark.usefixtures("one_thread")

PLUGIN = textwrap.dedent('''
    from vaebench import register_variant
    from vaebench.variants import VARIANTS
    from vaebench.variants.vae import VAE

    if "identity_vae" not in VARIANTS:  # imported again once edited (a new file hash), in this test's process
        @register_variant("identity_vae")
        class IdentityVAE(VAE):
            """A user's variant."""
''')



class Killed(KeyboardInterrupt):
    """Stands for Ctrl-C in the middle of a run."""


def _kill_at(step: int):
    def progress(run_id: str, at: int) -> None:
        if at == step:
            raise Killed

    return progress


def _task(suite_path: Path, out: Path) -> RunTask:
    suite = load_suite(suite_path)
    (spec,) = suite.specs
    return RunTask(spec, suite.setting(spec), str(out), threads=1, plugins=suite.plugins)


def _interrupted_run(suite_path: Path, out: Path) -> RunTask:
    """The suite's one run, killed at step 3: its checkpoint holds step 2."""
    task = _task(suite_path, out)
    with pytest.raises(Killed):
        execute_run(task, _kill_at(3))
    assert checkpoint_path(out, task.run_id).is_file()
    return task


def test_a_resume_after_the_plugin_was_edited_restarts_from_step_0(tmp_path, caplog):
    plugin = tmp_path / "identity_plugin.py"
    plugin.write_text(PLUGIN)
    suite = plugin_suite(tmp_path / "suite.toml", ["identity_plugin.py"], name="identity",
                         variant="identity_vae", steps=6, log_every=1)
    out = tmp_path / "run"
    task = _interrupted_run(suite, out)
    plugin.write_text(PLUGIN + "\n# edited between the kill and the resume\n")
    with caplog.at_level(logging.WARNING, logger="vaebench.bench.train"):
        result = execute_run(_task(suite, out))
    assert result.status == "done" and result.steps_done == 6
    assert result.environment["resumed_from_step"] == 0
    (why,) = result.environment["restarted_because"]
    assert why.startswith(f"plugin {plugin}: sha256:") and " -> sha256:" in why
    assert "the run restarts from step 0" in caplog.text and str(plugin) in caplog.text
    assert task.run_id == result.run_id  # the spec, hence the run id, did not change
    stale = checkpoint_path(out, task.run_id)
    assert stale.with_name(stale.name + ".stale").is_file()  # set aside, never resumed


def test_a_resume_with_the_same_code_and_data_continues_from_its_checkpoint(tmp_path):
    plugin = tmp_path / "identity_plugin.py"
    plugin.write_text(PLUGIN)
    suite = plugin_suite(tmp_path / "suite.toml", ["identity_plugin.py"], name="identity",
                         variant="identity_vae", steps=6, log_every=1)
    out = tmp_path / "run"
    _interrupted_run(suite, out)
    result = execute_run(_task(suite, out))
    assert result.status == "done" and result.environment["resumed_from_step"] == 2
    assert "restarted_because" not in result.environment


def _write_npz(path: Path, seed: int) -> None:
    images = np.random.default_rng(seed).random((60, 8, 8), dtype=np.float32)
    with open(path, "wb") as f:  # the same name, size and (below) modification time: only the bytes differ
        np.savez(f, images=images)


@pytest.mark.parametrize("keep_mtime", [False, True])
def test_a_resume_after_the_data_file_was_replaced_restarts_from_step_0(tmp_path, caplog, keep_mtime):
    npz = tmp_path / "images.npz"
    _write_npz(npz, seed=0)
    suite = plugin_suite(tmp_path / "suite.toml", name="identity", dataset="npz",
                         dataset_params=f'path = "{npz}"\ntest_size = 20', steps=6, log_every=1)
    out = tmp_path / "run"
    _interrupted_run(suite, out)
    stat = npz.stat()
    _write_npz(npz, seed=1)
    if keep_mtime:  # `touch -r`: the stat fingerprint alone would not see it
        import os

        os.utime(npz, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    data._build.cache_clear()  # a resumed process reads the file anew
    with caplog.at_level(logging.WARNING, logger="vaebench.bench.train"):
        result = execute_run(_task(suite, out))
    assert result.status == "done" and result.environment["resumed_from_step"] == 0
    (why,) = result.environment["restarted_because"]
    assert why.startswith(f"data file {npz}: sha256:")
    assert "the run restarts from step 0" in caplog.text
    data._build.cache_clear()


FACTORY = textwrap.dedent('''
    import torch
    from torch import nn


    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(64, 4)

        def encode(self, x):
            mu, logvar = self.linear(x.flatten(1)).chunk(2, dim=-1)
            return mu, logvar


    def make():
        torch.manual_seed(0)
        return Encoder()
''')


def test_an_edited_external_factory_is_another_model(tmp_path, monkeypatch):
    from vaebench.api import load_results
    from vaebench.cli import main

    (tmp_path / "identity_factory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    command = ["evaluate", "identity_factory:make", "--dataset", "digits", "--metrics", "kl", "--out", str(out)]
    assert main(command) == 0
    (tmp_path / "identity_factory.py").write_text(FACTORY + "\n# edited\n")
    assert main(command) == 0
    models = load_results(out)["hyperparameters.model"]
    assert len(models) == 2 and models.str.startswith("identity_factory:make@unversioned sha256:").all()


def test_resuming_a_sweep_names_completed_runs_made_from_another_plugin_version(tmp_path, caplog):
    from vaebench.bench.executors import InProcessExecutor
    from vaebench.bench.runner import run_suite

    plugin = tmp_path / "identity_plugin.py"
    plugin.write_text(PLUGIN)
    suite = plugin_suite(tmp_path / "suite.toml", ["identity_plugin.py"], name="identity",
                         variant="identity_vae", steps=6, log_every=1)
    out = tmp_path / "run"
    run_suite(load_suite(suite), out, InProcessExecutor(), threads=1)
    with caplog.at_level(logging.WARNING, logger="vaebench.bench.runner"):
        run_suite(load_suite(suite), out, InProcessExecutor(), threads=1)
    assert "another version of plugin" not in caplog.text
    plugin.write_text(PLUGIN + "\n# edited after the sweep\n")
    with caplog.at_level(logging.WARNING, logger="vaebench.bench.runner"):
        summary = run_suite(load_suite(suite), out, InProcessExecutor(), threads=1)
    assert summary.skipped == 1
    assert f"1 completed run(s) in {out} were made from another version of plugin {plugin}" in caplog.text
