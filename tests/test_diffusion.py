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
