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


# --- the refactored modules give the numbers of straightforward implementations ----------------------
# Each sampler or conversion that now goes through gencode.paths is run next to a loop written out here from
# the paper's equations, with its own coefficients (cumprod of 1 - beta, exp(-B/2), ...), on the same inputs
# and the same random stream. Tolerance 1e-10 (float64): the two differ only in the order of roundings
# (e.g. beta vs sqrt(beta)^2, alpha^2 + sigma^2 vs 1), ~1e-16 relative per operation, accumulated over at
# most a few hundred contracting steps; a wrong coefficient (a missing square root, a swapped alpha and
# sigma, a sign) changes the results at order 1e-3 or more.

from gencode import consistency as cm  # noqa: E402
from gencode import flow_matching as fm  # noqa: E402
from gencode import guidance as gd  # noqa: E402
from gencode import probability_flow as pf  # noqa: E402
from gencode import score_matching as sm  # noqa: E402
from gencode import sde as sd  # noqa: E402
from gencode.diffusion import ancestral_sample, oracle_noise_predictor  # noqa: E402
from gencode.distributions import GaussianMixture  # noqa: E402
from gencode.oracle import MixtureOracle  # noqa: E402

SAME = dict(rtol=1e-10, atol=1e-10)  # see above


def _mixture(device) -> GaussianMixture:
    means = torch.tensor([[-1.0, 0.5], [1.2, -0.3]], dtype=torch.float64)
    covs = torch.tensor([[[0.2, 0.05], [0.05, 0.1]], [[0.15, 0.0], [0.0, 0.3]]], dtype=torch.float64)
    return GaussianMixture(torch.tensor([0.4, 0.6], dtype=torch.float64), means, covs).to(device)


