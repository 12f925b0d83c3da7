"""Synthetic results stores for the report, check and browser tests (no training: made-up values).

Imported by tests/test_reports.py, tests/test_check.py and tests/test_browser.py; holds no tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vaebench.bench.grids import png_bytes
from vaebench.bench.spec import RunResult, RunSpec, RunStatus
from vaebench.bench.store import ResultsStore

EVIL = "<script>alert(1)</script>"
EVIL_SUITE = EVIL + " 50% & $x_1$ #{}~^\\"
METRICS = ("recon_mse", "recon_bce", "neg_elbo", "kl", "active_units")

# (variant, hyperparameters, quality offset: lower = better reconstructions, higher KL)
SETTINGS: list[tuple[str, dict[str, Any], float]] = [
    ("vae", {}, 0.0),
    ("beta_vae", {"beta": 2.0}, 1.0),
    ("beta_vae", {"beta": 4.0}, 2.0),
    ("beta_vae", {"beta": 16.0}, 3.0),
]


def setting_label(spec: RunSpec) -> str:
    """The label a suite gives a spec whose hyperparameters the suite wrote: every one of them."""
    hp = ", ".join(f"{k}={v}" for k, v in spec.hyperparameters)
    return f"{spec.variant}({hp})" if hp else spec.variant


def spec_for(variant: str, hp: dict[str, Any], seed: int, *, dataset: str = "dsprites",
             dataset_params: dict[str, Any] | None = None, metrics: tuple[str, ...] = METRICS) -> RunSpec:
    return RunSpec(
        variant=variant, hyperparameters=tuple(sorted(hp.items())), dataset=dataset,
        dataset_params=tuple(sorted((dataset_params or {"size": 32}).items())), architecture="mlp", latent_dim=3,
        likelihood="bernoulli", steps=100, batch_size=32, optimizer="adam", learning_rate=1e-3,
        checkpoint_every=50, log_every=25, seed=seed, metrics=metrics,
    )


def fake_metrics(offset: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(int(offset * 100) + seed)
    noise = rng.normal(0, 0.05, size=4)
    kl = 20.0 - 4.0 * offset + noise[0]
    bce = 80.0 + 6.0 * offset + noise[1]
    return {
        "recon_mse": 10.0 + 2.0 * offset + noise[2], "recon_bce": bce, "neg_elbo": bce + kl, "kl": kl,
        "kl_dim_0": kl / 2, "kl_dim_1": kl / 3, "kl_dim_2": kl / 6, "active_units": float(3 - int(offset) // 2),
    }


def fake_grids(seed: int) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {
        "grid_reconstructions": png_bytes(rng.random((20, 70, 1))),
        "grid_samples": png_bytes(rng.random((40, 40, 1))),
        "grid_traversals": png_bytes(rng.random((30, 70, 3))),
    }


def make_store(
    path: Path, *, seeds: tuple[int, ...] = (0, 1, 2), suite: str = "synthetic", settings=SETTINGS,
    evil: bool = False, failed: bool = False, grids: bool = True, curves: bool = True,
) -> Path:
    """A run directory with one results store; `evil` puts markup in every user-controlled string."""
    path.mkdir(parents=True, exist_ok=True)
    with ResultsStore(path) as store:
        for i, (variant, hp, offset) in enumerate(settings):
            hp = dict(hp)
            dataset_params: dict[str, Any] = {"size": 32}
            if evil and i == 0:
                variant, hp = "vae", {"note": EVIL}
                dataset_params = {"path": EVIL + " 50% & $x_1$ {#}"}
            for seed in seeds:
                spec = spec_for(variant, hp, seed, dataset_params=dataset_params)
                result = RunResult(
                    spec=spec, status=RunStatus.DONE, metrics=fake_metrics(offset, seed),
                    steps_done=spec.steps, wall_time_s=1.5 + seed, steps_per_s=66.0,
                    environment={"packages": {"torch": "2.13.0", "numpy": "2.4"}, "python": "3.11.7",
                                 "git_commit": "abc123", "device": "cpu: x86_64", "scoring_time_s": 0.2},
                )
                if curves:
                    terms = (("loss", 100.0), ("kl", 20.0))
                    result.curves = [(s, n, v / s**0.5) for s in (25, 50, 75, 100) for n, v in terms]
                if grids and seed == seeds[0]:
                    result.artifacts = fake_grids(seed + i)
                store.write_result(result, suite=EVIL_SUITE if evil else suite, setting=setting_label(spec))
        if failed:
            spec = spec_for("beta_vae", {"beta": 32.0}, seeds[0])
            store.write_result(
                RunResult(spec=spec, status=RunStatus.FAILED, error=f"RuntimeError: {EVIL} exploded"),
                suite=EVIL_SUITE if evil else suite, setting=setting_label(spec),
            )
    return path
