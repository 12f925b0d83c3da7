"""Claims verdicts on stores whose numbers are known: holds, fails, inconclusive, near a target."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from test_reports_fixtures import setting_label, spec_for
from vaebench.bench.spec import RunResult, RunStatus
from vaebench.bench.store import ResultsStore
from vaebench.cli import main
from vaebench.reports.claims import claims_table, difference_ci, seeds_needed
from vaebench.reports.comparison import Comparison
from vaebench.variants import VARIANTS

ANNEALED = {"gamma": 1000.0, "c_max": 5.0, "c_stop_steps": 50}


def _store(path, entries) -> None:
    """entries: (variant, hyperparameters, seeds, {value: (mean, sd)})."""
    rng = np.random.default_rng(0)
    with ResultsStore(path) as store:
        for variant, hp, seeds, values in entries:
            full = {**VARIANTS.get(variant).Hyperparameters().to_dict(), **hp}
            for seed in seeds:
                spec = spec_for(variant, full, seed)
                metrics = {k: float(rng.normal(m, s)) for k, (m, s) in values.items()}
                store.write_result(RunResult(spec=spec, status=RunStatus.DONE, metrics=metrics), suite="claims",
                                   setting=setting_label(spec) if hp else variant)


def test_verdicts_follow_the_evidence(tmp_path, capsys):
    seeds = range(6)
    _store(tmp_path, [
        ("vae", {}, seeds, {"tc": (1.0, 0.05), "cov_offdiag": (0.10, 0.01), "kl": (20.0, 1.0)}),
        ("beta_tcvae", {}, seeds, {"tc": (0.5, 0.05)}),                  # clearly lower: holds
        ("dip_vae", {}, seeds, {"cov_offdiag": (0.30, 0.01)}),           # clearly higher: fails
        ("beta_vae", {"beta": 4.0}, range(2), {"kl": (19.5, 1.0)}),      # two seeds: inconclusive
        ("annealed_vae", ANNEALED, seeds, {"kl": (5.2, 0.05)}),          # KL at C = 5 within 1 nat
    ])
    with ResultsStore(tmp_path, create=False) as store:
        table = claims_table(Comparison.build(store)).set_index("value")
    assert table.loc["tc", "verdict"] == "holds" and table.loc["tc", "effect"] < -0.4
    assert table.loc["cov_offdiag", "verdict"] == "fails"
    kl = table[table["setting"].str.startswith("beta_vae")].iloc[0]
    assert kl["verdict"] == "inconclusive" and kl["seeds_needed"] >= 4
    near = table[table["setting"].str.startswith("annealed")].iloc[0]
    assert near["verdict"] == "holds" and near["claim"] == "kl near 5 ± 1"
    # the p-values are one-sided Mann-Whitney, Holm-adjusted over the three comparisons
    assert table.loc["tc", "p"] == pytest.approx(1 / 924)  # all 6 below all 6: 1 / C(12, 6)
    assert table.loc["tc", "p_holm"] == pytest.approx(3 / 924)
    assert main(["claims", str(tmp_path)]) == 1  # a failed claim
    out = capsys.readouterr().out
    assert "4 claims: 2 holds, 1 fails, 1 inconclusive" in out


def test_a_claim_without_its_partner_is_not_tested(tmp_path, capsys):
    _store(tmp_path, [("beta_tcvae", {}, range(3), {"tc": (0.5, 0.05)})])
    assert main(["claims", str(tmp_path)]) == 0
    assert "no claim can be tested" in capsys.readouterr().out


def test_difference_ci_and_seeds_needed_by_hand():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 0.0, 0.0])
    low, high = difference_ci(a, np.array([0.0, 0.5]))
    assert low < 1.75 < high
    assert difference_ci(a, b) == pytest.approx((1.0, 3.0), abs=0.35)
    x, y = np.array([0.0, 1.0]), np.array([0.5, 1.5])  # effect 0.5, sd 0.707
    z = stats.norm.ppf(0.95) + stats.norm.ppf(0.8)
    assert seeds_needed(x, y, 0.05) == int(np.ceil(2 * (z * np.sqrt(0.5) / 0.5) ** 2))


def test_the_report_has_the_claims_section(tmp_path):
    _store(tmp_path, [("vae", {}, range(3), {"tc": (1.0, 0.05), "kl": (20.0, 1.0), "recon_bce": (80.0, 1.0)}),
                      ("beta_tcvae", {}, range(3), {"tc": (0.5, 0.05), "kl": (15.0, 1.0), "recon_bce": (85.0, 1.0)})])
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    html = (tmp_path / "report" / "report.html").read_text()
    assert 'id="claims"' in html and "tc lower than vae" in html
    assert "tc lower than vae" in (tmp_path / "report" / "claims.md").read_text()
