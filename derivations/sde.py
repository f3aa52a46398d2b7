"""Ito SDEs for diffusion models: transition kernels, Fokker-Planck, and the reverse-time SDE.

Time convention: data at ``t = 0``, noise at ``t = T``.  A (scalar-diffusion) Ito SDE

    dx = f(x, t) dt + g(t) dW

moves a density ``p_t`` according to the Fokker-Planck equation
``d_t p = -div(f p) + g^2 / 2 Laplacian p``.  The results below are registered with wrong variants
that their checks refute:

1. ``sde.vp.kernel`` and ``sde.ve.kernel``: the Gaussian transition kernels of the variance
   preserving (VP) and variance exploding (VE) SDEs, obtained by solving the moment ODEs that one
   Euler-Maruyama step implies (coefficient of ``h`` in the step's moments);
2. ``sde.ve.score``: the score of the VE kernel, ``-z / sigma`` (not ``-z / sigma^2``);
3. ``sde.fokker_planck.vp`` (1-D) and ``sde.fokker_planck.vp_nd`` (3-D coordinates): Gaussian
   marginals of the VP SDE make the Fokker-Planck residual vanish; ``sde.heat``: Brownian motion
   and the heat equation;
4. ``sde.ddpm_limit``: one DDPM step is one Euler-Maruyama step of the VP SDE up to ``O(h^2)``;
5. ``sde.reverse``: Anderson's reverse-time SDE, checked through its Fokker-Planck equation for an
   arbitrary density (undefined functions) and for the VP Gaussian marginals;
6. ``sde.langevin.stationary``: Langevin dynamics leaves its target invariant (the corrector of
   predictor-corrector sampling).

PDE checks are written divided by ``p`` in terms of ``l = log p`` (DESIGN.md): the Fokker-Planck
residual is ``l_t + f_x + f l_x - g^2/2 (l_xx + l_x^2)``.  Time enters the VP marginals only through
``a_t = exp(-B_t / 2)`` with ``B_t = int_0^t beta``, so ``d/dt = (da/dt) d/da = -(beta a / 2) d/da``
(chain rule) and every residual is rational in its symbols: ``cancel`` decides it exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from .core import Check, Claim, GaussianFactor, Identity, Mutant, equal, register, sym

UNIT = (0, 1)


class TexSymbol(sp.Symbol):
    """A placeholder symbol printed as a fixed piece of LaTeX (``f(x, t)``, a score, ``g(t)^2``)."""

    def __new__(cls, name: str, tex: str, **assumptions: bool) -> TexSymbol:
        obj = super().__new__(cls, name, **assumptions)
        obj._tex = tex
        return obj

    def _latex(self, printer) -> str:
        return self._tex



x = sym("x", real=True)
x0 = sym("x_0", real=True)
z = sym("z", real=True)
mu0 = sym("mu_0", real=True)
v0 = sym("v_0", positive=True)          # variance of the initial Gaussian
t = sym("t", positive=True)
h = sym("h", positive=True)             # the time step of Euler-Maruyama
beta = TexSymbol("beta_t", r"\beta(t)", positive=True)  # the VP rate at the current time
B = sym("B_t", positive=True)           # int_0^t beta(s) ds
a = sym("a_t", UNIT, positive=True)     # exp(-B_t / 2), the VP signal scale
sigma_t = sym("sigma_t", (1, 3), positive=True)
sigma_0 = sym("sigma_0", (0, 1), positive=True)
sigma_dot = sym("sigmadot_t", positive=True)
sigma = sym("sigma", positive=True)


F = TexSymbol("f_placeholder", r"f(x, t)", real=True)
G2 = TexSymbol("g2_placeholder", r"g(t)^2", positive=True)
SCORE = TexSymbol("score_placeholder", r"\nabla_x \log p_t(x)", real=True)


def _add(*args: sp.Expr) -> sp.Expr:
    return sp.Add(*args, evaluate=False)


def _mul(*args: sp.Expr) -> sp.Expr:
    return sp.Mul(*args, evaluate=False)


# ---------------------------------------------------------------------------------------------
# Moment ODEs from one Euler-Maruyama step


def em_moment_rates(drift_coef: sp.Expr, g2: sp.Expr, mean: sp.Expr, variance: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """Rates ``dm/dt`` and ``dv/dt`` of the linear SDE ``dx = c x dt + g dW`` at moments ``(m, v)``.

    One Euler-Maruyama step ``x + c x h + g sqrt(h) z`` of ``x ~ (m, v)`` has mean ``(1 + c h) m`` and
    variance ``(1 + c h)^2 v + g^2 h``; the rates are the coefficients of ``h`` (the limit of the
    increment over ``h``): ``c m`` and ``2 c v + g^2``.
    """
    m_next = (1 + drift_coef * h) * mean
    v_next = (1 + drift_coef * h) ** 2 * variance + g2 * h
    return sp.expand(m_next).coeff(h, 1), sp.expand(v_next).coeff(h, 1)


def _kernel_residuals(d_dt: Callable[[sp.Expr], sp.Expr], drift_coef: sp.Expr, g2: sp.Expr,
                      start: dict) -> Callable[[Claim], list[sp.Expr]]:
    """Residuals of the moment ODEs and of the initial condition ``(m, v) = (x_0, 0)``."""

    def residuals(claim: Claim) -> list[sp.Expr]:
        m, v = claim["mean"], claim["variance"]
        rate_m, rate_v = em_moment_rates(drift_coef, g2, m, v)
        return [d_dt(m) - rate_m, d_dt(v) - rate_v,
                m.xreplace(start) - x0, v.xreplace(start)]

    return residuals


vp_kernel = register(Identity(
    id="sde.vp.kernel",
    title="The transition kernel of the variance preserving SDE",
    chapter="sde",
    claim={"mean": x0 * sp.exp(-B / 2), "variance": 1 - sp.exp(-B)},
    check=Check(
        "moment ODEs dm/dt = -beta m/2, dv/dt = -beta v + beta (h-coefficients of one Euler-Maruyama "
        "step), time derivative beta d/dB; initial condition at B = 0; cancel",
        _kernel_residuals(lambda e: beta * sp.diff(e, B), -beta / 2, beta, {B: sp.Integer(0)}),
    ),
    template=(r"x_t \mid x_0 \sim \mathcal{N}\!\left($mean,\ \left($variance\right)\mathbf{I}\right),"
              r"\qquad B_t = \int_0^t \beta(s)\,\mathrm{d}s"),
    assumptions=("dx = -beta(t) x / 2 dt + sqrt(beta(t)) dW, beta > 0, started at x_0",
                 "B_t = int_0^t beta(s) ds, so dB_t/dt = beta(t) and B_0 = 0",
                 "linear SDE: the kernel is Gaussian; its moments solve linear ODEs (unique solutions)"),
    mutants=(
        Mutant("mean_without_half", {"mean": x0 * sp.exp(-B)},
               r"The mean decays as $e^{-B_t}$: the factor $\tfrac12$ of the drift is lost."),
        Mutant("variance_with_half", {"variance": 1 - sp.exp(-B / 2)},
               r"The variance written with the mean's exponent, $1 - e^{-B_t/2}$."),
        Mutant("variance_is_signal", {"variance": sp.exp(-B)},
               r"The signal power $e^{-B_t}$ written for the noise variance."),
    ),
    references=("song2021score",),
    code=("gencode.sde.VPSDE.marginal_scale", "gencode.sde.VPSDE.marginal_std"),
))

ve_kernel = register(Identity(
    id="sde.ve.kernel",
    title="The transition kernel of the variance exploding SDE",
    chapter="sde",
    claim={"mean": x0, "variance": sigma_t**2 - sigma_0**2},
    check=Check(
        "moment ODEs dm/dt = 0, dv/dt = g^2 = d(sigma^2)/dt (h-coefficients of one Euler-Maruyama "
        "step), time derivative sigmadot d/dsigma; initial condition at sigma_t = sigma_0; cancel",
        _kernel_residuals(lambda e: sigma_dot * sp.diff(e, sigma_t), sp.Integer(0),
                          2 * sigma_t * sigma_dot, {sigma_t: sigma_0}),
    ),
    template=(r"x_t \mid x_0 \sim \mathcal{N}\!\left($mean,\ \left($variance\right)\mathbf{I}\right),"
              r"\qquad \mathrm{d}x = \sqrt{\tfrac{\mathrm{d}\sigma_t^2}{\mathrm{d}t}}\,\mathrm{d}W"),
    assumptions=("dx = g(t) dW with g(t)^2 = d(sigma_t^2)/dt = 2 sigma_t sigmadot_t, started at x_0 at t = 0",
                 "sigma_t increasing, sigma_0 = sigma(t = 0) > 0"),
    mutants=(
        Mutant("variance_sigma_squared", {"variance": sigma_t**2},
               r"$\sigma_t^2$ alone: true only if the data already carry noise of variance $\sigma_0^2$ "
               r"at $t = 0$ (the approximation that implementations make), not for the SDE started at $x_0$."),
        Mutant("difference_of_stds", {"variance": (sigma_t - sigma_0) ** 2},
               r"$(\sigma_t - \sigma_0)^2$: standard deviations subtracted instead of variances."),
    ),
    references=("song2021score", "song2019generative"),
    code=("gencode.sde.VESDE.marginal_scale", "gencode.sde.VESDE.marginal_std"),
    display={"variance": _add(sigma_t**2, -sigma_0**2)},
))

# ---------------------------------------------------------------------------------------------
# The score of the VE kernel (score_sde_pytorch issue 26)

_ve_log_kernel = GaussianFactor(x, x0, sigma**2).log_density()

ve_score = register(Identity(
    id="sde.ve.score",
    title=r"The score of the VE kernel is $-z/\sigma$",
    chapter="sde",
    claim={"score": -z / sigma},
    check=equal(
        {"score": sp.diff(_ve_log_kernel, x).xreplace({x: x0 + sigma * z})},
        "differentiate log N(x; x_0, sigma^2); substitute x = x_0 + sigma z; cancel",
    ),
    template=r"\nabla_x \log \mathcal{N}(x; x_0, \sigma^2 \mathbf{I})\Big|_{x = x_0 + \sigma z} = $score",
    assumptions=("sigma^2 = sigma_t^2 - sigma_0^2 > 0 is the kernel variance", "z ~ N(0, I)"),
    mutants=(
        Mutant("divided_by_variance", {"score": -z / sigma**2},
               r"$-z/\sigma^2$: the formula $-(x - x_0)/\sigma^2$ with $x - x_0$ replaced by the "
               r"standardised $z$ instead of $\sigma z$.",
               source="readers' question on score_sde_pytorch (issue 26), about the VE loss"),
        Mutant("sign", {"score": z / sigma}, "The sign flipped: the score points away from x_0."),
    ),
    references=("song2021score",),
))

# ---------------------------------------------------------------------------------------------
# Fokker-Planck: the residual divided by p, in terms of l = log p


def fp_residual(l: sp.Expr, f: sp.Expr, coef: sp.Expr, xs: tuple[sp.Expr, ...],
                d_dt: Callable[[sp.Expr], sp.Expr]) -> sp.Expr:
    """``(d_t p + div(f p) - coef Laplacian p) / p`` for ``p = exp(l)``, coordinates ``xs``.

    ``f`` is a tuple of drift components (one per coordinate) or, in 1-D, an expression.  Dividing by
    ``p``: ``d_t p / p = l_t``, ``div(f p) / p = div f + f . grad l``,
    ``Laplacian p / p = Laplacian l + |grad l|^2``.
    """
    fs = f if isinstance(f, tuple) else (f,)
    grad = [sp.diff(l, xi) for xi in xs]
    div_f = sum(sp.diff(fi, xi) for fi, xi in zip(fs, xs))
    f_dot_grad = sum(fi * gi for fi, gi in zip(fs, grad))
    lap = sum(sp.diff(gi, xi) for gi, xi in zip(grad, xs))
    return d_dt(l) + div_f + f_dot_grad - coef * (lap + sum(gi**2 for gi in grad))


def vp_d_dt(expr: sp.Expr) -> sp.Expr:
    """Time derivative of an expression whose time dependence is ``a_t = exp(-B_t/2)``: ``-(beta a/2) d/da``."""
    return -beta * a / 2 * sp.diff(expr, a)


def _gaussian_log(xs: tuple[sp.Expr, ...], means: tuple[sp.Expr, ...], variance: sp.Expr) -> sp.Expr:
    """``log N(x; m, v I)`` up to the constant ``-D/2 log(2 pi)`` (constants do not enter the residual)."""
    return sum(-(xi - mi) ** 2 / (2 * variance) for xi, mi in zip(xs, means)) - len(xs) * sp.log(variance) / 2


VP_FP_CLAIM = {"drift": -beta * x / 2, "coef": beta / 2, "mean": a * mu0, "variance": a**2 * v0 + 1 - a**2}
VP_FP_DISPLAY = {"drift": _mul(sp.Rational(-1, 2), beta, x), "mean": _mul(a, mu0),
                 "variance": _add(_mul(a**2, v0), 1, -a**2)}


def _vp_fp_residuals(claim: Claim) -> list[sp.Expr]:
    l = _gaussian_log((x,), (claim["mean"],), claim["variance"])
    return [fp_residual(l, claim["drift"], claim["coef"], (x,), vp_d_dt)]


def _vp_fp_nd_residuals(claim: Claim, dim: int = 3) -> list[sp.Expr]:
    xs = sp.symbols(f"x_1:{dim + 1}", real=True)
    mus = sp.symbols(f"mu_1:{dim + 1}", real=True)
    per = [{x: xi, mu0: mi} for xi, mi in zip(xs, mus)]
    means = tuple(claim["mean"].xreplace(s) for s in per)
    drifts = tuple(claim["drift"].xreplace(s) for s in per)
    l = _gaussian_log(xs, means, claim["variance"])
    return [fp_residual(l, drifts, claim["coef"], xs, vp_d_dt)]


_FP_MUTANTS = (
    Mutant("diffusion_without_half", {"coef": beta},
           r"The diffusion term written $g^2 \Delta p$ instead of $\tfrac12 g^2 \Delta p$."),
    Mutant("drift_sign", {"drift": beta * x / 2},
           "The drift's sign flipped (a process that expands instead of contracting)."),
    Mutant("variance_without_injected_noise", {"variance": a**2 * v0},
           r"The variance $a_t^2 v_0$: only the shrinking of the initial spread, not the injected noise."),
)

def _vp_fp_identity(id_: str, title: str, method: str, residuals, template: str,
                    assumptions: tuple[str, ...]) -> Identity:
    """The VP Fokker-Planck identity in 1-D or D-D (same claim, mutants and code; different check)."""
    return register(Identity(
        id=id_, title=title, chapter="sde", claim=VP_FP_CLAIM, check=Check(method, residuals),
        template=template, assumptions=assumptions, mutants=_FP_MUTANTS,
        references=("song2021score", "risken1996fokker"),
        code=("gencode.sde.VPSDE.drift", "gencode.sde.VPSDE.diffusion", "gencode.sde.euler_maruyama"),
        display=VP_FP_DISPLAY,
    ))


vp_fokker_planck = _vp_fp_identity(
    "sde.fokker_planck.vp",
    "Gaussian marginals of the VP SDE solve its Fokker-Planck equation (1-D)",
    "residual (d_t p + d_x(f p) - coef d_xx p)/p in l = log p; d/dt = -(beta a/2) d/da; cancel",
    _vp_fp_residuals,
    r"\partial_t p_t(x) = -\partial_x\!\left[\left($drift\right) p_t(x)\right] + $coef\,"
    r"\partial_x^2 p_t(x) \quad\text{is solved by}\quad p_t = \mathcal{N}\!\left($mean,\ $variance\right)",
    ("VP SDE dx = -beta(t) x/2 dt + sqrt(beta(t)) dW, so f = -beta x/2, g^2 = beta",
     "a_t = exp(-B_t/2), B_t = int_0^t beta, so da_t/dt = -beta(t) a_t / 2",
     "p_0 = N(mu_0, v_0) (mixtures follow: the equation is linear in p)"),
)

vp_fokker_planck_nd = _vp_fp_identity(
    "sde.fokker_planck.vp_nd",
    "Gaussian marginals of the VP SDE solve its Fokker-Planck equation (in D = 3 coordinates)",
    "residual (d_t p + div(f p) - coef Laplacian p)/p in l = log p with x = (x_1, x_2, x_3), "
    "mu_0 = (mu_1, mu_2, mu_3); d/dt = -(beta a/2) d/da; cancel",
    _vp_fp_nd_residuals,
    r"\partial_t p_t(x) = -\nabla \cdot \left[\left($drift\right) p_t(x)\right] + $coef\,"
    r"\Delta p_t(x) \quad\text{is solved by}\quad p_t = \mathcal{N}\!\left($mean,\ "
    r"\left($variance\right)\mathbf{I}\right)",
    ("x, mu_0 in R^3; p_0 = N(mu_0, v_0 I)",
     "VP SDE dx = -beta(t) x/2 dt + sqrt(beta(t)) dW with W a 3-D Brownian motion",
     "a_t = exp(-B_t/2), da_t/dt = -beta(t) a_t / 2"),
)


def _heat_residuals(claim: Claim) -> list[sp.Expr]:
    l = _gaussian_log((x,), (claim["mean"],), claim["variance"])
    return [fp_residual(l, sp.Integer(0), claim["coef"], (x,), lambda e: sp.diff(e, t))]


heat = register(Identity(
    id="sde.heat",
    title="Brownian motion and the heat equation",
    chapter="sde",
    claim={"coef": sp.Rational(1, 2), "mean": mu0, "variance": v0 + t},
    check=Check("heat-equation residual (d_t p - coef d_xx p)/p in l = log p; cancel", _heat_residuals),
    template=(r"\partial_t p_t(x) = $coef\, \partial_x^2 p_t(x) \quad\text{is solved by}\quad "
              r"p_t = \mathcal{N}\!\left($mean,\ $variance\right)"),
    assumptions=("x_t = x_0 + W_t (f = 0, g = 1) with x_0 ~ N(mu_0, v_0)",),
    mutants=(
        Mutant("unit_coefficient", {"coef": sp.Integer(1)},
               r"$\partial_t p = \partial_x^2 p$: that equation is solved with variance $v_0 + 2t$, "
               r"the law of $x_0 + \sqrt{2}\, W_t$."),
        Mutant("variance_grows_like_t_squared", {"variance": v0 + t**2},
               r"Variance $v_0 + t^2$: the spread of a straight-line motion, not of diffusion."),
    ),
    references=("oksendal2003stochastic",),
    code=("gencode.sde.euler_maruyama",),
    display={"variance": _add(v0, t)},
))

# ---------------------------------------------------------------------------------------------
# DDPM as a discretisation of the VP SDE


def _ddpm_residuals(claim: Claim) -> list[sp.Expr]:
    em_coef = 1 + (-beta / 2) * h      # Euler-Maruyama: x + f h with f = -beta x / 2
    ddpm_coef = sp.series(sp.sqrt(1 - beta * h), h, 0, 2).removeO()  # sqrt(1 - beta_i), beta_i = beta h
    return [claim["mean_coef"] - em_coef, ddpm_coef - claim["mean_coef"], claim["variance"] - beta * h]


ddpm_limit = register(Identity(
    id="sde.ddpm_limit",
    title="A DDPM step is an Euler-Maruyama step of the VP SDE, up to O(h^2)",
    chapter="sde",
    claim={"mean_coef": 1 - beta * h / 2, "variance": beta * h},
    check=Check("Euler-Maruyama step coefficients; Taylor series of sqrt(1 - beta h) to first order in h; cancel",
                _ddpm_residuals),
    template=(r"x_{t+h} = \left($mean_coef\right) x_t + \sqrt{$variance}\, z \quad\text{and}\quad "
              r"\sqrt{1 - \beta_i} = $mean_coef + O(h^2) \quad\text{for } \beta_i = \beta(t)\, h"),
    assumptions=("VP SDE with f = -beta(t) x/2, g^2 = beta(t); step h = T/N", "DDPM step x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z"),
    mutants=(
        Mutant("coefficient_without_half", {"mean_coef": 1 - beta * h},
               r"The contraction $1 - \beta h$: the factor $\tfrac12$ of the VP drift lost."),
        Mutant("variance_halved", {"variance": beta * h / 2},
               r"Noise of variance $\beta h / 2$: $g^2$ confused with $g^2/2$."),
    ),
    references=("song2021score", "ho2020denoising"),
    code=("gencode.sde.VPSDE.ddpm_schedule",),
    display={"mean_coef": _add(1, _mul(sp.Rational(-1, 2), beta, h)), "variance": _mul(beta, h)},
))

# ---------------------------------------------------------------------------------------------
# The reverse-time SDE (Anderson 1982)

_lf = sp.Function("l")(x, t)     # an arbitrary log-density l = log p_t(x)
_ff = sp.Function("f")(x, t)     # an arbitrary drift
_gf = sp.Function("g2")(t)       # an arbitrary g(t)^2


def jets(expr: sp.Expr, *functions: sp.Expr) -> sp.Expr:
    """Replace each undefined function and its derivatives by a fresh symbol (its value at a point).

    A residual that is a polynomial in these *jet variables* vanishes for every function iff it
    vanishes as a polynomial, and it can be evaluated at random points to refute a wrong claim.
    """
    rule = {}
    for fn in functions:
        for d in expr.atoms(sp.Derivative):
            if d.expr == fn:
                name = fn.func.__name__ + "_" + "".join(str(v) * n for v, n in d.variable_count)
                rule[d] = sp.Symbol(name, real=True)
        rule[fn] = sp.Symbol(fn.func.__name__ + "_value", real=True)
    return expr.xreplace(rule)


def _reverse_residuals(claim: Claim) -> list[sp.Expr]:
    """Forward FP residual plus reverse FP residual: zero iff p_{T-s} solves the reverse equation
    whenever p_t solves the forward one.

    The reverse SDE ``dx = b dt + g dW_bar`` runs with ``dt < 0``; in the forward time ``s = T - t``
    its drift is ``-b`` and ``d_s log p_{T-s} = -l_t``.
    """
    out = []
    instances = [
        (_lf, _ff, _gf, lambda e: sp.diff(e, t)),  # any density, any drift, any g
        (_gaussian_log((x,), (a * mu0,), a**2 * v0 + 1 - a**2), -beta * x / 2, beta, vp_d_dt),  # VP
    ]
    for l, f, g2, d_dt in instances:
        b = claim["drift"].xreplace({F: f, G2: g2, SCORE: sp.diff(l, x)})
        forward = fp_residual(l, f, g2 / 2, (x,), d_dt)
        reverse = fp_residual(l, -b, g2 / 2, (x,), lambda e: -d_dt(e))
        out.append(jets(forward + reverse, _lf, _ff, _gf))
        if l is not _lf:
            out.append(forward)  # the Gaussian instance solves the forward equation
    return out


reverse = register(Identity(
    id="sde.reverse",
    title="The reverse-time SDE (Anderson)",
    chapter="sde",
    claim={"drift": F - G2 * SCORE},
    check=Check(
        "forward + reverse Fokker-Planck residuals in l = log p cancel, for undefined l(x, t), f(x, t), "
        "g(t)^2 and for the VP Gaussian marginals; cancel",
        _reverse_residuals,
    ),
    template=r"\mathrm{d}x = \left[$drift\right]\mathrm{d}t + g(t)\,\mathrm{d}\bar{W}, \qquad \mathrm{d}t < 0",
    assumptions=("p_t solves the forward Fokker-Planck equation of dx = f dt + g dW",
                 "time runs from T down to 0; W_bar is a Brownian motion in reversed time"),
    mutants=(
        Mutant("probability_flow_drift", {"drift": F - G2 * SCORE / 2},
               r"The probability-flow drift $f - \tfrac12 g^2 \nabla \log p_t$ used together with noise: "
               r"that drift belongs to the ODE, without noise."),
        Mutant("score_sign", {"drift": F + G2 * SCORE},
               "The score term with a plus sign: reverse-time noise is not cancelled but doubled."),
    ),
    references=("anderson1982reverse", "song2021score"),
    code=("gencode.sde.reverse_sde_sample",),
))

# ---------------------------------------------------------------------------------------------
# Langevin dynamics leaves its target invariant

_l_any = sp.Function("l")(x)
_l_quartic = -x**4 / 4 + x**3 / 3 - x  # a non-Gaussian log-density (up to its constant)
LANGEVIN_SCORE = TexSymbol("langevin_score_placeholder", r"\nabla_x \log p(x)", real=True)


def _langevin_residuals(claim: Claim) -> list[sp.Expr]:
    out = []
    for l in (_l_any, _l_quartic):
        f = claim["drift"].xreplace({LANGEVIN_SCORE: sp.diff(l, x)})
        out.append(jets(fp_residual(l, f, claim["g2"] / 2, (x,), lambda e: sp.Integer(0)), _l_any))
    return out


langevin = register(Identity(
    id="sde.langevin.stationary",
    title="Langevin dynamics leaves its target density invariant",
    chapter="sde",
    claim={"drift": LANGEVIN_SCORE, "g2": sp.Integer(2)},
    check=Check(
        "stationary Fokker-Planck residual (div(f p) - g^2/2 Laplacian p)/p in l = log p, for an "
        "undefined l(x) and for l = -x^4/4 + x^3/3 - x; cancel",
        _langevin_residuals,
    ),
    template=(r"\mathrm{d}x = $drift\,\mathrm{d}t + \sqrt{$g2}\,\mathrm{d}W \quad\text{has stationary "
              r"density } p"),
    assumptions=("p > 0 smooth, l = log p", "stationary: d_t p = 0"),
    mutants=(
        Mutant("noise_without_sqrt2", {"g2": sp.Integer(1)},
               r"Noise $\mathrm{d}W$ instead of $\sqrt{2}\,\mathrm{d}W$ (a step $x + \epsilon s + "
               r"\sqrt{\epsilon} z$): the chain then samples $\propto p^2$."),
        Mutant("half_drift", {"drift": LANGEVIN_SCORE / 2},
               r"Drift $\tfrac12 \nabla \log p$ with noise $\sqrt 2\,\mathrm{d}W$: the chain samples "
               r"$\propto p^{1/2}$."),
    ),
    references=("song2019generative", "song2021score"),
    code=("gencode.sde.langevin_corrector",),
))
