"""Fast samplers (gencode.fast_samplers) against the identities of derivations.fast_samplers.

Closed forms are compared with the registered claims turned into functions (sympy.lambdify) in float64; the
samplers' orders are measured against the exact flow map of Gaussian data (fast.gaussian_flow), where the
oracle noise predictor is affine in x; the NFE ordering and the per-mode check run on a mixture oracle.
"""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

import derivations.fast_samplers as d
from gencode.consistency import oracle_denoiser, teacher_step
from gencode.diffusion import NoiseSchedule
from gencode.distributions import Gaussian, GaussianMixture
from gencode.fast_samplers import (ddim_step, dpm_solver_1_step, dpm_solver_2_step, dpm_solver_pp_1_step,
                                   dpm_solver_pp_2_step, euler_step,
                                   gaussian_flow, heun_step, karras_grid, lambda_grid, oracle_predictor, sample,
                                   steps_for_nfe)
from gencode.oracle import MixtureOracle
from gencode.paths import EDM, VE, RectifiedFlow, VPCosine, VPDiscrete, VPLinear
from gencode.probability_flow import ddim_step as ddpm_ddim_step
from gencode.two_sample import mode_check

F64 = torch.float64
PATHS = [VPLinear(0.1, 20.0), VPCosine(), VE(0.01, 50.0), RectifiedFlow(), EDM(0.002, 80.0)]


def _pair_times(path):
    """Two interior times s > t of the path (sigma > 0 at both)."""
    lo, hi = path.t_min, path.t_max
    return lo + 0.7 * (hi - lo), lo + 0.3 * (hi - lo)


def _gaussian(device, m=(0.6, -0.4), v=0.5):
    mean = torch.tensor(m, dtype=F64, device=device)
    return mean, v, MixtureOracle(Gaussian(mean, v * torch.eye(len(m), dtype=F64, device=device)))


@pytest.mark.validates("fast.dpm_solver_1")
@pytest.mark.parametrize("path", PATHS, ids=repr)
def test_dpm_solver_1_step_matches_registry(path, device, generator) -> None:
    claim = sp.lambdify((d.alpha_t, d.alpha_s, d.sigma_t, d.h, d.x_s, d.eps_s), d.dpm_solver_1.claim["x_t"])
    x = torch.randn(20, 2, generator=generator, device=device, dtype=F64)
    eps = torch.randn(20, 2, generator=generator, device=device, dtype=F64)
    s, t = _pair_times(path)
    ours = dpm_solver_1_step(path, x, eps, s, t)
    h = float(path.lam(t) - path.lam(s))
    theirs = claim(float(path.alpha(t)), float(path.alpha(s)), float(path.sigma(t)), h, x.cpu().numpy(),
                   eps.cpu().numpy())
    # float64 on O(1) coefficients (exp(h) <= e^10 here): relative 1e-10 leaves >10^4 ulps of margin
    torch.testing.assert_close(ours.cpu(), torch.as_tensor(theirs), rtol=1e-10, atol=1e-10)
    # a coefficient broken by one part in a million is caught at this tolerance
    with pytest.raises(AssertionError):
        torch.testing.assert_close(ours.cpu(), torch.as_tensor(theirs) * (1 + 1e-6), rtol=1e-10, atol=1e-10)
    mutant = sp.lambdify((d.alpha_t, d.alpha_s, d.sigma_t, d.h, d.x_s, d.eps_s),
                         d.dpm_solver_1.claim["x_t"].xreplace({sp.exp(d.h) - 1: sp.exp(d.h)}))
    assert not torch.allclose(ours.cpu(), torch.as_tensor(mutant(float(path.alpha(t)), float(path.alpha(s)),
                              float(path.sigma(t)), h, x.cpu().numpy(), eps.cpu().numpy())))


