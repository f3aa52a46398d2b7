"""``gencode.ode`` on closed-form solutions and against ``derivations.cnf``.

Solvers are checked on ``dx/dt = lambda x`` (solution ``exp(lambda t)``) and on linear fields
``dx/dt = A x`` (solution ``expm(A t) x``, log-density change ``-tr(A) t``), in float64.
"""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

from derivations import cnf as d
from gencode.ode import divergence, hutchinson_divergence, integrate_with_logdensity, odeint, rademacher

LAM = -1.3


def _linear_ode(device: torch.device):
    x0 = torch.ones(1, 1, dtype=torch.float64, device=device)
    return (lambda t, x: LAM * x), x0


@pytest.mark.validates("cnf.local_error")
@pytest.mark.parametrize("method", ["euler", "heun"])
def test_local_error_matches_registry(method: str, device: torch.device) -> None:
    f, x0 = _linear_ode(device)
    claim = sp.lambdify((d.lam, d.h), d.local_error.claim[method])
    for h in (1e-2, 5e-3):
        one_step = odeint(f, x0, 0.0, h, method=method, steps=1).x.item()
        error = math.exp(LAM * h) - one_step
        # the claim is the leading term; the next one is smaller by a factor of order |lambda| h <= 0.013
        assert error / claim(LAM, h) == pytest.approx(1.0, abs=0.02)


@pytest.mark.validates("cnf.local_error")
@pytest.mark.parametrize(("method", "order"), [("euler", 1), ("heun", 2)])
def test_global_order(method: str, order: int, device: torch.device) -> None:
    f, x0 = _linear_ode(device)
    errors = [abs(odeint(f, x0, method=method, steps=n).x.item() - math.exp(LAM)) for n in (40, 80, 160)]
    observed = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    # halving h divides the global error by 2^order up to O(h) corrections (h <= 1/40)
    assert observed == pytest.approx([order, order], abs=0.1)


def test_adaptive_and_nfe(device: torch.device) -> None:
    f, x0 = _linear_ode(device)
    sol = odeint(f, x0, method="dopri5", rtol=1e-10, atol=1e-12)
    assert sol.x.item() == pytest.approx(math.exp(LAM), rel=1e-8)  # tolerance 1e-10 per step, ~10 steps
    assert odeint(f, x0, method="heun", steps=7).nfe == 14
    assert odeint(f, x0, method="euler", steps=7, return_path=True).path.shape == (8, 1, 1)


def test_time_runs_backwards(device: torch.device) -> None:
    f, x0 = _linear_ode(device)
    there = odeint(f, x0, 0.0, 1.0, method="dopri5", rtol=1e-10, atol=1e-12).x
    back = odeint(f, there, 1.0, 0.0, method="dopri5", rtol=1e-10, atol=1e-12).x
    assert back.item() == pytest.approx(1.0, abs=1e-8)


def _nonlinear(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.sin(x[:, 0] * x[:, 1]) + t, x[:, 0] ** 2 - torch.tanh(x[:, 1])], dim=-1)


def test_exact_divergence_against_jacobian(device: torch.device, generator: torch.Generator) -> None:
    x = torch.randn(5, 2, generator=generator, device=device, dtype=torch.float64)
    t = torch.tensor(0.3, dtype=torch.float64, device=device)
    _, div = divergence(_nonlinear, t, x)
    jac = torch.func.vmap(torch.func.jacrev(lambda xi: _nonlinear(t, xi[None])[0]))(x)  # (5, 2, 2)
    torch.testing.assert_close(div, jac.diagonal(dim1=-2, dim2=-1).sum(-1), rtol=1e-12, atol=1e-12)


@pytest.mark.validates("cnf.hutchinson")
def test_hutchinson_mean_and_variance(device: torch.device, generator: torch.Generator) -> None:
    A = torch.randn(3, 3, generator=generator, device=device, dtype=torch.float64)
    n = 200_000
    x = torch.zeros(n, 3, dtype=torch.float64, device=device)
    probe = rademacher((n, 3), generator=generator, device=device, dtype=torch.float64)
    _, est = hutchinson_divergence(lambda t, y: y @ A.T, torch.tensor(0.0), x, probe)
    mean = d.hutchinson_value("mean", A.cpu())  # the registered claim, evaluated at this A
    var = d.hutchinson_value("variance", A.cpu())
    se = math.sqrt(var / n)
    assert abs(est.mean().item() - mean) < 5 * se  # 5 Monte Carlo standard errors
    # relative standard error of a sample variance is about sqrt(2/n) * (kurtosis factor <= 3): 0.01
    assert est.var().item() == pytest.approx(var, rel=0.05)
    gaussian = torch.randn(n, 3, generator=generator, device=device, dtype=torch.float64)
    _, est_g = hutchinson_divergence(lambda t, y: y @ A.T, torch.tensor(0.0), x, gaussian)
    assert est_g.var().item() > est.var().item()  # larger by 2 sum_i a_ii^2 (the refuted mutant's value)


@pytest.mark.validates("cnf.log_density")
@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_logdensity_of_linear_field(trace: str, device: torch.device, generator: torch.Generator) -> None:
    A = torch.tensor([[0.3, -1.0], [0.8, -0.5]], dtype=torch.float64, device=device)
    x0 = torch.randn(64, 2, generator=generator, device=device, dtype=torch.float64)
    x1, ell, _ = integrate_with_logdensity(lambda t, x: x @ A.T, x0, 0.0, 1.0, trace=trace,
                                           generator=generator)
    torch.testing.assert_close(x1, x0 @ torch.linalg.matrix_exp(A).T, rtol=1e-6, atol=1e-6)
    # d log p/dt = -tr(A) exactly; Hutchinson's estimate has variance (a_12 + a_21)^2 per probe, so
    # its average over 64 probes is within 5 standard errors of the truth
    tol = 1e-6 if trace == "exact" else 5 * abs(float(A[0, 1] + A[1, 0])) / 8
    assert (ell.mean() + A.trace()).abs().item() < tol


def test_bad_input(device: torch.device) -> None:
    f, x0 = _linear_ode(device)
    with pytest.raises(ValueError, match="steps"):
        odeint(f, x0, steps=0)
    with pytest.raises(ValueError, match="method"):
        odeint(f, x0, method="nonsense")
    with pytest.raises(ValueError, match="t1"):
        odeint(f, x0, 0.0, float("nan"))
    with pytest.raises(TypeError, match="x0"):
        odeint(f, [1.0])
    with pytest.raises(ValueError, match="trace"):
        integrate_with_logdensity(f, x0, trace="diag")
    with pytest.raises(ValueError, match="probe"):
        hutchinson_divergence(f, torch.tensor(0.0), x0, torch.ones(2, 2))
