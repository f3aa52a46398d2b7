r"""Finite sums with a symbolic number of terms: a normal form, and a check that proves with it.

Results "for every N" (a sample of any size, any number of mixture components, any dimension) are
written with ``IndexedBase`` sums whose upper bound is a symbol.  :func:`expand_sums` brings such an
expression to a normal form using only the rules of finite sums:

* linearity: a sum of a sum of terms is the sum of their sums, and a factor that does not depend on
  the summation index moves outside (``sum_i c x_i = c sum_i x_i``, ``sum_{i=1}^N c = N c``);
* products of sums become multiple sums (``(sum_a u_a)(sum_b v_b) = sum_{a,b} u_a v_b``) when the
  product sits inside another sum whose index they share, and nested sums are flattened (Fubini for
  finite sums: the order of summation does not matter);
* bound indices are renamed canonically (the smallest printed form over the orders allowed by the
  bounds), so ``sum_i x_i`` and ``sum_j x_j`` are the same atom;
* identity-specific *rules* (a normalisation ``sum_k r_ik = 1``, an orthonormality
  ``sum_b W_bj W_bl = delta_jl``, an expectation ``E[x_a x_c] = S_ac``), each applied to the body of
  a multiple sum.

After that, the residual of an identity is a rational function of the remaining sums (atoms) and
``cancel`` decides it.  A residual that does not cancel is evaluated on concrete instances
(``N = 3``, ``K = 2``: the sums are expanded and indexed symbols become plain ones) to find a
witness, as :class:`derivations.core.ForAnyFunction` does for undefined functions.
:class:`NonNegativeForEverySize` does the same for inequalities with a certificate, and
:func:`at_sizes` is the plain instance (sizes set, indexed symbols named after their bases).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy as sp

from .core import (Check, Claim, NonNegative, Status, Verdict, below_zero, domain_of, expand_known, fresh_sym, find_witness,
                   sym)

Limit = tuple[sp.Symbol, sp.Expr, sp.Expr]
Rule = Callable[[sp.Expr, list[Limit]], "tuple[sp.Expr, list[Limit]] | None"]
"""A rewrite of one multiple sum: ``(body, limits) -> (new body, new limits)``, or ``None`` if it
does not apply.  It must be a valid identity of finite sums under the identity's assumptions."""

_counter = itertools.count()


def _fresh() -> sp.Symbol:
    return sp.Symbol(f"_s{next(_counter)}", integer=True)


def _canonical_names(n: int) -> list[sp.Symbol]:
    return [sp.Symbol(f"iota{k}", integer=True) for k in range(n)]


def _valid_order(limits: Sequence[Limit]) -> bool:
    # SymPy's first limit is the innermost: a bound may only mention dummies of later (outer) limits
    for pos, (_, lo, hi) in enumerate(limits):
        inner = {v for v, _, _ in limits[:pos + 1]}
        if (lo.free_symbols | hi.free_symbols) & inner:
            return False
    return True


def _canonical(body: sp.Expr, limits: list[Limit]) -> sp.Expr:
    """The multiple sum with its indices renamed and ordered canonically."""
    best = None
    names = _canonical_names(len(limits))
    for order in itertools.permutations(limits):
        if not _valid_order(order):
            continue
        ren = {v: names[k] for k, (v, _, _) in enumerate(order)}
        new_limits = tuple((ren[v], lo.xreplace(ren), hi.xreplace(ren)) for v, lo, hi in order)
        new_body = sp.expand(body.xreplace(ren))
        key = (str(new_limits), str(new_body))
        if best is None or key < best[0]:
            best = (key, new_body, new_limits)
    assert best is not None, "no valid order of the limits"
    return sp.Sum(best[1], *best[2])


def _split_powers(term: sp.Expr, dummies: set[sp.Symbol]) -> sp.Expr:
    """``S**n`` (S a sum that depends on an outer index, n a positive integer) as a product of n
    copies with fresh indices."""
    def rename(s: sp.Sum) -> sp.Sum:
        ren = {v: _fresh() for v, _, _ in s.limits}
        return sp.Sum(s.function.xreplace(ren), *[(ren[v], lo, hi) for v, lo, hi in s.limits])

    factors = []
    for f in sp.Mul.make_args(term):
        base, exp = f.as_base_exp()
        if isinstance(base, sp.Sum) and exp.is_Integer and exp > 1 and base.free_symbols & dummies:
            factors += [rename(base) for _ in range(int(exp))]
        else:
            factors.append(f)
    return sp.Mul(*factors, evaluate=False)


