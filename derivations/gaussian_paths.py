r"""One family of Gaussian probability paths (Kingma et al. 2021; Karras et al. 2022; Lipman et al. 2024).

Time convention: **data at t = 0** (the diffusion convention). A path is a pair of positive functions
``(alpha(t), sigma(t))`` and ``x_t = alpha_t x_0 + sigma_t eps`` with ``eps ~ N(0, I)`` independent of
``x_0 ~ p_data``. The flow-matching convention (noise at ``u = 0``) is ``u = 1 - t`` (``paths.flow_time``).

Registered here, every statement for an arbitrary path (``alpha``, ``sigma`` undefined functions, or their
values and derivatives at one time, which are arbitrary numbers for an arbitrary path):

1. ``paths.tweedie``: ``E[eps | x_t] = -sigma grad log p_t`` and ``E[x_0 | x_t] = (x_t + sigma^2 grad log p_t)/alpha``
   for any data law (integrals of an undefined density, Leibniz rule);
2. ``paths.from_eps``, ``paths.from_x0``, ``paths.from_score``, ``paths.from_v``, ``paths.from_velocity``: the
   twenty conversions between the five parametrisations (noise, data, score, Salimans-Ho ``v``, velocity);
   each is checked on the conditional quantities (``x = alpha x_0 + sigma eps``); being affine in the
   prediction at fixed ``(x, t)``, each carries over to conditional expectations, i.e. to optimal networks;
3. ``paths.sde_coefficients``: ``f = alpha'/alpha``, ``g^2 = 2 sigma sigma' - 2 f sigma^2`` make the mean and
   variance ODEs of the linear SDE (the registered ``sde.moment_odes``) hold with mean ``alpha x_0`` and
   variance ``sigma^2``; ``paths.pf_velocity``: ``E[alpha' x_0 + sigma' eps | x] = f x - g^2/2 grad log p_t``;
4. ``paths.instances``: the table of (alpha, sigma, f, g^2) of the VP (any schedule), linear VP, cosine, sub-VP,
   VE, rectified-flow and EDM paths;
5. ``paths.flow_time``: the flow-matching velocity is minus the diffusion-time velocity at ``t = 1 - u``;
6. ``paths.snr_clock``: ``y = x/alpha = x_0 + rho eps`` with ``rho = sigma/alpha`` and, along the PF-ODE,
   ``dy/dt = rho' E[eps | x]``: the ODE in ``(y, rho)`` is the same for every path;
7. ``paths.loss_weights``: the per-sample losses of the five parametrisations are multiples of the ``x_0``-loss,
   with weights ``SNR``, ``SNR/sigma^2``, ``sigma^2 (1 + SNR)^2``, ``alpha^2 (sigma'/sigma - alpha'/alpha)^2``;
8. ``paths.lambda_family``: the reverse-time SDEs ``dx = [f - (1 + lambda^2)/2 g^2 grad log p] dt + lambda g dW``
   all have the marginals ``p_t`` (Fokker-Planck machinery of :mod:`derivations.sde`, undefined density,
   drift and ``g``); ``paths.ddim_eta``: DDIM with ``eta`` is the Euler-Maruyama step of ``lambda = eta`` to
   first order, on every VP path;
9. ``paths.edm_preconditioning``: EDM's ``c_in``, ``c_skip``, ``c_out`` from unit-variance input and target, for
   any data law of variance ``sigma_data^2`` (only second moments enter).
"""

from __future__ import annotations

import sympy as sp
from sympy.core.function import AppliedUndef

from . import sde
from .core import held_add as _add, held_frac as _frac, held_mul as _mul  # unevaluated, for display
from .core import Check, Claim, Identity, Mutant, Scope, function, register, sym
from .ebm import UnderIntegral, whole_line
from .sde import TexSymbol


# ---------------------------------------------------------------------------------------------
# Symbols: the values of alpha, sigma and their time derivatives at the current time. For an arbitrary
# path these four numbers are arbitrary (alpha, sigma > 0), so an identity proved in them holds for every
# path; checks that differentiate in time use the undefined functions ALPHA(t), SIGMA(t) and read the
# result back in these symbols with `at_time`.

t = sym("t", positive=True)
a = sym("alpha_t", positive=True)
s = sym("sigma_t", positive=True)
da = sym("alphadot_t", real=True)
ds = sym("sigmadot_t", real=True)
ALPHA = function("alpha", r"\alpha")
SIGMA = function("sigma", r"\sigma")
XT = function("x", "x")           # a solution x(t) of the PF-ODE

x = sym("x_t", real=True)
x0 = sym("x_0", real=True)
eps = sym("epsilon", real=True)
eps_hat = sym("epsilonhat", real=True)
x0_hat = sym("xhat_0", real=True)
s_hat = sym("shat", real=True)
v_hat = sym("vhat", real=True)
u_hat = sym("uhat", real=True)


def at_time(expr: sp.Expr) -> sp.Expr:
    """Read an expression in ``alpha(t), sigma(t)`` and their first derivatives in the symbols
    ``alpha_t, sigma_t, alphadot_t, sigmadot_t`` (values at one time: free for an arbitrary path)."""
    expr = sp.sympify(expr).doit()
    expr = expr.xreplace({sp.Derivative(ALPHA(t), t): da, sp.Derivative(SIGMA(t), t): ds})
    return expr.xreplace({ALPHA(t): a, SIGMA(t): s})


# ---------------------------------------------------------------------------------------------
# 1. Tweedie's formula on a path, for any data law (two coordinates; the i-th coordinate involves
#    d/dx_i only, so the same computation holds in every dimension).

X2 = (sym("x_1", real=True), sym("x_2", real=True))          # the noised point x_t
Y2 = (sym("y_1", real=True), sym("y_2", real=True))          # the data point x_0 (integration variable)
DATA = function("p", r"p_{\mathrm{data}}")
SCORE_T = TexSymbol("score_t", r"\nabla_x \log p_t(x_t)", real=True)
_kernel = sp.exp(-sum((xi - a * yi) ** 2 for xi, yi in zip(X2, Y2)) / (2 * s**2)) / (2 * sp.pi * s**2)
_joint = DATA(*Y2) * _kernel
_pt = sp.Integral(_joint, *whole_line(*Y2))


def _tweedie_residuals(claim: Claim) -> list[sp.Expr]:
    out = []
    for k, xk in enumerate(X2):
        sub = {x: xk, SCORE_T: sp.diff(sp.log(_pt), xk)}
        out.append(claim["noise"].xreplace(sub) - sp.Integral((xk - a * Y2[k]) / s * _joint, *whole_line(*Y2)) / _pt)
        out.append(claim["data"].xreplace(sub) - sp.Integral(Y2[k] * _joint, *whole_line(*Y2)) / _pt)
    return out


