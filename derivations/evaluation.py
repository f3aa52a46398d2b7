"""Evaluating generative models: the Frechet distance and k-nearest-neighbour precision and coverage.

The Frechet distance between two Gaussians is their squared Wasserstein-2 distance,

    W_2^2(N(mu_1, S_1), N(mu_2, S_2)) = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2}),

and FID is this number for Gaussians fitted to features of real and generated samples.  Registered:

1. ``fid.frechet_1d``: in one dimension it is ``(m_1 - m_2)^2 + (s_1 - s_2)^2``; the monotone
   coupling attains it, no coupling does better (the covariance of a coupling is at most
   ``s_1 s_2``), and the trace formula gives the same number;
2. ``fid.frechet_commuting``: for commuting covariances (a common eigenbasis) the trace term is
   ``||S_1^{1/2} - S_2^{1/2}||_F^2``, checked on 2 x 2 matrices with a symbolic rotation (the
   claimed square roots are verified by squaring them);
3. ``fid.mean_bias``: the mean term of a plug-in estimate from ``n`` samples each is biased upwards
   by ``(tr S_1 + tr S_2) / n``: FID between two samples of one law is not zero;
4. ``prdc.coverage_identical``: for two samples of one continuous law (``n`` each) the expected
   coverage with k-NN balls is ``1 - C(n-1, k) / C(2n-1, k)``, which tends to ``1 - 2^-k``;
5. ``prdc.density_identical``: the expected density is exactly 1.

The last two rest on exchangeability: the distances from a real point to the other points are
i.i.d. when both samples come from one continuous law, so their ranks are uniformly random.
"""

from __future__ import annotations

import sympy as sp

from .core import Claim, Check, Identity, Mutant, equal, gaussian_expectation, register, sym

# ---------------------------------------------------------------------------------------------
# 1. One dimension.

m1, m2 = sym("m_1", real=True), sym("m_2", real=True)
s1, s2 = sym("s_1", positive=True), sym("s_2", positive=True)
x = sym("x", real=True)


def _frechet_1d_residuals(claim: Claim) -> list[sp.Expr]:
    y = m2 + s2 / s1 * (x - m1)  # the monotone (quantile) coupling: Y = T(X)
    monotone = gaussian_expectation((x - y) ** 2, x, m1, s1**2)
    # any coupling: E(X - Y)^2 = (m_1 - m_2)^2 + s_1^2 + s_2^2 - 2 Cov(X, Y), and Cov <= s_1 s_2
    best_bound = (m1 - m2) ** 2 + s1**2 + s2**2 - 2 * s1 * s2
    trace_formula = (m1 - m2) ** 2 + s1**2 + s2**2 - 2 * sp.sqrt(sp.sqrt(s1**2) * s2**2 * sp.sqrt(s1**2))
    return [monotone - claim["W2sq"], best_bound - claim["W2sq"], trace_formula - claim["W2sq"]]


frechet_1d = register(Identity(
    id="fid.frechet_1d",
    title="The Frechet (W2) distance between two 1-D Gaussians",
    chapter="evaluation",
    claim={"W2sq": (m1 - m2) ** 2 + (s1 - s2) ** 2},
    check=Check("Gaussian moments of the monotone coupling; the Cauchy-Schwarz bound Cov <= s_1 s_2 "
                "attained; the trace formula; cancel", _frechet_1d_residuals),
    template=r"W_2^2\bigl(\mathcal{N}(m_1, s_1^2), \mathcal{N}(m_2, s_2^2)\bigr) = $W2sq",
    assumptions=("s_1, s_2 > 0", "W_2^2 = min over couplings of E (X - Y)^2"),
    mutants=(
        Mutant("variances", {"W2sq": (m1 - m2) ** 2 + (s1**2 - s2**2) ** 2},
               "Variances compared where standard deviations belong."),
        Mutant("independent_coupling", {"W2sq": (m1 - m2) ** 2 + s1**2 + s2**2},
               "The cost of the independent coupling, which is not optimal."),
    ),
    references=("dowson1982frechet", "heusel2017gans"),
    code=("gencode.metrics.frechet_distance",),
))