def _atom(term: sp.Expr, limits: list[Limit], rules: Sequence[Rule]) -> sp.Expr:
    dummies = {v for v, _, _ in limits}
    inside, outside = [], []
    for f in sp.Mul.make_args(_split_powers(term, dummies)):
        (inside if f.free_symbols & dummies else outside).append(f)
    lims, body = list(limits), []
    for f in inside:
        if isinstance(f, sp.Sum):  # an inner sum that depends on an outer index: flatten
            ren = {v: _fresh() for v, _, _ in f.limits}
            body.append(f.function.xreplace(ren))
            lims += [(ren[v], lo.xreplace(ren), hi.xreplace(ren)) for v, lo, hi in f.limits]
        else:
            body.append(f)
    expr = sp.Mul(*body)
    changed = True
    while changed:
        changed = False
        for rule in rules:
            out = rule(expr, lims)
            if out is not None:
                expr, lims = out
                changed = True
    count, kept = sp.Integer(1), []
    for v, lo, hi in lims:
        used = v in expr.free_symbols or any(v in (l2[1].free_symbols | l2[2].free_symbols)
                                              for l2 in lims if l2[0] != v)
        if used:
            kept.append((v, lo, hi))
        else:
            count *= hi - lo + 1
    front = sp.Mul(*outside) * count
    if not kept:
        return front * expr
    pieces = sp.Add.make_args(sp.expand(expr))
    if len(pieces) > 1:  # a rule produced a sum of terms: expand by linearity again
        return front * sum((_atom(p, kept, rules) for p in pieces), sp.Integer(0))
    return front * _canonical(expr, kept)


def expand_sums(expr: sp.Expr, rules: Sequence[Rule] = ()) -> sp.Expr:
    """Normal form of an expression with finite sums (see the module docstring).

    Example:
        >>> i, j, N = sp.symbols("i j N", integer=True, positive=True)
        >>> x, c = sp.IndexedBase("x"), sp.Symbol("c")
        >>> mean = sp.Sum(x[i], (i, 1, N)) / N
        >>> lhs = sp.Sum((x[j] - mean) ** 2, (j, 1, N))
        >>> rhs = sp.Sum(x[i] ** 2, (i, 1, N)) - N * mean ** 2
        >>> sp.cancel(expand_sums(lhs - rhs))
        0
        >>> expand_sums(sp.Sum(c, (i, 1, N)))
        N*c
    """
    expr = sp.sympify(expr)
    if not expr.has(sp.Sum):
        return expr
    if isinstance(expr, sp.Sum):
        body = sp.expand(expand_sums(expr.function, rules))
        limits = [tuple(lim) for lim in expr.limits]
        ren = {v: _fresh() for v, _, _ in limits}
        body = body.xreplace(ren)
        limits = [(ren[v], lo, hi) for v, lo, hi in limits]
        return sum((_atom(t, limits, rules) for t in sp.Add.make_args(body)), sp.Integer(0))
    if isinstance(expr, (sp.Indexed, sp.Symbol)):
        return expr
    return expr.func(*[expand_sums(a, rules) for a in expr.args])


def write_out(expr: sp.Expr) -> sp.Expr:
    """Every sum with integer bounds written out term by term (``Sum.doit`` looks for closed forms
    first, which is slow)."""
    def expand_one(s: sp.Sum) -> sp.Expr:
        body = write_out(s.function)
        for v, lo, hi in s.limits:
            if not (lo.is_Integer and hi.is_Integer):
                return s
            body = sp.Add(*[body.xreplace({v: sp.Integer(n)}) for n in range(int(lo), int(hi) + 1)])
        return write_out(body) if body.has(sp.Sum) else body

    return sp.sympify(expr).replace(lambda e: isinstance(e, sp.Sum), expand_one)


def to_instance(expr: sp.Expr, sizes: dict[sp.Symbol, int],
                names: dict[sp.IndexedBase, sp.Symbol] | None = None) -> sp.Expr:
    """A residual with its sums written out for concrete sizes, indexed symbols made plain.

    ``names[base]`` is a template symbol whose assumptions and domain the plain symbols inherit;
    their names are ``<template>_<indices>`` (``x_2``, ``r_3_1``).  A base not in ``names`` is its
    own template (its label's assumptions; the domain one recorded for the plain name with
    :func:`~derivations.core.sym`, or the default).

    Example:
        >>> i, n = sp.symbols("i n", integer=True, positive=True)
        >>> pi = sp.IndexedBase(sym("pi", positive=True))
        >>> to_instance(sp.Sum(pi[i, 1], (i, 1, n)), {n: 2})
        pi_1_1 + pi_2_1
    """
    names = names or {}
    out = write_out(sp.sympify(expr).xreplace(sizes))
    subs = {}
    for e in out.atoms(sp.Indexed):
        idx = "_".join(str(i) for i in e.indices)
        if e.base in names:
            template = names[e.base]
            subs[e] = fresh_sym(f"{template.name}_{idx}", domain_of(template), **template.assumptions0)
        else:
            label = e.base.label
            subs[e] = sym(f"{label.name}_{idx}", **getattr(label, "assumptions0", {}))
    return out.xreplace(subs)


