"""`pixelcnn`: an autoregressive decoder, powerful enough to model the images without z.

p(x | z) = prod_i p(x_i | x_<i, z) over the pixels in raster order (van den Oord, Kalchbrenner
and Kavukcuoglu 2016, "Pixel Recurrent Neural Networks", section 3.4: masked convolutions),
for 1-channel images (binary or grey) of any size; the encoder is the shared `conv` encoder.
z enters as PixelVAE does (Gulrajani et al. 2017, "PixelVAE"): the shared `conv` decoder maps
z to `CONDITIONING_CHANNELS` feature maps s(z) at full resolution, and a 1x1 convolution of
s(z) is each masked layer's bias map b_l(z) (location-dependent conditioning, van den Oord et
al. 2016, "Conditional Image Generation with PixelCNN Decoders", section 2.3):

    h_0     = relu(conv_A(x) + b_0(z))                       mask A, FIRST_KERNEL x FIRST_KERNEL
    h_l     = h_{l-1} + relu(conv_B(h_{l-1}) + b_l(z))       mask B, KERNEL x KERNEL, l = 1..LAYERS-1
    params  = conv_1x1(relu(conv_1x1(h_last)))               one likelihood parameter per pixel

Mask A hides a pixel and every later one from the first layer; mask B lets later layers see
their own position (which already excludes the pixel). So the parameters at pixel i depend on
z and x_<i only, and `forward(z, x)` gives every pixel's parameters in one pass (teacher
forcing): `Variant.log_likelihood(x, z)` is exactly log p(x | z), and neg_elbo, iwae_nll,
recon_bce and every likelihood metric use it unchanged. Each pixel sees `RADIUS` =
(FIRST_KERNEL // 2) + (LAYERS - 1) rows above it and columns to either side.

Sampling (`sample`, and `Variant.decode(z)` without x) draws the pixels one at a time in
raster order. For pixel (r, c) only the cone of positions it depends on is computed: the first
layer runs on the RADIUS + 1 rows and 2 RADIUS + 1 columns that end at (r, c), each layer as a
"valid" convolution with the kernel's unmasked rows, so every layer shrinks the window by its
half-width (positions outside the image are zeroed after each layer, as the full pass's zero
padding does), and the last layer's single output is pixel (r, c). This is exact: the
parameters of a drawn image equal `forward(z, image)` (tests). Per pixel the masked layers
compute 45 + 28 + 15 + 6 + 1 positions instead of 5 x H x W. Images are drawn `SAMPLE_BATCH`
at a time; the cost is dominated by the H x W sequential steps (timings of sampling and of a
training step: README, Performance).

Defaults, sized for a CPU: CHANNELS = 32, LAYERS = 5, FIRST_KERNEL = 5, KERNEL = 3, so
RADIUS = 6.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from vaebench.variants.likelihoods import Likelihood

CHANNELS = 32  # feature maps per masked layer
CONDITIONING_CHANNELS = 8  # feature maps of s(z), the conv decoder's output
LAYERS = 5  # masked layers: one mask A, then mask B
FIRST_KERNEL = 5
KERNEL = 3
RADIUS = FIRST_KERNEL // 2 + (LAYERS - 1) * (KERNEL // 2)
SAMPLE_BATCH = 256  # images drawn at once (bounds the sampler's memory)


def causal_mask(kernel: int, include_centre: bool) -> torch.Tensor:
    """(kernel, kernel) mask of the positions a masked convolution sees: every row above the
    centre, and in the centre row the columns to its left (and the centre itself for mask B)."""
    mask = torch.zeros(kernel, kernel)
    centre = kernel // 2
    mask[:centre] = 1.0
    mask[centre, : centre + int(include_centre)] = 1.0
    return mask


class MaskedConv2d(nn.Conv2d):
    """A same-padded convolution whose kernel is multiplied by `causal_mask`."""

    mask: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel: int, *, include_centre: bool):
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2)
        self.register_buffer("mask", causal_mask(kernel, include_centre), persistent=False)
        self.half_kernel = kernel // 2  # the rows above the centre (`half` would hide nn.Module.half())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.half_kernel)

    def valid_kernel(self) -> torch.Tensor:
        """The masked kernel without its all-zero rows below the centre. Convolved without
        padding, it maps a (h, w) window to (h - half, w - 2 half), output row i at input row i + half."""
        return (self.weight * self.mask)[:, :, : self.half_kernel + 1]


class PixelCNNDecoder(nn.Module):
    """p(x | z) for 1-channel images: `forward(z, x)` (teacher forcing) and `sample(z, likelihood)`."""

    autoregressive = True

    def __init__(self, image_shape: tuple[int, int, int], conditioning: nn.Module):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.conditioning = conditioning  # z -> (CONDITIONING_CHANNELS, H, W)
        self.projections = nn.ModuleList([nn.Conv2d(CONDITIONING_CHANNELS, CHANNELS, 1) for _ in range(LAYERS)])
        self.masked = nn.ModuleList(
            [MaskedConv2d(image_shape[0], CHANNELS, FIRST_KERNEL, include_centre=False)]
            + [MaskedConv2d(CHANNELS, CHANNELS, KERNEL, include_centre=True) for _ in range(LAYERS - 1)]
        )
        self.head = nn.Sequential(nn.Conv2d(CHANNELS, CHANNELS, 1), nn.ReLU(), nn.Conv2d(CHANNELS, image_shape[0], 1))

    def bias_maps(self, z: torch.Tensor) -> list[torch.Tensor]:
        """One (B, CHANNELS, H, W) bias map per masked layer."""
        features = self.conditioning(z)
        return [projection(features) for projection in self.projections]

    def forward(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Every pixel's likelihood parameters given x_<i and z (teacher forcing), (B, C, H, W).

        Without x, see `sample`: this module does not know the likelihood, so
        `Variant.decode(z)` calls `sample` with the variant's.
        """
        if x is None:
            raise ValueError("PixelCNNDecoder needs the images x; draw images with sample(z, likelihood)")
        biases = self.bias_maps(z)
        h = F.relu(self.masked[0](x) + biases[0])
        for conv, bias in zip(self.masked[1:], biases[1:]):
            h = h + F.relu(conv(h) + bias)
        return self.head(h)

    @torch.no_grad()
    def sample(
        self, z: torch.Tensor, likelihood: Likelihood, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw x ~ p(x | z) pixel by pixel: (images, their likelihood parameters), each (B, C, H, W).

        likelihood: has `sample(params, generator)`. generator: for the draws (default: the
        global RNG). `SAMPLE_BATCH` images at a time.
        """
        parts = [self._sample_batch(part, likelihood, generator) for part in z.split(SAMPLE_BATCH)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _sample_batch(self, z: torch.Tensor, likelihood: Likelihood,
                      generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        c, height, width = self.image_shape
        masked = cast(list[MaskedConv2d], list(self.masked))  # nn.ModuleList is not generic
        n, r = len(z), RADIUS
        # the image and the bias maps padded by RADIUS above and on both sides; inside marks the image
        canvas = z.new_zeros((n, c, height + r, width + 2 * r))
        biases = [F.pad(b, (r, r, r, 0)) for b in self.bias_maps(z)]
        inside = F.pad(z.new_ones((1, 1, height, width)), (r, r, r, 0))
        params = z.new_empty((n, c, height, width))
        kernels = [conv.valid_kernel() for conv in masked]
        for row in range(height):
            for col in range(width):
                top, left = row, col  # the window's corner in padded coordinates
                h = canvas[:, :, top : top + r + 1, left : left + 2 * r + 1]
                for index, conv in enumerate(masked):
                    top, left = top + conv.half_kernel, left + conv.half_kernel
                    rows, cols = slice(top, row + r + 1), slice(left, left + h.shape[3] - 2 * conv.half_kernel)
                    out = F.relu(F.conv2d(h, kernels[index], conv.bias) + biases[index][:, :, rows, cols])
                    if index > 0:
                        out = out + h[:, :, conv.half_kernel :, conv.half_kernel : h.shape[3] - conv.half_kernel]
                    h = out * inside[:, :, rows, cols]
                pixel = self.head(h)  # (n, c, 1, 1)
                params[:, :, row : row + 1, col : col + 1] = pixel
                canvas[:, :, row + r, col + r] = likelihood.sample(pixel, generator)[:, :, 0, 0]
        return canvas[:, :, r:, r : r + width].clone(), params
