"""Speed of the disentanglement metrics, with pytest-benchmark.

    .venv/bin/python -m pytest benchmarks/bench_disentanglement.py --benchmark-only
    .venv/bin/python -m pytest benchmarks/bench_disentanglement.py --benchmark-only -k "not sklearn"  (minutes less)

Workload: 10,000 codes x 10 latents with the 5 dSprites factors (3, 6, 40, 32, 32): five
latents are noisy copies of the factors, five carry nothing (collapsed units). DCI fits its
classifiers on 2/3 of the rows (6,667) and tests on the rest: 113 trees per boosting stage
over the five factors, 100 stages.

DCI's default learner ("exact-gbt") against disentanglement_lib's (scikit-learn's
GradientBoostingClassifier, ``learner="gbt"``): ``test_dci_exact_to_sklearn_ratio_interleaved``
alternates the two round by round, so drift of the machine's speed hits both alike; its
extra_info holds each round's wall-clock and CPU times, their ratios and the medians (the
target: sklearn at least 10 times slower). One sklearn round takes several minutes. The
exact learner's compiled loop is compiled (or loaded from numba's cache) before any timing.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from vaebench.metrics.disentanglement import dci, mutual_information_gap, separated_attribute_predictability

N_CODES = 10_000
FACTOR_SIZES = (3, 6, 40, 32, 32)
RATIO_ROUNDS = 3


@pytest.fixture(scope="module")
def workload():
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, s, N_CODES) for s in FACTOR_SIZES], axis=1)
    informative = factors / np.array(FACTOR_SIZES) + 0.05 * rng.normal(size=factors.shape)
    uninformative = 0.1 * rng.normal(size=(N_CODES, 5))
    codes = np.hstack([informative, uninformative])
    dci(codes[:300], factors[:300])  # the exact learner's compiled loop: compiled or loaded, not timed
    return codes, factors


def test_mig(benchmark, workload):
    codes, factors = workload
    value = benchmark(mutual_information_gap, codes, factors)
    assert 0.0 < value <= 1.0


def test_sap(benchmark, workload):
    codes, factors = workload
    value = benchmark(separated_attribute_predictability, codes, factors)
    assert 0.0 < value <= 1.0


@pytest.mark.parametrize("learner", ["exact-gbt", "hist-gbt"])
def test_dci(benchmark, workload, learner):
    codes, factors = workload
    benchmark.group = "dci"
    scores = benchmark.pedantic(dci, args=(codes, factors), kwargs={"learner": learner}, rounds=3, iterations=1)
    assert 0.0 < scores["disentanglement"] <= 1.0


def test_dci_exact_to_sklearn_ratio_interleaved(benchmark, workload):
    """The default learner and sklearn's GradientBoostingClassifier alternated round by round."""
    codes, factors = workload
    rounds: list[dict[str, float]] = []

    def timed(learner: str) -> tuple[float, float, dict[str, float]]:
        wall, cpu = time.perf_counter(), time.process_time()
        scores = dci(codes, factors, learner=learner)
        return time.perf_counter() - wall, time.process_time() - cpu, scores

    def pair():
        exact_wall, exact_cpu, exact = timed("exact-gbt")
        sklearn_wall, sklearn_cpu, sklearn = timed("gbt")
        rounds.append({
            "exact_wall_s": exact_wall, "sklearn_wall_s": sklearn_wall, "exact_cpu_s": exact_cpu,
            "sklearn_cpu_s": sklearn_cpu, "wall_ratio": sklearn_wall / exact_wall, "cpu_ratio": sklearn_cpu / exact_cpu,
            **{f"{key}_difference": exact[key] - sklearn[key] for key in exact},
        })

    benchmark.group = "dci exact vs sklearn"
    benchmark.pedantic(pair, rounds=RATIO_ROUNDS, iterations=1)
    benchmark.extra_info["rounds"] = [{k: round(v, 4) for k, v in r.items()} for r in rounds]
    for key in ("exact_wall_s", "sklearn_wall_s", "exact_cpu_s", "sklearn_cpu_s", "wall_ratio", "cpu_ratio"):
        benchmark.extra_info[f"median_{key}"] = float(np.median([r[key] for r in rounds]))
    info = benchmark.extra_info
    print(f"\nDCI exact-gbt: median {info['median_exact_wall_s']:.1f} s wall ({info['median_exact_cpu_s']:.1f} s CPU); "
          f"sklearn: {info['median_sklearn_wall_s']:.1f} s wall ({info['median_sklearn_cpu_s']:.1f} s CPU); "
          f"ratio {info['median_wall_ratio']:.1f} wall, {info['median_cpu_ratio']:.1f} CPU")
    assert all(abs(r["disentanglement_difference"]) < 0.05 for r in rounds)
