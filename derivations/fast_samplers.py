r"""Fast samplers for Gaussian paths: exponential integrators (DPM-Solver, DEIS) and Heun in EDM's variables.

A Gaussian path is :math:`x_t = \alpha(t) x_0 + \sigma(t)\varepsilon`; :math:`\lambda = \log(\alpha/\sigma)` is half
the log signal-to-noise ratio, and :math:`\hat\varepsilon(x, t)` is a noise predictor (the network, or the
oracle :math:`\mathbb{E}[\varepsilon \mid x_t = x]`). Registered here, general unless said otherwise:

1. ``fast.pf_lambda``: the probability flow ODE, written with the noise predictor, is
   :math:`\dot x = (\dot\alpha/\alpha) x - \sigma\dot\lambda\,\hat\varepsilon`, i.e. linear in :math:`x` plus a
   term that is simple in :math:`\lambda` (undefined :math:`\alpha(t)`, :math:`\sigma(t)`);
2. ``fast.variation_of_constants``: its exact solution
   :math:`x_t = \frac{\alpha_t}{\alpha_s} x_s - \alpha_t\int_{\lambda_s}^{\lambda_t} e^{-\lambda}\hat\varepsilon\,\mathrm{d}\lambda`
   (undefined :math:`\alpha(\lambda)` and :math:`\hat\varepsilon(\lambda)` along the trajectory);
3. ``fast.dpm_solver_1``: the integral with :math:`\hat\varepsilon` frozen, and ``fast.ddim_is_dpm1``: DDIM
   (:math:`\eta = 0`) is that step, on every Gaussian path;
4. ``fast.dpm1_local_error`` and ``fast.dpm2_local_error``: the local errors :math:`O(h^2)` (with its leading
   term) and :math:`O(h^3)`, as identities of Taylor coefficients for any smooth :math:`\alpha(\lambda)` and
   :math:`\hat\varepsilon(x, \lambda)`: the derivatives of a smooth function at a point are independent, so the
   functions are replaced by their jets (Taylor polynomials with one free symbol per derivative), in
   ``D = 2`` coordinates so that the Jacobian-vector products of a vector field appear;
5. ``fast.denoiser_ode``: in :math:`\bar x = x/\alpha`, :math:`\bar\sigma = \sigma/\alpha` the ODE is
   :math:`\mathrm{d}\bar x/\mathrm{d}\bar\sigma = (\bar x - D)/\bar\sigma` with the denoiser :math:`D`; EDM's
   :math:`\mathrm{d}x/\mathrm{d}\sigma = (x - D)/\sigma` is the case :math:`\alpha = 1`;
6. ``fast.gaussian_flow``: for Gaussian data the exact flow map, the reference against which the solvers'
   orders are measured;
7. ``fast.data_prediction`` and ``fast.dpm_solver_pp_1``: the same solution written with the data prediction
   :math:`\hat x_0` (DPM-Solver++), whose first-order step is DDIM again.

Time convention: data at the start of time, noise at the end (:mod:`gencode.paths`); a sampler steps from
:math:`s` to :math:`t < s`, so :math:`h = \lambda_t - \lambda_s > 0`.

References:
    Lu, Zhou, Bao, Chen, Li, Zhu. DPM-Solver. 2022. arXiv:2206.00927.
    Lu, Zhou, Bao, Chen, Li, Zhu. DPM-Solver++. 2022. arXiv:2211.01095.
    Zhang, Chen. Fast Sampling of Diffusion Models with Exponential Integrator (DEIS). 2023. arXiv:2204.13902.
    Karras, Aittala, Aila, Laine. Elucidating the Design Space of Diffusion-Based Generative Models. 2022.
"""

from __future__ import annotations

import functools
import itertools
import math

import sympy as sp

from .core import held_add as _add, held_frac as _frac, held_mul as _mul  # unevaluated, for display
from .core import Check, Claim, ForAnyFunction, Identity, Mutant, Scope, function, register, sym
from .sde import TexSymbol, jet

REFS = ("lu2022dpmsolver", "zhang2023deis")


# ---------------------------------------------------------------------------------------------
# 1. The probability flow ODE with the noise predictor

t = sym("t", (0, 1), positive=True)
x = sym("x", real=True)
EPS = TexSymbol("eps_hat", r"\hat\varepsilon_\theta(x, t)", real=True)
Alpha = function("alpha", r"\alpha")
Sigma = function("sigma", r"\sigma")
a_t, s_t = Alpha(t), Sigma(t)
_lam_t = sp.log(a_t) - sp.log(s_t)

_EXAMPLES = ({Alpha: sp.Lambda(t, 1 / (1 + t)), Sigma: sp.Lambda(t, t / (1 + t) + t**2)},)


def _pf_velocity(x_: sp.Expr, score: sp.Expr) -> sp.Expr:
    """The probability flow velocity ``f x - g^2/2 score`` of the Gaussian path: ``f = alpha'/alpha`` and
    ``g^2 = 2 sigma sigma' - 2 f sigma^2`` (the forward SDE ``dx = f x dt + g dW`` has kernel
    ``N(alpha x_0, sigma^2)``: ``d(sigma^2)/dt = 2 f sigma^2 + g^2``)."""
    f = sp.diff(a_t, t) / a_t
    g2 = 2 * s_t * sp.diff(s_t, t) - 2 * f * s_t**2
    return f * x_ - g2 / 2 * score


