r"""Classical density estimation (chapter 3): Gaussian MLE, kernel density estimation, Gaussian
mixtures by EM, and PCA as the linear autoencoder.

Statements over a sample :math:`x_1, \dots, x_N`, over :math:`K` mixture components or over
:math:`D` coordinates are written with ``IndexedBase`` sums whose bounds are symbols, and proved
for every value of the bounds with the normal form of finite sums of
:mod:`derivations.indexed_sums` (linearity, constants out of sums, nested sums flattened, indices
renamed). Mutants are refuted on concrete instances (``N = 3``, ``K = 2``, ``D = 2``) where the sums
are written out.
"""

from __future__ import annotations

import sympy as sp

from .core import GaussianFactor, Identity, Mutant, gaussian_expectation, register, sym
from .core import split_logs
from .divergences import residual_check
from .indexed_sums import ForEverySize, Limit, normalised, to_instance

CHAPTER = "density_estimation"

N = sp.Symbol("N", integer=True, positive=True)
i = sp.Symbol("i", integer=True, positive=True)
xi = sp.IndexedBase("x")
_X = {xi: "x"}
m = sym("mu", real=True)
v = sym("sigma^2", positive=True)
_x_real = sym("x", real=True)


# ---------------------------------------------------------------------------------------------
# 1. Gaussian maximum likelihood, for every N


def _mle_residuals(c: dict) -> list[sp.Expr]:
    loglik = sp.Sum(GaussianFactor(xi[i], m, v).log_density(), (i, 1, N))
    at = {m: c["mean"], v: c["variance"].xreplace({mu_hat: c["mean"]})}
    return [sp.diff(loglik, m).xreplace(at), sp.diff(loglik, v).xreplace(at)]


def _sample_instance(size: int):
    return lambda e: to_instance(e, {N: size}, {xi: _x_real})


_mean = sp.Sum(xi[i], (i, 1, N)) / N
mu_hat = sym("muhat", real=True)  # the claimed mean, inside the variance

