"""The forward process of DDPM and its posterior (Ho, Jain and Abbeel, 2020, section 2).

The forward process adds Gaussian noise in ``T`` steps,

    q(x_t | x_{t-1}) = N(x_t; sqrt(alpha_t) x_{t-1}, beta_t I),    alpha_t = 1 - beta_t,

and ``alphabar_t = alpha_1 ... alpha_t`` (with ``alphabar_0 = 1``).  Four results follow, each
registered below with the wrong variants its check must refute:

1. ``ddpm.forward.marginal``: ``q(x_t | x_0) = N(sqrt(alphabar_t) x_0, (1 - alphabar_t) I)``,
   by induction on ``t``;
2. ``ddpm.posterior``: ``q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I)``, by completing the
   square in Bayes' rule;
3. ``ddpm.posterior.mean_eps``: ``mu_tilde`` written with the noise ``epsilon`` instead of ``x_0``;
4. ``ddpm.forward.score``: ``grad log q(x_t | x_0) = -epsilon / sqrt(1 - alphabar_t)``.

The model built on it (section 3 of the paper) adds seven more:

5. ``ddpm.elbo.decomposition``: the negative bound is ``L_T + sum_{t>=2} L_{t-1} + L_0``, for every
   ``T`` and any model (undefined log-densities, induction on ``T``);
6. ``ddpm.kl.same_variance``: a KL between Gaussians of equal variance is a squared error of means;
7. ``ddpm.loss.eps_weight``: with the noise parameterisation, the KL term is a weighted noise regression;
8. ``ddpm.loss.dsm``: the denoising score matching loss is the noise regression over ``1 - alphabar_t``;
9. ``ddpm.reverse.euler_maruyama``: the reverse step, written with the score, is to first order an
   Euler-Maruyama step of the reverse-time SDE;
10. ``ddpm.reverse.variance_extremes``: the reverse variance is ``beta_t`` for N(0, I) data and
    ``beta_tilde_t`` for a point;
11. ``ddpm.schedule.cosine``: the cosine schedule's signal-to-noise ratio is ``cot^2``.
12. ``ddpm.schedule.log_bounds``: ``beta <= -log(1 - beta) <= beta / (1 - b)`` for ``0 < beta <= b < 1``;
13. ``ddpm.schedule.forgetting``: hence ``exp(-sum beta_t / (1 - b)) <= alphabar_T <= exp(-sum beta_t)`` for
    every ``T``: the chain forgets its data iff ``sum_t beta_t = infinity``.

Every covariance is a multiple of the identity, so each coordinate evolves independently and the
one-dimensional statements below are the full statements, coordinate by coordinate.

Square roots are made rational for the checks: ``alpha_t = a^2`` and ``alphabar_{t-1} = g^2``
with ``a, g`` in ``(0, 1)``, so ``sqrt(alpha_t alphabar_{t-1}) = a g`` and ``cancel`` decides
equality; only ``sqrt(1 - alphabar_t)`` remains as an algebraic generator.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp

from .core import held_frac as _frac, held_mul as _mul  # unevaluated, for display
from .core import (
    find_witness,
    Claim,
    Check,
    GaussianFactor,
    Identity,
    Mutant,
    Scope,
    Status,
    Verdict,
    equal,
    function,
    gaussian_expectation,
    gaussian_product_residuals,
    register,
    sym,
)

UNIT = (0, 1)


x0 = sym("x_0", real=True)
xt = sym("x_t", real=True)
xtm1 = sym("x_t-1", real=True)
eps = sym("epsilon", real=True)
alpha_t = sym("alpha_t", UNIT, positive=True)
alpha_tm1 = sym("alpha_t-1", UNIT, positive=True)
beta_t = sym("beta_t", UNIT, positive=True)
beta_tm1 = sym("beta_t-1", UNIT, positive=True)
alphabar_t = sym("alphabar_t", UNIT, positive=True)
alphabar_tm1 = sym("alphabar_t-1", UNIT, positive=True)
alphabar_T = sym("alphabar_T", UNIT, positive=True)  # the product of all T factors
a = sym("a", UNIT, positive=True)  # sqrt(alpha_t)
g = sym("g", UNIT, positive=True)  # sqrt(alphabar_{t-1})

SCHEDULE = {
    beta_t: 1 - alpha_t,
    beta_tm1: 1 - alpha_tm1,
    alphabar_t: alpha_t * alphabar_tm1,
}
"""Definitions of the schedule: ``beta = 1 - alpha`` and ``alphabar_t = alpha_t alphabar_{t-1}``."""

RATIONAL = SCHEDULE | {alpha_t: a**2, alphabar_tm1: g**2}
"""The schedule with square roots made rational (``alpha_t = a^2``, ``alphabar_{t-1} = g^2``)."""

ASSUMPTIONS = (
    "0 < beta_t < 1, alpha_t = 1 - beta_t",
    "alphabar_t = alpha_1 alpha_2 ... alpha_t, so alphabar_t = alpha_t alphabar_{t-1}, alphabar_0 = 1",
    "covariances are multiples of I: coordinates are independent, one dimension suffices",
)

# ---------------------------------------------------------------------------------------------
# 1. The marginal q(x_t | x_0), by induction on t.


def _one_step(mean: sp.Expr, variance: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """Moments of ``sqrt(alpha_t) X + sqrt(beta_t) E`` for ``X ~ N(mean, variance)``, ``E ~ N(0, 1)``.

    A linear combination of independent Gaussians is Gaussian; means add with the coefficients,
    variances with their squares.
    """
    return sp.sqrt(alpha_t) * mean, alpha_t * variance + beta_t


_PREVIOUS_STEP = {alphabar_t: alphabar_tm1, alpha_t: alpha_tm1, beta_t: beta_tm1}
_FIRST_STEP = {alphabar_t: alpha_t}  # alphabar_1 = alpha_1


def _marginal_residuals(claim: Claim) -> list[sp.Expr]:
    """Base case t = 1 and induction step t - 1 -> t, for both moments."""
    base_mean, base_var = _one_step(x0, sp.Integer(0))  # x_0 is given: variance 0
    hyp_mean = claim["mean"].xreplace(_PREVIOUS_STEP)
    hyp_var = claim["variance"].xreplace(_PREVIOUS_STEP)
    step_mean, step_var = _one_step(hyp_mean, hyp_var)
    return [
        claim["mean"].xreplace(_FIRST_STEP) - base_mean,
        claim["variance"].xreplace(_FIRST_STEP) - base_var,
        claim["mean"] - step_mean,
        claim["variance"] - step_var,
    ]


marginal = register(Identity(
    id="ddpm.forward.marginal",
    title=r"The forward process in one step, $q(x_t \mid x_0)$",
    chapter="ddpm",
    scope=Scope.GENERAL,
    claim={"mean": sp.sqrt(alphabar_t) * x0, "variance": 1 - alphabar_t},
    check=Check(
        "induction on t (base t = 1, step t-1 -> t) on Gaussian moments; rational cancel",
        _marginal_residuals,
        definitions=SCHEDULE | {alpha_t: a**2, alphabar_tm1: g**2, alpha_tm1: sym("b", UNIT, positive=True) ** 2},
    ),
    template=r"q(x_t \mid x_0) = \mathcal{N}\!\left(x_t;\ $mean,\ \left($variance\right)\mathbf{I}\right)",
    assumptions=ASSUMPTIONS,
    mutants=(
        Mutant("mean_without_sqrt", {"mean": alphabar_t * x0},
               r"The mean scaled by $\bar\alpha_t$ instead of its square root."),
        Mutant("variance_last_step_only", {"variance": 1 - alpha_t},
               r"Only the last step's noise counted: variance $1 - \alpha_t = \beta_t$."),
        Mutant("std_for_variance", {"variance": sp.sqrt(1 - alphabar_t)},
               r"The standard deviation $\sqrt{1 - \bar\alpha_t}$ written where the variance belongs."),
        Mutant("product_up_to_T", {"mean": sp.sqrt(alphabar_T) * x0, "variance": 1 - alphabar_T},
               r"$\bar\alpha$ taken as the product of all $T$ factors $\alpha_1 \cdots \alpha_T$ instead "
               r"of the first $t$: the same law at every step.",
               source="Lil'Log, \"What are diffusion models?\" (an earlier revision; corrected since)"),
    ),
    references=("ho2020denoising", "sohl2015deep"),
    code=("gencode.diffusion.NoiseSchedule.q_mean_variance", "gencode.diffusion.NoiseSchedule.q_sample"),
    display={"mean": _mul(sp.sqrt(alphabar_t), x0)},
))

# ---------------------------------------------------------------------------------------------
# 2. The posterior q(x_{t-1} | x_t, x_0), by completing the square.

mean_coef_x0 = sp.sqrt(alphabar_tm1) * beta_t / (1 - alphabar_t)
mean_coef_xt = sp.sqrt(alpha_t) * (1 - alphabar_tm1) / (1 - alphabar_t)
posterior_variance = (1 - alphabar_tm1) / (1 - alphabar_t) * beta_t


def _posterior_residuals(claim: Claim) -> list[sp.Expr]:
    """Bayes: q(x_t | x_{t-1}) q(x_{t-1} | x_0) / q(x_t | x_0) = N(x_{t-1}; mean, variance)."""
    bayes = [
        GaussianFactor(xt, sp.sqrt(alpha_t) * xtm1, beta_t),
        GaussianFactor(xtm1, sp.sqrt(alphabar_tm1) * x0, 1 - alphabar_tm1),
        GaussianFactor(xt, sp.sqrt(alphabar_t) * x0, 1 - alphabar_t, power=-1),
    ]
    return gaussian_product_residuals(bayes, [GaussianFactor(xtm1, claim["mean"], claim["variance"])])


posterior = register(Identity(
    id="ddpm.posterior",
    title=r"The forward posterior $q(x_{t-1} \mid x_t, x_0)$",
    chapter="ddpm",
    scope=Scope.GENERAL,
    claim={"mean": mean_coef_x0 * x0 + mean_coef_xt * xt, "variance": posterior_variance},
    check=Check(
        "Bayes' rule; completing the square: coefficients in (x_{t-1}, x_t, x_0) compared, "
        "normalising constants compared; rational cancel",
        _posterior_residuals,
        definitions=RATIONAL,
        variables=(xtm1, xt, x0),
    ),
    template=(r"\begin{aligned} q(x_{t-1} \mid x_t, x_0) &= \mathcal{N}\!\left(x_{t-1};\ "
              r"\tilde{\mu}_t(x_t, x_0),\ \tilde{\beta}_t \mathbf{I}\right), \\ "
              r"\tilde{\mu}_t(x_t, x_0) &= $mean, \\ \tilde{\beta}_t &= $variance. \end{aligned}"),
    assumptions=ASSUMPTIONS + ("Markov: q(x_t | x_{t-1}, x_0) = q(x_t | x_{t-1})",),
    mutants=(
        Mutant("swapped_mean_coefficients",
               {"mean": mean_coef_xt * x0 + mean_coef_x0 * xt},
               r"The coefficients of $x_0$ and $x_t$ exchanged."),
        Mutant("x0_coefficient_index_slip",
               {"mean": sp.sqrt(alphabar_t) * beta_t / (1 - alphabar_t) * x0 + mean_coef_xt * xt},
               r"$\sqrt{\bar\alpha_t}$ in place of $\sqrt{\bar\alpha_{t-1}}$ in the coefficient of $x_0$.",
               source="Lil'Log, \"What are diffusion models?\" (an earlier revision; "
                      "corrected since)"),
        Mutant("variance_inverted_ratio",
               {"variance": (1 - alphabar_t) / (1 - alphabar_tm1) * beta_t},
               "The ratio in the posterior variance turned upside down."),
        Mutant("variance_is_beta",
               {"variance": beta_t},
               r"$\beta_t$, the forward step's variance, taken for the posterior variance "
               "(a valid choice of sampling variance in DDPM, but not the posterior's)."),
    ),
    references=("ho2020denoising",),
    code=("gencode.diffusion.NoiseSchedule.q_posterior",),
    display={
        "mean": sp.Add(_mul(_frac(_mul(sp.sqrt(alphabar_tm1), beta_t), 1 - alphabar_t), x0),
                       _mul(_frac(_mul(sp.sqrt(alpha_t), 1 - alphabar_tm1), 1 - alphabar_t), xt),
                       evaluate=False),
        "variance": _frac(_mul(1 - alphabar_tm1, beta_t), 1 - alphabar_t),
    },
))

# ---------------------------------------------------------------------------------------------
# 3. The posterior mean in terms of the noise.

x0_from_eps = (xt - sp.sqrt(1 - alphabar_t) * eps) / sp.sqrt(alphabar_t)
"""``x_0`` solved from ``x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) epsilon``."""

mean_eps = register(Identity(
    id="ddpm.posterior.mean_eps",
    title=r"The posterior mean written with the noise $\epsilon$",
    chapter="ddpm",
    scope=Scope.GENERAL,
    claim={"mean": (xt - beta_t / sp.sqrt(1 - alphabar_t) * eps) / sp.sqrt(alpha_t)},
    check=equal(
        {"mean": posterior.claim["mean"].xreplace({x0: x0_from_eps})},
        "substitute x_0 = (x_t - sqrt(1 - alphabar_t) eps) / sqrt(alphabar_t) into mu_tilde; "
        "rational cancel",
        definitions=RATIONAL,
    ),
    template=r"\tilde{\mu}_t = $mean",
    assumptions=ASSUMPTIONS + ("x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) epsilon",),
    mutants=(
        Mutant("missing_inverse_sqrt_alpha",
               {"mean": xt - beta_t / sp.sqrt(1 - alphabar_t) * eps},
               r"The factor $1/\sqrt{\alpha_t}$ dropped."),
        Mutant("variance_for_std",
               {"mean": (xt - beta_t / (1 - alphabar_t) * eps) / sp.sqrt(alpha_t)},
               r"$1 - \bar\alpha_t$ where its square root belongs."),
        Mutant("plus_sign",
               {"mean": (xt + beta_t / sp.sqrt(1 - alphabar_t) * eps) / sp.sqrt(alpha_t)},
               "The noise added instead of removed."),
    ),
    references=("ho2020denoising",),
    code=("gencode.diffusion.NoiseSchedule.posterior_mean_from_noise",),
    display={"mean": _mul(sp.UnevaluatedExpr(1 / sp.sqrt(alpha_t)),
                          sp.Add(xt, -_mul(_frac(beta_t, sp.sqrt(1 - alphabar_t)), eps),
                                 evaluate=False))},
))

# ---------------------------------------------------------------------------------------------
# 4. The score of the one-step marginal.


_score = sp.diff(GaussianFactor(xt, sp.sqrt(alphabar_t) * x0, 1 - alphabar_t).log_density(), xt)

score = register(Identity(
    id="ddpm.forward.score",
    title=r"The score of $q(x_t \mid x_0)$ is minus the noise over its standard deviation",
    chapter="ddpm",
    scope=Scope.GENERAL,
    claim={"score": -eps / sp.sqrt(1 - alphabar_t)},
    check=equal(
        {"score": _score.xreplace({xt: sp.sqrt(alphabar_t) * x0 + sp.sqrt(1 - alphabar_t) * eps})},
        "differentiate log N(x_t; sqrt(alphabar_t) x_0, 1 - alphabar_t); substitute x_t; cancel",
    ),
    template=r"\nabla_{x_t} \log q(x_t \mid x_0) = $score",
    assumptions=("0 < alphabar_t < 1",
                 "x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) epsilon"),
    mutants=(
        Mutant("score_sign", {"score": eps / sp.sqrt(1 - alphabar_t)},
               r"The sign of the score flipped: $+\epsilon / \sqrt{1 - \bar\alpha_t}$.",
               source="source notes 002 (score matching lecture, the DDPM section)"),
        Mutant("variance_for_std", {"score": -eps / (1 - alphabar_t)},
               r"Divided by the variance instead of the standard deviation ($-z/\sigma^2$ for "
               r"$-z/\sigma$, where $z$ is the standardised noise).",
               source="readers' question on score_sde_pytorch (issue 26)"),
    ),
    references=("ho2020denoising", "song2021score"),
    code=("gencode.diffusion.NoiseSchedule.conditional_score", "gencode.diffusion.NoiseSchedule.score_from_noise"),
))

# =============================================================================================
# The variational bound of DDPM (Ho, Jain and Abbeel, 2020, section 3).
#
# The bound is an expectation over the forward chain of a sum of Gaussian log-densities.  For a
# one-dimensional chain with a few steps every term is a polynomial of degree two in the path
# (x_0, ..., x_T), so its expectation follows from the chain's first two moments,
#
#     E[x_t] = c_t m,  E[x_t^2] = c_t^2 M + 1 - c_t^2,  E[x_s x_t] = (c_t / c_s) E[x_s^2]  (s <= t),
#
# with c_t = sqrt(alphabar_t) = a_1 ... a_t (alpha_t = a_t^2), m = E[x_0], M = E[x_0^2].  Log-
# normalisers are carried as HalfLog(v) = log(v) / 2 and compared multiplicatively (a product of
# their arguments equal to 1), so no logarithm needs to be simplified.


class HalfLog(sp.Function):
    """``HalfLog(v) = log(v) / 2``, kept unevaluated so that constants are compared as products."""

    nargs = 1

    def _eval_evalf(self, prec):
        return (sp.log(self.args[0]) / 2).evalf(prec)


def log_normal(x: sp.Expr, mean: sp.Expr, variance: sp.Expr) -> sp.Expr:
    """``log N(x; mean, variance)`` with its normaliser as a :class:`HalfLog`."""
    return -(x - mean) ** 2 / (2 * variance) + HalfLog(1 / (2 * sp.pi * variance))


def kl_normal(m1: sp.Expr, v1: sp.Expr, m2: sp.Expr, v2: sp.Expr) -> sp.Expr:
    """``KL(N(m1, v1) || N(m2, v2)) = ((v1 + (m1 - m2)^2) / v2 - 1) / 2 + log(v2 / v1) / 2``."""
    return (v1 + (m1 - m2) ** 2) / (2 * v2) - sp.Rational(1, 2) + HalfLog(v2 / v1)


def entropy_normal(variance: sp.Expr) -> sp.Expr:
    """Differential entropy ``log(2 pi e variance) / 2`` of ``N(., variance)``."""
    return sp.Rational(1, 2) + HalfLog(2 * sp.pi * variance)


def split_half_logs(expr: sp.Expr) -> list[sp.Expr]:
    """Two residuals for ``rest + sum_i c_i HalfLog(v_i)``: ``rest`` and ``prod_i v_i^{c_i} - 1``.

    Both vanish when the expression is identically zero (the logarithm of a product equal to 1).
    """
    expr = sp.expand(expr)
    atoms = sorted(expr.atoms(HalfLog), key=sp.default_sort_key)
    product = sp.Integer(1)
    for atom in atoms:
        c = expr.coeff(atom)
        if c.free_symbols or not c.is_Rational:
            raise ValueError(f"HalfLog term with a non-constant coefficient {c}")
        product *= atom.args[0] ** c
    rest = expr.xreplace({atom: 0 for atom in atoms})
    return [rest, product - 1]


@dataclass(frozen=True)
class GaussianChain:
    """The first two moments of a one-dimensional DDPM forward chain ``x_0, ..., x_T``.

    Attributes:
        xs: the path symbols ``(x_0, ..., x_T)``.
        a: ``(a_1, ..., a_T)`` with ``alpha_t = a_t^2``.
        m: ``E[x_0]``.
        M: ``E[x_0^2]``.
    """

    xs: tuple[sp.Symbol, ...]
    a: tuple[sp.Symbol, ...]
    m: sp.Expr
    M: sp.Expr

    @classmethod
    def make(cls, T: int, m: sp.Expr | None = None, M: sp.Expr | None = None) -> GaussianChain:
        """A chain of ``T`` steps; without ``m, M`` it is conditioned on the symbol ``x_0``."""
        xs = (x0,) + tuple(sym(f"x_{t}", real=True) for t in range(1, T + 1))
        a = tuple(sym(f"a_{t}", UNIT, positive=True) for t in range(1, T + 1))
        if m is None:
            m, M = x0, x0**2
        return cls(xs, a, m, M)

    @property
    def T(self) -> int:
        return len(self.a)

    def c(self, t: int) -> sp.Expr:
        """``sqrt(alphabar_t) = a_1 ... a_t`` (1 at ``t = 0``)."""
        return sp.Mul(*self.a[:t])

    def alpha(self, t: int) -> sp.Expr:
        return self.a[t - 1] ** 2

    def second_moment(self, t: int) -> sp.Expr:
        return self.c(t) ** 2 * self.M + 1 - self.c(t) ** 2

    def expect(self, expr: sp.Expr) -> sp.Expr:
        """``E[expr]`` over the chain for ``expr`` of degree at most two in the path."""
        poly = sp.Poly(sp.expand(expr), *self.xs)
        total = sp.Integer(0)
        for powers, coeff in poly.terms():
            idx = [i for i, p in enumerate(powers) for _ in range(p)]
            if len(idx) == 0:
                moment = sp.Integer(1)
            elif len(idx) == 1:
                moment = self.c(idx[0]) * self.m
            elif len(idx) == 2:
                s, t = sorted(idx)
                moment = self.c(t) / self.c(s) * self.second_moment(s)
            else:
                raise ValueError("expect handles polynomials of degree <= 2 in the path")
            total += coeff * moment
        return total

    def forward_log(self, t: int) -> sp.Expr:
        """``log q(x_t | x_{t-1})``."""
        return log_normal(self.xs[t], self.a[t - 1] * self.xs[t - 1], 1 - self.alpha(t))

    def marginal(self, t: int) -> tuple[sp.Expr, sp.Expr]:
        """Mean and variance of ``q(x_t | x_0)``."""
        return self.c(t) * self.xs[0], 1 - self.c(t) ** 2

    def posterior(self, t: int) -> tuple[sp.Expr, sp.Expr]:
        """Mean and variance of ``q(x_{t-1} | x_t, x_0)`` (the registered ``ddpm.posterior``)."""
        values = {alpha_t: self.alpha(t), beta_t: 1 - self.alpha(t),
                  alphabar_t: self.c(t) ** 2, alphabar_tm1: self.c(t - 1) ** 2}
        claim = posterior.claim
        mean = claim["mean"].xreplace({x0: self.xs[0], xt: self.xs[t]}).xreplace(values)
        return mean, claim["variance"].xreplace(values)


def linear_gaussian_model(chain: GaussianChain, prefix: str = "") -> dict[int, tuple[sp.Expr, sp.Expr]]:
    """A reverse model ``p(x_{t-1} | x_t) = N(k_t x_t + d_t, s_t)`` with free parameters, t = 1..T."""
    out = {}
    for t in range(1, chain.T + 1):
        k = sym(f"k_{prefix}{t}", real=True)
        d_ = sym(f"d_{prefix}{t}", real=True)
        s = sym(f"s_{prefix}{t}", positive=True)
        out[t] = (k * chain.xs[t] + d_, s)
    return out


def reverse_log(chain: GaussianChain, model: dict, t: int) -> sp.Expr:
    """``log p(x_{t-1} | x_t)`` of a linear-Gaussian model."""
    mean, var = model[t]
    return log_normal(chain.xs[t - 1], mean, var)


def path_log_ratio(chain: GaussianChain, model: dict) -> sp.Expr:
    """``log p(x_{0:T}) - log q(x_{1:T} | x_0)`` with the prior ``p(x_T) = N(0, 1)``."""
    T = chain.T
    return (log_normal(chain.xs[T], 0, 1)
            + sum(reverse_log(chain, model, t) for t in range(1, T + 1))
            - sum(chain.forward_log(t) for t in range(1, T + 1)))


# ---------------------------------------------------------------------------------------------
# 5. The decomposition of the negative bound into L_T, L_{t-1} and L_0, for every T.
#
# General proof.  The path is x_0, ..., x_T (an IndexedBase); every log-density is an undefined
# function, so the statement holds for any reverse model p_theta, any prior p(x_T) and any Markov
# forward chain.  The bound is an expectation over q(x_{1:T} | x_0); expectation is linear, so it
# is computed atom by atom: E[log p(x_T)] = Pi_T, E[log p_theta(x_{t-1} | x_t)] = P_t,
# E[log q(x_t | x_{t-1})] = F_t, E[log q(x_t | x_0)] = M_t (symbols standing for these numbers,
# finite by assumption).  The posterior is defined by Bayes' rule with the Markov property,
# log q(x_{t-1} | x_t, x_0) = log q(x_t | x_{t-1}) + log q(x_{t-1} | x_0) - log q(x_t | x_0), so its
# expectation is F_t + M_{t-1} - M_t, and L_{t-1} = E[log posterior - log p_theta] is the averaged
# KL (tower property: integrate x_{t-1} against the posterior first).  The identity is then a
# telescoping sum with a symbolic upper limit, proved by induction on T: base case T = 1 (where
# q(x_1 | x_0) is the first step, M_1 = F_1) and step T -> T + 1 (the last term of every sum
# peeled off).  Mutants are refuted on the Gaussian instance below (T = 2, one dimension, a
# linear-Gaussian model with free parameters), by exact expectations: a genuine counterexample.

t_ = sp.Symbol("t", integer=True, positive=True)
T_ = sp.Symbol("T", integer=True, positive=True)
L = sp.IndexedBase("L")
KLx = sp.IndexedBase(r"\mathrm{KL}")  # a KL term left as a function of x_t (no expectation)
ELBO_STEPS = 2  # the counterexample instance unrolls the bound for T = 2 steps

path = sp.IndexedBase("x")                                       # x_0, ..., x_T
log_prior = function("log_p_T", r"\log p")                       # log p(x_T)
log_model = function("log_p_theta", r"\log p_\theta")            # log p_theta(x_{t-1} | x_t), (x_{t-1}, x_t, t)
log_step = function("log_q_step", r"\log q")                     # log q(x_t | x_{t-1}), (x_t, x_{t-1}, t)
log_marginal = function("log_q_marginal", r"\log q")             # log q(x_t | x_0), (x_t, x_0, t)
kl_at = function("KL_at", r"\mathrm{KL}")                         # a KL left as a function of x_t
E_prior, E_model, E_step, E_marginal = (sp.IndexedBase(n) for n in (r"\Pi", "P", "F", "M"))


def log_posterior(t: sp.Expr) -> sp.Expr:
    """``log q(x_{t-1} | x_t, x_0)`` by Bayes' rule and the Markov property (its definition)."""
    return (log_step(path[t], path[t - 1], t) + log_marginal(path[t - 1], path[0], t - 1)
            - log_marginal(path[t], path[0], t))


