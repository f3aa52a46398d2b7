r"""Energy-based models and Langevin dynamics (the chapter ``book/ebm.md``).

An energy-based model is a Boltzmann density ``p(x) = exp(-E(x)) / Z`` with an intractable
normaliser ``Z``.  Seven results are registered, each for every energy, density or dimension the
page allows:

1. ``ebm.score``: ``grad log p = -grad E`` for *any* energy; the partition function drops out;
2. ``ebm.hopfield.score``: the score of the Hopfield energy ``-x^T W x / 2 + b^T x`` is ``W x - b``,
   with ``x`` in ``R^D`` for a symbolic ``D`` (SymPy matrix calculus on ``MatrixSymbol``);
3. ``ebm.langevin.stationary``: the Langevin diffusion ``dX = grad log p(X) dt + sqrt(2) dW`` leaves
   *any* density ``p`` on ``R^D`` invariant (the Fokker-Planck right-hand side vanishes at ``p``);
4. ``ebm.langevin.discrete_variance``: the discretised chain
   ``x' = x + (eta/2) grad log p(x) + sqrt(eta) xi`` on ``N(0, s^2)`` has the stationary variance
   ``s^2 / (1 - eta / (4 s^2))``, not ``s^2``: the O(eta) bias of the unadjusted algorithm, exactly;
5. ``ebm.likelihood_gradient``: ``grad_theta log Z = -E_p[grad_theta E]``, hence the
   negative log-likelihood gradient ``grad_theta E(x) - E_p[grad_theta E]``, for any energy.
6. ``ebm.nce.classifier``: the noise-contrastive logistic loss is minimised by ``h* = p / (p + nu q)``,
   for any data and noise densities (a pointwise inequality with a LogGap certificate);
7. ``ebm.nce.optimum``: the model's classifier reaches ``h*`` iff ``log p_theta = log p``, and its learned
   constant is then ``log Z_theta``.

"For any density" statements are proved with undefined SymPy functions.  Undefined functions
cannot be evaluated, so a wrong variant is refuted by substituting concrete functions (a few
explicit energies and densities, listed with each check) and finding a point where the residual
is non-zero: :class:`ForAnyFunction`.

Statements that differentiate under an integral sign (the gradient of ``log Z`` here; the
denoising score matching cross term and Tweedie's formula in :mod:`derivations.score_matching`)
are checked by :class:`UnderIntegral`: SymPy differentiates an ``Integral`` with the Leibniz rule,
:func:`linear_integrals` splits every integrand into terms and pulls out the factors that do not
depend on the integration variables (the integral is linear), so two integrals are equal as
symbols exactly when their integrands agree pointwise.  A residual that cancels after that is a
pointwise identity of integrands, which is what "differentiate under the integral sign" means.
A wrong variant is refuted by replacing every integral over the whole space by a weighted sum over
a few atoms (a discrete law, or counting measure: a legitimate instance of "any law") and
evaluating at a rational point.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from .core import (Check, Claim, ForAnyFunction, Identity, Instances, LogGap, Mutant, NonNegative, Scope, Status, Verdict, function,
                   find_witness, instantiate, register, split_logs, sym)

# ---------------------------------------------------------------------------------------------
# Differentiating under an integral: integrals as linear functionals of their integrands.


def _canonical_integral(integral: sp.Integral) -> sp.Expr:
    """``Integral(sum_k c_k f_k)`` as ``sum_k c_k Integral(f_k)``, ``c_k`` free of the integration variables."""
    variables = [lim[0] for lim in integral.limits]
    out = sp.Integer(0)
    function = integral.function.doit(integrals=False)  # derivatives inside the integrand
    for term in sp.Add.make_args(sp.expand(sp.powsimp(sp.expand(function)))):
        c, dependent = term.as_independent(*variables, as_Add=False)
        out += c * sp.Integral(dependent, *integral.limits)
    return out


def linear_integrals(expr: sp.Expr) -> sp.Expr:
    """Evaluate derivatives (Leibniz rule under integrals, no integral is computed), split every
    integral by linearity, and normalise with ``cancel`` (integrals act as independent symbols).

    Example:
        >>> x, t = sym("x", real=True), sym("t", real=True)
        >>> f = function("f", "f")
        >>> q = sp.Integral(f(x) * sp.exp(-(t - x)**2 / 2), (x, -sp.oo, sp.oo))
        >>> m = sp.Integral(x * f(x) * sp.exp(-(t - x)**2 / 2), (x, -sp.oo, sp.oo))
        >>> linear_integrals(sp.diff(q, t) - (m - t * q))  # differentiate under the integral
        0
    """
    expr = sp.sympify(expr).doit(integrals=False)
    expr = expr.replace(lambda e: isinstance(e, sp.Integral), _canonical_integral)
    return sp.cancel(sp.together(sp.expand(expr)))


def on_atoms(expr: sp.Expr, atoms: Sequence[Sequence[sp.Expr]], weights: Sequence[sp.Expr]) -> sp.Expr:
    """Replace every integral by the weighted sum of its integrand over ``atoms`` (one tuple of
    values of the integration variables per atom): the integral against a discrete measure."""

    def on(integral: sp.Integral) -> sp.Expr:
        variables = [lim[0] for lim in integral.limits]
        return sp.Add(*[w * integral.function.xreplace(dict(zip(variables, a, strict=True)))
                        for a, w in zip(atoms, weights, strict=True)])

    return sp.sympify(expr).replace(lambda e: isinstance(e, sp.Integral), on)


@dataclass(frozen=True)
class UnderIntegral(Check):
    """A check of a statement about integrals of arbitrary functions (densities, energies, models).

    Proof: after the definitions, :func:`linear_integrals` of every residual is 0, i.e. the
    integrands agree pointwise (with the functions undefined, for every function at once).
    Refutation: every integral is replaced by a sum over ``atoms`` with ``weights`` (see
    :func:`on_atoms`), the undefined functions by each of ``examples`` in turn, and the residual
    is evaluated at random rational points; the first non-zero value is the witness.

    Attributes:
        atoms: values of the integration variables, one tuple per atom.
        weights: positive weights of the atoms.
        examples: concrete functions to substitute, tried in turn.
    """

    atoms: tuple[tuple[sp.Expr, ...], ...] = ()
    weights: tuple[sp.Expr, ...] = ()
    examples: tuple[Instances, ...] = ()

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        residuals = [sp.sympify(r).xreplace(dict(self.definitions)) for r in self.residuals(claim)]
        leftovers = [c for c in (linear_integrals(r) for r in residuals) if c != 0]
        if not leftovers:
            return Verdict(Status.PROVED, self.method)
        shown = str(leftovers[0])[:160]
        rng = random.Random(seed)
        for example in self.examples:
            concrete = [instantiate(on_atoms(r, self.atoms, self.weights), example) for r in residuals]
            found = find_witness(concrete, rng, self.tries)
            if found is not None:
                point, value = found
                witness = {str(k): str(v) for k, v in point.items()}
                witness["functions"] = "; ".join(f"{f.__name__} = {lam}" for f, lam in example.items())
                witness["measure"] = f"atoms {list(self.atoms)} with weights {list(self.weights)}"
                witness["residual"] = str(sp.N(value, 8))
                return Verdict(Status.REFUTED, self.method, shown, witness)
        return Verdict(Status.INCONCLUSIVE, self.method, shown)


def whole_line(*variables: sp.Symbol) -> tuple[tuple[sp.Symbol, sp.Expr, sp.Expr], ...]:
    """Integration limits over all of ``R`` for each variable."""
    return tuple((v, -sp.oo, sp.oo) for v in variables)

# ---------------------------------------------------------------------------------------------
# 1. The score of a Boltzmann density does not depend on the partition function.

x = sym("x", real=True)
Z = sym("Z", positive=True)
Energy = function("E", r"E_{\theta}", show_args=False)

_boltzmann_score = sp.diff(sp.log(sp.exp(-Energy(x)) / Z), x)

score = register(Identity(
    id="ebm.score",
    title="The score of an energy-based model is minus the gradient of the energy",
    chapter="ebm",
    claim={"score": -sp.Derivative(Energy(x), x)},
    check=ForAnyFunction(
        "differentiate log(exp(-E(x)) / Z) for an undefined E; cancel",
        lambda c: [_boltzmann_score - c["score"]],
        examples=({Energy: sp.Lambda(x, x**4 / 4 - x + 1)},),
    ),
    template=(r"\nabla_x \log p_\theta(x) = \nabla_x \log \frac{e^{-E_\theta(x)}}{Z_\theta} = $score"),
    assumptions=("E_theta differentiable, Z_theta = int exp(-E_theta) dx finite and independent of x",
                 "one coordinate x shown; the i-th coordinate of the gradient is the same computation "
                 "with x_i (the other coordinates are constants for d/dx_i), so it holds in every dimension"),
    mutants=(
        Mutant("plus_grad_energy", {"score": sp.Derivative(Energy(x), x)},
               r"The score written as $-\nabla_x(-E_\theta) = +\nabla_x E_\theta$: the sign slips.",
               source="source notes 002 (EBM section)"),
        Mutant("divided_by_Z", {"score": -sp.Derivative(Energy(x), x) / Z},
               r"The partition function kept as a factor, $-\nabla_x E_\theta / Z_\theta$."),
    ),
    references=("lecun2006tutorial", "song2021train"),
    code=("gencode.ebm.EnergyModel.score",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 2. The Hopfield energy, in R^D for a symbolic D (matrix calculus on MatrixSymbol).

D = sym("D", integer=True, positive=True)
X_vec = sp.MatrixSymbol("x", D, 1)
W_mat = sp.MatrixSymbol("W", D, D)
b_vec = sp.MatrixSymbol("b", D, 1)
hopfield_energy = -(X_vec.T * W_mat * X_vec) / 2 + b_vec.T * X_vec
_hopfield_score = (-sp.diff(hopfield_energy, X_vec)).subs(W_mat.T, W_mat)  # W symmetric


@dataclass(frozen=True)
class MatrixCalculus(Check):
    """A check of a matrix identity in ``R^D`` for a symbolic ``D``.

    Proof: the residual, a matrix expression in ``MatrixSymbol`` s, evaluates (``doit``) to zero.
    Refutation: ``D = 2`` with random rational entries (``W`` symmetric); a non-zero entry is the witness.
    """

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        residual = self.residuals(claim)[0]
        done = residual.doit()
        if done == 0 or isinstance(done, sp.ZeroMatrix):
            return Verdict(Status.PROVED, self.method)
        rng = random.Random(seed)
        at_two = residual.subs(D, 2)
        x2, w2, b2 = (m.subs(D, 2) for m in (X_vec, W_mat, b_vec))  # the D = 2 matrix symbols
        for _ in range(self.tries):
            val = lambda: sp.Rational(rng.randint(-9, 9), rng.randint(1, 5))  # noqa: E731
            w12 = val()
            values = {x2: sp.ImmutableMatrix([val(), val()]), b2: sp.ImmutableMatrix([val(), val()]),
                      w2: sp.ImmutableMatrix([[val(), w12], [w12, val()]])}
            explicit = sp.Matrix(at_two.xreplace(values).doit())
            nonzero = [e for e in explicit if e != 0]
            if nonzero and all(e.is_number for e in explicit):
                witness = {str(k): str(v.tolist()) for k, v in values.items()}
                witness["D"] = "2"
                witness["residual"] = str(sp.N(nonzero[0], 8))  # the first non-zero entry
                return Verdict(Status.REFUTED, self.method, str(done)[:160], witness)
        return Verdict(Status.INCONCLUSIVE, self.method, str(done)[:160])


hopfield = register(Identity(
    id="ebm.hopfield.score",
    title="The score of the Hopfield energy",
    chapter="ebm",
    claim={"score": W_mat * X_vec - b_vec},
    check=MatrixCalculus(
        "matrix derivative of E(x) = -x^T W x / 2 + b^T x in R^D, D symbolic, W^T = W; doit",
        lambda c: [_hopfield_score - c["score"]],
    ),
    template=(r"E(x) = -\tfrac{1}{2} x^\top W x + b^\top x \quad\Longrightarrow\quad "
              r"-\nabla_x E(x) = $score"),
    assumptions=("W symmetric (W^T = W)", "x, b in R^D, W in R^{D x D}, for every D (D symbolic)"),
    mutants=(
        Mutant("sign", {"score": -W_mat * X_vec + b_vec},
               r"$+\nabla_x E$ taken for the score: $-Wx + b$."),
        Mutant("lost_half", {"score": 2 * W_mat * X_vec - b_vec},
               r"The factor $\tfrac12$ lost: $\nabla_x (x^\top W x) = 2 W x$ not halved."),
        Mutant("transpose_not_used", {"score": W_mat * X_vec / 2 - b_vec},
               r"Only one of the two terms of $\nabla_x(x^\top W x) = (W + W^\top) x$ kept."),
    ),
    references=("hopfield1982neural",),
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 3. Langevin dynamics leaves p invariant: the Fokker-Planck right-hand side vanishes at p.
#
# In R^D the right-hand side is a sum over coordinates, sum_i [-d_i(p f_i) + (g^2/2) d_i^2 p]; the
# i-th term involves derivatives in x_i only, and p is a function of all coordinates.  The check
# takes an undefined p of three coordinates and shows that every coordinate's term vanishes on its
# own; the i-th term of any D is the same expression with the coordinate renamed, so the sum
# vanishes in every dimension.

Density = function("p", "p", show_args=False)
x_i = sym("x_i", real=True)        # the generic coordinate of the display
rest = sym("y", real=True)         # stands for the other coordinates in the display
COORDS = (sym("x_1", real=True), sym("x_2", real=True), sym("x_3", real=True))
_p_all = Density(*COORDS)


def _fokker_planck_terms(claim: Claim) -> list[sp.Expr]:
    """Per coordinate c: ``-d_c(p f_c) + (g^2/2) d_c^2 p`` for ``dX = f dt + g dW``, at ``rho = p``."""
    out = []
    for c in COORDS:
        drift = claim["drift"].xreplace({x_i: c}).replace(Density, lambda *_: _p_all)
        out.append(-sp.diff(_p_all * drift, c) + claim["noise"] ** 2 / 2 * sp.diff(_p_all, c, 2))
    return out


stationary = register(Identity(
    id="ebm.langevin.stationary",
    title="Langevin dynamics leaves its target density invariant",
    chapter="ebm",
    claim={"drift": sp.Derivative(sp.log(Density(x_i, rest)), x_i), "noise": sp.sqrt(2)},
    check=ForAnyFunction(
        "Fokker-Planck right-hand side at rho = p, coordinate by coordinate, p an undefined density "
        "of (x_1, x_2, x_3); cancel",
        _fokker_planck_terms,
        examples=({Density: sp.Lambda(COORDS, sp.exp(-COORDS[0]**2 / 2 - COORDS[0]**4 / 8 - COORDS[1]**2
                                                     + COORDS[0] * COORDS[2] / 3 - COORDS[2]**2))},),
    ),
    template=(r"\begin{aligned} &dX_t = \nabla \log p(X_t)\, dt + $noise\, dW_t: \\ "
              r"&\sum_{i=1}^{D} \Big[-\partial_{x_i}\!\big(p\, $drift\big) + \frac{($noise)^2}{2}\, "
              r"\partial_{x_i}^2 p\Big] = 0 \end{aligned}"),
    assumptions=("p > 0 twice differentiable on R^D",
                 "every D: the i-th term involves d/dx_i only and vanishes on its own (checked for each "
                 "coordinate of an undefined p of three coordinates; y stands for the other coordinates)"),
    mutants=(
        Mutant("grad_p", {"drift": sp.Derivative(Density(x_i, rest), x_i)},
               r"The drift written with $\nabla p$ instead of $\nabla \log p$.",
               source="Lil'Log, \"What are diffusion models?\" (an earlier revision of the "
                      "Langevin dynamics paragraph; corrected since)"),
        Mutant("half_drift", {"drift": sp.Derivative(sp.log(Density(x_i, rest)), x_i) / 2},
               r"The drift halved while the noise keeps $\sqrt{2}$ (the $\eta/2$ of the discrete "
               r"step applied twice)."),
        Mutant("unit_noise", {"noise": sp.Integer(1)},
               r"The noise $dW_t$ without its $\sqrt{2}$ (the stationary law is then $p^2$, renormalised)."),
    ),
    references=("roberts1996exponential",),
    code=("gencode.langevin.langevin",),
    scope=Scope.GENERAL,
))
# ---------------------------------------------------------------------------------------------
# 4. The discretised chain on a Gaussian target: its stationary variance.

s = sym("s", positive=True)
eta = sym("eta", positive=True)
V = sym("V", positive=True)


def _fixed_point(claim: Claim) -> list[sp.Expr]:
    """``x' = (1 - eta/(2 s^2)) x + sqrt(eta) xi``: Var x' = c^2 Var x + eta; stationary iff equal."""
    c = 1 - eta / (2 * s**2)
    v = claim["variance"]
    return [v - (c**2 * v + eta)]


discrete_variance = register(Identity(
    id="ebm.langevin.discrete_variance",
    title="The stationary variance of the discretised Langevin chain on a Gaussian",
    chapter="ebm",
    claim={"variance": s**2 / (1 - eta / (4 * s**2))},
    check=Check("stationarity of the variance under one step, Var = c^2 Var + eta; cancel", _fixed_point),
    template=(r"\begin{aligned} x_{k+1} &= x_k - \frac{\eta}{2} \frac{x_k}{s^2} + \sqrt{\eta}\, \xi_k "
              r"\\ \Longrightarrow\quad \operatorname{Var}_{\pi_\eta}(x) &= $variance \end{aligned}"),
    assumptions=("target N(0, s^2), score -x/s^2", "0 < eta < 4 s^2 (the chain is stable)",
                 "xi_k ~ N(0, 1) independent of x_k"),
    mutants=(
        Mutant("unbiased", {"variance": s**2},
               "The chain's stationary law taken to be the target itself (no discretisation bias)."),
        Mutant("half_step_bias", {"variance": s**2 / (1 - eta / (2 * s**2))},
               r"The bias with $\eta / (2 s^2)$ instead of $\eta / (4 s^2)$."),
        Mutant("first_order_only", {"variance": s**2 * (1 + eta / (4 * s**2))},
               "Only the first-order term of the bias kept."),
    ),
    references=("roberts1996exponential",),
    code=("gencode.langevin.langevin", "gencode.langevin.gaussian_stationary_variance"),
    display={"variance": sp.Mul(s**2, sp.Pow(1 - eta / (4 * s**2), -1, evaluate=False), evaluate=False)},
    scope=Scope.GENERAL,
))

# ---------------------------------------------------------------------------------------------
# 5. The likelihood gradient: differentiate the partition function under the integral sign.

theta = sym("theta", real=True)   # one parameter; the gradient is the vector of these partials
y = sym("y", real=True)           # the integration variable of Z_theta


def _energy_latex(self, printer, exp=None):  # noqa: ARG001 (SymPy's printer protocol)
    text = rf"E_{{\theta}}({printer._print(self.args[0])})"
    return text if exp is None else f"{text}^{{{exp}}}"


EnergyTheta = sp.Function("E_theta", real=True)  # E_theta(x, theta), printed E_theta(x)
EnergyTheta._latex = _energy_latex
partition = sp.Integral(sp.exp(-EnergyTheta(y, theta)), *whole_line(y))
"""``Z_theta = int exp(-E_theta(y)) dy``."""
model_mean = sym(r"\mathbb{E}_{y \sim p_\theta}\big[\partial_\theta E_\theta(y)\big]", real=True)
"""Stands for the model expectation in the claim; the check substitutes its integral."""
_model_mean = sp.Integral(sp.exp(-EnergyTheta(y, theta)) / partition * sp.Derivative(EnergyTheta(y, theta), theta),
                          *whole_line(y))


def _likelihood_residuals(claim: Claim) -> list[sp.Expr]:
    log_p = sp.log(sp.exp(-EnergyTheta(x, theta)) / partition)
    return [sp.diff(sp.log(partition), theta) - claim["log_partition"],
            -sp.diff(log_p, theta) - claim["nll"]]


likelihood_gradient = register(Identity(
    id="ebm.likelihood_gradient",
    title="The gradient of the log-partition function and of the negative log-likelihood",
    chapter="ebm",
    claim={"log_partition": -model_mean,
           "nll": sp.Derivative(EnergyTheta(x, theta), theta) - model_mean},
    check=UnderIntegral(
        "Leibniz rule under Z_theta = int exp(-E_theta(y)) dy for an undefined E_theta; integrals split "
        "by linearity; cancel",
        _likelihood_residuals,
        definitions={model_mean: _model_mean},
        atoms=((sp.Integer(-1),), (sp.Rational(1, 2),), (sp.Integer(2),)),
        weights=(sp.Integer(1), sp.Integer(1), sp.Integer(1)),
        examples=({EnergyTheta: sp.Lambda((x, theta), theta * x**2 + x**4 / 4 - x)},),
    ),
    template=(r"\begin{aligned} \partial_\theta \log Z_\theta &= \frac{1}{Z_\theta} \int \partial_\theta "
              r"e^{-E_\theta(y)}\, dy = $log_partition, \\ "
              r"-\partial_\theta \log p_\theta(x) &= $nll \end{aligned}"),
    assumptions=("Z_theta = int exp(-E_theta(y)) dy finite; differentiation under the integral sign allowed "
                 "(dominated convergence)",
                 "any energy E_theta (undefined function); one parameter theta shown, each coordinate of "
                 "the gradient is the same computation"),
    mutants=(
        Mutant("no_partition_term", {"nll": sp.Derivative(EnergyTheta(x, theta), theta)},
               r"The partition function treated as a constant: the model term of the gradient dropped."),
        Mutant("model_term_sign", {"nll": sp.Derivative(EnergyTheta(x, theta), theta) + model_mean},
               r"The model expectation added instead of subtracted."),
        Mutant("unnormalised", {"log_partition": -_model_mean * partition},
               r"The model expectation without the factor $1/Z_\theta$: $-\int e^{-E_\theta} "
               r"\partial_\theta E_\theta\, dy$."),
    ),
    references=("hinton2002training", "song2021train"),
    code=("gencode.ebm.contrastive_divergence_loss",),
    display={"nll": sp.Add(sp.Derivative(EnergyTheta(x, theta), theta), sp.Mul(-1, model_mean, evaluate=False),
                           evaluate=False)},
    scope=Scope.GENERAL,
))

__all__ = ["ForAnyFunction", "MatrixCalculus", "UnderIntegral", "discrete_variance", "hopfield", "instantiate",
           "likelihood_gradient", "linear_integrals", "on_atoms", "score", "stationary", "whole_line"]

# ---------------------------------------------------------------------------------------------
# 6. Noise-contrastive estimation (Gutmann and Hyvarinen, 2010).
#
# Data x ~ p and noise y ~ q, nu noise samples per data sample; a classifier h(u) in (0, 1) is scored
# by the logistic loss J(h) = -E_p[log h(x)] - nu E_q[log(1 - h(y))] = int f_u(h(u)) du with the pointwise
# integrand f = -P log h - nu Q log(1 - h), P = p(u), Q = q(u).  Everything is pointwise in u, so the
# symbols P, Q > 0 stand for the values of *any* two densities at any point, and h = 1/(1 + e^{-G}) for
# any logit G (any classifier with values in (0, 1)).

P_d = sym("p(u)", positive=True)         # p(u), the data density at a point
Q_n = sym("q(u)", positive=True)         # q(u), the noise density at the same point
nu = sym("nu", positive=True)            # noise samples per data sample
G_logit = sym("G", real=True)            # the logit of an arbitrary classifier at u
_h_any = 1 / (1 + sp.exp(-G_logit))      # any classifier value in (0, 1)
_one_minus_h = sp.exp(-G_logit) / (1 + sp.exp(-G_logit))


def _nce_integrand(h: sp.Expr, one_minus_h: sp.Expr | None = None) -> sp.Expr:
    one_minus_h = 1 - h if one_minus_h is None else one_minus_h
    return -P_d * sp.log(h) - nu * Q_n * sp.log(one_minus_h)


def _nce_prepare(e: sp.Expr) -> sp.Expr:
    return split_logs(sp.expand(e))


nce_classifier = register(Identity(
    id="ebm.nce.classifier",
    title="Noise-contrastive estimation: the optimal classifier",
    chapter="ebm",
    scope=Scope.GENERAL,
    claim={"h": P_d / (P_d + nu * Q_n)},
    check=NonNegative(
        "pointwise, for any values P = p(u), Q = q(u) > 0 and any classifier h = 1/(1 + e^{-G}): "
        "f(h) - f(claim) = P g(h (P + nu Q)/P) + nu Q g((1 - h)(P + nu Q)/(nu Q)), g(v) = v - 1 - log v >= 0; "
        "logs expanded; cancel",
        lambda c: [_nce_integrand(_h_any, _one_minus_h) - _nce_integrand(c["h"])],
        certificate=lambda c: (P_d * LogGap(_h_any * (P_d + nu * Q_n) / P_d)
                               + nu * Q_n * LogGap(_one_minus_h * (P_d + nu * Q_n) / (nu * Q_n))),
        prepare=_nce_prepare,
    ),
    template=(r"\operatorname*{arg\,min}_{h}\; -\mathbb{E}_{p}\big[\log h(x)\big] - \nu\, "
              r"\mathbb{E}_{q}\big[\log\big(1 - h(y)\big)\big] = h^{*}, \qquad h^{*}(u) = $h"),
    assumptions=("p, q any densities, positive where compared; nu > 0 noise samples per data sample",
                 "pointwise in u: P = p(u), Q = q(u); any classifier h(u) = 1/(1 + exp(-G(u))) in (0, 1)",
                 "g(v) = v - 1 - log v >= 0 (LogGap), zero only at v = 1: the minimiser is unique"),
    mutants=(
        Mutant("nu_dropped", {"h": P_d / (P_d + Q_n)},
               r"The ratio $\nu$ forgotten: $p/(p + q)$, the optimum only for $\nu = 1$."),
        Mutant("nu_on_data", {"h": nu * P_d / (nu * P_d + Q_n)},
               r"$\nu$ multiplying the data density instead of the noise density."),
        Mutant("density_ratio", {"h": P_d / (nu * Q_n)},
               r"The density ratio $p/(\nu q)$ itself taken for the classifier (not a probability)."),
    ),
    references=("gutmann2010noise",),
    code=("gencode.ebm.nce_loss",),
    display={"h": sp.Mul(P_d, sp.Pow(sp.Add(P_d, sp.Mul(nu, Q_n, evaluate=False), evaluate=False), -1,
                                     evaluate=False), evaluate=False)},
))

# At the optimum the classifier is h = sigmoid(log p_theta(u) - log(nu q(u))) = h*: since the sigmoid is
# injective that holds iff log p_theta = log p; and with log p_theta = -E_theta - c, normalisation of p
# forces c = log Z_theta, the normaliser is learned as a parameter.
LogModel = sym(r"\log p_\theta(u)", real=True)
C_norm = sym("c", real=True)
Z_theta = sym(r"Z_\theta", positive=True)      # int exp(-E_theta), the true normaliser of the energy
E_u = sym(r"E_\theta(u)", real=True)


def _nce_optimum_residuals(c: Claim) -> list[sp.Expr]:
    classifier = 1 / (1 + nu * Q_n * sp.exp(-c["log_model"]))   # sigmoid(log p_theta - log(nu q))
    # normalisation: p = exp(-E - c) integrates to exp(-c) Z_theta = 1
    return [classifier - P_d / (P_d + nu * Q_n), sp.exp(-c["c"]) * Z_theta - 1]


nce_optimum = register(Identity(
    id="ebm.nce.optimum",
    title="Noise-contrastive estimation learns the log-density and the normaliser",
    chapter="ebm",
    scope=Scope.GENERAL,
    claim={"log_model": sp.log(P_d), "c": sp.log(Z_theta)},
    check=Check(
        "pointwise for any P = p(u), Q = q(u) > 0: sigmoid(log p_theta - log(nu Q)) equals the optimal "
        "classifier P/(P + nu Q); and exp(-c) Z_theta = 1 (the model exp(-E_theta - c) integrates to 1); cancel",
        _nce_optimum_residuals,
    ),
    template=(r"h_\theta(u) = \sigma\big(\log p_\theta(u) - \log \nu q(u)\big) = h^{*}(u) \iff "
              r"\log p_\theta(u) = $log_model, \qquad \log p_\theta = -E_\theta - c \implies c = $c"),
    assumptions=("p, q any densities, positive; P = p(u), Q = q(u) at any point u",
                 "sigma is injective, so the classifier is optimal exactly when the log-densities agree",
                 "Z_theta = int exp(-E_theta(u)) du; the model's family contains p (well specified)"),
    mutants=(
        Mutant("log_nu_absorbed", {"log_model": sp.log(P_d) - sp.log(nu)},
               r"The model taken to learn $\log p - \log\nu$ (the ratio absorbed into the model)."),
        Mutant("log_ratio", {"log_model": sp.log(P_d / Q_n)},
               r"The model taken to learn the log density ratio $\log(p/q)$ instead of $\log p$."),
        Mutant("normaliser_sign", {"c": -sp.log(Z_theta)},
               r"The learned constant taken as $-\log Z_\theta$."),
    ),
    references=("gutmann2010noise",),
    code=("gencode.ebm.NCEModel", "gencode.ebm.nce_loss"),
))
