r"""Classical density estimation (chapter 3): Gaussian MLE, kernel density estimation, Gaussian
mixtures by EM, and PCA as the linear autoencoder.

Statements over a sample :math:`x_1, \dots, x_N` are displayed with sums over a symbolic ``N``;
the checks expand them for a concrete small ``N`` (:func:`derivations.divergences.concrete`) with
every :math:`x_i` a free symbol, so each check is exact for that ``N`` (the algebra does not depend
on ``N``; the assumptions say which sizes are checked).
"""

from __future__ import annotations

import sympy as sp

from .core import Check, Claim, GaussianFactor, Identity, Mutant, gaussian_expectation, register, sym
from .core import split_logs
from .divergences import concrete, residual_check

CHAPTER = "density_estimation"

N = sp.Symbol("N", integer=True, positive=True)
i = sp.Symbol("i", integer=True, positive=True)
xi = sp.IndexedBase("x")
_X = {xi: "x"}
m = sym("mu", real=True)
v = sym("sigma^2", positive=True)
SIZES = (3, 4)

# ---------------------------------------------------------------------------------------------
# 1. Gaussian maximum likelihood


def _loglik(size: int, mean: sp.Expr, var: sp.Expr) -> sp.Expr:
    xs = [sp.Symbol(f"x_{k}", real=True) for k in range(1, size + 1)]
    return sum(GaussianFactor(xk, mean, var).log_density() for xk in xs)


def _mle_residuals(c: Claim) -> list[sp.Expr]:
    out = []
    for size in SIZES:
        mean, var = (concrete(c[key], N, size, _X) for key in ("mean", "variance"))
        ll = _loglik(size, m, v)
        at = {m: mean, v: var}
        out += [sp.diff(ll, m).xreplace(at), sp.diff(ll, v).xreplace(at)]
    return out


_mean = sp.Sum(xi[i], (i, 1, N)) / N
mu_hat = sym("mu_hat", real=True)

gaussian_mle = register(Identity(
    id="density.gaussian_mle",
    title="The Gaussian MLE: sample mean and biased sample variance",
    chapter=CHAPTER,
    claim={"mean": _mean, "variance": sp.Sum((xi[i] - _mean) ** 2, (i, 1, N)) / N},
    check=Check(
        "the gradient of sum_i log N(x_i; mu, sigma^2) in (mu, sigma^2) vanishes at the claim, "
        "for N = 3 and 4 symbolic samples; cancel",
        _mle_residuals,
    ),
    template=r"\hat\mu = $mean, \qquad \hat\sigma^2 = $variance",
    assumptions=("x_1, ..., x_N real, not all equal (so the variance is positive); checked for N = 3, 4",
                 "the log-likelihood is concave in the natural parameters (mu/sigma^2, -1/(2 sigma^2)): "
                 "the unique stationary point is the maximum"),
    mutants=(
        Mutant("unbiased_variance", {"variance": sp.Sum((xi[i] - _mean) ** 2, (i, 1, N)) / (N - 1)},
               r"The unbiased variance $\frac{1}{N-1}\sum_i (x_i - \hat\mu)^2$: a fine estimator, but not "
               r"the maximum-likelihood one."),
        Mutant("uncentred", {"variance": sp.Sum(xi[i] ** 2, (i, 1, N)) / N},
               r"The second moment $\frac1N\sum_i x_i^2$ for the variance."),
    ),
    references=("bishop2006pattern",),
    code=("gencode.density.gaussian_mle",),
))

# ---------------------------------------------------------------------------------------------
# 2. Kernel density estimation: bias and variance in the bandwidth

h = sym("h", positive=True)
Nk = sym("N", positive=True)
uu = sym("u", real=True)
d0, d1, d2, d3 = (sym(f"p^({k})", real=True) for k in range(4))  # p(x), p'(x), p''(x), p'''(x)
p_x, pdd = sp.Symbol("p(x)", positive=True), sp.Symbol("p''(x)", real=True)
ORDER = 4


