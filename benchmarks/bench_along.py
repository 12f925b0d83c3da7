"""The cost of scoring along training against the cost of training, for `suites/claims.toml`'s models.

Per variant (vae, factor_vae: the cheapest and the dearest step of the suite): a model trained
CALIBRATION_STEPS steps, then timed (one thread, wall clock: run it on an idle machine) are
    - a training step (the mean over TIMED_STEPS further steps),
    - one scoring along training with the suite's plan (its at_metrics on at_images test images),
    - the same scoring on the whole test split (at_images = 0).
`extra_info` holds the share of a run's time the suite's plan costs: its scorings over the run's
training, final scoring and those scorings. README: Performance, "scoring along training".

Run: .venv/bin/python -m pytest benchmarks/bench_along.py --benchmark-only -s
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import torch

from vaebench import data
from vaebench.bench.evaluate import evaluate
from vaebench.bench.suite import load_suite
from vaebench.bench.train import Trainer, images_to_draw
from vaebench.bench.trajectory import AlongScorer

REPO = Path(__file__).resolve().parent.parent
CALIBRATION_STEPS = 100
TIMED_STEPS = 20


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@pytest.mark.parametrize("variant", ["vae", "factor_vae"])
def test_scoring_along_training_share(benchmark, variant, tmp_path):
    suite = load_suite(REPO / "suites" / "claims.toml")
    spec = next(s for s in suite.specs if s.variant == variant and s.seed == 0)
    short = dataclasses.replace(spec, steps=CALIBRATION_STEPS)
    dataset = data.get(spec.dataset, **dict(spec.dataset_params)).materialised(
        tmp_path, images_to_draw=images_to_draw(spec))
    trainer = Trainer(short, dataset, torch.device("cpu"))
    trainer.train(None, None)
    scorer = AlongScorer(spec, dataset, torch.device("cpu"), tmp_path)
    whole = AlongScorer(dataclasses.replace(spec, at_images=0), dataset, torch.device("cpu"), tmp_path)
    more = dataclasses.replace(short, steps=CALIBRATION_STEPS + TIMED_STEPS)
    trainer.spec = more
    step_s = _seconds(lambda: trainer.train(None, None)) / TIMED_STEPS
    whole_s = _seconds(lambda: whole.score(trainer.model, trainer.step))
    final_s = _seconds(lambda: evaluate(trainer.model, dataset, spec, device=torch.device("cpu"), cache_dir=tmp_path))
    benchmark.group = "scoring along training"
    benchmark.pedantic(scorer.score, args=(trainer.model, trainer.step), rounds=3, iterations=1)
    along_s = benchmark.stats.stats.median
    scorings = len([s for s in spec.at_steps if s != spec.steps or spec.at_images])
    run_s = spec.steps * step_s + final_s + scorings * along_s
    benchmark.extra_info.update({
        "step_s": step_s, "final_scoring_s": final_s, "along_scoring_s": along_s, "whole_split_scoring_s": whole_s,
        "at_images": spec.at_images, "scorings": scorings, "share_of_run": scorings * along_s / run_s,
    })
    print(f"\n{variant}: step {1000 * step_s:.1f} ms, final scoring {final_s:.2f} s, along {along_s:.2f} s "
          f"({whole_s:.2f} s on the whole split) x {scorings}: {100 * scorings * along_s / run_s:.1f}% of the run")
    assert along_s < whole_s  # a subset of the test split costs less than all of it
