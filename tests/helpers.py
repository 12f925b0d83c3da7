"""Helpers the test modules share: tiny suite files and the repository's root.

Test modules import it as a module (`from helpers import tiny_suite_text`); pytest puts tests/ on
sys.path. Fixtures stay in conftest.py."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

TINY_METRICS = '["recon_mse", "recon_bce", "neg_elbo", "kl", "active_units"]'

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
metrics = {metrics}
"""

VAE_AND_BETA = """
[[variants]]
name = "vae"

[[variants]]
name = "beta_vae"
beta = 4.0
"""


def tiny_suite_text(*, name: str = "tiny", seeds: str = "[0]", steps: int = 40, checkpoint_every: int = 20,
                    variants: str = VAE_AND_BETA, metrics: str = TINY_METRICS) -> str:
    """A suite file's text: an MLP on 32 dSprites images, `steps` steps; `metrics` is a TOML array."""
    return TINY_SUITE.format(name=name, seeds=seeds, steps=steps, checkpoint_every=checkpoint_every, variants=variants,
                             metrics=metrics)
