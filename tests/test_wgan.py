"""Kantorovich-Rubinstein duality, the Lipschitz constraints of WGANs, and ``gencode.wgan``.

Exact references: POT's network simplex (``ot.emd2``) for the primal transport problem,
``scipy.optimize.linprog`` for the dual over 1-Lipschitz potentials, ``scipy.stats.wasserstein_distance``
in 1-D, ``torch.linalg.svdvals`` for singular values.
"""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import sympy as sp
import torch
from scipy import optimize, stats

from derivations import wasserstein as dw
from derivations.indexed_sums import to_instance
from gencode.gan import fit_discriminator, generator_loss
from gencode.metrics import wasserstein1_1d
from gencode.nets import MLP
from gencode.wgan import (
    WGAN,
    clip_weights_,
    critic_gap,
    fit_critic,
    gradient_penalty,
    power_iteration,
    spectral_normalise,
)

F64 = torch.float64


def _dual_lp(points: np.ndarray, a: np.ndarray, b: np.ndarray, K: float = 1.0) -> float:
    """max sum_k f_k (a_k - b_k) over K-Lipschitz f on the points, by linear programming."""
    n = len(points)
    dist = np.linalg.norm(points[:, None] - points[None], axis=-1)
    rows, rhs = [], []
    for i in range(n):
        for j in range(n):
            if i != j:
                r = np.zeros(n)
                r[i], r[j] = 1.0, -1.0
                rows.append(r)
                rhs.append(K * dist[i, j])
    # f is defined up to a constant: pin f_0 = 0
    res = optimize.linprog(-(a - b), A_ub=np.array(rows), b_ub=np.array(rhs),
                           bounds=[(0, 0)] + [(None, None)] * (n - 1), method="highs")
    assert res.status == 0
    return -res.fun


# --- the duality, symbolic instance and numeric LPs -------------------------------------------

@pytest.mark.validates("kr.duality")
@pytest.mark.parametrize("seed", range(5))
def test_registry_duality_instance_matches_pot_and_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    vals = rng.uniform(0.05, 1.0, size=5)
    q1, w, q3, u, v = vals / vals.sum()  # masses summing to 1
    d1, d2, x1 = rng.uniform(0.1, 2.0), rng.uniform(0.1, 2.0), rng.normal()
    xs = np.array([x1, x1 + d1, x1 + d1 + d2])
    P, Q = np.array([q1 + u, w, q3 + v]), np.array([q1, w + u + v, q3])
    subs = {dw.q1: q1, dw.w: w, dw.q3: q3, dw.u: u, dw.v: v, dw.d1: d1, dw.d2: d2, dw.K: 2.5}
    claim = {k: float(e.xreplace(subs)) for k, e in dw.duality.claim.items()}
    primal = ot.emd2(P, Q, np.abs(xs[:, None] - xs[None]))
    # primal (network simplex), dual (LP) and the 1-D formula agree with the claim to LP precision
    assert abs(primal - claim["W1"]) < 1e-9
    assert abs(_dual_lp(xs[:, None], P, Q) - claim["W1"]) < 1e-8
    assert abs(_dual_lp(xs[:, None], P, Q, K=2.5) - claim["KW1"]) < 1e-8
    assert abs(stats.wasserstein_distance(xs, xs, P, Q) - claim["W1"]) < 1e-12
    for mutant in dw.duality.mutants:  # the numeric comparison rejects every mutant
        wrong = {k: float(e.xreplace(subs)) for k, e in mutant.claim.items()}
        assert any(abs(wrong[k] - claim[k]) > 1e-3 for k in wrong)


