"""Langevin samplers (``gencode.langevin``) against the registry and on the exact oracle score.

The samplers are tested with the oracle score of Gaussian mixtures (``MixtureOracle``), so no
training is involved: the samples must reproduce the data's moments, and their energy distance to
fresh data must stay under the finite-sample floor (``sample_floor(...).threshold()``, mean + 4 sd of
the distance between two independent data samples of the same size: by Chebyshev a false alarm has
probability at most 1/16, in practice far less since the statistic is nearly Gaussian; the seeds are
fixed, so the outcome is deterministic).  A pooled distance is nearly blind to a wrong spread inside
well-separated modes, so every sampler test also compares per-mode weights and within-mode variances
with a fresh reference sample (``mode_check(...).passed()``: every z-score within 4 standard errors).
"""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

from derivations import ebm as e
from gencode.distributions import GaussianMixture, eight_gaussians
from gencode.langevin import annealed_langevin, gaussian_stationary_variance, langevin
from gencode.oracle import MixtureOracle
from gencode.score_matching import geometric_sigmas
from gencode.two_sample import energy_distance, mode_check, sample_floor


F64 = torch.float64
N = 1000  # samples per two-sample comparison


def _floor(data: GaussianMixture, device: torch.device) -> float:
    gen = torch.Generator(device=device).manual_seed(123)
    return sample_floor(lambda n: data.sample(n, generator=gen), N).threshold()


def _two_modes(device: torch.device) -> GaussianMixture:
    """Two well-separated modes with unequal weights 0.8 / 0.2."""
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=F64, device=device)
    covs = 0.25**2 * torch.eye(2, dtype=F64, device=device).expand(2, 2, 2)
    return GaussianMixture(torch.tensor([0.8, 0.2], dtype=F64, device=device), means, covs)


# --- the discretised chain on a Gaussian: the registered stationary variance ------------------------

@pytest.mark.validates("ebm.langevin.discrete_variance")
def test_stationary_variance_matches_registry() -> None:
    f = sp.lambdify((e.s, e.eta), e.discrete_variance.claim["variance"])
    for s, eta in [(1.0, 0.4), (0.5, 0.3), (2.0, 0.1), (0.8, 2.0)]:
        # one closed form evaluated two ways in float64: round-off only
        assert math.isclose(gaussian_stationary_variance(s, eta), f(s, eta), rel_tol=1e-12)


@pytest.mark.validates("ebm.langevin.discrete_variance", "ebm.langevin.stationary")
def test_chain_on_a_gaussian_has_the_biased_stationary_variance(device: torch.device) -> None:
    s, eta, n = 0.8, 0.5, 40_000
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.zeros(n, 1, dtype=F64, device=device)
    # contraction factor 1 - eta/(2 s^2) = 0.61 per step: after 60 steps the start is forgotten (0.61^120 ~ 1e-26)
    x = langevin(lambda y, _: -y / s**2, x, eta, 60, generator=gen)
    var = float(x.var())
    want = gaussian_stationary_variance(s, eta)
    se = want * math.sqrt(2 / (n - 1))  # standard error of a Gaussian sample variance
    assert abs(var - want) < 5 * se
    # the test has teeth: each wrong variance of the registry is at least 5 standard errors away
    f = {m.name: sp.lambdify((e.s, e.eta), m.claim["variance"]) for m in e.discrete_variance.mutants}
    for name, wrong in f.items():
        assert abs(var - wrong(s, eta)) > 5 * se, name


# --- plain Langevin on the oracle: reproduces a mixture whose modes overlap ---------------------------

