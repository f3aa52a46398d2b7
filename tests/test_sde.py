"""``gencode.sde`` against the registered SDE identities (``derivations.sde``) and the oracle.

* closed forms (kernels, the DDPM limit) are compared in float64 with the lambdified SymPy claims;
* Euler-Maruyama simulations are compared with the kernels; the tolerance is the exact discretisation
  bias of the Euler-Maruyama chain's moments (computed by their linear recursion, independently of the
  simulation) plus five Monte Carlo standard errors;
* one Euler-Maruyama step is compared with the registered generator (``sde.generator``) on polynomial
  test functions; the DDPM schedule of the VP SDE is checked entry by entry (right endpoint);
* the reverse-time SDE and predictor-corrector samplers, driven by the exact oracle score, must reproduce
  Gaussian-mixture data: moments within standard errors, energy distance under the finite-sample
  floor (:func:`gencode.two_sample.sample_floor`), and per-mode weights and within-mode variances within
  four standard errors (:func:`gencode.two_sample.mode_check`: a pooled distance is nearly blind to a
  wrong within-mode spread).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import sympy as sp
import torch
from scipy.integrate import quad

from derivations import sde as d
from derivations.core import instantiate
from gencode.distributions import GaussianMixture
from gencode.oracle import MixtureOracle
from gencode.sde import (
    VESDE,
    SubVPSDE,
    VPSDE,
    euler_maruyama,
    euler_maruyama_moments,
    langevin_corrector,
    oracle_score,
    predictor_corrector_sample,
    reverse_sde_sample,
)
from gencode.two_sample import energy_distance, mode_check, sample_floor

RTOL = 1e-12  # closed forms in float64: a handful of roundings of 1.1e-16 each


def _data(device: torch.device) -> GaussianMixture:
    """A 2-D mixture with three unequal, correlated components (the truth is known in closed form)."""
    means = torch.tensor([[-1.5, 0.0], [1.0, 1.0], [1.0, -1.2]], dtype=torch.float64)
    covs = torch.tensor([[[0.20, 0.05], [0.05, 0.10]], [[0.10, 0.0], [0.0, 0.30]], [[0.15, -0.05], [-0.05, 0.15]]],
                        dtype=torch.float64)
    return GaussianMixture(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), means, covs).to(device)


def _lambdify(expr: sp.Expr, *symbols: sp.Symbol):
    return sp.lambdify(symbols, expr, "numpy")


# --- transition kernels -----------------------------------------------------------------------

@pytest.mark.validates("sde.vp.kernel")
def test_vp_kernel_matches_registry() -> None:
    sde = VPSDE(0.1, 20.0)
    ts = np.linspace(0.0, 1.0, 41)
    B = np.array([quad(lambda s: 0.1 + 19.9 * s, 0, t)[0] for t in ts])  # independent quadrature
    mean = _lambdify(d.vp_kernel.claim["mean"], d.x0, d.B)(1.0, B)
    var = _lambdify(d.vp_kernel.claim["variance"], d.B)(B)
    got_scale = sde.marginal_scale(torch.tensor(ts)).numpy()
    got_var = sde.marginal_std(torch.tensor(ts)).numpy() ** 2
    np.testing.assert_allclose(got_scale, mean, rtol=RTOL)
    np.testing.assert_allclose(got_var, var, rtol=1e-10, atol=1e-15)  # quad's own error ~1e-14 relative
    for m in d.vp_kernel.mutants:  # the comparison has teeth
        claim = d.vp_kernel.claim | m.claim
        wrong = (_lambdify(claim["mean"], d.x0, d.B)(1.0, B), _lambdify(claim["variance"], d.B)(B))
        assert max(np.abs(got_scale - wrong[0]).max(), np.abs(got_var - wrong[1]).max()) > 1e-2


@pytest.mark.validates("sde.ve.kernel")
def test_ve_kernel_matches_registry() -> None:
    sde = VESDE(0.01, 50.0)
    ts = np.linspace(0.0, 1.0, 41)
    sigma_t = 0.01 * (50.0 / 0.01) ** ts  # the geometric schedule, recomputed
    want = _lambdify(d.ve_kernel.claim["variance"], d.sigma_t, d.sigma_0)(sigma_t, 0.01)
    got = sde.marginal_std(torch.tensor(ts)).numpy() ** 2
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-16)
    assert float(sde.marginal_scale(0.3)) == 1.0
    wrong = _lambdify(d.ve_kernel.mutants[0].claim["variance"], d.sigma_t)(sigma_t)
    assert np.abs(got - wrong).max() > 5e-5  # sigma_0^2 = 1e-4 is visible at t = 0
    # g(t)^2 = d sigma^2 / dt, checked by a central difference (error O(h^2) ~ 1e-8 relative)
    t, h = 0.4, 1e-5
    dsig2 = (float(sde.sigma(t + h)) ** 2 - float(sde.sigma(t - h)) ** 2) / (2 * h)
    assert abs(float(sde.diffusion(t)) ** 2 / dsig2 - 1) < 1e-7


def _em_moments(drift_coef, g2, m0: float, v0: float, times: np.ndarray) -> tuple[float, float]:
    """Exact mean and variance of the Euler-Maruyama *chain* of dx = c(t) x dt + g dW (linear recursion)."""
    m, v = m0, v0
    for t, t_next in zip(times[:-1], times[1:]):
        step = t_next - t
        m, v = (1 + drift_coef(t) * step) * m, (1 + drift_coef(t) * step) ** 2 * v + g2(t) * step
    return m, v


@pytest.mark.parametrize("kind", ["vp", "ve", "brownian"])
@pytest.mark.validates("sde.vp.kernel", "sde.ve.kernel", "sde.fokker_planck.vp", "sde.heat")
def test_simulated_marginals_match_symbolic_moments(device: torch.device, kind: str) -> None:
    """Simulate from a Gaussian start N(mu_0, v_0) and compare with the registered solutions."""
    mu0, v0, t_end, steps, n = 1.5, 0.25, 0.6, 200, 50_000
    times = np.linspace(0.0, t_end, steps + 1)
    if kind == "vp":
        sde = VPSDE(0.1, 20.0)
        drift, diffusion = sde.drift, sde.diffusion
        coef, g2 = (lambda t: -float(sde.beta(t)) / 2), (lambda t: float(sde.beta(t)))
        a = float(sde.marginal_scale(t_end))
        claim = d.vp_fokker_planck.claim
        mean = _lambdify(claim["mean"], d.a, d.mu0)(a, mu0)
        var = _lambdify(claim["variance"], d.a, d.v0)(a, v0)
    elif kind == "ve":
        sde = VESDE(0.05, 5.0)
        drift, diffusion = sde.drift, sde.diffusion
        coef, g2 = (lambda t: 0.0), (lambda t: float(sde.diffusion(t)) ** 2)
        mean = mu0
        var = v0 + _lambdify(d.ve_kernel.claim["variance"], d.sigma_t, d.sigma_0)(float(sde.sigma(t_end)), 0.05)
    else:
        drift, diffusion = (lambda x, t: torch.zeros_like(x)), (lambda t: 1.0)
        coef, g2 = (lambda t: 0.0), (lambda t: 1.0)
        mean = mu0
        var = _lambdify(d.heat.claim["variance"], d.v0, d.t)(v0, t_end)
    gen = torch.Generator(device=device).manual_seed(3)
    x = mu0 + math.sqrt(v0) * torch.randn(n, 1, generator=gen, device=device, dtype=torch.float64)
    out = euler_maruyama(drift, diffusion, x, times.tolist(), generator=gen)
    em_mean, em_var = _em_moments(coef, g2, mu0, v0, times)
    # Tolerance: the chain's exact bias |EM - ODE| plus five standard errors (sd of the sample mean is
    # sqrt(v/n); of the sample variance v sqrt(2/(n-1)) for Gaussian samples).
    tol_mean = abs(em_mean - mean) + 5 * math.sqrt(var / n)
    tol_var = abs(em_var - var) + 5 * var * math.sqrt(2 / (n - 1))
    assert abs(float(out.x.mean()) - mean) < tol_mean
    assert abs(float(out.x.var()) - var) < tol_var
    assert abs(em_var - var) < 0.02 * var  # the discretisation bias itself is small at 200 steps


@pytest.mark.validates("sde.fokker_planck.vp_nd")
def test_simulated_vp_marginal_in_three_dimensions(device: torch.device) -> None:
    sde = VPSDE(0.1, 20.0)
    mu0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, device=device)
    n, v0 = 50_000, 0.5
    gen = torch.Generator(device=device).manual_seed(4)
    x = mu0 + math.sqrt(v0) * torch.randn(n, 3, generator=gen, device=device, dtype=torch.float64)
    out = euler_maruyama(sde.drift, sde.diffusion, x, np.linspace(0, 0.3, 151).tolist(), generator=gen)
    a = float(sde.marginal_scale(0.3))
    claim = d.vp_fokker_planck_nd.claim
    var = _lambdify(claim["variance"], d.a, d.v0)(a, v0)
    cov = torch.cov(out.x.T)
    # 5 standard errors plus a 1% allowance for the Euler bias (below 0.5% at 150 steps by the 1-D recursion)
    assert torch.allclose(out.x.mean(0), a * mu0, atol=5 * math.sqrt(var / n) + 0.01)
    assert torch.allclose(cov, var * torch.eye(3, dtype=torch.float64, device=device),
                          atol=5 * var * math.sqrt(2 / n) + 0.01 * var)


def _generator_1d(claim: sp.Expr, phi: sp.Expr, f: sp.Expr, g: sp.Expr) -> sp.Expr:
    """The registered generator (written in the generic coordinate x_i) for concrete phi(x), f(x), g in 1-D."""
    return instantiate(claim, {d.PHI: sp.Lambda((d.xi, d.xr), phi), d.Fi: sp.Lambda((d.xi, d.xr, d.t), f),
                               d.G: sp.Lambda(d.t, g)})


@pytest.mark.validates("sde.generator")
def test_one_euler_maruyama_step_matches_the_generator(device: torch.device) -> None:
    """E[phi(x + f h + g sqrt(h) z)] = phi(x) + h L phi(x) + O(h^2), for the VP SDE's f, g and phi = y^2, y^3.

    ``euler_maruyama`` takes one step from a fixed x. Its law must be N(x + f h, g^2 h): the sample mean
    within five standard errors sqrt(v/n) of x + f h, the sample variance within five standard errors
    v sqrt(2/(n-1)) of g^2 h (relative 1.1%, so a noise scale off by 2% fails). For that Gaussian law
    E phi(y) is closed-form (m^2 + v, m^3 + 3 m v), and E phi(y) - phi - h L phi, with L the registered
    generator, must be O(h^2): below 3 h^2 here (the remainders are f^2 h^2 and
    3 x f^2 h^2 + f^3 h^3 + 3 f g^2 h^2, with f = -0.185, g^2 = 0.37: at most 3.1e-5 against 3e-4), while
    each mutant generator misses by at least 0.24 h.
    """
    sde, x0, t0, h, n = VPSDE(0.1, 1.0), 1.0, 0.3, 0.01, 400_000  # beta(t0) = 0.37: g and g^2 differ
    beta = float(sde.beta(t0))
    f, g2 = -beta * x0 / 2, beta
    gen = torch.Generator(device=device).manual_seed(11)
    x = torch.full((n, 1), x0, dtype=torch.float64, device=device)
    y = euler_maruyama(sde.drift, sde.diffusion, x, [t0, t0 + h], generator=gen).x.squeeze(1)
    m, v = x0 + f * h, g2 * h  # the law of one step
    assert abs(float(y.mean()) - m) < 5 * math.sqrt(v / n)
    assert abs(float(y.var()) - v) < 5 * v * math.sqrt(2 / (n - 1))

    def predicted(claim: sp.Expr, phi: sp.Expr) -> float:  # phi(x) + h L phi(x) at x0
        lphi = _generator_1d(claim, phi, -beta * d.xi / 2, sp.sqrt(beta))
        return float((phi + h * lphi).subs(d.xi, x0))

    for phi, exact in [(d.xi**2, m**2 + v), (d.xi**3, m**3 + 3 * m * v)]:
        assert abs(exact - predicted(d.generator.claim["generator"], phi)) < 3 * h**2
        for mutant in d.generator.mutants:
            assert abs(exact - predicted(mutant.claim["generator"], phi)) > 0.2 * h, mutant.name


def test_euler_maruyama_moments_closed_form() -> None:
    """The chain's variance for constant beta: v_N = beta h (1 - r^N) / (1 - r), r = (1 - beta h/2)^2
    (exercise ex-sde-em-bias), and the mean (1 - beta h/2)^N m_0; float64 rounding over 400 steps."""
    beta, h, N, m0 = 3.0, 0.01, 400, 0.7
    m, v = euler_maruyama_moments(lambda t: -beta / 2, lambda t: beta, m0, 0.0, [k * h for k in range(N + 1)])
    r = (1 - beta * h / 2) ** 2
    assert m == pytest.approx(m0 * (1 - beta * h / 2) ** N, rel=1e-12)
    assert v == pytest.approx(beta * h * (1 - r**N) / (1 - r), rel=1e-12)
    with pytest.raises(ValueError, match="times"):
        euler_maruyama_moments(lambda t: 0.0, lambda t: 1.0, 0.0, 0.0, [0.0, 0.0])
    with pytest.raises(ValueError, match="variance"):
        euler_maruyama_moments(lambda t: 0.0, lambda t: 1.0, 0.0, -1.0, [0.0, 1.0])


# --- DDPM as a discretisation -------------------------------------------------------------------

@pytest.mark.validates("sde.ddpm_limit")
@pytest.mark.parametrize("N", [50, 1000])
def test_ddpm_schedule_is_beta_at_the_right_endpoint_times_h(N: int) -> None:
    """betas[i] = beta(t_i) h with t_i = i h, i = 1..N: the rate at the right endpoint of step i.

    Recomputed from the linear rate in plain Python (float64: a few ulps). The left endpoint beta(t_{i-1}) h
    or the midpoint differs by (beta_max - beta_min) h^2 / 2 or more, relative 5e-3 or more at N = 1000.
    """
    beta_min, beta_max, T = 0.1, 20.0, 1.0
    sched = VPSDE(beta_min, beta_max, T).ddpm_schedule(N)
    h = T / N
    want = np.array([(beta_min + (beta_max - beta_min) * i * h / T) * h for i in range(1, N + 1)])
    got = sched.betas[1:].numpy()
    assert got.shape == (N,)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    left = np.array([(beta_min + (beta_max - beta_min) * (i - 1) * h / T) * h for i in range(1, N + 1)])
    assert np.abs(got - left).min() > 0.5 * (beta_max - beta_min) * h**2  # the comparison can tell them apart


@pytest.mark.validates("sde.ddpm_limit")
def test_ddpm_schedule_discretises_the_vp_sde() -> None:
    sde = VPSDE(0.1, 20.0)
    errors = []
    for N in (100, 1000):
        sched = sde.ddpm_schedule(N)
        t = torch.arange(N + 1, dtype=torch.float64) / N
        errors.append(float((sched.alphas_cumprod - sde.marginal_scale(t) ** 2).abs().max()))
        u = sched.betas[1:].numpy()  # beta_i = beta(t_i) h
        coef = d.ddpm_limit.claim["mean_coef"].xreplace({d.BETA(d.t_prev): d.beta})
        em = _lambdify(coef, d.beta, d.h)(u, 1.0)  # beta h with h folded in
        gap = np.sqrt(1 - u) - em
        # sqrt(1 - u) = 1 - u/2 - u^2/8 - u^3/16 - ...: gap / u^2 = -1/8 (1 + u/2 + ...), so within a
        # relative u_max of -1/8 for u <= 0.2; cancellation in the gap costs ~1e-16 / u_min^2 <= 1e-8.
        np.testing.assert_allclose(gap / u**2, -1 / 8, rtol=u.max())
    # the cumulative product converges to exp(-B(t)) at first order: 10x more steps, ~10x less error
    assert 7 < errors[0] / errors[1] < 13
    assert errors[1] < 5e-3


# --- reverse-time sampling on the oracle ---------------------------------------------------------

N_SAMPLES = 4000  # per sampler test: enough for mode_check to see a within-mode variance off by ~20%
N_POOLED = 1000   # the energy distance uses the first 1000 (its floor costs O(n^2) per repetition)


@functools.lru_cache(maxsize=4)
def _floor_cached(n: int, device: str) -> float:
    data = _data(torch.device(device))
    gen = torch.Generator(device=device).manual_seed(99)
    return sample_floor(lambda m: data.sample(m, generator=gen), n, reps=20).threshold()


def _floor(data: GaussianMixture, n: int, device: torch.device) -> float:
    """Threshold of the finite-sample floor of ``_data`` (mean + 4 sd of 20 data-vs-data distances)."""
    return _floor_cached(n, str(device))


def _modes(x: torch.Tensor, data: GaussianMixture, gen: torch.Generator):
    """Per-mode weights and within-mode variances against a reference 5x larger than the sample (which
    shrinks the standard error of the comparison by a factor 0.77 against an equal-size reference)."""
    return mode_check(x, data, reference=data.sample(5 * x.shape[0], generator=gen))


def _moments_match(x: torch.Tensor, data: GaussianMixture) -> None:
    n = x.shape[0]
    cov = data.covariance
    se_mean = (torch.diagonal(cov) / n).sqrt()
    assert (x.mean(0) - data.mean).abs().le(5 * se_mean).all()  # five standard errors
    # sd of a sample covariance entry <= sqrt(2) * max variance / sqrt(n) for these light-tailed mixtures
    assert (torch.cov(x.T) - cov).abs().max() < 5 * math.sqrt(2) * float(torch.diagonal(cov).max()) / math.sqrt(n) * 2


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(0.01, 20.0)], ids=["vp", "ve"])
@pytest.mark.validates("sde.reverse")
def test_reverse_sde_on_oracle_reproduces_data(device: torch.device, sde) -> None:
    data = _data(device)
    n = N_SAMPLES
    gen = torch.Generator(device=device).manual_seed(5)
    out = reverse_sde_sample(sde, oracle_score(MixtureOracle(data), sde), n, 2, steps=200, generator=gen,
                             device=device)
    assert out.nfe == 200
    _moments_match(out.x, data)
    distance = float(energy_distance(out.x[:N_POOLED], data.sample(N_POOLED, generator=gen)))
    assert distance < _floor(data, N_POOLED, device)
    modes = _modes(out.x, data, gen)
    assert modes.passed(k=4), modes.worst()  # every weight and within-mode variance within 4 standard errors


@pytest.mark.validates("sde.reverse")
def test_reverse_sde_with_probability_flow_drift_fails(device: torch.device) -> None:
    """The mutant drift f - g^2/2 score *with* noise does not reproduce the data: the test has teeth."""
    data, sde, n = _data(device), VPSDE(), N_SAMPLES
    gen = torch.Generator(device=device).manual_seed(5)
    exact = oracle_score(MixtureOracle(data), sde)
    out = reverse_sde_sample(sde, lambda x, t: exact(x, t) / 2, n, 2, steps=200, generator=gen, device=device)
    distance = float(energy_distance(out.x[:N_POOLED], data.sample(N_POOLED, generator=gen)))
    assert distance > 3 * _floor(data, N_POOLED, device)
    assert not _modes(out.x, data, gen).passed(k=4)


@pytest.mark.validates("sde.reverse", "sde.langevin.stationary")
def test_predictor_corrector_on_oracle_reproduces_data(device: torch.device) -> None:
    data, sde, n = _data(device), VESDE(0.01, 20.0), N_SAMPLES
    gen = torch.Generator(device=device).manual_seed(6)
    out = predictor_corrector_sample(sde, oracle_score(MixtureOracle(data), sde), n, 2, steps=100,
                                     corrector_steps=1, snr=0.1, generator=gen, device=device)
    assert out.nfe == 100 + 99  # no corrector after the last (denoising) predictor step
    _moments_match(out.x, data)
    assert float(energy_distance(out.x[:N_POOLED], data.sample(N_POOLED, generator=gen))) < _floor(data, N_POOLED, device)
    modes = _modes(out.x, data, gen)
    assert modes.passed(k=4), modes.worst()


@pytest.mark.validates("sde.langevin.stationary")
@pytest.mark.parametrize("score_factor", [1.0, 0.5])
def test_langevin_corrector_targets_the_score_density(device: torch.device, score_factor: float) -> None:
    """Langevin steps started at the target N(0, 1) keep it; with half the score they drift to
    p^(1/2) = N(0, 2), the law that the mutant ``half_drift`` samples."""
    gen = torch.Generator(device=device).manual_seed(7)
    n, snr = 20_000, 0.15
    x = torch.randn(n, 1, generator=gen, device=device, dtype=torch.float64)
    for _ in range(300):
        x = langevin_corrector(x, 0.0, lambda y, t: -score_factor * y, snr=snr, generator=gen)
    want_var = 1 / score_factor
    # At stationarity the step is eps = 2 snr^2 (E|z| / E|s|)^2 = 2 snr^2 / (c^2 var) = 2 snr^2 / c with
    # c = score_factor, and the unadjusted chain x - eps c x + sqrt(2 eps) z has variance
    # 2 / (c (2 - eps c)) = want_var (1 + snr^2 + ...): a bias of snr^2 = 2.25%. Plus five standard
    # errors of the sample variance, var sqrt(2 / n). 300 steps of ~0.045 relax the variance by e^-13.
    assert abs(float(x.var()) - want_var * (1 + snr**2)) < 5 * want_var * math.sqrt(2 / n) + 0.005 * want_var
    assert abs(float(x.mean())) < 5 * math.sqrt(want_var / n)


# --- bad input -----------------------------------------------------------------------------------

def test_bad_input() -> None:
    for make, match in [(lambda: VPSDE(beta_min=0.0), "beta_min"), (lambda: VPSDE(1.0, 0.5), "beta_max"),
                        (lambda: VESDE(1.0, 1.0), "sigma_max"), (lambda: VESDE(-1.0, 2.0), "sigma_min"),
                        (lambda: VPSDE(T=0), "T must")]:
        with pytest.raises(ValueError, match=match):
            make()
    sde = VPSDE()
    for t in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="t must lie"):
            sde.marginal_std(t)
    with pytest.raises(ValueError, match="t must lie"):
        VESDE().diffusion(torch.tensor([0.5, 2.0]))
    with pytest.raises(ValueError, match="N must exceed"):
        sde.ddpm_schedule(10)
    with pytest.raises(ValueError, match="x must be"):
        euler_maruyama(sde.drift, sde.diffusion, torch.zeros(3), [0.0, 1.0])
    with pytest.raises(ValueError, match="steps"):
        reverse_sde_sample(sde, lambda x, t: x, 4, 2, steps=0)
    with pytest.raises(ValueError, match="eps"):
        reverse_sde_sample(sde, lambda x, t: x, 4, 2, eps=1.0)
    with pytest.raises(TypeError, match="sde"):
        oracle_score(MixtureOracle(_data(torch.device("cpu"))), "vp")
    with pytest.raises(ValueError, match="snr"):
        langevin_corrector(torch.zeros(2, 1), 0.0, lambda y, t: y, snr=0.0)


@pytest.mark.parametrize("make", [lambda: VPSDE(0.1, 20.0), lambda: VESDE(0.01, 10.0), lambda: SubVPSDE(0.1, 20.0)],
                         ids=["vp", "ve", "subvp"])
def test_path_sde_coefficients_carry_the_kernel(make) -> None:
    """The SDEs built on gencode.paths: the moment recursion of dx = f x dt + g dW (one coordinate, exact for the
    Euler-Maruyama chain) started at (m0, 0) approaches the kernel's moments (alpha m0, sigma^2) at t = 0.7 as the
    grid is refined. The chain's bias is O(h): with n = 20000 steps it is at most 2.5e-4 relative (measured;
    it halves when h halves), inside the 1e-3 tolerance, while a wrong g^2 (the VP one on the sub-VP path)
    misses the variance by 7e-3."""
    sde = make()
    m0, t_end, n = 1.3, 0.7, 20_000
    grid = [t_end * k / n for k in range(n + 1)]
    tt = torch.tensor(grid, dtype=torch.float64)  # the coefficients on the grid in one vectorised call each
    coef = dict(zip(grid, sde.path.drift_coef(tt).tolist())).__getitem__
    g2 = dict(zip(grid, (sde.diffusion(tt) ** 2).tolist())).__getitem__
    m, v = euler_maruyama_moments(coef, g2, m0, 0.0, grid)
    assert m == pytest.approx(m0 * float(sde.marginal_scale(t_end)), rel=1e-3)
    assert v == pytest.approx(float(sde.marginal_std(t_end)) ** 2, rel=1e-3)
    x = torch.zeros(3, 2, dtype=torch.float64)
    torch.testing.assert_close(sde.drift(x + 1, 0.3), float(sde.path.drift_coef(0.3)) * (x + 1), rtol=RTOL, atol=0)