@pytest.mark.parametrize("seed", range(3))
def test_duality_on_larger_2d_supports(seed: int) -> None:
    # Not a proof: the primal (POT) and the dual (scipy's HiGHS) of one problem solved independently.
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(7, 2)), rng.normal(size=(9, 2)) + 1.0
    a, b = rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(9))
    primal = ot.emd2(a, b, ot.dist(x, y, metric="euclidean"))
    pts = np.concatenate([x, y])
    dual = _dual_lp(pts, np.concatenate([a, np.zeros(9)]), np.concatenate([np.zeros(7), b]))
    assert abs(primal - dual) < 1e-8  # both solvers are exact up to their feasibility tolerance


@pytest.mark.validates("kr.summation_by_parts")
@pytest.mark.parametrize("n", [2, 5, 40])
def test_summation_by_parts_numerically(n: int) -> None:
    rng = np.random.default_rng(n)
    f = rng.normal(size=n)
    p, q = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
    Fp, Fq = np.cumsum(p), np.cumsum(q)
    summand = sp.lambdify((dw.f_i, dw.f_i1, dw.F_i, dw.G_i), dw.summation_by_parts.claim["summand"], "numpy")
    rhs = float(np.sum(summand(f[:-1], f[1:], Fp[:-1], Fq[:-1])))
    assert abs(rhs - float(f @ (p - q))) < 1e-12  # float64 round-off of n terms
    wrong = sp.lambdify((dw.f_i, dw.f_i1, dw.F_i, dw.G_i), dw.summation_by_parts.mutants[0].claim["summand"], "numpy")
    assert abs(float(np.sum(wrong(f[:-1], f[1:], Fp[:-1], Fq[:-1]))) - float(f @ (p - q))) > 1e-6


def test_weak_duality_on_random_couplings_and_potentials() -> None:
    # Any coupling's cost bounds any 1-Lipschitz potential's value (kr.weak_duality); the LP's
    # optimal potential attains the optimal coupling's cost (strong duality, numerically).
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(5, 2)) + 0.5
    a, b = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(5))
    cost = ot.dist(x, y, metric="euclidean")
    for _ in range(20):
        # a random coupling with marginals a and b (Sinkhorn with a random cost), a random
        # 1-Lipschitz potential (a distance to a random point, times a random sign)
        plan = ot.sinkhorn(a, b, rng.uniform(size=(6, 5)), reg=0.5)
        centre, sign = rng.normal(size=2), rng.choice([-1.0, 1.0])
        fx, fy = sign * np.linalg.norm(x - centre, axis=1), sign * np.linalg.norm(y - centre, axis=1)
        value = fx @ plan.sum(1) - fy @ plan.sum(0)
        assert value <= float((plan * cost).sum()) + 1e-9  # Sinkhorn's marginals hold to ~1e-9


@pytest.mark.validates("kr.duality")
@pytest.mark.parametrize("n,m", [(1, 1), (50, 50), (300, 170)])
def test_wasserstein1_1d_matches_scipy_and_pot(device: torch.device, n: int, m: int) -> None:
    g = torch.Generator(device=device).manual_seed(n + m)
    x = torch.randn(n, generator=g, device=device, dtype=F64)
    y = 0.7 * torch.randn(m, generator=g, device=device, dtype=F64) + 0.5
    got = wasserstein1_1d(x, y).item()
    xn, yn = x.cpu().numpy(), y.cpu().numpy()
    assert abs(got - stats.wasserstein_distance(xn, yn)) < 1e-12  # both exact: round-off only
    pot = ot.emd2(np.full(n, 1 / n), np.full(m, 1 / m), np.abs(xn[:, None] - yn[None]))
    assert abs(got - pot) < 1e-9  # the network simplex stops at 1e-9-level feasibility


def test_wasserstein1_1d_is_batched_and_checks_input(device: torch.device) -> None:
    g = torch.Generator(device=device).manual_seed(0)
    x, y = torch.randn(4, 3, 40, generator=g, device=device), torch.randn(4, 3, 25, generator=g, device=device)
    batched = wasserstein1_1d(x, y)
    assert batched.shape == (4, 3)
    assert torch.allclose(batched[2, 1], wasserstein1_1d(x[2, 1], y[2, 1]))
    with pytest.raises(ValueError, match="x contains NaN"):
        wasserstein1_1d(torch.tensor([0.0, float("nan")]), torch.zeros(2))
    with pytest.raises(ValueError, match="batch shape"):
        wasserstein1_1d(torch.zeros(2, 3), torch.zeros(3, 3))