@pytest.mark.validates("ebm.langevin.stationary")
def test_langevin_on_the_oracle_reproduces_overlapping_mixture(device: torch.device) -> None:
    data = GaussianMixture(torch.tensor([0.3, 0.7], dtype=F64, device=device),
                           torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=F64, device=device),
                           torch.tensor([[[0.5, 0.1], [0.1, 0.3]], [[0.4, 0.0], [0.0, 0.4]]], dtype=F64, device=device))
    oracle = MixtureOracle(data)
    gen = torch.Generator(device=device).manual_seed(1)
    x = torch.randn(N, 2, generator=gen, dtype=F64, device=device)
    # step 0.03: the discretisation bias of the variance is eta / (4 s^2) <= 0.03 / (4 * 0.26) ~ 3%
    # on the narrowest direction, and 600 steps are 600 * 0.015 = 9 time units of the diffusion.
    samples = langevin(lambda y, s: oracle.score(y, 1.0, s), x, 0.03, 600, generator=gen)
    # moments: sd of a sample mean is sqrt(var / N) <= sqrt(1.3 / 1000) ~ 0.036; 0.15 is 4 of them
    torch.testing.assert_close(samples.mean(0), data.mean, rtol=0, atol=0.15)
    assert energy_distance(samples, data.sample(N, generator=gen)) < _floor(data, device)
    assert mode_check(samples, data, generator=gen).passed()
    # a drift written with grad p instead of grad log p (an erratum) does not sample the data
    wrong = langevin(lambda y, s: data.log_prob(y).exp().unsqueeze(-1) * oracle.score(y, 1.0, s),
                     x, 0.03, 300, generator=gen)
    assert energy_distance(wrong, data.sample(N, generator=gen)) > 10 * _floor(data, device)


# --- annealed Langevin on the oracle -----------------------------------------------------------------

def _oracle_score(data: GaussianMixture):
    oracle = MixtureOracle(data)
    return lambda y, s: oracle.score(y, 1.0, s)


@pytest.mark.validates("ebm.langevin.stationary")
def test_annealed_langevin_on_the_oracle_reproduces_eight_gaussians(device: torch.device) -> None:
    data = eight_gaussians(dtype=F64, device=device)
    gen = torch.Generator(device=device).manual_seed(2)
    sigmas = geometric_sigmas(3.0, 0.01, 10).to(device)
    x = 3.0 * torch.randn(N, 2, generator=gen, dtype=F64, device=device)
    samples = annealed_langevin(_oracle_score(data), x, sigmas, 2e-5 * 4, 100, denoise=True, generator=gen)
    torch.testing.assert_close(samples.mean(0), data.mean, rtol=0, atol=0.25)  # sd of the mean ~ 2 / sqrt(1000) = 0.063
    assert energy_distance(samples, data.sample(N, generator=gen)) < _floor(data, device)
    # the energy distance cannot see a within-mode spread off by tens of percent: check each mode
    assert mode_check(samples, data, generator=gen).passed()


@pytest.mark.validates("ebm.langevin.stationary")
def test_annealing_recovers_mode_weights_that_plain_langevin_misses(device: torch.device) -> None:
    data = _two_modes(device)
    gen = torch.Generator(device=device).manual_seed(3)
    x = 8 * torch.rand(N, 2, generator=gen, dtype=F64, device=device) - 4  # uniform on [-4, 4]^2
    score = _oracle_score(data)
    annealed = annealed_langevin(score, x, geometric_sigmas(4.0, 0.02, 10).to(device), 1e-4, 100, generator=gen)
    plain = langevin(score, x, 1e-3, 300, sigma=0.02, generator=gen)
    # fraction in the heavy mode: binomial sd sqrt(0.8 * 0.2 / 1000) ~ 0.013; 0.05 is about 4 sd
    assert abs(float((annealed[:, 0] < 0).double().mean()) - 0.8) < 0.05
    assert abs(float((plain[:, 0] < 0).double().mean()) - 0.8) > 0.15  # stuck in the basin it started in
    ref = data.sample(N, generator=gen)
    assert energy_distance(annealed, ref) < _floor(data, device)
    assert energy_distance(plain, ref) > _floor(data, device)
    assert mode_check(annealed, data, ref).passed()
    assert mode_check(plain, data, ref).worst()[0] > 4  # the weights are wrong, not the shapes


# --- the final denoising (Tweedie) step and the within-mode spread of annealed Langevin -------------------

@pytest.mark.validates("score.tweedie")
def test_annealed_langevin_final_step_is_tweedie(device: torch.device) -> None:
    # Same random stream with and without the last step: the only difference is the deterministic
    # Tweedie step x + sigma_L^2 s(x, sigma_L), which must hold to float64 round-off.
    data = eight_gaussians(std=0.3, dtype=F64, device=device)
    score = _oracle_score(data)
    sigmas = geometric_sigmas(2.0, 0.3, 5).to(device)
    x = 2.0 * torch.randn(200, 2, generator=torch.Generator(device=device).manual_seed(4), dtype=F64, device=device)
    raw = annealed_langevin(score, x, sigmas, 0.01, 20, generator=torch.Generator(device=device).manual_seed(5))
    denoised = annealed_langevin(score, x, sigmas, 0.01, 20, denoise=True,
                                 generator=torch.Generator(device=device).manual_seed(5))
    torch.testing.assert_close(denoised, raw + 0.3**2 * score(raw, 0.3), rtol=1e-12, atol=1e-12)


