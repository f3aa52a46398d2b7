"""``gencode.paths``: the one Gaussian-path abstraction, checked against independent definitions.

* each instance's ``alpha``, ``sigma`` against its formula written out here from the papers' definitions
  (not from the module's code), and against the pre-existing classes that now delegate to it;
* ``d_alpha``, ``d_sigma`` against autograd;
* ``g2`` and ``drift_coef`` against the variance ODE ``d sigma^2 / dt = 2 f sigma^2 + g^2`` and the mean
  ODE ``d alpha / dt = f alpha`` (autograd again);
* every conversion round-trips and agrees with the conditional quantities of a drawn ``x_t``;
* ``t_of_lam`` inverts ``lam``; EDM's preconditioning gives unit variances (closed form on Gaussian data,
  and Monte Carlo on a mixture);
* bad input raises errors naming the argument.

Tolerances: float64 closed forms with a handful of operations agree to ``RTOL = 1e-10`` relative (each
rounding is 1.1e-16; the conversions divide by alpha or sigma, which are >= 1e-3 at the times tested, so
the error is at most ~1e3 times a few ulps of the inputs, far below 1e-10).
"""

from __future__ import annotations

import math

import pytest
import torch

from gencode.diffusion import NoiseSchedule
from gencode.paths import (
    EDM,
    PARAMETRISATIONS,
    VE,
    GaussianPath,
    RectifiedFlow,
    SubVP,
    VPCosine,
    VPDiscrete,
    VPLinear,
    consistency_preconditioning,
    diffusion_time,
    edm_preconditioning,
    flow_time,
)

RTOL = 1e-10  # see the module docstring


def _paths() -> list[GaussianPath]:
    return [VPLinear(0.1, 20.0), VPLinear(0.5, 0.5, T=2.0), VPCosine(0.008), VPDiscrete(NoiseSchedule.linear(200)),
            VPDiscrete(NoiseSchedule.cosine(50)), VE(0.01, 50.0), SubVP(0.1, 20.0), RectifiedFlow(),
            EDM(0.002, 80.0)]


PATHS = _paths()
IDS = [repr(p) for p in PATHS]


def _interior(p: GaussianPath, n: int = 9) -> torch.Tensor:
    """Times strictly inside the interval, away from the ends where alpha or sigma vanish."""
    lo, hi = p.t_min, p.t_max
    return torch.linspace(lo + 0.02 * (hi - lo), hi - 0.02 * (hi - lo), n, dtype=torch.float64)


# --- each instance against its definition ------------------------------------------------------

