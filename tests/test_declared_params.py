"""One way to declare a parameter (issue 21): datasets declare `Param`s as variants and metrics do; a
metric's parameters belong to it; a hyperparameter follows from the dataset through one hook; a
deterministic encoder is one declared property; a suite loads as parse, expand, check; and a model
trained elsewhere has its own spec type, its metrics chosen as a suite's are. Nothing here moves a
run id: the ids pinned below are those the code before these changes gave."""

from __future__ import annotations

import inspect
import json
import sqlite3
from types import SimpleNamespace

import pytest
from torch import nn

from vaebench import data
from vaebench.bench.evaluate import Scores
from vaebench.bench.setting_checks import metrics_for
from vaebench.bench.spec import ExternalSpec, RunResult, RunSpec, freeze, spec_from_dict
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import build_datasets, check_runs, expand_runs, parse_suite, suite_from_table
from vaebench.data.registry import DATASETS, register_dataset
from vaebench.errors import ConfigError, DataError, UnknownNameError
from vaebench.metrics import METRICS
from vaebench.metrics.likelihood import IWAE_PARAMS
from vaebench.metrics.registry import MetricInfo, MetricValue, check_metric_params, register_metric
from vaebench.params import Param
from vaebench.variants import VARIANTS, build_variant
from vaebench.variants.base import point_mass_posterior

pytestmark = pytest.mark.usefixtures("one_thread")

PINNED = {  # a small suite, and the run ids the code before issue 21 gave its runs
    "name": "pinned", "seeds": [0],
    "budget": {"steps": 10, "batch_size": 16},
    "model": {"architecture": "mlp", "latent_dim": 4},
    "datasets": [{"name": "dsprites", "size": 32, "test_size": 200}, {"name": "digits", "test_size": 300}],
    "variants": [{"name": "beta_tcvae"}, {"name": "mi_vae", "dataset_size": 5000}, {"name": "aae"}],
    "evaluation": {"metrics": ["kl"], "params": {"mi_xz_images": 100}},
}
PINNED_IDS = [
    ("beta_tcvae", "dsprites", 737_080, "f2e127600037b62a"), ("mi_vae", "dsprites", 5000, "54129e0dc3a95725"),
    ("aae", "dsprites", None, "c16fa982909bcfee"), ("beta_tcvae", "digits", 1497, "e46ebe327bb0481f"),
    ("mi_vae", "digits", 5000, "5d601586970ec319"), ("aae", "digits", None, "d3036156d6562ce1"),
]


# ---------------------------------------------------------------- datasets declare their parameters


def test_every_built_in_dataset_declares_its_factorys_parameters_and_defaults():
    """The declaration is what a suite may set and what `data.get` fills in; the constructors keep their
    defaults for direct calls, and the two must agree."""
    for name, entry in DATASETS.items():
        if not getattr(entry.factory, "func", entry.factory).__module__.startswith("vaebench."):
            continue  # a plugin's, registered by another test
        signature = inspect.signature(entry.factory)
        fixed = getattr(entry.factory, "keywords", {})
        settable = [p for p in signature.parameters.values() if p.name not in fixed]
        assert [p.key for p in entry.params] == [p.name for p in settable], name
        assert [p.default for p in entry.params] == [p.default for p in settable], name
        assert data.dataset_parameters(name) == [p.key for p in entry.params]


def test_a_dataset_parameter_is_checked_against_its_declaration_naming_the_key():
    base = {"name": "t", "variants": [{"name": "vae"}], "evaluation": {"metrics": ["kl"]}}
    with pytest.raises(ConfigError, match=r"key 'datasets\[0\]\.size': must be an integer, got 32\.0"):
        suite_from_table({**base, "datasets": [{"name": "dsprites", "size": 32.0}]})
    with pytest.raises(ConfigError, match=r"key 'datasets\[0\]\.path': must be a string, got 3"):
        suite_from_table({**base, "datasets": [{"name": "mnist", "path": 3}]})
    with pytest.raises(ConfigError, match=r"key 'datasets\[0\]\.colour': unknown parameter for dataset 'dsprites'"):
        suite_from_table({**base, "datasets": [{"name": "dsprites", "colour": True}]})


