"""The identity registry: what an identity is, how it is checked, and how it fails.

An :class:`Identity` states a result as SymPy expressions (its *claim*: named parts such as
``mean`` and ``variance``), says how to check it (a :class:`Check`) and carries *mutants*: wrong
variants of the claim, each of which the same check must refute.  A check has three outcomes:

* **proved**: the normalised residual is exactly zero;
* **refuted**: the residual, evaluated at a random rational point inside the declared domain of
  every symbol, is non-zero; the point is kept as a witness;
* **inconclusive**: symbolically non-zero yet numerically zero at every point tried.  This is a
  failure of the normaliser, never a pass.

The checks never call ``simplify``.  They normalise with ``cancel`` after substituting the
definitions an identity declares (``beta_t = 1 - alpha_t``, ``alpha_t = a^2`` so that square roots
become rational), and compare polynomial coefficients where a square is completed.  These idioms,
and their measured speed, are described in ``DESIGN.md``.
"""

from __future__ import annotations

import enum
import random
import string
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import sympy as sp
from sympy.core.function import UndefinedFunction

Claim = dict[str, sp.Expr]
"""Named parts of a statement, e.g. ``{"mean": ..., "variance": ...}``."""

# --------------------------------------------------------------------------------------------
# Symbols with domains


_DOMAINS: dict[sp.Symbol, tuple[Fraction, Fraction]] = {}


class TexSymbol(sp.Symbol):
    """A symbol printed as a fixed piece of LaTeX (``f(x, t)``, a score, ``g(t)^2``, or a plain
    ``t`` whose SymPy name differs from another module's ``t`` because its domain does)."""

    def __new__(cls, name: str, tex: str, **assumptions: bool) -> TexSymbol:
        obj = super().__new__(cls, name, **assumptions)
        obj._tex = tex
        return obj

    def _latex(self, printer) -> str:
        return self._tex


def sym(name: str, domain: tuple[float | Fraction, float | Fraction] | None = None, *, tex: str | None = None,
        **assumptions: bool) -> sp.Symbol:
    """Create a symbol and record the open interval it lives in.

    The name follows SymPy's LaTeX conventions (``alphabar_t-1`` prints as
    :math:`\\bar{\\alpha}_{t-1}`).  The domain is where refutation looks for witnesses; it
    defaults to ``(0, 3)`` for positive symbols and ``(-3, 3)`` for real ones.

    SymPy identifies symbols by name and assumptions, so two modules asking for ``t`` get one
    object; a domain is therefore a property of the name, and asking for a name again with a
    *different* domain is an error (a witness for one statement could otherwise be drawn from
    another statement's interval, outside its own hypotheses).  Give such a symbol its own name
    and, to print it the same way, ``tex``.

    Args:
        name: SymPy name of the symbol.
        domain: open interval ``(lo, hi)`` of admissible values.
        tex: LaTeX to print instead of the name's (a :class:`TexSymbol`).
        **assumptions: SymPy assumptions (``positive=True``, ``real=True``).

    Returns:
        The symbol.

    Raises:
        ValueError: ``domain`` is empty, or differs from the one this name already has.

    Example:
        >>> a = sym("zeta_example", domain=(0, 1), positive=True)
        >>> domain_of(a)
        (Fraction(0, 1), Fraction(1, 1))
        >>> sym("zeta_example", domain=(0, 2), positive=True)
        Traceback (most recent call last):
        ...
        ValueError: domain of 'zeta_example' must be (0, 1) as before, got (0, 2): give the new symbol its own name (and tex=)
        >>> b = sym("zeta_example2", domain=(0, 2), tex="z", positive=True)
        >>> sp.latex(b), domain_of(b)
        ('z', (Fraction(0, 1), Fraction(2, 1)))
    """
    s = TexSymbol(name, tex, **assumptions) if tex is not None else sp.Symbol(name, **assumptions)
    if domain is not None:
        lo, hi = (Fraction(d) for d in domain)
        if not lo < hi:
            raise ValueError(f"domain of {name!r} must satisfy lo < hi, got {domain}")
        if _DOMAINS.get(s, (lo, hi)) != (lo, hi):
            old = _DOMAINS[s]
            raise ValueError(f"domain of {name!r} must be ({old[0]}, {old[1]}) as before, got ({lo}, {hi}): "
                             "give the new symbol its own name (and tex=)")
        _DOMAINS[s] = (lo, hi)
    return s


def held_add(*args: sp.Expr) -> sp.Expr:
    """A sum SymPy keeps as written (for a display's template)."""
    return sp.Add(*args, evaluate=False)


def held_mul(*args: sp.Expr) -> sp.Expr:
    """A product SymPy keeps as written (for a display's template)."""
    return sp.Mul(*args, evaluate=False)