def _kde_residuals(c: Claim) -> list[sp.Expr]:
    # E[p_hat(x)] = int K(u) p(x - h u) du, K the standard normal density; Taylor to order 3 in h.
    taylor = sum(dk * (-h * uu) ** k / sp.factorial(k) for k, dk in enumerate((d0, d1, d2, d3)))
    bias = gaussian_expectation(taylor, uu, 0, 1) - d0
    claim_bias = c["bias"].xreplace({pdd: d2, p_x: d0})
    poly = sp.Poly(sp.expand(bias - claim_bias), h)
    # Var p_hat(x) = (1/N) [int K_h(x - y)^2 p(y) dy - (E p_hat)^2]; the leading term is
    # p(x) R(K) / (N h), R(K) = int K^2 = 1 / (2 sqrt(pi)) since K^2 = N(u; 0, 1/2) / (2 sqrt(pi)).
    k_squared = sp.exp(-uu**2) / (2 * sp.pi)
    r_k = sp.sqrt(sp.pi) / (2 * sp.pi)  # int exp(-u^2) du = sqrt(pi)
    normal_half = sp.exp(-uu**2) / sp.sqrt(sp.pi)  # N(u; 0, 1/2), which integrates to 1
    leading = d0 * r_k / (Nk * h)
    return ([poly.coeff_monomial(h**k) for k in range(ORDER)]
            + [sp.cancel(k_squared / normal_half) - r_k,
               c["variance"].xreplace({p_x: d0}) - leading])


kde_bias_variance = register(Identity(
    id="density.kde.bias_variance",
    title="Bias and variance of a Gaussian kernel density estimate",
    chapter=CHAPTER,
    claim={"bias": h**2 * pdd / 2, "variance": p_x / (2 * sp.sqrt(sp.pi) * Nk * h)},
    check=Check(
        "bias: Taylor expansion of p(x - h u) to order 3 averaged with standard normal moments, "
        "coefficients of h^0..h^3 compared; variance: leading term p(x) R(K)/(N h) with "
        "R(K) = int K^2 from K^2 = N(0, 1/2)/(2 sqrt(pi)); cancel",
        _kde_residuals,
    ),
    template=(r"\E[\hat p_h(x)] - p(x) = $bias + O(h^4), \qquad "
              r"\operatorname{Var}[\hat p_h(x)] = $variance + O(1/N)"),
    assumptions=("x_1, ..., x_N i.i.d. from p, p four times differentiable with bounded derivatives",
                 "p_hat_h(x) = (1/N) sum_i K_h(x - x_i), K_h(u) = N(u; 0, h^2) (Gaussian kernel)",
                 "h -> 0 and N h -> infinity"),
    mutants=(
        Mutant("bias_first_order", {"bias": h * pdd / 2},
               r"A bias of order $h$: the first-order term vanishes because the kernel is symmetric."),
        Mutant("variance_without_bandwidth", {"variance": p_x / (2 * sp.sqrt(sp.pi) * Nk)},
               r"A variance of order $1/N$ that forgets the $1/h$: narrow kernels are noisy."),
    ),
    references=("silverman1986density", "wasserman2006all"),
))

# ---------------------------------------------------------------------------------------------
# 3. Gaussian mixtures: E-step, M-step, and why EM climbs

w1, w2 = sym("pi_1", (0, 1), positive=True), sym("pi_2", (0, 1), positive=True)
mu1, mu2 = sym("mu_1", real=True), sym("mu_2", real=True)
sd1, sd2 = sym("sigma_1", positive=True), sym("sigma_2", positive=True)
v1, v2 = sd1**2, sd2**2
xx = sym("x", real=True)
a_x = sp.log(w1 / w2) - sp.log(v1 / v2) / 2 - (xx - mu1) ** 2 / (2 * v1) + (xx - mu2) ** 2 / (2 * v2)


def _ordered(*terms: sp.Expr) -> sp.Expr:
    return sp.Add(*terms, evaluate=False)


def _sq_over(a: sp.Expr, b: sp.Expr, var: sp.Expr) -> sp.Expr:
    """(a - b)^2 / (2 var), printed in that order."""
    return sp.Mul(sp.Pow(_ordered(a, -b), 2, evaluate=False), sp.Pow(2 * var, -1, evaluate=False),
                  evaluate=False)


