"""Helpers the test modules share: suite files, the one-error-line check and the repository's root.

Test modules import it as a module (`from helpers import tiny_suite_text`); pytest puts tests/ on
sys.path. Fixtures stay in conftest.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from vaebench.data import GroundTruthDataset
from vaebench.metrics import EvaluationContext
from vaebench.variants import Variant, build_variant

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

ONE_VAE = '[[variants]]\nname = "vae"\n'

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


# The VAE on scikit-learn's digits (200 test images), an MLP with 2 latents, scored by recon_bce:
# one run whose [budget] the caller writes.
DIGITS_VAE_SUITE = """\
{name}[budget]
{budget}
[model]
architecture = "mlp"
latent_dim = 2
[[datasets]]
name = "digits"
test_size = 200
[[variants]]
name = "vae"
[evaluation]
metrics = ["recon_bce"]
"""


def digits_vae_suite(path: Path, budget: str, *, name: str | None = None) -> Path:
    """Write the digits VAE suite with `budget` (the [budget] table's lines) to `path`; its path."""
    path.write_text(DIGITS_VAE_SUITE.format(name=f'name = "{name}"\n' if name else "", budget=budget))
    return path


# One seed of a 4-step MLP run whose plugins, dataset, variant and metrics the caller names.
PLUGIN_SUITE = """
name = "{name}"
plugins = [{plugins}]
seeds = [0]
[budget]
steps = {steps}
batch_size = 8
checkpoint_every = 2
log_every = 2
optimizer = "{optimizer}"
learning_rate = {learning_rate}
[model]
architecture = "mlp"
latent_dim = 2
[[datasets]]
name = "{dataset}"
[[variants]]
name = "{variant}"
[evaluation]
metrics = [{metrics}]
"""


def plugin_suite(path: Path, plugins: Sequence[str] = (), *, name: str = "values", dataset: str = "digits",
                 variant: str = "vae", metrics: str = '"kl"', steps: int = 4, optimizer: str = "adam",
                 learning_rate: float = 1e-3) -> Path:
    """Write a suite importing `plugins` (files beside it) to `path`; `metrics` is the inside of a TOML array."""
    path.write_text(PLUGIN_SUITE.format(name=name, plugins=", ".join(f'"{p}"' for p in plugins), dataset=dataset,
                                        variant=variant, metrics=metrics, steps=steps, optimizer=optimizer,
                                        learning_rate=learning_rate))
    return path


def one_error_line(capsys: pytest.CaptureFixture[str], *, last: bool = False) -> str:
    """The single `vaebench: error:` line on stderr, which holds no traceback (progress lines of --quiet
    may precede it); `last`: nothing follows it."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("vaebench: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    if last:
        assert err.strip().endswith(errors[0]), err
    return errors[0]


FEATURE_STEPS = 200  # feature-network training steps in the FID and PRDC tests (the default is 300)


def tiny_vae(dataset: GroundTruthDataset) -> Variant:
    """An untrained VAE (torch seed 0) for the dataset's images: an MLP with 4 latents, in eval mode."""
    torch.manual_seed(0)
    return build_variant("vae", {}, image_shape=dataset.image_shape, latent_dim=4, architecture="mlp",
                         likelihood="bernoulli").eval()


def scored_context(dataset: GroundTruthDataset, model: Variant, cache_dir: Path,
                   params: dict[str, Any]) -> EvaluationContext:
    """What the harness hands a metric that scores `model` on the dataset's test split (seed 0, the CPU)."""
    images = torch.from_numpy(dataset.images(dataset.test_indices))
    with torch.no_grad():
        mu, logvar = model.encode(images)
    return EvaluationContext(
        model=model, dataset=dataset, test_indices=dataset.test_indices, test_images=images,
        mu=mu.double().numpy(), logvar=logvar.double().numpy(), factors=dataset.factors(dataset.test_indices),
        seed=0, device=torch.device("cpu"), cache_dir=cache_dir, params=params,
    )
