"""The models: shared networks, one module per objective, and a registry by name."""

# One module per objective; importing registers its variants.
from vaebench.variants import (  # noqa: F401  # noqa: F401  (info_vae also registers mmd_vae)
    aae,
    annealed_vae,
    beta_tcvae,
    dip_vae,
    factor_vae,
    info_vae,
    iwae,
    mi_vae,
    vae,  # noqa: F401  (registers vae, beta_vae)
    wae,
)
from vaebench.variants.base import Hyperparameters, Losses, Phase, Variant
from vaebench.variants.registry import VARIANTS, build_variant, register_variant

__all__ = ["VARIANTS", "Hyperparameters", "Losses", "Phase", "Variant", "build_variant", "register_variant"]