def test_data_get_builds_a_dataset_with_its_declared_defaults(monkeypatch):
    """A factory is called with every declared parameter, given or declared default: the declaration,
    not the factory's signature, is the one source of defaults."""
    monkeypatch.setattr(DATASETS, "_items", dict(DATASETS._items))
    calls = []

    def squares(count: int = 1, test_size: int = 2):
        calls.append((count, test_size))
        return data.get("digits")

    register_dataset("declared_squares", params=[Param("count", 240, minimum=1), Param("test_size", 40)])(squares)
    data.get("declared_squares", test_size=7)
    assert calls == [(240, 7)]
    with pytest.raises(ConfigError, match="key 'size': unknown parameter for dataset 'declared_squares'; "
                                          "allowed: count, test_size"):
        data.get("declared_squares", size=3)
    register_dataset("undeclared_squares")(squares)  # its factory's signature declares nothing
    with pytest.raises(ConfigError, match=r"key 'count': unknown parameter for dataset 'undeclared_squares'; "
                                          r"allowed: none \(a dataset declares its parameters"):
        data.get("undeclared_squares", count=3)


def test_a_dataset_declaring_a_key_twice_or_declaring_a_fixed_key_is_refused_at_registration():
    with pytest.raises(ValueError, match="'size'"):
        register_dataset("twice", params=[Param("size", 1), Param("size", 2)])
    with pytest.raises(ValueError, match="'mode'"):
        register_dataset("fixed_and_declared", params=[Param("mode", "a")], mode="b")
    assert "twice" not in DATASETS and "fixed_and_declared" not in DATASETS


# ---------------------------------------------------------------- a metric's parameters belong to it


def test_a_metrics_function_sees_its_own_parameters_only_given_or_default():
    seen = {}

    def function(ctx):
        seen.update(ctx.params)
        ctx.notes["v"] = "shared"
        return {"v": 1.0}

    info = MetricInfo("own", "information", "test", (MetricValue("v", True),), function,
                      params=(Param("own_a", 1), Param("own_b", "x")))
    ctx = SimpleNamespace(params={"own_a": 5, "iwae_k": 3}, notes={})
    assert info.compute(ctx) == {"v": 1.0}
    assert seen == {"own_a": 5, "own_b": "x"}  # not iwae_k: another metric's
    assert ctx.params == {"own_a": 5, "iwae_k": 3} and ctx.notes == {"v": "shared"}
    assert info.params_of({}) == {"own_a": 1, "own_b": "x"}


def test_metrics_share_a_key_by_declaring_one_param_and_a_different_declaration_is_refused(monkeypatch):
    monkeypatch.setattr(METRICS, "_items", dict(METRICS._items))
    iwae_k = next(p for p in IWAE_PARAMS if p.key == "iwae_k")
    assert iwae_k in METRICS.get("iwae_nll").params and iwae_k in METRICS.get("iwae_curve").params

    def compute(ctx):
        return {"sharing_k": float(ctx.params["iwae_k"])}

    register_metric("sharing", family="likelihood", description="t", values=[MetricValue("sharing_k", True)],
                    params=[iwae_k])(compute)  # the same declaration: one key, two owners
    assert "sharing" in METRICS
    with pytest.raises(ValueError, match="metric 'redeclaring': the parameter 'iwae_k' is declared by metric "
                                         "'iwae_(nll|curve)' as an integer >= 1 and <= 1e\\+06 \\(default 1000\\)"):
        register_metric("redeclaring", family="likelihood", description="t", values=[MetricValue("redeclared", True)],
                        params=[Param("iwae_k", 100, minimum=1)])(compute)
    assert "redeclaring" not in METRICS