tweedie = register(Identity(
    id="paths.tweedie",
    title="Tweedie's formula on a Gaussian path: the expected noise and the expected data are given by the score",
    chapter="gaussian_paths",
    claim={"noise": -s * SCORE_T, "data": (x + s**2 * SCORE_T) / a},
    check=UnderIntegral(
        "posterior means as ratios of integrals over x_0 with an undefined data density of two coordinates and "
        "the kernel N(x; alpha y, sigma^2 I); p_t differentiated under the integral (Leibniz); cancel",
        _tweedie_residuals,
        atoms=((sp.Rational(1, 3), sp.Rational(-1, 2)), (sp.Rational(-5, 4), sp.Rational(2, 3))),
        weights=(sp.Rational(1, 4), sp.Rational(3, 4)),
        examples=({DATA: sp.Lambda(Y2, 1)},),
    ),
    template=(r"\mathbb{E}[\epsilon \mid x_t] = $noise, \qquad \mathbb{E}[x_0 \mid x_t] = $data"),
    assumptions=("x_t = alpha_t x_0 + sigma_t eps, eps ~ N(0, I) independent of x_0 ~ p_data; alpha_t, sigma_t > 0",
                 "any data law (undefined density; the witnesses use a two-atom law)",
                 "every D: coordinate i involves d/dx_i only (checked for both coordinates in R^2)"),
    mutants=(
        Mutant("noise_sign", {"noise": s * SCORE_T}, r"$+\sigma_t \nabla \log p_t$: the noise points up the density."),
        Mutant("alpha_multiplies", {"data": a * (x + s**2 * SCORE_T)},
               r"$\alpha_t (x_t + \sigma_t^2 \nabla\log p_t)$: the scaling undone the wrong way."),
        Mutant("sigma_not_squared", {"data": (x + s * SCORE_T) / a}, r"$\sigma_t$ where $\sigma_t^2$ belongs."),
    ),
    references=("efron2011tweedie", "kingma2021variational"),
    scope=Scope.GENERAL,
    display={"noise": _mul(-1, s, SCORE_T),
             "data": _frac(_add(x, _mul(s**2, SCORE_T)), a)},
))

# ---------------------------------------------------------------------------------------------
# 2. The five parametrisations and the twenty conversions.
#    Conditional quantities at x = alpha x_0 + sigma eps: eps, x_0, the conditional score -eps/sigma,
#    v = alpha eps - sigma x_0 (Salimans and Ho) and the velocity u = alpha' x_0 + sigma' eps.

TRUE = {"eps": eps, "x0": x0, "score": -eps / s, "v": a * eps - s * x0, "velocity": da * x0 + ds * eps}
HAT = {"eps": eps_hat, "x0": x0_hat, "score": s_hat, "v": v_hat, "velocity": u_hat}
NAMES = {"eps": r"\hat\epsilon", "x0": r"\hat x_0", "score": r"\hat s", "v": r"\hat v", "velocity": r"\hat u"}
KINDS = tuple(TRUE)


def _conversion_residuals(src: str):
    def residuals(claim: Claim) -> list[sp.Expr]:
        point = {x: a * x0 + s * eps, HAT[src]: TRUE[src]}
        return [claim[k].xreplace(point) - TRUE[k] for k in claim]

    return residuals


_S2 = _add(a**2, s**2)          # alpha^2 + sigma^2, as written
_DET = _add(_mul(a, ds), -_mul(da, s))   # alpha sigma' - alpha' sigma

CONVERSIONS: dict[str, dict[str, sp.Expr]] = {
    "eps": {"x0": _frac(_add(x, -_mul(s, eps_hat)), a),
            "score": -_frac(eps_hat, s),
            "v": _frac(_add(_mul(_S2, eps_hat), -_mul(s, x)), a),
            "velocity": _add(_mul(da, _frac(_add(x, -_mul(s, eps_hat)), a)), _mul(ds, eps_hat))},
    "x0": {"eps": _frac(_add(x, -_mul(a, x0_hat)), s),
           "score": -_frac(_add(x, -_mul(a, x0_hat)), s**2),
           "v": _frac(_add(_mul(a, x), -_mul(_S2, x0_hat)), s),
           "velocity": _add(_mul(da, x0_hat), _mul(ds, _frac(_add(x, -_mul(a, x0_hat)), s)))},
    "score": {"eps": _mul(-1, s, s_hat),
              "x0": _frac(_add(x, _mul(s**2, s_hat)), a),
              "v": -_mul(_frac(s, a), _add(x, _mul(_S2, s_hat))),
              "velocity": _add(_mul(da, _frac(_add(x, _mul(s**2, s_hat)), a)), -_mul(ds, s, s_hat))},
    "v": {"eps": _frac(_add(_mul(a, v_hat), _mul(s, x)), _S2),
          "x0": _frac(_add(_mul(a, x), -_mul(s, v_hat)), _S2),
          "score": -_frac(_add(_mul(a, v_hat), _mul(s, x)), _mul(s, _S2)),
          "velocity": _frac(_add(_mul(da, _add(_mul(a, x), -_mul(s, v_hat))),
                                 _mul(ds, _add(_mul(a, v_hat), _mul(s, x)))), _S2)},
    "velocity": {"eps": _frac(_add(_mul(a, u_hat), -_mul(da, x)), _DET),
                 "x0": _frac(_add(_mul(ds, x), -_mul(s, u_hat)), _DET),
                 "score": -_frac(_add(_mul(a, u_hat), -_mul(da, x)), _mul(s, _DET)),
                 "v": _frac(_add(_mul(_S2, u_hat), -_mul(_add(_mul(a, da), _mul(s, ds)), x)), _DET)},
}

