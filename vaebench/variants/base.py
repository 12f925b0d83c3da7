"""The variant contract: encode, decode, loss, and the optimisation phases the training loop steps.

A variant never steps an optimizer. `phases()` lists, in order, each optimizer's name,
its parameters, its learning-rate / betas overrides and the loss it minimises; the training
loop zeroes, back-propagates and steps each phase in turn on every batch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeAlias, TypeVar, cast

import torch
from torch import nn

from vaebench.errors import ConfigError
from vaebench.params import Param, check_params, dataclass_params
from vaebench.variants.claims import Claim
from vaebench.variants.gaussian import kl_to_standard_normal, reparameterize
from vaebench.variants.likelihoods import LIKELIHOODS
from vaebench.variants.networks import make_decoder, make_encoder, network_options
from vaebench.variants.pixelcnn import PixelCNNDecoder


@dataclass
class Losses:
    """A batch's loss: `total` is minimised, `terms` are the named scalar parts (batch means)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Phase:
    """One optimizer's step: minimise `loss(x, step).total` over `parameters`."""

    name: str
    parameters: list[nn.Parameter]
    loss: Callable[[torch.Tensor, int], Losses]
    learning_rate: float | None = None
    betas: tuple[float, float] | None = None


@dataclass(frozen=True)
class Hyperparameters:
    """Base for a variant's hyperparameters: a frozen dataclass that validates itself.

    Each field is declared with `vaebench.params.hyperparameter(default, minimum=..., choices=...)`
    (a plain default declares its type only); `from_dict` checks names, types and ranges through
    `vaebench.params.check_params`, the one checker suites and metrics use too. Constraints
    between fields go in `validate()` with `self.require(...)`. A field whose value follows from the
    data is declared with `from_dataset` (default None) and completed by `for_dataset`.
    """

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the key for values that are invalid together."""

    @staticmethod
    def require(condition: bool, key: str, allowed: str, value: Any) -> None:
        if not condition:
            raise ConfigError(f"must be {allowed}, got {value!r}", key=key)

    @classmethod
    def params(cls) -> list[Param]:
        return dataclass_params(cls)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Hyperparameters:
        """Build from a suite file's table, checking names, types and ranges."""
        try:
            return cls(**check_params(values, cls.params()))
        except ConfigError as err:
            if err.detail.startswith("unknown key"):
                raise ConfigError(err.detail.replace("unknown key", "unknown hyperparameter"), key=err.key) from None
            raise

    @classmethod
    def for_dataset(cls, values: Mapping[str, Any], dataset: Any) -> Hyperparameters:
        """`from_dict(values)` for a run on `dataset`: each field declared `from_dataset` that `values`
        leaves unset takes its value from the dataset (e.g. `dataset_size`, the training split's size)."""
        filled = {p.key: p.from_dataset(dataset) for p in cls.params()
                  if p.from_dataset is not None and p.key not in values}
        return cls.from_dict({**values, **filled})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def deterministic_encoder(self) -> bool:
        """Whether the code is z = mu(x), a point mass q(z|x): False unless the variant's hyperparameters
        choose their encoder (`ChosenEncoder`)."""
        return False


class ChosenEncoder:
    """Mixin of the Hyperparameters of a variant whose `encoder` hyperparameter chooses its code:
    "deterministic" (z = mu(x)) or "gaussian" (z ~ q(z|x)), `vaebench.variants.gaussian.ENCODERS`."""

    encoder: str

    @property
    def deterministic_encoder(self) -> bool:
        return self.encoder == "deterministic"


# A variant's hyperparameter class. Inside a variant's class body the name `Hyperparameters` is the
# class attribute below, so annotations there name the type through these module-level names.
HyperparametersClass: TypeAlias = type[Hyperparameters]
H = TypeVar("H", bound=Hyperparameters)


