"""Guidance: steering a diffusion model towards a label (Dhariwal and Nichol 2021; Ho and Salimans 2022).

Statements about scores of arbitrary densities are checked on their *jets*: at a point ``x`` a
positive differentiable density ``p`` is described by its value ``p(x) > 0`` and its gradient
``grad p(x)``, which are free symbols.  Differentiating ``log`` of a product of such functions by
the chain rule and substituting the jets gives an identity between rational functions of the jets;
if it holds for free symbols it holds for every density, and a wrong statement is refuted at a
random rational point.

1. ``guidance.bayes``: ``grad log p(x | y) = grad log p(x) + grad log p(y | x)``;
2. ``guidance.sharpening``: the guidance scale ``gamma`` is the score of ``p(x) p(y | x)^gamma``;
3. ``guidance.cfg``: classifier-free guidance ``(1 - gamma) s(x) + gamma s(x, y)`` is the same score;
4. ``guidance.classifier_noise``: classifier guidance written for a noise predictor;
5. ``guidance.cfg_gaussian``: for Gaussians, the CFG score at noise level ``(a, s)`` is *not* the
   score of the noised tilted law ``p(x | y)^gamma p(x)^(1 - gamma)`` (Bradley and Nakkiran, 2024);
   the noised variances, the scores and the tilted law's variance are derived, not typed in.
"""

from __future__ import annotations

import sympy as sp

from .core import Check, GaussianFactor, Identity, Mutant, Scope, equal, gaussian_expectation, register, sym
from .diffusion import UNIT, alphabar_t

REFERENCES = ("dhariwal2021diffusion", "ho2022classifier")

x = sym("x", real=True)
gamma = sym("gamma", positive=True)
w = sym("w", positive=True)  # Ho and Salimans' guidance weight, w = gamma - 1

# jets of p(x) and p(y | x) at the point x
p0 = sym("p(x)", positive=True)
p1 = sym(r"\nabla p(x)", real=True)
c0 = sym(r"p(y \mid x)", (0, 1), positive=True)
c1 = sym(r"\nabla p(y \mid x)", real=True)
P = sp.Function("P", positive=True)(x)
C = sp.Function("C", positive=True)(x)
JET = {sp.Derivative(P, x): p1, sp.Derivative(C, x): c1, P: p0, C: c0}


def score_of(log_density: sp.Expr) -> sp.Expr:
    """``d/dx`` of a log-density built from ``P`` and ``C``, written with their jets."""
    return sp.diff(sp.expand_log(log_density, force=True), x).xreplace(JET).xreplace(JET)


# ---------------------------------------------------------------------------------------------
# 1. Bayes' rule for scores.

p_y = sym("p(y)", (0, 1), positive=True)

bayes = register(Identity(
    id="guidance.bayes",
    title="The conditional score is the unconditional score plus the classifier's gradient",
    chapter="guidance",
    scope=Scope.GENERAL,
    claim={"score": p1 / p0 + c1 / c0},
    check=equal({"score": score_of(sp.log(C * P / p_y))},
                "differentiate log(p(y | x) p(x) / p(y)) by the chain rule for any positive "
                "differentiable densities (jets as free symbols); cancel"),
    template=r"\nabla_x \log p(x \mid y) = $score = \nabla_x \log p(x) + \nabla_x \log p(y \mid x)",
    assumptions=("p(x) > 0 and p(y | x) > 0 differentiable in x; p(y) does not depend on x",),
    mutants=(
        Mutant("gradient_of_density", {"score": p1 + c1},
               r"The gradients of the densities, $\nabla p(x) + \nabla p(y \mid x)$, where the "
               r"gradients of their logarithms belong.",
               source="Lil'Log, \"What are diffusion models?\" (classifier guidance, an earlier "
                      "revision)"),
        Mutant("evidence_kept", {"score": p1 / p0 + c1 / c0 - 1 / p_y},
               r"A term for $p(y)$ kept, although it does not depend on $x$."),
    ),
    references=REFERENCES,
))

# ---------------------------------------------------------------------------------------------
# 2. The guidance scale sharpens the classifier.

sharpening = register(Identity(
    id="guidance.sharpening",
    title=r"The guided score is the score of $p(x)\,p(y \mid x)^\gamma$",
    chapter="guidance",
    scope=Scope.GENERAL,
    claim={"score": p1 / p0 + gamma * c1 / c0},
    check=equal({"score": score_of(sp.log(P * C**gamma / sym("Z", positive=True)))},
                "differentiate log(p(x) p(y | x)^gamma / Z) for any positive differentiable "
                "densities (jets); cancel"),
    template=(r"\nabla_x \log \frac{p(x)\, p(y \mid x)^\gamma}{Z_\gamma} = $score"
              r" = \nabla_x \log p(x) + \gamma \nabla_x \log p(y \mid x)"),
    assumptions=("gamma > 0; Z_gamma = int p(x) p(y | x)^gamma dx is finite and does not depend on x",),
    display={"score": sp.Add(p1 / p0, sp.Mul(gamma, sp.Mul(c1, 1 / c0, evaluate=False), evaluate=False),
                             evaluate=False)},
    mutants=(
        Mutant("scale_on_prior", {"score": gamma * p1 / p0 + c1 / c0},
               r"The scale put on the unconditional score instead of the classifier's."),
        Mutant("scale_on_both", {"score": gamma * (p1 / p0 + c1 / c0)},
               r"The whole conditional score multiplied by $\gamma$: that sharpens "
               r"$p(x \mid y)$ itself, $p(x \mid y)^\gamma$, a different target."),
    ),
    references=REFERENCES,
))

