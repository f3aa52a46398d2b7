r"""Langevin and annealed Langevin samplers for any score function.

A *score function* here is any callable ``score(x, sigma)`` returning :math:`\nabla_x \log p_\sigma(x)`
with the shape of ``x`` (B, D), where :math:`p_\sigma` is the data law smoothed by Gaussian noise of
standard deviation ``sigma`` (``sigma = 0``: the target itself). A trained network, an energy-based
model's :meth:`gencode.ebm.EnergyModel.score` and the exact oracle
``lambda x, s: MixtureOracle(data).score(x, 1.0, s)`` all fit.

The unadjusted Langevin algorithm with step :math:`\eta` is

.. math::
    x_{k+1} = x_k + \frac{\eta}{2} \nabla_x \log p(x_k) + \sqrt{\eta}\, \xi_k, \qquad \xi_k \sim \mathcal{N}(0, I),

the Euler-Maruyama discretisation (time step :math:`\eta/2`) of :math:`dX = \tfrac12 \nabla \log p(X) dt + dW`,
which leaves :math:`p` invariant (identity ``ebm.langevin.stationary``). The discrete chain does not: on
:math:`\mathcal{N}(0, s^2)` its stationary variance is :math:`s^2 / (1 - \eta / (4 s^2))`
(``ebm.langevin.discrete_variance``, :func:`gaussian_stationary_variance`).

Annealed Langevin dynamics (NCSN) runs ``n_steps`` Langevin steps at each of the decreasing noise levels
:math:`\sigma_1 > \dots > \sigma_L` with step :math:`\alpha_i = \epsilon\, \sigma_i^2 / \sigma_L^2`, so that the
ratio of drift to noise, :math:`\tfrac{\alpha_i}{2} \|\nabla \log p_{\sigma_i}\| / \sqrt{\alpha_i} \propto
\sqrt{\alpha_i} / \sigma_i`, is the same at every level.

References:
    Roberts, Tweedie, "Exponential convergence of Langevin distributions and their discrete
    approximations", Bernoulli, 1996.
    Song, Ermon, "Generative Modeling by Estimating Gradients of the Data Distribution", 2019,
    arXiv:1907.05600 (Algorithm 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["ScoreFunction", "annealed_langevin", "gaussian_stationary_variance", "langevin"]

ScoreFunction = Callable[[torch.Tensor, float | torch.Tensor], torch.Tensor]
"""``score(x, sigma) -> grad_x log p_sigma(x)``, x of shape (B, D)."""


def _check_x(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 2:
        raise ValueError(f"x must be a floating-point tensor of shape (B, D), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return float(value)


def _check_steps(n_steps: int) -> None:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be an int >= 1, got {n_steps!r}")


def gaussian_stationary_variance(s: float, step_size: float) -> float:
    r"""The stationary variance :math:`s^2 / (1 - \eta / (4 s^2))` of the Langevin chain on :math:`\mathcal{N}(0, s^2)`.

    With the score :math:`-x/s^2` the chain is :math:`x' = (1 - \eta/(2 s^2)) x + \sqrt{\eta}\, \xi`, an AR(1)
    process whose variance :math:`V` solves :math:`V = (1 - \eta/(2s^2))^2 V + \eta` (identity
    ``ebm.langevin.discrete_variance``).

    Args:
        s: the target's standard deviation, > 0.
        step_size: :math:`\eta`, in :math:`(0, 4 s^2)` (beyond, the chain diverges).

    Returns:
        The stationary variance.

    Example:
        >>> gaussian_stationary_variance(1.0, 0.4)  # 1 / (1 - 0.1)
        1.1111111111111112
    """
    s, eta = _check_positive("s", s), _check_positive("step_size", step_size)
    if eta >= 4 * s**2:
        raise ValueError(f"step_size must be < 4 s^2 = {4 * s**2} for the chain to be stable, got {eta}")
    return s**2 / (1 - eta / (4 * s**2))


def langevin(
    score: ScoreFunction,
    x: torch.Tensor,
    step_size: float,
    n_steps: int,
    *,
    sigma: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Run ``n_steps`` of :math:`x \leftarrow x + \frac{\eta}{2} s(x, \sigma) + \sqrt{\eta}\, \xi`.

    Args:
        score: the score function ``score(x, sigma)``.
        x: starting points, shape (B, D); device and dtype of the samples.
        step_size: :math:`\eta > 0`.
        n_steps: number of steps, >= 1.
        sigma: the noise level passed to ``score`` (0: the target itself).
        generator: random generator on ``x``'s device.

    Returns:
        The final states, shape (B, D).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = langevin(lambda x, s: -x, torch.zeros(4000, 1), 0.01, 500, generator=g)
        >>> round(float(x.var()), 1)  # N(0, 1): 1 / (1 - 0.0025)
        1.0
    """
    _check_x(x)
    eta = _check_positive("step_size", step_size)
    _check_steps(n_steps)
    if not (math.isfinite(float(sigma)) and float(sigma) >= 0):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    sqrt_eta = math.sqrt(eta)
    for _ in range(n_steps):
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = x + (eta / 2) * score(x, sigma) + sqrt_eta * noise
    return x


def annealed_langevin(
    score: ScoreFunction,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    step_size: float,
    n_steps: int,
    *,
    denoise: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Annealed Langevin dynamics (Song and Ermon, 2019, Algorithm 1).

    For :math:`i = 1, \dots, L`: :math:`\alpha_i = \epsilon\, \sigma_i^2 / \sigma_L^2`, then ``n_steps``
    Langevin steps with step :math:`\alpha_i` on the score at level :math:`\sigma_i`. With ``denoise``, a
    last Tweedie step :math:`x + \sigma_L^2 s(x, \sigma_L)` returns the posterior mean of the clean
    sample (Jolicoeur-Martineau et al., 2021), which removes the residual noise of level :math:`\sigma_L`.

    Args:
        score: ``score(x, sigma)``.
        x: starting points, shape (B, D) (typically uniform or :math:`\mathcal{N}(0, \sigma_1^2 I)`).
        sigmas: noise levels, shape (L,), positive and strictly decreasing.
        step_size: :math:`\epsilon > 0`, the step at the last level.
        n_steps: steps per level, >= 1.
        denoise: apply the final Tweedie step.
        generator: random generator on ``x``'s device.

    Returns:
        Samples, shape (B, D).

    References:
        Song, Ermon, 2019, arXiv:1907.05600. Jolicoeur-Martineau, Piche-Taillefer, Tachet des Combes,
        Mitliagkas, "Adversarial score matching and improved sampling for image generation", 2021,
        arXiv:2009.05475.
    """
    _check_x(x)
    eps = _check_positive("step_size", step_size)
    _check_steps(n_steps)
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or sigmas.numel() < 1:
        raise ValueError("sigmas must be a 1-D tensor of noise levels")
    levels = [float(v) for v in sigmas.detach().cpu()]  # (L,) on the host once, before the loop
    if not all(math.isfinite(v) and v > 0 for v in levels):
        raise ValueError("sigmas must be finite and > 0")
    if any(a <= b for a, b in zip(levels[:-1], levels[1:])):
        raise ValueError("sigmas must be strictly decreasing")
    last = levels[-1]
    for sigma in levels:
        x = langevin(score, x, eps * sigma**2 / last**2, n_steps, sigma=sigma, generator=generator)
    if denoise:
        x = x + last**2 * score(x, last)
    return x
