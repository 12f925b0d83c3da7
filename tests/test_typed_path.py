"""The shapes every layer lands on: declared parameters, run specs and labels, metric value
declarations, the results table, and the direction of imports."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from test_reports_fixtures import spec_for
from vaebench.bench.spec import RunResult, RunSpec, RunStatus, RunTask
from vaebench.bench.store import ResultsStore
from vaebench.bench.suite import load_suite
from vaebench.cli import main
from vaebench.errors import ConfigError
from vaebench.metrics import METRICS
from vaebench.metrics.registry import declaration_of, value_with_role
from vaebench.params import Param, check_params
from vaebench.variants import VARIANTS

PACKAGE = Path(__file__).resolve().parents[1] / "vaebench"


# ---------------------------------------------------------------- declared parameters


@pytest.mark.parametrize(
    "param, value, expected",
    [
        (Param("k", 5, minimum=1), 3, 3),
        (Param("lr", 0.1, greater_than=0.0), 2, 2.0),  # an int is a float
        (Param("kernel", "imq", choices=("imq", "rbf")), "rbf", "rbf"),
        (Param("beta1", 0.5, minimum=0.0, less_than=1.0), 0.0, 0.0),
        (Param("path", None, type=str), None, None),  # optional, left unset
    ],
)
def test_a_param_accepts_allowed_values(param, value, expected):
    checked = param.check(value)
    assert checked == expected and type(checked) is type(expected)


@pytest.mark.parametrize(
    "param, value, allowed",
    [
        (Param("k", 5, minimum=1), 0, "an integer >= 1"),
        (Param("k", 5, minimum=1), True, "an integer >= 1"),  # a bool is not a number
        (Param("k", 5, minimum=1), 2.0, "an integer >= 1"),
        (Param("k", 5, minimum=1), "abc", "an integer >= 1"),
        (Param("lr", 0.1, greater_than=0.0), 0.0, "a number > 0"),
        (Param("lr", 0.1, greater_than=0.0), math.nan, "a number > 0"),
        (Param("beta1", 0.5, minimum=0.0, less_than=1.0), 1.0, "a number >= 0 and < 1"),
        (Param("kernel", "imq", choices=("imq", "rbf")), "gauss", "one of 'imq', 'rbf'"),
    ],
)
def test_a_param_refuses_with_the_file_the_key_and_what_is_allowed(param, value, allowed):
    with pytest.raises(ConfigError) as err:
        param.check(value, file="s.toml", prefix="evaluation.params.")
    assert str(err.value) == f"s.toml: key 'evaluation.params.{param.key}': must be {allowed}, got {value!r}"


def test_check_params_fills_defaults_and_refuses_unknown_keys():
    declared = [Param("a", 1, minimum=0), Param("b", "x", choices=("x", "y"))]
    assert check_params({"a": 3}, declared) == {"a": 3, "b": "x"}
    with pytest.raises(ConfigError, match=r"key 'budget.c': unknown key; allowed: a, b"):
        check_params({"c": 1}, declared, prefix="budget.")


def test_hyperparameters_are_checked_by_their_declarations():
    factor_vae = VARIANTS.get("factor_vae").Hyperparameters
    with pytest.raises(ConfigError, match=r"'discriminator_beta1': must be a number >= 0 and < 1, got 1.0"):
        factor_vae.from_dict({"discriminator_beta1": 1.0})
    with pytest.raises(ConfigError, match=r"'gama': unknown hyperparameter; allowed: gamma"):
        factor_vae.from_dict({"gama": 1.0})
    assert factor_vae.from_dict({"gamma": 10}).gamma == 10.0


@pytest.mark.parametrize(
    "params, key",
    [("iwae_k = \"abc\"", "iwae_k"), ("iwae_k = -5", "iwae_k"), ("mig_n_bins = 0", "mig_n_bins"),
     ("iwae_kk = 3", "iwae_kk"), ("feature_network = \"vgg\"", "feature_network")],
)
def test_metric_parameters_are_checked_at_load(write_suite, tmp_path, params, key):
    path = write_suite()
    path.write_text(path.read_text() + f"\n[evaluation.params]\n{params}\n")
    with pytest.raises(ConfigError, match=rf"key 'evaluation.params.{key}'"):
        load_suite(path)


# ---------------------------------------------------------------- specs and labels

LABELS_SUITE = """
seeds = [0, 1]
[budget]
steps = 5
[model]
architecture = "mlp"
[[datasets]]
name = "dsprites"
size = 32
test_size = 200
{dataset_extra}
[[variants]]
name = "beta_vae"
beta = [4.0, 8.0]
[[variants]]
name = "factor_vae"
gamma = 35.0
discriminator_width = 1000
[[variants]]
name = "beta_tcvae"
[[variants]]
name = "annealed_vae"
c_max = 5.0
[evaluation]
metrics = ["kl"]
{evaluation_extra}
"""


def _labels_suite(tmp_path: Path, dataset_extra: str = "", evaluation_extra: str = "") -> Path:
    path = tmp_path / f"labels{abs(hash((dataset_extra, evaluation_extra)))}.toml"
    path.write_text(LABELS_SUITE.format(dataset_extra=dataset_extra, evaluation_extra=evaluation_extra))
    return path


def test_labels_show_what_varies_or_differs_from_the_defaults(tmp_path):
    suite = load_suite(_labels_suite(tmp_path))
    labels = sorted({suite.setting(s) for s in suite.specs})
    # beta = 4 is beta_vae's default but varies in the suite; factor_vae's written defaults are
    # hidden; beta_tcvae's dataset_size is filled in from the data, not written by the suite
    assert labels == ["annealed_vae(c_max=5.0)", "beta_tcvae", "beta_vae(beta=4.0)", "beta_vae(beta=8.0)", "factor_vae"]


def test_a_parameter_written_at_its_default_is_the_same_run(tmp_path):
    plain = load_suite(_labels_suite(tmp_path))
    explicit = load_suite(_labels_suite(tmp_path, "split_seed = 0", "[evaluation.params]\niwae_k = 1000"))
    assert [s.run_id for s in plain.specs] == [s.run_id for s in explicit.specs]
    other = load_suite(_labels_suite(tmp_path, "split_seed = 1"))
    assert not {s.run_id for s in plain.specs} & {s.run_id for s in other.specs}


def test_specs_cross_the_store_boundary_unchanged(tmp_path):
    spec = load_suite(_labels_suite(tmp_path)).specs[0]
    assert RunSpec.from_dict(spec.to_dict()) == spec and RunSpec.from_dict(spec.to_dict()).run_id == spec.run_id
    task = RunTask(spec, "label", str(tmp_path))
    assert task.run_id == spec.run_id and RunResult(spec=spec, status="done").run_id == spec.run_id


# ---------------------------------------------------------------- metric declarations


@pytest.mark.parametrize(
    "value, metric",
    [("kl", "kl"), ("kl_dim_3", "kl"), ("kl_dim_12", "kl"), ("fid_recon", "fid"), ("kid_recon", "kid"),
     ("dci_c", "dci"), ("kl_dim_x", None), ("mig_extra", None), ("fid_recon2", None)],
)
def test_a_stored_value_is_found_by_its_declaration_not_its_prefix(value, metric):
    declared = declaration_of(value)
    assert (declared.metric.name if declared else None) == metric


def test_every_metric_declares_a_family_values_and_directions():
    for name, info in METRICS.items():
        assert info.values and all(isinstance(v.higher_is_better, bool) for v in info.values), name
        assert all(declaration_of(v.name.replace("{i}", "0")).metric is info for v in info.values), name
    assert value_with_role("rate", ["recon_bce", "kl"]) == "kl"
    assert value_with_role("distortion", ["kl", "recon_bce"]) == "recon_bce"


def test_a_metric_returning_an_undeclared_value_fails_the_run(monkeypatch):
    import torch

    from vaebench.bench.evaluate import evaluate
    from vaebench.data import get
    from vaebench.errors import ContractError
    from vaebench.metrics.registry import MetricInfo, MetricValue
    from vaebench.variants import build_variant

    info = MetricInfo("bogus", "information", "test", (MetricValue("bogus", True),), lambda ctx: {"bogus_2": 1.0})
    monkeypatch.setitem(METRICS._items, "bogus", info)
    dataset = get("dsprites", size=32, test_size=50)
    model = build_variant("vae", {}, image_shape=dataset.image_shape, latent_dim=3, architecture="mlp",
                          likelihood="bernoulli")
    spec = spec_for("vae", {}, 0, metrics=("bogus",), dataset_params={"size": 32, "test_size": 50})
    with pytest.raises(ContractError, match="returned 'bogus_2', which it does not declare"):
        evaluate(model, dataset, spec, device=torch.device("cpu"), cache_dir=Path("unused"))


# ---------------------------------------------------------------- the results table

WIDE_VALUES = {
    "recon_mse": 21.3, "recon_bce": 80.2, "neg_elbo": 88.1, "kl": 7.9, "iwae_nll": 85.0, "active_units": 6.0,
    "mi_xz": 6.9, "fid": 64.9, "fid_recon": 20.1, "kid": 0.05, "kid_recon": 0.01, "beta_vae": 0.8,
    "factor_vae": 0.7, "mig": 0.2, "sap": 0.05, "dci_d": 0.3, "dci_c": 0.3, "dci_i": 0.9, "modularity": 0.8,
    **{f"kl_dim_{i}": 0.8 for i in range(10)},
}


def _wide_store(path: Path, variants: list[tuple[str, dict, int]]) -> Path:
    names = ("recon_mse", "recon_bce", "neg_elbo", "kl", "iwae_nll", "active_units", "mi_xz", "fid", "kid",
             "beta_vae", "factor_vae", "mig", "sap", "dci", "modularity")
    with ResultsStore(path) as store:
        for variant, hp, steps in variants:
            for seed in (0, 1):
                spec = RunSpec.from_dict({**spec_for(variant, hp, seed, metrics=names).to_dict(), "steps": steps})
                label = f"{variant}({', '.join(f'{k}={v}' for k, v in hp.items())})" if hp else variant
                values = {k: v * (1 + 0.01 * seed) for k, v in WIDE_VALUES.items()}
                store.write_result(RunResult(spec=spec, status=RunStatus.DONE, metrics=values), suite="quick",
                                   setting=label)
    return path


def test_results_fit_120_columns_with_the_suites_metrics_first(tmp_path, capsys):
    run = _wide_store(tmp_path, [("vae", {}, 100), ("factor_vae", {"discriminator_beta1": 0.5, "gamma": 35.0}, 100),
                                 ("beta_vae", {"beta": 16.0}, 100)])
    assert main(["results", str(run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in out[:-1]) <= 120
    header = out[0]
    assert header.index("recon_mse ↓") < header.index("neg_elbo ↓")  # reconstruction family before likelihood
    assert "kl_dim_0" not in header and "more:" in out[-1] and "--all" in out[-1]
    assert main(["results", str(run), "--metrics", "mig,dci"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "mig ↑" in header and "dci_d ↑" in header and "dci_i ↑" in header and "recon_mse" not in header
    assert main(["results", str(run), "--metrics", "kl,kl_dim_3"]) == 0  # a metric without its per-latent values
    header = capsys.readouterr().out.splitlines()[0]
    assert "kl ↓" in header and "kl_dim_3 ↓" in header and "kl_dim_0" not in header
    assert main(["results", str(run), "--all"]) == 0
    assert "kl_dim_9 ↓" in capsys.readouterr().out
    assert main(["results", str(run), "--metrics", "nope"]) == 2
    assert "key '--metrics': no values of 'nope'" in capsys.readouterr().err


def test_runs_that_differ_in_more_than_the_seed_are_separate_rows(tmp_path, capsys):
    run = _wide_store(tmp_path, [("vae", {}, 100), ("vae", {}, 200)])
    assert main(["results", str(run), "--metrics", "kl"]) == 0
    out = capsys.readouterr().out
    assert "vae [steps=100]" in out and "vae [steps=200]" in out
    rows = [line for line in out.splitlines() if line.strip().startswith("dsprites")]
    assert len(rows) == 2 and all(" 2 " in r for r in rows)  # two seeds each, not four pooled


def test_show_prints_a_runs_full_spec(tmp_path, capsys):
    run = _wide_store(tmp_path, [("factor_vae", {"gamma": 35.0}, 100)])
    run_id = ResultsStore(run, create=False).runs()["run_id"].iloc[0]
    assert main(["show", str(run), run_id[:6]]) == 0
    out = capsys.readouterr().out
    assert '"gamma": 35.0' in out and run_id in out
    assert main(["show", str(run), "zzzz"]) == 2


# ---------------------------------------------------------------- the direction of imports

LAYERS = {  # a package -> the vaebench packages it must never import
    "errors": {"bench", "metrics", "reports", "variants", "data", "cli"},
    "params": {"bench", "metrics", "reports", "variants", "data", "cli"},
    "files": {"bench", "metrics", "reports", "variants", "data", "cli"},
    "cache": {"bench", "metrics", "reports", "variants", "data", "cli"},
    "plugins": {"bench", "metrics", "reports", "variants", "data", "cli", "api"},
    "data": {"bench", "metrics", "reports", "variants", "cli"},
    "variants": {"bench", "metrics", "reports", "cli"},
    "metrics": {"bench", "reports", "cli"},
    "bench": {"reports", "cli"},
    "reports": {"cli", "api"},
}


def _vaebench_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vaebench."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("vaebench."))
    return names


def test_data_flows_one_way():
    for path in PACKAGE.rglob("*.py"):
        layer = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        forbidden = LAYERS.get(layer, set()) & _vaebench_imports(path)
        assert not forbidden, f"{path.relative_to(PACKAGE)} imports {sorted(forbidden)}"
    # Ray's executor imports the local one, never the reverse
    tree = ast.parse((PACKAGE / "bench" / "executors.py").read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "vaebench.bench.ray_executor" not in modules


def test_a_model_grid_expands_and_keeps_settings_apart(tmp_path):
    path = _labels_suite(tmp_path)
    path.write_text(path.read_text().replace('architecture = "mlp"', 'architecture = ["mlp", "conv"]'))
    suite = load_suite(path)
    assert {s.architecture for s in suite.specs} == {"mlp", "conv"} and len(suite.specs) == 2 * 5 * 2


def test_opt_in_metrics_run_only_when_a_suite_names_them(write_suite):
    text = Path(write_suite()).read_text()
    everything = load_suite(write_suite(text.replace('metrics = ["recon_mse", "recon_bce", "neg_elbo", "kl", '
                                                     '"active_units"]\n', ""), filename="all.toml"))
    assert METRICS.get("downstream_logreg").opt_in and "downstream_logreg" not in everything.specs[0].metrics
    assert "mig" in everything.specs[0].metrics
    named = load_suite(write_suite(text.replace('"active_units"]', '"active_units", "downstream_logreg"]'),
                                   filename="named.toml"))
    assert "downstream_logreg" in named.specs[0].metrics
