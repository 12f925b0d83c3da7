"""A dataset's `version` (dSprites' renderer) is part of its runs' identity and of its caches' keys:
results and caches of another renderer are never mixed with the current one's."""

from __future__ import annotations

import dataclasses

from test_reports_fixtures import fake_metrics, spec_for
from vaebench import data
from vaebench.bench.spec import RunResult, RunSpec
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import suite_from_table
from vaebench.data.dsprites import RENDERER_VERSION
from vaebench.reports.comparison import Comparison
from vaebench.reports.summary import results_frame


def _suite(dataset: dict) -> RunSpec:
    table = {"seeds": [0], "budget": {"steps": 10}, "model": {"architecture": "mlp", "latent_dim": 2},
             "datasets": [dataset], "variants": [{"name": "vae"}], "evaluation": {"metrics": ["kl"]}}
    return suite_from_table(table).specs[0]


def test_dsprites_runs_carry_the_renderer_version_and_other_datasets_none():
    for name in ("dsprites", "color_dsprites", "noisy_dsprites"):
        spec = _suite({"name": name, "size": 32})
        assert spec.dataset_version == RENDERER_VERSION
        assert spec.to_dict()["dataset_version"] == RENDERER_VERSION
    digits = _suite({"name": "digits"})
    assert digits.dataset_version == "" and "dataset_version" not in digits.to_dict()


def test_a_run_of_the_previous_renderer_is_another_run_and_another_setting():
    new = _suite({"name": "dsprites", "size": 32})
    written_before = {k: v for k, v in new.to_dict().items() if k != "dataset_version"}  # a store's spec JSON then
    old = RunSpec.from_dict(written_before)
    assert old.dataset_version == "" and old.run_id != new.run_id
    assert RunSpec.from_dict(new.to_dict()) == new


def test_an_old_and_a_new_dsprites_run_in_one_store_are_separate_rows(tmp_path):
    new = dataclasses.replace(spec_for("vae", {}, 0), dataset_version=RENDERER_VERSION)
    old = spec_for("vae", {}, 0)
    with ResultsStore(tmp_path) as store:
        for spec, offset in ((old, 0.0), (new, 3.0)):
            result = RunResult(spec=spec, status="done", metrics=fake_metrics(offset, 0))
            store.write_result(result, suite="s", setting="vae")
        comparison = results_frame(Comparison.build(store))
    assert len(comparison) == 2 and set(comparison["n"]) == {1}
    assert any(RENDERER_VERSION in label for label in comparison["setting"])


def test_caches_made_from_the_images_are_keyed_by_the_version():
    assert data.get("dsprites").describe()["version"] == RENDERER_VERSION
    assert "version" not in data.get("digits").describe()
