r"""Normalizing flows: change of variables, the inverse function theorem, composition, and the
log-determinants of the flows the book implements (linear LU/QR, MAF and IAF, affine coupling), and the
maximum-likelihood fit of a linear flow to Gaussian data.

A flow is an invertible differentiable map ``f`` between the data ``x`` and the latent ``z = f(x)``.  The
results below hold for *any* such map or conditioner; they are checked with undefined SymPy functions
(``mu_i``, ``sigma_i``, ``s_j``, ``t_j``, ``f_i``, ``g_i``) and, for the witnesses of the wrong variants,
with the same residuals after instantiating those functions by concrete ones
(:func:`derivations.core.with_instances`).  Jacobians are taken by ``sympy.Matrix.jacobian``
and ``sympy.diff`` (which applies the chain rule to undefined functions), never typed by hand.

Ids: ``flows.change_of_variables`` (one dimension), ``flows.change_of_variables_triangular`` (every D,
for triangular maps, by induction on D), ``flows.inverse_function``, ``flows.composition``,
``flows.linear_lu``, ``flows.autoregressive_logdet``, ``flows.maf_inverse``, ``flows.coupling_logdet``,
``flows.linear_gaussian_mle``, ``flows.lotus``.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.determinant import Determinant

from .core import Scope, function as generic, with_instances
from .core import (Check, Claim, GaussianFactor, Identity, Mutant, gaussian_expectation, gaussian_moment,
                   register, sym)

CHAPTER = "flows"
SOURCE_001 = "source notes 001 (lecture 2, Gaussian autoregressive flows)"


class Det(Determinant):
    r"""``Determinant`` printed as ``\det A`` (SymPy prints ``|A|``, easily read as an absolute value)."""

    def _latex(self, printer, exp=None):
        text = rf"\det {printer._print(self.arg)}"
        return text if exp is None else rf"\left({text}\right)^{{{exp}}}"


# ---------------------------------------------------------------------------------------------
# 1. Change of variables in one dimension, for any increasing f and any density p_Z.

x = sym("x", real=True)
u = sym("u", real=True)
f = generic("f", "f")
F_Z = generic("F_Z", "F_Z")  # the CDF of Z
p_Z = generic("p_Z", "p_Z")  # its density, F_Z' = p_Z

_c = [sym(f"c_{i}", (0, 2), positive=True) for i in range(8)]
_INSTANCES_1D = {
    f: sp.Lambda(x, _c[0] * x + _c[1] * x**3),  # increasing
    p_Z: sp.Lambda(u, 1 / (1 + _c[2] * u**2)),  # positive (normalisation is irrelevant here)
}


def _cov_residuals(claim: Claim) -> list[sp.Expr]:
    """``P(X <= x) = P(Z <= f(x)) = F_Z(f(x))``; differentiate in ``x``, then ``F_Z' = p_Z``."""
    density = sp.diff(F_Z(f(x)), x).xreplace({sp.Derivative(F_Z(f(x)), f(x)): p_Z(f(x))})
    return with_instances([density - claim["density"],
                           sp.expand_log(sp.log(density), force=True) - claim["log_density"]], _INSTANCES_1D)


_fprime = sp.Derivative(f(x), x)

