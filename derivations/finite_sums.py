"""Finite sums with a symbolic number of terms, for general proofs (``Sum`` over ``Indexed`` symbols).

A statement "for every n" about sums ``sum_{i=1}^{n} ...`` is proved by bringing both sides to one
``Sum`` per range and cancelling the summand.  Two rules of finite sums are used, and nothing else:

* linearity: ``c * Sum(f, L) = Sum(c f, L)`` when ``c`` does not depend on the summation indices,
  and ``Sum(f + g, L) = Sum(f, L) + Sum(g, L)``;
* Fubini for finite sums with constant bounds: the order of the limits of a multiple sum may be
  changed, and ``Sum(a Sum(b, L_j), L_i) = Sum(a b, L_j, L_i)`` when ``a`` does not depend on ``j``.

A residual that vanishes after :func:`combine_sums` is zero for every number of terms.  Since a
``Sum`` over unknown terms has no numeric value, a wrong claim is refuted on a small instance
(:func:`instantiate_sums`: the bounds set to numbers, the sums expanded, and every ``Indexed``
replaced by a plain symbol with the same assumptions, so that random points can be drawn).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


import sympy as sp

from .core import Check, Claim, NonNegative, Status, Verdict


def _dummies(limits) -> set[sp.Symbol]:
    return {lim[0] for lim in limits}


def _canonical(limits) -> tuple:
    """Limits sorted by index name (allowed when no bound depends on another index)."""
    idx = _dummies(limits)
    if any((sp.sympify(lo).free_symbols | sp.sympify(hi).free_symbols) & idx for _, lo, hi in limits):
        return tuple(limits)
    return tuple(sorted(limits, key=lambda lim: str(lim[0])))


def _flatten(term: sp.Expr) -> list[tuple[sp.Expr, tuple]]:
    """Write one product term as a list of (summand, limits) pairs (limits () for a term without a sum)."""
    factors = sp.Mul.make_args(term)
    sums = [f for f in factors if isinstance(f, sp.Sum)]
    if not sums:
        return [(term, ())]
    if len(sums) > 1:
        raise ValueError(f"a product of sums is not supported: {term}")
    s = sums[0]
    coeff = sp.Mul(*[f for f in factors if f is not s])
    if coeff.free_symbols & _dummies(s.limits):
        raise ValueError(f"factor {coeff} depends on a summation index of {s}")
    out = []
    for inner_term in sp.Add.make_args(sp.expand(s.function)):
        for summand, inner_limits in _flatten(inner_term):
            out.append((coeff * summand, tuple(inner_limits) + tuple(s.limits)))
    return out


def combine_sums(expr: sp.Expr) -> sp.Expr:
    """One ``Sum`` per range, each summand normalised with ``cancel``; terms without a sum kept.

    Example:
        >>> i, n = sp.symbols("i n", integer=True, positive=True)
        >>> a, b = sp.IndexedBase("a"), sp.IndexedBase("b")
        >>> lhs = 2 * sp.Sum(a[i], (i, 1, n)) - sp.Sum(a[i] - b[i], (i, 1, n))
        >>> combine_sums(lhs - sp.Sum(a[i] + b[i], (i, 1, n)))
        0
    """
    groups: dict[tuple, sp.Expr] = {}
    for term in sp.Add.make_args(sp.expand(sp.sympify(expr))):
        for summand, limits in _flatten(term):
            key = _canonical(limits)
            groups[key] = groups.get(key, sp.Integer(0)) + summand
    out = sp.Integer(0)
    for limits, summand in groups.items():
        summand = sp.cancel(sp.together(summand))
        if summand != 0:
            out += sp.Sum(summand, *limits) if limits else summand
    return out


def _combined_or_none(expr: sp.Expr) -> sp.Expr:
    """:func:`combine_sums`, or ``expr`` itself (not zero) when it holds a product of sums."""
    try:
        return combine_sums(expr)
    except ValueError:
        return expr


def instantiate_sums(expr: sp.Expr, sizes: Mapping[sp.Symbol, int]) -> sp.Expr:
    """``expr`` with the bounds set to ``sizes``, every sum expanded, and every ``Indexed`` term
    replaced by a plain symbol carrying the assumptions of its base (``pi[1, 2]`` -> ``pi_12``)."""
    out = sp.sympify(expr).xreplace(dict(sizes)).doit()
    swap = {}
    for ix in out.atoms(sp.Indexed):
        name = f"{ix.base.label}_{''.join(str(k) for k in ix.indices)}"
        swap[ix] = sp.Symbol(name, **ix.base.label.assumptions0)
    return out.xreplace(swap)


@dataclass(frozen=True)
class SumIdentity(Check):
    """Proof: every residual vanishes after :func:`combine_sums` (for every number of terms).
    Refutation: the residuals on the instance ``sizes`` (:func:`instantiate_sums`), evaluated at
    random points as a plain :class:`Check` does."""

    sizes: Mapping[sp.Symbol, int] = None  # type: ignore[assignment]

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        residuals = [self.substitute(sp.sympify(r)) for r in self.residuals(claim)]
        leftovers = [c for r in residuals if (c := _combined_or_none(sp.numer(sp.together(r)))) != 0]
        if not leftovers:
            return Verdict(Status.PROVED, self.method + "; sums combined (any number of terms)")
        concrete = Check(self.method, lambda c: [instantiate_sums(r, self.sizes) for r in residuals],
                         tries=self.tries)(claim, seed)
        if concrete.status is Status.REFUTED:
            witness = dict(concrete.witness or {}) | {"sizes": str(dict(self.sizes))}
            return Verdict(Status.REFUTED, self.method, str(leftovers[0])[:160], witness)
        return Verdict(Status.INCONCLUSIVE, self.method, str(leftovers[0])[:160])


@dataclass(frozen=True)
class SumNonNegative(NonNegative):
    """:class:`~derivations.core.NonNegative` for differences written with symbolic sums.

    Proof: ``difference - certificate`` vanishes after :func:`combine_sums`, and the certificate
    is non-negative by construction (a sum of products of non-negative symbols).  Refutation: a
    point of the instance ``sizes`` where the difference is negative.
    """

    sizes: Mapping[sp.Symbol, int] = None  # type: ignore[assignment]

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        cert = self.substitute(sp.sympify(self.certificate(claim)))
        if cert.is_nonnegative is not True:
            raise ValueError(f"certificate {cert} is not non-negative by construction")
        differences = [self.substitute(sp.sympify(d)) for d in self.residuals(claim)]
        leftovers = [c for d in differences if (c := _combined_or_none(d - cert)) != 0]
        if not leftovers:
            return Verdict(Status.PROVED, self.method + "; difference = certificate >= 0 (any number of terms)")
        small = NonNegative(self.method, lambda c: [instantiate_sums(d, self.sizes) for d in differences],
                            certificate=lambda c: instantiate_sums(cert, self.sizes), tries=self.tries)
        verdict = small(claim, seed)
        if verdict.status is Status.REFUTED:
            witness = dict(verdict.witness or {}) | {"sizes": str(dict(self.sizes))}
            return Verdict(Status.REFUTED, self.method, str(leftovers[0])[:160], witness)
        return Verdict(Status.INCONCLUSIVE, self.method, str(leftovers[0])[:160])


__all__ = ["SumIdentity", "SumNonNegative", "combine_sums", "instantiate_sums"]
