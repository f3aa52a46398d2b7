"""Noise-contrastive estimation (``gencode.ebm.nce_loss``, ``NCEModel``) against ``ebm.nce.*``.

The loss is compared with the registered classifier written out by hand, and the estimator is run on
the exactly solvable case: Gaussian data, Gaussian noise and a quadratic energy with a learned constant.
In natural parameters, log p_theta(u) = -u^T P u / 2 + b^T u - c is linear in (P, b, c), so the NCE loss
is a logistic regression, convex, and L-BFGS finds its minimiser; the true values are P = Sigma^{-1},
b = Sigma^{-1} mu and c = log Z = mu^T Sigma^{-1} mu / 2 + log det(2 pi Sigma) / 2 (ebm.nce.optimum).
"""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

from derivations import ebm as e
from gencode.distributions import Gaussian
from gencode.ebm import NCEModel, nce_loss

F64 = torch.float64


class _NaturalQuadratic(torch.nn.Module):
    """E(u) = u^T P u / 2 - b^T u with P = (A + A^T) / 2 free (no constraint: the loss is convex)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.A = torch.nn.Parameter(torch.eye(dim, dtype=F64))
        self.b = torch.nn.Parameter(torch.zeros(dim, dtype=F64))

    @property
    def P(self) -> torch.Tensor:
        return (self.A + self.A.T) / 2

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((u @ self.P) * u).sum(-1) - u @ self.b


def _setting(device: torch.device):
    mu = torch.tensor([1.0, -0.5], dtype=F64, device=device)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=F64, device=device)
    noise = Gaussian.isotropic(torch.zeros(2, dtype=F64, device=device), 2.0)
    prec = torch.linalg.inv(cov)
    true = {"P": prec, "b": prec @ mu,
            "c": 0.5 * mu @ prec @ mu + 0.5 * torch.logdet(2 * math.pi * cov)}
    return Gaussian(mu, cov), noise, true


def _fit(data, noise, n: int, nu: float, seed: int, device: torch.device, logit_shift: float = 0.0):
    gen = torch.Generator(device).manual_seed(seed)
    x = data.sample(n, generator=gen)
    y = noise.sample(round(nu * n), generator=gen)
    model = NCEModel(_NaturalQuadratic(2)).to(device)
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=200, tolerance_grad=1e-10,
                            tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nce_loss(lambda u: model.log_prob(u) + logit_shift, noise, x, nu, y=y)
        loss.backward()
        return loss

    opt.step(closure)
    P = model.energy.P.detach()
    return torch.stack([P[0, 0], P[0, 1], P[1, 1], *model.energy.b.detach(), model.log_normalizer.detach()])


@pytest.mark.validates("ebm.nce.classifier")
def test_nce_loss_matches_the_classifier_written_out(device: torch.device) -> None:
    data, noise, _ = _setting(device)
    gen = torch.Generator(device).manual_seed(0)
    x, y = data.sample(64, generator=gen), noise.sample(192, generator=gen)
    nu = 3.0
    log_model = lambda u: -0.5 * (u**2).sum(-1) + 0.3 * u[:, 0] - 1.2  # noqa: E731  any unnormalised model
    h = sp.lambdify((e.P_d, e.Q_n, e.nu), e.nce_classifier.claim["h"])  # the registered h = p / (p + nu q)
    hx = h(log_model(x).exp(), noise.log_prob(x).exp(), nu)
    hy = h(log_model(y).exp(), noise.log_prob(y).exp(), nu)
    expected = -hx.log().mean() - nu * (1 - hy).log().mean()
    got = nce_loss(log_model, noise, x, nu, y=y)
    assert abs(float(got - expected)) < 1e-12  # float64 round-off on O(1) terms


@pytest.mark.validates("ebm.nce.optimum")
def test_nce_recovers_gaussian_parameters_and_normaliser(device: torch.device) -> None:
    data, noise, true = _setting(device)
    truth = torch.stack([true["P"][0, 0], true["P"][0, 1], true["P"][1, 1], *true["b"], true["c"]])
    fits = torch.stack([_fit(data, noise, 3000, 2.0, seed, device) for seed in range(12)])  # (R, 6)
    R = fits.shape[0]
    se = fits.std(0) / math.sqrt(R)  # Monte Carlo standard error of the mean of R independent fits
    z = (fits.mean(0) - truth) / se
    # 6 parameters, t with 11 degrees of freedom: |t| > 5 has probability about 4e-4 each; the estimator's
    # O(1/n) bias is far below the standard error of one fit (~1/sqrt(n))
    assert z.abs().max() < 5, z
    # the test has teeth: the logit without its -log(nu) (mutant nu_dropped: sigma(log p_theta - log q))
    # learns c = log Z + log(nu), the model density divided by nu (exercise ex-ebm-nce-constant)
    wrong = _fit(data, noise, 3000, 2.0, 0, device, logit_shift=math.log(2.0))
    assert abs(float(wrong[-1] - truth[-1]) - math.log(2.0)) < 5 * float(fits.std(0)[-1])
    assert abs(float(wrong[-1] - truth[-1])) > 5 * float(fits.std(0)[-1])


def test_nce_rejects_bad_input(device: torch.device) -> None:
    _, noise, _ = _setting(device)
    x = torch.zeros(4, 2, dtype=F64, device=device)
    with pytest.raises(ValueError, match="nu"):
        nce_loss(lambda u: -u.sum(-1), noise, x, 0.0)
    with pytest.raises(ValueError, match="y"):
        nce_loss(lambda u: -u.sum(-1), noise, x, 1.0, y=torch.zeros(4, 3, dtype=F64, device=device))
    with pytest.raises(ValueError, match="x"):
        NCEModel(_NaturalQuadratic(2)).log_prob(torch.zeros(4, dtype=F64, device=device))