@pytest.mark.validates("wgan.parallel_lines")
def test_parallel_lines_w1_by_pot() -> None:
    y = np.linspace(0, 1, 101)
    for theta in (0.3, 1.7):
        P, Q = np.stack([np.zeros_like(y), y], 1), np.stack([np.full_like(y, theta), y], 1)
        w = np.full(101, 1 / 101)
        got = ot.emd2(w, w, ot.dist(P, Q, metric="euclidean"))
        want = float(dw.parallel_lines.claim["W1"].xreplace({dw.theta: theta}))
        assert abs(got - want) < 1e-9


# --- gradient penalty ---------------------------------------------------------------------------

def test_gradient_penalty_of_linear_critic_is_exact() -> None:
    lin = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 2.0]], dtype=F64))  # |grad| = 3
    x = torch.randn(10, 3, dtype=F64)
    gp = gradient_penalty(lin, x, x + 1)
    assert torch.allclose(gp.grad_norm, torch.full((10,), 3.0, dtype=F64))
    assert gp.penalty.item() == pytest.approx(4.0, abs=1e-12)
    # interpolates lie on the segments between the pairs
    eps = (gp.interpolates - (x + 1))[:, 0] / (x - (x + 1))[:, 0]
    assert ((eps >= 0) & (eps <= 1)).all()
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(lin, x, x[:5])


def interpolate_density(x: np.ndarray, mu_q: float) -> np.ndarray:
    """Density at x of eps X + (1 - eps) Y, X ~ N(0, 1), Y ~ N(mu_q, 1), eps ~ U(0, 1).

    Given eps the interpolate is N((1 - eps) mu_q, eps^2 + (1 - eps)^2); the average over eps is a
    midpoint rule with 1000 nodes (error ~1e-7 for this smooth integrand).
    """
    eps = (np.arange(1000) + 0.5) / 1000
    return stats.norm.pdf(x[:, None], (1 - eps) * mu_q, np.hypot(eps, 1 - eps)).mean(-1)


def gp_prediction(mu_q: float, lam: float) -> tuple[callable, float]:
    """The registry's penalised optimum between N(0, 1) and N(mu_q, 1): slope function and raw gap."""
    slope = sp.lambdify((dw.g, dw.lam, dw.rho), dw.gp_pointwise.claim["slope"], "numpy")
    gap = sp.lambdify((dw.g, dw.lam, dw.rho), dw.gp_pointwise.claim["gap"], "numpy")
    t = np.linspace(-7, 9, 1601)
    g = stats.norm.cdf(t) - stats.norm.cdf(t - mu_q)  # F_P - F_Q > 0: P lies to the left
    total_gap = np.trapezoid(gap(g, lam, interpolate_density(t, mu_q)), t)  # trapezoid error ~1e-6

    def slope_at(x: np.ndarray) -> np.ndarray:
        return slope(stats.norm.cdf(x) - stats.norm.cdf(x - mu_q), lam, interpolate_density(x, mu_q))
    return slope_at, float(total_gap)


