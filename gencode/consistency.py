r"""Consistency models: distillation from a probability-flow teacher, consistency training, few-step sampling.

**Time convention** (that of the consistency-model and EDM papers): the time is the noise level,

.. math::
    x_t = x_0 + t\, z, \qquad z \sim \mathcal{N}(0, I), \qquad t \in [\epsilon, T],

i.e. the VE SDE of :mod:`gencode.sde` with :math:`\sigma(t) = t`: data at :math:`t = \epsilon \approx 0`,
noise at :math:`t = T`. The probability flow ODE is
:math:`\mathrm{d}x/\mathrm{d}t = -t \nabla \log p_t(x) = (x - D(x, t))/t` with the denoiser
:math:`D(x, t) = \mathbb{E}[x_0 \mid x_t = x]` (``consistency.pf_velocity``). A consistency function maps
every point of a trajectory to its point at :math:`t = \epsilon`. The model

.. math::
    f_\theta(x, t) = c_{\mathrm{skip}}(t)\, x + c_{\mathrm{out}}(t)\, F_\theta(c_{\mathrm{in}}(t) x, c_{\mathrm{noise}}(t))

satisfies :math:`f_\theta(x, \epsilon) = x` exactly (``consistency.boundary``).

Denoisers are callables ``denoiser(x, t) -> tensor`` with ``x`` of shape (B, D) and ``t`` a float or a tensor of
shape (B,) (:func:`oracle_denoiser` gives the exact denoiser of Gaussian-mixture data).

References:
    Song, Dhariwal, Chen, Sutskever. Consistency Models. 2023. arXiv:2303.01469.
    Karras, Aittala, Aila, Laine. Elucidating the Design Space of Diffusion-Based Generative Models. 2022.
    arXiv:2206.00364.
"""

from __future__ import annotations

import abc
import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .nets import MLP
from .oracle import MixtureOracle
from .paths import consistency_preconditioning, edm_preconditioning, velocity_from_x0_at

__all__ = ["ConsistencyDistillation", "ConsistencyModel", "ConsistencyTraining", "MixtureDenoiser", "karras_times",
           "ode_consistency_function", "oracle_denoiser", "teacher_step"]

Denoiser = Callable[[torch.Tensor, float | torch.Tensor], torch.Tensor]