# ---------------------------------------------------------------------------------------------
# 2. Commuting covariances in two dimensions.

t = sym("t", real=True)  # rotation parameter: cos = (1 - t^2)/(1 + t^2), sin = 2t/(1 + t^2)
a, b, c, d = (sym(n, positive=True) for n in ("a", "b", "c", "d"))  # square roots of eigenvalues
e1, e2 = sym("e_1", real=True), sym("e_2", real=True)  # mu_1 - mu_2

_cos, _sin = (1 - t**2) / (1 + t**2), 2 * t / (1 + t**2)
R = sp.Matrix([[_cos, -_sin], [_sin, _cos]])


def _rot(*diag: sp.Expr) -> sp.Matrix:
    return R * sp.diag(*diag) * R.T


S1, S2 = _rot(a**2, b**2), _rot(c**2, d**2)
"""The two commuting covariances (for readers who want to see them)."""


def _commuting_residuals(claim: Claim) -> list[sp.Expr]:
    # R is orthogonal, so (R X R^T)(R Y R^T) = R X Y R^T and tr(R X R^T) = tr X: every product and
    # trace reduces to diagonal matrices once R^T R = I is checked.
    orthogonal = list(R.T * R - sp.eye(2))
    half, half_M = sp.diag(a, b), sp.diag(a * c, b * d)  # S1^{1/2} and the claimed root, in the eigenbasis
    squares = list(half * half - sp.diag(a**2, b**2))
    squares += list(half_M * half_M - half * sp.diag(c**2, d**2) * half)
    trace_term = (sp.diag(a**2, b**2) + sp.diag(c**2, d**2) - 2 * half_M).trace()
    return orthogonal + squares + [e1**2 + e2**2 + trace_term - claim["W2sq"]]


frechet_commuting = register(Identity(
    id="fid.frechet_commuting",
    title="The Frechet distance for commuting covariances",
    chapter="evaluation",
    claim={"W2sq": e1**2 + e2**2 + (a - c) ** 2 + (b - d) ** 2},
    check=Check("2 x 2 covariances R diag(.) R^T with a rational rotation: R^T R = I checked, then the "
                "claimed square roots squared back in the eigenbasis; trace; cancel", _commuting_residuals),
    template=(r"\|\mu_1 - \mu_2\|^2 + \operatorname{tr}\Bigl(\Sigma_1 + \Sigma_2 - "
              r"2\bigl(\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}\bigr)^{1/2}\Bigr) = $W2sq"),
    assumptions=("Sigma_1 = R diag(a^2, b^2) R^T, Sigma_2 = R diag(c^2, d^2) R^T, one rotation R",
                 "a, b, c, d > 0; mu_1 - mu_2 = (e_1, e_2)",
                 "the PSD square root is unique, so a symmetric PSD matrix that squares to S is S^{1/2}"),
    mutants=(
        Mutant("sqrt_of_trace", {"W2sq": e1**2 + e2**2 + a**2 + b**2 + c**2 + d**2
                                 - 2 * sp.sqrt(a**2 * c**2 + b**2 * d**2)},
               r"The square root of the trace, $\sqrt{\operatorname{tr}(\Sigma_1\Sigma_2)}$, in place of "
               r"the trace of the square root."),
        Mutant("variances", {"W2sq": e1**2 + e2**2 + (a**2 - c**2) ** 2 + (b**2 - d**2) ** 2},
               "Eigenvalues (variances) compared instead of their square roots."),
        Mutant("missing_two", {"W2sq": e1**2 + e2**2 + a**2 + b**2 + c**2 + d**2 - a * c - b * d},
               "The factor 2 of the cross term dropped."),
    ),
    references=("dowson1982frechet", "heusel2017gans"),
    code=("gencode.metrics.frechet_distance",),
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
))

# ---------------------------------------------------------------------------------------------
# 4. and 5. Coverage and density of two samples of one law.

