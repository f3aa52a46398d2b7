r"""Fast deterministic samplers for Gaussian paths: Euler, DDIM, DPM-Solver-1/2 and EDM's Heun.

Every sampler integrates the probability flow ODE of a :class:`gencode.paths.GaussianPath`
:math:`x_t = \alpha(t) x_0 + \sigma(t)\varepsilon` from ``t_start`` (noise) down to ``t_end`` (near the data), on a
grid of times given by the caller or built here. With :math:`\lambda = \log(\alpha/\sigma)` and
:math:`h = \lambda_t - \lambda_s > 0` for a step from :math:`s` to :math:`t < s` (``fast.variation_of_constants``):

* :func:`euler_step`: :math:`x_t = x_s + (t - s)\,\dot x(x_s, s)`, the velocity of ``fast.pf_lambda``;
* :func:`ddim_step`: :math:`x_t = \alpha_t \hat x_0 + \sigma_t \hat\varepsilon`, which is
* :func:`dpm_solver_1_step`: :math:`x_t = \frac{\alpha_t}{\alpha_s} x_s - \sigma_t (e^h - 1)\hat\varepsilon(x_s, s)`
  (``fast.dpm_solver_1``, ``fast.ddim_is_dpm1``);
* :func:`dpm_solver_2_step`: the midpoint in :math:`\lambda`, two evaluations, local error :math:`O(h^3)`
  (``fast.dpm2_local_error``);
* :func:`heun_step`: Heun's method on :math:`\mathrm{d}\bar x/\mathrm{d}\bar\sigma = (\bar x - D)/\bar\sigma`,
  :math:`\bar x = x/\alpha`, :math:`\bar\sigma = \sigma/\alpha` (``fast.denoiser_ode``; EDM's Algorithm 1 when
  :math:`\alpha = 1`).

A *predictor* is a callable ``model(x, t)`` with ``x`` of shape (B, ...) and ``t`` a 0-d float64 tensor on the host
(one time for the whole batch); it returns a prediction of kind ``prediction`` (``"eps"``, ``"x0"``, ``"score"``,
``"v"`` or ``"velocity"``, converted by :meth:`GaussianPath.convert`). :func:`oracle_predictor` gives the exact
noise predictor of Gaussian-mixture data, :func:`network_predictor` wraps a network ``net(x, t_batch)``.
Grids are built on the host in float64 and coefficients are cast to the data's device and dtype.

References:
    Lu, Zhou, Bao, Chen, Li, Zhu. DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model Sampling in
    Around 10 Steps. 2022. arXiv:2206.00927.
    Lu, Zhou, Bao, Chen, Li, Zhu. DPM-Solver++. 2022. arXiv:2211.01095.
    Zhang, Chen. Fast Sampling of Diffusion Models with Exponential Integrator. 2023. arXiv:2204.13902.
    Karras, Aittala, Aila, Laine. Elucidating the Design Space of Diffusion-Based Generative Models. 2022.
    arXiv:2206.00364.
    Song, Meng, Ermon. Denoising Diffusion Implicit Models. 2021. arXiv:2010.02502.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .consistency import karras_times
from .oracle import MixtureOracle
from .paths import PARAMETRISATIONS, GaussianPath

__all__ = ["METHODS", "SampleResult", "ddim_step", "dpm_solver_1_step", "dpm_solver_2_step", "dpm_solver_pp_1_step",
           "dpm_solver_pp_2_step",
           "euler_step",
           "gaussian_flow", "heun_step", "karras_grid", "lambda_grid", "network_predictor", "oracle_predictor",
           "sample", "steps_for_nfe"]

Predictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
METHODS = ("euler", "ddim", "dpm1", "dpm2", "dpmpp2", "heun")
_EVALS_PER_STEP = {"euler": 1, "ddim": 1, "dpm1": 1, "dpm2": 2, "dpmpp2": 2, "heun": 2}


# ---------------------------------------------------------------------------------------------
# checks and coefficients


def _check_path(path: GaussianPath) -> None:
    if not isinstance(path, GaussianPath):
        raise TypeError(f"path must be a GaussianPath, got {type(path).__name__}")


def _check_x(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor")
    if x.ndim < 1:
        raise ValueError(f"{name} must have a batch dimension, got shape {tuple(x.shape)}")


def _time(path: GaussianPath, name: str, value: float | torch.Tensor) -> torch.Tensor:
    """A host float64 0-d time inside the path's interval (``ValueError`` naming the argument)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be one time (a number or a 0-d tensor), got shape {tuple(value.shape)}")
        value = value.detach().to("cpu", torch.float64).reshape(())
    return path.time(value, name).to(torch.float64).reshape(())