_MUTANTS: dict[str, tuple[Mutant, ...]] = {
    "eps": (
        Mutant("x0_sign", {"x0": (x + s * eps_hat) / a},
               r"$(x_t + \sigma_t\hat\epsilon)/\alpha_t$: the noise added, not removed."),
        Mutant("x0_swapped", {"x0": (x - a * eps_hat) / s},
               r"$(x_t - \alpha_t\hat\epsilon)/\sigma_t$: $\alpha_t$ and $\sigma_t$ swapped."),
        Mutant("score_no_sigma", {"score": -eps_hat}, r"$\hat s = -\hat\epsilon$: the factor $1/\sigma_t$ missing."),
        Mutant("v_vp_only", {"v": (eps_hat - s * x) / a},
               r"$\hat v = (\hat\epsilon - \sigma_t x_t)/\alpha_t$: the VP form, which uses $\alpha_t^2 + \sigma_t^2 = 1$, "
               r"applied to any path."),
        Mutant("velocity_at_x", {"velocity": da * x + ds * eps_hat},
               r"$\dot\alpha_t x_t + \dot\sigma_t\hat\epsilon$: the noisy point where the predicted data belong."),
    ),
    "x0": (
        Mutant("eps_sign", {"eps": (x + a * x0_hat) / s}, "The data added instead of subtracted."),
        Mutant("score_sigma", {"score": -(x - a * x0_hat) / s},
               r"$-(x_t - \alpha_t\hat x_0)/\sigma_t$: $\sigma_t$ where $\sigma_t^2$ belongs."),
        Mutant("v_sign", {"v": (a * x + _S2 * x0_hat) / s}, "The sign of the data term flipped."),
        Mutant("velocity_no_alpha", {"velocity": da * x0_hat + ds * (x - x0_hat) / s},
               r"$\hat\epsilon = (x_t - \hat x_0)/\sigma_t$: the scaling $\alpha_t$ of the data forgotten."),
    ),
    "score": (
        Mutant("eps_sign", {"eps": s * s_hat},
               r"$\hat\epsilon = \sigma_t \hat s$: the sign of Tweedie's formula lost."),
        Mutant("x0_sigma", {"x0": (x + s * s_hat) / a},
               r"$(x_t + \sigma_t\hat s)/\alpha_t$: $\sigma_t$ instead of $\sigma_t^2$."),
        Mutant("v_vp_only", {"v": -s * (x + s_hat) / a},
               r"The VP form ($\alpha_t^2 + \sigma_t^2 = 1$) used for any path."),
        Mutant("velocity_sign", {"velocity": da * (x + s**2 * s_hat) / a + ds * s * s_hat},
               r"$+\dot\sigma_t\sigma_t\hat s$: the noise term with the wrong sign."),
    ),
    "v": (
        Mutant("eps_swapped", {"eps": (s * v_hat + a * x) / _S2}, r"$\alpha_t$ and $\sigma_t$ swapped."),
        Mutant("x0_sign", {"x0": (a * x + s * v_hat) / _S2},
               r"$(\alpha_t x_t + \sigma_t\hat v)/(\alpha_t^2 + \sigma_t^2)$: the sign of $\hat v$."),
        Mutant("score_no_norm", {"score": -(a * v_hat + s * x) / s},
               r"The factor $1/(\alpha_t^2 + \sigma_t^2)$ dropped (right on VP paths only)."),
        Mutant("velocity_is_v", {"velocity": v_hat},
               r"$\hat u = \hat v$: the $v$-prediction read as the velocity; the two coincide only when "
                r"$\dot\alpha_t = -\sigma_t$ and $\dot\sigma_t = \alpha_t$ (the path $\alpha_t = \cos t$, $\sigma_t = \sin t$)."),
    ),
    "velocity": (
        Mutant("eps_det_sign", {"eps": (a * u_hat - da * x) / (da * s - a * ds)},
               "The determinant with the wrong sign."),
        Mutant("x0_swapped", {"x0": (da * x - a * u_hat) / _DET},
               r"$\dot\alpha_t$, $\alpha_t$ in place of $\dot\sigma_t$, $\sigma_t$."),
        Mutant("score_no_sigma", {"score": -(a * u_hat - da * x) / _DET}, r"The factor $1/\sigma_t$ missing."),
        Mutant("v_vp_only", {"v": u_hat / _DET},
               r"$\hat v = \hat u/(\alpha_t\dot\sigma_t - \dot\alpha_t\sigma_t)$: the VP form, where $\alpha_t\dot\alpha_t + \sigma_t\dot\sigma_t = 0$, used for any path."),
    ),
}

_CODE = {
    "eps": ("gencode.paths.x0_from_eps_at", "gencode.paths.score_from_eps_at", "gencode.paths.v_from_eps_at",
            "gencode.paths.velocity_from_eps_at"),
    "x0": ("gencode.paths.eps_from_x0_at", "gencode.paths.score_from_x0_at", "gencode.paths.velocity_from_x0_at",
           "gencode.paths.GaussianPath.convert"),
    "score": ("gencode.paths.eps_from_score_at", "gencode.paths.GaussianPath.convert"),
    "v": ("gencode.paths.eps_from_v_at", "gencode.paths.x0_from_v_at", "gencode.paths.GaussianPath.convert"),
    "velocity": ("gencode.paths.eps_from_velocity_at", "gencode.paths.x0_from_velocity_at",
                 "gencode.paths.GaussianPath.convert"),
}
_TITLES = {"eps": "noise", "x0": "data (denoiser)", "score": "score", "v": "v", "velocity": "velocity"}


def _conversion(src: str) -> Identity:
    parts = CONVERSIONS[src]
    lines = r" \\ ".join(f"{NAMES[k]} &= ${k}" for k in parts)
    return register(Identity(
        id=f"paths.from_{src}",
        title=f"Conversions from the {_TITLES[src]} prediction to the other four, on any Gaussian path",
        chapter="gaussian_paths",
        claim={k: sp.sympify(v).doit() for k, v in parts.items()},
        check=Check(f"substitute x_t = alpha x_0 + sigma eps and the conditional {_TITLES[src]} for {NAMES[src]}; "
                    "each converted quantity equals its conditional value; alpha, sigma, alpha', sigma' free "
                    "symbols (their values at one time); cancel", _conversion_residuals(src)),
        template=r"\begin{aligned}" + lines + r"\end{aligned}",
        assumptions=("x_t = alpha_t x_0 + sigma_t eps; alpha_t, sigma_t > 0 and alphadot_t, sigmadot_t the values "
                     "of an arbitrary path and its derivatives at one time",
                     "conditional quantities: eps, x_0, score -eps/sigma_t (of N(alpha x_0, sigma^2 I)), "
                     "v = alpha eps - sigma x_0, velocity u = alphadot x_0 + sigmadot eps",
                     "each conversion is affine in the prediction at fixed (x_t, t), so it maps conditional "
                     "expectations to conditional expectations: optimal predictions convert the same way "
                     "(with E[-eps/sigma | x_t] = grad log p_t by paths.tweedie)",
                     "coordinatewise: the same formula in every coordinate, so it holds in every dimension"),
        mutants=_MUTANTS[src],
        references=("salimans2022progressive", "kingma2021variational", "lipman2024flowguide"),
        scope=Scope.GENERAL,
        code=_CODE[src],
        display=parts,
    ))


from_eps, from_x0, from_score, from_v, from_velocity = (_conversion(k) for k in KINDS)

# ---------------------------------------------------------------------------------------------
# 3. The SDE of a path, and the PF-ODE velocity as the expected conditional velocity.

F_T = TexSymbol("f_t", "f(t)", real=True)
G2_T = TexSymbol("g2_t", "g(t)^2", positive=True)


def _sde_residuals(claim: Claim) -> list[sp.Expr]:
    """The registered moment ODEs (sde.moment_odes) with c = f(t), g^2, mean alpha(t) x_0, variance sigma(t)^2."""
    f = claim["f"].xreplace({a: ALPHA(t), da: sp.Derivative(ALPHA(t), t)})
    g2 = claim["g2"].xreplace({a: ALPHA(t), s: SIGMA(t), da: sp.Derivative(ALPHA(t), t),
                               ds: sp.Derivative(SIGMA(t), t), F_T: f})
    mean, var = ALPHA(t) * x0, SIGMA(t) ** 2
    rule = {sde.c: f, sde.g2: g2, sde.m: mean, sde.v: var}
    return [at_time(sp.diff(mean, t) - sde.moment_odes.claim["rate_m"].xreplace(rule)),
            at_time(sp.diff(var, t) - sde.moment_odes.claim["rate_v"].xreplace(rule))]


