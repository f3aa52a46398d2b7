"""Flow matching and rectified flow (Lipman et al. 2023; Liu, Gong and Liu 2023; Tong et al. 2024).

Time convention of this chapter: **noise at t = 0, data at t = 1**, ``x_t = (1 - t) x_0 + t x_1`` with
``x_0 ~ N(0, 1)`` (noise) and ``x_1`` the data, conditional target ``x_1 - x_0``.  Registered here:

1. ``fm.cfm_gap``: the conditional (CFM) and marginal (FM) losses differ by a constant that does not
   depend on the model (exact Gaussian expectations for a quadratic model, coefficients in its
   parameters compared), equal to ``E[Var(x_1 - x_0 | x_t)]``;
2. ``fm.conditional_velocity``: the conditional field ``(x_1 - x) / (1 - t)`` generates the conditional
   path ``N(t x_1, (1 - t)^2)`` and equals ``x_1 - x_0`` on it;
3. ``fm.mixture_velocity``: for data ``N(m, v)`` (one mixture component) the marginal field is affine,
   ``m + (t v - (1 - t)) / (t^2 v + (1 - t)^2) (x - t m)``; for a mixture it is this field averaged with
   the components' responsibilities;
4. ``fm.ot_straight``: with the optimal (monotone) coupling of ``N(0, 1)`` and ``N(m, r^2)`` the field
   has straight trajectories (zero acceleration); with the independent coupling it does not.
"""

from __future__ import annotations

import sympy as sp

from .core import Check, Identity, Mutant, gaussian_expectation, register, sym
from .probability_flow import continuity_log_residual, gaussian_log_density

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


def _frac(num: sp.Expr, den: sp.Expr) -> sp.Expr:
    return sp.Mul(num, sp.Pow(den, -1, evaluate=False), evaluate=False)


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
# 1. CFM and FM differ by a constant.

theta = sp.symbols("theta_0:3", real=True)


def _model(y: sp.Expr) -> sp.Expr:
    return theta[0] + theta[1] * y + theta[2] * y**2


_slope = sp.Symbol("c", real=True)  # Cov(u, x_t) / Var(x_t), kept symbolic while taking expectations


def _gap_residuals(claim: dict[str, sp.Expr]) -> list[sp.Expr]:
    cfm = _expect(sp.expand((_model(xt) - _u) ** 2))
    u_bar = _mean_u + _slope * (xt - _mean_xt)  # E[u | x_t], polynomial in the slope c
    fm = _expect(sp.expand((_model(xt) - u_bar) ** 2)).xreplace({_slope: _cov / _var_xt})
    return [cfm - fm - claim["gap"]]


cfm_gap = register(Identity(
    id="fm.cfm_gap",
    title="The conditional and marginal flow matching losses differ by a model-free constant",
    chapter="flow_matching",
    claim={"gap": v / ((1 - t) ** 2 + t**2 * v)},
    check=Check(
        "exact Gaussian expectations (moment recursion) of both losses for the model "
        "theta_0 + theta_1 x + theta_2 x^2; coefficients in theta compared; cancel",
        _gap_residuals,
        variables=theta,
    ),
    template=(r"\mathcal{L}_{\mathrm{CFM}}(\theta; t) - \mathcal{L}_{\mathrm{FM}}(\theta; t) = "
              r"\mathbb{E}\bigl[\operatorname{Var}(x_1 - x_0 \mid x_t)\bigr] = $gap"),
    assumptions=("x_0 ~ N(0, 1), x_1 ~ N(m, v) independent; x_t = (1 - t) x_0 + t x_1; 0 < t < 1",
                 "model v_theta(x) = theta_0 + theta_1 x + theta_2 x^2 (every coefficient is compared)"),
    mutants=(
        Mutant("losses_equal", {"gap": sp.Integer(0)},
               "The two losses taken to be equal; they differ by the conditional variance of the target."),
        Mutant("total_variance", {"gap": v + 1},
               r"The gap taken as the total variance of the target $x_1 - x_0$, forgetting that "
               r"$x_t$ explains part of it."),
    ),
    references=("lipman2023flow", "tong2024improving"),
    code=("gencode.flow_matching.cfm_loss",),
))

# ---------------------------------------------------------------------------------------------
# 2. The conditional velocity of the linear path.


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
                "N(t x_1, (1 - t)^2) in log form; cancel", _conditional_residuals),
    template=(r"u_t(x \mid x_1) = $velocity, \qquad u_t(x_t \mid x_1) = x_1 - x_0"),
    assumptions=("x_t = (1 - t) x_0 + t x_1, 0 < t < 1",),
    mutants=(
        Mutant("over_t", {"velocity": (x1 - x) / t}, "Divided by t instead of 1 - t."),
        Mutant("no_rescaling", {"velocity": x1 - x},
               r"The displacement to the data $x_1 - x$ taken as the velocity, forgetting the "
               r"remaining time $1 - t$."),
    ),
    references=("lipman2023flow", "liu2023flow"),
    display={"velocity": _frac(sp.Add(x1, -x, evaluate=False), 1 - t)},
))

# ---------------------------------------------------------------------------------------------
# 3. The marginal velocity for Gaussian (mixture) data.

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
    assumptions=("x_0 ~ N(0, 1) independent of x_1; for a mixture sum_k w_k N(m_k, v_k) the field is "
                 "sum_k r_k(x) u_t^k(x) with r_k the responsibility of component k under p_t",),
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
))

# ---------------------------------------------------------------------------------------------
# 4. The optimal coupling gives straight paths.

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
))
