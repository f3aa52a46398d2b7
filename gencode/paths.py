r"""One family of Gaussian probability paths: the place where every time convention of Parts IV-VI meets.

**Convention (diffusion time).** A path is a pair of scalar functions :math:`(\alpha(t), \sigma(t))` and

.. math::
    x_t = \alpha(t)\, x_0 + \sigma(t)\, \varepsilon, \qquad x_0 \sim p_{\text{data}}, \quad
    \varepsilon \sim \mathcal{N}(0, I), \quad t \in [t_{\min}, t_{\max}],

with the data at the start of time and the noise at the end. Most paths run on :math:`[0, 1]`;
:class:`EDM` runs in *sigma-time*, :math:`t = \sigma \in [\sigma_{\min}, \sigma_{\max}]`.

The other conventions of the book, each stated once here:

* **DDPM's integer steps** :math:`k \in \{0, \dots, T\}`: :class:`VPDiscrete` at :math:`t = k / T`,
  where :math:`\alpha(k/T)^2 = \bar\alpha_k` to float precision (the schedule's own buffer).
* **Flow-matching time** :math:`u = 1 - t` (noise at :math:`u = 0`, data at :math:`u = 1`): the flow
  :math:`x_u = u\, x_1 + (1 - u)\, x_0^{\text{noise}}` is :class:`RectifiedFlow` at :math:`t = 1 - u`, and a
  flow-matching velocity is :math:`\mathrm{d}x/\mathrm{d}u = -\mathrm{d}x/\mathrm{d}t`
  (:func:`flow_time`, :func:`diffusion_time`).
* **SDE time** (:mod:`gencode.sde`): the same :math:`t`; :class:`VPLinear`, :class:`VE` and
  :class:`SubVP` are the kernels of the VP, VE and sub-VP SDEs of Song et al. (2021).
* **Sigma-time** (EDM, consistency models): :class:`EDM`, :math:`\alpha = 1`, :math:`\sigma(t) = t`.

**Parametrisations.** With :math:`x = \alpha x_0 + \sigma \varepsilon` a network may predict the noise
``"eps"``, the data ``"x0"``, the score ``"score"`` (:math:`\nabla\log p_t = -\mathbb{E}[\varepsilon\mid x]/\sigma`),
Salimans and Ho's ``"v"`` (:math:`v = \alpha\varepsilon - \sigma x_0`) or the probability-flow
``"velocity"`` (:math:`\mathrm{d}x/\mathrm{d}t = \dot\alpha x_0 + \dot\sigma\varepsilon`, in diffusion
time). Each is an affine function of the others given :math:`x` and :math:`t`; :meth:`GaussianPath.convert`
goes between any two. The conversions are exact for the conditional quantities and, being affine, carry
over to the conditional expectations that an optimal network predicts.

**SDEs with the same marginals.** :math:`\mathrm{d}x = f(t)\, x\,\mathrm{d}t + g(t)\,\mathrm{d}W` with
:math:`f = \dot\alpha/\alpha` (:meth:`GaussianPath.drift_coef`) and
:math:`g^2 = 2\sigma\dot\sigma - 2 f \sigma^2` (:meth:`GaussianPath.g2`) has the kernel
:math:`\mathcal{N}(\alpha x_0, \sigma^2 I)`: its variance obeys :math:`\mathrm{d}\sigma^2/\mathrm{d}t = 2 f\sigma^2 + g^2`.
Run backwards, :meth:`GaussianPath.sde_drift` is the one-parameter family
:math:`\mathrm{d}x = [f x - \tfrac{1 + \lambda^2}{2} g^2 \nabla\log p_t]\,\mathrm{d}t + \lambda g\,\mathrm{d}\bar W`
(:math:`\mathrm{d}t < 0`), all with the marginals :math:`p_t`: :math:`\lambda = 0` is the probability flow
ODE, :math:`\lambda = 1` Anderson's reverse SDE.

Time arguments are Python numbers or tensors. A tensor ``t`` of shape (B,) broadcasts against data of shape
(B, ...); a scalar against anything. Coefficients are computed in the time's dtype (float64 for Python
numbers) and cast to the data's device and dtype. Times outside :math:`[t_{\min}, t_{\max}]` raise
``ValueError`` (checked on the host for numbers and CPU tensors; device tensors are not read back).

References:
    Ho, Jain, Abbeel. Denoising Diffusion Probabilistic Models. 2020. arXiv:2006.11239.
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole. Score-Based Generative Modeling through Stochastic
    Differential Equations. 2021. arXiv:2011.13456.
    Kingma, Salimans, Poole, Ho. Variational Diffusion Models. 2021. arXiv:2107.00630.
    Salimans, Ho. Progressive Distillation for Fast Sampling of Diffusion Models. 2022. arXiv:2202.00512.
    Lu, Zhou, Bao, Chen, Li, Zhu. DPM-Solver. 2022. arXiv:2206.00927.
    Karras, Aittala, Aila, Laine. Elucidating the Design Space of Diffusion-Based Generative Models. 2022.
    arXiv:2206.00364.
    Lipman, Havasi, Holderrieth, et al. Flow Matching Guide and Code. 2024. arXiv:2412.06264.
"""

from __future__ import annotations

import abc
import math
from typing import Literal

import torch

__all__ = ["EDM", "GaussianPath", "PARAMETRISATIONS", "RectifiedFlow", "SubVP", "VE", "VPCosine", "VPDiscrete",
           "VPLinear", "consistency_preconditioning", "diffusion_time", "edm_preconditioning", "eps_from_score_at",
           "eps_from_v_at", "eps_from_velocity_at", "eps_from_x0_at", "flow_time", "score_from_eps_at",
           "score_from_x0_at", "v_from_eps_at", "velocity_from_eps_at", "velocity_from_x0_at", "x0_from_eps_at",
           "x0_from_v_at", "x0_from_velocity_at"]