def expect_path(expr: sp.Expr) -> sp.Expr:
    """``E_{q(x_{1:T} | x_0)}`` of a linear combination of log-densities, by linearity, atom by atom."""
    return (sp.sympify(expr)
            .replace(log_prior, lambda x: E_prior[T_])
            .replace(log_model, lambda a, b, t: E_model[t])
            .replace(log_step, lambda a, b, t: E_step[t])
            .replace(log_marginal, lambda a, b, t: E_marginal[t]))


def peel_last(expr: sp.Expr, n: sp.Expr) -> sp.Expr:
    """Every ``Sum(f, (t, a, n + 1))`` written as ``Sum(f, (t, a, n)) + f(n + 1)`` (the induction step)."""
    return expr.replace(
        lambda e: isinstance(e, sp.Sum) and len(e.limits) == 1 and e.limits[0][2] == n + 1,
        lambda e: sp.Sum(e.function, (e.limits[0][0], e.limits[0][1], n))
        + e.function.xreplace({e.limits[0][0]: n + 1}))


def induction_residuals(residual: sp.Expr, base: Mapping[sp.Expr, sp.Expr] | None = None,
                        n: sp.Symbol = T_) -> list[sp.Expr]:
    """Base case ``n = 1`` (with the hypotheses ``base``) and step ``n -> n + 1`` of ``residual(n) == 0``."""
    at_one = residual.xreplace({n: 1}).doit().xreplace(dict(base or {}))
    step = peel_last(residual.xreplace({n: n + 1}), n) - residual
    return [sp.expand(at_one), sp.expand(step)]


