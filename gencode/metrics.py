r"""Sample-based metrics for generative models: Frechet distance (FID-style), precision and recall,
density and coverage, exact 1-D Wasserstein-1. All run on the samples' device and are batched.

* :func:`frechet_distance`: :math:`\|\mu_1 - \mu_2\|^2 + \operatorname{tr}(\Sigma_1 + \Sigma_2 -
  2(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2})`, the squared :math:`W_2` distance between two Gaussians
  (``derivations.evaluation``). The trace of the matrix square root is the sum of the square roots
  of the eigenvalues of the symmetric matrix :math:`\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}`, computed
  with ``torch.linalg.eigh``; no ``scipy.linalg.sqrtm``, no host round trip.
* :func:`fid`: the Frechet distance between Gaussians fitted to features of two samples (FID when the
  features are Inception-v3's; any feature map here).
* :func:`precision_recall` (Kynkaanniemi et al., 2019) and :func:`density_coverage` (Naeem et al.,
  2020): k-nearest-neighbour balls around real and generated points.
* :func:`wasserstein1_1d`: :math:`W_1 = \int |F_P - F_Q|` between empirical laws on the line, exactly.
* :func:`sliced_wasserstein` is :func:`gencode.two_sample.sliced_wasserstein`, re-exported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .device import check_finite
from .two_sample import sliced_wasserstein

__all__ = [
    "inception_score", "kid", "mmd2_unbiased", "polynomial_kernel",
    "DensityCoverage",
    "GaussianStats",
    "PrecisionRecall",
    "density_coverage",
    "fid",
    "frechet_distance",
    "gaussian_stats",
    "precision_recall",
    "sliced_wasserstein",
    "sqrtm_psd",
    "wasserstein1_1d",
]


def _check_cov(name: str, S: torch.Tensor, d: int) -> None:
    if S.shape[-2:] != (d, d):
        raise ValueError(f"{name} must have shape (..., {d}, {d}), got {tuple(S.shape)}")
    check_finite(name, S)
    scale = S.abs().amax(dim=(-2, -1)).clamp_min(1.0)
    tol = 100 * torch.finfo(S.dtype).eps * scale  # round-off of a computed covariance
    if bool(((S - S.mT).abs().amax(dim=(-2, -1)) > tol).any()):
        raise ValueError(f"{name} must be symmetric")
    if bool((torch.linalg.eigvalsh(S)[..., 0] < -1e3 * tol).any()):
        raise ValueError(f"{name} must be positive semi-definite")


def sqrtm_psd(S: torch.Tensor) -> torch.Tensor:
    r"""The symmetric positive semi-definite square root :math:`S^{1/2} = U \operatorname{diag}(\sqrt{\lambda}) U^\top`.

    Eigenvalues below 0 (round-off) are set to 0.

    Args:
        S: symmetric PSD matrices, shape ``(..., d, d)``.

    Returns:
        Shape ``(..., d, d)``.

    Example:
        >>> sqrtm_psd(torch.diag(torch.tensor([4.0, 9.0])))
        tensor([[2., 0.],
                [0., 3.]])
    """
    lam, U = torch.linalg.eigh(S)
    return (U * lam.clamp_min(0).sqrt().unsqueeze(-2)) @ U.mT


def frechet_distance(mu1: torch.Tensor, S1: torch.Tensor, mu2: torch.Tensor, S2: torch.Tensor,
                     validate: bool = True) -> torch.Tensor:
    r"""Squared Wasserstein-2 distance between :math:`\mathcal{N}(\mu_1, \Sigma_1)` and :math:`\mathcal{N}(\mu_2, \Sigma_2)`.

    .. math::
        d^2 = \|\mu_1 - \mu_2\|^2 + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
              - 2 \sum_i \sqrt{\lambda_i\bigl(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\bigr)}

    Args:
        mu1, mu2: means, shape ``(..., d)``.
        S1, S2: covariances, shape ``(..., d, d)``, symmetric positive semi-definite.
        validate: check shapes, finiteness, symmetry and semi-definiteness (a host sync); turn off
            inside loops.

    Returns:
        Shape ``(...)``, clamped at 0 (round-off can make it slightly negative).

    Raises:
        ValueError: naming the argument on a wrong shape, NaN, or a matrix that is not symmetric
            positive semi-definite.

    Example:
        >>> I = torch.eye(2, dtype=torch.float64)
        >>> frechet_distance(torch.zeros(2, dtype=torch.float64), I, torch.ones(2, dtype=torch.float64), 4 * I)
        tensor(4., dtype=torch.float64)

    References:
        Dowson, Landau, "The Frechet distance between multivariate normal distributions", 1982.
        Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
        Equilibrium", 2017, arXiv:1706.08500.
    """
    if validate:
        d = mu1.shape[-1]
        if mu2.shape[-1] != d:
            raise ValueError(f"mu1 and mu2 must have the same dimension, got {mu1.shape[-1]} and {mu2.shape[-1]}")
        check_finite("mu1", mu1)
        check_finite("mu2", mu2)
        _check_cov("S1", S1, d)
        _check_cov("S2", S2, d)
    root = sqrtm_psd(S1)  # (..., d, d)
    middle = root @ S2 @ root
    middle = 0.5 * (middle + middle.mT)  # exactly symmetric for eigvalsh
    trace_sqrt = torch.linalg.eigvalsh(middle).clamp_min(0).sqrt().sum(-1)  # (...)
    tr = torch.diagonal(S1, dim1=-2, dim2=-1).sum(-1) + torch.diagonal(S2, dim1=-2, dim2=-1).sum(-1)
    return ((mu1 - mu2).square().sum(-1) + tr - 2 * trace_sqrt).clamp_min(0)


@dataclass
class GaussianStats:
    """Mean ``(..., d)`` and unbiased covariance ``(..., d, d)`` of a sample."""

    mean: torch.Tensor
    cov: torch.Tensor


def _samples(name: str, x: torch.Tensor, min_n: int = 2) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[-2] < min_n:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor of shape (..., n, d) with n >= {min_n}, got {shape}")
    check_finite(name, x)


def _featurised(real: torch.Tensor, fake: torch.Tensor, features) -> tuple[torch.Tensor, torch.Tensor]:
    """Both samples checked, then mapped by ``features`` (no gradient) unless it is ``None``."""
    _samples("real", real)
    _samples("fake", fake)
    if features is None:
        return real, fake
    with torch.no_grad():
        return features(real), features(fake)


def gaussian_stats(x: torch.Tensor) -> GaussianStats:
    """Sample mean and unbiased sample covariance of ``x`` with shape ``(..., n, d)``.

    Raises:
        ValueError: if ``x`` has fewer than 2 samples or contains NaN.
    """
    _samples("x", x)
    mean = x.mean(-2)
    xc = x - mean.unsqueeze(-2)
    return GaussianStats(mean, xc.mT @ xc / (x.shape[-2] - 1))


def fid(real: torch.Tensor, fake: torch.Tensor,
        features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    r"""The Frechet distance between Gaussians fitted to ``features(real)`` and ``features(fake)``.

    With Inception-v3 pool features this is FID (Heusel et al., 2017). The plug-in estimate is biased
    upwards: two samples of one law give a positive value of order :math:`1/n` (``fid.mean_bias``).

    Args:
        real: shape ``(..., n, D)``.
        fake: shape ``(..., m, D)``.
        features: a feature map ``(..., n, D) -> (..., n, d)``; the identity if ``None``.

    Returns:
        Shape ``(...)``.
    """
    real, fake = _featurised(real, fake, features)
    a, b = gaussian_stats(real), gaussian_stats(fake)
    return frechet_distance(a.mean, a.cov, b.mean, b.cov, validate=False)


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of ``x`` (..., n, d) to its k-th nearest other row, shape ``(..., n)``."""
    d = torch.cdist(x, x)  # (..., n, n); the diagonal is the point itself at distance 0
    return d.kthvalue(k + 1, dim=-1).values