sde_coefficients = register(Identity(
    id="paths.sde_coefficients",
    title="The linear SDE whose transition kernel is the path: f = alpha'/alpha, g^2 = 2 sigma sigma' - 2 f sigma^2",
    chapter="gaussian_paths",
    claim={"f": da / a, "g2": 2 * s * ds - 2 * F_T * s**2},
    check=Check("the registered moment ODEs (sde.moment_odes) dm/dt = f m, dv/dt = 2 f v + g^2 with m = alpha(t) x_0, "
                "v = sigma(t)^2 for undefined alpha(t), sigma(t); cancel", _sde_residuals),
    template=(r"\mathrm{d}x = f(t)\,x\,\mathrm{d}t + g(t)\,\mathrm{d}W, \qquad f(t) = $f, \qquad g(t)^2 = $g2"),
    assumptions=("alpha(t), sigma(t) > 0 differentiable and otherwise arbitrary (undefined functions)",
                 "the kernel of a linear SDE is Gaussian with mean and variance solving the moment ODEs (unique "
                 "solutions): it is N(alpha(t) x_0, sigma(t)^2 I) when it starts from alpha(t_0) x_0, sigma(t_0)^2, "
                 "e.g. from the data (alpha = 1, sigma = 0) at t = 0",
                 "g^2 >= 0 is needed for the SDE to exist: sigma/alpha must be non-decreasing"),
    mutants=(
        Mutant("ve_formula", {"g2": 2 * s * ds},
               r"$g^2 = \mathrm{d}\sigma_t^2/\mathrm{d}t$, the VE formula, for any path: "
               r"the drift's contraction of the variance is not compensated."),
        Mutant("f_swapped", {"f": ds / s}, r"$f = \dot\sigma_t/\sigma_t$: the noise's growth rate read as the drift."),
        Mutant("g2_half", {"g2": s * ds - F_T * s**2}, r"$g^2$ without its factor 2."),
        Mutant("f_sign", {"f": -da / a}, r"$f = -\dot\alpha_t/\alpha_t$: the sign lost."),
    ),
    references=("song2021score", "kingma2021variational", "karras2022elucidating"),
    scope=Scope.GENERAL,
    code=("gencode.paths.GaussianPath.drift_coef", "gencode.paths.GaussianPath.g2"),
    display={"f": _frac(da, a), "g2": _add(_mul(2, s, ds), -_mul(2, F_T, s**2))},
))


def _pf_velocity_residuals(claim: Claim) -> list[sp.Expr]:
    """E[alpha' x_0 + sigma' eps | x] via the registered Tweedie parts, minus f x - g^2/2 score with the
    registered f, g^2; and the claim equals the latter."""
    f = sde_coefficients.claim["f"]
    g2 = sde_coefficients.claim["g2"].xreplace({F_T: f})
    expected = da * tweedie.claim["data"] + ds * tweedie.claim["noise"]
    pf = f * x - g2 / 2 * SCORE_T
    return [expected - pf, claim["velocity"].xreplace({F_T: f, G2_T: g2}) - pf]


pf_velocity = register(Identity(
    id="paths.pf_velocity",
    title="The PF-ODE velocity of a path is the expected conditional velocity (flow matching's marginal field)",
    chapter="gaussian_paths",
    claim={"velocity": F_T * x - G2_T / 2 * SCORE_T},
    check=Check("alpha' E[x_0|x] + sigma' E[eps|x] with the registered Tweedie formulas (paths.tweedie) equals "
                "f x - g^2/2 score with the registered f, g^2 (paths.sde_coefficients); cancel",
                _pf_velocity_residuals),
    template=(r"\mathbb{E}\big[\dot\alpha_t x_0 + \dot\sigma_t \epsilon \,\big|\, x_t\big] = "
              r"\dot\alpha_t\,\mathbb{E}[x_0 \mid x_t] + \dot\sigma_t\,\mathbb{E}[\epsilon \mid x_t] = $velocity"),
    assumptions=("any path (alpha, sigma, alphadot, sigmadot at one time are free) and any data law (through "
                 "paths.tweedie)", "f, g^2 as in paths.sde_coefficients"),
    mutants=(
        Mutant("reverse_sde_drift", {"velocity": F_T * x - G2_T * SCORE_T},
               r"$f x - g^2 \nabla\log p_t$: the reverse SDE's drift, which needs its noise."),
        Mutant("score_sign", {"velocity": F_T * x + G2_T / 2 * SCORE_T}, "The score term with a plus sign."),
    ),
    references=("song2021score", "lipman2024flowguide"),
    scope=Scope.GENERAL,
    code=("gencode.paths.GaussianPath.velocity_from_eps",),
    display={"velocity": _add(_mul(F_T, x), -_mul(_frac(G2_T, 2), SCORE_T))},
))

# ---------------------------------------------------------------------------------------------
# 4. The instances: (alpha, sigma, f, g^2) of the paths in the literature.

ABAR = function("alphabar", r"\bar\alpha")
BETA_T = TexSymbol("beta_t_inst", r"\beta(t)", positive=True)          # -d log alphabar/dt
b_min, b_max = sym("beta_min", positive=True), sym("beta_max", positive=True)
c_off = sym("s", positive=True)                                          # the cosine offset
PHI = TexSymbol("phi_t", r"\phi_t", positive=True)
PHI0 = TexSymbol("phi_0", r"\phi_0", positive=True)
SIG = function("sigma", r"\sigma")

_B = b_min * t + (b_max - b_min) * t**2 / 2                              # int_0^t beta, beta linear
_B_T = TexSymbol("B_t", "B(t)", positive=True)
_phi = (t + c_off) / (1 + c_off) * sp.pi / 2

INSTANCES = ("vp", "linear", "cosine", "subvp", "ve", "rf", "edm")
ROWS = {
    "vp": (r"\text{VP, any }\bar\alpha(t)\ (\text{DDPM}: \bar\alpha(k/T) = \bar\alpha_k)",
           sp.sqrt(ABAR(t)), sp.sqrt(1 - ABAR(t)), -BETA_T / 2, BETA_T),
    "linear": (r"\text{VP linear}", sp.exp(-_B_T / 2), sp.sqrt(1 - sp.exp(-_B_T)),
               -(b_min + (b_max - b_min) * t) / 2, b_min + (b_max - b_min) * t),
    "cosine": (r"\text{cosine}", sp.cos(PHI) / sp.cos(PHI0), sp.sqrt(1 - sp.cos(PHI) ** 2 / sp.cos(PHI0) ** 2),
               -sp.pi * sp.tan(PHI) / (2 * (1 + c_off)), sp.pi * sp.tan(PHI) / (1 + c_off)),
    "subvp": (r"\text{sub-VP}", sp.exp(-_B_T / 2), 1 - sp.exp(-_B_T),
              -(b_min + (b_max - b_min) * t) / 2, (b_min + (b_max - b_min) * t) * (1 - sp.exp(-2 * _B_T))),
    "ve": (r"\text{VE, any }\sigma(t)", sp.Integer(1), SIG(t), sp.Integer(0), sp.Derivative(SIG(t) ** 2, t)),
    "rf": (r"\text{rectified flow}", 1 - t, t, -1 / (1 - t), 2 * t / (1 - t)),
    "edm": (r"\text{EDM } (t = \sigma)", sp.Integer(1), t, sp.Integer(0), 2 * t),
}
_INSTANCE_DEFS = {BETA_T: -sp.Derivative(ABAR(t), t) / ABAR(t), _B_T: _B, PHI: _phi,
                  PHI0: c_off / (1 + c_off) * sp.pi / 2}