@pytest.mark.slow
@pytest.mark.validates("wgan.gp_pointwise")
def test_gp_critic_has_the_predicted_slope_and_gap(device: torch.device) -> None:
    mu_q, lam = 2.0, 10.0
    P = lambda n, g: torch.randn(n, 1, generator=g, device=device)  # noqa: E731
    Q = lambda n, g: mu_q + torch.randn(n, 1, generator=g, device=device)  # noqa: E731
    torch.manual_seed(0)
    critic = MLP(1, 1, hidden=64, depth=2).to(device)
    fit_critic(critic, P, Q, steps=300, batch_size=256, lam=lam, lr=3e-3)
    slope_at, gap_want = gp_prediction(mu_q, lam)
    g = torch.Generator(device=device).manual_seed(5)
    gap = critic_gap(critic, P(100_000, g), Q(100_000, g)).item()
    # W1 = 2; the penalised optimum's gap is W1 + int g^2/(2 lambda rho) = 2.210.  Monte Carlo sd of the
    # gap with 1e5 samples per law is ~0.005; 300 Adam steps leave the critic within ~0.015 of the
    # penalised optimum (measured on CPU).  0.04 covers both, and rejects the hard-constraint value
    # 2 (off by 0.21) and the penalised value W1 + int g^2/(4 lambda rho) = 2.105 (off by 0.105).
    assert abs(gap - gap_want) < 0.04
    # the slope on the bulk of the interpolates follows 1 + |g| / (2 lambda rho), well above 1
    x = np.linspace(-0.5, 2.5, 13)
    t = torch.tensor(x, dtype=torch.float32, device=device).unsqueeze(-1).requires_grad_(True)
    (slope,) = torch.autograd.grad(critic(t).sum(), t)
    predicted = slope_at(x)
    # measured max deviation ~0.01 with this budget; 0.04 is half the smallest predicted excess
    # over 1 on these points (0.083), so "slope = 1" (the hard constraint) fails
    assert np.max(np.abs(slope.abs().squeeze(-1).cpu().numpy() - predicted)) < 0.04
    assert (predicted - 1).min() > 0.08
    # on the interpolates themselves the gradient norm is close to 1, as the penalty intends (the
    # excess above 1 is the soft-constraint bias: predicted 0.08-0.18 on the bulk)
    norms = gradient_penalty(critic, P(4096, g), Q(4096, g)).grad_norm
    assert 1.0 < norms.mean().item() < 1.25


# --- power iteration and spectral normalisation --------------------------------------------------

@pytest.mark.validates("wgan.power_iteration")
def test_power_iteration_matches_svdvals(device: torch.device) -> None:
    g = torch.Generator(device=device).manual_seed(0)
    W = torch.randn(6, 5, 7, generator=g, device=device, dtype=F64)  # a batch of 6 matrices
    est = power_iteration(W, n_iter=500, generator=g).sigma
    # 500 iterations: the error decays like (s2/s1)^(4k); for these matrices s2/s1 < 0.95, so the
    # remaining error is far below float64 round-off (1e-13 relative)
    torch.testing.assert_close(est, torch.linalg.svdvals(W)[..., 0], rtol=1e-10, atol=0)


@pytest.mark.validates("wgan.power_iteration")
def test_power_iteration_error_follows_registry(device: torch.device) -> None:
    # W = U diag(s) V^T with three singular values; start u_0 = sum_i w_i U_i
    s = np.array([2.0, 1.3, 0.7])
    w = np.array([0.5, 0.6, 0.62])
    w = w / np.linalg.norm(w)
    U = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1), dtype=F64)).Q
    V = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(2), dtype=F64)).Q
    W = (U @ torch.diag(torch.tensor(s, dtype=F64)) @ V.T).to(device)
    u0 = (U @ torch.tensor(w, dtype=F64)).to(device)
    err = to_instance(dw.power_iteration.claim["error"], {dw._r: 3})
    names = {str(x): x for x in err.free_symbols}
    for k in range(1, 7):
        sigma = power_iteration(W, n_iter=k, u=u0).sigma.item()
        # v_k is proportional to (W^T W)^(k-1) W^T u_0: coefficients c_i = s_i w_i, powers k - 1
        values = {names[f"lambda_{i + 1}"]: s[i] ** 2 for i in range(3)}
        values |= {names[f"c_{i + 1}"]: s[i] * w[i] for i in range(3)}
        values |= {names[f"b_{i + 1}"]: s[i] ** (2 * (k - 1)) for i in range(3)}
        want = float(err.xreplace(values))
        assert abs((s[0] ** 2 - sigma**2) - want) < 1e-12  # float64 round-off of a 3 x 3 product
    with pytest.raises(ValueError, match="n_iter"):
        power_iteration(W, n_iter=0)


