"""Helpers the test modules share: suite files, the one-error-line check and the repository's root.

Test modules import it as a module (`from helpers import tiny_suite_text`); pytest puts tests/ on
sys.path. Fixtures stay in conftest.py."""

from __future__ import annotations

import gzip
import struct
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
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
{variant}
[evaluation]
metrics = ["recon_bce"]
"""


def digits_vae_suite(path: Path, budget: str, *, name: str | None = None, variant: str = 'name = "vae"') -> Path:
    """Write the digits VAE suite with `budget` (the [budget] table's lines) to `path`, its variant
    entry's lines `variant`; its path."""
    path.write_text(DIGITS_VAE_SUITE.format(name=f'name = "{name}"\n' if name else "", budget=budget,
                                            variant=variant))
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
log_every = {log_every}
optimizer = "{optimizer}"
learning_rate = {learning_rate}
[model]
architecture = "mlp"
latent_dim = 2
[[datasets]]
name = "{dataset}"
{dataset_params}
[[variants]]
name = "{variant}"
[evaluation]
metrics = [{metrics}]
"""


def plugin_suite(path: Path, plugins: Sequence[str] = (), *, name: str = "values", dataset: str = "digits",
                 dataset_params: str = "", variant: str = "vae", metrics: str = '"kl"', steps: int = 4,
                 log_every: int = 2, optimizer: str = "adam", learning_rate: float = 1e-3) -> Path:
    """Write a suite importing `plugins` (files beside it) to `path`; `metrics` is the inside of a TOML array,
    `dataset_params` the lines of the dataset's table after its name."""
    path.write_text(PLUGIN_SUITE.format(name=name, plugins=", ".join(f'"{p}"' for p in plugins), dataset=dataset,
                                        dataset_params=dataset_params, variant=variant, metrics=metrics, steps=steps,
                                        log_every=log_every, optimizer=optimizer, learning_rate=learning_rate))
    return path


# Two steps of the VAE on a dataset read from files, scored by `metrics` (recon_mse and kl by default).
FILES_SUITE = """
name = "files"
[budget]
steps = 2
batch_size = 4
checkpoint_every = 2
log_every = 1
[model]
architecture = "{architecture}"
latent_dim = 2
[[datasets]]
{dataset}
[[variants]]
name = "vae"
[evaluation]
metrics = [{metrics}]
"""


def files_suite(path: Path, dataset: str, *, architecture: str = "mlp", metrics: str = '"recon_mse", "kl"') -> Path:
    """Write the files suite to `path`; `dataset`: the lines of its [[datasets]] table, its name first;
    `metrics` the inside of a TOML array."""
    path.write_text(FILES_SUITE.format(dataset=dataset, architecture=architecture, metrics=metrics))
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


# MNIST's IDX files, written from the format's definition (independent of the reader)
IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
             np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written from the format's definition (independent of the reader)."""
    array = np.asarray(array)
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_maybe_gzipped(path: Path, raw: bytes, gz: bool) -> Path:
    """`raw` written to `path`, or gzipped to `path` with ".gz" added when `gz`; the file's path."""
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """`array` as an IDX file at `path` (see `write_maybe_gzipped`)."""
    return write_maybe_gzipped(path, idx_bytes(array), gz)


def write_mnist(directory: Path, gz: bool = False, n_train: int = 7, n_test: int = 3, seed: int = 0,
                names: Sequence[str] = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")) -> dict[str, np.ndarray]:
    """MNIST's four IDX files of random 28 x 28 images and labels in `directory`; their arrays by name."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays["train_x"][0, 0, 0], arrays["train_x"][0, 0, 1] = 0, 255
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in zip(names, arrays.values()):
        write_idx(directory / name, array, gz)
    return arrays


# A lab's plugin (a variant, a metric and a dataset of its own) and a suite that uses it; `name` and
# `plugins` (the inside of a TOML array) are the suite's
LAB_PLUGIN = textwrap.dedent('''
    """A lab's plugin: a variant, a metric and a dataset."""
    from dataclasses import dataclass

    import numpy as np

    from vaebench import register_dataset, register_metric, register_variant
    from vaebench.data import ImageDataset
    from vaebench.data.base import fixed_split
    from vaebench.metrics import MetricValue
    from vaebench.params import hyperparameter
    from vaebench.variants import Hyperparameters, Losses
    from vaebench.variants.base import GaussianEncoderVariant
    from vaebench.variants.claims import Claim

    __version__ = "1.2.3"


    @dataclass(frozen=True)
    class LabHyperparameters(Hyperparameters):
        weight: float = hyperparameter(2.0, minimum=0.0)


    @register_variant("lab_vae")
    class LabVAE(GaussianEncoderVariant):
        """A VAE whose KL is weighted (a user's variant)."""

        Hyperparameters = LabHyperparameters
        claims = (Claim("kl", "lower", "a weighted KL lowers the rate"),)

        def loss(self, x, step):
            t = self.sample_terms(x)
            recon, kl = t["recon"].mean(), t["kl_dims"].sum(1).mean()
            return Losses(recon + self.hparams.weight * kl, {"recon": recon, "kl": kl})


    @register_metric("lab_code_norm", family="information", description="mean squared norm of the posterior means",
                     values=[MetricValue("lab_code_norm", higher_is_better=False)])
    def _code_norm(ctx):
        return {"lab_code_norm": float((ctx.mu ** 2).sum(1).mean())}


    @register_dataset("lab_squares")
    class LabSquares(ImageDataset):
        def __init__(self, count: int = 240, test_size: int = 40):
            self.name, self.image_shape, self.num_images = "lab_squares", (1, 32, 32), count
            self.train_indices, self.test_indices = fixed_split(count, test_size, 0)

        def images(self, indices):
            idx = np.asarray(indices)
            out = np.zeros((len(idx), 1, 32, 32), np.float32)
            for k, i in enumerate(idx):
                out[k, 0, : 4 + i % 20, : 4 + i % 20] = 1.0
            return out
''')

LAB_SUITE = '''
name = "{name}"
plugins = [{plugins}]
seeds = [0]
[budget]
steps = 6
batch_size = 16
checkpoint_every = 3
log_every = 3
[model]
architecture = "mlp"
latent_dim = 3
[[datasets]]
name = "lab_squares"
[[variants]]
name = "lab_vae"
weight = [1.0, 3.0]
[[variants]]
name = "vae"
[evaluation]
metrics = ["kl", "lab_code_norm"]
'''
