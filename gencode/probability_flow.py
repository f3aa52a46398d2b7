r"""The probability flow ODE of a DDPM schedule, the DDIM sampler, and likelihoods through the ODE.

Time convention: data at :math:`\tau = 0`, noise at :math:`\tau = 1` (continuous time), and DDPM's
integer steps :math:`t = \tau T \in \{0, \dots, T\}` for DDIM. A noise predictor is called as
``eps_model(x, tau * T)``: its time input is the *continuous step index* in :math:`[0, T]`, so one
network serves DDIM (integer steps) and the ODE (any time).

* :class:`VPPath` extends a :class:`~gencode.diffusion.NoiseSchedule` to continuous time, with
  :math:`\log\bar\alpha` interpolated smoothly between steps, i.e. the VP SDE
  :math:`\mathrm{d}x = -\tfrac12\beta(\tau) x\,\mathrm{d}\tau + \sqrt{\beta(\tau)}\,\mathrm{d}W` with
  :math:`\beta(\tau) = -\mathrm{d}\log\bar\alpha/\mathrm{d}\tau`;
  its probability flow ODE is :math:`\mathrm{d}x/\mathrm{d}\tau = -\tfrac12 \beta(\tau)\,(x + \nabla\log p_\tau(x))`
  (``pf.marginals``, ``pf.gaussian``).
* :func:`ddim_step`, :func:`ddim_sample`: DDIM with any sub-sequence of steps and any :math:`\eta`
  (``ddim.update``: :math:`\eta = 0` is Euler's method on the ODE in :math:`(\bar x, \sigma)`;
  ``ddim.variance``: :math:`\eta = 1` on consecutive steps is DDPM's ancestral sampler with
  :math:`\tilde\beta_t`).
* :func:`pf_ode_sample`, :func:`ode_log_likelihood`: sampling and exact likelihoods through the ODE
  (:mod:`gencode.ode`).

References:
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole. Score-Based Generative Modeling through Stochastic
    Differential Equations. 2021. arXiv:2011.13456.
    Song, Meng, Ermon. Denoising Diffusion Implicit Models. 2021. arXiv:2010.02502.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from .diffusion import NoiseSchedule
from .distributions import Gaussian, GaussianMixture
from .ode import integrate_with_logdensity, odeint
from .oracle import MixtureOracle
from .paths import VPDiscrete, x0_from_eps_at

__all__ = ["VPPath", "ddim_sample", "ddim_sigma", "ddim_step", "ddim_timesteps", "noise_prediction_loss",
           "ode_log_likelihood", "oracle_noise_model", "oracle_score", "pf_ode_sample", "score_from_noise_model"]

NoiseModel = Callable[[torch.Tensor, torch.Tensor | float], torch.Tensor]
"""``eps(x, step)``: a noise predictor, ``step = tau * T`` in [0, T]."""
ScoreModel = Callable[[torch.Tensor, torch.Tensor | float], torch.Tensor]
"""``score(x, tau)``: an estimate of the score of the marginal at time ``tau`` in [0, 1]."""


def _unit_time(name: str, tau: float | torch.Tensor) -> None:
    """Raise if a host-side time is outside [0, 1] (device tensors are not read back)."""
    if isinstance(tau, torch.Tensor):
        if tau.device.type != "cpu":
            return
        bad = bool(((tau < 0) | (tau > 1) | ~torch.isfinite(tau)).any())
    else:
        bad = not (0.0 <= float(tau) <= 1.0)
    if bad:
        raise ValueError(f"{name} must lie in [0, 1], got {tau}")


class VPPath(VPDiscrete):
    r"""The continuous-time VP process of a DDPM schedule, :math:`x_\tau = a(\tau) x_0 + s(\tau)\varepsilon`: the
    path :class:`gencode.paths.VPDiscrete` (diffusion time :math:`t = \tau`) under this chapter's names.

    With :math:`u = \tau T`, :math:`\log\bar\alpha` is the cubic Hermite interpolant of the knots
    :math:`(t, \log\bar\alpha_t)` with central-difference slopes: at integer steps the path is exactly the
    schedule's :math:`q(x_t \mid x_0)`, and :math:`\beta(\tau) = -\mathrm{d}\log\bar\alpha/\mathrm{d}\tau`
    is continuous. Then :math:`a = \sqrt{\bar\alpha}` (:meth:`scale`), :math:`s = \sqrt{1 - \bar\alpha}`
    (:meth:`noise_std`).

    Args:
        schedule: the DDPM noise schedule.

    Example:
        >>> path = VPPath(NoiseSchedule.linear(1000))
        >>> abs(float(path.alphabar(0.3)) - float(path.schedule.alphas_cumprod[300])) < 1e-15
        True
    """

    def time(self, t: float | torch.Tensor, name: str = "tau") -> torch.Tensor:
        return super().time(t, name)

    def scale(self, tau: float | torch.Tensor) -> torch.Tensor:
        r""":math:`a(\tau) = \sqrt{\bar\alpha(\tau)}`."""
        return self.alpha(tau)

    def noise_std(self, tau: float | torch.Tensor) -> torch.Tensor:
        r""":math:`s(\tau) = \sqrt{1 - \bar\alpha(\tau)}`."""
        return self.sigma(tau)

    def pf_velocity(self, x: torch.Tensor, tau: float | torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        r"""The probability flow drift :math:`f - \tfrac{g^2}{2}\nabla\log p_\tau = -\tfrac{\beta}{2}(x + \nabla\log p_\tau)`
        (:meth:`gencode.paths.GaussianPath.sde_drift` with ``lam_noise = 0``).

        Args:
            x: points, shape ``(B, D)``.
            tau: time in [0, 1].
            score: :math:`\nabla \log p_\tau(x)`, shape of ``x``.
        """
        if score.shape != x.shape:
            raise ValueError(f"score must have the shape of x {tuple(x.shape)}, got {tuple(score.shape)}")
        return self.sde_drift(x, tau, score, 0.0)


def oracle_noise_model(oracle: MixtureOracle, schedule: NoiseSchedule) -> NoiseModel:
    r"""The exact noise predictor :math:`\mathbb{E}[\varepsilon \mid x_t]` of Gaussian-mixture data, with
    the calling convention of a network: ``eps(x, step)`` for any continuous step index in ``(0, T]``."""
    path = VPPath(schedule)

    def eps(x: torch.Tensor, step: torch.Tensor | float) -> torch.Tensor:
        tau = float(step) / path.T  # the oracle takes host scalars
        return oracle.noise(x, float(path.scale(tau)), float(path.noise_std(tau)))

    return eps


def oracle_score(oracle: MixtureOracle, schedule: NoiseSchedule) -> ScoreModel:
    r"""The exact score :math:`\nabla\log p_\tau(x)` of Gaussian-mixture data along :class:`VPPath`,
    as ``score(x, tau)``; defined at :math:`\tau = 0` too (the data's own score)."""
    path = VPPath(schedule)

    def score(x: torch.Tensor, tau: torch.Tensor | float) -> torch.Tensor:
        tau = float(tau)
        return oracle.score(x, float(path.scale(tau)), float(path.noise_std(tau)))

    return score


def score_from_noise_model(eps_model: NoiseModel, schedule: NoiseSchedule) -> ScoreModel:
    r"""A noise predictor read as a score, :math:`\nabla\log p_\tau(x) \approx -\epsilon_\theta(x, \tau T)/s(\tau)`
    (undefined at :math:`\tau = 0`, where :math:`s = 0`: stop ODEs at a small ``tau_min``)."""
    path = VPPath(schedule)

    def score(x: torch.Tensor, tau: torch.Tensor | float) -> torch.Tensor:
        return path.score_from_eps(eps_model(x, torch.as_tensor(tau, device=x.device, dtype=x.dtype) * path.T), tau)

    return score


# ---------------------------------------------------------------------------------------------
# DDIM


def ddim_sigma(schedule: NoiseSchedule, t: int, s: int, eta: float) -> torch.Tensor:
    r"""DDIM's noise level from step ``t`` to step ``s < t``:
    :math:`\sigma = \eta \sqrt{\frac{1 - \bar\alpha_s}{1 - \bar\alpha_t}}\sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_s}}`.

    For ``s = t - 1`` its square is :math:`\eta^2 \tilde\beta_t` (``ddim.variance``).
    """
    if not 0 <= s < t <= schedule.T:
        raise ValueError(f"need 0 <= s < t <= T = {schedule.T}, got t={t}, s={s}")
    if not (math.isfinite(eta) and eta >= 0):
        raise ValueError(f"eta must be finite and >= 0, got {eta}")
    ab_t, ab_s = schedule.alphas_cumprod[t], schedule.alphas_cumprod[s]
    return eta * ((1 - ab_s) / (1 - ab_t)).sqrt() * (1 - ab_t / ab_s).sqrt()


def ddim_step(schedule: NoiseSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: int, s: int,
              eta: float = 0.0, noise: torch.Tensor | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
    r"""One DDIM step from ``t`` to ``s < t`` (Song, Meng, Ermon, equation 12):

    .. math::
        \hat x_0 = \frac{x_t - \sqrt{1 - \bar\alpha_t}\,\epsilon}{\sqrt{\bar\alpha_t}}, \qquad
        x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1 - \bar\alpha_s - \sigma^2}\,\epsilon + \sigma z.

    DDIM's paper writes :math:`\alpha_t` for what DDPM (and this code) calls :math:`\bar\alpha_t`.

    Args:
        schedule: the noise schedule.
        x_t: current points, shape ``(B, D)``.
        eps: predicted noise at ``(x_t, t)``, shape of ``x_t``.
        t, s: current and next step, ``0 <= s < t <= T``.
        eta: 0 for the deterministic sampler, 1 for DDPM's variance on consecutive steps.
        noise: ``z``; drawn when ``sigma > 0`` and not given.
        generator: for ``z``.

    Returns:
        ``x_s``, shape of ``x_t``.
    """
    if eps.shape != x_t.shape:
        raise ValueError(f"eps must have the shape of x_t {tuple(x_t.shape)}, got {tuple(eps.shape)}")
    sigma = ddim_sigma(schedule, t, s, eta).to(device=x_t.device, dtype=x_t.dtype)
    ab = schedule.alphas_cumprod.to(device=x_t.device, dtype=x_t.dtype)
    x0_hat = x0_from_eps_at(x_t, eps, ab[t].sqrt(), (1 - ab[t]).sqrt())
    x_s = ab[s].sqrt() * x0_hat + (1 - ab[s] - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0:
        if noise is None:
            noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        x_s = x_s + sigma * noise
    return x_s


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """``steps + 1`` integer times from ``T`` down to 0, evenly spaced (duplicates removed).

    Example:
        >>> ddim_timesteps(1000, 4)
        [1000, 750, 500, 250, 0]
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an int in [1, T = {T}], got {steps!r}")
    return list(dict.fromkeys(round(T - k * T / steps) for k in range(steps + 1)))


def ddim_sample(eps_model: NoiseModel, schedule: NoiseSchedule, x_T: torch.Tensor, steps: int,
                eta: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Run DDIM from ``x_T`` (standard normal) through ``steps`` evenly spaced steps down to ``t = 0``.

    ``steps = T`` with ``eta = 1`` is DDPM's ancestral sampler with variance ``beta_tilde``.
    The number of function evaluations is ``steps``.

    Args:
        eps_model: noise predictor ``eps_model(x, t)``.
        schedule: the noise schedule.
        x_T: starting points, shape ``(B, D)``.
        steps: number of steps, in [1, T].
        eta: see :func:`ddim_step`.
        generator: for the noise when ``eta > 0``.

    Returns:
        Samples, shape of ``x_T``.
    """
    times = ddim_timesteps(schedule.T, steps)
    x = x_T
    for t, s in zip(times[:-1], times[1:]):
        x = ddim_step(schedule, x, eps_model(x, t), t, s, eta, generator=generator)
    return x


# ---------------------------------------------------------------------------------------------
# The ODE: sampling and likelihoods


def _ode_field(score_model: ScoreModel, path: VPPath) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def field(tau: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        tau = tau.clamp(0, 1)  # adaptive solvers may probe slightly past the end of the interval
        return path.pf_velocity(x, tau, score_model(x, tau))
    return field


def pf_ode_sample(score_model: ScoreModel, schedule: NoiseSchedule, x_T: torch.Tensor, *,
                  method: str = "heun", steps: int = 100, rtol: float = 1e-5, atol: float = 1e-5,
                  tau_min: float = 0.0) -> tuple[torch.Tensor, int]:
    r"""Integrate the probability flow ODE from :math:`\tau = 1` down to ``tau_min``.

    Args:
        score_model: ``score(x, tau)`` (:func:`oracle_score`, :func:`score_from_noise_model`).
        schedule: the noise schedule.
        x_T: starting points (standard normal), shape ``(B, D)``.
        method: ``"euler"``, ``"heun"`` or a torchdiffeq method.
        steps: fixed steps (Heun uses two evaluations per step).
        rtol, atol: tolerances of adaptive methods.
        tau_min: where to stop (0 for the data; a small positive value for networks whose score is
            unreliable at zero noise).

    Returns:
        ``(samples, nfe)``.
    """
    _unit_time("tau_min", tau_min)
    sol = odeint(_ode_field(score_model, VPPath(schedule)), x_T, 1.0, tau_min, method=method, steps=steps,
                 rtol=rtol, atol=atol)
    return sol.x, sol.nfe


def ode_log_likelihood(score_model: ScoreModel, schedule: NoiseSchedule, x0: torch.Tensor, *,
                       trace: Literal["exact", "hutchinson"] = "exact", method: str = "dopri5",
                       steps: int = 100, rtol: float = 1e-6, atol: float = 1e-8,
                       generator: torch.Generator | None = None,
                       prior: GaussianMixture | None = None) -> torch.Tensor:
    r""":math:`\log p_0(x_0)` through the probability flow ODE:

    .. math::
        \log p_0(x_0) = \log p_1(x_1) + \int_0^1 \operatorname{tr}\frac{\partial v}{\partial x}(\tau, x_\tau)\,\mathrm{d}\tau,

    integrating the data to :math:`\tau = 1` and scoring the end point under the prior
    :math:`p_1 \approx \mathcal{N}(0, I)` (its mean is :math:`\sqrt{\bar\alpha_T}\,\mathbb{E}[x_0]`,
    :math:`\sqrt{\bar\alpha_T} \approx 6 \cdot 10^{-3}` for DDPM's linear schedule, which bounds the error;
    pass the exact ``prior`` when it is known, as in the tests).

    Args:
        score_model: ``score(x, tau)``, defined down to ``tau = 0``.
        schedule: the noise schedule.
        x0: data points, shape ``(B, D)``.
        trace: ``"exact"`` (low dimension) or ``"hutchinson"``.
        method, steps, rtol, atol: the solver (see :func:`gencode.ode.odeint`).
        generator: for Hutchinson's probes.
        prior: the law at ``tau = 1``; ``None`` for the standard normal.

    Returns:
        Log-densities, shape ``(B,)``.
    """
    x1, ell, _ = integrate_with_logdensity(_ode_field(score_model, VPPath(schedule)), x0, 0.0, 1.0,
                                           trace=trace, method=method, steps=steps, rtol=rtol, atol=atol,
                                           generator=generator)
    if prior is None:
        prior = Gaussian(torch.zeros(x0.shape[1], device=x0.device, dtype=x0.dtype),
                         torch.eye(x0.shape[1], device=x0.device, dtype=x0.dtype))
    return prior.to(x1.device, x1.dtype).log_prob(x1) - ell


# ---------------------------------------------------------------------------------------------
# Training a noise predictor (for the comparisons of the chapters)


def noise_prediction_loss(model: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    r"""DDPM's simple loss :math:`\mathbb{E}_{t, \varepsilon}\|\varepsilon - \epsilon_\theta(x_t, t)\|^2`,
    :math:`t \sim \mathrm{Unif}\{1, \dots, T\}`, summed over coordinates and averaged over the batch.

    Args:
        model: ``model(x, t)`` with ``t`` of shape ``(B,)``.
        schedule: the noise schedule (on the data's device).
        x0: data batch, shape ``(B, D)``.
        generator: for ``t`` and the noise.
    """
    t = torch.randint(1, schedule.T + 1, (x0.shape[0],), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = schedule.q_sample(x0, t, noise=noise)
    return (model(x_t, t.to(x0.dtype)) - noise).square().sum(-1).mean()
