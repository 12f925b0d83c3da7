"""The encoder and decoder networks every variant shares, so a comparison changes only the objective.

- `mlp`: flatten -> 512 -> 256 -> 2 * latent (ReLU); the decoder mirrors it. Its hidden widths
  and activation are options (`network_options`): `hidden` (the encoder's widths, input side
  first), `activation`, and for an asymmetric network `decoder_hidden` (z side first; default:
  the encoder's widths reversed) and `decoder_activation` (default: `activation`). The
  published MLPs: `hidden = [400]` (784-400-40 ReLU, pythae's VAE reproduction);
  `hidden = [200, 200], activation = "tanh"` (784-200-200-50 tanh, Burda et al. 2016);
  `hidden = [1200, 1200], decoder_hidden = [1200, 1200, 1200], decoder_activation = "tanh"`
  (Chen et al. 2018's dSprites MLP, rtqichen/beta-tcvae). Every linear layer keeps PyTorch's
  default initialisation whatever the activation (Burda et al. use Glorot-uniform weights).
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
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from vaebench.errors import ConfigError
from vaebench.variants.pixelcnn import CONDITIONING_CHANNELS, PixelCNNDecoder

ARCHITECTURES = ("mlp", "conv", "locatello", "burgess", "pixelcnn")
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "softplus": nn.Softplus,
}
MLP_HIDDEN = (512, 256)
MAX_WIDTH, MAX_LAYERS = 65_536, 32
NETWORK_KEYS = ("hidden", "activation", "decoder_hidden", "decoder_activation")
WIDTH_KEYS = ("hidden", "decoder_hidden")
DEFAULT_ACTIVATION = "relu"
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


def _dense_stack(widths: list[int], activation: str = DEFAULT_ACTIVATION) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(w_in, w_out), ACTIVATIONS[activation]()]
    return layers


def canonical_network(architecture: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The network options `given` for `architecture`, checked, less those equal to their default
    (so writing a default out gives the same run as leaving it out); widths as tuples.

    ConfigError on the option's key: an unknown key, a width that is not an integer in
    1..65536, an empty or too long list, an unknown activation, or any option for an
    architecture other than `mlp`, whose networks are fixed by their papers."""
    for key in given:
        if key not in NETWORK_KEYS:
            raise ConfigError(f"unknown network option; allowed: {', '.join(NETWORK_KEYS)}", key=key)
    if given and architecture != "mlp":
        key = next(iter(given))
        raise ConfigError(f"applies to architecture 'mlp' only; {architecture!r} has the fixed network of its "
                          "definition", key=key)
    out: dict[str, Any] = {}
    for key in WIDTH_KEYS:
        if key in given:
            widths = given[key]
            ok = isinstance(widths, (list, tuple)) and 1 <= len(widths) <= MAX_LAYERS and all(
                isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= MAX_WIDTH for w in widths)
            if not ok:
                raise ConfigError(f"must be a non-empty array of at most {MAX_LAYERS} integers in 1..{MAX_WIDTH} "
                                  f"(layer widths), got {widths!r}", key=key)
            out[key] = tuple(widths)
    for key in ("activation", "decoder_activation"):
        if key in given:
            if given[key] not in ACTIVATIONS:
                raise ConfigError(f"must be one of {', '.join(map(repr, ACTIVATIONS))}, got {given[key]!r}", key=key)
            out[key] = given[key]
    hidden = out.get("hidden", MLP_HIDDEN)
    activation = out.get("activation", DEFAULT_ACTIVATION)
    defaults = {"hidden": MLP_HIDDEN, "activation": DEFAULT_ACTIVATION,
                "decoder_hidden": tuple(reversed(hidden)), "decoder_activation": activation}
    return {k: v for k, v in out.items() if v != defaults[k]}


