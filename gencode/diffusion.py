"""The DDPM forward process: noise schedules, ``q(x_t | x_0)`` and the posterior ``q(x_{t-1} | x_t, x_0)``.

Time convention: data at ``t = 0``, noise at ``t = T``.  Steps are numbered ``t = 1, ..., T`` as in
the paper, and every buffer is indexed by ``t`` directly: entry ``0`` holds the value at ``t = 0``
(``alphas_cumprod[0] = 1``, nothing has been added yet), so the code reads like the math,
``alphas_cumprod[t]`` is :math:`\\bar\\alpha_t`.

The closed forms implemented here are the registered identities ``ddpm.forward.marginal``,
``ddpm.posterior``, ``ddpm.posterior.mean_eps`` and ``ddpm.forward.score``; ``tests/test_diffusion.py``
compares them with the SymPy expressions of :mod:`derivations.diffusion`.

References:
    Ho, Jain, Abbeel. Denoising Diffusion Probabilistic Models. 2020. arXiv:2006.11239.
    Nichol, Dhariwal. Improved Denoising Diffusion Probabilistic Models. 2021. arXiv:2102.09672.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


def linear_beta_schedule(T: int, beta_start: float = 1e-4, beta_end: float = 0.02,
                         dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``beta_t`` rising linearly from ``beta_start`` (t = 1) to ``beta_end`` (t = T), as in DDPM.

    Args:
        T: number of steps.
        beta_start: first variance.
        beta_end: last variance.
        dtype: dtype of the result.

    Returns:
        Tensor of shape (T,): ``betas[t - 1] = beta_t``.

    References:
        Ho, Jain, Abbeel. Denoising Diffusion Probabilistic Models. 2020. arXiv:2006.11239.

    Example:
        >>> linear_beta_schedule(3, 0.1, 0.3)
        tensor([0.1000, 0.2000, 0.3000], dtype=torch.float64)
    """
    _check_steps(T)
    return torch.linspace(beta_start, beta_end, T, dtype=dtype)


