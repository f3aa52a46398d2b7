r"""Classical density estimation: Gaussian MLE, kernel density estimation, Gaussian mixtures by EM
and by gradient descent, PCA and the (linear or small non-linear) autoencoder.

Everything runs on the device of the data and is vectorised over the sample.

References:
    Silverman, "Density Estimation for Statistics and Data Analysis", 1986.
    Dempster, Laird, Rubin, "Maximum Likelihood from Incomplete Data via the EM Algorithm", JRSS B, 1977.
    Neal, Hinton, "A View of the EM Algorithm that Justifies Incremental, Sparse, and other Variants", 1998.
    Pearson, "On Lines and Planes of Closest Fit to Systems of Points in Space", 1901.
    Baldi, Hornik, "Neural Networks and Principal Component Analysis", Neural Networks, 1989.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.functional import softplus

from .distributions import Gaussian, GaussianMixture
from .nets import MLP
from .train import TrainResult, fit

__all__ = [
    "Autoencoder", "BandwidthSelection", "EMResult", "GMMGradient", "KDE", "PCAResult", "fit_gmm_em",
    "fit_gmm_gradient", "gaussian_mle", "gmm_e_step", "gmm_m_step", "pca", "select_bandwidth",
]


def _data(name: str, x: torch.Tensor, min_rows: int = 1) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.ndim == 1:
        x = x.unsqueeze(-1)
    if x.ndim != 2 or x.shape[0] < min_rows:
        raise ValueError(f"{name} must have shape (N, D) with N >= {min_rows}, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return value


# ------------------------------------------------------------------------------------ Gaussian MLE
def gaussian_mle(x: torch.Tensor) -> Gaussian:
    r"""The maximum-likelihood Gaussian: :math:`\hat\mu = \frac1N \sum_i x_i`,
    :math:`\hat\Sigma = \frac1N \sum_i (x_i - \hat\mu)(x_i - \hat\mu)^\top` (the *biased* covariance).

    Args:
        x: data, shape ``(N, D)`` or ``(N,)``, N >= 2.

    Example:
        >>> g = gaussian_mle(torch.tensor([1.0, 2.0, 3.0, 6.0]))
        >>> g.mean, g.covariance
        (tensor([3.]), tensor([[3.5000]]))
    """
    x = _data("x", x, min_rows=2)
    mean = x.mean(0)  # (D,)
    centred = x - mean
    return Gaussian(mean, centred.T @ centred / x.shape[0])


# ------------------------------------------------------------------------- kernel density estimate
class KDE:
    r"""Gaussian kernel density estimate :math:`\hat p_h(x) = \frac1N \sum_i \mathcal{N}(x; x_i, h^2 I)`.

    Args:
        data: the sample, shape ``(N, D)`` (or ``(N,)``).
        bandwidth: :math:`h > 0`.
        chunk: query points processed at once (memory ``chunk * N``).

    Example:
        >>> kde = KDE(torch.zeros(1, 1, dtype=torch.float64), 1.0)
        >>> float(kde.log_prob(torch.zeros(1, 1, dtype=torch.float64))) == -0.5 * math.log(2 * math.pi)
        True
    """

    def __init__(self, data: torch.Tensor, bandwidth: float, chunk: int = 4096) -> None:
        self.data = _data("data", data)
        self.bandwidth = _positive("bandwidth", bandwidth)
        self.chunk = int(chunk)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log \hat p_h(x) = \operatorname{logsumexp}_i \bigl[-\|x - x_i\|^2/(2h^2)\bigr] - \log N
        - \frac D2 \log(2\pi h^2)`.

        Args:
            x: query points, shape ``(M, D)``.

        Returns:
            Shape ``(M,)``.
        """
        x = _data("x", x)
        n, dim = self.data.shape
        if x.shape[1] != dim:
            raise ValueError(f"x must have D = {dim} columns, got {x.shape[1]}")
        h2 = self.bandwidth**2
        const = -math.log(n) - 0.5 * dim * math.log(2 * math.pi * h2)
        out = [torch.logsumexp(-torch.cdist(xc, self.data).square() / (2 * h2), dim=1) + const
               for xc in x.split(self.chunk)]  # each (chunk, N) -> (chunk,)
        return torch.cat(out)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points: pick a data point uniformly, add :math:`\\mathcal{N}(0, h^2 I)` noise."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        idx = torch.randint(self.data.shape[0], (n,), generator=generator, device=self.data.device)
        noise = torch.randn(n, self.data.shape[1], generator=generator, device=self.data.device, dtype=self.data.dtype)
        return self.data[idx] + self.bandwidth * noise


