"""Faults and hostile input: every command is right or refuses in one line (exit 2), and the
store afterwards holds nothing lost, duplicated or half-written."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import ONE_VAE, one_error_line, tiny_suite_text
from vaebench.bench.executors import InProcessExecutor
from vaebench.bench.runner import LOCK_NAME, run_directory_lock, run_suite
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import load_suite
from vaebench.bench.train import checkpoint_path
from vaebench.cli import main


@pytest.fixture
def done_run(write_suite, tmp_path) -> tuple[Path, Path]:
    """(suite file, run directory) of one finished 10-step run."""
    suite = write_suite(steps=10, checkpoint_every=5, variants=ONE_VAE)
    out = tmp_path / "run"
    run_suite(load_suite(suite), out, InProcessExecutor(), threads=1)
    return suite, out


# ---------------------------------------------------------------- baselines


def test_baseline_never_overwrites_a_file_that_is_not_a_baseline(done_run, tmp_path, capsys):
    suite, out = done_run
    store_copy = tmp_path / "precious.sqlite"
    store_copy.write_bytes((out / "results.sqlite").read_bytes())
    for victim in (store_copy, suite):
        before = victim.read_bytes()
        assert main(["baseline", str(out), "--out", str(victim)]) == 2
        assert "is not a vaebench baseline; refusing to overwrite it" in one_error_line(capsys, last=True)
        assert victim.read_bytes() == before
    good = tmp_path / "b.json"
    assert main(["baseline", str(out), "--out", str(good)]) == 0
    assert main(["baseline", str(out), "--out", str(good)]) == 0  # a baseline may be rewritten
    assert json.loads(good.read_text())["vaebench_baseline"] == 1
    assert not list(tmp_path.glob(".*.tmp"))
    assert main(["baseline", str(out), "--out", str(tmp_path)]) == 2
    assert "is a directory" in one_error_line(capsys, last=True)


@pytest.mark.parametrize(
    "text, what",
    [('{"vaebench_baseline": 1, "suite": "tiny", "runs": {"a": {"metrics": {"kl": ' + "9" * 400 + "}}}}",
      "must be a number or null"),
     ("[" * 100_000 + "]" * 100_000, "nested too deeply")],
)
def test_hostile_baseline_files_are_one_line(done_run, tmp_path, capsys, text, what):
    _, out = done_run
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    assert main(["check", str(out), "--baseline", str(bad)]) == 2
    assert what in one_error_line(capsys, last=True)


# ---------------------------------------------------------------- the store


@pytest.mark.parametrize("damage", ["empty", "random", "truncated", "other_schema", "bad_json"])
def test_a_damaged_store_is_one_line_for_every_reading_command(done_run, capsys, damage):
    _, out = done_run
    db = out / "results.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if damage == "empty":
        db.write_bytes(b"")
    elif damage == "random":
        db.write_bytes(os.urandom(5000))
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[:3000])
    elif damage == "other_schema":
        db.unlink()
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE runs (id INTEGER)")
    else:
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE runs SET spec = '{not json'")
    before = db.read_bytes()
    for command in (["results", str(out)], ["report", str(out)], ["check", str(out), "--baseline", str(db)]):
        assert main(command) == 2, command
        one_error_line(capsys, last=True)
    assert db.read_bytes() == before  # reading never writes, never "repairs" a file into a database


def test_a_read_only_run_directory_can_be_read(done_run, capsys):
    _, out = done_run
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.chmod(out, 0o555)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root): read-only cannot be simulated")
        assert main(["results", str(out)]) == 0
        assert "vae" in capsys.readouterr().out
    finally:
        os.chmod(out, 0o755)


def test_reading_a_store_uri_opened_read_only_cannot_write(done_run):
    _, out = done_run
    with ResultsStore(out, create=False) as store:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store._conn.execute("DELETE FROM runs")


# ---------------------------------------------------------------- concurrent drivers, kills, leftovers


def test_a_second_driver_on_the_same_directory_exits_2_naming_the_holder(write_suite, tmp_path, capsys):
    suite = write_suite(steps=5, variants=ONE_VAE)
    out = tmp_path / "run"
    with run_directory_lock(out):
        assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 2
        line = one_error_line(capsys, last=True)
        assert f"pid {os.getpid()}" in line and "another vaebench run" in line
    assert not (out / "results.sqlite").exists()  # the refused driver wrote nothing
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0  # the lock went with its holder
    assert (out / LOCK_NAME).exists()


def test_leftover_temporary_files_are_removed_at_start(write_suite, tmp_path):
    suite = write_suite(steps=5, variants=ONE_VAE)
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    leftover = out / "checkpoints" / ".abc.pt.host.123.tmp"
    leftover.write_bytes(b"half a checkpoint")
    run_suite(load_suite(suite), out, InProcessExecutor(), threads=1)
    assert not leftover.exists() and not list(out.rglob("*.tmp"))


def test_killing_the_driver_of_a_process_pool_leaves_no_worker(write_suite, tmp_path):
    suite = write_suite(steps=100_000, checkpoint_every=50_000, seeds="[0, 1]", variants=ONE_VAE)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vaebench.cli", "run", str(suite), "--out", str(out), "--jobs", "2", "--quiet"]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children() -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(driver.pid)], capture_output=True, text=True).stdout.split()
        return [int(p) for p in found]

    deadline = time.time() + 120
    while len(children()) < 2 and time.time() < deadline:
        time.sleep(0.2)
    workers = children()
    assert len(workers) >= 2, "the pool did not start"
    time.sleep(3)  # the workers are training
    driver.send_signal(signal.SIGKILL)
    driver.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # a zombie whose parent (init) has not reaped it yet is gone for our purpose
        stat = Path(f"/proc/{pid}/stat")
        return stat.exists() and stat.read_text().split()[2] != "Z"

    deadline = time.time() + 15
    while any(alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in workers)


# ---------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("content", ["garbage", "foreign", "crafted"])
def test_an_unusable_checkpoint_is_moved_aside_and_the_run_restarts(write_suite, tmp_path, content, caplog):
    suite = load_suite(write_suite(steps=10, checkpoint_every=5, variants=ONE_VAE))
    reference = tmp_path / "reference"
    run_suite(suite, reference, InProcessExecutor(), threads=1)
    out = tmp_path / "run"
    ckpt = checkpoint_path(out, suite.specs[0].run_id)
    ckpt.parent.mkdir(parents=True)
    if content == "garbage":
        ckpt.write_bytes(b"\x00" * 100)
    elif content == "foreign":
        torch.save({"model": {"w": torch.zeros(3)}, "optimizers": [], "step": 5, "curves": []}, ckpt)
    else:
        class Crafted:
            def __reduce__(self):
                return (print, ("executed",))

        torch.save({"x": Crafted()}, ckpt)
    with caplog.at_level("WARNING"):
        run_suite(suite, out, InProcessExecutor(), threads=1)
    assert "the run restarts from step 0" in caplog.text
    assert ckpt.with_name(ckpt.name + ".corrupt").exists()
    with ResultsStore(out, create=False) as store, ResultsStore(reference, create=False) as ref:
        runs = store.runs()
        assert list(runs["status"]) == ["done"] and runs["error"].isna().all()
        assert store.metrics()["value"].tolist() == ref.metrics()["value"].tolist()
    stored = sqlite3.connect(out / "results.sqlite").execute("SELECT group_concat(error) FROM runs").fetchone()[0]
    assert "weights_only=False" not in (stored or "")


# ---------------------------------------------------------------- suite files and the command line


@pytest.mark.parametrize(
    "edit, key",
    [("name = \"a\\u0000b\"", "name"), ('name = "' + "x" * 300 + '"', "name"), ('name = ".."', "name"),
     ('name = "."', "name"), ("latent_dim = 1000000000", "model.latent_dim"),
     ("batch_size = 10000000", "budget.batch_size"), ("split_seed = -1", "datasets[0]"),
     ("size = 32.0", "datasets[0]")],
)
def test_suites_that_used_to_trace_back(write_suite, tmp_path, capsys, edit, key):
    text = tiny_suite_text(variants=ONE_VAE)
    if edit.startswith("name"):
        text = text.replace('name = "tiny"', edit)
    elif edit.startswith("latent_dim"):
        text = text.replace("latent_dim = 4", edit)
    elif edit.startswith("batch_size"):
        text = text.replace("batch_size = 32", edit)
    else:
        new = "\nsize = 32\n" + edit + "\n" if edit.startswith("split") else "\n" + edit + "\n"
        text = text.replace("\nsize = 32\n", new)
    suite = write_suite(text)
    assert main(["run", str(suite), "--dry-run"]) == 2
    line = one_error_line(capsys, last=True)
    assert f"key '{key}" in line
    assert not list(tmp_path.glob("runs"))


def test_a_grid_of_a_million_runs_is_counted_and_refused(write_suite, capsys):
    grid = ", ".join(str(1.0 + i) for i in range(1000))
    variants = f'[[variants]]\nname = "beta_vae"\nbeta = [{grid}]\n'
    suite = write_suite(tiny_suite_text(seeds=str(list(range(1000))), variants=variants))
    started = time.perf_counter()
    assert main(["run", str(suite), "--dry-run"]) == 2
    line = one_error_line(capsys, last=True)
    assert "1,000,000 runs (1,000 seeds x 1 [model] settings x 1 datasets x 1,000 variant settings)" in line
    assert "more than max_runs = 10,000" in line
    assert time.perf_counter() - started < 30


def test_out_pointing_at_a_file_and_cuda_without_cuda(write_suite, tmp_path, capsys):
    suite = write_suite(steps=5, variants=ONE_VAE)
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    assert main(["run", str(suite), "--out", str(a_file), "--quiet"]) == 2
    assert "is a file" in one_error_line(capsys, last=True) and a_file.read_text() == "keep me"
    if not torch.cuda.is_available():
        assert main(["run", str(suite), "--device", "cuda", "--dry-run"]) == 2
        assert "CUDA is not available" in one_error_line(capsys, last=True)


def test_a_missing_inception_file_is_refused_at_load(write_suite, tmp_path, capsys):
    path = write_suite(variants=ONE_VAE)
    path.write_text(path.read_text() + f'\n[evaluation.params]\ninception_weights = "{tmp_path}/nowhere.pt"\n')
    assert main(["run", str(path), "--dry-run"]) == 2
    assert "key 'evaluation.params.inception_weights': no such file" in one_error_line(capsys, last=True)


# ---------------------------------------------------------------- pruning and suites in one directory


def test_prune_lists_first_then_forgets_and_suite_filters(write_suite, tmp_path, capsys):
    first = write_suite(steps=5, variants=ONE_VAE, filename="a.toml")
    out = tmp_path / "run"
    assert main(["run", str(first), "--out", str(out), "--quiet"]) == 0
    second = write_suite(steps=6, variants=ONE_VAE, filename="b.toml", name="other")
    assert main(["run", str(second), "--out", str(out), "--quiet"]) == 0
    renamed = write_suite(tiny_suite_text(steps=5, variants=ONE_VAE, name="renamed"), filename="c.toml")
    assert main(["run", str(renamed), "--out", str(out), "--quiet"]) == 0  # reuses a.toml's run
    capsys.readouterr()
    with ResultsStore(out, create=False) as store:
        assert len(store.runs()) == 2
        reused = load_suite(first).specs[0].run_id
        assert reused in store.suite_run_ids("renamed") and reused in store.suite_run_ids("tiny")
    assert main(["results", str(out), "--suite", str(second)]) == 0
    table = capsys.readouterr().out
    assert table.count("vae") == 1
    assert main(["baseline", str(out), "--out", str(tmp_path / "b.json"), "--suite", str(renamed)]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["suite"] == "renamed"
    assert main(["check", str(out), "--baseline", str(tmp_path / "b.json"), "--suite", str(renamed)]) == 0
    capsys.readouterr()
    assert main(["prune", str(out), "--not-in", str(first)]) == 0
    listing = capsys.readouterr().out
    assert "1 run(s) would be forgotten" in listing
    with ResultsStore(out, create=False) as store:
        assert len(store.runs()) == 2  # listed, not deleted
    assert main(["prune", str(out), "--not-in", str(first), "--yes"]) == 0
    with ResultsStore(out, create=False) as store:
        assert list(store.runs()["run_id"]) == [reused] and set(store.metrics()["run_id"]) == {reused}


def test_run_ids_beginning_with_a_letter_show_in_the_progress_bar():
    from rich.text import Text

    from vaebench.bench.progress import RichProgress

    progress = RichProgress()
    progress.task = progress.progress.add_task("steps", total=10, info="")
    progress.total_runs, progress.done = 1, 0
    progress.step("abb3c695deadbeef", 3)
    info = progress.progress.tasks[0].fields["info"]
    assert "[abb3c695 step 3]" in Text.from_markup(info).plain  # what the bar's markup column shows


def test_a_bad_ray_address_leaves_no_store(write_suite, tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ADDRESS", "")
    suite = write_suite(steps=5, variants=ONE_VAE)
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--executor", "ray", "--address", "127.0.0.1:1", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "runs to do" not in captured.err and not (out / "results.sqlite").exists()


def test_a_full_disk_while_storing_stops_the_sweep_in_one_line(write_suite, tmp_path, capsys, monkeypatch):
    suite = write_suite(steps=5, seeds="[0, 1]", variants=ONE_VAE)
    out = tmp_path / "run"
    real_write = ResultsStore.write_result
    calls = []

    def write_then_fill_the_disk(self, result, **kwargs):
        calls.append(result.run_id)
        if len(calls) > 1:
            raise sqlite3.OperationalError("database or disk is full")
        real_write(self, result, **kwargs)

    monkeypatch.setattr(ResultsStore, "write_result", write_then_fill_the_disk)
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 2
    assert "database or disk is full" in one_error_line(capsys, last=True)
    monkeypatch.setattr(ResultsStore, "write_result", real_write)
    with ResultsStore(out, create=False) as store:
        assert list(store.runs()["run_id"]) == calls[:1]  # the first result kept whole, nothing half-written
    assert not list(out.rglob("*.tmp"))
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0  # and the sweep resumes
    with ResultsStore(out, create=False) as store:
        assert len(store.runs()) == 2 and store.runs()["run_id"].is_unique


def test_a_full_disk_while_writing_a_report_is_one_line(done_run, tmp_path, capsys, monkeypatch):
    import errno

    _, out = done_run

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", no_space)
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 2
    assert "No space left on device" in one_error_line(capsys, last=True)


def test_a_run_diverging_during_dry_run_calibration_is_listed_not_a_traceback(write_suite, capsys, monkeypatch):
    from vaebench.bench import cost
    from vaebench.bench.optim import Diverged

    def diverge(phases, optimizers, x, step):
        raise Diverged(step, "model/loss")

    monkeypatch.setattr(cost, "optimisation_step", diverge)
    assert main(["run", str(write_suite(steps=5, variants=ONE_VAE)), "--dry-run"]) == 0
    assert "diverged in calibration" in capsys.readouterr().out