def test_spectral_normalised_critic_is_1_lipschitz(device: torch.device) -> None:
    torch.manual_seed(0)
    critic = spectral_normalise(MLP(2, 1, hidden=32, depth=2, activation=torch.nn.ReLU)).to(device=device, dtype=F64)
    x = torch.randn(512, 2, device=device, dtype=F64)
    for _ in range(100):  # power iterations run in training mode
        critic(x)
    for layer in critic.modules():
        if isinstance(layer, torch.nn.Linear):
            assert abs(torch.linalg.svdvals(layer.weight.detach()).max().item() - 1) < 1e-6
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(xr).sum(), xr)
    # product of layer norms is 1 and ReLU is 1-Lipschitz: |grad f| <= 1 up to the 1e-6 above
    assert grad.norm(dim=-1).max() <= 1 + 1e-5


def test_weight_clipping_and_wgan_losses(device: torch.device) -> None:
    torch.manual_seed(0)
    wgan = WGAN(1, method="clip", clip=0.05, hidden=16).to(device)
    with torch.no_grad():
        for p in wgan.discriminator.parameters():
            p.mul_(10)
    wgan.after_discriminator_step()
    assert all(p.abs().max() <= 0.05 for p in wgan.discriminator.parameters())
    x = torch.randn(8, 1, device=device)
    assert torch.allclose(wgan.discriminator_loss(x, x + 1), -critic_gap(wgan.discriminator, x, x + 1))
    with pytest.raises(ValueError, match="method"):
        WGAN(1, method="weights")
    with pytest.raises(ValueError, match="c must be"):
        clip_weights_(wgan, 0.0)


# --- disjoint supports: vanishing vs non-vanishing gradients ------------------------------------

def _interpolate_density_on_gap(theta: float, edges: np.ndarray) -> np.ndarray:
    """Density of eps U + (1 - eps)(theta + V), U, V, eps ~ U(0, 1), on the bins ``edges``: a
    histogram of 10^6 interpolates (relative Monte Carlo error ~0.5% per bin of width 0.05)."""
    rng = np.random.default_rng(0)
    e, a, b = rng.uniform(size=(3, 10**6))
    counts, _ = np.histogram(e * a + (1 - e) * (theta + b), bins=edges)
    return counts / (10**6 * np.diff(edges))


