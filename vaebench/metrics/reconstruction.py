"""Reconstruction, ELBO, KL and active units, from one decoding pass of the test split.

Per image, averaged over the N test images (nats; sums over pixels):

    recon_mse   = sum_p (x_p - xhat_p)^2,             xhat = E[x | z], z ~ q(z|x)
    recon_bce   = -sum_p [x_p log xhat_p + (1 - x_p) log(1 - xhat_p)]   (Bernoulli NLL)
    kl          = KL(q(z|x) || N(0, I)) = sum_d 0.5 (mu_d^2 + sigma_d^2 - 1 - log sigma_d^2)
    kl_dim_d    = the d-th term of that sum
    neg_elbo    = -log p(x | z) + kl, under the model's own likelihood (Kingma and Welling 2014)
    active_units = #{d : Var_x(E_q[z_d | x]) > 0.01}   (Burda et al. 2016; threshold as Burgess et al. 2018)
"""

from __future__ import annotations

import numpy as np
import torch

from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric
from vaebench.variants.gaussian import kl_to_standard_normal, reparameterize

ACTIVE_UNIT_THRESHOLD = 0.01
BCE_EPS = 1e-6
DECODE_BATCH = 500


def squared_error(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Per-image sum of squared errors, (N,)."""
    return (x - x_hat).pow(2).flatten(1).sum(1)


def bernoulli_nll(x: torch.Tensor, probs: torch.Tensor, eps: float = BCE_EPS) -> torch.Tensor:
    """Per-image Bernoulli negative log-likelihood of x in [0, 1] under pixel probabilities, (N,)."""
    p = probs.clamp(eps, 1 - eps)
    return -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)


def kl_per_dimension(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """(N, D) KL(q(z_d | x_n) || N(0, 1))."""
    return kl_to_standard_normal(torch.as_tensor(mu), torch.as_tensor(logvar)).numpy()


def active_units(mu: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Number of latents whose posterior mean varies over the data: Var_n(mu_nd) > threshold."""
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2:
        raise ValueError(f"mu must be 2-D (N, D), got shape {mu.shape}")
    return int((mu.var(axis=0) > threshold).sum())


@torch.no_grad()
def reconstruction_pass(ctx: EvaluationContext) -> dict[str, np.ndarray]:
    """Per-image recon NLL (model likelihood), squared error and Bernoulli NLL for one z ~ q(z|x).

    Computed once per evaluation and shared by recon_mse, recon_bce and neg_elbo.
    """
    if "reconstruction" not in ctx.cache:
        generator = torch.Generator(device="cpu").manual_seed(ctx.seed)
        mu_all = torch.as_tensor(ctx.mu, dtype=torch.float32)
        lv_all = torch.as_tensor(ctx.logvar, dtype=torch.float32)
        parts: dict[str, list[torch.Tensor]] = {"nll": [], "mse": [], "bce": []}
        for start in range(0, len(mu_all), DECODE_BATCH):
            sl = slice(start, start + DECODE_BATCH)
            z = reparameterize(mu_all[sl], lv_all[sl], generator).to(ctx.device)
            x = ctx.test_images[sl].to(ctx.device)
            # an autoregressive decoder (pixelcnn) gives x's parameters by teacher forcing
            params = ctx.model.decode(z, x) if getattr(ctx.model, "autoregressive", False) else ctx.model.decode(z)
            x_hat = ctx.model.likelihood.mean(params)
            parts["nll"].append(-ctx.model.likelihood.log_prob(x, params).cpu())
            parts["mse"].append(squared_error(x, x_hat).cpu())
            parts["bce"].append(bernoulli_nll(x, x_hat).cpu())
        ctx.cache["reconstruction"] = {k: torch.cat(v).double().numpy() for k, v in parts.items()}
    return ctx.cache["reconstruction"]


@register_metric(
    "recon_mse", needs_decoder=True, family="reconstruction",
    description="mean squared error per image, summed over pixels",
    values=[MetricValue("recon_mse", higher_is_better=False)], abs_tol=0.5, rel_tol=0.05,
)
def _recon_mse(ctx: EvaluationContext) -> dict[str, float]:
    return {"recon_mse": float(reconstruction_pass(ctx)["mse"].mean())}


@register_metric(
    "recon_bce", needs_decoder=True, family="reconstruction",
    description="Bernoulli negative log-likelihood per image (nats)",
    values=[MetricValue("recon_bce", higher_is_better=False, role="distortion")], abs_tol=1.0, rel_tol=0.05,
)
def _recon_bce(ctx: EvaluationContext) -> dict[str, float]:
    return {"recon_bce": float(reconstruction_pass(ctx)["bce"].mean())}


@register_metric(
    "neg_elbo", needs_decoder=True, needs_density=True, family="likelihood",
    description="negative ELBO per image (nats), one posterior sample",
    values=[MetricValue("neg_elbo", higher_is_better=False)], abs_tol=1.0, rel_tol=0.05,
)
def _neg_elbo(ctx: EvaluationContext) -> dict[str, float]:
    kl = kl_per_dimension(ctx.mu, ctx.logvar).sum(axis=1)
    return {"neg_elbo": float((reconstruction_pass(ctx)["nll"] + kl).mean())}


@register_metric(
    "kl", needs_density=True, family="information",
    description="KL(q(z|x) || p(z)) per image, total and per latent (kl_dim_i)",
    values=[MetricValue("kl", higher_is_better=False, role="rate"), MetricValue("kl_dim_{i}", higher_is_better=False)],
    abs_tol=0.5, rel_tol=0.1,
)
def _kl_values(ctx: EvaluationContext) -> dict[str, float]:
    per_dim = kl_per_dimension(ctx.mu, ctx.logvar).mean(axis=0)
    return {"kl": float(per_dim.sum()), **{f"kl_dim_{d}": float(v) for d, v in enumerate(per_dim)}}


@register_metric(
    "active_units", family="information", description="latents with Var_x E[z|x] > 0.01 (Burgess et al. 2018)",
    values=[MetricValue("active_units", higher_is_better=True)], abs_tol=1.0, rel_tol=0.0,
)
def _active_units(ctx: EvaluationContext) -> dict[str, float]:
    return {"active_units": float(active_units(ctx.mu))}
