r"""Energy-based models: :math:`p_\theta(x) = e^{-E_\theta(x)} / Z_\theta`, trained without computing :math:`Z_\theta`.

The score :math:`\nabla_x \log p_\theta = -\nabla_x E_\theta` does not involve :math:`Z_\theta` (identity
``ebm.score``), so an EBM can be sampled by Langevin dynamics (:mod:`gencode.langevin`) and trained by

* **score matching**: any objective of :mod:`gencode.score_matching` applied to the model's score
  (:meth:`EnergyModel.score`, computed with ``torch.func.grad``, so second derivatives for the implicit
  objective come from ``torch.func`` too);
* **noise-contrastive estimation** (:func:`nce_loss`, :class:`NCEModel`): logistic regression of data
  against samples of a known noise density, with the log-normaliser learned as a parameter
  (identities ``ebm.nce.classifier`` and ``ebm.nce.optimum``);
* **contrastive divergence** (:func:`contrastive_divergence_loss`): the log-likelihood gradient
  :math:`-\nabla_\theta \log p_\theta(x) = \nabla_\theta E_\theta(x) - \mathbb{E}_{p_\theta}[\nabla_\theta E_\theta]`,
  with the model expectation estimated by short Langevin chains started at the data (CD-k).

Two energies are provided: :class:`QuadraticEnergy` (a Gaussian, whose optimum is known in closed form) and
any network, typically ``MLP(D, 1)`` with a smooth activation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.func import grad, vmap

from .langevin import langevin
from .nets import MLP

__all__ = ["EnergyModel", "NCEModel", "QuadraticEnergy", "contrastive_divergence_loss", "mlp_energy", "nce_loss"]


class QuadraticEnergy(nn.Module):
    r"""The Gaussian energy :math:`E(x) = \tfrac12 (x - \mu)^\top P (x - \mu)`, :math:`P = L L^\top`.

    :math:`L` is lower triangular with a positive diagonal (softplus of a free parameter), so :math:`P` is
    positive definite for every parameter value and :math:`p_\theta = \mathcal{N}(\mu, P^{-1})`.

    Args:
        dim: the dimension :math:`D`.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be an int >= 1, got {dim!r}")
        self.mean = nn.Parameter(torch.zeros(dim))
        self.raw_tril = nn.Parameter(torch.zeros(dim, dim))  # softplus(0) = log 2 on the diagonal

    @property
    def precision(self) -> torch.Tensor:
        """:math:`P = L L^\\top`, shape (D, D)."""
        strict = torch.tril(self.raw_tril, diagonal=-1)
        L = strict + torch.diag(nn.functional.softplus(self.raw_tril.diagonal()))
        return L @ L.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The energy at each row of ``x`` (B, D), shape (B,)."""
        d = x - self.mean
        return 0.5 * ((d @ self.precision) * d).sum(-1)


def mlp_energy(dim: int, hidden: int = 64, depth: int = 3) -> nn.Module:
    """An MLP energy (B, D) -> (B,), SiLU activations (smooth, so the score and its Jacobian exist)."""
    net = MLP(dim, 1, hidden=hidden, depth=depth)
    return nn.Sequential(net, nn.Flatten(0))


class EnergyModel(nn.Module):
    r"""An energy-based model :math:`p_\theta(x) \propto e^{-E_\theta(x)}` around an energy network.

    Args:
        energy: a module mapping (B, D) to energies (B,).

    Example:
        >>> model = EnergyModel(QuadraticEnergy(2))
        >>> model.score(torch.ones(3, 2)).shape
        torch.Size([3, 2])

    References:
        LeCun, Chopra, Hadsell, Ranzato, Huang, "A Tutorial on Energy-Based Learning", 2006.
        Song, Kingma, "How to Train Your Energy-Based Models", 2021, arXiv:2101.03288.
    """

    def __init__(self, energy: nn.Module) -> None:
        super().__init__()
        self.energy = energy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The energy :math:`E_\\theta(x)`, shape (B,)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
            raise ValueError("x must be a floating-point tensor of shape (B, D)")
        return self.energy(x)

    def score(self, x: torch.Tensor, sigma: float | torch.Tensor | None = None) -> torch.Tensor:  # noqa: ARG002
        r"""The score :math:`-\nabla_x E_\theta(x)` at each row of ``x`` (B, D); ``sigma`` is ignored.

        Computed with ``torch.func.grad`` per row, so it composes with ``jacrev``/``jvp`` (the implicit and
        sliced objectives) and stays differentiable in the parameters.
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
            raise ValueError("x must be a floating-point tensor of shape (B, D)")

        def energy_one(xi: torch.Tensor) -> torch.Tensor:  # (D,) -> ()
            return self.energy(xi.unsqueeze(0)).squeeze(0)

        return -vmap(grad(energy_one))(x)

    def field(self, x: torch.Tensor) -> torch.Tensor:
        """The score as a field of ``x`` alone, for the implicit and sliced objectives."""
        return self.score(x)

    def sample(self, x: torch.Tensor, step_size: float, n_steps: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Langevin samples started at ``x`` (B, D); see :func:`gencode.langevin.langevin`."""
        with torch.no_grad():
            return langevin(self.score, x, step_size, n_steps, generator=generator)


def contrastive_divergence_loss(
    model: EnergyModel,
    x: torch.Tensor,
    step_size: float,
    n_steps: int,
    *,
    regularization: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The CD-k surrogate :math:`\mathbb{E}_{\text{data}}[E_\theta(x)] - \mathbb{E}[E_\theta(x^-)]` (+ regulariser).

    :math:`x^-` are ``n_steps`` Langevin steps of the current model started at the batch and detached, so
    the loss's gradient is :math:`\mathbb{E}_{\text{data}}[\nabla_\theta E_\theta] - \mathbb{E}_{x^-}[\nabla_\theta E_\theta]`, the
    negative log-likelihood gradient with the model expectation replaced by short-run samples. The
    optional :math:`\alpha\, \mathbb{E}[E(x)^2 + E(x^-)^2]` keeps energies bounded (Du and Mordatch, 2019).

    Args:
        model: the energy-based model.
        x: a data batch, shape (B, D).
        step_size: Langevin step :math:`\eta`.
        n_steps: Langevin steps k.
        regularization: :math:`\alpha \ge 0`.
        generator: random generator for the chains.

    Returns:
        A scalar.

    References:
        Hinton, "Training Products of Experts by Minimizing Contrastive Divergence", Neural Computation, 2002.
        Du, Mordatch, "Implicit Generation and Generalization in Energy-Based Models", 2019, arXiv:1903.08689.
    """
    if not regularization >= 0:
        raise ValueError(f"regularization must be >= 0, got {regularization}")
    negative = model.sample(x.detach(), step_size, n_steps, generator=generator).detach()
    e_pos, e_neg = model(x), model(negative)
    loss = e_pos.mean() - e_neg.mean()
    if regularization > 0:
        loss = loss + regularization * (e_pos.square().mean() + e_neg.square().mean())
    return loss



class NCEModel(nn.Module):
    r"""An unnormalised model :math:`\log p_\theta(x) = -E_\theta(x) - c` with a learned constant :math:`c`.

    Trained by :func:`nce_loss`, :math:`c` converges to :math:`\log Z_\theta = \log \int e^{-E_\theta}`
    (identity ``ebm.nce.optimum``): the model normalises itself.

    Args:
        energy: a module mapping (B, D) to energies (B,).

    References:
        Gutmann, Hyvarinen, "Noise-contrastive estimation: A new estimation principle for unnormalized
        statistical models", AISTATS 2010.
    """

    def __init__(self, energy: nn.Module) -> None:
        super().__init__()
        self.energy = energy
        self.log_normalizer = nn.Parameter(torch.zeros(()))  # c

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`-E_\\theta(x) - c`, shape (B,)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
            raise ValueError("x must be a floating-point tensor of shape (B, D)")
        return -self.energy(x) - self.log_normalizer


def nce_loss(log_model: Callable[[torch.Tensor], torch.Tensor], noise, x: torch.Tensor, nu: float = 1.0, *,
             y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""The noise-contrastive loss per data sample, :math:`-\mathbb{E}_p[\log h(x)] - \nu\, \mathbb{E}_q[\log(1 - h(y))]`.

    The classifier is :math:`h(u) = \sigma(G(u))` with logit :math:`G(u) = \log p_\theta(u) - \log q(u) - \log\nu`,
    so :math:`\log h = \log\sigma(G)` and :math:`\log(1 - h) = \log\sigma(-G)` (computed with ``logsigmoid``).
    Its minimiser over all classifiers is :math:`h^* = p / (p + \nu q)` (``ebm.nce.classifier``), reached by
    :math:`h_\theta` exactly when :math:`\log p_\theta = \log p` (``ebm.nce.optimum``).

    Args:
        log_model: :math:`u \mapsto \log p_\theta(u)` (unnormalised, with its learned constant), (B, D) -> (B,).
        noise: the noise law, with ``log_prob`` ((N, D) -> (N,)) and ``sample(n, generator=...)``.
        x: data batch, shape (B, D).
        nu: noise samples per data sample, > 0; ``round(nu * B)`` noise samples are drawn.
        y: noise samples to use instead of drawing them, shape (N, D) (then ``nu`` still weighs them).
        generator: random generator for the noise samples.

    Returns:
        A scalar.
    """
    if not float(nu) > 0:
        raise ValueError(f"nu must be > 0, got {nu}")
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        raise ValueError("x must be a floating-point tensor of shape (B, D)")
    if y is None:
        y = noise.sample(max(1, round(float(nu) * x.shape[0])), generator=generator)
    elif y.ndim != 2 or y.shape[1] != x.shape[1]:
        raise ValueError(f"y must have shape (N, {x.shape[1]}), got {tuple(y.shape)}")
    log_nu = torch.log(torch.as_tensor(float(nu), dtype=x.dtype, device=x.device))
    logit_x = log_model(x) - noise.log_prob(x) - log_nu  # (B,)
    logit_y = log_model(y) - noise.log_prob(y) - log_nu  # (N,)
    return -F.logsigmoid(logit_x).mean() - float(nu) * F.logsigmoid(-logit_y).mean()
