"""The models: shared networks, one module per objective, and a registry by name."""

# One module per objective; importing registers its variants.
# (vae also registers beta_vae; info_vae also registers mmd_vae)
from vaebench.variants import aae, annealed_vae, beta_tcvae, dip_vae, factor_vae, info_vae, iwae, mi_vae, vae, wae  # noqa: F401 - imported to register
from vaebench.variants.base import Hyperparameters, Losses, Phase, Variant
from vaebench.variants.registry import VARIANTS, build_variant, register_variant

__all__ = ["VARIANTS", "Hyperparameters", "Losses", "Phase", "Variant", "build_variant", "register_variant"]
