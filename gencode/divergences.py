r"""Divergences and distances between distributions, computed stably.

* discrete: :func:`kl_discrete`, :func:`js_discrete`, :func:`tv_discrete` (``xlogy`` so that
  :math:`0 \log 0 = 0`; KL is :math:`+\infty` when :math:`q = 0 < p`);
* 1-D densities by composite Gauss-Legendre quadrature on the device: :func:`kl_quadrature`,
  :func:`js_quadrature` (log-densities in, :math:`\log m = \operatorname{logaddexp}(\log p, \log q) - \log 2`);
* Monte Carlo from samples: :func:`kl_monte_carlo`, :func:`js_monte_carlo`, returning an
  :class:`Estimate` with its standard error;
* Gaussians in closed form through ``torch.distributions.kl_divergence``: :func:`gaussian_kl`,
  :func:`kl_diag_standard_normal`; :func:`fisher_divergence` by quadrature of score differences;
* Wasserstein: exact 1-D :math:`W_p` of equal-size samples by sorting (:func:`wasserstein_1d`),
  exact 1-D :math:`W_1` of weighted samples as :math:`\int |F_P - F_Q|` (:func:`w1_cdf`), and in any
  dimension the exact optimal transport primal (POT, :func:`w1_exact`) and the Kantorovich dual
  linear program (scipy, :func:`w1_dual_lp`);
* :func:`fit_gaussian_kl`: the Gaussian closest to a 1-D density in forward or reverse KL.

Natural logarithms throughout (nats).

References:
    Cover, Thomas, "Elements of Information Theory", 2006.
    Lin, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory, 1991.
    Villani, "Optimal Transport: Old and New", 2009.
    Peyre, Cuturi, "Computational Optimal Transport", 2019, arXiv:1803.00567.
    Flamary et al., "POT: Python Optimal Transport", JMLR 2021.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.distributions import Normal, kl_divergence

from .device import as_tensor
from .train import fit

__all__ = [
    "Estimate", "DualLP", "GaussianFit", "fisher_divergence", "fit_gaussian_kl", "gaussian_kl",
    "js_discrete", "js_monte_carlo", "js_quadrature", "kl_diag_standard_normal", "kl_discrete",
    "kl_monte_carlo", "kl_quadrature", "tv_discrete", "w1_cdf", "w1_dual_lp", "w1_exact", "wasserstein_1d",
    "FDivergence", "F_DIVERGENCES", "f_divergence_discrete", "f_variational_bound",
]

LogDensity = Callable[[torch.Tensor], torch.Tensor]
LOG2 = math.log(2.0)


# ------------------------------------------------------------------------------------- discrete
def _probabilities(name: str, p: torch.Tensor | list, like: torch.Tensor | None = None) -> torch.Tensor:
    dtype = like.dtype if like is not None else None
    device = like.device if like is not None else None
    p = as_tensor(name, p, device=device, dtype=dtype)
    if p.ndim < 1 or p.shape[-1] < 1:
        raise ValueError(f"{name} must have shape (..., K) with K >= 1, got {tuple(p.shape)}")
    if bool((p < 0).any()):
        raise ValueError(f"{name} must be non-negative")
    tol = max(math.sqrt(torch.finfo(p.dtype).eps), 1e-6)
    if bool(((p.sum(-1) - 1).abs() > tol).any()):
        raise ValueError(f"{name} must sum to 1 along the last axis")
    return p


def _pair(p, q) -> tuple[torch.Tensor, torch.Tensor]:
    p = _probabilities("p", p)
    q = _probabilities("q", q, like=p)
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"p and q must have the same number of atoms, got {p.shape[-1]} and {q.shape[-1]}")
    return p, q


def kl_discrete(p: torch.Tensor | list, q: torch.Tensor | list) -> torch.Tensor:
    r""":math:`\mathrm{KL}(p \Vert q) = \sum_k p_k \log(p_k / q_k)`, with :math:`0 \log 0 = 0`.

    Args:
        p, q: probabilities, shape ``(..., K)``, non-negative, summing to 1.

    Returns:
        Shape ``(...)``; :math:`+\infty` where some :math:`q_k = 0 < p_k`.

    Example:
        >>> round(float(kl_discrete([9 / 25, 12 / 25, 4 / 25], [1 / 3, 1 / 3, 1 / 3])), 4)
        0.0853
    """
    p, q = _pair(p, q)
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)


def js_discrete(p: torch.Tensor | list, q: torch.Tensor | list) -> torch.Tensor:
    r""":math:`\mathrm{JS}(p \Vert q) = \tfrac12 \mathrm{KL}(p \Vert m) + \tfrac12 \mathrm{KL}(q \Vert m)`,
    :math:`m = (p + q)/2`; always finite, in :math:`[0, \log 2]`.

    Example:
        >>> abs(float(js_discrete([1.0, 0.0], [0.0, 1.0], )) - math.log(2)) < 1e-7
        True
    """
    p, q = _pair(p, q)
    m = (p + q) / 2
    return 0.5 * (kl_discrete(p, m) + kl_discrete(q, m))


def tv_discrete(p: torch.Tensor | list, q: torch.Tensor | list) -> torch.Tensor:
    r""":math:`\mathrm{TV}(p, q) = \tfrac12 \sum_k |p_k - q_k| = 1 - \sum_k \min(p_k, q_k)`, in :math:`[0, 1]`."""
    p, q = _pair(p, q)
    return 0.5 * (p - q).abs().sum(-1)


# ----------------------------------------------------------------------------------- quadrature
@functools.lru_cache(maxsize=None)
def _legendre(order: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(order)


def _nodes(lo: float, hi: float, n: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite Gauss-Legendre rule on [lo, hi]: ``ceil(n / 16)`` equal panels of 16 nodes each
    (each panel exact for polynomials of degree 31)."""
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"need finite lo < hi, got lo={lo}, hi={hi}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    panels = -(-n // _ORDER)
    t, w = _legendre(_ORDER)
    edges = np.linspace(lo, hi, panels + 1)
    half = 0.5 * np.diff(edges)[:, None]  # (panels, 1)
    x = (0.5 * (edges[:-1] + edges[1:]))[:, None] + half * t  # (panels, order)
    return (torch.as_tensor(x.ravel(), device=device, dtype=dtype),
            torch.as_tensor((half * w).ravel(), device=device, dtype=dtype))