# ---------------------------------------------------------------------------------------------
# 3. Classifier-free guidance.

s_u = sym(r"s(x)", real=True)           # unconditional score
s_c = sym(r"s(x, y)", real=True)        # conditional score
g_ = sym(r"\nabla \log p(y \mid x)", real=True)

cfg = register(Identity(
    id="guidance.cfg",
    title="Classifier-free guidance: an extrapolation of the conditional score",
    chapter="guidance",
    scope=Scope.GENERAL,
    claim={"guided": (1 - gamma) * s_u + gamma * s_c, "w_form": (1 + w) * s_c - w * s_u},
    check=equal({"guided": s_u + gamma * g_, "w_form": s_u + gamma * g_},
                "substitute s(x, y) = s(x) + grad log p(y | x) (guidance.bayes) and w = gamma - 1; "
                "compare with guidance.sharpening; cancel",
                definitions={s_c: s_u + g_, w: gamma - 1}),
    template=(r"s(x) + \gamma \nabla \log p(y \mid x) = $guided = $w_form, \qquad w = \gamma - 1"),
    assumptions=("s(x) = grad log p(x), s(x, y) = grad log p(x | y) at the same noise level",
                 "w = gamma - 1 is the guidance weight of Ho and Salimans (2022)"),
    mutants=(
        Mutant("s_minus_one", {"guided": (gamma - 1) * s_u + gamma * s_c},
               r"$\gamma\, s(x, y) + (\gamma - 1)\, s(x)$: the sign of the unconditional "
               r"coefficient flipped.",
               source="an annotated implementation of classifier-free guidance "
                      "(the sign of the unconditional term)"),
        Mutant("w_form_without_one", {"w_form": w * s_c - w * s_u},
               r"$w\, s(x, y) - w\, s(x)$: the weight applied to the difference alone, which "
               r"drops the conditional score itself."),
    ),
    references=REFERENCES,
    code=("gencode.guidance.cfg_noise",),
    display={"guided": sp.Add(sp.Mul(1 - gamma, s_u, evaluate=False), sp.Mul(gamma, s_c, evaluate=False),
                              evaluate=False),
             "w_form": sp.Add(sp.Mul(1 + w, s_c, evaluate=False), -sp.Mul(w, s_u, evaluate=False),
                              evaluate=False)},
))

# ---------------------------------------------------------------------------------------------
# 4. Classifier guidance for a noise predictor.

eps_u = sym(r"\epsilon_\theta", real=True)  # eps_theta(x_t), the unconditional prediction

classifier_noise = register(Identity(
    id="guidance.classifier_noise",
    title="Classifier guidance written for a noise predictor",
    chapter="guidance",
    scope=Scope.GENERAL,
    claim={"eps": eps_u - gamma * sp.sqrt(1 - alphabar_t) * g_},
    check=equal({"eps": -sp.sqrt(1 - alphabar_t) * (-eps_u / sp.sqrt(1 - alphabar_t) + gamma * g_)},
                "eps = -sqrt(1 - alphabar_t) s with s = s(x_t) + gamma grad log p(y | x_t) and "
                "s(x_t) = -eps_theta / sqrt(1 - alphabar_t); cancel"),
    template=(r"\tilde{\epsilon}_\theta(x_t, y) = $eps, \qquad \epsilon_\theta = \epsilon_\theta(x_t),\ "
              r"\nabla \log p(y \mid x) = \nabla_{x_t} \log p(y \mid x_t)"),
    display={"eps": sp.Add(eps_u, -sp.Mul(gamma, sp.sqrt(1 - alphabar_t), g_, evaluate=False),
                           evaluate=False)},
    assumptions=("eps_theta(x_t) = -sqrt(1 - alphabar_t) grad log p(x_t) (ddpm.forward.score, "
                 "averaged over x_0)", "0 < alphabar_t < 1"),
    mutants=(
        Mutant("plus_sign", {"eps": eps_u + gamma * sp.sqrt(1 - alphabar_t) * g_},
               "The classifier's gradient added to the noise: that steers away from the label."),
        Mutant("no_sqrt", {"eps": eps_u - gamma * (1 - alphabar_t) * g_},
               r"$1 - \bar\alpha_t$ where its square root belongs."),
    ),
    references=REFERENCES,
    code=("gencode.guidance.classifier_guided_noise",),
))