def karras_times(N: int, eps: float = 0.002, T: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    r"""The discretisation :math:`t_i = \bigl(\epsilon^{1/\rho} + \tfrac{i-1}{N-1}(T^{1/\rho} - \epsilon^{1/\rho})\bigr)^\rho`,
    :math:`i = 1, \dots, N`, increasing from :math:`\epsilon` to :math:`T` (float64, on the host).

    Example:
        >>> karras_times(3, 1.0, 4.0, rho=1.0)
        tensor([1.0000, 2.5000, 4.0000], dtype=torch.float64)

    References:
        Karras et al. 2022, arXiv:2206.00364, eq. 5.
    """
    if isinstance(N, bool) or not isinstance(N, int) or N < 2:
        raise ValueError(f"N must be an int >= 2, got {N!r}")
    if not 0 < eps < T:
        raise ValueError(f"need 0 < eps < T, got eps={eps}, T={T}")
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    i = torch.arange(N, dtype=torch.float64) / (N - 1)
    return (eps ** (1 / rho) + i * (T ** (1 / rho) - eps ** (1 / rho))) ** rho


class MixtureDenoiser:
    r"""The exact denoiser :math:`D(x, t) = \mathbb{E}[x_0 \mid x_0 + t z = x]` of Gaussian-mixture data, with
    one noise level per sample (so a whole training batch is denoised in one call).

    With :math:`\Sigma_k = U_k \Lambda_k U_k^\top`, component :math:`k` of :math:`p_t` is
    :math:`\mathcal{N}(\mu_k, U_k (\Lambda_k + t^2) U_k^\top)`, and

    .. math::
        D(x, t) = \sum_k r_k(x, t)\, \bigl(\mu_k + U_k \tfrac{\Lambda_k}{\Lambda_k + t^2} U_k^\top (x - \mu_k)\bigr),

    the posterior-weighted means of the Gaussian posteriors of :math:`x_0` (for one level this is
    :meth:`gencode.oracle.MixtureOracle.denoise`, against which it is tested).

    Args:
        oracle: the oracle of the data (its mixture is used).

    Example:
        >>> from gencode.distributions import Gaussian
        >>> D = MixtureDenoiser(MixtureOracle(Gaussian.isotropic(torch.zeros(1, dtype=torch.float64), 1.0)))
        >>> D(torch.tensor([[2.0], [2.0]], dtype=torch.float64), torch.tensor([1.0, 2.0], dtype=torch.float64))
        tensor([[1.0000],
                [0.4000]], dtype=torch.float64)
    """

    def __init__(self, oracle: MixtureOracle) -> None:
        if not isinstance(oracle, MixtureOracle):
            raise TypeError(f"oracle must be a MixtureOracle, got {type(oracle).__name__}")
        data = oracle.data
        self.log_weights, self.means = data.log_weights, data.means  # (K,), (K, D)
        self.evals, self.evecs = torch.linalg.eigh(data.covariances)  # (K, D), (K, D, D)

    def __call__(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """``x``: (B, D); ``t``: a float or shape (B,). Returns (B, D)."""
        if self.means.device != x.device or self.means.dtype != x.dtype:
            self.log_weights, self.means, self.evals, self.evecs = (
                v.to(x.device, x.dtype) for v in (self.log_weights, self.means, self.evals, self.evecs))
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype).expand(x.shape[0])  # (B,)
        y = torch.einsum("kji,bkj->bki", self.evecs, x[:, None, :] - self.means)  # (B, K, D): U_k^T (x - mu_k)
        var = self.evals + t[:, None, None] ** 2  # (B, K, D): eigenvalues of Sigma_k + t^2 I
        log_comp = -0.5 * (y.square() / var + var.log()).sum(-1)  # (B, K), up to a shared constant
        r = torch.softmax(self.log_weights + log_comp, dim=-1)  # (B, K)
        post = self.means + torch.einsum("kij,bkj->bki", self.evecs, self.evals / var * y)  # (B, K, D)
        return (r[..., None] * post).sum(1)


def oracle_denoiser(oracle: MixtureOracle) -> MixtureDenoiser:
    r"""The exact denoiser :math:`\mathbb{E}[x_0 \mid x_0 + t z = x]` of Gaussian-mixture data (:class:`MixtureDenoiser`)."""
    return MixtureDenoiser(oracle)


def teacher_step(denoiser: Denoiser, x: torch.Tensor, t_from: float | torch.Tensor, t_to: float | torch.Tensor,
                 heun: bool = True) -> torch.Tensor:
    r"""One step of the probability flow ODE :math:`\mathrm{d}x/\mathrm{d}t = (x - D(x, t))/t` from ``t_from``
    to ``t_to`` (``consistency.pf_velocity``): Euler, or Heun's second-order correction (EDM's Alg. 1).

    Args:
        denoiser: :math:`D(x, t)`.
        x: the state at ``t_from``, shape (B, D).
        t_from, t_to: positive times, floats or shape (B,) (either order).
        heun: average the velocities at both ends (two denoiser calls) instead of Euler's one.

    Returns:
        The state at ``t_to``, shape (B, D).
    """
    t0 = torch.as_tensor(t_from, device=x.device, dtype=x.dtype)
    t1 = torch.as_tensor(t_to, device=x.device, dtype=x.dtype)
    if t0.device.type == "cpu" and not bool((t0 > 0).all() and (t1 > 0).all()):
        raise ValueError(f"times must be > 0, got t_from={t_from}, t_to={t_to}")
    col0 = t0[:, None] if t0.ndim else t0  # broadcast against (B, D)
    col1 = t1[:, None] if t1.ndim else t1
    velocity = _pf_velocity(x, denoiser(x, t_from), col0)
    x_euler = x + (col1 - col0) * velocity
    if not heun:
        return x_euler
    velocity_end = _pf_velocity(x_euler, denoiser(x_euler, t_to), col1)
    return x + (col1 - col0) * (velocity + velocity_end) / 2


def _pf_velocity(x: torch.Tensor, x0_hat: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``(x - D)/t``: :func:`gencode.paths.velocity_from_x0_at` on EDM's path (``alpha = 1``, ``sigma = t``)."""
    return velocity_from_x0_at(x, x0_hat, 1.0, t, 0.0, 1.0)


def ode_consistency_function(denoiser: Denoiser, x: torch.Tensor, t: float, eps: float,
                             steps: int = 64, rho: float = 7.0) -> torch.Tensor:
    r"""The consistency function :math:`f(x, t)` computed by solving the PF ODE from ``t`` down to ``eps``
    with ``steps`` Heun steps on a Karras grid (the reference a consistency model imitates).

    For Gaussian data it is the closed form of ``consistency.self_consistency``.
    """
    if not 0 < eps <= t:
        raise ValueError(f"need 0 < eps <= t, got eps={eps}, t={t}")
    if t == eps:
        return x
    times = karras_times(steps + 1, eps, t, rho).flip(0).tolist()  # t -> eps
    for t_from, t_to in zip(times[:-1], times[1:]):
        x = teacher_step(denoiser, x, t_from, t_to)
    return x


class ConsistencyModel(nn.Module):
    r"""A consistency model :math:`f_\theta(x, t) = c_{\mathrm{skip}}(t) x + c_{\mathrm{out}}(t) F_\theta(c_{\mathrm{in}}(t) x, c_{\mathrm{noise}}(t))`.

    With :math:`c_{\mathrm{skip}}(t) = \sigma_d^2/((t - \epsilon)^2 + \sigma_d^2)`,
    :math:`c_{\mathrm{out}}(t) = \sigma_d (t - \epsilon)/\sqrt{\sigma_d^2 + t^2}` (``consistency.boundary``),
    :math:`c_{\mathrm{in}}(t) = 1/\sqrt{t^2 + \sigma_d^2}` and :math:`c_{\mathrm{noise}}(t) = \tfrac14 \log t`
    (EDM's input scalings); :math:`F_\theta` is a time-conditioned :class:`gencode.nets.MLP`.

    Args:
        dim: data dimension.
        sigma_data: :math:`\sigma_d > 0`, the data's standard deviation.
        eps, T: the time range :math:`0 < \epsilon < T`.
        hidden, depth, time_dim: the MLP's size.

    Example:
        >>> m = ConsistencyModel(2, sigma_data=1.0).double()
        >>> x = torch.randn(4, 2, dtype=torch.float64)
        >>> torch.equal(m(x, m.eps), x)  # the boundary condition holds exactly
        True

    References:
        Song et al. Consistency Models. 2023. arXiv:2303.01469 (Appendix C).
    """

    def __init__(self, dim: int, sigma_data: float, eps: float = 0.002, T: float = 80.0,
                 hidden: int = 128, depth: int = 3, time_dim: int = 32) -> None:
        super().__init__()
        if not (math.isfinite(sigma_data) and sigma_data > 0):
            raise ValueError(f"sigma_data must be finite and > 0, got {sigma_data}")
        if not 0 < eps < T:
            raise ValueError(f"need 0 < eps < T, got eps={eps}, T={T}")
        self.dim, self.sigma_data, self.eps, self.T = dim, float(sigma_data), float(eps), float(T)
        self.net = MLP(dim, dim, hidden=hidden, depth=depth, time_dim=time_dim)

    def _time(self, t: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or have shape (B,) = ({x.shape[0]},), got {tuple(t.shape)}")
        if t.device.type == "cpu" and not bool(((t >= self.eps) & (t <= self.T)).all()):
            raise ValueError(f"t must lie in [eps, T] = [{self.eps}, {self.T}]")
        return t  # (B,)

    def c_skip(self, t: torch.Tensor) -> torch.Tensor:
        """:math:`\\sigma_d^2 / ((t - \\epsilon)^2 + \\sigma_d^2)`; equals 1 at :math:`t = \\epsilon`
        (:func:`gencode.paths.consistency_preconditioning`)."""
        return consistency_preconditioning(t, self.sigma_data, self.eps)[0]

    def c_out(self, t: torch.Tensor) -> torch.Tensor:
        """:math:`\\sigma_d (t - \\epsilon) / \\sqrt{\\sigma_d^2 + t^2}`; equals 0 at :math:`t = \\epsilon`
        (:func:`gencode.paths.consistency_preconditioning`)."""
        return consistency_preconditioning(t, self.sigma_data, self.eps)[1]

    def forward(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """:math:`f_\\theta(x, t)`.

        Args:
            x: shape (B, dim).
            t: a float or shape (B,), in ``[eps, T]``.

        Returns:
            Shape (B, dim).
        """
        t = self._time(t, x)
        c_skip, c_out = consistency_preconditioning(t, self.sigma_data, self.eps)
        _, _, c_in, c_noise = edm_preconditioning(t, self.sigma_data)  # EDM's input and noise scalings
        out = self.net(c_in[:, None] * x, c_noise)  # (B, dim)
        return c_skip[:, None] * x + c_out[:, None] * out

    @torch.no_grad()
    def sample(self, n: int, times: Sequence[float] | None = None, *, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        r"""One-step (``times=None``: :math:`f_\theta(T z, T)`) or multistep sampling (Song et al., Alg. 1):
        after the first step, for each :math:`\tau` in ``times`` (decreasing, in :math:`(\epsilon, T)`)
        re-noise :math:`x \leftarrow x + \sqrt{\tau^2 - \epsilon^2}\, z` and map back :math:`x \leftarrow f_\theta(x, \tau)`.

        Returns:
            Samples, shape (n, dim).
        """
        p = next(self.parameters())
        device = p.device if device is None else torch.device(device)
        x = self.T * torch.randn(n, self.dim, generator=generator, device=device, dtype=p.dtype)
        x = self(x, self.T)
        for tau in times or ():
            if not self.eps < tau < self.T:
                raise ValueError(f"times must lie in (eps, T), got {tau}")
            z = torch.randn(x.shape, generator=generator, device=device, dtype=p.dtype)
            x = self(x + math.sqrt(tau**2 - self.eps**2) * z, tau)
        return x


class _ConsistencyObjective(abc.ABC):
    r"""The consistency loss :math:`\mathbb{E}\,\|f_\theta(x_{t_{n+1}}, t_{n+1}) - f_{\theta^-}(\hat x_{t_n}, t_n)\|^2`
    with an EMA target :math:`\theta^- \leftarrow \mu \theta^- + (1 - \mu)\theta`.

    :func:`gencode.train.fit` calls :meth:`loss` once per step; the target's EMA update is made at the
    start of each call, i.e. right after the previous optimiser step, so no training-loop hook is needed.
    """

    def __init__(self, model: ConsistencyModel, N: int, ema: float, seed: int) -> None:
        if not isinstance(model, ConsistencyModel):
            raise TypeError(f"model must be a ConsistencyModel, got {type(model).__name__}")
        if not 0 <= ema < 1:
            raise ValueError(f"ema must lie in [0, 1), got {ema}")
        self.model, self.ema = model, float(ema)
        self.target = copy.deepcopy(model).requires_grad_(False)
        self.times = karras_times(N, model.eps, model.T)  # (N,) on the host
        self.N = N
        self._index_gen = torch.Generator().manual_seed(seed)  # CPU: drawing n never syncs a device
        self._noise_gen: torch.Generator | None = None
        self._seed = seed

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        if self._noise_gen is None or self._noise_gen.device != x.device:
            self._noise_gen = torch.Generator(device=x.device).manual_seed(self._seed + 1)
        return torch.randn(x.shape, generator=self._noise_gen, device=x.device, dtype=x.dtype)

    def _levels(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-example times ``t_{n+1}, t_n`` (B,) with ``n`` uniform in {1, ..., N-1}, and noise ``z`` (B, D)."""
        n = torch.randint(0, self.N - 1, (x0.shape[0],), generator=self._index_gen).to(x0.device)
        times = self.times.to(device=x0.device, dtype=x0.dtype)
        return times[n + 1], times[n], self._noise(x0)

    @torch.no_grad()
    def update_target(self) -> None:
        """:math:`\\theta^- \\leftarrow \\mu \\theta^- + (1 - \\mu)\\, \\mathrm{stopgrad}(\\theta)`."""
        for p_target, p in zip(self.target.parameters(), self.model.parameters()):
            p_target.lerp_(p.detach(), 1 - self.ema)

    @abc.abstractmethod
    def pairs(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_{t_{n+1}}, t_{n+1}, x_hat_{t_n}, t_n)`` with times of shape (B,)."""
        ...

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        """The consistency loss on a batch of data ``x0`` of shape (B, D)."""
        if x0.ndim != 2 or x0.shape[1] != self.model.dim:
            raise ValueError(f"x0 must have shape (B, {self.model.dim}), got {tuple(x0.shape)}")
        self.update_target()
        x_next, t_next, x_hat, t_now = self.pairs(x0)
        with torch.no_grad():
            target = self.target(x_hat, t_now)
        return (self.model(x_next, t_next) - target).square().sum(-1).mean()


class ConsistencyDistillation(_ConsistencyObjective):
    r"""Consistency distillation: :math:`\hat x_{t_n}` is one teacher PF-ODE step (:func:`teacher_step`) from
    :math:`x_{t_{n+1}} = x_0 + t_{n+1} z`; each example draws its own level :math:`n`.

    Args:
        model: the student.
        denoiser: the teacher's :math:`D(x, t)`, taking one time per example (e.g. :func:`oracle_denoiser`).
        N: number of discretisation times (Karras grid between ``model.eps`` and ``model.T``).
        ema: :math:`\mu` of the target's EMA (0: the target is the stop-gradient student).
        heun: Heun (default) or Euler teacher steps.
        seed: seed of the level and noise draws.

    References:
        Song et al. Consistency Models. 2023. arXiv:2303.01469 (Alg. 2).
    """

    def __init__(self, model: ConsistencyModel, denoiser: Denoiser, N: int = 18, ema: float = 0.95,
                 heun: bool = True, seed: int = 0) -> None:
        super().__init__(model, N, ema, seed)
        self.denoiser, self.heun = denoiser, heun

    def pairs(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        t_next, t_now, z = self._levels(x0)
        x_next = x0 + t_next[:, None] * z
        return x_next, t_next, teacher_step(self.denoiser, x_next, t_next, t_now, self.heun), t_now


class ConsistencyTraining(_ConsistencyObjective):
    r"""Consistency training: no teacher. :math:`\hat x_{t_n} = x_0 + t_n z` with the *same* :math:`z` as
    :math:`x_{t_{n+1}} = x_0 + t_{n+1} z`: the Euler step with the one-sample denoiser :math:`x_0`
    (``consistency.ct_target``). Each example draws its own level :math:`n`.

    References:
        Song et al. Consistency Models. 2023. arXiv:2303.01469 (Alg. 3).
    """

    def __init__(self, model: ConsistencyModel, N: int = 18, ema: float = 0.95, seed: int = 0) -> None:
        super().__init__(model, N, ema, seed)

    def pairs(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        t_next, t_now, z = self._levels(x0)
        return x0 + t_next[:, None] * z, t_next, x0 + t_now[:, None] * z, t_now
