r"""Latent-variable models and the variational autoencoder (Kingma and Welling, 2014).

A latent-variable model draws ``z ~ p(z)`` and then ``x ~ p(x | z)``; its likelihood
``p(x) = int p(x | z) p(z) dz`` is an integral that is rarely tractable.  The evidence lower bound
(ELBO) replaces it by an expectation under an encoder ``q(z | x)``.  The general statements hold for
any model and any encoder and are checked as pointwise identities of their integrands, with
undefined positive functions (an expectation is the integral of ``q`` times its argument); the
closed forms are those of the *linear-Gaussian model*

    p(z) = N(0, 1),    p(x | z) = N(w z + b, sigma^2),    q(z | x) = N(m, v).

Registered results (each with wrong variants that its check refutes):

1. ``vae.lg.bayes``: the evidence ``p(x)`` and the posterior ``p(z | x)`` of that model;
2. ``vae.elbo.terms``: the reconstruction term, the KL term and the ELBO in closed form;
3. ``vae.elbo.decomposition``: for any model and any ``q``, ``E_q[p(x, z)/q(z)] = p(x)`` and
   ``log p(x) = ELBO + KL(q || p(z|x))``;
4. ``vae.elbo.jensen``: the bound ``log p(x) >= ELBO`` as an inequality (a LogGap certificate);
5. ``vae.elbo.optimum``: on the linear model the ELBO is maximised by the posterior and is then tight;
6. ``vae.reparam``: the reparameterisation (pathwise) and score-function gradients, for any ``f``;
7. ``vae.beta.encoder``: the optimal encoder of the beta-VAE objective on the linear model;
8. ``vae.surgery`` and ``vae.surgery.prior`` (any ``n``, any densities):
   ELBO surgery, and the optimal prior is the aggregate posterior;
9. ``vae.vq.kl`` (any ``K``) and ``vae.vq.gradients``: the KL of VQ-VAE is ``log K``;
   straight-through and stop-gradient losses;
10. ``vae.swae.gaussians``: the sliced Wasserstein-2 distance between isotropic Gaussians.

The KL term of the VAE loss is ``divergences.kl.diag_standard`` and the Bernoulli reconstruction
term is ``autoregressive.bernoulli_logit``; the chapter glues them from there.

Expectations of polynomials under Gaussians use the moment recursion
(:func:`derivations.core.gaussian_expectation`); logarithms are split with
``expand_log(force=True)`` on positive symbols before ``cancel``, so every check is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp
from sympy.core.function import UndefinedFunction

from .core import held_frac as _frac, held_mul as _mul  # unevaluated, for display
from .core import (
    Check,
    Claim,
    ForAnyFunction,
    GaussianFactor,
    Identity,
    LogGap,
    Mutant,
    NonNegative,
    Scope,
    Status,
    Verdict,
    fresh_sym,
    function,
    gaussian_expectation,
    gaussian_product_residuals,
    instantiate,
    register,
    split_logs,
    sym,
)

CHAPTER = "vae"

x = sym("x", real=True)
z = sym("z", real=True)
w = sym("w", real=True)
b = sym("b", real=True)
sigma = sym("sigma", positive=True)  # decoder noise standard deviation
m = sym("m", real=True)  # encoder mean
v = sym("v", positive=True)  # encoder variance
eps = sym("epsilon", real=True)
beta = sym("beta", positive=True)

LINEAR_GAUSSIAN = (
    "p(z) = N(0, 1), p(x | z) = N(w z + b, sigma^2), sigma > 0",
    "q(z | x) = N(m, v), v > 0",
)


class TexSymbol(sp.Symbol):
    """A symbol whose name is printed as LaTeX verbatim (``\\|\\mu_1 - \\mu_2\\|^2``)."""

    def _latex(self, printer) -> str:
        return self.name


def equal_logs(derived: dict[str, sp.Expr], method: str, extra=None,
               definitions: dict[sp.Symbol, sp.Expr] | None = None) -> Check:
    """Like :func:`derivations.core.equal`, but logarithms are split before ``cancel``.

    ``definitions`` are substituted before the logarithms are split (so ``log(v_post / v)`` becomes
    a sum of logarithms of factors); ``extra(claim)`` may add residuals (a second derivation).
    """
    keys, defs = tuple(derived), dict(definitions or {})

    def residuals(claim: Claim) -> list[sp.Expr]:
        out = [derived[k] - claim[k] for k in keys] + (list(extra(claim)) if extra else [])
        return [split_logs(sp.sympify(r).xreplace(defs)) for r in out]

    return Check(method, residuals, definitions=defs)


def log_normal(y: sp.Expr, mean: sp.Expr, variance: sp.Expr) -> sp.Expr:
    """``log N(y; mean, variance)``, polynomial in ``y`` and ``mean``."""
    return GaussianFactor(y, mean, variance).log_density()


def expect(poly: sp.Expr, mean: sp.Expr = m, variance: sp.Expr = v, var: sp.Symbol = z) -> sp.Expr:
    """``E[poly(Z)]`` for ``Z ~ N(mean, variance)`` by the moment recursion."""
    return gaussian_expectation(sp.expand(poly), var, mean, variance)


def kl_normal(m1: sp.Expr, v1: sp.Expr, m2: sp.Expr, v2: sp.Expr) -> sp.Expr:
    """``KL(N(m1, v1) || N(m2, v2))`` in one dimension (the Gaussian KL of the divergences chapter)."""
    return (v1 + (m1 - m2) ** 2) / (2 * v2) - sp.Rational(1, 2) + sp.log(v2 / v1) / 2


def log_gaussian_integral(exponent: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """``log int exp(exponent) d var`` for an exponent ``a2 var^2 + a1 var + a0`` with ``a2 < 0``.

    Completing the square: ``int exp(a2 u^2 + a1 u + a0) du = sqrt(pi / -a2) exp(a0 - a1^2 / (4 a2))``.
    """
    poly = sp.Poly(sp.expand(exponent), var)
    if poly.degree() != 2:
        raise ValueError(f"exponent must be quadratic in {var}, got degree {poly.degree()}")
    a2, a1, a0 = (poly.coeff_monomial(var**k) for k in (2, 1, 0))
    return a0 - a1**2 / (4 * a2) + sp.log(sp.pi / -a2) / 2


# ---------------------------------------------------------------------------------------------
# 1. Evidence and posterior of the linear-Gaussian model.

evidence_var = w**2 + sigma**2
post_mean = w * (x - b) / (w**2 + sigma**2)
post_var = sigma**2 / (w**2 + sigma**2)
log_evidence = log_normal(x, b, evidence_var)
mu_star = TexSymbol(r"\mu_{z \mid x}", real=True)  # posterior mean, named for display
v_star = TexSymbol(r"v_{z \mid x}", positive=True)  # posterior variance, named for display
POSTERIOR = {mu_star: post_mean, v_star: post_var}
log_evidence_display = sp.Add(
    -_frac((x - b) ** 2, _mul(2, sp.Add(w**2, sigma**2, evaluate=False))),
    -_frac(sp.log(2 * sp.pi * (w**2 + sigma**2)), 2), evaluate=False)
log_joint = log_normal(z, 0, 1) + log_normal(x, w * z + b, sigma**2)
log_q = log_normal(z, m, v)


def _bayes_residuals(claim: Claim) -> list[sp.Expr]:
    joint = [GaussianFactor(z, 0, 1), GaussianFactor(x, w * z + b, sigma**2)]
    factored = [GaussianFactor(x, claim["evidence_mean"], claim["evidence_var"]),
                GaussianFactor(z, claim["post_mean"], claim["post_var"])]
    return gaussian_product_residuals(joint, factored)


bayes = register(Identity(
    id="vae.lg.bayes",
    title=r"Evidence and posterior of the linear-Gaussian latent-variable model",
    chapter=CHAPTER,
    claim={"evidence_mean": b, "evidence_var": evidence_var, "post_mean": post_mean, "post_var": post_var},
    check=Check(
        "p(z) p(x|z) = p(x) p(z|x) as Gaussian densities in (z, x): exponent coefficients and "
        "normalising constants compared; cancel",
        _bayes_residuals,
        variables=(z, x),
    ),
    template=(r"\begin{aligned} p(x) &= \mathcal{N}\!\left(x;\ $evidence_mean,\ $evidence_var\right), \\ "
              r"p(z \mid x) &= \mathcal{N}\!\left(z;\ $post_mean,\ $post_var\right). \end{aligned}"),
    assumptions=LINEAR_GAUSSIAN[:1],
    mutants=(
        Mutant("evidence_without_prior_spread", {"evidence_var": sigma**2},
               r"The evidence variance $\sigma^2$ alone: the spread $w^2$ that the prior on $z$ adds is forgotten."),
        Mutant("posterior_mean_least_squares", {"post_mean": (x - b) / w},
               r"The posterior mean $(x - b)/w$ of least squares, which ignores the prior."),
        Mutant("posterior_variance_unit_noise", {"post_var": 1 / (1 + w**2)},
               r"The posterior variance $1/(1 + w^2)$, correct only when $\sigma = 1$."),
    ),
    references=("tipping1999probabilistic",),
    code=("gencode.vae.LinearGaussianModel",),
    display={"evidence_var": sp.Add(w**2, sigma**2, evaluate=False),
             "post_mean": _frac(_mul(w, x - b), sp.Add(w**2, sigma**2, evaluate=False)),
             "post_var": _frac(sigma**2, sp.Add(w**2, sigma**2, evaluate=False))},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 2. The two terms of the ELBO in closed form.

reconstruction = (-((x - b - w * m) ** 2 + w**2 * v) / (2 * sigma**2)
                  - sp.log(2 * sp.pi * sigma**2) / 2)
kl_prior = (m**2 + v - 1 - sp.log(v)) / 2
elbo = reconstruction - kl_prior
reconstruction_display = sp.Add(
    -_frac(sp.Add((x - b - w * m) ** 2, _mul(w**2, v), evaluate=False), 2 * sigma**2),
    -_frac(sp.log(2 * sp.pi * sigma**2), 2), evaluate=False)
kl_prior_display = _mul(sp.Rational(1, 2), sp.Add(m**2, v, -1, -sp.log(v), evaluate=False))


def _recon_term_without_log() -> sp.Expr:
    """``E_q[p(x | z)] = N(x; w m + b, sigma^2 + w^2 v)``: the reconstruction term without its log."""
    s2 = sigma**2 + w**2 * v
    return sp.exp(-(x - b - w * m) ** 2 / (2 * s2)) / sp.sqrt(2 * sp.pi * s2)


terms = register(Identity(
    id="vae.elbo.terms",
    title=r"The ELBO of the linear-Gaussian model: reconstruction and KL terms in closed form",
    chapter=CHAPTER,
    claim={"reconstruction": reconstruction, "kl": kl_prior, "elbo": elbo},
    check=equal_logs(
        {"reconstruction": expect(log_normal(x, w * z + b, sigma**2)),
         "kl": expect(log_q - log_normal(z, 0, 1)),
         "elbo": expect(log_joint - log_q)},
        "Gaussian expectations of polynomials in z by the moment recursion; logs split; cancel",
    ),
    template=(r"\begin{aligned} \mathbb{E}_{q}\!\left[\log p(x \mid z)\right] &= $reconstruction, \\ "
              r"\mathrm{KL}\!\left(q(z \mid x) \,\|\, p(z)\right) &= $kl, \\ "
              r"\mathcal{L}(q) = \mathbb{E}_{q}\!\left[\log \frac{p(x, z)}{q(z \mid x)}\right] &= $elbo. "
              r"\end{aligned}"),
    assumptions=LINEAR_GAUSSIAN,
    mutants=(
        Mutant("reconstruction_without_log", {"reconstruction": _recon_term_without_log()},
               r"The reconstruction term written $\mathbb{E}_q[p(x \mid z)]$, without its logarithm.",
               source="Lil'Log, \"From Autoencoder to Beta-VAE\" (an earlier revision; corrected since)"),
        Mutant("elbo_with_q_for_log_q",
               {"elbo": expect(log_joint) - 1 / (2 * sp.sqrt(sp.pi * v))},
               r"The ELBO written $\mathbb{E}_q[\log p(x, z) - q(z \mid x)]$: the density $q$ where "
               r"$\log q$ belongs.",
               source="Murphy, Probabilistic Machine Learning: Advanced Topics, draft of 2022-02-28, "
                      "eqs. 22.16-22.17 (probml/pml2-book issue 23; fixed)"),
        Mutant("kl_missing_minus_one", {"kl": (m**2 + v - sp.log(v)) / 2},
               r"The $-1$ of the KL term dropped, so the KL of the prior to itself would be $1/2$."),
        Mutant("reconstruction_without_encoder_variance",
               {"reconstruction": -(x - b - w * m) ** 2 / (2 * sigma**2) - sp.log(2 * sp.pi * sigma**2) / 2},
               r"The reconstruction term evaluated at the encoder mean only: the penalty "
               r"$w^2 v / (2\sigma^2)$ for the encoder's spread is lost."),
    ),
    references=("kingma2014auto",),
    code=("gencode.vae.VAE.elbo_terms", "gencode.vae.LinearGaussianModel.elbo"),
    display={"reconstruction": reconstruction_display, "kl": kl_prior_display,
             "elbo": sp.Add(reconstruction_display, -kl_prior_display, evaluate=False)},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 3. The ELBO for any model and any encoder: the mean weight, the decomposition, the bound.
#
# Statements about "any q and any p" are checked as pointwise identities of the integrands, with
# undefined positive functions q(z), p(x | z), p(z) and a positive number p(x): an expectation
# E_q[g] is the integral of q g, and two integrals agree when their integrands do.  The only
# integration steps are the normalisation of q and the definition of the evidence,
# int q(z | x) dz = 1 and int p(x, z) dz = p(x); they are the assumptions.


def _density(name: str, latex: str) -> UndefinedFunction:
    """An undefined positive function printed as ``latex`` (its argument is understood)."""

    def _latex(self, printer, exp=None):  # noqa: ARG001 (SymPy's printer protocol)
        return latex if exp is None else rf"{latex}^{{{exp}}}"

    return UndefinedFunction(name, __dict__={"_latex": _latex}, positive=True)


q_any = _density("q", r"q(z \mid x)")
likelihood_any = _density("p_x_given_z", r"p(x \mid z)")
prior_any = _density("p_z", r"p(z)")
joint_any = _density("p_xz", r"p(x, z)")
posterior_any = _density("p_z_given_x", r"p(z \mid x)")
evidence_any = TexSymbol("p(x)", positive=True)
GENERAL_DEFINITIONS = {posterior_any(z): joint_any(z) / evidence_any,  # Bayes' rule
                       joint_any(z): likelihood_any(z) * prior_any(z)}  # the generative model
"""``p(z | x) = p(x, z) / p(x)`` and ``p(x, z) = p(x | z) p(z)``, applied in this order."""

_k = [sym(f"k_{i}", (sp.Rational(1, 2), 2), positive=True) for i in range(3)]
_ANY_EXAMPLES = ({
    q_any: sp.Lambda(z, sp.exp(-(z - _k[0]) ** 2)),
    likelihood_any: sp.Lambda(z, sp.exp(-(x - _k[1] * z) ** 2)),
    prior_any: sp.Lambda(z, sp.exp(-z**2 / 2) / _k[2]),
},)
"""Concrete positive functions (Gaussian shapes with symbolic parameters) for the witnesses."""


def _general(expr: sp.Expr) -> sp.Expr:
    """Apply the definitions, split the logarithms of the positive functions, expand."""
    for old, new in GENERAL_DEFINITIONS.items():
        expr = sp.sympify(expr).xreplace({old: new})
    return sp.expand(sp.expand_log(expr, force=True))


def _decomposition_residuals(claim: Claim) -> list[sp.Expr]:
    q_, joint_ = q_any(z), joint_any(z)
    weight = joint_ / q_
    return [_general(q_ * weight - claim["integrand"]),  # q w = p(x, z), whose integral is p(x)
            # E_q[log p(x)] - E_q[log w] (int q = 1) against the claimed integrand of the gap
            _general(sp.log(evidence_any) - sp.log(weight) - claim["gap"])]


decomposition = register(Identity(
    id="vae.elbo.decomposition",
    title=r"For any model and any $q$: $\mathbb{E}_q[w] = p(x)$ and "
          r"$\log p(x) = \mathcal{L}(q) + \mathrm{KL}(q \,\|\, p(z \mid x))$",
    chapter=CHAPTER,
    claim={"integrand": joint_any(z), "gap": sp.log(q_any(z) / posterior_any(z))},
    check=ForAnyFunction(
        "pointwise identities of the integrands with undefined positive q(z|x), p(x|z), p(z) and "
        "p(x) > 0; p(z|x) = p(x, z)/p(x); logs split; cancel; witness with Gaussian-shaped functions",
        _decomposition_residuals, examples=_ANY_EXAMPLES),
    template=(r"\begin{aligned} \mathbb{E}_{q}\!\left[\frac{p(x, z)}{q(z \mid x)}\right] "
              r"&= \int $integrand \,\mathrm{d}z = p(x), \\ "
              r"\log p(x) - \mathcal{L}(q) &= \mathbb{E}_{q}\!\left[$gap\right] "
              r"= \mathrm{KL}\!\left(q(z \mid x) \,\|\, p(z \mid x)\right). \end{aligned}"),
    assumptions=("q(z | x) > 0 wherever p(x, z) > 0, and int q(z | x) dz = 1",
                 "p(x) = int p(x, z) dz > 0; p(z | x) = p(x, z) / p(x); p(x, z) = p(x | z) p(z)",
                 "L(q) = E_q[log w], w = p(x, z) / q(z | x), the importance weight"),
    mutants=(
        Mutant("weight_without_prior", {"integrand": likelihood_any(z)},
               r"The weight's mean taken as $\int p(x \mid z)\,\mathrm{d}z$: the prior forgotten in "
               r"the weight, which is then not an unbiased estimate of $p(x)$."),
        Mutant("gap_sign", {"gap": -sp.log(q_any(z) / posterior_any(z))},
               r"$\log p(x) = \mathcal{L} - \mathrm{KL}$: the sign of the KL flipped, which would make the "
               r"ELBO an upper bound."),
        Mutant("gap_is_kl_to_prior", {"gap": sp.log(q_any(z) / prior_any(z))},
               r"The gap confused with $\mathrm{KL}(q \,\|\, p(z))$, the ELBO's own KL term."),
        Mutant("gap_is_reverse_kl",
               {"gap": posterior_any(z) / q_any(z) * sp.log(posterior_any(z) / q_any(z))},
               r"The KL in the other direction, $\mathrm{KL}(p(z \mid x) \,\|\, q)$, whose integrand "
               r"under $q$ is $(p/q) \log(p/q)$."),
    ),
    references=("kingma2014auto", "blei2017variational"),
    code=("gencode.vae.LinearGaussianModel.log_evidence", "gencode.vae.LinearGaussianModel.posterior"),
    scope=Scope.GENERAL,
))

# The bound itself: log p(x) >= L(q), an inequality.  Pointwise, with u = w / p(x) > 0,
#   q (log p(x) - log w) + (w/p(x) - 1) q = q (u - 1 - log u) = q LogGap(u) >= 0,
# and the added term (p(x, z)/p(x) - q) integrates to 1 - 1 = 0.  A wrong bound cannot be refuted
# pointwise (an integrand may be negative somewhere while its integral is positive), so a mutant is
# refuted by integrating its difference numerically on a linear-Gaussian instance where q is the
# posterior (a valid choice of q for which the wrong bound fails).

_JENSEN_INSTANCE = {likelihood_any: sp.Lambda(z, sp.exp(-(1 - 2 * z) ** 2 / (2 * sp.Rational(9, 100)))
                                              / sp.sqrt(2 * sp.pi * sp.Rational(9, 100))),
                    prior_any: sp.Lambda(z, sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi))}
"""w = 2, b = 0, sigma = 0.3, x = 1; q below is the exact posterior of this model (vae.lg.bayes)."""
_JENSEN_POST = (sp.Rational(2, 1) / (4 + sp.Rational(9, 100)), sp.Rational(9, 100) / (4 + sp.Rational(9, 100)))
_JENSEN_INSTANCE[q_any] = sp.Lambda(z, sp.exp(-(z - _JENSEN_POST[0]) ** 2 / (2 * _JENSEN_POST[1]))
                                    / sp.sqrt(2 * sp.pi * _JENSEN_POST[1]))
_JENSEN_EVIDENCE = sp.exp(-sp.Rational(1, 2) / (4 + sp.Rational(9, 100))) / sp.sqrt(2 * sp.pi * (4 + sp.Rational(9, 100)))


def _jensen_integrand(claim: Claim) -> sp.Expr:
    """``q (log p(x) - bound)``: its integral over z is log p(x) - E_q[bound] (int q = 1)."""
    return q_any(z) * (sp.log(evidence_any) - claim["bound"])


@dataclass(frozen=True)
class _IntegratedBound(NonNegative):
    """:class:`NonNegative` on the integrand, with refutation by the integral on an instance."""

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        verdict = super().__call__(claim, seed)
        if verdict.status is not Status.INCONCLUSIVE:
            return verdict
        expr = instantiate(_general(_jensen_integrand(claim)), _JENSEN_INSTANCE)
        expr = sp.expand(sp.expand_log(expr.xreplace({evidence_any: _JENSEN_EVIDENCE}), force=True))
        value = mpmath.quad(sp.lambdify(z, expr, "mpmath"), [-mpmath.inf, 0, mpmath.inf])
        if value < -1e-9:
            witness = {"model": "w = 2, b = 0, sigma = 0.3, x = 1, q = the posterior",
                       "residual": str(sp.N(value, 8))}
            return Verdict(Status.REFUTED, self.method, verdict.residual, witness)
        return verdict


jensen = register(Identity(
    id="vae.elbo.jensen",
    title=r"The evidence lower bound: $\log p(x) \ge \mathcal{L}(q)$ for any model and any $q$",
    chapter=CHAPTER,
    claim={"bound": sp.log(joint_any(z) / q_any(z))},
    check=_IntegratedBound(
        "integrand of log p(x) - L(q), plus (p(x, z)/p(x) - q) whose integral is 0, equals "
        "q LogGap(w / p(x)) pointwise (undefined positive q, p(x|z), p(z)); a wrong bound refuted by "
        "its integral (mpmath.quad) on a linear-Gaussian model with q its posterior",
        lambda claim: [_jensen_integrand(claim).xreplace(GENERAL_DEFINITIONS).xreplace(GENERAL_DEFINITIONS)
                       + likelihood_any(z) * prior_any(z) / evidence_any - q_any(z)],
        certificate=lambda claim: q_any(z) * LogGap(likelihood_any(z) * prior_any(z) / (q_any(z) * evidence_any)),
        prepare=lambda e: sp.expand(sp.expand_log(e, force=True)),
        tries=0),  # no pointwise refutation: a negative integrand at a point does not refute an integral
    template=r"\log p(x) = \log \mathbb{E}_{q}\!\left[\frac{p(x, z)}{q(z \mid x)}\right] "
             r"\ge \mathbb{E}_{q}\!\left[$bound\right] = \mathcal{L}(q)",
    assumptions=("q(z | x) > 0 wherever p(x, z) > 0, and int q(z | x) dz = 1",
                 "p(x) = int p(x, z) dz > 0",
                 "LogGap(u) = u - 1 - log u >= 0 for u > 0 (log u <= u - 1: Jensen's inequality for the log)"),
    mutants=(
        Mutant("entropy_dropped", {"bound": sp.log(joint_any(z))},
               r"$\mathbb{E}_q[\log p(x, z)]$ taken as the bound, without the entropy of $q$: it exceeds "
               r"$\log p(x)$ when $q$ is concentrated."),
        Mutant("kl_term_dropped", {"bound": sp.log(likelihood_any(z))},
               r"The reconstruction term alone taken as a lower bound: at the posterior it exceeds "
               r"$\log p(x)$ by $\mathrm{KL}(p(z \mid x) \,\|\, p(z))$."),
    ),
    references=("kingma2014auto", "blei2017variational"),
    code=("gencode.vae.LinearGaussianModel.elbo",),
    scope=Scope.GENERAL,
))


# ---------------------------------------------------------------------------------------------
# 4. The ELBO is maximised by the posterior, and is then tight.


def _optimum_residuals(claim: Claim) -> list[sp.Expr]:
    at = {m: claim["mean"].xreplace(POSTERIOR), v: claim["variance"].xreplace(POSTERIOR)}
    return [split_logs(sp.diff(elbo, m).xreplace(at)),
            split_logs(sp.diff(elbo, v).xreplace(at)),
            split_logs(elbo.xreplace(at) - claim["value"])]


optimum = register(Identity(
    id="vae.elbo.optimum",
    title=r"The ELBO is maximised by the true posterior, where it equals $\log p(x)$",
    chapter=CHAPTER,
    claim={"mean": mu_star, "variance": v_star, "value": log_evidence},
    check=Check(
        "stationarity of the closed-form ELBO in (m, v) at the claim, and its value there; "
        "logs split; cancel",
        _optimum_residuals,
        definitions=POSTERIOR,
    ),
    template=(r"\operatorname*{arg\,max}_{m,\, v} \mathcal{L}(q) = \left($mean,\ $variance\right), "
              r"\qquad \max_{m,\, v} \mathcal{L}(q) = $value = \log p(x)"),
    assumptions=LINEAR_GAUSSIAN + ("L is strictly concave in m and in v, so a stationary point is the maximum",),
    mutants=(
        Mutant("variance_unit_noise", {"variance": 1 / (1 + w**2)},
               r"The optimal variance $1/(1 + w^2)$, which ignores the decoder noise $\sigma^2$."),
        Mutant("mean_least_squares", {"mean": (x - b) / w},
               r"The optimal mean $(x - b)/w$, which ignores the prior."),
        Mutant("value_likelihood_at_prior_mean", {"value": log_normal(x, b, sigma**2)},
               r"The maximum taken as $\log \mathcal{N}(x; b, \sigma^2)$."),
    ),
    references=("kingma2014auto",),
    code=("gencode.vae.LinearGaussianModel.posterior",),
    display={"value": log_evidence_display},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 5. The reparameterisation trick, and the score-function estimator it replaces, for any f.

s = sym("s", positive=True)  # encoder standard deviation, z = m + s epsilon
f_any = function("f", "f")
_t = sym("t", real=True)
_f_prime_on_path = sp.Subs(sp.Derivative(f_any(_t), _t), _t, m + s * eps)  # f'(m + s epsilon)
_normal_m_s = sp.exp(-(z - m) ** 2 / (2 * s**2)) / sp.sqrt(2 * sp.pi * s**2)  # q(z) = N(z; m, s^2)
_F_EXAMPLES = ({f_any: sp.Lambda(_t, _t**3 + 2 * _t**2 - _t)},)


def _reparam_residuals(claim: Claim) -> list[sp.Expr]:
    """Pointwise integrands: d/dm and d/ds of f(m + s eps) under E_eps (the density of eps does not
    depend on m or s); d/dm of q(z) f(z) for the score function; and the integration by parts that
    makes the two estimators agree, q f' - f q score = d/dz (q f), an exact derivative."""
    score = claim["score_mean"].xreplace({eps: (z - m) / s})  # as a function of z
    return [
        sp.diff(f_any(m + s * eps), m) - _f_prime_on_path * claim["path_mean"],
        sp.diff(f_any(m + s * eps), s) - _f_prime_on_path * claim["path_std"],
        sp.diff(_normal_m_s * f_any(z), m) - _normal_m_s * f_any(z) * score,
        _normal_m_s * sp.diff(f_any(z), z) * claim["path_mean"] - _normal_m_s * f_any(z) * score
        - sp.diff(_normal_m_s * f_any(z), z),
    ]


