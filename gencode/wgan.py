r"""Wasserstein GANs: a critic that estimates :math:`W_1`, and three ways to keep it Lipschitz.

By Kantorovich-Rubinstein duality :math:`W_1(P, Q) = \max_{\|f\|_L \le 1} \mathbb{E}_P f - \mathbb{E}_Q f`
(``derivations.wasserstein``). A WGAN's critic :math:`f` maximises :func:`critic_gap` while a
constraint keeps it (roughly) 1-Lipschitz:

* ``"clip"``: every weight clipped to :math:`[-c, c]` after each critic step (Arjovsky et al., 2017);
  this bounds the Lipschitz constant by *some* :math:`K(c)`, so the critic estimates :math:`K\,W_1`;
* ``"gp"``: the penalty :math:`\lambda\, \mathbb{E}[(\|\nabla f(\hat x)\| - 1)^2]` at interpolates
  :math:`\hat x = \epsilon x + (1 - \epsilon) y` (Gulrajani et al., 2017), a soft constraint;
* ``"sn"``: each weight matrix divided by its largest singular value, estimated by power iteration
  (Miyato et al., 2018); with 1-Lipschitz activations the network is then 1-Lipschitz.

:class:`WGAN` reuses :class:`gencode.gan.GAN` and trains with :func:`gencode.gan.train_adversarial`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .gan import GAN, Sampler, fit_pair
from .nets import MLP
from .train import TrainResult

__all__ = [
    "WGAN",
    "GradientPenalty",
    "PowerIteration",
    "SpectralNorm",
    "clip_weights_",
    "critic_gap",
    "fit_critic",
    "gradient_penalty",
    "power_iteration",
    "spectral_normalise",
]

Method = Literal["clip", "gp", "sn"]


def critic_gap(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathbb{E}_P f - \mathbb{E}_Q f` on two batches: the critic's estimate of :math:`W_1` (times
    its Lipschitz constant).

    Args:
        critic: maps ``(B, d)`` to ``(B, 1)``.
        real: samples of :math:`P`, shape ``(B, d)``.
        fake: samples of :math:`Q`, shape ``(B', d)``.

    Returns:
        A 0-dim tensor.
    """
    return critic(real).mean() - critic(fake).mean()


