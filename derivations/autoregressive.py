r"""Autoregressive models: the chain rule, exact normalisation, the Bernoulli likelihood with logits,
and the cost of sampling an image pixel by pixel with attention.

Four results, each registered with the wrong variants its check must refute:

1. ``autoregressive.chain_rule``: ``p(x_1, ..., x_D) = prod_i p(x_i | x_<i)`` for *any* joint
   distribution and every D (induction on D, conditionals as ratios of an undefined positive prefix
   mass), and its logarithm, the sum of conditional log-likelihoods that maximum likelihood maximises;
2. ``autoregressive.normalisation``: a product of Bernoulli conditionals, each depending on the
   preceding variables only, sums to one over ``{0, 1}^3`` whatever the conditional parameters (generic
   SymPy functions); a conditional that looks ahead breaks it;
3. ``autoregressive.bernoulli_logit``: ``log Bern(x; sigmoid(a)) = x a - log(1 + e^a)``, the form every
   implementation uses (binary cross-entropy with logits);
4. ``autoregressive.raster_attention_cost``: ``sum_{i=1}^{n^2} i^2 = n^2 (n^2 + 1)(2 n^2 + 1) / 6``,
   by induction, its leading term ``n^6 / 3``, and its ratio ``n^2 / 3 = N / 3`` to the ``N^2``
   operations of one parallel pass.

Statements "for any function" use undefined SymPy functions.  A residual built from undefined functions
is proved zero by ``cancel``, but a non-zero one cannot be evaluated at a point; so each such check also
returns the same residual with the functions *instantiated* by concrete ones with symbolic coefficients
(:func:`instantiate`).  A true statement makes both residuals vanish identically; a false one leaves the
instantiated residual numerically non-zero at a random point, the witness.  :mod:`derivations.flows`
uses the same helpers.
"""

from __future__ import annotations

import itertools

import sympy as sp

from sympy.core.function import UndefinedFunction

from .core import Check, Claim, Identity, Mutant, Scope, function, instantiate, register, sym, with_instances

CHAPTER = "autoregressive"

BITS = (0, 1)
CELLS = list(itertools.product(BITS, repeat=3))
_c0, _c1 = sym("c_0", (0, 2), positive=True), sym("c_1", (0, 2), positive=True)

# ---------------------------------------------------------------------------------------------
# 1. The chain rule, for any joint distribution of D variables (induction on D).

i_var = sym("i", positive=True, integer=True)
D = sym("D", positive=True, integer=True)


def _positive_function(name: str) -> UndefinedFunction:
    return UndefinedFunction(name, positive=True)


prefix_mass = _positive_function("P")  # P(k) = p(x_1, ..., x_k) at the data point, P(0) = 1
single_mass = _positive_function("P_single")  # p(x_k) alone
pair_mass = _positive_function("P_pair")  # p(x_{k-1}, x_k)


class Conditional(sp.Function):
    r"""``p(x_i | x_{<i})``; the check replaces it by ``P(i) / P(i - 1)`` (definition of conditioning)."""

    nargs = 1

    def _latex(self, printer, exp=None):
        text = rf"p\left(x_{{{printer._print(self.args[0])}}} \mid x_{{<{printer._print(self.args[0])}}}\right)"
        return text if exp is None else rf"{text}^{{{exp}}}"


class Marginal(sp.Function):
    r"""``p(x_i)``, the marginal of one coordinate (for a wrong variant)."""

    nargs = 1

    def _latex(self, printer, exp=None):
        text = rf"p\left(x_{{{printer._print(self.args[0])}}}\right)"
        return text if exp is None else rf"{text}^{{{exp}}}"


class MarkovConditional(sp.Function):
    r"""``p(x_i | x_{i-1})`` (for a wrong variant): ``P_pair(i) / P_single(i - 1)``."""

    nargs = 1

    def _latex(self, printer, exp=None):
        k = printer._print(self.args[0])
        text = rf"p\left(x_{{{k}}} \mid x_{{{k} - 1}}\right)"
        return text if exp is None else rf"{text}^{{{exp}}}"


def _masses(expr: sp.Expr) -> sp.Expr:
    """Every factor written through the masses of the data point (definitions of conditioning)."""
    expr = expr.replace(Conditional, lambda k: prefix_mass(k) / prefix_mass(k - 1))
    expr = expr.replace(Marginal, lambda k: single_mass(k))
    expr = expr.replace(MarkovConditional, lambda k: pair_mass(k) / single_mass(k - 1))
    return expr.xreplace({prefix_mass(0): sp.Integer(1)})  # the empty prefix has mass 1


_CHAIN_INSTANCES = {  # positive functions of k with symbolic coefficients, for the witnesses
    prefix_mass: sp.Lambda(i_var, 1 / (1 + _c0 * i_var**2)),
    single_mass: sp.Lambda(i_var, 1 / (2 + _c1 * i_var)),
    pair_mass: sp.Lambda(i_var, 1 / (3 + _c1 * i_var + _c0 * i_var**2)),
}