@pytest.mark.validates("fast.ddim_is_dpm1")
def test_dpm_solver_1_is_ddim_step_for_step(device, generator) -> None:
    """On DDPM's integer grid, DPM-Solver-1 on VPDiscrete reproduces probability_flow.ddim_step at every step."""
    sched = NoiseSchedule.linear(1000)
    path = VPDiscrete(sched)
    oracle = MixtureOracle(GaussianMixture(torch.tensor([0.4, 0.6]), torch.tensor([[-1.0, 0.5], [1.2, -0.3]]),
                                           0.2 * torch.eye(2).expand(2, 2, 2)).to(device, F64))
    eps_model = oracle_predictor(oracle, path)
    x_ddim = x_dpm = torch.randn(200, 2, generator=generator, device=device, dtype=F64)
    steps = [1000, 800, 500, 250, 100, 20, 1]
    for t_from, t_to in zip(steps[:-1], steps[1:]):
        x_ddim = ddpm_ddim_step(sched, x_ddim, eps_model(x_ddim, torch.tensor(t_from / 1000, dtype=F64)), t_from, t_to)
        x_dpm = dpm_solver_1_step(path, x_dpm, eps_model(x_dpm, torch.tensor(t_from / 1000, dtype=F64)),
                                  t_from / 1000, t_to / 1000)
        # both in float64; 1/alpha_1000 ~ 150 amplifies rounding: 1e-9 is ~10^6 ulps of O(1) values
        torch.testing.assert_close(x_dpm, x_ddim, rtol=1e-9, atol=1e-9)
    # and the sampler's own DDIM step, and the lambdified claim, agree with the DPM-Solver-1 step
    claim = sp.lambdify((d.alpha_t, d.alpha_s, d.sigma_t, d.sigma_s, d.x_s, d.eps_s), d.ddim_is_dpm1.claim["ddim"])
    x = torch.randn(10, 2, generator=generator, device=device, dtype=F64)
    eps = torch.randn(10, 2, generator=generator, device=device, dtype=F64)
    for path in PATHS:
        s, t = _pair_times(path)
        ours = ddim_step(path, x, eps, s, t)
        theirs = claim(float(path.alpha(t)), float(path.alpha(s)), float(path.sigma(t)), float(path.sigma(s)),
                       x.cpu().numpy(), eps.cpu().numpy())
        torch.testing.assert_close(ours.cpu(), torch.as_tensor(theirs), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(ours, dpm_solver_1_step(path, x, eps, s, t), rtol=1e-10, atol=1e-10)


@pytest.mark.validates("fast.dpm_solver_pp_1")
@pytest.mark.parametrize("path", PATHS, ids=repr)
def test_dpm_solver_pp_1_matches_registry_and_ddim(path, device, generator) -> None:
    claim = sp.lambdify((d.sigma_t, d.sigma_s, d.alpha_t, d.h, d.x_s, d.x0_s), d.dpm_solver_pp_1.claim["x_t"])
    x = torch.randn(20, 2, generator=generator, device=device, dtype=F64)
    x0 = torch.randn(20, 2, generator=generator, device=device, dtype=F64)
    s, t = _pair_times(path)
    ours = dpm_solver_pp_1_step(path, x, x0, s, t)
    theirs = claim(float(path.sigma(t)), float(path.sigma(s)), float(path.alpha(t)), float(path.lam(t) - path.lam(s)),
                   x.cpu().numpy(), x0.cpu().numpy())
    torch.testing.assert_close(ours.cpu(), torch.as_tensor(theirs), rtol=1e-10, atol=1e-10)
    # DDIM with the noise prediction that corresponds to x0
    torch.testing.assert_close(ours, ddim_step(path, x, path.eps_from_x0(x, x0, s), s, t), rtol=1e-9, atol=1e-9)


@pytest.mark.validates("fast.pf_lambda")
@pytest.mark.parametrize("path", PATHS, ids=repr)
def test_euler_velocity_matches_registry(path, device, generator) -> None:
    claim = sp.lambdify((d.ALPHA_DOT, d.ALPHA_, d.SIGMA_, d.LAMBDA_DOT, d.x, d.EPS), d.pf_lambda.claim["velocity"])
    x = torch.randn(20, 2, generator=generator, device=device, dtype=F64)
    eps = torch.randn(20, 2, generator=generator, device=device, dtype=F64)
    s, t = _pair_times(path)
    a, sg, da, ds = (float(f(s)) for f in (path.alpha, path.sigma, path.d_alpha, path.d_sigma))
    velocity = claim(da, a, sg, da / a - ds / sg, x.cpu().numpy(), eps.cpu().numpy())
    ours = euler_step(path, x, eps, s, t)
    torch.testing.assert_close(ours.cpu(), x.cpu() + (t - s) * torch.as_tensor(velocity), rtol=1e-10, atol=1e-10)


@pytest.mark.validates("fast.gaussian_flow")
@pytest.mark.parametrize("path", PATHS, ids=repr)
def test_gaussian_flow_matches_registry_and_a_fine_solve(path, device, generator) -> None:
    mean, v, oracle = _gaussian(device)
    claim = sp.lambdify((d.alpha_t, d.alpha_s, d.sigma_t, d.sigma_s, d.m, d.v, d.x_s), d.gaussian_flow.claim["x_t"])
    x = torch.randn(30, 2, generator=generator, device=device, dtype=F64)
    s, t = _pair_times(path)
    ours = gaussian_flow(path, x, s, t, mean, v)
    theirs = claim(float(path.alpha(t)), float(path.alpha(s)), float(path.sigma(t)), float(path.sigma(s)),
                   mean.cpu().numpy(), v, x.cpu().numpy())
    torch.testing.assert_close(ours.cpu(), torch.as_tensor(theirs), rtol=1e-10, atol=1e-10)
    # independent of the closed form: 400 DPM-Solver-2 steps with the exact oracle; global error O(h^2) with
    # h = |lambda_t - lambda_s|/400 < 0.01: a few 1e-6 at most
    fine = sample(oracle_predictor(oracle, path), path, x, "dpm2", steps=400, t_start=s, t_end=t).x
    torch.testing.assert_close(fine, ours, rtol=0, atol=1e-5)


def _global_errors(method, path, oracle, mean, v, x, s, t, steps_list, grid="lambda"):
    exact = gaussian_flow(path, x, s, t, mean, v)
    out = []
    for n in steps_list:
        res = sample(oracle_predictor(oracle, path), path, x, method, steps=n, t_start=s, t_end=t, grid=grid)
        out.append(float((res.x - exact).norm(dim=1).max()))
    return out


@pytest.mark.validates("fast.dpm1_local_error", "fast.dpm2_local_error", "fast.denoiser_ode")
@pytest.mark.parametrize("method, order", [("euler", 1), ("ddim", 1), ("dpm1", 1), ("dpm2", 2), ("dpmpp2", 2),
                                           ("heun", 2)])
@pytest.mark.parametrize("path", [VPLinear(0.1, 20.0), VE(0.01, 50.0), RectifiedFlow()], ids=repr)
def test_empirical_order_on_gaussian_data(method, order, path, device, generator) -> None:
    """Halving the step divides the global error by 2^order (a property of the method, measured)."""
    mean, v, oracle = _gaussian(device)
    lo, hi = path.t_min, path.t_max
    s, t = lo + 0.8 * (hi - lo), lo + 0.2 * (hi - lo)
    x = torch.randn(50, 2, generator=generator, device=device, dtype=F64) * float(path.sigma(s)) + \
        float(path.alpha(s)) * mean
    errs = _global_errors(method, path, oracle, mean, v, x, s, t, [16, 32, 64], grid="lambda")
    ratios = [errs[i] / errs[i + 1] for i in range(2)]
    # in the asymptotic regime the ratio is 2^order up to O(h) corrections: +-25% leaves room for those while
    # separating order 1 (2) from order 2 (4) with margin
    for r in ratios:
        assert 0.75 * 2**order < r < 1.25 * 2**order, (errs, ratios)


@pytest.mark.validates("fast.dpm1_local_error", "fast.dpm2_local_error")
def test_local_errors_and_leading_term(device, generator) -> None:
    """One step from the exact point: DPM-Solver-1's error / h^2 tends to -sigma_s eps^(1)/2, DPM-Solver-2's
    error shrinks like h^3."""
    path = VPLinear(0.1, 20.0)
    mean, v, oracle = _gaussian(device)
    eps = oracle_predictor(oracle, path)
    s = 0.5
    x = torch.randn(20, 2, generator=generator, device=device, dtype=F64) * float(path.sigma(s)) + \
        float(path.alpha(s)) * mean
    lam_s = float(path.lam(s))
    # eps^(1) = d/dlambda eps_hat(x_lambda, lambda) along the exact flow, by a central difference (step 1e-4:
    # truncation 1e-8, rounding 1e-12)
    dl = 1e-4
    ends = [path.t_of_lam(torch.tensor(lam_s + k * dl, dtype=F64)) for k in (1, -1)]
    e_pm = [eps(gaussian_flow(path, x, s, te, mean, v), te) for te in ends]
    eps1 = (e_pm[0] - e_pm[1]) / (2 * dl)
    lead = sp.lambdify((d.sigma_s, d.eps_1, d.h), d.dpm1_local_error.claim["error"])
    rel1, err2 = [], []
    for hh in (0.2, 0.1, 0.05):
        t = path.t_of_lam(torch.tensor(lam_s + hh, dtype=F64))
        exact = gaussian_flow(path, x, s, t, mean, v)
        e1 = exact - dpm_solver_1_step(path, x, eps(x, torch.tensor(s, dtype=F64)), s, t)
        predicted = torch.as_tensor(lead(float(path.sigma(s)), eps1.cpu().numpy(), hh)).to(e1)
        rel1.append(float((e1 - predicted).norm() / predicted.norm()))
        err2.append(float((exact - dpm_solver_2_step(path, eps, x, s, t)).norm()))
    # the remainder is O(h^3) against an O(h^2) term: its relative size halves with h
    assert rel1[2] < 0.6 * rel1[1] < 0.36 * rel1[0] and rel1[2] < 0.05, rel1
    # local error O(h^3): ratio 8 per halving, up to O(h) corrections
    for a, b in zip(err2[:-1], err2[1:]):
        assert 6.0 < a / b < 10.0, err2


@pytest.mark.validates("fast.denoiser_ode")
def test_heun_on_edm_is_edms_algorithm_and_scaled_ode_matches_registry(device, generator) -> None:
    data = GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[-1.0, 0.0], [1.0, 0.5]]),
                           0.1 * torch.eye(2).expand(2, 2, 2)).to(device, F64)
    oracle = MixtureOracle(data)
    path = EDM(0.002, 80.0)
    x = 10 * torch.randn(40, 2, generator=generator, device=device, dtype=F64)
    ours = heun_step(path, oracle_predictor(oracle, path), x, 10.0, 7.0)
    theirs = teacher_step(oracle_denoiser(oracle), x, 10.0, 7.0, heun=True)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    # the scaled ODE: d xbar / d sigmabar from the path's velocity equals the registered (xbar - D)/sigmabar
    claim = sp.lambdify((d.XBAR, d.DEN, d.SBAR), d.denoiser_ode.claim["velocity"])
    vp = VPLinear(0.1, 20.0)
    t = 0.4
    a, sg, da, ds = (float(f(t)) for f in (vp.alpha, vp.sigma, vp.d_alpha, vp.d_sigma))
    x0 = oracle_predictor(oracle, vp)
    xt = torch.randn(40, 2, generator=generator, device=device, dtype=F64)
    den = vp.x0_from_eps(xt, x0(xt, torch.tensor(t, dtype=F64)), t)
    dxdt = vp.velocity_from_x0(xt, den, t)
    rate = (dxdt / a - xt * da / a**2) / ((ds * a - sg * da) / a**2)
    torch.testing.assert_close(rate.cpu(), torch.as_tensor(claim((xt / a).cpu().numpy(), den.cpu().numpy(), sg / a)),
                               rtol=1e-9, atol=1e-9)