@pytest.mark.slow
@pytest.mark.validates("wgan.gp_pointwise")
def test_disjoint_supports_critic_points_to_the_data(device: torch.device) -> None:
    theta, lam = 3.0, 10.0
    P = lambda n, g: torch.rand(n, 1, generator=g, device=device)  # noqa: E731  U[0, 1]
    Q = lambda n, g: theta + torch.rand(n, 1, generator=g, device=device)  # noqa: E731
    torch.manual_seed(0)
    disc = MLP(1, 1, hidden=32, depth=2).to(device)
    fit_discriminator(disc, P, Q, steps=300, batch_size=128, lr=3e-3)
    th = torch.tensor(theta, device=device, requires_grad=True)
    u = torch.rand(4096, 1, generator=torch.Generator(device=device).manual_seed(1), device=device)
    (g_js,) = torch.autograd.grad(generator_loss(disc(th + u).squeeze(-1), "saturating"), th)
    # A discriminator that separates the supports saturates: D ~ 0 on Q's support, and the
    # saturating loss's gradient is -D times the logit's slope (measured ~1e-3).
    assert abs(g_js.item()) < 0.01
    edges = np.linspace(1.25, 2.75, 31)
    rho = _interpolate_density_on_gap(theta, edges)
    slope_fn = sp.lambdify((dw.g, dw.lam, dw.rho), dw.gp_pointwise.claim["slope"], "numpy")
    spurious_fn = sp.lambdify((dw.g, dw.lam, dw.rho), dw.gp_pointwise.claim["spurious"], "numpy")
    # on the gap F_P - F_Q = 1 > 0: the mirror image (g = 1 for -f) of the theorem's case
    want_star = -float(np.mean(slope_fn(1.0, lam, rho)))  # about -1.15
    want_dagger = -float(np.mean(spurious_fn(1.0, lam, rho)))  # about +0.85
    xg = torch.tensor(0.5 * (edges[1:] + edges[:-1]), dtype=torch.float32, device=device).unsqueeze(-1)
    xg.requires_grad_(True)
    results = {}
    for one_sided in (False, True):
        torch.manual_seed(0)  # the same initial critic: its slope on the gap starts positive
        critic = MLP(1, 1, hidden=32, depth=2).to(device)
        fit_critic(critic, P, Q, steps=300, batch_size=128, lr=3e-3, lam=lam, one_sided=one_sided)
        slope = torch.autograd.grad(critic(xg).sum(), xg)[0].mean().item()
        (grad,) = torch.autograd.grad(-critic(th + u).mean(), th)
        results[one_sided] = (slope, grad.item())
    # One-sided penalty: the critic decreases across the gap with the predicted slope (measured
    # within 0.01; 0.05 allows another device's arithmetic and is a third of the soft-constraint
    # excess 0.15 over 1), and the generator gradient is positive: theta moves towards the data.
    slope, grad = results[True]
    assert abs(slope - want_star) < 0.05 and slope < -1
    assert grad > 0.5
    # Two-sided penalty from the same start: stuck at the wrong-signed stationary point s-dagger
    # that wgan.gp_pointwise predicts (measured within 0.01), with a gradient pointing away.
    slope, grad = results[False]
    assert abs(slope - want_dagger) < 0.05 and slope > 0
    assert grad < 0


def test_one_sided_penalty_ignores_slopes_below_one() -> None:
    lin = torch.nn.Linear(2, 1, bias=False).double()
    x = torch.randn(16, 2, dtype=F64)
    for w, two, one in (([0.3, 0.4], 0.25, 0.0), ([3.0, 4.0], 16.0, 16.0)):  # |grad f| = 0.5 and 5
        with torch.no_grad():
            lin.weight.copy_(torch.tensor([w], dtype=F64))
        assert gradient_penalty(lin, x, x + 1).penalty.item() == pytest.approx(two, abs=1e-12)
        assert gradient_penalty(lin, x, x + 1, one_sided=True).penalty.item() == pytest.approx(one, abs=1e-12)


def test_wgan_generator_loss_is_minus_the_critic_mean(device: torch.device) -> None:
    # WGAN.generator_loss = -E_Q f: for a linear critic f(x) = w . x + c its gradient with respect to
    # each generated sample is -w / B, which moves the samples up the critic, towards the data.
    torch.manual_seed(0)
    wgan = WGAN(2, method="gp", hidden=8).to(device=device, dtype=F64)
    lin = torch.nn.Linear(2, 1).to(device=device, dtype=F64)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.6, -0.8]], dtype=F64))
        lin.bias.fill_(0.3)
    wgan.discriminator = lin
    fake = torch.randn(10, 2, device=device, dtype=F64, requires_grad=True)
    loss = wgan.generator_loss(fake)
    assert loss.item() == pytest.approx(-(fake.detach() @ lin.weight.detach().T + 0.3).mean().item(), abs=1e-12)
    (grad,) = torch.autograd.grad(loss, fake)
    torch.testing.assert_close(grad, -lin.weight.detach().expand(10, 2) / 10, rtol=0, atol=1e-15)


