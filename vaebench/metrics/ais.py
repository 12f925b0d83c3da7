"""Annealed importance sampling (AIS) of log p(x), its bidirectional check (BDMC), and the
rate-distortion curve of a decoder along the AIS path.

Any model with a decoder density works: it needs only ``log_likelihood(x, z) -> (B,)``, log p(x | z)
summed over pixels, with the prior p(z) = N(0, I) (every vaebench variant, ``pixelcnn`` included,
and a user's own decoder). The encoder is not used.

AIS (Neal 2001, "Annealed importance sampling"; for decoder-based models Wu, Burda, Salakhutdinov
and Grosse 2017, "On the quantitative analysis of decoder-based generative models"). Intermediate
unnormalised densities between the prior and the posterior of one image x::

    f_t(z) = p(z) p(x | z)^beta_t,   0 = beta_0 < beta_1 < ... < beta_T = 1,   Z_t = int f_t(z) dz,

so Z_0 = 1 and Z_T = p(x). A chain starts at z_0 ~ p(z); at step t it adds
(beta_t - beta_{t-1}) log p(x | z_{t-1}) to its log weight, then moves z by a Markov transition that
leaves f_t / Z_t invariant. The weight w = prod_t f_t(z_{t-1}) / f_{t-1}(z_{t-1}) is an unbiased
estimate of p(x); the estimate is the log-mean-exp of the weights of `chains` independent chains::

    log p(x) ~= log (1/C) sum_c w_c        (a stochastic lower bound: E[log] <= log E[.] = log p(x))

and `ais_nll` returns its negative. Everything runs batched over (image, chain) pairs on the
model's device; log weights accumulate in float64 and the log-mean-exp is taken in float64.

Transitions: Hamiltonian Monte Carlo (Neal 2011, "MCMC using Hamiltonian dynamics") on the
potential U(z) = |z|^2 / 2 - beta_t log p(x | z): a unit-mass momentum, `leapfrog` leapfrog steps
(one decoder forward and backward pass each), a Metropolis accept/reject on the Hamiltonian
computed in float64. A draw or a proposal whose log-likelihood is not finite is rejected.

Step sizes, adapted in a pilot run. The rule is Wu et al. 2017's (and Grosse's BDMC code's):
after each transition a chain's step size is multiplied by STEP_SIZE_UP when the transition's
acceptance probability exceeds the target 0.65 and by STEP_SIZE_DOWN otherwise, within
STEP_SIZE_RANGE, starting from INITIAL_STEP_SIZE (the prior's scale). Adapting the estimating
chains themselves would make each chain's transitions depend on its own past, which biases AIS
(measured on a linear Gaussian model: forward and reverse AIS crossed by 0.5 nats). So a pilot,
forward AIS with PILOT_CHAINS chains per image, adapts; the estimate's chains then use, at each
beta, the geometric mean of the pilot chains' step sizes there: a schedule fixed before they
start, from chains independent of theirs, so the weights stay unbiased estimates of p(x) and the
BDMC bounds stay bounds. Its cost is PILOT_CHAINS / chains of the estimate's.

Schedule (`annealing_schedule`): ``"geometric"`` (default), beta_t log-spaced from
GEOMETRIC_START = 1e-4 to 1 (and beta_0 = 0). Once the likelihood dominates the prior, q_beta
narrows like 1 / sqrt(beta) and Var_{q_beta}[log p(x|z)] falls like D / (2 beta^2) (D latent
dimensions, a Laplace approximation), so a constant ratio beta_t / beta_{t-1} gives every step
the same log-weight variance; images of many pixels make log p(x|z) sharp enough for that regime
to start far below beta = 1. ``"sigmoid"``: beta_t = (s(t) - s(0)) / (s(T) - s(0)) with
s(t) = sigmoid(4 (2 t / T - 1)) (Grosse, Maddison and Salakhutdinov 2013; Wu et al. 2017),
dense at both ends; it did better with 100 distributions or fewer, the geometric one from 300 on
(measurements reported with issue 25).

BDMC (Grosse, Ghahramani and Adams 2015, "Sandwiching the marginal likelihood using bidirectional
Monte Carlo"). On data simulated from the model itself (z ~ p(z), x ~ p(x | z)), the z that
produced x is an exact sample of p(z | x): AIS run in reverse, from beta = 1 to 0 starting there,
has weights whose mean estimates 1 / p(x) without bias, so minus its log-mean-exp is a stochastic
upper bound on log p(x). Forward AIS gives a stochastic lower bound; the gap between the two
bounds bounds the error of either on such data, and says how far to trust `ais_nll` with the same
settings on that model.

Rate-distortion (Huang, Makhzani, Cao, Grosse and Duvenaud 2020, "Evaluating lossy compression
rates of deep generative models"). With the decoder fixed, the distortion of a code z is
d(x, z) = -log p(x | z) (nats) and the rate of an encoder q(z | x) is KL(q || p(z)). For each beta
the optimal encoder is the AIS distribution q_beta(z | x) = f_beta(z) / Z(beta), and

    D(beta) = E_{q_beta}[-log p(x | z)],
    R(beta) = KL(q_beta || p) = E_{q_beta}[log f_beta(z) - log Z(beta) - log p(z)]
            = -beta D(beta) - log Z(beta),

(d log Z / d beta = -D(beta), so dR / d beta = -beta dD / d beta >= 0: R falls to 0 at beta = 0,
where D(0) is the distortion of decoding from the prior, the curve's zero-rate end). At beta = 1, R + D = -log p(x).
AIS gives both along one path: log Z(beta_t) as the log-mean-exp of the chains' log weights
accumulated up to t, and D(beta_t) as the mean of -log p(x | z_t) over the chains' states after
the transition at beta_t, weighted by those normalised weights (a state and its weight are a
properly weighted sample of q_beta_t; Neal 2001, section 3). The weights matter at large beta,
where chains settle in different modes: the log-mean-exp then follows the best chains, and an
unweighted mean distortion over all chains made R = -beta D - log Z fall below zero (measured on
a trained VAE at beta > 30). The path continues past beta = 1
to `beta_max` (geometric steps: the posterior narrows like 1 / sqrt(beta)), tracing the
low-distortion part of the curve. Curves are averages over images of per-image R and D.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from vaebench.metrics.likelihood import IWAE_IMAGES, SUBSET_SEED, _model_device, scored_subset
from vaebench.metrics.registry import EvaluationContext, MetricValue, register_metric
from vaebench.params import Param
from vaebench.variants.base import point_mass_posterior
from vaebench.variants.iwae import importance_log_weights

# Defaults (chosen from measurements reported with issue 25).
DEFAULT_DISTRIBUTIONS = 500  # T: annealing steps from the prior (beta = 0) to the posterior (beta = 1)
DEFAULT_LEAPFROG = 1  # leapfrog steps per HMC transition
DEFAULT_CHAINS = 16  # independent chains per image
DEFAULT_IMAGES = 20  # test images scored by the registered metrics (a fixed random subset)
DEFAULT_SCHEDULE = "geometric"
SCHEDULES = ("sigmoid", "geometric")
CHUNK = 2048  # (image, chain) pairs decoded at once
PILOT_CHAINS = 2  # chains per image of the pilot run that tunes the step sizes
SIGMOID_RADIUS = 4.0
GEOMETRIC_START = 1e-4  # the geometric schedule's first non-zero beta

TARGET_ACCEPTANCE = 0.65
INITIAL_STEP_SIZE = 0.5
STEP_SIZE_RANGE = (1e-4, 1.0)
STEP_SIZE_UP, STEP_SIZE_DOWN = 1.05, 0.95

DEFAULT_BETA_MAX = 100.0  # the rate-distortion path's last beta
DEFAULT_RD_POINTS = 40  # points of the stored rate-distortion curve
ELBO_SAMPLES = 100  # posterior samples of the ELBO beside ais_nll (ais_elbo_gap)
RD_CURVES = ("ais_rd_beta", "ais_rd_rate", "ais_rd_distortion")


class DecoderDensity(Protocol):
    """What AIS needs: log p(x | z) per image, (B,), differentiable in z; the prior is N(0, I)."""

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor: ...


# ---------------------------------------------------------------------------- schedules


def annealing_schedule(distributions: int, kind: str = DEFAULT_SCHEDULE) -> np.ndarray:
    """(distributions + 1,) float64 betas from 0 to 1, increasing (see the module docstring)."""
    if distributions < 1:
        raise ValueError(f"the number of distributions must be >= 1, got {distributions}")
    if kind == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-np.linspace(-SIGMOID_RADIUS, SIGMOID_RADIUS, distributions + 1)))
        betas = (s - s[0]) / (s[-1] - s[0])
    elif kind == "geometric":
        betas = np.concatenate([[0.0], np.geomspace(GEOMETRIC_START, 1.0, distributions)]) if distributions > 1 \
            else np.array([0.0, 1.0])
    else:
        raise ValueError(f"unknown schedule {kind!r}; allowed: {', '.join(SCHEDULES)}")
    betas[0], betas[-1] = 0.0, 1.0
    return betas


def rate_distortion_schedule(distributions: int, beta_max: float, kind: str = DEFAULT_SCHEDULE) -> np.ndarray:
    """The betas of the rate-distortion path: `annealing_schedule` to 1, then `distributions`
    geometric steps from 1 to `beta_max` (none when beta_max = 1)."""
    if beta_max < 1.0:
        raise ValueError(f"beta_max must be >= 1, got {beta_max}")
    betas = annealing_schedule(distributions, kind)
    if beta_max > 1.0:
        betas = np.concatenate([betas, np.geomspace(1.0, beta_max, distributions + 1)[1:]])
    return betas


# ---------------------------------------------------------------------------- the sampler


class _EvalMode:
    """An nn.Module in eval mode for the block (its mode restored after); anything else untouched."""

    def __init__(self, model: Any):
        self.model, self.was_training = model, isinstance(model, nn.Module) and model.training

    def __enter__(self) -> None:
        if self.was_training:
            self.model.eval()

    def __exit__(self, *exc: object) -> None:
        if self.was_training:
            self.model.train()


@dataclass
class _Chains:
    """The outcome of annealing a batch: (B, C) final log weights; at the recorded indices, (R, B, C)
    accumulated log weights and log-likelihoods of the chains' states; the (T, B * C) step sizes
    the transitions used."""

    log_weights: torch.Tensor
    recorded_log_weights: torch.Tensor | None
    recorded_log_likelihood: torch.Tensor | None
    step_sizes: torch.Tensor

    def recorded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(recorded log weights, recorded log-likelihoods); the batch was annealed with `record`."""
        if self.recorded_log_weights is None or self.recorded_log_likelihood is None:
            raise ValueError("these chains were annealed without recording")
        return self.recorded_log_weights, self.recorded_log_likelihood