def _instance_values(claim: Claim, key: str) -> list[sp.Expr]:
    """Residuals of f = alpha'/alpha and g^2 = 2 sigma sigma' - 2 f sigma^2 (paths.sde_coefficients) for one row,
    in the jet of the undefined alphabar(t), sigma(t) (values and derivatives at one time are free)."""
    defs = lambda e: sp.sympify(e).xreplace(_INSTANCE_DEFS).xreplace(_INSTANCE_DEFS)  # noqa: E731
    al, sg, f, g2 = (defs(claim[f"{key}_{p}"]) for p in ("alpha", "sigma", "f", "g2"))
    rule = {a: al, s: sg, da: sp.diff(al, t), ds: sp.diff(sg, t)}
    f_gen = sde_coefficients.claim["f"].xreplace(rule)
    g2_gen = sde_coefficients.claim["g2"].xreplace({**rule, F_T: f_gen})
    out = []
    for r in (f - f_gen, g2 - g2_gen):
        r = sp.sympify(r).doit().replace(sp.tan, lambda u: sp.sin(u) / sp.cos(u))
        out.append(_jet_instances(r))
    return out


_ABAR_SYM = sym("alphabar", (0, 1), positive=True)
_SIG_SYM = sym("sigma_value", positive=True)


def _jet_instances(expr: sp.Expr) -> sp.Expr:
    reps = {}
    for d_ in expr.atoms(sp.Derivative):
        if isinstance(d_.expr, AppliedUndef):
            n = sum(c for _, c in d_.variable_count)
            reps[d_] = sp.Symbol(f"{d_.expr.func}_d{n}", real=True)
    expr = expr.xreplace(reps)
    return expr.xreplace({ABAR(t): _ABAR_SYM, SIG(t): _SIG_SYM})


INSTANCE_CLAIM = {f"{k}_{p}": v for k, row in ROWS.items() for p, v in zip(("alpha", "sigma", "f", "g2"), row[1:])}

instances = register(Identity(
    id="paths.instances",
    title="The paths of the literature as instances: their (alpha, sigma) and SDE coefficients (f, g^2)",
    chapter="gaussian_paths",
    claim=INSTANCE_CLAIM,
    check=Check("for each row, f and g^2 recomputed from its alpha(t), sigma(t) by the registered formulas "
                "(paths.sde_coefficients); beta = -d log alphabar/dt, B(t) = beta_min t + (beta_max - beta_min) t^2/2, "
                "phi_t = (t + s)/(1 + s) pi/2; undefined alphabar(t), sigma(t) read in their jet; tan = sin/cos; cancel",
                lambda c: [r for k in INSTANCES for r in _instance_values(c, k)]),
    template=(r"\begin{array}{lcccc} \text{path} & \alpha_t & \sigma_t & f(t) & g(t)^2 \\ \hline "
              + r" \\ ".join(f"{ROWS[k][0]} & ${k}_alpha & ${k}_sigma & ${k}_f & ${k}_g2" for k in INSTANCES)
              + r"\end{array}"),
    assumptions=("VP: beta(t) = -d log alphabar(t)/dt for any decreasing alphabar (DDPM's schedule interpolated, "
                 "as gencode.paths.VPDiscrete does, is one)",
                 "VP linear and sub-VP: beta(t) = beta_min + (beta_max - beta_min) t on [0, 1], B(t) = int_0^t beta",
                 "cosine (Nichol and Dhariwal): phi_t = (t + s)/(1 + s) pi/2, offset s >= 0",
                 "VE: any increasing sigma(t) (gencode.paths.VE: sigma^2 = sigma_min^2 ((sigma_max/sigma_min)^(2t) - 1))",
                 "rectified flow on [0, 1); EDM in sigma-time t = sigma"),
    mutants=(
        Mutant("subvp_with_vp_noise", {"subvp_g2": b_min + (b_max - b_min) * t},
               r"The sub-VP SDE given the VP diffusion $g^2 = \beta(t)$: its variance would not be $(1 - e^{-B})^2$."),
        Mutant("rf_g2_without_denominator", {"rf_g2": 2 * t},
               r"Rectified flow with $g^2 = 2t$ (EDM's value): the drift $f = -1/(1 - t)$ shrinks the variance too."),
        Mutant("cosine_f_equals_beta", {"cosine_f": -sp.pi * sp.tan(PHI) / (1 + c_off)},
               r"The cosine schedule's drift written $-\beta$ instead of $-\beta/2$."),
        Mutant("ve_g2_sigma_dot", {"ve_g2": sp.Derivative(SIG(t), t)},
               r"VE with $g^2 = \dot\sigma(t)$: the standard deviation's rate used for the variance's."),
    ),
    references=("ho2020denoising", "song2021score", "nichol2021improved", "karras2022elucidating",
                "lipman2024flowguide"),
    scope=Scope.GENERAL,
    code=("gencode.paths.VPLinear", "gencode.paths.VPCosine", "gencode.paths.SubVP", "gencode.paths.VE",
          "gencode.paths.RectifiedFlow", "gencode.paths.EDM"),
))

# ---------------------------------------------------------------------------------------------
# 5. The flow-matching convention: u = 1 - t.

uu = sym("u_fm", (0, 1), positive=True)   # flow time (a name of its own: sym() records domains per symbol)
ALPHA_PRIME = TexSymbol("alpha_prime", r"\dot\alpha(1 - u)", real=True)
SIGMA_PRIME = TexSymbol("sigma_prime", r"\dot\sigma(1 - u)", real=True)


def _flow_time_residuals(claim: Claim) -> list[sp.Expr]:
    xu = ALPHA(1 - uu) * x0 + SIGMA(1 - uu) * eps
    derived = sp.diff(xu, uu).doit()
    # d/du alpha(1 - u) is -alpha'(1 - u): read the derivative at the argument 1 - u
    reps = {}
    for d_ in derived.atoms(sp.Subs):
        reps[d_] = ALPHA_PRIME if d_.expr.expr.func == ALPHA else SIGMA_PRIME
    derived = derived.xreplace(reps)
    return [derived - claim["velocity"]]


