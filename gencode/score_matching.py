r"""Score matching: implicit, sliced and denoising objectives; the noise-conditional score network (NCSN).

All objectives fit a model :math:`s_\theta(x) \approx \nabla_x \log p(x)` from samples of :math:`p` alone.
Each is written as in its paper and returns a scalar loss for :func:`gencode.train.fit`:

* :func:`implicit_score_matching_loss` (Hyvarinen, 2005):
  :math:`\mathbb{E}_p\big[\tfrac12 \|s_\theta(x)\|^2 + \operatorname{tr} \nabla_x s_\theta(x)\big]`, equal to the
  Fisher objective :math:`\tfrac12 \mathbb{E}_p \|s_\theta - \nabla \log p\|^2` minus a constant
  (identity ``score.implicit``). The trace is exact, by ``torch.func.jacrev``: :math:`D` backward passes.
* :func:`sliced_score_matching_loss` (Song et al., 2019): the trace replaced by
  :math:`v^\top \nabla_x s_\theta\, v`, :math:`v \sim \mathcal{N}(0, I)`, one Jacobian-vector product
  (``torch.func.jvp``) per projection (identity ``score.sliced``).
* :func:`denoising_score_matching_loss` (Vincent, 2011):
  :math:`\tfrac12 \mathbb{E}\|s_\theta(\tilde x, \sigma) + (\tilde x - x)/\sigma^2\|^2`, :math:`\tilde x = x + \sigma \epsilon`,
  equal to the explicit objective on the smoothed law :math:`q_\sigma` plus a constant (``score.denoising``).
* :func:`ncsn_loss` (Song and Ermon, 2019): the denoising objective averaged over noise levels
  :math:`\sigma_i` with the weight :math:`\sigma_i^2`, i.e. :math:`\tfrac12 \mathbb{E}\|\sigma s_\theta(\tilde x, \sigma) + \epsilon\|^2`
  (``score.ncsn.weighting``).

A score function takes ``(x, sigma)`` like the samplers of :mod:`gencode.langevin`; the implicit and sliced
objectives, which have no noise, call it with a model of ``x`` alone.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import jacrev, jvp, vmap

from .nets import MLP
from .oracle import MixtureOracle
from .paths import eps_from_score_at, score_from_x0_at, x0_from_eps_at

__all__ = [
    "NoiseConditionalScore",
    "ScoreError",
    "denoising_score_matching_loss",
    "geometric_sigmas",
    "implicit_score_matching_loss",
    "jacobian_trace",
    "ncsn_loss",
    "score_error",
    "sliced_score_matching_loss",
    "tweedie_denoiser",
]

Field = Callable[[torch.Tensor], torch.Tensor]
"""A vector field of ``x`` alone, (B, D) -> (B, D), acting on each row independently."""


def _check_x(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 2:
        raise ValueError(f"x must be a floating-point tensor of shape (B, D), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")


def _sigma(sigma: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``sigma`` as a (B, 1) tensor on ``x``'s device; a number must be finite and > 0."""
    if isinstance(sigma, torch.Tensor):
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape != (x.shape[0],):
            raise ValueError(f"sigma must be a number or have shape (B,) = ({x.shape[0]},), got {tuple(sigma.shape)}")
        return sigma.to(device=x.device, dtype=x.dtype).unsqueeze(-1)
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be finite and > 0, got {sigma!r}")
    return torch.full((x.shape[0], 1), float(sigma), device=x.device, dtype=x.dtype)