@pytest.mark.validates("score.tweedie")
def test_annealed_langevin_within_mode_spread(device: torch.device) -> None:
    # Two modes of sd 0.3 at +-2 and a last level sigma_L = 0.3: the chains end distributed as
    # q_{sigma_L}, whose modes have variance 0.09 + 0.09 = 0.18, and the Tweedie step maps each point
    # to its posterior mean, whose modes have variance 0.09^2 / 0.18 = 0.045 (the modes are separated
    # at this noise).  The reference is the exact law of both: fresh draws of q_{sigma_L}, before and
    # after Tweedie's map with the exact score.
    data = GaussianMixture(torch.tensor([0.5, 0.5], dtype=F64, device=device),
                           torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=F64, device=device),
                           0.3**2 * torch.eye(2, dtype=F64, device=device).expand(2, 2, 2))
    score = _oracle_score(data)
    n = 8000  # 4000 per mode: a within-mode variance has sd sqrt(2/4000) ~ 2.2%, a difference of two ~ 3.2%,
    #           so the 4-sd band of mode_check rejects a spread off by about 13% or more
    gen = torch.Generator(device=device).manual_seed(6)
    sigmas = geometric_sigmas(3.0, 0.3, 6).to(device)
    x = 3.0 * torch.randn(n, 2, generator=gen, dtype=F64, device=device)
    # step 0.01 at the last level: Langevin bias of the variance 0.01 / (4 * 0.18) ~ 1.4%, below the 3.2% noise;
    # 100 steps contract the variance left over from the previous level (0.31 against 0.18) by
    # (1 - 0.01 / 0.36)^200 ~ 0.004, a residual bias of 0.3%.
    # One random stream with and without the final step (the step itself is tested exactly above).
    raw = annealed_langevin(score, x, sigmas, 0.01, 100, generator=torch.Generator(device=device).manual_seed(7))
    denoised = annealed_langevin(score, x, sigmas, 0.01, 100, denoise=True,
                                 generator=torch.Generator(device=device).manual_seed(7))
    noisy = data.noised(0.3)  # q_{sigma_L}
    noisy_ref = noisy.sample(n, generator=gen)
    assert mode_check(raw, noisy, noisy_ref).passed()
    clean_ref = noisy_ref + 0.3**2 * score(noisy_ref, 0.3)
    assert mode_check(denoised, data, clean_ref).passed()
    # the test has teeth: sigma_L instead of sigma_L^2 in the last step, or no last step, changes the spread
    assert not mode_check(raw + 0.3 * score(raw, 0.3), data, clean_ref).passed()
    assert not mode_check(raw, data, clean_ref).passed()


# --- bad input ----------------------------------------------------------------------------------------

def test_bad_input_is_named() -> None:
    score = lambda y, s: -y  # noqa: E731
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="step_size"):
        langevin(score, x, 0.0, 10)
    with pytest.raises(ValueError, match="n_steps"):
        langevin(score, x, 0.1, 0)
    with pytest.raises(ValueError, match="x must"):
        langevin(score, torch.zeros(3), 0.1, 1)
    with pytest.raises(ValueError, match="sigma"):
        langevin(score, x, 0.1, 1, sigma=-1.0)
    with pytest.raises(ValueError, match="decreasing"):
        annealed_langevin(score, x, torch.tensor([0.1, 1.0]), 0.1, 1)
    with pytest.raises(ValueError, match="sigmas"):
        annealed_langevin(score, x, torch.tensor([1.0, -0.1]), 0.1, 1)
    with pytest.raises(ValueError, match="step_size must be < 4 s"):
        gaussian_stationary_variance(1.0, 4.0)
    with pytest.raises(TypeError, match="step_size"):
        langevin(score, x, "0.1", 1)