def test_metric_parameters_are_checked_once_and_given_back_as_given():
    """`check_metric_params` (the suite's check) returns the keys the suite set, converted; the defaults
    are each metric's to fill (`MetricInfo.params_of`), never a second check."""
    assert check_metric_params({"iwae_k": 10, "ais_rd_beta_max": 2}) == {"iwae_k": 10, "ais_rd_beta_max": 2.0}
    with pytest.raises(ConfigError, match=r"key 'evaluation\.params\.iwae_k': must be an integer"):
        check_metric_params({"iwae_k": "many"})
    with pytest.raises(ConfigError, match=r"key 'evaluation\.params\.no_such_key': unknown key; allowed: "):
        check_metric_params({"no_such_key": 1})
    assert METRICS.get("iwae_nll").params_of({"iwae_k": 10, "mig_n_bins": 3}) == {
        "iwae_k": 10, "iwae_images": 100, "iwae_chunk": 1024, "iwae_float64": False}


# ---------------------------------------------------------------- a hyperparameter completed from the dataset


@pytest.mark.parametrize("variant", ["beta_tcvae", "mi_vae"])
def test_dataset_size_has_no_hard_coded_default_and_follows_the_training_split(variant):
    hparams = VARIANTS.get(variant).Hyperparameters
    (declared,) = [p for p in hparams.params() if p.key == "dataset_size"]
    assert declared.default is None and declared.from_dataset is not None
    digits = data.get("digits", test_size=300)
    assert hparams.for_dataset({}, digits).dataset_size == len(digits.train_indices) == 1497
    assert hparams.for_dataset({"dataset_size": 5000}, digits).dataset_size == 5000  # a written value stays
    assert hparams.from_dict({}).dataset_size is None  # without a dataset, nothing is invented


def test_the_run_ids_of_dataset_completed_hyperparameters_are_unchanged():
    suite = suite_from_table(PINNED)
    got = [(s.variant, s.dataset, dict(s.hyperparameters).get("dataset_size"), s.run_id) for s in suite.specs]
    assert got == PINNED_IDS


# ---------------------------------------------------------------- a deterministic encoder, declared


@pytest.mark.parametrize("variant, hparams, deterministic", [
    ("aae", {}, True), ("wae", {}, True), ("mmd_vae", {}, True), ("aae", {"encoder": "gaussian"}, False),
    ("wae", {"encoder": "gaussian"}, False), ("vae", {}, False), ("info_vae", {}, False), ("beta_tcvae", {}, False),
])
def test_a_deterministic_encoder_is_declared_by_the_variants_hyperparameters(variant, hparams, deterministic):
    assert VARIANTS.get(variant).Hyperparameters.from_dict(hparams).deterministic_encoder is deterministic
    model = build_variant(variant, hparams, image_shape=(1, 8, 8), latent_dim=2, architecture="mlp",
                          likelihood="bernoulli")
    assert model.deterministic_encoder is deterministic and point_mass_posterior(model) is deterministic


def test_a_model_that_declares_nothing_has_a_density():
    assert point_mass_posterior(nn.Linear(2, 2)) is False


# ---------------------------------------------------------------- suite loading: parse, expand, check


def _parse(raw):
    return parse_suite(raw, file="s.toml", default_name="s", allowed_plugins=None)


def test_parsing_builds_no_dataset():
    raw = {**PINNED, "datasets": [{"name": "mnist", "path": "/no/such/directory"}]}
    parsed = _parse(raw)  # every table checked; the missing files are not read yet
    assert [p.name for p in parsed.variants] == ["beta_tcvae", "mi_vae", "aae"] and parsed.seeds == (0,)
    with pytest.raises(DataError, match="/no/such/directory"):
        build_datasets(parsed.datasets, "s.toml")