def _estep_residuals(c: Claim) -> list[sp.Expr]:
    # r_1 = pi_1 N_1 / (pi_1 N_1 + pi_2 N_2) = 1 / (1 + exp(-a)) iff log(pi_2 N_2 / (pi_1 N_1)) = -a.
    n1 = GaussianFactor(xx, mu1, v1).log_density()
    n2 = GaussianFactor(xx, mu2, v2).log_density()
    return [sp.log(w2) + n2 - sp.log(w1) - n1 + c["logit"]]


e_step = register(Identity(
    id="density.gmm.e_step",
    title="E-step: the responsibility is a logistic function of a quadratic",
    chapter=CHAPTER,
    claim={"logit": a_x},
    check=residual_check(
        "Bayes' rule r_1 = pi_1 N_1 / (pi_1 N_1 + pi_2 N_2) = sigmoid(a) iff a = log(pi_1 N_1 / (pi_2 N_2)); "
        "logarithms split; cancel",
        _estep_residuals,
    ),
    template=(r"r_1(x) = \frac{\pi_1 \Normal(x; \mu_1, \sigma_1^2)}{\sum_{k=1}^2 \pi_k \Normal(x; \mu_k, \sigma_k^2)}"
              r" = \frac{1}{1 + e^{-a(x)}}, \qquad a(x) = $logit"),
    assumptions=("two components with weights pi_1 + pi_2 = 1 (the identity holds for any positive weights)",),
    mutants=(
        Mutant("without_log_variance_term", {"logit": a_x + sp.log(v1 / v2) / 2},
               r"The term $-\tfrac12\log(\sigma_1^2/\sigma_2^2)$ from the normalising constants dropped."),
        Mutant("quadratic_sign", {"logit": sp.log(w1 / w2) + (xx - mu1) ** 2 / (2 * v1)
                                  - (xx - mu2) ** 2 / (2 * v2) - sp.log(v1 / v2) / 2},
               "The quadratic terms with the wrong signs: the far component would win."),
    ),
    references=("dempster1977maximum", "bishop2006pattern"),
    code=("gencode.density.gmm_e_step",),
    display={"logit": _ordered(sp.log(w1 / w2), -sp.log(v1 / v2) / 2, -_sq_over(xx, mu1, v1), _sq_over(xx, mu2, v2))},
))

r = sp.IndexedBase("r")
kk = sp.Symbol("k", integer=True, positive=True)
mu_k_hat = sym("muhat_k", real=True)
_nk = sp.Sum(r[i, kk], (i, 1, N))
lam = sym("lambda", positive=True)


def _m_step_residuals(c: Claim) -> list[sp.Expr]:
    out = []
    for size in (3,):
        xs = [sp.Symbol(f"x_{n}", real=True) for n in range(1, size + 1)]
        r1 = [sp.Symbol(f"r_{n}", positive=True) for n in range(1, size + 1)]
        resp = {1: r1, 2: [1 - rn for rn in r1]}  # responsibilities sum to 1 over k

        def at(expr: sp.Expr, comp: int) -> sp.Expr:
            e = sp.sympify(expr).xreplace({kk: comp}).subs(N, size).doit()
            return e.xreplace({xi[n + 1]: xs[n] for n in range(size)}
                              | {r[n + 1, comp]: resp[comp][n] for n in range(size)})

        pis = {comp: at(c["weight"], comp) for comp in (1, 2)}
        mean1 = at(c["mean"], 1)
        var1 = at(c["variance"], 1).xreplace({mu_k_hat: mean1})
        wk, mk, vk, w2_ = sym("w_k", positive=True), sym("m_k", real=True), sym("v_k", positive=True), sym("w_2", positive=True)
        # Expected complete-data log-likelihood of component 1 and the weight of component 2,
        # with the Lagrange multiplier of pi_1 + pi_2 = 1 (lambda = N at the optimum).
        q_fn = sum(resp[1][n] * (sp.log(wk) + GaussianFactor(xs[n], mk, vk).log_density())
                   + resp[2][n] * sp.log(w2_) for n in range(size)) + lam * (1 - wk - w2_)
        point = {wk: pis[1], w2_: pis[2], mk: mean1, vk: var1, lam: size}
        out += [sp.diff(q_fn, s_).xreplace(point) for s_ in (wk, w2_, mk, vk)]
        out.append(pis[1] + pis[2] - 1)
    return out


