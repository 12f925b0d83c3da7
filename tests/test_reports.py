"""Reports: statistics, tables in every format, escaping, plots, image grids and the HTML file."""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib import image as mpl_image

from test_reports_fixtures import EVIL, EVIL_SUITE, SETTINGS, make_store, spec_for
from vaebench.bench.grids import GRID_NAMES, make_grid, model_image_grids, png_bytes
from vaebench.bench.store import ResultsStore
from vaebench.cli import main
from vaebench.reports import stats, tables
from vaebench.reports.comparison import Comparison
from vaebench.reports.html import CSP, LOAD_CHECK_SCRIPT, script_hash
from vaebench.reports.plots import swept_parameters
from vaebench.reports.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- statistics


def test_holm_matches_a_hand_computed_case():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert list(adjusted < 0.05) == [True, False, False, True]


def test_holm_caps_at_one_and_ignores_nan():
    adjusted = stats.holm([0.5, math.nan, 0.6])
    assert adjusted[0] == 1.0 and adjusted[2] == 1.0 and math.isnan(adjusted[1])
    # with the NaN left out, m = 2: 0.01 * 2 = 0.02
    np.testing.assert_allclose(stats.holm([0.01, math.nan, 0.2])[[0, 2]], [0.02, 0.2])
    assert stats.holm([]).shape == (0,)


def test_mean_ci_is_the_seeded_percentile_bootstrap():
    values = [1.0, 2.0, 4.0, 3.5, 2.5]
    mean, low, high = stats.mean_ci(values)
    assert mean == pytest.approx(2.6)
    assert low < mean < high
    assert stats.mean_ci(values) == (mean, low, high)  # fixed seed: reproducible
    from scipy.stats import bootstrap

    ref = bootstrap((np.array(values),), np.mean, method="percentile", n_resamples=stats.BOOTSTRAP_RESAMPLES,
                    random_state=np.random.default_rng(stats.BOOTSTRAP_SEED)).confidence_interval
    assert (low, high) == pytest.approx((ref.low, ref.high))


def test_mean_ci_with_one_seed_has_no_interval():
    mean, low, high = stats.mean_ci([3.0])
    assert mean == 3.0 and math.isnan(low) and math.isnan(high)
    assert stats.mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    assert all(math.isnan(v) for v in stats.mean_ci([math.nan]))


def _runs(groups: dict[str, list[float]], metric: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{"dataset": "d", "setting": s, metric: v} for s, vals in groups.items() for v in vals]
    )


def test_pairwise_tests_find_a_clear_difference_and_name_the_better_side():
    frame = _runs({"a": [1.0, 1.1, 1.2, 1.3, 1.4], "b": [5.0, 5.1, 5.2, 5.3, 5.4], "c": [1.05, 1.15, 1.25, 1.35, 1.45]},
                  "recon_mse")
    pairs = stats.pairwise_tests(frame, ["recon_mse"]).set_index(["setting_a", "setting_b"])
    ab, ac = pairs.loc[("a", "b")], pairs.loc[("a", "c")]
    assert ab["p"] == pytest.approx(2 / 252)  # exact two-sided U test, complete separation, 5 vs 5
    assert ab["p_holm"] == pytest.approx(3 * ab["p"])  # the smallest of three p-values
    assert ab["significant"] and ab["better"] == "a"  # recon_mse: lower is better
    assert not ac["significant"]
    # higher is better for active_units: the higher group wins
    frame = _runs({"a": [1.0, 1.1, 1.2, 1.3, 1.4], "b": [5.0, 5.1, 5.2, 5.3, 5.4]}, "active_units")
    assert stats.pairwise_tests(frame, ["active_units"]).iloc[0]["better"] == "b"


def test_pairwise_tests_need_two_seeds_a_side():
    frame = _runs({"a": [1.0], "b": [5.0, 6.0]}, "kl")
    row = stats.pairwise_tests(frame, ["kl"]).iloc[0]
    assert math.isnan(row["p"]) and not row["significant"]


def test_rank_table_respects_each_metrics_direction():
    means = pd.DataFrame({
        "dataset": ["d"] * 3, "setting": ["x", "y", "z"],
        "kl": [3.0, 1.0, 2.0],  # lower is better: y, z, x
        "active_units": [1.0, 5.0, 5.0],  # higher is better: y and z tie
    })
    ranks = stats.rank_table(means, ["kl", "active_units"]).set_index("setting")
    assert ranks.loc["y", "kl"] == 1 and ranks.loc["x", "kl"] == 3
    assert ranks.loc["y", "active_units"] == 1.5 and ranks.loc["x", "active_units"] == 3
    assert ranks.loc["y", "mean_rank"] == pytest.approx(1.25)
    assert list(ranks.index) == ["y", "z", "x"]  # sorted by mean rank


