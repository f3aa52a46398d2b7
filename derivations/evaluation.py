"""Evaluating generative models: the Frechet distance and k-nearest-neighbour precision and coverage.

The Frechet distance between two Gaussians is their squared Wasserstein-2 distance,

    W_2^2(N(mu_1, S_1), N(mu_2, S_2)) = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2}),

and FID is this number for Gaussians fitted to features of real and generated samples.  Registered:

0. ``fid.frechet_coupling`` (general, any dimension, any covariances): the linear map
   ``T = S_1^{-1/2} (S_1^{1/2} S_2 S_1^{1/2})^{1/2} S_1^{-1/2}`` pushes ``N(mu_1, S_1)`` to
   ``N(mu_2, S_2)`` at the cost given by the Frechet formula, so ``W_2^2`` is at most the formula;
   checked with matrix symbols (noncommutative algebra, cyclicity of the trace).  That no coupling
   does better is Dowson and Landau's theorem: cited, and checked in 1-D and for commuting
   covariances below;
1. ``fid.frechet_1d`` (general): in one dimension it is ``(m_1 - m_2)^2 + (s_1 - s_2)^2``; the
   monotone coupling attains it, and every coupling costs this plus twice the slack
   ``s_1 s_2 - Cov(X, Y) >= 0`` (Cauchy-Schwarz);
2. ``fid.frechet_commuting`` (general, any dimension): for covariances with a common eigenbasis the
   trace term is ``sum_i (a_i - c_i)^2 = ||S_1^{1/2} - S_2^{1/2}||_F^2`` (the claimed square roots
   are verified by squaring them);
3. ``fid.mean_bias``: the mean term of a plug-in estimate from ``n`` samples each is biased upwards
   by ``(tr S_1 + tr S_2) / n``: FID between two samples of one law is not zero;
4. ``prdc.coverage_identical``: for two samples of one continuous law (``n`` each) the expected
   coverage with k-NN balls is ``1 - C(n-1, k) / C(2n-1, k)``, which tends to ``1 - 2^-k``;
5. ``prdc.density_identical``: the expected density is exactly 1.

The last two rest on exchangeability: the distances from a real point to the other points are
i.i.d. when both samples come from one continuous law, so their ranks are uniformly random.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .core import Claim, Check, Identity, Mutant, Status, Verdict, equal, gaussian_expectation, register, sym
from .indexed_sums import ForEverySize, at_sizes

# ---------------------------------------------------------------------------------------------
# 0. The Frechet formula is the cost of a Gaussian coupling (any dimension, any covariances).

_d = sym("d", (1, 20), integer=True, positive=True)
_S1, _S2, _M, _C = (sp.MatrixSymbol(n, _d, _d) for n in ("Sigma_1", "Sigma_2", "M", "C"))
_tr = sp.Trace
_REWRITE = {_S1: _M * _M}  # M = Sigma_1^{1/2}
_ROOT = (_C * _C, _M * _S2 * _M)  # C = (M Sigma_2 M)^{1/2}
_T = _M.I * _C * _M.I  # the optimal map, symmetric (M, C symmetric)


def _reduce(e: sp.Expr) -> sp.Expr:
    """Substitute Sigma_1 = M M and C C = M Sigma_2 M, and cancel M M^{-1}."""
    e = e.subs(_REWRITE).doit()
    return e.subs(*_ROOT).doit()


def _cyclic(tr: sp.Expr) -> sp.Expr:
    """A trace of a product rotated so that no ``M^{-1} ... M`` pair is left (tr(AB) = tr(BA))."""
    arg = tr.arg
    if not isinstance(arg, sp.MatMul):
        return tr
    factors = list(arg.args)
    best = tr
    for k in range(len(factors)):
        rotated = sp.MatMul(*(factors[k:] + factors[:k])).doit()
        cand = _tr(rotated)
        if sp.count_ops(cand) < sp.count_ops(best):
            best = cand
    return best


def _traces(e: sp.Expr) -> sp.Expr:
    """Expand a trace of a sum into a sum of traces, reduce each, rotate each."""
    e = sp.expand(e.doit())
    out = sp.Integer(0)
    for term in sp.Add.make_args(e):
        coeff, rest = term.as_coeff_Mul()
        if isinstance(rest, sp.Trace):
            inner = sp.expand(_reduce(rest.arg))
            parts = sp.Add.make_args(inner) if isinstance(inner, sp.MatAdd) else (inner,)
            for part in parts:
                c2, mat = part.as_coeff_mmul() if hasattr(part, "as_coeff_mmul") else (1, part)
                out += coeff * c2 * _cyclic(_tr(sp.MatMul(*mat.args).doit() if isinstance(mat, sp.MatMul) else mat))
        else:
            out += term
    return out


@dataclass(frozen=True)
class MatrixCoupling(Check):
    """Proof with matrix symbols of any size d; refutation in d = 1, where every matrix is a
    positive number (``M = a``, ``Sigma_2 = b^2``, ``C = a b``) and a plain :class:`Check` applies."""

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        push = _reduce(_T * _S1 * _T) - claim["pushforward"]
        cost = _traces(claim["cost"]) - _traces(_tr(_S1) + _tr(_S2) - 2 * _tr(_S1 * _T))
        zero_push = sp.expand(push.doit()) == sp.ZeroMatrix(_d, _d) or push.doit() == 0
        if zero_push and sp.expand(cost) == 0:
            return Verdict(Status.PROVED, self.method)
        a, b = sp.Symbol("a_1d", positive=True), sp.Symbol("b_1d", positive=True)
        one = {_M: a, _S1: a**2, _S2: b**2, _C: a * b}

        def scalar(e: sp.Expr) -> sp.Expr:
            e = e.subs({_tr: sp.Lambda(sp.Symbol("X"), sp.Symbol("X"))}) if False else e
            e = e.replace(lambda x: isinstance(x, sp.Trace), lambda x: x.arg)
            e = e.subs({k: sp.Matrix([[v]]) for k, v in one.items()}).doit()
            return e[0, 0] if isinstance(e, sp.MatrixBase) else e

        def residuals(c: Claim) -> list[sp.Expr]:
            t1 = scalar(c["pushforward"])
            return [a**-1 * (a * b) * a**-1 * a**2 * a**-1 * (a * b) * a**-1 - t1,
                    scalar(c["cost"]) - (a**2 + b**2 - 2 * a * b)]

        verdict = Check(self.method, residuals, tries=self.tries)(claim, seed)
        if verdict.status is Status.REFUTED:
            return Verdict(Status.REFUTED, self.method, str(cost)[:160], verdict.witness)
        return Verdict(Status.INCONCLUSIVE, self.method, str(cost)[:160])


frechet_coupling = register(Identity(
    id="fid.frechet_coupling",
    title="The Frechet formula is the cost of a Gaussian coupling (an upper bound on W2^2, any d)",
    chapter="evaluation",
    claim={"pushforward": _S2, "cost": _tr(_S1) + _tr(_S2) - 2 * _tr(_C)},
    check=MatrixCoupling("matrix symbols of any size d: Sigma_1 = M^2, C^2 = M Sigma_2 M, M M^{-1} = I, "
                         "trace linear and cyclic; refutation in d = 1", lambda c: []),
    template=(r"T = \Sigma_1^{-1/2} C\, \Sigma_1^{-1/2}:\quad T \Sigma_1 T = $pushforward, \qquad "
              r"\mathbb{E}\|X - TX\|^2 = $cost, \qquad C = \bigl(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\bigr)^{1/2}"),
    assumptions=("Sigma_1, Sigma_2 symmetric positive definite, any dimension d; M = Sigma_1^{1/2}",
                 "X ~ N(0, Sigma_1); TX ~ N(0, T Sigma_1 T) since T is symmetric; "
                 "E||X - TX||^2 = tr((I - T) Sigma_1 (I - T)) = tr Sigma_1 - 2 tr(Sigma_1 T) + tr(T Sigma_1 T)",
                 "the means add ||mu_1 - mu_2||^2 (translate by mu_2 - mu_1); optimality of this coupling "
                 "is Dowson and Landau's theorem (cited)"),
    mutants=(
        Mutant("missing_two", {"cost": _tr(_S1) + _tr(_S2) - _tr(_C)}, "The factor 2 of the cross term dropped."),
        Mutant("no_root", {"cost": _tr(_S1) + _tr(_S2) - 2 * _tr(_M * _S2 * _M)},
               r"The cross term without its square root, $\operatorname{tr}(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})$."),
        Mutant("push_is_sigma1", {"pushforward": _S1}, r"The map taken to preserve $\Sigma_1$."),
    ),
    references=("dowson1982frechet", "heusel2017gans"),
    code=("gencode.metrics.frechet_distance",),
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 1. One dimension.

m1, m2 = sym("m_1", real=True), sym("m_2", real=True)
s1, s2 = sym("s_1", positive=True), sym("s_2", positive=True)
x = sym("x", real=True)
slack = sym("t", positive=True)  # s_1 s_2 - Cov(X, Y) >= 0


def _frechet_1d_residuals(claim: Claim) -> list[sp.Expr]:
    y = m2 + s2 / s1 * (x - m1)  # the monotone (quantile) coupling: Y = T(X)
    monotone = gaussian_expectation((x - y) ** 2, x, m1, s1**2)
    # any coupling (X, Y) with Cov(X, Y) = s_1 s_2 - t, t >= 0 by Cauchy-Schwarz: its cost is
    # E(X - Y)^2 = (E X - E Y)^2 + Var X + Var Y - 2 Cov(X, Y), which must be the claim plus 2 t
    any_coupling = (m1 - m2) ** 2 + s1**2 + s2**2 - 2 * (s1 * s2 - slack)
    trace_formula = (m1 - m2) ** 2 + s1**2 + s2**2 - 2 * sp.sqrt(sp.sqrt(s1**2) * s2**2 * sp.sqrt(s1**2))
    return [monotone - claim["W2sq"], any_coupling - (claim["W2sq"] + 2 * slack), trace_formula - claim["W2sq"]]


frechet_1d = register(Identity(
    id="fid.frechet_1d",
    title="The Frechet (W2) distance between two 1-D Gaussians",
    chapter="evaluation",
    claim={"W2sq": (m1 - m2) ** 2 + (s1 - s2) ** 2},
    check=Check("Gaussian moments of the monotone coupling; every coupling costs the claim plus 2 (s_1 s_2 - Cov) "
                ">= 0; the trace formula; cancel", _frechet_1d_residuals),
    template=r"W_2^2\bigl(\mathcal{N}(m_1, s_1^2), \mathcal{N}(m_2, s_2^2)\bigr) = $W2sq",
    assumptions=("s_1, s_2 > 0", "W_2^2 = min over couplings of E (X - Y)^2",
                 "Cov(X, Y) <= s_1 s_2 (Cauchy-Schwarz)"),
    mutants=(
        Mutant("variances", {"W2sq": (m1 - m2) ** 2 + (s1**2 - s2**2) ** 2},
               "Variances compared where standard deviations belong."),
        Mutant("independent_coupling", {"W2sq": (m1 - m2) ** 2 + s1**2 + s2**2},
               "The cost of the independent coupling, which is not optimal."),
    ),
    references=("dowson1982frechet", "heusel2017gans"),
    code=("gencode.metrics.frechet_distance",),
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 2. Commuting covariances in two dimensions.

_k = sym("i", integer=True, positive=True)
_a = sp.IndexedBase(sym("a", positive=True))  # square roots of the eigenvalues of Sigma_1
_cc = sp.IndexedBase(sym("c", positive=True))  # ... of Sigma_2, in the same eigenbasis
_e = sp.IndexedBase(sym("e", real=True))  # mu_1 - mu_2 in the eigenbasis
_root = sp.IndexedBase(sym("r", positive=True))  # eigenvalues of (Sigma_1^{1/2} Sigma_2 Sigma_1^{1/2})^{1/2}


def _commuting_residuals(claim: Claim) -> list[sp.Expr]:
    # In the common eigenbasis (a rotation changes no trace and no square root) every matrix is
    # diagonal: Sigma_1^{1/2} = diag(a_i), Sigma_1^{1/2} Sigma_2 Sigma_1^{1/2} = diag(a_i^2 c_i^2), whose
    # PSD square root diag(r_i) is checked by squaring (r_i = a_i c_i > 0, r_i^2 = a_i^2 c_i^2).
    r_i = _a[_k] * _cc[_k]
    trace = sp.Sum(_a[_k] ** 2 + _cc[_k] ** 2 - 2 * r_i, (_k, 1, _d))
    return [sp.Sum(r_i**2 - _a[_k] ** 2 * _cc[_k] ** 2, (_k, 1, _d)),
            sp.Sum(_e[_k] ** 2, (_k, 1, _d)) + trace - claim["W2sq"]]


frechet_commuting = register(Identity(
    id="fid.frechet_commuting",
    title="The Frechet distance for commuting covariances, in any dimension",
    chapter="evaluation",
    claim={"W2sq": sp.Sum(_e[_k] ** 2 + (_a[_k] - _cc[_k]) ** 2, (_k, 1, _d))},
    check=ForEverySize("in the common eigenbasis: diagonal square roots checked by squaring; trace; "
                       "sums combined (any d); refutation at d = 2", _commuting_residuals,
                       instances=(at_sizes({_d: 2}),)),
    template=(r"\|\mu_1 - \mu_2\|^2 + \operatorname{tr}\Bigl(\Sigma_1 + \Sigma_2 - "
              r"2\bigl(\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}\bigr)^{1/2}\Bigr) = $W2sq"),
    assumptions=("Sigma_1 = U diag(a_i^2) U^T, Sigma_2 = U diag(c_i^2) U^T with one orthogonal U, any d",
                 "a_i, c_i > 0; mu_1 - mu_2 = U e",
                 "the PSD square root is unique, so a symmetric PSD matrix that squares to S is S^{1/2}",
                 "tr(U X U^T) = tr X and (U X U^T)^{1/2} = U X^{1/2} U^T for orthogonal U"),
    mutants=(
        Mutant("sqrt_of_trace", {"W2sq": sp.Sum(_e[_k] ** 2 + _a[_k] ** 2 + _cc[_k] ** 2, (_k, 1, _d))
                                 - 2 * sp.sqrt(sp.Sum(_a[_k] ** 2 * _cc[_k] ** 2, (_k, 1, _d)))},
               r"The square root of the trace, $\sqrt{\operatorname{tr}(\Sigma_1\Sigma_2)}$, in place of "
               r"the trace of the square root."),
        Mutant("variances", {"W2sq": sp.Sum(_e[_k] ** 2 + (_a[_k] ** 2 - _cc[_k] ** 2) ** 2, (_k, 1, _d))},
               "Eigenvalues (variances) compared instead of their square roots."),
        Mutant("missing_two", {"W2sq": sp.Sum(_e[_k] ** 2 + _a[_k] ** 2 + _cc[_k] ** 2 - _a[_k] * _cc[_k],
                                              (_k, 1, _d))},
               "The factor 2 of the cross term dropped."),
    ),
    references=("dowson1982frechet", "heusel2017gans"),
    code=("gencode.metrics.frechet_distance",),
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 3. The sample-size bias of the mean term.

n = sym("n", (1, 1000), positive=True)
v1, v2 = sym("v_1", positive=True), sym("v_2", positive=True)
xbar, ybar = sym("xbar", real=True), sym("ybar", real=True)

_mean_term = gaussian_expectation(gaussian_expectation((xbar - ybar) ** 2, ybar, m2, v2 / n), xbar, m1, v1 / n)

mean_bias = register(Identity(
    id="fid.mean_bias",
    title="The mean term of a plug-in Frechet distance is biased by (tr S1 + tr S2)/n",
    chapter="evaluation",
    claim={"value": (m1 - m2) ** 2 + (v1 + v2) / n},
    check=equal({"value": _mean_term},
                "xbar ~ N(m_1, v_1/n), ybar ~ N(m_2, v_2/n) independent; Gaussian moments; cancel"),
    template=r"\mathbb{E}\bigl[(\bar x - \bar y)^2\bigr] = $value",
    assumptions=("xbar, ybar: means of n independent samples of N(m_1, v_1) and N(m_2, v_2)",
                 "in D dimensions the same holds coordinatewise: ||mu_1 - mu_2||^2 + (tr S_1 + tr S_2)/n"),
    mutants=(
        Mutant("unbiased", {"value": (m1 - m2) ** 2},
               "The plug-in estimate taken to be unbiased."),
        Mutant("n_minus_one", {"value": (m1 - m2) ** 2 + (v1 + v2) / (n - 1)},
               "Bessel's n - 1, which belongs to the sample variance, not to the variance of the mean."),
    ),
    references=("chong2020effectively",),
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 4. and 5. Coverage and density of two samples of one law.

k = sym("k", positive=True, integer=True)
N_ = sym("N", (1, 1000), positive=True, integer=True)  # number of real samples
M_ = sym("M", (1, 1000), positive=True, integer=True)  # number of generated samples
KS = (1, 2, 3, 4, 5)


def _coverage_residuals(claim: Claim) -> list[sp.Expr]:
    # Induction on k.  N_k = 1 - coverage_k is the probability that the k nearest of the n - 1
    # other real and n generated points (in uniformly random order) are all real.
    none = lambda kk: 1 - claim["coverage"].xreplace({k: kk})  # noqa: E731
    limit_none = lambda kk: 1 - claim["limit"].xreplace({k: kk})  # noqa: E731
    # base k = 1: the nearest point is real with probability (n - 1)/(2n - 1)
    base = sp.expand_func(none(1)) - (n - 1) / (2 * n - 1)
    # step: given k real points drawn, the (k+1)-th is real with probability (n-1-k)/(2n-1-k)
    factor = (n - 1 - k) / (2 * n - 1 - k)
    step = sp.combsimp(none(k + 1) / none(k)) - factor
    # the limit n -> oo: the factor is a ratio of two degree-1 polynomials in n, whose limit is
    # the ratio of their leading coefficients, 1/2, whatever k; base 1/2 as well
    num, den = (sp.Poly(e, n) for e in sp.fraction(sp.cancel(factor)))
    factor_limit = num.LC() / den.LC() if num.degree() == den.degree() == 1 else sp.nan
    return [base, step, limit_none(1) - sp.Rational(1, 2), limit_none(k + 1) - factor_limit * limit_none(k)]


coverage_identical = register(Identity(
    id="prdc.coverage_identical",
    title="Expected coverage of two samples of one law, and its limit 1 - 2^-k",
    chapter="evaluation",
    claim={"coverage": 1 - sp.binomial(n - 1, k) / sp.binomial(2 * n - 1, k),
           "limit": 1 - sp.Rational(1, 2) ** k},
    check=Check("induction on k: exchangeable ranks, sequential draws without replacement (base k = 1 and "
                "the ratio N_{k+1}/N_k by combsimp); the limit of each factor as the ratio of leading "
                "coefficients; cancel", _coverage_residuals),
    template=(r"\mathbb{E}[\mathrm{coverage}] = $coverage \;\xrightarrow[n \to \infty]{}\; $limit"),
    assumptions=("n real and n generated samples, i.i.d. from one continuous law",
                 "k-NN balls of real points (k-th neighbour among the other real points)",
                 "every k >= 1 (induction on k)"),
    mutants=(
        Mutant("limit_one", {"limit": sp.Integer(1)},
               "Perfect coverage in the limit, as if every ball eventually caught a generated point."),
        Mutant("with_replacement", {"coverage": 1 - ((n - 1) / (2 * n - 1)) ** k},
               "Draws with replacement: right limit, wrong finite-n value."),
    ),
    references=("naeem2020reliable",),
    code=("gencode.metrics.density_coverage",),
    scope="general",
    display={"coverage": sp.Add(1, -sp.Mul(sp.binomial(sp.Add(n, -1, evaluate=False), k, evaluate=False),
                                           sp.Pow(sp.binomial(sp.Add(2 * n, -1, evaluate=False), k, evaluate=False),
                                                  -1, evaluate=False), evaluate=False), evaluate=False),
             "limit": sp.Add(1, -sp.Pow(2, -k, evaluate=False), evaluate=False)},
))


_rank, _ii, _jj = (sym(nm, integer=True, positive=True) for nm in ("r", "i", "j"))


def _density_residuals(claim: Claim) -> list[sp.Expr]:
    # Y_j lies in X_i's k-NN ball iff its rank by distance from X_i, among the N points
    # {Y_j} and {X_i' : i' != i}, is at most k; by exchangeability every rank has probability 1/N
    in_ball = sp.Sum(1 / N_, (_rank, 1, k)).doit()
    # linearity of expectation over the M N indicators of the definition
    expected = 1 / (k * M_) * sp.Sum(sp.Sum(in_ball, (_ii, 1, N_)), (_jj, 1, M_)).doit()
    return [expected - claim["density"]]


density_identical = register(Identity(
    id="prdc.density_identical",
    title="Expected density of two samples of one law is 1",
    chapter="evaluation",
    claim={"density": sp.Integer(1)},
    check=Check("rank of a generated point uniform among N candidates: P(in ball) = sum_{r<=k} 1/N; "
                "linearity of expectation over the double sum; Sum.doit; cancel", _density_residuals),
    template=r"\mathbb{E}[\mathrm{density}] = \frac{1}{kM} \sum_{j=1}^{M} \sum_{i=1}^{N} \frac{k}{N} = $density",
    assumptions=("N real and M generated samples, i.i.d. from one continuous law",
                 "density = (1/(kM)) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))]"),
    mutants=(
        Mutant("rank_among_others", {"density": N_ / (N_ - 1)},
               r"The probability $k/(N-1)$: the generated point forgotten among the candidates for the ball."),
        Mutant("no_k", {"density": k}, r"The normalisation $1/(kM)$ taken as $1/M$."),
    ),
    references=("naeem2020reliable",),
    code=("gencode.metrics.density_coverage",),
    scope="general",
))


# ---------------------------------------------------------------------------------------------
# 6. The Inception Score is the exponential of a mutual information (Salimans et al. 2016).
#
# N generated samples x_i, a classifier's probabilities p_ik = p(y = k | x_i) over K classes, and the
# marginal pbar_k = (1/N) sum_i p_ik.  log IS = (1/N) sum_i KL(p(.|x_i) || pbar) = H(y) - H(y|x) = I(x; y)
# for the joint law (1/N) p_ik of (x, y).

from .core import LogGap, split_logs  # noqa: E402
from .indexed_sums import NonNegativeForEverySize, normalised, to_instance  # noqa: E402

_i, _cls = sp.Symbol("i", integer=True, positive=True), sp.Symbol("k", integer=True, positive=True)
_N = sp.Symbol("N", integer=True, positive=True)
_K = sp.Symbol("K", integer=True, positive=True)
_p = sp.IndexedBase(sym("p", positive=True))
_pbar = sp.IndexedBase(sym("pbar", positive=True))


def _marginal_rule(body: sp.Expr, limits):
    """sum_{i=1}^N p[i, k] * rest = N pbar[k] * rest when rest does not depend on i (the definition of pbar)."""
    factors = sp.Mul.make_args(body)
    for lim in limits:
        i_, lo, hi = lim
        if (lo, hi) != (1, _N):
            continue
        hits = [f for f in factors if isinstance(f, sp.Indexed) and f.base == _p and f.indices[0] == i_]
        rest = [f for f in factors if f not in hits]
        others = [L for L in limits if L is not lim]
        if len(hits) == 1 and all(i_ not in f.free_symbols for f in rest) and all(
                i_ not in (a.free_symbols | b.free_symbols) for _, a, b in others):
            return sp.Mul(_N, _pbar[hits[0].indices[1]], *rest), others
    return None


def _is_instance(e: sp.Expr) -> sp.Expr:
    """N = 2 samples, K = 2 classes, pbar_k the average of p_1k and p_2k."""
    out = to_instance(e, {_N: 2, _K: 2}, {_p: sym("p", (0, 1), positive=True), _pbar: sym("pbar", positive=True)})
    subs = {}
    for s_ in out.free_symbols:
        if s_.name.startswith("pbar_"):
            k_ = s_.name.split("_")[1]
            subs[s_] = (sp.Symbol(f"p_1_{k_}", positive=True) + sp.Symbol(f"p_2_{k_}", positive=True)) / 2
    out = out.xreplace(subs)
    # each p(. | x_i) sums to 1: p_i2 = 1 - p_i1
    out = out.xreplace({sp.Symbol(f"p_{i}_2", positive=True): 1 - sp.Symbol(f"p_{i}_1", positive=True) for i in (1, 2)})
    return out.xreplace({s_: sym(s_.name, (0, 1), positive=True) for s_ in out.free_symbols if s_.name.startswith("p_")})


_mean_kl = sp.Sum(_p[_i, _cls] * sp.log(_p[_i, _cls] / _pbar[_cls]), (_cls, 1, _K), (_i, 1, _N)) / _N
_H_y = -sp.Sum(_pbar[_cls] * sp.log(_pbar[_cls]), (_cls, 1, _K))
_H_y_given_x = -sp.Sum(_p[_i, _cls] * sp.log(_p[_i, _cls]), (_cls, 1, _K), (_i, 1, _N)) / _N
_MI_DISPLAY = sp.Add(-sp.Sum(sp.Mul(_pbar[_cls], sp.log(_pbar[_cls]), evaluate=False), (_cls, 1, _K)),
                     sp.Mul(sp.Pow(_N, -1, evaluate=False),
                            sp.Sum(sp.Mul(_p[_i, _cls], sp.log(_p[_i, _cls]), evaluate=False), (_cls, 1, _K), (_i, 1, _N)),
                            evaluate=False), evaluate=False)

inception_mi = register(Identity(
    id="is.mutual_information",
    title="log IS is the mutual information between the sample and its predicted label",
    chapter="evaluation",
    claim={"mi": _H_y - _H_y_given_x},
    check=ForEverySize(
        "for every N and K: logarithms split, the normal form of finite sums with the definition of the "
        "marginal, sum_i p_ik (...)_k = N pbar_k (...)_k; cancel. Mutants refuted on N = K = 2",
        lambda c: [split_logs(_mean_kl - c["mi"])],
        rules=(_marginal_rule,),
        instances=(("N = K = 2", _is_instance),),
    ),
    template=(r"\log \mathrm{IS} = \frac{1}{N}\sum_{i=1}^{N} \KL\big(p(y \mid x_i) \,\Vert\, \bar p(y)\big) "
              r"= $mi = H(y) - H(y \mid x) = I(x; y), \qquad \bar p_k = \frac{1}{N}\sum_{i=1}^N p_{ik}"),
    assumptions=("N samples x_i, K classes (any N, K); p_ik = p(y = k | x_i) > 0; pbar_k = (1/N) sum_i p_ik",
                 "the joint law of (x, y) puts mass p_ik / N on (x_i, k); its y-marginal is pbar"),
    mutants=(
        Mutant("conditional_entropy_added", {"mi": _H_y + _H_y_given_x},
               r"$H(y) + H(y \mid x)$: the conditional entropy with the wrong sign."),
        Mutant("without_one_over_n", {"mi": _H_y + sp.Sum(_p[_i, _cls] * sp.log(_p[_i, _cls]), (_cls, 1, _K), (_i, 1, _N))},
               r"The average over samples written without its $1/N$."),
        Mutant("entropy_of_marginal_only", {"mi": _H_y},
               r"$H(y)$ alone: that is $\log \mathrm{IS}$ only for a classifier that is certain of every sample."),
    ),
    references=("salimans2016improved", "cover2006elements"),
    code=("gencode.metrics.inception_score",),
    display={"mi": _MI_DISPLAY},
    scope="general",
))


class SelfInformation(sp.Function):
    r"""``-log p`` of a probability ``p`` (``0 < p <= 1``), non-negative: the information content of an outcome.
    Here ``p = p_ik <= sum_k p_ik = 1``."""

    def _eval_is_nonnegative(self):
        return True if self.args[0].is_positive else None

    def _latex(self, printer, exp=None):  # noqa: ARG002
        return rf"\left(-\log {printer._print(self.args[0])}\right)"


def _expand_self_information(e: sp.Expr) -> sp.Expr:
    return split_logs(sp.sympify(e).replace(SelfInformation, lambda a: -sp.log(a)))


def _is_bound_parts():
    rules = (normalised(_p, _K), normalised(_pbar, _K), _marginal_rule)
    mi = _H_y - _H_y_given_x
    lower = NonNegativeForEverySize(
        "log IS >= 0", lambda c: [c["mi_lower"]],
        certificate=lambda c: sp.Sum(_p[_i, _cls] * LogGap(_pbar[_cls] / _p[_i, _cls]), (_cls, 1, _K), (_i, 1, _N)) / _N,
        prepare=lambda e: split_logs(e.replace(LogGap, lambda a: a - 1 - sp.log(a))),
        rules=rules, instances=(("N = K = 2", _is_instance),))
    upper = NonNegativeForEverySize(
        "log K - log IS >= 0", lambda c: [c["log_classes"] - mi],
        certificate=lambda c: (sp.Sum(_pbar[_cls] * LogGap(1 / (_K * _pbar[_cls])), (_cls, 1, _K))
                               + sp.Sum(_p[_i, _cls] * SelfInformation(_p[_i, _cls]), (_cls, 1, _K), (_i, 1, _N)) / _N),
        prepare=lambda e: _expand_self_information(e.replace(LogGap, lambda a: a - 1 - sp.log(a))),
        rules=rules, instances=(("N = K = 2", _is_instance),))
    return lower, upper


def _all(method, *parts):
    from .divergences import all_of
    return all_of(method, *parts)


inception_bounds = register(Identity(
    id="is.bounds",
    title=r"$1 \le \mathrm{IS} \le K$",
    chapter="evaluation",
    claim={"mi_lower": _H_y - _H_y_given_x, "log_classes": sp.log(_K)},
    check=_all(
        "for every N and K, with sum_k p_ik = 1 and sum_k pbar_k = 1: log IS equals (1/N) sum_ik p_ik g(pbar_k/p_ik) "
        ">= 0 (Gibbs gaps); log K - log IS equals sum_k pbar_k g(1/(K pbar_k)) (the KL from pbar to the uniform "
        "law) plus H(y|x) = (1/N) sum_ik p_ik (-log p_ik), each term non-negative since p_ik <= 1; normal form "
        "of finite sums; cancel",
        *_is_bound_parts()),
    template=r"0 \;\le\; \log \mathrm{IS} = $mi_lower \;\le\; $log_classes",
    assumptions=("as is.mutual_information, and each p(. | x_i) sums to 1 over the K classes (so p_ik <= 1)",),
    mutants=(
        Mutant("upper_log_k_minus_one", {"log_classes": sp.log(_K - 1)},
               r"$\mathrm{IS} \le K - 1$: a perfect classifier on a generator that covers all $K$ classes equally "
               r"reaches $K$."),
        Mutant("entropies_exchanged", {"mi_lower": _H_y_given_x - _H_y},
               r"$H(y \mid x) - H(y)$, minus the mutual information: it is $\le 0$, so $\mathrm{IS} \ge 1$ "
               r"would fail for it."),
    ),
    references=("salimans2016improved", "barratt2018note"),
    code=("gencode.metrics.inception_score",),
    display={"mi_lower": _MI_DISPLAY},
    scope="general",
))


# ---------------------------------------------------------------------------------------------
# 7. KID: the unbiased estimator of MMD^2 (Gretton et al. 2012; Binkowski et al. 2018).
#
# For samples x_1..x_m ~ P and y_1..y_n ~ Q, all independent, and any kernel k,
#   MMD^2_u = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j) - 2/(mn) sum_{i,j} k(x_i, y_j).
# By linearity each off-diagonal term has expectation kxx = E k(x, x') (x, x' independent), each cross
# term kxy = E k(x, y); the diagonal terms k(x_i, x_i), whose expectation kdiag_x = E k(x, x) differs,
# are excluded.  The counts are sums with symbolic m, n.

_m, _n = (sym(f"{k}_kid", (2, 50), tex=k, integer=True, positive=True) for k in ("m", "n"))  # own names: n in (1, 40) elsewhere
_pa, _pb = sp.Symbol("a", integer=True, positive=True), sp.Symbol("b", integer=True, positive=True)
kxx, kyy, kxy = sym("k_xx", real=True), sym("k_yy", real=True), sym("k_xy", real=True)
kdx, kdy = sym("k_xdiag", real=True), sym("k_ydiag", real=True)


def _pairs(size: sp.Expr) -> sp.Expr:
    """The number of ordered pairs (a, b) with a != b among size points: all pairs minus the diagonal."""
    return (sp.Sum(1, (_pa, 1, size), (_pb, 1, size)) - sp.Sum(1, (_pa, 1, size))).doit()


def _kid_residuals(c: Claim) -> list[sp.Expr]:
    # E[estimator] written with the estimator's own normalisations: the claim gives the weights
    w_xx, w_yy, w_xy = c["w_xx"], c["w_yy"], c["w_xy"]
    expectation = (w_xx * (_pairs(_m) * kxx + c["diag"] * _m * kdx) + w_yy * (_pairs(_n) * kyy + c["diag"] * _n * kdy)
                   - 2 * w_xy * sp.Sum(1, (_pa, 1, _m), (_pb, 1, _n)).doit() * kxy)
    return [expectation - (kxx + kyy - 2 * kxy)]


kid_unbiased = register(Identity(
    id="kid.unbiased",
    title="The U-statistic of KID is an unbiased estimator of MMD^2, for any kernel",
    chapter="evaluation",
    claim={"w_xx": 1 / (_m * (_m - 1)), "w_yy": 1 / (_n * (_n - 1)), "w_xy": 1 / (_m * _n), "diag": sp.Integer(0)},
    check=Check(
        "linearity of expectation: the m(m - 1) off-diagonal pairs (counted as sums with symbolic m: m^2 - m) each "
        "have expectation k_xx, the mn cross pairs k_xy, the diagonal (included with weight 'diag') E k(x, x); "
        "the expectation must equal MMD^2 = k_xx + k_yy - 2 k_xy for every m, n >= 2 and every kernel; cancel",
        _kid_residuals),
    template=(r"\E\Big[$w_xx \sum_{i \ne j} k(x_i, x_j) + $w_yy \sum_{i \ne j} k(y_i, y_j) "
              r"- 2\, $w_xy \sum_{i, j} k(x_i, y_j)\Big] = \E\, k(x, x') + \E\, k(y, y') - 2\,\E\, k(x, y) = "
              r"\mathrm{MMD}^2(P, Q)"),
    assumptions=("x_1..x_m ~ P and y_1..y_n ~ Q, all independent, m, n >= 2; any kernel k with finite expectations",
                 "k_xx = E k(x, x'), x, x' ~ P independent; k_yy likewise; k_xy = E k(x, y); E k(x, x) is a "
                 "different number in general"),
    mutants=(
        Mutant("biased_v_statistic", {"w_xx": 1 / _m**2, "w_yy": 1 / _n**2, "diag": sp.Integer(1)},
               r"The V-statistic, $\frac{1}{m^2}\sum_{i, j}$ with the diagonal: biased by "
               r"$(\E k(x, x) - \E k(x, x'))/m$ and the like."),
        Mutant("off_diagonal_over_m_squared", {"w_xx": 1 / _m**2, "w_yy": 1 / _n**2},
               r"The diagonal excluded but the sum still divided by $m^2$: biased towards 0."),
    ),
    references=("gretton2012kernel", "binkowski2018demystifying"),
    code=("gencode.metrics.mmd2_unbiased", "gencode.metrics.kid"),
    scope="general",
))