@dataclass
class GradientPenalty:
    """The gradient penalty and what it was computed from.

    Attributes:
        penalty: :math:`\\mathbb{E}[(\\|\\nabla f(\\hat x)\\| - 1)^2]`, a 0-dim tensor (differentiable).
        grad_norm: :math:`\\|\\nabla f(\\hat x)\\|` at each interpolate, shape ``(B,)``.
        interpolates: :math:`\\hat x`, shape ``(B, d)``.
    """

    penalty: torch.Tensor
    grad_norm: torch.Tensor
    interpolates: torch.Tensor


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None, one_sided: bool = False) -> GradientPenalty:
    r"""The WGAN-GP penalty at random interpolates of paired real and generated samples.

    .. math::
        \hat x = \epsilon\, x + (1 - \epsilon)\, y, \quad \epsilon \sim U(0, 1), \qquad
        \mathrm{GP} = \mathbb{E}\bigl[(\|\nabla_{\hat x} f(\hat x)\|_2 - 1)^2\bigr]

    With ``one_sided=True`` only slopes above 1 are penalised,
    :math:`\mathbb{E}[\max(0, \|\nabla f(\hat x)\| - 1)^2]` (Petzka et al., 2018). The two-sided
    penalty also pulls slopes of the *wrong sign* towards norm 1, and in 1-D has a spurious
    stationary point of the critic's objective at :math:`s = -1 + |g|/(2\lambda\rho)`
    (``wgan.gp_pointwise``), where a critic initialised with the wrong slope gets stuck; the
    one-sided penalty is flat on :math:`[-1, 1]` and has none.

    The penalty is differentiable in the critic's parameters (``create_graph=True``).

    Args:
        critic: maps ``(B, d)`` to ``(B, 1)``.
        real: shape ``(B, d)``.
        fake: shape ``(B, d)``, the same shape.
        generator: optional generator for :math:`\epsilon`, on the samples' device.
        one_sided: penalise only gradient norms above 1.

    Returns:
        A :class:`GradientPenalty`.

    Raises:
        ValueError: if the shapes differ.

    Example:
        >>> lin = nn.Linear(2, 1, bias=False)
        >>> with torch.no_grad():
        ...     _ = lin.weight.copy_(torch.tensor([[3.0, 4.0]]))  # |grad f| = 5 everywhere
        >>> gp = gradient_penalty(lin, torch.zeros(4, 2), torch.ones(4, 2))
        >>> gp.penalty.item()
        16.0

    References:
        Gulrajani et al., "Improved Training of Wasserstein GANs", 2017, arXiv:1704.00028, eq. (3).
        Petzka, Fischer, Lukovnikov, "On the regularization of Wasserstein GANs", 2018, arXiv:1709.08894.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    eps = torch.rand(real.shape[0], 1, generator=generator, device=real.device, dtype=real.dtype)  # (B, 1)
    x_hat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)  # (B, d)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)  # (B, d)
    norm = grad.norm(dim=-1)  # (B,)
    excess = (norm - 1).clamp_min(0) if one_sided else norm - 1
    return GradientPenalty(excess.square().mean(), norm, x_hat.detach())


def clip_weights_(module: nn.Module, c: float) -> None:
    """Clip every parameter of ``module`` to ``[-c, c]`` in place (the original WGAN's constraint).

    Raises:
        ValueError: if ``c`` is not positive.
    """
    if not c > 0:
        raise ValueError(f"c must be > 0, got {c}")
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)


@dataclass
class PowerIteration:
    """The result of :func:`power_iteration`.

    Attributes:
        sigma: estimate of the largest singular value, shape ``(...)``.
        u: left singular vector estimate, shape ``(..., m)``.
        v: right singular vector estimate, shape ``(..., n)``.
    """

    sigma: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor


def power_iteration(W: torch.Tensor, n_iter: int = 1, u: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> PowerIteration:
    r"""Estimate :math:`\sigma_{\max}(W)` by power iteration on :math:`W W^\top` (batched).

    Each iteration is :math:`v \leftarrow W^\top u / \|W^\top u\|`, :math:`u \leftarrow W v / \|W v\|`;
    the estimate is :math:`\sigma = u^\top W v`. After :math:`k` iterations :math:`\sigma^2` misses
    :math:`\sigma_{\max}^2` by a term of order :math:`(\sigma_2/\sigma_1)^{4k}` (``wgan.power_iteration``:
    the Rayleigh quotient of :math:`W^\top W`, whose eigenvalues are :math:`\sigma_i^2`).

    Args:
        W: matrices, shape ``(..., m, n)``.
        n_iter: number of iterations, >= 1.
        u: starting left vectors, shape ``(..., m)``; random if ``None``.
        generator: for the random start.

    Returns:
        A :class:`PowerIteration` (``sigma`` has shape ``(...)``).

    Example:
        >>> W = torch.diag(torch.tensor([3.0, 1.0]))
        >>> round(power_iteration(W, n_iter=20, generator=torch.Generator().manual_seed(0)).sigma.item(), 4)
        3.0

    References:
        Miyato et al., "Spectral Normalization for Generative Adversarial Networks", 2018,
        arXiv:1802.05957, Algorithm 1.
    """
    if W.ndim < 2:
        raise ValueError(f"W must have shape (..., m, n), got {tuple(W.shape)}")
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"n_iter must be an int >= 1, got {n_iter!r}")
    if u is None:
        u = torch.randn(W.shape[:-1], generator=generator, device=W.device, dtype=W.dtype)  # (..., m)
    u = F.normalize(u, dim=-1)
    for _ in range(n_iter):
        v = F.normalize((W.mT @ u.unsqueeze(-1)).squeeze(-1), dim=-1)  # (..., n)
        u = F.normalize((W @ v.unsqueeze(-1)).squeeze(-1), dim=-1)  # (..., m)
    sigma = (u.unsqueeze(-2) @ W @ v.unsqueeze(-1)).squeeze(-1).squeeze(-1)  # (...)
    return PowerIteration(sigma, u, v)


class SpectralNorm(nn.Module):
    r"""A parametrization :math:`W \mapsto W / \sigma_{\max}(W)`, with one power iteration per call in
    training mode and a persistent left vector ``u`` (as in Miyato et al.).

    The vector is updated without gradient; the division by :math:`\sigma = u^\top W v` is
    differentiated. Register it with :func:`spectral_normalise`.

    Args:
        out_features: rows :math:`m` of the weight.
        n_iter: power iterations per training-mode call.
    """

    def __init__(self, out_features: int, n_iter: int = 1) -> None:
        super().__init__()
        self.n_iter = n_iter
        self.register_buffer("u", F.normalize(torch.randn(out_features), dim=0))

    def forward(self, W: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                self.u.copy_(power_iteration(W, self.n_iter, u=self.u.to(W)).u)
        # a copy: the next call updates the buffer in place while this graph may still need it
        u = self.u.to(W, copy=True)
        v = F.normalize(W.mT @ u, dim=0)  # (n,)
        sigma = u @ W @ v
        return W / sigma


def spectral_normalise(module: nn.Module, n_iter: int = 1) -> nn.Module:
    """Register :class:`SpectralNorm` on the weight of every ``nn.Linear`` inside ``module`` (in place).

    Returns:
        ``module``.

    Example:
        >>> net = spectral_normalise(nn.Linear(3, 4))
        >>> for _ in range(50):
        ...     _ = net(torch.zeros(1, 3))  # power iterations happen in training mode
        >>> round(torch.linalg.svdvals(net.weight.detach()).max().item(), 3)
        1.0
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            parametrize.register_parametrization(layer, "weight", SpectralNorm(layer.out_features, n_iter))
    return module


class WGAN(GAN):
    r"""A Wasserstein GAN: the discriminator is a critic (no sigmoid) and the losses are
    :math:`-(\mathbb{E}_P f - \mathbb{E}_Q f)` (+ the penalty) for the critic and :math:`-\mathbb{E}_Q f`
    for the generator.

    Args:
        data_dim, latent_dim, hidden, depth: as in :class:`gencode.gan.GAN`.
        method: ``"clip"``, ``"gp"`` or ``"sn"`` (see the module docstring).
        clip: :math:`c` for ``"clip"``.
        lam: :math:`\lambda` for ``"gp"``.

    Example:
        >>> wgan = WGAN(1, method="gp", hidden=8)
        >>> x = torch.randn(4, 1)
        >>> wgan.discriminator_loss(x, x + 1).shape
        torch.Size([])

    References:
        Arjovsky, Chintala, Bottou, "Wasserstein GAN", 2017, arXiv:1701.07875.
        Gulrajani et al., 2017, arXiv:1704.00028. Miyato et al., 2018, arXiv:1802.05957.
    """

    def __init__(self, data_dim: int, latent_dim: int = 2, hidden: int = 64, depth: int = 2,
                 method: Method = "gp", clip: float = 0.01, lam: float = 10.0) -> None:
        if method not in ("clip", "gp", "sn"):
            raise ValueError(f"method must be 'clip', 'gp' or 'sn', got {method!r}")
        if not clip > 0 or not lam > 0:
            raise ValueError(f"clip and lam must be > 0, got clip={clip}, lam={lam}")
        self.method, self.clip, self.lam = method, clip, lam
        super().__init__(data_dim, latent_dim, hidden, depth)

    def make_discriminator(self, data_dim: int, hidden: int, depth: int) -> nn.Module:
        # ReLU is 1-Lipschitz, so a spectrally normalised ReLU MLP is 1-Lipschitz
        critic = MLP(data_dim, 1, hidden=hidden, depth=depth, activation=nn.ReLU)
        return spectral_normalise(critic) if self.method == "sn" else critic

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss = -critic_gap(self.discriminator, real, fake)
        if self.method == "gp":
            loss = loss + self.lam * gradient_penalty(self.discriminator, real, fake).penalty
        return loss

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return -self.discriminator(fake).mean()

    def after_discriminator_step(self) -> None:
        if self.method == "clip":
            clip_weights_(self.discriminator, self.clip)


def fit_critic(critic: nn.Module, sample_p: Sampler, sample_q: Sampler, *, lam: float | None = 10.0,
               one_sided: bool = False, **fit_kwargs) -> TrainResult:
    r"""Train a critic between two *fixed* distributions (:func:`gencode.gan.fit_pair`), maximising
    :math:`\mathbb{E}_P f - \mathbb{E}_Q f - \lambda\, \mathrm{GP}` (``lam=None``: no penalty, for a
    critic made Lipschitz by :func:`spectral_normalise`).

    Args:
        critic: maps ``(B, d)`` to ``(B, 1)``.
        sample_p, sample_q: ``(n, generator) -> (n, d)`` samplers.
        lam: the penalty weight :math:`\lambda`, or ``None``.
        one_sided: use the one-sided penalty (see :func:`gradient_penalty`).
        **fit_kwargs: ``steps``, ``batch_size``, ``lr``, ``seed``, as in :func:`gencode.gan.fit_pair`.

    Returns:
        The :class:`~gencode.train.TrainResult` (losses are minus the penalised objective).
    """
    def loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        out = -critic_gap(critic, real, fake)
        if lam is not None:
            out = out + lam * gradient_penalty(critic, real, fake, one_sided=one_sided).penalty
        return out

    return fit_pair(loss, critic, sample_p, sample_q, **fit_kwargs)