class Variant(nn.Module, Generic[H]):
    """A VAE-family model: shared encoder/decoder networks plus one objective.

    encode(x) -> (mu, logvar); decode(z) -> likelihood parameters; loss(x, step) -> Losses.
    `Variant[XHyperparameters]`: a variant whose `hparams` are an `XHyperparameters`, the class it
    names as `Hyperparameters`.
    """

    name: ClassVar[str]
    Hyperparameters: ClassVar[HyperparametersClass] = Hyperparameters
    # what the objective promises, tested by `vaebench claims` (see vaebench.variants.claims)
    claims: ClassVar[tuple[Claim, ...]] = ()

    def __init__(
        self,
        hparams: H,
        *,
        image_shape: tuple[int, int, int],
        latent_dim: int,
        architecture: str,
        likelihood: str,
        network: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    ):
        super().__init__()
        self.hparams = hparams
        channels, height, width = image_shape
        self.image_shape = (channels, height, width)
        self.latent_dim = latent_dim
        encoder_options, decoder_options = network_options(dict(network or {}))
        self.encoder = make_encoder(architecture, self.image_shape, latent_dim, **encoder_options)
        self.decoder = make_decoder(architecture, self.image_shape, latent_dim, **decoder_options)
        self.likelihood = LIKELIHOODS.get(likelihood, key="likelihood")()

    @classmethod
    def batch_size_range(cls, hparams: H) -> tuple[int, int | None]:
        """(fewest, most or None) images per training step the objective is defined for with `hparams`,
        e.g. (2, None) for an unbiased MMD between the batch's codes and prior samples. The suite loader
        checks the budget's batch_size against it, so a run never trains to fail on its first step."""
        return 1, None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Likelihood parameters of p(x | z), (B, C, H, W).

        x: the images whose likelihood is wanted. A decoder whose pixels are independent given
        z ignores it. An autoregressive decoder (`pixelcnn`) computes each pixel's parameters
        from z and the pixels before it in x (teacher forcing: log p(x | z) exactly, in one
        pass); without x it draws an image from p(x | z) pixel by pixel (the global RNG) and
        returns the parameters along that draw.
        """
        if not self.autoregressive:
            return self.decoder(z)
        if x is not None:
            return self.decoder(z, x)
        return cast(PixelCNNDecoder, self.decoder).sample(z, self.likelihood)[1]  # the autoregressive decoder

    @property
    def deterministic_encoder(self) -> bool:
        """Whether the code is z = mu(x), as the hyperparameters declare it (`Hyperparameters.deterministic_encoder`):
        q(z|x) is a point mass with no density, and the encoder's log-variance output is unused. Evaluation
        then reads the posterior as logvar = -inf (`encode_in_batches`), so sampled codes are the means, and
        skips the metrics that need a density (`MetricInfo.needs_density`: KL, ELBO, I(x; z))."""
        return self.hparams.deterministic_encoder

    @property
    def autoregressive(self) -> bool:
        """Whether the decoder's parameters at a pixel depend on the pixels before it (`pixelcnn`):
        then the likelihood parameters of given images come from decode(z, x)."""
        return getattr(self.decoder, "autoregressive", False)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) per image, (B,)."""
        return self.likelihood.log_prob(x, self.decode(z, x))

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def loss(self, x: torch.Tensor, step: int) -> Losses:
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        """The optimisation phases, stepped in order on each batch. Default: one optimizer."""
        return [Phase("model", list(self.parameters()), self.loss)]


class GaussianEncoderVariant(Variant[H]):
    """Variants whose loss is built from one reparameterised sample: recon NLL and KL per image."""

    def posterior_code(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The code the decoder reconstructs from: one reparameterised z ~ q(z|x)."""
        return reparameterize(mu, logvar)

    def sample_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """mu, logvar, the code z (`posterior_code`), the per-image reconstruction NLL (B,) and per-dim KL (B, D)."""
        mu, logvar = self.encode(x)
        z = self.posterior_code(mu, logvar)
        return {
            "mu": mu,
            "logvar": logvar,
            "z": z,
            "recon": -self.log_likelihood(x, z),
            "kl_dims": kl_to_standard_normal(mu, logvar),
        }


ENCODE_BATCH = 500


def point_mass_posterior(model: object) -> bool:
    """Whether `model`'s posterior q(z|x) is a point mass: what a variant declares
    (`Variant.deterministic_encoder`, also read through the checked contract's wrapper); a model that
    declares nothing (an external model, a test's module) has the density of its (mu, logvar)."""
    return bool(getattr(model, "deterministic_encoder", False))


class EncodingModel(Protocol):
    """What encoding needs: a variant, or an external model behind its checked contract."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


@torch.no_grad()
def encode_in_batches(
    model: EncodingModel, images: Any, device: torch.device | str = "cpu", batch_size: int = ENCODE_BATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior (mu, logvar) of every image (a tensor or numpy array), float64 on the CPU, in
    batches; logvar = -inf (a point mass) for a model with a deterministic encoder."""
    x = torch.as_tensor(images)
    point_mass = point_mass_posterior(model)
    mus, logvars = [], []
    for start in range(0, len(x), batch_size):
        mu, logvar = model.encode(x[start : start + batch_size].to(device))
        mus.append(mu.double().cpu())
        logvars.append(torch.full_like(mus[-1], -math.inf) if point_mass else logvar.double().cpu())
    return torch.cat(mus), torch.cat(logvars)