_ORDER = 16


def kl_quadrature(log_p: LogDensity, log_q: LogDensity, lo: float, hi: float, n: int = 2000,
                  *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r""":math:`\int_{lo}^{hi} p (\log p - \log q)` by Gauss-Legendre quadrature, for 1-D densities.

    Computed from log-densities, :math:`e^{\log p}(\log p - \log q)`, so tails where :math:`p`
    underflows contribute 0 instead of ``0 * inf = nan``.

    Args:
        log_p, log_q: vectorised log-densities, ``(n,) -> (n,)``.
        lo, hi: the integration interval; it must hold essentially all of :math:`p`'s mass.
        n: number of nodes.
        device, dtype: where the nodes live (the callables must accept them).

    Example:
        >>> p, q = Normal(0.0, 1.0), Normal(1.0, 2.0)
        >>> exact = float(kl_divergence(p, q))
        >>> abs(float(kl_quadrature(p.log_prob, q.log_prob, -20, 20)) - exact) < 1e-10
        True
    """
    x, w = _nodes(lo, hi, n, device, dtype)
    lp, lq = log_p(x), log_q(x)
    integrand = torch.where(lp > -math.inf, lp.exp() * (lp - lq), torch.zeros_like(lp))
    return (w * integrand).sum()


def js_quadrature(log_p: LogDensity, log_q: LogDensity, lo: float, hi: float, n: int = 2000,
                  *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r""":math:`\mathrm{JS}` of 1-D densities by Gauss-Legendre quadrature, with
    :math:`\log m = \operatorname{logaddexp}(\log p, \log q) - \log 2` (finite even where one density is 0)."""
    x, w = _nodes(lo, hi, n, device, dtype)
    lp, lq = log_p(x), log_q(x)
    lm = torch.logaddexp(lp, lq) - LOG2

    def part(la: torch.Tensor) -> torch.Tensor:
        return torch.where(la > -math.inf, la.exp() * (la - lm), torch.zeros_like(la))

    return 0.5 * (w * (part(lp) + part(lq))).sum()


# ---------------------------------------------------------------------------------- Monte Carlo
@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate and its standard error (0-dim tensors)."""

    value: torch.Tensor
    stderr: torch.Tensor


def _mean_se(terms: torch.Tensor) -> Estimate:
    if terms.ndim != 1 or terms.shape[0] < 2:
        raise ValueError(f"need at least 2 samples, got shape {tuple(terms.shape)}")
    return Estimate(terms.mean(), terms.std() / math.sqrt(terms.shape[0]))


def kl_monte_carlo(log_p: LogDensity, log_q: LogDensity, x_p: torch.Tensor) -> Estimate:
    r""":math:`\mathrm{KL}(p \Vert q) \approx \frac1n \sum_i [\log p(x_i) - \log q(x_i)]`, :math:`x_i \sim p`.

    Args:
        log_p, log_q: log-densities of samples ``(n, ...) -> (n,)``.
        x_p: samples of :math:`p`, shape ``(n, ...)``.
    """
    return _mean_se(log_p(x_p) - log_q(x_p))


def js_monte_carlo(log_p: LogDensity, log_q: LogDensity, x_p: torch.Tensor, x_q: torch.Tensor) -> Estimate:
    r""":math:`\mathrm{JS} \approx \tfrac12 \overline{[\log p - \log m](x_p)} + \tfrac12 \overline{[\log q - \log m](x_q)}`.

    Each term is bounded (:math:`\log p - \log m \le \log 2`), so the estimator has finite variance
    even for nearly disjoint supports. The standard error combines the two independent means.
    """
    def log_m(x: torch.Tensor) -> torch.Tensor:
        return torch.logaddexp(log_p(x), log_q(x)) - LOG2

    a = _mean_se(log_p(x_p) - log_m(x_p))
    b = _mean_se(log_q(x_q) - log_m(x_q))
    return Estimate(0.5 * (a.value + b.value), 0.5 * (a.stderr**2 + b.stderr**2).sqrt())


# ------------------------------------------------------------------------------------- Gaussians
def gaussian_kl(mean_p: torch.Tensor, std_p: torch.Tensor, mean_q: torch.Tensor, std_q: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{KL}(\mathcal{N}(\mu_1, \sigma_1^2) \Vert \mathcal{N}(\mu_2, \sigma_2^2))
    = \log\frac{\sigma_2}{\sigma_1} + \frac{\sigma_1^2 + (\mu_1 - \mu_2)^2}{2\sigma_2^2} - \frac12`, elementwise
    (``torch.distributions.kl_divergence``).

    Example:
        >>> float(gaussian_kl(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(0.0), torch.tensor(1.0)))
        0.0
    """
    for name, s in (("std_p", std_p), ("std_q", std_q)):
        if bool((torch.as_tensor(s) <= 0).any()):
            raise ValueError(f"{name} must be > 0")
    return kl_divergence(Normal(mean_p, std_p), Normal(mean_q, std_q))


def kl_diag_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{KL}(\mathcal{N}(\mu, \operatorname{diag}\sigma^2) \Vert \mathcal{N}(0, I))
    = \tfrac12 \sum_j (\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2)`, the VAE's regulariser.

    Args:
        mu: means, shape ``(..., D)``.
        logvar: :math:`\log \sigma^2`, shape ``(..., D)``.

    Returns:
        Shape ``(...)``.
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    std = (0.5 * logvar).exp()
    return kl_divergence(Normal(mu, std), Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)


def fisher_divergence(score_p: Callable[[torch.Tensor], torch.Tensor], score_q: Callable[[torch.Tensor], torch.Tensor],
                      log_p: LogDensity, lo: float, hi: float, n: int = 2000,
                      *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r""":math:`\mathbb{E}_p[(\partial_x \log p - \partial_x \log q)^2]` for 1-D densities, by quadrature.

    The scores may be those of *unnormalised* densities: the Fisher divergence does not see normalising
    constants.
    """
    x, w = _nodes(lo, hi, n, device, dtype)
    return (w * log_p(x).exp() * (score_p(x) - score_q(x)).square()).sum()


# ----------------------------------------------------------------------------------- Wasserstein
def _samples(name: str, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.ndim == 1:
        x = x.unsqueeze(-1)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n,) or (n, D) with n >= 1, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def wasserstein_1d(x: torch.Tensor, y: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    r"""Exact :math:`W_p` between two 1-D empirical distributions of the same size, by sorting:
    :math:`W_p^p = \frac1n \sum_i |x_{(i)} - y_{(i)}|^p` (the monotone coupling is optimal in 1-D).

    Args:
        x, y: samples, shape ``(n,)`` each.
        p: the order, >= 1.

    Example:
        >>> float(wasserstein_1d(torch.tensor([0.0, 1.0]), torch.tensor([3.0, 2.0])))
        2.0
    """
    x, y = _samples("x", x), _samples("y", y)
    if x.shape[1] != 1 or y.shape[1] != 1:
        raise ValueError("x and y must be one-dimensional samples")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same size, got {x.shape[0]} and {y.shape[0]}; use w1_cdf")
    if not p >= 1:
        raise ValueError(f"p must be >= 1, got {p}")
    d = (x.flatten().sort().values - y.flatten().sort().values).abs()
    return d.pow(p).mean().pow(1.0 / p)


def _weights(name: str, w: torch.Tensor | None, n: int, like: torch.Tensor) -> torch.Tensor:
    if w is None:
        return torch.full((n,), 1.0 / n, device=like.device, dtype=like.dtype)
    w = _probabilities(name, w, like=like)
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(w.shape)}")
    return w


def w1_cdf(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor | None = None, b: torch.Tensor | None = None) -> torch.Tensor:
    r"""Exact :math:`W_1 = \int |F_P(z) - F_Q(z)|\,dz` between weighted 1-D samples
    :math:`P = \sum_i a_i \delta_{x_i}`, :math:`Q = \sum_j b_j \delta_{y_j}` (sizes may differ).

    On the merged sorted support :math:`z_1 \le \dots \le z_m` the CDFs are constant between atoms,
    so the integral is :math:`\sum_i (z_{i+1} - z_i)\,|F_P(z_i) - F_Q(z_i)|`.

    Example:
        >>> float(w1_cdf(torch.tensor([0.0]), torch.tensor([1.0, 3.0])))
        2.0
    """
    x, y = _samples("x", x), _samples("y", y)
    a = _weights("a", a, x.shape[0], x)
    b = _weights("b", b, y.shape[0], x)
    z = torch.cat([x.flatten(), y.flatten().to(x.dtype)])
    mass = torch.cat([a, -b])  # dF_P - dF_Q at each atom
    order = torch.argsort(z)
    z, mass = z[order], mass[order]
    gap = mass.cumsum(0)[:-1]  # F_P - F_Q on [z_i, z_{i+1})
    return (gap.abs() * z.diff()).sum()


def _cost(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return torch.cdist(x, y.to(x.dtype)).cpu().numpy().astype(np.float64)  # (n, m) Euclidean


def w1_exact(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor | None = None, b: torch.Tensor | None = None) -> torch.Tensor:
    r"""Exact :math:`W_1 = \min_{\gamma \in \Pi(a, b)} \sum_{ij} \gamma_{ij} \|x_i - y_j\|` in any dimension,
    by the network simplex of POT (``ot.emd2``).

    Args:
        x: support of :math:`P`, shape ``(n, D)`` (or ``(n,)``).
        y: support of :math:`Q`, shape ``(m, D)``.
        a, b: weights (uniform when ``None``).

    Returns:
        A 0-dim tensor on ``x``'s device (the solver itself runs on the CPU).
    """
    import ot

    x, y = _samples("x", x), _samples("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    a = _weights("a", a, x.shape[0], x)
    b = _weights("b", b, y.shape[0], x)
    an, bn = a.cpu().numpy().astype(np.float64), b.cpu().numpy().astype(np.float64)
    value = ot.emd2(an / an.sum(), bn / bn.sum(), _cost(x, y), numItermax=1_000_000)
    return torch.as_tensor(float(value), device=x.device, dtype=x.dtype)


@dataclass(frozen=True)
class DualLP:
    r"""The Kantorovich dual :math:`\max \sum_i a_i f_i - \sum_j b_j g_j` s.t. :math:`f_i - g_j \le c_{ij}`.

    Attributes:
        value: the optimal dual value (equal to :math:`W_1` by strong duality).
        f, g: optimal potentials, shapes ``(n,)`` and ``(m,)``.
    """

    value: float
    f: np.ndarray
    g: np.ndarray


def w1_dual_lp(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor | None = None, b: torch.Tensor | None = None) -> DualLP:
    r"""Solve the dual linear program of :math:`W_1` with ``scipy.optimize.linprog`` (HiGHS).

    Its value equals the primal :func:`w1_exact` (strong LP duality); for the cost
    :math:`\|x - y\|` the optimal :math:`f` restricted to the support is 1-Lipschitz (the
    Kantorovich-Rubinstein form). Meant for small problems (``n m`` constraints).
    """
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    x, y = _samples("x", x), _samples("y", y)
    a = _weights("a", a, x.shape[0], x).cpu().numpy().astype(np.float64)
    b = _weights("b", b, y.shape[0], x).cpu().numpy().astype(np.float64)
    c = _cost(x, y)
    n, m = c.shape
    rows = np.arange(n * m)
    ii, jj = np.divmod(rows, m)
    # variables [f (n), g (m)]; constraint f_i - g_j <= c_ij
    a_ub = coo_matrix((np.concatenate([np.ones(n * m), -np.ones(n * m)]),
                       (np.concatenate([rows, rows]), np.concatenate([ii, n + jj]))), shape=(n * m, n + m))
    res = linprog(np.concatenate([-a, b]), A_ub=a_ub.tocsr(), b_ub=c.ravel(), bounds=(None, None), method="highs")
    if not res.success:
        raise RuntimeError(f"dual LP failed: {res.message}")
    return DualLP(float(-res.fun), res.x[:n], res.x[n:])


# ------------------------------------------------------------------- forward vs reverse KL fits
@dataclass(frozen=True)
class GaussianFit:
    """A fitted :math:`\\mathcal{N}(\\text{mean}, \\text{std}^2)` and the divergence it reached."""

    mean: float
    std: float
    divergence: float


def fit_gaussian_kl(log_p: LogDensity, direction: Literal["forward", "reverse"], init: tuple[float, float],
                    lo: float, hi: float, *, n: int = 800, steps: int = 600, lr: float = 0.05,
                    device: torch.device | str | None = None) -> GaussianFit:
    r"""Fit :math:`q = \mathcal{N}(m, s^2)` to a 1-D density :math:`p` by gradient descent on
    :math:`\mathrm{KL}(p \Vert q)` (``"forward"``, mode covering; its minimum matches the moments of
    :math:`p`) or :math:`\mathrm{KL}(q \Vert p)` (``"reverse"``, mode seeking; a local minimum near ``init``).

    Both divergences are evaluated by Gauss-Legendre quadrature on ``[lo, hi]``; the loop is
    :func:`gencode.train.fit` with the quadrature grid as its (fixed) batch.

    Args:
        log_p: vectorised log-density of :math:`p`.
        direction: ``"forward"`` or ``"reverse"``.
        init: initial ``(mean, std)``, std > 0.
        lo, hi, n: quadrature interval and nodes.
        steps, lr: Adam steps and learning rate.
    """
    if direction not in ("forward", "reverse"):
        raise ValueError(f"direction must be 'forward' or 'reverse', got {direction!r}")
    if not init[1] > 0:
        raise ValueError(f"init std must be > 0, got {init[1]}")
    x, w = _nodes(lo, hi, n, device, torch.float64)
    lp = log_p(x)
    mean = torch.nn.Parameter(torch.tensor(float(init[0]), device=x.device, dtype=x.dtype))
    log_std = torch.nn.Parameter(torch.tensor(math.log(init[1]), device=x.device, dtype=x.dtype))

    def loss(grid: torch.Tensor) -> torch.Tensor:
        lq = Normal(mean, log_std.exp()).log_prob(grid)
        if direction == "forward":
            return (w * torch.where(lp > -math.inf, lp.exp() * (lp - lq), torch.zeros_like(lp))).sum()
        return (w * lq.exp() * (lq - lp)).sum()

    fit(loss, [mean, log_std], lambda batch, gen: x, steps=steps, batch_size=1, lr=lr)
    with torch.no_grad():
        final = float(loss(x))
    return GaussianFit(float(mean.detach()), float(log_std.detach().exp()), final)


# --------------------------------------------------------------------------------- f-divergences
@dataclass(frozen=True)
class FDivergence:
    r"""A convex generator :math:`f` with :math:`f(1) = 0`, its derivative and its convex conjugate
    :math:`f^*(s) = \sup_u (s u - f(u))` (``derivations.divergences.f_generators`` and ``f_conjugates``).

    Attributes:
        f: the generator, elementwise on ratios ``u >= 0``.
        f_prime: its derivative, which maps the ratio ``p/q`` to the optimal critic value.
        conjugate: :math:`f^*`, elementwise; ``+inf`` outside its domain.
    """

    f: Callable[[torch.Tensor], torch.Tensor]
    f_prime: Callable[[torch.Tensor], torch.Tensor]
    conjugate: Callable[[torch.Tensor], torch.Tensor]


def _outside(s: torch.Tensor, inside: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    return torch.where(inside, value, torch.full_like(s, math.inf))


F_DIVERGENCES: dict[str, FDivergence] = {
    "kl": FDivergence(lambda u: torch.xlogy(u, u), lambda u: torch.log(u) + 1, lambda s: torch.exp(s - 1)),
    "reverse_kl": FDivergence(lambda u: -torch.log(u), lambda u: -1 / u,
                              lambda s: _outside(s, s < 0, -1 - torch.log(-s.clamp(max=-1e-300)))),
    "js": FDivergence(lambda u: 0.5 * (torch.xlogy(u, u) - (u + 1) * torch.log((u + 1) / 2)),
                      lambda u: 0.5 * torch.log(2 * u / (u + 1)),
                      lambda s: _outside(s, s < 0.5 * LOG2, -0.5 * torch.log((2 - torch.exp(2 * s)).clamp(min=1e-300)))),
    "tv": FDivergence(lambda u: 0.5 * (u - 1).abs(), lambda u: 0.5 * torch.sign(u - 1),
                      lambda s: _outside(s, s.abs() <= 0.5, s)),
    "hellinger": FDivergence(lambda u: (u.sqrt() - 1) ** 2, lambda u: 1 - 1 / u.sqrt(),
                             lambda s: _outside(s, s < 1, s / (1 - s))),
    "chi2": FDivergence(lambda u: (u - 1) ** 2, lambda u: 2 * (u - 1), lambda s: s + s**2 / 4),
}
r"""The six f-divergences of the chapter: ``kl``, ``reverse_kl``, ``js``, ``tv``, ``hellinger``
(:math:`\int (\sqrt p - \sqrt q)^2`) and ``chi2`` (Pearson's).

References:
    Csiszar, "Information-type measures of difference of probability distributions", 1967.
    Nguyen, Wainwright, Jordan, "Estimating divergence functionals and the likelihood ratio by convex risk
    minimization", IEEE Trans. Inf. Theory 2010.
"""


def _f_divergence(name: str) -> FDivergence:
    if name not in F_DIVERGENCES:
        raise ValueError(f"name must be one of {sorted(F_DIVERGENCES)}, got {name!r}")
    return F_DIVERGENCES[name]


def f_divergence_discrete(p: torch.Tensor | list, q: torch.Tensor | list, name: str) -> torch.Tensor:
    r""":math:`D_f(p \Vert q) = \sum_k q_k f(p_k / q_k)` for distributions on K points with :math:`q > 0`.

    Args:
        p, q: probabilities, shape ``(..., K)``; every ``q_k > 0``.
        name: a key of :data:`F_DIVERGENCES`.

    Returns:
        Shape ``(...)``.

    Example:
        >>> p, q = [0.2, 0.8], [0.5, 0.5]
        >>> bool(torch.isclose(f_divergence_discrete(p, q, "kl"), kl_discrete(p, q)))
        True
    """
    gen = _f_divergence(name)
    p, q = _pair(p, q)
    if bool((q <= 0).any()):
        raise ValueError("q must be positive on every atom (p/q must be defined)")
    return (q * gen.f(p / q)).sum(-1)


def f_variational_bound(critic_p: torch.Tensor, critic_q: torch.Tensor, name: str) -> torch.Tensor:
    r"""Monte Carlo estimate of the variational lower bound
    :math:`\mathbb{E}_P T - \mathbb{E}_Q f^*(T) \le D_f(P \Vert Q)` (Nguyen, Wainwright, Jordan 2010).

    Args:
        critic_p: critic values ``T(x)`` at samples of ``P``, shape ``(N,)``.
        critic_q: critic values at samples of ``Q``, shape ``(M,)``; must lie in the domain of ``f*``.
        name: a key of :data:`F_DIVERGENCES`.

    Returns:
        A scalar tensor; equal to :math:`D_f` in expectation when ``T = f'(p/q)``.
    """
    gen = _f_divergence(name)
    for arg, t in (("critic_p", critic_p), ("critic_q", critic_q)):
        if not isinstance(t, torch.Tensor) or t.ndim != 1 or t.numel() == 0:
            raise ValueError(f"{arg} must be a non-empty 1-D tensor")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{arg} must be finite")
    return critic_p.mean() - gen.conjugate(critic_q).mean()