def at_sizes(sizes: dict[sp.Symbol, int]) -> tuple[str, Callable[[sp.Expr], sp.Expr]]:
    """The plain instance ``(name, map)`` for :class:`ForEverySize`: the sizes set, the sums written
    out, every indexed symbol named after its base (:func:`to_instance` without templates).

    Example:
        >>> n = sp.Symbol("n", integer=True, positive=True)
        >>> at_sizes({n: 2})[0]
        'n = 2'
    """
    name = ", ".join(f"{k} = {v}" for k, v in sizes.items())
    return name, lambda e: to_instance(e, sizes)


@dataclass(frozen=True)
class ForEverySize(Check):
    """A check of a statement about sums with a symbolic number of terms.

    Proof: every residual, brought to the normal form of :func:`expand_sums` (with ``rules``) and
    normalised with ``cancel``, is exactly zero; this holds for every value of the sizes. Refutation:
    the residuals are written out for each of ``instances`` (a map from the residual to a concrete
    residual, e.g. ``N = 3`` with the constraints of the statement imposed) and evaluated at random
    rational points; the first non-zero value is the witness, with the instance named in it.

    Attributes:
        rules: rewrites of multiple sums that encode the statement's assumptions.
        instances: named concrete instances ``(name, residual -> concrete residual)``.
        prepare: applied to each residual before the normal form (e.g. ``split_logs``).
    """

    rules: tuple[Rule, ...] = ()
    instances: tuple[tuple[str, Callable[[sp.Expr], sp.Expr]], ...] = ()
    prepare: Callable[[sp.Expr], sp.Expr] | None = None

    def substitute(self, expr: sp.Expr) -> sp.Expr:
        """The definitions applied, without ``doit`` (which would try to evaluate symbolic sums)."""
        expr = sp.sympify(expr).replace(lambda e: isinstance(e, sp.UnevaluatedExpr), lambda e: e.args[0])
        for _ in range(10):
            new = expr.xreplace(dict(self.definitions))
            if new == expr:
                return new
            expr = new
        raise RuntimeError("definitions do not terminate after 10 rounds")

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        raw = [self.substitute(sp.sympify(r)) for r in self.residuals(claim)]
        prepare = self.prepare or (lambda e: e)
        leftovers = []
        for r in raw:
            c = sp.cancel(sp.together(expand_sums(prepare(r), self.rules)))
            if c != 0:
                leftovers.append(c)
        if not leftovers:
            return Verdict(Status.PROVED, self.method)
        shown = str(leftovers[0])[:160]
        rng = random.Random(seed)
        for name, instance in self.instances:
            found = find_witness([instance(prepare(r)) for r in raw], rng, self.tries)
            if found is not None:
                point, value = found
                witness = {"instance": name} | {str(k): str(v) for k, v in point.items()}
                witness["residual"] = str(sp.N(value, 8))
                return Verdict(Status.REFUTED, self.method, shown, witness)
        return Verdict(Status.INCONCLUSIVE, self.method, shown)


