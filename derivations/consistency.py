"""Consistency models (Song, Dhariwal, Chen and Sutskever, 2023): the results behind one-step sampling.

Convention of the consistency-model literature (and of EDM): the noise level is the time,
``x_t = x_0 + t z`` for ``t`` in ``[eps, T]`` (the VE SDE with ``sigma(t) = t``), data near ``t = eps``.
The probability flow ODE is ``dx/dt = -t grad log p_t(x)``; a *consistency function* maps every point
of an ODE trajectory to the trajectory's point at ``t = eps``.  Registered with their mutants:

1. ``consistency.boundary``: the skip/output scalings make ``f(x, eps) = x`` for any network;
2. ``consistency.pf_velocity``: the PF-ODE velocity in terms of the denoiser, ``(x - D(x, t)) / t``;
3. ``consistency.self_consistency``: for Gaussian data the consistency function is explicit, it is
   constant along PF-ODE trajectories (transport equation) and meets the boundary condition; the
   denoiser ``E[x_0 | x_t]`` is *not* it;
4. ``consistency.ct_target``: one Euler step of the PF ODE with the conditional denoiser ``x_0``
   moves ``x_0 + t_{n+1} z`` to ``x_0 + t_n z``: consistency training needs no teacher.

Every check is a ``cancel`` of an expression rational in its symbols and in ``sqrt(s^2 + t^2)``.
"""

from __future__ import annotations

import sympy as sp

from .core import held_add as _add, held_frac as _frac, held_mul as _mul  # unevaluated, for display
from .core import Check, Claim, Identity, Mutant, Scope, equal, register, sym
from .sde import TexSymbol

x = sym("x", real=True)
x0 = sym("x_0", real=True)
z = sym("z", real=True)
mu = sym("mu", real=True)
s = sym("s", positive=True)               # data standard deviation (Gaussian data)
t = sym("t_cm", (1, 3), tex="t", positive=True)  # the noise level, above eps (cnf and flow matching have t in (0, 1))
eps = sym("epsilon", (0, 1), positive=True)
sigma_data = TexSymbol("sigma_data", r"\sigma_{\mathrm{data}}", positive=True)
t_n = sym("t_n", (0, 1), positive=True)
t_n1 = sym("t_n+1", (1, 3), positive=True)



NET = TexSymbol("consistency_net_placeholder", r"F_\theta(x, t)", real=True)
DENOISER = TexSymbol("denoiser_placeholder", r"D(x, t)", real=True)
SCORE = TexSymbol("consistency_score_placeholder", r"\nabla_x \log p_t(x)", real=True)

# ---------------------------------------------------------------------------------------------
# 1. The boundary condition through the skip and output scalings


def _boundary_residuals(claim: Claim) -> list[sp.Expr]:
    """``f(x, eps) - x`` with ``f = c_skip x + c_out F``: zero for every ``x`` and every network value ``F``."""
    f = claim["c_skip"] * x + claim["c_out"] * NET
    return [(f - x).xreplace({t: eps})]


