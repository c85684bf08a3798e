"""Training objectives and samplers: rectified flow (SD3-style) and DDPM epsilon (SD2-style).

Time is one convention for both: a float t in [0, 1000). Flow uses sigma = t / 1000; DDPM uses
the integer step round(t). The samplers never touch FRAMER code: inference is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

T_MAX = 1000


@dataclass(frozen=True)
class Objective:
    """A diffusion objective: `flow` (x_t = (1-s) x0 + s e, v = e - x0) or `ddpm` (epsilon or v)."""

    kind: str
    beta_start: float = 1e-4  # ddpm only
    beta_end: float = 0.02
    schedule: str = "linear"  # linear | scaled_linear (SD2)
    time_sampling: str = "logit_normal"  # flow only: logit_normal (SD3) | uniform (covers sigma near 1)
    prediction: str = "native"  # native: v (flow) / epsilon (ddpm) | v: ddpm v-prediction | sample: x0 itself
    shift: float = 1.0  # flow only: SD3's timestep shift, sigma -> shift * sigma / (1 + (shift - 1) * sigma)

    def __post_init__(self) -> None:
        if self.kind not in ("flow", "ddpm"):
            raise ValueError(f"Objective.kind must be 'flow' or 'ddpm', got {self.kind!r}")
        if self.prediction not in ("native", "sample", "v"):
            raise ValueError(f"Objective.prediction must be 'native', 'v' or 'sample', got {self.prediction!r}")
        if self.prediction == "v" and self.kind != "ddpm":
            raise ValueError("Objective.prediction='v' is DDPM's v-prediction; flow's native prediction is v already")
        if self.shift <= 0:
            raise ValueError(f"Objective.shift must be > 0, got {self.shift}")


def alphas_cumprod(obj: Objective, device=None) -> Tensor:
    """[1000] cumulative product of (1 - beta) for a DDPM schedule."""
    if obj.schedule == "scaled_linear":
        betas = torch.linspace(obj.beta_start ** 0.5, obj.beta_end ** 0.5, T_MAX, device=device) ** 2
    else:
        betas = torch.linspace(obj.beta_start, obj.beta_end, T_MAX, device=device)
    return torch.cumprod(1.0 - betas.double(), 0).float()


def _bcast(v: Tensor, like: Tensor) -> Tensor:
    return v.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def _coeffs(obj: Objective, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    """(signal, noise) coefficients at time t, broadcast to `like` [B, ...]."""
    if obj.kind == "flow":
        sigma = t.float() / T_MAX
        return _bcast(1.0 - sigma, like), _bcast(sigma, like)
    abar = alphas_cumprod(obj, t.device)[t.round().long().clamp(0, T_MAX - 1)]
    return _bcast(abar.sqrt(), like), _bcast((1.0 - abar).sqrt(), like)


def sample_time(obj: Objective, batch: int, generator: torch.Generator | None = None, device=None,
                bias: float = 1.0) -> Tensor:
    """Training times [B]: logit-normal (SD3) or uniform sigma for flow, uniform integer steps for DDPM.

    A tiny model trained on logit-normal sigma never sees sigma > 0.95, where sampling starts. `bias` > 1 moves
    training times towards noise (u -> bias u / (1 + (bias - 1) u), SD3's shift applied once more); the
    sampler is not changed by it."""
    if obj.kind == "flow":
        u = torch.rand(batch, generator=generator) if obj.time_sampling == "uniform" else \
            torch.randn(batch, generator=generator).sigmoid()
        return (_shift(_shift(u, obj.shift), bias) * T_MAX).clamp(1.0, T_MAX - 1.0).to(device)
    if bias == 1.0:
        return torch.randint(0, T_MAX, (batch,), generator=generator).float().to(device)
    u = (torch.randint(0, T_MAX, (batch,), generator=generator).float() + 0.5) / T_MAX
    return (_shift(u, bias) * T_MAX).floor().clamp(0, T_MAX - 1).to(device)


def _shift(u: Tensor, s: float) -> Tensor:
    return u if s == 1.0 else s * u / (1.0 + (s - 1.0) * u)


def shift_sigma(obj: Objective, sigma: Tensor) -> Tensor:
    """SD3's timestep shift of flow sigmas in [0, 1] (identity at shift 1)."""
    return _shift(sigma, obj.shift)


def add_noise(obj: Objective, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x_t from clean x0 and noise."""
    a, s = _coeffs(obj, t, x0)
    return a * x0 + s * noise


def target(obj: Objective, x0: Tensor, noise: Tensor, t: Tensor | None = None) -> Tensor:
    """What the network predicts: x0 itself (sample), else v = noise - x0 (flow), the noise (ddpm) or DDPM's
    v = sqrt(abar) noise - sqrt(1 - abar) x0 (needs t)."""
    if obj.prediction == "sample":
        return x0
    if obj.prediction == "v":
        if t is None:
            raise ValueError("DDPM v-prediction targets need the time t")
        a, s = _coeffs(obj, t, x0)
        return a * noise - s * x0
    return noise - x0 if obj.kind == "flow" else noise


def to_x0(obj: Objective, pred: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
    """Clean-signal estimate from a prediction; pred may carry leading layer axes [..., B, C, H, W]."""
    if obj.prediction == "sample":
        return pred
    a, s = _coeffs(obj, t, x_t)
    if obj.prediction == "v":
        return a * x_t - s * pred
    if obj.kind == "flow":
        return x_t - s * pred
    return (x_t - s * pred) / a


def loss_weight(obj: Objective, t: Tensor, space: str = "x0", max_weight: float = 5.0) -> Tensor:
    """Per-sample weight [B] that turns the MSE on the native target into the MSE in another space.

    'native': plain v / epsilon MSE. 'x0': the clean-signal MSE ||x0_hat - x0||^2, which for flow is
    sigma^2 ||v_hat - v||^2 (the released FRAMER-D code's "preconditioned outputs") and for DDPM is
    ||eps_hat - eps||^2 / SNR, capped at `max_weight` (min-SNR style) so near-pure-noise steps stay finite.
    """
    if space == "native" or obj.prediction == "sample":
        return torch.ones_like(t, dtype=torch.float)
    if space != "x0":
        raise ValueError(f"loss space must be 'x0' or 'native', got {space!r}")
    if obj.kind == "flow":
        return (t.float() / T_MAX) ** 2
    abar = alphas_cumprod(obj, t.device)[t.round().long().clamp(0, T_MAX - 1)]
    if obj.prediction == "v":  # x0 = sqrt(abar) x_t - sqrt(1 - abar) v
        return 1.0 - abar
    return ((1.0 - abar) / abar).clamp(max=max_weight)


def model_timestep(obj: Objective, t: Tensor) -> Tensor:
    """The timestep value the network is conditioned on."""
    return t.float() if obj.kind == "flow" else t.round().long()


Denoiser = Callable[[Tensor, Tensor], Tensor]  # (x_t, t) -> prediction


@torch.no_grad()
def sample(obj: Objective, denoise: Denoiser, shape: tuple[int, ...], steps: int,
           generator: torch.Generator | None = None, device=None, clip: float | None = 1.0,
           noise: Tensor | None = None) -> Tensor:
    """Seeded sampling from pure noise (`noise`, or drawn from `generator`): Euler for flow, deterministic DDIM
    (eta=0) for DDPM. Deterministic after the first draw: the starting noise fixes the sample."""
    x = (torch.randn(shape, generator=generator) if noise is None else noise.reshape(shape)).to(device)
    times = torch.linspace(T_MAX - 1, 0, steps + 1, device=device)
    if obj.kind == "flow":
        times = shift_sigma(obj, times / T_MAX) * T_MAX
    for t_now, t_next in zip(times[:-1], times[1:]):
        t = t_now.expand(shape[0])
        pred = denoise(x, t)
        x = _step(obj, pred, x, t, t_next.expand(shape[0]), clip, last=bool(t_next == 0))
    return x


def _step(obj: Objective, pred: Tensor, x: Tensor, t: Tensor, t_next: Tensor, clip: float | None,
          last: bool) -> Tensor:
    x0 = to_x0(obj, pred, x, t)
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    if last:
        return x0
    a, s = _coeffs(obj, t, x)
    eps = (x - a * x0) / s
    a_next, s_next = _coeffs(obj, t_next, x)
    return a_next * x0 + s_next * eps  # flow: the Euler step x + (sigma_next - sigma) v, written via (x0, eps)