def jacobian_trace(field: Field, x: torch.Tensor) -> torch.Tensor:
    r"""The exact trace of the Jacobian :math:`\operatorname{tr} \nabla_x f(x)` at each row of ``x``.

    Args:
        field: a function (B, D) -> (B, D) that treats rows independently (e.g. an MLP).
        x: points, shape (B, D).

    Returns:
        Shape (B,); differentiable with respect to the parameters of ``field``.

    Example:
        >>> jacobian_trace(lambda x: x**2, torch.tensor([[1.0, 2.0]]))  # 2 x_1 + 2 x_2
        tensor([6.])
    """
    _check_x(x)

    def one(xi: torch.Tensor) -> torch.Tensor:  # (D,) -> (D,)
        return field(xi.unsqueeze(0)).squeeze(0)

    jac = vmap(jacrev(one))(x)  # (B, D, D)
    return jac.diagonal(dim1=-2, dim2=-1).sum(-1)


def implicit_score_matching_loss(field: Field, x: torch.Tensor) -> torch.Tensor:
    r"""Hyvarinen's objective :math:`\mathbb{E}\big[\tfrac12 \|s(x)\|^2 + \operatorname{tr} \nabla_x s(x)\big]` on a batch.

    Args:
        field: the score model of ``x`` alone, (B, D) -> (B, D).
        x: data, shape (B, D).

    Returns:
        A scalar.

    References:
        Hyvarinen, "Estimation of Non-Normalized Statistical Models by Score Matching", JMLR, 2005.
    """
    s = field(x)  # (B, D)
    return (0.5 * s.square().sum(-1) + jacobian_trace(field, x)).mean()


