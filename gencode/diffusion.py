"""The DDPM forward process: noise schedules, ``q(x_t | x_0)`` and the posterior ``q(x_{t-1} | x_t, x_0)``.

Time convention: data at ``t = 0``, noise at ``t = T``.  Steps are numbered ``t = 1, ..., T`` as in
the paper, and every buffer is indexed by ``t`` directly: entry ``0`` holds the value at ``t = 0``
(``alphas_cumprod[0] = 1``, nothing has been added yet), so the code reads like the math,
``alphas_cumprod[t]`` is :math:`\\bar\\alpha_t`.

The closed forms implemented here are the registered identities ``ddpm.forward.marginal``,
``ddpm.posterior``, ``ddpm.posterior.mean_eps`` and ``ddpm.forward.score``; ``tests/test_diffusion.py``
compares them with the SymPy expressions of :mod:`derivations.diffusion`.

The model: :class:`DDPM` (a schedule and a noise-prediction network, its ``L_simple`` or ELBO-weighted
loss, ``ddpm.loss.eps_weight``, with training steps drawn uniformly or from :func:`early_step_probs`),
:func:`ancestral_sample` (any :data:`NoisePredictor`: a network, the
exact :func:`oracle_noise_predictor` of Gaussian-mixture data, a guided combination) and
:func:`elbo_terms` (the bound term by term, ``ddpm.elbo.decomposition``).

References:
    Ho, Jain, Abbeel. Denoising Diffusion Probabilistic Models. 2020. arXiv:2006.11239.
    Nichol, Dhariwal. Improved Denoising Diffusion Probabilistic Models. 2021. arXiv:2102.09672.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from .oracle import MixtureOracle
from .paths import (
    VPDiscrete,
    eps_from_score_at,
    eps_from_v_at,
    eps_from_x0_at,
    score_from_eps_at,
    score_from_x0_at,
    v_from_eps_at,
    x0_from_eps_at,
)

NoisePredictor = Callable[[torch.Tensor, "int | torch.Tensor"], torch.Tensor]
"""``eps = predictor(x_t, t)``: ``x_t`` of shape (B, D), ``t`` an int (every sample at the same step,
as samplers call it) or a (B,) integer tensor (as training calls it); returns shape (B, D)."""

Variance = Literal["beta", "beta_tilde"]


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

    @property
    def path(self) -> VPDiscrete:
        """This schedule as a continuous-time :class:`gencode.paths.VPDiscrete`, ``t = k / T``: step ``k``'s
        :math:`\\alpha = \\sqrt{\\bar\\alpha_k}`, :math:`\\sigma = \\sqrt{1 - \\bar\\alpha_k}`."""
        return VPDiscrete(self)

    def _alpha_sigma(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sqrt(alphabar_t), sqrt(1 - alphabar_t))`` at validated steps ``t``, shaped to broadcast against ``x``:
        the path coefficients that the conversions of :mod:`gencode.paths` take."""
        return self._at(self.sqrt_alphas_cumprod, t, x), self._at(self.sqrt_one_minus_alphas_cumprod, t, x)

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
        return x0_from_eps_at(xt, noise, *self._alpha_sigma(self._index(t, xt, "xt"), xt))

    def score_from_noise(self, noise: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """``grad_{x_t} log q(x_t | x_0) = -epsilon / sqrt(1 - alphabar_t)`` (``ddpm.forward.score``)."""
        t = self._index(t, noise, "noise")
        return score_from_eps_at(noise, self._at(self.sqrt_one_minus_alphas_cumprod, t, noise))

    def conditional_score(self, xt: torch.Tensor, x0: torch.Tensor,
                          t: int | torch.Tensor) -> torch.Tensor:
        """``grad_{x_t} log q(x_t | x_0) = -(x_t - sqrt(alphabar_t) x_0) / (1 - alphabar_t)``."""
        self._check_same_shape(xt=xt, x0=x0)
        self._index(t, x0, "x0")
        return score_from_x0_at(xt, x0, *self._alpha_sigma(self._index(t, xt, "xt"), xt))

    # -- the reverse process --------------------------------------------------------------------

    def reverse_variance(self, variance: Variance = "beta") -> torch.Tensor:
        """The variance ``sigma_t^2`` of the reverse steps, shape (T + 1,) (entry 0 unused).

        ``"beta"``: ``sigma_t^2 = beta_t``, the reverse variance when the data are ``N(0, I)``;
        ``"beta_tilde"``: ``sigma_t^2 = beta_tilde_t``, the reverse variance when the data are a
        single point (``ddpm.reverse.variance_extremes``; ``dpm2015.edge`` is the case ``t = 1``).

        References:
            Ho, Jain, Abbeel. Denoising Diffusion Probabilistic Models. 2020. arXiv:2006.11239 (section 3.2).
        """
        if variance == "beta":
            return self.betas
        if variance == "beta_tilde":
            return self.posterior_variance
        raise ValueError(f"variance must be 'beta' or 'beta_tilde', got {variance!r}")

    def elbo_weights(self, variance: Variance = "beta") -> torch.Tensor:
        """``w_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - alphabar_t))``, shape (T + 1,) (``ddpm.loss.eps_weight``).

        With these weights, ``w_t ||eps - eps_theta||^2`` is the KL term ``L_{t-1}`` of the
        variational bound.  Entry 0 is unused; with ``"beta_tilde"`` entry 1 is infinite
        (``beta_tilde_1 = 0``): the bound's ``t = 1`` term is the decoder ``L_0`` instead.
        """
        sigma2 = self.reverse_variance(variance)
        with torch.no_grad():
            w = self.betas**2 / (2 * sigma2 * self.alphas * self.one_minus_alphas_cumprod)
        w[0] = 0
        return w

    def mean_from_score(self, xt: torch.Tensor, score: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """``mu = (x_t + beta_t s) / sqrt(alpha_t)``, ``s`` the score of ``q(x_t)`` (``ddpm.reverse.euler_maruyama``).

        To first order in ``beta_t`` this is ``x_t + beta_t (x_t / 2 + s)``, the mean of one
        Euler-Maruyama step of the reverse-time SDE of the variance-preserving process (not a
        Langevin step: that would have no drift and noise ``2 beta_t``).  It is
        :meth:`posterior_mean_from_noise` with the noise read off the score, ``eps = -sqrt(1 - alphabar_t) s``.
        """
        self._check_same_shape(xt=xt, score=score)
        sigma = self._at(self.sqrt_one_minus_alphas_cumprod, self._index(t, xt, "xt"), xt)
        return self.posterior_mean_from_noise(xt, eps_from_score_at(score, sigma), t)

    def noise_from_x0(self, xt: torch.Tensor, x0: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """``eps = (x_t - sqrt(alphabar_t) x_0) / sqrt(1 - alphabar_t)`` (x0-prediction to noise)."""
        self._check_same_shape(xt=xt, x0=x0)
        return eps_from_x0_at(xt, x0, *self._alpha_sigma(self._index(t, xt, "xt"), xt))

    def v_from_noise(self, xt: torch.Tensor, noise: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """``v = sqrt(alphabar_t) eps - sqrt(1 - alphabar_t) x_0`` (Salimans and Ho, 2022)."""
        self._check_same_shape(xt=xt, noise=noise)
        return v_from_eps_at(xt, noise, *self._alpha_sigma(self._index(t, xt, "xt"), xt))

    def noise_from_v(self, xt: torch.Tensor, v: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """``eps = sqrt(alphabar_t) v + sqrt(1 - alphabar_t) x_t``, the inverse of :meth:`v_from_noise`."""
        self._check_same_shape(xt=xt, v=v)
        return eps_from_v_at(xt, v, *self._alpha_sigma(self._index(t, xt, "xt"), xt))


# ---------------------------------------------------------------------------------------------
# Noise predictors, the ancestral sampler and the variational bound


def oracle_noise_predictor(schedule: NoiseSchedule, oracle: MixtureOracle) -> NoisePredictor:
    """The exact optimal noise predictor ``E[eps | x_t]`` of Gaussian-mixture data.

    At step ``t`` the oracle is asked with scale ``sqrt(alphabar_t)`` and noise standard deviation
    ``sqrt(1 - alphabar_t)``.  Samplers pass ``t`` as an int; a tensor ``t`` must hold one value.

    Args:
        schedule: the noise schedule.
        oracle: the data's oracle (:class:`gencode.oracle.MixtureOracle`).

    Returns:
        A :data:`NoisePredictor`.
    """
    if not isinstance(oracle, MixtureOracle):
        raise TypeError(f"oracle must be a MixtureOracle, got {type(oracle).__name__}")
    abar = schedule.alphas_cumprod.detach().cpu().double()  # read once, on the host

    def predict(x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        if isinstance(t, torch.Tensor):
            if t.numel() < 1 or bool((t != t.reshape(-1)[0]).any()):
                raise ValueError("the oracle noise predictor needs one step t for the whole batch")
            t = int(t.reshape(-1)[0])
        if not 1 <= t <= schedule.T:
            raise ValueError(f"t must lie in {{1, ..., {schedule.T}}}, got {t}")
        a = float(abar[t])
        return oracle.noise(x, scale=math.sqrt(a), noise_std=math.sqrt(1 - a))

    return predict


@torch.no_grad()
def ancestral_sample(schedule: NoiseSchedule, predictor: NoisePredictor, x_T: torch.Tensor,
                     variance: Variance = "beta", generator: torch.Generator | None = None,
                     trajectory_steps: tuple[int, ...] = ()) -> torch.Tensor | tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """DDPM's ancestral sampler: ``x_{t-1} = mu_theta(x_t, t) + sigma_t z`` for ``t = T, ..., 1``.

    ``mu_theta(x_t, t) = (x_t - beta_t / sqrt(1 - alphabar_t) eps_theta(x_t, t)) / sqrt(alpha_t)``
    (``ddpm.posterior.mean_eps`` with the predicted noise) and ``z ~ N(0, I)``, except at the
    last step, which returns the mean.  With ``sigma_t^2 = beta_t`` each step is, to first order in
    ``beta_t``, an Euler-Maruyama step of the reverse-time SDE (``ddpm.reverse.euler_maruyama``).

    Args:
        schedule: the noise schedule.
        predictor: any noise predictor (a network, the oracle, a guided combination).
        x_T: the starting noise, shape (B, D), usually ``N(0, I)`` samples.
        variance: ``"beta"`` or ``"beta_tilde"`` for ``sigma_t^2``.
        generator: random generator for ``z`` (on ``x_T``'s device).
        trajectory_steps: steps ``t`` at which to keep a copy of ``x_t``.

    Returns:
        ``x_0`` of shape (B, D); with ``trajectory_steps``, also a dict ``t -> x_t``.

    References:
        Ho, Jain, Abbeel. Denoising Diffusion Probabilistic Models. 2020. arXiv:2006.11239 (Algorithm 2).
    """
    sigma = schedule.reverse_variance(variance).sqrt().to(x_T.device, x_T.dtype)  # (T + 1,)
    x = x_T
    kept = {}
    for t in range(schedule.T, 0, -1):
        if t in trajectory_steps:
            kept[t] = x
        mean = schedule.posterior_mean_from_noise(x, predictor(x, t), t)
        if t > 1:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = mean + sigma[t] * z
        else:
            x = mean
    if trajectory_steps:
        kept[0] = x
        return x, kept
    return x


@dataclass(frozen=True)
class ELBOTerms:
    """The terms of the negative variational bound, per sample, in nats (``ddpm.elbo.decomposition``).

    Attributes:
        prior: ``L_T = KL(q(x_T | x_0) || N(0, I))``, shape (B,).
        diffusion: ``sum_{t=2}^T L_{t-1}``, one-sample Monte Carlo estimate of each expectation, shape (B,).
        reconstruction: ``L_0 = -log p_theta(x_0 | x_1)``, shape (B,).
    """

    prior: torch.Tensor
    diffusion: torch.Tensor
    reconstruction: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """The negative bound ``L_T + sum L_{t-1} + L_0`` per sample, an upper bound on ``-log p(x_0)``."""
        return self.prior + self.diffusion + self.reconstruction

    def bits_per_dim(self, dim: int) -> float:
        """The mean negative bound in bits per dimension."""
        return float(self.total.mean()) / (dim * math.log(2))


@torch.no_grad()
def elbo_terms(schedule: NoiseSchedule, predictor: NoisePredictor, x0: torch.Tensor,
               variance: Variance = "beta_tilde", generator: torch.Generator | None = None) -> ELBOTerms:
    """The negative variational bound of a DDPM with Gaussian reverse steps, term by term.

    For each ``t = 2..T`` one ``x_t ~ q(x_t | x_0)`` is drawn and the KL divergence
    ``KL(q(x_{t-1} | x_t, x_0) || N(mu_theta(x_t, t), sigma_t^2 I))`` is computed in closed form by
    ``torch.distributions.kl_divergence``.  The decoder is the Gaussian
    ``p(x_0 | x_1) = N(mu_theta(x_1, 1), beta_1 I)`` (``beta_tilde_1 = 0`` cannot serve), for
    continuous data; DDPM's discretised decoder for 8-bit images is not used here.

    Args:
        schedule: the noise schedule.
        predictor: the model's noise predictor.
        x0: data, shape (B, D).
        variance: ``sigma_t^2`` for ``t >= 2``, ``"beta"`` or ``"beta_tilde"``.
        generator: random generator for the ``x_t``.

    Returns:
        :class:`ELBOTerms` with per-sample terms in nats.

    References:
        Ho, Jain, Abbeel. Denoising Diffusion Probabilistic Models. 2020. arXiv:2006.11239 (equation 5).
    """
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (B, D), got {tuple(x0.shape)}")
    sigma2 = schedule.reverse_variance(variance).to(x0.device, x0.dtype)
    q_T = schedule.q_mean_variance(x0, schedule.T)
    prior = kl_divergence(Normal(q_T.mean, q_T.std), Normal(torch.zeros_like(x0), 1.0)).sum(-1)
    diffusion = torch.zeros(x0.shape[0], device=x0.device, dtype=x0.dtype)
    for t in range(2, schedule.T + 1):
        xt = schedule.q_sample(x0, t, generator=generator)
        post = schedule.q_posterior(x0, xt, t)
        model_mean = schedule.posterior_mean_from_noise(xt, predictor(xt, t), t)
        diffusion += kl_divergence(Normal(post.mean, post.std),
                                   Normal(model_mean, sigma2[t].sqrt())).sum(-1)
    x1 = schedule.q_sample(x0, 1, generator=generator)
    decoder = Normal(schedule.posterior_mean_from_noise(x1, predictor(x1, 1), 1), schedule.betas[1].sqrt())
    return ELBOTerms(prior, diffusion, -decoder.log_prob(x0).sum(-1))


def early_step_probs(T: int, fraction: float = 0.5, early: int = 10) -> torch.Tensor:
    """Training-step probabilities that oversample the least noisy steps, shape (T,).

    With probability ``fraction`` the step is uniform on ``{1, ..., early}``, otherwise uniform on
    ``{1, ..., T}``: ``p_t = (1 - fraction) / T + fraction / early`` for ``t <= early``, else
    ``(1 - fraction) / T``.  Each step is its own least-squares problem, so drawing ``t`` from
    ``p`` instead of uniformly leaves ``L_simple``'s minimiser unchanged; it gives more samples to
    the least noisy steps, where ``E[eps | x_t]`` is a small signal in a unit-variance target and a
    network trained with uniform steps errs most (and the sampler's last steps amplify the error
    into the spread of the samples).

    Args:
        T: number of steps.
        fraction: probability mass moved to the early steps, in [0, 1].
        early: number of early steps, in {1, ..., T}.

    Example:
        >>> p = early_step_probs(100, 0.5, 10)
        >>> round(float(p.sum()), 12), round(float(p[0] / p[-1]), 6)
        (1.0, 11.0)
    """
    _check_steps(T)
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    if isinstance(early, bool) or not isinstance(early, int) or not 1 <= early <= T:
        raise ValueError(f"early must be an int in 1..{T}, got {early!r}")
    p = torch.full((T,), (1 - fraction) / T, dtype=torch.float64)
    p[:early] += fraction / early
    return p


def draw_steps(n: int, T: int, device: torch.device, probs: torch.Tensor | None = None,
               low: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` training steps in ``{low, ..., T}``: uniform, or from ``probs`` (shape (T,), entry
    ``t - 1`` for step ``t``) restricted to ``t >= low`` and renormalised.

    Returns the steps, shape (n,), and the probabilities used (shape (T,)), or ``None`` when
    uniform.  Draws from torch's global generator (seeded by :func:`gencode.train.fit`), always
    through ``torch.randint`` (a non-uniform ``p`` by inverting its CDF at ``randint / 2^30``), never
    ``torch.multinomial``: ``fit`` seeds the global generator and the data's generator with the same
    seed, and a mixture's ``sample`` picks components with ``multinomial``, so the two streams would
    be identical and every step ``t`` would be tied to the component of its data point.
    """
    if probs is None:
        return torch.randint(low, T + 1, (n,), device=device), None
    p = probs.to(device=device, dtype=torch.float64).clone()
    p[: low - 1] = 0
    p = p / p.sum()
    u = torch.randint(0, 1 << 30, (n,), device=device, dtype=torch.float64) / (1 << 30)  # (n,) in [0, 1)
    t = torch.searchsorted(torch.cumsum(p, 0), u, right=True).clamp(max=T - 1) + 1
    return t, p


def check_step_probs(probs: torch.Tensor | None, T: int) -> torch.Tensor | None:
    """``probs`` validated (shape (T,), non-negative, positive sum) and normalised, or ``None``."""
    if probs is None:
        return None
    probs = torch.as_tensor(probs, dtype=torch.float64)
    if probs.shape != (T,) or not bool((probs >= 0).all()) or not float(probs.sum()) > 0:
        raise ValueError(f"step_probs must be a non-negative tensor of shape ({T},) with a positive sum")
    return probs / probs.sum()


class DDPM(nn.Module):
    """A denoising diffusion probabilistic model: a schedule and a noise-prediction network.

    Args:
        schedule: the noise schedule.
        net: a network ``net(x_t, t) -> eps`` with ``x_t`` of shape (B, D) and ``t`` a float
            tensor (B,) of steps (e.g. :class:`gencode.nets.MLP` with ``time_dim``).
        step_probs: probabilities of the training steps, shape (T,) (e.g. :func:`early_step_probs`);
            ``None`` draws them uniformly, as DDPM does.

    Example:
        >>> from gencode.nets import MLP
        >>> model = DDPM(NoiseSchedule.linear(50), MLP(2, 2, hidden=16, depth=1, time_dim=8))
        >>> bool(model.loss(torch.randn(8, 2)).detach() > 0)
        True

    References:
        Ho, Jain, Abbeel. Denoising Diffusion Probabilistic Models. 2020. arXiv:2006.11239.
    """

    def __init__(self, schedule: NoiseSchedule, net: nn.Module, step_probs: torch.Tensor | None = None) -> None:
        super().__init__()
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        self.schedule = schedule
        self.net = net
        self.register_buffer("step_probs", check_step_probs(step_probs, schedule.T))  # (T,) or None

    def noise(self, xt: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """``eps_theta(x_t, t)``; ``t`` an int or a (B,) integer tensor (a :data:`NoisePredictor`)."""
        t = torch.as_tensor(t, device=xt.device)
        return self.net(xt, t.to(xt.dtype))

    def loss(self, x0: torch.Tensor, weighting: Literal["simple", "elbo"] = "simple",
             variance: Variance = "beta") -> torch.Tensor:
        """``E_{t, eps} w_t ||eps - eps_theta(sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) eps, t)||^2``.

        ``"simple"``: ``w_t = 1`` (``L_simple``); ``"elbo"``: ``w_t`` from :meth:`NoiseSchedule.elbo_weights`
        (the bound's KL terms, up to the factor ``T`` of the uniform draw of ``t``), for
        ``t >= 2``.  ``t`` and ``eps`` come from torch's global generator (seeded by
        :func:`gencode.train.fit`).  With ``step_probs``, ``t ~ p``: ``L_simple`` is then weighted
        by ``p_t`` (same minimiser), and the ELBO weights are divided by ``(T - 1) p_t``
        (importance sampling), so the ``"elbo"`` objective is unchanged in expectation.

        Args:
            x0: data, shape (B, D).
            weighting: ``"simple"`` or ``"elbo"``.
            variance: the reverse variance that the ELBO weights assume.

        Returns:
            A scalar.
        """
        if x0.ndim != 2:
            raise ValueError(f"x0 must have shape (B, D), got {tuple(x0.shape)}")
        low = 1 if weighting == "simple" else 2
        if weighting not in ("simple", "elbo"):
            raise ValueError(f"weighting must be 'simple' or 'elbo', got {weighting!r}")
        T = self.schedule.T
        t, p = draw_steps(x0.shape[0], T, x0.device, self.step_probs, low)
        eps = torch.randn_like(x0)
        xt = self.schedule.q_sample(x0, t, noise=eps)
        err = (eps - self.noise(xt, t)).square().sum(-1)  # (B,)
        if weighting == "elbo":
            err = err * self.schedule.elbo_weights(variance).to(x0.device, x0.dtype)[t]
            if p is not None:
                err = err / ((T - 1) * p[t - 1]).to(x0.dtype)
        return err.mean()

    @torch.no_grad()
    def sample(self, n: int, dim: int, variance: Variance = "beta",
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples by :func:`ancestral_sample` from ``x_T ~ N(0, I)``, shape (n, dim)."""
        p = next(self.net.parameters())
        x_T = torch.randn(n, dim, generator=generator, device=p.device, dtype=p.dtype)
        return ancestral_sample(self.schedule, self.noise, x_T, variance, generator)

    def elbo_terms(self, x0: torch.Tensor, variance: Variance = "beta_tilde",
                   generator: torch.Generator | None = None) -> ELBOTerms:
        """The negative bound of this model, term by term (see :func:`elbo_terms`)."""
        return elbo_terms(self.schedule, self.noise, x0, variance, generator)
