"""Score-matching objectives (``gencode.score_matching``) against the registered identities.

On Gaussian data every objective has a closed form (``derivations.score_matching``), and for a linear
score model ``s(x) = A x + c`` the Jacobian is the constant ``A``; the Monte Carlo estimates the code
computes are compared with those closed forms within five standard errors, estimated from independent
batches (a false alarm has probability below 1e-6 for a Gaussian average).  Each test also shows that
the registered wrong variants lie outside that band.  Trained networks are compared with the oracle
score of a Gaussian mixture (``MixtureOracle``).
"""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

from derivations import score_matching as d
from gencode.distributions import Gaussian, eight_gaussians
from gencode.oracle import MixtureOracle
from gencode.score_matching import (
    NoiseConditionalScore,
    denoising_score_matching_loss,
    geometric_sigmas,
    implicit_score_matching_loss,
    jacobian_trace,
    ncsn_loss,
    score_error,
    sliced_score_matching_loss,
    tweedie_denoiser,
)
from gencode.train import fit


F64 = torch.float64
MU, TAU = 0.7, 1.3  # data N(MU, TAU^2 I) in two dimensions


def _batch_means(fn, batches: int = 20) -> tuple[float, float]:
    """Mean and standard error of a Monte Carlo estimate from independent batches."""
    values = torch.stack([fn(i) for i in range(batches)]).double()
    return float(values.mean()), float(values.std() / math.sqrt(batches))


def _linear_field(device: torch.device):
    A = torch.tensor([[-0.8, 0.3], [0.1, -1.4]], dtype=F64, device=device)
    c = torch.tensor([0.2, -0.5], dtype=F64, device=device)
    return A, c, lambda x, *_: x @ A.T + c


def _gaussian(device: torch.device) -> Gaussian:
    return Gaussian.isotropic(torch.full((2,), MU, dtype=F64, device=device), TAU)


# --- implicit score matching --------------------------------------------------------------------------

def test_jacobian_trace_is_exact(device: torch.device) -> None:
    A, _, field = _linear_field(device)
    x = torch.randn(7, 2, dtype=F64, device=device)
    torch.testing.assert_close(jacobian_trace(field, x), torch.full((7,), float(A.trace()), dtype=F64, device=device))
    # a non-linear field: tr d/dx (x1 x2, x2^3) = x2 + 3 x2^2
    got = jacobian_trace(lambda y: torch.stack([y[:, 0] * y[:, 1], y[:, 1] ** 3], -1), x)
    torch.testing.assert_close(got, x[:, 1] + 3 * x[:, 1] ** 2)