class _Annealer:
    """HMC-driven AIS over the rows of one batch: B images, each repeated for C chains."""

    def __init__(self, model: DecoderDensity, x: torch.Tensor, chains: int, leapfrog: int, generator: torch.Generator):
        self.model, self.chains, self.leapfrog, self.generator = model, chains, leapfrog, generator
        self.x = x.repeat_interleave(chains, dim=0)

    def value_and_grad(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(x | z) per row (float64) and its gradient in z (z's dtype)."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            ll = self.model.log_likelihood(self.x, z)
            (grad,) = torch.autograd.grad(ll.sum(), z)
        ll = ll.detach().double()
        return ll, torch.where(torch.isfinite(grad), grad, torch.zeros_like(grad))

    def transition(self, z, ll, grad, beta, step):
        """One HMC transition leaving p(z) p(x|z)^beta invariant: (z, ll, grad, acceptance probability)."""
        p0 = torch.randn(z.shape, generator=self.generator, dtype=z.dtype, device=z.device)
        u = torch.rand(z.shape[0], generator=self.generator, dtype=torch.float64, device=z.device)
        eps = step.to(z.dtype).unsqueeze(1)
        p = p0 - 0.5 * eps * (z - beta * grad)
        z_new, ll_new, grad_new = z, ll, grad
        for i in range(self.leapfrog):
            z_new = z_new + eps * p
            ll_new, grad_new = self.value_and_grad(z_new)
            force = z_new - beta * grad_new
            p = p - (eps if i < self.leapfrog - 1 else 0.5 * eps) * force
        h_old = 0.5 * z.double().pow(2).sum(1) - beta * ll + 0.5 * p0.double().pow(2).sum(1)
        h_new = 0.5 * z_new.double().pow(2).sum(1) - beta * ll_new + 0.5 * p.double().pow(2).sum(1)
        log_accept = h_old - h_new
        log_accept = torch.where(torch.isfinite(log_accept), log_accept, torch.full_like(log_accept, -math.inf))
        accept = torch.log(u) < log_accept
        z = torch.where(accept.unsqueeze(1), z_new, z)
        ll = torch.where(accept, ll_new, ll)
        grad = torch.where(accept.unsqueeze(1), grad_new, grad)
        return z, ll, grad, log_accept.clamp(max=0.0).exp()

    def run(
        self, z: torch.Tensor, betas: np.ndarray, *, steps: torch.Tensor | None = None, record: list[int] | None = None,
    ) -> _Chains:
        """Anneal from z (a sample of f_{betas[0]}) along `betas`, recording after the transitions at `record`.

        steps: (T, rows) the step size of each transition, fixed in advance; None adapts each
        chain's step size from its own acceptance (the pilot run).
        """
        ll, grad = self.value_and_grad(z)
        log_w = torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
        step = torch.full((z.shape[0],), INITIAL_STEP_SIZE, dtype=torch.float64, device=z.device)
        used = []
        wanted = set(record or ())
        rec_w, rec_ll = [], []
        if 0 in wanted:
            rec_w.append(log_w.clone())
            rec_ll.append(ll.clone())
        for t in range(1, len(betas)):
            log_w = log_w + (float(betas[t]) - float(betas[t - 1])) * ll
            if steps is not None:
                step = steps[t - 1]
            used.append(step)
            z, ll, grad, prob = self.transition(z, ll, grad, float(betas[t]), step)
            if steps is None:
                factor = torch.where(prob > TARGET_ACCEPTANCE, STEP_SIZE_UP, STEP_SIZE_DOWN)
                step = (step * factor).clamp(*STEP_SIZE_RANGE)
            if t in wanted:
                rec_w.append(log_w.clone())
                rec_ll.append(ll.clone())
        shape = (-1, self.chains)

        def stacked(parts):
            return torch.stack([p.view(shape) for p in parts]).cpu() if record is not None else None

        return _Chains(log_w.view(shape).cpu(), stacked(rec_w), stacked(rec_ll), torch.stack(used))


def _log_mean_exp(log_w: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.logsumexp(log_w.double(), dim=dim) - math.log(log_w.shape[dim])


def _check(chains: int, leapfrog: int, chunk: int) -> None:
    for name, value in (("chains", chains), ("leapfrog", leapfrog), ("chunk", chunk)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def _generator(seed: int, start: int, purpose: int, device: torch.device) -> torch.Generator:
    """A torch generator on the device for one batch (its first image `start`) and purpose
    (0: the pilot, 1: the estimate), seeded from (seed, start, purpose)."""
    state = np.random.SeedSequence([int(seed), int(start), purpose]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state >> np.uint64(1)))


def _anneal_all(
    model: DecoderDensity, images: Any, betas: np.ndarray, *, latent_dim: int, starts: Any = None, seed: int,
    chains: int, leapfrog: int, chunk: int, device: torch.device | str | None, record: list[int] | None = None,
) -> list[_Chains]:
    """Anneal every image's chains along the increasing `betas`, in batches of at most `chunk`
    (image, chain) rows; with `starts`, in reverse (from betas[-1] down to 0).

    Each batch first runs the pilot that fixes the step sizes (module docstring); a reverse
    transition at beta_j uses the pilot's step at beta_j (at beta_0, beta_1's).

    starts: (N, latent_dim) states every chain of an image starts from (reverse AIS: the exact
    posterior samples), or None for draws of the prior. Each batch draws from generators of its
    own (`_generator`): the result depends on (seed, chains, chunk) only, and the steps of a path
    draw the same whatever steps follow them (the rate-distortion path extends ais_nll's).
    """
    _check(chains, leapfrog, chunk)
    x_all = torch.as_tensor(images)
    device = torch.device(device) if device is not None else _model_device(model)
    dtype = x_all.dtype if x_all.is_floating_point() else torch.get_default_dtype()
    per_batch = max(1, chunk // chains)
    transitions = len(betas) - 1
    out = []
    with _EvalMode(model):
        for start in range(0, len(x_all), per_batch):
            x = x_all[start : start + per_batch].to(device)
            pilot_generator = _generator(seed, start, 0, device)
            pilot = _Annealer(model, x, PILOT_CHAINS, leapfrog, pilot_generator)
            z = torch.randn((len(x) * PILOT_CHAINS, latent_dim), generator=pilot_generator, dtype=dtype, device=device)
            tuned = pilot.run(z, betas).step_sizes.view(transitions, len(x), PILOT_CHAINS).log().mean(-1).exp()
            steps = tuned.repeat_interleave(chains, dim=1)  # (T, B * C): transition t targets beta_t
            generator = _generator(seed, start, 1, device)
            annealer = _Annealer(model, x, chains, leapfrog, generator)
            if starts is None:
                z = torch.randn((len(x) * chains, latent_dim), generator=generator, dtype=dtype, device=device)
                out.append(annealer.run(z, betas, steps=steps, record=record))
            else:
                z = torch.as_tensor(starts[start : start + per_batch]).to(device, dtype).repeat_interleave(chains, 0)
                # reverse transition t targets beta_{T - t}: the pilot's step there (beta_1's at beta_0)
                order = [max(transitions - t, 1) - 1 for t in range(1, transitions + 1)]
                out.append(annealer.run(z, betas[::-1].copy(), steps=steps[order], record=record))
    return out


# ---------------------------------------------------------------------------- public estimates


def ais_log_likelihood(
    model: DecoderDensity, images: Any, *, latent_dim: int, seed: int = 0,
    distributions: int = DEFAULT_DISTRIBUTIONS, leapfrog: int = DEFAULT_LEAPFROG, chains: int = DEFAULT_CHAINS,
    schedule: str = DEFAULT_SCHEDULE, chunk: int = CHUNK, device: torch.device | str | None = None,
) -> np.ndarray:
    """(N,) float64: AIS estimates of log p(x_n) (nats); `ais_nll` is their negative. Arguments as `ais_nll`."""
    betas = annealing_schedule(distributions, schedule)
    parts = _anneal_all(model, images, betas, latent_dim=latent_dim, seed=seed, chains=chains, leapfrog=leapfrog,
                        chunk=chunk, device=device)
    return torch.cat([_log_mean_exp(p.log_weights) for p in parts]).numpy()


def ais_nll(
    model: DecoderDensity, images: Any, *, latent_dim: int, seed: int = 0,
    distributions: int = DEFAULT_DISTRIBUTIONS, leapfrog: int = DEFAULT_LEAPFROG, chains: int = DEFAULT_CHAINS,
    schedule: str = DEFAULT_SCHEDULE, chunk: int = CHUNK, device: torch.device | str | None = None,
) -> np.ndarray:
    """(N,) float64: -log p(x_n) estimated by annealed importance sampling (nats per image).

    model: has log_likelihood(x, z) -> (B,), log p(x | z) summed over pixels and differentiable
        in z; the prior is N(0, I) on `latent_dim` dimensions. An nn.Module is put in eval mode
        for the call (its mode restored after); rows of a batch must not interact.
    images: (N, ...) tensor or array in the model's input format; z takes its floating dtype.
    distributions: annealing steps T from the prior to the posterior (T + 1 distributions).
    leapfrog: leapfrog steps per HMC transition: a chain costs 1 + T x leapfrog decoder forward
        and backward passes, and each image has `chains` chains plus PILOT_CHAINS (the pilot
        run that tunes the step sizes).
    chains: independent chains per image; the estimate is the log-mean-exp of their weights
        (in expectation a lower bound on log p(x), so ais_nll is an upper bound on -log p(x)).
    schedule: "sigmoid" or "geometric" (`annealing_schedule`).
    chunk: at most this many (image, chain) pairs are annealed at once (memory).
    seed: seeds the prior draws, momenta and accept tests (a torch generator on the device,
        so the global RNG is untouched); the same seed and chunk give bit-identical results.
    device: where to run the model (default: the device of its parameters).
    """
    return -ais_log_likelihood(model, images, latent_dim=latent_dim, seed=seed, distributions=distributions,
                               leapfrog=leapfrog, chains=chains, schedule=schedule, chunk=chunk, device=device)


@dataclass(frozen=True)
class BDMCBounds:
    """Per image (N,) float64 stochastic bounds on log p(x) (nats): `lower` from forward AIS, `upper`
    from reverse AIS started at the exact posterior sample."""

    lower: np.ndarray
    upper: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        """upper - lower per image: how far either bound (and `ais_nll` with these settings) may be off."""
        return self.upper - self.lower


def ais_bdmc(
    model: DecoderDensity, images: Any, latents: Any, *, seed: int = 0,
    distributions: int = DEFAULT_DISTRIBUTIONS, leapfrog: int = DEFAULT_LEAPFROG, chains: int = DEFAULT_CHAINS,
    schedule: str = DEFAULT_SCHEDULE, chunk: int = CHUNK, device: torch.device | str | None = None,
) -> BDMCBounds:
    """Bidirectional Monte Carlo: forward and reverse AIS bounds on log p(x) for simulated data.

    images, latents: (N, ...) images and the (N, D) codes they were drawn from, x_n ~ p(x | z_n)
        with z_n ~ p(z) (`simulate`); latents are then exact samples of p(z | x_n). On other
        data the upper "bound" is not one.
    The other arguments are `ais_nll`'s. The forward pass draws from `seed`, the reverse from
    seed + 1. Both are stochastic bounds (they hold in expectation, and with high probability
    as the number of chains grows); their gap closes as `distributions` grows.
    """
    z = torch.as_tensor(latents)
    betas = annealing_schedule(distributions, schedule)
    common: dict[str, Any] = dict(latent_dim=int(z.shape[1]), chains=chains, leapfrog=leapfrog, chunk=chunk,
                                  device=device)
    forward = _anneal_all(model, images, betas, seed=seed, **common)
    reverse = _anneal_all(model, images, betas, starts=z, seed=seed + 1, **common)
    lower = torch.cat([_log_mean_exp(p.log_weights) for p in forward]).numpy()
    upper = -torch.cat([_log_mean_exp(p.log_weights) for p in reverse]).numpy()
    return BDMCBounds(lower, upper)


@torch.no_grad()
def simulate(
    model: Any, n: int, *, latent_dim: int, seed: int = 0, device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, latents): n codes z ~ N(0, I) and images x ~ p(x | z) from a vaebench variant.

    model: a Variant (or anything with `likelihood.sample(params, generator)` and `decode(z)`;
        an autoregressive decoder draws pixel by pixel through `decoder.sample`). A seeded
        generator on the device makes the draws; the global RNG is untouched.
    """
    device = torch.device(device) if device is not None else _model_device(model)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    z = torch.randn((n, latent_dim), generator=generator, device=device)
    with _EvalMode(model):
        if getattr(model, "autoregressive", False):
            x = model.decoder.sample(z, model.likelihood, generator)[0]
        else:
            x = model.likelihood.sample(model.decode(z), generator)
    return x, z


@dataclass(frozen=True)
class RateDistortionCurve:
    """AIS rate-distortion curve of a decoder: `beta` (P,) increasing from 0, and per image and
    point (N, P) float64 `rate` (nats, KL(q_beta || p(z))), `distortion` (nats, E_q_beta[-log p(x|z)])
    and `log_partition` (log Z(beta) estimates; at beta = 1 the AIS estimate of log p(x))."""

    beta: np.ndarray
    rate: np.ndarray
    distortion: np.ndarray
    log_partition: np.ndarray

    @property
    def mean_rate(self) -> np.ndarray:
        return self.rate.mean(axis=0)

    @property
    def mean_distortion(self) -> np.ndarray:
        return self.distortion.mean(axis=0)

    def at(self, beta: float) -> int:
        """The index of the point whose beta is closest to `beta`."""
        return int(np.argmin(np.abs(self.beta - beta)))


def curve_indices(betas: np.ndarray, points: int) -> list[int]:
    """`points` indices into `betas` (sorted, unique): 0, the index of beta = 1, the last, and the
    rest nearest to log-spaced betas between betas[1] and betas[-1]."""
    if points < 2:
        raise ValueError(f"a curve needs at least 2 points, got {points}")
    targets = np.geomspace(betas[1], betas[-1], max(1, points - 1))
    chosen = {0, len(betas) - 1, int(np.argmin(np.abs(betas - 1.0)))}
    chosen |= {int(np.argmin(np.abs(np.log(betas[1:]) - np.log(t)))) + 1 for t in targets}
    return sorted(chosen)


def ais_rate_distortion(
    model: DecoderDensity, images: Any, *, latent_dim: int, seed: int = 0,
    distributions: int = DEFAULT_DISTRIBUTIONS, leapfrog: int = DEFAULT_LEAPFROG, chains: int = DEFAULT_CHAINS,
    schedule: str = DEFAULT_SCHEDULE, beta_max: float = DEFAULT_BETA_MAX, points: int = DEFAULT_RD_POINTS,
    chunk: int = CHUNK, device: torch.device | str | None = None,
) -> RateDistortionCurve:
    """The decoder's rate-distortion curve by AIS (Huang et al. 2020; see the module docstring).

    One AIS path per image: `distributions` steps from beta = 0 to 1 on `schedule`, then
    `distributions` geometric steps to `beta_max`. At about `points` betas along it (beta = 0,
    beta = 1 and the last among them): log Z = the log-mean-exp of the chains' accumulated log
    weights, D = the mean of -log p(x | z) over the chains weighted by those weights, and
    R = -beta D - log Z.
    R at beta = 0 is 0 and D there is the prior's zero-rate distortion. The other arguments are
    `ais_nll`'s; with the same seed and chunk, the path up to beta = 1 draws what `ais_nll`'s
    does, so -log_partition at beta = 1 equals ais_nll's estimate.
    """
    betas = rate_distortion_schedule(distributions, beta_max, schedule)
    record = curve_indices(betas, points)
    parts = _anneal_all(model, images, betas, latent_dim=latent_dim, seed=seed, chains=chains, leapfrog=leapfrog,
                        chunk=chunk, device=device, record=record)
    recorded = [p.recorded() for p in parts]
    log_z = torch.cat([_log_mean_exp(log_w).T for log_w, _ in recorded]).numpy()  # (N, P)
    # E_q_beta[-log p(x|z)]: the chains' states weighted by their normalised AIS weights (Neal 2001)
    distortion = torch.cat([
        (torch.softmax(log_w, dim=-1) * -log_likelihood).sum(-1).T for log_w, log_likelihood in recorded
    ]).numpy()
    beta = betas[record]
    rate = -beta * distortion - log_z
    rate[:, 0] = 0.0  # exactly: at beta = 0, log Z = 0 and beta D = 0
    return RateDistortionCurve(beta, rate, distortion, log_z)


# ---------------------------------------------------------------------------- registered metrics

AIS_PARAMS = [
    Param("ais_distributions", DEFAULT_DISTRIBUTIONS, minimum=1, doc="AIS steps from the prior to the posterior"),
    Param("ais_leapfrog", DEFAULT_LEAPFROG, minimum=1, doc="leapfrog steps per HMC transition"),
    Param("ais_chains", DEFAULT_CHAINS, minimum=1, doc="AIS chains per image"),
    Param("ais_images", DEFAULT_IMAGES, minimum=1,
          doc="test images scored by AIS (a fixed random subset of iwae_nll's), or simulated for ais_bdmc_gap"),
    Param("ais_schedule", DEFAULT_SCHEDULE, choices=SCHEDULES, doc="the annealing schedule of beta"),
    Param("ais_chunk", CHUNK, minimum=1, doc="(image, chain) pairs annealed at once"),
]


# the rate-distortion path's (read by ais_nll too, which runs on that path when both are computed: `_annealed`)
RD_PARAMS = [
    Param("ais_rd_beta_max", DEFAULT_BETA_MAX, minimum=1.0, doc="the rate-distortion path's last beta"),
    Param("ais_rd_points", DEFAULT_RD_POINTS, minimum=2, doc="points stored on the rate-distortion curve"),
]


def _settings(ctx: EvaluationContext) -> dict[str, Any]:
    p = ctx.params
    return dict(distributions=p["ais_distributions"], leapfrog=p["ais_leapfrog"], chains=p["ais_chains"],
                schedule=p["ais_schedule"], chunk=p["ais_chunk"], device=ctx.device)


def _describe(ctx: EvaluationContext, images: str) -> str:
    p = ctx.params
    return (f"AIS: {p['ais_distributions']} distributions ({p['ais_schedule']} schedule), HMC with "
            f"{p['ais_leapfrog']} leapfrog step{'s' if p['ais_leapfrog'] != 1 else ''} (step sizes tuned by a pilot "
            f"run to acceptance {TARGET_ACCEPTANCE}), "
            f"{p['ais_chains']} chains per image, {images}")


def _test_subset(ctx: EvaluationContext, size: int) -> tuple[torch.Tensor, str]:
    """The test images AIS scores: `size` of iwae_nll's (`iwae_images`), a fixed random choice, so
    ais_nll and iwae_nll compare (the same images when the two counts are equal); more than
    iwae_nll's, a fixed random `size` of the test split."""
    n = len(ctx.test_images)
    iwae = scored_subset(n, ctx.params["iwae_images"])
    if size < len(iwae):
        chosen = iwae[np.sort(np.random.default_rng(SUBSET_SEED).choice(len(iwae), size=size, replace=False))]
        which = f"images={len(chosen)}/{n} (a fixed subset of iwae_nll's {len(iwae)})"
    else:
        chosen = scored_subset(n, size)
        which = f"images={len(chosen)}/{n}" + (" (iwae_nll's)" if len(chosen) == len(iwae) else " (a fixed subset)")
    return ctx.test_images[torch.from_numpy(chosen)], which


def _latent_dim(ctx: EvaluationContext) -> int:
    return int(ctx.mu.shape[1])


def _annealed(ctx: EvaluationContext, *, with_curve: bool
              ) -> tuple[torch.Tensor, str, np.ndarray, RateDistortionCurve | None]:
    """(images, their description, ais_nll's (N,) estimates, the rate-distortion curve or None):
    one AIS path for ais_nll and ais_rate_distortion alike, run once per evaluation.

    The rate-distortion path continues ais_nll's and draws the same up to beta = 1, so
    -log Z(1) on it is ais_nll's estimate bit for bit (`ais_rate_distortion`). When this
    evaluation computes both metrics, or the curve is asked for, the longer path is run and
    ais_nll is read off it: a third of the two metrics' cost saved, their values unchanged."""
    cached = ctx.cache.get("ais_path")
    if cached is None or (with_curve and cached[3] is None):
        images, which = _test_subset(ctx, ctx.params["ais_images"])
        if with_curve or "ais_rate_distortion" in ctx.metrics:
            curve = ais_rate_distortion(ctx.model, images, latent_dim=_latent_dim(ctx), seed=ctx.seed,
                                        beta_max=ctx.params["ais_rd_beta_max"], points=ctx.params["ais_rd_points"],
                                        **_settings(ctx))
            nll = -curve.log_partition[:, curve.at(1.0)]
        else:
            curve, nll = None, ais_nll(ctx.model, images, latent_dim=_latent_dim(ctx), seed=ctx.seed,
                                       **_settings(ctx))
        cached = ctx.cache["ais_path"] = (images, which, nll, curve)
    return cached


@register_metric(
    "ais_nll", needs_decoder=True, family="likelihood", opt_in=True,
    description="-log p(x) by annealed importance sampling with HMC (nats; Neal 2001, Wu et al. 2017), and "
                "the ELBO's gap to it",
    values=[
        MetricValue("ais_nll", higher_is_better=False),
        MetricValue("ais_elbo_gap", higher_is_better=False,
                    description="-ELBO - ais_nll on the same images: how far the encoder is from the posterior"),
    ],
    # AIS scores a subset of iwae_nll's images; its path is the rate-distortion one when both are computed
    params=[*AIS_PARAMS, IWAE_IMAGES, *RD_PARAMS], abs_tol=0.5, rel_tol=0.01,
)
def _compute_ais_nll(ctx: EvaluationContext) -> dict[str, float]:
    images, which, nll, _ = _annealed(ctx, with_curve=False)
    ctx.notes["ais_nll"] = _describe(ctx, which)
    values = {"ais_nll": float(nll.mean())}
    if not point_mass_posterior(ctx.model) and callable(getattr(ctx.model, "encode", None)):
        generator_state = torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else [])
        with generator_state, torch.no_grad(), _EvalMode(ctx.model):
            torch.manual_seed(ctx.seed)
            if ctx.device.type == "cuda":
                torch.cuda.manual_seed(ctx.seed)
            elbo = torch.cat([importance_log_weights(ctx.model, x.to(ctx.device), ELBO_SAMPLES).double().mean(0).cpu()
                              for x in images.split(max(1, CHUNK // ELBO_SAMPLES))]).numpy()
        values["ais_elbo_gap"] = float((-elbo - nll).mean())
        ctx.notes["ais_elbo_gap"] = (f"ELBO: mean of {ELBO_SAMPLES} posterior samples per image; "
                                     f"ais_nll: {ctx.notes['ais_nll']}")
    return values


@register_metric(
    "ais_bdmc_gap", needs_decoder=True, family="likelihood", opt_in=True,
    description="BDMC gap (nats): reverse minus forward AIS bounds on log p(x) for data simulated from the model "
                "(Grosse et al. 2015); how far to trust ais_nll with these settings",
    values=[MetricValue("ais_bdmc_gap", higher_is_better=False)],
    params=AIS_PARAMS, abs_tol=0.5, rel_tol=0.1,
)
def _compute_bdmc(ctx: EvaluationContext) -> dict[str, float]:
    n = ctx.params["ais_images"]
    images, latents = simulate(ctx.model, n, latent_dim=_latent_dim(ctx), seed=ctx.seed, device=ctx.device)
    bounds = ais_bdmc(ctx.model, images, latents, seed=ctx.seed, **_settings(ctx))
    ctx.notes["ais_bdmc_gap"] = (
        f"{_describe(ctx, f'{n} images simulated from the model')}; mean bounds on log p(x): "
        f"forward {bounds.lower.mean():.4g}, reverse {bounds.upper.mean():.4g}"
    )
    return {"ais_bdmc_gap": float(bounds.gap.mean())}


@register_metric(
    "ais_rate_distortion", needs_decoder=True, family="information", opt_in=True,
    description="the decoder's rate-distortion curve by AIS (Huang et al. 2020), stored as curves "
                "ais_rd_beta, ais_rd_rate, ais_rd_distortion; values at beta = 0 and 1",
    values=[
        MetricValue("ais_rd_zero_rate_distortion", higher_is_better=False,
                    description="E_p(z)[-log p(x|z)]: the distortion of decoding from the prior (rate 0)"),
        MetricValue("ais_posterior_rate", higher_is_better=False,
                    description="KL(p(z|x) || p(z)): the rate of the exact posterior (beta = 1)"),
        MetricValue("ais_posterior_distortion", higher_is_better=False,
                    description="E_p(z|x)[-log p(x|z)]: the distortion of the exact posterior (beta = 1)"),
    ],
    curves=RD_CURVES,
    params=[*AIS_PARAMS, IWAE_IMAGES, *RD_PARAMS],
    abs_tol=0.5, rel_tol=0.05,
)
def _compute_rate_distortion(ctx: EvaluationContext) -> dict[str, float]:
    _, which, _, curve = _annealed(ctx, with_curve=True)
    assert curve is not None  # with_curve=True always gives one
    beta_max = ctx.params["ais_rd_beta_max"]
    rate, distortion = curve.mean_rate, curve.mean_distortion
    for step, (b, r, d) in enumerate(zip(curve.beta, rate, distortion)):
        ctx.curves.extend([(step, "ais_rd_beta", float(b)), (step, "ais_rd_rate", float(r)),
                           (step, "ais_rd_distortion", float(d))])
    note = f"{_describe(ctx, which)}; path continued to beta = {beta_max:g}; {len(curve.beta)} curve points"
    for name in ("ais_rd_zero_rate_distortion", "ais_posterior_rate", "ais_posterior_distortion"):
        ctx.notes[name] = note
    one = curve.at(1.0)
    return {"ais_rd_zero_rate_distortion": float(distortion[0]), "ais_posterior_rate": float(rate[one]),
            "ais_posterior_distortion": float(distortion[one])}