def _check_k(k: int, n: int, name: str) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if k >= n:
        raise ValueError(f"k must be smaller than the number of {name} samples ({n}), got k = {k}")


def _in_balls(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """``[j, i]``: point j lies in the ball of centre i; shape ``(..., m, n)``."""
    return torch.cdist(points, centres) <= radii.unsqueeze(-2)


@dataclass
class PrecisionRecall:
    """Improved precision (fraction of generated points inside the real manifold) and recall
    (fraction of real points inside the generated manifold), shape ``(...)`` each."""

    precision: torch.Tensor
    recall: torch.Tensor


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> PrecisionRecall:
    r"""k-NN precision and recall (Kynkaanniemi et al., 2019).

    The manifold of a sample :math:`S` is the union of the balls :math:`B(s, \mathrm{NND}_k(s))`,
    :math:`s \in S`, with :math:`\mathrm{NND}_k(s)` the distance from :math:`s` to its k-th nearest
    neighbour in :math:`S`. Precision is the fraction of generated points in the real manifold;
    recall the fraction of real points in the generated manifold.

    Args:
        real: shape ``(..., n, d)``.
        fake: shape ``(..., m, d)``.
        k: neighbours, ``1 <= k < min(n, m)``.

    Returns:
        A :class:`PrecisionRecall`.

    Raises:
        ValueError: on a wrong shape, NaN, or ``k`` out of range.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(200, 2, generator=g)
        >>> pr = precision_recall(x, x + 100.0, k=3)  # disjoint: nothing is covered
        >>> pr.precision.item(), pr.recall.item()
        (0.0, 0.0)

    References:
        Kynkaanniemi et al., "Improved Precision and Recall Metric for Assessing Generative Models",
        2019, arXiv:1904.06991.
    """
    _samples("real", real)
    _samples("fake", fake)
    _check_k(k, real.shape[-2], "real")
    _check_k(k, fake.shape[-2], "fake")
    r_real, r_fake = _knn_radii(real, k), _knn_radii(fake, k)
    precision = _in_balls(fake, real, r_real).any(-1).to(real.dtype).mean(-1)
    recall = _in_balls(real, fake, r_fake).any(-1).to(real.dtype).mean(-1)
    return PrecisionRecall(precision, recall)


@dataclass
class DensityCoverage:
    """Density (how many real balls contain each generated point, over k; expected 1 for equal laws)
    and coverage (fraction of real balls that contain a generated point), shape ``(...)`` each."""

    density: torch.Tensor
    coverage: torch.Tensor


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> DensityCoverage:
    r"""Density and coverage (Naeem et al., 2020), using k-NN balls of the real points only.

    .. math::
        \mathrm{density} = \frac{1}{kM} \sum_{j=1}^{M} \sum_{i=1}^{N} \mathbb{1}[Y_j \in B(X_i, \mathrm{NND}_k(X_i))],
        \qquad
        \mathrm{coverage} = \frac{1}{N} \sum_{i=1}^{N} \mathbb{1}[\exists j: Y_j \in B(X_i, \mathrm{NND}_k(X_i))]

    For two samples of one law, the expected density is 1 and the expected coverage
    :math:`1 - \binom{N-1}{k}/\binom{2N-1}{k} \to 1 - 2^{-k}` when :math:`M = N`
    (``prdc.density_identical``, ``prdc.coverage_identical``).

    Args:
        real: shape ``(..., N, d)``.
        fake: shape ``(..., M, d)``.
        k: neighbours, ``1 <= k < N``.

    Returns:
        A :class:`DensityCoverage`.

    Raises:
        ValueError: on a wrong shape, NaN, or ``k`` out of range.

    References:
        Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative Models", 2020,
        arXiv:2002.09797.
    """
    _samples("real", real)
    _samples("fake", fake, min_n=1)
    _check_k(k, real.shape[-2], "real")
    inside = _in_balls(fake, real, _knn_radii(real, k))  # (..., M, N)
    density = inside.to(real.dtype).sum((-2, -1)) / (k * fake.shape[-2])
    coverage = inside.any(-2).to(real.dtype).mean(-1)
    return DensityCoverage(density, coverage)


def wasserstein1_1d(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Exact :math:`W_1` between the empirical laws of ``x`` and ``y`` on the line (batched).

    .. math::
        W_1 = \int_{-\infty}^{\infty} |F_x(t) - F_y(t)|\, dt
            = \sum_i |F_x(t_i) - F_y(t_i)|\, (t_{i+1} - t_i)

    over the sorted union :math:`t_1 \le t_2 \le \dots` of both samples (``kr.duality``: the
    optimal coupling and potential of the duality realise this sum).

    Args:
        x: shape ``(..., n)``.
        y: shape ``(..., m)``, same batch shape.

    Returns:
        Shape ``(...)``.

    Raises:
        ValueError: on empty samples, NaN, or different batch shapes.

    Example:
        >>> wasserstein1_1d(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0]))
        tensor(2.)
    """
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor) or t.ndim < 1 or t.shape[-1] < 1:
            raise ValueError(f"{name} must be a tensor of shape (..., n) with n >= 1")
        check_finite(name, t)
    if x.shape[:-1] != y.shape[:-1]:
        raise ValueError(f"x and y must have the same batch shape, got {tuple(x.shape[:-1])} and {tuple(y.shape[:-1])}")
    xs, _ = torch.sort(x, dim=-1)
    ys, _ = torch.sort(y, dim=-1)
    t, _ = torch.sort(torch.cat([xs, ys], dim=-1), dim=-1)  # (..., n + m)
    Fx = torch.searchsorted(xs.contiguous(), t.contiguous(), right=True).to(x.dtype) / x.shape[-1]
    Fy = torch.searchsorted(ys.contiguous(), t.contiguous(), right=True).to(x.dtype) / y.shape[-1]
    return ((Fx - Fy).abs()[..., :-1] * t.diff(dim=-1)).sum(-1)


# ------------------------------------------------------------------------------ Inception Score, KID
def inception_score(probs: torch.Tensor) -> torch.Tensor:
    r"""The Inception Score :math:`\exp\big(\tfrac1N \sum_i \mathrm{KL}(p(y \mid x_i) \Vert \bar p)\big)`,
    :math:`\bar p = \tfrac1N \sum_i p(y \mid x_i)`; equal to :math:`\exp I(x; y)` (``is.mutual_information``),
    in :math:`[1, K]` (``is.bounds``).

    Args:
        probs: classifier probabilities, shape ``(..., N, K)``, non-negative, each row summing to 1.

    Returns:
        Shape ``(...)``.

    Raises:
        ValueError: if ``probs`` has the wrong shape, is negative, NaN, or its rows do not sum to 1.

    References:
        Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016, arXiv:1606.03498.
    """
    if not isinstance(probs, torch.Tensor) or probs.ndim < 2 or probs.shape[-2] < 1 or probs.shape[-1] < 1:
        raise ValueError("probs must be a tensor of shape (..., N, K) with N, K >= 1")
    check_finite("probs", probs)
    if bool((probs < 0).any()) or bool(((probs.sum(-1) - 1).abs() > 1e-6).any()):
        raise ValueError("probs must be non-negative with rows summing to 1")
    marginal = probs.mean(-2, keepdim=True)  # (..., 1, K)
    kl = (torch.xlogy(probs, probs) - torch.xlogy(probs, marginal)).sum(-1)  # (..., N)
    return kl.mean(-1).exp()


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3) -> torch.Tensor:
    r"""The kernel :math:`k(x, y) = (x \cdot y / d + 1)^{\text{degree}}` of KID, as a Gram matrix.

    Args:
        x: shape ``(..., m, d)``; y: shape ``(..., n, d)``.

    Returns:
        Shape ``(..., m, n)``.
    """
    return (x @ y.mT / x.shape[-1] + 1) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor,
                  kernel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = polynomial_kernel) -> torch.Tensor:
    r"""The unbiased U-statistic of :math:`\mathrm{MMD}^2(P, Q)` (``kid.unbiased``):
    :math:`\frac{1}{m(m-1)}\sum_{i \ne j} k(x_i, x_j) + \frac{1}{n(n-1)}\sum_{i \ne j} k(y_i, y_j)
    - \frac{2}{mn}\sum_{i,j} k(x_i, y_j)`.

    Args:
        x: samples of P, shape ``(..., m, d)``, m >= 2.
        y: samples of Q, shape ``(..., n, d)``, n >= 2.
        kernel: a Gram-matrix function.

    Returns:
        Shape ``(...)``; can be negative (it is unbiased, not non-negative).

    References:
        Gretton et al., "A Kernel Two-Sample Test", JMLR 2012, Lemma 6.
    """
    _samples("x", x)
    _samples("y", y)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[-1]} and {y.shape[-1]}")
    m, n = x.shape[-2], y.shape[-2]
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    off_x = (kxx.sum((-2, -1)) - kxx.diagonal(dim1=-2, dim2=-1).sum(-1)) / (m * (m - 1))
    off_y = (kyy.sum((-2, -1)) - kyy.diagonal(dim1=-2, dim2=-1).sum(-1)) / (n * (n - 1))
    return off_x + off_y - 2 * kxy.mean((-2, -1))


def kid(real: torch.Tensor, fake: torch.Tensor,
        features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    r"""Kernel Inception Distance: :func:`mmd2_unbiased` with the cubic :func:`polynomial_kernel` on
    ``features(real)`` and ``features(fake)`` (Binkowski et al., "Demystifying MMD GANs", ICLR 2018,
    arXiv:1801.01401). Unbiased, unlike FID.

    Args:
        real: shape ``(..., m, D)``; fake: shape ``(..., n, D)``.
        features: a feature map; the identity if ``None``.

    Returns:
        Shape ``(...)``.
    """
    real, fake = _featurised(real, fake, features)
    return mmd2_unbiased(real, fake, polynomial_kernel)
