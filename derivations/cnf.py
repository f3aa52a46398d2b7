"""Continuous normalizing flows (Chen et al. 2018; Grathwohl et al. 2019).

A CNF moves samples along an ODE ``dx/dt = f(x, t)`` in ``R^D``; densities follow the continuity
equation ``dp/dt = -div(f p)``.  Registered here, every one for arbitrary smooth fields and densities and
every dimension ``D``:

1. ``cnf.continuity``: the continuity equation, derived in weak form: for every test function ``phi``,
   ``d/dt E[phi(x_t)] = E[grad phi . f]`` (chain rule along solutions) equals ``int phi dp/dt`` exactly
   when ``dp/dt = -div(f p)``; the difference of the two integrands is the divergence of the explicit flux
   ``phi f p``, which integrates to zero;
2. ``cnf.log_density``: along a trajectory, ``d/dt log p_t(x(t)) = -div f`` (instantaneous change of
   variables), with ``dp/dt`` taken from ``cnf.continuity``;
3. ``cnf.hutchinson``: for probes with ``E[e_i e_j] = delta_ij``, ``E[e^T A e] = tr A`` for every ``D``
   (symbolic ``D``, ``IndexedBase`` sums); for Rademacher probes ``Var[e^T A e] = sum_{i<j} (a_ij + a_ji)^2``,
   smaller than the Gaussian probes' variance by ``2 sum_i a_ii^2``;
4. ``cnf.local_error``: on ``dx/dt = lambda x``, one Euler step errs by ``(lambda h)^2 / 2`` and one Heun
   step by ``(lambda h)^3 / 6`` at leading order.

**Coordinates.**  A divergence is a sum over the ``D`` coordinates of terms that each involve the
derivative in one coordinate only.  The identities are therefore written with a generic coordinate
``x_i`` (``IndexedBase``) and sums ``sum_{i=1}^D`` with a symbolic ``D``; :func:`coordinate_summand`
checks that a residual is a linear combination of such sums and returns the summand ``R_i``.  If ``R_i``
vanishes identically (in the jet of the undefined functions, :func:`~derivations.probability_flow.jet`)
the residual vanishes for every ``D``; if ``R_i`` is non-zero at a point, that point is a counterexample
in ``D = 1``, where the sum is ``R_1``.  Functions are written with the generic coordinate as argument
(``p(x_i, t)``): each term differentiates in ``x_i`` only, the other coordinates being held fixed.
"""

from __future__ import annotations

import itertools

import sympy as sp

from .core import Check, Claim, Identity, Mutant, Scope, function, register, sym
from .probability_flow import jet

# ---------------------------------------------------------------------------------------------
# Coordinates: a generic coordinate x_i and sums over i = 1..D.

i = sp.Symbol("i", integer=True, positive=True)
j = sp.Symbol("j", integer=True, positive=True)
D = sym("D", (1, 9), integer=True, positive=True)
X = sp.IndexedBase("x")
xi = X[i]
t = sym("t", (0, 1), positive=True)


class Partial(sp.Derivative):
    r"""A partial derivative printed with its argument in brackets, :math:`\frac{\partial}{\partial x_i}(f_i p_t)`
    (SymPy's default printing drops them for a product). It evaluates as :class:`sympy.Derivative`."""

    def _latex(self, printer, exp=None):  # noqa: ARG002 (SymPy's printer protocol)
        (v, n), = self.variable_count
        inner = printer._print(self.expr)
        if isinstance(self.expr, (sp.Add, sp.Mul)):
            inner = rf"\left({inner}\right)"
        power = "" if n == 1 else f"^{{{n}}}"
        return rf"\frac{{\partial{power}}}{{\partial {printer._print(v)}{power}}}{inner}"


def over_coordinates(summand: sp.Expr, index: sp.Symbol = i) -> sp.Sum:
    """``sum_{index=1}^{D} summand``."""
    return sp.Sum(summand, (index, 1, D))


