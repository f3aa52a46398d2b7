"""Flow matching and rectified flow (Lipman et al. 2023; Liu, Gong and Liu 2023; Tong et al. 2024).

Time convention of this chapter: **noise at t = 0, data at t = 1**, ``x_t = (1 - t) x_0 + t x_1`` with
``x_0 ~ N(0, I)`` (noise) and ``x_1`` the data, conditional target ``x_1 - x_0``.  Registered here:

1. ``fm.marginal_velocity``: for *any* data law ``q`` and *any* conditional paths ``p_t(x | x_1)`` generated
   by conditional fields ``u_t(x | x_1)``, the field ``u_t`` defined by ``u_t p_t = int u_t(. | x_1)
   p_t(. | x_1) q(x_1) dx_1`` generates the marginal path (continuity equation for the mixture; undefined
   functions, every dimension);
2. ``fm.cfm_gap``: for *any* model and *any* data, the conditional (CFM) and marginal (FM) losses differ by
   ``E||u_t(x_t | x_1) - u_t(x_t)||^2``, which does not depend on the model: pointwise identity of the
   integrands up to a function of ``x`` times the kernel whose ``x_1``-integral is zero by the definition of
   ``u_t`` (item 1);
3. ``fm.gaussian_gap``: for data ``N(m, v)`` that constant is ``v / ((1 - t)^2 + t^2 v)`` (exact Gaussian
   moments);
4. ``fm.conditional_velocity``: the conditional field ``(x_1 - x) / (1 - t)`` generates the conditional
   path ``N(t x_1, (1 - t)^2 I)`` and equals ``x_1 - x_0`` on it;
5. ``fm.mixture_velocity``: for data ``N(m, v)`` (one coordinate) the marginal field is affine,
   ``m + (t v - (1 - t)) / (t^2 v + (1 - t)^2) (x - t m)``;
6. ``fm.ot_straight``: with the optimal (monotone) coupling of ``N(0, 1)`` and ``N(m, r^2)`` the field
   has straight trajectories (zero acceleration); with the independent coupling it does not.

Sums over coordinates use the generic-coordinate idiom of :mod:`derivations.cnf`.
"""

from __future__ import annotations

import sympy as sp

from .cnf import Partial, X, continuity, coordinate_summand, over_coordinates
from .cnf import f_i as _cnf_f
from .cnf import i as _i
from .cnf import p as _cnf_p
from .core import held_frac as _frac  # unevaluated, for display
from .core import Check, Claim, Identity, Mutant, Scope, function, gaussian_expectation, register, sym
from .probability_flow import continuity_log_residual, gaussian_log_density, jet

t = sym("t", (0, 1), positive=True)
x = sym("x", real=True)
x0 = sym("x_0", real=True)   # noise
x1 = sym("x_1", real=True)   # data
m = sym("m", real=True)      # data mean
v = sym("v", positive=True)  # data variance
r = sym("r", positive=True)  # data standard deviation (fm.ot_straight)

xt = (1 - t) * x0 + t * x1
"""The linear (rectified) path."""


def _expect(poly: sp.Expr) -> sp.Expr:
    """``E[poly]`` over independent ``x_1 ~ N(m, v)`` and ``x_0 ~ N(0, 1)`` (moment recursion)."""
    return gaussian_expectation(gaussian_expectation(poly, x1, m, v), x0, 0, 1)


def _lin(coef: sp.Expr, mean: sp.Expr) -> sp.Expr:
    """Display ``coef (x - mean)`` as written."""
    return sp.Mul(coef, sp.Add(x, -mean, evaluate=False), evaluate=False)


def _d_dt(expr: sp.Expr) -> sp.Expr:
    return sp.diff(expr, t)


# Moments of the pair (x_t, u = x_1 - x_0), derived by expectation rather than typed in.
_u = x1 - x0
_mean_u, _mean_xt = _expect(_u), _expect(xt)
_var_xt = sp.factor(_expect(xt**2) - _mean_xt**2)
_cov = sp.factor(_expect(_u * xt) - _mean_u * _mean_xt)
regression_velocity = _mean_u + _cov / _var_xt * (x - _mean_xt)
"""``E[x_1 - x_0 | x_t = x]`` for jointly Gaussian ``(x_t, u)``: the marginal field of ``N(m, v)`` data."""