m_step = register(Identity(
    id="density.gmm.m_step",
    title="M-step: weights, means and variances maximise the expected complete-data log-likelihood",
    chapter=CHAPTER,
    claim={
        "weight": _nk / N,
        "mean": sp.Sum(r[i, kk] * xi[i], (i, 1, N)) / _nk,
        "variance": sp.Sum(r[i, kk] * (xi[i] - mu_k_hat) ** 2, (i, 1, N)) / _nk,
    },
    check=Check(
        "Lagrangian sum_i sum_k r_ik [log pi_k + log N(x_i; mu_k, sigma_k^2)] + lambda (1 - sum_k pi_k): "
        "its gradient in (pi_1, pi_2, mu_1, sigma_1^2) vanishes at the claim with lambda = N, and the "
        "weights sum to 1; N = 3 symbolic points, K = 2, symbolic responsibilities; cancel",
        _m_step_residuals,
    ),
    template=(r"\hat\pi_k = $weight, \qquad \hat\mu_k = $mean, \qquad \hat\sigma_k^2 = $variance"),
    assumptions=("responsibilities r_ik > 0 with sum_k r_ik = 1 (from the E-step), held fixed",
                 "checked for N = 3 points and K = 2 components",
                 "the expected complete-data log-likelihood is concave in pi and in each component's natural "
                 "parameters: the stationary point is the maximum"),
    mutants=(
        Mutant("weight_without_one_over_n", {"weight": _nk},
               r"The weight $\sum_i r_{ik}$ without dividing by $N$: the weights no longer sum to 1."),
        Mutant("variance_over_n", {"variance": sp.Sum(r[i, kk] * (xi[i] - mu_k_hat) ** 2, (i, 1, N)) / N},
               r"The variance divided by $N$ instead of the effective count $N_k = \sum_i r_{ik}$."),
        Mutant("unweighted_mean", {"mean": sp.Sum(xi[i], (i, 1, N)) / N},
               "The plain sample mean for every component, ignoring the responsibilities."),
    ),
    references=("dempster1977maximum", "bishop2006pattern"),
    code=("gencode.density.gmm_m_step",),
))

a1, a2 = sym("A_1", positive=True), sym("A_2", positive=True)  # pi_k N(x; mu_k, sigma_k^2) at one x
r1_, r2_ = sym("r_1", (0, 1), positive=True), sym("r_2", (0, 1), positive=True)
_R2 = {r2_: 1 - r1_}


def _em_residuals(c: Claim) -> list[sp.Expr]:
    post = (a1 / (a1 + a2), a2 / (a1 + a2))  # the exact posterior p(z = k | x)
    kl = r1_ * sp.log(r1_ / post[0]) + r2_ * sp.log(r2_ / post[1])
    # logarithms are split with r_2 a symbol of its own, then r_1 + r_2 = 1 is imposed
    return [split_logs(e).xreplace(_R2) for e in (sp.log(a1 + a2) - c["bound"] - c["gap"], c["gap"] - kl)]


_gap = r1_ * sp.log(r1_ * (a1 + a2) / a1) + r2_ * sp.log(r2_ * (a1 + a2) / a2)