@dataclass(frozen=True)
class BandwidthSelection:
    """Cross-validated mean held-out log-likelihood of each candidate bandwidth.

    Attributes:
        bandwidths: the candidates, shape ``(C,)``.
        scores: mean held-out log-likelihood per point, shape ``(C,)``.
        best: the candidate with the highest score.
    """

    bandwidths: torch.Tensor
    scores: torch.Tensor
    best: float


def select_bandwidth(data: torch.Tensor, bandwidths: torch.Tensor | list[float], folds: int = 5,
                     generator: torch.Generator | None = None) -> BandwidthSelection:
    r"""Choose :math:`h` by ``folds``-fold cross-validated likelihood: fit on all folds but one, score
    :math:`\frac{1}{|F|}\sum_{x \in F} \log \hat p_h(x)` on the held-out fold, average over folds.

    Example:
        >>> x = torch.randn(200, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> sel = select_bandwidth(x, [0.01, 0.4, 5.0], generator=torch.Generator().manual_seed(0))
        >>> sel.best
        0.4
    """
    data = _data("data", data, min_rows=2)
    bandwidths = torch.as_tensor(bandwidths, dtype=data.dtype).flatten()
    if bandwidths.numel() < 1 or bool((bandwidths <= 0).any()):
        raise ValueError("bandwidths must be a non-empty list of values > 0")
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= data.shape[0]:
        raise ValueError(f"folds must be an int in [2, N], got {folds!r}")
    perm = torch.randperm(data.shape[0], generator=generator).to(data.device)
    parts = perm.chunk(folds)
    scores = torch.zeros(len(bandwidths), dtype=data.dtype, device=data.device)
    for held in parts:
        mask = torch.ones(data.shape[0], dtype=torch.bool, device=data.device)
        mask[held] = False
        train, test = data[mask], data[held]
        for c, h in enumerate(bandwidths.tolist()):
            scores[c] += KDE(train, h).log_prob(test).mean() / folds
    best = float(bandwidths[int(scores.argmax())])
    return BandwidthSelection(bandwidths, scores.cpu(), best)


