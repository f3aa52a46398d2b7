r"""A continuous normalizing flow (FFJORD-style), trained by maximum likelihood.

Time convention: base :math:`\mathcal{N}(0, I)` at :math:`t = 0`, data at :math:`t = 1` (as in flow
matching). The flow is :math:`\mathrm{d}x/\mathrm{d}t = f_\theta(x, t)`, an :class:`~gencode.nets.MLP`
with a time input, and by the instantaneous change of variables (``cnf.log_density``)

.. math::
    \log p_1(x(1)) = \log p_0(x(0)) - \int_0^1 \operatorname{tr}\frac{\partial f_\theta}{\partial x}(x(t), t)\,\mathrm{d}t.

:meth:`CNF.log_prob` integrates a data point back to :math:`t = 0` together with that integral
(:func:`gencode.ode.integrate_with_logdensity`), with the exact trace in low dimension or Hutchinson's
estimate otherwise; :meth:`CNF.loss` is the negative log-likelihood for :func:`gencode.train.fit`.

References:
    Chen, Rubanova, Bettencourt, Duvenaud. Neural Ordinary Differential Equations. 2018. arXiv:1806.07366.
    Grathwohl, Chen, Bettencourt, Sutskever, Duvenaud. FFJORD: Free-form Continuous Dynamics for
    Scalable Reversible Generative Models. 2019. arXiv:1810.01367.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .distributions import Gaussian
from .nets import MLP
from .ode import integrate_with_logdensity, odeint

__all__ = ["CNF"]


class CNF(nn.Module):
    r"""A continuous normalizing flow with an MLP velocity field.

    Args:
        dim: data dimension ``D``.
        hidden: width of the MLP.
        depth: hidden layers of the MLP.
        time_dim: size of the time embedding.
        trace: ``"exact"`` (``D`` backward passes per evaluation) or ``"hutchinson"`` (one).
        method: ODE method (``"euler"``, ``"heun"`` or a torchdiffeq method).
        steps: fixed steps of the solver.
        field: a velocity ``f(x, t)`` to use instead of the MLP (a module, e.g. a known linear field).

    Example:
        >>> cnf = CNF(2, hidden=16, depth=1, steps=4).double()
        >>> cnf.log_prob(torch.zeros(3, 2, dtype=torch.float64)).shape
        torch.Size([3])
    """

    def __init__(self, dim: int, hidden: int = 64, depth: int = 2, time_dim: int = 16,
                 trace: Literal["exact", "hutchinson"] = "exact", method: str = "heun", steps: int = 20,
                 field: nn.Module | None = None) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be an int >= 1, got {dim!r}")
        if trace not in ("exact", "hutchinson"):
            raise ValueError(f"trace must be 'exact' or 'hutchinson', got {trace!r}")
        self.dim, self.trace, self.method, self.steps = dim, trace, method, steps
        self.field = field if field is not None else MLP(dim, dim, hidden=hidden, depth=depth, time_dim=time_dim)

    def velocity(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``f(x, t)`` in the solver's argument order ``(t, x)``."""
        return self.field(x, t)

    def base(self, like: torch.Tensor) -> Gaussian:
        """The base law N(0, I) on the device and dtype of ``like``."""
        return Gaussian(torch.zeros(self.dim, device=like.device, dtype=like.dtype),
                        torch.eye(self.dim, device=like.device, dtype=like.dtype))

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {getattr(x, 'shape', type(x))}")

    def log_prob(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``log p_1(x)``: integrate ``x`` from t = 1 back to t = 0 with the log-density change.

        Args:
            x: data, shape ``(B, D)``.
            generator: for Hutchinson's probes.

        Returns:
            Shape ``(B,)``; differentiable in the parameters when gradients are enabled.
        """
        self._check(x)
        z, ell, _ = integrate_with_logdensity(self.velocity, x, 1.0, 0.0, trace=self.trace, method=self.method,
                                              steps=self.steps, generator=generator,
                                              create_graph=torch.is_grad_enabled())
        # ell = log p_0(z) - log p_1(x)
        return self.base(z).log_prob(z) - ell

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood, averaged over the batch (for :func:`gencode.train.fit`)."""
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Draw ``n`` points: ``z ~ N(0, I)`` pushed from t = 0 to t = 1."""
        p = next(self.parameters(), None)
        device = device or (p.device if p is not None else None)
        dtype = dtype or (p.dtype if p is not None else None)
        z = torch.randn(n, self.dim, generator=generator, device=device, dtype=dtype)
        return self.transform(z, 0.0, 1.0)

    @torch.no_grad()
    def transform(self, x: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
        """Move points along the flow from ``t0`` to ``t1`` (either direction)."""
        self._check(x)
        return odeint(self.velocity, x, t0, t1, method=self.method, steps=self.steps).x
