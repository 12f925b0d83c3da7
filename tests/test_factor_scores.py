"""beta-VAE and FactorVAE scores on encoders whose relation to the ground-truth factors is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaebench.data.base import GroundTruthDataset
from vaebench.errors import ConfigError
from vaebench.metrics import METRICS, EvaluationContext
from vaebench.metrics.factor_scores import beta_vae_score, factor_vae_score  # also registers both

SIZES = (4, 4, 6, 6)  # two pairs of equally sized factors, for `mixed`
COUNTS = {"batch_size": 64, "num_train": 300, "num_eval": 300}


class FactorImages(GroundTruthDataset):
    """Each 'image' is its own factor vector, (1, 1, K): an encoder can read the factors back exactly."""

    name = "factor_images"
    factor_names = ("a", "b", "c", "d")
    factor_sizes = SIZES
    image_shape = (1, 1, len(SIZES))

    def __init__(self) -> None:
        self.num_images = int(np.prod(SIZES))
        self.train_indices = np.arange(self.num_images)
        self.test_indices = np.arange(self.num_images)

    def images(self, indices) -> np.ndarray:
        return self.factors(indices).astype(np.float32).reshape(-1, *self.image_shape)


def read_factors(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float64)


def disentangled(images: np.ndarray) -> np.ndarray:
    """A permuted, rescaled, shifted copy of the factors."""
    return read_factors(images)[:, [2, 0, 3, 1]] * np.array([0.3, 5.0, -1.0, 2.0]) + 7.0


def mixed(images: np.ndarray) -> np.ndarray:
    """Factors a, b and c, d (standardised) mixed by 45 degrees in pairs: (a + b, a - b, c + d, c - d) / sqrt 2.

    Each code depends on two factors equally, so fixing a or fixing b changes the codes alike
    and neither score can tell them apart (about 0.5). A generic random rotation would not do:
    both scores are invariant to a rotation in which each factor has its own dominant code.
    """
    f = read_factors(images)
    f = (f - (np.array(SIZES) - 1) / 2) / np.sqrt((np.array(SIZES) ** 2 - 1) / 12)
    a, b, c, d = f.T
    return np.stack([a + b, a - b, c + d, c - d], axis=1) / np.sqrt(2)


_NOISE = np.random.default_rng(0)


def noise(images: np.ndarray) -> np.ndarray:
    """Codes unrelated to the images (a fresh draw per call, from its own generator)."""
    return _NOISE.normal(size=(len(images), 4))


@pytest.fixture(scope="module")
def dataset() -> FactorImages:
    return FactorImages()


@pytest.mark.parametrize("score", [beta_vae_score, factor_vae_score])
def test_disentangled_code_scores_one_and_entangled_codes_lower(score, dataset):
    perfect = score(disentangled, dataset, seed=0, **COUNTS)
    entangled = score(mixed, dataset, seed=0, **COUNTS)
    random = score(noise, dataset, seed=0, **COUNTS)
    assert perfect > 0.97
    assert entangled < 0.7, (perfect, entangled)
    assert random < 0.45, random  # chance is 1/4


@pytest.mark.parametrize("score", [beta_vae_score, factor_vae_score])
def test_deterministic_under_a_seed(score, dataset):
    a = score(mixed, dataset, seed=3, **COUNTS)
    assert a == score(mixed, dataset, seed=3, **COUNTS)
    values = {score(mixed, dataset, seed=s, **COUNTS) for s in range(4)}
    assert len(values) > 1  # the seed drives the sampling


def test_factor_vae_prunes_collapsed_dimensions(dataset):
    def with_dead_dims(images):
        codes = disentangled(images)
        return np.concatenate([codes, np.full((len(codes), 3), 2.0), 1e-3 * read_factors(images)[:, :1]], axis=1)

    assert factor_vae_score(with_dead_dims, dataset, seed=0, **COUNTS) > 0.97
    assert factor_vae_score(lambda im: np.zeros((len(im), 4)), dataset, seed=0, **COUNTS) == 0.0


def test_user_errors(dataset):
    with pytest.raises(ConfigError, match="num_train"):
        beta_vae_score(disentangled, dataset, num_train=0)
    with pytest.raises(ConfigError, match="batch_size"):
        factor_vae_score(disentangled, dataset, batch_size=1)


class FactorEncoder(torch.nn.Module):
    """A 'model' whose posterior mean is the disentangled code."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = torch.from_numpy(disentangled(x.numpy()))
        return mu, torch.zeros_like(mu)


@pytest.mark.parametrize("name", ["beta_vae", "factor_vae"])
def test_registered_metrics_read_their_params(name, dataset, tmp_path):
    info = METRICS.get(name)
    assert info.higher_is_better and info.needs_factors
    params = {f"{name}_{key}": value for key, value in {"batch_size": 16, "num_train": 100, "num_eval": 50}.items()}
    if name == "factor_vae":
        params["factor_vae_num_variance_estimate"] = 500
    ctx = EvaluationContext(
        model=FactorEncoder(), dataset=dataset, test_indices=np.arange(10), test_images=torch.zeros(10, 1, 1, 4),
        mu=np.zeros((10, 4)), logvar=np.zeros((10, 4)), factors=dataset.factors(np.arange(10)), seed=0,
        device=torch.device("cpu"), cache_dir=tmp_path, params=params,
    )
    values = info.compute(ctx)
    assert set(values) == {name} and values[name] > 0.97