gaussian_mle = register(Identity(
    id="density.gaussian_mle",
    title="The Gaussian MLE: sample mean and biased sample variance",
    chapter=CHAPTER,
    claim={"mean": _mean, "variance": sp.Sum((xi[i] - mu_hat) ** 2, (i, 1, N)) / N},
    check=ForEverySize(
        "the gradient of sum_{i=1}^N log N(x_i; mu, sigma^2) in (mu, sigma^2), differentiated under the "
        "symbolic sum, vanishes at the claim for every N: normal form of finite sums (linearity, "
        "sum of a constant = N times it); cancel. Mutants refuted on N = 3 symbolic samples",
        _mle_residuals,
        instances=(("N = 3", _sample_instance(3)), ("N = 4", _sample_instance(4))),
    ),
    template=r"\hat\mu = $mean, \qquad \hat\sigma^2 = $variance",
    display={"variance": sp.Mul(sp.Sum(sp.Pow(sp.Add(xi[i], -mu_hat, evaluate=False), 2, evaluate=False), (i, 1, N)),
                                sp.Pow(N, -1, evaluate=False), evaluate=False)},
    assumptions=("x_1, ..., x_N real, not all equal (so the variance is positive); any N >= 2",
                 "the log-likelihood is concave in the natural parameters (mu/sigma^2, -1/(2 sigma^2)): "
                 "the unique stationary point is the maximum"),
    mutants=(
        Mutant("unbiased_variance", {"variance": sp.Sum((xi[i] - mu_hat) ** 2, (i, 1, N)) / (N - 1)},
               r"The unbiased variance $\frac{1}{N-1}\sum_i (x_i - \hat\mu)^2$: a fine estimator, but not "
               r"the maximum-likelihood one."),
        Mutant("uncentred", {"variance": sp.Sum(xi[i] ** 2, (i, 1, N)) / N},
               r"The second moment $\frac1N\sum_i x_i^2$ for the variance."),
    ),
    references=("bishop2006pattern",),
    code=("gencode.density.gaussian_mle",),
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 2. Kernel density estimation: bias and variance in the bandwidth

h = sym("h", positive=True)
Nk = sym("N", positive=True)
uu = sym("u", real=True)
yy = sym("y", real=True)
d0, d1, d2, d3 = (sym(f"p^({k})", real=True) for k in range(4))  # p(x), p'(x), p''(x), p'''(x)
p_x, pdd = sp.Symbol("p(x)", positive=True), sp.Symbol("p''(x)", real=True)


def _taylor(z: sp.Expr) -> sp.Expr:
    """p(z) to third order about x (p four times differentiable: the remainder is O((z - x)^4))."""
    return sum(dk * (z - _x_real) ** k / sp.factorial(k) for k, dk in enumerate((d0, d1, d2, d3)))


def _density(z: sp.Expr, mean: sp.Expr, var: sp.Expr) -> sp.Expr:
    return sp.exp(-(z - mean) ** 2 / (2 * var)) / sp.sqrt(2 * sp.pi * var)


def _kde_residuals(c: dict) -> list[sp.Expr]:
    # One kernel term K_h(x - y) = N(x; y, h^2), y ~ p. Its mean, by y = x - h u, u ~ N(0, 1):
    mean_term = gaussian_expectation(_taylor(_x_real - h * uu), uu, 0, 1)
    bias = sp.Poly(sp.expand(mean_term - d0 - c["bias"].xreplace({pdd: d2, p_x: d0})), h)
    # Its second moment: N(x; y, h^2)^2 = const * N(y; x, h^2/2), const free of y (derived, not typed)
    ratio = sp.powsimp(_density(_x_real, yy, h**2) ** 2 / _density(yy, _x_real, h**2 / 2))
    const = ratio.xreplace({yy: _x_real})
    second = const * gaussian_expectation(_taylor(yy), yy, _x_real, h**2 / 2)
    # N Var[p_hat(x)] = Var of one term = second - mean_term^2; multiplied by h it is a polynomial
    # in h, whose constant term is the leading (1/h) coefficient of N Var.
    gap = sp.expand(h * (second - mean_term**2) - h * Nk * c["variance"].xreplace({p_x: d0}))
    return ([bias.coeff_monomial(h**k) for k in range(4)]
            + [sp.cancel(sp.diff(ratio, yy)), gap.coeff(h, 0)] + [gap.coeff(h, -k) for k in (1, 2, 3)])


kde_bias_variance = register(Identity(
    id="density.kde.bias_variance",
    title="Bias and variance of a Gaussian kernel density estimate",
    chapter=CHAPTER,
    claim={"bias": h**2 * pdd / 2, "variance": p_x / (2 * sp.sqrt(sp.pi) * Nk * h)},
    check=residual_check(
        "bias: Taylor expansion of p(x - h u) to order 3 averaged with standard normal moments, "
        "coefficients of h^0..h^3 compared; variance: N(x; y, h^2)^2 / N(y; x, h^2/2) shown free of y "
        "(its derivative in y cancels) and evaluated at y = x, the second moment of one kernel term "
        "E_{y ~ N(x, h^2/2)} p(y) by Gaussian moments, minus the squared mean; the constant term of "
        "h N Var compared with h N times the claim, and no term in 1/h^2, 1/h^3, 1/h^4 of N Var; cancel",
        _kde_residuals,
    ),
    template=(r"\E[\hat p_h(x)] - p(x) = $bias + O(h^4), \qquad "
              r"\operatorname{Var}[\hat p_h(x)] = $variance + O(1/N)"),
    assumptions=("x_1, ..., x_N i.i.d. from p, p four times differentiable with bounded derivatives",
                 "p_hat_h(x) = (1/N) sum_i K_h(x - x_i), K_h(u) = N(u; 0, h^2) (Gaussian kernel)",
                 "h -> 0 and N h -> infinity; Var[p_hat_h(x)] = Var[K_h(x - y)] / N, y ~ p"),
    mutants=(
        Mutant("bias_first_order", {"bias": h * pdd / 2},
               r"A bias of order $h$: the first-order term vanishes because the kernel is symmetric."),
        Mutant("bias_without_half", {"bias": h**2 * pdd},
               r"The bias without the $\tfrac12$ of the Taylor expansion."),
        Mutant("variance_without_bandwidth", {"variance": p_x / (2 * sp.sqrt(sp.pi) * Nk)},
               r"A variance of order $1/N$ that forgets the $1/h$: narrow kernels are noisy."),
        Mutant("roughness_without_half", {"variance": p_x / (sp.sqrt(sp.pi) * Nk * h)},
               r"$\int \varphi^2 = 1/\sqrt{\pi}$ instead of $1/(2\sqrt{\pi})$."),
    ),
    references=("silverman1986density", "wasserman2006all"),
    scope="general",
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


def _estep_residuals(c: dict) -> list[sp.Expr]:
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
    assumptions=("two components in one dimension, any positive weights, means and variances",),
    mutants=(
        Mutant("without_log_variance_term", {"logit": a_x + sp.log(v1 / v2) / 2},
               r"The term $-\tfrac12\log(\sigma_1^2/\sigma_2^2)$ from the normalising constants dropped."),
        Mutant("quadratic_sign", {"logit": sp.log(w1 / w2) + (xx - mu1) ** 2 / (2 * v1)
                                  - (xx - mu2) ** 2 / (2 * v2) - sp.log(v1 / v2) / 2},
               "The quadratic terms with the wrong signs: the far component would win."),
        Mutant("log_std_ratio", {"logit": a_x + sp.log(v1 / v2) / 2 - sp.log(sd1 / sd2) / 2},
               r"$\tfrac12\log(\sigma_1/\sigma_2)$ for $\tfrac12\log(\sigma_1^2/\sigma_2^2)$."),
    ),
    references=("dempster1977maximum", "bishop2006pattern"),
    code=("gencode.density.gmm_e_step",),
    display={"logit": _ordered(sp.log(w1 / w2), -sp.log(v1 / v2) / 2, -_sq_over(xx, mu1, v1), _sq_over(xx, mu2, v2))},
    scope="general",
))

K = sp.Symbol("K", integer=True, positive=True)
r = sp.IndexedBase("r")
kk = sp.Symbol("k", integer=True, positive=True)
mu_k_hat = sym("muhat_k", real=True)
_nk = sp.Sum(r[i, kk], (i, 1, N))
lam = sym("lambda", positive=True)
pk_, mk_, vk_ = sym("pi_k", (0, 1), positive=True), sym("mu_k", real=True), sym("sigma_k^2", positive=True)
_r_template = sym("r", (0, 1), positive=True)


def _m_step_residuals(c: dict) -> list[sp.Expr]:
    # The Lagrangian sum_k [sum_i r_ik (log pi_k + log N(x_i; mu_k, sigma_k^2))] + lambda (1 - sum_k pi_k)
    # is a sum over k of terms that each involve one component's parameters, so its gradient in
    # component k's parameters is the gradient of the k-th term (k a symbol, N symbolic).
    term = sp.Sum(r[i, kk] * (sp.log(pk_) + GaussianFactor(xi[i], mk_, vk_).log_density()), (i, 1, N)) - lam * pk_
    mean = c["mean"]
    at = {pk_: c["weight"], mk_: mean, vk_: c["variance"].xreplace({mu_k_hat: mean}), lam: N}
    grads = [sp.diff(term, s_).xreplace(at) for s_ in (pk_, mk_, vk_)]
    # the weights sum to 1 (which fixes lambda = N): sum over k of the claimed weight
    return grads + [sp.Sum(c["weight"], (kk, 1, K)) - 1]


def _gmm_instance(e: sp.Expr) -> sp.Expr:
    """N = 3 points, K = 2 components, component k = 1; r_i2 = 1 - r_i1 (responsibilities sum to 1)."""
    out = to_instance(e.subs(kk, 1), {N: 3, K: 2}, {xi: _x_real, r: _r_template})  # subs: a bound k stays bound
    return out.xreplace({sp.Symbol(f"r_{n}_2", **_r_template.assumptions0): 1 - sp.Symbol(f"r_{n}_1", **_r_template.assumptions0)
                         for n in (1, 2, 3)})


m_step = register(Identity(
    id="density.gmm.m_step",
    title="M-step: weights, means and variances maximise the expected complete-data log-likelihood",
    chapter=CHAPTER,
    claim={
        "weight": _nk / N,
        "mean": sp.Sum(r[i, kk] * xi[i], (i, 1, N)) / _nk,
        "variance": sp.Sum(r[i, kk] * (xi[i] - mu_k_hat) ** 2, (i, 1, N)) / _nk,
    },
    check=ForEverySize(
        "Lagrangian sum_i sum_k r_ik [log pi_k + log N(x_i; mu_k, sigma_k^2)] + lambda (1 - sum_k pi_k), a sum "
        "of one term per component: the gradient of the k-th term in (pi_k, mu_k, sigma_k^2) vanishes at the "
        "claim with lambda = N, and sum_{k=1}^K of the claimed weights is 1 (using sum_k r_ik = 1), for "
        "every N and K: normal form of finite sums; cancel. Mutants refuted on N = 3, K = 2",
        _m_step_residuals,
        rules=(normalised(r, K),),
        instances=(("N = 3, K = 2, k = 1", _gmm_instance),),
    ),
    template=(r"\hat\pi_k = $weight, \qquad \hat\mu_k = $mean, \qquad \hat\sigma_k^2 = $variance"),
    assumptions=("responsibilities r_ik > 0 with sum_{k=1}^K r_ik = 1 (from the E-step), held fixed; any N, K",
                 "the expected complete-data log-likelihood is concave in pi and in each component's natural "
                 "parameters: the stationary point is the maximum"),
    mutants=(
        Mutant("weight_without_one_over_n", {"weight": _nk},
               r"The weight $\sum_i r_{ik}$ without dividing by $N$: the weights no longer sum to 1."),
        Mutant("variance_over_n", {"variance": sp.Sum(r[i, kk] * (xi[i] - mu_k_hat) ** 2, (i, 1, N)) / N},
               r"The variance divided by $N$ instead of the effective count $N_k = \sum_i r_{ik}$."),
        Mutant("unweighted_mean", {"mean": sp.Sum(xi[i], (i, 1, N)) / N},
               "The plain sample mean for every component, ignoring the responsibilities."),
        Mutant("weight_over_k", {"weight": _nk / (N * K)},
               r"The weight divided by $N K$: the weights would sum to $1/K$."),
    ),
    references=("dempster1977maximum", "bishop2006pattern"),
    code=("gencode.density.gmm_m_step",),
    display={"variance": sp.Mul(sp.Sum(sp.Mul(r[i, kk], sp.Pow(sp.Add(xi[i], -mu_k_hat, evaluate=False), 2, evaluate=False),
                                              evaluate=False), (i, 1, N)),
                                sp.Pow(_nk, -1, evaluate=False), evaluate=False)},
    scope="general",
))

# The EM decomposition, at one point x, for K components: A_k = pi_k N(x; mu_k, sigma_k^2) > 0.
A_k, r_k = sp.IndexedBase("A"), sp.IndexedBase("r")
j_ = sp.Symbol("j", integer=True, positive=True)
_A_template, _rk_template = sym("A", positive=True), sym("r", (0, 1), positive=True)
_S = sp.Sum(A_k[j_], (j_, 1, K))


def _logs(e: sp.Expr) -> sp.Expr:
    return sp.expand(sp.expand_log(e, force=True))


def _em_residuals(c: dict) -> list[sp.Expr]:
    kl = sp.Sum(r_k[kk] * sp.log(r_k[kk] / (A_k[kk] / _S)), (kk, 1, K))  # KL(r || posterior A_k / sum_j A_j)
    return [_logs(sp.log(_S) - c["bound"] - c["gap"]), _logs(c["gap"] - kl)]


_b = [sym(f"b_{n}", positive=True) for n in (1, 2, 3)]


def _em_instance(e: sp.Expr) -> sp.Expr:
    """K = 3 components, r_k = b_k / (b_1 + b_2 + b_3) with b_k > 0 (a distribution by construction)."""
    out = to_instance(e, {K: 3}, {A_k: _A_template, r_k: _rk_template})
    return out.xreplace({s_: _b[int(s_.name[2:]) - 1] / sum(_b) for s_ in out.free_symbols if s_.name.startswith("r_")})


_gap = sp.Sum(r_k[kk] * sp.log(r_k[kk] * _S / A_k[kk]), (kk, 1, K))

em_decomposition = register(Identity(
    id="density.em.decomposition",
    title="The log-likelihood is a lower bound plus a KL gap: why EM never decreases it",
    chapter=CHAPTER,
    claim={"bound": sp.Sum(r_k[kk] * sp.log(A_k[kk] / r_k[kk]), (kk, 1, K)), "gap": _gap},
    check=ForEverySize(
        "at one point x, K components, A_k = pi_k N(x; mu_k, sigma_k^2): log(sum_j A_j) minus bound minus "
        "gap, and gap minus KL(r || A_k / sum_j A_j); logarithms expanded, normal form of finite sums with "
        "sum_k r_k = 1, for every K; cancel. Mutants refuted on K = 3 with r_3 = 1 - r_1 - r_2",
        _em_residuals,
        rules=(normalised(r_k, K),),
        instances=(("K = 3", _em_instance),),
    ),
    template=(r"\log \sum_{j=1}^{K} A_j = \underbrace{$bound}_{\mathcal{F}(r, \theta)} + "
              r"\underbrace{$gap}_{\KL(r \,\Vert\, p(z \mid x, \theta)) \;\ge\; 0}, "
              r"\qquad A_k = \pi_k \Normal(x; \mu_k, \sigma_k^2)"),
    assumptions=("one data point (sums over points add term by term), any number K of components",
                 "r = (r_1, ..., r_K), r_k > 0, sum_k r_k = 1: any distribution over the components"),
    mutants=(
        Mutant("gap_subtracted", {"gap": -_gap},
               "The KL gap subtracted instead of added: the bound would be an upper bound."),
        Mutant("bound_without_entropy", {"bound": sp.Sum(r_k[kk] * sp.log(A_k[kk]), (kk, 1, K))},
               r"The bound without the entropy of $r$ (only the expected complete-data log-likelihood)."),
        Mutant("gap_ratio_inverted", {"gap": sp.Sum(r_k[kk] * sp.log(A_k[kk] / (r_k[kk] * _S)), (kk, 1, K))},
               r"The gap as $\sum_k r_k \log(p(z = k \mid x)/r_k)$, minus the KL."),
    ),
    references=("dempster1977maximum", "neal1998view"),
    code=("gencode.density.fit_gmm_em",),
    display={"bound": sp.Sum(sp.Mul(r_k[kk], sp.log(A_k[kk] / r_k[kk]), evaluate=False), (kk, 1, K)),
             "gap": sp.Sum(sp.Mul(r_k[kk], sp.log(r_k[kk] * _S / A_k[kk]), evaluate=False), (kk, 1, K))},
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 4. PCA as the linear autoencoder, for every D and k

D_ = sp.Symbol("D", integer=True, positive=True)
kdim = sp.Symbol("k", integer=True, positive=True)
a_, b_, c_, jd, ld = sp.symbols("a b c j l", integer=True, positive=True)
W, xv, Sig = sp.IndexedBase("W"), sp.IndexedBase("x"), sp.IndexedBase("Sigma")
err_sym, tr_sym, proj_sym = sym("E", real=True), sym("T", real=True), sym("V", real=True)
_TRACE = sp.Sum(Sig[a_, a_], (a_, 1, D_))  # tr Sigma
_CAPTURED = sp.Sum(W[a_, jd] * Sig[a_, c_] * W[c_, jd], (a_, 1, D_), (c_, 1, D_), (jd, 1, kdim))  # tr(W^T Sigma W)


def _orthonormal(body: sp.Expr, limits: list[Limit]):
    """``sum_{b=1}^D W_bj W_bl = delta_jl`` (W^T W = I): a sum over b of exactly two factors W_b., with
    b nowhere else, becomes the substitution l -> j of the summed column index."""
    factors = sp.Mul.make_args(body)
    for lim in limits:
        b, lo, hi = lim
        if (lo, hi) != (1, D_):
            continue
        ws = [f for f in factors if isinstance(f, sp.Indexed) and f.base == W and f.indices[0] == b]
        rest = [f for f in factors if f not in ws]
        if len(ws) != 2 or any(b in f.free_symbols for f in rest):
            continue
        j1, j2 = ws[0].indices[1], ws[1].indices[1]
        others = [L for L in limits if L is not lim]
        for col, keep in ((j2, j1), (j1, j2)):
            summed = [L for L in others if L[0] == col and (L[1], L[2]) == (1, kdim)]
            if summed:
                return sp.Mul(*rest).xreplace({col: keep}), [L for L in others if L[0] != col]
    return None


def _expectation(body: sp.Expr, limits: list[Limit]):
    """``E[x_a x_c] = Sigma_ac`` inside a sum (expectation is linear; the data are centred)."""
    factors = sp.Mul.make_args(body)
    idx, rest = [], []
    for f in factors:
        base, e = f.as_base_exp()
        if isinstance(base, sp.Indexed) and base.base == xv:
            idx += [base.indices[0]] * int(e)
        else:
            rest.append(f)
    if len(idx) != 2:
        return None
    return sp.Mul(*rest) * Sig[idx[0], idx[1]], limits


_PCA_RULES = (_orthonormal, _expectation)


def _pca_residuals(c: dict) -> list[sp.Expr]:
    wtx = sp.Sum(W[a_, jd] * xv[a_], (a_, 1, D_))  # (W^T x)_j
    recon = sp.Sum(W[b_, jd] * wtx, (jd, 1, kdim))  # (W W^T x)_b
    error = sp.Sum((xv[b_] - recon) ** 2, (b_, 1, D_))  # ||x - W W^T x||^2, expanded by the rules
    return [error - c["error"].xreplace({tr_sym: _TRACE, proj_sym: _CAPTURED})]


_t = sym("t", real=True)
_S_template = sym("Sigma", real=True)


_sa, _sc = sym("s_a", positive=True), sym("s_c", positive=True)
_sb = sym("s_b", real=True)
_SIGMA2 = {"Sigma_1_1": _sa**2, "Sigma_1_2": _sa * _sb, "Sigma_2_1": _sa * _sb, "Sigma_2_2": _sb**2 + _sc**2}
"""A 2 x 2 covariance, positive semi-definite by construction (L L^T with L lower triangular)."""


def _pca_instance(e: sp.Expr) -> sp.Expr:
    """D = 2, k = 1, W = ((1 - t^2), 2t)/(1 + t^2) (a unit vector), E[x_a x_c] = Sigma_ac."""
    out = to_instance(e, {D_: 2, kdim: 1}, {W: sym("W", real=True), xv: _x_real, Sig: _S_template})
    col = {"W_1_1": (1 - _t**2) / (1 + _t**2), "W_2_1": 2 * _t / (1 + _t**2)}
    out = sp.expand(out.xreplace({s_: col[s_.name] for s_ in out.free_symbols if s_.name in col}))
    xs = sorted((s_ for s_ in out.free_symbols if s_.name.startswith("x_")), key=str)
    total = sp.Integer(0)
    for mono, coef in sp.Poly(out, *xs).terms() if xs else [((), out)]:
        ids = sorted(str(x_.name).split("_")[1] for x_, k_ in zip(xs, mono) for _ in range(k_))
        total += coef * (sp.Symbol("Sigma_" + "_".join(ids)) if ids else 1)  # E[x_a x_c] = Sigma_ac
    return total.xreplace({s_: _SIGMA2[s_.name] for s_ in total.free_symbols if s_.name in _SIGMA2})


pca_error = register(Identity(
    id="density.pca.reconstruction",
    title="Reconstruction error of an orthonormal linear autoencoder",
    chapter=CHAPTER,
    claim={"error": tr_sym - proj_sym},
    check=ForEverySize(
        "||x - W W^T x||^2 = sum_b (x_b - sum_j W_bj sum_a W_aj x_a)^2 with symbolic D and k, expanded in "
        "the normal form of finite sums with two rules: sum_b W_bj W_bl = delta_jl (W^T W = I) and "
        "E[x_a x_c] = Sigma_ac; compared with sum_a Sigma_aa - sum_{a,c,j} W_aj Sigma_ac W_cj; cancel. "
        "Mutants refuted on D = 2, k = 1 with a rational unit vector",
        _pca_residuals,
        rules=_PCA_RULES,
        instances=(("D = 2, k = 1", _pca_instance),),
    ),
    template=(r"\E\,\big\|x - W W^\top x\big\|^2 = $error, \qquad "
              r"T = \operatorname{tr} \Sigma, \quad V = \operatorname{tr}(W^\top \Sigma W)"),
    assumptions=("any D and k <= D; W in R^{D x k} with W^T W = I; Sigma = E[x x^T] (centred data)",),
    mutants=(
        Mutant("plus_projection", {"error": tr_sym + proj_sym},
               "The captured variance added instead of subtracted."),
        Mutant("only_captured", {"error": proj_sym},
               "The captured variance taken for the error."),
        Mutant("projection_counted_twice", {"error": tr_sym - 2 * proj_sym},
               r"$\operatorname{tr}\Sigma - 2\operatorname{tr}(W^\top\Sigma W)$: the cross term without the "
               r"$+\|W^\top x\|^2$ that orthonormality gives back."),
    ),
    references=("pearson1901lines", "baldi1989neural"),
    code=("gencode.density.pca",),
    scope="general",
))

lam_i, w_i = sp.IndexedBase("lambda"), sp.IndexedBase("w")
lam1 = sym("lambda_1", positive=True)


def _unit_norm(body: sp.Expr, limits: list[Limit]):
    """``sum_{j=1}^D w_j^2 = 1``."""
    if len(limits) == 1 and (limits[0][1], limits[0][2]) == (1, D_) and body == w_i[limits[0][0]] ** 2:
        return sp.Integer(1), []
    return None


def _from_one(body: sp.Expr, limits: list[Limit]):
    """``sum_{j=2}^D f(j) = sum_{j=1}^D f(j) - f(1)``, with lambda[1] written lambda_1."""
    if len(limits) == 1 and limits[0][1] == 2:
        j0, _, hi = limits[0]
        # returned as a two-term body over 1..D and the j = 1 term (no index left in it)
        return body - sp.KroneckerDelta(j0, 1) * body, [(j0, sp.Integer(1), hi)]
    return None


def _delta_one(body: sp.Expr, limits: list[Limit]):
    """``sum_j delta_{j1} f(j) = f(1)``."""
    factors = sp.Mul.make_args(body)
    for f in factors:
        if isinstance(f, sp.KroneckerDelta):
            j0 = [s_ for s_ in f.args if isinstance(s_, sp.Symbol)]
            if j0 and any(L[0] == j0[0] for L in limits):
                rest = sp.Mul(*[g for g in factors if g is not f]).xreplace({j0[0]: 1})
                return rest.xreplace({lam_i[1]: lam1}), [L for L in limits if L[0] != j0[0]]
    return None


def _eigen_residuals(c: dict) -> list[sp.Expr]:
    rayleigh = sp.Sum(lam_i[jd] * w_i[jd] ** 2, (jd, 1, D_))  # w^T Lambda w in the eigenbasis
    return [(lam1 - rayleigh - c["gap"]).xreplace({lam_i[1]: lam1})]


def _eigen_instance(e: sp.Expr) -> sp.Expr:
    """D = 3 with w_1 = sqrt(1 - w_2^2 - w_3^2) (unit norm), lambda_1 > lambda_2 > lambda_3 > 0."""
    out = to_instance(e, {D_: 3}, {lam_i: sym("lambda", positive=True), w_i: sym("w", (-0.5, 0.5), real=True)})
    names = {s_.name: s_ for s_ in out.free_symbols}
    low, e2, e1 = (sym(n_, positive=True) for n_ in ("c_3", "e_2", "e_1"))  # lambda_1 > lambda_2 > lambda_3 > 0
    order = {"lambda_3": low, "lambda_2": low + e2, "lambda_1": low + e2 + e1}
    out = out.xreplace({s_: order[n_] for n_, s_ in names.items() if n_ in order})
    w2, w3 = names.get("w_2", sym("w_2", real=True)), names.get("w_3", sym("w_3", real=True))
    subs = {s_: sp.sqrt(1 - w2**2 - w3**2) for n_, s_ in names.items() if n_ == "w_1"}
    return out.xreplace(subs)


top_eigen = register(Identity(
    id="density.pca.top_eigenvector",
    title="The best direction is the top eigenvector: a gap that is a sum of squares",
    chapter=CHAPTER,
    claim={"gap": sp.Sum((lam1 - lam_i[jd]) * w_i[jd] ** 2, (jd, 2, D_))},
    check=ForEverySize(
        "lambda_1 - sum_{j=1}^D lambda_j w_j^2 minus the claim, for every D: the sum from 2 written as the "
        "sum from 1 minus its j = 1 term, normal form of finite sums with sum_j w_j^2 = 1; cancel. "
        "Mutants refuted on D = 3",
        _eigen_residuals,
        rules=(_from_one, _delta_one, _unit_norm),
        instances=(("D = 3", _eigen_instance),),
    ),
    template=(r"\lambda_1 - w^\top \Lambda w = $gap \;\ge\; 0, \qquad "
              r"\Lambda = \operatorname{diag}(\lambda_1, \dots, \lambda_D),\ \lambda_1 \ge \dots \ge \lambda_D,\ \|w\| = 1"),
    assumptions=("Sigma = U Lambda U^T; in the eigenbasis w^T Sigma w = sum_j lambda_j w_j^2; any D",
                 "each term is (lambda_1 - lambda_j) >= 0 times a square, so the gap is >= 0"),
    mutants=(
        Mutant("smallest_eigenvalue", {"gap": sp.Sum((lam_i[D_] - lam_i[jd]) * w_i[jd] ** 2, (jd, 2, D_))},
               "The gap measured from the smallest eigenvalue."),
        Mutant("not_squared", {"gap": sp.Sum((lam1 - lam_i[jd]) * w_i[jd], (jd, 2, D_))},
               r"$w_j$ for $w_j^2$."),
    ),
    references=("pearson1901lines", "bishop2006pattern"),
    code=("gencode.density.pca",),
    scope="general",
))

# Ky Fan: the best k-dimensional subspace captures at most the top k eigenvalues.
c_j = sp.IndexedBase("c")  # c_j = ||W^T e_j||^2 in the eigenbasis: in [0, 1], summing to k


def _split_at_k(expr: sp.Expr) -> sp.Expr:
    """``sum_{j=k+1}^D f(j) = sum_{j=1}^D f(j) - sum_{j=1}^k f(j)``."""
    def rule(s_: sp.Sum) -> sp.Expr:
        (v_, lo, hi), = s_.limits
        if lo == kdim + 1:
            return sp.Sum(s_.function, (v_, 1, hi)) - sp.Sum(s_.function, (v_, 1, kdim))
        return s_

    return sp.sympify(expr).replace(lambda e: isinstance(e, sp.Sum) and len(e.limits) == 1, rule)


def _weights_sum_to_k(body: sp.Expr, limits: list[Limit]):
    """``sum_{j=1}^D c_j = tr(W^T W) = k``."""
    if len(limits) == 1 and (limits[0][1], limits[0][2]) == (1, D_) and body == c_j[limits[0][0]]:
        return kdim, []
    return None


def _ky_fan_residuals(c: dict) -> list[sp.Expr]:
    captured = sp.Sum(lam_i[jd] * c_j[jd], (jd, 1, D_))  # tr(W^T Lambda W) = sum_j lambda_j ||W^T e_j||^2
    return [_split_at_k(sp.Sum(lam_i[jd], (jd, 1, kdim)) - captured - c["gap"])]


def _ky_fan_instance(e: sp.Expr) -> sp.Expr:
    """D = 3, k = 2: lambda_1 > lambda_2 > lambda_3 > 0; c_1, c_2 in (1/2, 1), c_3 = 2 - c_1 - c_2."""
    out = to_instance(e, {D_: 3, kdim: 2}, {lam_i: sym("lambda", positive=True), c_j: sym("c", (0.5, 1), positive=True)})
    # the plain symbols by name, primes dropped (to_instance primes a name another module gave another domain)
    names = {s_.name.rstrip("'"): s_ for s_ in out.free_symbols}
    low, e2, e1 = (sym(n_, positive=True) for n_ in ("c_low", "e_2", "e_1"))
    subs = {"lambda_3": low, "lambda_2": low + e2, "lambda_1": low + e2 + e1}
    subs["c_3"] = 2 - names["c_1"] - names["c_2"]
    return out.xreplace({s_: subs[n_] for n_, s_ in names.items() if n_ in subs})


_kf_top = sp.Sum((lam_i[jd] - lam_i[kdim]) * (1 - c_j[jd]), (jd, 1, kdim))
_kf_rest = sp.Sum((lam_i[kdim] - lam_i[jd]) * c_j[jd], (jd, kdim + 1, D_))

ky_fan = register(Identity(
    id="density.pca.ky_fan",
    title="Ky Fan: k orthonormal directions capture at most the top k eigenvalues",
    chapter=CHAPTER,
    claim={"gap": _kf_top + _kf_rest},
    check=ForEverySize(
        "sum_{j<=k} lambda_j - sum_{j<=D} lambda_j c_j minus the claim, for every D and k: the sum from k + 1 "
        "written as the sum from 1 minus the sum to k, normal form of finite sums with sum_j c_j = k; cancel. "
        "Mutants refuted on D = 3, k = 2",
        _ky_fan_residuals,
        rules=(_weights_sum_to_k,),
        instances=(("D = 3, k = 2", _ky_fan_instance),),
    ),
    template=(r"\sum_{j=1}^{k} \lambda_j - \operatorname{tr}(W^\top \Lambda W) = $gap \;\ge\; 0, \qquad "
              r"c_j = \|W^\top e_j\|^2 \in [0, 1],\ \sum_{j=1}^{D} c_j = k"),
    assumptions=("Sigma = U Lambda U^T with lambda_1 >= ... >= lambda_D, W written in the eigenbasis; any D and k <= D",
                 "W^T W = I, so c_j = (W W^T)_jj lies in [0, 1] (W W^T is an orthogonal projection) and "
                 "sum_j c_j = tr(W^T W) = k",
                 "each term is a product of two non-negative factors, so the gap is >= 0"),
    mutants=(
        Mutant("rest_sign", {"gap": _kf_top - _kf_rest},
               r"The second sum with the opposite sign, $\sum_{j > k} (\lambda_j - \lambda_k) c_j$."),
        Mutant("top_without_weights", {"gap": sp.Sum(lam_i[jd] - lam_i[kdim], (jd, 1, kdim)) + _kf_rest},
               r"The first sum without its factors $1 - c_j$."),
    ),
    references=("bishop2006pattern",),
    code=("gencode.density.pca",),
    display={"gap": sp.Add(
        sp.Sum(sp.Mul(sp.Add(lam_i[jd], -lam_i[kdim], evaluate=False), sp.Add(1, -c_j[jd], evaluate=False),
                      evaluate=False), (jd, 1, kdim)),
        sp.Sum(sp.Mul(sp.Add(lam_i[kdim], -lam_i[jd], evaluate=False), c_j[jd], evaluate=False), (jd, sp.Add(kdim, 1, evaluate=False), D_)),
        evaluate=False)},
    scope="general",
))

xd, gd = sp.IndexedBase("x"), sp.IndexedBase("g")
s2 = sym("s^2", positive=True)


def _decoder_residuals(c: dict) -> list[sp.Expr]:
    # N(x; g, s^2 I) is the product of its D coordinates' densities: the log is a sum over j
    coords = sp.Sum(GaussianFactor(xd[jd], gd[jd], s2).log_density(), (jd, 1, D_))
    return [split_logs(coords - c["quadratic"] - c["const"])]


decoder = register(Identity(
    id="density.autoencoder.gaussian_decoder",
    title="A Gaussian decoder's log-likelihood is the squared error plus a constant",
    chapter=CHAPTER,
    claim={
        "quadratic": -sp.Sum((xd[jd] - gd[jd]) ** 2, (jd, 1, D_)) / (2 * s2),
        "const": -D_ * sp.log(2 * sp.pi * s2) / 2,
    },
    check=ForEverySize(
        "sum over j = 1..D of log N(x_j; g_j, s^2) for symbolic D; logarithms split; normal form of finite "
        "sums (the constant summed D times); cancel. Mutants refuted on D = 2",
        _decoder_residuals,
        instances=(("D = 2", lambda e: to_instance(e, {D_: 2}, {xd: _x_real, gd: sym("g", real=True)})),),
    ),
    template=r"\log \Normal\big(x; g(z), s^2 \I\big) = $quadratic $const",
    assumptions=("x, g = g(z) in R^D, s > 0; any D",),
    mutants=(
        Mutant("log_of_std", {"const": -D_ * sp.log(2 * sp.pi * sp.sqrt(s2)) / 2},
               r"$\log(2\pi s)$ for $\log(2\pi s^2)$ in the constant."),
        Mutant("without_half", {"quadratic": -sp.Sum((xd[jd] - gd[jd]) ** 2, (jd, 1, D_)) / s2},
               r"The squared error over $s^2$ instead of $2 s^2$."),
    ),
    references=("kingma2014auto",),
    code=("gencode.density.Autoencoder",),
    display={"quadratic": sp.Mul(-1, sp.Pow(2 * s2, -1, evaluate=False),
                                 sp.Sum(sp.Pow(sp.Add(xd[jd], -gd[jd], evaluate=False), 2, evaluate=False), (jd, 1, D_)),
                                 evaluate=False)},
    scope="general",
))
