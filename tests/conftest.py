"""Shared fixtures: tiny suite files and a run of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

TINY_SUITE = """
name = "{name}"
seeds = {seeds}

[budget]
steps = {steps}
batch_size = 32
optimizer = "adam"
learning_rate = 1e-3
checkpoint_every = {checkpoint_every}
log_every = 10

[model]
architecture = "mlp"
latent_dim = 4
likelihood = "bernoulli"

[[datasets]]
name = "dsprites"
size = 32
test_size = 200

{variants}

[evaluation]
metrics = ["recon_mse", "recon_bce", "neg_elbo", "kl", "active_units"]
"""

VAE_AND_BETA = """
[[variants]]
name = "vae"

[[variants]]
name = "beta_vae"
beta = 4.0
"""


def tiny_suite_text(*, name: str = "tiny", seeds: str = "[0]", steps: int = 40, checkpoint_every: int = 20,
                    variants: str = VAE_AND_BETA) -> str:
    return TINY_SUITE.format(name=name, seeds=seeds, steps=steps, checkpoint_every=checkpoint_every, variants=variants)


@pytest.fixture
def write_suite(tmp_path: Path):
    """write_suite(text=None, **kwargs) -> path of a suite file in tmp_path."""

    def _write(text: str | None = None, filename: str = "suite.toml", **kwargs) -> Path:
        path = tmp_path / filename
        path.write_text(text if text is not None else tiny_suite_text(**kwargs))
        return path

    return _write


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """A run sets torch's thread count; give the next test the count it started with."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def one_thread():
    """Small tensors: intra-op threads only add synchronisation, which on a shared 2-core
    machine costs far more than the arithmetic. Modules of small-tensor tests use it with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
