"""``gencode.diffusion`` against the registered DDPM identities (``derivations.diffusion``).

The SymPy claims are turned into functions with ``lambdify`` and compared with the schedule's
buffers and methods at random points in float64.  Relative tolerance 1e-12: the quantities are
products of at most 1000 factors (the cumulative product), each rounded to 2^-53 ~ 1.1e-16, so
their relative error is below 1000 * 1.1e-16 ~ 1.1e-13; 1e-12 leaves a factor 10 of headroom
while a wrong coefficient (every mutant below) is off by more than 1e-4.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch

from derivations import diffusion as d
from gencode.diffusion import NoiseSchedule, cosine_beta_schedule, linear_beta_schedule

RTOL = 1e-12  # see the module docstring
T = 1000


def _fn(expr: sp.Expr):
    """The expression as a numpy function of the schedule symbols and the variables."""
    args = (d.alpha_t, d.beta_t, d.alphabar_t, d.alphabar_tm1, d.x0, d.xt, d.eps)
    return sp.lambdify(args, expr, "numpy")


def _independent_linear_schedule() -> dict[str, np.ndarray]:
    """The linear schedule 1e-4 .. 0.02, T = 1000, recomputed with plain Python floats."""
    betas = [1e-4 + (0.02 - 1e-4) * i / (T - 1) for i in range(T)]
    abar, prod = [1.0], 1.0
    for b in betas:
        prod *= 1.0 - b
        abar.append(prod)
    beta = np.array([0.0] + betas)
    return {"beta": beta, "alpha": 1 - beta, "abar": np.array(abar)}


@pytest.fixture
def sched(device: torch.device) -> NoiseSchedule:
    return NoiseSchedule.linear(T).to(device)


@pytest.fixture
def batch(device: torch.device, generator: torch.Generator) -> dict[str, torch.Tensor]:
    n = 256
    t = torch.randint(2, T + 1, (n,), generator=generator, device=device)
    x0 = torch.randn(n, generator=generator, device=device, dtype=torch.float64)
    eps = torch.randn(n, generator=generator, device=device, dtype=torch.float64)
    xt = torch.randn(n, generator=generator, device=device, dtype=torch.float64)
    return {"t": t, "x0": x0, "eps": eps, "xt": xt}


def _schedule_args(s: dict[str, np.ndarray], t: np.ndarray) -> tuple[np.ndarray, ...]:
    return s["alpha"][t], s["beta"][t], s["abar"][t], s["abar"][t - 1]


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def test_schedule_buffers_match_independent_recomputation(sched: NoiseSchedule) -> None:
    s = _independent_linear_schedule()
    np.testing.assert_allclose(_np(sched.alphas_cumprod), s["abar"], rtol=RTOL)
    np.testing.assert_allclose(_np(sched.betas), s["beta"], rtol=RTOL, atol=1e-18)


@pytest.mark.validates("ddpm.forward.marginal")
def test_marginal_matches_registry(sched: NoiseSchedule, batch: dict) -> None:
    s = _independent_linear_schedule()
    t = _np(batch["t"])
    args = (*_schedule_args(s, t), _np(batch["x0"]), 0.0, 0.0)
    q = sched.q_mean_variance(batch["x0"], batch["t"])
    np.testing.assert_allclose(_np(q.mean), _fn(d.marginal.claim["mean"])(*args), rtol=RTOL)
    np.testing.assert_allclose(_np(q.variance), _fn(d.marginal.claim["variance"])(*args), rtol=RTOL)


def _posterior_errors(sched: NoiseSchedule, batch: dict, claim: dict) -> tuple[float, float]:
    """Largest relative errors of the schedule's posterior against a claim of ``ddpm.posterior``.

    The schedule quantities come from the independent recomputation, so a wrong buffer in the
    schedule cannot hide behind itself.
    """
    s = _independent_linear_schedule()
    t = _np(batch["t"])
    args = (*_schedule_args(s, t), _np(batch["x0"]), _np(batch["xt"]), 0.0)
    post = sched.q_posterior(batch["x0"], batch["xt"], batch["t"])
    want_mean = _fn(claim["mean"])(*args)
    want_var = _fn(claim["variance"])(*args) * np.ones_like(want_mean)
    err_mean = np.max(np.abs(_np(post.mean) - want_mean) / (np.abs(want_mean) + 1e-300))
    err_var = np.max(np.abs(_np(post.variance) - want_var) / want_var)
    return float(err_mean), float(err_var)


@pytest.mark.validates("ddpm.posterior")
def test_posterior_matches_registry(sched: NoiseSchedule, batch: dict) -> None:
    err_mean, err_var = _posterior_errors(sched, batch, d.posterior.claim)
    assert err_mean < RTOL and err_var < RTOL


@pytest.mark.validates("ddpm.posterior")
@pytest.mark.parametrize("mutant", d.posterior.mutants, ids=lambda m: m.name)
def test_posterior_comparison_rejects_every_mutant(sched: NoiseSchedule, batch: dict, mutant) -> None:
    # The numeric comparison has teeth: each wrong claim is far outside the tolerance.
    errors = _posterior_errors(sched, batch, d.posterior.claim | mutant.claim)
    assert max(errors) > 1e-4


@pytest.mark.validates("ddpm.posterior")
@pytest.mark.parametrize("buffer", ["posterior_mean_coef_x0", "posterior_mean_coef_xt", "posterior_variance"])
def test_posterior_comparison_rejects_a_broken_coefficient(sched: NoiseSchedule, batch: dict,
                                                           buffer: str) -> None:
    # Breaking one coefficient in gencode by one part in a million makes the comparison fail.
    getattr(sched, buffer).mul_(1 + 1e-6)
    assert max(_posterior_errors(sched, batch, d.posterior.claim)) > RTOL


@pytest.mark.validates("ddpm.posterior")
def test_posterior_variance_for_ddpm_linear_schedule(sched: NoiseSchedule) -> None:
    # Independent recomputation of beta_tilde for the linear schedule 1e-4 .. 0.02, T = 1000.
    s = _independent_linear_schedule()
    t = np.arange(1, T + 1)
    want = (1 - s["abar"][t - 1]) / (1 - s["abar"][t]) * s["beta"][t]
    np.testing.assert_allclose(_np(sched.posterior_variance[1:]), want, rtol=RTOL)
    assert float(sched.posterior_variance[1]) == 0.0  # q(x_0 | x_1, x_0) is a point mass
    registry = _fn(d.posterior.claim["variance"])(*_schedule_args(s, t), 0, 0, 0)
    np.testing.assert_allclose(want, registry, rtol=RTOL)


@pytest.mark.validates("ddpm.posterior.mean_eps")
def test_posterior_mean_from_noise_matches_registry(sched: NoiseSchedule, batch: dict) -> None:
    s = _independent_linear_schedule()
    t = _np(batch["t"])
    args = (*_schedule_args(s, t), 0.0, _np(batch["xt"]), _np(batch["eps"]))
    got = sched.posterior_mean_from_noise(batch["xt"], batch["eps"], batch["t"])
    np.testing.assert_allclose(_np(got), _fn(d.mean_eps.claim["mean"])(*args), rtol=RTOL, atol=1e-13)


@pytest.mark.validates("ddpm.posterior.mean_eps")
def test_two_forms_of_posterior_mean_agree(sched: NoiseSchedule, batch: dict) -> None:
    xt = sched.q_sample(batch["x0"], batch["t"], noise=batch["eps"])
    via_x0 = sched.q_posterior(batch["x0"], xt, batch["t"]).mean
    via_eps = sched.posterior_mean_from_noise(xt, batch["eps"], batch["t"])
    # |x| ~ 5 at most; both forms round differently: 1e-12 absolute is ~1e4 ulps of slack.
    torch.testing.assert_close(via_x0, via_eps, rtol=0, atol=1e-12)
    torch.testing.assert_close(sched.predict_x0_from_noise(xt, batch["eps"], batch["t"]), batch["x0"],
                               rtol=0, atol=1e-9)  # division by sqrt(alphabar_T) ~ 6e-3 amplifies


@pytest.mark.validates("ddpm.forward.score")
def test_score_matches_registry_and_autograd(sched: NoiseSchedule, batch: dict) -> None:
    s = _independent_linear_schedule()
    t = _np(batch["t"])
    args = (*_schedule_args(s, t), 0.0, 0.0, _np(batch["eps"]))
    got = sched.score_from_noise(batch["eps"], batch["t"])
    np.testing.assert_allclose(_np(got), _fn(d.score.claim["score"])(*args), rtol=RTOL)
    xt = sched.q_sample(batch["x0"], batch["t"], noise=batch["eps"]).requires_grad_(True)
    q = sched.q_mean_variance(batch["x0"], batch["t"])
    log_q = torch.distributions.Normal(q.mean, q.std).log_prob(xt).sum()
    (grad,) = torch.autograd.grad(log_q, xt)
    torch.testing.assert_close(grad, got, rtol=1e-10, atol=1e-10)  # float64 autograd
    torch.testing.assert_close(sched.conditional_score(xt.detach(), batch["x0"], batch["t"]), got,
                               rtol=1e-10, atol=1e-10)


@pytest.mark.validates("ddpm.forward.marginal")
@pytest.mark.parametrize("t_steps", [1, 10, 100])
def test_iterated_one_step_chain_has_closed_form_moments(device: torch.device, t_steps: int) -> None:
    """Iterating q(x_s | x_{s-1}) t times gives N(sqrt(abar_t) x_0, 1 - abar_t), by Monte Carlo."""
    sched = NoiseSchedule.cosine(100).to(device)
    gen = torch.Generator(device=device).manual_seed(1)
    n = 200_000
    x0 = torch.tensor([1.5, -0.7], dtype=torch.float64, device=device).expand(n, 2)
    x = x0
    for step in range(1, t_steps + 1):
        x = sched.q_step(x, step, generator=gen)
    q = sched.q_mean_variance(x0[:1], t_steps)
    mean, var = q.mean[0], q.variance[0]
    # Standard errors: sd(mean) = sqrt(var / n); sd(sample variance) = var sqrt(2 / (n - 1)) for a
    # Gaussian.  Five standard errors: a false alarm has probability below 1e-6 per coordinate.
    se_mean = (var / n).sqrt()
    se_var = var * math.sqrt(2 / (n - 1))
    assert ((x.mean(0) - mean).abs() < 5 * se_mean).all()
    assert ((x.var(0) - var).abs() < 5 * se_var).all()


def test_cosine_schedule_follows_its_definition() -> None:
    s, T_ = 0.008, 1000
    f = [math.cos((t / T_ + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T_ + 1)]
    abar = np.array([v / f[0] for v in f])
    sched = NoiseSchedule.cosine(T_, s)
    unclipped = _np(sched.betas[1:]) < 0.999
    np.testing.assert_allclose(_np(sched.alphas_cumprod)[1:][unclipped], abar[1:][unclipped], rtol=1e-10)
    assert (sched.betas[1:] > 0).all() and (sched.betas[1:] < 1).all()


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("betas,match", [
    (torch.tensor([0.1, 0.0]), "open interval"),
    (torch.tensor([0.1, 1.0]), "open interval"),
    (torch.tensor([-0.1, 0.5]), "open interval"),
    (torch.tensor([float("nan")]), "open interval"),
    (torch.ones(2, 2) * 0.1, "1-D"),
    (torch.tensor([1, 2]), "floating"),
])
def test_bad_betas(betas: torch.Tensor, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        NoiseSchedule(betas)


@pytest.mark.parametrize("T_", [0, -3, 2.5, True])
def test_bad_number_of_steps(T_) -> None:
    with pytest.raises(ValueError, match="T must be"):
        linear_beta_schedule(T_)
    with pytest.raises(ValueError, match="T must be"):
        cosine_beta_schedule(T_)


def test_bad_time_and_shapes() -> None:
    sched = NoiseSchedule.linear(10)
    x0 = torch.zeros(4, 3, dtype=torch.float64)
    for t, match in [(0, "t must lie"), (11, "t must lie"), (torch.tensor([0, 1, 2, 3]), "t must lie"),
                     (torch.tensor([1, 2]), "shape"), (torch.tensor([1.0, 2, 3, 4]), "integer"),
                     ("3", "integer")]:
        with pytest.raises((ValueError, TypeError), match=match):
            sched.q_sample(x0, t)
    with pytest.raises(ValueError, match="shapes must match"):
        sched.q_sample(x0, 3, noise=torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="shapes must match"):
        sched.q_posterior(x0, torch.zeros(4, 2, dtype=torch.float64), 3)
    with pytest.raises(ValueError, match="x0 contains NaN"):
        sched.q_sample(torch.full((2, 3), float("nan")), 3)


# === The DDPM model: variational bound, losses, reverse steps, ancestral sampling ==============

from gencode.diffusion import DDPM, ancestral_sample, elbo_terms, oracle_noise_predictor  # noqa: E402
from gencode.distributions import eight_gaussians, mixture_1d  # noqa: E402
from gencode.nets import MLP  # noqa: E402
from gencode.oracle import MixtureOracle  # noqa: E402
from gencode.train import fit  # noqa: E402
from gencode.two_sample import energy_distance, mode_check, sample_floor  # noqa: E402


SHORT = dict(T=100, beta_start=1e-3, beta_end=0.2)
"""A 100-step linear schedule (the betas of DDPM's 1000 steps scaled by 10) ending at
alphabar_T = 2.0e-5, as close to pure noise as DDPM's 4.0e-5: the CPU budget of the sampler tests."""


def _short_schedule(device: torch.device, dtype: torch.dtype = torch.float64) -> NoiseSchedule:
    return NoiseSchedule(linear_beta_schedule(SHORT["T"], SHORT["beta_start"], SHORT["beta_end"],
                                              dtype=dtype)).to(device)


@pytest.mark.validates("ddpm.kl.same_variance")
def test_torch_kl_of_equal_variances_matches_registry(device: torch.device, generator: torch.Generator) -> None:
    m1, m2 = (torch.randn(100, generator=generator, device=device, dtype=torch.float64) for _ in range(2))
    v = torch.rand(100, generator=generator, device=device, dtype=torch.float64) + 0.1
    got = torch.distributions.kl_divergence(torch.distributions.Normal(m1, v.sqrt()),
                                            torch.distributions.Normal(m2, v.sqrt()))
    f = sp.lambdify((d.mu_tilde, d.mu_theta, d.sigma2), d.kl_mean.claim["kl"], "numpy")
    np.testing.assert_allclose(_np(got), f(_np(m1), _np(m2), _np(v)), rtol=1e-12)
    for mutant in d.kl_mean.mutants:  # the comparison has teeth
        g = sp.lambdify((d.mu_tilde, d.mu_theta, d.sigma2), mutant.claim["kl"], "numpy")
        assert np.max(np.abs(_np(got) - g(_np(m1), _np(m2), _np(v)))) > 1e-3


@pytest.mark.validates("ddpm.loss.eps_weight")
@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_elbo_weights_match_registry_and_the_kl(sched: NoiseSchedule, batch: dict, variance: str) -> None:
    s = _independent_linear_schedule()
    t = _np(batch["t"])  # t >= 2
    sigma2 = sched.reverse_variance(variance)
    f = sp.lambdify((d.alpha_t, d.beta_t, d.alphabar_t, d.alphabar_tm1, d.sigma2, d.eps, d.eps_theta),
                    d.loss_eps.claim["loss"], "numpy")
    w = f(*_schedule_args(s, t), _np(sigma2[batch["t"]]), 1.0, 0.0)  # the weight alone
    np.testing.assert_allclose(_np(sched.elbo_weights(variance)[batch["t"]]), w, rtol=RTOL)
    # and the weighted noise error is the KL between the posterior and the model's step
    eps_theta = batch["eps"] + 0.3 * batch["xt"]
    xt = sched.q_sample(batch["x0"], batch["t"], noise=batch["eps"])
    post = sched.q_posterior(batch["x0"], xt, batch["t"])
    model_mean = sched.posterior_mean_from_noise(xt, eps_theta, batch["t"])
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(post.mean, post.std),
                                           torch.distributions.Normal(model_mean, sigma2[batch["t"]].sqrt()))
    const = torch.distributions.kl_divergence(torch.distributions.Normal(post.mean, post.std),
                                              torch.distributions.Normal(post.mean, sigma2[batch["t"]].sqrt()))
    want = sched.elbo_weights(variance)[batch["t"]] * (batch["eps"] - eps_theta) ** 2
    # |KL| <= ~1e6 near t = 2 with beta_tilde; float64 cancellation leaves ~1e-9 relative error
    torch.testing.assert_close(kl - const, want, rtol=1e-8, atol=1e-10)