boundary = register(Identity(
    id="consistency.boundary",
    title=r"The skip and output scalings enforce $f_\theta(x, \epsilon) = x$",
    chapter="consistency",
    claim={"c_skip": sigma_data**2 / ((t - eps) ** 2 + sigma_data**2),
           "c_out": sigma_data * (t - eps) / sp.sqrt(sigma_data**2 + t**2)},
    check=Check("set t = eps in c_skip(t) x + c_out(t) F - x; compare coefficients of x and F; cancel",
                _boundary_residuals, variables=(x, NET)),
    template=(r"f_\theta(x, t) = c_{\mathrm{skip}}(t)\, x + c_{\mathrm{out}}(t)\, F_\theta(x, t),\quad "
              r"c_{\mathrm{skip}}(t) = $c_skip,\quad c_{\mathrm{out}}(t) = $c_out"
              r"\quad\Longrightarrow\quad f_\theta(x, \epsilon) = x"),
    assumptions=("sigma_data > 0 the data's standard deviation, 0 < eps <= t",
                 "F_theta(x, t) any (finite) network output"),
    mutants=(
        Mutant("edm_skip_without_shift", {"c_skip": sigma_data**2 / (t**2 + sigma_data**2)},
               r"EDM's $c_{\mathrm{skip}} = \sigma_{\mathrm{data}}^2/(t^2 + \sigma_{\mathrm{data}}^2)$, not "
               r"shifted by $\epsilon$: it is below 1 at $t = \epsilon$."),
        Mutant("edm_out_without_shift", {"c_out": sigma_data * t / sp.sqrt(sigma_data**2 + t**2)},
               r"EDM's $c_{\mathrm{out}} = \sigma_{\mathrm{data}} t / \sqrt{\sigma_{\mathrm{data}}^2 + t^2}$: "
               r"non-zero at $t = \epsilon$, so the network leaks into $f_\theta(x, \epsilon)$."),
    ),
    references=("song2023consistency", "karras2022elucidating"),
    code=("gencode.consistency.ConsistencyModel.c_skip", "gencode.consistency.ConsistencyModel.c_out"),
    display={"c_skip": _frac(sigma_data**2, _add(_add(t, -eps) ** 2, sigma_data**2)),
             "c_out": _frac(_mul(sigma_data, _add(t, -eps)), sp.sqrt(_add(sigma_data**2, t**2)))},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 2. The PF-ODE velocity through the denoiser

_g2 = 2 * t  # g(t)^2 = d(t^2)/dt for x_t = x_0 + t z
_tweedie = {DENOISER: x + t**2 * SCORE}  # D(x, t) = E[x_0 | x_t = x] = x + t^2 grad log p_t(x)

pf_velocity = register(Identity(
    id="consistency.pf_velocity",
    title="The probability flow ODE in terms of the denoiser",
    chapter="consistency",
    claim={"velocity": (x - DENOISER) / t},
    check=Check(
        "PF drift f - g^2/2 score with f = 0, g^2 = 2t; substitute Tweedie D = x + t^2 score; cancel",
        lambda claim: [claim["velocity"].xreplace(_tweedie) - (0 - _g2 / 2 * SCORE)],
    ),
    template=(r"\frac{\mathrm{d}x}{\mathrm{d}t} = -t\, \nabla_x \log p_t(x) = $velocity,\qquad "
              r"D(x, t) = \mathbb{E}[x_0 \mid x_t = x]"),
    assumptions=("x_t = x_0 + t z, z ~ N(0, I): the VE SDE with sigma(t) = t, g(t)^2 = 2t",
                 "Tweedie: E[x_0 | x_t = x] = x + t^2 grad log p_t(x), for any data law",
                 "the score and the denoiser are free symbols: the identity holds pointwise, for every density, "
                 "coordinate by coordinate in any dimension"),
    mutants=(
        Mutant("variance_for_std", {"velocity": (x - DENOISER) / t**2},
               r"$(x - D)/t^2$: the noise level's square where the noise level belongs."),
        Mutant("sign", {"velocity": (DENOISER - x) / t},
               "The velocity pointing towards the denoised point while t increases."),
    ),
    references=("karras2022elucidating", "song2021score"),
    code=("gencode.consistency.teacher_step",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 3. The consistency function of Gaussian data


def _self_consistency_residuals(claim: Claim) -> list[sp.Expr]:
    """Transport equation ``d_t f + v d_x f = 0`` along the PF ODE, and the boundary ``f(x, eps) = x``."""
    f = claim["f"]
    velocity = t * (x - mu) / (s**2 + t**2)  # -t grad log N(x; mu, s^2 + t^2)
    return [sp.diff(f, t) + velocity * sp.diff(f, x), f.xreplace({t: eps}) - x]


self_consistency = register(Identity(
    id="consistency.self_consistency",
    title="The consistency function of Gaussian data",
    chapter="consistency",
    claim={"f": mu + sp.sqrt(s**2 + eps**2) / sp.sqrt(s**2 + t**2) * (x - mu)},
    check=Check("transport equation d_t f + v d_x f = 0 with v = t (x - mu)/(s^2 + t^2), and f(x, eps) = x; "
                "cancel", _self_consistency_residuals),
    template=r"f(x, t) = $f",
    assumptions=("data N(mu, s^2) (each coordinate of an isotropic Gaussian), x_t = x_0 + t z",
                 "p_t = N(mu, s^2 + t^2); PF ODE dx/dt = -t grad log p_t(x)"),
    mutants=(
        Mutant("denoiser_is_not_consistency", {"f": mu + s**2 / (s**2 + t**2) * (x - mu)},
               r"The denoiser $\mathbb{E}[x_0 \mid x_t = x]$: it is the *mean* of the data given $x$, not "
               r"the end point of the ODE trajectory through $x$; it changes along the trajectory."),
        Mutant("flow_to_zero", {"f": mu + s / sp.sqrt(s**2 + t**2) * (x - mu)},
               r"The flow map to $t = 0$: constant along trajectories, but $f(x, \epsilon) \neq x$."),
    ),
    references=("song2023consistency",),
    code=("gencode.consistency.ode_consistency_function",),
    display={"f": _add(mu, _mul(_frac(sp.sqrt(_add(s**2, eps**2)), sp.sqrt(_add(s**2, t**2))), _add(x, -mu)))},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 4. Consistency training: the Euler step with the conditional denoiser

_x_next = x0 + t_n1 * z
_euler = _x_next + (t_n - t_n1) * (_x_next - x0) / t_n1  # velocity (x - D)/t with D = x_0

ct_target = register(Identity(
    id="consistency.ct_target",
    title="Consistency training: an Euler step with the conditional denoiser stays on the same noise",
    chapter="consistency",
    claim={"x_tn": x0 + t_n * z},
    check=equal({"x_tn": _euler},
                "Euler step x + (t_n - t_{n+1}) (x - x_0)/t_{n+1} from x = x_0 + t_{n+1} z; cancel"),
    template=(r"x + (t_n - t_{n+1})\,\frac{x - x_0}{t_{n+1}}\Big|_{x = x_0 + t_{n+1} z} = $x_tn"),
    assumptions=("0 < t_n < t_{n+1}", "D(x, t) replaced by its one-sample estimate x_0 (the conditional denoiser)"),
    mutants=(
        Mutant("same_noise_level", {"x_tn": x0 + t_n1 * z},
               r"The target left at noise level $t_{n+1}$ (no step taken)."),
        Mutant("step_backwards", {"x_tn": x0 + (2 * t_n1 - t_n) * z},
               "The step taken towards more noise."),
    ),
    references=("song2023consistency",),
    code=("gencode.consistency.ConsistencyTraining",),
    display={"x_tn": _add(x0, _mul(t_n, z))},
    scope=Scope.GENERAL,
))
