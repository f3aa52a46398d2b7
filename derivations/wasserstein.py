"""Wasserstein GANs: Kantorovich-Rubinstein duality and the Lipschitz constraint.

The Wasserstein-1 distance is a linear programme over couplings,

    W_1(P, Q) = min_{pi in Pi(P, Q)} E_pi |X - Y|,

whose dual is a programme over 1-Lipschitz potentials (Kantorovich and Rubinstein),

    W_1(P, Q) = max_{||f||_L <= 1} E_P f - E_Q f.

Registered below (ids ``kr.*`` for the duality, ``wgan.*`` for the WGAN-specific results):

1. ``kr.duality``: on three points of the line with crossing distribution functions, an explicit
   coupling and an explicit 1-Lipschitz potential have the same value.  By weak duality (every
   coupling costs at least every potential's value) both are optimal and the common value is
   W_1; it equals ``sum_i |F_P(x_i) - F_Q(x_i)| (x_{i+1} - x_i)``.  The K-Lipschitz dual value is
   K times it.  This is a certificate proof (primal and dual feasible, equal objectives) with
   symbolic masses and gaps; larger supports are checked numerically in the tests (POT, scipy).
2. ``kr.summation_by_parts``: ``E_P f - E_Q f = -sum_i (f_{i+1} - f_i)(F_P(x_i) - F_Q(x_i))`` for
   any potential on four sorted points, the step from the dual to the 1-D formula.
3. ``wgan.parallel_lines``: the disjoint-supports example of Arjovsky et al. (2017): W_1 is |theta|
   while JS is the constant log 2.
4. ``wgan.gp_pointwise``: the gradient penalty is a soft constraint: in 1-D the penalised critic's
   slope at a point is ``1 + g / (2 lambda rho)``; its gap ``E_P f - E_Q f`` overestimates W_1 by
   ``int g^2/(2 lambda rho)`` and the penalised objective by ``int g^2/(4 lambda rho)``.
5. ``wgan.power_iteration``: after k power iterations on ``W^T W`` the Rayleigh quotient misses
   the top eigenvalue by a term proportional to ``(lambda_2 / lambda_1)^{2k}``.
"""

from __future__ import annotations

import sympy as sp

from .core import Claim, Check, Identity, Mutant, register, sym
from .diffusion import _frac, _mul
from .core import split_logs

# ---------------------------------------------------------------------------------------------
# 1. Kantorovich-Rubinstein duality, certified on three points.

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
    cost = sum(plan[i, j] * sp.Abs(xs[i] - xs[j]) for i in range(3) for j in range(3))
    dual = sum(potential[i] * (P_mass[i] - Q_mass[i]) for i in range(3))
    dual_K = sum(K * potential[i] * (P_mass[i] - Q_mass[i]) for i in range(3))
    return rows + cols + [cost - claim["W1"], dual - claim["W1"], dual_K - claim["KW1"]]