def test_expansion_is_dataset_by_model_by_variant_by_seed_in_the_suites_order():
    raw = {**PINNED, "seeds": [3, 1], "model": {"architecture": "mlp", "latent_dim": [2, 4]}}
    parsed = _parse(raw)
    runs = expand_runs(parsed, build_datasets(parsed.datasets, "s.toml"), "s.toml")
    got = [(r.spec.dataset, r.spec.latent_dim, r.spec.variant, r.spec.seed) for r in runs]
    assert got == [(d, z, v, s) for d in ("dsprites", "digits") for z in (2, 4)
                   for v in ("beta_tcvae", "mi_vae", "aae") for s in (3, 1)]
    assert [r.spec for r in runs] == list(suite_from_table(raw).specs)


def test_each_setting_is_checked_once_whatever_its_seeds(monkeypatch):
    from vaebench.bench import suite as suite_module

    parsed = _parse({**PINNED, "seeds": [0, 1, 2]})
    runs = expand_runs(parsed, build_datasets(parsed.datasets, "s.toml"), "s.toml")
    checked = []
    monkeypatch.setattr(suite_module, "check_run", lambda run, plan, file: checked.append(run.spec.seed))
    check_runs(runs, parsed.plan, "s.toml")
    assert len(runs) == 18 and checked == [0] * 6


def test_a_check_names_the_file_and_the_key():
    raw = {**PINNED, "budget": {"steps": 10, "batch_size": 1},
           "variants": [{"name": "beta_tcvae", "estimator": "mss"}]}
    with pytest.raises(ConfigError, match=r"^s\.toml: key 'budget\.batch_size': variant 'beta_tcvae' .* needs "
                                          r"batches of at least 2"):
        suite_from_table(raw, file="s.toml")


# ---------------------------------------------------------------- a model trained elsewhere: its own spec type

# what `vaebench evaluate ext_models:enc_only --dataset digits --param test_size=300 --name enc` stored before
# ExternalSpec existed (the model's identity: its module's name, version and source hash)
LEGACY_JSON = (
    '{"architecture":"external","batch_size":0,"checkpoint_every":1,"dataset":"digits","dataset_params":'
    '{"test_size":300},"hyperparameters":{"label":"enc","model":"ext_models:enc_only@unversioned sha256:'
    '0e3d671f55bfe0dc90eb62077263d00ca82e4de15aea1f42d769b0b97c323a21"},"latent_dim":2,"learning_rate":0.0,'
    '"likelihood":"bernoulli","log_every":1,"metric_params":{},"metrics":["active_units","cov_offdiag",'
    '"elbo_decomposition","kl","mi_xz","prior_mmd","unsupervised"],"optimizer":"none","seed":0,"steps":0,'
    '"variant":"external"}'
)
LEGACY_ID = "06fa50a4c760acf2"


def _legacy_spec() -> ExternalSpec:
    return ExternalSpec(
        model="ext_models:enc_only@unversioned sha256:0e3d671f55bfe0dc90eb62077263d00ca82e4de15aea1f42d769b0b97c323a21",
        label="enc", dataset="digits", dataset_params=(("test_size", 300),), latent_dim=2, likelihood="bernoulli",
        seed=0, metrics=("active_units", "cov_offdiag", "elbo_decomposition", "kl", "mi_xz", "prior_mmd",
                         "unsupervised"),
    )


def test_an_external_spec_has_no_training_fields_and_keeps_its_stored_form_and_run_id():
    spec = _legacy_spec()
    assert not hasattr(spec, "steps") and not hasattr(spec, "optimizer") and spec.variant == "external"
    assert spec.canonical_json() == LEGACY_JSON and spec.run_id == LEGACY_ID
    assert spec_from_dict(json.loads(LEGACY_JSON)) == spec
    assert isinstance(spec_from_dict(suite_from_table(PINNED).specs[0].to_dict()), RunSpec)


