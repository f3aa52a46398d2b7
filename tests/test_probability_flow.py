"""``gencode.probability_flow``: closed forms against ``derivations.probability_flow``, and every sampler on
the exact oracle of Gaussian-mixture data (no training).

Two-sample checks use ``gencode.two_sample.sample_floor``: the energy distance between a sampler's output
and fresh data must lie below the floor's threshold (mean + 4 standard deviations of the distance between
two independent data samples of the same size), which a correct sampler passes with probability at least
15/16 by Chebyshev and, the statistic being nearly Gaussian, far more often; seeds are fixed. Every sampler
test also compares per-mode weights and within-mode variances with a fresh data sample
(:func:`gencode.two_sample.mode_check`, four standard errors), which a pooled distance barely sees.
"""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

from derivations import probability_flow as d
from derivations.diffusion import alpha_t, alphabar_t, alphabar_tm1, beta_t
from gencode.diffusion import NoiseSchedule
from gencode.distributions import Gaussian, eight_gaussians
from gencode.oracle import MixtureOracle
from gencode.probability_flow import (
    VPPath,
    ddim_sample,
    ddim_sigma,
    ddim_step,
    ddim_timesteps,
    ode_log_likelihood,
    oracle_noise_model,
    oracle_score,
    pf_ode_sample,
    score_from_noise_model,
)
from gencode.two_sample import energy_distance, mode_check, sample_floor

N = 2000  # samples per two-sample test


@pytest.fixture
def sched(device: torch.device) -> NoiseSchedule:
    return NoiseSchedule.linear(1000).to(device)


@pytest.fixture
def data(device: torch.device):
    return eight_gaussians(std=0.3, dtype=torch.float64, device=device)


def _passes_floor(samples: torch.Tensor, data, seed: int = 1) -> tuple[float, float]:
    g = torch.Generator(samples.device).manual_seed(seed)
    floor = sample_floor(lambda n: data.sample(n, generator=g), N)
    return float(energy_distance(samples, data.sample(N, generator=g))), floor.threshold()


def _modes_pass(samples: torch.Tensor, data, seed: int = 5) -> None:
    """Per-mode weights and within-mode variances within 4 standard errors of a reference 5x larger."""
    g = torch.Generator(samples.device).manual_seed(seed)
    modes = mode_check(samples, data, reference=data.sample(5 * samples.shape[0], generator=g))
    assert modes.passed(k=4), modes.worst()


def test_vp_path_matches_schedule(sched: NoiseSchedule) -> None:
    path = VPPath(sched)
    for t in (0, 1, 250, 999, 1000):
        assert float(path.alphabar(t / 1000)) == pytest.approx(float(sched.alphas_cumprod[t]), rel=1e-12)
    # beta = -d log alphabar / d tau, checked by a central difference inside one step (exact there)
    tau, h = torch.tensor(0.4005, dtype=torch.float64), 1e-5
    fd = -(path.alphabar(tau + h).log() - path.alphabar(tau - h).log()) / (2 * h)
    assert float(path.beta(tau)) == pytest.approx(float(fd), rel=1e-8)


def test_vp_path_beta_is_continuous_at_the_steps(sched: NoiseSchedule) -> None:
    """The cubic Hermite interpolant of log alphabar (what the chapter says) has a continuous derivative:
    beta just below and just above a step agree, and equal the central difference of log alphabar there.
    A linear interpolant would jump by beta_{t+1} - beta_t (about 2.5e-3 relative at t = 400 on the linear
    schedule); 1e-9 relative is the rounding of a cubic evaluated 1e-9 of a step away from the knot."""
    path = VPPath(sched)
    L = sched.alphas_cumprod.log().cpu()
    for t in (1, 400, 999):
        below, above = (torch.tensor((t + e) / 1000, dtype=torch.float64) for e in (-1e-9, 1e-9))
        b_below, b_above = float(path.beta(below)), float(path.beta(above))
        assert b_below == pytest.approx(b_above, rel=1e-6)
        assert b_above == pytest.approx(-1000 * float(L[t + 1] - L[t - 1]) / 2, rel=1e-6)


