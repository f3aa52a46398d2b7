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

__all__ = ["Floor", "energy_distance", "sample_floor", "sliced_wasserstein"]


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