def _elbo_term(k: sp.Expr) -> sp.Expr:
    """The integrand whose expectation defines ``L_k``: the prior KL, a posterior KL or the decoder."""
    if k == T_:
        return log_marginal(path[T_], path[0], T_) - log_prior(path[T_])
    if k == 0:
        return -log_model(path[0], path[1], 1)
    t = k + 1
    return log_posterior(t) - log_model(path[t - 1], path[t], t)


def _elbo_general(claim: Claim) -> list[sp.Expr]:
    stated = claim["bound"].replace(lambda e: isinstance(e, sp.Indexed) and e.base == L,
                                    lambda e: _elbo_term(e.indices[0]))
    stated = stated.replace(lambda e: isinstance(e, sp.Indexed) and e.base == KLx,
                            lambda e: kl_at(path[e.indices[0] + 1], e.indices[0] + 1))
    log_ratio = (log_prior(path[T_])
                 + sp.Sum(log_model(path[t_ - 1], path[t_], t_) - log_step(path[t_], path[t_ - 1], t_),
                          (t_, 1, T_)))
    residual = expect_path(-log_ratio - stated)
    # T = 1: q(x_1 | x_0) is the first step itself
    return induction_residuals(residual, base={E_marginal[1]: E_step[1]})


@dataclass(frozen=True)
class GeneralCheck(Check):
    """A general proof whose failures are refuted on a concrete instance.

    The ``residuals`` are those of the general statement (undefined functions, symbolic sums): all
    of them cancel exactly when the statement holds as displayed.  A residual written with
    undefined functions has no value at a point, so a claim whose general residuals do not cancel
    is handed to ``counterexample``, a check on a concrete instance where every quantity is exact;
    a refutation there is a genuine counterexample to the general statement.
    """

    counterexample: Check | None = None

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        residuals, leftovers = self.reduce(claim)
        if not leftovers:
            return Verdict(Status.PROVED, self.method)
        shown = str(leftovers[0])[:160]
        if self.counterexample is not None:
            witness = _find_witness(self.counterexample, claim, seed)
            if witness is not None:
                return Verdict(Status.REFUTED, f"{self.method}; counterexample: {self.counterexample.method}",
                               shown, witness)
        return Verdict(Status.INCONCLUSIVE, self.method, shown)