def test_spectral_norm_gradient_is_the_gradient_of_w_over_sigma_max(device: torch.device) -> None:
    # At a converged power iteration, d sigma / dW = u v^T (Miyato et al., eq. (12)): the gradient that
    # reaches W through the parametrisation equals the gradient of W / sigma_max(W) with sigma_max
    # differentiated exactly (through torch.linalg.svdvals).
    torch.manual_seed(0)
    layer = spectral_normalise(torch.nn.Linear(5, 4)).to(device=device, dtype=F64)
    for _ in range(200):  # converge the persistent vector u (training mode)
        layer(torch.zeros(1, 5, device=device, dtype=F64))
    layer.eval()  # no further power iterations: a fixed u
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(1), dtype=F64).to(device)
    target = torch.randn(7, 4, generator=torch.Generator().manual_seed(2), dtype=F64).to(device)
    W = layer.parametrizations.weight.original
    loss = (layer(x) - target).square().sum()
    (got,) = torch.autograd.grad(loss, W)
    W_ref = W.detach().clone().requires_grad_(True)
    out = x @ (W_ref / torch.linalg.svdvals(W_ref)[0]).T + layer.bias.detach()
    (want,) = torch.autograd.grad((out - target).square().sum(), W_ref)
    # the power iteration converged to float64 round-off (gap s2/s1 < 0.9 after 200 iterations)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)
    # a gradient that forgets sigma's dependence on W (sigma detached) is far from it
    W_det = W.detach().clone().requires_grad_(True)
    out = x @ (W_det / torch.linalg.svdvals(W_det)[0].detach()).T + layer.bias.detach()
    (wrong,) = torch.autograd.grad((out - target).square().sum(), W_det)
    assert (wrong - want).abs().max() > 1e-3


@pytest.mark.slow
def test_wgan_sn_trains_a_lipschitz_critic_and_moves_the_generator(device: torch.device) -> None:
    # A WGAN with a spectrally normalised critic on 1-D data N(2, 0.5^2), from a generator near 0:
    # after training, the critic is 1-Lipschitz everywhere (spectral normalisation) and the
    # generator's samples have moved to the data (mean and spread).
    from gencode.distributions import mixture_1d
    from gencode.gan import train_adversarial

    data = mixture_1d([1.0], [2.0], [0.5], device=device)
    torch.manual_seed(0)
    wgan = WGAN(1, latent_dim=1, hidden=32, depth=2, method="sn").to(device)
    g = torch.Generator(device=device).manual_seed(1)
    before = wgan.sample(4000, g).detach()
    train_adversarial(wgan, data.sample, steps=400, batch_size=128, n_critic=2, lr_d=2e-3, lr_g=2e-3, betas=(0.5, 0.9))
    after = wgan.sample(4000, g).detach()
    x = torch.linspace(-3, 5, 401, device=device).unsqueeze(-1).requires_grad_(True)
    wgan.eval()  # use the stored power-iteration vectors, as after training
    (slope,) = torch.autograd.grad(wgan.discriminator(x).sum(), x)
    # each layer's weight divided by its (estimated) largest singular value, ReLU 1-Lipschitz:
    # |f'| <= 1 up to the power iteration's error (one iteration per step, measured < 1e-3)
    assert slope.abs().max().item() <= 1.01
    w1_before = wasserstein1_1d(before[:, 0], data.sample(4000, g)[:, 0]).item()
    w1_after = wasserstein1_1d(after[:, 0], data.sample(4000, g)[:, 0]).item()
    print(f"W1 before {w1_before:.3f}, after {w1_after:.3f}; mean {after.mean().item():.3f}, sd {after.std().item():.3f}")
    # The untrained generator sits near 0 (W1 ~ 2).  WGAN dynamics oscillate around the data rather
    # than converge at this budget (the mean swings between 1.6 and 2.4 over 400-800 steps in our
    # runs), so the test asks for a threefold reduction of W1, which an untrained, collapsed or
    # diverged generator does not reach.
    assert w1_before > 1.5
    assert w1_after < w1_before / 3
