"""InfoVAE (Zhao, Song and Ermon, "InfoVAE: Balancing Learning and Inference in Variational
Autoencoders", AAAI 2019, arXiv:1706.02262) and its MMD-VAE special case.

The paper's objective, maximised, is (section "The InfoVAE model family")

    L_InfoVAE = -lambda D(q(z) || p(z)) - E_q(z)[KL(q(x|z) || p(x|z))] + alpha I_q(x; z)
              = E_pD E_q(z|x)[log p(x|z)] - (1 - alpha) E_pD KL(q(z|x) || p(z)) - (alpha + lambda - 1) D(q(z) || p(z)),

so this module minimises, per batch (one reparameterised sample per image, the analytic KL,
batch means),

    L(x) = E_q(z|x)[-log p(x|z)] + (1 - alpha) KL(q(z|x) || p(z)) + (alpha + lambda - 1) D(q(z) || p(z)).

Sign convention (the paper's): alpha multiplies +I_q(x; z) in the maximised objective, so a
larger alpha is a stronger preference for information; lambda weighs the divergence between
the aggregated posterior and the prior. Since E_pD KL(q(z|x) || p(z)) = I_q(x; z) +
KL(q(z) || p(z)), alpha = 1 removes the per-sample KL and with it the ELBO's penalty on
I(x; z): maximum information preference (MMD-VAE below). alpha = 0 keeps the ELBO's KL whole:
no information preference, only the extra (lambda - 1) D(q(z) || p(z)). alpha < 0 penalises
information (beta-VAE: lambda = 1 - alpha, beta = 1 - alpha). alpha = 0, lambda = 1 is the VAE.
Constraints: alpha <= 1 and alpha + lambda - 1 >= 0 (both weights >= 0).

Defaults alpha = 0, lambda = 1000: the setting of the paper's MNIST experiments (MMD
divergence; a KL weight of 1 and a divergence weight of 999), as third-party implementations
also record (odin-ai's InfoVAE: "For MNIST, the authors used scaling coefficient lambda=1000,
and information preference alpha=0"). With these defaults InfoVAE has no information
preference beyond the ELBO's; set alpha (<= 1) for one.

D, by name (`divergence`):

- "mmd" (default): the unbiased MMD^2 between the batch's codes z_i ~ q(z|x_i) and as many
  prior samples (`vaebench.variants.mmd`, `kernel` "rbf" (the paper's Gaussian kernel,
  default) or "imq", scale 2 d sigma_z^2).
- "kl": KL(q(z) || p(z)) estimated on the minibatch with the aggregated posterior's
  log-mean-exp: mean_i [ logsumexp_j log q(z_i|x_j) - log B - log p(z_i) ]
  (`aggregate.minibatch_kl_to_prior`; a biased estimate whose bias shrinks as B grows),
  reported as the term "kl_qz".

MMD-VAE (`mmd_vae`) is alpha = 1, D = MMD: L(x) = E[-log p(x|z)] + lambda MMD^2(q(z), p(z)),
default lambda = 1000 and the rbf kernel. Its encoder is deterministic by default, z = mu(x)
(`encoder = "deterministic"`, as in the authors' MMD-VAE code, Zhao's "A Tutorial on
Information Maximizing Variational Autoencoders"; the log-variance output is unused), because
with alpha = 1 nothing but the reconstruction keeps a Gaussian encoder away from
q(z|x) = p(z) for every x: there MMD^2 = 0 exactly and no information flows. A Gaussian
encoder starts next to it (log-variance near 0), and at lambda = 1000 the MMD term's gradient
on the encoder's output layer is, at initialisation, many times the reconstruction term's in
mean (pulling every posterior onto the prior) and more again in standard deviation, so the
reconstruction's pull away from that state is lost in the noise and most seeds keep no active
unit. A deterministic code is a point mass per image, never the prior, so the MMD term itself
spreads the codes. (The measurements: README, "Does the latent code carry information?")
`encoder = "gaussian"` keeps the reparameterised z ~ q(z|x).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeVar

import torch

from vaebench.params import hyperparameter
from vaebench.variants.aggregate import minibatch_kl_to_prior
from vaebench.variants.base import ChosenEncoder, GaussianEncoderVariant, Hyperparameters, HyperparametersClass, Losses
from vaebench.variants.claims import Claim, with_pixelcnn
from vaebench.variants.gaussian import ENCODERS, sample_code
from vaebench.variants.mmd import KERNELS, mmd_to_prior
from vaebench.variants.registry import register_variant

DIVERGENCES = ("mmd", "kl")
# The loss term each divergence reports ("kl" is the per-image KL(q(z|x) || p(z))).
DIVERGENCE_TERMS = {"mmd": "mmd", "kl": "kl_qz"}


@dataclass(frozen=True)
class InfoVAEHyperparameters(Hyperparameters):
    alpha: float = hyperparameter(0.0, maximum=1.0, doc="information preference; the KL weight is 1 - alpha >= 0")
    lambda_: float = hyperparameter(1000.0, minimum=0.0, doc="weight of D(q(z) || p(z))")
    divergence: str = hyperparameter("mmd", choices=DIVERGENCES)
    kernel: str = hyperparameter("rbf", choices=KERNELS)

    def validate(self) -> None:
        self.require(
            self.alpha + self.lambda_ - 1 >= 0, "lambda_", ">= 1 - alpha (the divergence weight is >= 0)", self.lambda_
        )


@dataclass(frozen=True)
class MMDVAEHyperparameters(ChosenEncoder, Hyperparameters):
    lambda_: float = hyperparameter(1000.0, minimum=0.0, doc="weight of MMD^2(q(z), p(z))")
    kernel: str = hyperparameter("rbf", choices=KERNELS)
    encoder: str = hyperparameter("deterministic", choices=ENCODERS)
    # InfoVAE's settings this special case fixes (not hyperparameters of mmd_vae).
    alpha = 1.0
    divergence = "mmd"


# InfoVAE's objective reads alpha, lambda_, divergence and kernel: its own hyperparameters', or
# those of its special case MMD-VAE, which fixes alpha and the divergence
InfoHyperparameters = TypeVar("InfoHyperparameters", InfoVAEHyperparameters, MMDVAEHyperparameters)


@register_variant("info_vae")
class InfoVAE(GaussianEncoderVariant[InfoHyperparameters]):
    """recon + (1 - alpha) KL(q(z|x) || p(z)) + (alpha + lambda - 1) D(q(z) || p(z))."""

    Hyperparameters: ClassVar[HyperparametersClass] = InfoVAEHyperparameters  # (mmd_vae names its own)
    # Zhao et al. 2019, "The Information Preference Property" and the experiments with a PixelCNN
    # decoder: the latent code stays informative where the ELBO lets the decoder ignore it
    claims = (
        # the (alpha + lambda - 1) D(q(z) || p(z)) term (section "The InfoVAE model family")
        Claim("prior_mmd", "lower", "matches the aggregated posterior to the prior"),
        Claim("mi_xz", "higher", "keeps more information in z than the VAE when the decoder can ignore z",
              applies=with_pixelcnn),
    )

    def weights(self) -> tuple[float, float]:
        """(weight of KL(q(z|x) || p(z)), weight of D(q(z) || p(z)))."""
        h = self.hparams
        return 1.0 - h.alpha, h.alpha + h.lambda_ - 1.0

    @classmethod
    def batch_size_range(cls, hparams: InfoHyperparameters) -> tuple[int, int | None]:
        return (2, None) if hparams.divergence == "mmd" else (1, None)  # the unbiased MMD needs two codes

    def divergence(self, t: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.hparams.divergence == "mmd":
            return mmd_to_prior(t["z"], self.hparams.kernel)
        return minibatch_kl_to_prior(t["z"], t["mu"], t["logvar"])

    def loss(self, x: torch.Tensor, step: int) -> Losses:
        t = self.sample_terms(x)
        recon = t["recon"].mean()
        kl = t["kl_dims"].sum(1).mean()
        divergence = self.divergence(t)
        kl_weight, divergence_weight = self.weights()
        total = recon + kl_weight * kl + divergence_weight * divergence
        return Losses(total, {"recon": recon, "kl": kl, DIVERGENCE_TERMS[self.hparams.divergence]: divergence})


@register_variant("mmd_vae")
class MMDVAE(InfoVAE[MMDVAEHyperparameters]):
    """InfoVAE with alpha = 1 and D = MMD: recon + lambda * MMD^2(q(z), p(z)); z = mu(x) by default."""

    Hyperparameters = MMDVAEHyperparameters
    # the code is deterministic by default, so its I(x; z) is not that of a density (mi_xz would
    # read the unused log-variance output): the claim is on the latents the code uses
    claims = (
        Claim("prior_mmd", "lower", "matches the aggregated posterior to the prior"),
        Claim("active_units", "higher", "uses more latents than the VAE when the decoder can ignore z",
              applies=with_pixelcnn),
    )

    def posterior_code(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return sample_code(mu, logvar, self.hparams.encoder)