def _find_witness(check: Check, claim: Claim, seed: int) -> dict[str, str] | None:
    """A random rational point where one of ``check``'s residuals is non-zero, or ``None``.

    The residuals are evaluated exactly (50 digits) without being normalised first: only a
    non-zero value counts, so there is nothing to prove here, and normalising would cost more.
    """
    residuals = [check.substitute(sp.sympify(r)) for r in check.residuals(claim)]
    found = find_witness(residuals, random.Random(seed), check.tries)
    if found is None:
        return None
    point, value = found
    return {str(k): str(v) for k, v in point.items()} | {"residual": str(sp.N(value, 8))}


@functools.cache
def _elbo_instance_terms() -> tuple[int, dict, sp.Expr]:
    """T, the values of the L terms and the negative bound on the Gaussian instance (computed once)."""
    chain = GaussianChain.make(ELBO_STEPS)
    T = chain.T
    model = linear_gaussian_model(chain)
    mean_T, var_T = chain.marginal(T)
    values = {L[T]: kl_normal(mean_T, var_T, 0, 1), L[0]: -chain.expect(reverse_log(chain, model, 1))}
    for t in range(2, T + 1):
        post_mean, post_var = chain.posterior(t)
        kl = kl_normal(post_mean, post_var, *model[t])
        values[KLx[t - 1]] = kl                  # a function of x_t (and x_0)
        values[L[t - 1]] = chain.expect(kl)      # averaged over q(x_t | x_0)
    return T, values, -chain.expect(path_log_ratio(chain, model))