reparam = register(Identity(
    id="vae.reparam",
    title=r"The reparameterisation trick: gradients of $\mathbb{E}_{\mathcal{N}(m, s^2)}[f(z)]$",
    chapter=CHAPTER,
    claim={"path_mean": sp.Integer(1), "path_std": eps, "score_mean": eps / s},
    check=ForAnyFunction(
        "pointwise integrands with f undefined: derivatives of f(m + s eps) in m and s; d/dm of "
        "N(z; m, s^2) f(z); pathwise minus score-function integrand as the exact derivative "
        "d/dz (q f); cancel; witness with f a cubic", _reparam_residuals, examples=_F_EXAMPLES),
    template=(r"\begin{aligned} \partial_m \mathbb{E}[f(z)] &= \mathbb{E}_{\epsilon}\!\left[f'(m + s\epsilon)\cdot $path_mean\right] "
              r"= \mathbb{E}_{\epsilon}\!\left[f(m + s\epsilon)\cdot $score_mean\right], \\ "
              r"\partial_s \mathbb{E}[f(z)] &= \mathbb{E}_{\epsilon}\!\left[f'(m + s\epsilon)\cdot $path_std\right], "
              r"\qquad z = m + s\epsilon,\ \epsilon \sim \mathcal{N}(0, 1). \end{aligned}"),
    assumptions=("z ~ N(m, s^2), s > 0, written z = m + s epsilon with epsilon ~ N(0, 1)",
                 "f differentiable, with f and f' of at most polynomial growth (so that differentiation "
                 "passes under the integral and the boundary term q f vanishes at infinity)"),
    mutants=(
        Mutant("std_path_without_noise", {"path_std": sp.Integer(1)},
               r"$\partial z / \partial s$ taken as 1, as if $s$ shifted $z$ like $m$ does."),
        Mutant("score_without_scale", {"score_mean": eps},
               r"The score $\partial_m \log q = (z - m)/s^2 = \epsilon / s$ written as $\epsilon$."),
        Mutant("score_variance_scale", {"score_mean": eps / s**2},
               r"The score written $\epsilon / s^2$: $(z - m)/s^2$ with $z - m$ left as $\epsilon$."),
        Mutant("gradient_of_f_ignored", {"path_mean": sp.Integer(0)},
               r"The gradient taken inside the expectation of $f$ alone, as if $q$ did not depend on $m$."),
    ),
    references=("kingma2014auto", "rezende2014stochastic"),
    code=("gencode.vae.VAE.elbo_terms",),
    scope=Scope.GENERAL,
))