em_decomposition = register(Identity(
    id="density.em.decomposition",
    title="The log-likelihood is a lower bound plus a KL gap: why EM never decreases it",
    chapter=CHAPTER,
    claim={"bound": r1_ * sp.log(a1 / r1_) + r2_ * sp.log(a2 / r2_), "gap": _gap},
    check=Check(
        "at one point x, two components, A_k = pi_k N(x; mu_k, sigma_k^2): log(A_1 + A_2) minus bound minus gap, "
        "and gap minus KL(r || posterior); logarithms split, then r_2 = 1 - r_1; cancel",
        _em_residuals,
    ),
    template=(r"\log (A_1 + A_2) = \underbrace{$bound}_{\mathcal{F}(r, \theta)} + "
              r"\underbrace{$gap}_{\KL(r \,\Vert\, p(z \mid x, \theta)) \;\ge\; 0}, "
              r"\qquad A_k = \pi_k \Normal(x; \mu_k, \sigma_k^2)"),
    assumptions=("one data point, two components (sums over points and components add term by term)",
                 "r = (r_1, r_2), r_1 + r_2 = 1, any distribution over the components with r_k > 0"),
    mutants=(
        Mutant("gap_subtracted", {"gap": -_gap},
               "The KL gap subtracted instead of added: the bound would be an upper bound."),
        Mutant("bound_without_entropy", {"bound": r1_ * sp.log(a1) + r2_ * sp.log(a2)},
               r"The bound without the entropy of $r$ (only the expected complete-data log-likelihood)."),
    ),
    references=("dempster1977maximum", "neal1998view"),
    code=("gencode.density.fit_gmm_em",),
))

# ---------------------------------------------------------------------------------------------
# 4. PCA as the linear autoencoder

X = [sym(f"x_{k}", real=True) for k in (1, 2, 3)]
A = [sym(f"a_{k}", real=True) for k in (1, 2, 3)]  # a skew-symmetric matrix's entries
lams = [sym(f"lambda_{k}", positive=True) for k in (1, 2, 3)]
wv = [sym(f"w_{k}", real=True) for k in (1, 2, 3)]
S = sp.Matrix(3, 3, lambda a, b: sym(f"S_{min(a, b) + 1}{max(a, b) + 1}", real=True))  # E[x x^T]


def _unit_vector() -> tuple[sp.Matrix, sp.Expr]:
    """A unit vector w = v / den of R^3, rational in a_1, a_2 (inverse stereographic projection):
    v = (2 a_1, 2 a_2, 1 - a_1^2 - a_2^2), den = 1 + a_1^2 + a_2^2, so that v^T v = den^2 exactly."""
    return sp.Matrix([2 * A[0], 2 * A[1], 1 - A[0] ** 2 - A[1] ** 2]), 1 + A[0] ** 2 + A[1] ** 2


xv = sp.Matrix(X)
err_sym, tr_sym, proj_sym = sym("E", real=True), sym("T", real=True), sym("V", real=True)


def _second_moments(quadratic: sp.Expr) -> sp.Expr:
    """E[q(x)] for a quadratic form q, by replacing each monomial x_a x_b with S_ab = E[x_a x_b]."""
    poly = sp.Poly(sp.expand(quadratic), *X)
    out = sp.Integer(0)
    for mon, coef in poly.terms():
        a, b = [k for k, e in enumerate(mon) for _ in range(e)]
        out += coef * S[a, b]
    return out


def _pca_residuals(c: Claim) -> list[sp.Expr]:
    v, den = _unit_vector()
    vx = (v.T * xv)[0, 0]
    # den^4 ||x - w w^T x||^2 with w = v / den, expanded without using |w| = 1:
    # ||x||^2 - 2 (w^T x)^2 + (w^T x)^2 (w^T w), times den^4.
    error = den**4 * (xv.T * xv)[0, 0] - 2 * den**2 * vx**2 + vx**2 * (v.T * v)[0, 0]
    claim = c["error"].xreplace({tr_sym: S.trace(), proj_sym: (v.T * S * v)[0, 0] / den**2})
    return [sp.expand(den**4 * claim) - sp.expand(_second_moments(error))]


pca_error = register(Identity(
    id="density.pca.reconstruction",
    title="Reconstruction error of an orthonormal linear autoencoder",
    chapter=CHAPTER,
    claim={"error": tr_sym - proj_sym},
    check=Check(
        "W = a unit vector by inverse stereographic projection (orthonormal by construction, rational in 2 "
        "parameters); ||x - W W^T x||^2 times den^4 expanded as a polynomial, monomials x_a x_b replaced "
        "by S_ab = E[x_a x_b]; polynomial comparison",
        _pca_residuals,
    ),
    template=(r"\E\,\big\|x - W W^\top x\big\|^2 = $error, \qquad "
              r"T = \operatorname{tr} \Sigma, \quad V = \operatorname{tr}(W^\top \Sigma W)"),
    assumptions=("W in R^{D x k} with W^T W = I; Sigma = E[x x^T] (centred data); checked for D = 3, k = 1 (k > 1: column by column)",),
    mutants=(
        Mutant("plus_projection", {"error": tr_sym + proj_sym},
               "The captured variance added instead of subtracted."),
        Mutant("only_captured", {"error": proj_sym},
               "The captured variance taken for the error."),
    ),
    references=("pearson1901lines", "baldi1989neural"),
    code=("gencode.density.pca",),
))