MIXTURE = GaussianMixture(torch.tensor([0.5, 0.3, 0.2]), torch.tensor([[-1.5, 0.0], [1.0, 1.0], [1.0, -1.2]]),
                          torch.tensor([[[0.20, 0.05], [0.05, 0.10]], [[0.10, 0.0], [0.0, 0.30]],
                                        [[0.15, -0.05], [-0.05, 0.15]]]))


def test_nfe_ordering_on_the_mixture_oracle(device, generator) -> None:
    """Distance to a 200-step reference solve from the same noise: the second-order solvers beat DDIM at equal
    NFE once the steps in lambda are small enough, DPM-Solver++(2S) from NFE 4 on; every sampler improves with
    NFE; samples at NFE 20 pass the per-mode check."""
    data = MIXTURE.to(device, F64)
    path = VPLinear(0.1, 20.0)
    eps = oracle_predictor(MixtureOracle(data), path)
    x_T = torch.randn(400, 2, generator=generator, device=device, dtype=F64)
    ref = sample(eps, path, x_T, "dpmpp2", steps=200, t_end=1e-3).x
    err = {}
    for method in ("ddim", "dpm2", "dpmpp2", "heun"):
        for nfe in (4, 10, 20, 50):
            x = sample(eps, path, x_T, method, steps=steps_for_nfe(method, nfe), t_end=1e-3).x
            err[method, nfe] = float((x - ref).norm(dim=1).mean())
    # deterministic given the seed (no Monte Carlo tolerance involved): orderings of measured errors
    for nfe in (4, 10, 20, 50):
        assert err["dpmpp2", nfe] < err["ddim", nfe], err
    for nfe in (20, 50):
        assert err["dpm2", nfe] < err["ddim", nfe], err
    assert err["heun", 50] < err["ddim", 50], err  # on EDM's grid Heun overtakes DDIM later (NFE 20: 0.18 vs 0.13)
    for method in ("ddim", "dpmpp2"):
        assert err[method, 50] < err[method, 20] < err[method, 10] < err[method, 4], err
    # per-mode weights and within-mode variances within 4 standard errors (mode_check's z-scores): DPM-Solver++(2S)
    # at NFE 20; Heun on EDM's grid needs NFE 50 (at NFE 20 its within-mode variances are ~5 s.e. too wide)
    for method, nfe in (("dpmpp2", 20), ("heun", 50)):
        x = sample(eps, path, torch.randn(2000, 2, generator=generator, device=device, dtype=F64), method,
                   steps=steps_for_nfe(method, nfe), t_end=1e-3).x
        assert mode_check(x, data, generator=generator).passed(), method


