"""The normal form of finite sums (``derivations.indexed_sums``) proves what holds for every size and
nothing else: each rule is tried on true identities and on near-misses that hold only for some sizes."""

from __future__ import annotations

import sympy as sp

from derivations.core import Status, sym
from derivations.indexed_sums import ForEverySize, expand_sums, normalised, peel, to_instance, write_out

i, j, k, N, K = sp.symbols("i j k N K", integer=True, positive=True)
x, y, r = sp.IndexedBase("x"), sp.IndexedBase("y"), sp.IndexedBase("r")


def _zero(expr: sp.Expr, rules=()) -> bool:
    return sp.cancel(sp.together(expand_sums(expr, rules))) == 0


def test_linearity_constants_and_renaming() -> None:
    assert _zero(sp.Sum(3 * x[i] + 2, (i, 1, N)) - 3 * sp.Sum(x[j], (j, 1, N)) - 2 * N)
    assert _zero(sp.Sum(x[i] * y[j], (i, 1, N), (j, 1, K)) - sp.Sum(sp.Sum(x[i] * y[j], (j, 1, K)), (i, 1, N)))


def test_near_misses_are_not_proved() -> None:
    assert not _zero(sp.Sum(x[i], (i, 1, N)) ** 2 - sp.Sum(x[i] ** 2, (i, 1, N)))  # true only for N = 1
    assert not _zero(sp.Sum(x[i] * y[i], (i, 1, N)) - sp.Sum(x[i] * y[j], (i, 1, N), (j, 1, N)))
    assert not _zero(sp.Sum(x[i], (i, 1, N)) - sp.Sum(x[i], (i, 1, K)))  # different ranges


def test_normalisation_rule_needs_the_summed_index() -> None:
    rule = (normalised(r, K),)
    assert _zero(sp.Sum(r[i, k] * x[i], (k, 1, K), (i, 1, N)) - sp.Sum(x[i], (i, 1, N)), rule)
    # r_ik x_k: the index k also sits in x, so sum_k r_ik x_k is not sum of x
    assert not _zero(sp.Sum(r[i, k] * x[k], (k, 1, K), (i, 1, N)) - sp.Sum(x[i], (i, 1, N)), rule)


def test_peel_and_write_out() -> None:
    n = sp.Symbol("n", integer=True, positive=True)
    assert _zero(peel(sp.Sum(x[i], (i, 1, n + 2)), [n]) - sp.Sum(x[i], (i, 1, n)) - x[n + 1] - x[n + 2])
    assert write_out(sp.Sum(x[i], (i, 1, 3))) == x[1] + x[2] + x[3]
    assert write_out(sp.Sum(x[i], (i, 1, 0))) == 0


def test_for_every_size_proves_and_refutes_with_an_instance_witness() -> None:
    inst = (("N = 3", lambda e: to_instance(e, {N: 3}, {x: sym("x", real=True)})),)
    check = ForEverySize("test", lambda c: [c["lhs"] - sp.Sum(x[i] ** 2, (i, 1, N))], instances=inst)
    mean = sp.Sum(x[i], (i, 1, N)) / N
    true = {"lhs": sp.Sum((x[i] - mean) ** 2, (i, 1, N)) + N * mean**2}
    false = {"lhs": sp.Sum((x[i] - mean) ** 2, (i, 1, N)) + mean**2}
    assert check(true).status is Status.PROVED
    verdict = check(false)
    assert verdict.status is Status.REFUTED and verdict.witness["instance"] == "N = 3"
