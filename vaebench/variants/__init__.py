"""The models: shared networks, one module per objective, and a registry by name."""

from vaebench.variants import vae  # noqa: F401  (registers vae, beta_vae)
# One module per objective; importing registers its variants.
from vaebench.variants import aae, annealed_vae, beta_tcvae, dip_vae, factor_vae  # noqa: F401
from vaebench.variants import info_vae, iwae, mi_vae, wae  # noqa: F401  (info_vae also registers mmd_vae)
from vaebench.variants.base import Hyperparameters, Losses, Phase, Variant
from vaebench.variants.registry import VARIANTS, build_variant, register_variant

__all__ = ["VARIANTS", "Hyperparameters", "Losses", "Phase", "Variant", "build_variant", "register_variant"]