ALPHA_DOT = TexSymbol("alpha_dot", r"\dot\alpha", real=True)
ALPHA_ = TexSymbol("alpha_", r"\alpha", positive=True)
SIGMA_ = TexSymbol("sigma_", r"\sigma", positive=True)
LAMBDA_DOT = TexSymbol("lambda_dot", r"\dot\lambda", real=True)
_ON_PATH = {ALPHA_DOT: sp.diff(a_t, t), ALPHA_: a_t, SIGMA_: s_t, LAMBDA_DOT: sp.diff(_lam_t, t)}

pf_lambda = register(Identity(
    id="fast.pf_lambda",
    title="The probability flow ODE with the noise predictor: a linear part and a term simple in lambda",
    chapter="fast_samplers",
    claim={"velocity": sp.Add(sp.Mul(ALPHA_DOT / ALPHA_, x, evaluate=False),
                              -sp.Mul(SIGMA_, LAMBDA_DOT, EPS, evaluate=False), evaluate=False)},
    check=ForAnyFunction(
        "f x - g^2/2 score with f = alpha'/alpha, g^2 = 2 sigma sigma' - 2 f sigma^2, score = -eps/sigma, "
        "minus the claim with lambda = log(alpha/sigma), for undefined alpha(t), sigma(t); cancel",
        lambda c: [jet(c["velocity"].xreplace(_ON_PATH) - _pf_velocity(x, -EPS / s_t))],
        examples=_EXAMPLES,
    ),
    template=(r"\frac{\mathrm{d}x}{\mathrm{d}t} = f(t)\,x - \frac{g(t)^2}{2}\nabla_x\log p_t(x) = $velocity,"
              r"\qquad \lambda(t) = \log\frac{\alpha(t)}{\sigma(t)}"),
    assumptions=("x_t = alpha(t) x_0 + sigma(t) eps, alpha, sigma > 0 differentiable and otherwise arbitrary",
                 "f = alpha'/alpha, g^2 = 2 sigma sigma' - 2 f sigma^2 (the SDE with these marginals)",
                 "score = -eps_hat/sigma (Tweedie); the identity holds coordinate by coordinate in every dimension"),
    mutants=(
        Mutant("lambda_sign", {"velocity": ALPHA_DOT / ALPHA_ * x + SIGMA_ * LAMBDA_DOT * EPS},
               r"$+\sigma\dot\lambda\hat\varepsilon$: the noise term with the wrong sign."),
        Mutant("ve_diffusion", {"velocity": ALPHA_DOT / ALPHA_ * x - SIGMA_ * sp.diff(s_t, t) / s_t * EPS},
               r"$g^2 = 2\sigma\dot\sigma$ (the VE formula) on a path with a drift: $\dot\lambda$ replaced by "
               r"$\dot\sigma/\sigma$."),
    ),
    references=REFS + ("song2021score",),
    scope=Scope.GENERAL,
    display={"velocity": _add(_mul(_frac(ALPHA_DOT, ALPHA_), x), -_mul(SIGMA_, LAMBDA_DOT, EPS))},
    code=("gencode.fast_samplers.euler_step",),
))

# ---------------------------------------------------------------------------------------------
# 2. Variation of constants in lambda

lam, lam_s, lam_t, u = (sym(n, real=True) for n in ("lambda", "lambda_s", "lambda_t", "u"))
x_s = sym("x_s", real=True)
A = function("alpha", r"\alpha")          # alpha as a function of lambda
E = function("eps_hat", r"\hat\varepsilon_\theta")  # eps_hat(x_lambda, lambda) along the trajectory


def _voc(alpha_fn, eps_fn, upper: sp.Expr) -> sp.Expr:
    return (alpha_fn(upper) / alpha_fn(lam_s) * x_s
            - alpha_fn(upper) * sp.Integral(sp.exp(-u) * eps_fn(u), (u, lam_s, upper)))


_F = function("F", "F")  # an antiderivative of the integrand, F' = e^{-u} eps_hat(u)


def _voc_residuals(claim: Claim) -> list[sp.Expr]:
    """The claimed x(lambda) solves dx/dlambda = (alpha'/alpha) x - sigma eps_hat, sigma = alpha e^{-lambda}
    (``fast.pf_lambda`` with t -> lambda), and equals x_s at lambda_s. The integral is F(upper) - F(lower) for an
    undefined antiderivative F of its own integrand (the fundamental theorem of calculus), which keeps
    ``cancel`` fast."""
    integrals = claim["x_t"].atoms(sp.Integral)
    X = claim["x_t"].xreplace({lam_t: lam})
    rate = {}
    for I in integrals:
        (var, lo, hi), = I.limits
        X = X.xreplace({I.xreplace({lam_t: lam}): _F(hi.xreplace({lam_t: lam})) - _F(lo)})
        rate = {sp.Derivative(_F(lam), lam): I.function.xreplace({var: lam})}
    ode = sp.diff(X, lam).xreplace(rate) - sp.diff(A(lam), lam) / A(lam) * X + A(lam) * sp.exp(-lam) * E(lam)
    return [ode, X.xreplace({lam: lam_s}) - x_s]