def _chain_residuals(claim: Claim) -> list[sp.Expr]:
    """Base case D = 1 and the step D - 1 -> D of ``prod_{i<=D} c_i = P(D)`` and of its logarithm:
    the product (sum) up to D is the product (sum) up to D - 1 times (plus) its D-th term, so the
    step holds iff ``term(D) P(D - 1) = P(D)`` (``log term(D) = log P(D) - log P(D - 1)``)."""
    prod, log_sum = claim["joint"], claim["log"]
    if not (isinstance(prod, sp.Product) and isinstance(log_sum, sp.Sum)):
        raise TypeError("the chain rule's claim must be a Product and a Sum over i = 1..D")
    generic = [
        _masses(prod.xreplace({D: 1}).doit()) - prefix_mass(1),
        _masses(prod.function.xreplace({i_var: D})) * prefix_mass(D - 1) - prefix_mass(D),
        sp.expand_log(_masses(log_sum.xreplace({D: 1}).doit()) - sp.log(prefix_mass(1)), force=True),
        sp.expand_log(_masses(log_sum.function.xreplace({i_var: D}))
                      - sp.log(prefix_mass(D)) + sp.log(prefix_mass(D - 1)), force=True),
    ]
    if all(sp.cancel(r) == 0 for r in generic):
        return generic
    concrete = [instantiate(r.xreplace({D: d}), _CHAIN_INSTANCES) for r in generic for d in (2, 3)]
    return concrete + generic


chain_rule = register(Identity(
    id="autoregressive.chain_rule",
    title="The chain rule: a joint distribution is the product of its conditionals",
    chapter=CHAPTER,
    claim={"joint": sp.Product(Conditional(i_var), (i_var, 1, D)),
           "log": sp.Sum(sp.log(Conditional(i_var)), (i_var, 1, D))},
    check=Check("induction on D (base D = 1, step D - 1 -> D) with p(x_i | x_<i) = P(x_1..x_i) / "
                "P(x_1..x_{i-1}) for an undefined positive P; log form through expand_log; cancel; "
                "witness with P instantiated", _chain_residuals),
    template=r"\begin{aligned} p(x_1, \dots, x_D) &= $joint, \\ \log p(x_1, \dots, x_D) &= $log \end{aligned}",
    assumptions=("any joint distribution (density or mass) of D variables, positive at the point x",
                 "p(x_i | x_<i) = p(x_1, ..., x_i) / p(x_1, ..., x_{i-1}) (definition of conditioning); "
                 "the empty prefix has mass 1"),
    mutants=(
        Mutant("marginal_for_conditional", {"joint": sp.Product(Marginal(i_var), (i_var, 1, D))},
               r"$p(x_i)$ in place of $p(x_i \mid x_{<i})$: the dependence on the past dropped "
               "(a product of marginals is the joint only for independent variables)."),
        Mutant("markov_assumption", {"joint": sp.Product(MarkovConditional(i_var), (i_var, 1, D))},
               r"$p(x_i \mid x_{i-1})$ in place of $p(x_i \mid x_{<i})$: a Markov chain assumed, "
               "which the chain rule does not need."),
        Mutant("log_of_conditional_squared", {"log": sp.Sum(2 * sp.log(Conditional(i_var)), (i_var, 1, D))},
               "Each conditional's logarithm counted twice."),
    ),
    references=("bengio2000modeling", "larochelle2011neural"),
    scope=Scope.GENERAL,
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

_c = [sym(f"kappa_{i}", (0, sp.Rational(1, 3)), positive=True) for i in range(6)]  # instance coefficients
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
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 3. The Bernoulli log-likelihood with logits.

x = sym("x", real=True)
a = sym("a", real=True)
u = sym("u_a", (0, 5), tex="u", positive=True)  # u = e^a (its own name: diffusion.py has u in (0, 3/2))
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
    scope=Scope.GENERAL,
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
            poly.LC() * n ** poly.degree() - claim["leading"],
            poly.LC() * n ** (poly.degree() - 4) - claim["ratio"]]  # against one pass, (n^2)^2


raster_cost = register(Identity(
    id="autoregressive.raster_attention_cost",
    title="Sampling an n x n image in raster order with full attention costs O(n^6)",
    chapter=CHAPTER,
    claim={"cost": n**2 * (n**2 + 1) * (2 * n**2 + 1) / 6, "leading": n**6 / 3, "ratio": n**2 / 3},
    check=Check("induction on N = n^2 (base N = 1, step N-1 -> N); leading coefficients of the "
                "polynomials in n of the cost and of the cost over (n^2)^2", _cost_residuals),
    template=(r"\sum_{i=1}^{n^2} i^2 = $cost \sim $leading, \qquad "
              r"\frac{1}{(n^2)^2} \sum_{i=1}^{n^2} i^2 \sim $ratio"),
    assumptions=("step i recomputes full self-attention over the i pixels generated so far "
                 "(no cache): i queries times i keys, cost proportional to i^2",
                 "n a positive integer; the image has N = n^2 pixels",
                 "one parallel pass (the likelihood) is full attention over N pixels: N^2 operations"),
    mutants=(
        Mutant("linear_cost_per_step", {"cost": n**2 * (n**2 + 1) / 2},
               r"$\sum i$ instead of $\sum i^2$: the cost of one step taken linear in $i$."),
        Mutant("sum_of_cubes", {"cost": n**4 * (n**2 + 1) ** 2 / 4},
               r"The formula for $\sum i^3$."),
        Mutant("leading_n4", {"leading": n**4 / 3},
               r"The order $n^4$ (forgetting that there are $n^2$ steps)."),
        Mutant("ratio_against_n_pixels", {"ratio": n**4 / 3},
               r"The sequential cost compared with $N = n^2$ operations for one parallel pass: full "
               r"attention over $N$ pixels costs $N^2$, so the ratio is $N/3$, not $N^2/3$."),
    ),
    references=("oord2016pixel", "parmar2018image"),
    display={"cost": sp.Mul(sp.Rational(1, 6), n**2, sp.Add(n**2, 1, evaluate=False),
                            sp.Add(2 * n**2, 1, evaluate=False), evaluate=False)},
    scope=Scope.GENERAL,
))