def network_options(network: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(encoder keyword arguments, decoder keyword arguments) of `make_encoder` / `make_decoder`
    for canonical network options: the decoder mirrors the encoder unless told otherwise."""
    network = dict(network or {})
    hidden = tuple(network["hidden"]) if "hidden" in network else None
    activation = network.get("activation", DEFAULT_ACTIVATION)
    decoder_hidden = network.get("decoder_hidden", tuple(reversed(hidden)) if hidden is not None else None)
    return ({"hidden": hidden, "activation": activation},
            {"hidden": tuple(decoder_hidden) if decoder_hidden is not None else None,
             "activation": network.get("decoder_activation", activation)})


def make_encoder(architecture: str, image_shape: tuple[int, int, int], latent_dim: int, *,
                 hidden: tuple[int, ...] | None = None, activation: str = DEFAULT_ACTIVATION) -> nn.Module:
    """x (B, C, H, W) -> (B, 2 * latent_dim): mu and logvar concatenated.

    hidden, activation: the dense widths (input side first) and activation of `mlp`; None keeps
    the architecture's own."""
    channels, dense = _layout(architecture, image_shape)
    if hidden is not None or activation != DEFAULT_ACTIVATION:
        canonical_network(architecture, {"hidden": list(hidden or dense), "activation": activation})
        dense = tuple(hidden) if hidden is not None else dense
    c, side, _ = image_shape
    kernels = _ENCODER_KERNELS.get(architecture, (4,) * len(channels))
    layers: list[nn.Module] = []
    for c_out, k in zip(channels, kernels):
        layers += [nn.Conv2d(c, c_out, k, stride=2, padding=(k - 2) // 2), nn.ReLU()]
        c, side = c_out, side // 2
    layers.append(nn.Flatten())
    layers += _dense_stack([c * side * side if channels else math.prod(image_shape), *dense], activation)
    layers.append(nn.Linear(dense[-1], 2 * latent_dim))
    return nn.Sequential(*layers)


def make_decoder(architecture: str, image_shape: tuple[int, int, int], latent_dim: int, *,
                 hidden: tuple[int, ...] | None = None, activation: str = DEFAULT_ACTIVATION) -> nn.Module:
    """z (B, latent_dim) -> likelihood parameters (B, C, H, W).

    hidden, activation: the dense widths (z side first) and activation of `mlp`; None keeps the
    architecture's own (the encoder's widths reversed)."""
    channels, dense = _layout(architecture, image_shape)
    if hidden is not None or activation != DEFAULT_ACTIVATION:
        canonical_network(architecture, {"decoder_hidden": list(hidden or dense[::-1]),
                                         "decoder_activation": activation})
        dense = tuple(reversed(hidden)) if hidden is not None else dense
    if architecture == "pixelcnn":
        _, height, width = image_shape
        return PixelCNNDecoder(image_shape, make_decoder("conv", (CONDITIONING_CHANNELS, height, width), latent_dim))
    c_img, side, _ = image_shape
    small = side >> len(channels)
    first = channels[-1] * small * small if channels else math.prod(image_shape)
    layers = _dense_stack([latent_dim, *reversed(dense)], activation)
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


def network_parameters(architecture: str, image_shape: tuple[int, int, int], latent_dim: int,
                       network: Mapping[str, Any] | None = None) -> int:
    """The parameters of the shared encoder and decoder (with the mlp's `network` options), counted on
    the meta device (nothing is allocated); a ConfigError for an architecture the image shape does not fit."""
    encoder_options, decoder_options = network_options(network)
    with torch.device("meta"):
        networks = (make_encoder(architecture, image_shape, latent_dim, **encoder_options),
                    make_decoder(architecture, image_shape, latent_dim, **decoder_options))
    return sum(p.numel() for net in networks for p in net.parameters())


def check_network_size(architecture: str, image_shape: tuple[int, int, int], latent_dim: int,
                       network: Mapping[str, Any] | None = None) -> int:
    """The networks' parameter count; a ConfigError (key 'architecture') beyond MAX_NETWORK_PARAMETERS."""
    channels, height, width = image_shape
    count = network_parameters(architecture, (channels, height, width), latent_dim, network)
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