def _elbo_instance(claim: Claim) -> list[sp.Expr]:
    """The bound for T = 2 in one dimension, a linear-Gaussian model N(k_t x_t + d_t, s_t) with free
    parameters and the prior N(0, 1), every expectation exact (the chain's moments)."""
    T, values, negative_bound = _elbo_instance_terms()
    stated = claim["bound"].xreplace({T_: T}).doit().xreplace(values)
    return split_half_logs(negative_bound - stated)


elbo = register(Identity(
    id="ddpm.elbo.decomposition",
    title=r"The negative variational bound as $L_T + \sum_{t \ge 2} L_{t-1} + L_0$",
    chapter="ddpm",
    claim={"bound": L[T_] + sp.Sum(L[t_ - 1], (t_, 2, T_)) + L[0]},
    check=GeneralCheck(
        "any prior, reverse model and Markov forward chain (undefined log-densities on a path "
        "x_0..x_T); posterior by Bayes' rule; expectation by linearity, atom by atom; induction on "
        "T (base T = 1, step T -> T + 1 with the last term of each sum peeled off); cancel",
        _elbo_general,
        counterexample=Check(
            "exact expectations for T = 2 in one dimension, linear-Gaussian reverse model with free "
            "parameters (k_t x_t + d_t, s_t); HalfLog constants compared as products",
            _elbo_instance),
    ),
    scope=Scope.GENERAL,
    template=(r"-\mathbb{E}_{q(x_{1:T} \mid x_0)}\!\left[\log \frac{p_\theta(x_{0:T})}"
              r"{q(x_{1:T} \mid x_0)}\right] = $bound"),
    assumptions=(
        "any T >= 1, any prior p(x_T) and reverse kernels p_theta(x_{t-1} | x_t), any Markov forward "
        "chain q(x_t | x_{t-1}); every expectation below finite",
        "L_T = KL(q(x_T | x_0) || p(x_T))",
        "L_{t-1} = E_{q(x_t | x_0)} KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t)), t = 2..T",
        "L_0 = -E_{q(x_1 | x_0)} log p_theta(x_0 | x_1)",
    ),
    mutants=(
        Mutant("kl_without_expectation",
               {"bound": L[T_] + sp.Sum(KLx[t_ - 1], (t_, 2, T_)) + L[0]},
               r"The KL terms written without the expectation over $x_t \sim q(x_t \mid x_0)$: "
               r"the right-hand side then depends on $x_t$, the left-hand side does not.",
               source="Murphy, Probabilistic Machine Learning: Advanced Topics (probml/pml2-book "
                      "issues 23, 160, 317)"),
        Mutant("reconstruction_dropped", {"bound": L[T_] + sp.Sum(L[t_ - 1], (t_, 2, T_))},
               r"The reconstruction term $L_0$ dropped, as if the sum of KL terms ran down to "
               r"$t = 1$ with nothing left over."),
        Mutant("prior_term_dropped", {"bound": sp.Sum(L[t_ - 1], (t_, 2, T_)) + L[0]},
               r"$L_T$ dropped: it has no trainable parameter, but it is part of the bound."),
        Mutant("sum_from_one", {"bound": L[T_] + sp.Sum(L[t_ - 1], (t_, 1, T_)) + L[0]},
               r"The sum of KL terms started at $t = 1$ although $L_0$ is kept: the index slip "
               r"counts the decoder twice."),
        Mutant("prior_index_slip", {"bound": L[T_ - 1] + sp.Sum(L[t_ - 1], (t_, 2, T_)) + L[0]},
               r"$L_{T-1}$ written for the prior term $L_T$: the last KL term counted twice and "
               r"the prior's none."),
    ),
    references=("ho2020denoising", "sohl2015deep"),
    code=("gencode.diffusion.DDPM.elbo_terms",),
))

# ---------------------------------------------------------------------------------------------
# 6. Two Gaussians with the same variance: the KL is a squared error of means.

mu_tilde = sym(r"\tilde{\mu}_t", real=True)
mu_theta = sym(r"\mu_\theta", real=True)
sigma2 = sym(r"\sigma_t^2", positive=True)
x_ = sym("x", real=True)


def _kl_same_variance() -> sp.Expr:
    """``E_{x ~ N(mu_tilde, sigma^2)}[log N(x; mu_tilde, sigma^2) - log N(x; mu_theta, sigma^2)]``.

    The normalisers cancel (same variance); the expectation of the quadratic follows from the
    Gaussian moments.
    """
    log_ratio = (GaussianFactor(x_, mu_tilde, sigma2).exponent()
                 - GaussianFactor(x_, mu_theta, sigma2).exponent())
    return gaussian_expectation(log_ratio, x_, mu_tilde, sigma2)


kl_mean = register(Identity(
    id="ddpm.kl.same_variance",
    title="The KL between two Gaussians with the same variance is a squared error of their means",
    chapter="ddpm",
    scope=Scope.GENERAL,
    claim={"kl": (mu_tilde - mu_theta) ** 2 / (2 * sigma2)},
    check=equal({"kl": _kl_same_variance()},
                 "KL as the Gaussian expectation of the log-ratio (moment recursion); cancel"),
    template=(r"\mathrm{KL}\!\left(\mathcal{N}(\tilde{\mu}_t, \sigma_t^2)\,\middle\|\,"
              r"\mathcal{N}(\mu_\theta, \sigma_t^2)\right) = $kl"),
    assumptions=("one coordinate; in D dimensions with covariance sigma_t^2 I the squares become "
                 "squared norms",),
    mutants=(
        Mutant("missing_half", {"kl": (mu_tilde - mu_theta) ** 2 / sigma2},
               r"The factor $\tfrac12$ dropped."),
        Mutant("std_for_variance", {"kl": (mu_tilde - mu_theta) ** 2 / (2 * sp.sqrt(sigma2))},
               r"Divided by the standard deviation instead of the variance."),
    ),
    references=("ho2020denoising",),
    code=("gencode.diffusion.DDPM.elbo_terms",),
    display={"kl": _frac(sp.Pow(sp.Add(mu_tilde, -mu_theta, evaluate=False), 2, evaluate=False),
                         _mul(2, sigma2))},
))

# ---------------------------------------------------------------------------------------------
# 7. The noise parameterisation: the mean-matching loss becomes a weighted noise regression.

eps_theta = sym(r"\epsilon_\theta", real=True)
model_mean = mean_eps.claim["mean"].xreplace({eps: eps_theta})
"""``mu_theta(x_t) = (x_t - beta_t / sqrt(1 - alphabar_t) eps_theta) / sqrt(alpha_t)``."""

eps_weight = beta_t**2 / (2 * sigma2 * alpha_t * (1 - alphabar_t))

