"""`vaebench run SUITE --dry-run`: the runs, the total gradient steps and a time estimate; nothing is run."""

from __future__ import annotations

import re

import pytest

from helpers import REPO
from vaebench.bench import cost
from vaebench.bench.suite import load_suite
from vaebench.cli import main

SMOKE = REPO / "suites" / "smoke.toml"


def _dry_run(tmp_path, capsys) -> list[str]:
    out = tmp_path / "out"
    assert main(["run", str(SMOKE), "--dry-run", "--out", str(out)]) == 0
    assert not out.exists()  # a dry run trains nothing and writes no store
    return capsys.readouterr().out.splitlines()


def test_dry_run_of_smoke_lists_runs_steps_and_an_estimate(tmp_path, capsys):
    lines = _dry_run(tmp_path, capsys)
    specs = load_suite(SMOKE).specs
    assert lines[0] == "suite 'smoke': 2 runs"
    rows = lines[1:-1]
    assert len(rows) == 2
    for spec, row in zip(specs, rows):
        assert row.split()[0] == spec.run_id and "300 steps" in row and re.search(r"~\d+(m\d\ds|h\d\dm)$", row)
    total = lines[-1]
    assert total.startswith("total: 600 gradient steps over 2 variants;")
    assert re.search(r"estimated training time on this machine \(cpu, one run at a time\): \d+(m\d\ds|h\d\dm) ", total)


def test_dry_run_estimate_is_steps_times_the_calibrated_step_time(tmp_path, capsys, monkeypatch):
    calibrated = []

    def fake_calibrate(spec, device="cpu"):
        calibrated.append(spec.variant)
        return {"vae": 0.5, "beta_vae": 0.25}[spec.variant]

    monkeypatch.setattr(cost, "calibrate", fake_calibrate)
    lines = _dry_run(tmp_path, capsys)
    assert sorted(calibrated) == ["beta_vae", "vae"]  # one calibration per distinct model
    assert lines[1].endswith("~2m30s") and lines[2].endswith("~1m15s")  # 300 steps x 0.5 s, x 0.25 s
    assert "one run at a time): 3m45s (= 0.1 h;" in lines[-1]


@pytest.mark.parametrize("seconds, text",
                         [(59.9, "0m59s"), (61, "1m01s"), (3600, "1h00m"), (5 * 3600 + 7 * 60 + 5, "5h07m")])
def test_duration_format(seconds, text):
    assert cost._duration(seconds) == text