variation_of_constants = register(Identity(
    id="fast.variation_of_constants",
    title="The exact solution of the probability flow ODE in lambda (variation of constants)",
    chapter="fast_samplers",
    claim={"x_t": _voc(A, E, lam_t)},
    check=ForAnyFunction(
        "differentiate the claim in its upper limit lambda and insert it in dx/dlambda = (alpha'/alpha) x - "
        "alpha e^{-lambda} eps_hat, for undefined alpha(lambda), eps_hat(lambda); and its value at lambda_s; "
        "cancel",
        _voc_residuals,
        examples=({A: sp.Lambda(lam, sp.exp(lam) / (1 + sp.exp(lam))), E: sp.Lambda(u, 1 + u)},),
    ),
    template=r"x_t = $x_t",
    assumptions=("dx/dlambda = (d log alpha/dlambda) x - sigma eps_hat, sigma = alpha e^{-lambda} (fast.pf_lambda "
                 "with lambda as the clock, lambda(t) monotone)",
                 "eps_hat(lambda) = eps_hat(x_lambda, lambda) along the solution, any integrable function; "
                 "coordinate by coordinate in every dimension"),
    mutants=(
        Mutant("growth_factor", {"x_t": _voc(A, E, lam_t).xreplace({sp.exp(-u): sp.exp(u)})},
               r"$e^{+\lambda}$ in the integral: the factor $e^{-\lambda} = \sigma/\alpha$ inverted."),
        Mutant("inverted_ratio", {"x_t": A(lam_s) / A(lam_t) * x_s
                                  - A(lam_t) * sp.Integral(sp.exp(-u) * E(u), (u, lam_s, lam_t))},
               r"$\alpha_s/\alpha_t$ for $\alpha_t/\alpha_s$."),
        Mutant("integral_sign", {"x_t": A(lam_t) / A(lam_s) * x_s
                                 + A(lam_t) * sp.Integral(sp.exp(-u) * E(u), (u, lam_s, lam_t))},
               "The noise integral added instead of subtracted."),
    ),
    references=REFS,
    scope=Scope.GENERAL,
    display={"x_t": _add(_mul(_frac(A(lam_t), A(lam_s)), x_s),
                         -_mul(A(lam_t), sp.Integral(_mul(sp.exp(-u), E(u)), (u, lam_s, lam_t))))},
))

# ---------------------------------------------------------------------------------------------
# 3. DPM-Solver-1, and DDIM is DPM-Solver-1

alpha_s, alpha_t, sigma_s, sigma_t = (sym(n, positive=True) for n in ("alpha_s", "alpha_t", "sigma_s", "sigma_t"))
h = sym("h", positive=True)
eps_s = TexSymbol("eps_s", r"\hat\varepsilon_\theta(x_s, \lambda_s)", real=True)
_LAMBDAS = {h: sp.log(alpha_t * sigma_s / (sigma_t * alpha_s))}   # h = lambda_t - lambda_s


def _dpm1_from_voc() -> sp.Expr:
    """``fast.variation_of_constants`` with eps_hat frozen at its value at lambda_s."""
    frozen = variation_of_constants.claim["x_t"].replace(E, sp.Lambda(u, eps_s)).doit()
    frozen = frozen.xreplace({A(lam_t): alpha_t, A(lam_s): alpha_s})
    return sp.expand(frozen.xreplace({lam_s: sp.log(alpha_s / sigma_s), lam_t: sp.log(alpha_t / sigma_t)}))


_DPM1 = alpha_t / alpha_s * x_s - sigma_t * (sp.exp(h) - 1) * eps_s
_DPM1_DISPLAY = _add(_mul(_frac(alpha_t, alpha_s), x_s), -_mul(sigma_t, _add(sp.exp(h), -1), eps_s))

dpm_solver_1 = register(Identity(
    id="fast.dpm_solver_1",
    title="DPM-Solver-1: the exponential integrator with the noise prediction frozen",
    chapter="fast_samplers",
    claim={"x_t": _DPM1},
    check=Check("fast.variation_of_constants with eps_hat constant; integrate e^{-lambda}; "
                "lambda = log(alpha/sigma), h = lambda_t - lambda_s; cancel",
                lambda c: [_dpm1_from_voc() - c["x_t"]], definitions=_LAMBDAS),
    template=r"x_t = $x_t, \qquad h = \lambda_t - \lambda_s",
    assumptions=("alpha_s, sigma_s, alpha_t, sigma_t > 0 the path's coefficients at two times: any Gaussian path",
                 "eps_hat frozen at its value at (x_s, lambda_s)"),
    mutants=(
        Mutant("exp_h", {"x_t": alpha_t / alpha_s * x_s - sigma_t * sp.exp(h) * eps_s},
               r"$e^{h}$ where $e^{h} - 1$ belongs."),
        Mutant("wrong_exponent", {"x_t": alpha_t / alpha_s * x_s - sigma_t * (1 - sp.exp(-h)) * eps_s},
               r"$1 - e^{-h}$ (the exponent with the wrong sign) where $e^{h} - 1$ belongs."),
        Mutant("inverted_ratio", {"x_t": alpha_s / alpha_t * x_s - sigma_t * (sp.exp(h) - 1) * eps_s},
               r"$\alpha_s/\alpha_t$ for $\alpha_t/\alpha_s$."),
    ),
    references=REFS,
    scope=Scope.GENERAL,
    display={"x_t": _DPM1_DISPLAY},
    code=("gencode.fast_samplers.dpm_solver_1_step",),
))

_DDIM = alpha_t * (x_s - sigma_s * eps_s) / alpha_s + sigma_t * eps_s

