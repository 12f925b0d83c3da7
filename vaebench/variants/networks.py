"""The encoder and decoder networks every variant shares, so a comparison changes only the objective.

- `mlp`: flatten -> 512 -> 256 -> 2 * latent (ReLU); the decoder mirrors it.
- `conv`: 4x4 stride-2 convolutions (32, 32, 64, 64 channels) halving the image while its
  side is even and above 4 (28 -> 7, 32 -> 4, 64 -> 4, 8 -> 4), then dense 256.
- `locatello`: the network of Locatello et al. 2019 ("Challenging Common Assumptions in the
  Unsupervised Learning of Disentangled Representations", Table 1; disentanglement_lib's
  `conv_encoder` / `deconv_decoder`), 64 px only: convolutions of 32, 32, 64, 64 channels, all
  stride 2, with 4x4 kernels in the first two and 2x2 kernels in the last two, dense 256;
  the decoder is dense 256, dense 1024 (64 x 4 x 4) and 4x4 stride-2 transposed convolutions of
  64, 32, 32 and C channels, i.e. the `conv` decoder at 64 px.
- `burgess`: Burgess et al. 2018, "Understanding disentangling in beta-VAE", 64 px only:
  four 4x4 stride-2 convolutions with 32 channels, dense 256, dense 256, latent (10).
- `pixelcnn`: the `conv` encoder and an autoregressive PixelCNN decoder conditioned on z
  through the `conv` decoder (`vaebench.variants.pixelcnn`); 1-channel images.
The encoder outputs (mu, logvar) concatenated; the decoder outputs likelihood parameters.

A network's size grows with the image (the `mlp`'s first layer is pixels x 512): `check_network_size`
counts the parameters on torch's meta device, allocating nothing, and refuses more than
MAX_NETWORK_PARAMETERS (400 MB of float32 weights; four times that to train with Adam), so
`size = 3000` with the `mlp` is one line instead of an 18 GB allocation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vaebench.errors import ConfigError
from vaebench.variants.pixelcnn import CONDITIONING_CHANNELS, PixelCNNDecoder

ARCHITECTURES = ("mlp", "conv", "locatello", "burgess", "pixelcnn")
MAX_NETWORK_PARAMETERS = 100_000_000
_CONV_CHANNELS = (32, 32, 64, 64)
# Kernel sides of the encoder's convolutions where they are not all 4 (padding (k - 2) / 2 keeps
# each convolution an exact halving, as TensorFlow's "same" padding does at stride 2).
_ENCODER_KERNELS = {"locatello": (4, 4, 2, 2)}


def _halvings(side: int) -> int:
    n = 0
    while side % 2 == 0 and side > 4 and n < len(_CONV_CHANNELS):
        side //= 2
        n += 1
    return n


def _layout(architecture: str, image_shape: tuple[int, int, int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(conv channels, dense widths) of an architecture for an image shape."""
    _, height, width = image_shape
    if architecture == "mlp":
        return (), (512, 256)
    if height != width:
        raise ConfigError(f"needs square images, got {height}x{width}", key="architecture")
    if architecture == "pixelcnn" and image_shape[0] != 1:
        raise ConfigError(f"'pixelcnn' is defined for 1-channel images, got {image_shape[0]}", key="architecture")
    if architecture in ("conv", "pixelcnn"):
        return _CONV_CHANNELS[: _halvings(height)], (256,)
    if architecture in ("locatello", "burgess") and height != 64:
        raise ConfigError(f"{architecture!r} is defined for 64 px images, got {height} px", key="architecture")
    if architecture == "locatello":
        return _CONV_CHANNELS, (256,)
    if architecture == "burgess":
        return (32, 32, 32, 32), (256, 256)
    raise ConfigError(f"unknown architecture {architecture!r}; allowed: {', '.join(ARCHITECTURES)}", key="architecture")


def _dense_stack(widths: list[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(w_in, w_out), nn.ReLU()]
    return layers


def make_encoder(architecture: str, image_shape: tuple[int, int, int], latent_dim: int) -> nn.Module:
    """x (B, C, H, W) -> (B, 2 * latent_dim): mu and logvar concatenated."""
    channels, dense = _layout(architecture, image_shape)
    c, side, _ = image_shape
    kernels = _ENCODER_KERNELS.get(architecture, (4,) * len(channels))
    layers: list[nn.Module] = []
    for c_out, k in zip(channels, kernels):
        layers += [nn.Conv2d(c, c_out, k, stride=2, padding=(k - 2) // 2), nn.ReLU()]
        c, side = c_out, side // 2
    layers.append(nn.Flatten())
    layers += _dense_stack([c * side * side if channels else math.prod(image_shape), *dense])
    layers.append(nn.Linear(dense[-1], 2 * latent_dim))
    return nn.Sequential(*layers)


def make_decoder(architecture: str, image_shape: tuple[int, int, int], latent_dim: int) -> nn.Module:
    """z (B, latent_dim) -> likelihood parameters (B, C, H, W)."""
    channels, dense = _layout(architecture, image_shape)
    if architecture == "pixelcnn":
        _, height, width = image_shape
        return PixelCNNDecoder(image_shape, make_decoder("conv", (CONDITIONING_CHANNELS, height, width), latent_dim))
    c_img, side, _ = image_shape
    small = side >> len(channels)
    first = channels[-1] * small * small if channels else math.prod(image_shape)
    layers = _dense_stack([latent_dim, *reversed(dense)])
    layers += [nn.Linear(dense[0], first)]
    if not channels:
        layers.append(nn.Unflatten(1, image_shape))
        return nn.Sequential(*layers)
    layers += [nn.ReLU(), nn.Unflatten(1, (channels[-1], small, small))]
    outs = [*reversed(channels[:-1]), c_img]
    c = channels[-1]
    for i, c_out in enumerate(outs):
        layers.append(nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1))
        if i < len(outs) - 1:
            layers.append(nn.ReLU())
        c = c_out
    return nn.Sequential(*layers)


def network_parameters(architecture: str, image_shape: tuple[int, int, int], latent_dim: int) -> int:
    """The parameters of the shared encoder and decoder, counted on the meta device (nothing is allocated);
    a ConfigError for an architecture the image shape does not fit."""
    with torch.device("meta"):
        networks = (make_encoder(architecture, image_shape, latent_dim), make_decoder(architecture, image_shape, latent_dim))
    return sum(p.numel() for net in networks for p in net.parameters())


def check_network_size(architecture: str, image_shape: tuple[int, int, int], latent_dim: int) -> int:
    """The networks' parameter count; a ConfigError (key 'architecture') beyond MAX_NETWORK_PARAMETERS."""
    count = network_parameters(architecture, tuple(image_shape), latent_dim)
    if count > MAX_NETWORK_PARAMETERS:
        shape = "x".join(map(str, image_shape))
        raise ConfigError(
            f"the {architecture!r} encoder and decoder for {shape} images and {latent_dim} latents have {count:,d} "
            f"parameters ({count * 4 / 2**30:.1f} GB as float32, about four times that to train), more than the "
            f"limit of {MAX_NETWORK_PARAMETERS:,d}; use smaller images"
            + (" or a convolutional architecture" if architecture == "mlp" else ""),
            key="architecture",
        )
    return count