k = sym("k", positive=True, integer=True)
N_ = sym("N", (1, 1000), positive=True)  # number of real samples
M_ = sym("M", (1, 1000), positive=True)  # number of generated samples
KS = (1, 2, 3, 4, 5)


def _coverage_residuals(claim: Claim) -> list[sp.Expr]:
    out = []
    for kk in KS:
        # the k nearest of the N - 1 other real and N fake points, in uniformly random order,
        # are all real (no fake in the k-NN ball): draws without replacement
        none = sp.Mul(*[(n - 1 - j) / (2 * n - 1 - j) for j in range(kk)])
        formula = sp.expand_func(claim["coverage"].xreplace({k: kk}))
        out.append(formula - (1 - none))
        num, den = sp.fraction(sp.cancel(1 - none))
        # a rational function whose numerator and denominator have the same degree tends to
        # the ratio of their leading coefficients
        num, den = sp.Poly(num, n), sp.Poly(den, n)
        out.append(sp.Integer(num.degree() - den.degree()))
        out.append(num.LC() / den.LC() - claim["limit"].xreplace({k: kk}))
    return out


coverage_identical = register(Identity(
    id="prdc.coverage_identical",
    title="Expected coverage of two samples of one law, and its limit 1 - 2^-k",
    chapter="evaluation",
    claim={"coverage": 1 - sp.binomial(n - 1, k) / sp.binomial(2 * n - 1, k),
           "limit": 1 - sp.Rational(1, 2) ** k},
    check=Check("for k = 1..5: exchangeable ranks, sequential draws without replacement; "
                "binomials expanded; cancel; limit as the ratio of leading coefficients", _coverage_residuals),
    template=(r"\mathbb{E}[\mathrm{coverage}] = $coverage \;\xrightarrow[n \to \infty]{}\; $limit"),
    assumptions=("n real and n generated samples, i.i.d. from one continuous law",
                 "k-NN balls of real points (k-th neighbour among the other real points)",
                 "checked for k = 1, ..., 5"),
    mutants=(
        Mutant("limit_one", {"limit": sp.Integer(1)},
               "Perfect coverage in the limit, as if every ball eventually caught a generated point."),
        Mutant("with_replacement", {"coverage": 1 - ((n - 1) / (2 * n - 1)) ** k},
               "Draws with replacement: right limit, wrong finite-n value."),
    ),
    references=("naeem2020reliable",),
    code=("gencode.metrics.density_coverage",),
    display={"coverage": sp.Add(1, -sp.Mul(sp.binomial(sp.Add(n, -1, evaluate=False), k, evaluate=False),
                                           sp.Pow(sp.binomial(sp.Add(2 * n, -1, evaluate=False), k, evaluate=False),
                                                  -1, evaluate=False), evaluate=False), evaluate=False),
             "limit": sp.Add(1, -sp.Pow(2, -k, evaluate=False), evaluate=False)},
))


def _density_residuals(claim: Claim) -> list[sp.Expr]:
    # each generated point lies in a real point's k-NN ball iff its rank among that real point's
    # N - 1 other real neighbours and itself is <= k: probability k / N
    expected = 1 / (k * M_) * M_ * N_ * (k / N_)
    return [expected - claim["density"]]


density_identical = register(Identity(
    id="prdc.density_identical",
    title="Expected density of two samples of one law is 1",
    chapter="evaluation",
    claim={"density": sp.Integer(1)},
    check=Check("linearity of expectation; rank of a generated point uniform among N; cancel",
                _density_residuals),
    template=r"\mathbb{E}[\mathrm{density}] = \frac{1}{kM} \sum_{j=1}^{M} \sum_{i=1}^{N} \frac{k}{N} = $density",
    assumptions=("N real and M generated samples, i.i.d. from one continuous law",
                 "density = (1/(kM)) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))]"),
    mutants=(
        Mutant("rank_among_others", {"density": N_ / (N_ - 1)},
               r"The probability $k/(N-1)$: the generated point forgotten among the candidates for the ball."),
    ),
    references=("naeem2020reliable",),
    code=("gencode.metrics.density_coverage",),
))
