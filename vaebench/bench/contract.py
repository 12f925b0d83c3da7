"""The model contract, checked on every call the evaluation makes, not only on a dry batch.

A model is scored through `CheckedModel`: each `encode`, `decode` and `log_likelihood`
call's output is compared with what its input implies, and a breach is a
`ContractError` naming the method, the shapes and what was expected, so a run fails in one line
instead of being scored on part of its data (an encoder returning 97 rows for 100 images) or
stored as a scored model whose codes are NaN:

    encode(x)             -> (mu, logvar), each (len(x), latent_dim), finite
    decode(z[, x])        -> likelihood parameters (len(z), *image_shape), finite
    log_likelihood(x, z)  -> (len(x),), finite

For a user's model (a plugin's variant, an external model) an exception raised inside one of
these methods is a ContractError too, naming the method and the error; vaebench's own variants'
exceptions pass unchanged (a bug keeps its traceback). Every other attribute is the model's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vaebench.errors import ContractError, NonFiniteOutputError
from vaebench.plugins import USER_CODE_ERRORS, first_line

CONTRACT = {
    "encode": "encode(x) -> (mu, logvar), each (len(x), latent_dim), finite",
    "decode": "decode(z) -> likelihood parameters (len(z), C, H, W), finite",
    "log_likelihood": "log_likelihood(x, z) -> (len(x),), finite",
}


class CheckedModel(nn.Module):
    """`inner` as the metrics see it: every output of its contract's methods checked (module docstring)."""

    def __init__(self, inner: nn.Module, *, image_shape: tuple[int, ...], latent_dim: int, name: str):
        super().__init__()
        self.inner = inner
        self.image_shape = tuple(image_shape)
        self.latent_dim = int(latent_dim)
        self.model_name = name
        # a user's model: a class from outside vaebench, or a wrapper of one that says so (ExternalModel)
        self.users_code = getattr(inner, "users_code", not type(inner).__module__.startswith("vaebench."))

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def _call(self, method: str, *args: Any) -> Any:
        if not self.users_code:
            return getattr(self.inner, method)(*args)
        try:
            return getattr(self.inner, method)(*args)
        except USER_CODE_ERRORS as err:
            raise ContractError(f"{self.model_name}: {method} failed: {first_line(err)}") from None

    def _breach(self, method: str, what: str, error: type[ContractError] = ContractError) -> ContractError:
        return error(f"{self.model_name}: {method} {what}; the contract is {CONTRACT[method]}")

    def _check(self, method: str, label: str, value: Any, shape: tuple[int, ...]) -> torch.Tensor:
        if not isinstance(value, torch.Tensor):
            raise self._breach(method, f"returned {type(value).__name__} for {label}, not a tensor")
        if tuple(value.shape) != shape:
            raise self._breach(method, f"returned {label} of shape {tuple(value.shape)} for a batch of {shape[0]}; "
                                       f"expected {shape}")
        if not value.is_floating_point():
            raise self._breach(method, f"returned {label} of dtype {value.dtype}; expected floating point")
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            raise self._breach(method, f"returned {bad} non-finite value(s) (NaN or infinite) in {label} "
                                       f"for a batch of {shape[0]}", NonFiniteOutputError)
        return value

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self._call("encode", x)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise self._breach("encode", f"returned {type(out).__name__}, not a pair (mu, logvar)")
        shape = (len(x), self.latent_dim)
        return self._check("encode", "mu", out[0], shape), self._check("encode", "logvar", out[1], shape)

    def decode(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        out = self._call("decode", z) if x is None else self._call("decode", z, x)
        return self._check("decode", "the likelihood parameters", out, (len(z), *self.image_shape))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self._check("log_likelihood", "log p(x | z)", self._call("log_likelihood", x, z), (len(x),))


def checked(model: nn.Module, *, image_shape: tuple[int, ...], latent_dim: int, name: str) -> CheckedModel:
    """`model` behind its checked contract (a CheckedModel is returned as it is)."""
    if isinstance(model, CheckedModel):
        return model
    return CheckedModel(model, image_shape=image_shape, latent_dim=latent_dim, name=name)


def non_finite_parameter(model: nn.Module) -> str | None:
    """The name of the first parameter or buffer of `model` holding a NaN or an infinity, or None."""
    for name, tensor in (*model.named_parameters(), *model.named_buffers()):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


