"""Continuous normalizing flows (Chen et al. 2018; Grathwohl et al. 2019).

A CNF moves samples along an ODE ``dx/dt = f(x, t)``; densities follow the continuity equation
``dp/dt = -div(f p)``.  Registered here:

1. ``cnf.log_density``: along a trajectory, ``d/dt log p_t(x(t)) = -tr(df/dx)`` (instantaneous change of
   variables), for arbitrary smooth ``p`` and ``f`` in two dimensions (jet of undefined functions);
2. ``cnf.hutchinson``: for Rademacher probes ``e``, ``E[e^T A e] = tr A`` and
   ``Var[e^T A e] = sum_{i<j} (a_ij + a_ji)^2`` (exact expectation over the 2^3 sign vectors of a
   symbolic 3 x 3 matrix), smaller than the Gaussian probes' variance by ``2 sum_i a_ii^2``;
3. ``cnf.local_error``: on ``dx/dt = lambda x``, one Euler step errs by ``(lambda h)^2 / 2`` and one
   Heun step by ``(lambda h)^3 / 6`` at leading order (local orders 2 and 3, global orders 1 and 2).
"""

from __future__ import annotations

import itertools

import sympy as sp

from .core import Check, Identity, Mutant, register, sym
from .probability_flow import jet

# ---------------------------------------------------------------------------------------------
# 1. The instantaneous change of variables.

x1, x2 = sym("x_1", real=True), sym("x_2", real=True)
t = sym("t", (0, 1), positive=True)
_P, _F1, _F2 = sp.Function("p")(x1, x2, t), sp.Function("f_1")(x1, x2, t), sp.Function("f_2")(x1, x2, t)
divergence = sp.Derivative(_F1, x1) + sp.Derivative(_F2, x2)


def _log_density_residuals(claim: dict[str, sp.Expr]) -> list[sp.Expr]:
    """Total derivative of ``log p`` along ``x' = f``, with ``p_t`` eliminated by the continuity equation."""
    p_t = -(sp.diff(_F1 * _P, x1) + sp.diff(_F2 * _P, x2))
    total = (p_t + _F1 * sp.diff(_P, x1) + _F2 * sp.diff(_P, x2)) / _P
    return [jet(total - claim["dlogp"])]


log_density = register(Identity(
    id="cnf.log_density",
    title="Instantaneous change of variables: log-density along a trajectory",
    chapter="cnf",
    claim={"dlogp": -divergence},
    check=Check(
        "total derivative of log p along dx/dt = f with dp/dt = -div(f p) substituted, for undefined "
        "p(x, t), f(x, t) in 2-D; residual in the jet of p, f_1, f_2; cancel",
        _log_density_residuals,
    ),
    template=r"\frac{\mathrm{d}}{\mathrm{d}t} \log p_t\bigl(x(t)\bigr) = $dlogp = -\operatorname{tr}\frac{\partial f}{\partial x}",
    assumptions=("dx/dt = f(x, t) with f smooth; p_t > 0 smooth, solving dp/dt = -div(f p)",
                 "two dimensions; the same computation holds coordinate by coordinate in R^D"),
    mutants=(
        Mutant("plus_trace", {"dlogp": divergence},
               "The sign of the trace flipped: volume expansion would raise the density."),
        Mutant("eulerian", {"dlogp": -divergence - (_F1 * sp.Derivative(sp.log(_P), x1)
                                                   + _F2 * sp.Derivative(sp.log(_P), x2))},
               r"The rate at a fixed point, $\partial_t \log p_t(x)$, given for the rate along the "
               r"trajectory (the advection term $f \cdot \nabla \log p_t$ is the difference)."),
    ),
    references=("chen2018neural", "grathwohl2019ffjord"),
    code=("gencode.ode.integrate_with_logdensity",),
))

# ---------------------------------------------------------------------------------------------
# 2. Hutchinson's estimator with Rademacher probes.

D = 3
A = sp.Matrix(D, D, lambda i, j: sym(f"a_{i + 1}{j + 1}", real=True))
_off = sum((A[i, j] + A[j, i]) ** 2 for i in range(D) for j in range(i + 1, D))