@dataclass(frozen=True)
class NonNegativeForEverySize(NonNegative):
    """:class:`~derivations.core.NonNegative` for differences written with sums of any size.

    Proof: ``difference - certificate`` has the normal form zero (:func:`expand_sums` with
    ``rules``, then ``cancel``), and the certificate is non-negative by construction (SymPy's
    assumptions decide ``certificate.is_nonnegative``, e.g. a sum of products of positive indexed
    symbols).  Refutation: a random point of one of ``instances`` where a difference is negative.

    Example:
        >>> i, n = sp.symbols("i n", integer=True, positive=True)
        >>> p = sp.IndexedBase(sym("p", positive=True))
        >>> chk = NonNegativeForEverySize("sum of positives", lambda c: [c["s"]],
        ...                               certificate=lambda c: sp.Sum(p[i], (i, 1, n)),
        ...                               instances=(at_sizes({n: 2}),))
        >>> [chk({"s": e}).status.value for e in (sp.Sum(p[i], (i, 1, n)), -sp.Sum(p[i], (i, 1, n)))]
        ['proved', 'refuted']
    """

    rules: tuple[Rule, ...] = ()
    instances: tuple[tuple[str, Callable[[sp.Expr], sp.Expr]], ...] = ()

    substitute = ForEverySize.substitute

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        if self.certificate is None:
            raise ValueError("NonNegativeForEverySize needs a certificate")
        cert = self.substitute(sp.sympify(self.certificate(claim)))
        if cert.is_nonnegative is not True:
            raise ValueError(f"certificate {cert} is not non-negative by construction")
        differences = [self.substitute(sp.sympify(d)) for d in self.residuals(claim)]
        prepare = self.prepare or (lambda e: e)
        leftovers = []
        for d in differences:
            c = sp.cancel(sp.together(expand_sums(prepare(d - cert), self.rules)))
            if c != 0:
                leftovers.append(c)
        if not leftovers:
            return Verdict(Status.PROVED, self.method + "; difference = certificate >= 0 (every size)")
        shown = str(leftovers[0])[:160]
        rng = random.Random(seed)
        for name, instance in self.instances:
            found = find_witness([expand_known(instance(d)) for d in differences], rng, self.tries * 4,
                                 accept=below_zero)
            if found is not None:
                point, value = found
                witness = {"instance": name} | {str(k): str(v) for k, v in point.items()}
                witness["residual"] = str(sp.N(value, 8))  # the (negative) difference
                return Verdict(Status.REFUTED, self.method, shown, witness)
        return Verdict(Status.INCONCLUSIVE, self.method, shown)


def normalised(base: sp.IndexedBase, upper: sp.Expr, slot: int = -1) -> Rule:
    """The rule ``sum_{k=1}^{upper} base[..., k] = 1`` (weights or responsibilities summing to 1):
    a multiple sum whose body is ``base[..., k] * rest``, with ``k`` summed over ``1..upper`` and
    absent from ``rest``, becomes the sum of ``rest`` over the other indices.

    Example:
        >>> k, K, i, N = sp.symbols("k K i N", integer=True, positive=True)
        >>> r, x = sp.IndexedBase("r"), sp.IndexedBase("x")
        >>> expand_sums(sp.Sum(r[i, k] * x[i], (k, 1, K), (i, 1, N)), rules=(normalised(r, K),))
        Sum(x[iota0], (iota0, 1, N))
    """

    def rule(body: sp.Expr, limits: list[Limit]):
        factors = sp.Mul.make_args(body)
        for lim in limits:
            k_, lo, hi = lim
            if (lo, hi) != (1, upper):
                continue
            hits = [f for f in factors if isinstance(f, sp.Indexed) and f.base == base and f.indices[slot] == k_]
            rest = [f for f in factors if f not in hits]
            others = [L for L in limits if L is not lim]
            if (len(hits) == 1 and all(k_ not in f.free_symbols for f in rest)
                    and all(k_ not in (lo2.free_symbols | hi2.free_symbols) for _, lo2, hi2 in others)):
                return sp.Mul(*rest), others
        return None

    return rule


def peel(expr: sp.Expr, targets: Sequence[sp.Expr]) -> sp.Expr:
    """Split off the last terms of sums: ``sum_{i=a}^{t+m} f(i) = sum_{i=a}^{t} f(i) + f(t+1) + ... +
    f(t+m)`` for a target upper bound ``t`` and a positive integer ``m``; the step of an induction on
    the number of terms.

    Example:
        >>> i, n = sp.symbols("i n", integer=True, positive=True)
        >>> x = sp.IndexedBase("x")
        >>> peel(sp.Sum(x[i], (i, 1, n + 1)), [n])
        x[n + 1] + Sum(x[i], (i, 1, n))
    """
    def rule(s: sp.Sum) -> sp.Expr:
        if len(s.limits) != 1:
            return s
        v, lo, hi = s.limits[0]
        for t in targets:
            extra = sp.expand(hi - t)
            if extra.is_Integer and extra > 0:
                body = peel(s.function, targets)
                last = sum((body.xreplace({v: t + m}) for m in range(1, int(extra) + 1)), sp.Integer(0))
                return sp.Sum(body, (v, lo, t)) + peel(last, targets)
        return s

    expr = sp.sympify(expr)
    for _ in range(10):  # until no sum ends above a target
        new = expr.replace(lambda e: isinstance(e, sp.Sum), rule)
        if new == expr:
            return new
        expr = new
    raise RuntimeError("peel does not terminate")
