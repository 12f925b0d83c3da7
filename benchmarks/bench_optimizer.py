"""Adam's three PyTorch implementations on the CPU, one training step each, alternated in one process.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_optimizer.py [--rounds 7] [--steps 100]

For each network (the published MLPs of the reproduction suites, and the 32 px conv for contrast),
three copies of the same model (same initialisation, same batches) are trained side by side with
`torch.optim.Adam` as PyTorch picks it on the CPU (the for-loop implementation: what the harness
uses), `foreach=True` and `fused=True`. Each round times `--steps` full steps (forward, backward,
optimizer) of each implementation in turn, the order rotating between rounds; the table gives each
implementation's median over rounds of the time per step and of the optimizer's `step()` alone, and
the machine's load average before and after (the numbers are only as steady as the machine). It also
checks that every implementation repeats itself bit for bit and whether they agree with each other.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass

import torch

from vaebench.bench.spec import freeze
from vaebench.variants import Variant, build_variant

IMPLEMENTATIONS = {"for-loop (default)": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


@dataclass(frozen=True)
class Network:
    name: str
    variant: str
    hyperparameters: dict
    image_shape: tuple[int, int, int]
    latent_dim: int
    architecture: str
    network: dict
    batch_size: int


NETWORKS = (
    Network("mlp 32 px (1024-512-256-10), batch 64", "vae", {}, (1, 32, 32), 10, "mlp", {}, 64),
    Network("mlp 784-400-40 ReLU (pythae VAE), batch 100", "vae", {}, (1, 28, 28), 40, "mlp", {"hidden": (400,)}, 100),
    Network("mlp 784-200-200-50 tanh, IWAE k=50 (Burda), batch 20", "iwae", {"k": 50}, (1, 28, 28), 50, "mlp",
            {"hidden": (200, 200), "activation": "tanh"}, 20),
    Network("conv 32 px, batch 64", "vae", {}, (1, 32, 32), 10, "conv", {}, 64),
)


def _model(net: Network) -> Variant:
    torch.manual_seed(0)
    return build_variant(net.variant, net.hyperparameters, image_shape=net.image_shape, latent_dim=net.latent_dim,
                         architecture=net.architecture, likelihood="bernoulli", network=freeze(net.network))


def _batches(net: Network, steps: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(net.batch_size, *net.image_shape, generator=g) < 0.3).float() for _ in range(steps)]


class Runner:
    """One model and its optimizer; `run(batches)` trains on them, returning (seconds, optimizer seconds)."""

    def __init__(self, net: Network, options: dict):
        self.model = _model(net)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, **options)
        self.noise = torch.Generator().manual_seed(2)

    def run(self, batches: list[torch.Tensor]) -> tuple[float, float]:
        in_step = 0.0
        state = torch.get_rng_state()
        torch.manual_seed(3)  # the same reparameterisation draws for every implementation
        started = time.perf_counter()
        for x in batches:
            self.optimizer.zero_grad(set_to_none=True)
            self.model.loss(x, 0).total.backward()
            t = time.perf_counter()
            self.optimizer.step()
            in_step += time.perf_counter() - t
        total = time.perf_counter() - started
        torch.set_rng_state(state)
        return total, in_step


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def agreement(net: Network, steps: int = 20) -> dict[str, str]:
    """Per implementation: 'repeats' if two runs give the same weights bit for bit, and how far it
    lands from the default implementation after `steps` steps."""
    batches = _batches(net, steps)
    out, reference = {}, None
    for name, options in IMPLEMENTATIONS.items():
        a, b = Runner(net, options), Runner(net, options)
        a.run(batches), b.run(batches)
        wa, wb = _weights(a.model), _weights(b.model)
        repeats = all(torch.equal(x, y) for x, y in zip(wa, wb))
        if reference is None:
            reference = wa
        same = all(torch.equal(x, y) for x, y in zip(wa, reference))
        diff = max(float((x - y).abs().max()) for x, y in zip(wa, reference))
        out[name] = f"{'repeats bit for bit' if repeats else 'DOES NOT REPEAT'}; " + (
            "equal to the default" if same else f"max |w - w_default| = {diff:.2e}")
    return out


def measure(net: Network, rounds: int, steps: int) -> dict[str, tuple[float, float]]:
    """Median over rounds of (ms per step, ms per optimizer step), each implementation."""
    runners = {name: Runner(net, options) for name, options in IMPLEMENTATIONS.items()}
    batches = _batches(net, steps)
    for runner in runners.values():  # warm-up
        runner.run(batches[:5])
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            total, opt = runners[name].run(batches)
            times[name].append((total / steps * 1e3, opt / steps * 1e3))
    return {name: (statistics.median(t for t, _ in v), statistics.median(o for _, o in v)) for name, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds of {args.steps} steps; "
          f"load average before: {os.getloadavg()}")
    for net in NETWORKS:
        result = measure(net, args.rounds, args.steps if net.architecture == "mlp" else max(10, args.steps // 5))
        base = result["for-loop (default)"][0]
        print(f"\n{net.name}")
        for name, (step_ms, opt_ms) in result.items():
            print(f"  {name:20s} {step_ms:8.2f} ms/step ({base / step_ms:4.2f}x)   optimizer.step {opt_ms:6.2f} ms")
        for name, verdict in agreement(net).items():
            print(f"  {name:20s} {verdict}")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
