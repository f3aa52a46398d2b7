"""``gencode.density`` against ``derivations.density`` and against scikit-learn on the same data.

Closed forms and one-step updates are compared in float64 with the registry's expressions,
lambdified for a concrete sample size; tolerance 1e-10 relative (sums of a few dozen float64
terms).  scikit-learn runs the same algorithms in float64, so agreement to 1e-8 is expected after
20 EM iterations (round-off grows mildly with iterations).  Trained models are compared with their
analytic optimum (PCA) or with EM's fit, with tolerances set by the training budget.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import sympy as sp
import torch
from sklearn.decomposition import PCA as SkPCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGMM
from sklearn.neighbors import KernelDensity

from derivations import density as dn
from derivations.divergences import concrete
from gencode.density import (
    KDE,
    Autoencoder,
    fit_gmm_em,
    fit_gmm_gradient,
    gaussian_mle,
    gmm_e_step,
    gmm_m_step,
    pca,
    select_bandwidth,
)
from gencode.distributions import GaussianMixture, mixture_1d
from gencode.train import fit

RTOL = 1e-10  # see the module docstring


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def _sample_fn(expr: sp.Expr, n: int, extra: tuple = ()):
    """The registry expression for a sample of size n as a function of x_1..x_n (and extra symbols)."""
    xs = [sp.Symbol(f"x_{i}", real=True) for i in range(1, n + 1)]
    return sp.lambdify([*xs, *extra], concrete(expr, dn.N, n, dn._X))


@pytest.mark.validates("density.gaussian_mle")
def test_gaussian_mle_matches_registry(device: torch.device, generator: torch.Generator) -> None:
    x = 2 + 3 * torch.randn(7, generator=generator, device=device, dtype=torch.float64)
    g = gaussian_mle(x)
    mean = _sample_fn(dn.gaussian_mle.claim["mean"], 7)(*_np(x))
    claim = dn.gaussian_mle.claim
    var = _sample_fn(claim["variance"].xreplace({dn.mu_hat: claim["mean"]}), 7)(*_np(x))
    assert float(g.mean) == pytest.approx(mean, rel=RTOL)
    assert float(g.covariance) == pytest.approx(var, rel=RTOL)
    assert float(g.covariance) != pytest.approx(var * 7 / 6, rel=1e-3)  # not the unbiased one


def test_gaussian_mle_multivariate(device: torch.device, generator: torch.Generator) -> None:
    x = torch.randn(500, 3, generator=generator, device=device, dtype=torch.float64)
    g = gaussian_mle(x)
    np.testing.assert_allclose(_np(g.covariance), np.cov(_np(x).T, bias=True), rtol=1e-10)


def test_kde_matches_sklearn_and_integrates_to_one(device: torch.device, generator: torch.Generator) -> None:
    data = torch.randn(300, 2, generator=generator, device=device, dtype=torch.float64)
    query = 1.5 * torch.randn(50, 2, generator=generator, device=device, dtype=torch.float64)
    kde = KDE(data, 0.3)
    ref = KernelDensity(kernel="gaussian", bandwidth=0.3).fit(_np(data)).score_samples(_np(query))
    np.testing.assert_allclose(_np(kde.log_prob(query)), ref, rtol=1e-10)
    # 1-D: the estimate is a density (a mixture of N Gaussians), by a fine Riemann sum on [-10, 10]
    kde1 = KDE(data[:, :1], 0.2)
    grid = torch.linspace(-10, 10, 20001, device=device, dtype=torch.float64)[:, None]
    mass = float(kde1.log_prob(grid).exp().sum() * (grid[1, 0] - grid[0, 0]))
    assert mass == pytest.approx(1.0, abs=1e-8)  # the trapezoid error for smooth Gaussians is tiny
    samples = kde.sample(5, generator=generator)
    assert samples.shape == (5, 2) and samples.device == data.device


@pytest.mark.validates("density.kde.bias_variance")
def test_kde_bias_and_variance(device: torch.device, generator: torch.Generator) -> None:
    # For p = N(0, 1) the mean of the estimate is exactly N(x; 0, 1 + h^2): the bias is known.
    x0, h = 0.7, 0.05
    p = math.exp(-x0**2 / 2) / math.sqrt(2 * math.pi)
    p2 = (x0**2 - 1) * p  # p''(x)
    exact_bias = math.exp(-x0**2 / (2 * (1 + h**2))) / math.sqrt(2 * math.pi * (1 + h**2)) - p
    bias = float(dn.kde_bias_variance.claim["bias"].subs({dn.h: h, dn.pdd: p2}))
    assert exact_bias == pytest.approx(bias, rel=5 * h**2)  # next term is O(h^4): relative O(h^2)
    # The variance by simulation: R estimates from independent samples of size N.
    n, R, hv = 1000, 2000, 0.02
    data = torch.randn(R, n, generator=generator, device=device, dtype=torch.float64)
    est = torch.exp(-((x0 - data) ** 2) / (2 * hv**2)).mean(1) / math.sqrt(2 * math.pi * hv**2)  # (R,)
    claim = float(dn.kde_bias_variance.claim["variance"].subs({dn.p_x: p, dn.Nk: n, dn.h: hv}))
    # Relative standard error of a sample variance: sqrt(2 / R) = 3.2%; the O(1/N) term the claim
    # drops is p(x)^2 / N, about 2.5% of it here: 15% covers both with margin.
    assert float(est.var()) == pytest.approx(claim, rel=0.15)


@pytest.mark.validates("density.kde.bias_variance")
def test_bandwidth_by_cross_validation(generator: torch.Generator) -> None:
    data = torch.randn(400, 1, generator=generator, dtype=torch.float64)
    grid = torch.logspace(-2, 0.5, 12, dtype=torch.float64)
    sel = select_bandwidth(data, grid, folds=5, generator=torch.Generator().manual_seed(0))
    # the AMISE-optimal h for N(0, 1) and a Gaussian kernel is (4/3)^(1/5) N^(-1/5) = 0.32 (Silverman)
    assert 0.15 < sel.best < 0.7
    assert int(sel.scores.argmax()) not in (0, len(grid) - 1)  # an interior optimum


@pytest.mark.validates("density.gmm.e_step")
def test_e_step_is_a_logistic_of_the_registry_logit(device: torch.device, generator: torch.Generator) -> None:
    w, m, s = [0.3, 0.7], [-1.0, 2.0], [0.8, 1.5]
    mix = mixture_1d(*(torch.tensor(v, dtype=torch.float64, device=device) for v in (w, m, s)))
    x = 3 * torch.randn(100, 1, generator=generator, device=device, dtype=torch.float64)
    logit = sp.lambdify((dn.xx, dn.w1, dn.w2, dn.mu1, dn.mu2, dn.sd1, dn.sd2), dn.e_step.claim["logit"])
    a = logit(_np(x[:, 0]), *w, *m, *s)
    np.testing.assert_allclose(_np(gmm_e_step(mix, x)[:, 0]), 1 / (1 + np.exp(-a)), rtol=RTOL)


@pytest.mark.validates("density.gmm.m_step")
def test_m_step_matches_registry(device: torch.device, generator: torch.Generator) -> None:
    n = 3
    x = torch.randn(n, 1, generator=generator, device=device, dtype=torch.float64)
    r1 = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    resp = torch.stack([r1, 1 - r1], -1)
    weights, means, covs = gmm_m_step(x, resp)
    rs = [sp.Symbol(f"r_{i}_1", real=True) for i in range(1, n + 1)]
    claim = dict(dn.m_step.claim)
    claim["variance"] = claim["variance"].xreplace({dn.mu_k_hat: claim["mean"]})

    def f(key: str):
        expr = claim[key].xreplace({dn.kk: 1})
        names = {dn.xi: "x", dn.r: "r"}
        return sp.lambdify([*(sp.Symbol(f"x_{i}", real=True) for i in range(1, n + 1)), *rs],
                           concrete(expr, dn.N, n, names))(*_np(x[:, 0]), *_np(r1))

    assert float(weights[0]) == pytest.approx(f("weight"), rel=RTOL)
    assert float(means[0, 0]) == pytest.approx(f("mean"), rel=RTOL)
    assert float(covs[0, 0, 0]) == pytest.approx(f("variance"), rel=RTOL)
    assert float(weights.sum()) == pytest.approx(1.0, rel=RTOL)


def _init(device: torch.device) -> GaussianMixture:
    return GaussianMixture(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64, device=device),
                           torch.tensor([[-1.0, 0.0], [0.5, 1.0], [1.0, -1.0]], dtype=torch.float64, device=device),
                           torch.eye(2, dtype=torch.float64, device=device).expand(3, 2, 2).clone())


def _data(device: torch.device, generator: torch.Generator) -> torch.Tensor:
    truth = GaussianMixture(torch.tensor([0.4, 0.35, 0.25], dtype=torch.float64, device=device),
                            torch.tensor([[-2.0, 0.0], [1.5, 2.0], [2.0, -1.5]], dtype=torch.float64, device=device),
                            torch.tensor([[[0.5, 0.2], [0.2, 0.4]], [[0.3, 0.0], [0.0, 0.6]], [[0.4, -0.1], [-0.1, 0.3]]],
                                         dtype=torch.float64, device=device))
    return truth.sample(600, generator=generator)


@pytest.mark.validates("density.em.decomposition", "density.gmm.m_step", "density.gmm.e_step")
def test_em_matches_sklearn_and_never_decreases(device: torch.device, generator: torch.Generator) -> None:
    x = _data(device, generator)
    init = _init(device)
    res = fit_gmm_em(x, init, iterations=20)
    assert bool((res.log_likelihoods.diff() >= -1e-12).all())  # monotone up to round-off
    sk = SkGMM(3, covariance_type="full", weights_init=_np(init.weights), means_init=_np(init.means),
               precisions_init=np.linalg.inv(_np(init.covariances)), reg_covar=0.0, max_iter=20, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(_np(x))
    np.testing.assert_allclose(_np(res.mixture.weights), sk.weights_, rtol=1e-8)
    np.testing.assert_allclose(_np(res.mixture.means), sk.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(_np(res.mixture.covariances), sk.covariances_, rtol=1e-8, atol=1e-10)
    assert float(res.log_likelihoods[-1]) == pytest.approx(sk.score(_np(x)), rel=1e-10)


@pytest.mark.validates("density.em.decomposition")
def test_log_likelihood_is_bound_plus_kl(device: torch.device, generator: torch.Generator) -> None:
    mix = _init(device)
    x = _data(device, generator)[:50]
    r = torch.softmax(torch.randn(50, 3, generator=generator, device=device, dtype=torch.float64), -1)
    log_joint = mix.log_weights + mix.component_log_prob(x)  # (N, K): log A_k
    post = gmm_e_step(mix, x)
    bound = (r * (log_joint - r.log())).sum(-1)
    kl = (r * (r.log() - post.log())).sum(-1)
    torch.testing.assert_close(bound + kl, mix.log_prob(x), rtol=1e-12, atol=1e-12)
    assert bool((kl >= 0).all())


@pytest.mark.slow
def test_gmm_by_gradient_reaches_em_likelihood(device: torch.device, generator: torch.Generator) -> None:
    def f64(*v: float) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.float64, device=device)

    x = mixture_1d(f64(0.3, 0.7), f64(-2.0, 1.5), f64(0.6, 0.8)).sample(1000, generator=generator)
    em = fit_gmm_em(x, mixture_1d(f64(0.5, 0.5), f64(-1.0, 1.0), f64(1.0, 1.0)), 200)
    model, result = fit_gmm_gradient(x, f64(-1.0, 1.0)[:, None], steps=400, lr=0.05)
    # EM's 200 iterations reach the local maximum to ~1e-10; 400 full-batch Adam steps to ~1e-6
    # (measured: 1e-12 after 500 steps); 1e-3 leaves room for a different machine's round-off.
    assert -result.final_loss == pytest.approx(float(em.log_likelihoods[-1]), abs=1e-3)
    assert sorted(_np(model.means).flatten()) == pytest.approx(sorted(_np(em.mixture.means).flatten()), abs=0.02)


@pytest.mark.validates("density.pca.reconstruction", "density.pca.top_eigenvector", "density.pca.ky_fan")
def test_pca_error_is_the_discarded_variance(device: torch.device, generator: torch.Generator) -> None:
    a = torch.randn(5, 5, generator=generator, device=device, dtype=torch.float64)
    x = torch.randn(2000, 5, generator=generator, device=device, dtype=torch.float64) @ a
    res = pca(x, 2)
    assert float(res.reconstruction_error(x)) == pytest.approx(float(res.eigenvalues[2:].sum()), rel=RTOL)
    sk = SkPCA(2).fit(_np(x))
    np.testing.assert_allclose(np.abs(np.sum(sk.components_.T * _np(res.components), 0)), 1.0, rtol=1e-10)
    # any other orthonormal W: error = tr(Sigma) - tr(W^T Sigma W) (the identity), and it is larger
    w, _ = torch.linalg.qr(torch.randn(5, 2, generator=generator, device=device, dtype=torch.float64))
    centred = x - x.mean(0)
    sigma = centred.T @ centred / x.shape[0]
    err = (centred - centred @ w @ w.T).square().sum(-1).mean()
    assert float(err) == pytest.approx(float(sigma.trace() - (w.T @ sigma @ w).trace()), rel=RTOL)
    assert float(err) > float(res.reconstruction_error(x))


@pytest.mark.slow
@pytest.mark.validates("density.pca.reconstruction")
def test_linear_autoencoder_finds_the_principal_subspace(device: torch.device, generator: torch.Generator) -> None:
    scales = torch.tensor([3.0, 2.0, 0.5, 0.3, 0.1], dtype=torch.float64, device=device)
    x = torch.randn(500, 5, generator=generator, device=device, dtype=torch.float64) * scales
    torch.manual_seed(0)
    ae = Autoencoder(5, 2).to(device=device, dtype=torch.float64)
    fit(ae.loss, ae, lambda batch, gen: x, steps=250, batch_size=500, lr=0.05, seed=0)  # full batch
    best = pca(x, 2).reconstruction_error(x)
    with torch.no_grad():
        got = (x - ae(x)).square().sum(-1).mean()
    # 250 full-batch Adam steps: within 3% of the optimum, the discarded variance (about 0.35);
    # measured 1e-12 relative after 300 steps on the same problem.
    assert float(got) == pytest.approx(float(best), rel=0.03)
    # the decoder's columns span the top-2 principal subspace: projection residual is small
    dec = ae.decoder.weight.detach()  # (5, 2)
    q, _ = torch.linalg.qr(dec)
    top = pca(x, 2).components
    assert float(torch.linalg.svdvals(q.T @ top).min()) > 0.99  # cosines of the principal angles


@pytest.mark.validates("density.autoencoder.gaussian_decoder")
def test_gaussian_decoder_log_likelihood(device: torch.device, generator: torch.Generator) -> None:
    ae = Autoencoder(3, 2, hidden=16, noise_std=0.7).to(device=device, dtype=torch.float64)
    x = torch.randn(10, 3, generator=generator, device=device, dtype=torch.float64)
    ref = torch.distributions.Normal(ae(x), 0.7).log_prob(x).sum(-1)
    torch.testing.assert_close(ae.log_likelihood(x), ref, rtol=1e-12, atol=1e-12)
    c = dn.decoder.claim
    syms = [sp.Symbol(f"{b}_{i}", real=True) for b in "xg" for i in (1, 2, 3)]
    f = sp.lambdify([*syms, dn.s2], concrete(c["quadratic"] + c["const"], dn.D_, 3, {dn.xd: "x", dn.gd: "g"}))
    g = ae(x)
    want = [f(*_np(x[i]), *_np(g[i]), 0.49) for i in range(3)]
    np.testing.assert_allclose(_np(ae.log_likelihood(x[:3])), want, rtol=1e-12)


@pytest.mark.parametrize("bad,names", [
    (lambda: KDE(torch.randn(5, 1), -0.1), "bandwidth"),
    (lambda: KDE(torch.randn(5, 1), float("nan")), "bandwidth"),
    (lambda: KDE(torch.empty(0, 1), 0.1), "data"),
    (lambda: KDE(torch.tensor([[0.0], [float("nan")]]), 0.1), "data contains NaN"),
    (lambda: gaussian_mle(torch.tensor([1.0])), "x must"),
    (lambda: gaussian_mle([1.0, 2.0]), "x must"),
    (lambda: select_bandwidth(torch.randn(10, 1), [0.1, -1.0]), "bandwidths"),
    (lambda: pca(torch.randn(10, 3), 4), "k must"),
    (lambda: fit_gmm_em(torch.randn(10, 3), _init(torch.device("cpu")), 5), "init"),
    (lambda: GaussianMixture(torch.tensor([0.5, 0.6]), torch.zeros(2, 1), torch.ones(2, 1, 1)), "weights must sum"),
])
def test_bad_input_raises(bad, names) -> None:
    # the error names the offending argument
    with pytest.raises((ValueError, TypeError), match=names):
        bad()