def test_grids() -> None:
    path = VPLinear(0.1, 20.0)
    g = lambda_grid(path, 5, 1.0, 1e-3)
    lam = path.lam(g)
    torch.testing.assert_close(lam[1:] - lam[:-1], torch.full((5,), float(lam[1] - lam[0]), dtype=F64), rtol=1e-9,
                               atol=1e-9)
    k = karras_grid(EDM(0.002, 80.0), 4, 80.0, 0.002)
    assert float(k[0]) == 80.0 and math.isclose(float(k[-1]), 0.002) and bool((k[1:] < k[:-1]).all())


@pytest.mark.parametrize("bad, match", [
    (dict(steps=0), "steps"), (dict(steps=2.5), "steps"), (dict(steps=3, t_end=1.5), "t"),
    (dict(steps=3, t_start=0.2, t_end=0.5), "t must be <"), (dict(steps=3, method="rk4"), "method"),
    (dict(steps=3, prediction="noise"), "prediction"), (dict(steps=3, grid="cosine"), "grid"),
])
def test_bad_input_is_rejected(bad, match) -> None:
    path = VPLinear(0.1, 20.0)
    oracle = MixtureOracle(MIXTURE.to(dtype=F64))
    kwargs = dict(method="ddim", t_end=1e-3) | bad
    method = kwargs.pop("method")
    with pytest.raises(ValueError, match=match):
        sample(oracle_predictor(oracle, path), path, torch.zeros(3, 2, dtype=F64), method, **kwargs)
    with pytest.raises(ValueError, match="nfe"):
        steps_for_nfe("dpm2", 3)
    with pytest.raises(ValueError, match="lambda"):  # sigma(0) = 0: lambda is infinite at the data
        dpm_solver_1_step(path, torch.zeros(3, 2, dtype=F64), torch.zeros(3, 2, dtype=F64), 0.5, 0.0)
    with pytest.raises(TypeError, match="path"):
        ddim_step("vp", torch.zeros(3, 2), torch.zeros(3, 2), 0.5, 0.2)
    with pytest.raises(ValueError, match="var"):
        gaussian_flow(path, torch.zeros(3, 2, dtype=F64), 0.5, 0.2, torch.zeros(2, dtype=F64), 0.0)
    with pytest.raises(ValueError, match="model"):
        dpm_solver_pp_2_step(path, lambda x, t: x[:, :1], torch.zeros(3, 2, dtype=F64), 0.5, 0.2)
