r"""Two-sample distances, and the finite-sample floor that a correct sampler's distance must stay under.

A sampler is correct when its samples are distributed as the reference. With finitely many samples
every distance between two sample sets is positive even when the laws are equal, so a fixed tolerance
is either too loose or flaky. :func:`sample_floor` measures the distance between *independent samples
of the reference itself*, repeated, which gives the distribution of the statistic under the hypothesis
"same law"; a sampler passes when its distance lies within that distribution's upper range.

* :func:`energy_distance`: :math:`2\,\mathbb{E}\|X - Y\| - \mathbb{E}\|X - X'\| - \mathbb{E}\|Y - Y'\|`,
  zero iff the laws are equal (Szekely and Rizzo), estimated with U-statistics for the within terms, so
  it is unbiased and may be slightly negative when the laws agree;
* :func:`sliced_wasserstein`: the average over random directions of the 1-D Wasserstein-2 distance
  between the projections (exact in 1-D by sorting).

Both run on the samples' device and are vectorised; memory grows as ``n * m`` for the energy distance
(``n, m <= 10^4`` is fine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Floor", "ModeCheck", "energy_distance", "mode_check", "sample_floor", "sliced_wasserstein"]


def _pair(x: torch.Tensor, y: torch.Tensor) -> None:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.shape[0] < 2:
            raise ValueError(f"{name} must be a tensor of shape (n, D) with n >= 2, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension D, got {x.shape[1]} and {y.shape[1]}")


def _mean_offdiag(d: torch.Tensor) -> torch.Tensor:
    n = d.shape[0]
    return d.sum() / (n * (n - 1))  # the diagonal of a distance matrix is zero


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Unbiased estimate of the energy distance between the laws of the rows of ``x`` and ``y``.

    Args:
        x: samples, shape ``(n, D)``.
        y: samples, shape ``(m, D)``, same device and dtype.

    Returns:
        A 0-dim tensor (no host synchronisation).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> near = energy_distance(torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g))
        >>> far = energy_distance(torch.randn(500, 2, generator=g), 3 + torch.randn(500, 2, generator=g))
        >>> bool(near.abs() < 0.05), bool(far > 2)
        (True, True)
    """
    _pair(x, y)
    xy = torch.cdist(x, y).mean()
    return 2 * xy - _mean_offdiag(torch.cdist(x, x)) - _mean_offdiag(torch.cdist(y, y))