# ---------------------------------------------------------------------------------------------
# 5. CFG does not sample the tilted distribution (Gaussian case).

a = sym("a", UNIT, positive=True)       # signal scale at the noise level
s = sym("s", positive=True)             # noise standard deviation
sigma2 = sym(r"\sigma^2", positive=True)  # variance of p(x) = N(0, sigma^2)
tau2 = sym(r"\tau^2", positive=True)      # variance of p(x | y) = N(0, tau^2)
gamma_dom = sym("gamma", (0, 1), positive=True)

precision_cfg = (1 - gamma) / (a**2 * sigma2 + s**2) + gamma / (a**2 * tau2 + s**2)
tilted_variance = 1 / (gamma / tau2 + (1 - gamma) / sigma2)
x0_ = sym("x_0", real=True)
e_ = sym("epsilon", real=True)


def _noised_variance(variance: sp.Expr) -> sp.Expr:
    """Variance of ``a X + s E`` for independent ``X ~ N(0, variance)`` and ``E ~ N(0, 1)`` (moments)."""
    second = gaussian_expectation(sp.expand((a * x0_ + s * e_) ** 2), x0_, 0, variance)
    return gaussian_expectation(second, e_, 0, 1)


def _score(variance: sp.Expr) -> sp.Expr:
    """``d/dx log N(x; 0, variance)``."""
    return sp.diff(GaussianFactor(x, 0, variance).log_density(), x)


def _cfg_gaussian_residuals(claim: dict) -> list[sp.Expr]:
    guided = (1 - gamma) * _score(_noised_variance(sigma2)) + gamma * _score(_noised_variance(tau2))
    # the tilted law p(x | y)^gamma p(x)^(1 - gamma): its log-density is quadratic in x, and its
    # precision is minus twice the coefficient of x^2
    log_tilted = (gamma * GaussianFactor(x, 0, tau2).log_density()
                  + (1 - gamma) * GaussianFactor(x, 0, sigma2).log_density())
    tilted_precision = -2 * sp.Poly(sp.expand(log_tilted), x).coeff_monomial(x**2)
    return [guided + claim["precision"] * x,                      # the guided score is -Lambda x
            claim["tilted_variance"] * tilted_precision - 1,
            # at s = 0 the guided precision is that of the tilted law scaled by a
            (claim["precision"] * a**2 * claim["tilted_variance"]).xreplace({s: 0}) - 1]


cfg_gaussian = register(Identity(
    id="guidance.cfg_gaussian",
    title="For Gaussians, the guided score at a noise level is not the noised tilted score",
    chapter="guidance",
    scope=Scope.GENERAL,
    claim={"precision": precision_cfg, "tilted_variance": tilted_variance},
    check=Check(
        "noised variances from the moments of a X + s E (moment recursion); scores by "
        "differentiating the Gaussian log-densities; CFG combination (guidance.cfg); the tilted "
        "law's precision by its x^2 coefficient; both compared, and at s = 0; cancel",
        _cfg_gaussian_residuals,
    ),
    template=(r"(1 - \gamma)\, \nabla \log p_{a,s}(x) + \gamma\, \nabla \log p_{a,s}(x \mid y) = "
              r"-\Lambda x, \qquad \Lambda = $precision, \qquad v_\gamma = $tilted_variance"),
    assumptions=("p(x) = N(0, sigma^2), p(x | y) = N(0, tau^2) in one dimension",
                 "the noise level (a, s) maps x_0 to a x_0 + s epsilon, epsilon ~ N(0, 1) independent",
                 "the tilted law is p(x | y)^gamma p(x)^(1 - gamma) / Z, gamma such that it is normalisable"),
    mutants=(
        Mutant("noised_tilted", {"precision": 1 / (a**2 * tilted_variance + s**2)},
               r"The precision of the tilted law $p(x \mid y)^\gamma p(x)^{1-\gamma}$ after noising: "
               r"the belief that guided sampling draws from the tilted law. The two agree at "
               r"$s = 0$ only.",
               source="Bradley and Nakkiran, \"Classifier-free guidance is a predictor-corrector\" "
                      "(arXiv 2408.09000), on a common misreading of CFG"),
        Mutant("variances_mixed", {"tilted_variance": gamma * tau2 + (1 - gamma) * sigma2},
               r"The tilted law's variance taken as the mixture of the variances, "
               r"$\gamma \tau^2 + (1 - \gamma)\sigma^2$: tilting adds precisions, not variances."),
        Mutant("noise_not_scaled", {"precision": (1 - gamma) / (a**2 * sigma2 + s) + gamma / (a**2 * tau2 + s)},
               r"The noise standard deviation $s$ added where its square belongs."),
    ),
    references=REFERENCES + ("bradley2024classifier",),
))
