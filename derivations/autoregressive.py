r"""Autoregressive models: the chain rule, exact normalisation, the Bernoulli likelihood with logits,
and the cost of sampling an image pixel by pixel with attention.

Four results, each registered with the wrong variants its check must refute:

1. ``autoregressive.chain_rule``: ``p(x) = p(x_1) p(x_2 | x_1) p(x_3 | x_1, x_2)`` for *any* joint
   distribution of three binary variables (a table of eight positive masses, all symbolic), and its
   logarithm, the sum of conditional log-likelihoods that maximum likelihood maximises;
2. ``autoregressive.normalisation``: a product of Bernoulli conditionals, each depending on the
   preceding variables only, sums to one over ``{0, 1}^3`` whatever the conditional parameters (generic
   SymPy functions); a conditional that looks ahead breaks it;
3. ``autoregressive.bernoulli_logit``: ``log Bern(x; sigmoid(a)) = x a - log(1 + e^a)``, the form every
   implementation uses (binary cross-entropy with logits);
4. ``autoregressive.raster_attention_cost``: ``sum_{i=1}^{n^2} i^2 = n^2 (n^2 + 1)(2 n^2 + 1) / 6``,
   by induction, and its leading term ``n^6 / 3``.

Statements "for any function" use undefined SymPy functions.  A residual built from undefined functions
is proved zero by ``cancel``, but a non-zero one cannot be evaluated at a point; so each such check also
returns the same residual with the functions *instantiated* by concrete ones with symbolic coefficients
(:func:`instantiate`).  A true statement makes both residuals vanish identically; a false one leaves the
instantiated residual numerically non-zero at a random point, the witness.  :mod:`derivations.flows`
uses the same helpers.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import sympy as sp

from .core import Check, Claim, Identity, Mutant, function, register, sym, with_instances

CHAPTER = "autoregressive"

# ---------------------------------------------------------------------------------------------
# Symbols with their own LaTeX, for statements about probability tables


class _Named(sp.Symbol):
    """A symbol with its own LaTeX (``p(x_2 \\mid x_1)``), for statements about probability tables."""

    _latex_names: dict[str, str] = {}

    def __new__(cls, name: str, latex: str, **assumptions: bool):
        cls._latex_names[name] = latex
        return super().__new__(cls, name, **assumptions)

    def _latex(self, printer, exp=None):
        text = self._latex_names[self.name]
        return text if exp is None else f"{text}^{{{exp}}}"


# ---------------------------------------------------------------------------------------------
# 1. The chain rule, for any joint table of three binary variables.

BITS = (0, 1)
CELLS = list(itertools.product(BITS, repeat=3))
table = {c: sym(f"q_{''.join(map(str, c))}", (0, 1), positive=True) for c in CELLS}
"""The joint masses ``q_abc = P(x_1 = a, x_2 = b, x_3 = c)`` (positive; their sum need not be written)."""

p1 = _Named("p1", r"p(x_1)", positive=True)
p2 = _Named("p2|1", r"p(x_2 \mid x_1)", positive=True)
p3 = _Named("p3|12", r"p(x_3 \mid x_1, x_2)", positive=True)
p2_marginal = _Named("p2", r"p(x_2)", positive=True)
p3_markov = _Named("p3|2", r"p(x_3 \mid x_2)", positive=True)
joint = _Named("p123", r"p(x_1, x_2, x_3)", positive=True)


def _mass(fixed: Mapping[int, int]) -> sp.Expr:
    """``P(x_i = v for (i, v) in fixed)``: a sum of table entries (marginalisation)."""
    return sp.Add(*[q for c, q in table.items() if all(c[i] == v for i, v in fixed.items())])


def _conditionals(c: tuple[int, int, int]) -> dict[sp.Symbol, sp.Expr]:
    """Every factor that a claim may use, as ratios of marginal masses (the definition of conditioning)."""
    a, b, d = c
    return {
        p1: _mass({0: a}),
        p2: _mass({0: a, 1: b}) / _mass({0: a}),
        p3: _mass({0: a, 1: b, 2: d}) / _mass({0: a, 1: b}),
        p2_marginal: _mass({1: b}),
        p3_markov: _mass({1: b, 2: d}) / _mass({1: b}),
        joint: table[c],
    }


def _chain_residuals(claim: Claim) -> list[sp.Expr]:
    out = []
    for c in CELLS:
        values = _conditionals(c)
        out.append(claim["joint"].xreplace(values) - table[c])
        # the log form, compared through its exponential (a rational function of the masses)
        out.append(sp.expand(sp.exp(claim["log"].xreplace(values)), power_exp=True) - table[c])
    return out


chain_rule = register(Identity(
    id="autoregressive.chain_rule",
    title="The chain rule: a joint distribution is the product of its conditionals",
    chapter=CHAPTER,
    claim={"joint": p1 * p2 * p3, "log": sp.log(p1) + sp.log(p2) + sp.log(p3)},
    check=Check("all eight cells of a symbolic joint table; conditionals as ratios of marginals; "
                "log form through exp; rational cancel", _chain_residuals),
    template=r"\begin{aligned} p(x_1, x_2, x_3) &= $joint, \\ \log p(x_1, x_2, x_3) &= $log \end{aligned}",
    assumptions=("x_1, x_2, x_3 binary; every cell of the joint table has positive mass",
                 "p(x_j | x_<j) = P(x_1..x_j) / P(x_1..x_{j-1}) (definition of conditioning)"),
    mutants=(
        Mutant("marginal_for_conditional", {"joint": p1 * p2_marginal * p3},
               r"$p(x_2)$ in place of $p(x_2 \mid x_1)$: the dependence of $x_2$ on $x_1$ dropped."),
        Mutant("markov_assumption", {"joint": p1 * p2 * p3_markov},
               r"$p(x_3 \mid x_2)$ in place of $p(x_3 \mid x_1, x_2)$: a Markov chain assumed, "
               "which the chain rule does not need."),
        Mutant("log_of_product_of_logs", {"log": sp.log(p1) * sp.log(p2) * sp.log(p3)},
               "The logarithms multiplied instead of added."),
    ),
    references=("bengio2000modeling", "larochelle2011neural"),
    display={"joint": sp.Mul(p1, p2, p3, evaluate=False),
             "log": sp.Add(sp.log(p1), sp.log(p2), sp.log(p3), evaluate=False)},
))

# ---------------------------------------------------------------------------------------------
# 2. Exact normalisation of a product of Bernoulli conditionals.

x1, x2, x3 = (sym(f"x_{i}", real=True) for i in (1, 2, 3))
theta_1 = sym("theta_1", (0, 1), positive=True)
theta_2 = function("theta_2", r"\theta_{2}")
theta_3 = function("theta_3", r"\theta_{3}")
theta_1_ahead = function("theta_1", r"\theta_{1}")


def bernoulli(x: sp.Expr, theta: sp.Expr) -> sp.Expr:
    r"""``Bern(x; theta) = theta^x (1 - theta)^(1 - x)`` for ``x`` in ``{0, 1}``."""
    return theta**x * (1 - theta) ** (1 - x)


pmf = bernoulli(x1, theta_1) * bernoulli(x2, theta_2(x1)) * bernoulli(x3, theta_3(x1, x2))
_pmf_display = sp.Mul(*[sp.Mul(t**v, (1 - t) ** (1 - v), evaluate=False)
                        for v, t in ((x1, theta_1), (x2, theta_2(x1)), (x3, theta_3(x1, x2)))], evaluate=False)

_c = [sym(f"c_{i}", (0, sp.Rational(1, 3)), positive=True) for i in range(6)]
_THETA_INSTANCES = {
    # conditional parameters in (0, 1) at binary arguments, with symbolic coefficients
    theta_2: sp.Lambda(x1, _c[0] + _c[1] * x1),
    theta_3: sp.Lambda((x1, x2), _c[2] + _c[3] * x1 + _c[4] * x2),
    theta_1_ahead: sp.Lambda(x2, _c[5] + _c[1] * x2),
}


def _total_residuals(claim: Claim) -> list[sp.Expr]:
    total = sp.Add(*[claim["pmf"].xreplace({x1: a, x2: b, x3: c}) for a, b, c in CELLS])
    return with_instances([total - 1], _THETA_INSTANCES)


normalisation = register(Identity(
    id="autoregressive.normalisation",
    title="A product of causal Bernoulli conditionals is normalised, whatever the conditionals",
    chapter=CHAPTER,
    claim={"pmf": pmf},
    check=Check("sum over all 8 binary vectors with generic conditional functions; rational cancel; "
                "witness with the functions instantiated", _total_residuals),
    template=r"\sum_{x \in \{0, 1\}^3} p(x) = 1, \qquad p(x) = $pmf",
    assumptions=("x_j in {0, 1}; theta_j(x_<j) in (0, 1) an arbitrary function of the preceding variables",),
    mutants=(
        Mutant("conditions_on_the_future",
               {"pmf": bernoulli(x1, theta_1_ahead(x2)) * bernoulli(x2, theta_2(x1))
                * bernoulli(x3, theta_3(x1, x2))},
               r"The first conditional depends on $x_2$ (a mask that lets an output see a later input): "
               "the product no longer sums to one."),
        Mutant("sees_itself",
               {"pmf": bernoulli(x1, theta_1) * bernoulli(x2, theta_2(x2)) * bernoulli(x3, theta_3(x1, x2))},
               r"The second conditional depends on $x_2$ itself (a mask of type B on the first layer)."),
    ),
    references=("germain2015made", "oord2016pixel"),
    code=("gencode.autoregressive.MADE.log_prob", "gencode.autoregressive.PixelCNN.log_prob"),
    display={"pmf": _pmf_display},
))

# ---------------------------------------------------------------------------------------------
# 3. The Bernoulli log-likelihood with logits.

x = sym("x", real=True)
a = sym("a", real=True)
u = sym("u", (0, 5), positive=True)  # u = e^a
_LOGIT = {a: sp.log(u)}


def _logit_residuals(claim: Claim) -> list[sp.Expr]:
    sigmoid = u / (1 + u)  # sigmoid(a) = e^a / (1 + e^a)
    out = []
    for v in BITS:
        lhs = sp.log(sp.cancel(bernoulli(sp.Integer(v), sigmoid)))
        out.append(sp.expand_log(lhs - claim["log_prob"].xreplace({x: v}).xreplace(_LOGIT), force=True))
    return out


bernoulli_logit = register(Identity(
    id="autoregressive.bernoulli_logit",
    title="The Bernoulli log-likelihood in terms of the logit",
    chapter=CHAPTER,
    claim={"log_prob": x * a - sp.log(1 + sp.exp(a))},
    check=Check("x = 0 and x = 1 separately; e^a = u > 0; expand_log and cancel", _logit_residuals),
    template=r"\log \mathrm{Bern}\big(x;\ \sigma(a)\big) = $log_prob, \qquad x \in \{0, 1\},\ "
             r"\sigma(a) = \frac{1}{1 + e^{-a}}",
    assumptions=("x in {0, 1}", "a real (the logit)"),
    mutants=(
        Mutant("softplus_sign", {"log_prob": x * a + sp.log(1 + sp.exp(a))},
               "The log-partition added instead of subtracted."),
        Mutant("labels_swapped", {"log_prob": (1 - x) * a - sp.log(1 + sp.exp(a))},
               r"The log-probability of $1 - x$: the labels swapped."),
    ),
    references=("murphy2022probabilistic",),
    code=("gencode.autoregressive.bernoulli_log_prob",),
    display={"log_prob": sp.Add(sp.Mul(x, a, evaluate=False), -sp.log(1 + sp.exp(a)), evaluate=False)},
))

# ---------------------------------------------------------------------------------------------
# 4. The cost of raster-order sampling with full attention.

n = sym("n", (1, 40), positive=True, integer=True)
N = sym("N", (1, 40), positive=True)


def _cost_residuals(claim: Claim) -> list[sp.Expr]:
    """Induction on N = n^2 for the sum; the leading coefficient in n for the order."""
    S = sp.Lambda(N, claim["cost"].xreplace({n: sp.sqrt(N)}))
    poly = sp.Poly(sp.expand(claim["cost"]), n)
    return [S(1) - 1, sp.expand(S(N) - S(N - 1) - N**2),
            poly.LC() * n ** poly.degree() - claim["leading"]]


raster_cost = register(Identity(
    id="autoregressive.raster_attention_cost",
    title="Sampling an n x n image in raster order with full attention costs O(n^6)",
    chapter=CHAPTER,
    claim={"cost": n**2 * (n**2 + 1) * (2 * n**2 + 1) / 6, "leading": n**6 / 3},
    check=Check("induction on N = n^2 (base N = 1, step N-1 -> N); leading coefficient of the polynomial "
                "in n", _cost_residuals),
    template=r"\sum_{i=1}^{n^2} i^2 = $cost \sim $leading",
    assumptions=("step i recomputes full self-attention over the i pixels generated so far "
                 "(no cache): i queries times i keys, cost proportional to i^2",
                 "n a positive integer; the image has N = n^2 pixels"),
    mutants=(
        Mutant("linear_cost_per_step", {"cost": n**2 * (n**2 + 1) / 2},
               r"$\sum i$ instead of $\sum i^2$: the cost of one step taken linear in $i$."),
        Mutant("sum_of_cubes", {"cost": n**4 * (n**2 + 1) ** 2 / 4},
               r"The formula for $\sum i^3$."),
        Mutant("leading_n4", {"leading": n**4 / 3},
               r"The order $n^4$ (forgetting that there are $n^2$ steps)."),
    ),
    references=("oord2016pixel", "parmar2018image"),
    display={"cost": sp.Mul(sp.Rational(1, 6), n**2, sp.Add(n**2, 1, evaluate=False),
                            sp.Add(2 * n**2, 1, evaluate=False), evaluate=False)},
))