@pytest.mark.validates("score.implicit")
def test_implicit_objective_is_the_fisher_objective_minus_a_constant(device: torch.device) -> None:
    data = _gaussian(device)
    oracle = MixtureOracle(data)
    A, _, field = _linear_field(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def gap(_: int) -> torch.Tensor:  # Fisher - (implicit + constant): zero in expectation
        x = data.sample(20_000, generator=gen)
        true = oracle.score(x, 1.0, 0.0)
        fisher = 0.5 * (field(x) - true).square().sum(-1).mean()
        constant = 0.5 * true.square().sum(-1).mean()
        return fisher - implicit_score_matching_loss(field, x) - constant

    mean, se = _batch_means(gap)
    assert abs(mean) < 5 * se
    # The source notes' factor 2 on the trace adds E[tr grad s] = tr A = -2.2 to the objective.
    assert abs(mean - float(A.trace())) > 5 * se


# --- sliced score matching ----------------------------------------------------------------------------

@pytest.mark.validates("score.sliced")
@pytest.mark.parametrize("variance_reduction", [True, False])
def test_sliced_objective_averages_to_the_implicit_one(device: torch.device, variance_reduction: bool) -> None:
    A, _, field = _linear_field(device)
    gen = torch.Generator(device=device).manual_seed(1)
    x = _gaussian(device).sample(5000, generator=gen)
    exact = float(implicit_score_matching_loss(field, x))
    mean, se = _batch_means(lambda _: sliced_score_matching_loss(
        field, x, 4, variance_reduction=variance_reduction, generator=gen) - exact)
    assert abs(mean) < 5 * se
    # the sum of all Jacobian entries instead of the trace would shift the mean by 0.4
    assert abs(mean - float(A.sum() - A.trace())) > 5 * se


# --- denoising score matching -------------------------------------------------------------------------

def _registry(expr: sp.Expr, **values: float) -> float:
    symbols = {"a": d.a, "b": d.b, "mu": d.mu, "tau": d.tau, "sigma": d.sigma}
    f = sp.lambdify([symbols[k] for k in values], expr)
    return float(f(*values.values()))


@pytest.mark.validates("score.denoising")
def test_denoising_objective_is_explicit_objective_plus_registered_constant(device: torch.device) -> None:
    # Diagonal linear model a x + b: each coordinate is the registry's one-dimensional statement.
    a, b, sigma = -0.5, 0.3, 0.6
    data = _gaussian(device)
    gen = torch.Generator(device=device).manual_seed(2)
    score = lambda x, s: a * x + b  # noqa: E731
    mean, se = _batch_means(lambda _: denoising_score_matching_loss(score, data.sample(20_000, generator=gen),
                                                                    sigma, generator=gen))
    explicit = 2 * _registry(d.explicit_objective(), a=a, b=b, mu=MU, tau=TAU, sigma=sigma)
    constant = 2 * _registry(d.ncsn_weighting.claim["minimum"], tau=TAU, sigma=sigma)  # C_sigma of Gaussian data
    assert abs(mean - (explicit + constant)) < 5 * se
    assert abs(mean - explicit) > 5 * se  # the "objectives are equal" variant is rejected


# --- Tweedie -------------------------------------------------------------------------------------------

@pytest.mark.validates("score.tweedie")
def test_tweedie_denoiser_is_the_gaussian_posterior_mean(device: torch.device) -> None:
    sigma = 0.8
    oracle = MixtureOracle(_gaussian(device))
    gen = torch.Generator(device=device).manual_seed(3)
    x = oracle.data.sample(100, generator=gen)
    x_tilde = x + sigma * torch.randn(x.shape, generator=gen, dtype=F64, device=device)
    got = tweedie_denoiser(lambda y, s: oracle.score(y, 1.0, float(s[0])), x_tilde, sigma)
    # Gaussian conditioning, derived in the registry from moments (independent of Tweedie's formula)
    posterior = sp.lambdify((d.xt, d.mu, d.tau, d.sigma), d._conditional_mean(d.x))
    want = torch.as_tensor(posterior(x_tilde.cpu().numpy(), MU, TAU, sigma), device=device)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)  # float64 round-off
    assert (got - x).abs().max() > 0.1  # Tweedie does not return the clean point itself (an erratum)


# --- NCSN ----------------------------------------------------------------------------------------------

@pytest.mark.validates("score.ncsn.weighting")
def test_ncsn_loss_at_the_true_score_is_the_registered_minimum(device: torch.device) -> None:
    sigmas = geometric_sigmas(2.0, 0.05, 6).to(device)
    oracle = MixtureOracle(_gaussian(device))
    gen = torch.Generator(device=device).manual_seed(4)
    true_score = lambda y, s: -(y - MU) / (TAU**2 + s.unsqueeze(-1) ** 2)  # noqa: E731  (score of q_sigma)
    mean, se = _batch_means(lambda _: ncsn_loss(true_score, oracle.data.sample(20_000, generator=gen), sigmas,
                                                generator=gen))
    per_level = [2 * _registry(d.ncsn_weighting.claim["weighted_minimum"], tau=TAU, sigma=s) for s in sigmas.tolist()]
    assert abs(mean - sum(per_level) / len(per_level)) < 5 * se
    unweighted = [2 * _registry(d.ncsn_weighting.mutants[0].claim["weighted_minimum"], tau=TAU, sigma=s)
                  for s in sigmas.tolist()]
    assert abs(mean - sum(unweighted) / len(unweighted)) > 5 * se