loss_eps = register(Identity(
    id="ddpm.loss.eps_weight",
    title=r"The KL term $L_{t-1}$ as a weighted regression of the noise",
    chapter="ddpm",
    scope=Scope.GENERAL,
    claim={"loss": eps_weight * (eps - eps_theta) ** 2},
    check=equal(
        {"loss": kl_mean.claim["kl"].xreplace({mu_tilde: mean_eps.claim["mean"], mu_theta: model_mean})},
        "substitute mu_tilde (ddpm.posterior.mean_eps) and mu_theta (same form with eps_theta) "
        "into ddpm.kl.same_variance; rational cancel",
        definitions=RATIONAL,
    ),
    template=(r"\frac{\left(\tilde{\mu}_t - \mu_\theta(x_t, t)\right)^2}{2\sigma_t^2} = $loss,"
              r"\qquad \mu_\theta(x_t, t) = "
              + sp.latex(mean_eps.display["mean"].xreplace({eps: eps_theta}), order="none")),
    assumptions=ASSUMPTIONS + ("mu_theta has the form of mu_tilde with eps replaced by eps_theta(x_t, t)",),
    mutants=(
        Mutant("missing_alpha", {"loss": beta_t**2 / (2 * sigma2 * (1 - alphabar_t)) * (eps - eps_theta) ** 2},
               r"The factor $1/\alpha_t$ that comes from $1/\sqrt{\alpha_t}$ squared dropped."),
        Mutant("std_in_weight",
               {"loss": beta_t**2 / (2 * sigma2 * alpha_t * sp.sqrt(1 - alphabar_t)) * (eps - eps_theta) ** 2},
               r"$\sqrt{1 - \bar\alpha_t}$ where its square belongs."),
        Mutant("beta_not_squared", {"loss": beta_t / (2 * sigma2 * alpha_t * (1 - alphabar_t)) * (eps - eps_theta) ** 2},
               r"$\beta_t$ where $\beta_t^2$ belongs."),
    ),
    references=("ho2020denoising",),
    code=("gencode.diffusion.NoiseSchedule.elbo_weights",),
    display={"loss": _mul(_frac(beta_t**2, _mul(2, sigma2, alpha_t, 1 - alphabar_t)),
                          sp.Pow(sp.Add(eps, -eps_theta, evaluate=False), 2, evaluate=False))},
))

# ---------------------------------------------------------------------------------------------
# 8. DDPM as denoising score matching.

s_theta = -eps_theta / sp.sqrt(1 - alphabar_t)
"""The score model that a noise predictor defines, ``s_theta = -eps_theta / sqrt(1 - alphabar_t)``."""

dsm = register(Identity(
    id="ddpm.loss.dsm",
    title="The denoising score matching loss of DDPM is a scaled noise regression",
    chapter="ddpm",
    scope=Scope.GENERAL,
    claim={"loss": (eps - eps_theta) ** 2 / (1 - alphabar_t)},
    check=equal({"loss": (s_theta - score.claim["score"]) ** 2},
                "substitute s_theta = -eps_theta / sqrt(1 - alphabar_t) and the score "
                "ddpm.forward.score; cancel",
                definitions=RATIONAL),
    template=(r"\left(s_\theta(x_t, t) - \nabla_{x_t} \log q(x_t \mid x_0)\right)^2 = $loss,"
              r"\qquad s_\theta = -\frac{\epsilon_\theta}{\sqrt{1 - \bar\alpha_t}}"),
    assumptions=("x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) epsilon",
                 "one coordinate; in D dimensions the squares are squared norms"),
    mutants=(
        Mutant("square_dropped", {"loss": (eps - eps_theta) / (1 - alphabar_t)},
               r"The square dropped in the last line: $\epsilon - \epsilon_\theta$ has mean zero at "
               r"the optimum and is no loss at all.",
               source="source notes 002 (score matching lecture, from DSM to DDPM)"),
        Mutant("std_for_variance", {"loss": (eps - eps_theta) ** 2 / sp.sqrt(1 - alphabar_t)},
               r"Divided by the standard deviation instead of the variance."),
    ),
    references=("ho2020denoising", "song2021score"),
    code=("gencode.diffusion.DDPM.loss",),
    display={"loss": _frac(sp.Pow(sp.Add(eps, -eps_theta, evaluate=False), 2, evaluate=False),
                           1 - alphabar_t)},
))

# ---------------------------------------------------------------------------------------------
# 9. A reverse step is an Euler-Maruyama step of the reverse-time SDE.
#
# The forward step x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps is, to first order in beta_t, an
# Euler-Maruyama step of length one of dx = f dt + g dW with drift f(x) = -beta x / 2 (the first-order
# term of sqrt(1 - beta) x - x) and g^2 = beta (the step's variance).  The reverse-time SDE
# (Anderson 1982) has drift f - g^2 grad log p; one Euler-Maruyama step of it backwards is
# x_{t-1} = x_t - (f(x_t) - g^2 s) + g z.  DDPM's reverse step agrees with it to first order in the
# mean, and exactly in the noise variance when sigma_t^2 = beta_t.  (A Langevin step of size beta_t,
# x + beta_t s + sqrt(2 beta_t) z, has twice that noise and no drift: it samples p_t, it does not move
# from p_t to p_{t-1}.)

s_ = sym("s", real=True)  # a score value at x_t


def _forward_sde_coefficients() -> tuple[sp.Expr, sp.Expr]:
    """Drift f(x_t) and squared diffusion g^2 of the forward step, per step, to first order in beta_t."""
    mean_change = sp.sqrt(1 - beta_t) * xt - xt
    drift = beta_t * sp.diff(mean_change, beta_t).xreplace({beta_t: 0})
    g2 = gaussian_expectation((sp.sqrt(beta_t) * eps) ** 2, eps, 0, 1)
    return drift, g2


def _euler_maruyama_residuals(c: Claim) -> list[sp.Expr]:
    drift, g2 = _forward_sde_coefficients()
    reverse_step_mean = xt - (drift - g2 * s_)  # one step of length 1 backwards in time
    return [c["mean"] - model_mean.xreplace({eps_theta: -sp.sqrt(1 - alphabar_t) * s_}),
            *[sp.diff(c["first_order"] - c["mean"].xreplace({alpha_t: 1 - beta_t}), beta_t, k)
              .xreplace({beta_t: 0}) for k in (0, 1)],
            sp.diff(c["first_order"], beta_t, 2),
            c["first_order"] - reverse_step_mean,
            c["variance"] - g2]


mean_score = register(Identity(
    id="ddpm.reverse.euler_maruyama",
    title="A reverse step is an Euler-Maruyama step of the reverse-time SDE",
    chapter="ddpm",
    claim={"mean": (xt + beta_t * s_) / sp.sqrt(alpha_t),
           "first_order": xt + beta_t * (xt / 2 + s_),
           "variance": beta_t},
    check=Check(
        "substitute eps_theta = -sqrt(1 - alphabar_t) s into mu_theta (cancel); Taylor coefficients "
        "of orders 0 and 1 in beta_t compared; forward drift f = -beta x / 2 and g^2 = beta derived "
        "from the forward step (first-order Taylor term, Gaussian moment); one Euler-Maruyama step "
        "of the reverse SDE drift f - g^2 s compared",
        _euler_maruyama_residuals,
        definitions={alphabar_t: alpha_t * alphabar_tm1, alphabar_tm1: g**2},
    ),
    scope=Scope.GENERAL,
    template=(r"\mu_\theta(x_t, t) = $mean = $first_order + O(\beta_t^2),"
              r"\qquad \sigma_t^2 = $variance, \qquad s = s_\theta(x_t, t)"),
    assumptions=("s_theta = -eps_theta / sqrt(1 - alphabar_t)",
                 "alpha_t = 1 - beta_t; the expansion is in beta_t -> 0 with x_t and s fixed",
                 "forward SDE per step: f(x) = -beta_t x / 2, g^2 = beta_t; reverse-time SDE drift "
                 "f - g^2 grad log p_t (Anderson 1982)"),
    mutants=(
        Mutant("no_drift", {"first_order": xt + beta_t * s_},
               r"The drift $\beta_t x_t / 2$ of the variance-preserving process forgotten: "
               r"a Langevin step on $s$ alone."),
        Mutant("forward_drift", {"first_order": xt + beta_t * (-xt / 2 + s_)},
               r"The forward drift $-\beta_t x_t / 2$ kept with its sign: the reverse step must "
               r"undo the shrinking, not repeat it."),
        Mutant("score_over_std", {"mean": (xt + beta_t / sp.sqrt(1 - alphabar_t) * s_) / sp.sqrt(alpha_t)},
               r"The noise coefficient $\beta_t / \sqrt{1 - \bar\alpha_t}$ kept in front of the score."),
        Mutant("langevin_noise", {"variance": 2 * beta_t},
               r"Noise of variance $2\beta_t$, as in a Langevin step of size $\beta_t$: the reverse "
               r"step is not a Langevin step (its noise is half as large, and it has a drift)."),
    ),
    references=("ho2020denoising", "song2021score", "anderson1982reverse"),
    code=("gencode.diffusion.NoiseSchedule.mean_from_score", "gencode.diffusion.ancestral_sample"),
    display={"mean": _mul(sp.UnevaluatedExpr(1 / sp.sqrt(alpha_t)),
                          sp.Add(xt, _mul(beta_t, s_), evaluate=False)),
             "first_order": sp.Add(xt, _mul(beta_t, sp.Add(_frac(xt, 2), s_, evaluate=False)),
                                   evaluate=False)},
))