Time = float | torch.Tensor
Parametrisation = Literal["eps", "x0", "score", "v", "velocity"]
PARAMETRISATIONS: tuple[str, ...] = ("eps", "x0", "score", "v", "velocity")
_ALL = ("alpha", "sigma", "d_alpha", "d_sigma")


# ---------------------------------------------------------------------------------------------
# validation helpers


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _ordered(lo_name: str, lo: float, hi_name: str, hi: float, strict: bool) -> tuple[float, float]:
    lo, hi = _positive(lo_name, lo), _positive(hi_name, hi)
    if hi < lo or (strict and hi == lo):
        raise ValueError(f"{hi_name} must be {'>' if strict else '>='} {lo_name}, got {hi} and {lo}")
    return lo, hi


def _tensor(name: str, value: Time, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``value`` as a floating tensor (numbers become float64 on the host)."""
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool:
            raise TypeError(f"{name} must be a number or a numeric tensor, got a bool tensor")
        return value if value.is_floating_point() else value.to(dtype)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    return torch.tensor(float(value), dtype=dtype)


def _check_tensor(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")


def _same_shape(**tensors: torch.Tensor) -> None:
    for name, v in tensors.items():
        _check_tensor(name, v)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"shapes must match: {shapes}")


def _against(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A coefficient of shape () or (B,) (or broadcastable to ``x``) reshaped to broadcast against ``x``."""
    c = c.to(device=x.device, dtype=x.dtype)
    if c.ndim == 0:
        return c
    if c.ndim == 1 and x.ndim >= 1 and c.shape[0] == x.shape[0]:
        return c.reshape(-1, *([1] * (x.ndim - 1)))
    try:
        if torch.broadcast_shapes(c.shape, x.shape) == x.shape:
            return c
    except RuntimeError:
        pass
    raise ValueError(f"t must be a scalar, have shape (B,) = ({x.shape[0] if x.ndim else ''},) or broadcast "
                     f"to the data's shape {tuple(x.shape)}; got {tuple(c.shape)}")


# ---------------------------------------------------------------------------------------------
# the conversions, at given coefficients: the one place where each formula is written. The methods of
# GaussianPath call them with the path's alpha(t), sigma(t), ...; discrete schedules (DDPM's buffers) call
# them with their own tensors. Coefficients must already broadcast against the data.


def x0_from_eps_at(x, eps, alpha, sigma):
    r""":math:`x_0 = (x - \sigma\varepsilon)/\alpha`."""
    return (x - sigma * eps) / alpha


def eps_from_x0_at(x, x0, alpha, sigma):
    r""":math:`\varepsilon = (x - \alpha x_0)/\sigma`."""
    return (x - alpha * x0) / sigma


def score_from_eps_at(eps, sigma):
    r""":math:`\nabla\log p = -\varepsilon/\sigma`."""
    return -eps / sigma


def eps_from_score_at(score, sigma):
    r""":math:`\varepsilon = -\sigma\nabla\log p`."""
    return -sigma * score


def score_from_x0_at(x, x0, alpha, sigma):
    r""":math:`\nabla\log p = -(x - \alpha x_0)/\sigma^2` (the conditional score of :math:`\mathcal{N}(\alpha x_0, \sigma^2 I)`)."""
    return -(x - alpha * x0) / sigma**2


def v_from_eps_at(x, eps, alpha, sigma):
    r""":math:`v = \alpha\varepsilon - \sigma x_0` with :math:`x_0 = (x - \sigma\varepsilon)/\alpha`."""
    return alpha * eps - sigma * x0_from_eps_at(x, eps, alpha, sigma)


def eps_from_v_at(x, v, alpha, sigma):
    r""":math:`\varepsilon = (\alpha v + \sigma x)/(\alpha^2 + \sigma^2)`."""
    return (alpha * v + sigma * x) / (alpha * alpha + sigma * sigma)


def x0_from_v_at(x, v, alpha, sigma):
    r""":math:`x_0 = (\alpha x - \sigma v)/(\alpha^2 + \sigma^2)`."""
    return (alpha * x - sigma * v) / (alpha * alpha + sigma * sigma)


def velocity_from_eps_at(x, eps, alpha, sigma, d_alpha, d_sigma):
    r""":math:`\dot x = \dot\alpha\,\hat x_0 + \dot\sigma\,\varepsilon`, :math:`\hat x_0 = (x - \sigma\varepsilon)/\alpha`."""
    return d_alpha * x0_from_eps_at(x, eps, alpha, sigma) + d_sigma * eps


def velocity_from_x0_at(x, x0, alpha, sigma, d_alpha, d_sigma):
    r""":math:`\dot x = \dot\alpha x_0 + \dot\sigma\,(x - \alpha x_0)/\sigma`."""
    return d_alpha * x0 + d_sigma * eps_from_x0_at(x, x0, alpha, sigma)


def eps_from_velocity_at(x, vel, alpha, sigma, d_alpha, d_sigma):
    r""":math:`\varepsilon = (\alpha\dot x - \dot\alpha x)/(\alpha\dot\sigma - \dot\alpha\sigma)`."""
    return (alpha * vel - d_alpha * x) / (alpha * d_sigma - d_alpha * sigma)


def x0_from_velocity_at(x, vel, alpha, sigma, d_alpha, d_sigma):
    r""":math:`x_0 = (\dot\sigma x - \sigma\dot x)/(\alpha\dot\sigma - \dot\alpha\sigma)`."""
    return (d_sigma * x - sigma * vel) / (alpha * d_sigma - d_alpha * sigma)


def flow_time(t: Time) -> Time:
    r"""Diffusion time (data at 0) to flow-matching time (noise at 0): :math:`u = 1 - t`."""
    return 1 - t


def diffusion_time(u: Time) -> Time:
    r"""Flow-matching time to diffusion time: :math:`t = 1 - u` (the inverse of :func:`flow_time`)."""
    return 1 - u


# ---------------------------------------------------------------------------------------------
# the abstraction


class GaussianPath(abc.ABC):
    r"""A Gaussian path :math:`x_t = \alpha(t) x_0 + \sigma(t)\varepsilon` on :math:`[t_{\min}, t_{\max}]`.

    Subclasses give :meth:`_alpha`, :meth:`_sigma`, :meth:`_d_alpha`, :meth:`_d_sigma` on a validated
    floating tensor; everything else is derived here (subclasses may override a derived quantity with a
    closed form that is more accurate or cheaper, e.g. :math:`(f, g^2) = (-\beta/2, \beta)` for VP paths in :meth:`_f_g2`).

    Attributes:
        t_min, t_max: the time interval.
    """

    t_min: float = 0.0
    t_max: float = 1.0

    # -- what a path is -------------------------------------------------------------------------
    @abc.abstractmethod
    def _alpha(self, t: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def _sigma(self, t: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def _d_alpha(self, t: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def _d_sigma(self, t: torch.Tensor) -> torch.Tensor: ...

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_")
                           and k not in ("t_min", "t_max") and isinstance(v, int | float))
        return f"{type(self).__name__}({params})"

    # -- time -----------------------------------------------------------------------------------
    def time(self, t: Time, name: str = "t") -> torch.Tensor:
        """``t`` as a floating tensor, checked to lie in ``[t_min, t_max]`` (on the host only)."""
        tt = _tensor(name, t)
        if tt.device.type == "cpu":
            bad = ~((tt >= self.t_min) & (tt <= self.t_max))  # NaN is bad too
            if bool(bad.any()):
                raise ValueError(f"{name} must lie in [t_min, t_max] = [{self.t_min}, {self.t_max}], got {t}")
        return tt

    # -- the schedule ---------------------------------------------------------------------------
    def alpha(self, t: Time) -> torch.Tensor:
        r""":math:`\alpha(t)`, the signal scale; shape of ``t``."""
        return self._alpha(self.time(t))

    def sigma(self, t: Time) -> torch.Tensor:
        r""":math:`\sigma(t)`, the noise standard deviation; shape of ``t``."""
        return self._sigma(self.time(t))

    def d_alpha(self, t: Time) -> torch.Tensor:
        r""":math:`\dot\alpha(t) = \mathrm{d}\alpha/\mathrm{d}t`."""
        return self._d_alpha(self.time(t))

    def d_sigma(self, t: Time) -> torch.Tensor:
        r""":math:`\dot\sigma(t) = \mathrm{d}\sigma/\mathrm{d}t`."""
        return self._d_sigma(self.time(t))

    def lam(self, t: Time) -> torch.Tensor:
        r""":math:`\lambda(t) = \log(\alpha/\sigma)`, half the log signal-to-noise ratio (DPM-Solver's clock);
        decreasing in :math:`t`, :math:`+\infty` where :math:`\sigma = 0`."""
        t = self.time(t)
        return self._alpha(t).log() - self._sigma(t).log()

    def log_snr(self, t: Time) -> torch.Tensor:
        r""":math:`\log \mathrm{SNR}(t) = \log(\alpha^2/\sigma^2) = 2\lambda(t)`."""
        return 2 * self.lam(t)

    def t_of_lam(self, lam: Time) -> torch.Tensor:
        r"""The time :math:`t` with :math:`\lambda(t) = ` ``lam`` (the inverse of :meth:`lam`), shape of ``lam``.

        Closed form where the subclass has one, else a vectorised bisection on the monotone :math:`\lambda`
        (60 halvings of :math:`[t_{\min}, t_{\max}]`: below float64 resolution of the interval).
        ``lam`` must lie in :math:`[\lambda(t_{\max}), \lambda(t_{\min})]`.
        """
        ll = _tensor("lam", lam)
        lo = self.lam(torch.tensor(self.t_max, dtype=torch.float64)).item()
        hi = self.lam(torch.tensor(self.t_min, dtype=torch.float64)).item()
        if ll.device.type == "cpu" and bool((~((ll >= lo) & (ll <= hi))).any()):
            raise ValueError(f"lam must lie in [lam(t_max), lam(t_min)] = [{lo}, {hi}], got {lam}")
        t = self._t_of_lam(ll)
        return t.clamp(self.t_min, self.t_max)

    def _t_of_lam(self, lam: torch.Tensor) -> torch.Tensor:
        lo = torch.full_like(lam, self.t_min)  # lam(lo) >= lam
        hi = torch.full_like(lam, self.t_max)  # lam(hi) <= lam
        for _ in range(60):
            mid = (lo + hi) / 2
            above = (self._alpha(mid).log() - self._sigma(mid).log()) > lam  # mid is too early
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        return (lo + hi) / 2

    # -- the forward process --------------------------------------------------------------------
    def sample(self, x0: torch.Tensor, t: Time, eps: torch.Tensor) -> torch.Tensor:
        r""":math:`x_t = \alpha(t) x_0 + \sigma(t)\varepsilon`; ``x0`` and ``eps`` of the same shape."""
        _same_shape(x0=x0, eps=eps)
        t = self.time(t)
        return _against(self._alpha(t), x0) * x0 + _against(self._sigma(t), x0) * eps

    # -- conversions ----------------------------------------------------------------------------
    def _coefs(self, x: torch.Tensor, t: Time, *names: str) -> list[torch.Tensor]:
        tt = self.time(t)
        fns = {"alpha": self._alpha, "sigma": self._sigma, "d_alpha": self._d_alpha, "d_sigma": self._d_sigma}
        return [_against(fns[n](tt), x) for n in names]

    def x0_from_eps(self, x: torch.Tensor, eps: torch.Tensor, t: Time) -> torch.Tensor:
        r""":math:`x_0 = (x - \sigma\varepsilon)/\alpha`."""
        _same_shape(x=x, eps=eps)
        return x0_from_eps_at(x, eps, *self._coefs(x, t, "alpha", "sigma"))

    def eps_from_x0(self, x: torch.Tensor, x0: torch.Tensor, t: Time) -> torch.Tensor:
        r""":math:`\varepsilon = (x - \alpha x_0)/\sigma`."""
        _same_shape(x=x, x0=x0)
        return eps_from_x0_at(x, x0, *self._coefs(x, t, "alpha", "sigma"))

    def score_from_eps(self, eps: torch.Tensor, t: Time) -> torch.Tensor:
        r""":math:`\nabla_x \log p_t = -\varepsilon/\sigma` (Tweedie: the score is minus the expected noise over
        :math:`\sigma`)."""
        _check_tensor("eps", eps)
        return score_from_eps_at(eps, *self._coefs(eps, t, "sigma"))

    def eps_from_score(self, score: torch.Tensor, t: Time) -> torch.Tensor:
        r""":math:`\varepsilon = -\sigma \nabla_x\log p_t`."""
        _check_tensor("score", score)
        return eps_from_score_at(score, *self._coefs(score, t, "sigma"))

    def v_from_eps(self, x: torch.Tensor, eps: torch.Tensor, t: Time) -> torch.Tensor:
        r""":math:`v = \alpha\varepsilon - \sigma x_0 = ((\alpha^2 + \sigma^2)\varepsilon - \sigma x)/\alpha`
        (Salimans and Ho; :math:`\alpha^2 + \sigma^2 = 1` on VP paths)."""
        _same_shape(x=x, eps=eps)
        return v_from_eps_at(x, eps, *self._coefs(x, t, "alpha", "sigma"))

    def eps_from_v(self, x: torch.Tensor, v: torch.Tensor, t: Time) -> torch.Tensor:
        r""":math:`\varepsilon = (\alpha v + \sigma x)/(\alpha^2 + \sigma^2)`."""
        _same_shape(x=x, v=v)
        return eps_from_v_at(x, v, *self._coefs(x, t, "alpha", "sigma"))

    def x0_from_v(self, x: torch.Tensor, v: torch.Tensor, t: Time) -> torch.Tensor:
        r""":math:`x_0 = (\alpha x - \sigma v)/(\alpha^2 + \sigma^2)`."""
        _same_shape(x=x, v=v)
        return x0_from_v_at(x, v, *self._coefs(x, t, "alpha", "sigma"))

    def velocity_from_eps(self, x: torch.Tensor, eps: torch.Tensor, t: Time) -> torch.Tensor:
        r"""The probability-flow velocity in diffusion time, :math:`\mathrm{d}x/\mathrm{d}t = \dot\alpha\hat x_0 + \dot\sigma\hat\varepsilon
        = f x + (\dot\sigma - f\sigma)\hat\varepsilon`, :math:`f = \dot\alpha/\alpha`; equal to
        :math:`f x - \tfrac{g^2}{2}\nabla\log p_t` (:meth:`sde_drift` with ``lam_noise = 0``)."""
        _same_shape(x=x, eps=eps)
        return velocity_from_eps_at(x, eps, *self._coefs(x, t, *_ALL))

    def eps_from_velocity(self, x: torch.Tensor, vel: torch.Tensor, t: Time) -> torch.Tensor:
        r""":math:`\varepsilon = (\alpha\,\dot x - \dot\alpha x)/(\alpha\dot\sigma - \dot\alpha\sigma)`, solving
        :math:`x = \alpha x_0 + \sigma\varepsilon`, :math:`\dot x = \dot\alpha x_0 + \dot\sigma\varepsilon`
        (defined where :math:`\alpha = 0` too, e.g. rectified flow at :math:`t = 1`)."""
        _same_shape(x=x, vel=vel)
        return eps_from_velocity_at(x, vel, *self._coefs(x, t, *_ALL))

    def x0_from_velocity(self, x: torch.Tensor, vel: torch.Tensor, t: Time) -> torch.Tensor:
        r""":math:`x_0 = (\dot\sigma x - \sigma\dot x)/(\alpha\dot\sigma - \dot\alpha\sigma)` (the same 2x2 system)."""
        _same_shape(x=x, vel=vel)
        return x0_from_velocity_at(x, vel, *self._coefs(x, t, *_ALL))

    def velocity_from_x0(self, x: torch.Tensor, x0: torch.Tensor, t: Time) -> torch.Tensor:
        r""":math:`\dot x = \dot\alpha x_0 + \dot\sigma (x - \alpha x_0)/\sigma`."""
        _same_shape(x=x, x0=x0)
        return velocity_from_x0_at(x, x0, *self._coefs(x, t, *_ALL))

    def score_from_x0(self, x: torch.Tensor, x0: torch.Tensor, t: Time) -> torch.Tensor:
        r""":math:`\nabla_x\log\mathcal{N}(x; \alpha x_0, \sigma^2 I) = -(x - \alpha x_0)/\sigma^2`."""
        _same_shape(x=x, x0=x0)
        return score_from_x0_at(x, x0, *self._coefs(x, t, "alpha", "sigma"))

    def convert(self, pred: torch.Tensor, src: str, dst: str, x: torch.Tensor, t: Time) -> torch.Tensor:
        """Convert a prediction ``pred`` of kind ``src`` at ``(x, t)`` into kind ``dst``.

        Kinds: ``"eps"``, ``"x0"``, ``"score"``, ``"v"``, ``"velocity"`` (see the module docstring).
        The route goes through ``"eps"`` except for the direct pairs between ``"x0"`` and ``"velocity"``.
        """
        for name, kind in (("src", src), ("dst", dst)):
            if kind not in PARAMETRISATIONS:
                raise ValueError(f"{name} must be one of {PARAMETRISATIONS}, got {kind!r}")
        _same_shape(pred=pred, x=x)
        if src == dst:
            return pred
        if (src, dst) == ("x0", "velocity"):
            return self.velocity_from_x0(x, pred, t)
        if (src, dst) == ("velocity", "x0"):
            return self.x0_from_velocity(x, pred, t)
        to_eps = {"eps": lambda: pred, "x0": lambda: self.eps_from_x0(x, pred, t),
                  "score": lambda: self.eps_from_score(pred, t), "v": lambda: self.eps_from_v(x, pred, t),
                  "velocity": lambda: self.eps_from_velocity(x, pred, t)}
        eps = to_eps[src]()
        from_eps = {"eps": lambda: eps, "x0": lambda: self.x0_from_eps(x, eps, t),
                    "score": lambda: self.score_from_eps(eps, t), "v": lambda: self.v_from_eps(x, eps, t),
                    "velocity": lambda: self.velocity_from_eps(x, eps, t)}
        return from_eps[dst]()

    # -- SDEs with these marginals ----------------------------------------------------------------
    def drift_coef(self, t: Time) -> torch.Tensor:
        r""":math:`f(t) = \dot\alpha/\alpha`: the forward SDE's drift is :math:`f(t)\, x`."""
        return self._f_g2(self.time(t))[0]

    def g2(self, t: Time) -> torch.Tensor:
        r""":math:`g(t)^2 = 2\sigma\dot\sigma - 2 f\sigma^2 = 2\sigma^2\,\mathrm{d}\log(\sigma/\alpha)/\mathrm{d}t`,
        so that :math:`\mathrm{d}\sigma^2/\mathrm{d}t = 2 f\sigma^2 + g^2` (the forward SDE has kernel
        :math:`\mathcal{N}(\alpha x_0, \sigma^2 I)`)."""
        return self._f_g2(self.time(t))[1]

    def _f_g2(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(f(t), g^2(t))`` on a validated time; subclasses with closed forms override this one method."""
        a, s, da, ds = self._alpha(t), self._sigma(t), self._d_alpha(t), self._d_sigma(t)
        f = da / a
        return f, 2 * s * ds - 2 * f * s * s

    def diffusion(self, t: Time) -> torch.Tensor:
        r""":math:`g(t) = \sqrt{g^2(t)}`."""
        return self.g2(t).sqrt()

    def sde_drift(self, x: torch.Tensor, t: Time, score: torch.Tensor, lam_noise: float = 1.0) -> torch.Tensor:
        r"""The drift of the reverse-time dynamics with noise level ``lam_noise`` :math:`= \lambda \ge 0`:

        .. math::
            \mathrm{d}x = \Bigl[f(t)\, x - \frac{1 + \lambda^2}{2}\, g(t)^2\, \nabla\log p_t(x)\Bigr]\mathrm{d}t
            + \lambda\, g(t)\,\mathrm{d}\bar W, \qquad \mathrm{d}t < 0,

        whose marginals are the path's :math:`p_t` for every :math:`\lambda` (the Fokker-Planck equation of
        the family does not depend on :math:`\lambda`). :math:`\lambda = 0`: the probability flow ODE
        (:meth:`velocity_from_eps`); :math:`\lambda = 1`: the reverse SDE :math:`f x - g^2\nabla\log p_t`.
        The diffusion coefficient is :meth:`sde_diffusion`.

        Args:
            x: state, shape (B, ...).
            t: time(s).
            score: :math:`\nabla\log p_t(x)`, shape of ``x``.
            lam_noise: :math:`\lambda \ge 0`.
        """
        _same_shape(x=x, score=score)
        if isinstance(lam_noise, bool) or not isinstance(lam_noise, int | float) or not (
                math.isfinite(lam_noise) and lam_noise >= 0):
            raise ValueError(f"lam_noise must be a finite number >= 0, got {lam_noise!r}")
        f, g2 = (_against(c, x) for c in self._f_g2(self.time(t)))
        return f * x - (1 + lam_noise**2) / 2 * g2 * score

    def sde_diffusion(self, t: Time, lam_noise: float = 1.0) -> torch.Tensor:
        r""":math:`\lambda\, g(t)`, the diffusion coefficient that goes with :meth:`sde_drift`."""
        if isinstance(lam_noise, bool) or not isinstance(lam_noise, int | float) or not (
                math.isfinite(lam_noise) and lam_noise >= 0):
            raise ValueError(f"lam_noise must be a finite number >= 0, got {lam_noise!r}")
        return lam_noise * self.diffusion(t)


# ---------------------------------------------------------------------------------------------
# variance preserving paths


class _VP(GaussianPath):
    r"""Variance preserving: :math:`\alpha = \sqrt{\bar\alpha(t)}`, :math:`\sigma = \sqrt{1 - \bar\alpha(t)}`, with
    :math:`\beta(t) = -\mathrm{d}\log\bar\alpha/\mathrm{d}t`; then :math:`f = -\beta/2` and :math:`g^2 = \beta`."""

    @abc.abstractmethod
    def _log_alphabar(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log alphabar(t)`` and ``beta(t)``."""

    def alphabar(self, t: Time) -> torch.Tensor:
        r""":math:`\bar\alpha(t) = \alpha(t)^2`."""
        return self._log_alphabar(self.time(t))[0].exp()

    def beta(self, t: Time) -> torch.Tensor:
        r""":math:`\beta(t) = -\mathrm{d}\log\bar\alpha/\mathrm{d}t`."""
        return self._log_alphabar(self.time(t))[1]

    def _alpha(self, t):
        return (0.5 * self._log_alphabar(t)[0]).exp()

    def _sigma(self, t):
        return (-torch.expm1(self._log_alphabar(t)[0])).sqrt()  # sqrt(1 - alphabar), accurate near t = 0

    def _d_alpha(self, t):
        L, beta = self._log_alphabar(t)
        return -0.5 * beta * (0.5 * L).exp()

    def _d_sigma(self, t):
        L, beta = self._log_alphabar(t)
        return 0.5 * beta * L.exp() / (-torch.expm1(L)).sqrt()

    def _f_g2(self, t):
        beta = self._log_alphabar(t)[1]
        return -0.5 * beta, beta

    def _lam_from_L(self, L: torch.Tensor) -> torch.Tensor:
        return 0.5 * (L - torch.log(-torch.expm1(L)))

    def lam(self, t: Time) -> torch.Tensor:
        return self._lam_from_L(self._log_alphabar(self.time(t))[0])


class VPLinear(_VP):
    r"""The VP SDE's path (:class:`gencode.sde.VPSDE`): :math:`\beta(t) = \beta_{\min} + (\beta_{\max} - \beta_{\min}) t/T`,
    :math:`\bar\alpha = e^{-B(t)}`, :math:`B(t) = \beta_{\min} t + (\beta_{\max} - \beta_{\min}) t^2/(2T)`.

    Args:
        beta_min, beta_max: :math:`0 < \beta_{\min} \le \beta_{\max}`.
        T: the final time (``t_max``), default 1.

    Example:
        >>> p = VPLinear(0.1, 20.0)
        >>> round(float(p.alpha(0.5) ** 2 + p.sigma(0.5) ** 2), 12)
        1.0
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0) -> None:
        self.beta_min, self.beta_max = _ordered("beta_min", beta_min, "beta_max", beta_max, strict=False)
        self.T = self.t_max = _positive("T", T)
        self.t_min = 0.0

    def integrated_beta(self, t: Time) -> torch.Tensor:
        r""":math:`B(t) = \int_0^t \beta`."""
        return self._B(self.time(t))

    def _B(self, t):
        return self.beta_min * t + (self.beta_max - self.beta_min) * t**2 / (2 * self.T)

    def _log_alphabar(self, t):
        return -self._B(t), self.beta_min + (self.beta_max - self.beta_min) * t / self.T

    def _alpha(self, t):
        return torch.exp(-0.5 * self._B(t))

    def _sigma(self, t):
        return (-torch.expm1(-self._B(t))).sqrt()

    def _t_of_lam(self, lam):
        # e^{B} = 1 + e^{-2 lam}; solve the quadratic B(t) = B in its cancellation-free form
        B = torch.nn.functional.softplus(-2 * lam)
        k = (self.beta_max - self.beta_min) / self.T
        return 2 * B / (self.beta_min + (self.beta_min**2 + 2 * k * B).sqrt())


class SubVP(VPLinear):
    r"""The sub-VP SDE's path (Song et al. 2021, eq. 29): :math:`\alpha = e^{-B/2}`, :math:`\sigma = 1 - e^{-B}`
    (the variance is :math:`(1 - e^{-B})^2 \le 1 - e^{-B}`), :math:`f = -\beta/2`,
    :math:`g^2 = \beta(1 - e^{-2B})`.

    Example:
        >>> p = SubVP(0.1, 20.0)
        >>> abs(float(p.g2(0.3) - p.beta(0.3) * (1 - p.alpha(0.3) ** 4))) < 1e-12
        True
    """

    def _sigma(self, t):
        return -torch.expm1(-self._B(t))

    def _d_sigma(self, t):
        L, beta = self._log_alphabar(t)
        return beta * L.exp()

    def _f_g2(self, t):
        L, beta = self._log_alphabar(t)
        return -0.5 * beta, beta * -torch.expm1(2 * L)

    def lam(self, t: Time) -> torch.Tensor:
        return GaussianPath.lam(self, t)

    def _t_of_lam(self, lam):
        return GaussianPath._t_of_lam(self, lam)


class VPCosine(_VP):
    r"""The cosine schedule in continuous time (Nichol and Dhariwal 2021):
    :math:`\bar\alpha(t) = \cos^2\phi(t)/\cos^2\phi(0)`, :math:`\phi(t) = \frac{t + s}{1 + s}\frac{\pi}{2}`,
    :math:`t \in [0, 1]`; :math:`\beta = \pi\tan\phi/(1 + s)` (infinite at :math:`t = 1`, where :math:`\alpha = 0`).

    Args:
        s: the offset, >= 0.

    Example:
        >>> p = VPCosine()
        >>> float(p.alpha(0.0)), abs(float(p.alpha(1.0))) < 1e-15
        (1.0, True)
    """

    def __init__(self, s: float = 0.008) -> None:
        if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or s < 0:
            raise ValueError(f"s must be a finite number >= 0, got {s!r}")
        self.s = float(s)
        self.t_min, self.t_max = 0.0, 1.0
        self._phi0 = self.s / (1 + self.s) * math.pi / 2

    def _phi(self, t):
        return (t + self.s) / (1 + self.s) * math.pi / 2

    def _log_alphabar(self, t):
        phi = self._phi(t)
        return 2 * (phi.cos() / math.cos(self._phi0)).log(), math.pi / (1 + self.s) * phi.tan()

    def _alpha(self, t):
        return self._phi(t).cos() / math.cos(self._phi0)

    def _d_alpha(self, t):
        return -self._phi(t).sin() * (math.pi / (2 * (1 + self.s))) / math.cos(self._phi0)

    def _sigma(self, t):
        # 1 - cos^2(phi)/cos^2(phi0) = sin(phi - phi0) sin(phi + phi0)/cos^2(phi0), free of cancellation near t = 0
        phi = self._phi(t)
        return ((phi - self._phi0).sin() * (phi + self._phi0).sin()).clamp(min=0).sqrt() / math.cos(self._phi0)

    def _d_sigma(self, t):
        return -self._alpha(t) * self._d_alpha(t) / self._sigma(t)

    def _t_of_lam(self, lam):
        a = torch.sigmoid(2 * lam).sqrt() * math.cos(self._phi0)  # cos(phi) = sqrt(alphabar) cos(phi0)
        return torch.arccos(a) * 2 * (1 + self.s) / math.pi - self.s


class VPDiscrete(_VP):
    r"""DDPM's discrete schedule in continuous time: with :math:`u = tT`, :math:`\log\bar\alpha` is the cubic
    Hermite interpolant of the knots :math:`(k, \log\bar\alpha_k)`, :math:`k = 0, \dots, T`, with
    central-difference slopes (one-sided at the ends). At :math:`t = k/T` the path is the schedule's
    :math:`q(x_k \mid x_0)`, and :math:`\beta(t) = -\mathrm{d}\log\bar\alpha/\mathrm{d}t` is continuous (a
    piecewise-constant :math:`\beta` would make an ODE's right-hand side jump at every step and cost
    solvers their order). Coefficients are computed in the schedule's dtype.

    Args:
        schedule: a :class:`gencode.diffusion.NoiseSchedule`.

    Example:
        >>> from gencode.diffusion import NoiseSchedule
        >>> p = VPDiscrete(NoiseSchedule.linear(1000))
        >>> abs(float(p.alphabar(0.3)) - float(p.schedule.alphas_cumprod[300])) < 1e-15
        True
    """

    def __init__(self, schedule) -> None:
        from .diffusion import NoiseSchedule

        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        self.schedule = schedule
        self.t_min, self.t_max = 0.0, 1.0
        L = schedule.alphas_cumprod.log()  # (T + 1,)
        self.log_alphas_cumprod = L
        # slopes per step at the knots: central differences, one-sided at the ends
        self.slopes = torch.cat([L[1:2] - L[:1], (L[2:] - L[:-2]) / 2, L[-1:] - L[-2:-1]]) if self.T > 1 \
            else torch.cat([L[1:] - L[:1]] * 2)

    @property
    def T(self) -> int:
        return self.schedule.T

    def time(self, t: Time, name: str = "t") -> torch.Tensor:
        return super().time(t, name).to(self.log_alphas_cumprod.dtype)

    def _hermite(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log alphabar(t)`` and its derivative in ``u = t T`` (cubic Hermite on each step)."""
        L = self.log_alphas_cumprod.to(device=t.device, dtype=t.dtype)  # (T + 1,)
        m = self.slopes.to(device=t.device, dtype=t.dtype)              # (T + 1,)
        u = t * self.T
        i = u.floor().clamp(0, self.T - 1).long()
        w = u - i
        h00, h10, h01, h11 = 2 * w**3 - 3 * w**2 + 1, w**3 - 2 * w**2 + w, 3 * w**2 - 2 * w**3, w**3 - w**2
        value = h00 * L[i] + h10 * m[i] + h01 * L[i + 1] + h11 * m[i + 1]
        slope = ((6 * w**2 - 6 * w) * (L[i] - L[i + 1]) + (3 * w**2 - 4 * w + 1) * m[i]
                 + (3 * w**2 - 2 * w) * m[i + 1])
        return value, slope

    def _log_alphabar(self, t):
        value, slope = self._hermite(t)
        return value, -self.T * slope

    def _alpha(self, t):
        return self._hermite(t)[0].exp().sqrt()

    def _sigma(self, t):
        return (1 - self._hermite(t)[0].exp()).sqrt()


# ---------------------------------------------------------------------------------------------
# variance exploding paths and the flow-matching path


class VE(GaussianPath):
    r"""The VE SDE's path (:class:`gencode.sde.VESDE`): :math:`\alpha = 1` and
    :math:`\sigma(t)^2 = \sigma_g(t)^2 - \sigma_{\min}^2`, :math:`\sigma_g(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^{t/T}`
    (the SDE starts at the data, so its variance at :math:`t` is :math:`\sigma_g(t)^2 - \sigma_g(0)^2`);
    :math:`f = 0`, :math:`g^2 = \mathrm{d}\sigma_g^2/\mathrm{d}t = 2\sigma_g^2\log(\sigma_{\max}/\sigma_{\min})/T`.

    Args:
        sigma_min, sigma_max: :math:`0 < \sigma_{\min} < \sigma_{\max}`.
        T: the final time, default 1.

    Example:
        >>> float(VE(0.01, 10.0).sigma(0.0))
        0.0
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, T: float = 1.0) -> None:
        self.sigma_min, self.sigma_max = _ordered("sigma_min", sigma_min, "sigma_max", sigma_max, strict=True)
        self.T = self.t_max = _positive("T", T)
        self.t_min = 0.0
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def noise_level(self, t: Time) -> torch.Tensor:
        r""":math:`\sigma_g(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^{t/T}` (the SDE's "sigma(t)")."""
        return self._level(self.time(t))

    def _level(self, t):
        return self.sigma_min * torch.exp(self._log_ratio * t / self.T)

    def _alpha(self, t):
        return torch.ones_like(t)

    def _d_alpha(self, t):
        return torch.zeros_like(t)

    def _sigma(self, t):
        return (self._level(t) ** 2 - self.sigma_min**2).clamp(min=0).sqrt()

    def _d_sigma(self, t):
        return self._level(t) ** 2 * (self._log_ratio / self.T) / self._sigma(t)

    def _f_g2(self, t):
        return torch.zeros_like(t), 2 * self._log_ratio / self.T * self._level(t) ** 2

    def diffusion(self, t: Time) -> torch.Tensor:
        return self._level(self.time(t)) * math.sqrt(2 * self._log_ratio / self.T)

    def _t_of_lam(self, lam):
        # sigma^2 = e^{-2 lam} = sigma_min^2 (r^{2t/T} - 1)
        return self.T * torch.log1p(torch.exp(-2 * lam) / self.sigma_min**2) / (2 * self._log_ratio)


class RectifiedFlow(GaussianPath):
    r"""The flow-matching (rectified flow, linear interpolant) path in diffusion time: :math:`\alpha = 1 - t`,
    :math:`\sigma = t`, :math:`t \in [0, 1]`. In flow time :math:`u = 1 - t` it is
    :math:`x_u = u\, x_1 + (1 - u)\, x_0` with noise :math:`x_0`, and the flow-matching velocity is
    :math:`\mathrm{d}x/\mathrm{d}u = -` :meth:`velocity_from_eps`.

    Example:
        >>> p = RectifiedFlow()
        >>> float(p.alpha(0.25)), float(p.sigma(0.25)), round(float(p.t_of_lam(p.lam(0.25))), 12)
        (0.75, 0.25, 0.25)
    """

    def __init__(self) -> None:
        self.t_min, self.t_max = 0.0, 1.0

    def _alpha(self, t):
        return 1 - t

    def _sigma(self, t):
        return t

    def _d_alpha(self, t):
        return torch.full_like(t, -1.0)

    def _d_sigma(self, t):
        return torch.ones_like(t)

    def _t_of_lam(self, lam):
        return torch.sigmoid(-lam)  # (1 - t)/t = e^lam


class EDM(GaussianPath):
    r"""EDM's path in sigma-time (Karras et al. 2022): :math:`\alpha = 1`, :math:`\sigma(t) = t`,
    :math:`t \in [\sigma_{\min}, \sigma_{\max}]`; :math:`f = 0`, :math:`g^2 = 2t`, and the probability flow ODE
    is :math:`\mathrm{d}x/\mathrm{d}t = (x - D(x, t))/t` with the denoiser :math:`D = \hat x_0`.

    Args:
        sigma_min, sigma_max: :math:`0 < \sigma_{\min} < \sigma_{\max}`.

    Example:
        >>> p = EDM(0.002, 80.0)
        >>> float(p.sigma(1.5)), float(p.t_of_lam(p.lam(1.5)))
        (1.5, 1.5)
    """

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0) -> None:
        self.sigma_min, self.sigma_max = _ordered("sigma_min", sigma_min, "sigma_max", sigma_max, strict=True)
        self.t_min, self.t_max = self.sigma_min, self.sigma_max

    def _alpha(self, t):
        return torch.ones_like(t)

    def _sigma(self, t):
        return t

    def _d_alpha(self, t):
        return torch.zeros_like(t)

    def _d_sigma(self, t):
        return torch.ones_like(t)

    def _t_of_lam(self, lam):
        return torch.exp(-lam)


# ---------------------------------------------------------------------------------------------
# preconditioning


def edm_preconditioning(sigma: Time, sigma_data: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""EDM's network preconditioning (Karras et al. 2022, Table 1), for
    :math:`D(x, \sigma) = c_{\mathrm{skip}} x + c_{\mathrm{out}} F(c_{\mathrm{in}} x, c_{\mathrm{noise}})`:

    .. math::
        c_{\mathrm{skip}} = \frac{\sigma_d^2}{\sigma^2 + \sigma_d^2},\quad
        c_{\mathrm{out}} = \frac{\sigma\sigma_d}{\sqrt{\sigma^2 + \sigma_d^2}},\quad
        c_{\mathrm{in}} = \frac{1}{\sqrt{\sigma^2 + \sigma_d^2}},\quad
        c_{\mathrm{noise}} = \tfrac14\log\sigma.

    :math:`c_{\mathrm{in}}` gives the network's input unit variance, and :math:`c_{\mathrm{skip}}`,
    :math:`c_{\mathrm{out}}` give its training target :math:`(x_0 - c_{\mathrm{skip}} x)/c_{\mathrm{out}}` unit
    variance, for data of variance :math:`\sigma_d^2` per coordinate.

    Args:
        sigma: noise level(s) > 0, a number or a tensor.
        sigma_data: :math:`\sigma_d > 0`.

    Returns:
        ``(c_skip, c_out, c_in, c_noise)``, each of the shape of ``sigma``.
    """
    sd = _positive("sigma_data", sigma_data)
    s = _tensor("sigma", sigma)
    if s.device.type == "cpu" and not bool((s > 0).all()):
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return sd**2 / (s**2 + sd**2), s * sd / (s**2 + sd**2).sqrt(), (s**2 + sd**2).rsqrt(), s.log() / 4


def consistency_preconditioning(t: Time, sigma_data: float, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The consistency model's :math:`c_{\mathrm{skip}}, c_{\mathrm{out}}` (Song et al. 2023, Appendix C):
    EDM's shifted so that :math:`f(x, \epsilon) = x` exactly,

    .. math::
        c_{\mathrm{skip}}(t) = \frac{\sigma_d^2}{(t - \epsilon)^2 + \sigma_d^2}, \qquad
        c_{\mathrm{out}}(t) = \frac{\sigma_d (t - \epsilon)}{\sqrt{\sigma_d^2 + t^2}},

    i.e. :math:`c_{\mathrm{skip}}(t)` is EDM's at :math:`\sigma = t - \epsilon` and :math:`c_{\mathrm{out}}(t)` is
    :math:`(t - \epsilon)\,\sigma_d\, c_{\mathrm{in}}(t)` with EDM's :math:`c_{\mathrm{in}}`; :math:`c_{\mathrm{in}}`
    and :math:`c_{\mathrm{noise}}` are EDM's at :math:`\sigma = t`.

    Returns:
        ``(c_skip, c_out)``, each of the shape of ``t``.
    """
    sd = _positive("sigma_data", sigma_data)
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    t = _tensor("t", t)
    return sd**2 / ((t - eps) ** 2 + sd**2), sd * (t - eps) / (sd**2 + t**2).sqrt()
