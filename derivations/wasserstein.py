"""Wasserstein GANs: Kantorovich-Rubinstein duality and the Lipschitz constraint.

The Wasserstein-1 distance is a linear programme over couplings,

    W_1(P, Q) = min_{pi in Pi(P, Q)} E_pi |X - Y|,

whose dual is a programme over 1-Lipschitz potentials (Kantorovich and Rubinstein),

    W_1(P, Q) = max_{||f||_L <= 1} E_P f - E_Q f.

Registered below (ids ``kr.*`` for the duality, ``wgan.*`` for the WGAN-specific results):

1. ``kr.weak_duality`` (general): for discrete laws with any numbers n and m of atoms, any coupling
   and any potential with ``f(x_i) - f(y_j) <= |x_i - y_j|``, ``E_P f - E_Q f <= E_pi |X - Y|``.
   The difference is ``sum_ij pi_ij s_ij`` with slacks ``s_ij >= 0``: the Lipschitz hypothesis.
2. ``kr.duality`` (instance): strong duality, which SymPy cannot prove in general, certified on
   three atoms of the line with crossing distribution functions: an explicit coupling and an
   explicit 1-Lipschitz potential have the same value, so by weak duality both are optimal.
   Larger supports are checked numerically in the tests (POT against scipy's LP).
3. ``kr.summation_by_parts`` (general, by induction on the number of atoms):
   ``sum_i f_i (p_i - q_i) = -sum_{i<n} (f_{i+1} - f_i)(F_i - G_i)``.
4. ``wgan.parallel_lines`` (general in theta): W_1 = theta from a coupling and a potential,
   JS = log 2 and KL = infinity from the JS and KL integrands on the two segments.
5. ``wgan.gp_pointwise`` (1-D, pointwise): the gradient-penalised critic's slope
   ``1 + g/(2 lambda rho)`` and its values, and the spurious stationary point
   ``-1 + g/(2 lambda rho)`` of the two-sided penalty.
6. ``wgan.power_iteration`` (general in the number of singular values): the Rayleigh quotient's
   error after k power iterations.
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

from .core import Claim, Check, Identity, Mutant, register, split_logs, sym
from .indexed_sums import ForEverySize, NonNegativeForEverySize, at_sizes

# ---------------------------------------------------------------------------------------------
# 1. Weak duality, for any discrete laws.

_n, _m = sym("n", (1, 40), integer=True, positive=True), sym("m", (1, 40), integer=True, positive=True)  # n as in autoregressive.py
_i, _j = sym("i", integer=True, positive=True), sym("j", integer=True, positive=True)
_pi = sp.IndexedBase(sym("pi", positive=True))  # the coupling's masses pi_ij >= 0
_cost = sp.IndexedBase(sym("c", real=True))  # |x_i - y_j|
_fx = sp.IndexedBase(sym("f", real=True))  # f(x_i)
_fy = sp.IndexedBase(sym("g", real=True))  # f(y_j)
_slack = sp.IndexedBase(sym("s", positive=True))  # |x_i - y_j| - (f(x_i) - f(y_j)) >= 0: the Lipschitz hypothesis
for _name, _dom in (("f_1", (-1, 1)), ("g_1", (-1, 1)), ("s_1_1", (0, Fraction(1, 8)))):
    sym(_name, _dom, real=True, **({"positive": True} if _name.startswith("s") else {}))  # witness domains

E_pi_cost = sp.Sum(_pi[_i, _j] * _cost[_i, _j], (_j, 1, _m), (_i, 1, _n))
E_P_f = sp.Sum(_fx[_i] * sp.Sum(_pi[_i, _j], (_j, 1, _m)), (_i, 1, _n))  # P_i = sum_j pi_ij
E_Q_f = sp.Sum(_fy[_j] * sp.Sum(_pi[_i, _j], (_i, 1, _n)), (_j, 1, _m))  # Q_j = sum_i pi_ij

weak_duality = register(Identity(
    id="kr.weak_duality",
    title="Weak duality: every 1-Lipschitz potential's value is at most every coupling's cost",
    chapter="wgan",
    claim={"cost": E_pi_cost},
    check=NonNegativeForEverySize(
        "marginals P_i = sum_j pi_ij, Q_j = sum_i pi_ij; cost - (E_P f - E_Q f) = sum_ij pi_ij s_ij",
        lambda c: [c["cost"] - (E_P_f - E_Q_f)],
        definitions={_cost[_i, _j]: _fx[_i] - _fy[_j] + _slack[_i, _j]},
        certificate=lambda c: sp.Sum(_pi[_i, _j] * _slack[_i, _j], (_j, 1, _m), (_i, 1, _n)),
        instances=(at_sizes({_n: 1, _m: 1}),)),
    template=(r"\mathbb{E}_P f - \mathbb{E}_Q f = \sum_{i=1}^{n} f(x_i) \sum_{j=1}^{m} \pi_{ij}"
              r" - \sum_{j=1}^{m} f(y_j) \sum_{i=1}^{n} \pi_{ij} \;\le\; $cost"),
    assumptions=(
        "P = sum_i P_i delta_{x_i}, Q = sum_j Q_j delta_{y_j}, any n and m; a coupling pi_ij >= 0 with "
        "row sums P_i and column sums Q_j",
        "c_ij = |x_i - y_j|; f 1-Lipschitz: f(x_i) - f(y_j) = c_ij - s_ij with s_ij >= 0",
    ),
    mutants=(
        Mutant("half_cost", {"cost": E_pi_cost / 2},
               r"Half the transport cost: a 1-Lipschitz potential can gain the whole distance $|x - y|$."),
        Mutant("squared_cost", {"cost": sp.Sum(_pi[_i, _j] * _cost[_i, _j] ** 2, (_j, 1, _m), (_i, 1, _n))},
               r"The squared cost $\mathbb{E}_\pi |X - Y|^2$ (the $W_2^2$ programme), which is smaller than "
               r"$\mathbb{E}_\pi|X - Y|$ for distances below 1."),
    ),
    references=("villani2009optimal",),
    scope="general",
    display={"cost": sp.Sum(_pi[_i, _j] * _cost[_i, _j], (_j, 1, _m), (_i, 1, _n))},
))


# ---------------------------------------------------------------------------------------------
# 2. Strong duality (Kantorovich-Rubinstein), certified on three points.

d1 = sym("Delta_1", positive=True)  # x_2 - x_1
d2 = sym("Delta_2", positive=True)  # x_3 - x_2
x1 = sym("x_1", real=True)
q1, w, q3 = (sym(n, positive=True) for n in ("q_1", "w", "q_3"))
u = sym("u", positive=True)  # F_P(x_1) - F_Q(x_1) > 0
v = sym("v", positive=True)  # F_Q(x_2) - F_P(x_2) > 0: the distribution functions cross
K = sym("K", positive=True)

xs = (x1, x1 + d1, x1 + d1 + d2)
P_mass = (q1 + u, w, q3 + v)
Q_mass = (q1, w + u + v, q3)
plan = sp.Matrix([[q1, u, 0], [0, w, 0], [0, v, q3]])
"""The monotone coupling: rows are P's atoms, columns Q's; u moves right by Delta_1, v left by Delta_2."""
potential = (sp.Integer(0), -d1, -d1 + d2)
"""A 1-Lipschitz potential: its slope is -sign(F_P - F_Q) on each gap."""


def _duality_residuals(claim: Claim) -> list[sp.Expr]:
    rows = [sum(plan.row(i)) - P_mass[i] for i in range(3)]
    cols = [sum(plan.col(j)) - Q_mass[j] for j in range(3)]
    # 1-Lipschitz on the line: |f_{i+1} - f_i| = x_{i+1} - x_i on each gap (then on every pair,
    # by the triangle inequality)
    lipschitz = [(potential[i + 1] - potential[i]) ** 2 - (xs[i + 1] - xs[i]) ** 2 for i in range(2)]
    cost = sum(plan[i, j] * sp.Abs(xs[i] - xs[j]) for i in range(3) for j in range(3))
    dual = sum(potential[i] * (P_mass[i] - Q_mass[i]) for i in range(3))
    dual_K = sum(K * potential[i] * (P_mass[i] - Q_mass[i]) for i in range(3))
    return rows + cols + lipschitz + [cost - claim["W1"], dual - claim["W1"], dual_K - claim["KW1"]]


duality = register(Identity(
    id="kr.duality",
    title="Strong duality, certified on three atoms with crossing distribution functions",
    chapter="wgan",
    claim={"W1": u * d1 + v * d2, "KW1": K * (u * d1 + v * d2)},
    check=Check("certificate: the coupling has marginals P and Q, the potential's slopes are +-1, and "
                "primal cost = dual value (cancel); optimality of both by kr.weak_duality", _duality_residuals),
    template=(r"W_1(P, Q) = \min_{\pi \in \Pi(P, Q)} \textstyle\sum_{ij} \pi_{ij} |x_i - x_j|"
              r" = \max_{\|f\|_L \le 1} \bigl(\mathbb{E}_P f - \mathbb{E}_Q f\bigr) = $W1, \qquad"
              r" \max_{\|f\|_L \le K} \bigl(\mathbb{E}_P f - \mathbb{E}_Q f\bigr) = $KW1"),
    assumptions=(
        "x_1 < x_2 = x_1 + Delta_1 < x_3 = x_2 + Delta_2",
        "P = (q_1 + u, w, q_3 + v), Q = (q_1, w + u + v, q_3) on (x_1, x_2, x_3), all masses > 0, total 1",
        "so F_P(x_1) - F_Q(x_1) = u > 0 and F_P(x_2) - F_Q(x_2) = -v < 0",
        "weak duality (kr.weak_duality): every coupling's cost >= every 1-Lipschitz potential's value",
    ),
    mutants=(
        Mutant("mean_difference", {"W1": -u * d1 + v * d2},
               r"The difference of the means $\mathbb{E}_P X - \mathbb{E}_Q X$, which is $W_1$ only when "
               r"the distribution functions do not cross."),
        Mutant("gaps_swapped", {"W1": u * d2 + v * d1}, "Each CDF difference paired with the wrong gap."),
        Mutant("K_divides", {"KW1": (u * d1 + v * d2) / K},
               r"The $K$-Lipschitz value divided by $K$ instead of multiplied."),
    ),
    references=("villani2009optimal", "arjovsky2017wasserstein"),
    code=("gencode.metrics.wasserstein1_1d",),
    scope="instance",
    instance="three atoms on a line with crossing distribution functions (the general theorem is cited)",
))

# ---------------------------------------------------------------------------------------------
# 3. Summation by parts, for any number of atoms (induction on n).

f_n, f_n1 = sym("f_n", real=True), sym("f_n+1", real=True)  # f(x_n), f(x_{n+1})
F_n, G_n = sym("F_n", (0, 1), positive=True), sym("G_n", (0, 1), positive=True)  # F_P(x_n), F_Q(x_n)
p_n1, q_n1 = sym("p_n+1", (0, 1), positive=True), sym("q_n+1", (0, 1), positive=True)
f_1, p_1, q_1 = sym("f_1", real=True), sym("p_1", (0, 1), positive=True), sym("q_1", (0, 1), positive=True)
# the summand of the right-hand side, in the display's symbols; the check evaluates it at i = n
f_i, f_i1 = sym("f_i", real=True), sym("f_i+1", real=True)
F_i, G_i = sym("F_i", (0, 1), positive=True), sym("G_i", (0, 1), positive=True)
F_i1, G_i1 = sym("F_i+1", (0, 1), positive=True), sym("G_i+1", (0, 1), positive=True)


def _abel_residuals(claim: Claim) -> list[sp.Expr]:
    # R_n = f_n (F_n - G_n) + sum_{i<n} summand_i, and S_n = sum_{i<=n} f_i (p_i - q_i).
    # base: R_1 = f_1 (F_1 - G_1) = f_1 (p_1 - q_1) = S_1 (no summand yet).
    base = f_1 * (p_1 - q_1) - f_1 * (p_1 - q_1)
    # step: R_{n+1} - R_n = S_{n+1} - S_n = f_{n+1} (p_{n+1} - q_{n+1}), with F_{n+1} = F_n + p_{n+1}
    summand_n = claim["summand"].xreplace({f_i: f_n, f_i1: f_n1, F_i: F_n, G_i: G_n,
                                           F_i1: F_n + p_n1, G_i1: G_n + q_n1})
    step_R = f_n1 * ((F_n + p_n1) - (G_n + q_n1)) - f_n * (F_n - G_n) + summand_n
    return [base, step_R - f_n1 * (p_n1 - q_n1)]


summation_by_parts = register(Identity(
    id="kr.summation_by_parts",
    title="The dual objective in terms of distribution functions (summation by parts, any n)",
    chapter="wgan",
    claim={"summand": -(f_i1 - f_i) * (F_i - G_i)},
    check=Check("induction on n: base n = 1 and the step R_{n+1} - R_n = f_{n+1}(p_{n+1} - q_{n+1}) "
                "with F_{n+1} = F_n + p_{n+1}; cancel", _abel_residuals),
    template=(r"\mathbb{E}_P f - \mathbb{E}_Q f = \sum_{i=1}^{n} f_i (p_i - q_i) = "
              r"f_n (F_n - G_n) + \sum_{i=1}^{n-1} \Bigl[$summand\Bigr] = \sum_{i=1}^{n-1} \Bigl[$summand\Bigr]"),
    assumptions=("P = (p_1, ..., p_n), Q = (q_1, ..., q_n) on x_1 < ... < x_n, any n",
                 "F_i = F_P(x_i) = p_1 + ... + p_i, G_i = F_Q(x_i); F_n = G_n = 1 in the last equality",
                 "f_i = f(x_i), any real values"),
    mutants=(
        Mutant("sign", {"summand": (f_i1 - f_i) * (F_i - G_i)},
               "The minus sign of summation by parts dropped."),
        Mutant("cdf_at_right_end", {"summand": -(f_i1 - f_i) * (F_i1 - G_i1)},
               r"The distribution functions evaluated at $x_{i+1}$ instead of $x_i$."),
    ),
    references=("villani2009optimal",),
    display={"summand": -sp.Mul(f_i1 - f_i, F_i - G_i, evaluate=False)},
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 4. The parallel lines: JS is constant where W_1 is not.

theta = sym("theta", positive=True)
_y, _y2 = sym("y", real=True), sym("y'", real=True)
_b = sym("b", positive=True)  # a density value tending to 0


def _js_integrand(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """The JS integrand 1/2 a log(a/m) + 1/2 b log(b/m), m = (a + b)/2 (as in derivations.gan)."""
    m = (a + b) / 2
    return a * sp.log(a / m) / 2 + b * sp.log(b / m) / 2


def _lines_residuals(claim: Claim) -> list[sp.Expr]:
    # P_0 and P_theta have densities 1 on {0} x [0, 1] and {theta} x [0, 1] with respect to length
    # on the union of the two segments.  A point of P_0's segment has (p, q) = (1, 0), of P_theta's
    # (0, 1); the integrands at q = 0 are the one-sided limits (0 log 0 = 0, a log(a/0) = oo).
    dist = sp.sqrt((theta - 0) ** 2 + (_y - _y) ** 2)  # the plan (0, y) -> (theta, y)
    cost = sp.integrate(dist, (_y, 0, 1))
    f = lambda x, y: -x  # noqa: E731  the potential
    xx, yy = sp.symbols("x_f y_f", real=True)
    grad_norm = sp.sqrt(sp.diff(f(xx, yy), xx) ** 2 + sp.diff(f(xx, yy), yy) ** 2)
    dual = sp.integrate(f(0, _y), (_y, 0, 1)) - sp.integrate(f(theta, _y), (_y, 0, 1))
    js_on_P = sp.limit(_js_integrand(1, _b), _b, 0, "+")  # on P_0's segment, q -> 0
    js_on_Q = sp.limit(_js_integrand(_b, 1), _b, 0, "+")
    js = sp.integrate(js_on_P, (_y, 0, 1)) + sp.integrate(js_on_Q, (_y, 0, 1))
    kl_on_P = sp.limit(1 * sp.log(1 / _b), _b, 0, "+")  # p log(p/q) with q -> 0
    # KL is compared through its reciprocal (1/oo = 0), so a finite claim leaves a non-zero residual
    return [grad_norm - 1, cost - claim["W1"], dual - claim["W1"], split_logs(js - claim["JS"]),
            1 / kl_on_P - 1 / claim["KL"]]


parallel_lines = register(Identity(
    id="wgan.parallel_lines",
    title="Two parallel segments: W1 moves with theta, JS is stuck at log 2, KL is infinite",
    chapter="wgan",
    claim={"W1": theta, "JS": sp.log(2), "KL": sp.oo},
    check=Check("W1: the plan (0, y) -> (theta, y) and the potential f(x, y) = -x (|grad f| = 1) have "
                "equal values; JS and KL: their integrands on the two segments, as one-sided limits "
                "where one density vanishes; integrate over y; expand_log, cancel", _lines_residuals),
    template=(r"W_1(P_0, P_\theta) = $W1, \qquad \mathrm{JS}(P_0 \,\|\, P_\theta) = $JS, \qquad "
              r"\mathrm{KL}(P_0 \,\|\, P_\theta) = $KL \quad (\theta > 0)"),
    assumptions=("P_theta is the law of (theta, Z), Z ~ U(0, 1); theta > 0 (theta < 0 by symmetry)",
                 "densities with respect to length on the two segments; 0 log 0 = 0",
                 "W1: a coupling's cost and a 1-Lipschitz potential's value agree (kr.weak_duality)",
                 "natural logarithms (nats)"),
    mutants=(
        Mutant("js_in_bits", {"JS": sp.Integer(1)},
               r"JS equal to its upper bound 1, the bound in bits; in nats the bound (and this value) is "
               r"$\log 2 \approx 0.693$.",
               source="Lil'Log, \"From GAN to WGAN\" (2017): \"bounded by [0, 1]\" next to "
                      "formulas in natural logarithms"),
        Mutant("js_half", {"JS": sp.log(2) / 2}, r"Only one of the two halves of JS counted."),
        Mutant("w1_squared", {"W1": theta**2}, r"$\theta^2$, which is $W_2^2$, not $W_1$."),
        Mutant("kl_finite", {"KL": sp.log(2)}, r"KL taken to be finite, like JS."),
    ),
    references=("arjovsky2017wasserstein", "weng2017gan"),
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 5. The gradient penalty is a soft constraint.

s = sym("s", real=True)  # the critic's slope f'(x) at a point
g = sym("g", positive=True)  # F_Q(x) - F_P(x) at that point
lam = sym("lambda", positive=True)
rho = sym("rho", positive=True)  # density of the interpolates at that point
_gp_objective = s * g - lam * rho * (s - 1) ** 2
"""Pointwise WGAN-GP critic objective in 1-D, on the branch s > 0 (where |s| = s)."""
_gp_objective_neg = s * g - lam * rho * (-s - 1) ** 2
"""The same objective on the branch s < 0 (where |s| = -s)."""


def _gp_residuals(claim: Claim) -> list[sp.Expr]:
    at = {s: claim["slope"]}
    spurious = {s: claim["spurious"]}
    return [sp.diff(_gp_objective, s).xreplace(at),
            (s * g).xreplace(at) - claim["gap"],
            _gp_objective.xreplace(at) - claim["value"],
            sp.diff(_gp_objective_neg, s).xreplace(spurious),
            _gp_objective_neg.xreplace(spurious) - claim["spurious_value"],
            sp.diff(_gp_objective, s, 2) + 2 * lam * rho,  # concave on each branch: local maxima
            sp.diff(_gp_objective_neg, s, 2) + 2 * lam * rho]


gp_pointwise = register(Identity(
    id="wgan.gp_pointwise",
    title="The gradient-penalised critic in 1-D: slope above 1, value above W1, and a spurious maximum",
    chapter="wgan",
    claim={"slope": 1 + g / (2 * lam * rho), "gap": g + g**2 / (2 * lam * rho),
           "value": g + g**2 / (4 * lam * rho),
           "spurious": -1 + g / (2 * lam * rho), "spurious_value": -g + g**2 / (4 * lam * rho)},
    check=Check("on each branch (s > 0, s < 0) the objective is a concave quadratic in s: stationary "
                "point, its gap term and its value; cancel", _gp_residuals),
    template=(r"s^* = $slope, \qquad"
              r" s^* g = $gap, \qquad"
              r" h(s^*) = $value, \qquad"
              r" s^\dagger = $spurious, \qquad h(s^\dagger) = $spurious_value"),
    assumptions=("1-D; E_P f - E_Q f = int f'(x) g(x) dx with g = F_Q - F_P > 0 at x",
                 "penalty lambda E_rho[(|f'| - 1)^2] with rho the density of the interpolates",
                 "h(s) = s g - lambda rho (|s| - 1)^2; s* on the branch s > 0, s† on s < 0 "
                 "(a local maximum when g < 2 lambda rho)",
                 "where g < 0 the same holds for -f (slope -1 - |g|/(2 lambda rho))"),
    mutants=(
        Mutant("hard_constraint", {"slope": sp.Integer(1), "gap": g, "value": g},
               "The penalised critic taken to be exactly 1-Lipschitz, as the hard constraint would make it."),
        Mutant("missing_two", {"slope": 1 + g / (lam * rho)}, "The factor 2 of the quadratic's derivative dropped."),
        Mutant("gap_is_value", {"gap": g + g**2 / (4 * lam * rho)},
               "The critic's raw gap taken to be the penalised value: the penalty it pays is forgotten."),
        Mutant("spurious_mirror", {"spurious": -1 - g / (2 * lam * rho)},
               r"The wrong-sign stationary point taken to be the mirror image $-s^*$ of the right one."),
    ),
    references=("gulrajani2017improved", "petzka2018regularization"),
    display={"slope": sp.Add(1, g / (2 * lam * rho), evaluate=False),
             "gap": sp.Add(g, g**2 / (2 * lam * rho), evaluate=False),
             "value": sp.Add(g, g**2 / (4 * lam * rho), evaluate=False),
             "spurious": sp.Add(-1, g / (2 * lam * rho), evaluate=False),
             "spurious_value": sp.Add(-g, g**2 / (4 * lam * rho), evaluate=False)},
    code=("gencode.wgan.gradient_penalty",),
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 6. Power iteration for the spectral norm, for any number of singular values.

_r = sym("r", (1, 50), integer=True, positive=True)  # number of eigenvalues of W^T W
_lam = sp.IndexedBase(sym("lambda", positive=True))  # eigenvalues of W^T W; lambda_1 the largest
_c = sp.IndexedBase(sym("c", positive=True))  # coefficients of v_0 in the eigenbasis
_b = sp.IndexedBase(sym("b", positive=True))  # b_i = lambda_i^k
lam1 = _lam[1]
_w = _c[_i] ** 2 * _b[_i] ** 2  # squared coordinates of v_k = (W^T W)^k v_0
rayleigh = sp.Sum(_lam[_i] * _w, (_i, 1, _r)) / sp.Sum(_w, (_i, 1, _r))


def _power_residuals(claim: Claim) -> list[sp.Expr]:
    return [lam1 - rayleigh - claim["error"]]


power_iteration = register(Identity(
    id="wgan.power_iteration",
    title="Power iteration: the Rayleigh quotient's error decays like (lambda_i/lambda_1)^(2k)",
    chapter="wgan",
    claim={"error": sp.Sum((lam1 - _lam[_i]) * _w, (_i, 1, _r)) / sp.Sum(_w, (_i, 1, _r))},
    check=ForEverySize("v_k = sum_i c_i lambda_i^k e_i in the eigenbasis; Rayleigh quotient; sums combined; "
                       "cancel", _power_residuals, instances=(at_sizes({_r: 2}),)),
    template=(r"\lambda_1 - \frac{v_k^\top W^\top W v_k}{v_k^\top v_k} = $error, \qquad "
              r"b_i = \lambda_i^k"),
    assumptions=("W^T W has eigenvalues lambda_1 > lambda_2 >= ... >= lambda_r >= 0, any r",
                 "v_0 = sum_i c_i e_i with c_1 != 0; v_k = (W^T W)^k v_0",
                 "sigma_max(W) = sqrt(lambda_1)"),
    mutants=(
        Mutant("linear_rate", {"error": sp.Sum((lam1 - _lam[_i]) * _c[_i] * _b[_i], (_i, 1, _r))
                               / sp.Sum(_c[_i] * _b[_i], (_i, 1, _r))},
               r"A rate $(\lambda_i/\lambda_1)^k$ instead of $(\lambda_i/\lambda_1)^{2k}$ for the Rayleigh quotient."),
        Mutant("no_gap", {"error": sp.Sum(lam1 * _w, (_i, 1, _r)) / sp.Sum(_w, (_i, 1, _r))},
               r"$\lambda_1$ in place of the eigengap $\lambda_1 - \lambda_i$."),
    ),
    references=("miyato2018spectral",),
    code=("gencode.wgan.power_iteration",),
    scope="general",
))