# ---------------------------------------------------------------------------------------------
# 10. The two extreme reverse variances: beta_t for N(0, 1) data, beta_tilde_t for a point.

v_data = sym("v", positive=True)  # variance of N(0, v) data


def _reverse_variance(v: sp.Expr) -> sp.Expr:
    """Variance of ``q(x_{t-1} | x_t)`` for data ``N(0, v)``: Bayes with ``q(x_{t-1}) = N(0, V)``.

    ``V = alphabar_{t-1} v + 1 - alphabar_{t-1}``; precisions add: ``1 / (alpha_t / beta_t + 1 / V)``.
    """
    V = alphabar_tm1 * v + 1 - alphabar_tm1
    return 1 / (alpha_t / beta_t + 1 / V)


def _extremes_residuals(claim: Claim) -> list[sp.Expr]:
    # Bayes' rule as a product of Gaussians for general v, then the two extremes.
    V = alphabar_tm1 * v_data + 1 - alphabar_tm1
    xprev = xtm1
    bayes = gaussian_product_residuals(
        [GaussianFactor(xt, sp.sqrt(alpha_t) * xprev, beta_t), GaussianFactor(xprev, 0, V)],
        [GaussianFactor(xprev, sp.sqrt(alpha_t) * V / (alpha_t * V + beta_t) * xt,
                        _reverse_variance(v_data)),
         GaussianFactor(xt, 0, alpha_t * V + beta_t)])
    return bayes + [claim["unit"] - _reverse_variance(1), claim["point"] - _reverse_variance(0)]


extremes = register(Identity(
    id="ddpm.reverse.variance_extremes",
    title=r"The reverse variance is $\beta_t$ for standard normal data and $\tilde\beta_t$ for a single point",
    chapter="ddpm",
    scope=Scope.GENERAL,
    claim={"unit": beta_t, "point": posterior_variance},
    check=Check(
        "Bayes' rule for data N(0, v) (completing the square, coefficients in x_{t-1}, x_t), "
        "then v = 1 and v = 0; rational cancel",
        _extremes_residuals,
        definitions=RATIONAL,
        variables=(xtm1, xt),
    ),
    template=(r"\operatorname{Var}[x_{t-1} \mid x_t] = \begin{cases} $unit & x_0 \sim "
              r"\mathcal{N}(0, \mathbf{I}), \\ $point & x_0 \text{ a fixed point.} \end{cases}"),
    assumptions=ASSUMPTIONS + ("data N(0, v I); v = 1 and v = 0 (a point mass at 0; any fixed "
                               "point gives the same variance)",),
    mutants=(
        Mutant("swapped", {"unit": posterior_variance, "point": beta_t},
               r"The two cases exchanged."),
        Mutant("unit_is_alpha_beta", {"unit": alpha_t * beta_t},
               r"$\alpha_t \beta_t$ for the standard normal case (the variance of "
               r"$\sqrt{\alpha_t}\, x_t$ noise, not of the reverse step)."),
    ),
    references=("ho2020denoising",),
    code=("gencode.diffusion.NoiseSchedule.reverse_variance",),
    display={"point": posterior.display["variance"]},
))


# ---------------------------------------------------------------------------------------------
# 11. The cosine schedule: its signal-to-noise ratio is a squared cotangent.

u = sym("u", (0, sp.Rational(3, 2)), positive=True)  # (t / T + s) / (1 + s) * pi / 2, in (0, pi / 2)

cosine = register(Identity(
    id="ddpm.schedule.cosine",
    title=r"The cosine schedule and its signal-to-noise ratio",
    chapter="ddpm",
    scope=Scope.GENERAL,
    claim={"alphabar": sp.cos(u) ** 2, "snr": sp.cot(u) ** 2},
    check=Check(
        "SNR = alphabar / (1 - alphabar) with cot = cos / sin and sin = sqrt(1 - cos^2) on "
        "(0, pi/2); cancel",
        lambda c: [c["snr"] - c["alphabar"] / (1 - c["alphabar"])],
        definitions={sp.cot(u): sp.cos(u) / sp.sin(u), sp.sin(u): sp.sqrt(1 - sp.cos(u) ** 2)},
    ),
    template=(r"\bar\alpha_t = $alphabar, \qquad \frac{\bar\alpha_t}{1 - \bar\alpha_t} = $snr, "
              r"\qquad u = \frac{t/T + s}{1 + s} \cdot \frac{\pi}{2}"),
    assumptions=("f(t) = cos^2(u(t)) normalised by f(0); stated here for s = 0, where f(0) = 1",
                 "0 < u < pi / 2"),
    mutants=(
        Mutant("missing_square", {"alphabar": sp.cos(u)},
               r"The square of the cosine dropped, $\bar\alpha_t = \cos u$.",
               source="Lil'Log, \"What are diffusion models?\" (an earlier revision; corrected since)"),
        Mutant("snr_inverted", {"snr": sp.tan(u) ** 2},
               r"The signal-to-noise ratio turned upside down, $\tan^2 u$: the noise-to-signal ratio."),
    ),
    references=("nichol2021improved",),
    code=("gencode.diffusion.cosine_beta_schedule",),
))

# ---------------------------------------------------------------------------------------------
# 12. When does the chain forget the data?  alphabar_T -> 0 iff sum_t beta_t = infinity.
#
# Two elementary bounds on -log(1 - beta) for 0 < beta <= b < 1 sandwich -log alphabar_T between two
# multiples of sum_t beta_t.  Both are checked with certificates built from LogGap(u) = u - 1 - log u:
#   -log(1 - beta) - beta            = LogGap(1 - beta),
#   beta / (1 - b) + log(1 - beta)   = LogGap(1 / (1 - beta)) + beta (b - beta) / ((1 - b)(1 - beta)).
# So that SymPy sees every factor positive, the rates are written with free positive symbols:
# beta = r / (1 + r) (any beta in (0, 1)) and b = (r + s) / (1 + r + s) (any b in (beta, 1)) for one
# step; b = 1 / (1 + c) and beta_t = b / (1 + rho_t) (every beta_t in (0, b)) for the sums.

from .core import LogGap, NonNegative, expand_known, split_logs  # noqa: E402
from .indexed_sums import NonNegativeForEverySize, at_sizes  # noqa: E402

b_max = sym("b", UNIT, positive=True)      # the largest rate, b < 1
r_ = sym("r_beta", (0, 3), tex="r", positive=True)             # beta / (1 - beta)
s_gap = sym("s_b", (0, 3), tex="s", positive=True)          # b / (1 - b) - beta / (1 - beta) > 0
ONE_STEP = {beta_t: r_ / (1 + r_), b_max: (r_ + s_gap) / (1 + r_ + s_gap)}


def _log_prepare(e: sp.Expr) -> sp.Expr:
    return split_logs(sp.expand(e))


@dataclass(frozen=True)
class AllOf(Check):
    """Several inequalities, each checked by its own :class:`NonNegative` (difference and certificate).

    Proved when every part is proved; refuted when some part is refuted (its witness, named by the
    part); inconclusive otherwise.
    """

    parts: tuple[tuple[str, Check], ...] = ()

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        verdicts = [(name, chk(claim, seed)) for name, chk in self.parts]
        for name, v in verdicts:
            if v.status is Status.REFUTED:
                return Verdict(Status.REFUTED, self.method, v.residual, {"part": name} | (v.witness or {}))
        bad = [(name, v) for name, v in verdicts if v.status is not Status.PROVED]
        if bad:
            return Verdict(Status.INCONCLUSIVE, self.method, f"{bad[0][0]}: {bad[0][1].residual}")
        return Verdict(Status.PROVED, self.method + "; difference = certificate >= 0")