def _reference(p: GaussianPath, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha(t), sigma(t) written out from the published definitions, independently of gencode.paths."""
    if isinstance(p, SubVP):  # Song et al. 2021, eq. 29: mean e^{-B/2} x0, variance (1 - e^{-B})^2
        B = p.beta_min * t + (p.beta_max - p.beta_min) * t**2 / (2 * p.T)
        return torch.exp(-B / 2), 1 - torch.exp(-B)
    if isinstance(p, VPLinear):  # Song et al. 2021, eq. 33: mean e^{-B/2} x0, variance 1 - e^{-B}
        B = p.beta_min * t + (p.beta_max - p.beta_min) * t**2 / (2 * p.T)
        return torch.exp(-B / 2), torch.sqrt(1 - torch.exp(-B))
    if isinstance(p, VPCosine):  # Nichol and Dhariwal 2021, eq. 17 in continuous time
        f = lambda u: torch.cos(torch.as_tensor((u + p.s) / (1 + p.s) * math.pi / 2, dtype=torch.float64)) ** 2
        abar = f(t) / f(0.0)
        return abar.sqrt(), (1 - abar).sqrt()
    if isinstance(p, VE):  # Song et al. 2021, eq. 30: sigma(t)^2 - sigma(0)^2, sigma geometric
        s = p.sigma_min * (p.sigma_max / p.sigma_min) ** (t / p.T)
        return torch.ones_like(t), torch.sqrt(s**2 - p.sigma_min**2)
    if isinstance(p, RectifiedFlow):  # x_u = u x1 + (1 - u) x0, u = 1 - t
        u = 1 - t
        return u, 1 - u
    if isinstance(p, EDM):
        return torch.ones_like(t), t
    raise AssertionError(p)


@pytest.mark.parametrize("p", [q for q in PATHS if not isinstance(q, VPDiscrete)], ids=lambda q: repr(q))
def test_alpha_sigma_match_definitions(p):
    t = _interior(p)
    a, s = _reference(p, t)
    torch.testing.assert_close(p.alpha(t), a, rtol=RTOL, atol=0)
    torch.testing.assert_close(p.sigma(t), s, rtol=RTOL, atol=0)


@pytest.mark.parametrize("sched", [NoiseSchedule.linear(200), NoiseSchedule.cosine(50), NoiseSchedule.linear(1)],
                         ids=["linear200", "cosine50", "T=1"])
def test_vp_discrete_reproduces_the_schedule_at_integer_steps(sched):
    """At t = k/T, alpha^2 = alphabar_k and sigma^2 = 1 - alphabar_k (the DDPM marginal), to float64."""
    p = VPDiscrete(sched)
    k = torch.arange(sched.T + 1)
    t = k.double() / sched.T
    torch.testing.assert_close(p.alpha(t), sched.alphas_cumprod.sqrt(), rtol=1e-14, atol=0)
    torch.testing.assert_close(p.sigma(t)[1:], (1 - sched.alphas_cumprod[1:]).sqrt(), rtol=1e-12, atol=0)
    assert float(p.sigma(0.0)) == 0.0


def test_vp_discrete_beta_is_continuous_and_matches_the_discrete_beta():
    """beta(t) = -d log alphabar/dt is continuous across the knots (Hermite) and, integrated over one step,
    gives -log(alpha_k) T exactly: int_{(k-1)/T}^{k/T} beta = log alphabar_{k-1} - log alphabar_k."""
    sched = NoiseSchedule.linear(100)
    p = VPDiscrete(sched)
    k = torch.arange(1, 100, dtype=torch.float64)
    h = 1e-9
    left, right = p.beta((k - h) / 100), p.beta((k + h) / 100)
    torch.testing.assert_close(left, right, rtol=1e-6, atol=0)  # continuity; a jump would be O(beta_k / 100)
    # Simpson on a cubic in w is exact up to rounding: the Hermite log-alphabar is a cubic on each step
    a, b = (k - 1) / 100, k / 100
    simpson = (b - a) / 6 * (p.beta(a) + 4 * p.beta((a + b) / 2) + p.beta(b))
    torch.testing.assert_close(simpson, -sched.alphas.log()[1:100], rtol=1e-9, atol=0)


# --- derivatives, SDE coefficients ----------------------------------------------------------

def _grad(fn, t: torch.Tensor) -> torch.Tensor:
    t = t.clone().requires_grad_(True)
    out = fn(t)
    if not out.requires_grad:  # a constant (alpha = 1 of VE and EDM)
        return torch.zeros_like(t)
    (g,) = torch.autograd.grad(out.sum(), t)
    return g


@pytest.mark.parametrize("p", PATHS, ids=IDS)
def test_derivatives_match_autograd(p):
    t = _interior(p)
    if isinstance(p, VPDiscrete):  # the Hermite interpolant is differentiable between knots; stay off them
        t = t + 0.37 / p.T
    torch.testing.assert_close(p.d_alpha(t), _grad(p._alpha, t), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(p.d_sigma(t), _grad(p._sigma, t), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("p", PATHS, ids=IDS)
def test_sde_coefficients_give_the_path_marginals(p):
    """d alpha/dt = f alpha and d sigma^2/dt = 2 f sigma^2 + g^2: the linear SDE's moment ODEs (the kernel
    of dx = f x dt + g dW started at x0 is N(alpha x0, sigma^2 I) exactly when both hold)."""
    t = _interior(p)
    if isinstance(p, VPDiscrete):
        t = t + 0.37 / p.T
    f, g2 = p.drift_coef(t), p.g2(t)
    torch.testing.assert_close(_grad(p._alpha, t), f * p.alpha(t), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(_grad(lambda u: p._sigma(u) ** 2, t), 2 * f * p.sigma(t) ** 2 + g2, rtol=1e-9,
                               atol=1e-12)
    assert bool((g2 > 0).all())
    torch.testing.assert_close(p.diffusion(t) ** 2, g2, rtol=RTOL, atol=0)


def test_named_sde_coefficients():
    """The closed forms the papers give: VP f = -beta/2, g^2 = beta; sub-VP g^2 = beta (1 - e^{-2B});
    VE g^2 = d sigma_g^2/dt; rectified flow f = -1/(1 - t), g^2 = 2t/(1 - t); EDM f = 0, g^2 = 2t."""
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    vp, sub = VPLinear(0.1, 20.0), SubVP(0.1, 20.0)
    beta = 0.1 + 19.9 * t
    B = 0.1 * t + 19.9 * t**2 / 2
    torch.testing.assert_close(vp.drift_coef(t), -beta / 2, rtol=RTOL, atol=0)
    torch.testing.assert_close(vp.g2(t), beta, rtol=RTOL, atol=0)
    torch.testing.assert_close(sub.g2(t), beta * (1 - torch.exp(-2 * B)), rtol=RTOL, atol=0)
    ve = VE(0.01, 50.0)
    torch.testing.assert_close(ve.g2(t), 2 * math.log(5000) * (0.01 * 5000**t) ** 2, rtol=RTOL, atol=0)
    rf = RectifiedFlow()
    torch.testing.assert_close(rf.drift_coef(t), -1 / (1 - t), rtol=RTOL, atol=0)
    torch.testing.assert_close(rf.g2(t), 2 * t / (1 - t), rtol=RTOL, atol=0)
    edm = EDM()
    torch.testing.assert_close(edm.g2(torch.tensor([0.5, 3.0], dtype=torch.float64)),
                               torch.tensor([1.0, 6.0], dtype=torch.float64), rtol=RTOL, atol=0)


# --- lambda and its inverse ----------------------------------------------------------------------

@pytest.mark.parametrize("p", PATHS, ids=IDS)
def test_t_of_lam_inverts_lam(p):
    t = _interior(p, 25)
    lam = p.lam(t)
    assert bool((lam[1:] < lam[:-1]).all())  # lambda decreases: noise grows with t
    torch.testing.assert_close(p.t_of_lam(lam), t, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(p.log_snr(t), 2 * torch.log(p.alpha(t) / p.sigma(t)), rtol=RTOL, atol=0)


def test_bisection_agrees_with_closed_forms():
    """The generic bisection (GaussianPath._t_of_lam) against each closed-form inverse."""
    for p in (VPLinear(0.1, 20.0), VPCosine(), VE(0.01, 50.0), RectifiedFlow(), EDM()):
        lam = p.lam(_interior(p, 11))
        torch.testing.assert_close(GaussianPath._t_of_lam(p, lam), p._t_of_lam(lam), rtol=1e-9, atol=1e-12)


def test_t_of_lam_rejects_out_of_range():
    with pytest.raises(ValueError, match="lam"):
        EDM(0.002, 80.0).t_of_lam(10.0)  # sigma = e^{-10} < sigma_min


# --- conversions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("p", PATHS, ids=IDS)
def test_conversions_of_a_drawn_point(p, device):
    """For x = alpha x0 + sigma eps every conversion gives the other conditional quantity exactly:
    score = -eps/sigma, v = alpha eps - sigma x0, velocity = alpha' x0 + sigma' eps."""
    g = torch.Generator(device=device).manual_seed(0)
    t = _interior(p, 8).to(device)
    x0 = torch.randn(8, 3, generator=g, device=device, dtype=torch.float64)
    eps = torch.randn(8, 3, generator=g, device=device, dtype=torch.float64)
    x = p.sample(x0, t, eps)
    a, s = p.alpha(t)[:, None], p.sigma(t)[:, None]
    da, ds = p.d_alpha(t)[:, None], p.d_sigma(t)[:, None]
    truth = {"eps": eps, "x0": x0, "score": -eps / s, "v": a * eps - s * x0, "velocity": da * x0 + ds * eps}
    torch.testing.assert_close(x, a * x0 + s * eps, rtol=RTOL, atol=0)
    for src in PARAMETRISATIONS:
        for dst in PARAMETRISATIONS:
            got = p.convert(truth[src], src, dst, x, t)
            torch.testing.assert_close(got, truth[dst], rtol=1e-8, atol=1e-9, msg=f"{src} -> {dst}")


def test_conversion_methods_round_trip():
    p = VPCosine()
    g = torch.Generator().manual_seed(1)
    x, e = torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64)
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=torch.float64)
    torch.testing.assert_close(p.eps_from_x0(x, p.x0_from_eps(x, e, t), t), e, rtol=RTOL, atol=1e-12)
    torch.testing.assert_close(p.eps_from_score(p.score_from_eps(e, t), t), e, rtol=RTOL, atol=1e-12)
    torch.testing.assert_close(p.eps_from_v(x, p.v_from_eps(x, e, t), t), e, rtol=RTOL, atol=1e-12)
    torch.testing.assert_close(p.x0_from_v(x, p.v_from_eps(x, e, t), t), p.x0_from_eps(x, e, t), rtol=RTOL,
                               atol=1e-12)
    torch.testing.assert_close(p.eps_from_velocity(x, p.velocity_from_eps(x, e, t), t), e, rtol=RTOL, atol=1e-12)
    torch.testing.assert_close(p.x0_from_velocity(x, p.velocity_from_x0(x, x, t), t), x, rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("p", PATHS, ids=IDS)
def test_sde_drift_family(p):
    """lam_noise = 0 is the probability-flow velocity; lam_noise = 1 is f x - g^2 score; and the family's
    Fokker-Planck drift f x - (1 + l^2)/2 g^2 s + l^2 g^2/2 s (the diffusion's share of the reversed flow)
    does not depend on l."""
    g = torch.Generator().manual_seed(2)
    t = _interior(p, 4)
    x, e = torch.randn(4, 2, generator=g, dtype=torch.float64), torch.randn(4, 2, generator=g, dtype=torch.float64)
    score = p.score_from_eps(e, t)
    torch.testing.assert_close(p.sde_drift(x, t, score, 0.0), p.velocity_from_eps(x, e, t), rtol=1e-9, atol=1e-9)
    f, g2 = p.drift_coef(t)[:, None], p.g2(t)[:, None]
    torch.testing.assert_close(p.sde_drift(x, t, score, 1.0), f * x - g2 * score, rtol=RTOL, atol=1e-12)
    for lam in (0.0, 0.5, 2.0):
        effective = p.sde_drift(x, t, score, lam) + lam**2 * g2 / 2 * score
        torch.testing.assert_close(effective, p.velocity_from_eps(x, e, t), rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(p.sde_diffusion(t, lam), lam * p.g2(t).sqrt(), rtol=RTOL, atol=0)


def test_flow_time_conversion():
    """Flow-matching time u = 1 - t; the FM velocity dx/du is minus the diffusion-time velocity."""
    assert flow_time(0.25) == 0.75 and diffusion_time(flow_time(0.3)) == pytest.approx(0.3)
    p = RectifiedFlow()
    g = torch.Generator().manual_seed(3)
    noise, data = torch.randn(6, 2, generator=g, dtype=torch.float64), torch.randn(6, 2, generator=g,
                                                                                     dtype=torch.float64)
    u = torch.rand(6, generator=g, dtype=torch.float64)
    x = u[:, None] * data + (1 - u[:, None]) * noise  # the flow-matching interpolant
    fm_velocity = data - noise
    torch.testing.assert_close(x, p.sample(data, diffusion_time(u), noise), rtol=RTOL, atol=1e-12)
    torch.testing.assert_close(-p.velocity_from_eps(x, noise, diffusion_time(u)), fm_velocity, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(p.x0_from_velocity(x, -fm_velocity, diffusion_time(u)), data, rtol=1e-9, atol=1e-9)


# --- EDM preconditioning -------------------------------------------------------------------------

def test_edm_preconditioning_unit_variances_closed_form():
    """For x0 with variance sd^2 per coordinate and x = x0 + sigma n: Var(c_in x) = c_in^2 (sd^2 + sigma^2) = 1
    and Var((x0 - c_skip x)/c_out) = ((1 - c_skip)^2 sd^2 + c_skip^2 sigma^2)/c_out^2 = 1."""
    sd = 0.7
    sigma = torch.tensor([0.002, 0.1, 1.0, 5.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, sd)
    torch.testing.assert_close(c_in**2 * (sd**2 + sigma**2), torch.ones_like(sigma), rtol=RTOL, atol=0)
    target_var = ((1 - c_skip) ** 2 * sd**2 + c_skip**2 * sigma**2) / c_out**2
    torch.testing.assert_close(target_var, torch.ones_like(sigma), rtol=RTOL, atol=0)
    # c_skip minimises c_out: d/dc [(1 - c)^2 sd^2 + c^2 sigma^2] = 0 at c = sd^2/(sd^2 + sigma^2)
    torch.testing.assert_close(c_skip, sd**2 / (sd**2 + sigma**2), rtol=RTOL, atol=0)
    torch.testing.assert_close(c_noise, sigma.log() / 4, rtol=RTOL, atol=0)


def test_edm_preconditioning_unit_variances_monte_carlo():
    """On non-Gaussian data (two points +-sd): sample variances of the input and the target are 1 within
    5 standard errors; n = 200000, the variance estimator's sd is sqrt(2/n) ~ 3e-3 for near-Gaussian
    inputs and at most sqrt((m4 - 1)/n) ~ 4.5e-3 here (m4 <= 3 + ...); 5 of them is 0.025."""
    g = torch.Generator().manual_seed(4)
    sd, n = 0.5, 200_000
    x0 = sd * (2 * torch.randint(0, 2, (n,), generator=g, dtype=torch.float64) - 1)
    for sigma in (0.05, 0.5, 3.0):
        x = x0 + sigma * torch.randn(n, generator=g, dtype=torch.float64)
        c_skip, c_out, c_in, _ = edm_preconditioning(sigma, sd)
        assert abs(float((c_in * x).var()) - 1) < 0.025
        assert abs(float(((x0 - c_skip * x) / c_out).var()) - 1) < 0.025


def test_consistency_preconditioning_boundary():
    """f(x, eps) = x exactly: c_skip(eps) = 1, c_out(eps) = 0; far from eps it tends to EDM's."""
    c_skip, c_out = consistency_preconditioning(torch.tensor([0.002, 80.0], dtype=torch.float64), 0.5, 0.002)
    assert float(c_skip[0]) == 1.0 and float(c_out[0]) == 0.0
    e_skip, e_out, _, _ = edm_preconditioning(80.0, 0.5)
    assert float(c_skip[1]) == pytest.approx(float(e_skip), rel=1e-4)
    assert float(c_out[1]) == pytest.approx(float(e_out), rel=1e-4)


# --- bad input, devices ------------------------------------------------------------------------------

def test_bad_input_names_the_argument():
    p = VPLinear()
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="t must lie"):
        p.alpha(1.5)
    with pytest.raises(ValueError, match="t must lie"):
        p.alpha(torch.tensor([0.5, float("nan")]))
    with pytest.raises(ValueError, match="t must lie"):
        EDM(0.002, 80.0).sigma(0.001)
    with pytest.raises(TypeError, match="t must"):
        p.alpha("0.5")
    with pytest.raises(ValueError, match="beta_min"):
        VPLinear(-0.1, 20.0)
    with pytest.raises(ValueError, match="beta_max"):
        VPLinear(1.0, 0.5)
    with pytest.raises(ValueError, match="sigma_max"):
        VE(1.0, 1.0)
    with pytest.raises(ValueError, match="s must"):
        VPCosine(-0.1)
    with pytest.raises(TypeError, match="schedule"):
        VPDiscrete("linear")
    with pytest.raises(ValueError, match="shapes must match"):
        p.x0_from_eps(x, torch.zeros(3, 3, dtype=torch.float64), 0.5)
    with pytest.raises(ValueError, match="t must be a scalar"):
        p.x0_from_eps(x, x, torch.full((4,), 0.5))
    with pytest.raises(ValueError, match="src"):
        p.convert(x, "noise", "x0", x, 0.5)
    with pytest.raises(ValueError, match="dst"):
        p.convert(x, "eps", "data", x, 0.5)
    with pytest.raises(ValueError, match="lam_noise"):
        p.sde_drift(x, 0.5, x, -1.0)
    with pytest.raises(ValueError, match="sigma_data"):
        edm_preconditioning(1.0, 0.0)
    with pytest.raises(ValueError, match="sigma must"):
        edm_preconditioning(torch.tensor([0.0, 1.0]), 0.5)


def test_device_and_dtype_follow_the_inputs(device):
    p = VPCosine()
    x = torch.ones(4, 2, device=device, dtype=torch.float32)
    out = p.x0_from_eps(x, x, 0.5)
    assert out.device == x.device and out.dtype == torch.float32
    t = torch.full((4,), 0.5, device=device, dtype=torch.float32)
    out = p.velocity_from_eps(x, x, t)
    assert out.device == x.device and out.dtype == torch.float32