def sliced_score_matching_loss(
    field: Field,
    x: torch.Tensor,
    n_projections: int = 1,
    *,
    variance_reduction: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Sliced score matching: :math:`\mathbb{E}_{x, v}\big[v^\top \nabla_x s(x)\, v + \tfrac12 (v^\top s(x))^2\big]`.

    With ``variance_reduction`` the second term is replaced by its exact mean over :math:`v`,
    :math:`\tfrac12 \|s(x)\|^2` (SSM-VR). Each projection costs one forward-mode Jacobian-vector product.

    Args:
        field: the score model of ``x`` alone, (B, D) -> (B, D).
        x: data, shape (B, D).
        n_projections: number of random directions :math:`v \sim \mathcal{N}(0, I)` per point, >= 1.
        variance_reduction: use :math:`\tfrac12\|s\|^2` for :math:`\tfrac12 \mathbb{E}_v (v^\top s)^2`.
        generator: random generator for the projections.

    Returns:
        A scalar.

    References:
        Song, Garg, Shi, Ermon, "Sliced Score Matching: A Scalable Approach to Density and Score
        Estimation", UAI 2019, arXiv:1905.07088.
    """
    _check_x(x)
    if isinstance(n_projections, bool) or not isinstance(n_projections, int) or n_projections < 1:
        raise ValueError(f"n_projections must be an int >= 1, got {n_projections!r}")
    v = torch.randn((n_projections, *x.shape), generator=generator, device=x.device, dtype=x.dtype)  # (M, B, D)
    with warnings.catch_warnings():
        # torch loads its forward-mode decompositions through torch.jit.script on first use, which
        # warns that torch.jit.script is deprecated: internal to torch, nothing for the caller to do.
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated", category=DeprecationWarning)
        s, jv = vmap(lambda u: jvp(field, (x,), (u,)), out_dims=(None, 0))(v)  # (B, D), (M, B, D)
    quadratic = (v * jv).sum(-1)  # (M, B): v^T J v
    if variance_reduction:
        square = 0.5 * s.square().sum(-1)  # (B,)
    else:
        square = 0.5 * (v * s).sum(-1).square()  # (M, B)
    return (quadratic + square).mean()


def denoising_score_matching_loss(
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigma: float | torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Denoising score matching :math:`\tfrac12 \mathbb{E}\,\|s(\tilde x, \sigma) - \nabla_{\tilde x} \log q_\sigma(\tilde x \mid x)\|^2`.

    With :math:`\tilde x = x + \sigma \epsilon`, the target is :math:`-(\tilde x - x)/\sigma^2 = -\epsilon/\sigma`.

    Args:
        score: ``score(x_tilde, sigma)`` with ``sigma`` of shape (B,).
        x: clean data, shape (B, D).
        sigma: the noise level, a number or shape (B,).
        noise: :math:`\epsilon`, shape of ``x``; drawn when not given.
        generator: random generator for the noise.

    Returns:
        A scalar.

    References:
        Vincent, "A Connection Between Score Matching and Denoising Autoencoders", Neural
        Computation, 2011.
    """
    _check_x(x)
    sig = _sigma(sigma, x)  # (B, 1)
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    elif noise.shape != x.shape:
        raise ValueError(f"noise must have the shape of x {tuple(x.shape)}, got {tuple(noise.shape)}")
    x_tilde = x + sig * noise
    target = score_from_x0_at(x_tilde, x, 1.0, sig)  # -(x_tilde - x)/sigma^2 = -noise/sigma (alpha = 1)
    return 0.5 * (score(x_tilde, sig.squeeze(-1)) - target).square().sum(-1).mean()


def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int,
                     dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Noise levels :math:`\sigma_i = \sigma_{\max} (\sigma_{\min}/\sigma_{\max})^{(i-1)/(L-1)}`, decreasing.

    Example:
        >>> geometric_sigmas(1.0, 0.01, 3)
        tensor([1.0000, 0.1000, 0.0100], dtype=torch.float64)
    """
    if not (0 < sigma_min < sigma_max and math.isfinite(sigma_max)):
        raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if isinstance(n_levels, bool) or not isinstance(n_levels, int) or n_levels < 2:
        raise ValueError(f"n_levels must be an int >= 2, got {n_levels!r}")
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), n_levels, dtype=dtype)


def ncsn_loss(
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The NCSN objective: :math:`\frac{1}{L}\sum_i \sigma_i^2 \cdot \tfrac12 \mathbb{E}\|s(\tilde x, \sigma_i) + (\tilde x - x)/\sigma_i^2\|^2`.

    Each sample of the batch gets one level drawn uniformly; with the weight :math:`\sigma^2` the term is
    :math:`\tfrac12\|\sigma s(\tilde x, \sigma) + \epsilon\|^2`, of order one at every level.

    Args:
        score: ``score(x_tilde, sigma)`` with ``sigma`` of shape (B,).
        x: clean data, shape (B, D).
        sigmas: the noise levels, shape (L,).
        generator: random generator (levels and noise).

    Returns:
        A scalar.

    References:
        Song, Ermon, "Generative Modeling by Estimating Gradients of the Data Distribution", NeurIPS
        2019, arXiv:1907.05600 (equation 6, with lambda(sigma) = sigma^2).
    """
    _check_x(x)
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or sigmas.numel() < 1:
        raise ValueError("sigmas must be a 1-D tensor of noise levels")
    idx = torch.randint(sigmas.numel(), (x.shape[0],), generator=generator, device=x.device)
    sigma = sigmas.to(device=x.device, dtype=x.dtype)[idx]  # (B,)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_tilde = x + sigma.unsqueeze(-1) * noise
    # sigma s + noise = -(eps_hat - noise) with the noise eps_hat = -sigma s that the score predicts
    eps_hat = eps_from_score_at(score(x_tilde, sigma), sigma.unsqueeze(-1))
    return 0.5 * (eps_hat - noise).square().sum(-1).mean()


def tweedie_denoiser(
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x_tilde: torch.Tensor,
    sigma: float | torch.Tensor,
) -> torch.Tensor:
    r"""Tweedie's formula :math:`\mathbb{E}[x \mid \tilde x] = \tilde x + \sigma^2 \nabla \log q_\sigma(\tilde x)` (``score.tweedie``).

    Args:
        score: ``score(x_tilde, sigma)`` with ``sigma`` of shape (B,).
        x_tilde: noisy points, shape (B, D).
        sigma: the noise level, a number or shape (B,).

    Returns:
        The posterior means, shape (B, D).
    """
    _check_x(x_tilde)
    sig = _sigma(sigma, x_tilde)  # (B, 1)
    # x0 = (x_tilde - sigma eps)/alpha with alpha = 1 and eps = -sigma s: x_tilde + sigma^2 s
    return x0_from_eps_at(x_tilde, eps_from_score_at(score(x_tilde, sig.squeeze(-1)), sig), 1.0, sig)


class NoiseConditionalScore(nn.Module):
    r"""A noise-conditional score network :math:`s_\theta(x, \sigma) = f_\theta(x, \log \sigma) / \sigma`.

    :math:`f_\theta` is an :class:`~gencode.nets.MLP` conditioned on :math:`\log\sigma` through its time
    embedding; dividing by :math:`\sigma` matches the scale of the true score, :math:`\|\nabla \log q_\sigma\|
    \approx \sqrt{D}/\sigma` for small :math:`\sigma` (Song and Ermon, 2020), so :math:`f_\theta` predicts
    minus the noise, a quantity of order one at every level.

    Args:
        dim: data dimension :math:`D`.
        hidden: width of the MLP.
        depth: hidden layers of the MLP.
        time_dim: size of the embedding of :math:`\log\sigma`.

    Example:
        >>> net = NoiseConditionalScore(2, hidden=16, depth=2)
        >>> net(torch.randn(5, 2), torch.full((5,), 0.5)).shape
        torch.Size([5, 2])

    References:
        Song, Ermon, "Improved Techniques for Training Score-Based Generative Models", NeurIPS 2020,
        arXiv:2006.09011.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, time_dim: int = 32) -> None:
        super().__init__()
        self.net = MLP(dim, dim, hidden=hidden, depth=depth, time_dim=time_dim)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """The score at noise level ``sigma`` (a number or shape (B,)), shape of ``x`` (B, D)."""
        _check_x(x)
        sig = _sigma(sigma, x)  # (B, 1)
        return self.net(x, sig.squeeze(-1).log()) / sig


@dataclass(frozen=True)
class ScoreError:
    r"""How far a score model is from the exact score, per noise level.

    Attributes:
        sigmas: the noise levels, shape (L,).
        relative: :math:`\mathbb{E}\|s_\theta - s^*\|^2 / \mathbb{E}\|s^*\|^2` under :math:`q_\sigma`, shape (L,).
        excess: :math:`\tfrac12 \sigma^2\, \mathbb{E}\|s_\theta - s^*\|^2`, shape (L,): by the denoising score
            matching theorem, how much the model's :math:`\sigma^2`-weighted denoising loss at level
            :math:`\sigma` exceeds its minimum (the NCSN objective's excess, level by level).
    """

    sigmas: torch.Tensor
    relative: torch.Tensor
    excess: torch.Tensor


@torch.no_grad()
def score_error(
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    oracle: MixtureOracle,
    sigmas: torch.Tensor,
    n: int = 4096,
    *,
    generator: torch.Generator | None = None,
) -> ScoreError:
    r"""The relative squared error of ``score`` against the oracle score, at each level, on :math:`q_\sigma`.

    Args:
        score: ``score(x, sigma)`` with ``sigma`` of shape (B,).
        oracle: the exact model of the (Gaussian-mixture) data.
        sigmas: the levels, shape (L,).
        n: Monte Carlo sample size per level.
        generator: random generator on the data's device.

    Returns:
        A :class:`ScoreError`.
    """
    rel, excess = [], []
    for sigma in sigmas.tolist():
        x = oracle.marginal(1.0, sigma).sample(n, generator=generator)  # (n, D) from q_sigma
        exact = oracle.score(x, 1.0, sigma)
        model = score(x, torch.full((n,), sigma, device=x.device, dtype=x.dtype))
        mse = (model - exact).square().sum(-1).mean()
        rel.append(mse / exact.square().sum(-1).mean())
        excess.append(0.5 * sigma**2 * mse)
    return ScoreError(sigmas.detach().cpu(), torch.stack(rel).cpu(), torch.stack(excess).cpu())