def coordinate_summand(expr: sp.Expr, index: sp.Symbol = i) -> sp.Expr:
    """The summand ``R_i`` of ``expr = sum_{i=1}^D R_i``.

    ``expr`` must be a linear combination of sums over ``index`` from 1 to ``D``, each term holding
    exactly one such sum (coefficients are functions at the point ``x``, shared by every coordinate).

    Raises:
        ValueError: naming ``expr`` if a term is not of that form (no sum, two sums, other limits).

    Example:
        >>> p = sp.Function("p")(xi, t)
        >>> coordinate_summand(over_coordinates(sp.Derivative(p, xi)) / p - over_coordinates(xi))
        -x[i] + Derivative(p(x[i], t), x[i])/p(x[i], t)
    """
    out = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(expr)):
        if term == 0:
            continue
        sums = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.Sum)]
        if len(sums) != 1 or sums[0].limits != ((index, 1, D),):
            raise ValueError(f"expr must be a linear combination of single sums over {index} = 1..D, "
                             f"got the term {term}")
        coefficient = sp.Mul(*[f for f in sp.Mul.make_args(term) if f is not sums[0]])
        out += coefficient * sums[0].function
    return out


# ---------------------------------------------------------------------------------------------
# 1. The continuity equation, in weak form.

_P = function("p", r"p_t", show_args=False)
_F = function("f", r"f_i", show_args=False)
_PHI = function("phi", r"\varphi", show_args=False)
p, f_i, phi = _P(xi, t), _F(i, xi, t), _PHI(xi)
divergence_of_flux = over_coordinates(Partial(f_i * p, xi))
"""``div(f p) = sum_i d(f_i p)/dx_i``."""


def _continuity_residuals(claim: Claim) -> list[sp.Expr]:
    r"""``phi dp/dt - p f . grad phi + div(phi f p)``: zero exactly when the weak form
    ``int phi dp/dt = int p f . grad phi`` holds for every ``phi`` (the last term is a divergence, whose
    integral vanishes for a test function of compact support)."""
    chain_rule = over_coordinates(p * f_i * sp.Derivative(phi, xi))  # integrand of d/dt E[phi(x_t)]
    flux = over_coordinates(Partial(phi * f_i * p, xi))  # the explicit divergence
    return [jet(coordinate_summand(phi * claim["dp_dt"] - chain_rule + flux).doit())]