def sliced_wasserstein(
    x: torch.Tensor,
    y: torch.Tensor,
    n_projections: int = 128,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Sliced Wasserstein-2 distance :math:`\bigl(\mathbb{E}_\theta W_2^2(\theta^\top X, \theta^\top Y)\bigr)^{1/2}`.

    Args:
        x, y: samples of shapes ``(n, D)`` with the same ``n`` (1-D transport by sorting pairs order
            statistics).
        n_projections: number of random unit directions :math:`\theta`.
        generator: optional generator for the directions (on the samples' device).

    Returns:
        A 0-dim tensor.
    """
    _pair(x, y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of samples, got {x.shape[0]} and {y.shape[0]}")
    if isinstance(n_projections, bool) or not isinstance(n_projections, int) or n_projections < 1:
        raise ValueError(f"n_projections must be a positive int, got {n_projections!r}")
    theta = torch.randn(x.shape[1], n_projections, generator=generator, device=x.device, dtype=x.dtype)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x @ theta, dim=0)
    py, _ = torch.sort(y @ theta, dim=0)
    return (px - py).square().mean().sqrt()


@dataclass(frozen=True)
class Floor:
    """The distribution of a two-sample statistic between independent samples of one law.

    Attributes:
        values: the statistic for each repetition, shape ``(reps,)``.
    """

    values: torch.Tensor

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def std(self) -> float:
        return float(self.values.std())

    def threshold(self, k: float = 4.0) -> float:
        """``mean + k * std``: a statistic above it is implausible (by Chebyshev, probability <= 1/k^2)
        if the laws were equal."""
        return self.mean + k * self.std


def sample_floor(
    sample: Callable[[int], torch.Tensor],
    n: int,
    statistic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = energy_distance,
    reps: int = 20,
) -> Floor:
    r"""The statistic between two independent ``n``-samples of the same law, ``reps`` times.

    Args:
        sample: ``sample(n)`` returns ``n`` fresh samples of the reference law, shape ``(n, D)``.
        n: sample size, the same as the sampler under test uses.
        statistic: a two-sample statistic (default :func:`energy_distance`).
        reps: number of repetitions.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> floor = sample_floor(lambda n: torch.randn(n, 1, generator=g), 400)
        >>> bool(energy_distance(torch.randn(400, 1, generator=g), torch.randn(400, 1, generator=g))
        ...      < floor.threshold())
        True
    """
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 2:
        raise ValueError(f"reps must be an int >= 2, got {reps!r}")
    values = torch.stack([statistic(sample(n), sample(n)) for _ in range(reps)])
    return Floor(values.detach().cpu())


@dataclass(frozen=True)
class ModeCheck:
    r"""Per-mode weights and within-mode variances of a sample against a fresh reference sample.

    A pooled two-sample distance can miss a sampler that gets every mode's location right but its
    spread or its weight wrong (the energy distance is nearly blind to a within-mode variance off
    by 20% when modes are far apart).  Each point is assigned to the mixture component of largest
    responsibility; the same assignment is applied to a fresh sample of the mixture, so the
    truncation it causes affects both sides alike.

    Attributes:
        weights, ref_weights: fraction of points per component, shape ``(K,)``.
        variances, ref_variances: per-coordinate variance of the points of each component,
            shape ``(K, D)`` (NaN for a component with fewer than 2 points).
        weight_z: :math:`(w - w_{ref}) / \sqrt{w_{ref}(1 - w_{ref})(1/n + 1/m)}`, shape ``(K,)``.
        variance_z: difference of variances over its standard error
            :math:`\sqrt{2 v^2/(n_k - 1) + 2 v_{ref}^2/(m_k - 1)}` (Gaussian fourth moment),
            shape ``(K, D)``; infinite where a component is missing.
    """

    weights: torch.Tensor
    ref_weights: torch.Tensor
    variances: torch.Tensor
    ref_variances: torch.Tensor
    weight_z: torch.Tensor
    variance_z: torch.Tensor

    def passed(self, k: float = 4.0) -> bool:
        """Every weight and every within-mode variance within ``k`` standard errors of the reference."""
        return bool((self.weight_z.abs() <= k).all() and (self.variance_z.abs() <= k).all())

    def worst(self) -> tuple[float, float]:
        """The largest ``|z|`` of the weights and of the variances."""
        return float(self.weight_z.abs().max()), float(self.variance_z.abs().max())


def _per_component(x: torch.Tensor, labels: torch.Tensor, num: int) -> tuple[torch.Tensor, torch.Tensor]:
    one_hot = torch.nn.functional.one_hot(labels, num).to(x.dtype)  # (n, K)
    counts = one_hot.sum(0)  # (K,)
    mean = (one_hot.T @ x) / counts.clamp_min(1).unsqueeze(-1)  # (K, D)
    sq = (one_hot.T @ x.square()) / counts.clamp_min(1).unsqueeze(-1)  # (K, D)
    var = (sq - mean.square()) * (counts / (counts - 1).clamp_min(1)).unsqueeze(-1)  # unbiased, (K, D)
    var = torch.where((counts >= 2).unsqueeze(-1), var, torch.full_like(var, float("nan")))
    return counts, var


def mode_check(x: torch.Tensor, mixture, reference: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> ModeCheck:
    """Compare the per-mode weights and variances of ``x`` with those of a sample of ``mixture``.

    Args:
        x: samples under test, shape ``(n, D)``.
        mixture: a :class:`gencode.distributions.GaussianMixture` (the target law).
        reference: a fresh sample of the target, shape ``(m, D)``; drawn (``m = n``) if omitted.
        generator: generator for drawing the reference.

    Returns:
        A :class:`ModeCheck`.

    Example:
        >>> from gencode.distributions import eight_gaussians
        >>> g = torch.Generator().manual_seed(0)
        >>> target = eight_gaussians(std=0.2, dtype=torch.float64)
        >>> target.sample(4000, g).shape
        torch.Size([4000, 2])
        >>> mode_check(target.sample(4000, g), target, generator=g).passed()
        True
        >>> shrunk = target.means[torch.arange(4000) % 8] + 0.1 * torch.randn(4000, 2, generator=g, dtype=torch.float64)
        >>> mode_check(shrunk, target, generator=g).passed()  # right weights, half the spread
        False
    """
    if x.ndim != 2 or x.shape[1] != mixture.dim or x.shape[0] < 2:
        raise ValueError(f"x must have shape (n >= 2, {mixture.dim}), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite values")
    x = x.to(device=mixture.device, dtype=mixture.dtype)
    if reference is None:
        reference = mixture.sample(x.shape[0], generator)
    reference = reference.to(device=mixture.device, dtype=mixture.dtype)
    num = mixture.num_components
    n_x, v_x = _per_component(x, mixture.responsibilities(x).argmax(-1), num)
    n_r, v_r = _per_component(reference, mixture.responsibilities(reference).argmax(-1), num)
    n, m = x.shape[0], reference.shape[0]
    w_x, w_r = n_x / n, n_r / m
    # a component that holds all or none of the reference has no binomial spread: z is 0 if the
    # sample agrees exactly and infinite otherwise (a plain division would give 0/0 = NaN)
    se_w = (w_r * (1 - w_r) * (1 / n + 1 / m)).sqrt()
    diff = w_x - w_r
    weight_z = torch.where(se_w > 0, diff / se_w.clamp_min(torch.finfo(se_w.dtype).tiny),
                           torch.where(diff == 0, torch.zeros_like(diff), torch.full_like(diff, float("inf"))))
    se = (2 * v_x.square() / (n_x - 1).clamp_min(1).unsqueeze(-1)
          + 2 * v_r.square() / (n_r - 1).clamp_min(1).unsqueeze(-1)).sqrt()
    variance_z = torch.nan_to_num((v_x - v_r) / se, nan=float("inf"))
    return ModeCheck(w_x, w_r, v_x, v_r, weight_z, variance_z)
