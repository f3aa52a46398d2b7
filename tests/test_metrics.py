"""``gencode.metrics`` against scipy, POT and the registered identities (``derivations.evaluation``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import sympy as sp
import torch

from derivations import evaluation as de
from derivations.indexed_sums import to_instance
from gencode.distributions import eight_gaussians
from gencode.metrics import (
    density_coverage,
    fid,
    frechet_distance,
    gaussian_stats,
    precision_recall,
    sqrtm_psd,
)

F64 = torch.float64


def _random_spd(d: int, g: torch.Generator, device: torch.device, batch: tuple[int, ...] = ()) -> torch.Tensor:
    A = torch.randn(*batch, d, d, generator=g, device=device, dtype=F64)
    return A @ A.mT / d + 0.05 * torch.eye(d, device=device, dtype=F64)


def _scipy_frechet(mu1, S1, mu2, S2) -> float:
    covmean = scipy.linalg.sqrtm(S1 @ S2)  # the reference implementation's formula (pytorch-fid)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(S1) + np.trace(S2) - 2 * np.trace(covmean.real))


@pytest.mark.validates("fid.frechet_commuting", "fid.frechet_1d")
@pytest.mark.parametrize("d", [1, 2, 5, 20])
def test_frechet_distance_matches_scipy_sqrtm(device: torch.device, d: int) -> None:
    g = torch.Generator(device=device).manual_seed(d)
    S1, S2 = _random_spd(d, g, device, (4,)), _random_spd(d, g, device, (4,))
    mu1, mu2 = torch.randn(4, d, generator=g, device=device, dtype=F64), torch.randn(4, d, generator=g, device=device, dtype=F64)
    got = frechet_distance(mu1, S1, mu2, S2)
    assert got.shape == (4,)
    for i in range(4):
        want = _scipy_frechet(*(t[i].cpu().numpy() for t in (mu1, S1, mu2, S2)))
        # the tolerance: 1e-6 relative (eigh and sqrtm differ by ~1e-12 here)
        assert abs(got[i].item() - want) <= 1e-6 * abs(want)


def test_equal_covariances_give_the_squared_mean_distance(device: torch.device) -> None:
    g = torch.Generator(device=device).manual_seed(0)
    S = _random_spd(8, g, device)
    mu1, mu2 = torch.randn(8, generator=g, device=device, dtype=F64), torch.randn(8, generator=g, device=device, dtype=F64)
    got = frechet_distance(mu1, S, mu2, S).item()
    # the trace term cancels up to round-off of eigh on an 8 x 8 matrix with trace ~10: 1e-11
    assert abs(got - (mu1 - mu2).square().sum().item()) < 1e-11
    x = torch.randn(100, 8, generator=g, device=device, dtype=F64)
    assert fid(x, x).item() < 1e-11  # identical inputs: zero up to round-off


@pytest.mark.validates("fid.frechet_1d")
def test_frechet_1d_matches_registry(device: torch.device) -> None:
    rng = np.random.default_rng(0)
    expr = sp.lambdify((de.m1, de.m2, de.s1, de.s2), de.frechet_1d.claim["W2sq"], "math")
    for _ in range(20):
        m1, m2, s1, s2 = rng.normal(), rng.normal(), rng.uniform(0.1, 3), rng.uniform(0.1, 3)
        got = frechet_distance(torch.tensor([m1], dtype=F64, device=device), torch.tensor([[s1**2]], dtype=F64, device=device),
                               torch.tensor([m2], dtype=F64, device=device), torch.tensor([[s2**2]], dtype=F64, device=device))
        assert got.item() == pytest.approx(expr(m1, m2, s1, s2), rel=1e-12, abs=1e-14)


@pytest.mark.validates("fid.frechet_commuting")
@pytest.mark.parametrize("d", [2, 5])
def test_frechet_commuting_matches_registry_and_rejects_mutants(device: torch.device, d: int) -> None:
    rng = np.random.default_rng(d)
    claim = to_instance(de.frechet_commuting.claim["W2sq"], {de._d: d})
    mutants = [to_instance(m.claim["W2sq"], {de._d: d}) for m in de.frechet_commuting.mutants]
    names = {str(x): x for x in claim.free_symbols}
    for _ in range(10):
        U = np.linalg.qr(rng.normal(size=(d, d)))[0]  # a common orthonormal eigenbasis
        a, c, e = rng.uniform(0.2, 2.0, size=d), rng.uniform(0.2, 2.0, size=d), rng.normal(size=d)
        S1, S2 = U @ np.diag(a**2) @ U.T, U @ np.diag(c**2) @ U.T
        got = frechet_distance(torch.tensor(U @ e, device=device), torch.tensor(S1, device=device),
                               torch.zeros(d, dtype=F64, device=device), torch.tensor(S2, device=device)).item()
        values = {names[f"{v}_{i + 1}"]: arr[i] for v, arr in (("a", a), ("c", c), ("e", e)) for i in range(d)}
        want = float(claim.xreplace(values))
        assert got == pytest.approx(want, rel=1e-10, abs=1e-12)  # eigh round-off on a d x d matrix
        assert all(abs(float(m.xreplace(values)) - want) > 1e-6 for m in mutants)


@pytest.mark.validates("fid.frechet_coupling")
def test_frechet_distance_is_the_cost_of_the_linear_coupling(device: torch.device) -> None:
    # T = S1^{-1/2} (S1^{1/2} S2 S1^{1/2})^{1/2} S1^{-1/2} maps N(0, S1) to N(0, S2) (T S1 T = S2), and
    # the Monte Carlo cost E||X + mu1 - (mu2 + T X)||^2 matches frechet_distance (non-commuting S1, S2).
    g = torch.Generator(device=device).manual_seed(7)
    d = 4
    S1, S2 = _random_spd(d, g, device), _random_spd(d, g, device)
    mu1, mu2 = torch.randn(d, generator=g, device=device, dtype=F64), torch.randn(d, generator=g, device=device, dtype=F64)
    M = sqrtm_psd(S1)
    C = sqrtm_psd(M @ S2 @ M)
    T = torch.linalg.solve(M, torch.linalg.solve(M, C).mT)  # M^{-1} C M^{-1} (symmetric)
    torch.testing.assert_close(T @ S1 @ T, S2, rtol=1e-9, atol=1e-10)
    assert (S1 @ S2 - S2 @ S1).abs().max() > 0.1  # genuinely non-commuting
    n = 400_000
    X = torch.randn(n, d, generator=g, device=device, dtype=F64) @ torch.linalg.cholesky(S1).mT
    cost = ((X + mu1) - (mu2 + X @ T)).square().sum(-1)
    want = frechet_distance(mu1, S1, mu2, S2).item()
    assert abs(cost.mean().item() - want) < 5 * cost.std().item() / math.sqrt(n)  # five standard errors
    # the mutant without the square root in the cross term is far outside that band
    wrong = ((mu1 - mu2).square().sum() + S1.trace() + S2.trace() - 2 * (M @ S2 @ M).trace()).item()
    assert abs(wrong - want) > 50 * cost.std().item() / math.sqrt(n)


def test_gaussian_stats_divides_by_n_minus_one(device: torch.device) -> None:
    # The sample covariance with n - 1 is unbiased: averaged over many small samples it matches S
    # (with n it would be (n - 1)/n = 0.8 S for n = 5, twenty standard errors away).
    g = torch.Generator(device=device).manual_seed(11)
    L = torch.tensor([[1.0, 0.0], [0.6, 0.8]], dtype=F64, device=device)
    S = L @ L.T
    reps, n = 20_000, 5
    x = torch.randn(reps, n, 2, generator=g, device=device, dtype=F64) @ L.T
    stats = gaussian_stats(x)
    np.testing.assert_allclose(stats.cov[0].cpu().numpy(), np.cov(x[0].cpu().numpy(), rowvar=False), rtol=1e-12)
    mean_cov = stats.cov.mean(0)
    se = stats.cov.std(0) / math.sqrt(reps)
    assert ((mean_cov - S).abs() < 5 * se).all()  # five Monte Carlo standard errors per entry
    assert ((mean_cov * (n - 1) / n - S).abs() > 5 * se).any()  # the biased version is rejected


def test_sqrtm_psd_squares_back(device: torch.device) -> None:
    g = torch.Generator(device=device).manual_seed(3)
    S = _random_spd(6, g, device, (3,))
    R = sqrtm_psd(S)
    torch.testing.assert_close(R @ R, S, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(R, R.mT)


@pytest.mark.validates("fid.mean_bias")
def test_fid_of_one_law_is_biased_by_order_one_over_n(device: torch.device) -> None:
    # reps independent pairs of n-samples of N(0, S): the mean term averages (2 tr S) / n
    g = torch.Generator(device=device).manual_seed(0)
    reps, n, d = 2000, 50, 3
    L = torch.tensor([[1.0, 0, 0], [0.5, 0.8, 0], [0.2, -0.3, 0.6]], dtype=F64, device=device)
    x = torch.randn(reps, n, d, generator=g, device=device, dtype=F64) @ L.T
    y = torch.randn(reps, n, d, generator=g, device=device, dtype=F64) @ L.T
    mean_term = (gaussian_stats(x).mean - gaussian_stats(y).mean).square().sum(-1)  # (reps,)
    trS = (L @ L.T).trace().item()
    want = float(de.mean_bias.claim["value"].xreplace({de.m1: 0, de.m2: 0, de.v1: trS, de.v2: trS, de.n: n}))
    se = mean_term.std().item() / math.sqrt(reps)
    assert abs(mean_term.mean().item() - want) < 5 * se  # five Monte Carlo standard errors
    # and the whole FID is positive, and shrinks with n
    f_small = fid(x[:200, :20], y[:200, :20]).mean()
    f_large = fid(x[:200], y[:200]).mean()
    assert f_small > f_large > 0


@pytest.mark.validates("prdc.coverage_identical", "prdc.density_identical")
@pytest.mark.parametrize("k", [1, 3, 5])
def test_density_and_coverage_of_one_law(device: torch.device, k: int) -> None:
    g = torch.Generator(device=device).manual_seed(k)
    reps, n = 200, 100
    real = torch.randn(reps, n, 2, generator=g, device=device, dtype=F64)
    fake = torch.randn(reps, n, 2, generator=g, device=device, dtype=F64)
    dc = density_coverage(real, fake, k=k)
    cov_want = float(de.coverage_identical.claim["coverage"].xreplace({de.k: k, de.n: n}).doit())
    for values, want in ((dc.coverage, cov_want), (dc.density, 1.0)):
        se = values.std().item() / math.sqrt(reps)
        assert abs(values.mean().item() - want) < 5 * se  # five Monte Carlo standard errors
    # the finite-n value approaches the limit 1 - 2^-k from above
    assert 0 < cov_want - (1 - 2.0**-k) < 0.01


def test_precision_recall_detects_mode_dropping(device: torch.device) -> None:
    data = eight_gaussians(dtype=F64, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    real = data.sample(1000, g)
    mode = data.responsibilities(real).argmax(-1)
    half = real[mode < 3]  # a "generator" that only covers modes 0, 1, 2
    fake = half[torch.randint(half.shape[0], (1000,), generator=g, device=device)] \
        + 0.02 * torch.randn(1000, 2, generator=g, device=device, dtype=F64)
    pr = precision_recall(real, fake, k=5)
    dc = density_coverage(real, fake, k=5)
    # every generated point sits on a real mode: precision ~1; only 3 of 8 modes are covered
    assert pr.precision > 0.95
    assert 0.3 < pr.recall < 0.45 and 0.3 < dc.coverage < 0.45
    same = precision_recall(real, data.sample(1000, g), k=5)
    assert same.precision > 0.9 and same.recall > 0.9


def test_bad_input_raises(device: torch.device) -> None:
    I2 = torch.eye(2, dtype=F64, device=device)
    z = torch.zeros(2, dtype=F64, device=device)
    with pytest.raises(ValueError, match="S2 must be positive semi-definite"):
        frechet_distance(z, I2, z, torch.diag(torch.tensor([1.0, -1.0], dtype=F64, device=device)))
    with pytest.raises(ValueError, match="S1 must be symmetric"):
        frechet_distance(z, torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=F64, device=device), z, I2)
    with pytest.raises(ValueError, match="S1 must have shape"):
        frechet_distance(z, torch.eye(3, dtype=F64, device=device), z, I2)
    x = torch.randn(10, 2, dtype=F64, device=device)
    with pytest.raises(ValueError, match="k must be smaller"):
        precision_recall(x, x, k=10)
    with pytest.raises(ValueError, match="k must be smaller"):
        density_coverage(x, x, k=12)
    with pytest.raises(ValueError, match="k must be an int"):
        density_coverage(x, x, k=0)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="fake contains NaN"):
        fid(x, bad)
    with pytest.raises(ValueError, match="real contains NaN"):
        precision_recall(bad, x)
    with pytest.raises(ValueError, match="n >= 2"):
        fid(x[:1], x)
