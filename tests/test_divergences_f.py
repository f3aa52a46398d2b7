"""f-divergences, conjugates, the variational bound, Pinsker and the convergence hierarchy.

``gencode.divergences.F_DIVERGENCES`` against the registered generators and conjugates of
``derivations.divergences`` (lambdified, float64: a handful of elementary operations, relative error
far below the 1e-10 used), against independent implementations (``kl_discrete``, ``js_discrete``,
``tv_discrete``, straightforward NumPy sums), and the inequalities at random points.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch

from derivations import divergences as dv
from gencode.divergences import (F_DIVERGENCES, f_divergence_discrete, f_variational_bound, js_discrete,
                                 kl_discrete, tv_discrete, w1_exact)

TOL = 1e-10  # float64, a few elementary operations per value


def _rand_dist(generator: torch.Generator, shape: tuple[int, ...], device) -> torch.Tensor:
    w = torch.rand(*shape, generator=generator, dtype=torch.float64).to(device) + 0.05
    return w / w.sum(-1, keepdim=True)


@pytest.mark.validates("divergences.f.generators")
def test_f_divergences_match_the_registry_and_independent_formulas(device, generator) -> None:
    g = torch.Generator().manual_seed(5)
    p, q = _rand_dist(g, (32, 5), device), _rand_dist(g, (32, 5), device)
    pn, qn = p.cpu().numpy(), q.cpu().numpy()
    for name in dv.F_NAMES:
        f = sp.lambdify(dv.u, dv.f_generators.claim[name], "numpy")
        ref = (qn * f(pn / qn)).sum(-1)
        got = f_divergence_discrete(p, q, name).cpu().numpy()
        np.testing.assert_allclose(got, ref, rtol=TOL, atol=TOL)
        assert (got >= -TOL).all()
    # independent implementations of the named divergences
    np.testing.assert_allclose(f_divergence_discrete(p, q, "kl").cpu(), kl_discrete(p, q).cpu(), rtol=TOL)
    np.testing.assert_allclose(f_divergence_discrete(p, q, "reverse_kl").cpu(), kl_discrete(q, p).cpu(), rtol=TOL)
    np.testing.assert_allclose(f_divergence_discrete(p, q, "js").cpu(), js_discrete(p, q).cpu(), rtol=TOL)
    np.testing.assert_allclose(f_divergence_discrete(p, q, "tv").cpu(), tv_discrete(p, q).cpu(), rtol=TOL)
    np.testing.assert_allclose(f_divergence_discrete(p, q, "hellinger").cpu(),
                               ((np.sqrt(pn) - np.sqrt(qn)) ** 2).sum(-1), rtol=TOL)
    np.testing.assert_allclose(f_divergence_discrete(p, q, "chi2").cpu(), ((pn - qn) ** 2 / qn).sum(-1), rtol=TOL)
    # the refuted mutant (JS generator without its halves) gives twice JS, not JS
    wrong = sp.lambdify(dv.u, dv.f_generators.mutants[0].claim["js"], "numpy")
    np.testing.assert_allclose((qn * wrong(pn / qn)).sum(-1), 2 * js_discrete(p, q).cpu().numpy(), rtol=TOL)


@pytest.mark.validates("divergences.f.conjugates", "divergences.f.fenchel_young")
def test_conjugates_match_the_registry_and_a_brute_force_supremum(device) -> None:
    u = torch.logspace(-6, 6, 200001, dtype=torch.float64, device=device)  # grid for sup_u (s u - f(u))
    for name in dv.F_NAMES:
        gen = F_DIVERGENCES[name]
        star = sp.lambdify(dv._s, dv.f_conjugates.claim[name], "numpy")
        # s inside the domain: f'(v) for v in [0.05, 20]
        s = gen.f_prime(torch.tensor([0.05, 0.3, 0.9, 2.0, 7.0, 20.0], dtype=torch.float64, device=device))
        if name == "tv":
            s = torch.tensor([-0.4, -0.1, 0.0, 0.2, 0.45], dtype=torch.float64, device=device)
        got = gen.conjugate(s)
        np.testing.assert_allclose(got.cpu(), star(s.cpu().numpy()), rtol=TOL, atol=TOL)
        brute = (s[:, None] * u[None] - gen.f(u)[None]).amax(-1)
        # the grid's relative spacing 1.4e-4 puts the maximiser within that of the optimum: an error of
        # order f''(u) (u * 1.4e-4)^2, below 1e-6 for these u
        np.testing.assert_allclose(got.cpu(), brute.cpu(), atol=1e-6)
        # Fenchel-Young at random (u, s), equality at s = f'(u)
        uu = torch.tensor([0.1, 0.5, 1.0, 3.0, 9.0], dtype=torch.float64, device=device)
        gap = gen.f(uu)[:, None] + got[None] - uu[:, None] * s[None]
        assert (gap >= -TOL).all()
        if name != "tv":
            eq = gen.f(uu) + gen.conjugate(gen.f_prime(uu)) - uu * gen.f_prime(uu)
            np.testing.assert_allclose(eq.cpu(), 0.0, atol=TOL)


@pytest.mark.validates("divergences.f.variational")
def test_variational_bound_is_tight_at_the_optimal_critic(device, generator) -> None:
    g = torch.Generator().manual_seed(6)
    p, q = _rand_dist(g, (6,), device), _rand_dist(g, (6,), device)
    for name in ("kl", "reverse_kl", "js", "hellinger", "chi2"):
        gen = F_DIVERGENCES[name]
        t_opt = gen.f_prime(p / q)
        exact = (p * t_opt).sum() - (q * gen.conjugate(t_opt)).sum()  # E_P T - E_Q f*(T), exactly
        assert float(exact) == pytest.approx(float(f_divergence_discrete(p, q, name)), rel=1e-9)
        for _ in range(5):  # any other critic gives less
            t = t_opt + 0.3 * torch.randn(6, generator=g, dtype=torch.float64).to(device)
            if name in ("reverse_kl",):
                t = -t.abs() - 1e-3
            if name == "js":
                t = t.clamp(max=0.5 * math.log(2) - 1e-3)
            if name == "hellinger":
                t = t.clamp(max=1 - 1e-3)
            lower = (p * t).sum() - (q * gen.conjugate(t)).sum()
            assert float(lower) <= float(exact) + TOL
    # the Monte Carlo estimator: within 4 standard errors of D_f at the optimal critic
    n = 200000
    g = torch.Generator().manual_seed(3)  # sampling indices on the CPU keeps the test deterministic on any device
    xp = torch.multinomial(p.cpu(), n, replacement=True, generator=g).to(device)
    xq = torch.multinomial(q.cpu(), n, replacement=True, generator=g).to(device)
    gen = F_DIVERGENCES["kl"]
    t_opt = gen.f_prime(p / q)
    est = f_variational_bound(t_opt[xp], t_opt[xq], "kl")
    se = math.sqrt(float(t_opt[xp].var() / n + gen.conjugate(t_opt[xq]).var() / n))
    assert abs(float(est) - float(kl_discrete(p, q))) < 4 * se


def test_f_divergence_bad_input() -> None:
    with pytest.raises(ValueError, match="name"):
        f_divergence_discrete([0.5, 0.5], [0.5, 0.5], "kld")
    with pytest.raises(ValueError, match="q must be positive"):
        f_divergence_discrete([0.5, 0.5], [1.0, 0.0], "kl")
    with pytest.raises(ValueError, match="critic_q"):
        f_variational_bound(torch.zeros(3), torch.zeros(0), "kl")
    with pytest.raises(ValueError, match="critic_p"):
        f_variational_bound(torch.tensor([math.nan]), torch.zeros(2), "kl")


@pytest.mark.validates("divergences.pinsker.two_point", "divergences.hierarchy.js_tv")
def test_pinsker_and_js_tv_on_random_distributions(device, generator) -> None:
    g = torch.Generator().manual_seed(7)
    p, q = _rand_dist(g, (500, 4), device), _rand_dist(g, (500, 4), device)
    kl, tv, js = kl_discrete(p, q), tv_discrete(p, q), js_discrete(p, q)
    assert bool((tv <= torch.sqrt(kl / 2) + TOL).all())  # Pinsker, general K (data processing)
    assert bool((js <= math.log(2) * tv + TOL).all())
    # two points: KL - 2 (a - b)^2 equals the integral of the certificate (quadrature, 2000 nodes)
    a, b = 0.2, 0.7
    t = torch.linspace(a, b, 20001, dtype=torch.float64)
    integral = torch.trapezoid((t - a) * (1 - 2 * t) ** 2 / (t * (1 - t)), t)  # trapezoid error O(h^2) ~ 1e-9
    bern = float(kl_discrete(torch.tensor([a, 1 - a], dtype=torch.float64), torch.tensor([b, 1 - b], dtype=torch.float64)))
    assert bern - 2 * (a - b) ** 2 == pytest.approx(float(integral), abs=1e-8)
    # the refuted constant 4 fails near a = b = 1/2
    a, b = 0.5, 0.51
    assert float(kl_discrete(torch.tensor([a, 1 - a]), torch.tensor([b, 1 - b]))) < 4 * (a - b) ** 2


@pytest.mark.validates("divergences.hierarchy.diracs", "divergences.hierarchy.mixture",
                       "divergences.hierarchy.w1_tv")
def test_the_converses_fail_numerically(device) -> None:
    for n in (1, 10, 1000):
        x0 = torch.zeros(1, 1, dtype=torch.float64, device=device)
        w1 = float(w1_exact(x0 + 1 / n, x0))
        assert w1 == pytest.approx(float(dv.diracs.claim["w1"].subs(dv._nn, n)), rel=1e-12)
        atoms_p, atoms_q = torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)  # atoms at 0 and 1/n
        assert float(js_discrete(atoms_p, atoms_q)) == pytest.approx(math.log(2), rel=1e-12)
        assert math.isinf(float(kl_discrete(atoms_p, atoms_q)))
        # the mixture: Q uniform on 3 atoms, R on a fourth
        eps = 1 / n if n > 1 else 0.5
        pm = torch.tensor([(1 - eps) / 3] * 3 + [eps], dtype=torch.float64)
        qm = torch.tensor([1 / 3] * 3 + [0.0], dtype=torch.float64)
        claim = {k: float(v.subs(dv._eps, eps)) for k, v in dv.mixture_example.claim.items()}
        assert float(js_discrete(pm, qm)) == pytest.approx(claim["js"], rel=1e-10)
        assert float(tv_discrete(pm, qm)) == pytest.approx(claim["tv"], rel=1e-12)
        assert float(kl_discrete(qm, pm)) == pytest.approx(claim["reverse"], rel=1e-10)
        assert math.isinf(float(kl_discrete(pm, qm)))
    # W1 <= diameter * TV on four points of [0, 1] (diameter 1), random weights
    g = torch.Generator().manual_seed(0)
    pts = torch.tensor([[0.0], [0.3], [0.6], [1.0]], dtype=torch.float64)
    for _ in range(50):
        a, b = _rand_dist(g, (4,), "cpu"), _rand_dist(g, (4,), "cpu")
        assert float(w1_exact(pts, pts, a, b)) <= float(tv_discrete(a, b)) + 1e-12
