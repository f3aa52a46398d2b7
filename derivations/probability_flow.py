"""The probability flow ODE and DDIM (Song et al. 2021, section 4.3; Song, Meng and Ermon 2021).

An Ito SDE ``dx = f(x, t) dt + g(t) dW`` moves its marginals ``p_t`` by the Fokker-Planck equation
``dp/dt = -d(f p)/dx + g^2/2 d^2 p/dx^2``.  The ODE ``dx/dt = f - g^2/2 d log p_t/dx`` moves them by
the continuity equation ``dp/dt = -d(v p)/dx``; the two right-hand sides agree for every density.
Registered here:

1. ``pf.marginals``: that agreement, for arbitrary smooth ``p``, ``f`` and ``g`` (undefined SymPy
   functions; the residual is a polynomial in their independent derivatives, the *jet*), in ``D = 3``
   coordinates standing for ``R^D`` (the argument is in :mod:`derivations.sde`); the Fokker-Planck side is
   the registered ``sde.fokker_planck``; ``pf.vp``: its instance for the VP SDE, again for any data law;
   ``pf.likelihood``: along the ODE, ``d log p_t(x_t)/dt = -div v`` for any density that solves the
   Fokker-Planck equation (the instantaneous change of variables of the PF-ODE);
2. ``pf.gaussian``: for Gaussian data under the VP SDE, the PF-ODE velocity is the affine field that
   moves the exact Gaussian marginals (continuity equation in log form, ``l = log p``);
3. ``ddim.update``: the deterministic DDIM step is one Euler step of the PF-ODE written in
   ``xbar = x / sqrt(alphabar)`` against ``sigma = sqrt(1 - alphabar) / sqrt(alphabar)``;
4. ``ddim.variance``: DDIM's step variance for consecutive steps is ``eta^2`` times DDPM's posterior
   variance ``beta_tilde_t``, so ``eta = 1`` is DDPM (with ``beta_tilde``) and ``eta = 0`` is not.

Time convention: data at ``t = 0``, noise at the end, as in the diffusion chapters.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from .core import held_frac as _frac  # unevaluated, for display
from .core import Check, Identity, Mutant, Scope, equal, register, sym
from .diffusion import SCHEDULE, alpha_t, alphabar_t, alphabar_tm1, beta_t
from . import sde
from .sde import F, G2, SCORE, X, TexSymbol, drift_components, fokker_planck, fp_residual, jet, summed

# ---------------------------------------------------------------------------------------------
# Shared tools: jets of undefined functions (derivations.sde), and the continuity equation in log form.


def continuity_log_residual(log_density: sp.Expr, velocity: sp.Expr, x: sp.Symbol,
                            d_dt: Callable[[sp.Expr], sp.Expr]) -> sp.Expr:
    """``(dp/dt + d(v p)/dx) / p = l_t + v l_x + v_x`` with ``l = log p``: zero iff ``v`` moves ``p``.

    Args:
        log_density: ``l(x, t)``.
        velocity: ``v(x, t)``.
        x: the space variable.
        d_dt: the partial time derivative (a chain rule when time enters through a schedule).
    """
    return d_dt(log_density) + velocity * sp.diff(log_density, x) + sp.diff(velocity, x)


def gaussian_log_density(x: sp.Expr, mean: sp.Expr, variance: sp.Expr) -> sp.Expr:
    """``log N(x; mean, variance)``."""
    return -(x - mean) ** 2 / (2 * variance) - sp.log(2 * sp.pi * variance) / 2


# ---------------------------------------------------------------------------------------------
# 1. Same marginals as the SDE, for any density.

x = sym("x", real=True)
t = sde.t
f_ = sym("f", real=True)         # the drift f(x, t)
g_ = sym("g", positive=True)     # the diffusion coefficient g(t)
s_ = sym("s", real=True)         # the score d log p_t(x) / dx
_P3, _F3, _G = sde._P3, sde._F3, sde._G   # p(x, t), f_k(x, t), g(t): the functions of sde.fokker_planck


def _lift(expr: sp.Expr, k: int, f: tuple[sp.Expr, ...] = _F3, g: sp.Expr = _G) -> sp.Expr:
    """Coordinate ``k`` of a drift written with the symbols f, g, s: ``f_k(x, t)``, ``g(t)``,
    ``d log p(x, t)/dx_k``."""
    return expr.xreplace({f_: f[k], g_: g, s_: sp.Derivative(sp.log(_P3), X[k])})


def _fp_rhs() -> sp.Expr:
    """The registered Fokker-Planck right-hand side (``sde.fokker_planck``) in the three coordinates."""
    return summed(fokker_planck.claim["rhs"])


def _marginal_residuals(claim: dict[str, sp.Expr]) -> list[sp.Expr]:
    continuity = -sum(sp.diff(_lift(claim["drift"], k) * _P3, X[k]) for k in range(3))
    return [jet(continuity - _fp_rhs())]


marginals = register(Identity(
    id="pf.marginals",
    title="The probability flow ODE has the marginals of the SDE, for any density",
    chapter="probability_flow",
    claim={"drift": f_ - g_**2 / 2 * s_},
    check=Check(
        "continuity right-hand side minus the registered Fokker-Planck right-hand side (sde.fokker_planck), "
        "for undefined p(x, t), f_k(x, t), g(t) in D = 3 coordinates; residual written in the jet and cancelled",
        _marginal_residuals,
    ),
    template=(r"\frac{\mathrm{d}x}{\mathrm{d}t} = $drift \quad\Longrightarrow\quad "
              r"-\nabla \cdot \Bigl[\Bigl($drift\Bigr) p_t\Bigr] = "
              r"-\nabla \cdot \bigl(f\, p_t\bigr) + \frac{g^2}{2}\, \Delta p_t"),
    assumptions=("f = f(x, t) in R^D, g = g(t) > 0, s = grad log p_t(x); p_t > 0 smooth and otherwise arbitrary",
                 "checked in D = 3 coordinates: both sides are sums over coordinates of terms of one kind "
                 "(see derivations.sde), so the identity holds for every D"),
    mutants=(
        Mutant("reverse_sde_drift", {"drift": f_ - g_**2 * s_},
               r"The full $g^2$ of the reverse-time SDE's drift used without its noise: "
               r"that ODE does not keep the marginals."),
        Mutant("plus_sign", {"drift": f_ + g_**2 / 2 * s_},
               "The score term added instead of subtracted."),
        Mutant("sde_drift_only", {"drift": f_},
               "The SDE's drift alone, as if the noise could be dropped without compensation."),
    ),
    references=("song2021score",),
    scope=Scope.GENERAL,
))

# The VP SDE's probability flow, for any data law.

beta = sym("beta", positive=True)          # beta(t) at the current time
BETA_TAU = TexSymbol("beta_tau", r"\beta(\tau)", positive=True)
SCORE_TAU = TexSymbol("score_tau", r"\nabla_x \log p_\tau(x)", real=True)
X_TAU = TexSymbol("x_tau", "x", real=True)


def _vp_residuals(claim: dict[str, sp.Expr]) -> list[sp.Expr]:
    """Continuity with the claimed velocity against the registered Fokker-Planck right-hand side with the
    VP drift ``f_k = -beta x_k / 2`` and ``g^2 = beta`` (beta: its value at the current time; only
    space derivatives enter), for an undefined density in three coordinates."""
    velocity = [claim["velocity"].xreplace({BETA_TAU: beta, X_TAU: X[k],
                                            SCORE_TAU: sp.Derivative(sp.log(_P3), X[k])}) for k in range(3)]
    continuity = -sum(sp.diff(velocity[k] * _P3, X[k]) for k in range(3))
    vp = {**{_F3[k]: -beta * X[k] / 2 for k in range(3)}, _G: sp.sqrt(beta)}
    return [jet(continuity - _fp_rhs().xreplace(vp).doit())]


_VP_V = sp.Mul(sp.Rational(-1, 2), BETA_TAU, sde.Group(sp.Add(X_TAU, SCORE_TAU, evaluate=False)), evaluate=False)

vp = register(Identity(
    id="pf.vp",
    title="The probability flow ODE of the VP SDE, for any data distribution",
    chapter="probability_flow",
    claim={"velocity": _VP_V},
    check=Check(
        "continuity right-hand side minus the registered Fokker-Planck right-hand side (sde.fokker_planck) "
        "with f = -beta x/2, g^2 = beta, for an undefined p(x, t) in D = 3 coordinates; jet; cancel",
        _vp_residuals,
    ),
    template=r"\frac{\mathrm{d}x}{\mathrm{d}\tau} = $velocity",
    assumptions=("VP SDE dx = -beta(tau) x/2 dtau + sqrt(beta(tau)) dW; p_tau > 0 smooth, otherwise arbitrary",
                 "checked in D = 3 coordinates (see derivations.sde)"),
    mutants=(
        Mutant("score_sign", {"velocity": sp.Mul(sp.Rational(-1, 2), BETA_TAU, X_TAU - SCORE_TAU)},
               r"$-\tfrac{\beta}{2}(x - \nabla\log p_\tau)$: the score term with the wrong sign."),
        Mutant("reverse_sde_drift", {"velocity": -BETA_TAU * X_TAU / 2 - BETA_TAU * SCORE_TAU},
               r"$-\tfrac{\beta}{2}x - \beta \nabla\log p_\tau$: the reverse-time SDE's drift used without "
               r"its noise."),
    ),
    references=("song2021score",),
    scope=Scope.GENERAL,
    display={"velocity": _VP_V},
))

# ---------------------------------------------------------------------------------------------
# Likelihoods along the probability flow: the instantaneous change of variables.

DIV_V = TexSymbol("div_v", r"\nabla \cdot v(x_t, t)", real=True)


def _likelihood_residuals(claim: dict[str, sp.Expr]) -> list[sp.Expr]:
    """``d/dt log p_t(x_t) - rate`` along ``dx/dt = v`` equals the Fokker-Planck residual divided by ``p``
    (``sde.fokker_planck.log``) identically, for undefined ``l = log p``, ``f``, ``g^2``: so the rate is
    right whenever ``p_t`` solves the Fokker-Planck equation."""
    l, g2 = sde._L3, sde._G2f
    velocity = drift_components(claim["velocity"], l, _F3, g2)
    along = sp.diff(l, t) + sum(velocity[k] * sp.diff(l, X[k]) for k in range(3))
    rate = claim["rate"].xreplace({DIV_V: sum(sp.diff(velocity[k], X[k]) for k in range(3))})
    return [jet(along - rate - fp_residual(l, _F3, g2 / 2, X, lambda e: sp.diff(e, t)))]


likelihood = register(Identity(
    id="pf.likelihood",
    title="Likelihoods along the probability flow ODE (instantaneous change of variables)",
    chapter="probability_flow",
    claim={"velocity": F - G2 / 2 * SCORE, "rate": -DIV_V},
    check=Check(
        "d/dt log p_t(x_t) = l_t + v . grad l along the ODE, minus the claimed rate, equals the registered "
        "Fokker-Planck residual in log form (sde.fokker_planck.log), for undefined l(x, t), f_k(x, t), "
        "g(t)^2 in D = 3 coordinates; jet; cancel",
        _likelihood_residuals,
    ),
    template=(r"\frac{\mathrm{d}x_t}{\mathrm{d}t} = v(x_t, t) = $velocity \quad\Longrightarrow\quad "
              r"\frac{\mathrm{d}}{\mathrm{d}t}\log p_t(x_t) = $rate, \qquad "
              r"\log p_0(x_0) = \log p_T(x_T) + \int_0^T \nabla\cdot v(x_t, t)\,\mathrm{d}t"),
    assumptions=("p_t > 0 solves the Fokker-Planck equation of dx = f dt + g dW; p, f, g otherwise arbitrary",
                 "the last equation integrates the rate from 0 to T along one solution",
                 "checked in D = 3 coordinates (see derivations.sde)"),
    mutants=(
        Mutant("divergence_sign", {"rate": DIV_V},
               r"$+\nabla\cdot v$: the log-density read as growing where the flow spreads mass out."),
        Mutant("reverse_sde_drift", {"velocity": F - G2 * SCORE},
               r"The change of variables along the reverse-SDE drift $f - g^2\nabla\log p_t$ without its "
               r"noise: that ODE does not transport $p_t$, so its divergence does not give $\log p_t$."),
    ),
    references=("song2021score", "chen2018neural"),
    scope=Scope.GENERAL,
    code=("gencode.probability_flow.ode_log_likelihood",),
))

# ---------------------------------------------------------------------------------------------
# 2. Gaussian data under the VP SDE: an explicit, affine velocity.

a = sym("a", (0, 1), positive=True)        # signal scale sqrt(alphabar(t)), da/dt = -beta a / 2
m0 = sym("m_0", real=True)                 # data mean
v0 = sym("v_0", positive=True)             # data variance

_mu = a * m0
_var = a**2 * v0 + 1 - a**2


def _d_dt_vp(expr: sp.Expr) -> sp.Expr:
    """Time derivative when time enters through ``a`` only: ``da/dt = -beta a / 2`` (VP SDE)."""
    return sp.diff(expr, a) * (-beta * a / 2)


def _gaussian_residuals(claim: dict[str, sp.Expr]) -> list[sp.Expr]:
    v = claim["velocity"]
    score = sp.diff(gaussian_log_density(x, _mu, _var), x)
    pf_drift = -beta / 2 * x - beta / 2 * score           # f - g^2/2 score, f = -beta x/2, g^2 = beta
    return [v - pf_drift, continuity_log_residual(gaussian_log_density(x, _mu, _var), v, x, _d_dt_vp)]


gaussian = register(Identity(
    id="pf.gaussian",
    title="The probability flow ODE of the VP SDE on Gaussian data moves the exact marginals",
    chapter="probability_flow",
    claim={"velocity": -beta * a * m0 / 2 + beta * a**2 * (1 - v0) / (2 * _var) * (x - a * m0)},
    check=Check(
        "equal to f - g^2/2 times the Gaussian score, and the continuity equation l_t + v l_x + v_x = 0 "
        "for l = log N(a m_0, a^2 v_0 + 1 - a^2) with da/dt = -beta a/2; cancel",
        _gaussian_residuals,
    ),
    template=(r"x_0 \sim \mathcal{N}(m_0, v_0),\ a = \sqrt{\bar\alpha(t)}:\qquad "
              r"\frac{\mathrm{d}x}{\mathrm{d}t} = -\frac{\beta}{2}\bigl(x + \nabla_x \log p_t(x)\bigr) = $velocity"),
    assumptions=("VP SDE dx = -beta x/2 dt + sqrt(beta) dW, so da/dt = -beta a/2 and "
                 "p_t = N(a m_0, a^2 v_0 + 1 - a^2)", "0 < a < 1, v_0 > 0"),
    mutants=(
        Mutant("reverse_sde_drift",
               {"velocity": -beta / 2 * x + beta * (x - _mu) / _var},
               r"The reverse-SDE drift $f - g^2 \nabla \log p_t$ used as an ODE."),
        Mutant("drift_only", {"velocity": -beta / 2 * x},
               r"The forward drift $-\beta x / 2$ alone."),
        Mutant("variance_one", {"velocity": -beta * a * m0 / 2 + beta * a**2 * (1 - v0) / 2 * (x - a * m0)},
               r"The marginal variance $a^2 v_0 + 1 - a^2$ replaced by 1."),
    ),
    references=("song2021score",),
    scope=Scope.GENERAL,
    code=("gencode.probability_flow.VPPath.pf_velocity",),
    display={"velocity": sp.Add(
        -_frac(sp.Mul(beta, a, m0, evaluate=False), sp.Integer(2)),
        sp.Mul(_frac(sp.Mul(beta, a**2, 1 - v0, evaluate=False),
                     sp.Mul(2, sp.Add(sp.Mul(a**2, v0, evaluate=False), 1, -a**2, evaluate=False), evaluate=False)),
               sp.Add(x, -sp.Mul(a, m0, evaluate=False), evaluate=False), evaluate=False),
        evaluate=False)},
))

# ---------------------------------------------------------------------------------------------
# 3. DDIM is Euler's method on the PF-ODE in (xbar, sigma).

xt = sym("x_t", real=True)
eps = sym("epsilon", real=True)
ab_s = sym("alphabar_s", (0, 1), positive=True)
alpha_s = sym("alpha_s", (0, 1), positive=True)  # per-step alpha, for the notation mutant
A = sym("A", (0, 1), positive=True)              # sqrt(alphabar) at the current time


def _pf_in_sigma() -> sp.Expr:
    """``d xbar / d sigma`` from the VP PF-ODE ``dx/dt = -beta/2 (x - eps/S)``, ``S = sqrt(1 - A^2)``.

    The score is ``-eps / S`` (the noise predictor's form); ``dA/dt = -beta A/2`` and
    ``dS/dt = -A (dA/dt) / S`` since ``A^2 + S^2 = 1``.
    """
    S = sp.sqrt(1 - A**2)
    dA = -beta * A / 2
    dS = -A * dA / S
    dx = -beta / 2 * (x - eps / S)
    dxbar = dx / A - dA * x / A**2
    dsigma = (dS * A - S * dA) / A**2
    return sp.cancel(dxbar / dsigma)


def _ddim_residuals(claim: dict[str, sp.Expr]) -> list[sp.Expr]:
    velocity = _pf_in_sigma()                      # = eps, derived
    sigma = lambda ab: sp.sqrt(1 - ab) / sp.sqrt(ab)  # noqa: E731
    euler = sp.sqrt(ab_s) * (xt / sp.sqrt(alphabar_t)
                             + (sigma(ab_s) - sigma(alphabar_t)) * velocity.xreplace({x: xt}))
    return [velocity - eps, claim["x_s"] - euler]


update = register(Identity(
    id="ddim.update",
    title="The deterministic DDIM step is an Euler step of the probability flow ODE",
    chapter="probability_flow",
    claim={"x_s": sp.sqrt(ab_s) * (xt - sp.sqrt(1 - alphabar_t) * eps) / sp.sqrt(alphabar_t)
           + sp.sqrt(1 - ab_s) * eps},
    check=Check(
        "the VP PF-ODE rewritten in xbar = x/sqrt(alphabar), sigma = sqrt(1-alphabar)/sqrt(alphabar) "
        "is d xbar/d sigma = epsilon (chain rule, cancel); the DDIM step equals its Euler step",
        _ddim_residuals,
    ),
    template=(r"x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1 - \bar\alpha_s}\,\epsilon_\theta(x_t, t) = $x_s"),
    assumptions=("0 < alphabar_t < alphabar_s < 1 (s < t), epsilon = epsilon_theta(x_t, t)",
                 "hat x_0 = (x_t - sqrt(1 - alphabar_t) epsilon) / sqrt(alphabar_t)"),
    mutants=(
        Mutant("per_step_alpha",
               {"x_s": sp.sqrt(alpha_s) * (xt - sp.sqrt(1 - alpha_t) * eps) / sp.sqrt(alpha_t)
                + sp.sqrt(1 - alpha_s) * eps},
               r"DDPM's per-step $\alpha_t$ read where DDIM's $\alpha_t$ (which is DDPM's "
               r"$\bar\alpha_t$) belongs.",
               source="notation clash between DDIM (Song, Meng, Ermon 2021, who write alpha_t for "
                      "DDPM's alphabar_t) and DDPM (Ho et al. 2020)"),
        Mutant("no_renoising", {"x_s": sp.sqrt(ab_s) * (xt - sp.sqrt(1 - alphabar_t) * eps) / sp.sqrt(alphabar_t)},
               r"The predicted $\hat x_0$ rescaled without re-adding the predicted noise."),
    ),
    references=("song2021ddim", "song2021score"),
    scope=Scope.GENERAL,
    code=("gencode.probability_flow.ddim_step",),
    display={"x_s": sp.Add(
        sp.Mul(sp.sqrt(ab_s), _frac(sp.Add(xt, -sp.Mul(sp.sqrt(1 - alphabar_t), eps, evaluate=False),
                                           evaluate=False), sp.sqrt(alphabar_t)), evaluate=False),
        sp.Mul(sp.sqrt(1 - ab_s), eps, evaluate=False), evaluate=False)},
))

# ---------------------------------------------------------------------------------------------
# 4. The DDIM variance for consecutive steps, and what eta = 1 means.

eta = sym("eta", (0, 1), positive=True)

variance = register(Identity(
    id="ddim.variance",
    title=r"DDIM's step variance is $\eta^2$ times DDPM's posterior variance (consecutive steps)",
    chapter="probability_flow",
    claim={"variance": eta**2 * (1 - alphabar_tm1) / (1 - alphabar_t) * beta_t},
    check=equal(
        {"variance": eta**2 * (1 - alphabar_tm1) / (1 - alphabar_t) * (1 - alphabar_t / alphabar_tm1)},
        "DDIM's sigma_t(eta)^2 with s = t - 1 and alphabar_t = alpha_t alphabar_{t-1}; cancel",
        definitions=SCHEDULE,
    ),
    template=(r"\sigma_{t \to t-1}^2(\eta) = \eta^2\, \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}"
              r"\Bigl(1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}}\Bigr) = $variance = \eta^2 \tilde\beta_t"),
    assumptions=("consecutive steps s = t - 1", "alphabar_t = alpha_t alphabar_{t-1}, beta_t = 1 - alpha_t",
                 "0 <= eta <= 1"),
    mutants=(
        Mutant("eta_one_is_beta", {"variance": eta**2 * beta_t},
               r"$\eta = 1$ said to give DDPM with the forward variance $\beta_t$; it gives the "
               r"posterior variance $\tilde\beta_t$.",
               source="DDIM (Song, Meng, Ermon 2021): \"eta = 1 is DDPM\" holds only with the "
                      "beta_tilde variance and consecutive steps"),
        Mutant("ddpm_equals_ddim", {"variance": (1 - alphabar_tm1) / (1 - alphabar_t) * beta_t},
               r"\"DDPM is equivalent to DDIM\" read as the same sampling step: every $\eta$, "
               r"$\eta = 0$ included, would then carry DDPM's variance $\tilde\beta_t$. The two share "
               r"marginals, not paths.",
               source="source notes 001 (the DDIM and probability flow ODE section)"),
    ),
    references=("song2021ddim", "ho2020denoising"),
    scope=Scope.GENERAL,
    code=("gencode.probability_flow.ddim_sigma",),
))