def test_score_from_noise_model_is_minus_noise_over_std(sched, data, device, generator) -> None:
    """score(x, tau) = -eps(x, tau T) / sqrt(1 - alphabar(tau)): against the oracle's exact score at any
    tau in (0, 1], and, with a noise model that records its time argument, the time passed is tau T and
    the divisor is the schedule's sqrt(1 - alphabar_t) at integer steps (float64: a few ulps; the oracle's
    score and noise share their computation up to the factor -s, so 1e-10 relative is ample)."""
    oracle = MixtureOracle(data)
    exact = oracle_score(oracle, sched)
    score = score_from_noise_model(oracle_noise_model(oracle, sched), sched)
    x = 2 * torch.randn(64, 2, generator=generator, device=device, dtype=torch.float64)
    for tau in (0.013, 0.3, 0.77, 1.0):
        torch.testing.assert_close(score(x, tau), exact(x, tau), rtol=1e-10, atol=1e-12)
    seen = []

    def linear_eps(y: torch.Tensor, step) -> torch.Tensor:
        seen.append(float(step))
        return 0.5 * y

    read = score_from_noise_model(linear_eps, sched)
    for t in (3, 250, 1000):
        got = read(x, t / 1000)
        want = -0.5 * x / (1 - sched.alphas_cumprod[t]).sqrt().to(x)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        assert seen[-1] == pytest.approx(t, rel=1e-12)


@pytest.mark.validates("pf.gaussian")
def test_pf_velocity_on_gaussian_data_matches_registry(sched, device, generator) -> None:
    m0, v0 = 0.7, 2.5
    oracle = MixtureOracle(Gaussian(torch.tensor([m0], dtype=torch.float64, device=device),
                                    torch.tensor([[v0]], dtype=torch.float64, device=device)))
    path, score = VPPath(sched), oracle_score(oracle, sched)
    claim = sp.lambdify((d.x, d.a, d.beta, d.m0, d.v0), d.gaussian.claim["velocity"])
    x = torch.randn(50, 1, generator=generator, device=device, dtype=torch.float64)
    for tau in (0.05, 0.3, 0.77):
        ours = path.pf_velocity(x, tau, score(x, tau))
        theirs = claim(x.cpu().numpy(), float(path.scale(tau)), float(path.beta(tau)), m0, v0)
        # float64 arithmetic on O(1) quantities: a few ulps of error
        torch.testing.assert_close(ours.cpu(), torch.as_tensor(theirs), rtol=1e-10, atol=1e-12)


@pytest.mark.validates("ddim.update")
def test_ddim_step_matches_registry(sched, device, generator) -> None:
    claim = sp.lambdify((d.xt, d.eps, alphabar_t, d.ab_s), d.update.claim["x_s"])
    x = torch.randn(20, 2, generator=generator, device=device, dtype=torch.float64)
    eps = torch.randn(20, 2, generator=generator, device=device, dtype=torch.float64)
    for t, s in [(1000, 750), (300, 299), (17, 0)]:
        ours = ddim_step(sched, x, eps, t, s, eta=0.0)
        ab = sched.alphas_cumprod.cpu()
        theirs = claim(x.cpu().numpy(), eps.cpu().numpy(), float(ab[t]), float(ab[s]))
        # 1 / sqrt(alphabar_1000) ~ 150 amplifies rounding: relative 1e-10 is still 10^5 ulps of margin
        torch.testing.assert_close(ours.cpu(), torch.as_tensor(theirs), rtol=1e-10, atol=1e-10)


@pytest.mark.validates("ddim.variance")
def test_ddim_eta_one_is_ddpm_on_consecutive_steps(sched, device, generator) -> None:
    claim = sp.lambdify((d.eta, alpha_t, beta_t, alphabar_t, alphabar_tm1), d.variance.claim["variance"])
    for t in (2, 10, 500, 1000):
        for eta in (0.0, 0.5, 1.0):
            sigma2 = float(ddim_sigma(sched, t, t - 1, eta)) ** 2
            args = (eta, float(sched.alphas[t]), float(sched.betas[t]), float(sched.alphas_cumprod[t]),
                    float(sched.alphas_cumprod[t - 1]))
            assert sigma2 == pytest.approx(claim(*args), rel=1e-10, abs=1e-300)
        assert float(ddim_sigma(sched, t, t - 1, 1.0)) ** 2 == pytest.approx(float(sched.posterior_variance[t]),
                                                                           rel=1e-10)
    # the mean of the eta = 1 step is DDPM's posterior mean at x0_hat: compare with q_posterior
    x = torch.randn(10, 2, generator=generator, device=device, dtype=torch.float64)
    eps = torch.randn(10, 2, generator=generator, device=device, dtype=torch.float64)
    t = 400
    zero = torch.zeros_like(x)
    step_mean = ddim_step(sched, x, eps, t, t - 1, eta=1.0, noise=zero)
    x0_hat = sched.predict_x0_from_noise(x, eps, t)
    torch.testing.assert_close(step_mean, sched.q_posterior(x0_hat, x, t).mean, rtol=1e-10, atol=1e-10)
    # with a skip of 10 steps, eta = 1 is not DDPM's one-step variance: the skipped steps' noise accumulates
    assert float(ddim_sigma(sched, t, t - 10, 1.0)) ** 2 > 5 * float(sched.posterior_variance[t])


