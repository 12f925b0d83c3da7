"""The `pixelcnn` decoder: causality, a normalised likelihood, exact and seeded sampling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vaebench import data
from vaebench.errors import ConfigError
from vaebench.variants import build_variant
from vaebench.variants.likelihoods import Bernoulli
from vaebench.variants.pixelcnn import RADIUS, causal_mask

pytestmark = pytest.mark.usefixtures("one_thread")


def model(image_shape: tuple[int, int, int], *, seed: int = 0, name: str = "vae", likelihood: str = "bernoulli"):
    torch.manual_seed(seed)
    return build_variant(
        name, {}, image_shape=image_shape, latent_dim=4, architecture="pixelcnn", likelihood=likelihood
    )


def perturb(module: torch.nn.Module, seed: int) -> None:
    """Random weights (1 / sqrt(fan-in), biases 0.2) that make the pixels' conditionals far
    from uniform and from each other, unlike the near-zero logits of the default initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            scale = 1.0 / p[0].numel() ** 0.5 if p.ndim > 1 else 0.2
            p.copy_(torch.randn(p.shape, generator=g) * scale)


def test_masks():
    assert causal_mask(3, include_centre=False).tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert causal_mask(3, include_centre=True).tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]


@pytest.mark.parametrize("side", [8, 28])
def test_a_pixels_parameters_depend_on_no_pixel_at_or_after_it(side):
    """Gradients of the parameters at several pixels with respect to the input image: zero at the
    pixel itself and every later one in raster order, non-zero at some earlier ones."""
    m = model((1, side, side))
    perturb(m.decoder, 1)
    z = torch.randn(1, 4)
    x = torch.rand(1, 1, side, side, requires_grad=True)
    params = m.decoder(z, x)
    for row, col in [(0, 0), (0, side - 1), (side // 2, side // 2), (side - 1, 0), (side - 1, side - 1)]:
        (grad,) = torch.autograd.grad(params[0, 0, row, col], x, retain_graph=True)
        flat = grad[0, 0].flatten()
        index = row * side + col
        assert torch.all(flat[index:] == 0), (row, col)
        if index > 0:
            assert torch.any(flat[:index] != 0), (row, col)


def test_the_receptive_field_reaches_radius_rows_up_and_across():
    side = 24
    m = model((1, side, side))
    perturb(m.decoder, 2)
    x = torch.rand(1, 1, side, side, requires_grad=True)
    row = col = 12
    (grad,) = torch.autograd.grad(m.decoder(torch.randn(1, 4), x)[0, 0, row, col], x)
    seen = (grad[0, 0] != 0).nonzero()
    assert int(seen[:, 0].min()) == row - RADIUS
    assert int(seen[:, 1].min()) == col - RADIUS
    assert int(seen[:, 1].max()) == col + RADIUS


@pytest.mark.parametrize("shape", [(1, 2, 2), (1, 3, 3)])
def test_probabilities_of_all_binary_images_sum_to_one(shape):
    """Enumerate the 2^(H W) binary images: sum_x p(x | z) = 1 for each of several z."""
    m = model(shape)
    perturb(m.decoder, 3)
    pixels = shape[1] * shape[2]
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=pixels))).view(-1, *shape)
    for z in torch.randn(3, 4):
        log_p = m.log_likelihood(images, z.expand(len(images), -1))
        assert float(torch.logsumexp(log_p.double(), 0)) == pytest.approx(0.0, abs=1e-5)
        assert float(log_p.exp().max()) < 0.9  # not a degenerate distribution


def test_log_likelihood_is_the_sum_of_the_per_pixel_conditionals():
    """log p(x | z) from the variant against a pixel-by-pixel product of conditionals, each
    computed from an image whose later pixels are scrambled (so only x_<i can matter)."""
    shape = (1, 4, 4)
    m = model(shape)
    perturb(m.decoder, 4)
    z = torch.randn(1, 4)
    x = (torch.rand(1, *shape, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    total = 0.0
    for i in range(16):
        scrambled = x.clone().view(-1)
        scrambled[i:] = torch.rand(16 - i)
        logit = m.decoder(z, scrambled.view(1, *shape))[0, 0].flatten()[i]
        p = torch.sigmoid(logit)
        total += float(torch.log(p if x.view(-1)[i] == 1 else 1 - p))
    assert float(m.log_likelihood(x, z)) == pytest.approx(total, abs=1e-4)


@pytest.mark.parametrize("side, likelihood", [(8, "bernoulli"), (13, "bernoulli"), (8, "gaussian")])
def test_sampling_is_exact_seeded_and_batched(side, likelihood):
    """A drawn image's parameters equal the teacher-forced pass on that image (so the windowed
    sampler computes exactly the full network); the same seed gives the same images; decode(z)
    without x draws under the global RNG."""
    m = model((1, side, side), likelihood=likelihood)
    perturb(m.decoder, 5)
    z = torch.randn(6, 4)
    images, params = m.decoder.sample(z, m.likelihood, torch.Generator().manual_seed(0))
    with torch.no_grad():
        teacher_forced = m.decoder(z, images)
    torch.testing.assert_close(params, teacher_forced, atol=1e-5, rtol=1e-5)
    again, _ = m.decoder.sample(z, m.likelihood, torch.Generator().manual_seed(0))
    assert torch.equal(images, again)
    other, _ = m.decoder.sample(z, m.likelihood, torch.Generator().manual_seed(1))
    assert not torch.equal(images, other)
    if likelihood == "bernoulli":
        assert set(images.unique().tolist()) <= {0.0, 1.0}
    torch.manual_seed(3)
    first = m.decode(z)
    torch.manual_seed(3)
    assert torch.equal(first, m.decode(z))


def test_bernoulli_sampling_frequencies_match_the_probabilities():
    probs = torch.tensor([0.1, 0.5, 0.9]).logit().view(1, 3, 1, 1).expand(20000, 3, 1, 1)
    draws = Bernoulli().sample(probs, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(draws.mean(0).flatten().numpy(), [0.1, 0.5, 0.9], atol=0.015)


def test_every_likelihood_metric_path_uses_teacher_forcing(monkeypatch):
    """log_likelihood and decode(z, x) never draw: the sampler is not called."""
    m = model((1, 8, 8))
    monkeypatch.setattr(m.decoder, "sample", lambda *a, **k: pytest.fail("sampled"))
    x = torch.rand(5, 1, 8, 8)
    z = torch.randn(5, 4)
    assert m.log_likelihood(x, z).shape == (5,)
    assert m.decode(z, x).shape == x.shape


def test_trains_on_digits():
    """100 Adam steps on digits (8 x 8): the loss falls."""
    dataset = data.get("digits")
    m = model(dataset.image_shape, name="vae")
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    rng = np.random.default_rng(0)
    losses = []
    for step in range(100):
        x = torch.from_numpy(dataset.images(rng.choice(dataset.train_indices, 64)))
        loss = m.loss(x, step).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])


def test_needs_one_channel_images():
    with pytest.raises(ConfigError, match="1-channel"):
        model((3, 32, 32))
