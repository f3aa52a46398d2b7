r"""Score matching: Hyvarinen's objective, denoising and sliced score matching, Tweedie, NCSN.

The chapter ``book/score_matching.md`` states six results, registered here:

1. ``score.implicit``: for *any* density ``p`` and model ``s`` on ``R^D``, the Fisher objective
   ``E_p ||s - grad log p||^2 / 2`` equals ``E_p[||s||^2 / 2 + tr(grad s)] + E_p ||grad log p||^2 / 2``
   (integration by parts; the boundary term ``div(p s)`` integrates to zero).  Proved pointwise,
   coordinate by coordinate: the i-th terms of the integrands differ by ``d_i(p s_i) / p``, an exact
   derivative, with ``p, s_1, s_2, s_3`` undefined functions of three coordinates.
2. ``score.denoising.cross_term``: ``q(x~) s(x~) d log q(x~) = int p(x) q(x~|x) s(x~) d log q(x~|x) dx``
   for any data law ``p``, any corruption kernel ``q(x~|x)`` and any model ``s``: differentiation
   under the integral, as a pointwise identity of integrands.
3. ``score.denoising``: the denoising objective equals the explicit one plus a constant that does not
   depend on the model, for any data law and any model, with Gaussian noise in ``R^D``; the conditional
   score is ``-(x~ - x) / sigma^2``.
4. ``score.tweedie``: ``E[x | x~] = x~ + sigma^2 grad log q_sigma(x~)`` and
   ``E[eps | x~] = -sigma grad log q_sigma(x~)`` for any prior.
5. ``score.sliced``: for ``v ~ N(0, I_D)``, ``E[v^T J v] = tr J`` and ``E[(v^T s)^2] = ||s||^2``, for a
   symbolic ``D`` (sums over ``i, j = 1..D`` with Kronecker deltas).
6. ``score.ncsn.weighting``: for Gaussian data ``N(mu, tau^2)`` the minimum of the denoising objective
   is ``tau^2 / (2 sigma^2 (tau^2 + sigma^2))`` per coordinate, and with the weight ``sigma^2`` it is
   ``tau^2 / (2 (tau^2 + sigma^2)) <= 1/2``: every level contributes on the same scale.

Statements under an integral (2, 3, 4) use :class:`derivations.ebm.UnderIntegral`: SymPy's Leibniz
rule differentiates the integrals, integrals are split by linearity, and a residual that cancels is
a pointwise identity of integrands with the density, the model and (in 2) the kernel undefined.
In ``R^D`` the statements are sums (or vectors) over coordinates whose i-th entry involves the i-th
coordinate of the gradient only; they are checked for every coordinate of an arbitrary density of
two (3, 4) or three (1) coordinates, and the i-th entry for any ``D`` is the same expression with
the coordinate renamed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import sympy as sp

from .core import held_mul as _mul  # unevaluated, for display
from .core import (Check, Claim, ForAnyFunction, Identity, Mutant, Scope, Status, Verdict, equal, function,
                   gaussian_expectation, register, sym)
from .ebm import UnderIntegral, whole_line


# ---------------------------------------------------------------------------------------------
# 1. Hyvarinen's implicit score matching (any D, any density, any model).

x_i, rest = sym("x_i", real=True), sym("y", real=True)   # generic coordinate; y: the other coordinates
COORDS = (sym("x_1", real=True), sym("x_2", real=True), sym("x_3", real=True))
P = function("p", "p", show_args=False)
S = function("s_i", r"s_{\theta,i}", show_args=False)     # the i-th component of the model (display)
COMPONENTS = tuple(function(f"s_{k}", rf"s_{{\theta,{k}}}", show_args=False) for k in (1, 2, 3))
_p_all = P(*COORDS)
_s_all = tuple(s(*COORDS) for s in COMPONENTS)
_psi = sp.Derivative(sp.log(P(x_i, rest)), x_i)  # the i-th coordinate of the data score, for display


def _on_coordinate(expr: sp.Expr, k: int) -> sp.Expr:
    """The generic-coordinate expression for coordinate ``k`` of a density of three coordinates."""
    return (expr.xreplace({x_i: COORDS[k]}).replace(P, lambda *_: _p_all)
            .replace(S, lambda *_: _s_all[k]))


def _implicit_residuals(claim: Claim) -> list[sp.Expr]:
    """Per coordinate k: ``p (fisher_k - model_k - constant_k) + d_k(p s_k)``, zero iff the integrands
    differ by an exact derivative (integration by parts along the k-th axis)."""
    out = []
    for k, c in enumerate(COORDS):
        psi = sp.diff(sp.log(_p_all), c)
        fisher = (_s_all[k] - psi) ** 2 / 2
        out.append(_p_all * (fisher - _on_coordinate(claim["model"], k) - _on_coordinate(claim["constant"], k))
                   + sp.diff(_p_all * _s_all[k], c))
    return out


_s_i = S(x_i, rest)
implicit = register(Identity(
    id="score.implicit",
    title="Hyvarinen's implicit score matching objective",
    chapter="score_matching",
    claim={"model": _s_i**2 / 2 + sp.Derivative(_s_i, x_i), "constant": _psi**2 / 2},
    check=ForAnyFunction(
        "per coordinate, the integrands differ by d_i(p s_i) (integration by parts), with p, s_1, s_2, s_3 "
        "undefined functions of three coordinates; cancel",
        _implicit_residuals,
        examples=({P: sp.Lambda(COORDS, sp.exp(-COORDS[0]**2 / 2 - COORDS[1]**2 - COORDS[0] * COORDS[1] / 3
                                                - COORDS[2]**2 / 2)),
                   COMPONENTS[0]: sp.Lambda(COORDS, COORDS[0] * COORDS[1] - COORDS[0]**3 + 1),
                   COMPONENTS[1]: sp.Lambda(COORDS, COORDS[1] - 2 * COORDS[0] + COORDS[0]**2),
                   COMPONENTS[2]: sp.Lambda(COORDS, COORDS[2] * COORDS[0] - COORDS[2]**3)},),
    ),
    template=(r"\tfrac{1}{2}\, \mathbb{E}_{p} \big\| s_\theta - \nabla \log p \big\|^2 "
              r"= \sum_{i=1}^{D} \mathbb{E}_{p}\Big[ $model \Big] "
              r"+ \sum_{i=1}^{D} \mathbb{E}_{p}\Big[ $constant \Big]"),
    assumptions=("p > 0 and s_theta differentiable on R^D",
                 "p s_theta -> 0 at infinity, so each exact derivative d_i(p s_i) integrates to zero",
                 "every D: the i-th terms involve d/dx_i only; checked for each coordinate of undefined "
                 "functions of three coordinates (y stands for the other coordinates)"),
    mutants=(
        Mutant("factor_two_laplacian", {"model": _s_i**2 / 2 + 2 * sp.Derivative(_s_i, x_i)},
               r"The trace of the Jacobian (for $s_\theta = \nabla \log p_\theta$, the Laplacian of "
               r"$\log p_\theta$) with a factor 2.",
               source="source notes 002 (score matching lecture, SBM slides)"),
        Mutant("minus_trace", {"model": _s_i**2 / 2 - sp.Derivative(_s_i, x_i)},
               "The sign of the integration by parts lost: minus the trace."),
        Mutant("no_half", {"model": _s_i**2 + sp.Derivative(_s_i, x_i)},
               r"The squared norm without its $\tfrac12$."),
    ),
    references=("hyvarinen2005estimation",),
    code=("gencode.score_matching.implicit_score_matching_loss",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 2. The cross term of denoising score matching: differentiate q(x~) = int p(x) q(x~|x) dx under
#    the integral (any data law, any kernel, any model; one coordinate of the gradient).

x = sym("x", real=True)            # clean data
xt = sym("xtilde", real=True)      # noised data x~ = x + sigma eps
Data = function("p", "p")


def _kernel_latex(self, printer, exp=None):  # noqa: ARG001 (SymPy's printer protocol)
    text = rf"q_\sigma({printer._print(self.args[0])} \mid {printer._print(self.args[1])})"
    return text if exp is None else f"{text}^{{{exp}}}"


Kernel = sp.Function("q_cond", positive=True)   # q_sigma(x~ | x), printed as such
Kernel._latex = _kernel_latex
Model = function("s", r"s_\theta")
_marginal = sp.Integral(Data(x) * Kernel(xt, x), *whole_line(x))
"""``q_sigma(x~) = int p(x) q_sigma(x~ | x) dx``."""

_ATOMS = ((sp.Rational(-1, 2),), (sp.Rational(1, 3),), (sp.Rational(3, 2),))
_WEIGHTS = (sp.Rational(1, 5), sp.Rational(1, 2), sp.Rational(3, 10))
_gauss = lambda u, v: sp.exp(-(u - v)**2 / 2)  # noqa: E731  (a kernel for the witnesses)

cross_term = register(Identity(
    id="score.denoising.cross_term",
    title="The cross term of denoising score matching (differentiation under the integral)",
    chapter="score_matching",
    claim={"cross": Data(x) * Kernel(xt, x) * Model(xt) * sp.Derivative(sp.log(Kernel(xt, x)), xt)},
    check=UnderIntegral(
        "q(x~) = int p(x) q(x~|x) dx differentiated by the Leibniz rule, p, q(.|.), s undefined; integrals "
        "split by linearity; cancel",
        lambda c: [sp.Integral(c["cross"], *whole_line(x))
                   - _marginal * Model(xt) * sp.diff(sp.log(_marginal), xt)],
        atoms=_ATOMS, weights=_WEIGHTS,
        examples=({Data: sp.Lambda(x, 2 + x), Kernel: sp.Lambda((xt, x), _gauss(xt, x)),
                   Model: sp.Lambda(xt, xt**2 - 1)},),
    ),
    template=(r"\mathbb{E}_{\tilde x}\big[s_\theta(\tilde x)\, \partial_{\tilde x} \log q_\sigma(\tilde x)\big] "
              r"= \int s_\theta(\tilde x)\, \partial_{\tilde x} q_\sigma(\tilde x)\, d\tilde x "
              r"= \iint $cross \, dx\, d\tilde x"),
    assumptions=("any data law p, any corruption kernel q_sigma(x~|x) > 0, any model s_theta",
                 "differentiation under the integral allowed (dominated convergence)",
                 "one coordinate of the gradient shown; each coordinate is the same computation"),
    mutants=(
        Mutant("no_log", {"cross": Data(x) * Kernel(xt, x) * Model(xt) * sp.Derivative(Kernel(xt, x), xt)},
               r"The conditional density differentiated without the logarithm."),
        Mutant("data_density_dropped",
               {"cross": Kernel(xt, x) * Model(xt) * sp.Derivative(sp.log(Kernel(xt, x)), xt)},
               r"The data density $p(x)$ dropped from the joint density of $(x, \tilde x)$."),
    ),
    references=("vincent2011connection",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 3. Denoising score matching = explicit score matching + a constant (any data law, any model, any
#    corruption kernel; two coordinates checked), and the Gaussian kernel's conditional score.

sigma = sym("sigma", positive=True)
X2 = (sym("x_1", real=True), sym("x_2", real=True))
T2 = (sym("xtilde_1", real=True), sym("xtilde_2", real=True))
P2 = function("p", "p")
M2 = (function("s_1", r"s_{\theta,1}"), function("s_2", r"s_{\theta,2}"))
K2 = sp.Function("q_cond", positive=True)       # q(x~ | x) of two coordinates each, undefined
_LIMITS2 = whole_line(*X2)
_joint = P2(*X2) * K2(*T2, *X2)
_q2 = sp.Integral(_joint, *_LIMITS2)
_marginal_score = tuple(sp.diff(sp.log(_q2), t) for t in T2)
_conditional_score = tuple(sp.diff(sp.log(K2(*T2, *X2)), t) for t in T2)
_model2 = tuple(m(*T2) for m in M2)
_gauss_kernel = sp.exp(-(xt - x) ** 2 / (2 * sigma**2)) / sp.sqrt(2 * sp.pi * sigma**2)

C_sigma = sym(r"C_{\sigma}", real=True)
"""Stands for the constant in the claim; the check substitutes its definition (pointwise in x~)."""
_C_sigma = (sp.Integral(_joint * sum(c**2 for c in _conditional_score) / 2, *_LIMITS2)
            - _q2 * sum(m**2 for m in _marginal_score) / 2)


def _dsm_residuals(claim: Claim) -> list[sp.Expr]:
    """The Gaussian conditional score, and ``J_DSM - J_ESM - C_sigma`` as integrands over x~ (pointwise
    in x~) with the data law, the kernel, the model and both coordinates of x~ generic."""
    dsm = sp.Integral(_joint * sum((m - g) ** 2 for m, g in zip(_model2, _conditional_score)) / 2, *_LIMITS2)
    esm = _q2 * sum((m - g) ** 2 for m, g in zip(_model2, _marginal_score)) / 2
    return [sp.diff(sp.log(_gauss_kernel), xt) - claim["target"], dsm - esm - claim["constant"]]


denoising = register(Identity(
    id="score.denoising",
    title="Denoising score matching equals explicit score matching up to a constant",
    chapter="score_matching",
    claim={"target": -(xt - x) / sigma**2, "constant": C_sigma},
    check=UnderIntegral(
        "both objectives as integrals over (x, x~) with p(x), q(x~|x) and s_theta undefined (two "
        "coordinates), q(x~) = int p(x) q(x~|x) dx differentiated by the Leibniz rule; integrals split by "
        "linearity; cancel; the Gaussian conditional score by differentiating log N(x~; x, sigma^2)",
        _dsm_residuals,
        definitions={C_sigma: _C_sigma},
        atoms=((sp.Rational(1, 3), sp.Rational(-1, 2)), (sp.Rational(-5, 4), sp.Rational(2, 3))),
        weights=(sp.Rational(1, 4), sp.Rational(3, 4)),
        examples=({P2: sp.Lambda(X2, 1), M2[0]: sp.Lambda(T2, T2[0] * T2[1] - 1),
                   M2[1]: sp.Lambda(T2, T2[1] ** 2),
                   K2: sp.Lambda((*T2, *X2), sp.exp(-((T2[0] - X2[0])**2 + (T2[1] - X2[1])**2) / 2))},),
    ),
    template=(r"\begin{aligned} \nabla_{\tilde x} \log q_\sigma(\tilde x \mid x) &= $target, \\ "
              r"J_{\mathrm{DSM}}(\theta) &= J_{\mathrm{ESM}}(\theta) + $constant \end{aligned}"),
    assumptions=("any data law p, any model s_theta, any corruption kernel q(x~|x) > 0 (undefined "
                 "functions); for Gaussian noise x~ = x + sigma eps, eps ~ N(0, I) independent of x, the "
                 "conditional score is the displayed target (per coordinate)",
                 "C_sigma = E||grad log q(x~|x)||^2 / 2 - E||grad log q(x~)||^2 / 2, free of theta",
                 "differentiation under the integral allowed; finite second moments",
                 "every D: the squared norms are sums over coordinates, each coordinate the same "
                 "computation (checked for both coordinates in two dimensions)"),
    mutants=(
        Mutant("objectives_equal", {"constant": sp.Integer(0)},
               "The two objectives said to be equal: the constant forgotten."),
        Mutant("target_sign", {"target": (xt - x) / sigma**2},
               r"The conditional score with the wrong sign, $+(\tilde x - x)/\sigma^2$."),
        Mutant("variance_for_std", {"target": -(xt - x) / sigma**3},
               r"With $\tilde x - x = \sigma z$, the target written $-z/\sigma^2$ instead of $-z/\sigma$.",
               source="readers' question on score_sde_pytorch (issue 26)"),
    ),
    references=("vincent2011connection",),
    code=("gencode.score_matching.denoising_score_matching_loss",),
    display={"target": -_mul(xt - x, sp.Pow(sigma**2, -1, evaluate=False))},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 4. Tweedie's formula, and the noise as the score, for any prior (two coordinates checked).

score_symbol = sym(r"\nabla_{\tilde{x}} \log q_{\sigma}(\tilde{x})", real=True)
"""Stands for the marginal score in the claim; the check substitutes the derivative of the integral."""
eps = sym("epsilon", real=True)
_gauss2 = sp.exp(-sum((t - u) ** 2 for t, u in zip(T2, X2)) / (2 * sigma**2)) / (2 * sp.pi * sigma**2)
_joint_g = P2(*X2) * _gauss2                      # p(x) N(x~; x, sigma^2 I)
_q_g = sp.Integral(_joint_g, *_LIMITS2)           # q_sigma(x~)
_score_g = tuple(sp.diff(sp.log(_q_g), t) for t in T2)


def _tweedie_residuals(claim: Claim) -> list[sp.Expr]:
    """Both coordinates: ``E[u | x~] = int u p(x) N(x~; x, sigma^2 I) dx / q_sigma(x~)``."""
    out = []
    for k, t in enumerate(T2):
        sub = {xt: t, x: X2[k], eps: (t - X2[k]) / sigma, score_symbol: _score_g[k]}
        out.append(claim["denoiser"].xreplace(sub) - sp.Integral(X2[k] * _joint_g, *_LIMITS2) / _q_g)
        out.append(claim["noise"].xreplace(sub) - sp.Integral((t - X2[k]) / sigma * _joint_g, *_LIMITS2) / _q_g)
    return out


tweedie = register(Identity(
    id="score.tweedie",
    title="Tweedie's formula: the posterior means of the data and of the noise are given by the score",
    chapter="score_matching",
    claim={"denoiser": xt + sigma**2 * score_symbol, "noise": -sigma * score_symbol},
    check=UnderIntegral(
        "posterior means as ratios of integrals with an undefined prior p(x_1, x_2), q_sigma differentiated "
        "by the Leibniz rule; integrals split by linearity; cancel",
        _tweedie_residuals,
        atoms=((sp.Rational(1, 3), sp.Rational(-1, 2)), (sp.Rational(-5, 4), sp.Rational(2, 3))),
        weights=(sp.Rational(1, 4), sp.Rational(3, 4)),
        examples=({P2: sp.Lambda(X2, 1)},),
    ),
    template=(r"\begin{aligned} \mathbb{E}[x \mid \tilde x] &= $denoiser, \\ "
              r"\mathbb{E}[\epsilon \mid \tilde x] &= $noise \end{aligned}"),
    assumptions=("x~ = x + sigma eps, eps ~ N(0, I) independent of x",
                 "any prior p (undefined function; for the witnesses a two-atom law)",
                 "every D: the i-th coordinate involves d/dx~_i only (checked for both coordinates in R^2)"),
    mutants=(
        Mutant("applied_to_x0", {"denoiser": x},
               r"The formula read as $x = \tilde x + \sigma^2 \nabla \log q_\sigma(\tilde x)$: the data "
               r"point itself instead of its posterior mean.",
               source="Luo, \"Understanding Diffusion Models: A Unified Perspective\", 2022 "
                      "(arXiv:2208.11970), the Tweedie step for x_0"),
        Mutant("noise_pointwise", {"noise": eps},
               r"$\nabla \log q_\sigma(\tilde x) = -\epsilon / \sigma$ pointwise, i.e. the noise itself "
               r"instead of its posterior mean.",
               source="Luo, \"Understanding Diffusion Models: A Unified Perspective\", 2022 "
                      "(arXiv:2208.11970), the score-noise equivalence"),
        Mutant("sigma_not_squared", {"denoiser": xt + sigma * score_symbol},
               r"$\sigma$ where $\sigma^2$ belongs."),
    ),
    references=("efron2011tweedie", "luo2022understanding"),
    code=("gencode.score_matching.tweedie_denoiser",),
    display={"denoiser": sp.Add(xt, _mul(sigma**2, score_symbol), evaluate=False),
             "noise": _mul(-1, sigma, score_symbol)},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# Gaussian data N(mu, tau^2), one coordinate: every expectation is a Gaussian moment.  Used by the
# NCSN identity below and, as closed forms, by the tests of gencode.

eps_ = eps
mu = sym("mu", real=True)
tau = sym("tau", positive=True)    # data standard deviation
a, b = sym("a", real=True), sym("b", real=True)  # linear score model s(x) = a x + b

marginal_score = -(xt - mu) / (tau**2 + sigma**2)
"""The score of ``q_sigma = N(mu, tau^2 + sigma^2)``, the law of ``x~``."""


def _model(u: sp.Expr) -> sp.Expr:
    return a * u + b


def explicit_objective() -> sp.Expr:
    """``E_{q_sigma} (s(x~) - grad log q_sigma(x~))^2 / 2`` for the linear model ``a x~ + b``."""
    return gaussian_expectation((_model(xt) - marginal_score) ** 2 / 2, xt, mu, tau**2 + sigma**2)


def denoising_objective(target: sp.Expr) -> sp.Expr:
    """``E_x E_eps (s(x~) - target(x~, x))^2 / 2`` with ``x~ = x + sigma eps``, ``x ~ N(mu, tau^2)``."""
    integrand = ((_model(xt) - target) ** 2 / 2).xreplace({xt: x + sigma * eps})
    inner = gaussian_expectation(integrand, eps, 0, 1)
    return gaussian_expectation(inner, x, mu, tau**2)


def _conditional_mean(u: sp.Expr) -> sp.Expr:
    """``E[u | x~]`` for jointly Gaussian (u, x~): ``E u + Cov(u, x~) / Var(x~) (x~ - E x~)``.

    With ``x = mu + tau z``, ``x~ = x + sigma eps`` and ``z, eps`` independent standard normals, the
    moments are Gaussian expectations in ``z`` and ``eps`` (Gaussian conditioning, independent of
    Tweedie's formula: the tests use it as the reference posterior mean).
    """
    z = sym("z", real=True)

    def expectation(f: sp.Expr) -> sp.Expr:
        f = f.xreplace({x: mu + tau * z})
        return gaussian_expectation(gaussian_expectation(f, eps, 0, 1), z, 0, 1)

    noised = x + sigma * eps
    mean_u, mean_xt = expectation(u), expectation(noised)
    cov = expectation((u - mean_u) * (noised - mean_xt))
    var = expectation((noised - mean_xt) ** 2)
    return mean_u + cov / var * (xt - mean_xt)


dsm_constant = tau**2 / (2 * sigma**2 * (tau**2 + sigma**2))
"""``(1/sigma^2 - 1/(tau^2 + sigma^2)) / 2``: the constant C_sigma for Gaussian data, per coordinate."""

# ---------------------------------------------------------------------------------------------
# 5. Sliced score matching: random projections recover the trace and the norm, in R^D for a symbolic D.

D = sym("D", integer=True, positive=True)
i_, j_ = sym("i", integer=True, positive=True), sym("j", integer=True, positive=True)
Jac, vec = sp.IndexedBase("J"), sp.IndexedBase("s")
v_sym = sym("v", real=True)
# E[v_i v_j] for v ~ N(0, I): the second moment when i = j, the product of the means (independence) otherwise
_second_moment = (gaussian_expectation(v_sym, v_sym, 0, 1) ** 2 * (1 - sp.KroneckerDelta(i_, j_))
                  + gaussian_expectation(v_sym**2, v_sym, 0, 1) * sp.KroneckerDelta(i_, j_))


def _inside_range(expr: sp.Expr) -> sp.Expr:
    """Resolve the conditions ``1 <= i <= D`` that SymPy leaves in a sum over ``i`` from 1 to ``D``."""

    def resolve(total: sp.Sum) -> sp.Sum:
        f = total.function
        for var, lo, hi in total.limits:
            known = {sp.Ge(hi, var): sp.true, sp.Le(var, hi): sp.true, sp.Ge(var, lo): sp.true,
                     sp.Le(lo, var): sp.true}
            f = f.replace(lambda e: isinstance(e, sp.Piecewise), lambda e, k=known: e.xreplace(k))
        return sp.Sum(f, *total.limits)

    return expr.replace(lambda e: isinstance(e, sp.Sum), resolve)


@dataclass(frozen=True)
class SymbolicDimension(Check):
    """A check of a statement about sums over ``D`` coordinates for a symbolic ``D``.

    Proof: the residual, with its sums evaluated (``doit``, Kronecker deltas summed out) and the range
    conditions resolved, is 0.  Refutation: ``D = 3`` with random rational entries.
    """

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        residuals = [_inside_range(sp.sympify(r).doit()) for r in self.residuals(claim)]
        leftovers = [r for r in (sp.expand(r.doit()) for r in residuals) if r != 0]
        if not leftovers:
            return Verdict(Status.PROVED, self.method)
        rng = random.Random(seed)
        for _ in range(self.tries):
            for r in residuals:
                explicit = sp.expand(r.subs(D, 3).doit())
                point = {e: sp.Rational(rng.randint(-9, 9), rng.randint(1, 5))
                         for e in sorted(explicit.atoms(sp.Indexed), key=str)}
                value = explicit.xreplace(point)
                if value.is_number and value != 0:
                    witness = {str(k): str(v) for k, v in point.items()}
                    witness.update(D="3", residual=str(sp.N(value, 8)))
                    return Verdict(Status.REFUTED, self.method, str(leftovers[0])[:160], witness)
        return Verdict(Status.INCONCLUSIVE, self.method, str(leftovers[0])[:160])


_trace = sp.Sum(Jac[i_, i_], (i_, 1, D))
_norm = sp.Sum(vec[i_] ** 2, (i_, 1, D))

sliced = register(Identity(
    id="score.sliced",
    title="Sliced score matching: projections recover the trace and the squared norm",
    chapter="score_matching",
    claim={"trace": _trace, "norm": _norm},
    check=SymbolicDimension(
        "E[v_i v_j] from the Gaussian moments, sums over i, j = 1..D (D symbolic) with Kronecker deltas summed out",
        lambda c: [sp.Sum(Jac[i_, j_] * _second_moment, (j_, 1, D), (i_, 1, D)) - c["trace"],
                   sp.Sum(vec[i_] * vec[j_] * _second_moment, (j_, 1, D), (i_, 1, D)) - c["norm"]],
    ),
    template=(r"\begin{aligned} \mathbb{E}_{v}\big[v^\top J v\big] &= \operatorname{tr} J = $trace, \\ "
              r"\mathbb{E}_{v}\big[(v^\top s)^2\big] &= \|s\|^2 = $norm \end{aligned}"),
    assumptions=("v ~ N(0, I_D), J in R^{D x D} (the Jacobian of s_theta at x), s in R^D, for every D",),
    mutants=(
        Mutant("all_entries", {"trace": sp.Sum(Jac[i_, j_], (i_, 1, D), (j_, 1, D))},
               "The sum of all entries of the Jacobian instead of its trace."),
        Mutant("norm_of_sum", {"norm": sp.Sum(vec[i_], (i_, 1, D)) ** 2},
               r"$(\sum_i s_i)^2$ instead of $\sum_i s_i^2$."),
    ),
    references=("song2020sliced",),
    code=("gencode.score_matching.sliced_score_matching_loss",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 6. The minimum of the denoising objective on Gaussian data, and the sigma^2 weighting of NCSN.

_optimal = {a: -1 / (tau**2 + sigma**2), b: mu / (tau**2 + sigma**2)}  # s = grad log q_sigma
_minimum = denoising_objective(-(xt - x) / sigma**2).xreplace(_optimal)

ncsn_weighting = register(Identity(
    id="score.ncsn.weighting",
    title=r"With the weight $\sigma^2$ every noise level's optimum is on the same scale",
    chapter="score_matching",
    claim={"minimum": dsm_constant, "weighted_minimum": tau**2 / (2 * (tau**2 + sigma**2))},
    check=equal(
        {"minimum": _minimum, "weighted_minimum": sigma**2 * _minimum},
        "the denoising objective at the true score of q_sigma, and sigma^2 times it (Gaussian moments); cancel",
    ),
    template=(r"\begin{aligned} C_\sigma = \min_{s}\; \tfrac12 \mathbb{E}\Big(s(\tilde x) + "
              r"\frac{\tilde x - x}{\sigma^2}\Big)^2 &= $minimum, \\ "
              r"\sigma^2 C_\sigma &= $weighted_minimum \;\le\; \tfrac12 \end{aligned}"),
    assumptions=("x ~ N(mu, tau^2), x~ = x + sigma eps, eps ~ N(0, 1); per coordinate",
                 "the minimum is reached by the score of q_sigma = N(mu, tau^2 + sigma^2) (score.denoising)"),
    mutants=(
        Mutant("unweighted", {"weighted_minimum": tau**2 / (2 * sigma**2 * (tau**2 + sigma**2))},
               r"The minimum without the weight $\sigma^2$ (it grows like $1/\sigma^2$)."),
        Mutant("weight_sigma", {"weighted_minimum": tau**2 / (2 * sigma * (tau**2 + sigma**2))},
               r"The weight $\sigma$ in place of $\sigma^2$."),
        Mutant("constant_forgotten", {"minimum": sp.Integer(0)},
               "The denoising loss said to reach zero at the true score."),
        Mutant("marginal_variance", {"minimum": tau**2 / (2 * sigma**2 * tau**2 + 2 * sigma**4 + 2 * tau**4)},
               r"A wrong marginal variance in the constant."),
    ),
    references=("song2019generative", "vincent2011connection"),
    code=("gencode.score_matching.ncsn_loss",),
    display={"minimum": _mul(tau**2, sp.Pow(_mul(2, sigma**2, sp.Add(tau**2, sigma**2, evaluate=False)),
                                            -1, evaluate=False)),
             "weighted_minimum": _mul(tau**2, sp.Pow(_mul(2, sp.Add(tau**2, sigma**2, evaluate=False)),
                                                     -1, evaluate=False))},
    scope=Scope.GENERAL,
))

__all__ = ["cross_term", "denoising", "denoising_objective", "dsm_constant", "explicit_objective", "implicit",
           "marginal_score", "ncsn_weighting", "sliced", "tweedie"]