def test_natural_order_of_settings():
    names = ["beta_vae(beta=16.0)", "vae", "beta_vae(beta=2.0)", "beta_vae(beta=4.0)"]
    assert sorted(names, key=stats.natural_key) == [
        "beta_vae(beta=2.0)", "beta_vae(beta=4.0)", "beta_vae(beta=16.0)", "vae"
    ]


# ---------------------------------------------------------------- tables


def _comparison(tmp_path: Path, **kw) -> Comparison:
    with ResultsStore(make_store(tmp_path / "run", **kw), create=False) as store:
        return Comparison.build(store)


def test_comparison_table_marks_the_best_in_each_metrics_direction(tmp_path):
    comp = _comparison(tmp_path)
    best = tables.comparison_long(comp, ["kl", "recon_bce", "active_units"]).set_index(["setting", "metric"])["best"]
    # the fixture: vae reconstructs best and has the highest KL; beta=16 the lowest KL
    assert best[("vae", "recon_bce")] and not best[("beta_vae(beta=16.0)", "recon_bce")]
    assert best[("beta_vae(beta=16.0)", "kl")] and not best[("vae", "kl")]
    assert best[("vae", "active_units")] and best[("beta_vae(beta=2.0)", "active_units")]  # a tie
    assert [s.label for s in comp.sorted_settings()] == [
        "beta_vae(beta=2.0)", "beta_vae(beta=4.0)", "beta_vae(beta=16.0)", "vae"]
    for s in comp.settings:
        kl = comp.summary(s, "kl")
        assert kl.ci_low <= kl.mean <= kl.ci_high
        assert s.done == 3
    md = tables.render_markdown(tables.comparison_display(comp, ["kl", "recon_bce"]))
    header = md.splitlines()[0]
    assert "kl ↓" in header and "recon_bce ↓" in header
    vae_row = next(line for line in md.splitlines() if line.startswith("| dsprites | vae |"))
    assert re.search(r"\*\*80(\.\d+)? \[79\.\d+, 80\.\d+\]\*\*", vae_row)  # best recon_bce, bold, with its CI


def test_one_seed_shows_the_mean_only(tmp_path):
    comp = _comparison(tmp_path, seeds=(0,))
    md = tables.render_markdown(tables.comparison_display(comp, ["kl"]))
    row = next(line for line in md.splitlines() if line.startswith("| dsprites | vae |"))
    assert "[" not in row and re.search(r"\| \*\*\d+\.?\d*\*\* \|$|\| \d+\.?\d* \|$", row)


def test_csv_is_tidy_with_direction_and_best(tmp_path):
    long = tables.comparison_long(_comparison(tmp_path), ["kl", "active_units"])
    assert len(long) == 2 * len(SETTINGS)
    assert set(long["direction"]) == {"lower", "higher"}
    best = long[long["best"] & (long["metric"] == "kl")]
    assert list(best["setting"]) == ["beta_vae(beta=16.0)"]


def test_latex_escapes_every_special_character():
    assert tables.latex_escape("50% & $x_1$ #{}~^\\") == (
        r"50\% \& \$x\_1\$ \#\{\}\textasciitilde{}\textasciicircum{}\textbackslash{}"
    )
    table = tables.Table([tables.Column("a_b", "lower", numeric=True)], [[tables.Cell("1 & 2", bold=True)]], "cap 5%")
    tex = tables.render_latex(table)
    assert r"a\_b $\downarrow$" in tex and r"\textbf{1 \& 2}" in tex and r"\caption{cap 5\%}" in tex
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    rows = tables.render_latex(tables.Table([tables.Column("x")], [[tables.Cell("[a]")], [tables.Cell("[b]")]]))
    assert "\n{}[b] \\\\" in rows  # a row may not start with '[' (the previous row's \\ would take it)


def test_markdown_and_html_cells_are_escaped():
    table = tables.Table([tables.Column("x")], [[tables.Cell(f"a|b {EVIL}")]])
    md = tables.render_markdown(table)
    assert EVIL not in md and "a\\|b &lt;script&gt;" in md
    out = tables.render_html(table)
    assert EVIL not in out and html.escape(EVIL) in out


# ---------------------------------------------------------------- the whole report


@pytest.fixture(scope="module")
def evil_report(tmp_path_factory):
    """A report of a store whose suite name, settings, dataset params and errors hold markup."""
    root = tmp_path_factory.mktemp("evil")
    run = make_store(root / "run", evil=True, failed=True)
    out = root / "report"
    written = write_report(run, out)
    return out, written


