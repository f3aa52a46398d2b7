r"""Divergences between distributions and maximum likelihood (chapter 2).

Statements about *any* density are written with undefined SymPy functions ``p(x)``, ``q(x)``
under integrals (that is what the book displays).  Every such statement here is an equality of
integrals over the same variable and domain, so it follows from the equality of the integrands at
each point; the checks compare the integrands with the values ``p(x)``, ``q(x)`` replaced by
positive symbols :math:`P, Q` (:func:`pointwise`).  Where the normalisation
:math:`\int p = \int q = 1` is used, it is used by writing a constant :math:`c` as
:math:`\int c\, (p + q)/2`.  Sums over an index are treated the same way (term by term).

Logarithms are normalised by :func:`split_logs`: factor the argument, expand the logarithm,
and split logarithms of rationals into logarithms of primes.  Logarithms of distinct primes are
linearly independent over the rationals (unique factorisation), so after this step ``cancel``
is a complete zero test for the exact values below (the discrete example of
:data:`discrete_example`).

Inequalities are checked as identities that exhibit the gap in a form that is non-negative by
construction: :math:`u - 1 - \log u = \int_1^u (t - 1)/t \,\mathrm{d}t \ge 0` (Gibbs),
:math:`\log 2 - \mathrm{JS} = \tfrac12\int p \log(1 + q/p) + q \log(1 + p/q) \ge 0`,
:math:`1 - \mathrm{TV} = \int \min(p, q) \ge 0`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sympy as sp

from .core import (Check, Claim, GaussianFactor, Identity, Mutant, equal, gaussian_expectation, register,
                   split_logs, sym)

CHAPTER = "divergences"

# ---------------------------------------------------------------------------------------------
# Normalisation helpers (also used by derivations.density)


def pointwise(expr: sp.Expr, values: Mapping[sp.Expr, sp.Expr]) -> sp.Expr:
    """Replace each integral (or sum) by its integrand, then function values by symbols.

    Valid for linear combinations of integrals over one variable and one domain: equal
    integrands give equal integrals.
    """
    body = sp.sympify(expr).replace(lambda e: isinstance(e, (sp.Integral, sp.Sum)), lambda e: e.function)
    return body.xreplace(dict(values))


def concrete(expr: sp.Expr, n: sp.Symbol, value: int, indexed: Mapping[sp.IndexedBase, str]) -> sp.Expr:
    """Substitute ``n = value``, expand the sums, and turn ``x[i]`` into plain symbols ``x_i``.

    Plain symbols carry the assumptions of the symbol ``<name>_1`` created with :func:`sym`.
    """
    out = sp.sympify(expr).subs(n, value).doit()
    subs = {}
    for e in out.atoms(sp.Indexed):
        name = indexed[e.base]
        idx = "_".join(str(i) for i in e.indices)
        subs[e] = sp.Symbol(f"{name}_{idx}", **_ASSUMPTIONS.get(name, {"real": True}))
    return out.xreplace(subs)


_ASSUMPTIONS: dict[str, dict[str, bool]] = {}
"""Assumptions of the plain symbols that :func:`concrete` creates, by base name."""


def residual_check(method: str, residuals: Callable[[Claim], list[sp.Expr]], **kwargs) -> Check:
    """A :class:`Check` whose residuals have their logarithms split first."""
    return Check(method, lambda claim: [split_logs(r) for r in residuals(claim)], **kwargs)


# ---------------------------------------------------------------------------------------------
# Symbols

x = sym("x", real=True)
u = sym("u", positive=True)
t = sym("t", positive=True)
P = sym("P", positive=True)  # the value p(x) at a point
Q = sym("Q", positive=True)  # the value q(x) at a point


def density_function(name: str) -> type[sp.Function]:
    """An undefined function that prints as ``name(x)`` in LaTeX (SymPy adds ``\\left( \\right)``)."""

    def _latex(self, printer) -> str:
        return f"{name}(" + ", ".join(printer._print(a) for a in self.args) + ")"

    return type(name, (sp.Function,), {"_latex": _latex})


p = density_function("p")
q = density_function("q")
m_ = density_function("m")
AT_POINT = {p(x): P, q(x): Q, m_(x): (P + Q) / 2}


def integral(f: sp.Expr) -> sp.Integral:
    """``int f dx`` over the real line, unevaluated."""
    return sp.Integral(f, (x, -sp.oo, sp.oo))


DENSITIES = ("p and q are probability densities on R (int p = int q = 1), positive where compared",)

# ---------------------------------------------------------------------------------------------
# 1. Gibbs' inequality: log u <= u - 1, and KL = sum_i p_i (u_i - 1 - log u_i) >= 0


def _phi(v: sp.Expr) -> sp.Expr:
    return v - 1 - sp.log(v)


log_inequality = register(Identity(
    id="divergences.log_inequality",
    title=r"$\log u \le u - 1$, with equality only at $u = 1$",
    chapter=CHAPTER,
    claim={"gap": _phi(u)},
    check=residual_check(
        "the gap vanishes at u = 1 and its derivative is (u - 1)/u, which has the sign of u - 1; cancel",
        lambda c: [c["gap"].subs(u, 1), sp.diff(c["gap"], u) - (u - 1) / u],
    ),
    template=r"$gap = \int_1^u \frac{t - 1}{t}\, \d t \;\ge\; 0",
    assumptions=("u > 0",),
    mutants=(
        Mutant("without_minus_one", {"gap": u - sp.log(u)},
               r"The $-1$ dropped: $u - \log u$ is not zero at $u = 1$."),
        Mutant("log_of_reciprocal", {"gap": u - 1 + sp.log(u)},
               r"The sign of the logarithm flipped: $u - 1 + \log u$ changes sign at $u = 1$."),
    ),
    references=("cover2006elements",),
    display={"gap": sp.Add(u, -1, -sp.log(u), evaluate=False)},
))

# KL(p || q) for distributions on three points, p_i = a_i / (a_1 + a_2 + a_3), q_i likewise.
_a = [sym(f"a_{i}", positive=True) for i in (1, 2, 3)]
_b = [sym(f"b_{i}", positive=True) for i in (1, 2, 3)]
_p3 = [ai / sum(_a) for ai in _a]
_q3 = [bi / sum(_b) for bi in _b]
_kl3 = sum(pi * sp.log(pi / qi) for pi, qi in zip(_p3, _q3))
pk, qk = sp.symbols("p_k q_k", positive=True)

gibbs_discrete = register(Identity(
    id="divergences.gibbs.discrete",
    title=r"Gibbs' inequality: $\mathrm{KL}(p \Vert q) \ge 0$, by $\log u \le u - 1$",
    chapter=CHAPTER,
    claim={"gap": pk * _phi(qk / pk)},
    check=residual_check(
        "three-point distributions p_i = a_i / sum(a), q_i = b_i / sum(b) with symbolic a, b > 0: "
        "KL minus the sum of the claimed gaps; logarithms split; cancel",
        lambda c: [_kl3 - sum(c["gap"].xreplace({pk: pi, qk: qi}) for pi, qi in zip(_p3, _q3))],
    ),
    template=r"\KL(p \,\Vert\, q) = \sum_k p_k \log\frac{p_k}{q_k} = \sum_k $gap \;\ge\; 0",
    assumptions=("p and q are distributions on finitely many points, p_k, q_k > 0 (checked on 3 points)",),
    mutants=(
        Mutant("gap_without_minus_one", {"gap": pk * (qk / pk - sp.log(qk / pk))},
               r"The $-1$ of $\log u \le u - 1$ dropped: the gaps then sum to $\KL + 1$."),
        Mutant("ratio_upside_down", {"gap": pk * _phi(pk / qk)},
               r"The ratio $p_k/q_k$ used where $u_k = q_k/p_k$ belongs."),
    ),
    references=("cover2006elements",),
    display={"gap": sp.Mul(pk, sp.Add(qk / pk, -1, -sp.log(qk / pk), evaluate=False), evaluate=False)},
))

# ---------------------------------------------------------------------------------------------
# 2. Entropy, cross-entropy and KL = H(p, q) - H(p)

entropy = register(Identity(
    id="divergences.kl.cross_entropy",
    title=r"$\mathrm{KL}(p \Vert q) = H(p, q) - H(p)$",
    chapter=CHAPTER,
    claim={
        "entropy": -integral(p(x) * sp.log(p(x))),
        "cross": -integral(p(x) * sp.log(q(x))),
        "kl": integral(p(x) * sp.log(p(x) / q(x))),
    },
    check=residual_check(
        "integrands compared at each point (p(x), q(x) as positive symbols); logarithms split; cancel",
        lambda c: [pointwise(c["kl"] - (c["cross"] - c["entropy"]), AT_POINT)],
    ),
    template=(r"\begin{aligned} H(p) &= $entropy, \qquad H(p, q) = $cross, \\ "
              r"\KL(p \,\Vert\, q) &= H(p, q) - H(p) = $kl \end{aligned}"),
    assumptions=DENSITIES,
    mutants=(
        Mutant("entropy_with_q", {"entropy": -integral(p(x) * sp.log(q(x)))},
               r"The entropy written as $-\int p \log q$, which is the cross-entropy; then "
               r"$H(p, q) - H(p)$ would be 0 for every $q$.",
               source="source notes 002 (the divergences slide defining H(p))"),
        Mutant("difference_reversed", {"kl": integral(p(x) * sp.log(q(x) / p(x)))},
               r"$H(p) - H(p, q)$, the negative of the divergence."),
    ),
    references=("cover2006elements", "kullback1951information"),
))

# ---------------------------------------------------------------------------------------------
# 3. Maximum likelihood = minimum forward KL to the empirical distribution

n_k = sp.IndexedBase("n")
theta_k = sp.IndexedBase("theta")
k = sp.Symbol("k", integer=True, positive=True)
K = sp.Symbol("K", integer=True, positive=True)
N = sym("N", positive=True)
nk_, thk_ = sp.symbols("n_k theta_k", positive=True)
_EMPIRICAL = {n_k[k]: nk_, theta_k[k]: thk_}


def _sum_k(f: sp.Expr) -> sp.Sum:
    return sp.Sum(f, (k, 1, K))


mle_kl = register(Identity(
    id="divergences.mle.empirical_kl",
    title="Maximum likelihood minimises the forward KL from the empirical distribution",
    chapter=CHAPTER,
    claim={
        "neg_entropy": _sum_k(n_k[k] / N * sp.log(n_k[k] / N)),
        "avg_loglik": _sum_k(n_k[k] / N * sp.log(theta_k[k])),
    },
    check=residual_check(
        "KL(p_N || p_theta) = sum_k (n_k/N) log((n_k/N)/theta_k), compared term by term in k; "
        "logarithms split; cancel",
        lambda c: [pointwise(_sum_k(n_k[k] / N * sp.log(n_k[k] / N / theta_k[k]))
                             - (c["neg_entropy"] - c["avg_loglik"]), _EMPIRICAL)],
    ),
    template=(r"\KL(\hat p_N \,\Vert\, p_\theta) = \underbrace{$neg_entropy}_{-H(\hat p_N)} "
              r"- \underbrace{$avg_loglik}_{\frac{1}{N}\sum_{i=1}^N \log p_\theta(x_i)}"),
    assumptions=("x_1, ..., x_N take values in {1, ..., K}; n_k = #{i : x_i = k} > 0, N = n_1 + ... + n_K",
                 "p_N(k) = n_k / N is the empirical distribution; p_theta(k) = theta_k > 0",
                 "sum_i log p_theta(x_i) = sum_k n_k log theta_k (group the sample by value)"),
    mutants=(
        Mutant("without_one_over_n", {"avg_loglik": _sum_k(n_k[k] * sp.log(theta_k[k]))},
               r"The empirical expectation written $\sum_i \log p_\theta(x_i)$, without its $1/N$: "
               r"the maximiser is the same, but the equality with the KL fails.",
               source="source notes 002 (the MLE and KL slide)"),
        Mutant("entropy_sign", {"neg_entropy": -_sum_k(n_k[k] / N * sp.log(n_k[k] / N))},
               r"$+H(\hat p_N)$ instead of $-H(\hat p_N)$."),
    ),
    references=("murphy2022probabilistic",),
))

# ---------------------------------------------------------------------------------------------
# 4. KL between Gaussians

m1, m2 = sym("mu_1", real=True), sym("mu_2", real=True)
s1, s2 = sym("sigma_1", positive=True), sym("sigma_2", positive=True)


def _gaussian_kl_derived(mean1: sp.Expr, sd1: sp.Expr, mean2: sp.Expr, sd2: sp.Expr) -> sp.Expr:
    """E_{N(mean1, sd1^2)}[log N(x; mean1, sd1^2) - log N(x; mean2, sd2^2)] by Gaussian moments."""
    log_ratio = (GaussianFactor(x, mean1, sd1**2).log_density()
                 - GaussianFactor(x, mean2, sd2**2).log_density())
    return gaussian_expectation(log_ratio, x, mean1, sd1**2)


KL_GAUSS = _gaussian_kl_derived(m1, s1, m2, s2)
_kl_claim = sp.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - sp.Rational(1, 2)

kl_gaussian = register(Identity(
    id="divergences.kl.gaussian",
    title="KL divergence between two univariate Gaussians",
    chapter=CHAPTER,
    claim={"kl": _kl_claim},
    check=residual_check(
        "E_p[log p - log q] with the Gaussian moment recursion; logarithms split; cancel",
        lambda c: [KL_GAUSS - c["kl"]],
    ),
    template=(r"\KL\big(\Normal(\mu_1, \sigma_1^2) \,\Vert\, \Normal(\mu_2, \sigma_2^2)\big) = $kl"),
    assumptions=("sigma_1, sigma_2 > 0",),
    mutants=(
        Mutant("log_ratio_inverted",
               {"kl": sp.log(s1 / s2) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - sp.Rational(1, 2)},
               r"$\log(\sigma_1/\sigma_2)$ for $\log(\sigma_2/\sigma_1)$."),
        Mutant("without_minus_half",
               {"kl": sp.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2)},
               r"The constant $-\tfrac12$ dropped: the divergence of a distribution from itself would "
               r"be $\tfrac12$."),
    ),
    references=("kullback1951information",),
    code=("gencode.divergences.gaussian_kl",),
    display={"kl": sp.Add(sp.log(s2 / s1), (s1**2 + (m1 - m2) ** 2) / (2 * s2**2), -sp.Rational(1, 2),
                          evaluate=False)},
))

r_ = sym("r", positive=True)  # sigma_1^2 / sigma_2^2
_R = {r_: s1**2 / s2**2}

gibbs_gaussian = register(Identity(
    id="divergences.gibbs.gaussian",
    title=r"The Gaussian KL is a square plus a Gibbs gap: zero only for equal Gaussians",
    chapter=CHAPTER,
    claim={"kl": (m1 - m2) ** 2 / (2 * s2**2) + _phi(r_) / 2},
    check=residual_check("the same derivation as the closed form, with r = sigma_1^2/sigma_2^2; "
                         "logarithms split; cancel",
                         lambda c: [KL_GAUSS - c["kl"].xreplace(_R)]),
    template=(r"\KL\big(\Normal(\mu_1, \sigma_1^2) \,\Vert\, \Normal(\mu_2, \sigma_2^2)\big) = $kl, "
              r"\qquad r = \frac{\sigma_1^2}{\sigma_2^2}"),
    assumptions=("sigma_1, sigma_2 > 0",),
    mutants=(
        Mutant("gap_of_std_ratio", {"kl": (m1 - m2) ** 2 / (2 * s2**2) + _phi(s1 / s2) / 2},
               r"The Gibbs gap of the ratio of standard deviations instead of variances."),
    ),
    references=("cover2006elements",),
    display={"kl": sp.Add((m1 - m2) ** 2 / (2 * s2**2),
                          sp.Mul(sp.Rational(1, 2), sp.Add(r_, -1, -sp.log(r_), evaluate=False), evaluate=False),
                          evaluate=False)},
))

# Diagonal Gaussian against N(0, I): a sum over coordinates (KL is additive over independent ones).
j = sp.Symbol("j", integer=True, positive=True)
D = sym("D", positive=True)
mu_j, sd_j = sp.IndexedBase("mu"), sp.IndexedBase("sigma")
mj_, sj_ = sym("mu_j", real=True), sym("sigma_j", positive=True)

kl_diag = register(Identity(
    id="divergences.kl.diag_standard",
    title=r"KL between a diagonal Gaussian and $\mathcal{N}(0, \mathbf{I})$",
    chapter=CHAPTER,
    claim={"kl": sp.Sum(mu_j[j] ** 2 + sd_j[j] ** 2 - 1 - sp.log(sd_j[j] ** 2), (j, 1, D)) / 2},
    check=residual_check(
        "KL of a product of independent coordinates is the sum of the coordinates' KLs; each term is "
        "the univariate Gaussian KL with mu_2 = 0, sigma_2 = 1; compared term by term; cancel",
        lambda c: [pointwise(c["kl"], {mu_j[j]: mj_, sd_j[j]: sj_}) - _gaussian_kl_derived(mj_, sj_, 0, 1)],
    ),
    template=(r"\KL\big(\Normal(\mu, \operatorname{diag}\sigma^2) \,\Vert\, \Normal(0, \I)\big) = $kl"),
    assumptions=("sigma_j > 0 for j = 1, ..., D",),
    mutants=(
        Mutant("minus_the_kl",
               {"kl": sp.Sum(1 + sp.log(sd_j[j] ** 2) - mu_j[j] ** 2 - sd_j[j] ** 2, (j, 1, D)) / 2},
               r"$\tfrac12\sum_j (1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2)$, written as the KL in a "
               r"code comment: it is minus the KL (the code below the comment negates it correctly).",
               source="source notes 000 (the VAE loss, code comment)"),
        Mutant("log_of_std",
               {"kl": sp.Sum(mu_j[j] ** 2 + sd_j[j] ** 2 - 1 - sp.log(sd_j[j]), (j, 1, D)) / 2},
               r"$\log\sigma_j$ where $\log\sigma_j^2$ belongs."),
    ),
    references=("kingma2014auto",),
    code=("gencode.divergences.kl_diag_standard_normal",),
))
# ---------------------------------------------------------------------------------------------
# 5. The worked discrete example

P_EX = (sp.Rational(9, 25), sp.Rational(12, 25), sp.Rational(4, 25))
Q_EX = (sp.Rational(1, 3),) * 3
_ln = sp.log


def _kl_exact(a: tuple, b: tuple) -> sp.Expr:
    return sum(ai * sp.log(ai / bi) for ai, bi in zip(a, b))


discrete_example = register(Identity(
    id="divergences.kl.discrete_example",
    title=r"KL between $(9, 12, 4)/25$ and the uniform distribution on three points, both ways",
    chapter=CHAPTER,
    claim={
        "forward": (32 * _ln(2) + 55 * _ln(3) - 50 * _ln(5)) / 25,
        "reverse": (-4 * _ln(2) - 6 * _ln(3) + 6 * _ln(5)) / 3,
    },
    check=residual_check(
        "exact sums; logarithms of rationals split into log 2, log 3, log 5 (independent over Q); cancel",
        lambda c: [_kl_exact(P_EX, Q_EX) - c["forward"], _kl_exact(Q_EX, P_EX) - c["reverse"]],
    ),
    template=(r"\KL(P \,\Vert\, Q) = $forward \approx 0.0853, \qquad "
              r"\KL(Q \,\Vert\, P) = $reverse \approx 0.0975"),
    assumptions=("P = (9, 12, 4)/25 and Q = (1, 1, 1)/3 on three points; natural logarithms",),
    mutants=(
        Mutant("symmetric", {"reverse": (32 * _ln(2) + 55 * _ln(3) - 50 * _ln(5)) / 25},
               r"$\KL(Q \Vert P) = \KL(P \Vert Q)$: the divergence is not symmetric."),
        Mutant("coefficient_of_log5", {"forward": (32 * _ln(2) + 55 * _ln(3) - 48 * _ln(5)) / 25},
               r"$48 \ln 5$ for $50 \ln 5$."),
    ),
    references=("cover2006elements",),
    code=("gencode.divergences.kl_discrete",),
    display={
        "forward": sp.Mul(sp.Add(32 * _ln(2), 55 * _ln(3), -50 * _ln(5), evaluate=False),
                          sp.Pow(25, -1, evaluate=False), evaluate=False),
        "reverse": sp.Mul(sp.Add(-4 * _ln(2), -6 * _ln(3), 6 * _ln(5), evaluate=False),
                          sp.Pow(3, -1, evaluate=False), evaluate=False),
    },
))

# ---------------------------------------------------------------------------------------------
# 6. Jensen-Shannon and total variation

_m = m_(x)
_js = integral((p(x) * sp.log(p(x) / _m) + q(x) * sp.log(q(x) / _m)) / 2)
_SWAP = {P: Q, Q: P}


def _js_residuals(c: Claim) -> list[sp.Expr]:
    js = pointwise(c["js"], AT_POINT)
    mid = (P + Q) / 2
    lower = (P * _phi(mid / P) + Q * _phi(mid / Q)) / 2  # >= 0: Gibbs gaps
    upper = (P * sp.log(1 + Q / P) + Q * sp.log(1 + P / Q)) / 2  # >= 0: log(1 + v) >= 0
    return [
        js - js.xreplace(_SWAP),  # symmetric
        js - lower,  # JS >= 0
        c["bound"] * (P + Q) / 2 - js - upper,  # bound - JS >= 0, using int (p + q)/2 = 1
    ]


js_bounds = register(Identity(
    id="divergences.js.bounds",
    title=r"Jensen-Shannon divergence: symmetric, $0 \le \mathrm{JS} \le \log 2$",
    chapter=CHAPTER,
    claim={"js": _js, "bound": sp.log(2)},
    check=residual_check(
        "integrands at a point: JS(p,q) - JS(q,p), JS minus a sum of Gibbs gaps, and "
        "bound - JS minus (p log(1 + q/p) + q log(1 + p/q))/2; logarithms split; cancel",
        _js_residuals,
    ),
    template=(r"0 \;\le\; \JS(p \,\Vert\, q) = \JS(q \,\Vert\, p) = $js \;\le\; $bound, "
              r"\qquad m = \tfrac12 (p + q)"),
    assumptions=DENSITIES + ("m = (p + q)/2; natural logarithms (nats)",),
    mutants=(
        Mutant("kl_p_m_twice", {"js": integral(p(x) * sp.log(p(x) / _m))},
               r"$\tfrac12\KL(p \Vert m) + \tfrac12\KL(p \Vert m)$: the second term should be "
               r"$\KL(q \Vert m)$.",
               source="Lil'Log, \"From GAN to WGAN\" (an earlier revision of the JS expansion)"),
        Mutant("bound_one_in_nats", {"bound": sp.Integer(1)},
               r"\"JS is bounded by 1\": true in bits ($\log_2 2 = 1$); in nats the least upper bound, "
               r"attained by disjoint supports, is $\log 2$.",
               source="Lil'Log, \"From GAN to WGAN\" (the JS bounds, stated in bits)"),
    ),
    references=("lin1991divergence", "weng2017gan"),
    code=("gencode.divergences.js_quadrature", "gencode.divergences.js_monte_carlo"),
))

_d = sym("d", positive=True)  # |p(x) - q(x)| in each of the two orderings


def _tv_residuals(c: Claim) -> list[sp.Expr]:
    out = []
    for big, small in ((P, Q), (Q, P)):  # p >= q and q >= p at the point
        at = {big: small + _d}
        tv, overlap = (pointwise(c[key], AT_POINT).xreplace(at) for key in ("tv", "overlap"))
        out.append(((P + Q) / 2).xreplace(at) - tv - overlap)
    return out


tv_bounds = register(Identity(
    id="divergences.tv.bounds",
    title=r"Total variation: $1 - \mathrm{TV} = \int \min(p, q) \in [0, 1]$",
    chapter=CHAPTER,
    claim={"tv": integral(sp.Abs(p(x) - q(x)) / 2), "overlap": integral(sp.Min(p(x), q(x)))},
    check=residual_check(
        "at a point, in both orderings (p = q + d and q = p + d, d > 0): (p + q)/2 - |p - q|/2 - min(p, q); "
        "cancel",
        _tv_residuals,
    ),
    template=r"\mathrm{TV}(p, q) = $tv = 1 - $overlap \in [0, 1]",
    assumptions=DENSITIES,
    mutants=(
        Mutant("without_half", {"tv": integral(sp.Abs(p(x) - q(x)))},
               r"$\int |p - q|$ without the $\tfrac12$: that is $2\,\mathrm{TV} \in [0, 2]$."),
    ),
    references=("cover2006elements",),
    code=("gencode.divergences.tv_discrete",),
))

# ---------------------------------------------------------------------------------------------
# 7. Wasserstein-1

n = sp.Symbol("n", integer=True, positive=True)
i_ = sp.Symbol("i", integer=True, positive=True)
jj = sp.Symbol("l", integer=True, positive=True)
f_i, p_i, q_i = sp.IndexedBase("f"), sp.IndexedBase("p"), sp.IndexedBase("q")
_INDEXED = {f_i: "f", p_i: "p", q_i: "q"}
_cdf_gap = sp.Sum(p_i[jj] - q_i[jj], (jj, 1, i_))  # F_P(z_i) - F_Q(z_i)


def _abel_residuals(c: Claim) -> list[sp.Expr]:
    out = []
    for size in (2, 3, 4, 5):
        lhs = concrete(sp.Sum(f_i[i_] * (p_i[i_] - q_i[i_]), (i_, 1, n)), n, size, _INDEXED)
        rhs = concrete(c["rhs"], n, size, _INDEXED)
        ps = [sp.Symbol(f"p_{i}", real=True) for i in range(1, size + 1)]
        qs = [sp.Symbol(f"q_{i}", real=True) for i in range(1, size + 1)]
        last = {qs[-1]: sum(ps) - sum(qs[:-1])}  # equal total mass
        out.append((lhs - rhs).xreplace(last))
    return out


w1_abel = register(Identity(
    id="divergences.w1.summation_by_parts",
    title=r"$\mathbb{E}_P f - \mathbb{E}_Q f = -\int f'(F_P - F_Q)$ on a grid: the 1-D dual of $W_1$",
    chapter=CHAPTER,
    claim={"rhs": -sp.Sum((f_i[i_ + 1] - f_i[i_]) * _cdf_gap, (i_, 1, n - 1))},
    check=residual_check(
        "summation by parts for n = 2, 3, 4, 5 points with symbolic f_i, p_i, q_i and equal masses; "
        "expand; cancel",
        _abel_residuals,
    ),
    template=r"\sum_{i=1}^{n} f_i\,(p_i - q_i) = $rhs",
    assumptions=("P = sum_i p_i delta_{z_i}, Q = sum_i q_i delta_{z_i} on a grid z_1 < ... < z_n, "
                 "sum p_i = sum q_i; f_i = f(z_i)", "checked for n = 2, 3, 4, 5"),
    mutants=(
        Mutant("sign", {"rhs": sp.Sum((f_i[i_ + 1] - f_i[i_]) * _cdf_gap, (i_, 1, n - 1))},
               "The sign of the summation by parts flipped."),
        Mutant("cdf_one_step_late",
               {"rhs": -sp.Sum((f_i[i_ + 1] - f_i[i_]) * sp.Sum(p_i[jj] - q_i[jj], (jj, 1, i_ + 1)),
                               (i_, 1, n - 1))},
               r"The CDF difference taken at $z_{i+1}$ instead of $z_i$."),
    ),
    references=("villani2009optimal", "peyre2019computational"),
    code=("gencode.divergences.w1_cdf",),
))

ms1, ms2 = sym("m_1", real=True), sym("m_2", real=True)
s = sym("s", positive=True)
_delta = sym("delta", positive=True)


def _w1_gauss_residuals(c: Claim) -> list[sp.Expr]:
    out = []
    for case in ({ms1: ms2 + _delta}, {ms2: ms1 + _delta}):  # m_1 > m_2 and m_2 > m_1
        w1 = c["w1"].xreplace(case)
        a, b = ms1.xreplace(case), ms2.xreplace(case)
        # primal: the shift coupling y = x + (m_2 - m_1) costs |m_1 - m_2| for every x
        cost = sp.Abs(a - b)
        # dual: the 1-Lipschitz witness f(x) = sign(m_1 - m_2) x gives E_P f - E_Q f
        sign = 1 if (a - b).is_positive else -1
        dual = gaussian_expectation(sign * x, x, a, s**2) - gaussian_expectation(sign * x, x, b, s**2)
        out += [w1 - cost, w1 - dual]
    return out


w1_gaussian = register(Identity(
    id="divergences.w1.gaussian_shift",
    title=r"$W_1\big(\mathcal{N}(m_1, s^2), \mathcal{N}(m_2, s^2)\big) = |m_1 - m_2|$",
    chapter=CHAPTER,
    claim={"w1": sp.Abs(ms1 - ms2)},
    check=residual_check(
        "in each ordering of m_1, m_2: the shift coupling's cost (upper bound) and the witness "
        "f(x) = sign(m_1 - m_2) x (lower bound, Gaussian moments) both equal the claim; cancel",
        _w1_gauss_residuals,
    ),
    template=r"W_1\big(\Normal(m_1, s^2), \Normal(m_2, s^2)\big) = $w1",
    assumptions=("s > 0; m_1 != m_2 (both orderings checked; m_1 = m_2 is trivial)",
                 "weak duality: E_P f - E_Q f <= E_gamma |X - Y| for every coupling gamma and 1-Lipschitz f"),
    mutants=(
        Mutant("without_absolute_value", {"w1": ms1 - ms2},
               r"$m_1 - m_2$ without the absolute value: negative when $m_1 < m_2$."),
        Mutant("squared", {"w1": (ms1 - ms2) ** 2},
               r"$(m_1 - m_2)^2$, the squared $W_2$, for $W_1$."),
    ),
    references=("villani2009optimal", "peyre2019computational"),
    code=("gencode.divergences.wasserstein_1d", "gencode.divergences.w1_exact"),
))

# The disjoint-supports example: P = law of (0, Z), Q_theta = law of (theta, Z), Z ~ U[0, 1].
theta = sym("theta", real=True)
_tpos = sym("tau", positive=True)


def _segments_residuals(c: Claim) -> list[sp.Expr]:
    z = sp.Symbol("z")
    # Where p > 0, q = 0 (and vice versa); the densities are 1 on their segments and m = 1/2 there.
    js = (sp.integrate(1 * sp.log(1 / sp.Rational(1, 2)), (z, 0, 1))
          + sp.integrate(1 * sp.log(1 / sp.Rational(1, 2)), (z, 0, 1))) / 2
    tv = (sp.integrate(sp.Integer(1), (z, 0, 1)) + sp.integrate(sp.Integer(1), (z, 0, 1))) / 2
    out = [c["js"] - js, c["tv"] - tv]
    for th in (_tpos, -_tpos):  # theta > 0 and theta < 0
        w1 = c["w1"].xreplace({theta: th})
        cost = sp.sqrt((0 - th) ** 2 + (z - z) ** 2)  # coupling (0, z) -> (theta, z)
        sign = 1 if th.is_positive else -1
        dual = (-sign * 0) - (-sign * th)  # f(x, y) = -sign(theta) x: E_P f - E_Q f
        out += [w1 - cost, w1 - dual]
    return out


segments = register(Identity(
    id="divergences.disjoint_segments",
    title="Two parallel segments: JS and TV saturate, W1 sees the distance",
    chapter=CHAPTER,
    claim={"js": sp.log(2), "tv": sp.Integer(1), "w1": sp.Abs(theta)},
    check=residual_check(
        "JS and TV by integrating over the two disjoint supports; W1 by the horizontal coupling "
        "(upper bound) and the witness f(x, y) = -sign(theta) x (lower bound), theta > 0 and < 0; cancel",
        _segments_residuals,
    ),
    template=(r"\JS(P, Q_\theta) = $js, \qquad \mathrm{TV}(P, Q_\theta) = $tv, \qquad "
              r"W_1(P, Q_\theta) = $w1, \qquad \KL(P \,\Vert\, Q_\theta) = \infty \quad (\theta \ne 0)"),
    assumptions=("P is the law of (0, Z), Q_theta that of (theta, Z), Z ~ U[0, 1]; theta != 0",),
    mutants=(
        Mutant("tv_without_half", {"tv": sp.Integer(2)}, r"$\int |p - q|$ without the $\tfrac12$."),
        Mutant("w1_signed", {"w1": theta}, r"$\theta$ for $|\theta|$."),
        Mutant("js_zero", {"js": sp.Integer(0)},
               r"JS taken to be 0 because the densities never overlap (they are disjoint, not equal)."),
    ),
    references=("arjovsky2017towards",),
))

# ---------------------------------------------------------------------------------------------
# 8. Fisher divergence and forward-KL moment matching

fisher_gaussian = register(Identity(
    id="divergences.fisher.gaussian",
    title="Fisher divergence between two univariate Gaussians",
    chapter=CHAPTER,
    claim={"fisher": (m1 - m2) ** 2 / s2**4 + s1**2 * (1 / s1**2 - 1 / s2**2) ** 2},
    check=residual_check(
        "E_p[(d/dx log p - d/dx log q)^2] with the scores of the Gaussians (differentiated) and the "
        "Gaussian moment recursion; cancel",
        lambda c: [gaussian_expectation(
            (sp.diff(GaussianFactor(x, m1, s1**2).log_density(), x)
             - sp.diff(GaussianFactor(x, m2, s2**2).log_density(), x)) ** 2, x, m1, s1**2) - c["fisher"]],
    ),
    template=(r"\E_{p}\big[(\partial_x \log p - \partial_x \log q)^2\big] = $fisher, \quad "
              r"p = \Normal(\mu_1, \sigma_1^2),\ q = \Normal(\mu_2, \sigma_2^2)"),
    assumptions=("sigma_1, sigma_2 > 0",),
    mutants=(
        Mutant("mean_term_over_variance", {"fisher": (m1 - m2) ** 2 / s2**2 + s1**2 * (1 / s1**2 - 1 / s2**2) ** 2},
               r"$(\mu_1 - \mu_2)^2/\sigma_2^2$ for $(\mu_1 - \mu_2)^2/\sigma_2^4$."),
        Mutant("without_spread_term", {"fisher": (m1 - m2) ** 2 / s2**4},
               "Only the mean term: the divergence would vanish between Gaussians of different widths."),
    ),
    references=("hyvarinen2005estimation",),
    code=("gencode.divergences.fisher_divergence",),
    display={"fisher": sp.Add((m1 - m2) ** 2 / s2**4, s1**2 * (1 / s1**2 - 1 / s2**2) ** 2, evaluate=False)},
))

mom1, mom2 = sym("M_1", real=True), sym("M_2", positive=True)
mq, sq = sym("m", real=True), sym("v", positive=True)


def _moment_matching_residuals(c: Claim) -> list[sp.Expr]:
    # E_p[-log N(x; m, v)] depends on p only through M_1 = E_p x and M_2 = E_p x^2 (any p).
    cross = sp.log(2 * sp.pi * sq) / 2 + (mom2 - 2 * mq * mom1 + mq**2) / (2 * sq)
    at = {mq: c["mean"], sq: c["variance"]}
    return [sp.diff(cross, mq).xreplace(at), sp.diff(cross, sq).xreplace(at)]


moment_matching = register(Identity(
    id="divergences.forward_kl.moment_matching",
    title="The Gaussian closest in forward KL matches the first two moments",
    chapter=CHAPTER,
    claim={"mean": mom1, "variance": mom2 - mom1**2},
    check=residual_check(
        "the gradient of the cross-entropy E_p[-log N(x; m, v)] = log(2 pi v)/2 + (M_2 - 2 m M_1 + m^2)/(2v) "
        "in (m, v) vanishes at the claim; cancel",
        _moment_matching_residuals,
    ),
    template=(r"\operatorname*{arg\,min}_{m, v} \KL\big(p \,\Vert\, \Normal(m, v)\big):\quad "
              r"m = $mean, \quad v = $variance, \qquad M_k = \E_p[x^k]"),
    assumptions=("p has finite second moment, M_2 > M_1^2; the cross-entropy is convex in the natural "
                 "parameters (m/v, -1/(2v)) of the Gaussian, so the unique stationary point is the minimum",),
    mutants=(
        Mutant("second_moment_for_variance", {"variance": mom2},
               r"The raw second moment $\E_p[x^2]$ for the variance."),
    ),
    references=("bishop2006pattern", "minka2005divergence"),
    code=("gencode.divergences.fit_gaussian_kl",),
    display={"variance": sp.Add(mom2, -mom1**2, evaluate=False)},
))