def test_a_store_holding_an_external_row_written_before_reads(tmp_path, capsys):
    """The row as main's code wrote it: a RunSpec of variant "external" with the training placeholders."""
    from vaebench.api import load_model, load_results
    from vaebench.cli import main

    legacy = RunSpec(
        variant="external", hyperparameters=freeze({"model": _legacy_spec().model, "label": "enc"}),
        dataset="digits", dataset_params=(("test_size", 300),), architecture="external", latent_dim=2,
        likelihood="bernoulli", steps=0, batch_size=0, optimizer="none", learning_rate=0.0, checkpoint_every=1,
        log_every=1, seed=0, metrics=_legacy_spec().metrics,
    )
    assert legacy.canonical_json() == LEGACY_JSON
    with ResultsStore(tmp_path) as store:
        store.write_result(RunResult(spec=legacy, status="done", metrics={"kl": 0.25, "active_units": 2.0}),
                           suite="external", setting="external(enc)")
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        assert db.execute("SELECT run_id, spec FROM runs").fetchall() == [(LEGACY_ID, LEGACY_JSON)]
    frame = load_results(tmp_path)
    assert frame["variant"].tolist() == ["external"] and frame["kl"].tolist() == [0.25]
    with ResultsStore(tmp_path, create=False) as store:
        stored = store.runs()["spec"][0]  # the store parses it (`spec_from_dict`)
    assert stored == _legacy_spec() and stored.run_id == LEGACY_ID
    assert main(["results", str(tmp_path), "--metrics", "kl"]) == 0
    assert "external(enc)" in capsys.readouterr().out
    with pytest.raises(DataError, match=f"run {LEGACY_ID} scored a model trained elsewhere"):
        load_model(tmp_path, LEGACY_ID)


FACTORY = """
from torch import nn


class Model(nn.Module):
    \"\"\"An encoder and a decoder for 32 px images, 3 latents.\"\"\"

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 6))
        self.decoder = nn.Sequential(nn.Linear(3, 32 * 32), nn.Unflatten(1, (1, 32, 32)))

    def encode(self, x):
        return self.encoder(x).chunk(2, dim=-1)

    def decode(self, z):
        return self.decoder(z)
"""


def test_evaluate_without_metrics_gets_a_suites_default(tmp_path, monkeypatch):
    """One choice of metrics (`metrics_for`): `vaebench evaluate` without --metrics scores what a suite's run
    of the dataset scores, opt-in metrics (downstream_logreg, about 140 s) left out."""
    from vaebench.bench import external

    (tmp_path / "factory_models.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    scored = []
    monkeypatch.setattr(external, "evaluate", lambda model, images, spec, **kw: scored.append(spec) or Scores({}))
    external.evaluate_external("factory_models:Model", "dsprites", {"size": 32, "test_size": 200}, tmp_path / "out")
    suite = suite_from_table({**PINNED, "datasets": [{"name": "dsprites", "size": 32, "test_size": 200}],
                              "evaluation": {}})
    (spec,) = scored
    assert isinstance(spec, ExternalSpec)
    assert spec.metrics == suite.specs[0].metrics
    assert "downstream_logreg" not in spec.metrics and "mig" in spec.metrics


def test_an_encoder_only_model_skips_what_needs_a_decoder():
    dataset = data.get("dsprites", size=32, test_size=200)
    full, none_skipped = metrics_for(None, dataset, None)
    chosen, skipped = metrics_for(None, dataset, None, decoder=False)
    assert none_skipped == {} and set(chosen) | set(skipped) == set(full)
    assert set(skipped) == {m for m in full if METRICS.get(m).needs_decoder} and "recon_bce" in skipped


def test_external_is_a_reserved_variant_name():
    from vaebench.variants.registry import register_variant

    with pytest.raises(ValueError, match="variant name 'external' is reserved"):
        register_variant("external")
    with pytest.raises(UnknownNameError, match="unknown variant 'external'"):
        suite_from_table({**PINNED, "variants": [{"name": "external"}]})