flow_time = register(Identity(
    id="paths.flow_time",
    title="The flow-matching convention u = 1 - t: the velocity changes sign",
    chapter="gaussian_paths",
    claim={"velocity": -(ALPHA_PRIME * x0 + SIGMA_PRIME * eps)},
    check=Check("differentiate alpha(1 - u) x_0 + sigma(1 - u) eps in u for undefined alpha, sigma (chain rule); cancel",
                _flow_time_residuals),
    template=(r"x_u = \alpha(1 - u)\,x_0 + \sigma(1 - u)\,\epsilon \quad\Longrightarrow\quad "
              r"\frac{\mathrm{d}x_u}{\mathrm{d}u} = $velocity"),
    assumptions=("u = 1 - t: noise at u = 0 (where t = 1), data at u = 1; alpha, sigma arbitrary differentiable",
                 "the flow-matching path of the book, x_u = u x_1 + (1 - u) x_0 with data x_1 and noise x_0, is "
                 "alpha(t) = 1 - t, sigma(t) = t"),
    mutants=(
        Mutant("no_sign_change", {"velocity": ALPHA_PRIME * x0 + SIGMA_PRIME * eps},
               "The diffusion-time velocity reused in flow time without the minus sign."),
        Mutant("sign_on_noise_only", {"velocity": -ALPHA_PRIME * x0 + SIGMA_PRIME * eps},
               "The chain rule applied to the data coefficient only: the noise term keeps its diffusion-time sign."),
    ),
    references=("lipman2024flowguide", "lipman2023flow"),
    scope=Scope.GENERAL,
    code=("gencode.paths.flow_time", "gencode.paths.diffusion_time"),
    display={"velocity": _mul(-1, _add(_mul(ALPHA_PRIME, x0), _mul(SIGMA_PRIME, eps)))},
))

# ---------------------------------------------------------------------------------------------
# 6. The signal-to-noise ratio as the one clock.

rho = sym("rho_t", positive=True)
rho_dot = sym("rhodot_t", real=True)


def _snr_residuals(claim: Claim) -> list[sp.Expr]:
    """y = x/alpha along dx/dt = u_hat(eps_hat) (the registered conversion paths.from_eps) for undefined
    alpha(t), sigma(t), x(t); rho = sigma/alpha."""
    rule = {rho: s / a, rho_dot: at_time(sp.diff(SIGMA(t) / ALPHA(t), t))}
    scaled = (a * x0 + s * eps) / a - claim["scaled"].xreplace(rule)
    velocity = from_eps.claim["velocity"].xreplace({x: XT(t), a: ALPHA(t), s: SIGMA(t),
                                                     da: sp.Derivative(ALPHA(t), t), ds: sp.Derivative(SIGMA(t), t)})
    dy = sp.diff(XT(t) / ALPHA(t), t).xreplace({sp.Derivative(XT(t), t): velocity})
    return [scaled, at_time(dy).xreplace({XT(t): x}) - claim["ode"].xreplace(rule)]


snr_clock = register(Identity(
    id="paths.snr_clock",
    title="The signal-to-noise ratio is the one clock: in y = x/alpha and rho = sigma/alpha every path has one PF-ODE",
    chapter="gaussian_paths",
    claim={"scaled": x0 + rho * eps, "ode": rho_dot * eps_hat},
    check=Check("y = x/alpha for x = alpha x_0 + sigma eps; d/dt (x/alpha) along dx/dt = the registered velocity "
                "(paths.from_eps) for undefined alpha(t), sigma(t), x(t); rho = sigma/alpha; cancel", _snr_residuals),
    template=(r"y_t = \frac{x_t}{\alpha_t} = $scaled, \qquad \rho_t = \frac{\sigma_t}{\alpha_t} = \mathrm{SNR}_t^{-1/2},"
              r" \qquad \frac{\mathrm{d}y_t}{\mathrm{d}t} = $ode \ \ \text{along the PF-ODE}"),
    assumptions=("any path (undefined alpha(t), sigma(t)); eps_hat = E[eps | x_t] any prediction of the noise",
                 "the law of (x_0, y) depends on the path only through rho (y = x_0 + rho eps), so "
                 "E[eps | x_t] = E[eps | y] is one function eps*(y, rho) for all paths: dy/drho = eps*(y, rho)"),
    mutants=(
        Mutant("scaled_inverse", {"scaled": x0 + eps / rho},
               r"$x_0 + \epsilon/\rho_t$: the SNR where its inverse belongs."),
        Mutant("ode_without_alpha_dot", {"ode": ds / a * eps_hat},
               r"$\dot\sigma_t\hat\epsilon/\alpha_t$: the change of $\alpha_t$ along the path forgotten."),
        Mutant("ode_in_data", {"ode": rho_dot * x0_hat},
               r"$\dot\rho_t \hat x_0$: the predicted data instead of the noise."),
    ),
    references=("kingma2021variational", "song2021ddim", "karras2022elucidating"),
    scope=Scope.GENERAL,
    code=("gencode.paths.GaussianPath.t_of_lam", "gencode.paths.GaussianPath.lam"),
    display={"scaled": _add(x0, _mul(rho, eps)), "ode": _mul(rho_dot, eps_hat)},
))

# ---------------------------------------------------------------------------------------------
# 7. The losses of the five parametrisations are reweighted x_0-losses.

SNR = TexSymbol("SNR_t", r"\mathrm{SNR}_t", positive=True)


def _loss_residuals(claim: Claim) -> list[sp.Expr]:
    """Predictions consistent at the same x (the registered conversions from x0_hat), targets the conditional
    quantities: (pred - target)^2 - w (x0_hat - x0)^2 for each kind."""
    point = {x: a * x0 + s * eps}
    out = []
    for k in ("eps", "score", "v", "velocity"):
        pred = from_x0.claim[k].xreplace(point)
        w = claim[k].xreplace({SNR: a**2 / s**2})
        out.append(sp.expand((pred - TRUE[k]) ** 2 - w * (x0_hat - x0) ** 2))
    return out


loss_weights = register(Identity(
    id="paths.loss_weights",
    title="The noise, score, v and velocity losses are x0-losses weighted by functions of the SNR",
    chapter="gaussian_paths",
    claim={"eps": SNR, "score": SNR / s**2, "v": s**2 * (1 + SNR) ** 2, "velocity": a**2 * (ds / s - da / a) ** 2},
    check=Check("predictions converted from one x0_hat at the same x_t (paths.from_x0), targets the conditional "
                "quantities; squared errors compared with w (x0_hat - x_0)^2, SNR = alpha^2/sigma^2; cancel",
                _loss_residuals),
    template=(r"\|\hat k - k\|^2 = w_k\,\|\hat x_0 - x_0\|^2: \qquad w_\epsilon = $eps, \quad w_s = $score, \quad "
              r"w_v = $v, \quad w_u = $velocity"),
    assumptions=("one sample (x_0, eps), x_t = alpha x_0 + sigma eps; the predictions of each kind are the conversions "
                 "of one x0_hat at x_t (a network of one parametrisation read in another)",
                 "targets: eps, the conditional score -eps/sigma, v = alpha eps - sigma x_0, u = alphadot x_0 + sigmadot eps",
                 "SNR_t = alpha_t^2/sigma_t^2; any path; the norms are sums over coordinates of the same identity"),
    mutants=(
        Mutant("eps_inverse", {"eps": 1 / SNR}, r"$w_\epsilon = 1/\mathrm{SNR}_t$: the weight inverted."),
        Mutant("v_vp_only", {"v": 1 + SNR},
               r"$w_v = 1 + \mathrm{SNR}_t$: right on VP paths ($\sigma_t^2 = 1/(1 + \mathrm{SNR}_t)$), not in general."),
        Mutant("score_as_eps", {"score": SNR}, r"$w_s = \mathrm{SNR}_t$: the factor $1/\sigma_t^2$ of the score lost."),
        Mutant("velocity_no_alpha", {"velocity": (ds / s - da / a) ** 2}, r"$w_u$ without the factor $\alpha_t^2$."),
    ),
    references=("kingma2021variational", "salimans2022progressive", "karras2022elucidating"),
    scope=Scope.GENERAL,
    display={"eps": SNR, "score": _frac(SNR, s**2), "v": _mul(s**2, _add(1, SNR) ** 2),
             "velocity": _mul(a**2, _add(_frac(ds, s), -_frac(da, a)) ** 2)},
))