def _hutchinson_residuals(claim: dict[str, sp.Expr]) -> list[sp.Expr]:
    signs = [sp.Matrix(e) for e in itertools.product((-1, 1), repeat=D)]
    values = [sp.expand((e.T * A * e)[0, 0]) for e in signs]
    mean = sp.Add(*values) / len(values)
    second = sp.Add(*[v**2 for v in values]) / len(values)
    return [mean - claim["mean"], sp.expand(second - mean**2) - claim["variance"]]


hutchinson = register(Identity(
    id="cnf.hutchinson",
    title="Hutchinson's trace estimator with Rademacher probes is unbiased",
    chapter="cnf",
    claim={"mean": A.trace(), "variance": _off},
    check=Check("exact average over the 2^3 Rademacher sign vectors of a symbolic 3 x 3 matrix; expand",
                _hutchinson_residuals),
    template=(r"\epsilon \sim \mathrm{Unif}\{-1, 1\}^3:\quad \mathbb{E}[\epsilon^\top A \epsilon] = $mean, "
              r"\qquad \operatorname{Var}[\epsilon^\top A \epsilon] = $variance"),
    assumptions=("A a real 3 x 3 matrix (no symmetry assumed)", "probe coordinates independent, +-1 with probability 1/2"),
    mutants=(
        Mutant("sum_of_entries", {"mean": sum(A)},
               "The estimator taken to average all entries of A, not the diagonal."),
        Mutant("gaussian_variance", {"variance": _off + 2 * sum(A[i, i] ** 2 for i in range(D))},
               r"The variance of Gaussian probes, which exceeds the Rademacher one by "
               r"$2 \sum_i a_{ii}^2$."),
    ),
    references=("hutchinson1989stochastic", "grathwohl2019ffjord"),
    code=("gencode.ode.hutchinson_divergence",),
))

# ---------------------------------------------------------------------------------------------
# 3. Local errors of Euler and Heun on a linear ODE.

lam = sym("lambda", real=True)
h = sym("h", positive=True)


def _one_step(method: str) -> sp.Expr:
    """One step of size h from x = 1 on dx/dt = lambda x."""
    f = lambda y: lam * y  # noqa: E731
    if method == "euler":
        return 1 + h * f(1)
    predictor = 1 + h * f(1)
    return 1 + h / 2 * (f(1) + f(predictor))  # Heun: trapezoid with an Euler predictor


def _local_error_residuals(claim: dict[str, sp.Expr]) -> list[sp.Expr]:
    exact = sp.exp(lam * h)
    euler = sp.series(exact - _one_step("euler"), h, 0, 3).removeO()
    heun = sp.series(exact - _one_step("heun"), h, 0, 4).removeO()
    return [euler - claim["euler"], heun - claim["heun"]]


local_error = register(Identity(
    id="cnf.local_error",
    title="Local errors of the Euler and Heun steps on a linear ODE",
    chapter="cnf",
    claim={"euler": lam**2 * h**2 / 2, "heun": lam**3 * h**3 / 6},
    check=Check("one step of each method from x = 1 on dx/dt = lambda x, minus exp(lambda h), "
                "Taylor-expanded in h to the first non-vanishing order", _local_error_residuals),
    template=(r"e^{\lambda h} - \bigl(1 + h\lambda\bigr) = $euler + O(h^3), \qquad "
              r"e^{\lambda h} - \Bigl(1 + \tfrac{h}{2}\bigl(\lambda + \lambda(1 + h\lambda)\bigr)\Bigr) = $heun + O(h^4)"),
    assumptions=("dx/dt = lambda x, x(0) = 1, step h > 0",),
    mutants=(
        Mutant("euler_global_order", {"euler": lam * h},
               "Euler's global error order (h) given as its local error; the local error is O(h^2)."),
        Mutant("heun_like_euler", {"heun": lam**2 * h**2 / 2},
               "Heun credited with Euler's local error: the corrector's gain is missed."),
    ),
    references=("hairer1993solving",),
    code=("gencode.ode.odeint",),
))
