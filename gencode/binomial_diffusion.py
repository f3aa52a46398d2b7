r"""Binomial diffusion of bits (Sohl-Dickstein et al. 2015, the paper's second family).

Each step flips a fair coin in place of a bit with probability :math:`\beta_t`:

.. math::
    q(x_t \mid x_{t-1}) = \mathcal{B}\big(x_t;\ x_{t-1}(1 - \beta_t) + \beta_t / 2\big),

so the :math:`t`-step marginal is :math:`q(x_t \mid x_0) = \mathcal{B}(x_t;\ x_0 \bar\alpha_t + (1 - \bar\alpha_t)/2)`
with :math:`\bar\alpha_t = \prod_{s \le t}(1 - \beta_s)` (identity ``dpm2015.binomial.marginal``), the
posterior is :math:`q(x_{t-1} \mid x_t, x_0) = \mathcal{B}\big(x_{t-1};\ \tfrac12 + \tfrac{\alpha_t s_t + \bar\alpha_{t-1} s_0}
{2(1 + \bar\alpha_t s_t s_0)}\big)` with spins :math:`s = 2x - 1` (``dpm2015.binomial.posterior``), and the fair
coin is stationary (``dpm2015.binomial.stationary``). Time index ``t`` runs from 1 to ``T``; index 0 of
the cumulative products is :math:`\bar\alpha_0 = 1` (the convention of :class:`gencode.diffusion.NoiseSchedule`).

References:
    Sohl-Dickstein, Weiss, Maheswaranathan, Ganguli, "Deep Unsupervised Learning using Nonequilibrium
    Thermodynamics", ICML 2015, arXiv:1503.03585 (appendix B.2, binomial diffusion).
"""

from __future__ import annotations

import torch

__all__ = ["BinomialDiffusion"]


def _bits(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of bits")


class BinomialDiffusion:
    r"""The binomial forward chain with rates :math:`\beta_1, \dots, \beta_T \in (0, 1]`.

    Args:
        betas: the rates, shape ``(T,)``; the chain lives on their device and dtype.

    Example:
        >>> chain = BinomialDiffusion(torch.full((10,), 0.1, dtype=torch.float64))
        >>> round(float(chain.q_prob(torch.ones(1, dtype=torch.float64), 10)), 4)  # 0.9^10 + (1 - 0.9^10) / 2
        0.6743
    """

    def __init__(self, betas: torch.Tensor) -> None:
        if not isinstance(betas, torch.Tensor) or betas.ndim != 1 or betas.numel() == 0:
            raise ValueError("betas must be a non-empty 1-D tensor")
        if not bool(((betas > 0) & (betas <= 1)).all()):
            raise ValueError("betas must lie in (0, 1]")
        self.T = betas.numel()
        self.betas = torch.cat([betas.new_zeros(1), betas])  # (T + 1,), betas[t] for t = 1..T
        self.alphas_cumprod = torch.cumprod(1 - self.betas, 0)  # (T + 1,), alphabar_0 = 1

    def _t(self, t: int) -> int:
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= self.T:
            raise ValueError(f"t must be an int in [1, {self.T}], got {t!r}")
        return t

    def q_step(self, x: torch.Tensor, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """One forward step from ``x_{t-1}`` (bits, any shape) to ``x_t``."""
        _bits("x", x)
        beta = self.betas[self._t(t)].to(x)
        return torch.bernoulli(x * (1 - beta) + beta / 2, generator=generator)

    def q_prob(self, x0: torch.Tensor, t: int) -> torch.Tensor:
        r""":math:`q(x_t = 1 \mid x_0) = x_0 \bar\alpha_t + (1 - \bar\alpha_t)/2`, the shape of ``x0``."""
        _bits("x0", x0)
        abar = self.alphas_cumprod[self._t(t)].to(x0)
        return x0 * abar + (1 - abar) / 2

    def q_sample(self, x0: torch.Tensor, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``x_t`` drawn from the marginal in one step."""
        return torch.bernoulli(self.q_prob(x0, t), generator=generator)

    def posterior_prob(self, xt: torch.Tensor, x0: torch.Tensor, t: int) -> torch.Tensor:
        r""":math:`q(x_{t-1} = 1 \mid x_t, x_0) = \tfrac12 + \tfrac{\alpha_t s_t + \bar\alpha_{t-1} s_0}{2(1 + \bar\alpha_t s_t s_0)}`, :math:`s = 2x - 1`."""
        _bits("xt", xt)
        _bits("x0", x0)
        t = self._t(t)
        alpha, abar_prev = (1 - self.betas[t]).to(xt), self.alphas_cumprod[t - 1].to(xt)
        s_t, s_0 = 2 * xt - 1, 2 * x0 - 1
        return 0.5 + (alpha * s_t + abar_prev * s_0) / (2 * (1 + alpha * abar_prev * s_t * s_0))

    def trajectory(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The whole chain ``x_0, x_1, ..., x_T`` by single steps, shape ``(T + 1, *x0.shape)``."""
        _bits("x0", x0)
        states = [x0]
        for t in range(1, self.T + 1):
            states.append(self.q_step(states[-1], t, generator=generator))
        return torch.stack(states)