# ---------------------------------------------------------------------------------------------
# 6. beta-VAE: the optimal encoder of the beta-weighted objective.

beta_elbo = reconstruction - beta * kl_prior


def _beta_residuals(claim: Claim) -> list[sp.Expr]:
    at = {m: claim["mean"], v: claim["variance"]}
    return [sp.diff(beta_elbo, m).xreplace(at), sp.diff(beta_elbo, v).xreplace(at)]


beta_encoder = register(Identity(
    id="vae.beta.encoder",
    title=r"The beta-VAE encoder on the linear-Gaussian model: the posterior of a tempered likelihood",
    chapter=CHAPTER,
    claim={"mean": w * (x - b) / (w**2 + beta * sigma**2),
           "variance": beta * sigma**2 / (w**2 + beta * sigma**2)},
    check=Check(
        "stationarity of E_q[log p(x|z)] - beta KL(q || p(z)) in (m, v) at the claim; cancel",
        _beta_residuals,
    ),
    template=(r"\operatorname*{arg\,max}_{m,\, v}\ \mathbb{E}_{q}[\log p(x \mid z)] - \beta\, "
              r"\mathrm{KL}(q \,\|\, p(z)) = \left($mean,\ $variance\right)"),
    assumptions=LINEAR_GAUSSIAN + ("beta > 0; the objective is strictly concave in m and in v",),
    mutants=(
        Mutant("beta_ignored_in_mean", {"mean": w * (x - b) / (w**2 + sigma**2)},
               r"The mean of the $\beta = 1$ posterior, as if $\beta$ only changed the variance."),
        Mutant("beta_only_in_denominator", {"variance": sigma**2 / (w**2 + beta * sigma**2)},
               r"The variance without the factor $\beta$ in its numerator."),
    ),
    references=("higgins2017beta",),
    code=("gencode.vae.LinearGaussianModel.beta_encoder",),
    display={"mean": _frac(_mul(w, x - b), sp.Add(w**2, _mul(beta, sigma**2), evaluate=False)),
             "variance": _frac(_mul(beta, sigma**2), sp.Add(w**2, _mul(beta, sigma**2), evaluate=False))},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 7. ELBO surgery: for n data points and any encoders and prior (pointwise in z, symbolic n).

_i = sym("i", positive=True, integer=True)
n_data = sym("n", positive=True, integer=True)
_Qz = sp.IndexedBase("q", positive=True)  # q(z | x_i) at the point z
_Pz = sym("p_at_z", positive=True)  # p(z) at the point z


class KL(sp.Function):
    """``KL(a || b)`` as a display symbol; the checks replace it by its integrand."""

    nargs = 2

    def _latex(self, printer) -> str:
        a, c = (printer._print(arg) for arg in self.args)
        return rf"\mathrm{{KL}}\!\left({a} \,\|\, {c}\right)"


class MutualInformation(sp.Function):
    r"""``I_q(x; z) = E_x KL(q(z|x) || q_agg(z))`` as a display symbol."""

    nargs = 2

    def _latex(self, printer) -> str:
        a, c = (printer._print(arg) for arg in self.args)
        return rf"\mathcal{{I}}_q\!\left({a};\, {c}\right)"


q_agg = TexSymbol(r"q_{\mathrm{agg}}")
prior_sym = sp.Symbol("p")
_xs, _zsym = sp.Symbol("x"), sp.Symbol("z")


def _average(summand: sp.Expr) -> sp.Expr:
    return sp.Sum(summand, (_i, 1, n_data)) / n_data


def _surgery_integrand(expr: sp.Expr) -> sp.Expr:
    """Replace the display symbols by their integrands at a point z (q_agg = (1/n) sum_i q_i)."""
    agg = _average(_Qz[_i])
    expr = expr.replace(MutualInformation, lambda *_: _average(_Qz[_i] * sp.log(_Qz[_i] / agg)))
    laws = {q_agg: agg, prior_sym: _Pz}
    return expr.replace(KL, lambda a, c: laws[a] * sp.log(laws[a] / laws[c]))


def _normalise_sums(expr: sp.Expr) -> sp.Expr:
    """Split logarithms, distribute every sum over its terms and pull out what does not depend on i."""
    expr = sp.expand(expr.replace(sp.log, lambda arg: sp.expand_log(sp.log(arg), force=True)))
    return sp.expand(expr.replace(lambda e: isinstance(e, sp.Sum),
                                  lambda e: sp.factor_terms(sp.Sum(sp.expand(e.function), *e.limits).expand())))


def _surgery_residuals(claim: Claim) -> list[sp.Expr]:
    residual = _average(_Qz[_i] * sp.log(_Qz[_i] / _Pz)) - _surgery_integrand(claim["rhs"])
    generic = _normalise_sums(residual)
    if sp.cancel(generic) == 0:
        return [generic]
    # A witness needs numbers: n = 2 data points, q(z | x_i) at z as positive symbols.
    values = [fresh_sym(f"q_{k}", (sp.Rational(1, 10), 2), positive=True) for k in (1, 2)]
    concrete = residual.xreplace({n_data: 2}).doit().xreplace({_Qz[k + 1]: values[k] for k in range(2)})
    return [concrete, generic]


surgery = register(Identity(
    id="vae.surgery",
    title=r"ELBO surgery: the average KL term is a marginal KL plus a mutual information",
    chapter=CHAPTER,
    claim={"rhs": KL(q_agg, prior_sym) + MutualInformation(_xs, _zsym)},
    check=Check(
        "pointwise in z with n symbolic: (1/n) sum_i q_i log(q_i/p) against q_agg log(q_agg/p) + "
        "(1/n) sum_i q_i log(q_i/q_agg), q_agg = (1/n) sum_i q_i; logs split, sums distributed, "
        "constants pulled out of the sums; cancel; witness at n = 2",
        _surgery_residuals,
    ),
    template=(r"\frac{1}{n}\sum_{i=1}^{n} \mathrm{KL}\!\left(q(z \mid x_i) \,\|\, p(z)\right) = $rhs"),
    assumptions=("q_agg(z) = (1/n) sum_i q(z | x_i), the aggregate posterior",
                 "I_q(x; z) = (1/n) sum_i KL(q(z | x_i) || q_agg(z)), x uniform on the n data points",
                 "q(z | x_i) > 0, p(z) > 0; integrals over z of the integrands (any n, any densities)"),
    mutants=(
        Mutant("mutual_information_dropped", {"rhs": KL(q_agg, prior_sym)},
               r"The average KL taken to be the KL of the aggregate posterior alone."),
        Mutant("reversed_marginal_kl", {"rhs": KL(prior_sym, q_agg) + MutualInformation(_xs, _zsym)},
               r"The marginal KL in the other direction, $\mathrm{KL}(p \,\|\, q_{\mathrm{agg}})$."),
        Mutant("mutual_information_subtracted", {"rhs": KL(q_agg, prior_sym) - MutualInformation(_xs, _zsym)},
               "The mutual information subtracted instead of added."),
    ),
    references=("hoffman2016elbo",),
    code=("gencode.vae.aggregate_kl_split", "gencode.vae.gaussian_kl_split"),
    scope=Scope.GENERAL,
))

# The optimal prior, for any n and any encoders: for every prior p,
#   avgKL(p) - avgKL(q_agg) = KL(q_agg || p) >= 0,
# checked as an inequality of integrands: the difference plus (p - q_agg), which integrates to 1 - 1 = 0,
# equals q_agg LogGap(p / q_agg) >= 0 pointwise (q_agg written A > 0 once the sums are normalised).
# A wrong optimum cannot be refuted pointwise; it is refuted on a discrete instance (n = 2 data points,
# three codes, rational encoders) by a prior with a smaller average KL.

A_agg = sym("A", positive=True)  # q_agg at the point z


def _average_kl_integrand(prior: sp.Expr) -> sp.Expr:
    return _average(_Qz[_i] * sp.log(_Qz[_i] / prior))


def _prior_difference(claim: Claim) -> sp.Expr:
    d = _average_kl_integrand(_Pz) - _average_kl_integrand(claim["prior"]) + (_Pz - claim["prior"])
    return _normalise_sums(d).xreplace({sp.Sum(_Qz[_i], (_i, 1, n_data)): n_data * A_agg})


_DISCRETE_ENCODERS = ((sp.Rational(1, 2), sp.Rational(3, 10), sp.Rational(1, 5)),
                      (sp.Rational(1, 10), sp.Rational(1, 5), sp.Rational(7, 10)))
"""q(z | x_1) and q(z | x_2) on three codes, for the refutation."""


@dataclass(frozen=True)
class _OptimalPrior(NonNegative):
    """:class:`NonNegative` on the integrand; a wrong optimum is refuted by a better prior on an instance."""

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        verdict = super().__call__(claim, seed)
        if verdict.status is not Status.INCONCLUSIVE:
            return verdict
        star = [claim["prior"].xreplace({n_data: 2}).doit().xreplace({_Qz[1]: q1, _Qz[2]: q2})
                for q1, q2 in zip(*_DISCRETE_ENCODERS)]
        star = [v / sum(star) for v in star]  # normalised over the three codes

        def average_kl(prior: list) -> float:
            return float(sum(q[k] * sp.log(q[k] / prior[k]) for q in _DISCRETE_ENCODERS for k in range(3)) / 2)

        aggregate = [(q1 + q2) / 2 for q1, q2 in zip(*_DISCRETE_ENCODERS)]
        if average_kl(aggregate) < average_kl(star) - 1e-12:
            witness = {"encoders": str(_DISCRETE_ENCODERS), "claimed prior": str([sp.N(v, 6) for v in star]),
                       "better prior": str(aggregate),
                       "residual": str(sp.N(average_kl(aggregate) - average_kl(star), 8))}
            return Verdict(Status.REFUTED, self.method, verdict.residual, witness)
        return verdict


_aggregate = _average(_Qz[_i])
optimal_prior = register(Identity(
    id="vae.surgery.prior",
    title=r"The prior that maximises the average ELBO is the aggregate posterior",
    chapter=CHAPTER,
    claim={"prior": _aggregate},
    check=_OptimalPrior(
        "for any prior p, n symbolic: the integrand of avgKL(p) - avgKL(claim), plus (p - claim) whose "
        "integral is 0, equals q_agg LogGap(p / q_agg) pointwise (sums normalised); a wrong optimum "
        "refuted by a better prior on two data points and three codes",
        lambda claim: [_prior_difference(claim)],
        certificate=lambda claim: A_agg * LogGap(_Pz / A_agg),
        prepare=lambda e: sp.expand(sp.expand_log(e, force=True)),
        tries=0),  # no pointwise refutation: a negative integrand at a point does not refute an integral
    template=(r"\operatorname*{arg\,min}_{p}\ \frac{1}{n}\sum_{i=1}^{n} \mathrm{KL}\!\left(q(z \mid x_i) \,\|\, p\right) "
              r"= $prior = q_{\mathrm{agg}}(z), \qquad q_i = q(z \mid x_i)"),
    assumptions=("q(z | x_i) > 0 and p(z) > 0 densities (or mass functions) in z, any n",
                 "the prior enters the average ELBO only through the average KL term",
                 "LogGap(u) = u - 1 - log u >= 0, zero only at u = 1: the minimiser is unique"),
    mutants=(
        Mutant("first_encoder", {"prior": _Qz[1]},
               "The encoder of one data point taken as the optimal prior."),
        Mutant("geometric_mean", {"prior": sp.exp(_average(sp.log(_Qz[_i])))},
               r"The (normalised) geometric mean of the encoders, which minimises the average KL in the "
               r"other direction, $\frac1n\sum_i \mathrm{KL}(p \,\|\, q(z \mid x_i))$."),
    ),
    references=("hoffman2016elbo", "tomczak2018vae"),
    code=("gencode.vae.aggregate_kl_split", "gencode.vae.FlowPriorVAE"),
    display={"prior": sp.Mul(sp.Pow(n_data, -1, evaluate=False), sp.Sum(_Qz[_i], (_i, 1, n_data)), evaluate=False)},
    scope=Scope.GENERAL,
))


# ---------------------------------------------------------------------------------------------
# 8. VQ-VAE: the KL term and the gradients of its losses.

K = sym("K", (2, 9), positive=True, integer=True)
entropy = TexSymbol(r"\mathcal{H}(q)", positive=True)
_kk = sym("k", positive=True, integer=True)
_Qc = sp.IndexedBase("q", positive=True)  # q(c = k | x)


def _vq_kl_residuals(claim: Claim) -> list[sp.Expr]:
    """Any posterior on K codes against the uniform prior (K symbolic): the KL as a sum over codes,
    with sum_k q_k = 1 and H(q) = -sum_k q_k log q_k; a one-hot posterior sums over its support."""
    kl = sp.Sum(_Qc[_kk] * sp.log(_Qc[_kk] / (1 / K)), (_kk, 1, K))
    h = -sp.Sum(_Qc[_kk] * sp.log(_Qc[_kk]), (_kk, 1, K))
    general = _normalise_sums(kl - claim["kl"].xreplace({entropy: h}))
    general = general.xreplace({sp.Sum(_Qc[_kk], (_kk, 1, K)): 1})  # normalisation
    one_hot = 1 * (sp.log(1) - sp.log(1 / K))
    out = [general, split_logs(one_hot - claim["kl_one_hot"])]
    if sp.cancel(general) != 0:  # a witness needs numbers: K = 3, q = (q_1, q_2, 1 - q_1 - q_2)
        values = [fresh_sym(f"q_{j}", (0, sp.Rational(1, 3)), positive=True) for j in (1, 2)]
        values.append(1 - values[0] - values[1])
        out.insert(0, (kl - claim["kl"].xreplace({entropy: h})).xreplace({K: 3}).doit()
                   .xreplace({_Qc[j + 1]: values[j] for j in range(3)}))
    return out


vq_kl = register(Identity(
    id="vae.vq.kl",
    title=r"The KL term of VQ-VAE is the constant $\log K$",
    chapter=CHAPTER,
    claim={"kl": sp.log(K) - entropy, "kl_one_hot": sp.log(K)},
    check=Check(
        "KL to the uniform prior on K codes (K symbolic) as a sum with sum_k q_k = 1, and for a one-hot "
        "posterior (sum over its support, 0 log 0 = 0); logs split, sums distributed; cancel",
        _vq_kl_residuals,
    ),
    template=(r"\mathrm{KL}\!\left(q(c \mid x) \,\|\, \mathcal{U}\{1, \dots, K\}\right) = $kl, "
              r"\qquad \text{and for a one-hot } q:\ $kl_one_hot"),
    assumptions=("p(c) = 1/K on K codes; q(c | x) a distribution on them (sum_k q_k = 1)",
                 "the one-hot posterior has entropy 0 (0 log 0 = 0)"),
    mutants=(
        Mutant("one_hot_kl_zero", {"kl_one_hot": sp.Integer(0)},
               "A deterministic posterior said to cost no KL."),
        Mutant("entropy_sign", {"kl": sp.log(K) + entropy},
               "The entropy added instead of subtracted."),
        Mutant("log_k_minus_one", {"kl_one_hot": sp.log(K - 1)},
               r"$\log(K - 1)$: the chosen code left out of the count."),
    ),
    references=("vandenoord2017neural",),
    code=("gencode.vae.VQVAE.elbo",),
    display={"kl": sp.Add(sp.log(K), -entropy, evaluate=False)},
    scope=Scope.GENERAL,
))

x1 = x
a_dec = sym("a", real=True)  # decoder z -> a z + c, unit-variance Gaussian
c_dec = sym("c", real=True)
z_e = sym("z_e", real=True)
e_code = sym("e", real=True)
beta_c = beta  # commitment weight


def _vq_loss_gradients() -> tuple[sp.Expr, sp.Expr]:
    """Gradients of the VQ-VAE loss in (z_e, e) with stop-gradients as frozen copies.

    ``sg[y]`` is a fresh symbol whose value is ``y`` but whose derivative is zero; differentiate,
    then substitute the values back.
    """
    sg1, sg2, sg3 = sp.symbols("sg1:4", real=True)
    z_q = z_e + sg1  # straight-through: the value is e, the gradient flows to z_e
    loss = ((x1 - a_dec * z_q - c_dec) ** 2 / 2  # -log p(x | z_q) + const
            + (sg2 - e_code) ** 2  # codebook loss ||sg[z_e] - e||^2
            + beta_c * (z_e - sg3) ** 2)  # commitment loss beta ||z_e - sg[e]||^2
    values = {sg1: e_code - z_e, sg2: z_e, sg3: e_code}
    return sp.diff(loss, z_e).xreplace(values), sp.diff(loss, e_code).xreplace(values)


vq_gradients = register(Identity(
    id="vae.vq.gradients",
    title=r"VQ-VAE: straight-through gradient to the encoder, stop-gradient losses for the codebook",
    chapter=CHAPTER,
    claim={"encoder": a_dec * (a_dec * e_code + c_dec - x1) + 2 * beta_c * (z_e - e_code),
           "codebook": 2 * (e_code - z_e)},
    check=Check(
        "stop-gradients as frozen copies: differentiate the loss, then substitute their values; cancel",
        lambda claim: [d - claim[k] for d, k in zip(_vq_loss_gradients(), ("encoder", "codebook"))],
    ),
    template=(r"\begin{aligned} \frac{\partial \ell}{\partial z_e} &= $encoder, \\ "
              r"\frac{\partial \ell}{\partial e} &= $codebook, \end{aligned}"),
    assumptions=("loss l = (x - a z_q - c)^2 / 2 + (sg[z_e] - e)^2 + beta (z_e - sg[e])^2, one dimension",
                 "z_q = z_e + sg[e - z_e] (straight-through), whose value is the nearest code e"),
    mutants=(
        Mutant("no_straight_through", {"encoder": 2 * beta_c * (z_e - e_code)},
               r"The decoder's gradient stopped at the quantiser, so the encoder learns only from the commitment loss."),
        Mutant("decoder_gradient_at_z_e",
               {"encoder": a_dec * (a_dec * z_e + c_dec - x1) + 2 * beta_c * (z_e - e_code)},
               r"The decoder's gradient evaluated at $z_e$ instead of at the code $z_q = e$."),
        Mutant("codebook_and_commitment_swapped", {"codebook": 2 * beta_c * (e_code - z_e)},
               r"The commitment weight $\beta$ applied to the codebook loss."),
    ),
    references=("vandenoord2017neural", "bengio2013estimating"),
    code=("gencode.vae.VQVAE.quantize", "gencode.vae.VQVAE.loss"),
    display={"encoder": sp.Add(_mul(a_dec, sp.Add(_mul(a_dec, e_code), c_dec, -x1, evaluate=False)),
                               _mul(2, beta_c, sp.Add(z_e, -e_code, evaluate=False)), evaluate=False),
             "codebook": _mul(2, sp.Add(e_code, -z_e, evaluate=False))},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 9. Sliced Wasserstein-2 between isotropic Gaussians.

d = sym("d", positive=True, integer=True)
norm2 = TexSymbol(r"\|\mu_1 - \mu_2\|^2", positive=True)
s1 = sym("s_1", positive=True)
s2 = sym("s_2", positive=True)
t_proj = sym("t", real=True)  # theta^T (mu_1 - mu_2), the projected mean difference


def _sliced_residuals(claim: Claim) -> list[sp.Expr]:
    # In 1-D the optimal coupling is monotone: X = m1 + s1 eps, Y = m2 + s2 eps with the same eps.
    w2_projected = gaussian_expectation(sp.expand((t_proj + s1 * eps - s2 * eps) ** 2), eps, 0, 1)
    poly = sp.Poly(w2_projected, t_proj)
    # Average over theta uniform on the sphere: E[t] = 0 and E[t^2] = ||mu_1 - mu_2||^2 / d
    # (E[theta theta^T] = I / d by symmetry and trace 1).
    averaged = poly.coeff_monomial(1) + poly.coeff_monomial(t_proj**2) * norm2 / d
    return [averaged - claim["sw2"], poly.coeff_monomial(t_proj)]


sliced = register(Identity(
    id="vae.swae.gaussians",
    title=r"Sliced Wasserstein-2 distance between isotropic Gaussians",
    chapter=CHAPTER,
    claim={"sw2": norm2 / d + (s1 - s2) ** 2},
    check=Check(
        "1-D W2 by the monotone coupling (moment recursion), then the average over directions with "
        "E[theta theta^T] = I/d; cancel",
        _sliced_residuals,
    ),
    template=(r"\mathrm{SW}_2^2\!\left(\mathcal{N}(\mu_1, s_1^2 \mathbf{I}),\ \mathcal{N}(\mu_2, s_2^2 \mathbf{I})\right) "
              r"= \mathbb{E}_{\theta \sim \mathcal{U}(S^{d-1})} W_2^2\!\left(\theta_\# \cdot,\ \theta_\# \cdot\right) = $sw2"),
    assumptions=("two Gaussians on R^d with covariances s_1^2 I and s_2^2 I",
                 "theta uniform on the unit sphere: E[theta theta^T] = I / d",
                 "in 1-D, W2 between N(a, s^2) and N(c, r^2) is attained by the monotone coupling"),
    mutants=(
        Mutant("missing_one_over_d", {"sw2": norm2 + (s1 - s2) ** 2},
               r"The mean term without its $1/d$: the full $W_2^2$ mean term, not its sliced average."),
        Mutant("independent_coupling", {"sw2": norm2 / d + s1**2 + s2**2},
               r"The projections coupled independently, which gives $s_1^2 + s_2^2$ (an upper bound) "
               r"instead of $(s_1 - s_2)^2$."),
    ),
    references=("kolouri2019sliced",),
    code=("gencode.two_sample.sliced_wasserstein", "gencode.vae.SWAE.loss"),
    display={"sw2": sp.Add(_frac(norm2, d), (s1 - s2) ** 2, evaluate=False)},
    scope=Scope.GENERAL,
))
