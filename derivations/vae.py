r"""Latent-variable models and the variational autoencoder (Kingma and Welling, 2014).

A latent-variable model draws ``z ~ p(z)`` and then ``x ~ p(x | z)``; its likelihood
``p(x) = int p(x | z) p(z) dz`` is an integral that is rarely tractable.  The evidence lower bound
(ELBO) replaces it by an expectation under an encoder ``q(z | x)``.  Most statements are proved on
the *linear-Gaussian model*, where every term has a closed form:

    p(z) = N(0, 1),    p(x | z) = N(w z + b, sigma^2),    q(z | x) = N(m, v).

Registered results (each with wrong variants that its check refutes):

1. ``vae.lg.bayes``: the evidence ``p(x)`` and the posterior ``p(z | x)`` of that model;
2. ``vae.elbo.terms``: the reconstruction term, the KL term and the ELBO in closed form;
3. ``vae.elbo.jensen``: the ELBO by Jensen's inequality: ``E_q[p(x, z)/q(z)] = p(x)``, and the
   Jensen gap ``log E_q[w] - E_q[log w]`` is ``KL(q || p(z | x))``;
4. ``vae.elbo.decomposition``: the ELBO by the decomposition ``log p(x) = ELBO + KL(q || p(z|x))``;
5. ``vae.elbo.optimum``: the ELBO is maximised by the posterior and is then tight;
6. ``vae.kl.diag_normal``: ``KL(N(mu, diag sigma^2) || N(0, I))`` as the VAE loss uses it;
7. ``vae.reparam``: the reparameterisation (pathwise) and score-function gradients;
8. ``vae.recon.bernoulli``: the Bernoulli reconstruction term in terms of logits;
9. ``vae.beta.encoder``: the optimal encoder of the beta-VAE objective on the linear model;
10. ``vae.surgery`` and ``vae.surgery.prior``: ELBO surgery on a discrete model, and the optimal
    prior is the aggregate posterior;
11. ``vae.vq.kl`` and ``vae.vq.gradients``: the KL of VQ-VAE is ``log K``; straight-through and
    stop-gradient losses;
12. ``vae.swae.gaussians``: the sliced Wasserstein-2 distance between isotropic Gaussians.

Expectations of polynomials under Gaussians use the moment recursion
(:func:`derivations.core.gaussian_expectation`); logarithms are split with
``expand_log(force=True)`` on positive symbols before ``cancel``, so every check is exact.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from .core import (
    split_logs,
    Check,
    Claim,
    GaussianFactor,
    Identity,
    Mutant,
    gaussian_expectation,
    gaussian_product_residuals,
    register,
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


def _mul(*args: sp.Expr) -> sp.Expr:
    return sp.Mul(*args, evaluate=False)


def _frac(num: sp.Expr, den: sp.Expr) -> sp.Expr:
    return sp.Mul(num, sp.Pow(den, -1, evaluate=False), evaluate=False)


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
))

# ---------------------------------------------------------------------------------------------
# 3. The ELBO by Jensen's inequality.

kl_to_posterior = kl_normal(m, v, mu_star, v_star)
kl_to_posterior_display = sp.Add(
    _frac(sp.Add(v, (m - mu_star) ** 2, evaluate=False), _mul(2, v_star)), -sp.Rational(1, 2),
    _frac(sp.log(v_star / v), 2), evaluate=False)
"""``KL(q(z|x) || p(z|x))`` for the linear-Gaussian model."""

GAP_MUTANTS = (
    Mutant("gap_is_kl_to_prior", {"gap": kl_prior},
           r"The gap confused with $\mathrm{KL}(q \,\|\, p(z))$, the ELBO's own KL term."),
    Mutant("gap_is_reverse_kl", {"gap": kl_normal(mu_star, v_star, m, v)},
           r"The KL in the other direction, $\mathrm{KL}(p(z \mid x) \,\|\, q)$."),
)
"""Wrong gaps shared by the two derivations of the ELBO."""

_log_mean_weight = log_gaussian_integral(sp.expand(log_q + (log_joint - log_q)), z)
"""``log E_q[p(x, z) / q(z)] = log int q(z) (p(x, z) / q(z)) dz``, by completing the square."""

jensen = register(Identity(
    id="vae.elbo.jensen",
    title=r"The ELBO by Jensen's inequality: the mean importance weight is $p(x)$ and the gap is a KL",
    chapter=CHAPTER,
    claim={"mean_weight": log_evidence, "gap": kl_to_posterior},
    check=equal_logs(
        {"mean_weight": _log_mean_weight,
         "gap": _log_mean_weight - expect(log_joint - log_q)},
        "log E_q[w] by completing the square in z (Gaussian integral); E_q[log w] by the moment "
        "recursion; logs split; cancel",
        definitions=POSTERIOR,
    ),
    template=(r"\begin{aligned} \log \mathbb{E}_{q}\!\left[\frac{p(x, z)}{q(z \mid x)}\right] &= $mean_weight, \\ "
              r"\log \mathbb{E}_{q}\!\left[\frac{p(x, z)}{q(z \mid x)}\right] - "
              r"\mathbb{E}_{q}\!\left[\log \frac{p(x, z)}{q(z \mid x)}\right] &= $gap "
              r"\\ &= \mathrm{KL}\!\left(q(z \mid x) \,\|\, p(z \mid x)\right) \ge 0. \end{aligned}"),
    assumptions=LINEAR_GAUSSIAN + ("w = p(x, z) / q(z | x) is the importance weight",),
    mutants=(
        Mutant("mean_weight_noise_only", {"mean_weight": log_normal(x, b, sigma**2)},
               r"The mean weight taken as $\mathcal{N}(x; b, \sigma^2)$, the likelihood at the prior mean."),
        *GAP_MUTANTS,
    ),
    references=("kingma2014auto", "blei2017variational"),
    code=("gencode.vae.LinearGaussianModel.log_evidence",),
    display={"mean_weight": log_evidence_display, "gap": kl_to_posterior_display},
))

# ---------------------------------------------------------------------------------------------
# 4. The ELBO by the KL decomposition.


@cache
def _kl_to_posterior_by_definition() -> sp.Expr:
    """``E_q[log q - log p(z|x)]`` with the posterior of vae.lg.bayes (computed once, reused by mutants)."""
    return expect(log_q - log_normal(z, post_mean, post_var))


def _decomposition_extra(claim: Claim) -> list[sp.Expr]:
    return [claim["gap"] - _kl_to_posterior_by_definition()]


decomposition = register(Identity(
    id="vae.elbo.decomposition",
    title=r"The ELBO by decomposition: $\log p(x) = \mathcal{L}(q) + \mathrm{KL}(q \,\|\, p(z \mid x))$",
    chapter=CHAPTER,
    claim={"gap": kl_to_posterior},
    check=equal_logs(
        {"gap": log_evidence - expect(log_joint - log_q)},
        "log p(x) from vae.lg.bayes minus the ELBO (moment recursion), and KL(q || p(z|x)) from its "
        "definition (moment recursion); logs split; cancel",
        extra=_decomposition_extra,
        definitions=POSTERIOR,
    ),
    template=(r"\log p(x) - \mathcal{L}(q) = \mathbb{E}_{q}\!\left[\log \frac{q(z \mid x)}{p(z \mid x)}\right] "
              r"= $gap"),
    assumptions=LINEAR_GAUSSIAN,
    mutants=(
        Mutant("gap_sign", {"gap": -kl_to_posterior},
               r"$\log p(x) = \mathcal{L} - \mathrm{KL}$: the sign of the KL flipped, which would make the "
               r"ELBO an upper bound."),
        *GAP_MUTANTS,
    ),
    references=("kingma2014auto", "blei2017variational"),
    code=("gencode.vae.LinearGaussianModel.posterior",),
    display={"gap": kl_to_posterior_display},
))

# ---------------------------------------------------------------------------------------------
# 5. The ELBO is maximised by the posterior, and is then tight.


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
))

# ---------------------------------------------------------------------------------------------
# 6. The KL term of the VAE loss: a diagonal Gaussian against N(0, I).

mu_i = sym("mu_i", real=True)
sigma_i = sym("sigma_i", positive=True)
kl_coordinate = (sigma_i**2 + mu_i**2 - 1 - sp.log(sigma_i**2)) / 2
_D = 3  # the check works in three dimensions: additivity over coordinates and each term
_zs = [sym(f"z_{j}", real=True) for j in range(1, _D + 1)]
_mus = [sym(f"mu_{j}", real=True) for j in range(1, _D + 1)]
_sigmas = [sym(f"sigma_{j}", positive=True) for j in range(1, _D + 1)]


@cache
def _kl_diag_derived() -> sp.Expr:
    """``E_q[log q(z) - log N(z; 0, I)]`` for ``q = prod_j N(mu_j, sigma_j^2)``, one coordinate at a time."""
    integrand = sum(log_normal(zj, mj, sj**2) - log_normal(zj, 0, 1) for zj, mj, sj in zip(_zs, _mus, _sigmas))
    for zj, mj, sj in zip(_zs, _mus, _sigmas):
        integrand = expect(integrand, mj, sj**2, zj)
    return integrand


def _kl_diag_residuals(claim: Claim) -> list[sp.Expr]:
    total = sum(claim["term"].xreplace({mu_i: mj, sigma_i: sj}) for mj, sj in zip(_mus, _sigmas))
    return [split_logs(_kl_diag_derived() - total)]


kl_diag = register(Identity(
    id="vae.kl.diag_normal",
    title=r"The KL term of the VAE loss, $\mathrm{KL}(\mathcal{N}(\mu, \operatorname{diag}\sigma^2) \,\|\, \mathcal{N}(0, \mathbf{I}))$",
    chapter=CHAPTER,
    claim={"term": kl_coordinate},
    check=Check(
        "E_q[log q - log p] over a product of three Gaussians, one coordinate at a time by the "
        "moment recursion; compared with the sum of the claimed terms; logs split; cancel",
        _kl_diag_residuals,
    ),
    template=(r"\mathrm{KL}\!\left(\mathcal{N}(\mu, \operatorname{diag}\sigma^2) \,\|\, \mathcal{N}(0, \mathbf{I})\right) "
              r"= \sum_{i=1}^{d} $term"),
    assumptions=("q = N(mu, diag(sigma_1^2, ..., sigma_d^2)), sigma_i > 0",
                 "checked for d = 3; the coordinates are independent under both laws, so the KL is a sum"),
    mutants=(
        Mutant("minus_kl", {"term": (1 + sp.log(sigma_i**2) - mu_i**2 - sigma_i**2) / 2},
               r"$\frac12 \sum_i (1 + \log\sigma_i^2 - \mu_i^2 - \sigma_i^2)$, which is minus the KL "
               r"(the loss must add the KL, or subtract this expression).",
               source="source notes 000 (code comment of the VAE loss)"),
        Mutant("log_std_for_log_var", {"term": (sigma_i**2 + mu_i**2 - 1 - sp.log(sigma_i)) / 2},
               r"$\log\sigma_i$ where $\log\sigma_i^2$ belongs (a log-standard-deviation output read as "
               r"a log-variance)."),
        Mutant("missing_half", {"term": sigma_i**2 + mu_i**2 - 1 - sp.log(sigma_i**2)},
               r"The factor $\frac12$ dropped."),
    ),
    references=("kingma2014auto",),
    code=("gencode.vae.VAE.kl",),
    display={"term": _mul(sp.Rational(1, 2),
                          sp.Add(sigma_i**2, mu_i**2, -1, -sp.log(sigma_i**2, evaluate=False), evaluate=False))},
))

# ---------------------------------------------------------------------------------------------
# 7. The reparameterisation trick, and the score-function estimator it replaces.

s = sym("s", positive=True)  # encoder standard deviation, z = m + s epsilon
_coeffs = sp.symbols("c0:7", real=True)
_f = sum(c * z**k for k, c in enumerate(_coeffs))  # a generic polynomial of degree 6
_f_prime = sp.diff(_f, z)
_on_path = {z: m + s * eps}


def _reparam_residuals(claim: Claim) -> list[sp.Expr]:
    exact = expect(_f, m, s**2)  # E_{N(m, s^2)}[f(z)] in closed form
    e_eps = lambda expr: gaussian_expectation(sp.expand(expr), eps, 0, 1)  # noqa: E731
    return [
        sp.diff(exact, m) - e_eps(_f_prime.xreplace(_on_path) * claim["path_mean"]),
        sp.diff(exact, s) - e_eps(_f_prime.xreplace(_on_path) * claim["path_std"]),
        sp.diff(exact, m) - e_eps(_f.xreplace(_on_path) * claim["score_mean"]),
    ]


reparam = register(Identity(
    id="vae.reparam",
    title=r"The reparameterisation trick: gradients of $\mathbb{E}_{\mathcal{N}(m, s^2)}[f(z)]$",
    chapter=CHAPTER,
    claim={"path_mean": sp.Integer(1), "path_std": eps, "score_mean": eps / s},
    check=Check(
        "for a generic polynomial f of degree 6: the derivatives of E[f] in closed form (moment "
        "recursion) against expectations over epsilon of the claimed estimators; cancel",
        _reparam_residuals,
    ),
    template=(r"\begin{aligned} \partial_m \mathbb{E}[f(z)] &= \mathbb{E}_{\epsilon}\!\left[f'(m + s\epsilon)\cdot $path_mean\right] "
              r"= \mathbb{E}_{\epsilon}\!\left[f(m + s\epsilon)\cdot $score_mean\right], \\ "
              r"\partial_s \mathbb{E}[f(z)] &= \mathbb{E}_{\epsilon}\!\left[f'(m + s\epsilon)\cdot $path_std\right], "
              r"\qquad z = m + s\epsilon,\ \epsilon \sim \mathcal{N}(0, 1). \end{aligned}"),
    assumptions=("z ~ N(m, s^2), s > 0, written z = m + s epsilon with epsilon ~ N(0, 1)",
                 "f a polynomial (checked for a generic one of degree 6)"),
    mutants=(
        Mutant("std_path_without_noise", {"path_std": sp.Integer(1)},
               r"$\partial z / \partial s$ taken as 1, as if $s$ shifted $z$ like $m$ does."),
        Mutant("score_without_scale", {"score_mean": eps},
               r"The score $\partial_m \log q = (z - m)/s^2 = \epsilon / s$ written as $\epsilon$."),
        Mutant("gradient_of_f_ignored", {"path_mean": sp.Integer(0)},
               r"The gradient taken inside the expectation of $f$ alone, as if $q$ did not depend on $m$."),
    ),
    references=("kingma2014auto", "rezende2014stochastic"),
    code=("gencode.vae.VAE.elbo_terms",),
))

# ---------------------------------------------------------------------------------------------
# 8. The Bernoulli reconstruction term, written with logits.

logit = sym("ell", real=True)
u = sym("u", positive=True)  # u = exp(ell), so that every logarithm has a rational argument
xb = x  # the identity is polynomial in x, so it holds at x = 0 and x = 1


def _bernoulli_residuals(claim: Claim) -> list[sp.Expr]:
    p = u / (1 + u)  # sigmoid(ell)
    derived = xb * sp.log(p) + (1 - xb) * sp.log(1 - p)
    return [split_logs(claim["log_lik"].xreplace({logit: sp.log(u)}) - derived)]


bernoulli = register(Identity(
    id="vae.recon.bernoulli",
    title=r"The Bernoulli reconstruction term in logits",
    chapter=CHAPTER,
    claim={"log_lik": xb * logit - sp.log(1 + sp.exp(logit))},
    check=Check(
        "x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)) with u = exp(l), u > 0; logs split; cancel "
        "(a polynomial identity in x, so it holds at x = 0 and x = 1)",
        _bernoulli_residuals,
    ),
    template=(r"\log \mathrm{Bern}\!\left(x;\ \mathrm{sigmoid}(\ell)\right) = x \log \mathrm{sigmoid}(\ell) "
              r"+ (1 - x)\log\left(1 - \mathrm{sigmoid}(\ell)\right) = $log_lik"),
    assumptions=("x in {0, 1}; ell in R is the decoder's logit",),
    mutants=(
        Mutant("missing_log_partition", {"log_lik": xb * logit},
               r"The log-normaliser $\log(1 + e^{\ell})$ dropped."),
        Mutant("binary_cross_entropy_sign", {"log_lik": -(xb * logit - sp.log(1 + sp.exp(logit)))},
               "The binary cross-entropy (a loss) taken for the log-likelihood (a reward)."),
    ),
    references=("kingma2014auto",),
    code=("gencode.vae.BernoulliDecoder",),
    display={"log_lik": sp.Add(_mul(xb, logit), -sp.log(sp.Add(1, sp.exp(logit), evaluate=False)), evaluate=False)},
))

# ---------------------------------------------------------------------------------------------
# 9. beta-VAE: the optimal encoder of the beta-weighted objective.

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
))

# ---------------------------------------------------------------------------------------------
# 10. ELBO surgery on a discrete model: two data points, three latent states.

HALF = (0, sp.Rational(1, 2))
_q = {(k, i): sym(f"q_{{{k}|{i}}}", HALF, positive=True) for k in (1, 2) for i in (1, 2)}
_p = [sym("p_1", (0, sp.Rational(1, 2)), positive=True), sym("p_2", (0, sp.Rational(1, 2)), positive=True)]


def _encoder(i: int) -> list[sp.Expr]:
    """q(. | x_i) on {1, 2, 3}."""
    return [_q[1, i], _q[2, i], 1 - _q[1, i] - _q[2, i]]


def _prior(p: list[sp.Expr]) -> list[sp.Expr]:
    return [p[0], p[1], 1 - p[0] - p[1]]


def _kl_discrete(a: list[sp.Expr], c: list[sp.Expr]) -> sp.Expr:
    return sum(ak * (sp.log(ak) - sp.log(ck)) for ak, ck in zip(a, c))


class KL(sp.Function):
    """``KL(a || b)`` as a display symbol; the checks replace it by its definition."""

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


# For the surgery check every probability is a ratio of positive weights, so that each logarithm
# splits into logarithms of polynomials with positive coefficients (no log(-1) appears).
_a = {(k, i): sym(f"a_{k}{i}", positive=True) for k in (1, 2, 3) for i in (1, 2)}
_c = [sym(f"c_{k}", positive=True) for k in (1, 2, 3)]


def _weighted_encoder(i: int) -> list[sp.Expr]:
    total = sum(_a[k, i] for k in (1, 2, 3))
    return [_a[k, i] / total for k in (1, 2, 3)]


_weighted_prior = [ck / sum(_c) for ck in _c]
_weighted_aggregate = [(q1 + q2) / 2 for q1, q2 in zip(_weighted_encoder(1), _weighted_encoder(2))]
_laws = {q_agg: _weighted_aggregate, prior_sym: _weighted_prior}


def _surgery_value(expr: sp.Expr) -> sp.Expr:
    """Replace the display symbols by their definitions on the discrete model."""
    expr = expr.replace(MutualInformation,
                        lambda *_: sum(_kl_discrete(_weighted_encoder(i), _weighted_aggregate) for i in (1, 2)) / 2)
    return expr.replace(KL, lambda a, c: _kl_discrete(_laws[a], _laws[c]))


def _surgery_residuals(claim: Claim) -> list[sp.Expr]:
    average_kl = sum(_kl_discrete(_weighted_encoder(i), _weighted_prior) for i in (1, 2)) / 2
    return [split_logs(average_kl) - split_logs(_surgery_value(claim["rhs"]))]


_xs, _zsym = sp.Symbol("x"), sp.Symbol("z")
surgery = register(Identity(
    id="vae.surgery",
    title=r"ELBO surgery: the average KL term is a marginal KL plus a mutual information",
    chapter=CHAPTER,
    claim={"rhs": KL(q_agg, prior_sym) + MutualInformation(_xs, _zsym)},
    check=Check(
        "two data points, three latent states, encoder and prior probabilities as ratios of symbolic "
        "positive weights: both sides written out as sums; logs split; cancel",
        _surgery_residuals,
    ),
    template=(r"\frac{1}{n}\sum_{i=1}^{n} \mathrm{KL}\!\left(q(z \mid x_i) \,\|\, p(z)\right) = $rhs"),
    assumptions=("q_agg(z) = (1/n) sum_i q(z | x_i), the aggregate posterior",
                 "I_q(x; z) = (1/n) sum_i KL(q(z | x_i) || q_agg(z)), x uniform on the data",
                 "checked with n = 2 data points and 3 latent states, every probability symbolic"),
    mutants=(
        Mutant("mutual_information_dropped", {"rhs": KL(q_agg, prior_sym)},
               r"The average KL taken to be the KL of the aggregate posterior alone."),
        Mutant("reversed_marginal_kl", {"rhs": KL(prior_sym, q_agg) + MutualInformation(_xs, _zsym)},
               r"The marginal KL in the other direction, $\mathrm{KL}(p \,\|\, q_{\mathrm{agg}})$."),
        Mutant("mutual_information_subtracted", {"rhs": KL(q_agg, prior_sym) - MutualInformation(_xs, _zsym)},
               "The mutual information subtracted instead of added."),
    ),
    references=("hoffman2016elbo",),
    code=("gencode.vae.aggregate_kl_split",),
))


def _prior_residuals(claim: Claim) -> list[sp.Expr]:
    average_kl = sum(_kl_discrete(_encoder(i), _prior(_p)) for i in (1, 2)) / 2
    at = {_p[0]: claim["p_1"], _p[1]: claim["p_2"]}
    return [sp.together(sp.diff(average_kl, pk).xreplace(at)) for pk in _p]


optimal_prior = register(Identity(
    id="vae.surgery.prior",
    title=r"The prior that maximises the average ELBO is the aggregate posterior",
    chapter=CHAPTER,
    claim={"p_1": (_q[1, 1] + _q[1, 2]) / 2, "p_2": (_q[2, 1] + _q[2, 2]) / 2},
    check=Check(
        "the gradient of the average KL term in the free prior probabilities (p_3 = 1 - p_1 - p_2) "
        "vanishes at the claim; cancel (the average KL is convex in p, so this is the minimum)",
        _prior_residuals,
    ),
    template=(r"p^\star(1) = $p_1, \qquad p^\star(2) = $p_2, \qquad "
              r"p^\star(3) = 1 - p^\star(1) - p^\star(2)"),
    assumptions=("two data points, three latent states; q_{k|i} = q(z = k | x_i)",
                 "the prior enters the average ELBO only through the average KL term"),
    mutants=(
        Mutant("first_encoder", {"p_1": _q[1, 1], "p_2": _q[2, 1]},
               "The encoder of one data point taken as the optimal prior."),
        Mutant("uniform", {"p_1": sp.Rational(1, 3), "p_2": sp.Rational(1, 3)},
               "The uniform prior, optimal only when the aggregate posterior is uniform."),
    ),
    references=("hoffman2016elbo", "tomczak2018vae"),
    code=("gencode.vae.aggregate_kl_split",),
    display={"p_1": _frac(sp.Add(_q[1, 1], _q[1, 2], evaluate=False), 2),
             "p_2": _frac(sp.Add(_q[2, 1], _q[2, 2], evaluate=False), 2)},
))

# ---------------------------------------------------------------------------------------------
# 11. VQ-VAE: the KL term and the gradients of its losses.

K = sym("K", positive=True, integer=True)
entropy = TexSymbol(r"\mathcal{H}(q)", positive=True)
_qs = [sym(f"q_{k}", (0, sp.Rational(1, 3)), positive=True) for k in (1, 2, 3)]
_q4 = [*_qs, 1 - sum(_qs)]


def _vq_kl_residuals(claim: Claim) -> list[sp.Expr]:
    # General posterior on K = 4 codes against the uniform prior; H(q) by its definition.
    general = sum(qk * (sp.log(qk) - sp.log(sp.Rational(1, 4))) for qk in _q4)
    h = -sum(qk * sp.log(qk) for qk in _q4)
    # One-hot posterior: the sum runs over its support, one code with probability 1.
    one_hot = 1 * (sp.log(1) - sp.log(1 / K))
    return [split_logs(general - claim["kl"].xreplace({K: 4, entropy: h})),
            split_logs(one_hot - claim["kl_one_hot"])]


vq_kl = register(Identity(
    id="vae.vq.kl",
    title=r"The KL term of VQ-VAE is the constant $\log K$",
    chapter=CHAPTER,
    claim={"kl": sp.log(K) - entropy, "kl_one_hot": sp.log(K)},
    check=Check(
        "KL to the uniform prior on K = 4 codes with symbolic probabilities, and for a one-hot "
        "posterior (sum over its support, 0 log 0 = 0); logs split; cancel",
        _vq_kl_residuals,
    ),
    template=(r"\mathrm{KL}\!\left(q(c \mid x) \,\|\, \mathcal{U}\{1, \dots, K\}\right) = $kl, "
              r"\qquad \text{and for a one-hot } q:\ $kl_one_hot"),
    assumptions=("p(c) = 1/K on K codes; the one-hot posterior has entropy 0",
                 "the general form is checked for K = 4"),
    mutants=(
        Mutant("one_hot_kl_zero", {"kl_one_hot": sp.Integer(0)},
               "A deterministic posterior said to cost no KL."),
        Mutant("entropy_sign", {"kl": sp.log(K) + entropy},
               "The entropy added instead of subtracted."),
    ),
    references=("vandenoord2017neural",),
    code=("gencode.vae.VQVAE.elbo",),
    display={"kl": sp.Add(sp.log(K), -entropy, evaluate=False)},
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
))

# ---------------------------------------------------------------------------------------------
# 12. Sliced Wasserstein-2 between isotropic Gaussians.

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
))