ddim_is_dpm1 = register(Identity(
    id="fast.ddim_is_dpm1",
    title="DDIM (eta = 0) is DPM-Solver-1, on every Gaussian path",
    chapter="fast_samplers",
    claim={"ddim": _DDIM},
    check=Check("DDIM's alpha_t x0_hat + sigma_t eps_hat minus the registered DPM-Solver-1 step "
                "(fast.dpm_solver_1) with h = lambda_t - lambda_s; cancel",
                lambda c: [c["ddim"] - dpm_solver_1.claim["x_t"]], definitions=_LAMBDAS),
    template=(r"\alpha_t\,\hat x_0 + \sigma_t\,\hat\varepsilon_\theta(x_s, \lambda_s) = $ddim = "
              + sp.latex(_DPM1_DISPLAY, order="none")),
    assumptions=("hat x_0 = (x_s - sigma_s eps_hat)/alpha_s, the denoised estimate",
                 "any Gaussian path: alpha, sigma > 0 at both times (VP: alpha = sqrt(alphabar), "
                 "sigma = sqrt(1 - alphabar), DDIM's own setting)"),
    mutants=(
        Mutant("no_renoising", {"ddim": alpha_t * (x_s - sigma_s * eps_s) / alpha_s},
               r"$\alpha_t\hat x_0$ without the re-added predicted noise."),
        Mutant("old_noise_level", {"ddim": alpha_t * (x_s - sigma_s * eps_s) / alpha_s + sigma_s * eps_s},
               r"The noise re-added at the old level $\sigma_s$."),
    ),
    references=REFS + ("song2021ddim",),
    scope=Scope.GENERAL,
    display={"ddim": _add(_mul(alpha_t, _frac(_add(x_s, -_mul(sigma_s, eps_s)), alpha_s)), _mul(sigma_t, eps_s))},
    code=("gencode.fast_samplers.ddim_step", "gencode.fast_samplers.dpm_solver_1_step"),
))

# ---------------------------------------------------------------------------------------------
# 4. Local errors: Taylor coefficients in h, for any smooth alpha(lambda) and eps_hat(x, lambda)
#
# Jets at the base point (x_s, lambda_s): alpha(lambda_s + tau) = alpha_s + a_1 tau + a_2 tau^2/2, and each
# coordinate of eps_hat is its Taylor polynomial of degree 2 in (x - x_s, tau) with one free symbol per
# partial derivative. Derivatives of order <= 2 at h = 0 of every expression below depend only on these
# jets, so an identity of the coefficients up to h^2 holds for every smooth alpha and eps_hat.

ORDER = 2
DIM = 2
tau = sym("tau", real=True)
XS = tuple(sym(f"x_s{i}", real=True) for i in range(DIM))
_a = (alpha_s,) + tuple(sym(f"a_{k}", real=True) for k in range(1, ORDER + 1))
_MULTI = [m for m in itertools.product(range(ORDER + 1), repeat=DIM + 1) if sum(m) <= ORDER]
_e = {(i, m): sym("e_%d_" % i + "".join(map(str, m)), real=True) for i in range(DIM) for m in _MULTI}

# placeholders of the claims (read coordinate by coordinate)
alpha_r, sigma_r = sym("alpha_r", positive=True), sym("sigma_r", positive=True)   # at lambda_s + h/2
U = TexSymbol("u_mid", "u", real=True)
eps_u = TexSymbol("eps_u", r"\hat\varepsilon_\theta(u, \lambda_s + \tfrac{h}{2})", real=True)
eps_1 = TexSymbol("eps_1", r"\hat\varepsilon^{(1)}_s", real=True)  # d/dlambda eps_hat(x_lambda, lambda) at lambda_s
X_S = TexSymbol("x_s_", "x_s", real=True)


def _trunc(expr: sp.Expr, var: sp.Symbol = h, order: int = ORDER) -> sp.Expr:
    poly = sp.Poly(sp.expand(expr), var)
    return sum((c * var**k for (k,), c in poly.terms() if k <= order), sp.Integer(0))


def _exp_series(z: sp.Expr) -> sp.Expr:
    """``exp(z)`` for ``z`` a multiple of ``h`` (or ``tau``), truncated."""
    return sum((z**k / math.factorial(k) for k in range(ORDER + 1)), sp.Integer(0))


def _alpha_jet(s: sp.Expr) -> sp.Expr:
    return sum((_a[k] * s**k / math.factorial(k) for k in range(ORDER + 1)), sp.Integer(0))


def _inv_series(alpha: sp.Expr) -> sp.Expr:
    """``1/alpha`` for ``alpha = alpha_s + O(s)``, as a geometric series (truncate afterwards)."""
    return sum(((-(alpha - alpha_s) / alpha_s) ** k for k in range(ORDER + 1)), sp.Integer(0)) / alpha_s


def _sigma_jet(s: sp.Expr) -> sp.Expr:
    """sigma = alpha e^{-lambda} = alpha(lambda_s + s) (sigma_s/alpha_s) e^{-s}."""
    return _alpha_jet(s) * sigma_s / alpha_s * _exp_series(-s)


def _eps_jet(i: int, xs: tuple[sp.Expr, ...], s: sp.Expr) -> sp.Expr:
    dx = [xs[j] - XS[j] for j in range(DIM)] + [s]
    return sum((_e[i, m] * sp.Mul(*[d**k for d, k in zip(dx, m)]) / sp.Mul(*[math.factorial(k) for k in m])
                for m in _MULTI), sp.Integer(0))


