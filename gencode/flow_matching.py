r"""Flow matching, rectified flow (reflow) and mini-batch optimal-transport couplings.

Time convention (this module's, as in the flow-matching literature): **noise at t = 0, data at t = 1**,

.. math::
    x_t = t\, x_1 + (1 - t)\, x_0, \qquad x_0 \sim \mathcal{N}(0, I), \quad x_1 \sim p_{\text{data}},

with conditional target :math:`\dot x_t = x_1 - x_0`. :class:`FlowPath` is where this convention meets the
diffusion one (data at :math:`\tau = 0`) of :mod:`gencode.paths`: it is the path
:class:`gencode.paths.RectifiedFlow` at :math:`\tau = 1 - t`, with signal scale :math:`a = t`, noise standard
deviation :math:`s = 1 - t`, and velocities that change sign with time (:math:`\mathrm{d}x/\mathrm{d}t =
-\mathrm{d}x/\mathrm{d}\tau`); its conversions are the path's.

* :func:`cfm_loss`: the conditional flow matching loss, with an independent or a mini-batch OT coupling
  (``fm.cfm_gap``: it differs from the marginal loss by a constant, so both have the same minimiser, the
  marginal field ``fm.mixture_velocity``);
* :func:`ot_coupling`: exact OT between two equal-size batches (an assignment problem);
* :func:`sample`: integrate a velocity field from noise to data (:func:`gencode.ode.odeint`);
* :func:`reflow_pairs`: the coupling ``(x_0, ODE(x_0))`` that rectified flow retrains on.

References:
    Lipman, Chen, Ben-Hamu, Nickel, Le. Flow Matching for Generative Modeling. 2023. arXiv:2210.02747.
    Liu, Gong, Liu. Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified Flow.
    2023. arXiv:2209.03003.
    Tong, Fatras, Malkin, Huguet, Zhang, Rector-Brooks, Wolf, Bengio. Improving and Generalizing
    Flow-Based Generative Models with Minibatch Optimal Transport. 2024. arXiv:2302.00482.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .ode import odeint
from .oracle import MixtureOracle
from .paths import RectifiedFlow, diffusion_time, flow_time

__all__ = ["FlowPath", "cfm_loss", "ot_coupling", "reflow_pairs", "sample"]

Velocity = Callable[[torch.Tensor, torch.Tensor | float], torch.Tensor]
"""``v(x, t)``: a velocity field, ``x`` of shape ``(B, D)``, ``t`` in [0, 1] (scalar or ``(B,)``)."""


def _check_t(t: float | torch.Tensor) -> None:
    if isinstance(t, torch.Tensor):
        if t.device.type == "cpu" and bool(((t < 0) | (t > 1) | ~torch.isfinite(t)).any()):
            raise ValueError(f"t must lie in [0, 1], got {t}")
    elif not 0.0 <= float(t) <= 1.0:
        raise ValueError(f"t must lie in [0, 1], got {t}")


@dataclass(frozen=True)
class FlowPath:
    r"""The linear path :math:`x_t = t x_1 + (1 - t) x_0` in flow time: :class:`gencode.paths.RectifiedFlow`
    (``FlowPath.path``) at diffusion time :math:`\tau = 1 - t`, where :math:`\alpha(\tau) = 1 - \tau = t` and
    :math:`\sigma(\tau) = \tau = 1 - t`.

    Example:
        >>> FlowPath.diffusion_time(0.25), FlowPath.scale(0.25), FlowPath.noise_std(0.25)
        (0.75, 0.25, 0.75)
    """

    path = RectifiedFlow()  # a class attribute (no annotation): the path in diffusion time

    # -- the one conversion between the time conventions -------------------------------------
    @staticmethod
    def diffusion_time(t: float) -> float:
        r"""Flow time (noise at 0) to diffusion time (data at 0): :math:`\tau = 1 - t` (:func:`gencode.paths.diffusion_time`)."""
        _check_t(t)
        return diffusion_time(float(t))

    @staticmethod
    def flow_time(tau: float) -> float:
        r"""Diffusion time to flow time: :math:`t = 1 - \tau` (:func:`gencode.paths.flow_time`)."""
        _check_t(tau)
        return flow_time(float(tau))

    @classmethod
    def scale(cls, t: float) -> float:
        """Signal scale ``a(t) = t`` (``MixtureOracle``'s ``scale``): the path's ``alpha`` at ``tau = 1 - t``."""
        return float(cls.path.alpha(cls.diffusion_time(t)))

    @classmethod
    def noise_std(cls, t: float) -> float:
        """Noise standard deviation ``s(t) = 1 - t``: the path's ``sigma`` at ``tau = 1 - t``."""
        return float(cls.path.sigma(cls.diffusion_time(t)))

    # -- the path --------------------------------------------------------------------------------
    @staticmethod
    def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t = t x_1 + (1 - t) x_0``; ``t`` of shape (B,) or scalar, ``x0, x1`` of shape (B, D).

        This is ``FlowPath.path.sample(x1, 1 - t, x0)``, written in flow time so that ``t`` enters exactly
        (``1 - (1 - t)`` is ``t`` only up to rounding); ``tests/test_flow_matching.py`` checks the two agree.
        """
        t = torch.as_tensor(t, device=x0.device, dtype=x0.dtype)
        t = t.reshape(-1, *([1] * (x0.ndim - 1))) if t.ndim else t
        return t * x1 + (1 - t) * x0

    @classmethod
    def data_from_velocity(cls, x: torch.Tensor, t: torch.Tensor | float, v: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathbb{E}[x_1 \mid x_t = x] = x + (1 - t)\, v` for the optimal velocity :math:`v`: the path's
        :meth:`~gencode.paths.GaussianPath.x0_from_velocity` at :math:`\tau = 1 - t` with velocity :math:`-v`."""
        _check_t(t)
        return cls.path.x0_from_velocity(x, -v, diffusion_time(_time_like(t, x)))

    @classmethod
    def noise_from_velocity(cls, x: torch.Tensor, t: torch.Tensor | float, v: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathbb{E}[x_0 \mid x_t = x] = x - t\, v`: the path's
        :meth:`~gencode.paths.GaussianPath.eps_from_velocity` at :math:`\tau = 1 - t` with velocity :math:`-v`."""
        _check_t(t)
        return cls.path.eps_from_velocity(x, -v, diffusion_time(_time_like(t, x)))

    @classmethod
    def oracle_velocity(cls, oracle: MixtureOracle) -> Velocity:
        r"""The exact marginal velocity :math:`u_t(x) = \mathbb{E}[x_1 - x_0 \mid x_t = x]` of
        Gaussian-mixture data (``fm.mixture_velocity``): minus the oracle's probability-flow velocity of the
        path in diffusion time, :math:`\alpha = 1 - \tau`, :math:`\sigma = \tau`, :math:`\dot\alpha = -1`,
        :math:`\dot\sigma = 1` at :math:`\tau = 1 - t` (in flow time: :math:`a = t`, :math:`s = 1 - t`,
        :math:`\dot a = 1`, :math:`\dot s = -1`)."""
        def velocity(x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
            tau = cls.diffusion_time(float(t))  # the oracle takes host scalars; one time for the batch
            p = cls.path
            return -oracle.velocity(x, float(p.alpha(tau)), float(p.sigma(tau)), float(p.d_alpha(tau)),
                                    float(p.d_sigma(tau)))
        return velocity


def _time_like(t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """``t`` as a tensor in ``x``'s dtype on ``x``'s device (a Python number stays exact in float64 first)."""
    return torch.as_tensor(t, device=x.device, dtype=x.dtype)


# ---------------------------------------------------------------------------------------------
# Couplings and the loss


def ot_coupling(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    r"""The permutation :math:`\pi` minimising :math:`\sum_i \|x_0^{(i)} - x_1^{(\pi(i))}\|^2`.

    Exact OT between two uniform empirical measures of the same size has a permutation matrix among its
    solutions (Birkhoff), so it is an assignment problem, solved exactly by SciPy's
    ``linear_sum_assignment`` (a shortest augmenting path method) on the host, once per batch. For the
    batch sizes of mini-batch OT (tens to hundreds) it is faster than a network simplex, and SciPy is
    already loaded; the tests compare it with POT's ``ot.emd``.

    Args:
        x0, x1: shape ``(B, D)``.

    Returns:
        Indices ``pi``, shape ``(B,)``, on ``x1``'s device: pair ``x0[i]`` with ``x1[pi[i]]``.

    Example:
        >>> ot_coupling(torch.tensor([[0.0], [1.0]]), torch.tensor([[1.1], [0.1]])).tolist()
        [1, 0]

    References:
        Crouse. On implementing 2D rectangular assignment algorithms. IEEE TAES, 2016.
    """
    from scipy.optimize import linear_sum_assignment

    if x0.shape != x1.shape or x0.ndim != 2:
        raise ValueError(f"x0 and x1 must have the same shape (B, D), got {tuple(x0.shape)} and {tuple(x1.shape)}")
    cost = torch.cdist(x0, x1).square().detach().cpu().double().numpy()  # (B, B)
    rows, cols = linear_sum_assignment(cost)  # rows = 0..B-1 in order
    return torch.as_tensor(cols, device=x1.device)


def cfm_loss(model: nn.Module | Velocity, batch: torch.Tensor, *,
             coupling: Literal["independent", "ot"] = "independent",
             t: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""The conditional flow matching loss
    :math:`\mathbb{E}_{t, (x_0, x_1)}\|v_\theta(x_t, t) - (x_1 - x_0)\|^2` (summed over coordinates,
    averaged over the batch), :math:`t \sim \mathrm{Unif}[0, 1]`.

    Args:
        model: velocity ``v(x, t)`` with ``t`` of shape ``(B,)``.
        batch: data ``x_1`` of shape ``(B, D)`` (noise drawn and coupled as ``coupling`` says), or
            given pairs of shape ``(B, 2, D)`` with ``batch[:, 0] = x_0``, ``batch[:, 1] = x_1``
            (rectified flow's reflow).
        coupling: ``"independent"`` or ``"ot"`` (mini-batch OT, :func:`ot_coupling`); ignored for pairs.
        t: a fixed time for every sample (to evaluate the loss at one time), else uniform.
        generator: for the noise and the times.

    Returns:
        A scalar.
    """
    if batch.ndim == 3 and batch.shape[1] == 2:
        x0, x1 = batch[:, 0], batch[:, 1]
    elif batch.ndim == 2:
        x1 = batch
        x0 = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
        if coupling == "ot":
            x1 = x1[ot_coupling(x0, x1)]
        elif coupling != "independent":
            raise ValueError(f"coupling must be 'independent' or 'ot', got {coupling!r}")
    else:
        raise ValueError(f"batch must have shape (B, D) or (B, 2, D), got {tuple(batch.shape)}")
    if t is None:
        tt = torch.rand(x1.shape[0], generator=generator, device=x1.device, dtype=x1.dtype)  # (B,)
    else:
        _check_t(t)
        tt = torch.full((x1.shape[0],), float(t), device=x1.device, dtype=x1.dtype)
    xt = FlowPath.interpolate(x0, x1, tt)  # (B, D)
    return (model(xt, tt) - (x1 - x0)).square().sum(-1).mean()


# ---------------------------------------------------------------------------------------------
# Sampling and reflow


def sample(velocity: Velocity, x0: torch.Tensor, *, method: str = "euler", steps: int = 100,
           rtol: float = 1e-5, atol: float = 1e-5, return_path: bool = False):
    """Integrate ``dx/dt = v(x, t)`` from noise ``x0`` at ``t = 0`` to ``t = 1``.

    Args:
        velocity: ``v(x, t)``.
        x0: noise, shape ``(B, D)``.
        method, steps, rtol, atol, return_path: see :func:`gencode.ode.odeint`.

    Returns:
        The :class:`gencode.ode.ODESolution` (``.x`` the samples, ``.nfe`` the evaluations).
    """
    return odeint(lambda t, x: velocity(x, t), x0, 0.0, 1.0, method=method, steps=steps, rtol=rtol,
                  atol=atol, return_path=return_path)


@torch.no_grad()
def reflow_pairs(velocity: Velocity, x0: torch.Tensor, *, method: str = "heun", steps: int = 50) -> torch.Tensor:
    r"""Rectified flow's new coupling :math:`(x_0, \Phi_1(x_0))`: each noise point paired with where the
    current flow takes it. Retraining on these pairs (:func:`cfm_loss` with pairs) straightens the
    trajectories while keeping the marginals (Liu, Gong, Liu 2023, theorem 3.3).

    Returns:
        Pairs, shape ``(B, 2, D)``.
    """
    x1 = sample(velocity, x0, method=method, steps=steps).x
    return torch.stack([x0, x1], dim=1)