duality = register(Identity(
    id="kr.duality",
    title="Kantorovich-Rubinstein duality, certified on three points with crossing CDFs",
    chapter="wgan",
    claim={"W1": u * d1 + v * d2, "KW1": K * (u * d1 + v * d2)},
    check=Check("certificate: the coupling has marginals P and Q, the potential is 1-Lipschitz by "
                "construction, and primal cost = dual value (cancel)", _duality_residuals),
    template=(r"W_1(P, Q) = \min_{\pi \in \Pi(P, Q)} \textstyle\sum_{ij} \pi_{ij} |x_i - x_j|"
              r" = \max_{\|f\|_L \le 1} \bigl(\mathbb{E}_P f - \mathbb{E}_Q f\bigr) = $W1, \qquad"
              r" \max_{\|f\|_L \le K} \bigl(\mathbb{E}_P f - \mathbb{E}_Q f\bigr) = $KW1"),
    assumptions=(
        "x_1 < x_2 = x_1 + Delta_1 < x_3 = x_2 + Delta_2",
        "P = (q_1 + u, w, q_3 + v), Q = (q_1, w + u + v, q_3) on (x_1, x_2, x_3), all masses > 0, total 1",
        "so F_P(x_1) - F_Q(x_1) = u > 0 and F_P(x_2) - F_Q(x_2) = -v < 0",
        "weak duality: every coupling's cost >= every 1-Lipschitz potential's value",
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
))

# ---------------------------------------------------------------------------------------------
# 2. Summation by parts: the dual objective in terms of distribution functions.

f_vals = tuple(sym(f"f_{i}", real=True) for i in range(1, 5))
p_vals = tuple(sym(f"p_{i}", (0, 1), positive=True) for i in range(1, 4))
q_vals = tuple(sym(f"q_{i}", (0, 1), positive=True) for i in range(1, 4))
F = tuple(sym(f"F_{i}", (0, 1), positive=True) for i in range(1, 4))  # F_P(x_i)
G = tuple(sym(f"G_{i}", (0, 1), positive=True) for i in range(1, 4))  # F_Q(x_i)
CDFS = {F[i]: sum(p_vals[: i + 1]) for i in range(3)} | {G[i]: sum(q_vals[: i + 1]) for i in range(3)}


def _abel_residuals(claim: Claim) -> list[sp.Expr]:
    p = (*p_vals, 1 - sum(p_vals))
    q = (*q_vals, 1 - sum(q_vals))
    return [sum(f_vals[i] * (p[i] - q[i]) for i in range(4)) - claim["value"]]


summation_by_parts = register(Identity(
    id="kr.summation_by_parts",
    title="The dual objective in terms of distribution functions (summation by parts)",
    chapter="wgan",
    claim={"value": -sum((f_vals[i + 1] - f_vals[i]) * (F[i] - G[i]) for i in range(3))},
    check=Check("substitute F_i = p_1 + ... + p_i, G_i likewise, p_4 = 1 - p_1 - p_2 - p_3; cancel",
                _abel_residuals, definitions=CDFS),
    template=r"\mathbb{E}_P f - \mathbb{E}_Q f = \textstyle\sum_{i=1}^{4} f_i (p_i - q_i) = $value",
    assumptions=("P = (p_1, ..., p_4), Q = (q_1, ..., q_4) on x_1 < ... < x_4, each summing to 1",
                 "F_i = F_P(x_i) = p_1 + ... + p_i, G_i = F_Q(x_i)", "f_i = f(x_i), any real values"),
    mutants=(
        Mutant("sign", {"value": sum((f_vals[i + 1] - f_vals[i]) * (F[i] - G[i]) for i in range(3))},
               "The minus sign of summation by parts dropped."),
        Mutant("cdf_at_right_end",
               {"value": -sum((f_vals[i + 1] - f_vals[i]) * ((F[i + 1] if i < 2 else 1) - (G[i + 1] if i < 2 else 1))
                              for i in range(3))},
               r"The distribution functions evaluated at $x_{i+1}$ instead of $x_i$."),
    ),
    references=("villani2009optimal",),
    display={"value": sp.Add(*[-sp.Mul(f_vals[i + 1] - f_vals[i], F[i] - G[i], evaluate=False) for i in range(3)],
                             evaluate=False)},
))

# ---------------------------------------------------------------------------------------------
# 3. The parallel lines: JS is constant where W_1 is not.

theta = sym("theta", positive=True)


def _lines_residuals(claim: Claim) -> list[sp.Expr]:
    # P: x = 0, y ~ U(0, 1); Q: x = theta, y ~ U(0, 1); densities 1 on their own line.
    cost = sp.integrate(theta, (sym("y", real=True), 0, 1))  # couple (0, y) with (theta, y)
    dual = 0 - (-theta)  # f(x, y) = -x is 1-Lipschitz: E_P f - E_Q f
    half = sp.Rational(1, 2)
    # on P's line q = 0 and m = p / 2 = 1/2; on Q's line likewise
    js = half * 1 * sp.log(1 / half) + half * 1 * sp.log(1 / half)
    return [cost - claim["W1"], dual - claim["W1"], split_logs(js - claim["JS"])]


parallel_lines = register(Identity(
    id="wgan.parallel_lines",
    title="Two parallel segments: W1 moves with theta, JS is stuck at log 2",
    chapter="wgan",
    claim={"W1": theta, "JS": sp.log(2)},
    check=Check("primal plan (0, y) -> (theta, y) and dual potential f(x, y) = -x agree; JS integrand "
                "on the disjoint supports; expand_log, cancel", _lines_residuals),
    template=r"W_1(P_0, P_\theta) = $W1, \qquad \mathrm{JS}(P_0 \,\|\, P_\theta) = $JS \quad (\theta > 0)",
    assumptions=("P_theta is the law of (theta, Z), Z ~ U(0, 1); theta > 0 (theta < 0 by symmetry)",
                 "natural logarithms (nats)"),
    mutants=(
        Mutant("js_in_bits", {"JS": sp.Integer(1)},
               r"JS equal to its upper bound 1, the bound in bits; in nats the bound (and this value) is "
               r"$\log 2 \approx 0.693$.",
               source="Lil'Log, \"From GAN to WGAN\" (2017): \"bounded by [0, 1]\" next to "
                      "formulas in natural logarithms"),
        Mutant("w1_squared", {"W1": theta**2}, r"$\theta^2$, which is $W_2^2$, not $W_1$."),
    ),
    references=("arjovsky2017wasserstein", "weng2017gan"),
))

# ---------------------------------------------------------------------------------------------
# 4. The gradient penalty is a soft constraint.

s = sym("s", real=True)  # the critic's slope f'(x) at a point
g = sym("g", positive=True)  # F_Q(x) - F_P(x) at that point
lam = sym("lambda", positive=True)
rho = sym("rho", positive=True)  # density of the interpolates at that point
_gp_objective = s * g - lam * rho * (s - 1) ** 2
"""Pointwise WGAN-GP critic objective in 1-D, for a slope s > 0."""


def _gp_residuals(claim: Claim) -> list[sp.Expr]:
    return [sp.diff(_gp_objective, s).xreplace({s: claim["slope"]}),
            (s * g).xreplace({s: claim["slope"]}) - claim["gap"],
            _gp_objective.xreplace({s: claim["slope"]}) - claim["value"]]


gp_pointwise = register(Identity(
    id="wgan.gp_pointwise",
    title="The gradient-penalised critic in 1-D: slope above 1, value above W1",
    chapter="wgan",
    claim={"slope": 1 + g / (2 * lam * rho), "gap": g + g**2 / (2 * lam * rho),
           "value": g + g**2 / (4 * lam * rho)},
    check=Check("the objective is a concave quadratic in s: stationary point, its gap term and its value; "
                "cancel", _gp_residuals),
    template=(r"s^* = \arg\max_s \bigl[s\, g - \lambda \rho\, (s - 1)^2\bigr] = $slope, \qquad"
              r" s^* g = $gap, \qquad"
              r" \max_s \bigl[s\, g - \lambda \rho\, (s - 1)^2\bigr] = $value"),
    assumptions=("1-D; E_P f - E_Q f = int f'(x) g(x) dx with g = F_Q - F_P > 0 at x",
                 "penalty lambda E_rho[(|f'| - 1)^2] with rho the density of the interpolates",
                 "where g < 0 the same holds for -f (slope -1 - |g|/(2 lambda rho))"),
    mutants=(
        Mutant("hard_constraint", {"slope": sp.Integer(1), "gap": g, "value": g},
               "The penalised critic taken to be exactly 1-Lipschitz, as the hard constraint would make it."),
        Mutant("missing_two", {"slope": 1 + g / (lam * rho)}, "The factor 2 of the quadratic's derivative dropped."),
        Mutant("gap_is_value", {"gap": g + g**2 / (4 * lam * rho)},
               "The critic's raw gap taken to be the penalised value: the penalty it pays is forgotten."),
    ),
    references=("gulrajani2017improved",),
    display={"slope": sp.Add(1, g / (2 * lam * rho), evaluate=False),
             "gap": sp.Add(g, g**2 / (2 * lam * rho), evaluate=False),
             "value": sp.Add(g, g**2 / (4 * lam * rho), evaluate=False)},
    code=("gencode.wgan.gradient_penalty",),
))

# ---------------------------------------------------------------------------------------------
# 5. Power iteration for the spectral norm.

lam1 = sym("lambda_1", positive=True)
lam2 = sym("lambda_2", positive=True)
c1, c2 = sym("c_1", positive=True), sym("c_2", real=True)  # coefficients of v_0 in the eigenbasis
A, B = sym("a", positive=True), sym("b", positive=True)  # a = lambda_1^k, b = lambda_2^k


def _power_residuals(claim: Claim) -> list[sp.Expr]:
    vk = (c1 * A, c2 * B)  # (W^T W)^k v_0 in the eigenbasis
    rayleigh = (lam1 * vk[0] ** 2 + lam2 * vk[1] ** 2) / (vk[0] ** 2 + vk[1] ** 2)
    return [lam1 - rayleigh - claim["error"]]


power_iteration = register(Identity(
    id="wgan.power_iteration",
    title="Power iteration: the Rayleigh quotient's error decays like (lambda_2/lambda_1)^(2k)",
    chapter="wgan",
    claim={"error": (lam1 - lam2) * c2**2 * B**2 / (c1**2 * A**2 + c2**2 * B**2)},
    check=Check("v_k = (c_1 lambda_1^k, c_2 lambda_2^k) in the eigenbasis; Rayleigh quotient; cancel",
                _power_residuals),
    template=(r"\lambda_1 - \frac{v_k^\top W^\top W v_k}{v_k^\top v_k} = $error, \qquad "
              r"a = \lambda_1^k,\ b = \lambda_2^k"),
    assumptions=("W^T W has eigenvalues lambda_1 > lambda_2 >= 0 (2-D, or the two largest)",
                 "v_0 = c_1 e_1 + c_2 e_2 with c_1 != 0; v_k = (W^T W)^k v_0",
                 "sigma_max(W) = sqrt(lambda_1)"),
    mutants=(
        Mutant("linear_rate", {"error": (lam1 - lam2) * c2 * B / (c1 * A + c2 * B)},
               r"A rate $(\lambda_2/\lambda_1)^k$ instead of $(\lambda_2/\lambda_1)^{2k}$ for the Rayleigh quotient."),
        Mutant("no_gap", {"error": lam1 * c2**2 * B**2 / (c1**2 * A**2 + c2**2 * B**2)},
               r"$\lambda_1$ in place of the eigengap $\lambda_1 - \lambda_2$."),
    ),
    references=("miyato2018spectral",),
    code=("gencode.wgan.power_iteration",),
    display={"error": _frac(_mul(lam1 - lam2, c2**2, B**2), c1**2 * A**2 + c2**2 * B**2)},
))
