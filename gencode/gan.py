r"""Generative adversarial networks: the optimal discriminator, the two generator losses, the game loop.

A generator :math:`G` maps noise :math:`z \sim \mathcal{N}(0, I)` to samples with density :math:`q`; a
discriminator outputs a logit :math:`a(x)` and :math:`D(x) = \sigma(a(x))`, the probability that
:math:`x` came from the data density :math:`p`. The value of the game is

.. math::
    V(D, G) = \mathbb{E}_p[\log D(x)] + \mathbb{E}_q[\log(1 - D(x))],

maximised by :math:`D^* = p/(p + q)`, where :math:`V(D^*, G) = -\log 4 + 2\,\mathrm{JS}(p \,\|\, q)`
(``derivations.gan``). Everything is written with logits and ``softplus`` so that it is stable when
:math:`D` saturates: :math:`\log \sigma(a) = -\mathrm{softplus}(-a)` and
:math:`\log(1 - \sigma(a)) = -\mathrm{softplus}(a)`.

The game is not the minimisation of one loss, so :func:`train_adversarial` is the project's one
adversarial loop (the honest exception to :func:`gencode.train.fit`); training a discriminator
against *fixed* distributions is a minimisation and uses :func:`gencode.train.fit`
(:func:`fit_discriminator`). :func:`train_adversarial` also runs the Wasserstein GANs of
:mod:`gencode.wgan`, which implement the same small interface.

References:
    Goodfellow et al., "Generative Adversarial Nets", 2014, arXiv:1406.2661.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .distributions import GaussianMixture
from .nets import MLP
from .train import DataSource, TrainResult, fit

__all__ = [
    "fgan_objective", "nonsaturating_loss_at_optimum",
    "GAN",
    "AdversarialResult",
    "discriminator_value",
    "fit_discriminator",
    "fit_pair",
    "generator_loss",
    "optimal_discriminator",
    "train_adversarial",
]

GeneratorLoss = Literal["saturating", "nonsaturating"]
Sampler = Callable[[int, torch.Generator], torch.Tensor]
"""``(n, generator) -> (n, d)``, e.g. ``GaussianMixture.sample``."""


def optimal_discriminator(p: GaussianMixture, q: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    r"""The optimal discriminator :math:`D^*(x) = p(x) / (p(x) + q(x))`, as a probability.

    Computed as :math:`\sigma(\log p(x) - \log q(x))`, which is exact and never divides 0 by 0.

    Args:
        p: the data distribution.
        q: the generator's distribution.
        x: points, shape ``(B, D)``.

    Returns:
        :math:`D^*(x)`, shape ``(B,)``.

    Example:
        >>> from gencode.distributions import mixture_1d
        >>> p, q = mixture_1d([1.0], [0.0], [1.0]), mixture_1d([1.0], [1.0], [1.0])
        >>> optimal_discriminator(p, q, torch.tensor([[0.5]]))  # equidistant: 1/2
        tensor([0.5000])

    References:
        Goodfellow et al., 2014, arXiv:1406.2661, Proposition 1.
    """
    return torch.sigmoid(p.log_prob(x) - q.log_prob(x))


def discriminator_value(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r"""Monte Carlo estimate of :math:`V(D, G) = \mathbb{E}_p[\log D] + \mathbb{E}_q[\log(1 - D)]`.

    Args:
        real_logits: logits :math:`a(x)` at data samples, any shape.
        fake_logits: logits at generated samples, any shape.

    Returns:
        A 0-dim tensor; at most 0, and :math:`-\log 4` when :math:`D \equiv 1/2`.

    Example:
        >>> v = discriminator_value(torch.zeros(3), torch.zeros(5))
        >>> bool(torch.isclose(v, -torch.log(torch.tensor(4.0))))
        True
    """
    return -F.softplus(-real_logits).mean() - F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: GeneratorLoss = "nonsaturating") -> torch.Tensor:
    r"""The generator's loss at generated samples, to be minimised.

    * ``"saturating"``: :math:`\mathbb{E}_q[\log(1 - D)] = -\mathbb{E}_q[\mathrm{softplus}(a)]`, the
      minimax loss; its gradient in the logit is :math:`-D`, which vanishes when the discriminator
      confidently rejects the samples;
    * ``"nonsaturating"``: :math:`-\mathbb{E}_q[\log D] = \mathbb{E}_q[\mathrm{softplus}(-a)]`; gradient
      :math:`-(1 - D)`, close to :math:`-1` in the same situation.

    Args:
        fake_logits: discriminator logits at generated samples, any shape.
        kind: ``"saturating"`` or ``"nonsaturating"``.

    Returns:
        A 0-dim tensor.

    Raises:
        ValueError: if ``kind`` is neither.

    References:
        Goodfellow et al., 2014, arXiv:1406.2661, section 3.
    """
    if kind == "saturating":
        return -F.softplus(fake_logits).mean()
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    raise ValueError(f"kind must be 'saturating' or 'nonsaturating', got {kind!r}")


class GAN(nn.Module):
    r"""A GAN of two :class:`~gencode.nets.MLP`\ s: generator :math:`\mathbb{R}^{k} \to \mathbb{R}^{d}` and
    discriminator :math:`\mathbb{R}^{d} \to \mathbb{R}` (a logit).

    The interface used by :func:`train_adversarial`: :attr:`generator`, :attr:`discriminator`,
    :meth:`sample`, :meth:`discriminator_loss`, :meth:`generator_loss`, :meth:`after_discriminator_step`.

    Args:
        data_dim: :math:`d`.
        latent_dim: :math:`k`.
        hidden: width of both networks.
        depth: hidden layers of both networks.
        loss: the generator loss, ``"saturating"`` or ``"nonsaturating"``.

    Example:
        >>> gan = GAN(data_dim=2, latent_dim=2, hidden=16, depth=2)
        >>> gan.sample(5, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 2])
    """

    def __init__(self, data_dim: int, latent_dim: int = 2, hidden: int = 64, depth: int = 2,
                 loss: GeneratorLoss = "nonsaturating") -> None:
        super().__init__()
        if loss not in ("saturating", "nonsaturating"):
            raise ValueError(f"loss must be 'saturating' or 'nonsaturating', got {loss!r}")
        self.data_dim, self.latent_dim, self.loss = data_dim, latent_dim, loss
        self.generator = MLP(latent_dim, data_dim, hidden=hidden, depth=depth)
        self.discriminator = self.make_discriminator(data_dim, hidden, depth)

    def make_discriminator(self, data_dim: int, hidden: int, depth: int) -> nn.Module:
        """The discriminator network (subclasses change it, e.g. to spectral normalisation)."""
        return MLP(data_dim, 1, hidden=hidden, depth=depth)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Discriminator output at ``x`` (B, d), shape ``(B,)``."""
        return self.discriminator(x).squeeze(-1)

    def sample(self, n: int, generator: torch.Generator | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` generated samples ``G(z)``, ``z ~ N(0, I)`` drawn on the parameters' device (or given).

        Args:
            n: number of samples.
            generator: optional ``torch.Generator`` on the parameters' device.
            z: optional latents, shape ``(n, latent_dim)``.

        Returns:
            Shape ``(n, data_dim)``; differentiable in the generator's parameters.
        """
        if z is None:
            w = next(self.generator.parameters())
            z = torch.randn(n, self.latent_dim, generator=generator, device=w.device, dtype=w.dtype)
        return self.generator(z)

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Minus the value :math:`V(D, G)`: the binary cross-entropy of real vs generated."""
        return -discriminator_value(self.logits(real), self.logits(fake))

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """:func:`generator_loss` of the discriminator's logits at ``fake``."""
        return generator_loss(self.logits(fake), self.loss)

    def after_discriminator_step(self) -> None:
        """Hook after each discriminator update (weight clipping in :class:`gencode.wgan.WGAN`)."""


@dataclass
class AdversarialResult:
    """What :func:`train_adversarial` returns.

    Attributes:
        d_losses: discriminator (critic) loss at every generator step, shape ``(steps,)``.
        g_losses: generator loss at every step, shape ``(steps,)``.
        snapshots: generated samples from fixed latents, shape ``(S, n_snapshot, d)``, on the CPU.
        snapshot_steps: the step after which each snapshot was taken, length ``S``.
        seconds: wall-clock time of the loop.
    """

    d_losses: torch.Tensor
    g_losses: torch.Tensor
    snapshots: torch.Tensor
    snapshot_steps: list[int]
    seconds: float


def train_adversarial(
    model: GAN,
    data: DataSource,
    *,
    steps: int,
    batch_size: int,
    n_critic: int = 1,
    lr_d: float = 1e-3,
    lr_g: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.999),
    seed: int = 0,
    snapshot_every: int | None = None,
    n_snapshot: int = 1000,
    ema_decay: float | None = None,
) -> AdversarialResult:
    r"""Alternate ``n_critic`` discriminator steps and one generator step, ``steps`` times.

    Each discriminator step minimises ``model.discriminator_loss(real, fake)`` on a fresh batch of
    data and of (detached) generated samples, then calls ``model.after_discriminator_step()``; each
    generator step minimises ``model.generator_loss(fake)``. Both use Adam. Losses go into
    preallocated device tensors; nothing is read back to the host inside the loop.

    Args:
        model: a :class:`GAN` (or :class:`gencode.wgan.WGAN`).
        data: a tensor ``(N, d)`` of data or a callable ``(batch_size, generator) -> (batch_size, d)``.
        steps: number of generator steps, >= 1.
        batch_size: batch size of both players, >= 1.
        n_critic: discriminator steps per generator step, >= 1.
        lr_d, lr_g: learning rates.
        betas: Adam's betas.
        seed: seeds the batches, the latents and torch's global generator.
        snapshot_every: keep samples of fixed latents every this many steps (and at step 0).
        n_snapshot: number of samples in each snapshot.
        ema_decay: if given, in ``[0, 1)``, keep a bias-corrected exponential moving average of the
            generator's weights (as :func:`gencode.train.fit` does), sample the snapshots from it, and
            copy it into the generator at the end. GAN iterates oscillate around an equilibrium
            rather than converge to it; their average sits closer (Yazici et al., 2019,
            arXiv:1806.04498).

    Returns:
        An :class:`AdversarialResult`.

    Raises:
        ValueError: naming an argument out of range.
        FloatingPointError: if a loss became NaN or infinite (checked once, after the loop).
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("n_critic", n_critic),
                        ("n_snapshot", n_snapshot)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if snapshot_every is not None and (not isinstance(snapshot_every, int) or snapshot_every < 1):
        raise ValueError(f"snapshot_every must be an int >= 1 or None, got {snapshot_every!r}")
    for name, lr in (("lr_d", lr_d), ("lr_g", lr_g)):
        if not lr > 0:
            raise ValueError(f"{name} must be > 0, got {lr}")
    if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1) or None, got {ema_decay}")
    w = next(model.generator.parameters())
    gen = torch.Generator(device=w.device).manual_seed(seed)
    if isinstance(data, torch.Tensor):
        if data.ndim != 2 or data.shape[1] != model.data_dim:
            raise ValueError(f"data must have shape (N, {model.data_dim}), got {tuple(data.shape)}")
        data_gen = torch.Generator(device=data.device).manual_seed(seed)

        def draw() -> torch.Tensor:
            return data[torch.randint(data.shape[0], (batch_size,), generator=data_gen, device=data.device)]
    elif callable(data):
        def draw() -> torch.Tensor:
            return data(batch_size, gen)
    else:
        raise ValueError(f"data must be a tensor or a callable (batch_size, generator) -> batch, got {type(data)}")
    torch.manual_seed(seed)
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=lr_d, betas=betas)
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=lr_g, betas=betas)
    d_losses = torch.empty(steps, device=w.device, dtype=w.dtype)
    g_losses = torch.empty(steps, device=w.device, dtype=w.dtype)
    z_fixed = torch.randn(n_snapshot, model.latent_dim, generator=gen, device=w.device, dtype=w.dtype)
    snapshots, snapshot_steps = [], []
    g_params = list(model.generator.parameters())
    ema = [torch.zeros_like(p) for p in g_params] if ema_decay is not None else None

    def averaged(done: int) -> dict[str, torch.Tensor]:
        """The bias-corrected average after ``done`` generator steps (the weights themselves at 0)."""
        names = [n for n, _ in model.generator.named_parameters()]
        if done == 0:
            return {n: p.detach() for n, p in zip(names, g_params, strict=True)}
        correction = 1.0 - ema_decay ** done
        return {n: avg / correction for n, avg in zip(names, ema, strict=True)}

    def snapshot(step: int) -> None:
        with torch.no_grad():
            if ema is None:
                x = model.sample(n_snapshot, z=z_fixed)
            else:
                x = torch.func.functional_call(model.generator, averaged(step), (z_fixed,))
            snapshots.append(x.detach().clone())
        snapshot_steps.append(step)

    model.train()
    start = time.perf_counter()
    if snapshot_every is not None:
        snapshot(0)
    for step in range(steps):
        for _ in range(n_critic):
            with torch.no_grad():
                fake = model.sample(batch_size, gen)
            loss_d = model.discriminator_loss(draw(), fake)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            model.after_discriminator_step()
        loss_g = model.generator_loss(model.sample(batch_size, gen))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach() for p in g_params], 1.0 - ema_decay)
        d_losses[step], g_losses[step] = loss_d.detach(), loss_g.detach()
        if snapshot_every is not None and (step + 1) % snapshot_every == 0:
            snapshot(step + 1)
    if not bool(torch.isfinite(d_losses).all() & torch.isfinite(g_losses).all()):  # the one host sync
        raise FloatingPointError("a loss became NaN or infinite; try smaller learning rates")
    if ema is not None:
        with torch.no_grad():
            for p, avg in zip(g_params, averaged(steps).values(), strict=True):
                p.copy_(avg)
    shots = torch.stack(snapshots).cpu() if snapshots else torch.empty(0, n_snapshot, model.data_dim)
    return AdversarialResult(d_losses, g_losses, shots, snapshot_steps, time.perf_counter() - start)


def fit_pair(
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    module: nn.Module,
    sample_p: Sampler,
    sample_q: Sampler,
    *,
    steps: int,
    batch_size: int,
    lr: float = 1e-3,
    seed: int = 0,
    **fit_kwargs,
) -> TrainResult:
    """Minimise ``loss(real, fake)`` over ``module`` with :func:`gencode.train.fit`, each batch holding
    ``batch_size`` fresh samples of each of two *fixed* distributions.

    Args:
        loss: maps a batch of each law, shapes ``(batch_size, d)``, to a scalar.
        module: the network trained (a discriminator or a critic).
        sample_p, sample_q: ``(n, generator) -> (n, d)`` samplers (e.g. ``GaussianMixture.sample``).
        steps, batch_size, lr, seed: as in :func:`gencode.train.fit`.
        **fit_kwargs: further options of :func:`gencode.train.fit` (``lr_schedule``, ``ema_decay``).

    Returns:
        The :class:`~gencode.train.TrainResult`.
    """
    def draw(n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.cat([sample_p(n, generator), sample_q(n, generator)])  # (2n, d)

    return fit(lambda batch: loss(batch[:batch_size], batch[batch_size:]), module, draw,
               steps=steps, batch_size=batch_size, lr=lr, seed=seed, **fit_kwargs)


def fit_discriminator(discriminator: nn.Module, sample_p: Sampler, sample_q: Sampler, **fit_kwargs) -> TrainResult:
    r"""Train a discriminator (logit network) between two *fixed* distributions by maximising
    :math:`V(D) = \mathbb{E}_p[\log D] + \mathbb{E}_q[\log(1 - D)]` (:func:`fit_pair`).

    Its optimum is :math:`D^* = p/(p + q)` (:func:`optimal_discriminator`).

    Args:
        discriminator: maps ``(B, d)`` to logits ``(B, 1)``.
        sample_p, sample_q: ``(n, generator) -> (n, d)`` samplers.
        **fit_kwargs: ``steps``, ``batch_size``, ``lr``, ``seed``, as in :func:`fit_pair`.

    Returns:
        The :class:`~gencode.train.TrainResult`; its losses are :math:`-V`.
    """
    def loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return -discriminator_value(discriminator(real).squeeze(-1), discriminator(fake).squeeze(-1))

    return fit_pair(loss, discriminator, sample_p, sample_q, **fit_kwargs)


# ----------------------------------------------------------------------------------------- f-GAN
LOG2 = math.log(2.0)


def fgan_objective(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r"""The f-GAN variational objective :math:`\mathbb{E}_p[T] - \mathbb{E}_q[f^*(T)]` for the original GAN's
    generator :math:`f(u) = u \log u - (u + 1)\log\frac{u + 1}{2}` (whose divergence is :math:`2\,\mathrm{JS}`),
    with conjugate :math:`f^*(s) = -\log(2 - e^s)` and output activation :math:`T = \log(2\sigma(v))`.

    It equals :func:`discriminator_value` plus :math:`\log 4` (``derivations.gan.fgan``), and is at most
    :math:`2\,\mathrm{JS}(p \Vert q)`.

    Args:
        real_logits: logits :math:`v(x)` at data samples, any shape.
        fake_logits: logits at generated samples, any shape.

    Returns:
        A 0-dim tensor.

    References:
        Nowozin, Cseke, Tomioka, "f-GAN: Training Generative Neural Samplers using Variational Divergence
        Minimization", NeurIPS 2016, arXiv:1606.00709, Table 2.
    """
    for name, t in (("real_logits", real_logits), ("fake_logits", fake_logits)):
        if not isinstance(t, torch.Tensor) or t.numel() == 0:
            raise ValueError(f"{name} must be a non-empty tensor")
    t_real = LOG2 - F.softplus(-real_logits)  # log(2 sigmoid(v)) = log 2 - softplus(-v)
    # f*(T) = -log(2 - e^T) = -log(2 - 2 sigmoid(v)) = -log 2 + softplus(v), computed stably
    conj_fake = -LOG2 + F.softplus(fake_logits)
    return t_real.mean() - conj_fake.mean()


def nonsaturating_loss_at_optimum(log_p: Callable[[torch.Tensor], torch.Tensor],
                                  log_q: Callable[[torch.Tensor], torch.Tensor],
                                  x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    r"""The non-saturating generator loss :math:`\mathbb{E}_q[-\log D^*]` at the optimal discriminator
    :math:`D^* = p / (p + q)`, by a quadrature rule on nodes ``x`` with ``weights``.

    Equal to :math:`\mathrm{KL}(q \Vert p) - 2\,\mathrm{JS}(p \Vert q) + \log 4 + \mathbb{E}_p[\log D^*]`
    (``derivations.gan.nonsaturating_kl_js``).

    Args:
        log_p, log_q: log-densities of the data and of the generator, elementwise on ``x``.
        x: quadrature nodes, shape ``(n,)``.
        weights: quadrature weights, shape ``(n,)``.

    Returns:
        A 0-dim tensor.

    References:
        Arjovsky, Bottou, "Towards Principled Methods for Training Generative Adversarial Networks",
        ICLR 2017, arXiv:1701.04862, Theorem 2.5.
    """
    if x.ndim != 1 or weights.shape != x.shape:
        raise ValueError(f"x and weights must be 1-D of the same shape, got {tuple(x.shape)} and {tuple(weights.shape)}")
    lp, lq = log_p(x), log_q(x)
    minus_log_d = torch.logaddexp(lp, lq) - lp  # -log D* = log(p + q) - log p
    return (weights * lq.exp() * minus_log_d).sum()