def test_report_writes_every_table_plot_and_grid(evil_report):
    out, written = evil_report
    names = {p.relative_to(out).as_posix() for p in written}
    for stem in ("comparison", "ranks", "pairwise"):
        assert {f"{stem}.md", f"{stem}.tex", f"{stem}.csv"} <= names
    assert "comparison.html" in names and "report.html" in names
    for plot in ("rate_distortion", "sweep_beta_vae_beta", "metric_correlation", "training_curves", "metric_kl"):
        assert {f"plots/{plot}.png", f"plots/{plot}.svg"} <= names
        assert (out / "plots" / f"{plot}.png").read_bytes().startswith(PNG_MAGIC)
        assert "<svg" in (out / "plots" / f"{plot}.svg").read_text()
    grids = [n for n in names if n.startswith("grids/")]
    assert len(grids) == 3 * len(SETTINGS)  # one run per setting, three grids each
    assert all(p.exists() for p in written)


def test_report_html_escapes_user_strings_and_is_self_contained(evil_report):
    out, _ = evil_report
    page = (out / "report.html").read_text()
    assert EVIL not in page  # never raw
    assert "<script>alert" not in page
    assert html.escape(EVIL) in page  # but shown, escaped: setting, dataset params, error message
    assert html.escape(EVIL_SUITE) in page
    assert html.escape(f"RuntimeError: {EVIL} exploded") in page
    assert html.escape(EVIL + " 50% & $x_1$ {#}") in page  # dataset params
    assert page.count("<script>") == 1  # only the load check
    # nothing external: every image is a data URI, no http(s) or file references, a strict CSP
    srcs = re.findall(r'<img[^>]* src="([^"]*)"', page)
    assert len(srcs) == page.count("<img") > 0
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"(src|href)=\"(https?:|file:|//)", page)
    assert "<link" not in page
    assert html.escape(CSP) in page and "default-src 'none'" in CSP and script_hash(LOAD_CHECK_SCRIPT) in CSP
    # metadata: versions, seeds, budgets, wall times
    for text in ("package torch", "2.13.0", "git_commit", "abc123", "wall time (s)", "100/100", "adam lr=0.001"):
        assert text in page


def test_report_latex_and_markdown_escape_user_strings(evil_report):
    out, _ = evil_report
    tex = (out / "comparison.tex").read_text()
    assert tables.latex_escape(EVIL_SUITE) in tex
    assert r"\textless{}script\textgreater{}alert(1)" in tex and "<script>" not in tex
    assert r"50\% \& \$x\_1\$ \#\{\}" in tex
    for name in ("comparison.md", "ranks.md", "pairwise.md", "comparison.html"):
        assert EVIL not in (out / name).read_text(), name


def test_the_plots_are_the_same_bytes_whatever_the_global_rng(evil_report, tmp_path):
    """The seeds' jitter in a metric plot is a fixed draw, not numpy's global RNG (which seaborn's
    stripplot used): a report written again, after the global state moved, has identical plots."""
    first, _ = evil_report
    np.random.seed(12345)
    np.random.uniform(size=7)
    again = tmp_path / "again"
    write_report(first.parent / "run", again)
    plots = sorted(p.name for p in (first / "plots").iterdir())
    assert "metric_kl.png" in plots and "metric_kl.svg" in plots
    for name in plots:
        assert (again / "plots" / name).read_bytes() == (first / "plots" / name).read_bytes(), name


def test_report_of_a_missing_store_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")]) == 2
    assert "no results store" in capsys.readouterr().err


def test_report_cli_without_grids_curves_or_a_second_seed(tmp_path, capsys):
    run = make_store(tmp_path / "run", seeds=(0,), grids=False, curves=False, settings=SETTINGS[:2])
    assert main(["report", str(run)]) == 0
    out = run / "report"
    assert "wrote" in capsys.readouterr().out
    assert (out / "report.html").exists() and (out / "plots" / "rate_distortion.png").exists()
    assert not (out / "grids").exists() and not (out / "plots" / "training_curves.png").exists()
    assert not (out / "plots" / "sweep_beta_vae_beta.png").exists()  # one beta value: nothing swept


def test_swept_parameters_prefer_beta():
    rows = []
    for variant, hp in [("x", {"gamma": 1.0, "beta": 1.0}), ("x", {"gamma": 2.0, "beta": 4.0}),
                        ("y", {"alpha": 1.0, "kernel": "a"}), ("y", {"alpha": 1.0, "kernel": "b"})]:
        rows.append({"dataset": "d", "variant": variant, "spec": spec_for(variant, hp, 0)})
    assert swept_parameters(pd.DataFrame(rows)) == [("d", "x", "beta"), ("d", "x", "gamma")]


# ---------------------------------------------------------------- image grids


