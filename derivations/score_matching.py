r"""Score matching: Hyvarinen's objective, denoising and sliced score matching, Tweedie, NCSN.

The chapter ``book/score_matching.md`` states five results, registered here:

1. ``score.implicit``: for *any* density ``p`` and model ``s``, the Fisher objective
   ``E_p ||s - grad log p||^2 / 2`` equals ``E_p[||s||^2 / 2 + tr(grad s)] + E_p ||grad log p||^2 / 2``
   (integration by parts; the boundary term ``div(p s)`` integrates to zero).  Proved pointwise:
   the integrands differ by the divergence ``div(p s)``, with ``p, s_1, s_2`` undefined functions.
2. ``score.denoising``: the denoising objective equals the explicit one plus a constant that does
   not depend on the model; on Gaussian data ``N(mu, tau^2)`` every expectation is a Gaussian
   moment, so both objectives and the constant are explicit for every linear model
   ``s(x) = a x + b`` (the coefficients of ``a`` and ``b`` are compared).
3. ``score.tweedie``: ``E[x | x~] = x~ + sigma^2 grad log q_sigma(x~)`` and
   ``E[eps | x~] = -sigma grad log q_sigma(x~)``, checked on Gaussian data against Gaussian conditioning.
4. ``score.sliced``: for ``v ~ N(0, I)``, ``E[v^T J v] = tr J`` and ``E[(v^T s)^2] = ||s||^2``.
5. ``score.ncsn.weighting``: with the weight ``lambda(sigma) = sigma^2`` the minimum of the denoising
   objective at noise level ``sigma`` is ``tau^2 / (2 (tau^2 + sigma^2)) <= 1/2`` per dimension:
   every level contributes on the same scale, which is why NCSN weights by ``sigma^2``.

Gaussian data are one-dimensional: with isotropic noise each coordinate of ``N(mu, tau^2 I)`` is
independent, so the statements hold coordinate by coordinate (multiply the constants by ``D``).
"""

from __future__ import annotations

import sympy as sp

from .core import (Check, Claim, ForAnyFunction, Identity, Mutant, equal, function, gaussian_expectation,
                   register, sym)


def _mul(*args: sp.Expr) -> sp.Expr:
    return sp.Mul(*args, evaluate=False)


# ---------------------------------------------------------------------------------------------
# 1. Hyvarinen's implicit score matching (two dimensions, any density, any model).

x1, x2 = sym("x_1", real=True), sym("x_2", real=True)
P = function("p", "p", show_args=False)
S1 = function("s_1", r"s_{\theta,1}", show_args=False)
S2 = function("s_2", r"s_{\theta,2}", show_args=False)
_p, _s1, _s2 = P(x1, x2), S1(x1, x2), S2(x1, x2)
_psi1 = sp.Derivative(sp.log(_p), x1)  # the data score, unevaluated for display
_psi2 = sp.Derivative(sp.log(_p), x2)

fisher_integrand = ((_s1 - _psi1) ** 2 + (_s2 - _psi2) ** 2) / 2
"""``||s - grad log p||^2 / 2``, the explicit score matching integrand (to be averaged under p)."""


def _implicit_residuals(claim: Claim) -> list[sp.Expr]:
    """``p * (fisher - model - constant) + div(p s)``: zero iff the integrands differ by a divergence."""
    divergence = sp.diff(_p * _s1, x1) + sp.diff(_p * _s2, x2)
    return [_p * (fisher_integrand - claim["model"] - claim["constant"]) + divergence]


implicit = register(Identity(
    id="score.implicit",
    title="Hyvarinen's implicit score matching objective",
    chapter="score_matching",
    claim={
        "model": (_s1**2 + _s2**2) / 2 + sp.Derivative(_s1, x1) + sp.Derivative(_s2, x2),
        "constant": (_psi1**2 + _psi2**2) / 2,
    },
    check=ForAnyFunction(
        "integrands differ by div(p s) (integration by parts), with p, s_1, s_2 undefined; cancel",
        _implicit_residuals,
        examples=({P: sp.Lambda((x1, x2), sp.exp(-x1**2 / 2 - x2**2 - x1 * x2 / 3)),
                   S1: sp.Lambda((x1, x2), x1 * x2 - x1**3 + 1),
                   S2: sp.Lambda((x1, x2), x2 - 2 * x1 + x1**2)},),
    ),
    template=(r"\begin{aligned} \tfrac{1}{2}\, \mathbb{E}_{p} \big\| s_\theta - \nabla \log p \big\|^2 "
              r"&= \mathbb{E}_{p}\Big[ $model \Big] \\ &\quad + \mathbb{E}_{p}\Big[ $constant \Big] \end{aligned}"),
    assumptions=("p > 0 and s_theta differentiable on R^2",
                 "p s_theta -> 0 at infinity, so the divergence div(p s_theta) integrates to zero",
                 "two dimensions shown; each coordinate is one integration by parts"),
    mutants=(
        Mutant("factor_two_laplacian",
               {"model": (_s1**2 + _s2**2) / 2 + 2 * (sp.Derivative(_s1, x1) + sp.Derivative(_s2, x2))},
               r"The trace of the Jacobian (for $s_\theta = \nabla \log p_\theta$, the Laplacian of "
               r"$\log p_\theta$) with a factor 2.",
               source="source notes 002 (score matching lecture, SBM slides)"),
        Mutant("minus_trace",
               {"model": (_s1**2 + _s2**2) / 2 - sp.Derivative(_s1, x1) - sp.Derivative(_s2, x2)},
               "The sign of the integration by parts lost: minus the trace."),
        Mutant("no_half",
               {"model": _s1**2 + _s2**2 + sp.Derivative(_s1, x1) + sp.Derivative(_s2, x2)},
               r"The squared norm without its $\tfrac12$."),
    ),
    references=("hyvarinen2005estimation",),
    code=("gencode.score_matching.implicit_score_matching_loss",),
))