def held_frac(num: sp.Expr, den: sp.Expr) -> sp.Expr:
    """``num / den`` kept as a fraction (for a display's template).

    Example:
        >>> x = sp.Symbol("x")
        >>> held_frac(2 * x, 2).args  # not cancelled to x
        (2*x, 1/2)
    """
    return sp.Mul(num, sp.Pow(den, -1, evaluate=False), evaluate=False)


def fresh_sym(name: str, domain: tuple[float | Fraction, float | Fraction], **assumptions: bool) -> sp.Symbol:
    """``sym(name, domain)``, or, where ``name`` already has another domain, a symbol printed like
    ``name`` under the first free name ``name'``, ``name''``, ... (for symbols made by machinery,
    such as the plain symbols of a sum written out, which must not borrow another statement's
    interval).

    Example:
        >>> a = sym("zz_fresh", (0, 1), positive=True)
        >>> b = fresh_sym("zz_fresh", (0, 2), positive=True)
        >>> b.name, sp.latex(b), domain_of(b)
        ("zz_fresh'", 'zz_{fresh}', (Fraction(0, 1), Fraction(2, 1)))
    """
    lo, hi = (Fraction(d) for d in domain)
    tex = None
    for primes in range(100):
        candidate = name + "'" * primes
        probe = TexSymbol(candidate, tex, **assumptions) if tex else sp.Symbol(candidate, **assumptions)
        if _DOMAINS.get(probe, (lo, hi)) == (lo, hi):
            return sym(candidate, (lo, hi), tex=tex, **assumptions)
        tex = tex or sp.latex(sp.Symbol(name))
    raise ValueError(f"no free name for {name!r} with domain {domain}")  # pragma: no cover


def domain_of(s: sp.Symbol) -> tuple[Fraction, Fraction]:
    """The open interval in which ``s`` is sampled when looking for a witness."""
    if s in _DOMAINS:
        return _DOMAINS[s]
    if s.is_positive:
        return Fraction(0), Fraction(3)
    return Fraction(-3), Fraction(3)


def refutes(value: sp.Expr) -> bool:
    """Whether a residual's value at a point (evaluated to 50 digits) is a counterexample.

    It must be a finite non-zero number: a point where the residual is infinite or undefined (a
    pole, 0/0) lies outside the statement's domain of definition and proves nothing.

    Example:
        >>> refutes(sp.Rational(1, 3)), refutes(sp.zoo), refutes(sp.nan), refutes(sp.Float("1e-40", 50))
        (True, False, False, False)
    """
    return bool(value.is_number and value.is_finite and value != 0 and abs(value) > sp.Float("1e-30", 50))


def below_zero(value: sp.Expr) -> bool:
    """Whether a difference's value at a point is a counterexample to ``difference >= 0``."""
    return bool(value.is_number and value.is_real and value < -sp.Float("1e-30", 50))


def find_witness(residuals: Sequence[sp.Expr], rng: random.Random, tries: int,
                 accept: Callable[[sp.Expr], bool] = refutes) -> tuple[dict[sp.Symbol, sp.Rational], sp.Expr] | None:
    """The first random rational point (of ``tries``) where some residual's value is accepted as a
    counterexample (:func:`refutes` for an equation, :func:`below_zero` for an inequality).

    Returns:
        ``(point, value)``, or ``None`` when every residual vanished (or was undefined) at every
        point tried.
    """
    free = set().union(*(sp.sympify(r).free_symbols for r in residuals))
    for _ in range(tries):
        point = random_point(free, rng)
        for r in residuals:
            value = sp.N(sp.sympify(r).xreplace(point), 50)
            if accept(value):
                return point, value
    return None


