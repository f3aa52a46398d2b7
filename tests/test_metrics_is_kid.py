"""Inception Score and KID against straightforward loops and the registered identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch

from derivations import core
from derivations import evaluation as de
from gencode.metrics import inception_score, kid, mmd2_unbiased, polynomial_kernel


def _is_loop(p: np.ndarray) -> float:
    marg = p.mean(0)
    return math.exp(np.mean([sum(pi[k] * math.log(pi[k] / marg[k]) for k in range(len(pi))) for pi in p]))


@pytest.mark.validates("is.mutual_information", "is.bounds")
def test_inception_score_is_exp_mutual_information(device, generator) -> None:
    logits = 2 * torch.randn(50, 6, generator=torch.Generator().manual_seed(11), dtype=torch.float64).to(device)
    probs = logits.softmax(-1)
    got = float(inception_score(probs))
    pn = probs.cpu().numpy()
    assert got == pytest.approx(_is_loop(pn), rel=1e-12)
    # H(y) - H(y|x), the registered form
    marg = pn.mean(0)
    mi = -(marg * np.log(marg)).sum() + (pn * np.log(pn)).sum() / len(pn)
    assert math.log(got) == pytest.approx(mi, rel=1e-10)
    assert 1 <= got <= 6
    # the bounds are attained: one-hot predictions spread evenly over K classes give K; a constant one gives 1
    eye = torch.eye(6, dtype=torch.float64, device=device).repeat(3, 1)
    assert float(inception_score(eye)) == pytest.approx(6, rel=1e-12)
    assert float(inception_score(probs[:1].expand(10, 6))) == pytest.approx(1, rel=1e-12)
    with pytest.raises(ValueError, match="probs"):
        inception_score(torch.ones(3, 2))
    with pytest.raises(ValueError, match="probs"):
        inception_score(torch.ones(3))


@pytest.mark.validates("kid.unbiased")
def test_mmd2_unbiased_matches_a_loop(device, generator) -> None:
    g = torch.Generator().manual_seed(11)  # CPU stream, deterministic on any device
    x = torch.randn(7, 3, generator=g, dtype=torch.float64).to(device)
    y = torch.randn(5, 3, generator=g, dtype=torch.float64).to(device) + 0.5
    k = lambda a, b: (float(a @ b) / 3 + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    ref = (sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
           + sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
           - 2 * sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n))
    assert float(mmd2_unbiased(x, y)) == pytest.approx(ref, rel=1e-12)
    assert float(kid(x, y)) == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError, match="x"):
        mmd2_unbiased(x[:1], y)
    with pytest.raises(ValueError, match="dimension"):
        mmd2_unbiased(x, y[:, :2])


def _exact_mmd2(mu1, sd1, mu2, sd2) -> float:
    """MMD^2 with the cubic kernel between two diagonal Gaussians in d = 2, exactly (SymPy Gaussian moments)."""
    xs, ys = sp.symbols("x1 x2", real=True), sp.symbols("y1 y2", real=True)

    def e(poly, laws):  # expectation over independent coordinates, one at a time
        for v, (m, s) in laws.items():
            poly = core.gaussian_expectation(poly, v, sp.nsimplify(m), sp.nsimplify(s) ** 2)
        return poly

    kern = ((xs[0] * ys[0] + xs[1] * ys[1]) / 2 + 1) ** 3
    lx = lambda v, mu, sd: {v[0]: (mu[0], sd[0]), v[1]: (mu[1], sd[1])}  # noqa: E731
    kxx = e(kern, lx(xs, mu1, sd1) | lx(ys, mu1, sd1))
    kyy = e(kern, lx(xs, mu2, sd2) | lx(ys, mu2, sd2))
    kxy = e(kern, lx(xs, mu1, sd1) | lx(ys, mu2, sd2))
    return float(kxx + kyy - 2 * kxy)


@pytest.mark.validates("kid.unbiased")
def test_kid_is_unbiased_by_monte_carlo(device, generator) -> None:
    mu1, sd1, mu2, sd2 = (0.0, 0.0), (1.0, 1.0), (0.5, 0.0), (1.0, 0.6)
    exact = _exact_mmd2(mu1, sd1, mu2, sd2)
    cpu = torch.Generator().manual_seed(12)  # one CPU stream: x and y independent, deterministic on any device
    reps, m = 4000, 20  # small samples: the biased V-statistic is then far off
    g = lambda mu, sd: (torch.tensor(mu, dtype=torch.float64) + torch.tensor(sd, dtype=torch.float64)  # noqa: E731
                        * torch.randn(reps, m, 2, generator=cpu, dtype=torch.float64)).to(device)
    x, y = g(mu1, sd1), g(mu2, sd2)
    est = mmd2_unbiased(x, y)  # (reps,)
    se = float(est.std()) / math.sqrt(reps)
    assert abs(float(est.mean()) - exact) < 4 * se  # 4 standard errors of the mean of 4000 replicates
    # the V-statistic (diagonal included, / m^2): biased by (E k(x,x) - E k(x,x'))/m per sample, far beyond 4 se
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    v_stat = kxx.mean((-2, -1)) + kyy.mean((-2, -1)) - 2 * kxy.mean((-2, -1))
    assert abs(float(v_stat.mean()) - exact) > 10 * se
