"""The models: shared networks, one module per objective, and a registry by name."""

from vaebench.variants import vae  # noqa: F401  (registers vae, beta_vae)
from vaebench.variants.base import Hyperparameters, Losses, Phase, Variant
from vaebench.variants.registry import VARIANTS, build_variant, register_variant

__all__ = ["VARIANTS", "Hyperparameters", "Losses", "Phase", "Variant", "build_variant", "register_variant"]