# --------------------------------------------------------------------------------- mixtures by EM
def gmm_e_step(mixture: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    r"""Responsibilities :math:`r_{ik} = \pi_k \mathcal{N}(x_i; \mu_k, \Sigma_k) / \sum_j \pi_j \mathcal{N}(x_i; \mu_j, \Sigma_j)`
    (Bayes' rule, computed as a softmax of log-joints), shape ``(N, K)``."""
    return mixture.responsibilities(_data("x", x))


def gmm_m_step(x: torch.Tensor, resp: torch.Tensor, reg: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The M-step: :math:`N_k = \sum_i r_{ik}`, :math:`\hat\pi_k = N_k / N`,
    :math:`\hat\mu_k = \frac{1}{N_k}\sum_i r_{ik} x_i`,
    :math:`\hat\Sigma_k = \frac{1}{N_k}\sum_i r_{ik} (x_i - \hat\mu_k)(x_i - \hat\mu_k)^\top + \text{reg}\, I`.

    Args:
        x: data, shape ``(N, D)``.
        resp: responsibilities, shape ``(N, K)``, rows summing to 1.
        reg: ridge added to each covariance (0: the exact stationary point).

    Returns:
        ``(weights (K,), means (K, D), covariances (K, D, D))``.
    """
    x = _data("x", x)
    if resp.ndim != 2 or resp.shape[0] != x.shape[0]:
        raise ValueError(f"resp must have shape (N, K) with N = {x.shape[0]}, got {tuple(resp.shape)}")
    nk = resp.sum(0)  # (K,)
    weights = nk / x.shape[0]
    means = resp.T @ x / nk[:, None]  # (K, D)
    diff = x[None] - means[:, None]  # (K, N, D)
    covs = torch.einsum("nk,kni,knj->kij", resp, diff, diff) / nk[:, None, None]
    covs = covs + reg * torch.eye(x.shape[1], device=x.device, dtype=x.dtype)
    return weights, means, covs


@dataclass
class EMResult:
    """A fitted mixture and the mean log-likelihood before each EM iteration and after the last.

    Attributes:
        mixture: the fitted ``GaussianMixture``.
        log_likelihoods: shape ``(iterations + 1,)``, non-decreasing (EM's guarantee).
    """

    mixture: GaussianMixture
    log_likelihoods: torch.Tensor


def fit_gmm_em(x: torch.Tensor, init: GaussianMixture, iterations: int = 100, reg: float = 0.0) -> EMResult:
    r"""Expectation-maximisation for a Gaussian mixture, from ``init``.

    Each iteration is one E-step (:func:`gmm_e_step`) and one M-step (:func:`gmm_m_step`); the
    mean log-likelihood :math:`\frac1N\sum_i \log p(x_i)` is recorded on the device and never
    decreases (up to round-off) when ``reg = 0``.

    Args:
        x: data, shape ``(N, D)``.
        init: the initial mixture (its dimension must be D).
        iterations: number of EM iterations, >= 1.
        reg: ridge added to the covariances at each M-step.
    """
    x = _data("x", x)
    if init.dim != x.shape[1]:
        raise ValueError(f"init has dimension {init.dim}, x has {x.shape[1]}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an int >= 1, got {iterations!r}")
    mixture = init.to(device=x.device, dtype=x.dtype)
    history = torch.empty(iterations + 1, device=x.device, dtype=x.dtype)
    for it in range(iterations):
        history[it] = mixture.log_prob(x).mean()
        weights, means, covs = gmm_m_step(x, gmm_e_step(mixture, x), reg)
        mixture = mixture._like(weights, means, covs)  # valid by construction: no host sync
    history[-1] = mixture.log_prob(x).mean()
    return EMResult(mixture, history)


# --------------------------------------------------------------------------- mixtures by gradient
class GMMGradient(nn.Module):
    r"""A diagonal Gaussian mixture with unconstrained parameters, trained by gradient descent.

    :math:`\pi = \operatorname{softmax}(\ell)`, :math:`\sigma_{kd} = \operatorname{softplus}(\rho_{kd})`,
    :math:`\log p(x) = \operatorname{logsumexp}_k\bigl[\log\pi_k + \sum_d \log\mathcal{N}(x_d; \mu_{kd}, \sigma_{kd}^2)\bigr]`.

    Args:
        means: initial means, shape ``(K, D)``; fixes device and dtype.
        std: initial standard deviation of every component.
    """

    def __init__(self, means: torch.Tensor, std: float = 1.0) -> None:
        super().__init__()
        means = _data("means", means)
        std = _positive("std", std)
        self.logits = nn.Parameter(torch.zeros(means.shape[0], device=means.device, dtype=means.dtype))
        self.means = nn.Parameter(means.clone())
        inv_softplus = math.log(math.expm1(std))
        self.rho = nn.Parameter(torch.full_like(means, inv_softplus))

    @property
    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logits, 0)

    @property
    def stds(self) -> torch.Tensor:
        return softplus(self.rho)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density, shape ``(N,)`` for ``x`` of shape ``(N, D)``."""
        comp = torch.distributions.Normal(self.means, self.stds).log_prob(x[:, None, :]).sum(-1)  # (N, K)
        return torch.logsumexp(torch.log_softmax(self.logits, 0) + comp, dim=-1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood."""
        return -self.log_prob(x).mean()

    def mixture(self) -> GaussianMixture:
        """The fitted model as a :class:`~gencode.distributions.GaussianMixture`."""
        with torch.no_grad():
            return GaussianMixture(self.weights.detach(), self.means.detach(),
                                   torch.diag_embed(self.stds.detach().square()))


def fit_gmm_gradient(x: torch.Tensor, init_means: torch.Tensor, steps: int = 1500, lr: float = 0.03,
                     std: float = 1.0) -> tuple[GMMGradient, TrainResult]:
    """Full-batch Adam on the mean negative log-likelihood (the whole data set is every batch)."""
    x = _data("x", x)
    model = GMMGradient(init_means.to(device=x.device, dtype=x.dtype), std)
    result = fit(model.loss, model, lambda batch, gen: x, steps=steps, batch_size=x.shape[0], lr=lr)
    return model, result


# ------------------------------------------------------------------------------ PCA / autoencoders
@dataclass(frozen=True)
class PCAResult:
    r"""Principal components.

    Attributes:
        mean: the data mean, shape ``(D,)``.
        components: orthonormal top-``k`` eigenvectors of the covariance, shape ``(D, k)``.
        eigenvalues: all eigenvalues of the (biased) covariance in decreasing order, shape ``(D,)``.
    """

    mean: torch.Tensor
    components: torch.Tensor
    eigenvalues: torch.Tensor

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`z = W^\\top (x - \\bar x)`, shape ``(N, k)``."""
        return (x - self.mean) @ self.components

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """:math:`\\hat x = \\bar x + W z`, shape ``(N, D)``."""
        return self.mean + z @ self.components.T

    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared reconstruction error :math:`\\frac1N\\sum_i \\|x_i - \\hat x_i\\|^2` (0-dim)."""
        return (x - self.decode(self.encode(x))).square().sum(-1).mean()


def pca(x: torch.Tensor, k: int) -> PCAResult:
    r"""PCA by the eigendecomposition of :math:`\frac1N \sum_i (x_i - \bar x)(x_i - \bar x)^\top`.

    The minimal reconstruction error over orthonormal :math:`W \in \mathbb{R}^{D \times k}` is the sum
    of the :math:`D - k` smallest eigenvalues, attained by the top-:math:`k` eigenvectors.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.1], [0.0, -0.1]], dtype=torch.float64)
        >>> r = pca(x, 1)
        >>> r.components.abs().flatten().tolist(), round(float(r.reconstruction_error(x)), 6)
        ([1.0, 0.0], 0.005)
    """
    x = _data("x", x, min_rows=2)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= x.shape[1]:
        raise ValueError(f"k must be an int in [1, D = {x.shape[1]}], got {k!r}")
    mean = x.mean(0)
    centred = x - mean
    evals, evecs = torch.linalg.eigh(centred.T @ centred / x.shape[0])  # ascending
    evals, evecs = evals.flip(0), evecs.flip(1)
    return PCAResult(mean, evecs[:, :k], evals)


class Autoencoder(nn.Module):
    r"""An autoencoder :math:`x \mapsto g(f(x))` trained as maximum likelihood under the Gaussian decoder
    :math:`p(x \mid z) = \mathcal{N}(x; g(z), s^2 I)`, i.e. on the squared error
    :math:`\|x - g(f(x))\|^2 / (2 s^2)` (plus a constant).

    Args:
        dim: data dimension D.
        latent: code dimension k.
        hidden: width of the hidden layers; ``None`` gives the *linear* autoencoder (PCA's subspace).
        noise_std: the decoder's :math:`s > 0`.
    """

    def __init__(self, dim: int, latent: int, hidden: int | None = None, noise_std: float = 1.0) -> None:
        super().__init__()
        self.noise_std = _positive("noise_std", noise_std)
        if hidden is None:
            self.encoder: nn.Module = nn.Linear(dim, latent)
            self.decoder: nn.Module = nn.Linear(latent, dim)
        else:
            self.encoder = MLP(dim, latent, hidden=hidden, depth=2)
            self.decoder = MLP(latent, dim, hidden=hidden, depth=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction :math:`g(f(x))`, shape ``(N, D)``."""
        return self.decoder(self.encoder(x))

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log \mathcal{N}(x; g(f(x)), s^2 I) = -\frac{\|x - g\|^2}{2 s^2} - \frac D2 \log(2\pi s^2)`, shape ``(N,)``."""
        s2 = self.noise_std**2
        return (-(x - self(x)).square().sum(-1) / (2 * s2)
                - 0.5 * x.shape[-1] * math.log(2 * math.pi * s2))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per data point."""
        return -self.log_likelihood(x).mean()
