r"""Diffusion SDEs: the VP and VE processes, Euler-Maruyama, reverse-time and predictor-corrector sampling.

**Time convention: data at** :math:`t = 0`, **noise at** :math:`t = T`. An :class:`SDE` is

.. math::
    \mathrm{d}x = f(x, t)\,\mathrm{d}t + g(t)\,\mathrm{d}W, \qquad t \in [0, T],

with a Gaussian transition kernel :math:`x_t \mid x_0 \sim \mathcal{N}(a(t)\, x_0, s(t)^2 I)`, so its
marginal on Gaussian-mixture data is :meth:`gencode.oracle.MixtureOracle.marginal` with
``scale = a(t)`` and ``noise_std = s(t)`` (:func:`oracle_score`). The kernels are the registered
identities ``sde.vp.kernel`` and ``sde.ve.kernel``; the reverse-time drift :math:`f - g^2 \nabla \log p_t`
is ``sde.reverse``; the Langevin corrector is ``sde.langevin.stationary`` (``tests/test_sde.py``).

Samplers take any score function ``score_fn(x, t) -> tensor`` (a network or the oracle), with ``x`` of
shape ``(B, D)`` and ``t`` a Python float shared by the batch. The time grid is built on the host once;
the loops never read device values back.

References:
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole. Score-Based Generative Modeling through Stochastic
    Differential Equations. 2021. arXiv:2011.13456.
    Anderson. Reverse-time diffusion equation models. Stochastic Processes and their Applications, 1982.
    Kloeden, Platen. Numerical Solution of Stochastic Differential Equations. Springer, 1992.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .diffusion import NoiseSchedule
from .oracle import MixtureOracle
from .paths import VE, GaussianPath, SubVP, VPLinear

__all__ = ["SDE", "PathSDE", "SDESample", "SubVPSDE", "VESDE", "VPSDE", "euler_maruyama", "euler_maruyama_moments", "langevin_corrector",
           "oracle_score",
           "predictor_corrector_sample", "reverse_sde_sample"]

Time = float | torch.Tensor
ScoreFn = Callable[[torch.Tensor, float], torch.Tensor]


class SDE(ABC):
    r"""An Ito SDE :math:`\mathrm{d}x = f(x, t)\,\mathrm{d}t + g(t)\,\mathrm{d}W` on :math:`[0, T]`,
    data at :math:`t = 0`, noise at :math:`t = T`, with kernel :math:`\mathcal{N}(a(t) x_0, s(t)^2 I)`.

    Time arguments are Python numbers or tensors (any shape); values outside :math:`[0, T]` raise
    ``ValueError`` (checked on the host for numbers and CPU tensors).

    Args:
        T: the final time, > 0.
    """

    def __init__(self, T: float = 1.0) -> None:
        if isinstance(T, bool) or not isinstance(T, int | float) or not math.isfinite(T) or T <= 0:
            raise ValueError(f"T must be a finite number > 0, got {T!r}")
        self.T = float(T)

    @abstractmethod
    def drift(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        """:math:`f(x, t)`, shape of ``x`` (B, D)."""

    @abstractmethod
    def diffusion(self, t: Time) -> torch.Tensor:
        """:math:`g(t) > 0`, shape of ``t``."""

    @abstractmethod
    def marginal_scale(self, t: Time) -> torch.Tensor:
        """:math:`a(t)`: the kernel's mean is :math:`a(t)\\, x_0`."""

    @abstractmethod
    def marginal_std(self, t: Time) -> torch.Tensor:
        """:math:`s(t)`: the kernel's covariance is :math:`s(t)^2 I`."""

    @abstractmethod
    def prior_std(self) -> float:
        """Standard deviation of the prior :math:`\\mathcal{N}(0, \\sigma_T^2 I)` that stands in for :math:`p_T`."""

    def prior_sample(self, n: int, dim: int, *, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``n`` draws of the prior, shape (n, dim)."""
        return self.prior_std() * torch.randn(n, dim, generator=generator, device=device, dtype=dtype)

    def reverse_drift(self, x: torch.Tensor, t: float, score_fn: ScoreFn) -> torch.Tensor:
        r"""The reverse-time drift :math:`f(x, t) - g(t)^2 \nabla_x \log p_t(x)` (``sde.reverse``), for ``dt < 0``."""
        return self.drift(x, t) - self.diffusion(t) ** 2 * score_fn(x, t)


class PathSDE(SDE):
    r"""The linear SDE :math:`\mathrm{d}x = f(t)\, x\,\mathrm{d}t + g(t)\,\mathrm{d}W` whose kernel is a Gaussian path
    :math:`\mathcal{N}(\alpha(t) x_0, \sigma(t)^2 I)` of :mod:`gencode.paths`: :math:`f = \dot\alpha/\alpha`,
    :math:`g^2 = 2\sigma\dot\sigma - 2 f\sigma^2` (:meth:`gencode.paths.GaussianPath.g2`). Every coefficient,
    and the reverse-time drift, comes from the path.

    Args:
        path: a :class:`gencode.paths.GaussianPath` on :math:`[0, T]`.
    """

    def __init__(self, path: GaussianPath) -> None:
        if not isinstance(path, GaussianPath):
            raise TypeError(f"path must be a GaussianPath, got {type(path).__name__}")
        if path.t_min != 0:
            raise ValueError(f"path must start at t = 0 (data at t = 0), got t_min = {path.t_min}")
        super().__init__(path.t_max)
        self.path = path

    def drift(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        return self.path.drift_coef(t) * x

    def diffusion(self, t: Time) -> torch.Tensor:
        return self.path.diffusion(t)

    def marginal_scale(self, t: Time) -> torch.Tensor:
        return self.path.alpha(t)

    def marginal_std(self, t: Time) -> torch.Tensor:
        return self.path.sigma(t)

    def reverse_drift(self, x: torch.Tensor, t: float, score_fn: ScoreFn) -> torch.Tensor:
        r"""The reverse-time drift :math:`f x - g^2 \nabla_x \log p_t(x)` (``sde.reverse``), for ``dt < 0``:
        :meth:`gencode.paths.GaussianPath.sde_drift` with ``lam_noise = 1``."""
        return self.path.sde_drift(x, t, score_fn(x, t), 1.0)


class VPSDE(PathSDE):
    r"""The variance preserving SDE :math:`\mathrm{d}x = -\tfrac12 \beta(t) x\,\mathrm{d}t + \sqrt{\beta(t)}\,\mathrm{d}W`.

    :math:`\beta(t) = \beta_{\min} + (\beta_{\max} - \beta_{\min})\, t / T` and
    :math:`B(t) = \int_0^t \beta = \beta_{\min} t + (\beta_{\max} - \beta_{\min})\, t^2 / (2T)`; the kernel is
    :math:`\mathcal{N}(e^{-B/2} x_0, (1 - e^{-B}) I)` (``sde.vp.kernel``), the path
    :class:`gencode.paths.VPLinear`; the prior is :math:`\mathcal{N}(0, I)`.

    Args:
        beta_min, beta_max: :math:`0 < \beta_{\min} \le \beta_{\max}`.
        T: final time.

    Example:
        >>> sde = VPSDE()
        >>> round(float(sde.marginal_scale(1.0) ** 2 + sde.marginal_std(1.0) ** 2), 12)
        1.0

    References:
        Song et al. Score-Based Generative Modeling through SDEs. 2021. arXiv:2011.13456 (eq. 11).
    """

    path: VPLinear

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0) -> None:
        super().__init__(VPLinear(beta_min, beta_max, T))
        self.beta_min, self.beta_max = self.path.beta_min, self.path.beta_max

    def beta(self, t: Time) -> torch.Tensor:
        """:math:`\\beta(t)`."""
        return self.path.beta(t)

    def integrated_beta(self, t: Time) -> torch.Tensor:
        """:math:`B(t) = \\int_0^t \\beta(s)\\,ds`."""
        return self.path.integrated_beta(t)

    def prior_std(self) -> float:
        return 1.0

    def ddpm_schedule(self, N: int) -> NoiseSchedule:
        r"""The DDPM schedule that discretises this SDE with ``N`` steps: :math:`\beta_i = \beta(t_i)\, h`,
        :math:`t_i = i h`, :math:`h = T/N` (``sde.ddpm_limit``). Needs :math:`\beta_{\max} h < 1`.

        Example:
            >>> VPSDE().ddpm_schedule(1000).T
            1000
        """
        if isinstance(N, bool) or not isinstance(N, int) or N < 1:
            raise ValueError(f"N must be a positive int, got {N!r}")
        h = self.T / N
        if self.beta_max * h >= 1:
            raise ValueError(f"N must exceed beta_max * T = {self.beta_max * self.T} so that every beta_i < 1")
        t = torch.arange(1, N + 1, dtype=torch.float64) * h
        return NoiseSchedule(self.beta(t) * h)


class VESDE(PathSDE):
    r"""The variance exploding SDE :math:`\mathrm{d}x = \sqrt{\mathrm{d}\sigma^2(t)/\mathrm{d}t}\,\mathrm{d}W`.

    :math:`\sigma(t) = \sigma_{\min} (\sigma_{\max}/\sigma_{\min})^{t/T}`, so
    :math:`g(t) = \sigma(t) \sqrt{2 \log(\sigma_{\max}/\sigma_{\min}) / T}`; the kernel is
    :math:`\mathcal{N}(x_0, (\sigma(t)^2 - \sigma_{\min}^2) I)` (``sde.ve.kernel``, the path :class:`gencode.paths.VE`):
    the process starts at the data, so its variance at :math:`t` is :math:`\sigma(t)^2 - \sigma(0)^2`. The prior is
    :math:`\mathcal{N}(0, (\sigma_{\max}^2 - \sigma_{\min}^2) I)`; choose :math:`\sigma_{\max}` large
    against the data's spread.

    Args:
        sigma_min, sigma_max: :math:`0 < \sigma_{\min} < \sigma_{\max}`.
        T: final time.

    Example:
        >>> float(VESDE(0.01, 10.0).marginal_std(0.0))
        0.0

    References:
        Song et al. Score-Based Generative Modeling through SDEs. 2021. arXiv:2011.13456 (eq. 9).
    """

    path: VE

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, T: float = 1.0) -> None:
        super().__init__(VE(sigma_min, sigma_max, T))
        self.sigma_min, self.sigma_max = self.path.sigma_min, self.path.sigma_max

    def sigma(self, t: Time) -> torch.Tensor:
        """:math:`\\sigma(t)` (the path's :meth:`gencode.paths.VE.noise_level`, not the kernel's standard deviation)."""
        return self.path.noise_level(t)

    def prior_std(self) -> float:
        return math.sqrt(self.sigma_max**2 - self.sigma_min**2)


class SubVPSDE(PathSDE):
    r"""The sub-VP SDE :math:`\mathrm{d}x = -\tfrac12\beta(t) x\,\mathrm{d}t + \sqrt{\beta(t)(1 - e^{-2B(t)})}\,\mathrm{d}W`
    (Song et al. 2021, eq. 29), with :math:`\beta, B` as in :class:`VPSDE`: its kernel
    :math:`\mathcal{N}(e^{-B/2} x_0, (1 - e^{-B})^2 I)` (the path :class:`gencode.paths.SubVP`) has a variance below
    the VP one at every :math:`t`; the prior is :math:`\mathcal{N}(0, I)`.

    Args:
        beta_min, beta_max: :math:`0 < \beta_{\min} \le \beta_{\max}`.
        T: final time.

    Example:
        >>> float(SubVPSDE().marginal_std(0.0))
        0.0
    """

    path: SubVP

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0) -> None:
        super().__init__(SubVP(beta_min, beta_max, T))
        self.beta_min, self.beta_max = self.path.beta_min, self.path.beta_max

    def prior_std(self) -> float:
        return 1.0


def oracle_score(oracle: MixtureOracle, sde: SDE) -> ScoreFn:
    r"""The exact score :math:`\nabla \log p_t` of Gaussian-mixture data diffused by ``sde``.

    :math:`p_t` is the law of :math:`a(t) x_0 + s(t)\varepsilon`, i.e. ``oracle.marginal(a(t), s(t))``.
    """
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be an SDE, got {type(sde).__name__}")

    def score(x: torch.Tensor, t: float) -> torch.Tensor:
        return oracle.score(x, float(sde.marginal_scale(t)), float(sde.marginal_std(t)))

    return score


@dataclass(frozen=True)
class SDESample:
    """What the samplers return.

    Attributes:
        x: the final state, shape (B, D).
        times: the time grid, shape (steps + 1,), on the host.
        path: the states at every grid time, shape (steps + 1, B, D), or ``None`` if not kept.
        nfe: number of score (or drift) evaluations.
    """

    x: torch.Tensor
    times: torch.Tensor
    path: torch.Tensor | None
    nfe: int


def _grid(t_start: float, t_end: float, steps: int) -> list[float]:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64).tolist()


def _check_x(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor of shape (B, D), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")


def euler_maruyama(
    drift: Callable[[torch.Tensor, float], torch.Tensor],
    diffusion: Callable[[float], torch.Tensor | float],
    x: torch.Tensor,
    times: Sequence[float],
    *,
    generator: torch.Generator | None = None,
    keep_path: bool = False,
    last_step_noise: bool = True,
) -> SDESample:
    r"""Integrate :math:`\mathrm{d}x = b(x, t)\,\mathrm{d}t + g(t)\,\mathrm{d}W` along ``times`` (increasing
    or decreasing) by Euler-Maruyama:

    .. math::
        x_{k+1} = x_k + b(x_k, t_k)\,(t_{k+1} - t_k) + g(t_k) \sqrt{|t_{k+1} - t_k|}\; z_k,
        \qquad z_k \sim \mathcal{N}(0, I).

    A decreasing grid integrates a reverse-time SDE (``dt < 0``; the noise is still
    :math:`\sqrt{|\mathrm{d}t|}`). Strong order 1/2, weak order 1.

    Args:
        drift: :math:`b(x, t)`, returns the shape of ``x``.
        diffusion: :math:`g(t)`.
        x: the initial state, shape (B, D).
        times: the grid :math:`t_0, \dots, t_K` (Python floats).
        generator: random generator on ``x``'s device.
        keep_path: also return every state (memory ``(K + 1) B D``).
        last_step_noise: ``False`` returns the mean of the last step (the usual final denoising).

    Returns:
        An :class:`SDESample`.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.zeros(20000, 1, dtype=torch.float64)
        >>> out = euler_maruyama(lambda x, t: 0 * x, lambda t: 1.0, x, [0.0, 0.5, 1.0], generator=g)
        >>> abs(float(out.x.var()) - 1.0) < 0.05  # Brownian motion: Var W_1 = 1
        True

    References:
        Kloeden, Platen. Numerical Solution of Stochastic Differential Equations. Springer, 1992.
    """
    _check_x(x)
    times = [float(s) for s in times]
    if len(times) < 2:
        raise ValueError("times must hold at least two points")
    path = [x] if keep_path else None
    nfe = 0
    K = len(times) - 1
    for k in range(K):
        t, dt = times[k], times[k + 1] - times[k]
        x_mean = x + drift(x, t) * dt
        nfe += 1
        if k == K - 1 and not last_step_noise:
            x = x_mean
        else:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x_mean + diffusion(t) * math.sqrt(abs(dt)) * z
        if keep_path:
            path.append(x)
    return SDESample(x, torch.tensor(times, dtype=torch.float64), torch.stack(path) if keep_path else None, nfe)


def euler_maruyama_moments(drift_coef: Callable[[float], float], g2: Callable[[float], float], mean: float,
                           variance: float, times: Sequence[float]) -> tuple[float, float]:
    r"""Exact mean and variance of the Euler-Maruyama *chain* of the linear SDE
    :math:`\mathrm{d}x = c(t)\, x\,\mathrm{d}t + g(t)\,\mathrm{d}W` (one coordinate) started from
    :math:`(m, v)`: :math:`m' = (1 + c h) m`, :math:`v' = (1 + c h)^2 v + g^2 h` per step (the step's moments of
    ``sde.moment_odes``). Their gap to the SDE's moments is the scheme's bias, which a Monte Carlo test
    adds to its tolerance.

    Args:
        drift_coef: :math:`c(t)`.
        g2: :math:`g(t)^2`.
        mean, variance: the moments at ``times[0]``.
        times: the grid (Python floats, increasing).

    Returns:
        ``(mean, variance)`` at ``times[-1]``.

    Example:
        >>> # constant c = -1/2, g^2 = 1 (VP with beta = 1): the chain's stationary variance is 1/(1 - h/4)
        >>> m, v = euler_maruyama_moments(lambda t: -0.5, lambda t: 1.0, 0.0, 0.0, [0.1 * k for k in range(2001)])
        >>> round(v * (1 - 0.1 / 4), 12)
        1.0
    """
    times = [float(s) for s in times]
    if len(times) < 2 or any(b <= a_ for a_, b in zip(times[:-1], times[1:])):
        raise ValueError("times must be increasing and hold at least two points")
    if not variance >= 0:
        raise ValueError(f"variance must be >= 0, got {variance}")
    m, v = float(mean), float(variance)
    for t0, t1 in zip(times[:-1], times[1:]):
        h = t1 - t0
        k = 1 + drift_coef(t0) * h
        m, v = k * m, k * k * v + g2(t0) * h
    return m, v


def langevin_corrector(x: torch.Tensor, t: float, score_fn: ScoreFn, snr: float,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    r"""One Langevin step targeting :math:`p_t`: :math:`x + \epsilon\, s + \sqrt{2\epsilon}\, z`
    (``sde.langevin.stationary``), with the step size set by a signal-to-noise ratio ``snr``:
    :math:`\epsilon = 2 (\mathrm{snr}\, \|z\| / \|s\|)^2`, norms averaged over the batch (Song et al., Alg. 4-5).

    Args:
        x: shape (B, D).
        t: the time whose marginal is targeted.
        score_fn: :math:`s(x, t) \approx \nabla \log p_t(x)`.
        snr: > 0.
        generator: random generator on ``x``'s device.

    Returns:
        The corrected state, shape (B, D).
    """
    if not snr > 0:
        raise ValueError(f"snr must be > 0, got {snr}")
    s = score_fn(x, t)
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    eps = 2 * (snr * z.norm(dim=-1).mean() / s.norm(dim=-1).mean()) ** 2  # 0-dim, stays on the device
    return x + eps * s + (2 * eps).sqrt() * z


def reverse_sde_sample(
    sde: SDE,
    score_fn: ScoreFn,
    n: int,
    dim: int,
    *,
    steps: int = 500,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    corrector_steps: int = 0,
    snr: float = 0.16,
    keep_path: bool = False,
) -> SDESample:
    r"""Sample by integrating the reverse-time SDE :math:`\mathrm{d}x = [f - g^2 \nabla \log p_t]\,\mathrm{d}t
    + g\,\mathrm{d}\bar W` from the prior at :math:`t = T` down to :math:`t = \epsilon` (``sde.reverse``),
    with Euler-Maruyama; the last step returns its mean (no noise is added at the end).

    With ``corrector_steps > 0`` each predictor step but the last is followed by that many Langevin
    corrector steps at the new time (predictor-corrector sampling); the last step is the final
    denoising step, returned without noise and without correction, so ``nfe = steps + (steps - 1)
    corrector_steps``.

    Args:
        sde: the forward SDE.
        score_fn: ``score_fn(x, t)``, e.g. :func:`oracle_score` or a network.
        n, dim: number and dimension of the samples.
        steps: number of predictor steps.
        eps: the final time, in ``[0, T)``.
        generator: random generator on ``device``.
        device, dtype: of the samples.
        corrector_steps: Langevin steps after each predictor step but the last.
        snr: the corrector's signal-to-noise ratio.
        keep_path: keep the predictor states.

    Returns:
        An :class:`SDESample` with ``x`` of shape (n, dim).

    References:
        Song et al. Score-Based Generative Modeling through SDEs. 2021. arXiv:2011.13456 (Alg. 1-2, 4-5).
        Anderson. Reverse-time diffusion equation models. 1982.
    """
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be an SDE, got {type(sde).__name__}")
    if not 0 <= eps < sde.T:
        raise ValueError(f"eps must lie in [0, T) = [0, {sde.T}), got {eps}")
    if isinstance(corrector_steps, bool) or not isinstance(corrector_steps, int) or corrector_steps < 0:
        raise ValueError(f"corrector_steps must be a non-negative int, got {corrector_steps!r}")
    times = _grid(sde.T, eps, steps)
    x = sde.prior_sample(n, dim, generator=generator, device=device, dtype=dtype)

    def drift(x: torch.Tensor, t: float) -> torch.Tensor:
        return sde.reverse_drift(x, t, score_fn)

    if corrector_steps == 0:
        return euler_maruyama(drift, sde.diffusion, x, times, generator=generator, keep_path=keep_path,
                              last_step_noise=False)
    path, nfe = [x], 0
    for k in range(steps):
        out = euler_maruyama(drift, sde.diffusion, x, times[k:k + 2], generator=generator,
                             last_step_noise=k < steps - 1)
        x, nfe = out.x, nfe + out.nfe
        if k < steps - 1:  # correct towards p_t at the new time (not after the final denoising step)
            for _ in range(corrector_steps):
                x = langevin_corrector(x, times[k + 1], score_fn, snr, generator)
                nfe += 1
        if keep_path:
            path.append(x)
    return SDESample(x, torch.tensor(times, dtype=torch.float64), torch.stack(path) if keep_path else None, nfe)


def predictor_corrector_sample(sde: SDE, score_fn: ScoreFn, n: int, dim: int, *, corrector_steps: int = 1,
                               snr: float = 0.16, **kwargs) -> SDESample:
    """Predictor-corrector sampling: :func:`reverse_sde_sample` with ``corrector_steps >= 1`` Langevin steps."""
    if isinstance(corrector_steps, bool) or not isinstance(corrector_steps, int) or corrector_steps < 1:
        raise ValueError(f"corrector_steps must be an int >= 1, got {corrector_steps!r}")
    return reverse_sde_sample(sde, score_fn, n, dim, corrector_steps=corrector_steps, snr=snr, **kwargs)