def test_make_grid_layout_and_png():
    images = torch.zeros(5, 1, 4, 6)
    grid = make_grid(images, nrow=3, padding=2)
    assert grid.shape == (2 * (4 + 2) + 2, 3 * (6 + 2) + 2, 1)
    assert grid[2:6, 2:8].max() == 0 and grid[0].min() == 1.0  # image, padding
    assert grid[8:12, 18:24].min() == 1.0  # the empty sixth slot is padding
    decoded = mpl_image.imread(__import__("io").BytesIO(png_bytes(grid)), format="png")
    assert decoded.shape[:2] == grid.shape[:2]
    with pytest.raises(ValueError):
        make_grid(torch.zeros(3, 4, 4), nrow=2)


def _tiny_model(latent_dim: int = 3):
    from vaebench.variants import build_variant

    torch.manual_seed(0)
    return build_variant("vae", {}, image_shape=(1, 8, 8), latent_dim=latent_dim, architecture="mlp",
                         likelihood="bernoulli")


def test_model_image_grids_shapes_determinism_and_global_rng():
    model = _tiny_model(latent_dim=3)
    images = torch.rand(20, 1, 8, 8)
    state = torch.get_rng_state()
    grids = model_image_grids(model, images, seed=7, n=4)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is untouched
    assert set(grids) == set(GRID_NAMES)
    shapes = {k: mpl_image.imread(__import__("io").BytesIO(v), format="png").shape[:2] for k, v in grids.items()}
    side = 8 + 2
    assert shapes["grid_reconstructions"] == (2 * side + 2, 4 * side + 2)  # originals over reconstructions
    assert shapes["grid_samples"] == (4 * side + 2, 4 * side + 2)
    assert shapes["grid_traversals"] == (3 * side + 2, 4 * side + 2)  # one row per latent
    assert model_image_grids(model, images, seed=7, n=4) == grids
    assert model_image_grids(model, images, seed=8, n=4)["grid_samples"] != grids["grid_samples"]


def test_evaluate_stores_image_grids(tmp_path):
    from vaebench import data
    from vaebench.bench.evaluate import evaluate

    spec = spec_for("vae", {}, 0, dataset_params={"size": 32, "test_size": 50}, metrics=("kl",))
    dataset = data.get("dsprites", size=32, test_size=50)
    from vaebench.bench.train import build_model

    model = build_model(spec, dataset)
    scores = evaluate(model, dataset, spec, device=torch.device("cpu"), cache_dir=tmp_path)
    values, artifacts = scores.values, scores.artifacts
    assert "kl" in values
    assert set(GRID_NAMES) <= set(artifacts)
    assert all(v.startswith(PNG_MAGIC) for v in artifacts.values())


def _store_with_mi_xz(path: Path, values: dict[str, list[float]], n: int) -> Path:
    """Runs whose mi_xz (with the note the metric writes for N images) is given per variant."""
    from vaebench.bench.spec import RunResult, RunStatus

    path.mkdir(parents=True, exist_ok=True)
    with ResultsStore(path) as store:
        for variant, per_seed in values.items():
            for seed, value in enumerate(per_seed):
                spec = spec_for(variant, {}, seed, metrics=("mi_xz",))
                result = RunResult(spec=spec, status=RunStatus.DONE, metrics={"mi_xz": value, "mi_xz_upper": value + 1},
                                   notes={"mi_xz": f"N={n} ceiling=log N={math.log(n):.3f}"})
                store.write_result(result, suite="info", setting=variant)
    return path


def test_mi_xz_shows_its_ceiling_and_flags_saturation(tmp_path, capsys):
    ceiling = math.log(2000)  # 7.601
    run_dir = _store_with_mi_xz(tmp_path / "runs", {"vae": [7.2, 7.3], "mmd_vae": [3.0, 3.2]}, n=2000)
    assert main(["results", str(run_dir)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("dsprites")}
    assert "≤7.6!" in rows["vae"]  # 7.25 is within 0.5 nats of log 2000
    assert "≤7.6" in rows["mmd_vae"] and "≤7.6!" not in rows["mmd_vae"]
    assert "mi_xz ≤c: at most c, log N of the N images it is estimated on; ! within 0.5 of c" in out
    assert max(len(line) for line in out.splitlines()) <= 120
    # the report's comparison (HTML, CSV) carries the same mark and the ceiling itself
    write_report(run_dir, tmp_path / "report")
    page = (tmp_path / "report" / "report.html").read_text()
    assert "≤7.6!" in page and "saturated" in page
    csv = pd.read_csv(tmp_path / "report" / "comparison.csv")
    assert csv.loc[csv["metric"] == "mi_xz", "ceiling"].tolist() == pytest.approx([round(ceiling, 3)] * 2)
