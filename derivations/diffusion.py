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

Every covariance is a multiple of the identity, so each coordinate evolves independently and the
one-dimensional statements below are the full statements, coordinate by coordinate.

Square roots are made rational for the checks: ``alpha_t = a^2`` and ``alphabar_{t-1} = g^2``
with ``a, g`` in ``(0, 1)``, so ``sqrt(alpha_t alphabar_{t-1}) = a g`` and ``cancel`` decides
equality; only ``sqrt(1 - alphabar_t)`` remains as an algebraic generator.
"""

from __future__ import annotations

import sympy as sp

from .core import (
    Claim,
    Check,
    GaussianFactor,
    Identity,
    Mutant,
    equal,
    gaussian_product_residuals,
    register,
    sym,
)

UNIT = (0, 1)


def _mul(*args: sp.Expr) -> sp.Expr:
    return sp.Mul(*args, evaluate=False)


def _frac(num: sp.Expr, den: sp.Expr) -> sp.Expr:
    return sp.Mul(num, sp.Pow(den, -1, evaluate=False), evaluate=False)

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