def _ddpm_coefficients(T: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """beta_t, alpha_t, alphabar_t for t = 1..T (index t - 1) of DDPM's linear schedule, written out."""
    beta = torch.linspace(1e-4, 0.02 * 1000 / T, T, dtype=torch.float64, device=device)
    alpha = 1 - beta
    return beta, alpha, torch.cumprod(alpha, 0)


def test_diffusion_conversions_and_ancestral_sampler_unchanged(device):
    T = 100
    sched = NoiseSchedule.linear(T, 1e-4, 0.02 * 1000 / T).to(device)
    beta, alpha, abar = _ddpm_coefficients(T, device)
    g = torch.Generator(device=device).manual_seed(5)
    x0, eps = (torch.randn(6, 2, generator=g, device=device, dtype=torch.float64) for _ in range(2))
    t = torch.tensor([1, 7, 30, 55, 80, 100], device=device)
    a, s = abar[t - 1].sqrt()[:, None], (1 - abar[t - 1]).sqrt()[:, None]
    xt = a * x0 + s * eps
    torch.testing.assert_close(sched.predict_x0_from_noise(xt, eps, t), (xt - s * eps) / a, **SAME)
    torch.testing.assert_close(sched.noise_from_x0(xt, x0, t), (xt - a * x0) / s, **SAME)
    torch.testing.assert_close(sched.score_from_noise(eps, t), -eps / s, **SAME)
    torch.testing.assert_close(sched.conditional_score(xt, x0, t), -(xt - a * x0) / s**2, **SAME)
    v = a * eps - s * x0
    torch.testing.assert_close(sched.v_from_noise(xt, eps, t), v, **SAME)
    torch.testing.assert_close(sched.noise_from_v(xt, v, t), a * v + s * xt, **SAME)
    score = -eps / s
    torch.testing.assert_close(sched.mean_from_score(xt, score, t),
                               (xt + beta[t - 1][:, None] * score) / alpha[t - 1].sqrt()[:, None], **SAME)
    # the ancestral sampler on the exact noise predictor, sigma_t^2 = beta_t, one random stream for both
    oracle = MixtureOracle(_mixture(device))
    predictor = oracle_noise_predictor(sched, oracle)
    x_T = torch.randn(200, 2, generator=g, device=device, dtype=torch.float64)
    ours = ancestral_sample(sched, predictor, x_T, generator=torch.Generator(device=device).manual_seed(6))
    g2_ = torch.Generator(device=device).manual_seed(6)
    x = x_T
    for k in range(T, 0, -1):
        b, al, ab = beta[k - 1], alpha[k - 1], abar[k - 1]
        e = oracle.noise(x, float(ab.sqrt()), float((1 - ab).sqrt()))
        mean = (x - b / (1 - ab).sqrt() * e) / al.sqrt()
        x = mean + b.sqrt() * torch.randn(x.shape, generator=g2_, device=device, dtype=x.dtype) if k > 1 else mean
    torch.testing.assert_close(ours, x, **SAME)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_sampler_unchanged(eta, device):
    T, steps = 100, 10
    sched = NoiseSchedule.linear(T, 1e-4, 0.02 * 1000 / T).to(device)
    _, _, abar = _ddpm_coefficients(T, device)
    abar = torch.cat([abar.new_ones(1), abar])  # abar[0] = 1: step 0 is the data
    oracle = MixtureOracle(_mixture(device))
    eps_model = pf.oracle_noise_model(oracle, sched)
    x_T = torch.randn(200, 2, generator=torch.Generator(device=device).manual_seed(7), device=device,
                      dtype=torch.float64)
    ours = pf.ddim_sample(eps_model, sched, x_T, steps, eta, generator=torch.Generator(device=device).manual_seed(8))
    g = torch.Generator(device=device).manual_seed(8)
    x = x_T
    times = [T - k * T // steps for k in range(steps + 1)]
    for t, s in zip(times[:-1], times[1:]):
        e = oracle.noise(x, float(abar[t].sqrt()), float((1 - abar[t]).sqrt()))
        x0 = (x - (1 - abar[t]).sqrt() * e) / abar[t].sqrt()
        sig = eta * ((1 - abar[s]) / (1 - abar[t])).sqrt() * (1 - abar[t] / abar[s]).sqrt()
        x = abar[s].sqrt() * x0 + (1 - abar[s] - sig**2).clamp(min=0).sqrt() * e
        if eta > 0:
            x = x + sig * torch.randn(x.shape, generator=g, device=device, dtype=x.dtype)
    torch.testing.assert_close(ours, x, **SAME)


def test_pf_velocity_and_score_reading_unchanged(device):
    sched = NoiseSchedule.linear(200)
    path = pf.VPPath(sched)
    oracle = MixtureOracle(_mixture(device))
    x = torch.randn(50, 2, generator=torch.Generator(device=device).manual_seed(9), device=device,
                    dtype=torch.float64)
    for tau in (0.05, 0.3, 0.77):
        score = pf.oracle_score(oracle, sched)(x, tau)
        beta = float(path.beta(tau))
        torch.testing.assert_close(path.pf_velocity(x, tau, score), -beta / 2 * (x + score), **SAME)
        eps = pf.oracle_noise_model(oracle, sched)(x, tau * 200)
        torch.testing.assert_close(pf.score_from_noise_model(pf.oracle_noise_model(oracle, sched), sched)(x, tau),
                                   -eps / float((1 - path.alphabar(tau)).sqrt()), **SAME)


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_reverse_sde_sampler_unchanged(kind, device):
    """reverse_sde_sample (Euler-Maruyama on f - g^2 score) against the loop written from Song et al.'s
    equations with the VP/VE coefficients spelled out."""
    oracle = MixtureOracle(_mixture(device))
    n, steps, eps_t = 300, 40, 1e-3
    if kind == "vp":
        sde, bmin, bmax = sd.VPSDE(0.1, 20.0), 0.1, 20.0

        def coefs(t):
            B = bmin * t + (bmax - bmin) * t**2 / 2
            beta = bmin + (bmax - bmin) * t
            return -beta / 2, math.sqrt(beta), math.exp(-B / 2), math.sqrt(1 - math.exp(-B))
        prior = 1.0
    else:
        sde, smin, smax = sd.VESDE(0.01, 10.0), 0.01, 10.0

        def coefs(t):
            s = smin * (smax / smin) ** t
            return 0.0, s * math.sqrt(2 * math.log(smax / smin)), 1.0, math.sqrt(s**2 - smin**2)
        prior = math.sqrt(smax**2 - smin**2)
    ours = sd.reverse_sde_sample(sde, sd.oracle_score(oracle, sde), n, 2, steps=steps, eps=eps_t,
                                 generator=torch.Generator(device=device).manual_seed(10), device=device).x
    g = torch.Generator(device=device).manual_seed(10)
    x = prior * torch.randn(n, 2, generator=g, device=device, dtype=torch.float64)
    grid = torch.linspace(1.0, eps_t, steps + 1, dtype=torch.float64).tolist()
    for k in range(steps):
        t, dt = grid[k], grid[k + 1] - grid[k]
        f, gg, a, s = coefs(t)
        x_mean = x + (f * x - gg**2 * oracle.score(x, a, s)) * dt
        x = x_mean if k == steps - 1 else x_mean + gg * math.sqrt(-dt) * torch.randn(
            x.shape, generator=g, device=device, dtype=x.dtype)
    torch.testing.assert_close(ours, x, **SAME)


def test_flow_matching_unchanged(device):
    """FlowPath's conversions and the oracle's Euler sampler against the flow-time formulas
    (x + (1 - t) v, x - t v, t x1 + (1 - t) x0, and the velocity with a = t, s = 1 - t, a' = 1, s' = -1)."""
    oracle = MixtureOracle(_mixture(device))
    g = torch.Generator(device=device).manual_seed(11)
    x, v, x1 = (torch.randn(40, 2, generator=g, device=device, dtype=torch.float64) for _ in range(3))
    t = torch.rand(40, generator=g, device=device, dtype=torch.float64)
    tc = t[:, None]
    torch.testing.assert_close(fm.FlowPath.data_from_velocity(x, t, v), x + (1 - tc) * v, **SAME)
    torch.testing.assert_close(fm.FlowPath.noise_from_velocity(x, t, v), x - tc * v, **SAME)
    torch.testing.assert_close(fm.FlowPath.interpolate(x, x1, t), RectifiedFlow().sample(x1, 1 - t, x), **SAME)
    ours = fm.sample(fm.FlowPath.oracle_velocity(oracle), x, method="euler", steps=20).x
    y = x
    for k in range(20):
        u = k / 20
        y = y + oracle.velocity(y, u, 1 - u, 1.0, -1.0) / 20
    torch.testing.assert_close(ours, y, **SAME)


def test_consistency_unchanged(device):
    """The consistency model's output c_skip x + c_out F(c_in x, log t / 4) with Song et al.'s coefficients
    written out, and one Heun teacher step of dx/dt = (x - D)/t."""
    torch.manual_seed(0)
    model = cm.ConsistencyModel(2, sigma_data=0.8, eps=0.002, T=80.0, hidden=16, depth=1, time_dim=8).double().to(
        device)
    g = torch.Generator(device=device).manual_seed(12)
    x = torch.randn(30, 2, generator=g, device=device, dtype=torch.float64)
    t = 0.002 + 10 * torch.rand(30, generator=g, device=device, dtype=torch.float64)
    sdat, e = 0.8, 0.002
    c_skip = sdat**2 / ((t - e) ** 2 + sdat**2)
    c_out = sdat * (t - e) / (sdat**2 + t**2).sqrt()
    c_in = 1 / (t**2 + sdat**2).sqrt()
    with torch.no_grad():
        want = c_skip[:, None] * x + c_out[:, None] * model.net(c_in[:, None] * x, t.log() / 4)
        torch.testing.assert_close(model(x, t), want, **SAME)
    den = cm.oracle_denoiser(MixtureOracle(_mixture(device)))
    t0, t1 = t, t * 0.7
    d0 = (x - den(x, t0)) / t0[:, None]
    xe = x + (t1 - t0)[:, None] * d0
    d1 = (xe - den(xe, t1)) / t1[:, None]
    torch.testing.assert_close(cm.teacher_step(den, x, t0, t1), x + (t1 - t0)[:, None] * (d0 + d1) / 2, **SAME)


def test_guidance_and_score_matching_unchanged(device):
    g = torch.Generator(device=device).manual_seed(13)
    eps, grad, x = (torch.randn(20, 2, generator=g, device=device, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(gd.classifier_guided_noise(eps, grad, 0.6, 3.0), eps - 3.0 * 0.6 * grad, **SAME)
    score = lambda y, sigma: -y / (1 + sigma[:, None] ** 2)  # the score of N(0, I) smoothed by sigma
    sig = 0.1 + torch.rand(20, generator=g, device=device, dtype=torch.float64)
    noise = torch.randn(20, 2, generator=g, device=device, dtype=torch.float64)
    x_tilde = x + sig[:, None] * noise
    want = 0.5 * (score(x_tilde, sig) + noise / sig[:, None]).square().sum(-1).mean()
    torch.testing.assert_close(sm.denoising_score_matching_loss(score, x, sig, noise=noise), want, **SAME)
    torch.testing.assert_close(sm.tweedie_denoiser(score, x_tilde, sig),
                               x_tilde + sig[:, None] ** 2 * score(x_tilde, sig), **SAME)
    sigmas = torch.tensor([0.1, 0.5, 2.0], dtype=torch.float64)
    ours = sm.ncsn_loss(score, x, sigmas, generator=torch.Generator(device=device).manual_seed(14))
    g2_ = torch.Generator(device=device).manual_seed(14)
    s = sigmas.to(device)[torch.randint(3, (20,), generator=g2_, device=device)]
    z = torch.randn(x.shape, generator=g2_, device=device, dtype=x.dtype)
    want = 0.5 * (s[:, None] * score(x + s[:, None] * z, s) + z).square().sum(-1).mean()
    torch.testing.assert_close(ours, want, **SAME)