@functools.cache
def _exact_flow() -> tuple[sp.Expr, ...]:
    """Taylor polynomial in h (degree ORDER) of the exact solution of dx/dlambda = F(x, lambda) =
    (alpha'/alpha) x - sigma eps_hat(x, lambda) from (x_s, lambda_s): the k-th coefficient is D^(k-1) F / k! at the
    base point, with D = d/dtau + sum_j F_j d/dy_j the derivative along the flow (computed once, on first use)."""
    y = tuple(sym(f"y_{i}", real=True) for i in range(DIM))
    alpha = _alpha_jet(tau)
    c = sp.diff(alpha, tau) / alpha
    sigma = alpha * sigma_s / alpha_s * sp.exp(-tau)
    F = [c * y[i] - sigma * _eps_jet(i, y, tau) for i in range(DIM)]
    base = {**dict(zip(y, XS)), tau: 0}
    out = []
    for i in range(DIM):
        G, series = F[i], XS[i]
        for k in range(1, ORDER + 1):
            series += sp.cancel(G.xreplace(base).doit() if k == 1 else G.subs(base)) * h**k / math.factorial(k)
            G = sp.diff(G, tau) + sum(sp.diff(G, y[j]) * F[j] for j in range(DIM))
        out.append(sp.expand(series))
    return tuple(out)


def _coords(expr: sp.Expr, i: int, extra: dict | None = None) -> sp.Expr:
    """Coordinate i of a claim written with the placeholders, on the jets."""
    inv = {sp.Pow(alpha_t, -1): _trunc(_inv_series(_alpha_jet(h))), sp.Pow(alpha_r, -1): _trunc(_inv_series(_alpha_jet(h / 2)))}
    expr = expr.xreplace(inv)
    reps = {X_S: XS[i], alpha_t: _alpha_jet(h), sigma_t: _sigma_jet(h), alpha_r: _alpha_jet(h / 2),
            sigma_r: _sigma_jet(h / 2), eps_s: _e[i, (0,) * (DIM + 1)]}
    reps.update(extra or {})
    return expr.xreplace(reps).xreplace({sp.exp(h): _exp_series(h), sp.exp(h / 2): _exp_series(h / 2),
                                         sp.exp(-h): _exp_series(-h)})


def _d_eps_along(i: int) -> sp.Expr:
    """d/dlambda eps_hat_i(x_lambda, lambda) at lambda_s: partial in lambda plus Jacobian times the velocity."""
    velocity = [_a[1] / alpha_s * XS[j] - sigma_s * _e[j, (0,) * (DIM + 1)] for j in range(DIM)]
    unit = lambda j: tuple(1 if k == j else 0 for k in range(DIM + 1))  # noqa: E731
    return _e[i, unit(DIM)] + sum(_e[i, unit(j)] * velocity[j] for j in range(DIM))


def _dpm1_error_residuals(claim: Claim) -> list[sp.Expr]:
    out = []
    for i in range(DIM):
        step = _coords(claim["x_t"], i)
        lead = _coords(claim["error"], i, {eps_1: _d_eps_along(i)})
        out.append(_trunc(_exact_flow()[i] - step - lead))
    return out


def _dpm2_residuals(claim: Claim) -> list[sp.Expr]:
    us = [_trunc(_coords(claim["u"], i)) for i in range(DIM)]
    out = []
    for i in range(DIM):
        eps_mid = _trunc(_eps_jet(i, tuple(us), h / 2))
        out.append(_trunc(_exact_flow()[i] - _coords(claim["x_t"], i, {eps_u: eps_mid})))
    return out


_DPM1_X = alpha_t / alpha_s * X_S - sigma_t * (sp.exp(h) - 1) * eps_s

dpm1_local_error = register(Identity(
    id="fast.dpm1_local_error",
    title="DPM-Solver-1 has local error O(h^2), with its leading term",
    chapter="fast_samplers",
    claim={"x_t": _DPM1_X, "error": -sigma_s * eps_1 * h**2 / 2},
    check=Check(
        "Taylor coefficients in h up to h^2 of (exact solution - step - claimed error), the exact solution's "
        "coefficients D^(k-1) F/k! of dx/dlambda = F = (alpha'/alpha) x - sigma eps_hat(x, lambda) (D: derivative along "
        "the flow) on the jets of alpha(lambda) and eps_hat (degree 2, D = 2 coordinates); eps^(1) = d_lambda eps_hat + J eps_hat . velocity; cancel",
        _dpm1_error_residuals,
    ),
    template=(r"x(\lambda_s + h) - \Bigl[$x_t\Bigr] = $error + O(h^3), \qquad "
              r"\hat\varepsilon^{(1)}_s = \frac{\mathrm{d}}{\mathrm{d}\lambda}\hat\varepsilon_\theta(x_\lambda, \lambda)"
              r"\Big|_{\lambda_s}"),
    assumptions=("x(lambda) the exact solution from x_s at lambda_s; alpha(lambda) and eps_hat(x, lambda) any smooth "
                 "functions (their derivatives at the base point are independent symbols: the jets)",
                 "checked in D = 2 coordinates: each coefficient is a sum over coordinates of products of "
                 "derivatives of eps_hat with vectors, so the same computation holds for every D"),
    mutants=(
        Mutant("exp_h", {"x_t": alpha_t / alpha_s * X_S - sigma_t * sp.exp(h) * eps_s},
               r"$e^{h}$ where $e^{h} - 1$ belongs: an error of order $h^0$."),
        Mutant("inverted_ratio", {"x_t": alpha_s / alpha_t * X_S - sigma_t * (sp.exp(h) - 1) * eps_s},
               r"$\alpha_s/\alpha_t$ for $\alpha_t/\alpha_s$: an error of order $h$."),
        Mutant("error_sign", {"error": sigma_s * eps_1 * h**2 / 2},
               "The leading error term with the wrong sign."),
        Mutant("second_order_claimed", {"error": sp.Integer(0)},
               "DPM-Solver-1 claimed to be of second order (local error O(h^3))."),
    ),
    references=REFS,
    scope=Scope.GENERAL,
    display={"x_t": _add(_mul(_frac(alpha_t, alpha_s), X_S), -_mul(sigma_t, _add(sp.exp(h), -1), eps_s)),
             "error": -_mul(_frac(h**2, 2), sigma_s, eps_1)},
    code=("gencode.fast_samplers.dpm_solver_1_step",),
))

