"""gencode.distributions: analytic densities, scores and samples of Gaussian mixtures, checked
against independent references (SciPy, autograd, quadrature, Monte Carlo)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from gencode.distributions import Gaussian, GaussianMixture, eight_gaussians, mixture_1d

CASES = [(1, 1), (1, 3), (2, 1), (2, 3), (3, 1), (3, 3)]  # (D, K)


def random_params(D: int, K: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random weights (K,), means (K, D) and SPD covariances (K, D, D) with eigenvalues >= 0.3."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.2, 1.0, K)
    A = rng.normal(size=(K, D, D))
    return w / w.sum(), rng.normal(scale=2.0, size=(K, D)), A @ A.transpose(0, 2, 1) + 0.3 * np.eye(D)


def make(params: tuple[np.ndarray, ...], device: torch.device, dtype: torch.dtype) -> GaussianMixture:
    return GaussianMixture(*(torch.as_tensor(p, device=device, dtype=dtype) for p in params))


def scipy_log_prob(params: tuple[np.ndarray, ...], x: np.ndarray) -> np.ndarray:
    """log sum_k w_k N(x; mu_k, S_k), written independently with scipy.stats."""
    w, mu, S = params
    comp = np.stack([stats.multivariate_normal(mu[k], S[k]).logpdf(x) for k in range(len(w))], -1)
    return special.logsumexp(np.log(w) + comp.reshape(len(x), len(w)), axis=-1)


@pytest.mark.parametrize("D, K", CASES)
def test_log_prob_matches_scipy(D: int, K: int, device: torch.device, dtype: torch.dtype) -> None:
    params = random_params(D, K, seed=10 * D + K)
    x = np.random.default_rng(0).normal(scale=3.0, size=(50, D))
    ours = make(params, device, dtype).log_prob(torch.as_tensor(x, device=device, dtype=dtype))
    # Both sides are float64 evaluations of the same closed form with covariances of condition number
    # below ~1e3: they agree to ~1e-13; 1e-9 leaves room without hiding a wrong constant.
    np.testing.assert_allclose(ours.cpu().numpy(), scipy_log_prob(params, x), rtol=1e-9, atol=1e-9)


def test_log_prob_integrates_to_one_1d(device: torch.device, dtype: torch.dtype) -> None:
    gm = mixture_1d([0.2, 0.5, 0.3], [-3.0, 0.0, 4.0], [0.5, 1.0, 2.0], dtype=dtype, device=device)
    x = torch.linspace(-30.0, 40.0, 20001, device=device, dtype=dtype)  # >= 13 std beyond every mean
    mass = torch.trapezoid(gm.log_prob(x[:, None]).exp(), x)
    # The trapezoid rule on a smooth density that is ~0 at both ends converges faster than any power of
    # the step (here 3.5e-3, 1/140 of the narrowest std); the truncated tails are < 1e-30.
    assert abs(float(mass) - 1.0) < 1e-10


def test_log_prob_integrates_to_one_2d(device: torch.device, dtype: torch.dtype) -> None:
    params = random_params(2, 3, seed=7)
    gm = make(params, device, dtype)
    g = torch.linspace(-25.0, 25.0, 801, device=device, dtype=dtype)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    p = gm.log_prob(torch.stack([xx, yy], -1)).exp()  # (801, 801)
    mass = torch.trapezoid(torch.trapezoid(p, g, dim=1), g)
    # Step 0.0625 against a smallest component std of sqrt(0.3) ~ 0.55: the periodic-trapezoid error
    # ~ exp(-2 pi^2 sigma^2 / h^2) is negligible; the box edges are > 12 largest stds from every mean.
    assert abs(float(mass) - 1.0) < 1e-8


@pytest.mark.parametrize("D, K", CASES)
def test_score_is_gradient_of_log_prob(D: int, K: int, device: torch.device, dtype: torch.dtype) -> None:
    gm = make(random_params(D, K, seed=D + 5 * K), device, dtype)
    x = torch.randn(4, 5, D, device=device, dtype=dtype, generator=torch.Generator(device).manual_seed(1))
    x = (3.0 * x).requires_grad_(True)
    (auto,) = torch.autograd.grad(gm.log_prob(x).sum(), x)
    # Analytic and autograd scores are two float64 evaluations of the same quantity (round-off ~1e-14).
    torch.testing.assert_close(gm.score(x.detach()), auto, rtol=1e-10, atol=1e-10)


def test_responsibilities_are_a_posterior(device: torch.device, dtype: torch.dtype) -> None:
    gm = make(random_params(2, 3, seed=3), device, dtype)
    x = torch.randn(20, 2, device=device, dtype=dtype, generator=torch.Generator(device).manual_seed(2))
    r = gm.responsibilities(x)  # (20, 3)
    direct = gm.weights * gm.component_log_prob(x).exp() / gm.log_prob(x).exp()[:, None]
    torch.testing.assert_close(r, direct, rtol=1e-12, atol=1e-12)  # float64 round-off


def test_mean_and_covariance_closed_form(device: torch.device, dtype: torch.dtype) -> None:
    w, mu, S = params = random_params(3, 3, seed=4)
    gm = make(params, device, dtype)
    m = w @ mu
    second = np.einsum("k,kij->ij", w, S + mu[:, :, None] * mu[:, None, :])  # E[X X^T]
    np.testing.assert_allclose(gm.mean.cpu().numpy(), m, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gm.covariance.cpu().numpy(), second - np.outer(m, m), rtol=1e-12, atol=1e-12)


def assert_moments(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> None:
    """Sample mean and covariance of x (n, D) within 5 Monte Carlo standard errors of mean and cov.

    SE of the mean: sqrt(cov_ii / n), exact. SE of a covariance entry: std((x_i - m_i)(x_j - m_j)) / sqrt(n),
    the plug-in estimate (a mixture's fourth moments are not a function of its covariance).
    """
    n = x.shape[0]
    se_mean = (cov.diagonal() / n).sqrt()
    assert ((x.mean(0) - mean).abs() <= 5 * se_mean).all(), (x.mean(0), mean, se_mean)
    d = x - mean
    prod = d[:, :, None] * d[:, None, :]  # (n, D, D)
    se_cov = prod.std(0) / math.sqrt(n)
    assert ((prod.mean(0) - cov).abs() <= 5 * se_cov).all(), (prod.mean(0), cov, se_cov)


def test_sample_moments(device: torch.device, dtype: torch.dtype, generator: torch.Generator) -> None:
    gm = make(random_params(2, 3, seed=5), device, dtype)
    x = gm.sample(200_000, generator=generator)
    assert x.shape == (200_000, 2) and x.device.type == device.type and x.dtype == dtype
    assert_moments(x, gm.mean, gm.covariance)


def test_sample_is_reproducible(device: torch.device) -> None:
    gm = eight_gaussians(device=device)
    a = gm.sample(100, generator=torch.Generator(device).manual_seed(3))
    b = gm.sample(100, generator=torch.Generator(device).manual_seed(3))
    assert torch.equal(a, b)
    assert gm.sample(0).shape == (0, 2)


@pytest.mark.parametrize("noise_std, scale", [(0.7, 1.0), (1.5, 0.4), (0.5, -2.0), (2.0, 0.0)])
def test_noised_is_law_of_scaled_plus_noise(
    noise_std: float, scale: float, device: torch.device, dtype: torch.dtype, generator: torch.Generator
) -> None:
    gm = make(random_params(2, 3, seed=6), device, dtype)
    q = gm.noised(noise_std, scale)
    eye = torch.eye(2, device=device, dtype=dtype)
    # Exact identities, float64 round-off only.
    torch.testing.assert_close(q.mean, scale * gm.mean)
    torch.testing.assert_close(q.covariance, scale**2 * gm.covariance + noise_std**2 * eye)
    torch.testing.assert_close(q.weights, gm.weights)
    n = 200_000
    y = scale * gm.sample(n, generator=generator)
    y = y + noise_std * torch.randn(n, 2, device=device, dtype=dtype, generator=generator)
    assert_moments(y, q.mean, q.covariance)


@pytest.mark.parametrize("noise_std, scale", [(0.3, 1.0), (1.0, 0.6), (0.8, -1.5)])
def test_noised_log_prob_is_a_convolution_1d(noise_std: float, scale: float, dtype: torch.dtype) -> None:
    w, mu, sd = np.array([0.3, 0.7]), np.array([-1.0, 2.0]), np.array([0.4, 0.9])
    q = mixture_1d(w, mu, sd, dtype=dtype).noised(noise_std, scale)

    def p(x: float) -> float:
        return float(np.sum(w * stats.norm.pdf(x, mu, sd)))

    def convolved(y: float) -> float:
        # density of a X + s eps at y: integral of p(x) N(y; a x, s^2) dx
        f = lambda x: p(x) * stats.norm.pdf(y, scale * x, noise_std)  # noqa: E731
        return integrate.quad(f, -15.0, 15.0, points=list(mu), epsabs=1e-14, epsrel=1e-12, limit=200)[0]

    ys = np.array([-4.0, -1.0, 0.0, 0.5, 2.0, 3.5])
    ref = np.log([convolved(y) for y in ys])
    ours = q.log_prob(torch.as_tensor(ys, dtype=dtype)[:, None]).numpy()
    # quad's requested relative accuracy is 1e-12; 1e-8 on the log-density leaves ample room.
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-8)


def test_noised_identity_and_gaussian_class(device: torch.device, dtype: torch.dtype) -> None:
    gm = make(random_params(2, 3, seed=8), device, dtype)
    x = torch.randn(7, 2, device=device, dtype=dtype, generator=torch.Generator(device).manual_seed(4))
    torch.testing.assert_close(gm.noised(0.0).log_prob(x), gm.log_prob(x))
    g = Gaussian.isotropic(torch.zeros(2, device=device, dtype=dtype), 2.0).noised(1.0, 0.5)
    assert isinstance(g, Gaussian)
    torch.testing.assert_close(g.covariance, 2.0 * torch.eye(2, device=device, dtype=dtype))  # 0.25 * 4 + 1


def test_gaussian_is_one_component_mixture(device: torch.device, dtype: torch.dtype) -> None:
    _, mu, S = random_params(3, 1, seed=9)
    g = Gaussian(torch.as_tensor(mu[0], device=device), torch.as_tensor(S[0], device=device))
    x = np.random.default_rng(1).normal(size=(10, 3))
    ref = stats.multivariate_normal(mu[0], S[0]).logpdf(x)
    np.testing.assert_allclose(g.log_prob(torch.as_tensor(x, device=device)).cpu().numpy(), ref, rtol=1e-10)
    torch.testing.assert_close(g.score(torch.as_tensor(x, device=device)),
                               -torch.as_tensor(np.linalg.solve(S[0], (x - mu[0]).T).T, device=device))


def test_eight_gaussians_moments(device: torch.device, dtype: torch.dtype) -> None:
    gm = eight_gaussians(radius=2.0, std=0.1, dtype=dtype, device=device)
    assert (gm.num_components, gm.dim, gm.dtype) == (8, 2, dtype)
    # equally spaced points on a circle: mean 0, covariance (r^2 / 2) I; plus the components' std^2 I
    torch.testing.assert_close(gm.mean, torch.zeros(2, device=device, dtype=dtype))
    torch.testing.assert_close(gm.covariance, (2.0 + 0.01) * torch.eye(2, device=device, dtype=dtype))


def test_to_changes_dtype_keeps_values(device: torch.device) -> None:
    gm = make(random_params(2, 3, seed=11), device, torch.float64)
    g32 = gm.to(dtype=torch.float32)
    assert g32.dtype == torch.float32 and g32.device == gm.device
    x = torch.zeros(1, 2, device=device)
    # float32 round-off on a log-density of order 1
    torch.testing.assert_close(g32.log_prob(x), gm.log_prob(x.double()).float(), rtol=1e-5, atol=1e-5)


def test_bad_inputs_name_the_argument(device: torch.device) -> None:
    w, mu, S = (torch.as_tensor(p, device=device) for p in random_params(2, 2, seed=12))
    cases = [
        ("weights", lambda: GaussianMixture(torch.tensor([0.5, 0.6]), mu, S)),  # sum != 1
        ("weights", lambda: GaussianMixture(torch.tensor([1.5, -0.5]), mu, S)),  # negative
        ("weights", lambda: GaussianMixture(torch.ones(3) / 3, mu, S)),  # shape
        ("weights", lambda: GaussianMixture(torch.tensor([float("nan"), 1.0]), mu, S)),
        ("means", lambda: GaussianMixture(w, mu[0], S)),  # shape
        ("covariances", lambda: GaussianMixture(w, mu, S[:, :1, :1])),  # shape
        ("covariances", lambda: GaussianMixture(w, mu, -S)),  # not positive definite
        ("covariances", lambda: GaussianMixture(w, mu, S + torch.tensor([[0.0, 1.0], [0.0, 0.0]], device=device))),
        ("covariance", lambda: Gaussian(mu[0], -S[0])),
        ("stds", lambda: mixture_1d([0.5, 0.5], [0.0, 1.0], [1.0, -1.0])),
        ("noise_std", lambda: GaussianMixture(w, mu, S).noised(-0.1)),
        ("scale", lambda: GaussianMixture(w, mu, S).noised(0.1, float("nan"))),
        ("scale", lambda: GaussianMixture(w, mu, S).noised(0.0, 0.0)),
        ("x", lambda: GaussianMixture(w, mu, S).log_prob(torch.zeros(4, 3, device=device))),
        ("n", lambda: GaussianMixture(w, mu, S).sample(-1)),
    ]
    for name, call in cases:
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            call()