log_bounds = register(Identity(
    id="ddpm.schedule.log_bounds",
    title=r"Two bounds on $-\log(1 - \beta)$ for $0 < \beta \le b < 1$",
    chapter="ddpm",
    scope=Scope.GENERAL,
    claim={"lower": beta_t, "upper": beta_t / (1 - b_max)},
    check=AllOf(
        "both differences equal certificates built from LogGap(u) = u - 1 - log u >= 0: "
        "-log(1 - beta) - beta = g(1 - beta) and beta/(1 - b) + log(1 - beta) = g(1/(1 - beta)) + "
        "beta (b - beta)/((1 - b)(1 - beta)); beta = r/(1 + r), b = (r + s)/(1 + r + s) with r, s > 0 "
        "(every 0 < beta < b < 1); logs split; cancel",
        lambda c: [],
        parts=(
            ("lower", NonNegative("-log(1 - beta) - lower = g(1 - beta)",
                                  lambda c: [-sp.log(1 - beta_t) - c["lower"]],
                                  certificate=lambda c: LogGap(1 / (1 + r_)),
                                  definitions=ONE_STEP, prepare=_log_prepare)),
            ("upper", NonNegative("upper + log(1 - beta) = g(1/(1 - beta)) + beta (b - beta)/((1 - b)(1 - beta))",
                                  lambda c: [c["upper"] + sp.log(1 - beta_t)],
                                  certificate=lambda c: LogGap(1 + r_) + r_ * s_gap / (1 + r_),
                                  definitions=ONE_STEP, prepare=_log_prepare)),
        ),
    ),
    template=(r"$lower \;\le\; -\log(1 - \beta_t) \;\le\; $upper"
              r", \qquad 0 < \beta_t \le b < 1"),
    assumptions=("0 < beta_t <= b < 1 (beta_t = b is the limit s -> 0 of the strict case, both sides continuous)",
                 "LogGap(u) = u - 1 - log u >= 0 for u > 0 (log u <= u - 1)"),
    mutants=(
        Mutant("lower_too_high", {"lower": beta_t / (1 - beta_t)},
               r"The lower bound $\beta/(1 - \beta)$: that is an upper bound on $-\log(1 - \beta)$."),
        Mutant("lower_second_order", {"lower": beta_t + beta_t**2},
               r"$\beta + \beta^2$ as lower bound: the Taylor series has $\beta^2/2$."),
        Mutant("upper_no_slack", {"upper": beta_t},
               r"$-\log(1 - \beta) \le \beta$: the inequality turned round."),
        Mutant("upper_half_b", {"upper": beta_t / (1 - b_max / 2)},
               r"The upper bound with $1 - b/2$ in the denominator (false when $\beta$ is near $b$)."),
    ),
    references=("ho2020denoising",),
))

# The same bounds summed over the T steps, for every T (indexed sums with a symbolic bound).
beta_idx = sp.IndexedBase(sym("beta", UNIT, positive=True))
rho = sp.IndexedBase(sym("rho", positive=True))
c_slack = sym("c", positive=True)                 # b = 1 / (1 + c)
_one_minus_beta = (c_slack + rho[t_] + c_slack * rho[t_]) / ((1 + c_slack) * (1 + rho[t_]))  # 1 - beta_t > 0
SUMS = {b_max: 1 / (1 + c_slack)}
_neg_log_abar = -sp.Sum(sp.log(1 - beta_idx[t_]), (t_, 1, T_))  # -log alphabar_T = -sum_t log(1 - beta_t)


def _rates(e: sp.Expr) -> sp.Expr:
    """beta_t = b / (1 + rho_t) with rho_t > 0 (every beta_t in (0, b)), inside the sums."""
    return sp.sympify(e).xreplace({beta_idx[t_]: b_max / (1 + rho[t_])}).xreplace(SUMS)


def _merge_sums(e: sp.Expr) -> sp.Expr:
    """Every term ``c * Sum(f, (t, 1, T))`` (c free of t) gathered into one sum whose body is normalised
    (logs split, one denominator, ``cancel``): linearity of finite sums with the same range."""
    body, rest = sp.Integer(0), sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(e)):
        sums = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.Sum) and f.limits == ((t_, 1, T_),)]
        if len(sums) == 1:
            body += (term / sums[0]) * sums[0].function
        else:
            rest += term
    body = sp.cancel(sp.together(split_logs(sp.expand(body))))
    return sp.Sum(body, (t_, 1, T_)) + rest if body != 0 else rest


def _sum_part(name: str, difference, certificate) -> NonNegativeForEverySize:
    return NonNegativeForEverySize(
        name, lambda c: [_rates(difference(c))], certificate=lambda c: certificate,
        prepare=lambda e: _merge_sums(expand_known(e)), instances=(at_sizes({T_: 2}), at_sizes({T_: 3})))


forgetting = register(Identity(
    id="ddpm.schedule.forgetting",
    title=r"$\bar\alpha_T$ between $e^{-\sum_t \beta_t/(1 - b)}$ and $e^{-\sum_t \beta_t}$",
    chapter="ddpm",
    scope=Scope.GENERAL,
    claim={"lower": sp.Sum(beta_idx[t_], (t_, 1, T_)),
           "upper": sp.Sum(beta_idx[t_], (t_, 1, T_)) / (1 - b_max)},
    check=AllOf(
        "every T: -log alphabar_T = -sum_t log(1 - beta_t); each difference equals a sum over t of the "
        "one-step certificates (LogGap terms and a product of positives); beta_t = b/(1 + rho_t), "
        "b = 1/(1 + c), rho_t, c > 0; sums in normal form; cancel; mutants refuted at T = 2 or 3",
        lambda c: [],
        parts=(
            ("lower", _sum_part("-log alphabar_T - lower = sum_t g(1 - beta_t)",
                                lambda c: _neg_log_abar - c["lower"],
                                sp.Sum(LogGap(_one_minus_beta), (t_, 1, T_)))),
            ("upper", _sum_part("upper + log alphabar_T = sum_t [g(1/(1 - beta_t)) + beta_t (b - beta_t)/((1 - b)(1 - beta_t))]",
                                lambda c: c["upper"] - _neg_log_abar,
                                sp.Sum(LogGap(1 / _one_minus_beta)
                                       + (1 / (1 + rho[t_])) * (rho[t_] / (1 + rho[t_])) * (1 + c_slack)
                                       / (c_slack * _one_minus_beta) / (1 + c_slack) ** 2, (t_, 1, T_)))),
        ),
    ),
    template=(r"$lower \le -\log \bar\alpha_T \le $upper \quad\Longleftrightarrow\quad "
              r"e^{-$upper} \le \bar\alpha_T \le e^{-$lower}, \qquad \bar\alpha_T = \prod_{t=1}^{T}(1 - \beta_t)"),
    assumptions=("0 < beta_t <= b < 1 for every t; every T (sums with a symbolic number of terms)",
                 "the exponential form follows because exp is increasing"),
    mutants=(
        Mutant("lower_with_slack", {"lower": sp.Sum(beta_idx[t_], (t_, 1, T_)) / (1 - b_max)},
               r"The upper bound's $\sum_t \beta_t / (1 - b)$ claimed as a lower bound."),
        Mutant("upper_no_slack", {"upper": sp.Sum(beta_idx[t_], (t_, 1, T_))},
               r"$-\log\bar\alpha_T \le \sum_t \beta_t$: the lower bound claimed as an upper bound."),
        Mutant("upper_times", {"upper": sp.Sum(beta_idx[t_], (t_, 1, T_)) * (1 - b_max)},
               r"The factor $1 - b$ multiplied instead of divided."),
    ),
    references=("ho2020denoising",),
    display={"upper": sp.Mul(sp.Pow(1 - b_max, -1, evaluate=False), sp.Sum(beta_idx[t_], (t_, 1, T_)),
                             evaluate=False)},
))