def _pair(path: GaussianPath, s, t) -> tuple[torch.Tensor, torch.Tensor]:
    s, t = _time(path, "s", s), _time(path, "t", t)
    if not bool(t < s):
        raise ValueError(f"t must be < s (samplers step towards the data), got s={float(s)}, t={float(t)}")
    return s, t


def _midpoint(path: GaussianPath, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The time of lambda = (lambda_s + lambda_t)/2."""
    return path.t_of_lam((path.lam(s) + path.lam(t)) / 2).reshape(())


def _coef(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return c.to(device=x.device, dtype=x.dtype)


def _predict(model: Predictor, path: GaussianPath, x: torch.Tensor, t: torch.Tensor, prediction: str,
             want: str) -> torch.Tensor:
    out = model(x, t)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        raise ValueError(f"model must return a tensor of the shape of x {tuple(x.shape)}, "
                         f"got {getattr(out, 'shape', type(out).__name__)}")
    return path.convert(out, prediction, want, x, t)


# ---------------------------------------------------------------------------------------------
# one step each


def euler_step(path: GaussianPath, x: torch.Tensor, eps: torch.Tensor, s: float | torch.Tensor,
               t: float | torch.Tensor) -> torch.Tensor:
    r"""Euler's method in :math:`t`: :math:`x_t = x_s + (t - s)\,\bigl[\tfrac{\dot\alpha_s}{\alpha_s}x_s -
    \sigma_s\dot\lambda_s\hat\varepsilon\bigr]` (``fast.pf_lambda``). ``x``, ``eps``: shape (B, ...)."""
    _check_path(path)
    s, t = _pair(path, s, t)
    return x + _coef(t - s, x) * path.velocity_from_eps(x, eps, s)


def ddim_step(path: GaussianPath, x: torch.Tensor, eps: torch.Tensor, s: float | torch.Tensor,
              t: float | torch.Tensor) -> torch.Tensor:
    r"""DDIM with :math:`\eta = 0` on any Gaussian path: :math:`x_t = \alpha_t\hat x_0 + \sigma_t\hat\varepsilon`,
    :math:`\hat x_0 = (x_s - \sigma_s\hat\varepsilon)/\alpha_s` (Song, Meng, Ermon 2021, eq. 12)."""
    _check_path(path)
    s, t = _pair(path, s, t)
    x0 = path.x0_from_eps(x, eps, s)
    return _coef(path.alpha(t), x) * x0 + _coef(path.sigma(t), x) * eps


def dpm_solver_1_step(path: GaussianPath, x: torch.Tensor, eps: torch.Tensor, s: float | torch.Tensor,
                      t: float | torch.Tensor) -> torch.Tensor:
    r"""DPM-Solver-1 (``fast.dpm_solver_1``): :math:`x_t = \frac{\alpha_t}{\alpha_s}x_s - \sigma_t(e^h - 1)\hat\varepsilon`,
    :math:`h = \lambda_t - \lambda_s` (``expm1`` keeps small steps accurate). Needs :math:`\sigma_t > 0`."""
    _check_path(path)
    s, t = _pair(path, s, t)
    h = path.lam(t) - path.lam(s)
    if not bool(torch.isfinite(h)):
        raise ValueError(f"lambda must be finite at s and t (sigma > 0 and alpha > 0), got s={float(s)}, t={float(t)}")
    return _coef(path.alpha(t) / path.alpha(s), x) * x - _coef(path.sigma(t) * torch.expm1(h), x) * eps


def dpm_solver_2_step(path: GaussianPath, model: Predictor, x: torch.Tensor, s: float | torch.Tensor,
                      t: float | torch.Tensor, eps_s: torch.Tensor | None = None,
                      prediction: str = "eps", r: float | torch.Tensor | None = None) -> torch.Tensor:
    r"""DPM-Solver-2 (Lu et al. 2022, Algorithm 1, :math:`r = 1/2`; ``fast.dpm2_local_error``):

    .. math::
        u = \frac{\alpha_r}{\alpha_s}x_s - \sigma_r(e^{h/2} - 1)\hat\varepsilon(x_s, s), \qquad
        x_t = \frac{\alpha_t}{\alpha_s}x_s - \sigma_t(e^{h} - 1)\hat\varepsilon(u, r),

    with :math:`r` the time of :math:`\lambda_s + h/2` (:meth:`GaussianPath.t_of_lam`). Two evaluations of the
    model, one if ``eps_s`` (the prediction at ``(x, s)``) is given; ``r`` may be passed when known (the
    sampling loop inverts :math:`\lambda` for all midpoints at once).
    """
    _check_path(path)
    s, t = _pair(path, s, t)
    r = _midpoint(path, s, t) if r is None else _time(path, "r", r)
    if eps_s is None:
        eps_s = _predict(model, path, x, s, prediction, "eps")
    u = dpm_solver_1_step(path, x, eps_s, s, r)
    return dpm_solver_1_step(path, x, _predict(model, path, u, r, prediction, "eps"), s, t)


def dpm_solver_pp_1_step(path: GaussianPath, x: torch.Tensor, x0: torch.Tensor, s: float | torch.Tensor,
                         t: float | torch.Tensor) -> torch.Tensor:
    r"""DPM-Solver++ of first order (``fast.dpm_solver_pp_1``): :math:`x_t = \frac{\sigma_t}{\sigma_s}x_s -
    \alpha_t(e^{-h} - 1)\hat x_0`, the data prediction ``x0`` frozen; equal to DDIM. Needs :math:`\sigma_s > 0`."""
    _check_path(path)
    s, t = _pair(path, s, t)
    h = path.lam(t) - path.lam(s)
    if not bool(torch.isfinite(h)):
        raise ValueError(f"lambda must be finite at s and t, got s={float(s)}, t={float(t)}")
    return _coef(path.sigma(t) / path.sigma(s), x) * x - _coef(path.alpha(t) * torch.expm1(-h), x) * x0


def dpm_solver_pp_2_step(path: GaussianPath, model: Predictor, x: torch.Tensor, s: float | torch.Tensor,
                         t: float | torch.Tensor, prediction: str = "eps",
                         r: float | torch.Tensor | None = None) -> torch.Tensor:
    r"""DPM-Solver++(2S) (Lu et al. 2022b, Algorithm 1 with :math:`r = 1/2`): the midpoint method on the
    variation-of-constants formula written with the *data* prediction,
    :math:`x_t = \frac{\sigma_t}{\sigma_s}x_s + \sigma_t\int_{\lambda_s}^{\lambda_t} e^{\lambda}\hat x_0\,\mathrm{d}\lambda`:

    .. math::
        u = \frac{\sigma_r}{\sigma_s}x_s - \alpha_r(e^{-h/2} - 1)\hat x_0(x_s, s), \qquad
        x_t = \frac{\sigma_t}{\sigma_s}x_s - \alpha_t(e^{-h} - 1)\hat x_0(u, r).

    Its first-order version (:math:`\hat x_0` frozen at :math:`s`) is DDIM again. Two evaluations of the model;
    ``r`` (the time of :math:`\lambda_s + h/2`) may be passed when known.
    """
    _check_path(path)
    s, t = _pair(path, s, t)
    r = _midpoint(path, s, t) if r is None else _time(path, "r", r)
    u = dpm_solver_pp_1_step(path, x, _predict(model, path, x, s, prediction, "x0"), s, r)
    return dpm_solver_pp_1_step(path, x, _predict(model, path, u, r, prediction, "x0"), s, t)


def heun_step(path: GaussianPath, model: Predictor, x: torch.Tensor, s: float | torch.Tensor,
              t: float | torch.Tensor, prediction: str = "eps") -> torch.Tensor:
    r"""Heun's method on :math:`\mathrm{d}\bar x/\mathrm{d}\bar\sigma = (\bar x - D(x, t))/\bar\sigma` with
    :math:`\bar x = x/\alpha`, :math:`\bar\sigma = \sigma/\alpha` (``fast.denoiser_ode``; EDM's Algorithm 1 for
    :math:`\alpha = 1`, its "scaled" ODE otherwise). Two evaluations of the model."""
    _check_path(path)
    s, t = _pair(path, s, t)
    a_s, a_t = _coef(path.alpha(s), x), _coef(path.alpha(t), x)
    sb_s, sb_t = _coef(path.sigma(s) / path.alpha(s), x), _coef(path.sigma(t) / path.alpha(t), x)
    xbar = x / a_s
    d_s = (xbar - _predict(model, path, x, s, prediction, "x0")) / sb_s
    xbar_euler = xbar + (sb_t - sb_s) * d_s
    d_t = (xbar_euler - _predict(model, path, a_t * xbar_euler, t, prediction, "x0")) / sb_t
    return a_t * (xbar + (sb_t - sb_s) * (d_s + d_t) / 2)


# ---------------------------------------------------------------------------------------------
# grids and the sampling loop


def _steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    return steps


def lambda_grid(path: GaussianPath, steps: int, t_start: float, t_end: float) -> torch.Tensor:
    r"""``steps + 1`` times from ``t_start`` down to ``t_end``, uniform in :math:`\lambda` (DPM-Solver's
    "logSNR" grid); float64, host.

    Example:
        >>> from gencode.paths import VPLinear
        >>> path = VPLinear(0.1, 20.0)
        >>> steps = path.lam(lambda_grid(path, 4, 1.0, 1e-3)).diff()
        >>> bool(torch.allclose(steps, steps[0].expand(4)))
        True
    """
    _check_path(path)
    _steps(steps)
    s, t = _pair(path, t_start, t_end)
    lam = torch.linspace(float(path.lam(s)), float(path.lam(t)), steps + 1, dtype=torch.float64)
    if not bool(torch.isfinite(lam).all()):
        raise ValueError("lambda must be finite at t_start and t_end (alpha(t_start) > 0, sigma(t_end) > 0)")
    grid = path.t_of_lam(lam)
    grid[0], grid[-1] = s, t  # exact ends
    return grid


def karras_grid(path: GaussianPath, steps: int, t_start: float, t_end: float, rho: float = 7.0) -> torch.Tensor:
    r"""EDM's grid (Karras et al. 2022, eq. 5) in :math:`\bar\sigma = \sigma/\alpha = e^{-\lambda}`,
    :math:`\bar\sigma_i = (\bar\sigma_{\max}^{1/\rho} + \tfrac{i}{N}(\bar\sigma_{\min}^{1/\rho} - \bar\sigma_{\max}^{1/\rho}))^\rho`,
    mapped back to times; ``steps + 1`` times from ``t_start`` down to ``t_end`` (float64, host)."""
    _check_path(path)
    _steps(steps)
    s, t = _pair(path, t_start, t_end)
    lo, hi = float(torch.exp(-path.lam(t))), float(torch.exp(-path.lam(s)))
    if not 0 < lo < hi < float("inf"):
        raise ValueError("sigma/alpha must be finite and > 0 at t_start and t_end")
    sbar = karras_times(steps + 1, lo, hi, rho).flip(0)  # (steps + 1,), decreasing
    grid = path.t_of_lam(-sbar.log())
    grid[0], grid[-1] = s, t
    return grid


def steps_for_nfe(method: str, nfe: int) -> int:
    """The number of steps of ``method`` that costs ``nfe`` model evaluations (``nfe`` a multiple of the
    method's evaluations per step)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    per = _EVALS_PER_STEP[method]
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < per or nfe % per:
        raise ValueError(f"nfe must be a positive multiple of {per} for {method}, got {nfe!r}")
    return nfe // per


@dataclass(frozen=True)
class SampleResult:
    """Samples and their cost.

    Attributes:
        x: the samples at ``times[-1]``, shape of the input.
        nfe: number of model evaluations.
        times: the grid, float64 on the host, shape (steps + 1,).
    """

    x: torch.Tensor
    nfe: int
    times: torch.Tensor


def sample(model: Predictor, path: GaussianPath, x_start: torch.Tensor, method: str, *, steps: int | None = None,
           t_start: float | None = None, t_end: float | None = None, times: torch.Tensor | None = None,
           prediction: str = "eps", grid: str | None = None) -> SampleResult:
    r"""Integrate the probability flow ODE from ``t_start`` to ``t_end`` with one of :data:`METHODS`.

    Args:
        model: predictor ``model(x, t)`` (see the module docstring).
        path: the Gaussian path.
        x_start: points at ``t_start``, shape (B, ...) (e.g. :math:`\sigma(t_{\text{start}})` times standard normal
            noise for a VE path, standard normal for a VP path).
        method: ``"euler"``, ``"ddim"``, ``"dpm1"``, ``"dpm2"``, ``"dpmpp2"`` (DPM-Solver++(2S)) or ``"heun"``.
        steps: number of steps (each costs 1 evaluation, 2 for ``"dpm2"``, ``"dpmpp2"`` and ``"heun"``); not
            with ``times``.
        t_start, t_end: the ends (default: the path's ``t_max`` and ``t_min``; ``t_end`` must have
            :math:`\sigma > 0` for the exponential integrators and Heun).
        times: an explicit decreasing grid instead of ``steps``/``grid``.
        prediction: the kind of the model's output.
        grid: ``"lambda"`` (uniform in :math:`\lambda`, default except for Heun), ``"karras"`` (EDM's
            :math:`\rho = 7`, default for Heun) or ``"uniform"`` (uniform in :math:`t`).

    Returns:
        A :class:`SampleResult`.
    """
    _check_path(path)
    _check_x("x_start", x_start)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if prediction not in PARAMETRISATIONS:
        raise ValueError(f"prediction must be one of {PARAMETRISATIONS}, got {prediction!r}")
    if times is None:
        if steps is None:
            raise ValueError("give steps or times")
        t_start = path.t_max if t_start is None else t_start
        t_end = path.t_min if t_end is None else t_end
        grid = grid or ("karras" if method == "heun" else "lambda")
        if grid == "lambda":
            times = lambda_grid(path, steps, t_start, t_end)
        elif grid == "karras":
            times = karras_grid(path, steps, t_start, t_end)
        elif grid == "uniform":
            _steps(steps)
            s, t = _pair(path, t_start, t_end)
            times = torch.linspace(float(s), float(t), steps + 1, dtype=torch.float64)
        else:
            raise ValueError(f"grid must be 'lambda', 'karras' or 'uniform', got {grid!r}")
    else:
        if steps is not None:
            raise ValueError("give steps or times, not both")
        times = torch.as_tensor(times, dtype=torch.float64).detach().cpu()
        if times.ndim != 1 or times.numel() < 2 or not bool((times[1:] < times[:-1]).all()):
            raise ValueError("times must be a decreasing 1-d grid of at least 2 times")
        for i in (0, -1):
            _time(path, "times", times[i])
    x = x_start
    if method in ("dpm2", "dpmpp2"):  # every midpoint in lambda at once (one vectorised inversion)
        lam = path.lam(times)
        mids = path.t_of_lam(((lam[:-1] + lam[1:]) / 2).clamp(float(lam[0]), float(lam[-1])))
    for i, (s, t) in enumerate(zip(times[:-1], times[1:])):
        if method == "dpm2":
            x = dpm_solver_2_step(path, model, x, s, t, prediction=prediction, r=mids[i])
        elif method == "dpmpp2":
            x = dpm_solver_pp_2_step(path, model, x, s, t, prediction=prediction, r=mids[i])
        elif method == "heun":
            x = heun_step(path, model, x, s, t, prediction=prediction)
        else:
            eps = _predict(model, path, x, s, prediction, "eps")
            step = {"euler": euler_step, "ddim": ddim_step, "dpm1": dpm_solver_1_step}[method]
            x = step(path, x, eps, s, t)
    return SampleResult(x, _EVALS_PER_STEP[method] * (times.numel() - 1), times)


# ---------------------------------------------------------------------------------------------
# predictors and the closed form for Gaussian data


def oracle_predictor(oracle: MixtureOracle, path: GaussianPath) -> Predictor:
    r"""The exact noise predictor :math:`\mathbb{E}[\varepsilon \mid x_t = x]` of Gaussian-mixture data on ``path``,
    as ``eps(x, t)`` (``prediction="eps"``); needs :math:`\sigma(t) > 0`."""
    if not isinstance(oracle, MixtureOracle):
        raise TypeError(f"oracle must be a MixtureOracle, got {type(oracle).__name__}")
    _check_path(path)

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return oracle.noise(x, float(path.alpha(t)), float(path.sigma(t)))  # host times: no device sync

    return eps


def network_predictor(net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], time_scale: float = 1.0) -> Predictor:
    r"""A network ``net(x, t_batch)`` as a predictor: ``t_batch`` is ``time_scale * t`` repeated over the batch, on
    ``x``'s device (``time_scale = T`` for a network trained on DDPM's integer steps with :class:`gencode.paths.VPDiscrete`)."""
    if not callable(net):
        raise TypeError("net must be callable")

    def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tt = (t * time_scale).to(device=x.device, dtype=x.dtype).expand(x.shape[0])
        return net(x, tt)

    return predict


def gaussian_flow(path: GaussianPath, x_s: torch.Tensor, s: float | torch.Tensor, t: float | torch.Tensor,
                  mean: torch.Tensor, var: float) -> torch.Tensor:
    r"""The exact probability-flow map from ``s`` to ``t`` for data :math:`\mathcal{N}(m, v I)` (``fast.gaussian_flow``):
    :math:`x_t = \alpha_t m + \sqrt{\frac{\alpha_t^2 v + \sigma_t^2}{\alpha_s^2 v + \sigma_s^2}}\,(x_s - \alpha_s m)`.

    Args:
        path: the path.
        x_s: points at time ``s``, shape (B, D).
        s, t: the times (any order).
        mean: :math:`m`, shape (D,).
        var: :math:`v > 0`.
    """
    _check_path(path)
    _check_x("x_s", x_s)
    if not var > 0:
        raise ValueError(f"var must be > 0, got {var}")
    s, t = _time(path, "s", s), _time(path, "t", t)
    a_s, a_t, sg_s, sg_t = path.alpha(s), path.alpha(t), path.sigma(s), path.sigma(t)
    ratio = ((a_t**2 * var + sg_t**2) / (a_s**2 * var + sg_s**2)).sqrt()
    mean = mean.to(x_s)
    return _coef(a_t, x_s) * mean + _coef(ratio, x_s) * (x_s - _coef(a_s, x_s) * mean)
