"""The check strategies introduced for the EBM and score-matching identities (``derivations.ebm``,
``derivations.score_matching``): each proves a true statement, refutes a false one with a witness, and
never proves a statement that holds only for a special function."""

from __future__ import annotations

import sympy as sp

from derivations.core import Status, function, sym
from derivations.ebm import MatrixCalculus, UnderIntegral, linear_integrals, on_atoms, whole_line
from derivations.score_matching import SymbolicDimension

x, t = sym("x", real=True), sym("t", real=True)
f = function("f", "f")
k = sp.Function("k", positive=True)
_q = sp.Integral(f(x) * k(t, x), *whole_line(x))


def test_linear_integrals_differentiates_under_the_integral() -> None:
    # d/dt int f(x) k(t, x) dx = int f(x) d_t k(t, x) dx, and the log-derivative form of the integrand
    assert linear_integrals(sp.diff(_q, t) - sp.Integral(f(x) * k(t, x) * sp.diff(sp.log(k(t, x)), t),
                                                         *whole_line(x))) == 0
    # linearity: factors free of x come out, sums split
    lhs = sp.Integral(t * f(x) + x * f(x), *whole_line(x))
    rhs = t * sp.Integral(f(x), *whole_line(x)) + sp.Integral(x * f(x), *whole_line(x))
    assert linear_integrals(lhs - rhs) == 0


def test_linear_integrals_does_not_merge_different_integrands_or_limits() -> None:
    # d_t k without the density f, and an integral over [0, 1] instead of R, are different
    assert linear_integrals(sp.diff(_q, t) - sp.Integral(sp.diff(k(t, x), t), *whole_line(x))) != 0
    assert linear_integrals(_q - sp.Integral(f(x) * k(t, x), (x, 0, 1))) != 0


def test_on_atoms_is_the_integral_against_a_discrete_measure() -> None:
    value = on_atoms(sp.Integral(x**2 * f(x), *whole_line(x)), [(1,), (2,)], [sp.Rational(1, 4), sp.Rational(3, 4)])
    assert value == f(1) / 4 + 3 * f(2)


def test_under_integral_proves_refutes_and_names_its_witness() -> None:
    check = UnderIntegral("Leibniz", lambda c: [sp.diff(_q, t) - c["rhs"]],
                          atoms=((0,), (1,)), weights=(1, 2),
                          examples=({f: sp.Lambda(x, 1 + x**2), k: sp.Lambda((t, x), sp.exp(-(t - x)**2))},))
    good = sp.Integral(f(x) * sp.Derivative(k(t, x), t), *whole_line(x))
    assert check({"rhs": good}).status is Status.PROVED
    wrong = sp.Integral(sp.Derivative(k(t, x), t), *whole_line(x))  # the density dropped
    verdict = check({"rhs": wrong})
    assert verdict.status is Status.REFUTED
    assert "atoms" in verdict.witness["measure"] and "f = " in verdict.witness["functions"]


def test_under_integral_does_not_prove_a_statement_true_only_for_a_gaussian_kernel() -> None:
    # d_t k = (x - t) k holds for k = exp(-(t - x)^2 / 2) but not for every kernel: never "proved"
    check = UnderIntegral("kernel", lambda c: [sp.diff(_q, t) - c["rhs"]],
                          atoms=((0,), (1,)), weights=(1, 1),
                          examples=({f: sp.Lambda(x, 1), k: sp.Lambda((t, x), sp.exp(-(t - x)**4))},))
    verdict = check({"rhs": sp.Integral((x - t) * f(x) * k(t, x), *whole_line(x))})
    assert verdict.status is Status.REFUTED


def test_matrix_calculus_and_symbolic_dimension_refute_at_a_concrete_dimension() -> None:
    from derivations.ebm import D, X_vec, W_mat, b_vec, hopfield

    assert hopfield.check(hopfield.claim).status is Status.PROVED
    verdict = MatrixCalculus("m", lambda c: [W_mat * X_vec - c["score"]])({"score": W_mat.T * X_vec + b_vec})
    assert verdict.status is Status.REFUTED and verdict.witness["D"] == "2"
    assert D.is_integer and D.is_positive
    from derivations.score_matching import D as D_sliced, Jac, i_

    sums = SymbolicDimension("s", lambda c: [sp.Sum(Jac[i_, i_], (i_, 1, D_sliced)) - c["trace"]])
    assert sums({"trace": sp.Sum(Jac[i_, i_], (i_, 1, D_sliced))}).status is Status.PROVED
    assert sums({"trace": sp.Sum(Jac[i_, 1], (i_, 1, D_sliced))}).status is Status.REFUTED
