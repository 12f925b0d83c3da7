"""Code runs only when the user asks: reading commands import no code a store names, and any exit
from user code (sys.exit in a plugin, a model factory, a variant, a metric, a dataset) is a failure
in one line naming the module, never a sweep that ends with exit 0."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from helpers import one_error_line, plugin_suite
from vaebench.bench.spec import RunResult, RunSpec, RunStatus, freeze
from vaebench.bench.store import ResultsStore
from vaebench.cli import main

EVIL = textwrap.dedent('''
    from pathlib import Path
    Path({marker!r}).write_text("ran")
''')



def _spec(seed: int) -> RunSpec:
    return RunSpec(
        variant="vae", hyperparameters=freeze({}), dataset="digits", dataset_params=(), architecture="mlp",
        latent_dim=2, likelihood="bernoulli", steps=1, batch_size=8, optimizer="adam", learning_rate=1e-3,
        checkpoint_every=1, log_every=1, seed=seed, metrics=("kl",),
    )


@pytest.fixture
def crafted_store(tmp_path, monkeypatch) -> tuple[Path, Path, Path]:
    """(run directory, a .py file and a module the store's environment names as plugins, the marker
    file either writes when it is imported)."""
    marker = tmp_path / "code_ran"
    evil_file = tmp_path / "sent" / "evil_plugin_file.py"
    evil_file.parent.mkdir()
    evil_file.write_text(EVIL.format(marker=str(marker)))
    (tmp_path / "sent" / "evil_plugin_module.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path / "sent"))
    out = tmp_path / "sent_run"
    plugins = [{"name": str(evil_file), "version": "sha256:0"}, {"name": "evil_plugin_module", "version": "1"}]
    with ResultsStore(out) as store:
        for seed in (0, 1):
            result = RunResult(spec=_spec(seed), status=RunStatus.DONE, metrics={"kl": 1.0 + seed},
                               environment={"plugins": plugins})
            store.write_result(result, suite="sent", setting="vae")
    return out, evil_file, marker


def test_reading_commands_never_import_the_plugins_a_store_names(crafted_store, tmp_path, capsys):
    out, evil_file, marker = crafted_store
    run_id = _spec(0).run_id
    commands = [
        ["results", str(out)], ["results", str(out), "--format", "json"], ["show", str(out), run_id[:8]],
        ["report", str(out), "--out", str(tmp_path / "report")], ["claims", str(out)],
        ["baseline", str(out), "--out", str(tmp_path / "b.json")],
        ["check", str(out), "--baseline", str(tmp_path / "b.json")], ["prune", str(out), "--failed"],
    ]
    for command in commands:
        assert main(command) == 0, command
        assert not marker.exists(), f"vaebench {command[0]} ran code the store names"
        err = capsys.readouterr().err
        assert "used the plugins" in err and str(evil_file) in err and "evil_plugin_module" in err, command
    # the user may ask for a plugin explicitly: then, and only then, it is imported
    assert main(["results", str(out), "--plugins", str(evil_file)]) == 0
    assert marker.read_text() == "ran"
    assert "evil_plugin_module" in capsys.readouterr().err


def test_a_suite_given_to_a_reading_command_imports_only_what_plugins_names(crafted_store, tmp_path, capsys):
    out, evil_file, marker = crafted_store
    suite = tmp_path / "sent" / "suite.toml"
    suite.write_text(textwrap.dedent('''
        name = "sent"
        plugins = ["evil_plugin_file.py"]
        [model]
        architecture = "mlp"
        [[datasets]]
        name = "digits"
        [[variants]]
        name = "vae"
    '''))
    for command in (["results", str(out), "--suite", str(suite)], ["prune", str(out), "--not-in", str(suite)]):
        assert main(command) == 2
        line = one_error_line(capsys)
        assert "key 'plugins'" in line and f"--plugins {evil_file}" in line and not marker.exists()
    assert main(["results", str(out), "--suite", str(suite), "--plugins", str(evil_file)]) == 0
    assert marker.exists()


EXITING = textwrap.dedent('''
    import sys

    import torch
    from vaebench import register_dataset, register_metric, register_variant
    from vaebench.data.digits import Digits
    from vaebench.metrics import MetricValue
    from vaebench.variants.vae import VAE


    @register_variant("exiting_vae")
    class ExitingVAE(VAE):
        def loss(self, x, step):
            if step >= 2:
                sys.exit(0)
            return super().loss(x, step)


    @register_metric("exiting_metric", family="information", description="exits",
                     values=[MetricValue("exiting_metric", higher_is_better=True)])
    def _exiting(ctx):
        sys.exit(0)


    @register_dataset("exiting_digits")
    def exiting_digits():
        sys.exit(0)
''')


def _suite(tmp_path: Path, *, dataset: str = "digits", variant: str = "vae", metrics: str = '"kl"') -> Path:
    (tmp_path / "exiting_plugin.py").write_text(EXITING)
    return plugin_suite(tmp_path / "exits.toml", ["exiting_plugin.py"], name="exits", dataset=dataset, variant=variant,
                        metrics=metrics)


def test_a_plugin_that_exits_on_import_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "exit_on_import.py").write_text("import sys\nsys.exit(0)\n")
    path = plugin_suite(tmp_path / "suite.toml", ["exit_on_import.py"], name="exits")
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    line = one_error_line(capsys)
    assert "plugin 'exit_on_import.py' does not import: it called sys.exit(0)" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["variant", "metric"])
def test_user_code_exiting_during_a_run_fails_that_run_in_one_line(tmp_path, capsys, where):
    kwargs = {"variant": "exiting_vae"} if where == "variant" else {"metrics": '"kl", "exiting_metric"'}
    path = _suite(tmp_path, **kwargs)
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 1  # failed runs, not a silent success
    with ResultsStore(out, create=False) as store:
        run = store.runs().iloc[0]
    assert run["status"] == "failed"
    # the same plugin source is one module per process, whichever test's copy was imported first
    assert run["error"].startswith("the run failed in /") and "\n" not in run["error"]
    assert run["error"].endswith("exiting_plugin.py: it called sys.exit(0)")


def test_a_plugin_dataset_that_exits_when_built_is_one_line(tmp_path, capsys):
    path = _suite(tmp_path, dataset="exiting_digits")
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    line = one_error_line(capsys)
    assert "key 'datasets[0]'" in line and "building dataset 'exiting_digits' failed in" in line
    assert "sys.exit(0)" in line


def test_an_external_factory_that_exits_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "exiting_factory.py").write_text("import sys\n\ndef make():\n    sys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["evaluate", "exiting_factory:make", "--dataset", "digits", "--out", str(tmp_path / "run")]) == 2
    line = one_error_line(capsys)
    assert "'exiting_factory:make' does not give a model" in line and "exiting_factory" in line
    assert "sys.exit(0)" in line
    assert not (tmp_path / "run").exists()


def test_a_store_whose_json_is_nested_too_deeply_is_one_line(crafted_store, capsys):
    import sqlite3

    out, _, _ = crafted_store
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("UPDATE runs SET environment = ?", ("[" * 100_000 + "]" * 100_000,))
    assert main(["results", str(out)]) == 2
    assert "the environment column is not a JSON object (the store was edited)" in one_error_line(capsys)


def test_terminal_escapes_in_a_store_are_printed_escaped(crafted_store, capsys):
    import sqlite3

    out, _, _ = crafted_store
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("UPDATE runs SET setting = ?", ("vae\x1b]0;owned\x07\x1b[2J",))
    for command in (["results", str(out)], ["prune", str(out), "--not-in", "no_such_suite.toml"]):
        main(command)
        captured = capsys.readouterr()
        assert "\x1b" not in captured.out + captured.err and "\x07" not in captured.out + captured.err
    main(["results", str(out)])
    assert "vae\\x1b]0;owned\\x07\\x1b[2J" in capsys.readouterr().out


def test_a_plugin_that_os_exits_in_a_pool_worker_fails_its_runs_not_the_driver(tmp_path, capsys):
    (tmp_path / "hard_exit_plugin.py").write_text(textwrap.dedent('''
        import os
        from vaebench import register_variant
        from vaebench.variants.vae import VAE


        @register_variant("hard_exit_vae")
        class HardExitVAE(VAE):
            def loss(self, x, step):
                if step >= 2:
                    os._exit(0)  # cannot be caught: the worker process is gone
                return super().loss(x, step)
    '''))
    path = plugin_suite(tmp_path / "suite.toml", ["hard_exit_plugin.py"], name="exits", variant="hard_exit_vae")
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--jobs", "2", "--quiet"]) == 1
    assert "Traceback" not in capsys.readouterr().err
    with ResultsStore(out, create=False) as store:
        run = store.runs().iloc[0]
    assert run["status"] == "failed" and run["error"].startswith("the worker process died before returning")