# --- ScoreError: the relative error and the excess loss -------------------------------------------------

def test_score_error_of_a_shifted_oracle_is_exact(device: torch.device) -> None:
    # A model s* + c (c a constant vector) has E||s - s*||^2 = ||c||^2 exactly, whatever the sample:
    # excess = sigma^2 ||c||^2 / 2 and relative = ||c||^2 / E||s*||^2, per level.
    data = eight_gaussians(std=0.2, dtype=F64, device=device)
    oracle = MixtureOracle(data)
    c = torch.tensor([0.3, -0.4], dtype=F64, device=device)  # ||c||^2 = 0.25
    sigmas = torch.tensor([1.0, 0.5, 0.1], dtype=F64)
    err = score_error(lambda x, s: oracle.score(x, 1.0, float(s[0])) + c, oracle, sigmas,
                      generator=torch.Generator(device=device).manual_seed(12))
    torch.testing.assert_close(err.excess, 0.5 * sigmas**2 * 0.25, rtol=1e-12, atol=0)  # float64 round-off
    exact = score_error(lambda x, s: oracle.score(x, 1.0, float(s[0])), oracle, sigmas,
                        generator=torch.Generator(device=device).manual_seed(12))
    assert float(exact.excess.abs().max()) == 0 and float(exact.relative.abs().max()) == 0
    # relative: the same draws of q_sigma (same seed), so E||s*||^2 is the oracle's own mean square
    gen = torch.Generator(device=device).manual_seed(12)
    for k, sigma in enumerate(sigmas.tolist()):
        x = oracle.marginal(1.0, sigma).sample(4096, generator=gen)
        mean_square = oracle.score(x, 1.0, sigma).square().sum(-1).mean()
        assert math.isclose(float(err.relative[k]), 0.25 / float(mean_square), rel_tol=1e-10)


@pytest.mark.validates("score.denoising")
def test_score_error_excess_is_the_weighted_denoising_loss_gap(device: torch.device) -> None:
    # By the denoising score matching theorem, sigma^2 (J_DSM(s) - J_DSM(s*)) = sigma^2 (J_ESM(s) - 0)
    # = excess.  Both losses on the same data and noise (common random numbers), 20 batches of 20,000:
    # the gap is compared with score_error's excess within 5 standard errors of the batch means.
    data = eight_gaussians(std=0.2, dtype=F64, device=device)
    oracle = MixtureOracle(data)
    sigma = 0.5
    model = lambda x, s: 0.8 * oracle.score(x, 1.0, sigma) + 0.1  # noqa: E731  (a wrong score)
    exact = lambda x, s: oracle.score(x, 1.0, sigma)  # noqa: E731
    gen = torch.Generator(device=device).manual_seed(13)

    def gap(_: int) -> torch.Tensor:
        x = data.sample(20_000, generator=gen)
        noise = torch.randn(x.shape, generator=gen, dtype=F64, device=device)
        return sigma**2 * (denoising_score_matching_loss(model, x, sigma, noise=noise)
                           - denoising_score_matching_loss(exact, x, sigma, noise=noise))

    mean, se = _batch_means(gap)
    excess = float(score_error(model, oracle, torch.tensor([sigma]), n=200_000, generator=gen).excess[0])
    # excess is itself a Monte Carlo mean over 200,000 points: its sd (7e-5, measured over 5 seeds) is about
    # a third of se (2.2e-4), so the 5-se band also covers it
    assert abs(mean - excess) < 5 * se, (mean, excess, se)
    assert abs(mean - excess / sigma**2) > 5 * se  # the excess without its sigma^2 weight is rejected
    assert abs(mean - 2 * excess) > 5 * se  # ... and without its 1/2


# --- training against the oracle ----------------------------------------------------------------------

