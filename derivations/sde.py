"""Ito SDEs for diffusion models: the generator, Fokker-Planck, transition kernels, time reversal.

Time convention: data at ``t = 0``, noise at ``t = T``.  A (scalar-diffusion) Ito SDE in ``R^D``

    dx = f(x, t) dt + g(t) dW

is simulated by Euler-Maruyama, ``x + f h + g sqrt(h) z``.  Everything below is derived from that
step:

1. ``sde.generator``: Taylor-expanding a test function ``phi`` and averaging over ``z`` gives
   ``E[phi(x + f h + g sqrt(h) z)] = phi + h (f . grad phi + g^2/2 Laplacian phi) + O(h^2)``, for
   arbitrary ``f``, ``g``, ``phi`` (Ito's formula in the weak form);
2. ``sde.fokker_planck``: integration by parts as a pointwise identity: ``(L phi) p - phi (L* p)`` is the
   divergence of an explicit flux, for arbitrary ``f``, ``g``, ``p``, ``phi``; hence
   ``d_t p = -div(f p) + g^2/2 Laplacian p``; ``sde.fokker_planck.log``: the same equation divided by
   ``p``, in ``l = log p`` (the form every later PDE check uses);
3. ``sde.moment_odes``, ``sde.vp.kernel``, ``sde.ve.kernel``: the moments of one Euler-Maruyama step
   of a linear SDE give the moment ODEs, solved by the Gaussian kernels of the VP and VE SDEs;
4. ``sde.ve.score``: the score of the VE kernel, ``-z / sigma`` (not ``-z / sigma^2``);
5. ``sde.fokker_planck.vp``, ``sde.fokker_planck.vp_nd``, ``sde.heat``: Gaussian solutions;
6. ``sde.ddpm_limit``: a DDPM step (``beta_i = beta(t_i) h``, right endpoint) agrees with the
   Euler-Maruyama step of the VP SDE (coefficients at the left endpoint ``t_{i-1}``) up to ``O(h^2)``,
   for any smooth ``beta``;
7. ``sde.reverse``: Anderson's reverse-time SDE, for an arbitrary density, drift and ``g``;
8. ``sde.langevin.stationary``: Langevin dynamics leaves any smooth positive density invariant.

**Dimension.** "For every D" statements are checked in ``D = 3`` coordinates with every function
depending on all three (so cross-derivatives are present).  The argument that this suffices: every
operator here (divergence, Laplacian, ``f . grad``, ``|grad l|^2``, the Taylor terms of ``phi``) is a
sum over coordinates (or pairs of coordinates) of terms of one of the kinds that occur for ``D = 3``
(diagonal ``i = j`` and off-diagonal ``i != j``), and each residual is the corresponding sum of
per-coordinate residuals, each of which vanishes as a polynomial in the jet of the functions.  Adding
a coordinate adds terms of the same kinds, never a new kind; so the identities hold for every ``D``.

**Arbitrary functions.** Undefined SymPy functions stand for "any density / drift / test function";
a residual is written in their *jet* (each derivative replaced by an independent symbol, which is
legitimate because the values of a smooth function's derivatives at one point can be chosen freely),
so it is a polynomial that ``cancel`` decides, and a wrong variant is refuted at a random point.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from itertools import product
from math import factorial

import sympy as sp
from sympy.core.function import AppliedUndef

from .core import held_add as _add, held_mul as _mul  # unevaluated, for display
from .core import Check, Claim, GaussianFactor, TexSymbol, Identity, Mutant, Scope, equal, function, gaussian_moment, register, sym

UNIT = (0, 1)


class Group(sp.Function):
    """``(expr)`` in print, ``expr`` for every computation (``Derivative(Group(f p), x)`` prints
    :math:`\\partial_x (f p)`; SymPy prints a derivative of a product without parentheses)."""

    nargs = 1

    def doit(self, **hints):
        return self.args[0].doit(**hints) if hints.get("deep", True) else self.args[0]

    def _eval_derivative(self, s):
        return sp.diff(self.args[0], s)

    def _latex(self, printer, exp=None):
        text = rf"\left({printer._print(self.args[0])}\right)"
        return text if exp is None else f"{text}^{{{exp}}}"


# ---------------------------------------------------------------------------------------------
# Jets of undefined functions, and statements in D = 3 coordinates


def jet(expr: sp.Expr) -> sp.Expr:
    """Replace every undefined function and each of its derivatives by an independent symbol.

    For smooth functions the values of a function and of its partial derivatives at one point can be
    chosen independently, so a PDE identity holds for *every* function exactly when the residual,
    written in these jet symbols, is identically zero; a wrong variant is refuted by evaluating it at a
    random point.  A function named ``p`` (a density) becomes a positive symbol.

    Example:
        >>> x = sp.Symbol("x", real=True)
        >>> p = sp.Function("p")(x)
        >>> jet(sp.diff(p**2, x))
        2*p*p_x
    """
    expr = sp.sympify(expr).doit()
    reps: dict[sp.Expr, sp.Symbol] = {}
    for d in expr.atoms(sp.Derivative):
        if isinstance(d.expr, AppliedUndef):
            wrt = "".join(str(v) * n for v, n in d.variable_count)
            reps[d] = sp.Symbol(f"{d.expr.func}_{wrt}", real=True)
    expr = expr.xreplace(reps)
    funcs = {f: sp.Symbol(str(f.func), positive=str(f.func) in ("p", "g"), real=True)
             for f in expr.atoms(AppliedUndef)}
    return expr.xreplace(funcs)


X = sp.symbols("x_1:4", real=True)      # three coordinates stand for R^D (see the module docstring)
t = sym("t", positive=True)
xi = TexSymbol("x_i", "x_i", real=True)                 # the generic coordinate of a displayed claim
xr = TexSymbol("x_rest", r"x_{\setminus i}", real=True)  # the other coordinates (never printed)

# Functions of a displayed claim, in the generic coordinate, and their D-coordinate versions.
P = function("p", "p_t", show_args=False)
L = function("l", r"\ell", show_args=False)
Fi = function("f_i", "f_i", show_args=False)
PHI = function("varphi", r"\varphi", show_args=False)
G = function("g", "g")
_P3, _L3, _PHI3 = sp.Function("p")(*X, t), sp.Function("l")(*X, t), sp.Function("varphi")(*X)
_F3 = tuple(sp.Function(f"f_{k + 1}")(*X, t) for k in range(3))
_G = G(t)
_p, _l, _f, _phi = P(xi, xr, t), L(xi, xr, t), Fi(xi, xr, t), PHI(xi, xr)


def coordinate(expr: sp.Expr, k: int) -> sp.Expr:
    """A claim written in the generic coordinate ``x_i``, read in coordinate ``k`` of ``(x_1, x_2, x_3)``:
    ``p``, ``l``, ``phi`` become functions of all three coordinates and ``f_i`` becomes ``f_k``."""
    lifted = sp.sympify(expr).xreplace({_p: _P3, _l: _L3, _phi: _PHI3, _f: _F3[k]})
    return lifted.xreplace({xi: X[k]}).doit()


def summed(expr: sp.Expr) -> sp.Expr:
    """``sum_i expr(x_i)`` over the three coordinates."""
    return sum(coordinate(expr, k) for k in range(3))


def fp_residual(l: sp.Expr, f: sp.Expr | tuple[sp.Expr, ...], coef: sp.Expr, xs: tuple[sp.Expr, ...],
                d_dt: Callable[[sp.Expr], sp.Expr]) -> sp.Expr:
    """``(d_t p + div(f p) - coef Laplacian p) / p`` for ``p = exp(l)``, coordinates ``xs``
    (the form registered as ``sde.fokker_planck.log``).

    ``f`` is a tuple of drift components (one per coordinate) or, in 1-D, an expression.
    """
    fs = f if isinstance(f, tuple) else (f,)
    grad = [sp.diff(l, x_) for x_ in xs]
    div_f = sum(sp.diff(fi, x_) for fi, x_ in zip(fs, xs))
    f_dot_grad = sum(fi * gi for fi, gi in zip(fs, grad))
    lap = sum(sp.diff(gi, x_) for gi, x_ in zip(grad, xs))
    return d_dt(l) + div_f + f_dot_grad - coef * (lap + sum(gi**2 for gi in grad))


def _d_dt(e: sp.Expr) -> sp.Expr:
    return sp.diff(e, t)


def normal_expectation(expr: sp.Expr, variables: tuple[sp.Symbol, ...]) -> sp.Expr:
    """``E[expr]`` for independent standard normal ``variables``, ``expr`` polynomial in them
    (moment recursion, :func:`derivations.core.gaussian_moment`)."""
    poly = sp.Poly(sp.expand(expr), *variables)
    return sp.expand(sum(c * sp.Mul(*(gaussian_moment(k, 0, 1) for k in m)) for m, c in poly.terms()))


r = sym("r", positive=True)             # sqrt(h): the noise of a step of length h is g r z
Z = sp.symbols("z_1:4", real=True)


# ---------------------------------------------------------------------------------------------
# 1. The generator: Ito's formula in the weak form, from one Euler-Maruyama step


@lru_cache(maxsize=1)
def em_test_function_expansion() -> tuple[sp.Expr, ...]:
    """Coefficients of ``r^0 .. r^3`` (``r = sqrt(h)``) of ``E[phi(x + f h + g r z)]``, in the jet.

    ``phi`` is Taylor-expanded to third order around ``x`` in three coordinates (every multi-index,
    each counted ``n!/alpha!`` times and divided by ``n!``); the fourth-order remainder is ``O(h^2)``.
    The expectation over ``z ~ N(0, I)`` uses ``E z_k = 0``, ``E z_j z_k = delta_jk``, ``E z^3 = 0``.
    """
    delta = [_F3[k] * r**2 + _G * r * Z[k] for k in range(3)]
    taylor = sp.Integer(0)
    for order in range(4):
        for idx in product(range(3), repeat=order):
            deriv = sp.diff(_PHI3, *[X[i] for i in idx]) if order else _PHI3
            taylor += deriv * sp.Mul(*[delta[i] for i in idx]) / factorial(order)
    mean = normal_expectation(jet(taylor), Z)
    return tuple(sp.expand(mean).coeff(r, n) for n in range(4))


def _generator_residuals(claim: Claim) -> list[sp.Expr]:
    c0, c1, c2, c3 = em_test_function_expansion()
    return [c0 - jet(_PHI3), c1, c2 - jet(summed(claim["generator"])), c3]


_GEN = _add(_mul(_f, sp.Derivative(_phi, xi)), _mul(sp.Rational(1, 2), _G**2, sp.Derivative(_phi, (xi, 2))))

generator = register(Identity(
    id="sde.generator",
    title="Ito's formula in the weak form: the generator of an SDE, from one Euler-Maruyama step",
    chapter="sde",
    claim={"generator": _GEN},
    check=Check(
        "Taylor expansion of phi to third order in D = 3 coordinates around x, step f h + g sqrt(h) z; "
        "expectation over z ~ N(0, I) by Gaussian moments; coefficients of h^0, h^1/2, h, h^3/2 compared "
        "in the jet of undefined phi(x), f_k(x, t), g(t); cancel",
        _generator_residuals,
    ),
    template=(r"\mathbb{E}\big[\varphi(x + f\,h + g(t)\sqrt{h}\,z)\big] = \varphi(x) + h\,\mathcal{L}\varphi(x)"
              r" + O(h^2), \qquad \mathcal{L}\varphi = \sum_{i=1}^{D}\Big[$generator\Big]"),
    assumptions=("phi, f = (f_1, ..., f_D) and g > 0 smooth and otherwise arbitrary; z ~ N(0, I) in R^D",
                 "hence d/dt E[phi(x_t)] = E[L phi(x_t)] (condition on x_t and let h -> 0)",
                 "checked in D = 3 coordinates: each term is a sum over coordinates or pairs of them, of the "
                 "kinds that occur for D = 3 (see the module docstring), so it holds for every D"),
    mutants=(
        Mutant("chain_rule_only", {"generator": _mul(_f, sp.Derivative(_phi, xi))},
               r"The ordinary chain rule $f \cdot \nabla\varphi$: the Ito term $\tfrac12 g^2 \Delta\varphi$, "
               r"of order $h$ because $\mathbb{E}[(\sqrt{h} z)^2] = h$, is lost."),
        Mutant("ito_term_without_half", {"generator": _add(_mul(_f, sp.Derivative(_phi, xi)),
                                                           _mul(_G**2, sp.Derivative(_phi, (xi, 2))))},
               r"$g^2 \Delta\varphi$ without the $\tfrac12$ of the second-order Taylor term."),
        Mutant("g_not_squared", {"generator": _add(_mul(_f, sp.Derivative(_phi, xi)),
                                                   _mul(sp.Rational(1, 2), _G, sp.Derivative(_phi, (xi, 2))))},
               r"$\tfrac12 g\, \Delta\varphi$: the noise's standard deviation used where its variance belongs."),
    ),
    references=("oksendal2003stochastic", "kloeden1992numerical"),
    scope=Scope.GENERAL,
    code=("gencode.sde.euler_maruyama",),
    display={"generator": _GEN},
))


# ---------------------------------------------------------------------------------------------
# 2. Fokker-Planck: integration by parts, pointwise


def _fp_residuals(claim: Claim) -> list[sp.Expr]:
    """``(L phi) p - phi (L* p) - div(flux)`` in the jet: zero iff ``L*`` is the adjoint of the
    (registered, checked) generator up to the divergence of the claimed flux."""
    lhs = summed(generator.claim["generator"]) * _P3 - _PHI3 * summed(claim["rhs"])
    div_flux = sum(sp.diff(coordinate(claim["flux"], k), X[k]) for k in range(3))
    return [jet(lhs - div_flux)]


_HALF_G2 = _mul(sp.Rational(1, 2), _G**2)
FP_RHS = _add(-sp.Derivative(Group(_mul(_f, _p)), xi), _mul(_HALF_G2, sp.Derivative(_p, (xi, 2))))
FP_FLUX = _add(_mul(_f, _phi, _p),
               _mul(_HALF_G2, Group(_add(_mul(_p, sp.Derivative(_phi, xi)), -_mul(_phi, sp.Derivative(_p, xi))))))

fokker_planck = register(Identity(
    id="sde.fokker_planck",
    title="The Fokker-Planck equation, for any drift, diffusion coefficient and density",
    chapter="sde",
    claim={"rhs": FP_RHS, "flux": FP_FLUX},
    check=Check(
        "(L phi) p - phi (L* p) minus the divergence of the flux, with L the registered generator "
        "(sde.generator), for undefined p(x, t), phi(x), f_k(x, t), g(t) in D = 3 coordinates; jet; cancel",
        _fp_residuals,
    ),
    template=(r"\begin{aligned}\partial_t p_t &= \mathcal{L}^{*} p_t = \sum_{i=1}^{D}\Big[$rhs\Big],\\"
              r"(\mathcal{L}\varphi)\, p_t - \varphi\, \mathcal{L}^{*} p_t &= \sum_{i=1}^{D}"
              r"\frac{\partial}{\partial x_i}\Big[$flux\Big]\end{aligned}"),
    assumptions=("dx = f(x, t) dt + g(t) dW in R^D; p_t the density of x_t; phi a smooth test function with "
                 "compact support; f, g, p, phi otherwise arbitrary (undefined functions)",
                 "d/dt int phi p_t = int (L phi) p_t (sde.generator) = int phi L* p_t, since the integral of "
                 "a divergence of a compactly supported flux is 0; as phi is arbitrary, d_t p_t = L* p_t",
                 "checked in D = 3 coordinates (module docstring: the residual is a sum over coordinates)"),
    mutants=(
        Mutant("drift_sign", {"rhs": _add(sp.Derivative(Group(_mul(_f, _p)), xi),
                                          _mul(_HALF_G2, sp.Derivative(_p, (xi, 2))))},
               r"$+\nabla\cdot(f p)$: mass moved against the drift."),
        Mutant("diffusion_without_half", {"rhs": _add(-sp.Derivative(Group(_mul(_f, _p)), xi),
                                                      _mul(_G**2, sp.Derivative(_p, (xi, 2))))},
               r"The diffusion term $g^2 \Delta p$ instead of $\tfrac12 g^2 \Delta p$."),
        Mutant("non_divergence_form", {"rhs": _add(-_mul(_f, sp.Derivative(_p, xi)),
                                                   _mul(_HALF_G2, sp.Derivative(_p, (xi, 2))))},
               r"$-f \cdot \nabla p$: the transport term without $p\, \nabla\cdot f$ (right only for a "
               r"divergence-free drift)."),
    ),
    references=("risken1996fokker", "oksendal2003stochastic"),
    scope=Scope.GENERAL,
    display={"rhs": FP_RHS, "flux": FP_FLUX},
))


def _fp_log_residuals(claim: Claim) -> list[sp.Expr]:
    p = sp.exp(_L3)
    lhs = (sp.diff(p, t) - summed(fokker_planck.claim["rhs"]).xreplace({_P3: p}).doit()) / p
    claimed = sp.diff(_L3, t) + summed(claim["terms"])
    # the helper fp_residual, which the later checks use, computes the same expression
    helper = fp_residual(_L3, _F3, _G**2 / 2, X, _d_dt)
    return [jet(sp.expand(sp.powsimp(sp.expand(lhs))) - claimed), jet(helper - claimed)]


_FP_LOG = _add(sp.Derivative(_f, xi), _mul(_f, sp.Derivative(_l, xi)),
               -_mul(_HALF_G2, Group(_add(sp.Derivative(_l, (xi, 2)), sp.Derivative(_l, xi) ** 2))))

fokker_planck_log = register(Identity(
    id="sde.fokker_planck.log",
    title=r"The Fokker-Planck equation divided by $p$, in $\ell = \log p$",
    chapter="sde",
    claim={"terms": _FP_LOG},
    check=Check(
        "p = exp(l) for undefined l(x, t) in the registered Fokker-Planck right-hand side "
        "(sde.fokker_planck), divided by p; D = 3 coordinates; jet; cancel; and the helper fp_residual "
        "(used by the later checks) equals the claimed form",
        _fp_log_residuals,
    ),
    template=(r"\frac{\partial_t p_t - \mathcal{L}^{*} p_t}{p_t} = \partial_t \ell + \sum_{i=1}^{D}\Big[$terms\Big],"
              r"\qquad \ell = \log p_t"),
    assumptions=("p_t = exp(l) > 0 smooth, l otherwise arbitrary; L* the Fokker-Planck operator of "
                 "dx = f dt + g dW", "checked in D = 3 coordinates (module docstring)"),
    mutants=(
        Mutant("laplacian_of_log", {"terms": _add(sp.Derivative(_f, xi), _mul(_f, sp.Derivative(_l, xi)),
                                                  -_mul(_HALF_G2, sp.Derivative(_l, (xi, 2))))},
               r"$\Delta p / p$ read as $\Delta \ell$: the term $\|\nabla \ell\|^2$ is lost."),
        Mutant("no_divergence_of_f", {"terms": _add(_mul(_f, sp.Derivative(_l, xi)),
                                                    -_mul(_HALF_G2, Group(_add(sp.Derivative(_l, (xi, 2)),
                                                                               sp.Derivative(_l, xi) ** 2))))},
               r"$\nabla\cdot(f p)/p$ read as $f \cdot \nabla \ell$: the term $\nabla \cdot f$ is lost."),
    ),
    references=("risken1996fokker",),
    scope=Scope.GENERAL,
    display={"terms": _FP_LOG},
))


# ---------------------------------------------------------------------------------------------
# 3. Moment ODEs of a linear SDE, and the VP and VE kernels

x = sym("x", real=True)
x0 = sym("x_0", real=True)
z = sym("z", real=True)
u_ = sym("u", real=True)
m = sym("m", real=True)
v = sym("v", positive=True)
c = TexSymbol("c_t", "c(t)", real=True)
g2 = TexSymbol("g2_t", "g(t)^2", positive=True)
mu0 = sym("mu_0", real=True)
v0 = sym("v_0", positive=True)          # variance of the initial Gaussian
h = sym("h", positive=True)             # the time step of Euler-Maruyama
beta = TexSymbol("beta_t", r"\beta(t)", positive=True)  # the VP rate at the current time
B = sym("B_t", positive=True)           # int_0^t beta(s) ds
a = sym("a_t", UNIT, positive=True)     # exp(-B_t / 2), the VP signal scale
sigma_t = sym("sigma_t", (1, 3), positive=True)
sigma_0 = sym("sigma_0", (0, 1), positive=True)
sigma_dot = sym("sigmadot_t", positive=True)
sigma = sym("sigma", positive=True)


@lru_cache(maxsize=1)
def em_moment_expansion() -> tuple[tuple[sp.Expr, ...], tuple[sp.Expr, ...]]:
    """Coefficients of ``r^0, r^1, r^2`` (``r = sqrt(h)``) of the increments of the mean and the variance
    over one Euler-Maruyama step ``y = x + c x h + g r z`` of ``x = m + sqrt(v) u`` (``u, z ~ N(0, 1)``
    independent), by Gaussian moments."""
    x_ = m + sp.sqrt(v) * u_
    y = x_ + c * x_ * r**2 + sp.sqrt(g2) * r * z
    mean = normal_expectation(y, (u_, z))
    var = sp.expand(normal_expectation(y**2, (u_, z)) - mean**2)
    return (tuple(sp.expand(mean - m).coeff(r, n) for n in range(3)),
            tuple(sp.expand(var - v).coeff(r, n) for n in range(3)))


def _moment_residuals(claim: Claim) -> list[sp.Expr]:
    (m0_, m1_, m2_), (v0_, v1_, v2_) = em_moment_expansion()
    return [m0_, m1_, m2_ - claim["rate_m"], v0_, v1_, v2_ - claim["rate_v"]]


moment_odes = register(Identity(
    id="sde.moment_odes",
    title="The moment ODEs of a linear SDE, from one Euler-Maruyama step",
    chapter="sde",
    claim={"rate_m": c * m, "rate_v": 2 * c * v + g2},
    check=Check(
        "mean and variance of y = x + c x h + g sqrt(h) z for x = m + sqrt(v) u by Gaussian moments; "
        "their increments have no h^0 or h^1/2 term and the claimed h-coefficient; cancel",
        _moment_residuals,
    ),
    template=r"\frac{\mathrm{d}m}{\mathrm{d}t} = $rate_m, \qquad \frac{\mathrm{d}v}{\mathrm{d}t} = $rate_v",
    assumptions=("dx = c(t) x dt + g(t) dW, one coordinate (coordinates are independent: g is scalar)",
                 "m, v the mean and variance of x_t; the rates are the limits of increment / h"),
    mutants=(
        Mutant("no_injected_noise", {"rate_v": 2 * c * v}, "The injected noise $g^2$ forgotten."),
        Mutant("drift_not_doubled", {"rate_v": c * v + g2},
               r"$c v$: the drift scales $x$ by $1 + c h$, hence the variance by $(1 + c h)^2$, whose "
               r"$h$-coefficient is $2c$."),
    ),
    references=("oksendal2003stochastic",),
    scope=Scope.GENERAL,
    display={"rate_m": _mul(c, m), "rate_v": _add(_mul(2, c, v), g2)},
))


def _kernel_residuals(d_dt: Callable[[sp.Expr], sp.Expr], drift_coef: sp.Expr, diff2: sp.Expr,
                      start: dict) -> Callable[[Claim], list[sp.Expr]]:
    """Residuals of the registered moment ODEs (``sde.moment_odes``) and of ``(m, v) = (x_0, 0)`` at 0."""

    def residuals(claim: Claim) -> list[sp.Expr]:
        mean, var = claim["mean"], claim["variance"]
        rule = {c: drift_coef, g2: diff2, m: mean, v: var}
        return [d_dt(mean) - moment_odes.claim["rate_m"].xreplace(rule),
                d_dt(var) - moment_odes.claim["rate_v"].xreplace(rule),
                mean.xreplace(start) - x0, var.xreplace(start)]

    return residuals


VP_DRIFT_COEF, VP_G2 = -beta / 2, beta   # the VP SDE: f = -beta x / 2, g^2 = beta (definitions)

vp_kernel = register(Identity(
    id="sde.vp.kernel",
    title="The transition kernel of the variance preserving SDE",
    chapter="sde",
    claim={"mean": x0 * sp.exp(-B / 2), "variance": 1 - sp.exp(-B)},
    check=Check(
        "the registered moment ODEs (sde.moment_odes) with c = -beta/2, g^2 = beta; time derivative "
        "beta d/dB; initial condition at B = 0; cancel",
        _kernel_residuals(lambda e: beta * sp.diff(e, B), VP_DRIFT_COEF, VP_G2, {B: sp.Integer(0)}),
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
    scope=Scope.GENERAL,
    code=("gencode.sde.VPSDE.marginal_scale", "gencode.sde.VPSDE.marginal_std"),
))

ve_kernel = register(Identity(
    id="sde.ve.kernel",
    title="The transition kernel of the variance exploding SDE",
    chapter="sde",
    claim={"mean": x0, "variance": sigma_t**2 - sigma_0**2},
    check=Check(
        "the registered moment ODEs (sde.moment_odes) with c = 0, g^2 = d(sigma^2)/dt; time derivative "
        "sigmadot d/dsigma; initial condition at sigma_t = sigma_0; cancel",
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
    scope=Scope.GENERAL,
    code=("gencode.sde.VESDE.marginal_scale", "gencode.sde.VESDE.marginal_std"),
    display={"variance": _add(sigma_t**2, -sigma_0**2)},
))

# ---------------------------------------------------------------------------------------------
# 4. The score of the VE kernel (score_sde_pytorch issue 26)

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
    assumptions=("sigma^2 = sigma_t^2 - sigma_0^2 > 0 is the kernel variance", "z ~ N(0, I)",
                 "one coordinate; the isotropic kernel's score acts coordinatewise"),
    mutants=(
        Mutant("divided_by_variance", {"score": -z / sigma**2},
               r"$-z/\sigma^2$: the formula $-(x - x_0)/\sigma^2$ with $x - x_0$ replaced by the "
               r"standardised $z$ instead of $\sigma z$.",
               source="readers' question on score_sde_pytorch (issue 26), about the VE loss"),
        Mutant("sign", {"score": z / sigma}, "The sign flipped: the score points away from x_0."),
    ),
    references=("song2021score",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 5. Gaussian solutions (examples of the general equation)


def vp_d_dt(expr: sp.Expr) -> sp.Expr:
    """Time derivative of an expression whose time dependence is ``a_t = exp(-B_t/2)``: ``-(beta a/2) d/da``."""
    return -beta * a / 2 * sp.diff(expr, a)


def _gaussian_log(xs: tuple[sp.Expr, ...], means: tuple[sp.Expr, ...], variance: sp.Expr) -> sp.Expr:
    """``log N(x; m, v I)`` up to the constant ``-D/2 log(2 pi)`` (constants do not enter the residual)."""
    return sum(-(x_ - mi) ** 2 / (2 * variance) for x_, mi in zip(xs, means)) - len(xs) * sp.log(variance) / 2


VP_FP_CLAIM = {"drift": -beta * x / 2, "coef": beta / 2, "mean": a * mu0, "variance": a**2 * v0 + 1 - a**2}
VP_FP_DISPLAY = {"drift": _mul(sp.Rational(-1, 2), beta, x), "mean": _mul(a, mu0),
                 "variance": _add(_mul(a**2, v0), 1, -a**2)}


def _vp_fp_residuals(claim: Claim) -> list[sp.Expr]:
    l = _gaussian_log((x,), (claim["mean"],), claim["variance"])
    return [fp_residual(l, claim["drift"], claim["coef"], (x,), vp_d_dt)]


def _vp_fp_nd_residuals(claim: Claim, dim: int = 3) -> list[sp.Expr]:
    xs = sp.symbols(f"x_1:{dim + 1}", real=True)
    mus = sp.symbols(f"mu_1:{dim + 1}", real=True)
    per = [{x: x_, mu0: mi} for x_, mi in zip(xs, mus)]
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
        display=VP_FP_DISPLAY, scope=Scope.GENERAL,
    ))


vp_fokker_planck = _vp_fp_identity(
    "sde.fokker_planck.vp",
    "Gaussian marginals of the VP SDE solve its Fokker-Planck equation (1-D)",
    "the registered log form (sde.fokker_planck.log) for l = log N(a mu_0, a^2 v_0 + 1 - a^2); "
    "d/dt = -(beta a/2) d/da; cancel",
    _vp_fp_residuals,
    r"\partial_t p_t(x) = -\partial_x\!\left[\left($drift\right) p_t(x)\right] + $coef\,"
    r"\partial_x^2 p_t(x) \quad\text{is solved by}\quad p_t = \mathcal{N}\!\left($mean,\ $variance\right)",
    ("VP SDE dx = -beta(t) x/2 dt + sqrt(beta(t)) dW, so f = -beta x/2, g^2 = beta",
     "a_t = exp(-B_t/2), B_t = int_0^t beta, so da_t/dt = -beta(t) a_t / 2",
     "p_0 = N(mu_0, v_0) (mixtures follow: the equation is linear in p)"),
)

vp_fokker_planck_nd = _vp_fp_identity(
    "sde.fokker_planck.vp_nd",
    "Gaussian marginals of the VP SDE solve its Fokker-Planck equation in R^D",
    "the registered log form (sde.fokker_planck.log) with x = (x_1, x_2, x_3), mu_0 = (mu_1, mu_2, mu_3); "
    "d/dt = -(beta a/2) d/da; cancel",
    _vp_fp_nd_residuals,
    r"\partial_t p_t(x) = -\nabla \cdot \left[\left($drift\right) p_t(x)\right] + $coef\,"
    r"\Delta p_t(x) \quad\text{is solved by}\quad p_t = \mathcal{N}\!\left($mean,\ "
    r"\left($variance\right)\mathbf{I}\right)",
    ("x, mu_0 in R^D; p_0 = N(mu_0, v_0 I); W a D-dimensional Brownian motion",
     "a_t = exp(-B_t/2), da_t/dt = -beta(t) a_t / 2",
     "checked in D = 3 coordinates: log p_t is a sum of one term per coordinate (plus -D/2 log v_t), and "
     "the residual is the sum of the 1-D residuals, so it vanishes for every D"),
)


def _heat_residuals(claim: Claim) -> list[sp.Expr]:
    l = _gaussian_log((x,), (claim["mean"],), claim["variance"])
    return [fp_residual(l, sp.Integer(0), claim["coef"], (x,), lambda e: sp.diff(e, t))]


heat = register(Identity(
    id="sde.heat",
    title="Brownian motion and the heat equation",
    chapter="sde",
    claim={"coef": sp.Rational(1, 2), "mean": mu0, "variance": v0 + t},
    check=Check("heat-equation residual in the registered log form (sde.fokker_planck.log); cancel",
                _heat_residuals),
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
    scope=Scope.GENERAL,
    code=("gencode.sde.euler_maruyama",),
    display={"variance": _add(v0, t)},
))

# ---------------------------------------------------------------------------------------------
# 6. DDPM as a discretisation of the VP SDE, for any smooth beta

t_prev = sym("t_i-1", positive=True)     # the left endpoint of step i
BETA = function("beta", r"\beta")


def _ddpm_residuals(claim: Claim) -> list[sp.Expr]:
    """Euler-Maruyama for the VP SDE from ``t_{i-1}`` (coefficients frozen at the left endpoint), and
    DDPM's step with ``beta_i = beta(t_i) h``, ``t_i = t_{i-1} + h``, to first order in ``h``.

    Taylor's theorem with remainder, ``beta(t_{i-1} + h) = beta + beta' h + R h^2`` (``R`` bounded for a
    smooth ``beta``), makes every residual a polynomial in the symbols ``beta, beta', R`` and ``h``.
    """
    b0, b1, rem = sp.symbols("beta beta' R", real=True)
    taylor = {BETA(t_prev): b0, BETA(t_prev + h): b0 + b1 * h + rem * h**2}
    read = lambda e: sp.sympify(e).xreplace(taylor)  # noqa: E731
    em_coef = sp.diff(x + VP_DRIFT_COEF.xreplace({beta: b0}) * x * h, x)     # d(step mean)/dx at t_{i-1}
    em_var = VP_G2.xreplace({beta: b0}) * h                                    # (g sqrt(h))^2 at t_{i-1}
    beta_i = read(BETA(t_prev + h)) * h
    first_order = lambda e: sp.series(e, h, 0, 2).removeO()  # noqa: E731
    mean_coef, variance = read(claim["mean_coef"]), read(claim["variance"])
    return [mean_coef - em_coef, variance - em_var,
            first_order(sp.sqrt(1 - beta_i) - mean_coef), first_order(beta_i - variance)]


ddpm_limit = register(Identity(
    id="sde.ddpm_limit",
    title="A DDPM step is an Euler-Maruyama step of the VP SDE, up to O(h^2)",
    chapter="sde",
    claim={"mean_coef": 1 - BETA(t_prev) * h / 2, "variance": BETA(t_prev) * h},
    check=Check(
        "Euler-Maruyama step of dx = -beta x/2 dt + sqrt(beta) dW from t_{i-1} (x-coefficient of the step "
        "mean, noise variance g^2 h); Taylor series in h of sqrt(1 - beta(t_{i-1} + h) h) and of "
        "beta(t_{i-1} + h) h for any smooth beta (Taylor with remainder), to first order; cancel",
        _ddpm_residuals,
    ),
    template=(r"x_i = \left($mean_coef\right) x_{i-1} + \sqrt{$variance}\, z \ \ \text{(Euler-Maruyama)},"
              r"\qquad \sqrt{1 - \beta_i} = $mean_coef + O(h^2), \quad \beta_i = \beta(t_i)\,h = $variance"
              r" + O(h^2)"),
    assumptions=("VP SDE with f = -beta(t) x/2, g^2 = beta(t), beta smooth and otherwise arbitrary; step h = T/N, "
                 "t_i = i h", "DDPM step x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z with beta_i = beta(t_i) h "
                 "(right endpoint, as VPSDE.ddpm_schedule builds it)"),
    mutants=(
        Mutant("coefficient_without_half", {"mean_coef": 1 - BETA(t_prev) * h},
               r"The contraction $1 - \beta h$: the factor $\tfrac12$ of the VP drift lost."),
        Mutant("variance_halved", {"variance": BETA(t_prev) * h / 2},
               r"Noise of variance $\beta h / 2$: $g^2$ confused with $g^2/2$."),
        Mutant("right_endpoint", {"mean_coef": 1 - BETA(t_prev + h) * h / 2, "variance": BETA(t_prev + h) * h},
               r"The Euler-Maruyama step written with $\beta(t_i)$, the right endpoint: Euler-Maruyama freezes "
               r"the coefficients at the start $t_{i-1}$ of the step (the two agree only to $O(h^2)$).",
               source="an earlier version of this chapter (the DDPM section's display)"),
    ),
    references=("song2021score", "ho2020denoising"),
    scope=Scope.GENERAL,
    code=("gencode.sde.VPSDE.ddpm_schedule",),
    display={"mean_coef": _add(1, _mul(sp.Rational(-1, 2), BETA(t_prev), h)), "variance": _mul(BETA(t_prev), h)},
))

# ---------------------------------------------------------------------------------------------
# 7. The reverse-time SDE (Anderson 1982), for any density, drift and g, in D = 3 coordinates

F = TexSymbol("f_placeholder", r"f(x, t)", real=True)
G2 = TexSymbol("g2_placeholder", r"g(t)^2", positive=True)
SCORE = TexSymbol("score_placeholder", r"\nabla_x \log p_t(x)", real=True)
_G2f = sp.Function("g2")(t)


def drift_components(drift: sp.Expr, l: sp.Expr, f: tuple[sp.Expr, ...], g2_: sp.Expr) -> tuple[sp.Expr, ...]:
    """A drift written with the placeholders ``f(x, t)``, ``g(t)^2``, ``grad log p_t`` read componentwise."""
    return tuple(drift.xreplace({F: f[k], G2: g2_, SCORE: sp.diff(l, X[k])}) for k in range(3))


def _reverse_residuals(claim: Claim) -> list[sp.Expr]:
    """Forward FP residual plus reverse FP residual: zero iff ``p_{T-s}`` solves the reverse equation
    whenever ``p_t`` solves the forward one.

    The reverse SDE ``dx = b dt + g dW_bar`` runs with ``dt < 0``; in the forward time ``s = T - t``
    its drift is ``-b`` and ``d_s log p_{T-s} = -l_t``.
    """
    b = drift_components(claim["drift"], _L3, _F3, _G2f)
    forward = fp_residual(_L3, _F3, _G2f / 2, X, _d_dt)
    reverse = fp_residual(_L3, tuple(-bk for bk in b), _G2f / 2, X, lambda e: -_d_dt(e))
    return [jet(forward + reverse)]


reverse = register(Identity(
    id="sde.reverse",
    title="The reverse-time SDE (Anderson)",
    chapter="sde",
    claim={"drift": F - G2 * SCORE},
    check=Check(
        "forward + reverse Fokker-Planck residuals in the registered log form (sde.fokker_planck.log) cancel, "
        "for undefined l(x, t), f_k(x, t), g(t)^2 in D = 3 coordinates; jet; cancel",
        _reverse_residuals,
    ),
    template=r"\mathrm{d}x = \left[$drift\right]\mathrm{d}t + g(t)\,\mathrm{d}\bar{W}, \qquad \mathrm{d}t < 0",
    assumptions=("p_t solves the forward Fokker-Planck equation of dx = f dt + g dW; p, f, g otherwise arbitrary",
                 "time runs from T down to 0; W_bar is a Brownian motion in reversed time",
                 "checked in D = 3 coordinates (module docstring)"),
    mutants=(
        Mutant("probability_flow_drift", {"drift": F - G2 * SCORE / 2},
               r"The probability-flow drift $f - \tfrac12 g^2 \nabla \log p_t$ used together with noise: "
               r"that drift belongs to the ODE, without noise."),
        Mutant("score_sign", {"drift": F + G2 * SCORE},
               "The score term with a plus sign: reverse-time noise is not cancelled but doubled."),
    ),
    references=("anderson1982reverse", "song2021score"),
    scope=Scope.GENERAL,
    code=("gencode.sde.reverse_sde_sample",),
))

# ---------------------------------------------------------------------------------------------
# 8. Langevin dynamics leaves its target invariant

LANGEVIN_SCORE = TexSymbol("langevin_score_placeholder", r"\nabla_x \log p(x)", real=True)
_L_static = sp.Function("l")(*X)


def _langevin_residuals(claim: Claim) -> list[sp.Expr]:
    f = tuple(claim["drift"].xreplace({LANGEVIN_SCORE: sp.diff(_L_static, X[k])}) for k in range(3))
    return [jet(fp_residual(_L_static, f, claim["g2"] / 2, X, lambda e: sp.Integer(0)))]


langevin = register(Identity(
    id="sde.langevin.stationary",
    title="Langevin dynamics leaves its target density invariant",
    chapter="sde",
    claim={"drift": LANGEVIN_SCORE, "g2": sp.Integer(2)},
    check=Check(
        "stationary Fokker-Planck residual in the registered log form (sde.fokker_planck.log), for an "
        "undefined l(x) in D = 3 coordinates; jet; cancel",
        _langevin_residuals,
    ),
    template=(r"\mathrm{d}x = $drift\,\mathrm{d}t + \sqrt{$g2}\,\mathrm{d}W \quad\text{has stationary "
              r"density } p"),
    assumptions=("p > 0 smooth and otherwise arbitrary, l = log p", "stationary: d_t p = 0",
                 "checked in D = 3 coordinates (module docstring)"),
    mutants=(
        Mutant("noise_without_sqrt2", {"g2": sp.Integer(1)},
               r"Noise $\mathrm{d}W$ instead of $\sqrt{2}\,\mathrm{d}W$ (a step $x + \epsilon s + "
               r"\sqrt{\epsilon} z$): the chain then samples $\propto p^2$."),
        Mutant("half_drift", {"drift": LANGEVIN_SCORE / 2},
               r"Drift $\tfrac12 \nabla \log p$ with noise $\sqrt 2\,\mathrm{d}W$: the chain samples "
               r"$\propto p^{1/2}$."),
    ),
    references=("song2019generative", "song2021score"),
    scope=Scope.GENERAL,
    code=("gencode.sde.langevin_corrector",),
))