# ---------------------------------------------------------------------------------------------
# 1. The marginal velocity generates the marginal path, for any data and any conditional paths.

_Q = function("q", r"q(x_1)", show_args=False)
_PC = function("p_c", r"p_t(x \mid x_1)", show_args=False)
_UC = function("u_c", r"u_t(x \mid x_1)", show_args=False)
_PM = function("p_m", r"p_t(x)", show_args=False)
q = _Q(x1)
p_cond, u_cond = _PC(X[_i], t, x1), _UC(_i, X[_i], t, x1)  # generic coordinate x_i, component i
p_marg = _PM(X[_i], t)
_conditional_continuity = continuity.claim["dp_dt"].xreplace({_cnf_p: p_cond, _cnf_f: u_cond})
"""``d/dt p_t(x | x_1) = -div(u_t(. | x_1) p_t(. | x_1))``: ``cnf.continuity`` for each conditional path."""


def _marginal_residuals(claim: Claim) -> list[sp.Expr]:
    """``d/dt (p_c q) + div(flux)`` with ``d/dt p_c`` from the conditional continuity equation: the
    integrand, over ``x_1``, of ``d/dt p_t + div(u_t p_t)`` (derivatives in ``t`` and ``x`` pass under the
    integral in ``x_1``)."""
    dt = sp.diff(p_cond * q, t).xreplace({sp.Derivative(p_cond, t): _conditional_continuity})
    residual = dt + over_coordinates(Partial(claim["flux"], X[_i]))
    return [jet(coordinate_summand(residual).doit())]


