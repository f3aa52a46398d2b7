r"""Energy-based models and Langevin dynamics (the chapter ``book/ebm.md``).

An energy-based model is a Boltzmann density ``p(x) = exp(-E(x)) / Z`` with an intractable
normaliser ``Z``.  Four results are registered:

1. ``ebm.score``: ``grad log p = -grad E`` for *any* energy; the partition function drops out;
2. ``ebm.hopfield.score``: the score of the Hopfield energy ``-x^T W x / 2 + b^T x`` is ``W x - b``;
3. ``ebm.langevin.stationary``: the Langevin diffusion ``dX = grad log p(X) dt + sqrt(2) dW`` leaves
   *any* density ``p`` invariant (the Fokker-Planck right-hand side vanishes at ``p``);
4. ``ebm.langevin.discrete_variance``: the discretised chain
   ``x' = x + (eta/2) grad log p(x) + sqrt(eta) xi`` on ``N(0, s^2)`` has the stationary variance
   ``s^2 / (1 - eta / (4 s^2))``, not ``s^2``: the O(eta) bias of the unadjusted algorithm, exactly.

"For any density" statements are proved with undefined SymPy functions.  Undefined functions
cannot be evaluated, so a wrong variant is refuted by substituting concrete functions (a few
explicit energies and densities, listed with each check) and finding a point where the residual
is non-zero: :class:`ForAnyFunction`.
"""

from __future__ import annotations

import sympy as sp

from .core import (Check, Claim, ForAnyFunction, Identity, Mutant, equal, function, instantiate,  # noqa: F401
                   register, sym)

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
                 "one coordinate shown; every coordinate is the same computation"),
    mutants=(
        Mutant("plus_grad_energy", {"score": sp.Derivative(Energy(x), x)},
               r"The score written as $-\nabla_x(-E_\theta) = +\nabla_x E_\theta$: the sign slips.",
               source="source notes 002 (EBM section)"),
        Mutant("divided_by_Z", {"score": -sp.Derivative(Energy(x), x) / Z},
               r"The partition function kept as a factor, $-\nabla_x E_\theta / Z_\theta$."),
    ),
    references=("lecun2006tutorial", "song2021train"),
    code=("gencode.ebm.EnergyModel.score",),
))

# ---------------------------------------------------------------------------------------------
# 2. The Hopfield energy.

x1, x2 = sym("x_1", real=True), sym("x_2", real=True)
w11, w12, w22 = sym("W_11", real=True), sym("W_12", real=True), sym("W_22", real=True)
b1, b2 = sym("b_1", real=True), sym("b_2", real=True)
_X = sp.Matrix([x1, x2])
_W = sp.Matrix([[w11, w12], [w12, w22]])  # symmetric
_b = sp.Matrix([b1, b2])
hopfield_energy = sp.expand((-(_X.T * _W * _X) / 2 + _b.T * _X)[0])
_hopfield_score = [-sp.diff(hopfield_energy, v) for v in (x1, x2)]
_Wx_minus_b = _W * _X - _b

hopfield = register(Identity(
    id="ebm.hopfield.score",
    title="The score of the Hopfield energy",
    chapter="ebm",
    claim={"score_1": _Wx_minus_b[0], "score_2": _Wx_minus_b[1]},
    check=equal({"score_1": _hopfield_score[0], "score_2": _hopfield_score[1]},
                "differentiate E(x) = -x^T W x / 2 + b^T x (W symmetric, 2 x 2); cancel"),
    template=(r"\begin{aligned} E(x) &= -\tfrac{1}{2} x^\top W x + b^\top x, \\ "
              r"-\nabla_x E(x) &= W x - b = \begin{pmatrix} $score_1 \\ $score_2 \end{pmatrix} \end{aligned}"),
    assumptions=("W symmetric", "x in R^2 (the computation is the same in any dimension)"),
    mutants=(
        Mutant("sign", {"score_1": -_Wx_minus_b[0], "score_2": -_Wx_minus_b[1]},
               r"$+\nabla_x E$ taken for the score: $-Wx + b$."),
        Mutant("lost_half", {"score_1": 2 * (_W * _X)[0] - b1, "score_2": 2 * (_W * _X)[1] - b2},
               r"The factor $\tfrac12$ lost: $\nabla_x (x^\top W x) = 2 W x$ not halved."),
    ),
    references=("hopfield1982neural",),
))

# ---------------------------------------------------------------------------------------------
# 3. Langevin dynamics leaves p invariant: the Fokker-Planck right-hand side vanishes at p.

Density = function("p", "p", show_args=False)


def _fokker_planck_at_p(claim: Claim) -> list[sp.Expr]:
    """``d/dt rho = -d/dx(rho f) + d^2 rho/dx^2`` for ``dX = f dt + sqrt(2) dW``, at ``rho = p``."""
    p = Density(x)
    return [-sp.diff(p * claim["drift"], x) + sp.diff(p, x, 2)]


stationary = register(Identity(
    id="ebm.langevin.stationary",
    title="Langevin dynamics leaves its target density invariant",
    chapter="ebm",
    claim={"drift": sp.Derivative(sp.log(Density(x)), x)},
    check=ForAnyFunction(
        "Fokker-Planck right-hand side -d/dx(p f) + d^2p/dx^2 at rho = p, p undefined; cancel",
        _fokker_planck_at_p,
        examples=({Density: sp.Lambda(x, sp.exp(-x**2 / 2 - x**4 / 8))},),
    ),
    template=(r"\begin{aligned} &dX_t = $drift\, dt + \sqrt{2}\, dW_t: \\ "
              r"&-\partial_x\!\big(p\, $drift\big) + \partial_x^2 p = 0 \end{aligned}"),
    assumptions=("p > 0 twice differentiable", "one coordinate shown; coordinates add up in the divergence"),
    mutants=(
        Mutant("grad_p", {"drift": sp.Derivative(Density(x), x)},
               r"The drift written with $\nabla p$ instead of $\nabla \log p$.",
               source="Lil'Log, \"What are diffusion models?\" (an earlier revision of the "
                      "Langevin dynamics paragraph; corrected since)"),
        Mutant("half_drift", {"drift": sp.Derivative(sp.log(Density(x)), x) / 2},
               r"The drift halved while the noise keeps $\sqrt{2}$ (the $\eta/2$ of the discrete "
               r"step applied twice)."),
    ),
    references=("roberts1996exponential",),
    code=("gencode.langevin.langevin",),
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
))

__all__ = ["ForAnyFunction", "discrete_variance", "hopfield", "instantiate", "named_function", "score",
           "stationary"]