change_of_variables = register(Identity(
    id="flows.change_of_variables",
    title="Change of variables: the density of x when z = f(x) has density p_Z",
    chapter=CHAPTER,
    claim={"density": p_Z(f(x)) * _fprime, "log_density": sp.log(p_Z(f(x))) + sp.log(_fprime)},
    check=Check("differentiate the CDF F_Z(f(x)) by the chain rule (generic F_Z, f); expand_log; cancel; "
                "witness with f, p_Z instantiated", _cov_residuals),
    template=r"\begin{aligned} p_X(x) &= $density, \\ \log p_X(x) &= $log_density \end{aligned}",
    assumptions=("f: R -> R differentiable and strictly increasing (for decreasing f, |f'| appears)",
                 "Z = f(X) has CDF F_Z and density p_Z = F_Z'"),
    mutants=(
        Mutant("jacobian_of_the_inverse", {"density": p_Z(f(x)) / _fprime},
               r"Divided by $f'(x)$: the Jacobian of the wrong direction."),
        Mutant("no_jacobian", {"density": p_Z(f(x))},
               "The Jacobian factor forgotten: the result is not a density."),
        Mutant("log_det_sign", {"log_density": sp.log(p_Z(f(x))) - sp.log(_fprime)},
               "The log-determinant subtracted instead of added."),
    ),
    references=("rezende2015variational", "papamakarios2021normalizing"),
    code=("gencode.flows.Flow.log_prob",),
    display={"density": sp.Mul(p_Z(f(x)), _fprime, evaluate=False),
             "log_density": sp.Add(sp.log(p_Z(f(x))), sp.log(_fprime), evaluate=False)},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 2. The inverse function theorem in two dimensions, for any diffeomorphism f with inverse g.

x1, x2, x3, x4 = (sym(f"x_{i}", real=True) for i in (1, 2, 3, 4))
f1, f2 = generic("f_1", "f_1"), generic("f_2", "f_2")
g1, g2 = generic("g_1", "g_1"), generic("g_2", "g_2")
h1, h2 = generic("h_1", "h_1"), generic("h_2", "h_2")
J_f = sp.MatrixSymbol("J_f", 2, 2)
J_h = sp.MatrixSymbol("J_h", 2, 2)
_FX = (f1(x1, x2), f2(x1, x2))
_jacobian_f = sp.Matrix(_FX).jacobian([x1, x2])


def _outer_jacobian(g: tuple[type[sp.Function], ...]) -> sp.Matrix:
    """``[d g_i / d z_k at z = f(x)]`` as SymPy's chain rule writes it: ``Derivative(g_i(f_1, f_2), f_k)``."""
    return sp.Matrix(2, 2, lambda i, k: sp.Derivative(g[i](*_FX), _FX[k]))


# Once the chain rule has been applied, the residuals are algebraic in the partial derivatives of f and
# h at the point: those are replaced by plain symbols, which makes cancel fast and gives numeric witnesses.
_PARTIALS = {sp.Derivative(fn(x1, x2), v): sym(f"c_f{i + 1}{j + 1}", real=True)
             for i, fn in enumerate((f1, f2)) for j, v in enumerate((x1, x2))}
_PARTIALS |= {sp.Derivative(fn(*_FX), _FX[k]): sym(f"c_h{i + 1}{k + 1}", real=True)
              for i, fn in enumerate((h1, h2)) for k in range(2)}


def _inverse_residuals(claim: Claim) -> list[sp.Expr]:
    """Differentiate ``g(f(x)) = x``: the chain rule gives ``J_g(f(x)) J_f(x) = I``; insert the claim for
    ``J_g(f(x))`` and compare with the identity matrix."""
    J = sp.ImmutableMatrix(_jacobian_f.xreplace(_PARTIALS))  # J_f(x) with symbolic entries
    claimed = sp.Matrix(claim["jacobian"].xreplace({J_f: J}).doit())
    chain = sp.Matrix(2, 2, lambda i, j: sp.diff((g1, g2)[i](*_FX), (x1, x2)[j])).xreplace(_PARTIALS)
    chain = chain.xreplace({sp.Derivative((g1, g2)[i](*_FX), _FX[k]): claimed[i, k]
                            for i in range(2) for k in range(2)})
    return list(chain - sp.eye(2)) + [claimed.det() - claim["det"].xreplace({J_f: J}).doit()]


inverse_function = register(Identity(
    id="flows.inverse_function",
    title="The inverse function theorem: the Jacobian of the inverse is the inverse of the Jacobian",
    chapter=CHAPTER,
    claim={"jacobian": J_f**-1, "det": 1 / Det(J_f)},
    check=Check("chain rule on g(f(x)) = x with generic f, g in 2-D; claimed J_g(f(x)) inserted; partial "
                "derivatives as symbols; cancel", _inverse_residuals),
    template=r"J_{f^{-1}}\big(f(x)\big) = $jacobian, \qquad \det J_{f^{-1}}\big(f(x)\big) = $det",
    assumptions=("f: R^2 -> R^2 a diffeomorphism with inverse g = f^{-1}; J_f = J_f(x) invertible",),
    mutants=(
        Mutant("transpose_for_inverse", {"jacobian": J_f.T}, "The transpose taken for the inverse."),
        Mutant("same_jacobian", {"jacobian": J_f, "det": Det(J_f)},
               "The inverse map given the same Jacobian (and determinant) as the map."),
        Mutant("det_not_reciprocal", {"det": Det(J_f)},
               "The determinant of the inverse's Jacobian taken equal to that of the map."),
    ),
    references=("papamakarios2021normalizing",),
    code=("gencode.flows.Flow.inverse",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 3. Composition multiplies Jacobian determinants (chain rule), in two dimensions.


def _composition_residuals(claim: Claim) -> list[sp.Expr]:
    composed = sp.Matrix([h1(*_FX), h2(*_FX)]).jacobian([x1, x2])  # J of h o f, by the chain rule
    outer = _outer_jacobian((h1, h2))
    det_claim = claim["det"].xreplace({J_f: sp.ImmutableMatrix(_jacobian_f),
                                       J_h: sp.ImmutableMatrix(outer)}).doit()
    return [sp.expand((composed.det() - det_claim).xreplace(_PARTIALS))]


composition = register(Identity(
    id="flows.composition",
    title="The Jacobian determinant of a composition is the product of the determinants",
    chapter=CHAPTER,
    claim={"det": Det(J_h) * Det(J_f)},
    check=Check("Jacobian of h(f(x)) by sympy's chain rule with generic f, h in 2-D; partial derivatives "
                "as symbols; expand", _composition_residuals),
    template=r"\det J_{h \circ f}(x) = $det, \qquad J_h = J_h\big(f(x)\big),\ J_f = J_f(x)",
    assumptions=("f, h: R^2 -> R^2 differentiable",),
    mutants=(
        Mutant("sum_of_determinants", {"det": Det(J_h) + Det(J_f)},
               "The determinants added (as one adds log-determinants)."),
        Mutant("outer_at_x", {"det": Det(J_f) ** 2},
               r"The outer Jacobian evaluated as if $h = f$ (one layer's determinant counted twice)."),
    ),
    references=("rezende2015variational", "papamakarios2021normalizing"),
    code=("gencode.flows.Flow.forward_and_log_det",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 4. Linear flows: log |det A| through LU and QR factorisations (3 x 3, symbolic entries).

_l = {(i, j): sym(f"l_{i}{j}", real=True) for i in range(3) for j in range(i)}
_u = {(i, j): sym(f"u_{i}{j}", real=True) for i in range(3) for j in range(i, 3)}
_r = {(i, j): sym(f"r_{i}{j}", real=True) for i in range(3) for j in range(i, 3)}
_tq = sym("tau", (0, 3), positive=True)
L = sp.Matrix(3, 3, lambda i, j: 1 if i == j else _l.get((i, j), 0))
U = sp.Matrix(3, 3, lambda i, j: _u.get((i, j), 0))
R = sp.Matrix(3, 3, lambda i, j: _r.get((i, j), 0))
_cos, _sin = (1 - _tq**2) / (1 + _tq**2), 2 * _tq / (1 + _tq**2)  # a rational rotation (Weierstrass)
Q = sp.Matrix([[_cos, -_sin, 0], [_sin, _cos, 0], [0, 0, -1]])  # orthogonal, det = -1
U_diag = [_u[(i, i)] for i in range(3)]
R_diag = [_r[(i, i)] for i in range(3)]


i_lu = sym("i", positive=True, integer=True)
D_lu = sym("D", positive=True, integer=True)
U_idx, R_idx = sp.IndexedBase("U", real=True), sp.IndexedBase("R", real=True)
_u_last, _u_first = sym("U_DD", real=True), sym("U_11", real=True)


def _schur_last(lower_unit: bool) -> sp.Expr:
    """The Schur complement of the leading (D-1) x (D-1) block of L U (or of R, with L = I), for symbolic D.

    With L = [[L', 0], [l^T, 1]] and U = [[U', u], [0, U_DD]], L U = [[L'U', L'u], [l^T U', l^T u + U_DD]];
    det(L U) = det(L'U') det(S) with S = l^T u + U_DD - l^T U' (L'U')^{-1} L' u, which SymPy's matrix
    algebra reduces (for MatrixSymbols of size D - 1) to U_DD."""
    n = D_lu - 1
    Lp = sp.MatrixSymbol("Lp", n, n) if lower_unit else sp.Identity(n)
    Up = sp.MatrixSymbol("Up", n, n)
    l_ = sp.MatrixSymbol("l", n, 1) if lower_unit else sp.ZeroMatrix(n, 1)
    u_ = sp.MatrixSymbol("u", n, 1)
    schur = (l_.T * u_ + _u_last * sp.Identity(1)) - (l_.T * Up) * (Lp * Up).I * (Lp * u_)
    return sp.simplify(schur.doit()).as_explicit()[0, 0]


def _diagonal_terms(total: sp.Expr, base: sp.IndexedBase) -> tuple[sp.Expr, sp.Expr] | None:
    """(D-th term, value at D = 1) of a claimed sum over i = 1..D of terms in base[i, i]; None if not a sum."""
    if not isinstance(total, sp.Sum):
        return None
    last = total.function.xreplace({i_lu: D_lu}).xreplace({base[D_lu, D_lu]: _u_last})
    first = total.xreplace({D_lu: 1}).doit().xreplace({base[1, 1]: _u_first})
    return last, first


def _lu_residuals(claim: Claim) -> list[sp.Expr]:
    """Every D by induction: base D = 1 (det = U_11) and step (the Schur complement of the leading block
    is U_DD, so log|det| gains log|U_DD|), for L U and for R (L = I; |det Q| = 1 since Q^T Q = I).
    D = 3: exp of twice the claim against the squared determinant of symbolic factors, Q a rational
    rotation-reflection (squares: no absolute values)."""
    out = []
    for part, base, unit in (("lu", U_idx, True), ("qr", R_idx, False)):
        terms = _diagonal_terms(claim[part], base)
        if terms is not None:
            last, first = terms
            out += [sp.expand_log(last - sp.log(sp.Abs(_schur_last(unit))), force=True),
                    sp.expand_log(first - sp.log(sp.Abs(_u_first)), force=True)]
    three = {"lu": (L * U, U_idx, U_diag, _u), "qr": (Q * R, R_idx, R_diag, _r)}
    for part, (A, base, diag, entries) in three.items():
        value = claim[part].xreplace({D_lu: 3}).doit()
        value = value.xreplace({base[i + 1, j + 1]: v for (i, j), v in entries.items()})
        out.append(sp.expand(sp.exp(2 * value), power_exp=True) - sp.cancel(A.det()) ** 2)
    return out


_j_lu = sym("j", positive=True, integer=True)
linear_lu = register(Identity(
    id="flows.linear_lu",
    title="Linear flows: log |det A| from the diagonal of the LU or QR factor",
    chapter=CHAPTER,
    claim={"lu": sp.Sum(sp.log(sp.Abs(U_idx[i_lu, i_lu])), (i_lu, 1, D_lu)),
           "qr": sp.Sum(sp.log(sp.Abs(R_idx[i_lu, i_lu])), (i_lu, 1, D_lu))},
    check=Check("every D by induction (base D = 1; step: the Schur complement of the leading block of LU, "
                "or of R, reduces by SymPy's matrix algebra to U_DD for MatrixSymbols of size D - 1); "
                "D = 3 with symbolic factors and Q a rational rotation-reflection, exp of twice the claim "
                "against the squared determinant; cancel", _lu_residuals),
    template=r"\log\lvert\det(LU)\rvert = $lu, \qquad \log\lvert\det(QR)\rvert = $qr",
    assumptions=("L unit lower triangular, U and R upper triangular with non-zero diagonal, Q orthogonal; "
                 "D x D",
                 "det [[A, B], [C, E]] = det(A) det(E - C A^{-1} B) for invertible A (Schur complement), and "
                 "|det Q| = 1 for orthogonal Q (det(Q)^2 = det(Q^T Q) = 1)"),
    mutants=(
        Mutant("log_of_trace", {"lu": sp.log(sp.Abs(sp.Sum(U_idx[i_lu, i_lu], (i_lu, 1, D_lu))))},
               "The log of the trace of U instead of the sum of the logs of its diagonal."),
        Mutant("all_entries", {"lu": sp.Sum(sp.log(sp.Abs(U_idx[i_lu, _j_lu])), (_j_lu, i_lu, D_lu), (i_lu, 1, D_lu))},
               "Every entry of U counted, not only the diagonal."),
        Mutant("q_counts", {"qr": sp.Sum(sp.log(sp.Abs(R_idx[i_lu, i_lu])), (i_lu, 1, D_lu)) + sp.log(2)},
               r"A factor from $Q$ counted: $|\det Q| = 1$ contributes nothing."),
    ),
    references=("kingma2018glow", "papamakarios2021normalizing"),
    code=("gencode.flows.LinearLU.log_abs_det_jacobian",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 5. Gaussian autoregressive flows (MAF, IAF): triangular Jacobians, log|det| from the scales.

mu = [None, generic("mu_2", r"\mu_{2}"), generic("mu_3", r"\mu_{3}")]
sigma = [None, generic("sigma_2", r"\sigma_{2}"), generic("sigma_3", r"\sigma_{3}")]
mu_1, sigma_1 = sym("mu_1", real=True), sym("sigma_1", positive=True)
X = (x1, x2, x3)
Z = tuple(sym(f"z_{i}", real=True) for i in (1, 2, 3))


def _cond(fns: list, i: int, prefix: tuple[sp.Symbol, ...], first: sp.Expr) -> sp.Expr:
    """The conditioner of coordinate ``i`` (0-based) applied to the preceding coordinates."""
    return first if i == 0 else fns[i](*prefix[:i])


_INSTANCES_AR = {
    mu[1]: sp.Lambda(x1, _c[0] * x1**2),
    mu[2]: sp.Lambda((x1, x2), _c[1] * x1 * x2),
    sigma[1]: sp.Lambda(x1, 1 + _c[2] * x1**2),
    sigma[2]: sp.Lambda((x1, x2), 1 + _c[3] * x2**2 + _c[4] * x1**2),
}


class _Scale(sp.Function):
    r"""``sigma_i`` of the preceding coordinates, ``x_<i`` (MAF) or ``z_<i`` (IAF), for the display."""

    nargs = 1
    variable = "x"

    def _latex(self, printer, exp=None):
        k = printer._print(self.args[0])
        text = rf"\sigma_{{{k}}}\big({self.variable}_{{<{k}}}\big)"
        return text if exp is None else rf"{text}^{{{exp}}}"


class ScaleX(_Scale):
    variable = "x"


class ScaleZ(_Scale):
    variable = "z"


class ShiftX(_Scale):
    r"""``mu_i(x_<i)``, for a wrong variant."""

    def _latex(self, printer, exp=None):
        k = printer._print(self.args[0])
        text = rf"\mu_{{{k}}}\big(x_{{<{k}}}\big)"
        return text if exp is None else rf"{text}^{{{exp}}}"


i_ar = sym("i", positive=True, integer=True)
D_ar = sym("D", positive=True, integer=True)
_prefix = sym("u", real=True)  # the preceding coordinates, held fixed
_own = sym("y", real=True)  # the coordinate itself
mu_last, sigma_last = generic("mu_D", r"\mu_D"), generic("sigma_D", r"\sigma_D")
_INSTANCES_LAST = {mu_last: sp.Lambda(_prefix, _c[0] * _prefix), sigma_last: sp.Lambda(_prefix, 1 + _c[1] * _prefix**2)}


def _at_last(expr: sp.Expr) -> sp.Expr:
    """The D-th term: the display functions at i = D become the conditioners of the prefix u."""
    expr = expr.xreplace({i_ar: D_ar})
    for cls, fn in ((ScaleX, sigma_last), (ScaleZ, sigma_last), (ShiftX, mu_last)):
        expr = expr.replace(cls, lambda k, fn=fn: fn(_prefix))
    return expr


def _in_three_dimensions(expr: sp.Expr) -> sp.Expr:
    """The claim at D = 3 with the 3-D conditioners of section 5 (sigma_1 a constant)."""
    expr = expr.xreplace({D_ar: 3}).doit()
    expr = expr.replace(ScaleX, lambda k: _cond(sigma, int(k) - 1, X, sigma_1))
    expr = expr.replace(ScaleZ, lambda k: _cond(sigma, int(k) - 1, Z, sigma_1))
    return expr.replace(ShiftX, lambda k: _cond(mu, int(k) - 1, X, mu_1))


def _ar_residuals(claim: Claim) -> list[sp.Expr]:
    """Every D: the D-th term of the claimed sum is log of the D-th diagonal entry, computed by
    differentiating z_D = (x_D - mu_D(u)) / sigma_D(u) in x_D (IAF: x_D = mu_D(u) + sigma_D(u) z_D in z_D)
    with the prefix u held fixed, and the sum over i = 1..D is the sum up to D - 1 plus that term
    (induction; the triangular determinant is the product of the diagonal).  D = 3: the full Jacobians
    of the 3-D maps with generic conditioners, upper triangle zero and determinant (as before)."""
    maf_last = (_own - mu_last(_prefix)) / sigma_last(_prefix)
    iaf_last = mu_last(_prefix) + sigma_last(_prefix) * _own
    out = []
    for part, entry in (("maf", sp.diff(maf_last, _own)), ("iaf", sp.diff(iaf_last, _own))):
        total = claim[part]
        if not isinstance(total, sp.Mul | sp.Sum) or not total.atoms(sp.Sum):
            raise TypeError("the claim must be a (signed) sum over i = 1..D")
        summand = sum((a.function for a in total.atoms(sp.Sum)), sp.Integer(0)) * (total / total.atoms(sp.Sum).pop())
        out.append(sp.expand_log(_at_last(summand) - sp.log(entry), force=True))
    maf = sp.Matrix([(X[i] - _cond(mu, i, X, mu_1)) / _cond(sigma, i, X, sigma_1) for i in range(3)])
    iaf = sp.Matrix([_cond(mu, i, Z, mu_1) + _cond(sigma, i, Z, sigma_1) * Z[i] for i in range(3)])
    three = []
    for part, J in (("maf", maf.jacobian(X)), ("iaf", iaf.jacobian(Z))):
        three += [J[i, j] for i in range(3) for j in range(i + 1, 3)]  # upper triangle vanishes
        three.append(sp.expand(sp.exp(_in_three_dimensions(claim[part])), power_exp=True) - J.det())
    return with_instances(out, _INSTANCES_LAST) + with_instances(three, _INSTANCES_AR)


autoregressive_logdet = register(Identity(
    id="flows.autoregressive_logdet",
    title="Gaussian autoregressive flows (MAF, IAF): triangular Jacobian, log|det| from the scales",
    chapter=CHAPTER,
    claim={"maf": -sp.Sum(sp.log(ScaleX(i_ar)), (i_ar, 1, D_ar)),
           "iaf": sp.Sum(sp.log(ScaleZ(i_ar)), (i_ar, 1, D_ar))},
    check=Check("every D: the D-th diagonal entry by differentiating the last coordinate's map with generic "
                "mu_D, sigma_D of the fixed prefix (induction on the sum); D = 3: full Jacobians with generic "
                "conditioners, upper triangle zero, exp of the claim against det; cancel; witnesses with the "
                "conditioners instantiated", _ar_residuals),
    template=(r"\begin{aligned} \text{MAF:}\quad \log\left\lvert\det \frac{\partial z}{\partial x}\right\rvert "
              r"&= $maf, \\ \text{IAF:}\quad \log\left\lvert\det \frac{\partial x}{\partial z}\right\rvert "
              r"&= $iaf \end{aligned}"),
    assumptions=("sigma_i > 0 depends only on the preceding coordinates (x_<i for MAF, z_<i for IAF)",
                 "MAF: z_i = (x_i - mu_i(x_<i)) / sigma_i(x_<i); IAF: x_i = mu_i(z_<i) + sigma_i(z_<i) z_i",
                 "the Jacobian is lower triangular (z_i involves x_<=i only), so its determinant is the "
                 "product of its diagonal (checked on the full Jacobian for D = 3)"),
    mutants=(
        Mutant("maf_sign", {"maf": sp.Sum(sp.log(ScaleX(i_ar)), (i_ar, 1, D_ar))},
               "The sign of the MAF log-determinant flipped (the sampling direction's value)."),
        Mutant("maf_includes_mu", {"maf": sp.Sum(sp.log(ShiftX(i_ar) ** 2) / 2 - sp.log(ScaleX(i_ar)), (i_ar, 1, D_ar))},
               r"A term $\log\lvert\mu_i\rvert$ from the shift, which does not enter the diagonal."),
        Mutant("iaf_sigma_squared", {"iaf": sp.Sum(2 * sp.log(ScaleZ(i_ar)), (i_ar, 1, D_ar))},
               r"Variances $\sigma_i^2$ where the scales $\sigma_i$ belong."),
    ),
    references=("papamakarios2017masked",),
    code=("gencode.flows.MAF.log_abs_det_jacobian", "gencode.flows.IAF.log_abs_det_jacobian"),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 6. The inverse of MAF is sequential and conditions on x, not on z.


def _maf_inverse_residuals(claim: Claim) -> list[sp.Expr]:
    """Round trip: compute z from x by the MAF map, feed it to the claimed inverse, compare with x."""
    z_of_x = {Z[i]: (X[i] - _cond(mu, i, X, mu_1)) / _cond(sigma, i, X, sigma_1) for i in range(3)}
    back = [claim[f"x_{i + 1}"].xreplace(z_of_x) for i in range(3)]
    return with_instances([back[i] - X[i] for i in range(3)], _INSTANCES_AR)


maf_inverse = register(Identity(
    id="flows.maf_inverse",
    title="Inverting MAF: x_i = mu_i(x_<i) + sigma_i(x_<i) z_i, one coordinate after another",
    chapter=CHAPTER,
    claim={f"x_{i + 1}": _cond(mu, i, X, mu_1) + _cond(sigma, i, X, sigma_1) * Z[i] for i in range(3)},
    check=Check("round trip x -> z -> x with generic conditioners; cancel; witness with conditioners "
                "instantiated", _maf_inverse_residuals),
    template=(r"x_1 = $x_1, \qquad x_2 = $x_2, \qquad x_3 = $x_3"),
    assumptions=("z_i = (x_i - mu_i(x_<i)) / sigma_i(x_<i), sigma_i > 0",),
    mutants=(
        Mutant("conditioners_on_z",
               {f"x_{i + 1}": _cond(mu, i, Z, mu_1) + _cond(sigma, i, Z, sigma_1) * Z[i] for i in range(3)},
               r"The inverse written with the conditioners evaluated at $z_{<i}$ instead of $x_{<i}$; that "
               "map is the generative direction of IAF, a different flow, and does not invert MAF.",
               source=SOURCE_001),
        Mutant("divide_by_sigma",
               {f"x_{i + 1}": _cond(mu, i, X, mu_1) + Z[i] / _cond(sigma, i, X, sigma_1) for i in range(3)},
               r"Divided by $\sigma_i$ again instead of multiplied."),
    ),
    references=("papamakarios2017masked",),
    code=("gencode.flows.MAF.forward",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 7. Affine coupling (RealNVP): block-triangular Jacobian, log|det| = sum of s.

s = [generic("s_1", "s_1"), generic("s_2", "s_2")]
t = [generic("t_1", "t_1"), generic("t_2", "t_2")]
X4 = (x1, x2, x3, x4)
_INSTANCES_COUPLING = {
    s[0]: sp.Lambda((x1, x2), _c[0] * x1 * x2), s[1]: sp.Lambda((x1, x2), _c[1] * x1**2 - x2),
    t[0]: sp.Lambda((x1, x2), _c[2] * x2**3), t[1]: sp.Lambda((x1, x2), _c[3] * x1),
}


def _coupling_residuals(claim: Claim) -> list[sp.Expr]:
    """``y_{1:2} = x_{1:2}``, ``y_j = x_j exp(s_j(x_{1:2})) + t_j(x_{1:2})`` for ``j = 3, 4``."""
    y = sp.Matrix([x1, x2] + [X4[2 + j] * sp.exp(s[j](x1, x2)) + t[j](x1, x2) for j in range(2)])
    J = y.jacobian(X4)
    block = [J[i, j] for i in range(2) for j in range(2, 4)]  # upper-right block vanishes
    det = sp.expand(J.det(), power_exp=True)
    return with_instances(block + [sp.expand(sp.exp(claim["log_det"]), power_exp=True) - det], _INSTANCES_COUPLING)


coupling_logdet = register(Identity(
    id="flows.coupling_logdet",
    title="Affine coupling (RealNVP): the log-determinant is the sum of the log-scales",
    chapter=CHAPTER,
    claim={"log_det": s[0](x1, x2) + s[1](x1, x2)},
    check=Check("Jacobian of a 4-D coupling layer with generic s_j, t_j; upper-right block zero; exp of the "
                "claim against det; cancel; witness with s, t instantiated", _coupling_residuals),
    template=(r"y_{1:2} = x_{1:2},\quad y_{3:4} = x_{3:4} \odot e^{s(x_{1:2})} + t(x_{1:2}) "
              r"\quad\Longrightarrow\quad \log\left\lvert\det\frac{\partial y}{\partial x}\right\rvert = $log_det"),
    assumptions=("s = (s_1, s_2), t = (t_1, t_2) arbitrary differentiable functions of x_{1:2}",),
    mutants=(
        Mutant("exp_scales", {"log_det": sp.exp(s[0](x1, x2)) + sp.exp(s[1](x1, x2))},
               r"The scales $e^{s_j}$ summed instead of the log-scales $s_j$."),
        Mutant("inverse_direction", {"log_det": -s[0](x1, x2) - s[1](x1, x2)},
               "The log-determinant of the inverse map."),
        Mutant("shift_counts", {"log_det": s[0](x1, x2) + s[1](x1, x2) + t[0](x1, x2)},
               r"A contribution of the shift $t$, which sits below the diagonal."),
    ),
    references=("dinh2017density",),
    code=("gencode.flows.AffineCoupling.log_abs_det_jacobian",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 8. Maximum likelihood for a one-dimensional linear flow z = a x + b on data with mean m, variance v.

a, b = sym("a", positive=True), sym("b", real=True)
m = sym("m", real=True)
v = sym("v", positive=True)
w = sym("w", positive=True)  # v = w^2, so the square root is rational


def _mean_log_lik(scale: sp.Expr, shift: sp.Expr) -> sp.Expr:
    """``E[log N(a X + b; 0, 1) + log a]`` with ``E[X] = m``, ``E[X^2] = v + m^2`` (empirical moments)."""
    second = scale**2 * (v + m**2) + 2 * scale * shift * m + shift**2
    return -second / 2 - sp.log(2 * sp.pi) / 2 + sp.log(scale)


def _mle_residuals(claim: Claim) -> list[sp.Expr]:
    ell = _mean_log_lik(a, b)
    at = {a: claim["scale"], b: claim["shift"]}
    return [sp.diff(ell, a).xreplace(at), sp.diff(ell, b).xreplace(at),
            sp.expand_log(-ell.xreplace(at) - claim["nll"], force=True)]


linear_gaussian_mle = register(Identity(
    id="flows.linear_gaussian_mle",
    title="A linear flow fitted by maximum likelihood standardises the data",
    chapter=CHAPTER,
    claim={"scale": 1 / sp.sqrt(v), "shift": -m / sp.sqrt(v),
           "nll": sp.log(2 * sp.pi * sp.E * v) / 2},
    check=Check("stationarity of the mean log-likelihood in (a, b) (it is strictly concave); value at the "
                "optimum; v = w^2; expand_log and cancel", _mle_residuals, definitions={v: w**2}),
    template=(r"\hat a = $scale, \qquad \hat b = $shift, \qquad "
              r"-\frac{1}{N}\sum_{n} \log p_{\hat a, \hat b}(x_n) = $nll"),
    assumptions=("z = a x + b, a > 0, base N(0, 1)", "m and v > 0 the sample mean and (1/N) variance"),
    mutants=(
        Mutant("variance_for_std", {"scale": 1 / v, "shift": -m / v},
               r"The scale $1/v$ instead of $1/\sqrt{v}$."),
        Mutant("shift_sign", {"shift": m / sp.sqrt(v)}, "The shift with the wrong sign."),
        Mutant("nll_without_e", {"nll": sp.log(2 * sp.pi * v) / 2},
               r"The optimal NLL without its $\tfrac12$ (the factor $e$ inside the logarithm)."),
    ),
    references=("papamakarios2021normalizing",),
    code=("gencode.flows.LinearLU",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 9. LOTUS: expectations under a flow are expectations over the base, pushed through the flow.

z = sym("z", real=True)
mu_x, sigma_x = sym("mu", real=True), sym("sigma", positive=True)


def _lotus_residuals(claim: Claim) -> list[sp.Expr]:
    """The density of ``X = mu + sigma Z`` by the change of variables is ``N(mu, sigma^2)`` (log-densities
    compared), and the first four moments of that density equal ``E[h(claimed map of Z)]``."""
    standard = GaussianFactor((x - mu_x) / sigma_x, 0, 1).log_density()  # log p_Z(f(x)), f(x) = (x - mu)/sigma
    density = sp.expand_log(standard + sp.log(claim["jacobian"])
                            - GaussianFactor(x, mu_x, sigma_x**2).log_density(), force=True)
    moments = [gaussian_moment(k, mu_x, sigma_x**2) - gaussian_expectation(claim["pushforward"] ** k, z, 0, 1)
               for k in range(1, 5)]
    return [density] + moments


lotus = register(Identity(
    id="flows.lotus",
    title="LOTUS: an expectation under a flow is an expectation over its base samples",
    chapter=CHAPTER,
    claim={"pushforward": mu_x + sigma_x * z, "jacobian": 1 / sigma_x},
    check=Check("density of X by the change of variables identified as N(mu, sigma^2) (log-densities, "
                "expand_log); moments k = 1..4 on both sides by the Gaussian moment recursion; cancel",
                _lotus_residuals),
    template=(r"\mathbb{E}_{p_X}\big[h(X)\big] = \mathbb{E}_{z \sim \mathcal{N}(0, 1)}\big[h\big($pushforward\big)\big], "
              r"\qquad p_X(x) = p_Z\!\left(\tfrac{x - \mu}{\sigma}\right) $jacobian"),
    assumptions=("x = f^{-1}(z) = mu + sigma z, sigma > 0, base N(0, 1)",
                 "h(x) = x^k, k = 1, ..., 4 (polynomials of degree <= 4)"),
    mutants=(
        Mutant("forward_map_inside", {"pushforward": (z - mu_x) / sigma_x},
               r"The normalizing map $f$ applied to base samples instead of $f^{-1}$."),
        Mutant("no_jacobian", {"jacobian": sp.Integer(1)},
               "The Jacobian factor forgotten: the density of X does not integrate to one."),
    ),
    references=("papamakarios2021normalizing",),
    code=("gencode.flows.Flow.sample",),
    display={"pushforward": sp.Add(mu_x, sp.Mul(sigma_x, z, evaluate=False), evaluate=False),
             "jacobian": sp.Pow(sigma_x, -1, evaluate=False)},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 10. The change of variables in D dimensions, for triangular (autoregressive) maps, by induction on D.
#
# z = f(x) with z_i = f_i(x_1, ..., x_i) increasing in x_i (MAF, IAF and coupling layers are such maps,
# up to a permutation).  Step D - 1 -> D: by the chain rule p_X(x_{1:D}) = p_X(x_{<D}) p(x_D | x_{<D});
# the first factor is the claim for D - 1 (induction hypothesis); given x_{<D} (equivalently
# z_{<D} = f_{<D}(x_{<D}), a bijection of the prefixes), x_D -> z_D = f_D(x_{<D}, x_D) is an increasing
# map of one variable, so p(x_D | x_{<D}) is the derivative of the conditional CDF F(f_D(u, x_D) | u)
# (flows.change_of_variables, conditionally); and p_Z(z) = p_Z(z_{<D}) p(z_D | z_{<D}).  The prefix
# x_{<D} is held fixed throughout, so one symbol u stands for it whatever its dimension.

i_idx = sym("i", positive=True, integer=True)
D_dim = sym("D", positive=True, integer=True)
u_prefix = sym("u", real=True)  # x_{<D}
x_last = sym("x_D", real=True)
f_last = generic("f_D", "f_D")  # f_D(x_{<D}, x_D)
F_cond = generic("F_c", r"F_{Z_D \mid Z_{<D}}")  # conditional CDF, a function of (z_D, x_{<D})
p_cond = generic("p_c", r"p_{Z_D \mid Z_{<D}}")  # its density in z_D
base_prefix = sym("P_prev", positive=True)  # p_{Z_{<D}}(f_{<D}(x_{<D}))
claim_prefix = sym("G_prev", positive=True)  # the claimed Jacobian factor up to D - 1 (hypothesis)


class Diagonal(sp.Function):
    r"""``d f_i / d x_i``, the i-th diagonal entry of the triangular Jacobian."""

    nargs = 1

    def _latex(self, printer, exp=None):
        k = printer._print(self.args[0])
        text = rf"\frac{{\partial f_{{{k}}}}}{{\partial x_{{{k}}}}}(x)"
        return text if exp is None else rf"\left({text}\right)^{{{exp}}}"


class _BaseAtImage(sp.Symbol):
    r"""``p_Z(f(x))``, the base density at the image, as one positive symbol."""

    def _latex(self, printer, exp=None):
        return r"p_Z\big(f(x)\big)" if exp is None else rf"p_Z\big(f(x)\big)^{{{exp}}}"


_base_at_image = _BaseAtImage("p_Z_f", positive=True)
_INSTANCES_TRI = {
    f_last: sp.Lambda((u_prefix, x_last), _c[0] * x_last + _c[1] * x_last**3 + u_prefix * x_last / 4),
    p_cond: sp.Lambda((z, u_prefix), 1 / (1 + _c[2] * z**2 + u_prefix**2)),
}


def _step(expr: sp.Expr, prefix: sp.Expr) -> sp.Expr:
    """The claim at D written through its value at D - 1: products and sums over i = 1..D split off their
    D-th term, the rest is the claimed prefix factor ``G_prev`` (or its logarithm)."""
    expr = expr.replace(lambda e: isinstance(e, sp.Product), lambda e: prefix * e.function.xreplace({i_idx: D_dim}))
    expr = expr.replace(lambda e: isinstance(e, sp.Sum), lambda e: sp.log(prefix) + e.function.xreplace({i_idx: D_dim}))
    return expr.replace(Diagonal, lambda k: sp.Derivative(f_last(u_prefix, x_last), x_last) if k == D_dim else Diagonal(k))


def _triangular_residuals(claim: Claim) -> list[sp.Expr]:
    conditional = sp.diff(F_cond(f_last(u_prefix, x_last), u_prefix), x_last)
    image = f_last(u_prefix, x_last)
    conditional = conditional.xreplace({sp.Derivative(F_cond(image, u_prefix), image): p_cond(image, u_prefix)})  # F' = p
    derived = base_prefix * claim_prefix * conditional  # p_X(x_{<D}) p(x_D | x_{<D})
    base = {_base_at_image: base_prefix * p_cond(f_last(u_prefix, x_last), u_prefix)}  # p_Z = p_Z(z_<D) p(z_D|z_<D)
    density = _step(claim["density"], claim_prefix).xreplace(base)
    log_density = sp.expand_log(_step(claim["log_density"], claim_prefix).xreplace(base), force=True)
    step = [derived - density, sp.expand_log(sp.log(derived), force=True) - log_density]
    first = {base_prefix: 1, claim_prefix: 1}  # D = 1: empty prefixes (flows.change_of_variables)
    return with_instances(step + [r.xreplace(first) for r in step], _INSTANCES_TRI)


_jac_product = sp.Product(Diagonal(i_idx), (i_idx, 1, D_dim))
change_of_variables_triangular = register(Identity(
    id="flows.change_of_variables_triangular",
    title="Change of variables in D dimensions for a triangular (autoregressive) map, every D",
    chapter=CHAPTER,
    claim={"density": _base_at_image * _jac_product,
           "log_density": sp.log(_base_at_image) + sp.Sum(sp.log(Diagonal(i_idx)), (i_idx, 1, D_dim))},
    check=Check("induction on D: chain rule p_X(x_<D) p(x_D | x_<D) with the claim for D - 1 as hypothesis; "
                "p(x_D | x_<D) by differentiating an undefined conditional CDF F(f_D(x_<D, x_D) | x_<D); "
                "p_Z(z) = p_Z(z_<D) p(z_D | z_<D); base case D = 1; cancel; witness with f_D, p instantiated",
                _triangular_residuals),
    template=(r"\begin{aligned} p_X(x) &= $density = p_Z\big(f(x)\big)\, \big|\det J_f(x)\big|, \\ "
              r"\log p_X(x) &= $log_density \end{aligned}"),
    assumptions=("z = f(x), z_i = f_i(x_1, ..., x_i) differentiable and strictly increasing in x_i (a "
                 "triangular map); Z has a density p_Z",
                 "conditioning on x_<D is conditioning on z_<D = f_<D(x_<D) (a bijection of the prefixes)",
                 "det J_f = prod_i df_i/dx_i: the determinant of a triangular matrix is the product of its diagonal"),
    mutants=(
        Mutant("jacobian_of_the_inverse", {"density": _base_at_image / _jac_product},
               r"Divided by the diagonal of $J_f$: the Jacobian of the wrong direction."),
        Mutant("no_jacobian", {"density": _base_at_image},
               "The Jacobian factor forgotten."),
        Mutant("log_det_sign", {"log_density": sp.log(_base_at_image) - sp.Sum(sp.log(Diagonal(i_idx)), (i_idx, 1, D_dim))},
               "The log-determinant subtracted instead of added."),
        Mutant("squared_diagonal", {"density": _base_at_image * sp.Product(Diagonal(i_idx) ** 2, (i_idx, 1, D_dim))},
               r"The squared diagonal entries (a Gram determinant $\det J^\top J$ without its square root)."),
    ),
    references=("papamakarios2017masked", "papamakarios2021normalizing"),
    code=("gencode.flows.Flow.log_prob",),
    scope=Scope.GENERAL,
))