_U = alpha_r / alpha_s * X_S - sigma_r * (sp.exp(h / 2) - 1) * eps_s
_DPM2_X = alpha_t / alpha_s * X_S - sigma_t * (sp.exp(h) - 1) * eps_u

dpm2_local_error = register(Identity(
    id="fast.dpm2_local_error",
    title="DPM-Solver-2 (midpoint in lambda) has local error O(h^3)",
    chapter="fast_samplers",
    claim={"u": _U, "x_t": _DPM2_X},
    check=Check(
        "Taylor coefficients in h up to h^2 of (exact solution - DPM-Solver-2 step), the exact solution's "
        "coefficients from derivatives along the flow, on the jets of alpha(lambda) and eps_hat(x, lambda) (degree 2, D = 2 coordinates), the step "
        "with eps_hat evaluated at the intermediate point u; cancel",
        _dpm2_residuals,
    ),
    template=(r"u = $u,\quad x_t = $x_t \quad\Longrightarrow\quad x(\lambda_s + h) - x_t = O(h^3)"),
    assumptions=("alpha_r, sigma_r the path's coefficients at lambda_s + h/2; alpha_t, sigma_t at lambda_s + h",
                 "x(lambda) the exact solution from x_s; alpha(lambda), eps_hat(x, lambda) any smooth functions (jets)",
                 "checked in D = 2 coordinates (Jacobian-vector products; the same for every D)"),
    mutants=(
        Mutant("exp_h", {"x_t": alpha_t / alpha_s * X_S - sigma_t * sp.exp(h) * eps_u},
               r"$e^{h}$ where $e^{h} - 1$ belongs."),
        Mutant("first_order", {"x_t": _DPM1_X},
               r"The midpoint evaluation dropped ($\hat\varepsilon$ at $(x_s, \lambda_s)$): DPM-Solver-1, "
               r"of local error $O(h^2)$ only."),
        Mutant("full_step_intermediate",
               {"u": alpha_t / alpha_s * X_S - sigma_t * (sp.exp(h) - 1) * eps_s},
               r"The intermediate point taken a full step ahead while the prediction there is read at the midpoint."),
        Mutant("inverted_ratio", {"u": alpha_s / alpha_r * X_S - sigma_r * (sp.exp(h / 2) - 1) * eps_s},
               r"$\alpha_s/\alpha_r$ for $\alpha_r/\alpha_s$ in the intermediate step."),
    ),
    references=REFS,
    scope=Scope.GENERAL,
    display={"u": _add(_mul(_frac(alpha_r, alpha_s), X_S), -_mul(sigma_r, _add(sp.exp(h / 2), -1), eps_s)),
             "x_t": _add(_mul(_frac(alpha_t, alpha_s), X_S), -_mul(sigma_t, _add(sp.exp(h), -1), eps_u))},
    code=("gencode.fast_samplers.dpm_solver_2_step",),
))

# ---------------------------------------------------------------------------------------------
# 5. The ODE with the denoiser, in EDM's scaled variables

XBAR = TexSymbol("xbar", r"\bar x", real=True)
SBAR = TexSymbol("sigmabar", r"\bar\sigma", positive=True)
DEN = TexSymbol("denoiser", r"D_\theta(x, t)", real=True)
X_PLAIN = TexSymbol("x_plain", "x", real=True)
S_PLAIN = TexSymbol("sigma_plain", r"\sigma", positive=True)


def _denoiser_residuals(claim: Claim) -> list[sp.Expr]:
    """(d xbar/dt)/(d sigmabar/dt) along the PF-ODE (score = -(x - alpha D)/sigma^2) minus the claim."""
    xbar_t, sbar_t = x / a_t, s_t / a_t
    dxdt = _pf_velocity(x, -(x - a_t * DEN) / s_t**2)
    dxbar = sp.diff(xbar_t, t) + sp.diff(xbar_t, x) * dxdt
    rate = dxbar / sp.diff(sbar_t, t)
    value = claim["velocity"].xreplace({XBAR: xbar_t, SBAR: sbar_t, X_PLAIN: x, S_PLAIN: s_t})
    return [jet(rate - value)]