def test_pf_ode_on_oracle_reproduces_data(sched, data, device) -> None:
    g = torch.Generator(device).manual_seed(0)
    x_T = torch.randn(N, 2, generator=g, device=device, dtype=torch.float64)
    x0, nfe = pf_ode_sample(oracle_score(MixtureOracle(data), sched), sched, x_T, method="heun", steps=100)
    assert nfe == 200
    dist, threshold = _passes_floor(x0, data)
    assert dist < threshold, (dist, threshold)
    # moments: mean within 5 standard errors (std of each coordinate ~ 1.44)
    assert (x0.mean(0) - data.mean).abs().max().item() < 5 * 1.5 / math.sqrt(N)
    _modes_pass(x0, data)


@pytest.mark.parametrize(("steps", "eta"), [(50, 0.0), (1000, 1.0)])
def test_ddim_and_ddpm_on_oracle_reproduce_data(steps, eta, sched, data, device) -> None:
    g = torch.Generator(device).manual_seed(2)
    x_T = torch.randn(N, 2, generator=g, device=device, dtype=torch.float64)
    x0 = ddim_sample(oracle_noise_model(MixtureOracle(data), sched), sched, x_T, steps, eta=eta, generator=g)
    dist, threshold = _passes_floor(x0, data, seed=3)
    assert dist < threshold, (dist, threshold)
    _modes_pass(x0, data)


def test_ddim_quality_improves_with_steps(sched, data, device) -> None:
    g = torch.Generator(device).manual_seed(4)
    x_T = torch.randn(N, 2, generator=g, device=device, dtype=torch.float64)
    eps = oracle_noise_model(MixtureOracle(data), sched)
    y = data.sample(N, generator=g)
    dists = [float(energy_distance(ddim_sample(eps, sched, x_T, k), y)) for k in (2, 10, 50)]
    assert dists[0] > dists[1] > dists[2]  # discretisation error shrinks with the number of steps


@pytest.mark.validates("pf.likelihood")
def test_ode_log_likelihood_equals_exact_log_density(sched, device, generator) -> None:
    data = Gaussian(torch.tensor([0.5, -1.0], dtype=torch.float64, device=device),
                    torch.tensor([[1.5, 0.6], [0.6, 0.8]], dtype=torch.float64, device=device))
    oracle = MixtureOracle(data)
    path = VPPath(sched)
    prior = oracle.marginal(float(path.scale(1.0)), float(path.noise_std(1.0)))  # exact law at tau = 1
    x = data.sample(16, generator=generator)
    logp = ode_log_likelihood(oracle_score(oracle, sched), sched, x, prior=prior)
    # solver tolerances rtol 1e-6 / atol 1e-8 over a smooth path: errors ~1e-6 in the log-density
    torch.testing.assert_close(logp, data.log_prob(x), rtol=0, atol=1e-4)
    # with the standard normal prior the error is that of the prior: p_1 has mean a m, a = sqrt(alphabar_T)
    # ~ 6.4e-3, so log p_1(x_1) - log N(x_1; 0, I) ~ a m . x_1 + O(a^2) <= 6.4e-3 * 1.2 * 3 ~ 0.023
    logp_std = ode_log_likelihood(oracle_score(oracle, sched), sched, x)
    torch.testing.assert_close(logp_std, data.log_prob(x), rtol=0, atol=0.03)


def test_bad_input(sched) -> None:
    path = VPPath(sched)
    with pytest.raises(ValueError, match="tau"):
        path.alphabar(1.5)
    with pytest.raises(ValueError, match="s < t"):
        ddim_sigma(sched, 10, 10, 0.0)
    with pytest.raises(ValueError, match="eta"):
        ddim_sigma(sched, 10, 9, -1.0)
    with pytest.raises(ValueError, match="steps"):
        ddim_timesteps(1000, 0)
    with pytest.raises(TypeError, match="schedule"):
        VPPath("linear")
    with pytest.raises(ValueError, match="tau_min"):
        pf_ode_sample(lambda x, t: x, sched, torch.zeros(2, 2), tau_min=-0.1)
