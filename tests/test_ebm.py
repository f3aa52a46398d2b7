"""Energy-based models (``gencode.ebm``): the score without the partition function, and training.

Training is validated where the optimum is known in closed form: a Gaussian (quadratic) energy fitted
to Gaussian data.  Hyvarinen's objective for that family is minimised exactly by the sample mean and
the inverse of the sample covariance; contrastive divergence by the true parameters, up to the
Langevin discretisation bias and stochastic-gradient noise.  A network energy is compared with the
oracle score of a Gaussian mixture.
"""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

from derivations import ebm as e
from gencode.distributions import Gaussian, eight_gaussians
from gencode.ebm import EnergyModel, QuadraticEnergy, contrastive_divergence_loss, mlp_energy
from gencode.oracle import MixtureOracle
from gencode.score_matching import denoising_score_matching_loss, implicit_score_matching_loss, score_error
from gencode.train import fit


F64 = torch.float64


class _QuarticEnergy(torch.nn.Module):
    """The registry's witness energy x^4/4 - x + 1, coordinate-wise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x**4 / 4 - x + 1).sum(-1)


@pytest.mark.validates("ebm.score")
def test_score_is_minus_energy_gradient_as_registered(device: torch.device) -> None:
    x = torch.linspace(-2, 2, 11, dtype=F64, device=device).unsqueeze(-1)
    got = EnergyModel(_QuarticEnergy()).score(x)
    example = {e.Energy: sp.Lambda(e.x, e.x**4 / 4 - e.x + 1)}
    want = sp.lambdify(e.x, e.instantiate(e.score.claim["score"], example))(x.cpu().numpy())
    torch.testing.assert_close(got, torch.as_tensor(want, device=device), rtol=1e-12, atol=1e-12)
    wrong = sp.lambdify(e.x, e.instantiate(e.score.mutants[0].claim["score"], example))(x.cpu().numpy())
    assert (got - torch.as_tensor(wrong, device=device)).abs().max() > 1  # the +grad E variant differs


@pytest.mark.validates("ebm.score")
def test_score_ignores_the_partition_function(device: torch.device) -> None:
    # The quadratic energy's normalised density is N(mean, P^-1): the gradient of its log_prob (which
    # includes log Z) equals the model's score, which never computes Z.
    torch.manual_seed(0)
    energy = QuadraticEnergy(2).to(device=device, dtype=F64)
    with torch.no_grad():
        energy.mean.copy_(torch.tensor([0.5, -1.0]))
        energy.raw_tril.copy_(torch.tensor([[0.3, 0.0], [0.7, -0.2]]))
    x = torch.randn(50, 2, dtype=F64, device=device, requires_grad=True)
    log_p = torch.distributions.MultivariateNormal(energy.mean, precision_matrix=energy.precision).log_prob(x)
    (autograd,) = torch.autograd.grad(log_p.sum(), x)
    torch.testing.assert_close(EnergyModel(energy).score(x.detach()), autograd, rtol=1e-10, atol=1e-10)


def _gradients(loss: torch.Tensor, module: torch.nn.Module) -> torch.Tensor:
    """The gradient of ``loss`` with respect to every parameter, flattened (zero where unused)."""
    params = list(module.parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads, strict=True)])


@pytest.mark.validates("ebm.likelihood_gradient")
def test_likelihood_gradient_and_contrastive_divergence(device: torch.device) -> None:
    # A quadratic energy has log Z = (D/2) log(2 pi) - (1/2) log det P in closed form, so autograd gives
    # the exact gradients; the identity says d log Z = -E_{p_theta}[dE], and the negative log-likelihood
    # gradient is E_data[dE] - E_{p_theta}[dE], which contrastive divergence estimates with Langevin chains.
    torch.manual_seed(0)
    energy = QuadraticEnergy(2).to(device=device, dtype=F64)
    with torch.no_grad():
        energy.mean.copy_(torch.tensor([0.5, -1.0]))
        energy.raw_tril.copy_(torch.tensor([[0.8, 0.0], [0.3, 0.6]]))  # precision eigenvalues 0.9 and 1.6
    model = EnergyModel(energy)
    log_z = lambda: -0.5 * torch.logdet(energy.precision) + math.log(2 * math.pi)  # noqa: E731  (D = 2)
    gen = torch.Generator(device=device).manual_seed(3)
    law = torch.distributions.MultivariateNormal(energy.mean.detach(), precision_matrix=energy.precision.detach())
    # 1. d log Z = -E_p[dE], with 20 groups of 10,000 exact model samples for a standard error
    y = law.sample((200_000,))
    groups = torch.stack([-_gradients(model(g).mean(), model) for g in y.chunk(20)])
    mean, se = groups.mean(0), groups.std(0) / math.sqrt(20)
    exact = _gradients(log_z(), model)
    assert bool(((mean - exact).abs() < 5 * se + 1e-12).all()), (mean, exact, se)
    assert bool(((mean + exact).abs() > 5 * se).any())  # the sign of the model term matters
    # 2. the CD-k gradient with long chains (k = 400, eta = 0.05: contraction (1 - 0.05 * 0.9 / 2)^400 ~ 1e-4 on
    #    the slowest axis, variance bias eta * lambda / 4 <= 2%) matches the exact NLL gradient
    _, x = _gaussian_data(device, 4000)
    nll = _gradients(model(x).mean() + log_z(), model)
    cd = torch.stack([_gradients(contrastive_divergence_loss(model, b, 0.05, 400, generator=gen), model)
                      for b in x.chunk(10)])
    cd_mean, cd_se = cd.mean(0), cd.std(0) / math.sqrt(10)
    # tolerance: 5 standard errors of the 10 batch estimates, plus the 2% Langevin bias of the model term
    tol = 5 * cd_se + 0.02 * exact.abs()
    assert bool(((cd_mean - nll).abs() <= tol).all()), (cd_mean, nll, tol)  # <=: an unused entry is 0 = 0
    data_term = _gradients(model(x).mean(), model)
    assert bool(((cd_mean - data_term).abs() > tol).any())  # dropping the model term is detected


def _gaussian_data(device: torch.device, n: int = 4000) -> tuple[Gaussian, torch.Tensor]:
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=F64, device=device)
    data = Gaussian(torch.tensor([1.0, -0.5], dtype=F64, device=device), cov)
    return data, data.sample(n, generator=torch.Generator(device=device).manual_seed(7))


@pytest.mark.slow
def test_implicit_score_matching_finds_the_sample_optimum(device: torch.device) -> None:
    _, x = _gaussian_data(device, 1000)
    model = EnergyModel(QuadraticEnergy(2)).to(device=device, dtype=F64)
    fit(lambda b: implicit_score_matching_loss(model.field, b), model, x, steps=600, batch_size=len(x),
        lr=0.05, lr_schedule="cosine")
    centred = x - x.mean(0)
    optimum = torch.linalg.inv(centred.T @ centred / len(x))  # E[||Ax + c||^2/2 + tr A] is minimised there
    # Full-batch Adam, 600 steps with a cosine-decayed step: the budget leaves an optimisation error
    # of about 1% of the entries (the largest is ~2.3); 0.05 bounds it, while the untrained model
    # (precision 0.48 I) is off by more than 1.
    torch.testing.assert_close(model.energy.precision, optimum, rtol=0, atol=0.05)
    torch.testing.assert_close(model.energy.mean, x.mean(0), rtol=0, atol=0.05)  # same budget, entries ~1


@pytest.mark.slow
def test_contrastive_divergence_recovers_a_gaussian(device: torch.device) -> None:
    data, x = _gaussian_data(device, 20_000)
    model = EnergyModel(QuadraticEnergy(2)).to(device=device, dtype=F64)
    gen = torch.Generator(device=device).manual_seed(8)
    fit(lambda b: contrastive_divergence_loss(model, b, 0.05, 5, generator=gen), model, x, steps=400,
        batch_size=256, lr=0.02, lr_schedule="cosine")
    want = torch.linalg.inv(data.covariance)
    # Sources of error: the Langevin bias (about eta / (4 s^2) ~ 4.3% with eta = 0.05 on the narrowest
    # principal axis, s^2 = 0.29), CD-5's short chains and the stochastic gradient; 15% of the largest
    # entry bounds them together.
    err = (model.energy.precision.detach() - want).abs().max() / want.abs().max()
    assert float(err) < 0.15, float(err)
    # the mean: sampling sd of a 20k-sample mean is ~0.007, the rest is CD-5 and SGD noise at this budget
    torch.testing.assert_close(model.energy.mean, data.mean, rtol=0, atol=0.1)
    # the untrained model starts far away
    assert float((QuadraticEnergy(2).to(device, F64).precision.detach() - want).abs().max() / want.abs().max()) > 0.3


@pytest.mark.slow
@pytest.mark.validates("ebm.langevin.discrete_variance")
def test_contrastive_divergence_converges_to_the_biased_fixed_point(device: torch.device) -> None:
    # Along a principal axis of the data (variance v) the CD fixed point of a quadratic energy is the
    # precision lambda whose Langevin chain has stationary variance v: 1 / (lambda (1 - eta lambda / 4)) = v
    # (ebm.langevin.discrete_variance with s^2 = 1 / lambda), i.e.
    # lambda v = (1 - sqrt(1 - eta / v)) / (eta / (2 v)).  A large step makes the bias large (29% and 3.6%).
    _, x = _gaussian_data(device, 20_000)
    eta = 0.2
    model = EnergyModel(QuadraticEnergy(2)).to(device=device, dtype=F64)
    gen = torch.Generator(device=device).manual_seed(8)
    fit(lambda b: contrastive_divergence_loss(model, b, eta, 5, generator=gen), model, x, steps=1200,
        batch_size=256, lr=0.02, lr_schedule="cosine")
    v, U = torch.linalg.eigh(torch.cov(x.T, correction=0))
    precision = model.energy.precision.detach()
    observed = torch.einsum("ik,ij,jk->k", U, precision, U) * v - 1
    predicted = (1 - torch.sqrt(1 - eta / v)) / (eta / (2 * v)) - 1
    # Budget: 1200 steps leave a stochastic-gradient and short-chain error of up to about 1.7% (largest gap:
    # 1.6% over four seeds with fit's earlier seeding, 1.7% in the chapter's run since its batch stream was
    # made independent of the loss's); 3% bounds it, far below the 29% bias.
    torch.testing.assert_close(observed, predicted, rtol=0, atol=0.03)
    off_diagonal = U[:, 0] @ precision @ U[:, 1] * (v[0] * v[1]).sqrt()
    assert abs(float(off_diagonal)) < 0.03
    # the unbiased fixed point (lambda v = 1) and the first-order bias eta / (4 v) are both rejected
    assert float((observed - 0).abs().max()) > 0.1
    assert float((observed - eta / (4 * v)).abs().max()) > 0.05


@pytest.mark.slow
def test_network_energy_trained_by_denoising_matches_the_oracle(device: torch.device) -> None:
    data = eight_gaussians(std=0.1, dtype=torch.float32, device=device)
    sigma = 0.3
    torch.manual_seed(0)
    model = EnergyModel(mlp_energy(2, hidden=128)).to(device)
    gen = torch.Generator(device=device).manual_seed(9)
    fit(lambda b: denoising_score_matching_loss(model.score, b, sigma, generator=gen), model,
        data.sample(20_000, generator=gen), steps=600, batch_size=512, lr=5e-3, lr_schedule="cosine")
    err = score_error(model.score, MixtureOracle(data), torch.tensor([sigma]), generator=gen)
    # Training budget (600 steps, width 128, as in the chapter): the chapter's run reaches a relative
    # squared error of about 0.013; 0.05 (a score within about 22% in norm) leaves room for another seed
    # and device, and the untrained energy is at about 1.
    assert float(err.relative[0]) < 0.05, err.relative
    torch.manual_seed(1)
    untrained = score_error(EnergyModel(mlp_energy(2, hidden=64)).to(device).score, MixtureOracle(data),
                            torch.tensor([sigma]), generator=gen)
    assert float(untrained.relative[0]) > 0.5


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="dim"):
        QuadraticEnergy(0)
    model = EnergyModel(QuadraticEnergy(2))
    with pytest.raises(ValueError, match="x must"):
        model.score(torch.zeros(3))
    with pytest.raises(ValueError, match="regularization"):
        contrastive_divergence_loss(model, torch.zeros(3, 2), 0.1, 1, regularization=-1.0)