@pytest.mark.validates("ddpm.loss.dsm")
def test_dsm_loss_is_scaled_noise_regression(device: torch.device, generator: torch.Generator) -> None:
    sched = _short_schedule(device)
    net = MLP(2, 2, hidden=16, depth=1, time_dim=8).to(device=device, dtype=torch.float64)
    model = DDPM(sched, net)
    x0 = torch.randn(64, 2, generator=generator, device=device, dtype=torch.float64)
    torch.manual_seed(3)
    loss = model.loss(x0)
    torch.manual_seed(3)  # the same draws of t and eps, recomputed as denoising score matching
    t = torch.randint(1, sched.T + 1, (64,), device=device)
    eps = torch.randn_like(x0)
    xt = sched.q_sample(x0, t, noise=eps)
    with torch.no_grad():
        eps_theta = model.noise(xt, t)
    s_theta = sched.score_from_noise(eps_theta, t)
    dsm = (s_theta - sched.conditional_score(xt, x0, t)).square().sum(-1)
    one_minus = sched.one_minus_alphas_cumprod[t]
    f = sp.lambdify((d.alphabar_t, d.eps, d.eps_theta), d.dsm.claim["loss"], "numpy")
    registry = f(_np(sched.alphas_cumprod[t])[:, None], _np(eps), _np(eps_theta)).sum(-1)
    np.testing.assert_allclose(_np(dsm), registry, rtol=1e-9)  # 1/(1 - abar_1) ~ 1e3 amplifies rounding
    torch.testing.assert_close(loss.detach(), (one_minus * dsm).mean(), rtol=1e-10, atol=0)