top_eigen = register(Identity(
    id="density.pca.top_eigenvector",
    title="The best direction is the top eigenvector: a gap that is a sum of squares",
    chapter=CHAPTER,
    claim={"gap": (lams[0] - lams[1]) * wv[1] ** 2 + (lams[0] - lams[2]) * wv[2] ** 2},
    check=Check(
        "lambda_1 - w^T diag(lambda) w with w_1^2 = 1 - w_2^2 - w_3^2 (unit norm); cancel",
        lambda c: [lams[0] - sum(lk * wk**2 for lk, wk in zip(lams, wv)) - c["gap"]],
        definitions={wv[0]: sp.sqrt(1 - wv[1] ** 2 - wv[2] ** 2)},
    ),
    template=(r"\lambda_1 - w^\top \Lambda w = $gap \;\ge\; 0, \qquad "
              r"\Lambda = \operatorname{diag}(\lambda_1, \lambda_2, \lambda_3),\ \lambda_1 \ge \lambda_2 \ge \lambda_3,\ \|w\| = 1"),
    assumptions=("Sigma = U Lambda U^T; in the eigenbasis w^T Sigma w = sum_k lambda_k w_k^2; D = 3",),
    mutants=(
        Mutant("smallest_eigenvalue", {"gap": (lams[2] - lams[1]) * wv[1] ** 2 + (lams[2] - lams[0]) * wv[2] ** 2},
               "The gap measured from the smallest eigenvalue."),
    ),
    references=("pearson1901lines", "bishop2006pattern"),
    code=("gencode.density.pca",),
))

D_ = sp.Symbol("D", integer=True, positive=True)
jd = sp.Symbol("j", integer=True, positive=True)
xd, gd = sp.IndexedBase("x"), sp.IndexedBase("g")
s2 = sym("s^2", positive=True)


def _decoder_residuals(c: Claim) -> list[sp.Expr]:
    out = []
    for size in (2, 3):
        names = {xd: "x", gd: "g"}
        lhs = sum(GaussianFactor(sp.Symbol(f"x_{n}", real=True), sp.Symbol(f"g_{n}", real=True), s2).log_density()
                  for n in range(1, size + 1))
        rhs = concrete(c["quadratic"] + c["const"], D_, size, names)
        out.append(lhs - rhs)
    return out


decoder = register(Identity(
    id="density.autoencoder.gaussian_decoder",
    title="A Gaussian decoder's log-likelihood is the squared error plus a constant",
    chapter=CHAPTER,
    claim={
        "quadratic": -sp.Sum((xd[jd] - gd[jd]) ** 2, (jd, 1, D_)) / (2 * s2),
        "const": -D_ * sp.log(2 * sp.pi * s2) / 2,
    },
    check=residual_check(
        "sum over D = 2, 3 coordinates of log N(x_j; g_j, s^2); logarithms split; cancel",
        _decoder_residuals,
    ),
    template=r"\log \Normal\big(x; g(z), s^2 \I\big) = $quadratic $const",
    assumptions=("x, g = g(z) in R^D, s > 0; checked for D = 2, 3",),
    mutants=(
        Mutant("log_of_std", {"const": -D_ * sp.log(2 * sp.pi * sp.sqrt(s2)) / 2},
               r"$\log(2\pi s)$ for $\log(2\pi s^2)$ in the constant."),
        Mutant("without_half", {"quadratic": -sp.Sum((xd[jd] - gd[jd]) ** 2, (jd, 1, D_)) / s2},
               r"The squared error over $s^2$ instead of $2 s^2$."),
    ),
    references=("kingma2014auto",),
    code=("gencode.density.Autoencoder",),
))