# ---------------------------------------------------------------------------------------------
# 2. Denoising score matching on Gaussian data, with the constant.

x = sym("x", real=True)            # clean data
xt = sym("xtilde", real=True)      # noised data x~ = x + sigma eps
eps = sym("epsilon", real=True)
mu = sym("mu", real=True)
tau = sym("tau", positive=True)    # data standard deviation
sigma = sym("sigma", positive=True)
a, b = sym("a", real=True), sym("b", real=True)  # linear score model s(x~) = a x~ + b

marginal_score = -(xt - mu) / (tau**2 + sigma**2)
"""The score of ``q_sigma = N(mu, tau^2 + sigma^2)``, the law of ``x~``."""


def _model(u: sp.Expr) -> sp.Expr:
    return a * u + b


def explicit_objective() -> sp.Expr:
    """``E_{q_sigma} (s(x~) - grad log q_sigma(x~))^2 / 2`` for the linear model."""
    return gaussian_expectation((_model(xt) - marginal_score) ** 2 / 2, xt, mu, tau**2 + sigma**2)


def denoising_objective(target: sp.Expr) -> sp.Expr:
    """``E_x E_eps (s(x~) - target(x~, x))^2 / 2`` with ``x~ = x + sigma eps``, ``x ~ N(mu, tau^2)``."""
    integrand = ((_model(xt) - target) ** 2 / 2).xreplace({xt: x + sigma * eps})
    inner = gaussian_expectation(integrand, eps, 0, 1)
    return gaussian_expectation(inner, x, mu, tau**2)


def _dsm_residuals(claim: Claim) -> list[sp.Expr]:
    return [denoising_objective(claim["target"]) - explicit_objective() - claim["constant"]]


dsm_constant = tau**2 / (2 * sigma**2 * (tau**2 + sigma**2))
"""``(1/sigma^2 - 1/(tau^2 + sigma^2)) / 2``: half the mean squared conditional score minus half the
mean squared marginal score."""

denoising = register(Identity(
    id="score.denoising",
    title="Denoising score matching equals explicit score matching up to a constant",
    chapter="score_matching",
    claim={"target": -(xt - x) / sigma**2, "constant": dsm_constant},
    check=Check(
        "both objectives as Gaussian moments (moment recursion) for s(x~) = a x~ + b; "
        "coefficients in (a, b) compared; cancel",
        _dsm_residuals,
        variables=(a, b),
    ),
    template=(r"\begin{aligned} \nabla_{\tilde x} \log q_\sigma(\tilde x \mid x) &= $target, \\ "
              r"J_{\mathrm{DSM}}(\theta) &= J_{\mathrm{ESM}}(\theta) + $constant \end{aligned}"),
    assumptions=("x ~ N(mu, tau^2), x~ = x + sigma eps, eps ~ N(0, 1) independent",
                 "s_theta(x~) = a x~ + b, any a, b (both objectives are quadratic in s_theta)",
                 "one coordinate; in D dimensions with isotropic noise the constant is D times this"),
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
    display={"target": -_mul(xt - x, sp.Pow(sigma**2, -1, evaluate=False)),
             "constant": _mul(tau**2, sp.Pow(_mul(2, sigma**2, sp.Add(tau**2, sigma**2, evaluate=False)),
                                             -1, evaluate=False))},
))

# ---------------------------------------------------------------------------------------------
# 3. Tweedie's formula, and the noise as the score.

score_symbol = sym(r"\nabla_{\tilde{x}} \log q_{\sigma}(\tilde{x})", real=True)
"""Stands for the marginal score in the claim; the check substitutes its Gaussian value."""