@pytest.mark.validates("ddpm.reverse.euler_maruyama")
def test_mean_from_score_matches_noise_form_and_registry(device: torch.device, generator: torch.Generator) -> None:
    sched = _short_schedule(device)
    oracle = MixtureOracle(eight_gaussians(dtype=torch.float64, device=device))
    pred = oracle_noise_predictor(sched, oracle)
    x = 2 * torch.randn(200, 2, generator=generator, device=device, dtype=torch.float64)
    for t in (1, 30, 100):
        a = float(sched.alphas_cumprod[t])
        score = oracle.score(x, a**0.5, (1 - a) ** 0.5)
        got = sched.mean_from_score(x, score, t)
        torch.testing.assert_close(got, sched.posterior_mean_from_noise(x, pred(x, t), t), rtol=1e-12, atol=1e-12)
        f = sp.lambdify((d.xt, d.beta_t, d.alpha_t, d.s_), d.mean_score.claim["mean"], "numpy")
        np.testing.assert_allclose(_np(got), f(_np(x), float(sched.betas[t]), float(sched.alphas[t]), _np(score)),
                                   rtol=1e-12)


# A schedule whose steps differ a lot, so that an index slip (sigma_{t-1} for sigma_t) shows.
UNEVEN = (0.05, 0.2, 0.45)


