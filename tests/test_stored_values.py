"""Values that are wrong are never stored as right: the model contract is checked on every batch of
the evaluation, a value name belongs to one metric, tables say how many values each mean is from,
a run with no finite score is not `done`, and images outside [0, 1] are refused where drawn."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from helpers import one_error_line, plugin_suite
from vaebench.bench.store import ResultsStore
from vaebench.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")



def _suite(tmp_path: Path, plugin: str | None = None, *, plugin_name: str = "values_plugin", dataset: str = "digits",
           variant: str = "vae", metrics: str = '"kl", "recon_bce"', steps: int = 4, optimizer: str = "adam",
           learning_rate: float = 1e-3) -> Path:
    plugins = []
    if plugin is not None:
        (tmp_path / f"{plugin_name}.py").write_text(textwrap.dedent(plugin))
        plugins.append(f"{plugin_name}.py")
    return plugin_suite(tmp_path / "suite.toml", plugins, dataset=dataset, variant=variant, metrics=metrics,
                        steps=steps, optimizer=optimizer, learning_rate=learning_rate)


def _run(tmp_path: Path, suite: Path) -> tuple[int, dict]:
    out = tmp_path / "run"
    code = main(["run", str(suite), "--out", str(out), "--quiet"])
    with ResultsStore(out, create=False) as store:
        run = store.runs().iloc[0].to_dict()
        run["values"] = dict(zip(store.metrics()["name"], store.metrics()["value"]))
    return code, run


# ---------------------------------------------------------------- the contract on every batch

BROKEN_VARIANTS = '''
    import torch
    from vaebench import register_variant
    from vaebench.variants.vae import VAE


    @register_variant("short_vae")
    class ShortVAE(VAE):
        """Loses three rows of a batch when scored (not on the dry batch of two images)."""

        def encode(self, x):
            mu, logvar = super().encode(x)
            if not self.training and len(x) > 2:
                return mu[:-3], logvar[:-3]
            return mu, logvar


    @register_variant("nan_code_vae")
    class NanCodeVAE(VAE):
        """Its codes are NaN when scored."""

        def encode(self, x):
            mu, logvar = super().encode(x)
            if not self.training and len(x) > 2:
                return mu * float("nan"), logvar
            return mu, logvar


    @register_variant("wide_decoder_vae")
    class WideDecoderVAE(VAE):
        """Its decoder gives one pixel too many per row when scored."""

        def decode(self, z, x=None):
            params = super().decode(z, x)
            if not self.training and len(z) > 2:
                return torch.cat([params, params[..., :1]], dim=-1)
            return params
'''


@pytest.mark.parametrize("variant, expected", [
    ("short_vae", "variant 'short_vae': encode returned mu of shape (357, 2) for a batch of 360; expected (360, 2)"),
    ("nan_code_vae", "variant 'nan_code_vae': encode returned 720 non-finite value(s) (NaN or infinite) in mu"),
    ("wide_decoder_vae", "variant 'wide_decoder_vae': decode returned the likelihood parameters of shape "
                         "(360, 1, 8, 9) for a batch of 360; expected (360, 1, 8, 8)"),
])
def test_a_variant_breaking_its_contract_when_scored_fails_the_run_in_one_line(tmp_path, variant, expected):
    code, run = _run(tmp_path, _suite(tmp_path, BROKEN_VARIANTS, plugin_name="broken_variants", variant=variant))
    if variant == "nan_code_vae":  # a trained model whose outputs are NaN diverged, at its last step
        assert code == 0 and run["status"] == "diverged" and run["diverged_step"] == 4
        assert run["error"].startswith("the trained model gives non-finite outputs after step 4: " + expected)
    else:
        assert code == 1 and run["status"] == "failed" and run["error"].startswith(expected)
    assert "\n" not in run["error"]
    assert not run["values"]  # nothing scored on part of the data


FACTORY = '''
    import torch
    from torch import nn


    class Encoder(nn.Module):
        def __init__(self, breach):
            super().__init__()
            self.linear = nn.Linear(64, 4)
            self.breach = breach

        def encode(self, x):
            mu, logvar = self.linear(x.flatten(1)).chunk(2, dim=-1)
            if len(x) > 2 and self.breach == "short":
                return mu[:-3], logvar[:-3]
            if len(x) > 2 and self.breach == "nan":
                mu = mu.clone()
                mu[5] = float("nan")
            return mu, logvar


    def short():
        return Encoder("short")


    def nan():
        return Encoder("nan")
'''


@pytest.mark.parametrize("factory, expected", [
    ("short", "encode returned mu of shape (357, 2) for a batch of 360; expected (360, 2)"),
    ("nan", "encode returned 2 non-finite value(s) (NaN or infinite) in mu for a batch of 360"),
])
def test_an_external_model_breaking_its_contract_on_some_batch_is_one_line(tmp_path, capsys, monkeypatch, factory,
                                                                           expected):
    (tmp_path / "breaking_factory.py").write_text(textwrap.dedent(FACTORY))
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    assert main(["evaluate", f"breaking_factory:{factory}", "--dataset", "digits", "--metrics", "kl,active_units",
                 "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert f"external model 'breaking_factory:{factory}': {expected}" in line
    assert not (out / "results.sqlite").exists()


def test_a_metric_returning_something_other_than_numbers_fails_the_run_in_one_line(tmp_path):
    plugin = '''
        from vaebench import register_metric
        from vaebench.metrics import MetricValue


        @register_metric("text_metric", family="information", description="returns text",
                         values=[MetricValue("text_metric", higher_is_better=True)])
        def _text(ctx):
            return {"text_metric": "1.5"}
    '''
    suite = _suite(tmp_path, plugin, plugin_name="text_metric_plugin", metrics='"kl", "text_metric"')
    code, run = _run(tmp_path, suite)
    assert code == 1 and run["status"] == "failed"
    assert run["error"] == "metric 'text_metric' returned str for 'text_metric'; expected one number"


# ---------------------------------------------------------------- a value name belongs to one metric

CLAIMING = '''
    from vaebench import register_metric
    from vaebench.metrics import MetricValue
    from vaebench.params import Param


    @register_metric("{name}", family="information", description="claims a taken name",
                     values=[MetricValue("{value}", higher_is_better=False)], params=[{params}])
    def _claim(ctx):
        return {{"{value}": -5.0}}
'''


@pytest.mark.parametrize("value, params, expected", [
    ("kl", "", "the value name 'kl' belongs to metric 'kl' ('kl')"),
    ("kl_dim_3", "", "the value name 'kl_dim_3' belongs to metric 'kl' ('kl_dim_{i}')"),
    ("tc", "", "the value name 'tc' belongs to metric 'elbo_decomposition' ('tc')"),
    ("own_value", 'Param("iwae_k", 3, minimum=1)', "the parameter 'iwae_k' is declared by metric 'iwae_"),
])
def test_a_plugin_metric_claiming_a_taken_value_name_is_refused_at_registration(tmp_path, capsys, value, params,
                                                                                expected):
    name = "claim_" + "".join(c for c in value + params if c.isalnum())
    plugin = CLAIMING.format(name=name, value=value, params=params)
    suite = _suite(tmp_path, plugin, plugin_name=name, metrics=f'"kl", "{name}"')
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    line = one_error_line(capsys)
    assert "key 'plugins'" in line and expected in line
    assert not (tmp_path / "run").exists()
    from vaebench.metrics import METRICS

    assert name not in METRICS and METRICS.get("kl").values[0].name == "kl"


# ---------------------------------------------------------------- how many values each mean is from


def _stored_run(store, variant: str, seed: int, status: str, metrics: dict[str, float], **hyperparameters) -> None:
    from vaebench.bench.spec import RunResult, RunSpec, RunStatus, freeze
    from vaebench.variants import VARIANTS

    hp = VARIANTS.get(variant).Hyperparameters.from_dict(hyperparameters).to_dict()
    spec = RunSpec(variant=variant, hyperparameters=freeze(hp), dataset="digits", dataset_params=(),
                   architecture="mlp", latent_dim=2, likelihood="bernoulli", steps=10, batch_size=8, optimizer="adam",
                   learning_rate=1e-3, checkpoint_every=5, log_every=5, seed=seed, metrics=("kl", "recon_bce"))
    result = RunResult(spec=spec, status=RunStatus(status), metrics=metrics if status == "done" else {},
                       diverged_step=3 if status == "diverged" else None)
    store.write_result(result, suite="counts", setting=variant)


@pytest.fixture
def partial_store(tmp_path) -> Path:
    """vae: 4 done runs, kl finite for seeds 0 and 2 only; beta_vae: 5 runs, 2 of them diverged."""
    out = tmp_path / "counts"
    nan = float("nan")
    with ResultsStore(out) as store:
        for seed in range(4):
            _stored_run(store, "vae", seed, "done", {"kl": [10.0, nan, 12.0, nan][seed], "recon_bce": 30.0 + seed})
        _stored_run(store, "vae", 4, "done", {"kl": 11.0, "recon_bce": 31.0})
        for seed in range(5):
            status = "diverged" if seed in (1, 3) else "done"
            _stored_run(store, "beta_vae", seed, status, {"kl": 5.0 + seed / 10, "recon_bce": 40.0})
    return out


def test_the_table_says_how_many_values_each_mean_is_from(partial_store, capsys):
    assert main(["results", str(partial_store), "--metrics", "kl,recon_bce"]) == 0
    out = capsys.readouterr().out
    vae = next(line for line in out.splitlines() if " vae " in f" {line} ")
    assert " 5 " in vae and "11 ± 1 (3/5)" in vae and "31.4 ± 1.1" in vae and "(5/5)" not in vae
    assert "(k/n): the mean and sd of the k runs, of n, whose value is finite" in out
    assert main(["results", str(partial_store), "--format", "json"]) == 0
    import json

    rows = {r["setting"]: r for r in json.loads(capsys.readouterr().out)}
    assert (rows["vae"]["n"], rows["vae"]["kl_count"], rows["vae"]["kl_of"]) == (5, 3, 5)


def test_the_report_says_how_many_values_each_mean_is_from(partial_store, tmp_path):
    from vaebench.reports.report import write_report

    write_report(partial_store, tmp_path / "report")
    markdown = (tmp_path / "report" / "comparison.md").read_text()
    assert "(3/5)" in markdown and "(k/n)" in markdown
    import pandas as pd

    csv = pd.read_csv(tmp_path / "report" / "comparison.csv")
    kl = csv[(csv["metric"] == "kl") & (csv["setting"] == "vae")].iloc[0]
    assert (kl["values"], kl["of"]) == (3, 5)


def test_claims_say_how_many_runs_each_side_left_out(partial_store, capsys):
    main(["claims", str(partial_store)])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.lstrip().startswith("beta_vae"))
    assert " 3/5 " in row and " 3/5" in row.split("3/5", 1)[1]  # 3 of beta_vae's 5 runs, 3 of the vae's 5 values
    assert "diverged and failed runs, and runs without a finite value, are left out" in out


# ---------------------------------------------------------------- a run with no finite score is not done


def test_weights_that_blow_up_on_the_last_step_make_a_diverged_run(tmp_path):
    suite = _suite(tmp_path, steps=2, optimizer="sgd", learning_rate=9.99, metrics='"kl", "recon_bce", "active_units"')
    code, run = _run(tmp_path, suite)
    assert run["status"] == "diverged" and run["diverged_step"] == 2 and not run["values"]
    assert run["error"].startswith("the trained model gives non-finite outputs after step 2")
    assert code == 0 and not (tmp_path / "run" / "models" / f"{run['run_id']}.pt").exists()


NAN_GRADIENT = '''
    import torch
    from vaebench import register_metric, register_variant
    from vaebench.metrics import MetricValue
    from vaebench.variants import Losses
    from vaebench.variants.vae import VAE


    @register_variant("nan_gradient_vae")
    class NanGradientVAE(VAE):
        """From step 1 on its loss is finite but its gradient is NaN: the update leaves NaN weights."""

        def loss(self, x, step):
            losses = super().loss(x, step)
            if step >= 1:
                w = next(self.parameters())
                losses = Losses(losses.total + torch.sqrt(w.sum() * 0.0), losses.terms)
            return losses


    @register_metric("nan_metric", family="information", description="never finite",
                     values=[MetricValue("nan_metric", higher_is_better=True)])
    def _nan(ctx):
        return {"nan_metric": float("nan")}
'''


def test_weights_left_nan_by_the_last_update_make_a_diverged_run_with_its_step(tmp_path):
    suite = _suite(tmp_path, NAN_GRADIENT, plugin_name="nan_gradient", variant="nan_gradient_vae", steps=2,
                   optimizer="sgd")
    code, run = _run(tmp_path, suite)
    assert run["status"] == "diverged" and run["diverged_step"] == 2 and not run["values"]
    assert run["error"].startswith("parameter '") and run["error"].endswith("' is not finite at step 2")


def test_a_run_whose_scores_are_all_nan_is_failed_not_done(tmp_path):
    code, run = _run(tmp_path, _suite(tmp_path, NAN_GRADIENT, plugin_name="nan_gradient", metrics='"nan_metric"'))
    assert code == 1 and run["status"] == "failed"
    assert run["error"].startswith("scoring gave no finite value (nan_metric are all NaN or infinite)")


# ---------------------------------------------------------------- images in [0, 1] where they are drawn

BYTE_DATASETS = '''
    import numpy as np
    from vaebench import register_dataset
    from vaebench.data import ImageDataset
    from vaebench.data.base import fixed_split


    class Squares(ImageDataset):
        image_shape = (1, 8, 8)

        def __init__(self, scale_from: int):
            self.name, self.num_images, self.scale_from = "squares", 100, scale_from
            self.train_indices, self.test_indices = fixed_split(100, 20, 0)

        def images(self, indices):
            idx = np.asarray(indices)
            out = np.zeros((len(idx), 1, 8, 8), np.float32)
            for k, i in enumerate(idx):
                out[k, 0, : 1 + i % 8, : 1 + i % 8] = 255.0 if i >= self.scale_from else 1.0
            return out


    @register_dataset("byte_squares")
    def byte_squares():
        """Pixels in [0, 255] from the first image on."""
        return Squares(scale_from=0)


    @register_dataset("late_byte_squares")
    def late_byte_squares():
        """Pixels in [0, 1] for the first images, [0, 255] for images 50 on."""
        return Squares(scale_from=50)


    @register_dataset("double_squares")
    class DoubleSquares(Squares):
        def __init__(self):
            super().__init__(scale_from=1000)

        def images(self, indices):
            return super().images(indices).astype(np.float64)
'''


@pytest.mark.parametrize("dataset, expected", [
    ("byte_squares", "dataset 'byte_squares': images(indices) returned values from 0 to 255 for 2 images"),
    ("double_squares", "dataset 'double_squares': images(indices) returned float64 of shape (2, 1, 8, 8) for 2 images;"
                       " expected float32 (2, 1, 8, 8)"),
])
def test_a_plugin_dataset_outside_0_1_is_refused_at_load(tmp_path, capsys, dataset, expected):
    suite = _suite(tmp_path, BYTE_DATASETS, plugin_name="byte_datasets", dataset=dataset)
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    line = one_error_line(capsys)
    assert "key 'datasets[0]'" in line and expected in line
    assert not (tmp_path / "run").exists()


def test_a_plugin_dataset_leaving_0_1_later_fails_the_run_where_drawn(tmp_path):
    suite = _suite(tmp_path, BYTE_DATASETS, plugin_name="byte_datasets", dataset="late_byte_squares")
    code, run = _run(tmp_path, suite)
    assert code == 1 and run["status"] == "failed" and not run["values"]
    assert run["error"].startswith("dataset 'late_byte_squares': batch(indices) returned values from 0 to 255 for 8 "
                                   "images; the contract is float32 images in [0, 1]")


# ---------------------------------------------------------------- aggregates near the float maximum


@pytest.fixture
def huge_store(tmp_path) -> Path:
    """kl near the float maximum: vae's 3 x 1.7e308 (a mean that fits, a sum that does not), beta_vae's
    around -1.6e308 (a difference to vae's that overflows); training curves at ±1.7e308."""
    from vaebench.bench.spec import RunResult, RunSpec, RunStatus, freeze
    from vaebench.variants import VARIANTS

    out = tmp_path / "huge"
    with ResultsStore(out) as store:
        for variant in ("vae", "beta_vae"):
            hp = VARIANTS.get(variant).Hyperparameters.from_dict({}).to_dict()
            for seed in range(3):
                spec = RunSpec(variant=variant, hyperparameters=freeze(hp), dataset="digits", dataset_params=(),
                               architecture="mlp", latent_dim=2, likelihood="bernoulli", steps=10, batch_size=8,
                               optimizer="adam", learning_rate=1e-3, checkpoint_every=5, log_every=5, seed=seed,
                               metrics=("kl", "recon_bce"))
                kl = 1.7e308 if variant == "vae" else -1.7e308 + seed * 1e307
                result = RunResult(spec=spec, status=RunStatus.DONE, metrics={"kl": kl, "recon_bce": 30.0 + seed},
                                   curves=[(5, "model/loss", 1.7e308), (10, "model/loss", -1.7e308)])
                store.write_result(result, suite="huge", setting=variant)
    return out


def test_aggregates_near_the_float_maximum_are_computed_or_shown_as_overflow(huge_store, tmp_path, capsys):
    assert main(["results", str(huge_store), "--metrics", "kl,recon_bce"]) == 0
    captured = capsys.readouterr()
    assert "Warning" not in captured.err
    rows = {line.split()[1]: line for line in captured.out.splitlines()[1:3]}
    assert "1.7e+308 ± " in rows["vae"] and "-1.6e+308 ± 1e+307" in rows["beta_vae"]  # means that fit, no inf
    assert main(["claims", str(huge_store)]) == 0
    assert "overflow [overflow, overflow]" in capsys.readouterr().out  # -1.6e308 - 1.7e308 does not fit

    report = tmp_path / "report"
    assert main(["report", str(huge_store), "--out", str(report)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert "-1.6e+308 [-1.7e+308, -1.5e+308]" in (report / "comparison.md").read_text()
    html = (report / "report.html").read_text()
    assert "Not drawn: 6 metric value(s) and 12 curve point(s) beyond ±1e+300" in html
    assert list((report / "plots").glob("*.png"))  # recon_bce is drawn


def test_a_report_that_fails_leaves_nothing_half_written(huge_store, tmp_path, capsys, monkeypatch):
    import errno

    from vaebench.reports import plots

    report = tmp_path / "report"
    assert main(["report", str(huge_store), "--out", str(report)]) == 0
    before = {p: p.read_bytes() for p in report.rglob("*") if p.is_file()}
    capsys.readouterr()

    def disk_full(plot, directory):
        raise OSError(errno.ENOSPC, "No space left on device", str(directory))

    monkeypatch.setattr(plots, "save", disk_full)
    for out in (report, tmp_path / "new_report"):
        assert main(["report", str(huge_store), "--out", str(out)]) == 2
        assert "No space left on device" in one_error_line(capsys)
    assert {p: p.read_bytes() for p in report.rglob("*") if p.is_file()} == before  # the earlier report, whole
    assert not (tmp_path / "new_report").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging directory left


def test_a_killed_reports_staging_directory_is_removed_by_the_next_run(tmp_path):
    from vaebench.bench.runner import remove_temporary_files
    from vaebench.files import temporary_path

    staging = temporary_path(tmp_path / "run" / "report")
    (staging / "plots").mkdir(parents=True)
    (staging / "plots" / "kl.png").write_bytes(b"x")
    remove_temporary_files(tmp_path / "run")
    assert not staging.exists()
