r"""Divergences between distributions and maximum likelihood (chapter 2).

Statements about *any* density are written with undefined SymPy functions ``p(x)``, ``q(x)``
under integrals (that is what the book displays).  Every such statement here is an equality of
integrals over the same variable and domain, so it follows from the equality of the integrands at
each point; the checks compare the integrands with the values ``p(x)``, ``q(x)`` replaced by
positive symbols :math:`P, Q` (:func:`pointwise`).  Where the normalisation
:math:`\int p = \int q = 1` is used, it is used by writing a constant :math:`c` as
:math:`\int c\, (p + q)/2`.  Sums over a symbolic number of terms (distributions on K points,
samples of size N, grids of n points) are brought to the normal form of finite sums of
:mod:`derivations.indexed_sums` (normalisations such as :math:`\sum_k p_k = 1` are rules of that
form), or proved by induction on the number of terms (summation by parts).

Logarithms are normalised by :func:`split_logs`: factor the argument, expand the logarithm,
and split logarithms of rationals into logarithms of primes.  Logarithms of distinct primes are
linearly independent over the rationals (unique factorisation), so after this step ``cancel``
is a complete zero test for the exact values below (the discrete example of
:data:`discrete_example`).

Inequalities are checked as inequalities (:func:`derivations.core.nonnegative`): the difference
of the two sides must equal a certificate that is non-negative by construction, such as
:math:`g(u) = u - 1 - \log u \ge 0` (:class:`derivations.core.LogGap`, itself proved as
:math:`\int_1^u (t - 1)/t \,\mathrm{d}t`), :math:`\tfrac12(p \log(1 + q/p) + q \log(1 + p/q))` for
:math:`\log 2 - \mathrm{JS}`, or :math:`\min(p, q)` for :math:`1 - \mathrm{TV}`.  A true but weaker
bound is then inconclusive, never refuted; a false one is refuted at a point where the difference
is negative.  Statements with a combination of equalities and inequalities use :class:`AllOf`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sympy as sp

from dataclasses import dataclass

from .core import (Check, Claim, ForAnyFunction, function, GaussianFactor, Identity, LogGap, Mutant, NonNegative, Status, Verdict, below_zero,
                   expand_known,
                   gaussian_expectation, nonnegative, register, split_logs, sym)
from .indexed_sums import ForEverySize, expand_sums, normalised, peel, to_instance, write_out

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


@dataclass(frozen=True)
class AllOf(Check):
    """A statement made of several parts, each with its own check (equalities and inequalities).

    Proved when every part is proved; refuted when any part is refuted (its witness is kept);
    inconclusive otherwise (a true but weaker inequality, for instance).

    Attributes:
        parts: the checks of the parts, each applied to the whole claim.
    """

    parts: tuple[Check, ...] = ()

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        verdicts = []
        for part in self.parts:  # in order; a refutation ends the check
            v = part(claim, seed)
            if v.status is Status.REFUTED:
                return Verdict(Status.REFUTED, self.method, v.residual, v.witness)
            verdicts.append(v)
        if all(v.status is Status.PROVED for v in verdicts):
            return Verdict(Status.PROVED, self.method)
        first = next(v for v in verdicts if v.status is not Status.PROVED)
        return Verdict(Status.INCONCLUSIVE, self.method, first.residual)


@dataclass(frozen=True)
class ProbedNonNegative(NonNegative):
    """:class:`derivations.core.NonNegative` that also probes given points when its random search
    finds no witness: a bound that fails only far from the random points' range (a density ratio
    of 1e-9, where JS approaches its supremum) is refuted too.  Probing never proves anything."""

    probes: tuple[dict, ...] = ()

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        verdict = super().__call__(claim, seed)
        if verdict.status is not Status.INCONCLUSIVE:
            return verdict
        for point in self.probes:
            for d in self.residuals(claim):
                value = sp.N(expand_known(self.substitute(sp.sympify(d))).xreplace(point), 50)
                if below_zero(value):
                    witness = {str(k_): str(v_) for k_, v_ in point.items()} | {"residual": str(sp.N(value, 8))}
                    return Verdict(Status.REFUTED, self.method, verdict.residual, witness)
        return verdict




def all_of(method: str, *parts: Check) -> AllOf:
    """An :class:`AllOf` check (the residuals of the parent are unused)."""
    return AllOf(method, lambda claim: [], parts=parts)


# ---------------------------------------------------------------------------------------------
# Symbols

x = sym("x", real=True)
u = sym("u", positive=True)
t = sym("t", positive=True)
P = sym("P", positive=True)  # the value p(x) at a point
Q = sym("Q", positive=True)  # the value q(x) at a point
_RATIO_PROBES = tuple({P: sp.Integer(1), Q: sp.Rational(1, 10**e)} for e in (2, 4, 6, 9, 12)) + tuple(
    {P: sp.Rational(1, 10**e), Q: sp.Integer(1)} for e in (2, 4, 6, 9, 12))
"""Extreme density ratios at a point, where the divergences approach their suprema."""


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
# 1. Gibbs' inequality: log u <= u - 1, and KL = sum_k p_k g(q_k / p_k) >= 0


def _phi(v: sp.Expr) -> sp.Expr:
    return v - 1 - sp.log(v)


_G = expand_known(LogGap(u))  # u - 1 - log u

log_inequality = register(Identity(
    id="divergences.log_inequality",
    title=r"$\log u \le u - 1$, with equality only at $u = 1$",
    chapter=CHAPTER,
    claim={"bound": u - 1},
    check=all_of(
        "bound - log u equals the certificate g(u) = u - 1 - log u >= 0; g(u) = int_1^u (t - 1)/t dt "
        "(g(1) = 0 and g'(u) = (u - 1)/u, which has the sign of u - 1: g decreases to 0 at u = 1 and "
        "increases after it); cancel",
        nonnegative(lambda c: c["bound"] - sp.log(u), lambda c: LogGap(u), "difference = g(u)"),
        Check("g(1) = 0 and g'(u) = (u - 1)/u", lambda c: [_G.subs(u, 1), sp.diff(_G, u) - (u - 1) / u]),
    ),
    template=(r"\log u \;\le\; $bound, \qquad "
              r"u - 1 - \log u = \int_1^u \frac{t - 1}{t}\, \d t \;\ge\; 0"),
    assumptions=("u > 0",),
    mutants=(
        Mutant("lower_bound_for_upper", {"bound": 1 - 1 / u},
               r"$\log u \le 1 - 1/u$: that is the reverse inequality ($\log u \ge 1 - 1/u$), false for "
               r"$u > 1$."),
        Mutant("half_slope", {"bound": (u - 1) / 2},
               r"$\log u \le (u - 1)/2$: the tangent at $u = 1$ has slope 1, so this fails just above 1."),
        Mutant("constant_off_by_one", {"bound": u - 2},
               r"$\log u \le u - 2$: false at $u = 1$."),
    ),
    references=("cover2006elements",),
    scope="general",
))

# KL(p || q) for distributions on K points, with K symbolic.
pk, qk = sp.symbols("p_k q_k", positive=True)
k = sp.Symbol("k", integer=True, positive=True)
K = sp.Symbol("K", integer=True, positive=True)
p_k, q_k = sp.IndexedBase("p"), sp.IndexedBase("q")
_a = [sym(f"a_{i}", positive=True) for i in (1, 2, 3)]
_b = [sym(f"b_{i}", positive=True) for i in (1, 2, 3)]


def _three_points(e: sp.Expr) -> sp.Expr:
    """K = 3, p_i = a_i / (a_1 + a_2 + a_3), q_i = b_i / (b_1 + b_2 + b_3): distributions by construction."""
    out = to_instance(e, {K: 3}, {p_k: sym("p", positive=True), q_k: sym("q", positive=True)})
    subs = {}
    for s_ in out.free_symbols:
        base, _, idx = s_.name.partition("_")
        if base in ("p", "q") and idx.isdigit():
            w = _a if base == "p" else _b
            subs[s_] = w[int(idx) - 1] / sum(w)
    return out.xreplace(subs)


def _gibbs_residuals(c: Claim) -> list[sp.Expr]:
    kl = sp.Sum(p_k[k] * sp.log(p_k[k] / q_k[k]), (k, 1, K))
    gaps = sp.Sum(c["gap"].xreplace({pk: p_k[k], qk: q_k[k]}), (k, 1, K))
    return [split_logs(kl - gaps)]


gibbs_discrete = register(Identity(
    id="divergences.gibbs.discrete",
    title=r"Gibbs' inequality: $\mathrm{KL}(p \Vert q) \ge 0$, by $\log u \le u - 1$",
    chapter=CHAPTER,
    claim={"gap": pk * _phi(qk / pk)},
    check=all_of(
        "KL(p || q) minus the sum of the claimed gaps over K points, K symbolic: logarithms split, normal "
        "form of finite sums with sum_k p_k = sum_k q_k = 1; cancel. Each gap equals p_k g(q_k/p_k) >= 0 "
        "(certificate). Mutants refuted on K = 3",
        ForEverySize("sum over K points", _gibbs_residuals,
                     rules=(normalised(p_k, K), normalised(q_k, K)), instances=(("K = 3", _three_points),)),
        nonnegative(lambda c: c["gap"], lambda c: pk * LogGap(qk / pk), "each gap = p_k g(q_k / p_k)"),
    ),
    template=r"\KL(p \,\Vert\, q) = \sum_{k=1}^{K} p_k \log\frac{p_k}{q_k} = \sum_{k=1}^{K} $gap \;\ge\; 0",
    assumptions=("p and q are distributions on K points (any K), p_k, q_k > 0, each summing to 1",),
    mutants=(
        Mutant("gap_without_minus_one", {"gap": pk * (qk / pk - sp.log(qk / pk))},
               r"The $-1$ of $\log u \le u - 1$ dropped: the gaps then sum to $\KL + 1$."),
        Mutant("ratio_upside_down", {"gap": pk * _phi(pk / qk)},
               r"The ratio $p_k/q_k$ used where $u_k = q_k/p_k$ belongs."),
        Mutant("weighted_by_q", {"gap": qk * _phi(pk / qk)},
               r"The gaps weighted by $q_k$: they sum to $\KL(q \Vert p)$, the other divergence."),
    ),
    references=("cover2006elements",),
    display={"gap": sp.Mul(pk, sp.Add(qk / pk, -1, -sp.log(qk / pk), evaluate=False), evaluate=False)},
    scope="general",
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
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 3. Maximum likelihood = minimum forward KL to the empirical distribution

n_k = sp.IndexedBase("n")
theta_k = sp.IndexedBase("theta")
e_ik = sp.IndexedBase("e")  # e_ik = 1 if x_i = k, else 0 (one-hot encoding of the sample)
N = sp.Symbol("N", integer=True, positive=True)
i_s = sp.Symbol("i", integer=True, positive=True)
_SAMPLE = (1, 2, 2, 3)  # a concrete sample for the instances (K = 3 values, N = 4 points)


def _sum_k(f: sp.Expr) -> sp.Sum:
    return sp.Sum(f, (k, 1, K))


def _mle_residuals(c: Claim) -> list[sp.Expr]:
    kl = _sum_k(n_k[k] / N * sp.log(n_k[k] / N / theta_k[k]))  # KL(p_N || p_theta), p_N(k) = n_k / N
    # sum_i log p_theta(x_i), with log theta_{x_i} = sum_k e_ik log theta_k (exactly one e_ik is 1)
    loglik = sp.Sum(_sum_k(e_ik[i_s, k] * sp.log(theta_k[k])), (i_s, 1, N))
    counts = c["avg_loglik"].replace(lambda e: isinstance(e, sp.Indexed) and e.base == n_k,
                                     lambda e: sp.Sum(e_ik[i_s, e.indices[0]], (i_s, 1, N)))  # n_k = sum_i e_ik
    return [split_logs(kl - (c["neg_entropy"] - c["avg_loglik"])), counts - loglik / N]


def _sample_instance(e: sp.Expr) -> sp.Expr:
    """The sample (1, 2, 2, 3): N = 4, K = 3, e_ik its one-hot code, n = (1, 2, 1); theta free."""
    out = to_instance(e, {N: len(_SAMPLE), K: 3}, {n_k: sym("n", positive=True), e_ik: sym("e", positive=True),
                                                   theta_k: sym("theta", (0, 1), positive=True)})
    values = {f"e_{i}_{kk}": int(x == kk) for i, x in enumerate(_SAMPLE, 1) for kk in (1, 2, 3)}
    values |= {f"n_{kk}": _SAMPLE.count(kk) for kk in (1, 2, 3)}
    return out.xreplace({s_: values[s_.name] for s_ in out.free_symbols if s_.name in values})


mle_kl = register(Identity(
    id="divergences.mle.empirical_kl",
    title="Maximum likelihood minimises the forward KL from the empirical distribution",
    chapter=CHAPTER,
    claim={
        "neg_entropy": _sum_k(n_k[k] / N * sp.log(n_k[k] / N)),
        "avg_loglik": _sum_k(n_k[k] / N * sp.log(theta_k[k])),
    },
    check=ForEverySize(
        "KL(p_N || p_theta) = sum_k (n_k/N) log((n_k/N)/theta_k) split into the two sums; and the average "
        "log-likelihood (1/N) sum_i sum_k e_ik log theta_k (one-hot e_ik = [x_i = k]) equals the claimed "
        "sum over values once n_k = sum_i e_ik: the double sum's order exchanged in the normal form of "
        "finite sums, for every N and K; logarithms split; cancel. Mutants refuted on the sample (1, 2, 2, 3)",
        _mle_residuals,
        instances=(("x = (1, 2, 2, 3)", _sample_instance),),
    ),
    template=(r"\KL(\hat p_N \,\Vert\, p_\theta) = \underbrace{$neg_entropy}_{-H(\hat p_N)} "
              r"- \underbrace{$avg_loglik}_{\frac{1}{N}\sum_{i=1}^N \log p_\theta(x_i)}"),
    assumptions=("x_1, ..., x_N take values in {1, ..., K}; e_ik = 1 if x_i = k and 0 otherwise",
                 "n_k = sum_i e_ik > 0, p_N(k) = n_k / N is the empirical distribution; p_theta(k) = theta_k > 0",
                 "log p_theta(x_i) = log theta_{x_i} = sum_k e_ik log theta_k (exactly one e_ik is 1)"),
    mutants=(
        Mutant("without_one_over_n", {"avg_loglik": _sum_k(n_k[k] * sp.log(theta_k[k]))},
               r"The empirical expectation written $\sum_i \log p_\theta(x_i)$, without its $1/N$: "
               r"the maximiser is the same, but the equality with the KL fails.",
               source="source notes 002 (the MLE and KL slide)"),
        Mutant("entropy_sign", {"neg_entropy": -_sum_k(n_k[k] / N * sp.log(n_k[k] / N))},
               r"$+H(\hat p_N)$ instead of $-H(\hat p_N)$."),
        Mutant("uniform_weights", {"avg_loglik": _sum_k(sp.log(theta_k[k]) / K)},
               r"Each value weighted $1/K$ instead of by its frequency $n_k/N$."),
    ),
    references=("murphy2022probabilistic",),
    display={"neg_entropy": _sum_k(sp.Mul(n_k[k] / N, sp.log(n_k[k] / N), evaluate=False)),
             "avg_loglik": _sum_k(sp.Mul(n_k[k] / N, sp.log(theta_k[k]), evaluate=False))},
    scope="general",
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
    scope="general",
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
        Mutant("mean_term_over_sigma_1", {"kl": (m1 - m2) ** 2 / (2 * s1**2) + _phi(r_) / 2},
               r"The mean term divided by $\sigma_1^2$, the variance of the first argument, instead of $\sigma_2^2$."),
    ),
    references=("cover2006elements",),
    display={"kl": sp.Add((m1 - m2) ** 2 / (2 * s2**2),
                          sp.Mul(sp.Rational(1, 2), sp.Add(r_, -1, -sp.log(r_), evaluate=False), evaluate=False),
                          evaluate=False)},
    scope="general",
))

# Diagonal Gaussian against N(0, I): a sum over coordinates (KL is additive over independent ones).
j = sp.Symbol("j", integer=True, positive=True)
D = sp.Symbol("D", integer=True, positive=True)
mu_j, sd_j = sp.IndexedBase("mu"), sp.IndexedBase("sigma")
mj_, sj_ = sym("mu_j", real=True), sym("sigma_j", positive=True)

kl_diag = register(Identity(
    id="divergences.kl.diag_standard",
    title=r"KL between a diagonal Gaussian and $\mathcal{N}(0, \mathbf{I})$",
    chapter=CHAPTER,
    claim={"kl": sp.Sum(mu_j[j] ** 2 + sd_j[j] ** 2 - 1 - sp.log(sd_j[j] ** 2), (j, 1, D)) / 2},
    check=ForEverySize(
        "both densities are products over the D coordinates, so log q - log p is a sum over j of "
        "log N(z_j; mu_j, sigma_j^2) - log N(z_j; 0, 1), and its expectation under q the sum of the "
        "coordinates' expectations (Gaussian moment recursion); symbolic D, logarithms split, normal form "
        "of finite sums; cancel. Mutants refuted on D = 2",
        lambda c: [split_logs(sp.Sum(_gaussian_kl_derived(mu_j[j], sd_j[j], 0, 1), (j, 1, D)) - c["kl"])],
        instances=(("D = 2", lambda e: to_instance(e, {D: 2}, {mu_j: sym("mu", real=True),
                                                               sd_j: sym("sigma", positive=True)})),),
    ),
    template=(r"\KL\big(\Normal(\mu, \operatorname{diag}\sigma^2) \,\Vert\, \Normal(0, \I)\big) = $kl"),
    assumptions=("sigma_j > 0 for j = 1, ..., D; any D",),
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
    scope="general",
))
# ---------------------------------------------------------------------------------------------
# 5. The worked discrete example

P_EX = (sp.Rational(9, 25), sp.Rational(12, 25), sp.Rational(4, 25))
Q_EX = (sp.Rational(1, 3),) * 3
_ln = sp.log


def _kl_exact(a: tuple, b: tuple) -> sp.Expr:
    return sum(ai * sp.log(ai / bi) for ai, bi in zip(a, b))


_FORWARD = (32 * _ln(2) + 55 * _ln(3) - 50 * _ln(5)) / 25
_REVERSE = (-4 * _ln(2) - 6 * _ln(3) + 6 * _ln(5)) / 3

discrete_example = register(Identity(
    id="divergences.kl.discrete_example",
    title=r"KL between $(9, 12, 4)/25$ and the uniform distribution on three points, both ways",
    chapter=CHAPTER,
    claim={
        "forward": _FORWARD,
        "reverse": _REVERSE,
    },
    check=residual_check(
        "exact sums; logarithms of rationals split into log 2, log 3, log 5 (independent over Q); cancel",
        lambda c: [_kl_exact(P_EX, Q_EX) - c["forward"], _kl_exact(Q_EX, P_EX) - c["reverse"]],
    ),
    template=(r"\KL(P \,\Vert\, Q) = $forward \approx " + f"{float(_FORWARD):.4f}" + r", \qquad "
              r"\KL(Q \,\Vert\, P) = $reverse \approx " + f"{float(_REVERSE):.4f}"),  # numbers computed
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
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 6. Jensen-Shannon and total variation

_m = m_(x)
_js = integral((p(x) * sp.log(p(x) / _m) + q(x) * sp.log(q(x) / _m)) / 2)
_SWAP = {P: Q, Q: P}
_MID = (P + Q) / 2


def _js_at_point(c: Claim) -> sp.Expr:
    return pointwise(c["js"], AT_POINT)


js_bounds = register(Identity(
    id="divergences.js.bounds",
    title=r"Jensen-Shannon divergence: symmetric, $0 \le \mathrm{JS} \le \log 2$",
    chapter=CHAPTER,
    claim={"js": _js, "bound": sp.log(2)},
    check=all_of(
        "integrands at a point (p(x), q(x) as positive symbols P, Q; m = (P + Q)/2): JS(p, q) - JS(q, p) "
        "cancels; JS equals (P g(m/P) + Q g(m/Q))/2 >= 0 (Gibbs gaps, certificate); bound (P + Q)/2 - JS "
        "(using int (p + q)/2 = 1) equals (P log(1 + Q/P) + Q log(1 + P/Q))/2 >= 0 (certificate); "
        "logarithms split; cancel",
        residual_check("symmetry", lambda c: [_js_at_point(c) - _js_at_point(c).xreplace(_SWAP)]),
        nonnegative(_js_at_point, lambda c: (P * LogGap(_MID / P) + Q * LogGap(_MID / Q)) / 2,
                    "JS >= 0", prepare=split_logs),
        ProbedNonNegative("JS <= bound", lambda c: [c["bound"] * _MID - _js_at_point(c)],
                          certificate=lambda c: (P * sp.log(1 + Q / P) + Q * sp.log(1 + P / Q)) / 2,
                          prepare=split_logs, probes=_RATIO_PROBES),
    ),
    template=(r"0 \;\le\; \JS(p \,\Vert\, q) = \JS(q \,\Vert\, p) = $js \;\le\; $bound, "
              r"\qquad m = \tfrac12 (p + q)"),
    assumptions=DENSITIES + ("m = (p + q)/2; natural logarithms (nats)",),
    mutants=(
        Mutant("kl_p_m_twice", {"js": integral(p(x) * sp.log(p(x) / _m))},
               r"$\tfrac12\KL(p \Vert m) + \tfrac12\KL(p \Vert m)$: the second term should be "
               r"$\KL(q \Vert m)$.",
               source="Lil'Log, \"From GAN to WGAN\" (an earlier revision of the JS expansion)"),
        Mutant("bound_half_log2", {"bound": sp.log(2) / 2},
               r"$\JS \le \tfrac12\log 2$: false, since disjoint supports give $\JS = \log 2$."),
        Mutant("without_halves", {"js": integral(p(x) * sp.log(p(x) / _m) + q(x) * sp.log(q(x) / _m))},
               r"$\KL(p \Vert m) + \KL(q \Vert m)$ without the halves: it reaches $2\log 2$."),
        Mutant("mixture_without_half", {"js": integral((p(x) * sp.log(p(x) / (p(x) + q(x)))
                                                        + q(x) * sp.log(q(x) / (p(x) + q(x)))) / 2)},
               r"$m = p + q$ instead of $\tfrac12(p + q)$: the \"divergence\" is then negative."),
    ),
    references=("lin1991divergence", "weng2017gan"),
    code=("gencode.divergences.js_quadrature", "gencode.divergences.js_monte_carlo"),
    scope="general",
))

_d = sym("d", positive=True)  # |p(x) - q(x)| in each of the two orderings
_ORDERINGS = ({P: Q + _d}, {Q: P + _d})  # p > q and q > p at the point (p = q is the limit d -> 0)


def _tv_at(c: Claim, key: str, at: dict) -> sp.Expr:
    return pointwise(c[key], AT_POINT).xreplace(at)


def _tv_parts() -> list[Check]:
    parts: list[Check] = [Check("1 - TV = int min(p, q), both orderings",
                                lambda c: [(_MID.xreplace(at) - _tv_at(c, "tv", at) - _tv_at(c, "overlap", at))
                                           for at in _ORDERINGS])]
    for at in _ORDERINGS:
        small = _MID.xreplace(at) - _d / 2  # min(p, q) at the point, in this ordering
        parts.append(nonnegative(lambda c, at=at: _tv_at(c, "tv", at), lambda c: _d / 2, "TV >= 0"))
        parts.append(nonnegative(lambda c, at=at: c["upper"] * _MID.xreplace(at) - _tv_at(c, "tv", at),
                                 lambda c, small=small: small, "TV <= upper (int (p + q)/2 = 1)"))
    return parts


tv_bounds = register(Identity(
    id="divergences.tv.bounds",
    title=r"Total variation: $1 - \mathrm{TV} = \int \min(p, q) \in [0, 1]$",
    chapter=CHAPTER,
    claim={"tv": integral(sp.Abs(p(x) - q(x)) / 2), "overlap": integral(sp.Min(p(x), q(x))), "upper": sp.Integer(1)},
    check=all_of(
        "at a point, in both orderings (p = q + d and q = p + d, d > 0): (p + q)/2 - |p - q|/2 - min(p, q) "
        "cancels; |p - q|/2 equals d/2 >= 0; upper (p + q)/2 - |p - q|/2 (using int (p + q)/2 = 1) equals "
        "min(p, q) >= 0 (certificates); cancel",
        *_tv_parts(),
    ),
    template=r"\mathrm{TV}(p, q) = $tv = 1 - $overlap \in [0, $upper]",
    assumptions=DENSITIES,
    mutants=(
        Mutant("without_half", {"tv": integral(sp.Abs(p(x) - q(x)))},
               r"$\int |p - q|$ without the $\tfrac12$: that is $2\,\mathrm{TV} \in [0, 2]$."),
        Mutant("upper_half", {"upper": sp.Rational(1, 2)},
               r"$\mathrm{TV} \le \tfrac12$: false, disjoint supports give $\mathrm{TV} = 1$."),
        Mutant("without_absolute_value", {"tv": integral((p(x) - q(x)) / 2)},
               r"$\tfrac12\int (p - q)$ without the absolute value, which is always 0."),
    ),
    references=("cover2006elements",),
    code=("gencode.divergences.tv_discrete",),
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 7. Wasserstein-1

n = sp.Symbol("n", integer=True, positive=True)
i_ = sp.Symbol("i", integer=True, positive=True)
jj = sp.Symbol("l", integer=True, positive=True)
f_i, p_i, q_i = sp.IndexedBase("f"), sp.IndexedBase("p"), sp.IndexedBase("q")
_INDEXED = {f_i: "f", p_i: "p", q_i: "q"}
_cdf_gap = sp.Sum(p_i[jj] - q_i[jj], (jj, 1, i_))  # F_P(z_i) - F_Q(z_i)


def _abel_total(size: sp.Expr) -> sp.Expr:
    return sp.Sum(f_i[i_] * (p_i[i_] - q_i[i_]), (i_, 1, size))


def _abel_general(c: Claim, size: sp.Expr) -> sp.Expr:
    """The claim plus the boundary term f_n G_n, which vanishes when the masses are equal."""
    return c["rhs"].subs(n, size) + f_i[size] * sp.Sum(p_i[jj] - q_i[jj], (jj, 1, size))


def _abel_residuals(c: Claim) -> list[sp.Expr]:
    base = write_out(_abel_total(1) - _abel_general(c, 1))
    step = (_abel_total(n + 1) - _abel_total(n)) - (_abel_general(c, n + 1) - _abel_general(c, n))
    return [base, peel(step, [n, n - 1])]


w1_abel = register(Identity(
    id="divergences.w1.summation_by_parts",
    title=r"$\mathbb{E}_P f - \mathbb{E}_Q f = -\int f'(F_P - F_Q)$ on a grid: the 1-D dual of $W_1$",
    chapter=CHAPTER,
    claim={"rhs": -sp.Sum((f_i[i_ + 1] - f_i[i_]) * _cdf_gap, (i_, 1, n - 1))},
    check=ForEverySize(
        "induction on the number n of grid points, of the claim plus the boundary term f_n G_n "
        "(G_i = sum_{l <= i} (p_l - q_l), zero at i = n for equal masses): base n = 1 written out; step "
        "n -> n + 1 with the last terms of the sums split off, normal form of finite sums; cancel. "
        "Mutants refuted at the step n = 3 -> 4",
        _abel_residuals,
        instances=(("n = 3", lambda e: to_instance(e, {n: 3}, {f_i: sym("f", real=True), p_i: sym("p", positive=True),
                                                               q_i: sym("q", positive=True)})),),
    ),
    template=r"\sum_{i=1}^{n} f_i\,(p_i - q_i) = $rhs",
    assumptions=("P = sum_i p_i delta_{z_i}, Q = sum_i q_i delta_{z_i} on a grid z_1 < ... < z_n (any n), "
                 "sum p_i = sum q_i; f_i = f(z_i)",
                 "F_P(z_i) - F_Q(z_i) = sum_{l <= i} (p_l - q_l)"),
    mutants=(
        Mutant("sign", {"rhs": sp.Sum((f_i[i_ + 1] - f_i[i_]) * _cdf_gap, (i_, 1, n - 1))},
               "The sign of the summation by parts flipped."),
        Mutant("cdf_one_step_late",
               {"rhs": -sp.Sum((f_i[i_ + 1] - f_i[i_]) * sp.Sum(p_i[jj] - q_i[jj], (jj, 1, i_ + 1)),
                               (i_, 1, n - 1))},
               r"The CDF difference taken at $z_{i+1}$ instead of $z_i$."),
        Mutant("backward_difference",
               {"rhs": -sp.Sum((f_i[i_] - f_i[i_ - 1]) * _cdf_gap, (i_, 2, n))},
               r"The backward difference $f_i - f_{i-1}$ paired with $F(z_i)$: an index off by one."),
    ),
    references=("villani2009optimal", "peyre2019computational"),
    code=("gencode.divergences.w1_cdf",),
    scope="general",
))

# The supremum of the dual objective on a grid: the CDF formula of W1 from the dual side.
G_i = sp.IndexedBase("G", real=True)  # G_i = F_P(z_i) - F_Q(z_i)
Dz = sp.IndexedBase("Delta", positive=True)  # z_{i+1} - z_i
_absG, _sgn = sp.IndexedBase("a", nonnegative=True), sp.IndexedBase("s", real=True)  # G_i = s_i a_i, s_i = +-1
_t = sp.IndexedBase("t", nonnegative=True)  # any 1-Lipschitz f: f_{i+1} - f_i = s_i (t_i - 1) Delta_i, 0 <= t_i <= 2


def _polar(expr: sp.Expr) -> sp.Expr:
    """|G_i| = a_i and G_i = s_i a_i (a_i >= 0, s_i = sign(G_i) = +-1)."""
    expr = expr.replace(lambda e: isinstance(e, sp.Abs) and isinstance(e.args[0], sp.Indexed) and e.args[0].base == G_i,
                        lambda e: _absG[e.args[0].indices[0]])
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == G_i,
                        lambda e: _sgn[e.indices[0]] * _absG[e.indices[0]])


def _sign_squared(body: sp.Expr, limits):
    """s_i^2 = 1."""
    new = body.replace(lambda e: e.is_Pow and isinstance(e.base, sp.Indexed) and e.base.base == _sgn and e.exp == 2,
                       lambda e: sp.Integer(1))
    return None if new == body else (new, limits)


class TermwiseSum(sp.Sum):
    """A finite sum that SymPy may call non-negative when its terms are (an empty sum is 0);
    ``Sum`` itself answers ``None`` when the upper bound is ``n - 1``."""

    def _eval_is_nonnegative(self):
        if self.function.is_nonnegative:
            return True
        return None


def _dual_value(increment) -> sp.Expr:
    """E_P f - E_Q f = -sum_{i<n} (f_{i+1} - f_i) G_i (summation by parts, divergences.w1.summation_by_parts)."""
    return -sp.Sum(increment(i_) * G_i[i_], (i_, 1, n - 1))


def _cdf_witness_residuals(c: Claim) -> list[sp.Expr]:
    witness = _dual_value(lambda i: -sp.sign(G_i[i]) * Dz[i])  # slope -sign(F_P - F_Q)
    witness = witness.replace(lambda e: isinstance(e, sp.sign), lambda e: _sgn[e.args[0].indices[0]])
    return [_polar(witness - c["sup"])]


def _cdf_instance(e: sp.Expr) -> sp.Expr:
    """n = 3 grid points with crossing CDFs: s = (+1, -1)."""
    out = to_instance(e, {n: 3}, {_absG: sym("a", positive=True), _sgn: sym("s", real=True),
                                   Dz: sym("Delta", positive=True), G_i: sym("G", real=True)})
    return out.xreplace({s_: (1 if s_.name == "s_1" else -1) for s_ in out.free_symbols if s_.name in ("s_1", "s_2")})


w1_cdf_formula = register(Identity(
    id="divergences.w1.cdf_formula",
    title=r"On a grid, the best 1-Lipschitz witness attains $\int |F_P - F_Q|$, and no witness exceeds it",
    chapter=CHAPTER,
    claim={"sup": sp.Sum(sp.Abs(G_i[i_]) * Dz[i_], (i_, 1, n - 1))},
    check=all_of(
        "for every n, by summation by parts E_P f - E_Q f = -sum_i (f_{i+1} - f_i) G_i: the witness with "
        "f_{i+1} - f_i = -sign(G_i) Delta_i gives the claim (G_i = s_i |G_i|, s_i^2 = 1; normal form of "
        "finite sums); for any f with |f_{i+1} - f_i| <= Delta_i, written f_{i+1} - f_i = s_i (t_i - 1) Delta_i "
        "with 0 <= t_i <= 2, claim - (E_P f - E_Q f) = sum_i t_i Delta_i |G_i| >= 0 (certificate); cancel. "
        "Mutants refuted on n = 3 with crossing distribution functions",
        ForEverySize("witness", _cdf_witness_residuals, rules=(_sign_squared,),
                     instances=(("n = 3, crossing CDFs", _cdf_instance),)),
        nonnegative(lambda c: _polar(c["sup"] - _dual_value(lambda i: _sgn[i] * (_t[i] - 1) * Dz[i])),
                    lambda c: TermwiseSum(_t[i_] * Dz[i_] * _absG[i_], (i_, 1, n - 1)), "no witness exceeds it",
                    prepare=lambda e: expand_sums(e, rules=(_sign_squared,))),
    ),
    template=(r"\sup_{\|f\|_{\mathrm{Lip}} \le 1} \E_P f - \E_Q f = $sup = \int |F_P(z) - F_Q(z)|\, \d z, "
              r"\qquad G_i = F_P(z_i) - F_Q(z_i),\ \Delta_i = z_{i+1} - z_i"),
    assumptions=("P, Q on a grid z_1 < ... < z_n (any n) with equal total mass; F_P - F_Q is the step function "
                 "equal to G_i on [z_i, z_{i+1})",
                 "a 1-Lipschitz f enters only through f(z_i), with |f(z_{i+1}) - f(z_i)| <= Delta_i, and every such "
                 "sequence extends to a 1-Lipschitz f (linear interpolation)"),
    mutants=(
        Mutant("without_absolute_value", {"sup": sp.Sum(G_i[i_] * Dz[i_], (i_, 1, n - 1))},
               r"$\sum_i G_i \Delta_i = \E_Q X - \E_P X$ up to sign, the difference of the means: it equals "
               r"$W_1$ only when the distribution functions do not cross."),
        Mutant("half", {"sup": sp.Sum(sp.Abs(G_i[i_]) * Dz[i_], (i_, 1, n - 1)) / 2},
               r"Half the area between the distribution functions."),
    ),
    references=("villani2009optimal", "peyre2019computational"),
    code=("gencode.divergences.w1_cdf",),
    scope="general",
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
    scope="general",
))

# The disjoint-supports example: P = law of (0, Z), Q_theta = law of (theta, Z), Z ~ U[0, 1].
theta = sym("theta", real=True)
_tpos = sym("tau", positive=True)


_z = sym("z", real=True)
_mix = sym("delta", (0, 1), positive=True)
_ON_SEGMENTS = ((sp.Integer(1), sp.Integer(0)), (sp.Integer(0), sp.Integer(1)))
"""(p, q) on P's segment and on Q's segment: densities with respect to length on the union of the two."""


def _xlogy(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return sp.Integer(0) if a == 0 else a * sp.log(a / b)  # 0 log 0 = 0


def _over_segments(integrand) -> sp.Expr:
    """Sum over the two segments of int_0^1 integrand(p, q) dz."""
    return sum((sp.integrate(integrand(pv, qv), (_z, 0, 1)) for pv, qv in _ON_SEGMENTS), sp.Integer(0))


def _segments_residuals(c: Claim) -> list[sp.Expr]:
    js = _over_segments(lambda pv, qv: (_xlogy(pv, (pv + qv) / 2) + _xlogy(qv, (pv + qv) / 2)) / 2)
    tv = _over_segments(lambda pv, qv: sp.Abs(pv - qv) / 2)
    # KL(P || Q) is infinite: KL is convex in its second argument, so for every delta in (0, 1)
    # KL(P || Q) >= KL(P || (1 - delta) Q + delta P) / (1 - delta), and the right side -> infinity.
    kl_mixture = _over_segments(lambda pv, qv: _xlogy(pv, (1 - _mix) * qv + _mix * pv))
    lower = kl_mixture / (1 - _mix)
    out = [split_logs(c["js"] - js), c["tv"] - tv, sp.limit(1 / lower, _mix, 0, "+") - 1 / c["kl"]]
    for th in (_tpos, -_tpos):  # theta > 0 and theta < 0
        w1 = c["w1"].xreplace({theta: th})
        cost = sp.integrate(sp.sqrt((0 - th) ** 2 + (_z - _z) ** 2), (_z, 0, 1))  # coupling (0, z) -> (theta, z)
        xs, ys = sym("x_1", real=True), sym("x_2", real=True)
        witness = -sp.sign(th) * xs  # f(x_1, x_2) = -sign(theta) x_1
        lipschitz = sp.sqrt(sp.diff(witness, xs) ** 2 + sp.diff(witness, ys) ** 2) - 1  # |grad f| = 1
        dual = (sp.integrate(witness.xreplace({xs: 0, ys: _z}), (_z, 0, 1))
                - sp.integrate(witness.xreplace({xs: th, ys: _z}), (_z, 0, 1)))
        out += [w1 - cost, w1 - dual, lipschitz]
    return out


segments = register(Identity(
    id="divergences.disjoint_segments",
    title="Two parallel segments: KL is infinite, JS and TV saturate, W1 sees the distance",
    chapter=CHAPTER,
    claim={"js": sp.log(2), "tv": sp.Integer(1), "w1": sp.Abs(theta), "kl": sp.oo},
    check=residual_check(
        "JS and TV by integrating over the two disjoint segments (p, q) = (1, 0) and (0, 1), 0 log 0 = 0; "
        "KL: by convexity in the second argument KL(P || Q) >= KL(P || (1 - delta) Q + delta P)/(1 - delta) "
        "= log(1/delta)/(1 - delta) for every delta in (0, 1), whose reciprocal -> 0 as delta -> 0 "
        "(compared with 1/claim); W1 by the horizontal coupling (upper bound) and the 1-Lipschitz witness "
        "f(x_1, x_2) = -sign(theta) x_1 (lower bound), theta > 0 and < 0; cancel",
        _segments_residuals,
    ),
    template=(r"\JS(P, Q_\theta) = $js, \qquad \mathrm{TV}(P, Q_\theta) = $tv, \qquad "
              r"W_1(P, Q_\theta) = $w1, \qquad \KL(P \,\Vert\, Q_\theta) = $kl \quad (\theta \ne 0)"),
    assumptions=("P is the law of (0, Z), Q_theta that of (theta, Z), Z ~ U[0, 1]; theta != 0",
                 "KL is jointly convex, in particular convex in its second argument; KL(P || P) = 0"),
    mutants=(
        Mutant("tv_without_half", {"tv": sp.Integer(2)}, r"$\int |p - q|$ without the $\tfrac12$."),
        Mutant("w1_signed", {"w1": theta}, r"$\theta$ for $|\theta|$."),
        Mutant("js_zero", {"js": sp.Integer(0)},
               r"JS taken to be 0 because the densities never overlap (they are disjoint, not equal)."),
        Mutant("kl_saturates", {"kl": sp.log(2)},
               r"KL taken to saturate at $\log 2$ like JS: it is infinite."),
        Mutant("kl_of_unit_gaussians", {"kl": theta**2 / 2},
               r"$\theta^2/2$, the KL between unit-variance Gaussians a distance $\theta$ apart: finite "
               r"because Gaussians overlap; the segments do not."),
    ),
    references=("arjovsky2017towards",),
    scope="general",
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
    scope="general",
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
        Mutant("mean_not_squared", {"variance": mom2 - mom1},
               r"$M_2 - M_1$: the mean subtracted without its square."),
    ),
    references=("bishop2006pattern", "minka2005divergence"),
    code=("gencode.divergences.fit_gaussian_kl",),
    display={"variance": sp.Add(mom2, -mom1**2, evaluate=False)},
    scope="general",
))


# ---------------------------------------------------------------------------------------------
# 9. f-divergences, their conjugates and the variational form (Nguyen, Wainwright & Jordan 2010)
#
# D_f(P || Q) = int q f(p / q) for a convex f with f(1) = 0.  A statement about D_f for any
# densities is an equality of integrands at each point, so the checks compare Q f(P / Q) with the
# integrand of each named divergence (P, Q positive symbols, as above).

_v = sym("v", positive=True)  # a second ratio: s = f'(v) parametrises the domain of f*
_s = sym("s", real=True)  # the argument of the conjugate
_w = sym("w", positive=True)  # TV's s = (w - 1) / (2 (w + 1)), in (-1/2, 1/2)
_dd = sym("d", positive=True)

F_SMOOTH = ("kl", "reverse_kl", "js", "hellinger", "chi2")
F_NAMES = F_SMOOTH + ("tv",)

GENERATORS: dict[str, sp.Expr] = {
    "kl": u * sp.log(u),
    "reverse_kl": -sp.log(u),
    "js": (u * sp.log(u) - (u + 1) * sp.log((u + 1) / 2)) / 2,
    "tv": sp.Abs(u - 1) / 2,
    "hellinger": (sp.sqrt(u) - 1) ** 2,
    "chi2": (u - 1) ** 2,
}
"""The generators f(u) of six f-divergences (u = p/q)."""

CONJUGATES: dict[str, sp.Expr] = {
    "kl": sp.exp(_s - 1),
    "reverse_kl": -1 - sp.log(-_s),
    "js": -sp.log(2 - sp.exp(2 * _s)) / 2,
    "tv": _s,
    "hellinger": _s / (1 - _s),
    "chi2": _s + _s**2 / 4,
}
"""Their convex conjugates f*(s) = sup_u (s u - f(u)), on the domains of :data:`CONJUGATE_DOMAINS`."""

CONJUGATE_DOMAINS = {"kl": r"s \in \R", "reverse_kl": "s < 0", "js": r"s < \tfrac12 \log 2",
                     "tv": r"|s| \le \tfrac12", "hellinger": "s < 1", "chi2": r"s \in \R"}

_INTEGRANDS: dict[str, sp.Expr] = {
    "kl": P * sp.log(P / Q),
    "reverse_kl": Q * sp.log(Q / P),
    "js": (P * sp.log(P / _MID) + Q * sp.log(Q / _MID)) / 2,
    "tv": sp.Abs(P - Q) / 2,
    "hellinger": (sp.sqrt(P) - sp.sqrt(Q)) ** 2,
    "chi2": (P - Q) ** 2 / Q,
}
"""The integrands of the divergences as usually defined, at a point."""

_F_LATEX = {"kl": r"\KL(p \,\Vert\, q)", "reverse_kl": r"\KL(q \,\Vert\, p)", "js": r"\JS(p \,\Vert\, q)",
            "tv": r"\mathrm{TV}(p, q)", "hellinger": r"H^2(p, q)", "chi2": r"\chi^2(p \,\Vert\, q)"}
_F_DEF = {"kl": r"\int p \log\frac{p}{q}", "reverse_kl": r"\int q \log\frac{q}{p}",
          "js": r"\tfrac12\KL(p \,\Vert\, m) + \tfrac12\KL(q \,\Vert\, m)", "tv": r"\tfrac12\int |p - q|",
          "hellinger": r"\int (\sqrt{p} - \sqrt{q})^2", "chi2": r"\int \frac{(p - q)^2}{q}"}


def _fprime(f: sp.Expr) -> sp.Expr:
    """f'(u) with its logarithms split, so that exp(f'(u)) simplifies."""
    e = split_logs(sp.diff(f, u))
    logs = sum((t for t in sp.Add.make_args(e) if t.has(sp.log)), sp.Integer(0))
    return logs + sp.cancel(e - logs)


def _exp_logs(e: sp.Expr) -> sp.Expr:
    """exp of a sum of logarithms as a product (exp(log v) = v), then logarithms split."""
    return split_logs(sp.expand_power_exp(sp.expand(e)))


def _abs_together(e: sp.Expr) -> sp.Expr:
    return e.replace(sp.Abs, lambda a: sp.Abs(sp.factor(sp.together(a))))


def _generator_residuals(c: Claim) -> list[sp.Expr]:
    out = []
    for name in F_NAMES:
        f = c[name]
        out.append(f.xreplace({u: sp.Integer(1)}))  # f(1) = 0
        r = Q * f.xreplace({u: P / Q}) - _INTEGRANDS[name]
        if name == "tv":
            out += [_abs_together(r.xreplace(at)) for at in _ORDERINGS]
        else:
            out.append(split_logs(r))
    return out


def _convexity_parts() -> list[Check]:
    return [nonnegative(lambda c, nm=nm: sp.diff(c[nm], u, 2), lambda c, nm=nm: _F2[nm], f"f'' >= 0 for {nm}")
            for nm in F_SMOOTH]


_F2 = {"kl": 1 / u, "reverse_kl": 1 / u**2, "js": 1 / (2 * u * (u + 1)),
       "hellinger": 1 / (2 * u * sp.sqrt(u)), "chi2": sp.Integer(2)}
"""f''(u) of each smooth generator, positive by construction."""

f_generators = register(Identity(
    id="divergences.f.generators",
    title=r"KL, reverse KL, JS, TV, squared Hellinger and $\chi^2$ are f-divergences",
    chapter=CHAPTER,
    claim=dict(GENERATORS),
    check=all_of(
        "for each generator: f(1) = 0, and q f(p/q) equals the divergence's integrand at each point (p(x), q(x) "
        "as positive symbols P, Q; TV in both orderings p = q + d, q = p + d); logarithms split; cancel. "
        "Convexity: f''(u) equals an expression positive by construction (certificate) for the five smooth "
        "generators (|u - 1|/2 is convex as an absolute value)",
        residual_check("generators", _generator_residuals),
        *_convexity_parts(),
    ),
    template=(r"\begin{aligned} &D_f(p \,\Vert\, q) = \int q(x)\, f\Big(\frac{p(x)}{q(x)}\Big)\, \d x:\qquad "
              + r" \\ &".join(
                  [r"\KL(p \,\Vert\, q):\ f(u) = $kl, \qquad \KL(q \,\Vert\, p):\ f(u) = $reverse_kl, ",
                   r"\JS(p \,\Vert\, q):\ f(u) = $js, ",
                   r"\mathrm{TV}(p, q):\ f(u) = $tv, \qquad H^2(p, q):\ f(u) = $hellinger, \qquad "
                   r"\chi^2(p \,\Vert\, q):\ f(u) = $chi2"]) + r" \end{aligned}"),
    assumptions=DENSITIES + ("H^2(p, q) = int (sqrt p - sqrt q)^2 (without the factor 1/2 some authors use); "
                             "chi^2 is Pearson's, int (p - q)^2 / q",),
    mutants=(
        Mutant("js_without_halves", {"js": u * sp.log(u) - (u + 1) * sp.log((u + 1) / 2)},
               r"The JS generator without its $\tfrac12$: that is the generator of $2\,\JS$, the divergence of the "
               r"original GAN, not JS itself."),
        Mutant("neyman_chi2", {"chi2": (u - 1) ** 2 / u},
               r"$(u - 1)^2/u$ is the generator of Neyman's $\chi^2$, $\int (p - q)^2/p$, not Pearson's."),
        Mutant("reverse_kl_as_u_log_u_swapped", {"reverse_kl": sp.log(u)},
               r"$f(u) = \log u$ is concave, and $\int q \log(p/q) = -\KL(q \Vert p)$."),
        Mutant("hellinger_without_square", {"hellinger": sp.sqrt(u) - 1},
               r"$\sqrt u - 1$ without the square: $\int q(\sqrt{p/q} - 1) = \int \sqrt{pq} - 1 \le 0$."),
        Mutant("tv_without_half", {"tv": sp.Abs(u - 1)}, r"$|u - 1|$ gives $2\,\mathrm{TV}$."),
    ),
    references=("csiszar1967information", "ali1966general", "nguyen2010estimating"),
    code=("gencode.divergences.f_divergence_discrete",),
    scope="general",
))


def _conjugate_residuals(c: Claim) -> list[sp.Expr]:
    """f*(f'(v)) = v f'(v) - f(v) for every v > 0: the supremum of s u - f(u) is attained where f'(u) = s."""
    out = []
    for name in F_SMOOTH:
        f = GENERATORS[name]
        fp = _fprime(f)
        out.append(_exp_logs(c[name].xreplace({_s: fp.xreplace({u: _v})}) - (_v * fp - f).xreplace({u: _v})))
    return out


def _tv_conjugate(c: Claim) -> list[sp.Expr]:
    # |s| <= 1/2: s u - |u - 1|/2 <= s (FY for TV, below) with equality at u = 1
    return [c["tv"].xreplace({_s: (_w - 1) / (2 * (_w + 1))}) - (_s * 1 - GENERATORS["tv"].xreplace({u: 1})).xreplace(
        {_s: (_w - 1) / (2 * (_w + 1))})]


f_conjugates = register(Identity(
    id="divergences.f.conjugates",
    title="The convex conjugates of the six generators",
    chapter=CHAPTER,
    claim=dict(CONJUGATES),
    check=all_of(
        "smooth generators: f' maps (0, oo) one to one onto the domain of f*, so every s there is f'(v) for one "
        "v > 0, where s u - f(u) is stationary in u (and maximal, f being convex); the claim must equal "
        "v f'(v) - f(v) at s = f'(v), for every v > 0; TV: at |s| < 1/2 (s = (w - 1)/(2(w + 1)), w > 0) the "
        "supremum is attained at u = 1 (the Fenchel-Young check shows none is larger); logarithms split; cancel",
        residual_check("f*(f'(v)) = v f'(v) - f(v)", _conjugate_residuals),
        residual_check("TV", _tv_conjugate),
    ),
    template=(r"\begin{aligned} f^*(s) = \sup_{u > 0}\, \big(s u - f(u)\big):\quad "
              r"&\KL:\ $kl, \quad \KL(q \,\Vert\, p):\ $reverse_kl\ (s < 0), \\ "
              r"&\JS:\ $js\ \big(s < \tfrac12\log 2\big), \quad \mathrm{TV}:\ $tv\ \big(|s| \le \tfrac12\big), \\ "
              r"&H^2:\ $hellinger\ (s < 1), \quad \chi^2:\ $chi2 \end{aligned}"),
    assumptions=("the generators of divergences.f.generators; f* = +oo outside the stated domains",
                 "f is differentiable and strictly convex on (0, oo) (TV aside), so f' is increasing and "
                 "s u - f(u) is concave in u: its stationary point is its maximum"),
    mutants=(
        Mutant("kl_conjugate_without_shift", {"kl": sp.exp(_s)},
               r"$e^{s}$ for $e^{s - 1}$: the conjugate of $u \log u - u$ (or of $u\log u$ with the wrong "
               r"stationary point)."),
        Mutant("chi2_quadratic_half", {"chi2": _s + _s**2 / 2}, r"$s + s^2/2$ for $s + s^2/4$."),
        Mutant("js_conjugate_unhalved", {"js": -sp.log(2 - sp.exp(_s))},
               r"$-\log(2 - e^s)$, the conjugate of the GAN generator (twice JS's), used with JS's own generator."),
        Mutant("hellinger_sign", {"hellinger": _s / (1 + _s)}, r"$s/(1 + s)$ for $s/(1 - s)$."),
        Mutant("reverse_kl_sign", {"reverse_kl": -1 + sp.log(-_s)}, r"$-1 + \log(-s)$ for $-1 - \log(-s)$."),
    ),
    references=("nguyen2010estimating", "nowozin2016fgan"),
    code=("gencode.divergences.F_DIVERGENCES",),
    scope="general",
))


def _fy_parts() -> list[Check]:
    certs = {
        "kl": lambda: u * LogGap(_v / u),
        "reverse_kl": lambda: LogGap(u / _v),
        "js": lambda: (u * LogGap(_v * (u + 1) / (u * (_v + 1))) + LogGap((u + 1) / (_v + 1))) / 2,
        "hellinger": lambda: (sp.sqrt(u) - sp.sqrt(_v)) ** 2 / sp.sqrt(_v),
        "chi2": lambda: (u - _v) ** 2,
    }
    parts: list[Check] = []
    for name in F_SMOOTH:
        fp_v = _fprime(GENERATORS[name]).xreplace({u: _v})

        def diff_(c, name=name, fp_v=fp_v):
            return GENERATORS[name] + c[name].xreplace({_s: fp_v}) - u * fp_v

        parts.append(ProbedNonNegative(f"Fenchel-Young for {name}", lambda c, d=diff_: [d(c)],
                                       certificate=lambda c, cf=certs[name]: cf(), prepare=_exp_logs,
                                       probes=({u: sp.Integer(1), _v: sp.Integer(1)},)))
    s_tv = (_w - 1) / (2 * (_w + 1))  # |s| < 1/2
    for at, cert in (({u: 1 + _dd}, _dd / (_w + 1)), ({u: 1 / (1 + _dd)}, _dd / (1 + _dd) * _w / (_w + 1))):
        parts.append(ProbedNonNegative(
            "Fenchel-Young for TV",
            lambda c, at=at: [_abs_together((GENERATORS["tv"] + c["tv"] - u * _s).xreplace(at).xreplace({_s: s_tv}))],
            certificate=lambda c, cert=cert: cert, probes=({_dd: sp.Integer(1), _w: sp.Integer(1)},)))
    return parts


fenchel_young = register(Identity(
    id="divergences.f.fenchel_young",
    title=r"Fenchel-Young: $f(u) + f^*(s) \ge u s$, with equality at $s = f'(u)$",
    chapter=CHAPTER,
    claim=dict(CONJUGATES),
    check=all_of(
        "for each smooth generator, s = f'(v) with v > 0 runs over the domain of f*; then f(u) + f*(s) - u s "
        "(with the claimed f*) must equal a certificate non-negative by construction: the Bregman gap "
        "f(u) - f(v) - f'(v)(u - v), written as u g(v/u) (KL), g(u/v) (reverse KL), a Bernoulli KL as a sum of "
        "Gibbs gaps (JS), (sqrt u - sqrt v)^2/sqrt v (Hellinger), (u - v)^2 (chi^2); it vanishes at u = v, "
        "i.e. s = f'(u). TV: s = (w - 1)/(2(w + 1)) in (-1/2, 1/2), u = 1 + d and u = 1/(1 + d); logarithms "
        "split; cancel. A wrong conjugate is refuted at a point where the difference is negative",
        *_fy_parts(),
    ),
    template=(r"f(u) + f^*(s) - u\,s \;\ge\; 0 \quad (u > 0,\ s \in \operatorname{dom} f^*), \qquad "
              r"\text{e.g. } \KL:\ u \log u + $kl - u s \ge 0, \quad \chi^2:\ (u - 1)^2 + $chi2 - u s \ge 0"),
    assumptions=("the generators and conjugates of divergences.f.generators and divergences.f.conjugates",
                 "f' is continuous and increasing from (0, oo) onto the interior of dom f*, so s = f'(v) covers it"),
    mutants=(
        Mutant("kl_conjugate_too_small", {"kl": sp.exp(_s - 1) - sp.Rational(1, 10)},
               r"$e^{s-1} - \tfrac1{10}$: below the conjugate, so the inequality fails at $s = f'(u)$."),
        Mutant("chi2_conjugate_too_small", {"chi2": _s + _s**2 / 8},
               r"$s + s^2/8$, smaller than the conjugate: fails away from $s = 0$."),
        Mutant("tv_conjugate_zero", {"tv": sp.Integer(0)},
               r"$f^*(s) = 0$ for TV: fails at $u = 1$, $s > 0$."),
    ),
    references=("nguyen2010estimating", "boyd2004convex"),
    scope="general",
))

# The variational form: D_f >= E_P T - E_Q f*(T), any f, f*, T.
_f_any = function("f", "f")
_fstar_any = function("fstar", "f^{*}")
_t_val = sym("T", real=True)  # the value T(x) of a critic at the point


def _variational_residuals(c: Claim) -> list[sp.Expr]:
    return [Q * _f_any(P / Q) - c["lower"] - c["gap"]]


f_variational = register(Identity(
    id="divergences.f.variational",
    title=r"The variational form $D_f(P \Vert Q) \ge \mathbb{E}_P T - \mathbb{E}_Q f^*(T)$ (Nguyen, Wainwright, Jordan)",
    chapter=CHAPTER,
    claim={"lower": P * _t_val - Q * _fstar_any(_t_val),
           "gap": Q * (_f_any(P / Q) + _fstar_any(_t_val) - P / Q * _t_val)},
    check=ForAnyFunction(
        "at each point, q f(p/q) = (p T - q f*(T)) + q [f(p/q) + f*(T) - (p/q) T] for any f, f* and any value "
        "T of the critic (undefined functions; cancel); the bracket is the Fenchel-Young gap, >= 0 and zero "
        "at T = f'(p/q) (divergences.f.fenchel_young). Mutants refuted with f = u log u, f* = exp(s - 1)",
        lambda c: _variational_residuals(c),
        examples=({_f_any: sp.Lambda(u, u * sp.log(u)), _fstar_any: sp.Lambda(_s, sp.exp(_s - 1))},),
    ),
    template=(r"q f\Big(\frac{p}{q}\Big) = \underbrace{$lower}_{\text{integrates to } \E_P T - \E_Q f^*(T)} "
              r"+ \underbrace{$gap}_{\ge 0,\ = 0 \text{ at } T = f'(p/q)}"),
    assumptions=DENSITIES + ("f convex with f(1) = 0, f* its conjugate, T(x) any critic with values in dom f*",),
    mutants=(
        Mutant("conjugate_under_p", {"lower": P * _t_val - P * _fstar_any(_t_val)},
               r"$\E_P f^*(T)$ for $\E_Q f^*(T)$: the conjugate term belongs under $Q$."),
        Mutant("gap_weighted_by_p", {"gap": P * (_f_any(P / Q) + _fstar_any(_t_val) - P / Q * _t_val)},
               r"The Fenchel-Young gap weighted by $p$ instead of $q$."),
    ),
    references=("nguyen2010estimating", "nowozin2016fgan"),
    code=("gencode.divergences.f_variational_bound",),
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 10. Pinsker's inequality for two points, and the convergence hierarchy

_pa = sym("a", (0, 1), positive=True)  # P = Bernoulli(a)
_pb = sym("b", (0, 1), positive=True)  # Q = Bernoulli(b)
_tt = sym("t", (0, 1), positive=True)


def bernoulli_kl(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """KL(Bernoulli(a) || Bernoulli(b))."""
    return a * sp.log(a / b) + (1 - a) * sp.log((1 - a) / (1 - b))


class PinskerGap(sp.Function):
    r"""``int_a^b (t - a) (1 - 2t)^2 / (t (1 - t)) dt`` for ``a, b`` in ``(0, 1)``: non-negative, since the
    integrand has the sign of ``t - a``, which is the sign of ``b - a`` on the interval of integration.

    Its closed form :math:`\mathrm{KL}(\mathrm{Bern}(a) \Vert \mathrm{Bern}(b)) - 2 (a - b)^2` is a claim the
    identity ``divergences.pinsker.two_point`` checks by the fundamental theorem of calculus (the value at
    ``b = a`` and the derivative in ``b``), as :class:`derivations.core.LogGap` is checked by
    ``divergences.log_inequality``.
    """

    def _eval_is_nonnegative(self):
        if all(a.is_positive for a in self.args):
            return True
        return None

    def _latex(self, printer, exp=None):  # noqa: ARG002
        a, b = (printer._print(x) for x in self.args)
        return rf"\int_{{{a}}}^{{{b}}} \frac{{(t - {a})(1 - 2t)^2}}{{t(1 - t)}}\, \d t"


def _pinsker_closed(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return bernoulli_kl(a, b) - 2 * (a - b) ** 2


def _expand_pinsker(e: sp.Expr) -> sp.Expr:
    return split_logs(sp.sympify(e).replace(PinskerGap, _pinsker_closed))


_PINSKER_INTEGRAND = (_tt - _pa) * (1 - 2 * _tt) ** 2 / (_tt * (1 - _tt))

pinsker_two_point = register(Identity(
    id="divergences.pinsker.two_point",
    title=r"Pinsker's inequality for two-point distributions: $\mathrm{KL} \ge 2\,\mathrm{TV}^2$",
    chapter=CHAPTER,
    claim={"bound": 2 * (_pa - _pb) ** 2},
    check=all_of(
        "KL(Bern(a) || Bern(b)) - bound must equal the certificate G(a, b) = int_a^b (t - a)(1 - 2t)^2/(t(1 - t)) dt, "
        "non-negative since its integrand has the sign of t - a (t(1 - t) <= 1/4 is (1 - 2t)^2 >= 0); "
        "G's closed form KL - 2(a - b)^2 checked by the fundamental theorem of calculus: it vanishes at b = a and "
        "its derivative in b is the integrand at t = b; logarithms split; cancel. TV(Bern(a), Bern(b)) = |a - b|",
        nonnegative(lambda c: bernoulli_kl(_pa, _pb) - c["bound"], lambda c: PinskerGap(_pa, _pb),
                    "difference = G(a, b)", prepare=_expand_pinsker),
        Check("G(a, a) = 0 and dG/db = (b - a)(1 - 2b)^2/(b(1 - b))",
              lambda c: [split_logs(_pinsker_closed(_pa, _pb).xreplace({_pb: _pa})),
                         sp.diff(_pinsker_closed(_pa, _pb), _pb) - _PINSKER_INTEGRAND.xreplace({_tt: _pb})]),
    ),
    template=(r"\KL\big(\mathrm{Bern}(a) \,\Vert\, \mathrm{Bern}(b)\big) - $bound "
              r"= \int_a^b \frac{(t - a)(1 - 2t)^2}{t(1 - t)}\, \d t \;\ge\; 0, \qquad "
              r"\mathrm{TV}\big(\mathrm{Bern}(a), \mathrm{Bern}(b)\big) = |a - b|"),
    assumptions=("a, b in (0, 1); natural logarithms",),
    mutants=(
        Mutant("constant_four", {"bound": 4 * (_pa - _pb) ** 2},
               r"$\KL \ge 4\,\mathrm{TV}^2$: the constant 2 is sharp (near $a = b = \tfrac12$), so 4 fails."),
        Mutant("linear_in_tv", {"bound": 2 * sp.Abs(_pa - _pb)},
               r"$\KL \ge 2\,\mathrm{TV}$: KL is quadratic near $a = b$, so a linear lower bound fails."),
        Mutant("tv_squared_over_two", {"bound": (_pa - _pb) ** 2 / 2 + sp.Rational(1, 50)},
               r"A bound with a constant term: false at $a = b$, where KL is 0."),
    ),
    references=("pinsker1964information", "csiszar1967information", "tsybakov2009introduction"),
    scope="general",
))


def _js_tv_parts() -> list[Check]:
    parts: list[Check] = []
    def jensen_gap(big, small):
        # (big + small)/2 times the Jensen gap of the negative binary entropy between the points 0 and 1/2,
        # weights 1 - beta and beta, at alpha = small/(big + small): a sum of Gibbs gaps (big = small + d)
        al, al_bar = small / (big + small), big / (big + small)
        beta, beta_bar = 2 * small / (big + small), _d / (big + small)
        return (big + small) / 2 * (beta_bar * (LogGap(al_bar) + al) + beta / 2 * (LogGap(2 * al) + LogGap(2 * al_bar)))

    for at, cert in (({P: Q + _d}, jensen_gap(Q + _d, Q)), ({Q: P + _d}, jensen_gap(P + _d, P))):
        parts.append(ProbedNonNegative(
            "factor * |p - q|/2 - j(p, q) >= 0",
            lambda c, at=at: [_abs_together((c["factor"] * sp.Abs(P - Q) / 2 - _INTEGRANDS["js"]).xreplace(at))],
            certificate=lambda c, cert=cert: cert, prepare=split_logs,
            probes=tuple({_d: sp.Integer(10**e_), P: sp.Integer(1), Q: sp.Integer(1)} for e_ in (3, 6, 9))))
    return parts


js_tv = register(Identity(
    id="divergences.hierarchy.js_tv",
    title=r"$\mathrm{JS} \le \log 2 \cdot \mathrm{TV}$: total variation controls Jensen-Shannon",
    chapter=CHAPTER,
    claim={"factor": sp.log(2)},
    check=all_of(
        "at each point, in both orderings (p = q + d, q = p + d): factor |p - q|/2 minus the JS integrand "
        "must equal (p + q)/2 times the Jensen gap of the concave binary entropy H between 0 and 1/2 at "
        "alpha = min(p, q)/(p + q) = beta/2, i.e. (1 - beta) KL(Bern(0) || Bern(alpha)) + beta KL(Bern(1/2) || "
        "Bern(alpha)) written as Gibbs gaps, non-negative by construction; integrating gives the bound; "
        "logarithms split; cancel",
        *_js_tv_parts(),
    ),
    template=r"\JS(p \,\Vert\, q) \;\le\; $factor \cdot \mathrm{TV}(p, q)",
    assumptions=DENSITIES,
    mutants=(
        Mutant("factor_half_log2", {"factor": sp.log(2) / 2},
               r"$\tfrac12\log 2$: disjoint supports have $\JS = \log 2$ and $\mathrm{TV} = 1$."),
        Mutant("factor_half", {"factor": sp.Rational(1, 2)},
               r"$\tfrac12 < \log 2$: fails where the densities are far apart."),
    ),
    references=("lin1991divergence",),
    code=("gencode.divergences.js_discrete", "gencode.divergences.tv_discrete"),
    scope="general",
))

_mass = sym("tau_TV", (0, 1), tex=r"\tau", positive=True)  # TV(P, Q): the mass the coupling moves
_diam = sym("d", positive=True)  # the diameter of the space
_e = sym("e", positive=True)  # the mean distance moved is d / (1 + e) <= d
_mn, _pp, _qq = sym("mu", positive=True), sym("pi", positive=True), sym("kappa", positive=True)


def _w1_tv_parts() -> list[Check]:
    # marginal of the coupling gamma = diag(min(p, q)) + (p - min)(q - min)^T / TV at a point, both orderings:
    # rows: min + (p - min) * [int (q - min) = 1 - (1 - TV) = TV] / TV = p
    marg = Check("row marginal of the coupling", lambda c: [
        (_mn + (_pp - _mn) * (1 - (1 - _mass)) / _mass - _pp)])
    bound = nonnegative(lambda c: c["bound"] - _mass * _diam / (1 + _e),
                        lambda c: _mass * _diam * _e / (1 + _e), "d TV - (moved mass) (mean distance moved)")
    return [marg, bound]


w1_tv = register(Identity(
    id="divergences.hierarchy.w1_tv",
    title=r"On a space of diameter $d$, $W_1 \le d \cdot \mathrm{TV}$",
    chapter=CHAPTER,
    claim={"bound": _diam * _mass},
    check=all_of(
        "the coupling that leaves min(p, q) in place and spreads the rest, (p - min)(q - min)/TV, has the marginal "
        "p (row sums, using int (q - min(p, q)) = TV, divergences.tv.bounds) and, by symmetry, q; it moves mass "
        "TV (its diagonal part costs 0) over a mean distance d/(1 + e) <= d, so bound - cost must equal "
        "TV d e/(1 + e) >= 0 (certificate); cancel",
        *_w1_tv_parts(),
    ),
    template=(r"W_1(P, Q) \;\le\; \E_{\gamma}\|X - Y\| \;\le\; $bound, \qquad "
              r"\gamma = \operatorname{diag}\big(\min(p, q)\big) + \frac{(p - \min(p, q)) \otimes (q - \min(p, q))}"
              r"{\mathrm{TV}(P, Q)}, \quad \tau = \mathrm{TV}(P, Q)"),
    assumptions=("P, Q on a space of diameter d (every distance <= d), TV(P, Q) = tau > 0",
                 "the moved part of the coupling has mass tau and mean distance d/(1 + e) for some e >= 0 (any value in (0, d])"),
    mutants=(
        Mutant("half_diameter", {"bound": _diam * _mass / 2},
               r"$\tfrac d2\,\mathrm{TV}$: two points at distance $d$ have $W_1 = d$ and $\mathrm{TV} = 1$."),
        Mutant("tv_squared", {"bound": _diam * _mass**2},
               r"$d\,\mathrm{TV}^2$: too small when TV is small (mixtures $(1 - \tau)P + \tau\delta_z$)."),
    ),
    references=("gibbs2002choosing", "villani2009optimal"),
    code=("gencode.divergences.w1_exact",),
    scope="general",
))

# Counterexamples to the converses.
_nn = sym("n", positive=True)  # n >= 1; the Dirac at 1/n
_eps = sym("epsilon", (0, 1), positive=True)  # 1/n in the mixture (1 - 1/n) Q + (1/n) R


def _dirac_residuals(c: Claim) -> list[sp.Expr]:
    # two atoms, 0 and 1/n: P_n = (0, 1), Q = (1, 0); the only coupling moves mass 1 by 1/n
    js = (_xlogy(1, sp.Rational(1, 2)) + _xlogy(1, sp.Rational(1, 2))) / 2
    kl_lower = _xlogy(1, _mix) / (1 - _mix)  # KL(P_n || (1 - delta) Q + delta P_n) / (1 - delta): P_n's atom has mass delta
    return [split_logs(c["js"] - js), c["tv"] - 1, c["w1"] - 1 * sp.Abs(1 / _nn - 0),
            sp.limit(1 / kl_lower, _mix, 0, "+") - 1 / c["kl"]]


diracs = register(Identity(
    id="divergences.hierarchy.diracs",
    title=r"$\delta_{1/n} \to \delta_0$ in $W_1$, but not in JS, TV or KL",
    chapter=CHAPTER,
    claim={"w1": 1 / _nn, "js": sp.log(2), "tv": sp.Integer(1), "kl": sp.oo},
    check=residual_check(
        "two atoms 0 and 1/n, P_n = delta_{1/n}, Q = delta_0: JS, TV from the masses (1, 0) and (0, 1), 0 log 0 = 0; "
        "W1: the only coupling moves mass 1 by 1/n; KL: by convexity in the second argument, "
        "KL(P_n || Q) >= KL(P_n || (1 - delta) Q + delta P_n)/(1 - delta) = log(1/delta)/(1 - delta), whose "
        "reciprocal -> 0 as delta -> 0; cancel",
        _dirac_residuals,
    ),
    template=(r"W_1(\delta_{1/n}, \delta_0) = $w1 \to 0, \qquad \JS = $js, \quad \mathrm{TV} = $tv, \quad "
              r"\KL(\delta_{1/n} \,\Vert\, \delta_0) = $kl \quad \text{for every } n"),
    assumptions=("n >= 1; point masses on the real line",),
    mutants=(
        Mutant("w1_squared", {"w1": 1 / _nn**2}, r"$1/n^2$, the squared distance ($W_2^2$), for $W_1$."),
        Mutant("js_vanishes", {"js": 1 / _nn}, r"JS taken to shrink with the distance: it stays $\log 2$."),
        Mutant("kl_finite", {"kl": sp.log(_nn)}, r"A finite KL: the supports are disjoint, KL is infinite."),
    ),
    references=("arjovsky2017wasserstein",),
    code=("gencode.divergences.w1_exact", "gencode.divergences.js_discrete"),
    scope="general",
))


def _mixture_js(e: sp.Expr) -> sp.Expr:
    """JS((1 - e) Q + e R, Q) with R's support disjoint from Q's: the ratio p/q is constant (1 - e) on Q's
    support and the data have no mass on R's, so the integrals reduce to the masses."""
    on_q = (_xlogy(1 - e, (2 - e) / 2) + _xlogy(1, (2 - e) / 2)) / 2  # mass 1 of Q, 1 - e of P_n there
    on_r = _xlogy(e, e / 2) / 2  # mass e of P_n, none of Q
    return on_q + on_r


_kk = sym("k", positive=True)  # epsilon = 1/(1 + k): 1 - epsilon and 2 - epsilon become sums of positives


def _mixture_residuals(c: Claim) -> list[sp.Expr]:
    at = {_eps: 1 / (1 + _kk)}
    kl_lower = (_xlogy(1 - _eps, (1 - _mix) * 1 + _mix * (1 - _eps)) + _xlogy(_eps, _mix * _eps)) / (1 - _mix)
    return [split_logs((c["js"] - _mixture_js(_eps)).xreplace(at)), c["tv"] - _eps,
            sp.limit(c["js"], _eps, 0, "+"),  # JS -> 0 as epsilon = 1/n -> 0
            sp.limit(1 / kl_lower, _mix, 0, "+") - 1 / c["kl"],
            split_logs((c["reverse"] - _xlogy(1, 1 - _eps)).xreplace(at))]


mixture_example = register(Identity(
    id="divergences.hierarchy.mixture",
    title=r"$(1 - \epsilon) Q + \epsilon R \to Q$ in JS and TV while the KL stays infinite",
    chapter=CHAPTER,
    claim={"js": sp.log(2) - (2 - _eps) * sp.log(2 - _eps) / 2 + (1 - _eps) * sp.log(1 - _eps) / 2,
           "tv": _eps, "kl": sp.oo, "reverse": -sp.log(1 - _eps)},
    check=residual_check(
        "P = (1 - epsilon) Q + epsilon R with R's support disjoint from Q's: on Q's support p/q = 1 - epsilon, on R's "
        "q = 0, so every integral reduces to the two masses; JS, TV and KL(Q || P) computed, 0 log 0 = 0; "
        "JS -> 0 as epsilon -> 0 (limit); KL(P || Q) infinite by the convexity bound in delta (as for the Diracs); "
        "logarithms split; cancel",
        _mixture_residuals,
    ),
    template=(r"\begin{aligned} \JS(P_\epsilon \,\Vert\, Q) &= $js \to 0, \qquad \mathrm{TV} = $tv, \\ "
              r"\KL(P_\epsilon \,\Vert\, Q) &= $kl, \qquad \KL(Q \,\Vert\, P_\epsilon) = $reverse "
              r"\end{aligned}"),
    assumptions=("P_epsilon = (1 - epsilon) Q + epsilon R, epsilon = 1/n in (0, 1), R concentrated where Q has no mass",),
    mutants=(
        Mutant("js_log2_times_eps_squared", {"js": sp.log(2) * _eps**2},
               r"$\epsilon^2 \log 2$: JS is of order $\epsilon$, not $\epsilon^2$."),
        Mutant("kl_small", {"kl": _eps * sp.log(2)},
               r"A KL that vanishes with $\epsilon$: the mixture puts mass where $Q$ has none, so it is infinite."),
        Mutant("reverse_sign", {"reverse": sp.log(1 - _eps)}, r"$\log(1 - \epsilon) < 0$ for the reverse KL."),
    ),
    references=("arjovsky2017wasserstein",),
    code=("gencode.divergences.js_discrete", "gencode.divergences.kl_discrete"),
    scope="general",
))
