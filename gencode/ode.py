r"""Integrating ODEs, and the log-density along their trajectories.

Every continuous-time sampler of the book is an ODE :math:`\mathrm{d}x/\mathrm{d}t = f(t, x)`: the
probability flow ODE of a diffusion, a continuous normalizing flow, a flow-matching field. This module
integrates them once for all:

* :func:`odeint`: fixed-step Euler (order 1) and Heun (order 2), or any adaptive method of torchdiffeq
  (``"dopri5"``, ...), with the number of function evaluations (NFE) counted;
* :func:`divergence` and :func:`hutchinson_divergence`: :math:`\operatorname{tr}(\partial f/\partial x)`
  exactly (one vector-Jacobian product per coordinate, for low dimension) or by Hutchinson's unbiased
  estimate :math:`\mathbb{E}[\epsilon^\top (\partial f/\partial x)\, \epsilon]` with Rademacher probes;
* :func:`integrate_with_logdensity`: the state and its log-density together, by the instantaneous change
  of variables :math:`\mathrm{d}\log p_t(x(t))/\mathrm{d}t = -\operatorname{tr}(\partial f/\partial x)`
  (``cnf.log_density``).

A vector field is a callable ``f(t, x)`` with ``t`` a 0-dim tensor (the whole batch moves at one time) and
``x`` of shape ``(B, D)``; it returns a tensor of shape ``(B, D)``. Time may run backwards (``t1 < t0``).

References:
    Chen, Rubanova, Bettencourt, Duvenaud. Neural Ordinary Differential Equations. 2018. arXiv:1806.07366.
    Grathwohl, Chen, Bettencourt, Sutskever, Duvenaud. FFJORD. 2019. arXiv:1810.01367.
    Hutchinson. A stochastic estimator of the trace of the influence matrix. 1989.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["ODESolution", "VectorField", "divergence", "hutchinson_divergence",
           "integrate_with_logdensity", "odeint", "rademacher"]

VectorField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
State = torch.Tensor | tuple[torch.Tensor, ...]
FIXED_STEP = ("euler", "heun")


@dataclass
class ODESolution:
    """What :func:`odeint` returns.

    Attributes:
        x: the state at ``t1`` (a tensor, or a tuple for a tuple state).
        path: the states at the ``steps + 1`` grid times, stacked on a new first axis, if requested.
        nfe: number of evaluations of the vector field.
    """

    x: State
    path: State | None
    nfe: int


def _check_time(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _axpy(alpha: float | torch.Tensor, xs: tuple[torch.Tensor, ...], ys: tuple[torch.Tensor, ...]) -> tuple:
    return tuple(y + alpha * x for x, y in zip(xs, ys))


def odeint(
    f: Callable[[torch.Tensor, State], State],
    x0: State,
    t0: float = 0.0,
    t1: float = 1.0,
    *,
    method: str = "heun",
    steps: int = 100,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    return_path: bool = False,
) -> ODESolution:
    r"""Integrate :math:`\mathrm{d}x/\mathrm{d}t = f(t, x)` from ``t0`` to ``t1``.

    Fixed-step methods on the grid :math:`t_k = t_0 + k h`, :math:`h = (t_1 - t_0)/n`:

    * Euler: :math:`x_{k+1} = x_k + h f(t_k, x_k)` (local error :math:`O(h^2)`, global :math:`O(h)`);
    * Heun: :math:`\tilde x = x_k + h f(t_k, x_k)`,
      :math:`x_{k+1} = x_k + \tfrac{h}{2}\bigl(f(t_k, x_k) + f(t_{k+1}, \tilde x)\bigr)` (local :math:`O(h^3)`,
      global :math:`O(h^2)`; ``cnf.local_error``).

    Any other ``method`` is handed to :func:`torchdiffeq.odeint`: adaptive ones (``"dopri5"``) with
    ``rtol``/``atol`` (``steps`` then only sets the grid of the returned path), fixed-grid ones
    (``"rk4"``) with step ``(t_1 - t_0)/n``.

    Args:
        f: the vector field ``f(t, x)``; ``t`` is a 0-dim tensor on the state's device and dtype.
        x0: the initial state, a tensor ``(B, D)`` or a tuple of tensors.
        t0: start time.
        t1: end time (may be smaller than ``t0``).
        method: ``"euler"``, ``"heun"`` or a torchdiffeq method such as ``"dopri5"``.
        steps: number of fixed steps, >= 1.
        rtol: relative tolerance of adaptive methods.
        atol: absolute tolerance of adaptive methods.
        return_path: also return the states at every grid time.

    Returns:
        An :class:`ODESolution`.

    Example:
        >>> sol = odeint(lambda t, x: 3 * t**2 * torch.ones_like(x), torch.zeros(1, 1, dtype=torch.float64),
        ...              method="heun", steps=1000)
        >>> round(float(sol.x), 5)  # integral of 3 t^2 over [0, 1]
        1.0
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    t0, t1 = _check_time("t0", t0), _check_time("t1", t1)
    tuple_state = isinstance(x0, tuple)
    state = x0 if tuple_state else (x0,)
    if not state or not all(isinstance(s, torch.Tensor) and s.is_floating_point() for s in state):
        raise TypeError("x0 must be a floating-point tensor or a tuple of them")
    ref = state[0]
    nfe = 0

    def field(t: torch.Tensor, s: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        nonlocal nfe
        nfe += 1
        out = f(t, s if tuple_state else s[0])
        return out if tuple_state else (out,)

    grid = torch.linspace(t0, t1, steps + 1, device=ref.device, dtype=ref.dtype)  # (steps + 1,)
    path = [state] if return_path else None
    if method in FIXED_STEP:
        h = (t1 - t0) / steps
        for k in range(steps):
            k1 = field(grid[k], state)
            if method == "euler":
                state = _axpy(h, k1, state)
            else:
                k2 = field(grid[k + 1], _axpy(h, k1, state))
                state = tuple(s + h / 2 * (a + b) for s, a, b in zip(state, k1, k2))
            if path is not None:
                path.append(state)
        stacked = tuple(torch.stack(p) for p in zip(*path)) if path is not None else None
    else:
        import importlib

        import torchdiffeq

        solvers = importlib.import_module("torchdiffeq._impl.odeint").SOLVERS
        if method not in solvers:
            raise ValueError(f"method must be 'euler', 'heun' or a torchdiffeq method, got {method!r}")
        fixed_grid = importlib.import_module("torchdiffeq._impl.solvers").FixedGridODESolver
        options = {"step_size": abs(t1 - t0) / steps} if issubclass(solvers[method], fixed_grid) else None
        times = grid if return_path else grid[[0, -1]]
        out = torchdiffeq.odeint(field, state, times, rtol=rtol, atol=atol, method=method, options=options)
        state = tuple(o[-1] for o in out)
        stacked = tuple(out) if return_path else None
    if tuple_state:
        return ODESolution(state, stacked, nfe)
    return ODESolution(state[0], stacked[0] if stacked is not None else None, nfe)


# ---------------------------------------------------------------------------------------------
# Divergences


def _field_with_grad(f: VectorField, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    return x, f(t, x)


def divergence(f: VectorField, t: torch.Tensor, x: torch.Tensor,
               create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The exact divergence :math:`\sum_i \partial f_i / \partial x_i`, one vector-Jacobian product per
    coordinate (``D`` backward passes: the choice for low dimension).

    Samples must not interact (row ``b`` of ``f`` depends on row ``b`` of ``x`` only), as for every
    vector field of the book.

    Args:
        f: the vector field.
        t: the time, 0-dim tensor.
        x: points, shape ``(B, D)``.
        create_graph: keep the graph, to differentiate the divergence (training a CNF).

    Returns:
        ``(f(t, x), div)`` of shapes ``(B, D)`` and ``(B,)``.

    Example:
        >>> A = torch.tensor([[1.0, 2.0], [3.0, -4.0]])
        >>> _, div = divergence(lambda t, x: x @ A.T, torch.tensor(0.0), torch.randn(3, 2))
        >>> div  # tr A = -3 everywhere
        tensor([-3., -3., -3.])
    """
    with torch.enable_grad():
        x, fx = _field_with_grad(f, t, x)
        div = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)  # (B,)
        for i in range(x.shape[1]):
            (g,) = torch.autograd.grad(fx[:, i].sum(), x, create_graph=create_graph, retain_graph=True)
            div = div + g[:, i]
    return fx, div


def rademacher(shape: tuple[int, ...], *, generator: torch.Generator | None = None,
               device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Independent signs, +1 or -1 with probability 1/2 each."""
    bits = torch.randint(0, 2, shape, generator=generator, device=device)
    return (2 * bits - 1).to(dtype or torch.get_default_dtype())


def hutchinson_divergence(f: VectorField, t: torch.Tensor, x: torch.Tensor, probe: torch.Tensor,
                          create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Hutchinson's estimate :math:`\epsilon^\top (\partial f/\partial x)\, \epsilon` of the divergence
    (``cnf.hutchinson``): unbiased for probes with :math:`\mathbb{E}[\epsilon\epsilon^\top] = I`; with
    Rademacher probes its variance is :math:`\sum_{i<j}(J_{ij} + J_{ji})^2`, free of the diagonal.
    One vector-Jacobian product, whatever the dimension.

    Args:
        f: the vector field.
        t: the time, 0-dim tensor.
        x: points, shape ``(B, D)``.
        probe: :math:`\epsilon`, shape ``(B, D)`` (see :func:`rademacher`).
        create_graph: keep the graph.

    Returns:
        ``(f(t, x), estimate)`` of shapes ``(B, D)`` and ``(B,)``.
    """
    if probe.shape != x.shape:
        raise ValueError(f"probe must have the shape of x {tuple(x.shape)}, got {tuple(probe.shape)}")
    with torch.enable_grad():
        x, fx = _field_with_grad(f, t, x)
        (g,) = torch.autograd.grad((fx * probe).sum(), x, create_graph=create_graph)  # (B, D): e^T J
    return fx, (g * probe).sum(-1)


def integrate_with_logdensity(
    f: VectorField,
    x0: torch.Tensor,
    t0: float = 0.0,
    t1: float = 1.0,
    *,
    trace: Literal["exact", "hutchinson"] = "exact",
    method: str = "dopri5",
    steps: int = 100,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    generator: torch.Generator | None = None,
    create_graph: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    r"""Integrate :math:`x` and :math:`\ell = \log p_t(x(t)) - \log p_{t_0}(x(t_0))` together:

    .. math::
        \frac{\mathrm{d}x}{\mathrm{d}t} = f(t, x), \qquad
        \frac{\mathrm{d}\ell}{\mathrm{d}t} = -\operatorname{tr}\frac{\partial f}{\partial x}(t, x).

    So :math:`\log p_{t_1}(x(t_1)) = \log p_{t_0}(x(t_0)) + \ell(t_1)`. With ``trace="hutchinson"`` one
    Rademacher probe per sample is drawn and held fixed over the whole solve (as FFJORD does), which
    keeps the integrand a smooth function of time for adaptive solvers.

    Args:
        f: the vector field.
        x0: initial points, shape ``(B, D)``.
        t0, t1: start and end times.
        trace: ``"exact"`` (:func:`divergence`) or ``"hutchinson"`` (:func:`hutchinson_divergence`).
        method, steps, rtol, atol: as in :func:`odeint`.
        generator: for the probes.
        create_graph: keep the graph through the solve (training); otherwise outputs are detached.

    Returns:
        ``(x(t1), ell(t1), nfe)``, shapes ``(B, D)`` and ``(B,)``.

    Example:
        >>> A = torch.tensor([[0.5, 1.0], [0.0, -0.2]], dtype=torch.float64)
        >>> x1, ell, _ = integrate_with_logdensity(lambda t, x: x @ A.T, torch.zeros(2, 2, dtype=torch.float64))
        >>> ell  # -tr(A) (t1 - t0)
        tensor([-0.3000, -0.3000], dtype=torch.float64)
    """
    if trace not in ("exact", "hutchinson"):
        raise ValueError(f"trace must be 'exact' or 'hutchinson', got {trace!r}")
    if not isinstance(x0, torch.Tensor) or x0.ndim != 2:
        raise ValueError(f"x0 must be a tensor of shape (B, D), got {getattr(x0, 'shape', type(x0))}")
    probe = None
    if trace == "hutchinson":
        probe = rademacher(tuple(x0.shape), generator=generator, device=x0.device, dtype=x0.dtype)

    def augmented(t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = state
        if probe is None:
            fx, div = divergence(f, t, x, create_graph=create_graph)
        else:
            fx, div = hutchinson_divergence(f, t, x, probe, create_graph=create_graph)
        if not create_graph:
            fx, div = fx.detach(), div.detach()
        return fx, -div

    ell0 = x0.new_zeros(x0.shape[0])  # (B,)
    sol = odeint(augmented, (x0, ell0), t0, t1, method=method, steps=steps, rtol=rtol, atol=atol)
    x1, ell = sol.x
    return x1, ell, sol.nfe
