r"""Ground-truth distributions with analytic ``log_prob``, ``score`` and ``sample``.

A Gaussian mixture

.. math::
    p(x) = \sum_{k=1}^K w_k\, \mathcal{N}(x; \mu_k, \Sigma_k)

is the book's data set whose truth is known in closed form. Adding independent Gaussian noise keeps it
a mixture (:meth:`GaussianMixture.noised`), so the noised densities and scores that diffusion models and
score matching estimate are exact here, at every noise level. A Gaussian is the one-component case
(:class:`Gaussian`), so one implementation serves both.

Tensors follow ``means``: device and dtype of every result are those of the mixture's parameters.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import MultivariateNormal

from .device import as_tensor

__all__ = ["Gaussian", "GaussianMixture", "eight_gaussians", "mixture_1d"]


class GaussianMixture:
    r"""A mixture of full-covariance Gaussians, :math:`p(x) = \sum_k w_k \mathcal{N}(x; \mu_k, \Sigma_k)`.

    Args:
        weights: mixing weights :math:`w`, shape ``(K,)``, non-negative and summing to 1 (they are
            renormalised to sum to 1 exactly).
        means: component means :math:`\mu_k`, shape ``(K, D)``; fixes the device and the floating dtype.
        covariances: symmetric positive definite :math:`\Sigma_k`, shape ``(K, D, D)``.

    Raises:
        ValueError: naming the argument on a wrong shape, a negative weight, weights that do not sum to
            1, a non-symmetric or non-positive-definite covariance, or NaN/inf entries.

    The constructor validates on the host (a few device syncs); :meth:`noised` and :meth:`to` build
    mixtures that are valid by construction and skip the checks, so they can be called inside samplers.

    Example:
        >>> gm = GaussianMixture(torch.tensor([0.5, 0.5]), torch.tensor([[-1.0], [1.0]]),
        ...                      torch.ones(2, 1, 1))
        >>> gm.mean, gm.covariance
        (tensor([0.]), tensor([[2.]]))
        >>> gm.sample(4, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([4, 1])
    """

    def __init__(
        self,
        weights: torch.Tensor,
        means: torch.Tensor,
        covariances: torch.Tensor,
    ) -> None:
        means = as_tensor("means", means)
        if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(f"means must have shape (K, D) with K, D >= 1, got {tuple(means.shape)}")
        K, D = means.shape
        weights = as_tensor("weights", weights, device=means.device, dtype=means.dtype)
        covariances = as_tensor("covariances", covariances, device=means.device, dtype=means.dtype)
        if weights.shape != (K,):
            raise ValueError(f"weights must have shape (K,) = ({K},), got {tuple(weights.shape)}")
        if covariances.shape != (K, D, D):
            raise ValueError(
                f"covariances must have shape (K, D, D) = ({K}, {D}, {D}), got {tuple(covariances.shape)}"
            )
        # Tolerances for float round-off: sqrt(machine epsilon), but no tighter than 1e-6 so that weights
        # typed in float32 and then cast to float64 are still accepted.
        tol = max(math.sqrt(torch.finfo(means.dtype).eps), 1e-6)
        if bool((weights < 0).any()):
            raise ValueError("weights must be non-negative")
        total = float(weights.sum())
        if abs(total - 1.0) > tol:
            raise ValueError(f"weights must sum to 1, they sum to {total}")
        asym = float((covariances - covariances.mT).abs().max())
        if asym > tol * (1.0 + float(covariances.abs().max())):
            raise ValueError(f"covariances must be symmetric (max |S - S^T| = {asym:.3g})")
        covariances = 0.5 * (covariances + covariances.mT)
        scale_tril, info = torch.linalg.cholesky_ex(covariances)  # (K, D, D), (K,)
        if bool((info != 0).any()):
            bad = torch.nonzero(info).flatten().tolist()
            raise ValueError(f"covariances must be positive definite; components {bad} are not")
        self._set(weights / total, means, covariances, scale_tril)

    def _set(
        self,
        weights: torch.Tensor,
        means: torch.Tensor,
        covariances: torch.Tensor,
        scale_tril: torch.Tensor,
    ) -> None:
        self.weights = weights  # (K,)
        self.means = means  # (K, D)
        self.covariances = covariances  # (K, D, D)
        self.scale_tril = scale_tril  # (K, D, D), Sigma_k = L_k L_k^T
        self.log_weights = torch.log(weights)  # (K,), -inf for a zero weight
        self.components = MultivariateNormal(means, scale_tril=scale_tril, validate_args=False)

    def _like(self, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor) -> GaussianMixture:
        """A mixture of the same class built from parameters that are valid by construction (no sync)."""
        scale_tril = torch.linalg.cholesky_ex(covariances).L  # _ex: no host sync for an error check
        new = object.__new__(type(self))
        GaussianMixture._set(new, weights, means, covariances, scale_tril)
        return new

    # ----------------------------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        """The dimension ``D`` of the space."""
        return self.means.shape[1]

    @property
    def num_components(self) -> int:
        """The number ``K`` of components."""
        return self.means.shape[0]

    @property
    def device(self) -> torch.device:
        """The device of the parameters (and of every result)."""
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the parameters (and of every result)."""
        return self.means.dtype

    @property
    def mean(self) -> torch.Tensor:
        r"""The mixture's mean :math:`m = \sum_k w_k \mu_k`, shape ``(D,)``."""
        return self.weights @ self.means

    @property
    def covariance(self) -> torch.Tensor:
        r"""The mixture's covariance, shape ``(D, D)``, by the law of total variance.

        .. math::
            \mathrm{Cov}[X] = \sum_k w_k \Sigma_k + \sum_k w_k (\mu_k - m)(\mu_k - m)^\top
        """
        d = self.means - self.mean  # (K, D)
        within = torch.einsum("k,kij->ij", self.weights, self.covariances)
        between = torch.einsum("k,ki,kj->ij", self.weights, d, d)
        return within + between

    # ---------------------------------------------------------------------------------- densities
    def _check_x(self, x: torch.Tensor) -> None:
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape (..., D) with D = {self.dim}, got {tuple(x.shape)}")

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Log-densities :math:`\log \mathcal{N}(x; \mu_k, \Sigma_k)` of every component.

        Args:
            x: points, shape ``(..., D)``.

        Returns:
            Shape ``(..., K)``.
        """
        self._check_x(x)
        return self.components.log_prob(x.unsqueeze(-2))  # (..., 1, D) against batch (K,) -> (..., K)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""The log-density of the mixture.

        .. math::
            \log p(x) = \operatorname{logsumexp}_k \bigl[\log w_k + \log \mathcal{N}(x; \mu_k, \Sigma_k)\bigr]

        Args:
            x: points, shape ``(..., D)``.

        Returns:
            Shape ``(...)``.

        Example:
            >>> g = Gaussian(torch.zeros(1, dtype=torch.float64), torch.eye(1, dtype=torch.float64))
            >>> float(g.log_prob(torch.zeros(1, dtype=torch.float64))) == -0.5 * math.log(2 * math.pi)
            True
        """
        return torch.logsumexp(self.log_weights + self.component_log_prob(x), dim=-1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        r"""Posterior component probabilities :math:`r_k(x) = w_k \mathcal{N}(x; \mu_k, \Sigma_k) / p(x)`.

        Args:
            x: points, shape ``(..., D)``.

        Returns:
            Shape ``(..., K)``, summing to 1 along the last axis.
        """
        return torch.softmax(self.log_weights + self.component_log_prob(x), dim=-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r"""The score :math:`\nabla_x \log p(x) = \sum_k r_k(x)\, \bigl(-\Sigma_k^{-1}(x - \mu_k)\bigr)`.

        Args:
            x: points, shape ``(..., D)``.

        Returns:
            Shape ``(..., D)``.

        Example:
            >>> g = Gaussian.isotropic(torch.zeros(2), 2.0)
            >>> g.score(torch.tensor([4.0, -8.0]))  # -x / std^2
            tensor([-1.,  2.])
        """
        r = self.responsibilities(x)  # (..., K)
        batch = x.shape[:-1]
        diff = x.unsqueeze(-2) - self.means  # (..., K, D): x - mu_k
        rhs = diff.reshape(-1, self.num_components, self.dim).permute(1, 2, 0)  # (K, D, M)
        sol = torch.cholesky_solve(rhs, self.scale_tril)  # (K, D, M): Sigma_k^{-1} (x - mu_k)
        sol = sol.permute(2, 0, 1).reshape(*batch, self.num_components, self.dim)  # (..., K, D)
        return -(r.unsqueeze(-1) * sol).sum(dim=-2)

    # ----------------------------------------------------------------------------------- sampling
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Draw ``n`` independent samples: :math:`k \sim \mathrm{Cat}(w)`, :math:`x = \mu_k + L_k z`,
        :math:`z \sim \mathcal{N}(0, I)`, with :math:`\Sigma_k = L_k L_k^\top`.

        Args:
            n: number of samples.
            generator: optional ``torch.Generator`` on the mixture's device.

        Returns:
            Samples, shape ``(n, D)``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if n == 0:
            return self.means.new_empty(0, self.dim)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        z = torch.randn(n, self.dim, 1, generator=generator, device=self.device, dtype=self.dtype)
        return self.means[k] + (self.scale_tril[k] @ z).squeeze(-1)  # (n, D)

    # -------------------------------------------------------------------------------- transforms
    def noised(self, noise_std: float, scale: float = 1.0) -> GaussianMixture:
        r"""The law of :math:`a X + s \varepsilon` with :math:`X \sim p`, :math:`\varepsilon \sim \mathcal{N}(0, I)`
        independent, :math:`a` = ``scale``, :math:`s` = ``noise_std``:

        .. math::
            \sum_k w_k\, \mathcal{N}(a \mu_k,\; a^2 \Sigma_k + s^2 I).

        This is the marginal :math:`q(x_t)` of every Gaussian diffusion (for DDPM,
        :math:`a = \sqrt{\bar\alpha_t}`, :math:`s = \sqrt{1 - \bar\alpha_t}`), so its ``score`` is the oracle
        score.

        Args:
            noise_std: :math:`s \ge 0`.
            scale: :math:`a`, finite; ``a = 0`` needs ``s > 0``.

        Returns:
            A mixture of the same class, with the same weights.

        Raises:
            ValueError: naming ``noise_std`` or ``scale`` when out of range.

        Example:
            >>> Gaussian.isotropic(torch.ones(1), 1.0).noised(noise_std=2.0, scale=3.0).covariance
            tensor([[13.]])

        References:
            Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models", 2020, arXiv:2006.11239.
        """
        s, a = float(noise_std), float(scale)
        if not math.isfinite(s) or s < 0:
            raise ValueError(f"noise_std must be finite and >= 0, got {s}")
        if not math.isfinite(a):
            raise ValueError(f"scale must be finite, got {a}")
        if a == 0 and s == 0:
            raise ValueError("scale and noise_std cannot both be 0 (the law would be a point mass)")
        eye = torch.eye(self.dim, device=self.device, dtype=self.dtype)
        return self._like(self.weights, a * self.means, a**2 * self.covariances + s**2 * eye)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> GaussianMixture:
        """A copy on ``device`` with floating ``dtype`` (``None`` keeps the current one)."""
        device = self.device if device is None else torch.device(device)
        dtype = self.dtype if dtype is None else dtype

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype)

        return self._like(move(self.weights), move(self.means), move(self.covariances))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(K={self.num_components}, D={self.dim}, "
            f"dtype={self.dtype}, device={self.device})"
        )


class Gaussian(GaussianMixture):
    r"""A Gaussian :math:`\mathcal{N}(\mu, \Sigma)`: the one-component :class:`GaussianMixture`.

    Args:
        mean: :math:`\mu`, shape ``(D,)``.
        covariance: symmetric positive definite :math:`\Sigma`, shape ``(D, D)``.

    Example:
        >>> Gaussian(torch.zeros(2), 4.0 * torch.eye(2)).noised(3.0).covariance
        tensor([[13.,  0.],
                [ 0., 13.]])
    """

    def __init__(self, mean: torch.Tensor, covariance: torch.Tensor) -> None:
        mean = as_tensor("mean", mean)
        covariance = as_tensor("covariance", covariance, device=mean.device, dtype=mean.dtype)
        if mean.ndim != 1:
            raise ValueError(f"mean must have shape (D,), got {tuple(mean.shape)}")
        D = mean.shape[0]
        if covariance.shape != (D, D):
            raise ValueError(f"covariance must have shape (D, D) = ({D}, {D}), got {tuple(covariance.shape)}")
        try:
            super().__init__(mean.new_ones(1), mean.unsqueeze(0), covariance.unsqueeze(0))
        except ValueError as err:
            raise ValueError(str(err).replace("covariances", "covariance")) from None

    @classmethod
    def isotropic(cls, mean: torch.Tensor, std: float) -> Gaussian:
        r""":math:`\mathcal{N}(\mu, \sigma^2 I)`.

        Args:
            mean: :math:`\mu`, shape ``(D,)``.
            std: :math:`\sigma > 0`.
        """
        mean = as_tensor("mean", mean)
        if not float(std) > 0 or not math.isfinite(float(std)):
            raise ValueError(f"std must be finite and > 0, got {std}")
        eye = torch.eye(mean.shape[-1], device=mean.device, dtype=mean.dtype)
        return cls(mean, float(std) ** 2 * eye)


def eight_gaussians(
    radius: float = 2.0,
    std: float = 0.1,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> GaussianMixture:
    r"""The 2-D toy mixture of 8 equal-weight isotropic Gaussians on a circle.

    Component :math:`k = 0, \dots, 7` is :math:`\mathcal{N}\bigl(r(\cos\frac{2\pi k}{8}, \sin\frac{2\pi k}{8}),
    \sigma^2 I\bigr)` with :math:`r` = ``radius`` and :math:`\sigma` = ``std``.

    Args:
        radius: :math:`r`, the circle's radius.
        std: each component's standard deviation.
        dtype: floating dtype (``None``: torch's default dtype).
        device: device (``None``: torch's default device).

    Returns:
        A ``GaussianMixture`` with K = 8, D = 2.

    Example:
        >>> eight_gaussians(dtype=torch.float64).mean.abs().max() < 1e-15
        tensor(True)
    """
    if not float(std) > 0:
        raise ValueError(f"std must be > 0, got {std}")
    dtype = torch.get_default_dtype() if dtype is None else dtype
    angle = 2 * math.pi * torch.arange(8, dtype=dtype, device=device) / 8  # (8,)
    means = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)  # (8, 2)
    covariances = float(std) ** 2 * torch.eye(2, dtype=means.dtype, device=device).expand(8, 2, 2)
    return GaussianMixture(torch.full((8,), 1 / 8, dtype=means.dtype, device=device), means, covariances)


def mixture_1d(
    weights: torch.Tensor | list[float],
    means: torch.Tensor | list[float],
    stds: torch.Tensor | list[float],
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> GaussianMixture:
    r"""A 1-D mixture :math:`\sum_k w_k \mathcal{N}(\mu_k, \sigma_k^2)`.

    Args:
        weights: :math:`w`, shape ``(K,)``.
        means: :math:`\mu`, shape ``(K,)``.
        stds: :math:`\sigma > 0`, shape ``(K,)``.
        dtype: floating dtype (``None``: that of ``means`` if a floating tensor, else torch's default).
        device: device (``None``: that of ``means`` if a tensor, else torch's default).

    Returns:
        A ``GaussianMixture`` with D = 1.

    Example:
        >>> mixture_1d([0.25, 0.75], [-2.0, 2.0], [1.0, 1.0]).mean
        tensor([1.])
    """
    means = as_tensor("means", means, device=device, dtype=dtype)
    stds = as_tensor("stds", stds, device=means.device, dtype=means.dtype)
    if means.ndim != 1 or stds.shape != means.shape:
        raise ValueError(f"means and stds must have the same shape (K,), got {tuple(means.shape)}, {tuple(stds.shape)}")
    if bool((stds <= 0).any()):
        raise ValueError("stds must be > 0")
    return GaussianMixture(weights, means.unsqueeze(-1), stds.square()[:, None, None])