def _conditional_mean(u: sp.Expr) -> sp.Expr:
    """``E[u | x~]`` for jointly Gaussian (u, x~): ``E u + Cov(u, x~) / Var(x~) (x~ - E x~)``.

    With ``x = mu + tau z``, ``x~ = x + sigma eps`` and ``z, eps`` independent standard normals,
    the moments are Gaussian expectations in ``z`` and ``eps``.
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


def _tweedie_residuals(claim: Claim) -> list[sp.Expr]:
    return [claim["denoiser"] - _conditional_mean(x), claim["noise"] - _conditional_mean(eps)]


tweedie = register(Identity(
    id="score.tweedie",
    title="Tweedie's formula: the posterior means of the data and of the noise are given by the score",
    chapter="score_matching",
    claim={"denoiser": xt + sigma**2 * score_symbol, "noise": -sigma * score_symbol},
    check=Check(
        "Gaussian conditioning E[u | x~] = E u + Cov(u, x~) / Var(x~) (x~ - E x~), moments by the "
        "moment recursion; the score of N(mu, tau^2 + sigma^2) substituted; cancel",
        _tweedie_residuals,
        definitions={score_symbol: marginal_score},
    ),
    template=(r"\begin{aligned} \mathbb{E}[x \mid \tilde x] &= $denoiser, \\ "
              r"\mathbb{E}[\epsilon \mid \tilde x] &= $noise \end{aligned}"),
    assumptions=("x~ = x + sigma eps, eps ~ N(0, 1) independent of x",
                 "checked for x ~ N(mu, tau^2); the proof in the chapter holds for any law of x"),
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
))

# ---------------------------------------------------------------------------------------------
# 4. Sliced score matching: random projections recover the trace and the norm.

v1, v2 = sym("v_1", real=True), sym("v_2", real=True)
J11, J12, J21, J22 = (sym(f"J_{i}{j}", real=True) for i in (1, 2) for j in (1, 2))
sv1, sv2 = sym("s_1", real=True), sym("s_2", real=True)


def _projection_expectation(f: sp.Expr) -> sp.Expr:
    """``E_v f(v)`` for ``v ~ N(0, I_2)``."""
    return gaussian_expectation(gaussian_expectation(f, v1, 0, 1), v2, 0, 1)


_v = sp.Matrix([v1, v2])
_J = sp.Matrix([[J11, J12], [J21, J22]])
_sv = sp.Matrix([sv1, sv2])

sliced = register(Identity(
    id="score.sliced",
    title="Sliced score matching: projections recover the trace and the squared norm",
    chapter="score_matching",
    claim={"trace": J11 + J22, "norm": sv1**2 + sv2**2},
    check=equal(
        {"trace": _projection_expectation((_v.T * _J * _v)[0]),
         "norm": _projection_expectation(((_v.T * _sv)[0]) ** 2)},
        "expectations over v ~ N(0, I) by the moment recursion; cancel",
    ),
    template=(r"\begin{aligned} \mathbb{E}_{v}\big[v^\top J v\big] &= \operatorname{tr} J = $trace, \\ "
              r"\mathbb{E}_{v}\big[(v^\top s)^2\big] &= \|s\|^2 = $norm \end{aligned}"),
    assumptions=("v ~ N(0, I), J the Jacobian of s_theta at x, in R^2 (any dimension is the same)",),
    mutants=(
        Mutant("all_entries", {"trace": J11 + J12 + J21 + J22},
               "The sum of all entries of the Jacobian instead of its trace."),
        Mutant("norm_of_sum", {"norm": (sv1 + sv2) ** 2},
               r"$(\sum_i s_i)^2$ instead of $\sum_i s_i^2$."),
    ),
    references=("song2020sliced",),
    code=("gencode.score_matching.sliced_score_matching_loss",),
))

# ---------------------------------------------------------------------------------------------
# 5. The sigma^2 weighting of NCSN.

_optimal = {a: -1 / (tau**2 + sigma**2), b: mu / (tau**2 + sigma**2)}  # s = grad log q_sigma

ncsn_weighting = register(Identity(
    id="score.ncsn.weighting",
    title=r"With the weight $\sigma^2$ every noise level's optimum is on the same scale",
    chapter="score_matching",
    claim={"weighted_minimum": tau**2 / (2 * (tau**2 + sigma**2))},
    check=equal(
        {"weighted_minimum": sigma**2 * denoising_objective(-(xt - x) / sigma**2).xreplace(_optimal)},
        "sigma^2 times the denoising objective at the true score (Gaussian moments); cancel",
    ),
    template=(r"\begin{aligned} \min_{s} \; \sigma^2 \cdot \tfrac12 \mathbb{E}\Big(s(\tilde x) + "
              r"\frac{\tilde x - x}{\sigma^2}\Big)^2 &= $weighted_minimum \\ &\le \tfrac12 \end{aligned}"),
    assumptions=("x ~ N(mu, tau^2), x~ = x + sigma eps", "per coordinate"),
    mutants=(
        Mutant("unweighted", {"weighted_minimum": tau**2 / (2 * sigma**2 * (tau**2 + sigma**2))},
               r"The minimum without the weight $\sigma^2$ (it grows like $1/\sigma^2$)."),
        Mutant("weight_sigma", {"weighted_minimum": tau**2 / (2 * sigma * (tau**2 + sigma**2))},
               r"The weight $\sigma$ in place of $\sigma^2$."),
    ),
    references=("song2019generative",),
    code=("gencode.score_matching.ncsn_loss",),
    display={"weighted_minimum": _mul(tau**2, sp.Pow(_mul(2, sp.Add(tau**2, sigma**2, evaluate=False)),
                                                     -1, evaluate=False))},
))

__all__ = ["denoising", "denoising_objective", "explicit_objective", "implicit", "marginal_score",
           "ncsn_weighting", "sliced", "tweedie"]