denoiser_ode = register(Identity(
    id="fast.denoiser_ode",
    title="The probability flow ODE with the denoiser, in EDM's scaled variables",
    chapter="fast_samplers",
    claim={"velocity": (XBAR - DEN) / SBAR},
    check=ForAnyFunction(
        "the PF-ODE velocity f x - g^2/2 score with score = -(x - alpha D)/sigma^2, carried to xbar = x/alpha "
        "and sigmabar = sigma/alpha by the chain rule, for undefined alpha(t), sigma(t); cancel",
        _denoiser_residuals,
        examples=_EXAMPLES,
    ),
    template=(r"\bar x = \frac{x}{\alpha(t)},\ \bar\sigma = \frac{\sigma(t)}{\alpha(t)}:\qquad "
              r"\frac{\mathrm{d}\bar x}{\mathrm{d}\bar\sigma} = $velocity; \qquad "
              r"\alpha = 1,\ \sigma(t) = t:\ \ \frac{\mathrm{d}x}{\mathrm{d}\sigma} = \frac{x - D_\theta(x; \sigma)}{\sigma}"),
    assumptions=("D(x, t) = E[x_0 | x_t = x], so that the score is -(x - alpha D)/sigma^2 (Tweedie)",
                 "alpha, sigma > 0 differentiable with sigma/alpha increasing; otherwise arbitrary; coordinate by "
                 "coordinate in every dimension", "EDM's path alpha = 1, sigma(t) = t is the special case shown last"),
    mutants=(
        Mutant("variance_for_std", {"velocity": (XBAR - DEN) / SBAR**2},
               r"$(\bar x - D)/\bar\sigma^2$: the variance where the standard deviation belongs."),
        Mutant("sign", {"velocity": (DEN - XBAR) / SBAR}, "The velocity pointing towards the denoised point."),
        Mutant("unscaled", {"velocity": (X_PLAIN - DEN) / S_PLAIN},
               r"EDM's $(x - D)/\sigma$ applied to a path with $\alpha \neq 1$ without the scaling by $\alpha$."),
    ),
    references=("karras2022elucidating",) + REFS,
    scope=Scope.GENERAL,
    display={"velocity": _frac(_add(XBAR, -DEN), SBAR)},
    code=("gencode.fast_samplers.heun_step",),
))

# ---------------------------------------------------------------------------------------------
# 6. Gaussian data: the exact flow map

m = sym("m", real=True)
v = sym("v", positive=True)
s_time = sym("s", (0, 1), positive=True)


def _gaussian_residuals(claim: Claim) -> list[sp.Expr]:
    """The claimed x_t, as a function of t, solves dx/dt = (alpha'/alpha) x - sigma lambda' eps_hat with the exact
    eps_hat of N(m, v) data (fast.pf_lambda), and equals x_s at t = s."""
    X = claim["x_t"].xreplace({alpha_t: a_t, sigma_t: s_t})
    eps_exact = s_t * (X - a_t * m) / (a_t**2 * v + s_t**2)   # E[eps | x_t = X] for Gaussian data
    rhs = pf_lambda.claim["velocity"].xreplace({**_ON_PATH, x: X, EPS: eps_exact})
    at_s = claim["x_t"].xreplace({alpha_t: alpha_s, sigma_t: sigma_s}) - x_s
    return [jet(sp.diff(X, t) - rhs), at_s]


_RATIO = sp.sqrt((alpha_t**2 * v + sigma_t**2) / (alpha_s**2 * v + sigma_s**2))

gaussian_flow = register(Identity(
    id="fast.gaussian_flow",
    title="The exact flow map of the probability flow ODE for Gaussian data",
    chapter="fast_samplers",
    claim={"x_t": alpha_t * m + _RATIO * (x_s - alpha_s * m)},
    check=ForAnyFunction(
        "d/dt of the claim (alpha_t = alpha(t), sigma_t = sigma(t) undefined) minus the registered PF-ODE velocity "
        "(fast.pf_lambda) with eps_hat = sigma (x - alpha m)/(alpha^2 v + sigma^2); and the value at t = s; cancel",
        _gaussian_residuals,
        examples=_EXAMPLES,
    ),
    template=(r"x_0 \sim \mathcal{N}(m, v):\qquad x_t = $x_t"),
    assumptions=("data N(m, v) in each coordinate of an isotropic Gaussian, so p_t = N(alpha m, alpha^2 v + sigma^2) "
                 "and E[eps | x_t = x] = sigma (x - alpha m)/(alpha^2 v + sigma^2)", "any Gaussian path"),
    mutants=(
        Mutant("variance_ratio", {"x_t": alpha_t * m + _RATIO**2 * (x_s - alpha_s * m)},
               "The ratio of variances where the ratio of standard deviations belongs."),
        Mutant("signal_ratio", {"x_t": alpha_t / alpha_s * x_s},
               r"$\frac{\alpha_t}{\alpha_s}x_s$: the linear part alone, as if the noise term vanished."),
    ),
    references=REFS,
    scope=Scope.GENERAL,
    display={"x_t": _add(_mul(alpha_t, m), _mul(_RATIO, _add(x_s, -_mul(alpha_s, m))))},
    code=("gencode.fast_samplers.gaussian_flow",),
))

# ---------------------------------------------------------------------------------------------
# 7. The data-prediction form (DPM-Solver++): the same ODE integrated against e^{lambda} x0_hat

S = function("sigma", r"\sigma")                    # sigma as a function of lambda
X0 = function("x0_hat", r"\hat x_{0}")              # x0_hat(x_lambda, lambda) along the trajectory


def _voc_data(upper: sp.Expr) -> sp.Expr:
    return S(upper) / S(lam_s) * x_s + S(upper) * sp.Integral(sp.exp(u) * X0(u), (u, lam_s, upper))


