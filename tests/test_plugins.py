"""Users' plugins: a variant, a metric and a dataset of one's own, on every executor, in every output."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from helpers import LAB_PLUGIN, LAB_SUITE
from vaebench.bench.executors import InProcessExecutor, ProcessPoolRunExecutor
from vaebench.bench.runner import run_suite
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import load_suite
from vaebench.cli import main


def write_plugin(directory: Path, module: str = "lab_plugin") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{module}.py"
    path.write_text(LAB_PLUGIN)
    return path


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("plugins")
    write_plugin(directory)
    return directory


@pytest.fixture
def lab_suite(plugin_dir, tmp_path, monkeypatch) -> Path:
    monkeypatch.syspath_prepend(str(plugin_dir))  # spawned workers inherit sys.path
    path = tmp_path / "lab.toml"
    path.write_text(LAB_SUITE.format(name="lab", plugins='"lab_plugin"'))
    return path


def _metrics(run_dir: Path) -> pd.DataFrame:
    with ResultsStore(run_dir, create=False) as store:
        return store.metrics()[["run_id", "name", "value"]]


def test_a_plugin_runs_in_process_and_in_the_pool_with_the_same_numbers(lab_suite, tmp_path, capsys):
    suite = load_suite(lab_suite)
    assert suite.plugins == ("lab_plugin",) and len(suite.specs) == 3
    run_suite(suite, tmp_path / "one", InProcessExecutor(), threads=1)
    run_suite(suite, tmp_path / "two", ProcessPoolRunExecutor(2), threads=1)
    one, two = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    assert set(one["name"]) >= {"kl", "lab_code_norm"}
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    with ResultsStore(tmp_path / "one", create=False) as store:
        env = store.runs()["environment"].iloc[0]
    named = [{k: p[k] for k in ("name", "version")} for p in env["plugins"]]
    assert named == [{"name": "lab_plugin", "version": "1.2.3"}]
    assert env["plugins"][0]["source"].startswith("sha256:")

    assert main(["results", str(tmp_path / "one")]) == 0
    table = capsys.readouterr().out
    assert "lab_vae(weight=1.0)" in table and "lab_vae(weight=3.0)" in table and "lab_code_norm ↓" in table
    assert main(["baseline", str(tmp_path / "one"), "--out", str(tmp_path / "b.json")]) == 0
    baseline = json.loads((tmp_path / "b.json").read_text())
    assert {"lab_vae(weight=1.0)", "vae"} <= {r["setting"] for r in baseline["runs"].values()}
    assert all("lab_code_norm" in r["metrics"] for r in baseline["runs"].values())
    assert main(["report", str(tmp_path / "one")]) == 0
    assert "lab_vae" in (tmp_path / "one" / "report" / "report.html").read_text()
    main(["claims", str(tmp_path / "one")])  # one seed: inconclusive, but the plugin's claim is tested
    assert "lab_vae(weight=3.0)" in capsys.readouterr().out


def test_list_shows_a_plugins_variant(plugin_dir, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(plugin_dir))
    assert main(["list", "variants", "--plugins", "lab_plugin"]) == 0
    assert "lab_vae" in capsys.readouterr().out


def test_a_plugin_given_as_a_file_path_relative_to_the_suite(tmp_path):
    write_plugin(tmp_path / "lab", module="lab_file_plugin_source")
    (tmp_path / "lab" / "lab_file_plugin_source.py").write_text(LAB_PLUGIN.replace('"lab_', '"labf_'))
    path = tmp_path / "suite.toml"
    path.write_text(LAB_SUITE.format(name="f", plugins='"lab/lab_file_plugin_source.py"')
                    .replace('"lab_squares"', '"labf_squares"').replace('"lab_vae"', '"labf_vae"')
                    .replace('"lab_code_norm"', '"labf_code_norm"'))
    suite = load_suite(path)
    assert suite.plugins == (str((tmp_path / "lab" / "lab_file_plugin_source.py").resolve()),)
    assert {s.variant for s in suite.specs} == {"labf_vae", "vae"}


@pytest.mark.parametrize(
    "source, message",
    [("import no_such_module_anywhere\n", "does not import: ModuleNotFoundError: No module named"),
     ("raise RuntimeError('broken\\nsecond line')\n", "does not import: RuntimeError: broken"),
     ("from vaebench import register_variant\nfrom vaebench.variants.vae import VAE\n"
      "register_variant('vae')(type('Again', (VAE,), {}))\n", "variant 'vae' is registered twice")],
)
def test_bad_plugins_are_one_line(tmp_path, capsys, source, message):
    (tmp_path / "bad_plugin.py").write_text(source)
    path = tmp_path / "suite.toml"
    path.write_text(LAB_SUITE.format(name="bad", plugins='"bad_plugin.py"'))
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "key 'plugins'" in err[0]


def test_a_variant_that_breaks_the_contract_is_refused_at_load(plugin_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_dir))
    (tmp_path / "wrong_shapes.py").write_text(textwrap.dedent('''
        import torch
        from vaebench import register_variant
        from vaebench.variants.vae import VAE

        @register_variant("wrong_shapes_vae")
        class WrongShapes(VAE):
            def encode(self, x):
                return torch.zeros(len(x), 1), torch.zeros(len(x), 1)
    '''))
    path = tmp_path / "suite.toml"
    path.write_text(LAB_SUITE.format(name="w", plugins='"lab_plugin", "wrong_shapes.py"')
                    .replace('name = "vae"', 'name = "wrong_shapes_vae"'))
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "'wrong_shapes_vae' does not follow the variant contract" in err and "expected (2, 3)" in err


def test_an_installed_package_registers_through_the_entry_point_group(tmp_path, monkeypatch, capsys):
    from vaebench import plugins

    write_plugin(tmp_path, module="lab_ep_plugin")
    (tmp_path / "lab_ep_plugin.py").write_text(LAB_PLUGIN.replace('"lab_', '"labep_'))
    dist = tmp_path / "lab_ep-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-ep\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[vaebench.plugins]\nlab = lab_ep_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_ENTRY_POINTS_LOADED", [])
    assert main(["list", "variants"]) == 0
    assert "labep_vae" in capsys.readouterr().out
    assert {"name": "lab_ep_plugin", "version": "1.2.3"} in [
        {k: p[k] for k in ("name", "version")} for p in plugins.imported_plugins()]