marginal_velocity = register(Identity(
    id="fm.marginal_velocity",
    title="The marginal velocity generates the marginal path",
    chapter="flow_matching",
    claim={"flux": u_cond * p_cond * q},
    check=Check(
        "integrand over x_1 of dp_t/dt + div(u_t p_t), with dp_t(x | x_1)/dt = -div(u_t(x | x_1) p_t(x | x_1)) "
        "(cnf.continuity) substituted, for undefined q, p_t(x | x_1), u_t(x | x_1); summand over a generic "
        "coordinate (symbolic D) in the jet; cancel",
        _marginal_residuals,
    ),
    template=(r"u_t(x)\, p_t(x) = \int $flux\, \mathrm{d}x_1,\quad p_t(x) = \int p_t(x \mid x_1)\, q(x_1)\, "
              r"\mathrm{d}x_1 \quad\Longrightarrow\quad \frac{\partial p_t}{\partial t} "
              r"+ \nabla \cdot \bigl(u_t\, p_t\bigr) = 0"),
    assumptions=("any data density q(x_1); for each x_1 a smooth conditional path p_t(x | x_1) > 0 "
                 "generated by a smooth field u_t(x | x_1) (its continuity equation holds)",
                 "derivatives in t and x pass under the integral in x_1 (dominated convergence)",
                 "every dimension D (sum over a generic coordinate)"),
    mutants=(
        Mutant("prior_average", {"flux": u_cond * p_marg * q},
               r"The conditional velocities averaged over the data law $q(x_1)$ instead of the posterior "
               r"$p_t(x \mid x_1) q(x_1) / p_t(x)$: $u_t(x) = \int u_t(x \mid x_1) q(x_1)\,\mathrm{d}x_1$."),
        Mutant("unweighted", {"flux": u_cond * p_cond},
               r"The data weight $q(x_1)$ left out of the flux while the density keeps it."),
    ),
    references=("lipman2023flow", "liu2023flow", "albergo2023building"),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 2. CFM and FM differ by a model-free constant, for any model and any data.

k = sp.Symbol("k", integer=True, positive=True)  # the coordinate of a vector (velocities are in R^D)
theta = sym("theta", real=True)  # any parameter of the model
_V = function("v", r"v_{\theta,k}(x)", show_args=False)
_U = function("u", r"u_{t,k}(x)", show_args=False)
_C = function("c", r"u_{t,k}(x \mid x_1)", show_args=False)
_PX = function("p_c", r"p_t(x \mid x_1)", show_args=False)
model_k, marginal_k, conditional_k = _V(k, x, theta), _U(k, x), _C(k, x, x1)
weight = _PX(x, x1) * q  # the joint density of (x_t, x_1) at (x, x_1)


def _gap_residuals(claim: Claim) -> list[sp.Expr]:
    r"""Pointwise in ``(x, x_1)``: CFM integrand minus the FM integrand (spread over ``x_1`` with the joint
    density, whose ``x_1``-integral is ``p_t(x)``) minus the claimed gap equals
    ``sum_k w_k(x) (u_k(x | x_1) - u_k(x)) p_t(x | x_1) q(x_1)`` with ``w_k = 2 (u_k - v_k)`` a function of
    ``x`` alone: its ``x_1``-integral vanishes by the definition of ``u_t`` (``fm.marginal_velocity``'s
    flux minus ``u_t p_t``).  Second residual: the gap does not depend on the model's parameter."""
    cfm = over_coordinates((model_k - conditional_k) ** 2, k) * weight
    fm = over_coordinates((model_k - marginal_k) ** 2, k) * weight
    kernel = (conditional_k - marginal_k) * weight  # int dx_1 = (u_t p_t)_k - u_{t,k} p_t = 0
    zero_mean = over_coordinates(2 * (marginal_k - model_k) * kernel, k)
    return [jet(coordinate_summand(cfm - fm - claim["gap"] - zero_mean, k)),
            jet(coordinate_summand(sp.diff(claim["gap"], theta), k).doit())]


cfm_gap = register(Identity(
    id="fm.cfm_gap",
    title="The conditional and marginal flow matching losses differ by a model-free constant",
    chapter="flow_matching",
    claim={"gap": over_coordinates((conditional_k - marginal_k) ** 2, k) * weight},
    check=Check(
        "pointwise identity of the integrands for an undefined model v_theta(x), data density q, conditional "
        "path and fields: CFM - FM - gap = sum_k 2 (u_k(x) - v_k(x)) (u_k(x | x_1) - u_k(x)) p q, whose "
        "x_1-integral is zero by the definition of u_t; d gap / d theta = 0; summand over a generic "
        "coordinate k (symbolic D); cancel",
        _gap_residuals,
    ),
    template=(r"\mathcal{L}_{\mathrm{CFM}}(\theta; t) - \mathcal{L}_{\mathrm{FM}}(\theta; t) = "
              r"\iint $gap \,\mathrm{d}x\, \mathrm{d}x_1"),
    assumptions=("any data density q, any conditional path p_t(x | x_1) and field u_t(x | x_1), "
                 "any model v_theta(x) (one parameter theta stands for each)",
                 "u_t defined by u_t p_t = int u_t(. | x_1) p_t(. | x_1) q(x_1) dx_1 (fm.marginal_velocity)",
                 "every dimension D (squared norms are sums over coordinates)"),
    mutants=(
        Mutant("losses_equal", {"gap": sp.Integer(0)},
               "The two losses taken to be equal; they differ by the conditional variance of the target."),
        Mutant("second_moment", {"gap": over_coordinates(conditional_k**2, k) * weight},
               r"The gap taken as the second moment of the conditional target, forgetting that $x_t$ "
               r"explains part of it."),
        Mutant("model_dependent", {"gap": over_coordinates((conditional_k - model_k) ** 2, k) * weight},
               "The gap written with the model in place of the marginal field: it would depend on theta, "
               "and the two losses would not share their gradients."),
    ),
    references=("lipman2023flow", "tong2024improving"),
    code=("gencode.flow_matching.cfm_loss",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 3. The constant for Gaussian data.


def _gaussian_gap_residuals(claim: Claim) -> list[sp.Expr]:
    """``E[(x_1 - x_0 - u_t(x_t))^2]`` by exact Gaussian moments, ``u_t`` the linear regression field."""
    slope = sp.Symbol("c", real=True)  # Cov(u, x_t) / Var(x_t), kept symbolic while taking expectations
    u_bar = _mean_u + slope * (xt - _mean_xt)
    gap = _expect(sp.expand((_u - u_bar) ** 2)).xreplace({slope: _cov / _var_xt})
    return [gap - claim["gap"]]


gaussian_gap = register(Identity(
    id="fm.gaussian_gap",
    title="The CFM-FM gap for Gaussian data",
    chapter="flow_matching",
    claim={"gap": v / ((1 - t) ** 2 + t**2 * v)},
    check=Check("E[(x_1 - x_0 - u_t(x_t))^2] with u_t the Gaussian regression field (fm.mixture_velocity), "
                "by exact Gaussian moments (moment recursion); cancel", _gaussian_gap_residuals),
    template=(r"x_1 \sim \mathcal{N}(m, v):\quad \mathbb{E}\bigl[(x_1 - x_0 - u_t(x_t))^2\bigr] = $gap"),
    assumptions=("x_0 ~ N(0, 1), x_1 ~ N(m, v) independent; x_t = (1 - t) x_0 + t x_1; 0 < t < 1",),
    mutants=(
        Mutant("zero", {"gap": sp.Integer(0)}, "No gap: the conditional target taken as a function of x_t."),
        Mutant("total_variance", {"gap": v + 1},
               r"The gap taken as the total variance of the target $x_1 - x_0$, forgetting that "
               r"$x_t$ explains part of it."),
        Mutant("std_for_variance", {"gap": v / ((1 - t) + t * v)},
               "Standard deviations where variances belong in the denominator."),
    ),
    references=("lipman2023flow", "tong2024improving"),
    code=("gencode.flow_matching.cfm_loss",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 4. The conditional velocity of the linear path.


def _conditional_residuals(claim: dict[str, sp.Expr]) -> list[sp.Expr]:
    u = claim["velocity"]
    log_p = gaussian_log_density(x, t * x1, (1 - t) ** 2)
    return [u.xreplace({x: xt}) - sp.diff(xt, t), continuity_log_residual(log_p, u, x, _d_dt)]


conditional_velocity = register(Identity(
    id="fm.conditional_velocity",
    title="The conditional velocity of the linear path",
    chapter="flow_matching",
    claim={"velocity": (x1 - x) / (1 - t)},
    check=Check("on the path it equals d x_t/dt; it solves the continuity equation of "
                "N(t x_1, (1 - t)^2) in log form, one coordinate; cancel", _conditional_residuals),
    template=(r"u_t(x \mid x_1) = $velocity, \qquad u_t(x_t \mid x_1) = x_1 - x_0"),
    assumptions=("x_t = (1 - t) x_0 + t x_1, 0 < t < 1",
                 "every dimension D: p_t(x | x_1) = N(t x_1, (1 - t)^2 I) is a product over coordinates and the "
                 "i-th component of the field depends on x_i only, so the log-form continuity residual "
                 "l_t + sum_i (u_i d_i l + d_i u_i) is the sum over coordinates of the one-coordinate residual "
                 "checked here"),
    mutants=(
        Mutant("over_t", {"velocity": (x1 - x) / t}, "Divided by t instead of 1 - t."),
        Mutant("no_rescaling", {"velocity": x1 - x},
               r"The displacement to the data $x_1 - x$ taken as the velocity, forgetting the "
               r"remaining time $1 - t$."),
    ),
    references=("lipman2023flow", "liu2023flow"),
    display={"velocity": _frac(sp.Add(x1, -x, evaluate=False), 1 - t)},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 5. The marginal velocity of Gaussian data.

_component_var = t**2 * v + (1 - t) ** 2


def _mixture_residuals(claim: dict[str, sp.Expr]) -> list[sp.Expr]:
    u = claim["velocity"]
    log_p = gaussian_log_density(x, t * m, _component_var)
    return [u - regression_velocity, continuity_log_residual(log_p, u, x, _d_dt)]


mixture_velocity = register(Identity(
    id="fm.mixture_velocity",
    title="The marginal flow-matching velocity of Gaussian data, component by component",
    chapter="flow_matching",
    claim={"velocity": m + (t * v - (1 - t)) / (t**2 * v + (1 - t) ** 2) * (x - t * m)},
    check=Check("equal to E[x_1 - x_0 | x_t = x] from the derived Gaussian moments, and solves the "
                "continuity equation of p_t = N(t m, t^2 v + (1 - t)^2); cancel", _mixture_residuals),
    template=(r"x_1 \sim \mathcal{N}(m, v):\quad u_t(x) = \mathbb{E}[x_1 - x_0 \mid x_t = x] = $velocity"),
    assumptions=("x_1 ~ N(m, v) in one coordinate, x_0 ~ N(0, 1) independent of x_1",),
    mutants=(
        Mutant("std_for_variance",
               {"velocity": m + (t * v - (1 - t)) / (t * v + 1 - t) * (x - t * m)},
               r"Standard deviations where variances belong in the denominator."),
        Mutant("mean_velocity", {"velocity": m},
               r"The average target $\mathbb{E}[x_1 - x_0] = m$, ignoring where the sample is."),
    ),
    references=("lipman2023flow",),
    code=("gencode.oracle.MixtureOracle.velocity", "gencode.flow_matching.FlowPath.oracle_velocity"),
    display={"velocity": sp.Add(m, _lin(_frac(sp.Add(sp.Mul(t, v, evaluate=False), sp.Mul(-1, 1 - t, evaluate=False), evaluate=False),
                                              sp.Add(sp.Mul(t**2, v, evaluate=False), (1 - t) ** 2,
                                                     evaluate=False)),
                                        sp.Mul(t, m, evaluate=False)), evaluate=False)},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 6. The optimal coupling gives straight paths.

_sigma_ot = (1 - t) + t * r  # x_t = (1 - t) x_0 + t (m + r x_0)


def _ot_residuals(claim: dict[str, sp.Expr]) -> list[sp.Expr]:
    u = claim["velocity"]
    log_p = gaussian_log_density(x, t * m, _sigma_ot**2)
    acceleration = sp.diff(u, t) + u * sp.diff(u, x)  # d/dt u(x(t), t) along x' = u
    return [continuity_log_residual(log_p, u, x, _d_dt), acceleration]


ot_straight = register(Identity(
    id="fm.ot_straight",
    title="With the optimal coupling of two Gaussians the flow's trajectories are straight",
    chapter="flow_matching",
    claim={"velocity": m + (r - 1) / ((1 - t) + t * r) * (x - t * m)},
    check=Check("continuity equation of N(t m, ((1 - t) + t r)^2) in log form, and zero acceleration "
                "du/dt + u du/dx along trajectories; cancel", _ot_residuals),
    template=(r"x_1 = m + r x_0:\quad u_t(x) = $velocity, \qquad "
              r"\frac{\partial u_t}{\partial t} + u_t \frac{\partial u_t}{\partial x} = 0"),
    assumptions=("x_0 ~ N(0, 1), x_1 = m + r x_0 (the monotone, optimal transport coupling to N(m, r^2)), r > 0",),
    mutants=(
        Mutant("independent_coupling",
               {"velocity": regression_velocity.xreplace({v: r**2})},
               "The field of the independent coupling, whose trajectories bend: its acceleration is "
               "not zero and it moves a different path of marginals."),
        Mutant("displacement_field", {"velocity": m + (r - 1) * (x - t * m)},
               "The constant displacement of the map used without the factor that follows the "
               "shrinking (or growing) spread."),
    ),
    references=("liu2023flow", "tong2024improving", "pooladian2023multisample"),
    display={"velocity": sp.Add(m, _lin(_frac(sp.Add(r, -1, evaluate=False), sp.Add(1 - t, sp.Mul(t, r, evaluate=False), evaluate=False)),
                                        sp.Mul(t, m, evaluate=False)), evaluate=False)},
    scope=Scope.GENERAL,
))