def _voc_data_residuals(claim: Claim) -> list[sp.Expr]:
    """The claim solves the noise-form ODE dx/dlambda = (alpha'/alpha) x - sigma eps_hat with alpha = sigma e^lambda
    and eps_hat = (x - alpha x0_hat)/sigma, and equals x_s at lambda_s (integral as F(upper) - F(lower))."""
    X = claim["x_t"].xreplace({lam_t: lam})
    rate = {}
    for I in claim["x_t"].atoms(sp.Integral):
        (var, lo, hi), = I.limits
        X = X.xreplace({I.xreplace({lam_t: lam}): _F(hi.xreplace({lam_t: lam})) - _F(lo)})
        rate = {sp.Derivative(_F(lam), lam): I.function.xreplace({var: lam})}
    alpha = S(lam) * sp.exp(lam)
    eps_hat = (X - alpha * X0(lam)) / S(lam)
    ode = sp.diff(X, lam).xreplace(rate) - (sp.diff(alpha, lam) / alpha * X - S(lam) * eps_hat)
    return [ode, X.xreplace({lam: lam_s}) - x_s]


data_prediction = register(Identity(
    id="fast.data_prediction",
    title="The exact solution written with the data prediction (DPM-Solver++)",
    chapter="fast_samplers",
    claim={"x_t": _voc_data(lam_t)},
    check=ForAnyFunction(
        "differentiate the claim in its upper limit and insert it in the noise-form ODE (fast.pf_lambda in lambda) "
        "with eps_hat = (x - alpha x0_hat)/sigma, alpha = sigma e^lambda, for undefined sigma(lambda), "
        "x0_hat(lambda); and its value at lambda_s; cancel",
        _voc_data_residuals,
        examples=({S: sp.Lambda(lam, 1 / (1 + sp.exp(lam))), A: sp.Lambda(lam, sp.exp(lam) / (1 + sp.exp(lam))),
                   X0: sp.Lambda(u, 1 + u)},),
    ),
    template=r"x_t = $x_t",
    assumptions=("hat x_0 = (x - sigma eps_hat)/alpha, the data prediction, along the solution; any Gaussian path",
                 "coordinate by coordinate in every dimension"),
    mutants=(
        Mutant("decay_factor", {"x_t": _voc_data(lam_t).xreplace({sp.exp(u): sp.exp(-u)})},
               r"$e^{-\lambda}$ in the integral (the noise form's factor) with the data prediction."),
        Mutant("alpha_ratio", {"x_t": A(lam_t) / A(lam_s) * x_s
                               + S(lam_t) * sp.Integral(sp.exp(u) * X0(u), (u, lam_s, lam_t))},
               r"The noise form's linear part $\alpha_t/\alpha_s$ kept with the data prediction's integral."),
    ),
    references=("lu2022dpmsolverpp",),
    scope=Scope.GENERAL,
    display={"x_t": _add(_mul(_frac(S(lam_t), S(lam_s)), x_s),
                         _mul(S(lam_t), sp.Integral(_mul(sp.exp(u), X0(u)), (u, lam_s, lam_t))))},
))

x0_s = TexSymbol("x0_s", r"\hat x_0(x_s, \lambda_s)", real=True)
_PP1 = sigma_t / sigma_s * x_s - alpha_t * (sp.exp(-h) - 1) * x0_s
_DDIM_X0 = alpha_t * x0_s + sigma_t * (x_s - alpha_s * x0_s) / sigma_s


def _pp1_from_voc() -> sp.Expr:
    frozen = data_prediction.claim["x_t"].replace(X0, sp.Lambda(u, x0_s)).doit()
    frozen = frozen.xreplace({S(lam_t): sigma_t, S(lam_s): sigma_s})
    return sp.expand(frozen.xreplace({lam_s: sp.log(alpha_s / sigma_s), lam_t: sp.log(alpha_t / sigma_t)}))


dpm_solver_pp_1 = register(Identity(
    id="fast.dpm_solver_pp_1",
    title="DPM-Solver++ of first order, the data prediction frozen, is DDIM again",
    chapter="fast_samplers",
    claim={"x_t": _PP1},
    check=Check("fast.data_prediction with x0_hat constant; integrate e^lambda; h = lambda_t - lambda_s; and equal to "
                "DDIM alpha_t x0_hat + sigma_t eps_hat with eps_hat = (x_s - alpha_s x0_hat)/sigma_s; cancel",
                lambda c: [_pp1_from_voc() - c["x_t"], _DDIM_X0 - c["x_t"]], definitions=_LAMBDAS),
    template=r"x_t = $x_t = \alpha_t\,\hat x_0 + \sigma_t\,\hat\varepsilon_\theta(x_s, \lambda_s)",
    assumptions=("any Gaussian path; hat x_0 frozen at its value at (x_s, lambda_s)",),
    mutants=(
        Mutant("exp_minus_h", {"x_t": sigma_t / sigma_s * x_s - alpha_t * sp.exp(-h) * x0_s},
               r"$e^{-h}$ where $e^{-h} - 1$ belongs."),
        Mutant("noise_exponent", {"x_t": sigma_t / sigma_s * x_s - alpha_t * (sp.exp(h) - 1) * x0_s},
               r"The noise form's $e^{h} - 1$ with the data prediction."),
    ),
    references=("lu2022dpmsolverpp", "song2021ddim"),
    scope=Scope.GENERAL,
    display={"x_t": _add(_mul(_frac(sigma_t, sigma_s), x_s), -_mul(alpha_t, _add(sp.exp(-h), -1), x0_s))},
    code=("gencode.fast_samplers.dpm_solver_pp_1_step",),
))