# ---------------------------------------------------------------------------------------------
# 8. Adding noise to any flow: the lambda family, and DDIM's eta as its discretisation.

lam = sym("lambda", positive=True)
G_T = TexSymbol("g_t_placeholder", "g(t)", positive=True)


def _family_residuals(claim: Claim) -> list[sp.Expr]:
    """Forward Fokker-Planck residual plus that of the reverse-time SDE with drift b and diffusion lambda g
    (sde.fp_residual, log form), for undefined l(x, t), f_k(x, t), g(t)^2 in three coordinates; and the members
    lambda = 0, 1 are the registered PF-ODE and reverse SDE."""
    b = sde.drift_components(claim["drift"], sde._L3, sde._F3, sde._G2f)
    noise2 = (claim["noise"] ** 2).xreplace({G_T: sp.sqrt(sde._G2f)})
    forward = sde.fp_residual(sde._L3, sde._F3, sde._G2f / 2, sde.X, lambda e: sp.diff(e, sde.t))
    reverse = sde.fp_residual(sde._L3, tuple(-bk for bk in b), noise2 / 2, sde.X, lambda e: -sp.diff(e, sde.t))
    ode = claim["drift"].xreplace({lam: 0}) - (sde.F - sde.G2 / 2 * sde.SCORE)
    rsde = claim["drift"].xreplace({lam: 1}) - sde.reverse.claim["drift"]
    return [sde.jet(forward + reverse), ode, rsde, claim["noise"].xreplace({lam: 1}) - G_T]


lambda_family = register(Identity(
    id="paths.lambda_family",
    title="Adding noise to any flow: a one-parameter family of reverse-time SDEs with the same marginals",
    chapter="gaussian_paths",
    claim={"drift": sde.F - (1 + lam**2) / 2 * sde.G2 * sde.SCORE, "noise": lam * G_T},
    check=Check("forward + reverse Fokker-Planck residuals in the registered log form (sde.fokker_planck.log), "
                "reverse diffusion lambda^2 g^2, for undefined l(x, t), f_k(x, t), g(t)^2 in D = 3 coordinates; jet; "
                "cancel; lambda = 0 and lambda = 1 give the drifts of the PF-ODE and of the registered sde.reverse",
                _family_residuals),
    template=(r"\mathrm{d}x = \Big[$drift\Big]\mathrm{d}t + $noise\,\mathrm{d}\bar W, \qquad \mathrm{d}t < 0, "
              r"\qquad \lambda \ge 0"),
    assumptions=("p_t solves the forward Fokker-Planck equation of dx = f dt + g dW; p, f, g otherwise arbitrary "
                 "(for a Gaussian path f(x, t) = f(t) x)", "time runs from T down to 0",
                 "checked in D = 3 coordinates (derivations.sde: every term is a sum over coordinates)"),
    mutants=(
        Mutant("linear_in_lambda", {"drift": sde.F - (1 + lam) / 2 * sde.G2 * sde.SCORE},
               r"$(1 + \lambda)/2$ instead of $(1 + \lambda^2)/2$: the score correction must match the noise's "
               r"variance $\lambda^2 g^2$, not its standard deviation."),
        Mutant("noise_without_score", {"drift": sde.F - sde.G2 / 2 * sde.SCORE},
               "Noise added to the PF-ODE without strengthening the score term: the samples blur."),
        Mutant("noise_lambda_squared", {"noise": lam**2 * G_T}, r"Noise $\lambda^2 g$ with the drift of $\lambda g$."),
    ),
    references=("song2021score", "karras2022elucidating", "albergo2023stochastic", "holderrieth2025introduction"),
    scope=Scope.GENERAL,
    code=("gencode.paths.GaussianPath.sde_drift", "gencode.paths.GaussianPath.sde_diffusion"),
    display={"drift": _add(sde.F, -_mul(_frac(_add(1, lam**2), 2), sde.G2, sde.SCORE)), "noise": _mul(lam, G_T)},
))

# DDIM(eta) on a VP path, one step from t to t - h, against Euler-Maruyama for the lambda family.

h = sym("h", positive=True)
eta = sym("eta", (0, 1), positive=True)
A_t = sym("a", (0, 1), positive=True)       # alpha_t = sqrt(alphabar_t) on a VP path
beta_now = sym("beta", positive=True)        # beta(t)
rem = sym("R", real=True)                    # Taylor remainder of log alphabar
SIGMA_NOW = TexSymbol("sigma_now", r"\sigma_t", positive=True)


def _ddim_residuals(claim: Claim) -> list[sp.Expr]:
    """DDIM's step, expanded to first order in h with log alphabar(t - h) = log alphabar(t) + beta h + R h^2
    (Taylor with remainder, any smooth schedule); and the Euler-Maruyama step of the registered lambda family
    with lambda = eta, f = -beta x/2, g^2 = beta, score = -eps_hat/sigma_t."""
    sig = sp.sqrt(1 - A_t**2)
    ab_t, ab_s = A_t**2, A_t**2 * sp.exp(beta_now * h + rem * h**2)
    c2 = eta**2 * (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)
    x0h = (x - sig * eps_hat) / A_t
    mean = sp.sqrt(ab_s) * x0h + sp.sqrt(1 - ab_s - c2) * eps_hat
    # first-order Taylor polynomial in h (every piece is smooth at h = 0)
    first = lambda e: e.xreplace({h: 0}) + h * sp.diff(e, h).xreplace({h: 0})  # noqa: E731
    coef_x, coef_eps = sp.diff(mean, x), sp.diff(mean, eps_hat)
    read = lambda e: e.xreplace({SIGMA_NOW: sig})  # noqa: E731
    drift = lambda_family.claim["drift"].xreplace({lam: eta, sde.F: -beta_now * x / 2, sde.G2: beta_now,
                                                   sde.SCORE: -eps_hat / sig})
    em_mean = x - h * drift
    em_var = (lambda_family.claim["noise"].xreplace({lam: eta, G_T: sp.sqrt(beta_now)})) ** 2 * h
    return [first(coef_x) - read(claim["x"]), first(coef_eps) + read(claim["eps"]), first(c2) - read(claim["var"]),
            sp.diff(em_mean, x) - read(claim["x"]), sp.diff(em_mean, eps_hat) + read(claim["eps"]),
            em_var - read(claim["var"])]


