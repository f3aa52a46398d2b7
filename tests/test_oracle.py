"""The oracle models against independent closed forms (float64)."""

from __future__ import annotations

import pytest
import torch

from gencode.distributions import Gaussian, GaussianMixture, mixture_1d
from gencode.oracle import MixtureOracle

F64 = torch.float64


def _gaussian_posterior(mu, S, a, s, x):
    """E[x0 | x] and E[eps | x] for x0 ~ N(mu, S), x = a x0 + s eps, by Gaussian conditioning."""
    C = a**2 * S + s**2 * torch.eye(len(mu), dtype=F64)
    r = torch.linalg.solve(C, (x - a * mu).T).T
    return mu + a * r @ S.T, s * r


@pytest.mark.parametrize("a,s", [(1.0, 0.5), (0.3, 0.95), (0.9, 0.1)])
def test_gaussian_denoiser_and_noise_predictor(a: float, s: float) -> None:
    gen = torch.Generator().manual_seed(0)
    mu = torch.tensor([0.5, -1.0], dtype=F64)
    L = torch.tensor([[1.0, 0.0], [0.4, 0.7]], dtype=F64)
    S = L @ L.T
    oracle = MixtureOracle(Gaussian(mu, S))
    x = torch.randn(50, 2, generator=gen, dtype=F64)
    x0_ref, eps_ref = _gaussian_posterior(mu, S, a, s, x)
    # Both sides are exact linear algebra in float64: agreement to 1e-10 leaves room for round-off only.
    torch.testing.assert_close(oracle.denoise(x, a, s), x0_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(oracle.noise(x, a, s), eps_ref, rtol=1e-10, atol=1e-10)
    # x = a E[x0|x] + s E[eps|x] holds exactly for conditional expectations.
    torch.testing.assert_close(a * oracle.denoise(x, a, s) + s * oracle.noise(x, a, s), x, rtol=1e-12, atol=1e-12)


def test_mixture_denoiser_is_responsibility_weighted() -> None:
    data = mixture_1d([0.3, 0.7], [-2.0, 1.5], [0.5, 0.8], dtype=F64)
    a, s = 0.8, 0.6
    x = torch.linspace(-4, 4, 41, dtype=F64).unsqueeze(-1)
    r = data.noised(s, a).responsibilities(x)  # (N, K)
    per = torch.stack([
        _gaussian_posterior(data.means[k], data.covariances[k], a, s, x)[0].squeeze(-1) for k in range(2)
    ], dim=-1)
    torch.testing.assert_close(MixtureOracle(data).denoise(x, a, s).squeeze(-1), (r * per).sum(-1),
                               rtol=1e-10, atol=1e-10)


def test_velocity_satisfies_the_continuity_equation() -> None:
    # Path x_t = t x1 + (1 - t) eps (noise at 0, data at 1): dp/dt + d(v p)/dx = 0, by central differences.
    data = mixture_1d([0.4, 0.6], [-1.5, 2.0], [0.4, 0.6], dtype=F64)
    oracle = MixtureOracle(data)
    x = torch.linspace(-4, 4, 81, dtype=F64).unsqueeze(-1)
    t, h = 0.6, 1e-4

    def density(tt, xx):
        return oracle.marginal(tt, 1 - tt).log_prob(xx).exp()

    dp_dt = (density(t + h, x) - density(t - h, x)) / (2 * h)
    flux = lambda xx: oracle.velocity(xx, t, 1 - t, 1.0, -1.0).squeeze(-1) * density(t, xx)  # noqa: E731
    dflux_dx = (flux(x + h) - flux(x - h)) / (2 * h)
    # Central differences have error O(h^2) ~ 1e-8 times third derivatives of order 10; 1e-6 covers it.
    torch.testing.assert_close(dp_dt + dflux_dx, torch.zeros_like(dp_dt), rtol=0, atol=1e-6)
    # A wrong velocity (the sign of the noise term flipped) violates it: the test can fail.
    bad = lambda xx: (oracle.denoise(xx, t, 1 - t) + oracle.noise(xx, t, 1 - t)).squeeze(-1) * density(t, xx)  # noqa: E731
    assert (dp_dt + (bad(x + h) - bad(x - h)) / (2 * h)).abs().max() > 1e-2


def test_velocity_at_the_ends() -> None:
    data = GaussianMixture(torch.tensor([0.5, 0.5], dtype=F64), torch.tensor([[1.0], [3.0]], dtype=F64),
                           torch.ones(2, 1, 1, dtype=F64))
    oracle = MixtureOracle(data)
    x = torch.tensor([[0.5], [2.0]], dtype=F64)
    torch.testing.assert_close(oracle.velocity(x, 0.0, 1.0, 1.0, -1.0), data.mean - x)
    torch.testing.assert_close(oracle.velocity(x, 2.0, 0.0, 1.0, -1.0), x / 2)


def test_bad_input_is_named() -> None:
    oracle = MixtureOracle(Gaussian.isotropic(torch.zeros(1), 1.0))
    x = torch.zeros(3, 1)
    with pytest.raises(ValueError, match="noise_std"):
        oracle.noise(x, 1.0, 0.0)
    with pytest.raises(ValueError, match="scale"):
        oracle.denoise(x, 0.0, 1.0)
    with pytest.raises(ValueError, match="scale"):
        oracle.score(x, float("nan"), 1.0)
    with pytest.raises(TypeError, match="data"):
        MixtureOracle("not a mixture")
    with pytest.raises(ValueError, match="D = 1"):
        oracle.score(torch.zeros(3, 2), 1.0, 1.0)