continuity = register(Identity(
    id="cnf.continuity",
    title="The continuity equation of an ODE flow",
    chapter="cnf",
    claim={"dp_dt": -divergence_of_flux},
    check=Check(
        "weak form for an undefined test function phi, density p(x, t) and field f(x, t): "
        "phi dp/dt - p f.grad(phi) equals minus the divergence of the explicit flux phi f p; "
        "summand of the sum over a generic coordinate x_i (symbolic D) in the jet; cancel",
        _continuity_residuals,
    ),
    template=r"\frac{\partial p_t}{\partial t} = $dp_dt",
    assumptions=("x(t) solves dx/dt = f(x, t) with f smooth; p_t > 0 smooth is the law of x(t)",
                 "d/dt E[phi(x_t)] = E[grad phi(x_t) . f(x_t, t)] for every smooth phi of compact support "
                 "(the chain rule along solutions)",
                 "every dimension D: the residual is a sum over coordinates of terms in one coordinate each"),
    mutants=(
        Mutant("plus_divergence", {"dp_dt": divergence_of_flux},
               "The sign of the divergence flipped: mass would pile up where the flow leaves."),
        Mutant("advection_only", {"dp_dt": -over_coordinates(f_i * sp.Derivative(p, xi))},
               r"Only the advection term $-f \cdot \nabla p_t$, as if the flow preserved volume: the "
               r"compression term $-p_t \nabla\cdot f$ is missing."),
    ),
    references=("chen2018neural", "villani2009optimal"),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 2. The instantaneous change of variables.

divergence = over_coordinates(sp.Derivative(f_i, xi))
"""``div f = tr(df/dx) = sum_i df_i/dx_i``."""


def _log_density_residuals(claim: Claim) -> list[sp.Expr]:
    """Total derivative of ``log p`` along ``x' = f``: ``(dp/dt + f . grad p) / p``, with ``dp/dt`` from
    the continuity equation (``cnf.continuity``)."""
    total = (continuity.claim["dp_dt"] + over_coordinates(f_i * sp.Derivative(p, xi))) / p
    return [jet(coordinate_summand(total - claim["dlogp"]).doit())]


log_density = register(Identity(
    id="cnf.log_density",
    title="Instantaneous change of variables: log-density along a trajectory",
    chapter="cnf",
    claim={"dlogp": -divergence},
    check=Check(
        "total derivative (dp/dt + f.grad p)/p along dx/dt = f, dp/dt from cnf.continuity, for undefined "
        "p(x, t), f(x, t); summand over a generic coordinate (symbolic D) in the jet; cancel",
        _log_density_residuals,
    ),
    template=(r"\frac{\mathrm{d}}{\mathrm{d}t} \log p_t\bigl(x(t)\bigr) = $dlogp "
              r"= -\operatorname{tr}\frac{\partial f}{\partial x}"),
    assumptions=("dx/dt = f(x, t) with f smooth; p_t > 0 smooth, solving the continuity equation",
                 "every dimension D (sum over a generic coordinate)"),
    mutants=(
        Mutant("plus_trace", {"dlogp": divergence},
               "The sign of the trace flipped: volume expansion would raise the density."),
        Mutant("eulerian", {"dlogp": -divergence - over_coordinates(f_i * sp.Derivative(sp.log(p), xi))},
               r"The rate at a fixed point, $\partial_t \log p_t(x)$, given for the rate along the "
               r"trajectory (the advection term $f \cdot \nabla \log p_t$ is the difference)."),
    ),
    references=("chen2018neural", "grathwohl2019ffjord"),
    code=("gencode.ode.integrate_with_logdensity",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 3. Hutchinson's estimator.

A = sp.IndexedBase("a")
"""The matrix, entries ``a[i, j]`` for ``1 <= i, j <= D``."""


class PairSum(sp.Sum):
    r"""``sum_{i=1}^D sum_{j=i+1}^D``, printed as :math:`\sum_{1 \le i < j \le D}`."""

    def _latex(self, printer, exp=None):  # noqa: ARG002
        return rf"\sum_{{1 \le i < j \le D}} {printer.parenthesize(self.function, 50)}"


def _delta_sum(expr: sp.Expr) -> sp.Expr:
    """Evaluate sums of Kronecker deltas over ``1..D``; inside the range the condition ``i <= D`` holds."""
    out = sp.Sum(expr, (j, 1, D), (i, 1, D)).doit()
    return out.replace(lambda e: isinstance(e, sp.Piecewise),
                       lambda e: e.args[0].expr if e.args[0].cond in (sp.Ge(D, i), sp.Le(i, D)) else e)


def _finite(expr: sp.Expr, dim: int) -> sp.Expr:
    """``expr`` at ``D = dim`` with every sum written out (outer index first) and entries as symbols."""
    def expand(e: sp.Expr) -> sp.Expr:
        if not isinstance(e, sp.Sum):
            return e
        *inner, (var, lo, hi) = e.limits
        body = sp.Sum(e.function, *inner) if inner else e.function
        return sp.Add(*[expand(body.xreplace({var: k})) for k in range(int(lo), int(hi) + 1)])

    expr = sp.sympify(expr).xreplace({D: dim}).replace(lambda e: isinstance(e, sp.Sum),
                                                        lambda e: expand(sp.Sum(*e.args)))
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == A,
                        lambda e: entry(*e.indices))


def entry(r: int, c: int) -> sp.Symbol:
    """The symbol ``a_rc`` standing for ``a[r, c]`` in the finite checks (1-based)."""
    return sym(f"a_{r}{c}", real=True)


PATTERN_DIM = 4
"""The dimension of the exhaustive variance check (see :func:`_hutchinson_residuals`)."""


def _rademacher_moments(dim: int) -> tuple[sp.Expr, sp.Expr]:
    """Exact mean and second moment of ``e^T A e`` over the ``2^dim`` sign vectors."""
    M = sp.Matrix(dim, dim, lambda r, c: entry(r + 1, c + 1))
    values = [sp.expand((sp.Matrix(e).T * M * sp.Matrix(e))[0, 0]) for e in itertools.product((-1, 1), repeat=dim)]
    return sp.Add(*values) / len(values), sp.Add(*[v**2 for v in values]) / len(values)


def _hutchinson_residuals(claim: Claim) -> list[sp.Expr]:
    r"""Mean for every ``D``: ``E[sum_ij a_ij e_i e_j] = sum_ij a_ij delta_ij`` summed symbolically.

    Variance: ``Var[e^T A e]`` and the claimed formula are both quadratic forms in the entries,
    ``sum c_{ijkl} a_ij a_kl``, and both are unchanged when the coordinates are relabelled (the signs are
    i.i.d.; the formula sums over unordered pairs), so ``c_{ijkl}`` depends on ``(i, j, k, l)`` only
    through which indices are equal, a pattern with at most four distinct values.  Every pattern occurs
    in ``D = 4``, so agreement at ``D = 4`` (exact average over the 16 sign vectors) gives agreement for
    every ``D >= 4``; a smaller ``D`` is ``D = 4`` with a zero-padded matrix, for which both sides are
    unchanged.  The finite residuals come first, so that a false claim is refuted at a point.
    """
    mean_dim, second_dim = _rademacher_moments(PATTERN_DIM)
    mean_symbolic = _delta_sum(A[i, j] * sp.KroneckerDelta(i, j)) - claim["mean"]
    return [mean_dim - _finite(claim["mean"], PATTERN_DIM),
            sp.expand(second_dim - mean_dim**2) - _finite(claim["variance"], PATTERN_DIM),
            mean_symbolic]


trace_of_A = over_coordinates(A[i, i])
_pair_variance = PairSum((A[i, j] + A[j, i]) ** 2, (j, i + 1, D), (i, 1, D))

hutchinson = register(Identity(
    id="cnf.hutchinson",
    title="Hutchinson's trace estimator is unbiased; its variance with Rademacher probes",
    chapter="cnf",
    claim={"mean": trace_of_A, "variance": _pair_variance},
    check=Check("mean: sum over i, j = 1..D of a_ij E[e_i e_j] = a_ij delta_ij with symbolic D; "
                "variance: quadratic forms in the entries agree at D = 4 (exact average over the 16 sign "
                "vectors), which covers every index pattern, hence every D; expand",
                _hutchinson_residuals),
    template=(r"\mathbb{E}[\epsilon^\top A \epsilon] = $mean, "
              r"\qquad \epsilon \sim \mathrm{Unif}\{-1, 1\}^D:\ \operatorname{Var}[\epsilon^\top A \epsilon] = $variance"),
    assumptions=("A a real D x D matrix (no symmetry assumed), every D >= 1",
                 "mean: any probe with E[e_i e_j] = delta_ij (Rademacher or Gaussian)",
                 "variance: probe coordinates independent, +-1 with probability 1/2"),
    mutants=(
        Mutant("sum_of_entries", {"mean": over_coordinates(over_coordinates(A[i, j], j))},
               "The estimator taken to average all entries of A, not the diagonal."),
        Mutant("gaussian_variance", {"variance": _pair_variance + 2 * over_coordinates(A[i, i] ** 2)},
               r"The variance of Gaussian probes, which exceeds the Rademacher one by "
               r"$2 \sum_i a_{ii}^2$."),
        Mutant("symmetric_only", {"variance": PairSum(A[i, j] ** 2 + A[j, i] ** 2, (j, i + 1, D), (i, 1, D))},
               r"The cross term $2 a_{ij} a_{ji}$ dropped, as if the two off-diagonal entries of a pair "
               r"entered the estimator independently."),
    ),
    references=("hutchinson1989stochastic", "grathwohl2019ffjord"),
    code=("gencode.ode.hutchinson_divergence",),
    scope=Scope.GENERAL,
))


def hutchinson_value(part: str, matrix) -> float:
    """A part (``"mean"`` or ``"variance"``) of ``cnf.hutchinson`` evaluated for a concrete square matrix.

    Example:
        >>> hutchinson_value("variance", [[1.0, 2.0], [0.5, -1.0]])
        6.25
    """
    rows = [[float(v) for v in row] for row in (matrix.tolist() if hasattr(matrix, "tolist") else matrix)]
    dim = len(rows)
    if dim < 1 or any(len(r) != dim for r in rows):
        raise ValueError(f"matrix must be square, got {len(rows)} rows of lengths {[len(r) for r in rows]}")
    expr = _finite(hutchinson.claim[part], dim)
    return float(expr.xreplace({entry(r + 1, c + 1): rows[r][c] for r in range(dim) for c in range(dim)}))


# ---------------------------------------------------------------------------------------------
# 4. Local errors of Euler and Heun on a linear ODE.

lam = sym("lambda", real=True)
h = sym("h", positive=True)


def _one_step(method: str) -> sp.Expr:
    """One step of size h from x = 1 on dx/dt = lambda x."""
    f = lambda y: lam * y  # noqa: E731
    if method == "euler":
        return 1 + h * f(1)
    predictor = 1 + h * f(1)
    return 1 + h / 2 * (f(1) + f(predictor))  # Heun: trapezoid with an Euler predictor


def _local_error_residuals(claim: Claim) -> list[sp.Expr]:
    exact = sp.exp(lam * h)
    euler = sp.series(exact - _one_step("euler"), h, 0, 3).removeO()
    heun = sp.series(exact - _one_step("heun"), h, 0, 4).removeO()
    return [euler - claim["euler"], heun - claim["heun"]]


local_error = register(Identity(
    id="cnf.local_error",
    title="Local errors of the Euler and Heun steps on the linear test equation",
    chapter="cnf",
    claim={"euler": lam**2 * h**2 / 2, "heun": lam**3 * h**3 / 6},
    check=Check("one step of each method from x = 1 on dx/dt = lambda x, minus exp(lambda h), "
                "Taylor-expanded in h to the first non-vanishing order", _local_error_residuals),
    template=(r"e^{\lambda h} - \bigl(1 + h\lambda\bigr) = $euler + O(h^3), \qquad "
              r"e^{\lambda h} - \Bigl(1 + \tfrac{h}{2}\bigl(\lambda + \lambda(1 + h\lambda)\bigr)\Bigr) = $heun + O(h^4)"),
    assumptions=("dx/dt = lambda x, x(0) = 1, step h > 0, every real lambda",),
    mutants=(
        Mutant("euler_global_order", {"euler": lam * h},
               "Euler's global error order (h) given as its local error; the local error is O(h^2)."),
        Mutant("heun_like_euler", {"heun": lam**2 * h**2 / 2},
               "Heun credited with Euler's local error: the corrector's gain is missed."),
        Mutant("heun_factor", {"heun": lam**3 * h**3 / 12},
               "Heun's leading error coefficient halved (1/12 is the trapezoid rule's for quadrature)."),
    ),
    references=("hairer1993solving",),
    code=("gencode.ode.odeint",),
    scope=Scope.GENERAL,
))