def cosine_beta_schedule(T: int, s: float = 0.008, max_beta: float = 0.999,
                         dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The cosine schedule: ``alphabar_t = f(t) / f(0)``, ``f(t) = cos^2((t/T + s) / (1 + s) * pi/2)``.

    Then ``beta_t = 1 - alphabar_t / alphabar_{t-1}``, clipped at ``max_beta`` to avoid the
    singularity at ``t = T`` (equation 17 of Nichol and Dhariwal).

    Args:
        T: number of steps.
        s: small offset that keeps ``beta_1`` from being too small.
        max_beta: upper clip of ``beta_t``.
        dtype: dtype of the result.

    Returns:
        Tensor of shape (T,).

    References:
        Nichol, Dhariwal. Improved Denoising Diffusion Probabilistic Models. 2021. arXiv:2102.09672.

    Example:
        >>> betas = cosine_beta_schedule(1000)
        >>> bool(betas[0] < 1e-4) and bool(betas[-1] == 0.999)
        True
    """
    _check_steps(T)
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # the square is part of the schedule
    alphas_cumprod = f / f[0]
    betas = 1 - alphas_cumprod[1:] / alphas_cumprod[:-1]
    return betas.clamp(max=max_beta).to(dtype)


def _check_steps(T: int) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")


@dataclass(frozen=True)
class GaussianParams:
    """Mean and variance of a Gaussian with covariance ``variance * I``.

    Attributes:
        mean: shape (B, ...), like the data.
        variance: shape (B, 1, ..., 1), broadcastable against ``mean``.
        log_variance: ``log(variance)``; for the posterior at ``t = 1`` (variance 0) it is clipped
            to the value at ``t = 2``, as in DDPM's code.
    """

    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return self.variance.sqrt()


class NoiseSchedule(nn.Module):
    """A DDPM noise schedule with every derived quantity stored as a buffer named after its math.

    For ``t = 0, ..., T`` (entry ``0`` is the data, where nothing has been added):

    * ``betas[t] = beta_t`` (``betas[0] = 0``), ``alphas[t] = alpha_t = 1 - beta_t``;
    * ``alphas_cumprod[t] = alphabar_t = alpha_1 ... alpha_t`` (``alphabar_0 = 1``);
    * ``alphas_cumprod_prev[t] = alphabar_{t-1}`` (defined for ``t >= 1``; entry 0 repeats 1);
    * ``sqrt_alphas_cumprod``, ``sqrt_one_minus_alphas_cumprod``, ``sqrt_recip_alphas``;
    * ``posterior_variance[t] = beta_tilde_t = (1 - alphabar_{t-1}) / (1 - alphabar_t) beta_t``;
    * ``posterior_mean_coef_x0[t] = sqrt(alphabar_{t-1}) beta_t / (1 - alphabar_t)``;
    * ``posterior_mean_coef_xt[t] = sqrt(alpha_t) (1 - alphabar_{t-1}) / (1 - alphabar_t)``.

    Methods take ``t`` as an integer or an integer tensor of shape (B,) with values in
    ``{1, ..., T}`` and broadcast the coefficients against data of shape (B, ...).  On CPU a
    value out of range raises ``ValueError``; on an accelerator it is checked with
    ``torch._assert_async``, which does not wait for the device.

    Args:
        betas: shape (T,), ``betas[t - 1] = beta_t``, each in the open interval (0, 1).

    References:
        Ho, Jain, Abbeel. Denoising Diffusion Probabilistic Models. 2020. arXiv:2006.11239.

    Example:
        >>> sched = NoiseSchedule.linear(1000)
        >>> sched.T, float(sched.alphas_cumprod[0])
        (1000, 1.0)
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    one_minus_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    sqrt_recip_alphas: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_log_variance_clipped: torch.Tensor
    posterior_mean_coef_x0: torch.Tensor
    posterior_mean_coef_xt: torch.Tensor

    def __init__(self, betas: torch.Tensor) -> None:
        super().__init__()
        betas = torch.as_tensor(betas)
        if betas.ndim != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}")
        if not betas.is_floating_point():
            raise TypeError(f"betas must be floating point, got {betas.dtype}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must lie in the open interval (0, 1); got values in "
                             f"[{float(betas.min())}, {float(betas.max())}]")
        zero = betas.new_zeros(1)
        betas = torch.cat([zero, betas])                       # (T + 1,), betas[0] unused
        alphas = 1 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)          # alphabar_0 = 1
        alphas_cumprod_prev = torch.cat([alphas_cumprod[:1], alphas_cumprod[:-1]])
        # beta_tilde_t = (1 - alphabar_{t-1}) / (1 - alphabar_t) beta_t; at t = 0 define it as 0
        one_minus = (1 - alphas_cumprod).clone()
        one_minus[0] = 1
        posterior_variance = (1 - alphas_cumprod_prev) / one_minus * betas
        self.register_buffer("betas", betas)
        self.register_buffer("alphas", alphas)
        self.register_buffer("alphas_cumprod", alphas_cumprod)
        self.register_buffer("alphas_cumprod_prev", alphas_cumprod_prev)
        self.register_buffer("sqrt_alphas_cumprod", alphas_cumprod.sqrt())
        self.register_buffer("one_minus_alphas_cumprod", 1 - alphas_cumprod)
        self.register_buffer("sqrt_one_minus_alphas_cumprod", (1 - alphas_cumprod).sqrt())
        self.register_buffer("sqrt_recip_alphas", alphas.rsqrt())
        self.register_buffer("posterior_variance", posterior_variance)
        # beta_tilde_1 = 0: clip the log at the value of t = 2 (or of t = 1's beta when T = 1).
        floor = posterior_variance[2] if len(betas) > 2 else betas[1]
        self.register_buffer("posterior_log_variance_clipped",
                             torch.log(torch.where(posterior_variance > 0, posterior_variance, floor)))
        self.register_buffer("posterior_mean_coef_x0",
                             alphas_cumprod_prev.sqrt() * betas / one_minus)
        self.register_buffer("posterior_mean_coef_xt",
                             alphas.sqrt() * (1 - alphas_cumprod_prev) / one_minus)

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
        """The linear schedule of DDPM (see :func:`linear_beta_schedule`)."""
        return cls(linear_beta_schedule(T, beta_start, beta_end))

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008) -> NoiseSchedule:
        """The cosine schedule of improved DDPM (see :func:`cosine_beta_schedule`)."""
        return cls(cosine_beta_schedule(T, s))

    @property
    def T(self) -> int:
        return self.betas.shape[0] - 1

    # -- indexing -------------------------------------------------------------------------------

    def _index(self, t: int | torch.Tensor, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        """Validate ``t`` and ``x`` and return ``t`` as a (B,) long tensor on ``x.device``.

        On CPU, ``x`` must also be finite; on an accelerator that check would wait for the
        device, so it is left to the caller there.
        """
        if not isinstance(x, torch.Tensor) or x.ndim < 1 or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor of shape (B, ...)")
        # NaN and inf propagate into the sum: one reduction instead of an elementwise mask
        if x.device.type == "cpu" and not math.isfinite(float(x.sum(dtype=torch.float64))):
            raise ValueError(f"{name} contains NaN or infinite values")
        if isinstance(t, int) and not isinstance(t, bool):
            if not 1 <= t <= self.T:
                raise ValueError(f"t must lie in {{1, ..., {self.T}}}, got {t}")
            return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        if not isinstance(t, torch.Tensor) or t.dtype.is_floating_point or t.dtype == torch.bool:
            raise TypeError(f"t must be an int or an integer tensor, got {type(t).__name__} "
                            f"{getattr(t, 'dtype', '')}")
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"t must have shape (B,) = ({x.shape[0]},) to match x, got {tuple(t.shape)}")
        t = t.to(device=x.device, dtype=torch.long)
        in_range = ((t >= 1) & (t <= self.T)).all()
        if t.device.type == "cpu":
            if not bool(in_range):
                raise ValueError(f"t must lie in {{1, ..., {self.T}}}; got values in "
                                 f"[{int(t.min())}, {int(t.max())}]")
        else:
            torch._assert_async(in_range, "t out of range {1, ..., T}")
        return t

    def _at(self, buffer: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``buffer[t]`` reshaped to (B, 1, ..., 1) to broadcast against ``x`` of shape (B, ...)."""
        return buffer.to(x.device)[t].to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))

    def _check_same_shape(self, **tensors: torch.Tensor) -> None:
        shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"shapes must match: {shapes}")

    # -- the forward process --------------------------------------------------------------------

    def q_mean_variance(self, x0: torch.Tensor, t: int | torch.Tensor) -> GaussianParams:
        """``q(x_t | x_0) = N(sqrt(alphabar_t) x_0, (1 - alphabar_t) I)`` (``ddpm.forward.marginal``).

        Args:
            x0: data, shape (B, ...).
            t: step(s) in {1, ..., T}: int or (B,).

        Returns:
            The mean, shape (B, ...), and variance, shape (B, 1, ..., 1).
        """
        t = self._index(t, x0, "x0")
        variance = self._at(self.one_minus_alphas_cumprod, t, x0)
        return GaussianParams(self._at(self.sqrt_alphas_cumprod, t, x0) * x0, variance,
                              variance.log())

    def q_sample(self, x0: torch.Tensor, t: int | torch.Tensor,
                 noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) epsilon``, ``epsilon ~ N(0, I)``.

        Args:
            x0: data, shape (B, ...).
            t: step(s) in {1, ..., T}: int or (B,).
            noise: ``epsilon``, shape of ``x0``; drawn when not given.
            generator: random generator for the noise (on ``x0``'s device).

        Returns:
            ``x_t``, shape of ``x0``.
        """
        t = self._index(t, x0, "x0")
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        self._check_same_shape(x0=x0, noise=noise)
        return (self._at(self.sqrt_alphas_cumprod, t, x0) * x0
                + self._at(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise)

    def q_step(self, x_prev: torch.Tensor, t: int | torch.Tensor,
               noise: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """One forward step: ``x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) epsilon``.

        Args:
            x_prev: ``x_{t-1}``, shape (B, ...).
            t: step(s) in {1, ..., T}: int or (B,).
            noise: ``epsilon``, shape of ``x_prev``; drawn when not given.
            generator: random generator for the noise.

        Returns:
            ``x_t``, shape of ``x_prev``.
        """
        t = self._index(t, x_prev, "x_prev")
        if noise is None:
            noise = torch.randn(x_prev.shape, generator=generator, device=x_prev.device,
                                dtype=x_prev.dtype)
        self._check_same_shape(x_prev=x_prev, noise=noise)
        return (self._at(self.alphas, t, x_prev).sqrt() * x_prev
                + self._at(self.betas, t, x_prev).sqrt() * noise)

    # -- the posterior --------------------------------------------------------------------------

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: int | torch.Tensor) -> GaussianParams:
        """``q(x_{t-1} | x_t, x_0) = N(mu_tilde_t, beta_tilde_t I)`` (``ddpm.posterior``).

        ``mu_tilde_t = sqrt(alphabar_{t-1}) beta_t / (1 - alphabar_t) x_0
        + sqrt(alpha_t) (1 - alphabar_{t-1}) / (1 - alphabar_t) x_t``.

        Args:
            x0: data, shape (B, ...).
            xt: noised data, shape of ``x0``.
            t: step(s) in {1, ..., T}: int or (B,).

        Returns:
            Mean (B, ...), variance and clipped log-variance (B, 1, ..., 1).
        """
        self._check_same_shape(x0=x0, xt=xt)
        self._index(t, xt, "xt")
        t = self._index(t, x0, "x0")
        mean = (self._at(self.posterior_mean_coef_x0, t, x0) * x0
                + self._at(self.posterior_mean_coef_xt, t, x0) * xt)
        return GaussianParams(mean, self._at(self.posterior_variance, t, x0),
                              self._at(self.posterior_log_variance_clipped, t, x0))

    def posterior_mean_from_noise(self, xt: torch.Tensor, noise: torch.Tensor,
                                  t: int | torch.Tensor) -> torch.Tensor:
        """``mu_tilde_t = (x_t - beta_t / sqrt(1 - alphabar_t) epsilon) / sqrt(alpha_t)`` (``ddpm.posterior.mean_eps``).

        This is the mean that a noise-prediction network plugs its ``epsilon_theta`` into.

        Args:
            xt: noised data, shape (B, ...).
            noise: ``epsilon`` with ``x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) epsilon``.
            t: step(s) in {1, ..., T}: int or (B,).

        Returns:
            The posterior mean, shape of ``xt``.
        """
        self._check_same_shape(xt=xt, noise=noise)
        t = self._index(t, xt, "xt")
        return self._at(self.sqrt_recip_alphas, t, xt) * (
            xt - self._at(self.betas, t, xt) / self._at(self.sqrt_one_minus_alphas_cumprod, t, xt) * noise)

    def predict_x0_from_noise(self, xt: torch.Tensor, noise: torch.Tensor,
                              t: int | torch.Tensor) -> torch.Tensor:
        """``x_0 = (x_t - sqrt(1 - alphabar_t) epsilon) / sqrt(alphabar_t)``."""
        self._check_same_shape(xt=xt, noise=noise)
        t = self._index(t, xt, "xt")
        return (xt - self._at(self.sqrt_one_minus_alphas_cumprod, t, xt) * noise) / self._at(
            self.sqrt_alphas_cumprod, t, xt)

    def score_from_noise(self, noise: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """``grad_{x_t} log q(x_t | x_0) = -epsilon / sqrt(1 - alphabar_t)`` (``ddpm.forward.score``)."""
        t = self._index(t, noise, "noise")
        return -noise / self._at(self.sqrt_one_minus_alphas_cumprod, t, noise)

    def conditional_score(self, xt: torch.Tensor, x0: torch.Tensor,
                          t: int | torch.Tensor) -> torch.Tensor:
        """``grad_{x_t} log q(x_t | x_0) = -(x_t - sqrt(alphabar_t) x_0) / (1 - alphabar_t)``."""
        self._check_same_shape(xt=xt, x0=x0)
        self._index(t, x0, "x0")
        t = self._index(t, xt, "xt")
        return -(xt - self._at(self.sqrt_alphas_cumprod, t, xt) * x0) / self._at(
            self.one_minus_alphas_cumprod, t, xt)