@pytest.mark.slow
def test_ncsn_trained_score_approaches_the_oracle(device: torch.device) -> None:
    data = eight_gaussians(std=0.1, dtype=torch.float32, device=device)
    sigmas = geometric_sigmas(2.0, 0.02, 10, dtype=torch.float32).to(device)
    torch.manual_seed(0)
    net = NoiseConditionalScore(2, hidden=64, depth=3).to(device)
    gen = torch.Generator(device=device).manual_seed(9)
    fit(lambda x: ncsn_loss(net, x, sigmas, generator=gen), net, data.sample(50_000, generator=gen),
        steps=1500, batch_size=512, lr=5e-3, lr_schedule="cosine")
    err = score_error(net, MixtureOracle(data), sigmas, generator=gen)
    # Training budget (1500 steps on a CPU): a relative squared error of 0.1 is a score within about
    # 30% in norm at every level; the untrained network is near 1 (it outputs almost nothing).
    assert float(err.relative.max()) < 0.1, err.relative
    torch.manual_seed(1)
    untrained = score_error(NoiseConditionalScore(2, hidden=64, depth=3).to(device), MixtureOracle(data), sigmas,
                            generator=gen)
    assert float(untrained.relative.min()) > 0.5


@pytest.mark.slow
@pytest.mark.validates("score.sliced")
@pytest.mark.parametrize("variance_reduction", [True, False])
def test_sliced_training_reaches_the_implicit_optimum(device: torch.device, variance_reduction: bool) -> None:
    # For a linear field s(x) = W x + b the implicit objective is minimised by the score of the
    # Gaussian fitted by maximum likelihood, W = -S^-1, b = S^-1 xbar (S normalised by n); the
    # sliced objective has the same expectation, hence the same optimum.
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=F64, device=device)
    x = Gaussian(torch.tensor([1.0, -0.5], dtype=F64, device=device), cov).sample(
        2000, generator=torch.Generator(device=device).manual_seed(10))
    centred = x - x.mean(0)
    W = -torch.linalg.inv(centred.T @ centred / len(x))
    torch.manual_seed(0)
    field = torch.nn.Linear(2, 2).to(device=device, dtype=F64)
    gen = torch.Generator(device=device).manual_seed(11)
    fit(lambda b: sliced_score_matching_loss(field, b, variance_reduction=variance_reduction, generator=gen),
        field, x, steps=600, batch_size=512, lr=0.02, lr_schedule="cosine")
    # Stochastic (projections and minibatches) with a decaying step: within 0.1 of entries of size ~2.
    torch.testing.assert_close(field.weight.detach(), W, rtol=0, atol=0.1)
    torch.testing.assert_close(field.bias.detach(), -W @ x.mean(0), rtol=0, atol=0.1)


# --- bad input ----------------------------------------------------------------------------------------

def test_bad_input_is_named() -> None:
    field = lambda x: x  # noqa: E731
    with pytest.raises(ValueError, match="x must"):
        implicit_score_matching_loss(field, torch.zeros(3))
    with pytest.raises(ValueError, match="n_projections"):
        sliced_score_matching_loss(field, torch.zeros(3, 2), 0)
    with pytest.raises(ValueError, match="sigma"):
        denoising_score_matching_loss(lambda x, s: x, torch.zeros(3, 2), 0.0)
    with pytest.raises(ValueError, match="sigma"):
        denoising_score_matching_loss(lambda x, s: x, torch.zeros(3, 2), torch.ones(4))
    with pytest.raises(ValueError, match="noise"):
        denoising_score_matching_loss(lambda x, s: x, torch.zeros(3, 2), 0.1, noise=torch.zeros(3, 1))
    with pytest.raises(ValueError, match="sigma_min"):
        geometric_sigmas(0.1, 1.0, 5)
    with pytest.raises(ValueError, match="n_levels"):
        geometric_sigmas(1.0, 0.1, 1)
    with pytest.raises(ValueError, match="sigmas"):
        ncsn_loss(lambda x, s: x, torch.zeros(3, 2), torch.ones(2, 2))