def random_point(symbols: Iterable[sp.Symbol], rng: random.Random) -> dict[sp.Symbol, sp.Rational]:
    """A random rational point strictly inside every symbol's domain (small denominators)."""
    point = {}
    for s in sorted(symbols, key=str):
        lo, hi = domain_of(s)
        q = rng.randint(3, 17)
        # numerators strictly between lo*q and hi*q
        lo_n, hi_n = int(lo * q) + 1, int(-(-hi * q // 1)) - 1
        if lo_n > hi_n:
            q *= 4
            lo_n, hi_n = int(lo * q) + 1, int(-(-hi * q // 1)) - 1
        point[s] = sp.Rational(rng.randint(lo_n, hi_n), q)
    return point


# --------------------------------------------------------------------------------------------
# Verdicts and checks


class Status(str, enum.Enum):
    """Outcome of a check."""

    PROVED = "proved"
    REFUTED = "refuted"
    INCONCLUSIVE = "inconclusive"


class Scope(str, enum.Enum):
    """What a proof covers, shown in the identity's mark, the report and the verification page.

    * ``general``: proved exactly as the page states it (undefined functions for "any density",
      symbolic dimensions or an induction for "every D, T, N").
    * ``instance``: proved for a named special case only (``Identity.instance`` names it, and the
      mark says "verified for <instance>").
    * ``numeric``: computations that agree (an LP solved two ways); never called a proof.
    """

    GENERAL = "general"
    INSTANCE = "instance"
    NUMERIC = "numeric"


@dataclass(frozen=True)
class Verdict:
    """What a check concluded about one claim.

    Attributes:
        status: proved, refuted or inconclusive.
        method: a short description of the strategy that was used.
        residual: the normalised residual as text (``"0"`` when proved).
        witness: for a refutation, the point (symbol name to value) where the residual is
            non-zero, and the residual's value there.
    """

    status: Status
    method: str
    residual: str = "0"
    witness: dict[str, str] | None = None


@dataclass(frozen=True)
class Check:
    """A residual-based check.

    ``residuals(claim)`` returns expressions that are all identically zero exactly when the claim
    holds.  Each is rewritten with ``definitions`` (applied until nothing changes), then, if
    ``variables`` are given, split into its polynomial coefficients in those variables, and each
    coefficient is normalised with ``cancel``.  All zero: proved.  Otherwise the raw residual is
    evaluated at random rational points of the declared domains to find a witness.

    Attributes:
        method: a short human-readable name of the strategy (shown in the report).
        residuals: map from a claim to the residual expressions.
        definitions: substitutions that define derived symbols (``{beta: 1 - alpha}``).
        variables: polynomial variables whose coefficients are compared, if any.
        tries: number of random points tried before declaring a non-zero residual inconclusive.
    """

    method: str
    residuals: Callable[[Claim], Sequence[sp.Expr]]
    definitions: Mapping[sp.Symbol, sp.Expr] = field(default_factory=dict)
    variables: tuple[sp.Symbol, ...] = ()
    tries: int = 8

    def substitute(self, expr: sp.Expr) -> sp.Expr:
        """Apply the definitions until the expression no longer changes."""
        expr = expr.doit()  # display forms may hold UnevaluatedExpr
        for _ in range(10):
            new = expr.xreplace(dict(self.definitions))
            if new == expr:
                return new
            expr = new
        raise RuntimeError("definitions do not terminate after 10 rounds")

    def defined_values(self, point: Mapping[sp.Symbol, sp.Expr]) -> dict[str, str]:
        """Values that the definitions give the original symbols at a point (for witnesses)."""
        out = {}
        for s in self.definitions:
            value = self.substitute(s).xreplace(dict(point))
            if value.is_number:
                out[str(s)] = str(sp.nsimplify(value))
        return out

    def normalise(self, residual: sp.Expr) -> list[sp.Expr]:
        """Non-zero normalised pieces of one residual (empty when it is identically zero)."""
        r = self.substitute(sp.sympify(residual))
        if self.variables:
            numerator = sp.numer(sp.together(r))
            pieces = sp.Poly(sp.expand(numerator), *self.variables).coeffs()
        else:
            pieces = [r]
        out = []
        for piece in pieces:
            c = sp.cancel(sp.together(piece))
            if c != 0:
                out.append(c)
        return out

    def reduce(self, claim: Claim) -> tuple[list[sp.Expr], list[sp.Expr]]:
        """The claim's residuals (definitions applied) and their non-zero normalised pieces."""
        residuals = [self.substitute(sp.sympify(r)) for r in self.residuals(claim)]
        return residuals, [p for r in residuals for p in self.normalise(r)]

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        residuals, leftovers = self.reduce(claim)
        if not leftovers:
            return Verdict(Status.PROVED, self.method)
        shown = _short(leftovers[0])
        found = find_witness(residuals, random.Random(seed), self.tries)
        if found is None:
            return Verdict(Status.INCONCLUSIVE, self.method, shown)
        point, value = found
        # Report the point in the identity's own symbols: the auxiliary ones that the definitions
        # introduce (a = sqrt(alpha_t)) are replaced by their effect.
        aux = set().union(*(sp.sympify(v).free_symbols for v in self.definitions.values()))
        aux -= set(self.definitions)
        witness = {str(k): str(v) for k, v in point.items() if k not in aux}
        for name, value_ in self.defined_values(point).items():
            witness.setdefault(name, value_)
        witness["residual"] = str(sp.N(value, 8))
        return Verdict(Status.REFUTED, self.method, shown, witness)


# ---------------------------------------------------------------------------------------------
# Statements about arbitrary functions ("for any density", "for any conditioner")


def function(name: str, latex: str, show_args: bool = True) -> UndefinedFunction:
    r"""An undefined SymPy function that prints as ``latex(args)``, or as ``latex`` alone when
    ``show_args`` is false (``E_\theta`` for an energy whose argument is understood).

    Example:
        >>> mu = function("mu_2", r"\mu_{2}")
        >>> sp.latex(mu(sp.Symbol("x_1")) ** 2)
        '\\mu_{2}(x_{1})^{2}'
        >>> sp.latex(function("E", r"E_{\theta}", show_args=False)(sp.Symbol("x")))
        'E_{\\theta}'
    """

    def _latex(self, printer, exp=None):  # noqa: ARG001 (SymPy's printer protocol)
        text = f"{latex}({', '.join(printer._print(a) for a in self.args)})" if show_args else latex
        return text if exp is None else f"{text}^{{{exp}}}"

    return UndefinedFunction(name, __dict__={"_latex": _latex})


Instances = Mapping[UndefinedFunction, sp.Lambda]
"""Concrete functions (``Lambda``) substituted for undefined ones, to evaluate a residual at a point."""


def instantiate(expr: sp.Expr, instances: Instances) -> sp.Expr:
    """Replace undefined functions by concrete ``Lambda`` s, in order, evaluating derivatives after each.

    Outer functions come first: ``Derivative(h(f(x)), f(x))`` can be evaluated once ``h`` is concrete,
    but not once ``f`` is (SymPy cannot differentiate with respect to an expression).
    """
    for fn, lam in instances.items():
        expr = sp.sympify(expr).replace(fn, lam).doit()
    return expr


def with_instances(residuals: Sequence[sp.Expr], instances: Instances) -> list[sp.Expr]:
    """The residuals for concrete instances of the functions, followed by those for generic functions.

    Both vanish identically when the statement holds for every function; a false statement leaves the
    instantiated residuals numerically non-zero, which gives a plain :class:`Check` its witness (they
    come first, since a generic residual cannot be evaluated at a point). When every generic residual
    already cancels the instances are skipped, which keeps proofs fast.
    """
    if all(sp.cancel(sp.together(sp.sympify(r).doit())) == 0 for r in residuals):
        return list(residuals)
    return [instantiate(r, instances) for r in residuals] + list(residuals)


@dataclass(frozen=True)
class ForAnyFunction(Check):
    """A check of a statement that holds for every function (density, energy, score model).

    Proof: the residual, written with undefined functions, cancels identically (derivatives of
    undefined functions are independent generators for ``cancel``), so it holds whatever the
    functions are. Refutation: undefined functions have no values, so the residual is instantiated
    with each of ``examples`` in turn and evaluated at random rational points; the first non-zero
    value is the witness (the concrete functions are named in it).

    Attributes:
        examples: concrete functions to try for a witness, e.g. ``{E: Lambda(x, x**4/4 - x)}``.
    """

    examples: tuple[Instances, ...] = ()

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        residuals, leftovers = self.reduce(claim)
        if not leftovers:
            return Verdict(Status.PROVED, self.method)
        shown = str(leftovers[0])[:160]
        for example in self.examples:
            concrete = Check(self.method, lambda c, ex=example: [instantiate(r, ex) for r in self.residuals(c)],
                             self.definitions, (), self.tries)
            found = concrete(claim, seed)
            if found.status is Status.REFUTED:
                witness = dict(found.witness or {})
                witness["functions"] = "; ".join(f"{f.__name__} = {lam}" for f, lam in example.items())
                return Verdict(Status.REFUTED, self.method, shown, witness)
        return Verdict(Status.INCONCLUSIVE, self.method, shown)


# --------------------------------------------------------------------------------------------
# Inequalities: a difference that is non-negative by construction


class LogGap(sp.Function):
    r"""``u - 1 - log u``, non-negative for every ``u > 0`` (zero only at ``u = 1``).

    The elementary inequality ``log u <= u - 1`` as a SymPy atom: a certificate written as a
    sum of non-negative weights times ``LogGap(...)`` terms and squares is non-negative by
    construction, which SymPy's assumptions system confirms (``is_nonnegative``).

    Example:
        >>> u = sym("u", positive=True)
        >>> LogGap(u).is_nonnegative, sp.latex(LogGap(u))
        (True, '\\operatorname{g}\\left(u\\right)')
        >>> expand_known(LogGap(u))
        u - log(u) - 1
    """

    def _eval_is_nonnegative(self):
        if self.args[0].is_positive:
            return True
        return None

    def _eval_is_real(self):
        return self.args[0].is_positive or None

    def _latex(self, printer, exp=None):  # noqa: ARG002
        text = rf"\operatorname{{g}}\left({printer._print(self.args[0])}\right)"
        return text if exp is None else f"{text}^{{{exp}}}"


def expand_known(expr: sp.Expr) -> sp.Expr:
    """Replace the known non-negative atoms (:class:`LogGap`) by their definitions."""
    return sp.sympify(expr).replace(LogGap, lambda u: u - 1 - sp.log(u))


@dataclass(frozen=True)
class NonNegative(Check):
    """A check of an inequality ``difference(claim) >= 0``.

    Proof: the difference equals ``certificate`` exactly (the residual, after ``prepare`` and
    the definitions, cancels), and the certificate is non-negative by construction: SymPy's
    assumptions (squares of reals, :class:`LogGap` of positives, products and sums of
    non-negatives) decide ``certificate.is_nonnegative`` as True.  Refutation: a random rational
    point of the declared domains where the difference is negative, which is a genuine
    counterexample.  A true but weaker bound (a difference that stays non-negative yet does not
    equal the certificate) is *inconclusive*, never refuted: an inequality check must not
    "refute" a true statement.

    Attributes:
        certificate: a function of the claim giving the expression, non-negative by
            construction, that the difference must equal.
        prepare: optional normaliser applied to the residual before ``cancel`` (e.g.
            :func:`split_logs`).
    """

    certificate: Callable[[Claim], sp.Expr] | None = None
    prepare: Callable[[sp.Expr], sp.Expr] | None = None

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        if self.certificate is None:
            raise ValueError("NonNegative needs a certificate")
        differences = [self.substitute(sp.sympify(d)) for d in self.residuals(claim)]
        cert = self.substitute(sp.sympify(self.certificate(claim)))
        if cert.is_nonnegative is not True:
            raise ValueError(f"certificate {cert} is not non-negative by construction")
        prepare = self.prepare or (lambda e: e)
        leftovers = [p for d in differences
                     for p in self.normalise(prepare(expand_known(d - cert)))]
        if not leftovers:
            return Verdict(Status.PROVED, self.method + "; difference = certificate >= 0")
        shown = _short(leftovers[0])
        found = find_witness([expand_known(d) for d in differences], random.Random(seed), self.tries * 4,
                             accept=below_zero)
        if found is None:
            return Verdict(Status.INCONCLUSIVE, self.method, shown)
        point, value = found
        witness = {str(k): str(v) for k, v in point.items()}
        witness["residual"] = str(sp.N(value, 8))  # the (negative) difference
        return Verdict(Status.REFUTED, self.method, shown, witness)


def nonnegative(difference: Callable[[Claim], sp.Expr], certificate: Callable[[Claim], sp.Expr],
                method: str, **kwargs) -> NonNegative:
    """A :class:`NonNegative` check of ``difference(claim) >= 0`` with a certificate.

    Example:
        >>> x, y = sym("x", real=True), sym("y", real=True)
        >>> # claim: x^2 + y^2 >= c * x * y; true for c = 2 (and c = 1), false for c = 3
        >>> chk = nonnegative(lambda c: x**2 + y**2 - c["c"] * x * y, lambda c: (x - y)**2, "square")
        >>> [chk({"c": sp.Integer(k)}).status.value for k in (2, 1, 3)]
        ['proved', 'inconclusive', 'refuted']
    """
    return NonNegative(method, lambda claim: [difference(claim)], certificate=certificate, **kwargs)


def _short(expr: sp.Expr, limit: int = 160) -> str:
    text = str(expr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def equal(derived: Mapping[str, sp.Expr], method: str, **kwargs) -> Check:
    """A check that every claimed part equals the corresponding derived expression.

    Args:
        derived: the expressions the derivation arrives at, keyed like the claim.
        method: description shown in the report.
        **kwargs: forwarded to :class:`Check` (``definitions``, ``variables``).

    Returns:
        The check.

    Example:
        >>> x = sym("x", positive=True)
        >>> chk = equal({"f": (x**2 - 1) / (x - 1)}, "cancel")
        >>> chk({"f": x + 1}).status.value, chk({"f": x - 1}).status.value
        ('proved', 'refuted')
    """
    keys = tuple(derived)

    def residuals(claim: Claim) -> list[sp.Expr]:
        if set(claim) != set(keys):
            raise KeyError(f"claim parts {sorted(claim)} differ from derived parts {sorted(keys)}")
        return [derived[k] - claim[k] for k in keys]

    return Check(method, residuals, **kwargs)


# --------------------------------------------------------------------------------------------
# Gaussian helpers


def _prime_logs(r: sp.Rational) -> sp.Expr:
    """``log r`` for a positive rational as a combination of logarithms of primes."""
    num = sum((e * sp.log(p) for p, e in sp.factorint(r.p).items()), sp.Integer(0))
    den = sum((e * sp.log(p) for p, e in sp.factorint(r.q).items()), sp.Integer(0))
    return num - den


def _positive_factors(arg: sp.Expr) -> sp.Expr:
    """``arg`` over one denominator and factored, with a negative leading sign moved into an odd
    power of a sum (``-(D - 1)`` becomes ``1 - D``), since ``expand_log(force=True)`` would otherwise
    split off ``log(-1) = i pi`` from the logarithm of a positive quantity."""
    coeff, factors = sp.factor(sp.together(arg)).as_coeff_mul()
    if coeff < 0:
        for i, f in enumerate(factors):
            base, power = f.as_base_exp()
            if isinstance(base, sp.Add) and power.is_integer and power % 2 == 1:
                return sp.Mul(-coeff, *factors[:i], (-base) ** power, *factors[i + 1:], evaluate=False)
    return sp.Mul(coeff, *factors, evaluate=False)  # unevaluated: 1/2 must not distribute over a sum


def split_logs(expr: sp.Expr) -> sp.Expr:
    """Split every logarithm into logarithms of irreducible factors and of primes, then expand.

    ``expand_log`` alone does not split ``log(p/2 + q/2)`` or ``log(1 - p/(p + q))``, which leaves
    residuals that are zero but do not cancel; every argument is therefore brought over one
    denominator and factored first. All arguments are taken to be positive (the identities'
    domains say so).

    Example:
        >>> P, Q = sp.symbols("P Q", positive=True)
        >>> split_logs(sp.log((P + Q) / 2) + sp.log(sp.Rational(27, 25))) == (
        ...     sp.log(P + Q) - sp.log(2) + 3 * sp.log(3) - 2 * sp.log(5))
        True
        >>> split_logs(sp.log(1 - P / (P + Q))) == sp.log(Q) - sp.log(P + Q)
        True
    """

    def rule(arg: sp.Expr) -> sp.Expr:
        out = sp.expand_log(sp.log(_positive_factors(arg)), force=True)
        return out.replace(lambda e: isinstance(e, sp.log) and e.args[0].is_Rational and e.args[0] > 0,
                           lambda e: _prime_logs(e.args[0]))

    return sp.expand(sp.sympify(expr).replace(sp.log, rule))


@dataclass(frozen=True)
class GaussianFactor:
    """The density ``N(x; mean, variance)`` raised to ``power`` (+1 or -1), in one dimension.

    Products and ratios of Gaussian densities are compared through two residuals: the exponent
    (a polynomial in the variables, whose coefficients are compared: completing the square) and
    the product of variances (the normalising constants).
    """

    x: sp.Expr
    mean: sp.Expr
    variance: sp.Expr
    power: int = 1

    def exponent(self) -> sp.Expr:
        return -self.power * (self.x - self.mean) ** 2 / (2 * self.variance)

    def log_density(self) -> sp.Expr:
        """``power * log N(x; mean, variance)``."""
        return self.exponent() - self.power * sp.log(2 * sp.pi * self.variance) / 2


def gaussian_product_residuals(lhs: Sequence[GaussianFactor],
                               rhs: Sequence[GaussianFactor]) -> list[sp.Expr]:
    """Residuals that vanish iff ``prod(lhs) == prod(rhs)`` as functions of every variable.

    The densities share the factor ``(2 pi)^(-power/2)``, which cancels when the total powers
    agree; the remaining constants are the variances, compared as
    ``prod(var^power, lhs) / prod(var^power, rhs) - 1`` (squared densities, so no square root
    appears).
    """
    if sum(f.power for f in lhs) != sum(f.power for f in rhs):
        raise ValueError("lhs and rhs must have the same total power of Gaussian factors")
    exponent = sum(f.exponent() for f in lhs) - sum(f.exponent() for f in rhs)
    norm = sp.Mul(*[f.variance ** (-f.power) for f in lhs]) / sp.Mul(
        *[f.variance ** (-f.power) for f in rhs])
    return [exponent, norm - 1]


def gaussian_moment(k: int, mean: sp.Expr, variance: sp.Expr) -> sp.Expr:
    """``E[X^k]`` for ``X ~ N(mean, variance)`` by ``M_k = m M_{k-1} + (k-1) v M_{k-2}``.

    Faster than ``integrate`` or ``sympy.stats`` by one to three orders of magnitude.

    Example:
        >>> m, v = sp.symbols("m v", positive=True)
        >>> sp.expand(gaussian_moment(4, m, v))
        m**4 + 6*m**2*v + 3*v**2
    """
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    moments = [sp.Integer(1), mean]
    for j in range(2, k + 1):
        moments.append(sp.expand(mean * moments[j - 1] + (j - 1) * variance * moments[j - 2]))
    return moments[k]


def gaussian_expectation(poly: sp.Expr, x: sp.Symbol, mean: sp.Expr, variance: sp.Expr) -> sp.Expr:
    """``E[poly(X)]`` for ``X ~ N(mean, variance)``, ``poly`` polynomial in ``x``."""
    p = sp.Poly(sp.expand(poly), x)
    return sp.expand(sum(c * gaussian_moment(m[0], mean, variance) for m, c in p.terms()))


# --------------------------------------------------------------------------------------------
# Identities and mutants


@dataclass(frozen=True)
class Mutant:
    """A wrong variant of an identity's claim, which the identity's check must refute.

    Attributes:
        name: short identifier, unique within the identity (``"score_sign"``).
        claim: the parts of the claim that the mutant changes.
        description: what is wrong, in one sentence.
        source: where the mistake was seen (a paper, a post, a source note), or ``None`` for a
            mutant invented to show the check has teeth.  Mutants with a source are listed in the
            errata appendix.
    """

    name: str
    claim: Claim
    description: str
    source: str | None = None


@dataclass(frozen=True)
class Certificate:
    """The result of checking one claim (the identity's own, or a mutant's).

    ``passed`` means *proved* for an identity and *refuted* for a mutant.
    """

    name: str
    passed: bool
    status: Status
    method: str
    seconds: float
    residual: str = "0"
    witness: dict[str, str] | None = None


@dataclass(frozen=True)
class Report:
    """An identity's certificate together with those of its mutants."""

    identity: Identity
    certificate: Certificate
    mutants: tuple[Certificate, ...]

    @property
    def verified(self) -> bool:
        return self.certificate.passed and all(m.passed for m in self.mutants)

    @property
    def seconds(self) -> float:
        return self.certificate.seconds + sum(m.seconds for m in self.mutants)

    def as_dict(self) -> dict:
        """The JSON form used by ``python -m derivations --json`` and the verification page."""
        ident = self.identity
        return {
            "id": ident.id,
            "title": ident.title,
            "chapter": ident.chapter,
            "status": "verified" if self.verified else "failed",
            "scope": ident.scope.value if ident.scope else None,
            "instance": ident.instance,
            "check": self.certificate.status.value,
            "method": self.certificate.method,
            "seconds": round(self.certificate.seconds, 4),
            "residual": self.certificate.residual,
            "assumptions": list(ident.assumptions),
            "latex": ident.latex,
            "references": list(ident.references),
            "mutants": [
                {
                    "name": m.name,
                    "refuted": m.passed,
                    "status": m.status.value,
                    "seconds": round(m.seconds, 4),
                    "witness": m.witness,
                    "description": mut.description,
                    "source": mut.source,
                    "latex": ident.render(ident.claim | mut.claim),
                }
                for m, mut in zip(self.mutants, ident.mutants, strict=True)
            ],
        }


@dataclass(frozen=True)
class Identity:
    """A machine-checked statement.

    Attributes:
        id: stable dotted id (``"ddpm.posterior"``).
        title: one line for people.
        chapter: the book page (docname under ``book/``) that states it.
        claim: the statement's named parts (SymPy expressions).
        check: how the claim is proved; the same check must refute every mutant.
        template: LaTeX of the statement, with ``$part`` placeholders filled by the LaTeX of the
            claim's parts (so the displayed equation is generated from the checked expressions).
        assumptions: the hypotheses, in words (domains and definitions), shown in the report.
        mutants: wrong variants the check must refute (at least one).
        references: citation keys of ``book/references.bib``.
        display: optional display forms of the claim's parts, written as a person would
            (``evaluate=False``) and printed as written; their equality with the claim is part
            of the check.
        code: the ``gencode`` objects that implement the identity (``"gencode.diffusion.q_posterior"``);
            each identity that names code must have a test marked ``@pytest.mark.validates(id)``.
        scope: what the proof covers (:class:`Scope`); every identity must declare it.
        instance: for ``instance`` (and ``numeric``) scope, the special case that was checked, in
            words a reader sees in the mark ("Gaussian p", "D = 1", "T = 2").
    """

    id: str
    title: str
    chapter: str
    claim: Claim
    check: Check
    template: str
    assumptions: tuple[str, ...]
    mutants: tuple[Mutant, ...]
    references: tuple[str, ...] = ()
    display: Claim | None = None
    code: tuple[str, ...] = ()
    scope: Scope | None = None
    instance: str = ""

    def __post_init__(self) -> None:
        if self.scope is not None:
            object.__setattr__(self, "scope", Scope(self.scope))
            if self.scope is Scope.GENERAL and self.instance:
                raise ValueError(f"identity {self.id!r} is general but names an instance {self.instance!r}")
            if self.scope is not Scope.GENERAL and not self.instance.strip():
                raise ValueError(f"identity {self.id!r} has scope {self.scope.value} but names no instance")
        if not self.mutants:
            raise ValueError(f"identity {self.id!r} needs at least one mutant")
        names = [m.name for m in self.mutants]
        if len(set(names)) != len(names):
            raise ValueError(f"identity {self.id!r} has duplicate mutant names")
        for m in self.mutants:
            unknown = set(m.claim) - set(self.claim)
            if unknown:
                raise ValueError(f"mutant {m.name!r} of {self.id!r} changes unknown parts {unknown}")
        string.Template(self.template).substitute({k: "" for k in self.claim})

    @property
    def anchor(self) -> str:
        """The label of this identity's entry on the verification page."""
        return anchor(self.id)

    @property
    def mark(self) -> str:
        """The words of the identity's mark: what was checked, in the generality it was checked.

        Example:
            >>> Scope("instance").value
            'instance'
        """
        if self.scope is Scope.GENERAL:
            return "verified"
        if self.scope is Scope.INSTANCE:
            return f"verified for {self.instance}"
        if self.scope is Scope.NUMERIC:
            return f"checked numerically ({self.instance})"
        return "verified (scope not declared)"

    @property
    def latex(self) -> str:
        """The statement as LaTeX, generated from the display forms (or the claim)."""
        if self.display is not None:
            return self.render(self.claim | self.display, order="none")
        return self.render(self.claim)

    def render(self, claim: Claim, order: str | None = None) -> str:
        """LaTeX of the template filled with the given claim's parts."""
        parts = {k: sp.latex(v, order=order) for k, v in claim.items()}
        return string.Template(self.template).substitute(parts)

    def statement(self) -> dict[str, sp.Expr]:
        """The claim's parts (the SymPy statement)."""
        return dict(self.claim)

    def _certify(self, name: str, claim: Claim, want: Status) -> Certificate:
        start = time.perf_counter()
        verdict = self.check(claim, seed=_seed(self.id + name))
        seconds = time.perf_counter() - start
        return Certificate(name, verdict.status is want, verdict.status, verdict.method,
                           seconds, verdict.residual, verdict.witness)

    def check_claim(self) -> Certificate:
        """Check the identity itself (and that its display forms equal it); passed means proved."""
        cert = self._certify(self.id, self.claim, Status.PROVED)
        if self.display is None or not cert.passed:
            return cert
        start = time.perf_counter()
        same = equal({k: self.claim[k] for k in self.display}, "display form equals claim",
                     definitions=self.check.definitions)(self.display, seed=_seed(self.id))
        seconds = cert.seconds + time.perf_counter() - start
        if same.status is Status.PROVED:
            return Certificate(cert.name, True, cert.status, cert.method + "; display form checked",
                               seconds)
        return Certificate(cert.name, False, same.status, "display form differs from the claim",
                           seconds, same.residual, same.witness)

    def check_mutant(self, mutant: Mutant) -> Certificate:
        """Check one mutant; passed means refuted."""
        return self._certify(mutant.name, self.claim | mutant.claim, Status.REFUTED)

    def verify(self) -> Report:
        """Check the identity and every mutant."""
        return Report(self, self.check_claim(), tuple(self.check_mutant(m) for m in self.mutants))


def anchor(identity_id: str) -> str:
    """The verification-page label of an identity id (dots become dashes)."""
    return "verify-" + identity_id.replace(".", "-").replace("_", "-")


def _seed(text: str) -> int:
    # A stable seed (python's hash() is salted per process).
    return sum((i + 1) * ord(c) for i, c in enumerate(text))


class Registry:
    """All identities of the book, in registration order."""

    def __init__(self) -> None:
        self._items: dict[str, Identity] = {}

    def add(self, identity: Identity) -> Identity:
        if identity.id in self._items:
            raise ValueError(f"identity {identity.id!r} is registered twice")
        self._items[identity.id] = identity
        return identity

    def __getitem__(self, identity_id: str) -> Identity:
        try:
            return self._items[identity_id]
        except KeyError:
            raise KeyError(f"no identity {identity_id!r}; known: {sorted(self._items)}") from None

    def __iter__(self):
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def ids(self) -> list[str]:
        return list(self._items)

    def by_chapter(self, chapter: str) -> list[Identity]:
        return [i for i in self if i.chapter == chapter]


REGISTRY = Registry()
register = REGISTRY.add