ddim_eta = register(Identity(
    id="paths.ddim_eta",
    title="DDIM with parameter eta is the Euler-Maruyama step of the lambda family with lambda = eta",
    chapter="gaussian_paths",
    claim={"x": 1 + beta_now * h / 2, "eps": (1 + eta**2) * beta_now * h / (2 * SIGMA_NOW), "var": eta**2 * beta_now * h},
    check=Check("DDIM's mean coefficients and variance from t to t - h, series in h to first order with "
                "log alphabar(t - h) = log alphabar(t) + beta h + R h^2 (value and h-derivative at h = 0); the Euler-Maruyama step of the registered "
                "family (paths.lambda_family) with lambda = eta, f = -beta/2, g^2 = beta; cancel", _ddim_residuals),
    template=(r"x_{t-h} = \Big($x\Big)x_t - $eps\,\hat\epsilon + \sqrt{$var}\,z + O(h^2)"
              r"\quad\text{for DDIM}(\eta)\ \text{and for Euler-Maruyama with}\ \lambda = \eta"),
    assumptions=("a VP path with any smooth schedule: alpha_t = sqrt(alphabar_t), sigma_t = sqrt(1 - alphabar_t), "
                 "beta(t) = -d log alphabar/dt; one step from t to s = t - h",
                 "DDIM: x_s = sqrt(alphabar_s) x0_hat + sqrt(1 - alphabar_s - c^2) eps_hat + c z, "
                 "c^2 = eta^2 (1 - alphabar_s)/(1 - alphabar_t) (1 - alphabar_t/alphabar_s)",
                 "mean coefficients and variance agree to first order in h, so the two schemes have the same limit"),
    mutants=(
        Mutant("eta_ignored_in_mean", {"eps": beta_now * h / (2 * SIGMA_NOW)},
               r"The mean of the deterministic step kept while noise is added: the score term must grow by $1 + \eta^2$."),
        Mutant("variance_eta_not_squared", {"var": eta * beta_now * h}, r"Noise variance $\eta \beta h$."),
        Mutant("contraction_sign", {"x": 1 - beta_now * h / 2},
               r"$1 - \beta h/2$: the forward contraction, not its reverse."),
    ),
    references=("song2021ddim", "song2021score", "karras2022elucidating"),
    scope=Scope.GENERAL,
    code=("gencode.probability_flow.ddim_sigma",),
    display={"x": _add(1, _frac(_mul(beta_now, h), 2)),
             "eps": _frac(_mul(_add(1, eta**2), beta_now, h), _mul(2, SIGMA_NOW)),
             "var": _mul(eta**2, beta_now, h)},
))

# ---------------------------------------------------------------------------------------------
# 9. EDM's preconditioning from unit-variance input and target, for any data law of variance sigma_d^2.

sg = sym("sigma", positive=True)
sd = TexSymbol("sigma_data", r"\sigma_{\mathrm{data}}", positive=True)
mu_d = sym("mu", real=True)
uvar, zvar, cvar = sym("u", real=True), sym("z", real=True), sym("c", real=True)


def _variance(expr: sp.Expr) -> sp.Expr:
    """Var of a polynomial of degree <= 2 in independent u, z with E = 0, E[.^2] = 1 (any laws: only these
    moments enter)."""
    moments = {(0, 0): 1, (1, 0): 0, (0, 1): 0, (2, 0): 1, (0, 2): 1, (1, 1): 0}

    def expect(e: sp.Expr) -> sp.Expr:
        poly = sp.Poly(sp.expand(e), uvar, zvar)
        return sum(c * moments[m] for m, c in poly.terms())

    return sp.expand(expect(expr**2) - expect(expr) ** 2)


def _edm_residuals(claim: Claim) -> list[sp.Expr]:
    x0_ = mu_d + sd * uvar          # any data law with mean mu and variance sigma_d^2
    xs = x0_ + sg * zvar             # EDM: alpha = 1, sigma_t = sigma
    spread = _variance(x0_ - cvar * xs)       # the target's variance before c_out, as a function of c_skip
    return [_variance(claim["c_in"] * xs) - 1,
            sp.diff(spread, cvar).xreplace({cvar: claim["c_skip"]}),
            _variance((x0_ - claim["c_skip"] * xs) / claim["c_out"]) - 1]


edm_preconditioning = register(Identity(
    id="paths.edm_preconditioning",
    title="EDM's preconditioning from unit-variance input and target",
    chapter="gaussian_paths",
    claim={"c_in": 1 / sp.sqrt(sg**2 + sd**2), "c_skip": sd**2 / (sg**2 + sd**2),
           "c_out": sg * sd / sp.sqrt(sg**2 + sd**2)},
    check=Check("Var(c_in x) = 1; c_skip minimises Var(x_0 - c x) (derivative zero); Var((x_0 - c_skip x)/c_out) = 1; "
                "x_0 = mu + sigma_data u, x = x_0 + sigma z with only E u = E z = 0, E u^2 = E z^2 = 1, E uz = 0; cancel",
                _edm_residuals),
    template=(r"c_{\mathrm{in}} = $c_in, \qquad c_{\mathrm{skip}} = $c_skip, \qquad c_{\mathrm{out}} = $c_out"),
    assumptions=("EDM's path x = x_0 + sigma eps; D(x, sigma) = c_skip x + c_out F(c_in x, c_noise)",
                 "any data law with variance sigma_data^2 per coordinate (only second moments enter), eps independent",
                 "c_in: unit-variance network input; c_skip: the skip that minimises the target's variance (hence c_out, "
                 "the amplification of the network's error); c_out: unit-variance training target (x_0 - c_skip x)/c_out"),
    mutants=(
        Mutant("c_in_no_sqrt", {"c_in": 1 / (sg**2 + sd**2)}, r"$c_{\mathrm{in}}$ without the square root."),
        Mutant("c_skip_swapped", {"c_skip": sg**2 / (sg**2 + sd**2)},
               r"$\sigma^2$ and $\sigma_{\mathrm{data}}^2$ swapped in $c_{\mathrm{skip}}$."),
        Mutant("c_out_no_sqrt", {"c_out": sg * sd / (sg**2 + sd**2)}, r"$c_{\mathrm{out}}$ without the square root."),
    ),
    references=("karras2022elucidating",),
    scope=Scope.GENERAL,
    code=("gencode.paths.edm_preconditioning",),
    display={"c_in": sp.Pow(sp.sqrt(_add(sg**2, sd**2)), -1, evaluate=False), "c_skip": _frac(sd**2, _add(sg**2, sd**2)),
             "c_out": _frac(_mul(sg, sd), sp.sqrt(_add(sg**2, sd**2)))},
))