def _zero_predictor(x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


@pytest.mark.validates("ddpm.reverse.euler_maruyama")
@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_one_reverse_step_has_the_scheduled_noise_scale(device: torch.device, variance: str) -> None:
    """From x_T = 0 with a zero noise predictor the mean of the step is 0, so x_{T-1} = sigma_T z:
    its variance is sigma_T^2 (beta_T or beta_tilde_T), coordinate by coordinate.

    Broken on purpose to see it fail: sigma[t - 1] for sigma[t] (variance 0.2 or 0.11 for 0.45 or
    0.33), the variance for the standard deviation (0.2 for 0.45), or sqrt(2 beta_t) (a Langevin
    step's noise, 0.9): each is off by more than 20 standard errors.
    """
    sched = NoiseSchedule(torch.tensor(UNEVEN, dtype=torch.float64)).to(device)
    gen = torch.Generator(device=device).manual_seed(11)
    n, T = 40_000, sched.T
    x_T = torch.zeros(n, 2, device=device, dtype=torch.float64)
    _, path = ancestral_sample(sched, _zero_predictor, x_T, variance, gen, trajectory_steps=(T - 1,))
    want = float(sched.reverse_variance(variance)[T])
    got = path[T - 1].var(0)  # (2,)
    se = want * math.sqrt(2 / (n - 1))  # standard error of a Gaussian sample variance
    assert float((got - want).abs().max()) < 5 * se, (got.tolist(), want)
    assert float(path[T - 1].mean(0).abs().max()) < 5 * math.sqrt(want / n)


@pytest.mark.validates("ddpm.posterior.mean_eps")
def test_last_ancestral_step_returns_the_mean_without_noise(device: torch.device, generator: torch.Generator) -> None:
    """x_0 = mu_theta(x_1, 1) exactly: no noise is added at the last step (Algorithm 2 of DDPM).

    Broken on purpose to see it fail: adding sigma_1 z at t = 1 (sigma_1 = sqrt(beta_1) ~ 0.22)
    moves every sample by ~0.2, far above float64 rounding.
    """
    sched = NoiseSchedule(torch.tensor(UNEVEN, dtype=torch.float64)).to(device)
    pred = lambda x, t: 0.3 * x + 0.1 * t  # any predictor will do; this one depends on x and t
    x_T = torch.randn(500, 2, generator=generator, device=device, dtype=torch.float64)
    x0, path = ancestral_sample(sched, pred, x_T, "beta", generator, trajectory_steps=(2, 1))
    x1, x2 = path[1], path[2]
    torch.testing.assert_close(x0, sched.posterior_mean_from_noise(x1, pred(x1, 1), 1), rtol=1e-14, atol=1e-14)
    # while the step before did add noise of standard deviation sqrt(beta_2) ~ 0.45
    noise = x1 - sched.posterior_mean_from_noise(x2, pred(x2, 2), 2)
    assert 0.3 < float(noise.std()) / math.sqrt(UNEVEN[1]) < 1.3


@pytest.mark.validates("ddpm.elbo.decomposition")
def test_prior_term_is_the_closed_form_kl(device: torch.device, generator: torch.Generator) -> None:
    """L_T = KL(N(sqrt(abar_T) x_0, 1 - abar_T) || N(0, 1)), summed over coordinates, on a schedule
    where abar_T = 0.29 is far from negligible (on DDPM's schedules L_T ~ 1e-5 hides any error).

    The closed form is written here independently, per coordinate:
    ((1 - abar) + abar x^2 - 1 - log(1 - abar)) / 2.  Broken on purpose to see it fail: L_T at
    step T - 1 (abar = 0.52: off by ~0.3 nats), or the standard deviation where the variance
    belongs (off by ~0.2 nats); both far above float64 rounding.
    """
    sched = NoiseSchedule(torch.tensor(UNEVEN, dtype=torch.float64)).to(device)
    abar = float(sched.alphas_cumprod[-1])
    assert 0.2 < abar < 0.5
    x0 = 1.5 * torch.randn(300, 3, generator=generator, device=device, dtype=torch.float64)
    terms = elbo_terms(sched, _zero_predictor, x0, "beta", generator=generator)
    want = 0.5 * ((1 - abar) + abar * x0.square() - 1 - math.log(1 - abar)).sum(-1)
    torch.testing.assert_close(terms.prior, want, rtol=1e-12, atol=1e-14)
    f = sp.lambdify((d.x0, d.alphabar_T), d.kl_normal(sp.sqrt(d.alphabar_T) * d.x0, 1 - d.alphabar_T, 0, 1)
                    .replace(d.HalfLog, lambda v: sp.log(v) / 2), "numpy")
    np.testing.assert_allclose(_np(terms.prior), f(_np(x0), abar).sum(-1), rtol=1e-12)


@pytest.mark.validates("ddpm.reverse.variance_extremes")
def test_reverse_variance_of_standard_normal_data_is_beta(device: torch.device) -> None:
    """For N(0, 1) data, regress x_{t-1} on x_t over forward pairs: the residual variance is beta_t."""
    sched = _short_schedule(device)
    gen = torch.Generator(device=device).manual_seed(4)
    n, t = 200_000, 60
    x_prev = sched.q_sample(torch.randn(n, 1, generator=gen, device=device, dtype=torch.float64), t - 1,
                            generator=gen)
    x_t = sched.q_step(x_prev, t, generator=gen)
    slope = (x_prev * x_t).mean() / x_t.square().mean()
    resid = (x_prev - slope * x_t).var()
    beta = sched.reverse_variance("beta")[t]
    # sd of a sample variance ~ var * sqrt(2 / n) ~ 3e-3 relative; 5 standard errors
    assert abs(float(resid / beta) - 1) < 5 * math.sqrt(2 / n)
    assert abs(float(slope) - math.sqrt(float(sched.alphas[t]))) < 5 / math.sqrt(n)
    f = sp.lambdify((d.alpha_t, d.beta_t, d.alphabar_t, d.alphabar_tm1), d.extremes.claim["point"], "numpy")
    s = _independent_linear_schedule()
    tt = np.arange(2, T + 1)
    np.testing.assert_allclose(_np(NoiseSchedule.linear(T).reverse_variance("beta_tilde")[2:]),
                               f(*_schedule_args(s, tt)), rtol=RTOL)


def test_x0_and_v_parameterisations_round_trip(sched: NoiseSchedule, batch: dict) -> None:
    x0, eps, t = batch["x0"][:, None], batch["eps"][:, None], batch["t"]
    xt = sched.q_sample(x0, t, noise=eps)
    torch.testing.assert_close(sched.noise_from_x0(xt, x0, t), eps, rtol=0, atol=1e-9)
    v = sched.v_from_noise(xt, eps, t)
    abar = sched.alphas_cumprod[t][:, None]
    torch.testing.assert_close(v, abar.sqrt() * eps - (1 - abar).sqrt() * x0, rtol=0, atol=1e-8)
    torch.testing.assert_close(sched.noise_from_v(xt, v, t), eps, rtol=0, atol=1e-8)


def _path_log_ratio_mc(sched: NoiseSchedule, pred, x0: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """-log p(x_{0:T}) / q(x_{1:T} | x_0) along one forward path per sample, summed step by step."""
    Normal = torch.distributions.Normal
    x, total = x0, torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
    path = [x0]
    for t in range(1, sched.T + 1):
        x_new = sched.q_step(x, t, generator=gen)
        total -= Normal(sched.alphas[t].sqrt() * x, sched.betas[t].sqrt()).log_prob(x_new).sum(-1)
        path.append(x_new)
        x = x_new
    total += Normal(0.0, 1.0).log_prob(path[-1]).sum(-1)
    sigma = sched.reverse_variance("beta").sqrt()
    for t in range(2, sched.T + 1):
        mean = sched.posterior_mean_from_noise(path[t], pred(path[t], t), t)
        total += Normal(mean, sigma[t]).log_prob(path[t - 1]).sum(-1)
    mean = sched.posterior_mean_from_noise(path[1], pred(path[1], 1), 1)
    total += Normal(mean, sched.betas[1].sqrt()).log_prob(x0).sum(-1)
    return -total


@pytest.mark.validates("ddpm.elbo.decomposition")
def test_elbo_terms_equal_the_path_average(device: torch.device) -> None:
    """L_T + sum L_{t-1} + L_0 (closed-form KLs) against -E log p(x_{0:T})/q(x_{1:T}|x_0) (paths)."""
    data = mixture_1d([0.3, 0.7], [-1.5, 1.0], [0.4, 0.6], dtype=torch.float64, device=device)
    sched = NoiseSchedule(linear_beta_schedule(20, 5e-3, 0.5)).to(device)
    pred = oracle_noise_predictor(sched, MixtureOracle(data))
    gen = torch.Generator(device=device).manual_seed(5)
    x0 = data.sample(4000, generator=gen)
    terms = elbo_terms(sched, pred, x0, "beta", generator=gen)
    paths = _path_log_ratio_mc(sched, pred, x0, gen)
    diff = terms.total - paths  # both unbiased for the same per-x_0 bound: mean 0
    se = float(diff.std()) / math.sqrt(x0.shape[0])
    assert abs(float(diff.mean())) < 5 * se  # five standard errors
    assert se < 0.1  # and the test is sharp enough to notice a missing term (L_T alone ~ 1e-3, L_0 ~ -0.5)
    assert abs(float(terms.reconstruction.mean())) > 10 * se


@pytest.mark.slow
@pytest.mark.validates("ddpm.elbo.decomposition")
def test_oracle_elbo_approaches_the_true_nll(device: torch.device) -> None:
    data = mixture_1d([0.3, 0.7], [-1.5, 1.0], [0.4, 0.6], dtype=torch.float64, device=device)
    sched = _short_schedule(device)
    pred = oracle_noise_predictor(sched, MixtureOracle(data))
    gen = torch.Generator(device=device).manual_seed(6)
    x0 = data.sample(1000, generator=gen)
    gap = elbo_terms(sched, pred, x0, "beta", generator=gen).total + data.log_prob(x0)
    se = float(gap.std()) / math.sqrt(x0.shape[0])
    # The bound is above the NLL (up to Monte Carlo error) and, with the exact noise predictor and
    # 100 steps, within 0.15 nats of it (measured: 0.05 +- 0.03 nats).
    assert float(gap.mean()) > -4 * se
    assert float(gap.mean()) < 0.15 + 4 * se


@pytest.mark.slow
@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ancestral_sampler_on_the_oracle_reproduces_the_data(device: torch.device, variance: str) -> None:
    """The exact noise predictor: pooled distance under the floor, and mode by mode, weights and
    within-mode variances within four standard errors of fresh data (gencode.two_sample.mode_check).

    300 steps (betas 3e-4 .. 0.06, alphabar_T = 3.6e-5): with the 100-step schedule the
    discretisation biases the within-mode variance (modes of standard deviation 0.1) by +20%
    (beta) and -35% (beta_tilde), measured on 4000 samples; 300 steps bring it to +5% and -17%,
    below what 2000 samples resolve at four standard errors (measured worst |z| 1.7 and 3.2 on
    4000 samples, so about 1.2 and 2.3 on 2000).
    """
    data = eight_gaussians(dtype=torch.float64, device=device)
    sched = NoiseSchedule(linear_beta_schedule(300, 3e-4, 0.06)).to(device)
    gen = torch.Generator(device=device).manual_seed(7)
    n = 2000
    x = ancestral_sample(sched, oracle_noise_predictor(sched, MixtureOracle(data)),
                         torch.randn(n, 2, generator=gen, device=device, dtype=torch.float64), variance, gen)
    floor = sample_floor(lambda m: data.sample(m, generator=gen), n)
    assert float(energy_distance(x, data.sample(n, generator=gen))) < floor.threshold()
    modes = mode_check(x, data, generator=gen)
    assert modes.passed(k=4), modes.worst()
    # moments: mean 0 and covariance 2.01 I; standard errors sqrt(2/n) ~ 0.03 and 2 sqrt(2/n) ~ 0.06
    assert float(x.mean(0).abs().max()) < 5 * math.sqrt(2.01 / n)
    assert float((torch.cov(x.T) - data.covariance).abs().max()) < 5 * 2.01 * math.sqrt(2 / n)


def _trained_ddpm(device: torch.device) -> DDPM:
    """The chapter's model and budget (book/ddpm.md): 6000 steps of a 128-wide MLP, EMA weights,
    half of the training steps drawn from the ten least noisy ones."""
    from gencode.diffusion import early_step_probs

    data = eight_gaussians(dtype=torch.float32, device=device)
    sched = _short_schedule(device, torch.float32)
    torch.manual_seed(0)
    model = DDPM(sched, MLP(2, 2, hidden=128, depth=2, time_dim=16), step_probs=early_step_probs(sched.T)).to(device)
    fit(model.loss, model, data.sample, steps=6000, batch_size=512, lr=5e-3, lr_schedule="cosine", ema_decay=0.998)
    return model


@pytest.mark.slow
def test_trained_noise_predictor_approaches_the_oracle(device: torch.device) -> None:
    data = eight_gaussians(dtype=torch.float32, device=device)
    model = _trained_ddpm(device)
    sched = model.schedule
    pred = oracle_noise_predictor(sched, MixtureOracle(data.to(dtype=torch.float64)))
    gen = torch.Generator(device=device).manual_seed(8)
    errors, scales = [], []
    for t in (5, 20, 50, 90):
        xt = sched.q_sample(data.sample(1000, generator=gen), t, generator=gen)
        with torch.no_grad():
            eps = model.noise(xt, t)
        best = pred(xt.double(), t).float()
        errors.append(float((eps - best).square().sum(-1).mean()))
        scales.append(float(best.square().sum(-1).mean()))
    # Training budget: 6000 Adam steps of a 128-wide MLP.  At the noisy steps the network is close
    # to the oracle (bound 0.05 of the oracle's mean square); at the least noisy steps the oracle is
    # sharp (modes of width 0.1) and the budget is not enough to match it, so there we only ask for
    # a clearly better-than-zero predictor at t = 20.
    rel = [e / s for e, s in zip(errors, scales)]
    assert rel[2] < 0.05 and rel[3] < 0.05, rel
    assert rel[1] < 0.5, rel
    # Its samples: the pooled energy distance within 1.5 times the floor threshold (the book's goal
    # for a trained sampler), every mode's weight within four standard errors of the data's, and the
    # within-mode variance: measured 1.52 and 1.54 times the data's (batch seeds 0 and 1, 4000
    # samples), against 1.2 to 1.3 times for the oracle with the same 100-step sampler (the
    # discretisation); half the budget gave 1.8 to 1.9 times, and uniform training steps 2.4 to 3.0
    # times, which the bound 1.8 rejects; 0.8 catches a collapsed sampler.
    n = 800
    x = model.sample(n, 2, generator=gen).double()
    data64 = data.to(dtype=torch.float64)
    floor = sample_floor(lambda m: data64.sample(m, generator=gen), n)
    assert float(energy_distance(x, data64.sample(n, generator=gen))) < 1.5 * floor.threshold()
    modes = mode_check(x, data64, reference=data64.sample(4000, generator=gen))
    assert float(modes.weight_z.abs().max()) < 4, modes.weight_z
    ratio = float(modes.variances.mean() / modes.ref_variances.mean())
    assert 0.8 < ratio < 1.8, ratio


def test_ddpm_bad_input(device: torch.device) -> None:
    sched = _short_schedule(device)
    model = DDPM(sched, MLP(2, 2, hidden=8, depth=1, time_dim=4).to(device=device, dtype=torch.float64))
    with pytest.raises(ValueError, match="weighting"):
        model.loss(torch.zeros(4, 2, dtype=torch.float64, device=device), weighting="vlb")
    with pytest.raises(ValueError, match="x0 must have shape"):
        model.loss(torch.zeros(4, dtype=torch.float64, device=device))
    with pytest.raises(ValueError, match="variance"):
        sched.reverse_variance("learned")
    with pytest.raises(TypeError, match="schedule"):
        DDPM("linear", model.net)
    pred = oracle_noise_predictor(sched, MixtureOracle(eight_gaussians(dtype=torch.float64, device=device)))
    with pytest.raises(ValueError, match="one step t"):
        pred(torch.zeros(2, 2, dtype=torch.float64, device=device), torch.tensor([3, 4], device=device))
    with pytest.raises(ValueError, match="t must lie"):
        pred(torch.zeros(2, 2, dtype=torch.float64, device=device), 0)
    with pytest.raises(TypeError, match="oracle"):
        oracle_noise_predictor(sched, "oracle")



@pytest.mark.validates("ddpm.schedule.cosine")
def test_cosine_schedule_snr_is_squared_cotangent() -> None:
    T_ = 200
    sched = NoiseSchedule.cosine(T_, s=0.0)
    t = torch.arange(1, T_)  # t = T is clipped (beta_T = 0.999)
    u = t.double() / T_ * math.pi / 2
    abar = sched.alphas_cumprod[t]
    f_abar = sp.lambdify(d.u, d.cosine.claim["alphabar"], "numpy")
    f_snr = sp.lambdify(d.u, d.cosine.claim["snr"], "numpy")
    np.testing.assert_allclose(_np(abar), f_abar(_np(u)), rtol=1e-10)  # cumprod of 200 factors
    np.testing.assert_allclose(_np(abar / (1 - abar)), f_snr(_np(u)), rtol=1e-8)  # 1/(1-abar) ~ 1e4 amplifies
    bad = sp.lambdify(d.u, d.cosine.mutants[0].claim["alphabar"], "numpy")
    assert np.max(np.abs(_np(abar) - bad(_np(u)))) > 0.1



def test_elbo_weighted_loss_uses_the_registered_weights(device: torch.device, generator: torch.Generator) -> None:
    sched = _short_schedule(device)
    model = DDPM(sched, MLP(2, 2, hidden=16, depth=1, time_dim=8).to(device=device, dtype=torch.float64))
    x0 = torch.randn(64, 2, generator=generator, device=device, dtype=torch.float64)
    torch.manual_seed(11)
    loss = model.loss(x0, weighting="elbo", variance="beta_tilde")
    torch.manual_seed(11)  # the same draws, t from {2, ..., T}
    t = torch.randint(2, sched.T + 1, (64,), device=device)
    eps = torch.randn_like(x0)
    with torch.no_grad():
        err = (eps - model.noise(sched.q_sample(x0, t, noise=eps), t)).square().sum(-1)
    f = sp.lambdify((d.alpha_t, d.beta_t, d.alphabar_t, d.sigma2, d.eps, d.eps_theta), d.loss_eps.claim["loss"])
    w = f(_np(sched.alphas[t]), _np(sched.betas[t]), _np(sched.alphas_cumprod[t]),
          _np(sched.posterior_variance[t]), 1.0, 0.0)
    np.testing.assert_allclose(float(loss.detach()), float((torch.as_tensor(w, device=device) * err).mean()), rtol=1e-10)


def test_early_step_probs_keep_the_elbo_objective(device: torch.device) -> None:
    """Drawing t from early_step_probs: L_simple weighted by p_t, the ELBO-weighted loss unchanged in
    expectation (importance weights 1 / ((T - 1) p_t)).  Two estimates of the ELBO-weighted loss of a
    fixed network, with uniform and with early-step draws, agree within five standard errors; both
    differ from the unweighted-by-importance version (which would overweight the early steps)."""
    from gencode.diffusion import early_step_probs

    data = eight_gaussians(dtype=torch.float64, device=device)
    sched = _short_schedule(device)
    torch.manual_seed(0)
    net = MLP(2, 2, hidden=16, depth=1, time_dim=8).to(device=device, dtype=torch.float64)
    uniform, early = DDPM(sched, net), DDPM(sched, net, step_probs=early_step_probs(sched.T, 0.5, 10))
    gen = torch.Generator(device=device).manual_seed(12)
    x0 = data.sample(512, generator=gen)
    with torch.no_grad():
        a = torch.stack([uniform.loss(x0, "elbo") for _ in range(200)])
        b = torch.stack([early.loss(x0, "elbo") for _ in range(200)])
    se = math.sqrt(float(a.var()) / a.numel() + float(b.var()) / b.numel())
    assert abs(float(a.mean() - b.mean())) < 5 * se, (float(a.mean()), float(b.mean()), se)
    with pytest.raises(ValueError, match="step_probs"):
        DDPM(sched, net, step_probs=torch.ones(sched.T - 1))
    with pytest.raises(ValueError, match="fraction"):
        early_step_probs(10, 1.5)


def test_drawn_steps_are_independent_of_the_data_under_fits_seeding(device: torch.device) -> None:
    """gencode.train.fit seeds the data's generator and torch's global one with the same seed; the
    steps must not inherit the data's random stream.  With torch.multinomial (what a mixture uses
    to pick components) both streams were identical: every point of modes 0-3 got t <= 10 and no
    point of modes 5-7 did.  Now the fraction of early steps is the same in every mode, within five
    binomial standard errors (p = 0.55, about 500 points per mode)."""
    from gencode.diffusion import draw_steps, early_step_probs

    data = eight_gaussians(dtype=torch.float64, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    torch.manual_seed(0)  # as fit does, with the same seed
    x0 = data.sample(4096, generator=gen)
    t, _ = draw_steps(4096, 100, device, early_step_probs(100, 0.5, 10))
    mode = data.responsibilities(x0).argmax(-1)
    for k in range(8):
        frac = float((t[mode == k] <= 10).double().mean())
        n_k = int((mode == k).sum())
        assert abs(frac - 0.55) < 5 * math.sqrt(0.55 * 0.45 / n_k), (k, frac)
