"""``gencode.paths`` against ``derivations.gaussian_paths``: the registered identities turned into functions
(``sympy.lambdify``) and compared with the code at random points in float64, with every mutant rejected;
the SDE coefficients also against finite differences of the code's own (alpha, sigma), and the lambda family
of samplers on the exact mixture oracle.

Tolerances: closed forms agree to float64 rounding of a few operations (relative 1e-10 leaves a margin of
about 10^5 over the 1e-15 observed); a mutant must differ by more than 1e-6 relative somewhere, which a
formula off by a sign, a factor or a swap does by orders of magnitude.
"""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

from derivations import gaussian_paths as d
from derivations import sde as dsde
from gencode.distributions import mixture_1d
from gencode.oracle import MixtureOracle
from gencode.paths import (
    EDM,
    VE,
    RectifiedFlow,
    SubVP,
    VPCosine,
    VPLinear,
    diffusion_time,
    edm_preconditioning,
    eps_from_score_at,
    eps_from_v_at,
    eps_from_velocity_at,
    eps_from_x0_at,
    flow_time,
    score_from_eps_at,
    score_from_x0_at,
    v_from_eps_at,
    velocity_from_eps_at,
    velocity_from_x0_at,
    x0_from_eps_at,
    x0_from_v_at,
    x0_from_velocity_at,
)
from gencode.two_sample import mode_check

RTOL = 1e-10
INSTANCES = [VPLinear(0.1, 20.0), VPCosine(0.008), SubVP(0.1, 20.0), VE(0.01, 50.0), RectifiedFlow(), EDM(0.002, 80.0)]


def _points(n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)  # noqa: E731
    return {"a": u(0.1, 2.0), "s": u(0.1, 2.0), "da": u(-2.0, 2.0), "ds": u(0.2, 3.0), "x": u(-3, 3), "hat": u(-3, 3)}


def _close(ours: torch.Tensor, ref: torch.Tensor) -> bool:
    return bool(((ours - ref).abs() <= RTOL * (1 + ref.abs())).all())


def _far(ours: torch.Tensor, ref: torch.Tensor) -> bool:
    return bool(((ours - ref).abs() > 1e-6 * (1 + ref.abs())).any())


ARGS = (d.a, d.s, d.da, d.ds, d.x)


def _lamb(expr: sp.Expr, src: str):
    return sp.lambdify((*ARGS, d.HAT[src]), sp.sympify(expr).doit(), "math")


def _apply(fn, p: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.tensor([fn(*(float(p[k][i]) for k in ("a", "s", "da", "ds", "x", "hat"))) for i in range(len(p["a"]))],
                        dtype=torch.float64)


# the gencode function of each conversion, at given coefficients
AT = {
    ("eps", "x0"): lambda p: x0_from_eps_at(p["x"], p["hat"], p["a"], p["s"]),
    ("eps", "score"): lambda p: score_from_eps_at(p["hat"], p["s"]),
    ("eps", "v"): lambda p: v_from_eps_at(p["x"], p["hat"], p["a"], p["s"]),
    ("eps", "velocity"): lambda p: velocity_from_eps_at(p["x"], p["hat"], p["a"], p["s"], p["da"], p["ds"]),
    ("x0", "eps"): lambda p: eps_from_x0_at(p["x"], p["hat"], p["a"], p["s"]),
    ("x0", "score"): lambda p: score_from_x0_at(p["x"], p["hat"], p["a"], p["s"]),
    ("x0", "velocity"): lambda p: velocity_from_x0_at(p["x"], p["hat"], p["a"], p["s"], p["da"], p["ds"]),
    ("score", "eps"): lambda p: eps_from_score_at(p["hat"], p["s"]),
    ("v", "eps"): lambda p: eps_from_v_at(p["x"], p["hat"], p["a"], p["s"]),
    ("v", "x0"): lambda p: x0_from_v_at(p["x"], p["hat"], p["a"], p["s"]),
    ("velocity", "eps"): lambda p: eps_from_velocity_at(p["x"], p["hat"], p["a"], p["s"], p["da"], p["ds"]),
    ("velocity", "x0"): lambda p: x0_from_velocity_at(p["x"], p["hat"], p["a"], p["s"], p["da"], p["ds"]),
}


@pytest.mark.validates("paths.from_eps", "paths.from_x0", "paths.from_score", "paths.from_v", "paths.from_velocity")
@pytest.mark.parametrize("pair", sorted(AT), ids=lambda p: f"{p[0]}->{p[1]}")
def test_conversion_functions_match_the_identities(pair: tuple[str, str]) -> None:
    src, dst = pair
    identity = getattr(d, f"from_{src}")
    p = _points()
    ours = AT[pair](p)
    assert _close(ours, _apply(_lamb(identity.claim[dst], src), p))
    for mutant in identity.mutants:  # every mutant of this conversion is rejected by the code's numbers
        if dst in mutant.claim:
            assert _far(ours, _apply(_lamb(mutant.claim[dst], src), p)), mutant.name


@pytest.mark.validates("paths.from_eps", "paths.from_x0", "paths.from_score", "paths.from_v", "paths.from_velocity")
@pytest.mark.parametrize("path", INSTANCES, ids=lambda p: type(p).__name__)
def test_convert_matches_every_registered_conversion(path) -> None:
    """All twenty conversions of GaussianPath.convert (routes through eps and direct pairs) against the claims,
    at the path's own coefficients; t in the interior so that every denominator is non-zero."""
    g = torch.Generator().manual_seed(3)
    t = path.t_min + 0.37 * (path.t_max - path.t_min)
    coef = {k: float(f(t)) for k, f in (("a", path.alpha), ("s", path.sigma), ("da", path.d_alpha), ("ds", path.d_sigma))}
    x = torch.randn(32, 1, generator=g, dtype=torch.float64)
    for src in d.KINDS:
        pred = torch.randn(32, 1, generator=g, dtype=torch.float64)
        p = {**{k: torch.full((32,), v, dtype=torch.float64) for k, v in coef.items()}, "x": x[:, 0], "hat": pred[:, 0]}
        for dst, expr in getattr(d, f"from_{src}").claim.items():
            assert _close(path.convert(pred, src, dst, x, t)[:, 0], _apply(_lamb(expr, src), p)), (src, dst)


def _fd(fn, t: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    return (fn(t + h) - fn(t - h)) / (2 * h)


@pytest.mark.validates("paths.sde_coefficients")
@pytest.mark.parametrize("path", INSTANCES, ids=lambda p: type(p).__name__)
def test_sde_coefficients_give_the_path_kernel(path) -> None:
    """gencode's f and g^2 (closed forms on VP paths) equal the registered general formulas, and make the mean
    and variance ODEs hold for the code's own alpha, sigma (central differences, h = 1e-6: truncation error
    ~h^2 * third derivative, rounding ~1e-16/h = 1e-10; tolerance 1e-6 relative)."""
    t = path.t_min + (path.t_max - path.t_min) * torch.linspace(0.1, 0.9, 9, dtype=torch.float64)
    a, s, da, ds = path.alpha(t), path.sigma(t), path.d_alpha(t), path.d_sigma(t)
    f_expr = d.sde_coefficients.claim["f"]
    g2_expr = d.sde_coefficients.claim["g2"].xreplace({d.F_T: f_expr})
    f_ref = sp.lambdify((d.a, d.da), f_expr)(a, da)
    g2_ref = sp.lambdify((d.a, d.s, d.da, d.ds), g2_expr)(a, s, da, ds)
    assert _close(path.drift_coef(t), f_ref) and _close(path.g2(t), g2_ref)
    f, g2 = path.drift_coef(t), path.g2(t)
    scale = 1 + g2.abs() + (f * s**2).abs()
    assert bool(((_fd(path.alpha, t) - f * a).abs() <= 1e-6 * (1 + a.abs())).all())
    assert bool(((_fd(lambda u: path.sigma(u) ** 2, t) - (2 * f * s**2 + g2)).abs() <= 1e-6 * scale).all())
    wrong = sp.lambdify((d.a, d.s, d.da, d.ds), d.sde_coefficients.mutants[0].claim["g2"])(a, s, da, ds)
    if not isinstance(path, (VE, EDM)):  # the VE formula is right exactly where f = 0
        assert _far(g2, wrong)


def _instance_row(key: str, path, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Evaluate a row of the registered table at the path's parameters (the VE row's sigma(t) made concrete)."""
    params = {d.b_min: 0.1, d.b_max: 20.0, d.c_off: 0.008}
    out = []
    for part in ("alpha", "sigma", "f", "g2"):
        expr = d.instances.claim[f"{key}_{part}"]
        expr = expr.xreplace(d._INSTANCE_DEFS).xreplace(d._INSTANCE_DEFS)
        if key == "ve":
            tt = sp.Symbol("tt")
            level = sp.Lambda(tt, sp.sqrt(path.sigma_min**2 * ((path.sigma_max / path.sigma_min) ** (2 * tt) - 1)))
            expr = expr.replace(d.SIG, level).doit()
        expr = sp.sympify(expr).xreplace(params).doit()
        out.append(torch.as_tensor(sp.lambdify(d.t, expr)(t.numpy()), dtype=torch.float64) * torch.ones_like(t))
    return tuple(out)


@pytest.mark.parametrize("key,path", [("linear", VPLinear(0.1, 20.0)), ("cosine", VPCosine(0.008)),
                                      ("subvp", SubVP(0.1, 20.0)), ("ve", VE(0.01, 50.0)),
                                      ("rf", RectifiedFlow()), ("edm", EDM(0.002, 80.0))])
@pytest.mark.validates("paths.instances")
def test_instance_table_matches_the_code(key: str, path) -> None:
    t = path.t_min + (path.t_max - path.t_min) * torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    alpha, sigma, f, g2 = _instance_row(key, path, t)
    for ours, ref in ((path.alpha(t), alpha), (path.sigma(t), sigma), (path.drift_coef(t), f), (path.g2(t), g2)):
        assert _close(ours, ref)


@pytest.mark.validates("paths.pf_velocity", "paths.tweedie")
@pytest.mark.parametrize("path", INSTANCES, ids=lambda p: type(p).__name__)
def test_velocity_of_the_optimal_noise_is_the_pf_ode_drift(path) -> None:
    """velocity_from_eps(E[eps|x]) = f x - g^2/2 grad log p_t on mixture data (exact oracle), i.e. the PF-ODE."""
    oracle = MixtureOracle(mixture_1d([0.3, 0.7], [-1.0, 2.0], [0.4, 0.8], dtype=torch.float64))
    x = torch.linspace(-4, 4, 41, dtype=torch.float64)[:, None]
    t = path.t_min + 0.3 * (path.t_max - path.t_min)
    a, s = float(path.alpha(t)), float(path.sigma(t))
    score = oracle.score(x, a, s)
    drift = sp.lambdify((d.F_T, d.G2_T, d.x, d.SCORE_T), d.pf_velocity.claim["velocity"])
    ref = drift(float(path.drift_coef(t)), float(path.g2(t)), x, score)
    assert _close(path.velocity_from_eps(x, oracle.noise(x, a, s), t), ref)
    assert _close(oracle.denoise(x, a, s), sp.lambdify((d.x, d.s, d.a, d.SCORE_T), d.tweedie.claim["data"])(x, s, a, score))
    wrong = sp.lambdify((d.F_T, d.G2_T, d.x, d.SCORE_T), d.pf_velocity.mutants[0].claim["velocity"])
    assert _far(path.velocity_from_eps(x, oracle.noise(x, a, s), t), wrong(float(path.drift_coef(t)), float(path.g2(t)), x, score))


@pytest.mark.validates("paths.flow_time")
def test_flow_time_velocity_is_the_flow_matching_target() -> None:
    """Rectified flow in flow time u = 1 - t: x_u = u x_1 + (1 - u) x_0 (noise x_0), target x_1 - x_0 =
    minus the diffusion-time velocity at t = diffusion_time(u) (the registered sign change)."""
    g = torch.Generator().manual_seed(4)
    x1, noise = torch.randn(50, 2, generator=g, dtype=torch.float64), torch.randn(50, 2, generator=g, dtype=torch.float64)
    path = RectifiedFlow()
    for u in (0.1, 0.5, 0.9):
        t = diffusion_time(u)
        assert flow_time(t) == pytest.approx(u)
        xt = path.sample(x1, t, noise)
        assert _close(xt, u * x1 + (1 - u) * noise)
        dxdt = path.velocity_from_eps(xt, noise, t)
        sign = sp.lambdify((d.ALPHA_PRIME, d.SIGMA_PRIME, d.x0, d.eps), d.flow_time.claim["velocity"])
        assert _close(sign(float(path.d_alpha(t)), float(path.d_sigma(t)), x1, noise), -dxdt)
        assert _close(-dxdt, x1 - noise)


@pytest.mark.validates("paths.snr_clock")
def test_paths_with_the_same_snr_are_rescalings() -> None:
    """t_of_lam maps times of equal SNR; x/alpha = x_0 + rho eps there (registered), and the rescaled PF-ODE
    velocity (u - alphadot x/alpha)/alpha equals rhodot eps_hat (registered) for the code's velocity."""
    g = torch.Generator().manual_seed(5)
    x0, eps = torch.randn(20, 1, generator=g, dtype=torch.float64), torch.randn(20, 1, generator=g, dtype=torch.float64)
    scaled = sp.lambdify((d.x0, d.rho, d.eps), d.snr_clock.claim["scaled"])
    ode = sp.lambdify((d.rho_dot, d.eps_hat), d.snr_clock.claim["ode"])
    paths = [VPLinear(0.1, 20.0), VPCosine(0.008), RectifiedFlow(), EDM(0.002, 80.0), VE(0.01, 50.0)]
    for A in paths:
        for B in paths:
            tA = A.t_min + 0.4 * (A.t_max - A.t_min)
            tB = float(B.t_of_lam(A.lam(tA)))
            rho = float(A.sigma(tA) / A.alpha(tA))
            assert float(B.sigma(tB) / B.alpha(tB)) == pytest.approx(rho, rel=1e-9)  # bisection / closed forms
            yA, yB = A.sample(x0, tA, eps) / A.alpha(tA), B.sample(x0, tB, eps) / B.alpha(tB)
            assert torch.allclose(yA, yB, rtol=1e-8, atol=1e-8) and _close(yA, scaled(x0, rho, eps))
    for P in paths:
        t = P.t_min + 0.6 * (P.t_max - P.t_min)
        a, s, da, ds = (float(f(t)) for f in (P.alpha, P.sigma, P.d_alpha, P.d_sigma))
        x = P.sample(x0, t, eps)
        dy = (P.velocity_from_eps(x, eps, t) - da / a * x) / a
        assert _close(dy, ode((ds * a - s * da) / a**2, eps))


@pytest.mark.validates("paths.loss_weights")
@pytest.mark.parametrize("path", INSTANCES, ids=lambda p: type(p).__name__)
def test_losses_are_snr_weighted_x0_losses(path) -> None:
    g = torch.Generator().manual_seed(6)
    x0, eps = torch.randn(40, 1, generator=g, dtype=torch.float64), torch.randn(40, 1, generator=g, dtype=torch.float64)
    x0_hat = x0 + 0.3 * torch.randn(40, 1, generator=g, dtype=torch.float64)
    t = path.t_min + 0.45 * (path.t_max - path.t_min)
    x = path.sample(x0, t, eps)
    a, s, da, ds = (float(f(t)) for f in (path.alpha, path.sigma, path.d_alpha, path.d_sigma))
    true = {"eps": eps, "score": -eps / s, "v": a * eps - s * x0, "velocity": da * x0 + ds * eps}
    for kind, target in true.items():
        w = sp.lambdify((d.a, d.s, d.da, d.ds), d.loss_weights.claim[kind].xreplace({d.SNR: d.a**2 / d.s**2}))(a, s, da, ds)
        err = (path.convert(x0_hat, "x0", kind, x, t) - target) ** 2
        assert _close(err, w * (x0_hat - x0) ** 2), kind


@pytest.mark.validates("paths.lambda_family")
@pytest.mark.parametrize("path", INSTANCES, ids=lambda p: type(p).__name__)
def test_sde_drift_is_the_registered_family(path) -> None:
    g = torch.Generator().manual_seed(7)
    x, score = torch.randn(30, 1, generator=g, dtype=torch.float64), torch.randn(30, 1, generator=g, dtype=torch.float64)
    t = path.t_min + 0.5 * (path.t_max - path.t_min)
    f, g2 = float(path.drift_coef(t)), float(path.g2(t))
    drift = sp.lambdify((dsde.F, dsde.G2, dsde.SCORE, d.lam), d.lambda_family.claim["drift"])
    noise = sp.lambdify((d.G_T, d.lam), d.lambda_family.claim["noise"])
    for lam in (0.0, 0.5, 1.0, 2.0):
        assert _close(path.sde_drift(x, t, score, lam), drift(f * x, g2, score, lam))
        assert float(path.sde_diffusion(t, lam)) == pytest.approx(noise(math.sqrt(g2), lam), rel=RTOL)
    wrong = sp.lambdify((dsde.F, dsde.G2, dsde.SCORE, d.lam), d.lambda_family.mutants[0].claim["drift"])
    assert _far(path.sde_drift(x, t, score, 0.5), wrong(f * x, g2, score, 0.5))


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_lambda_family_samples_the_data_on_the_oracle(lam: float) -> None:
    """Euler-Maruyama on the family with the exact score reaches p_t at the final time: per-mode weights and
    variances within 4 standard errors of a reference 5x larger (gencode.two_sample.mode_check)."""
    mix = mixture_1d([0.4, 0.6], [-2.0, 1.5], [0.5, 0.6], dtype=torch.float64)
    oracle, path, n = MixtureOracle(mix), VPLinear(0.1, 20.0), 2000
    ts = path.t_of_lam(torch.linspace(float(path.lam(1.0)), float(path.lam(1e-3)), 201, dtype=torch.float64)).tolist()
    g = torch.Generator().manual_seed(8)
    x = oracle.marginal(float(path.alpha(1.0)), float(path.sigma(1.0))).sample(n, generator=g)
    for t0, t1 in zip(ts[:-1], ts[1:]):
        score = oracle.score(x, float(path.alpha(t0)), float(path.sigma(t0)))
        z = torch.randn(x.shape, generator=g, dtype=x.dtype)
        x = x - (t0 - t1) * path.sde_drift(x, t0, score, lam) + math.sqrt(t0 - t1) * path.sde_diffusion(t0, lam) * z
    target = oracle.marginal(float(path.alpha(ts[-1])), float(path.sigma(ts[-1])))
    modes = mode_check(x, target, reference=target.sample(5 * n, generator=g))
    assert modes.passed(k=4), modes.worst()


@pytest.mark.validates("paths.ddim_eta")
def test_ddim_variance_is_the_family_noise_to_first_order() -> None:
    """DDIM's step variance (gencode.probability_flow.ddim_sigma) against the registered eta^2 beta(t) h, on DDPM's
    linear schedule with beta(t) of its interpolated path (VPDiscrete): the relative gap is first order in the step
    h = k/T (doubling k doubles it, within 10%), and small (< 2% for one step, measured 0.7-1.2%); the mutant
    variance eta beta h is off by the factor 1/eta."""
    from gencode.diffusion import NoiseSchedule
    from gencode.paths import VPDiscrete
    from gencode.probability_flow import ddim_sigma

    sched, eta = NoiseSchedule.linear(1000), 0.7
    path = VPDiscrete(sched)
    var = sp.lambdify((d.eta, d.beta_now, d.h), d.ddim_eta.claim["var"])
    wrong = sp.lambdify((d.eta, d.beta_now, d.h), d.ddim_eta.mutants[1].claim["var"])
    for t in (200, 500, 800):
        beta = float(path.beta(t / 1000))
        gaps = [float(ddim_sigma(sched, t, t - k, eta)) ** 2 / var(eta, beta, k / 1000) - 1 for k in (1, 2, 4)]
        assert abs(gaps[0]) < 0.02
        assert 1.8 < gaps[1] / gaps[0] < 2.2 and 1.8 < gaps[2] / gaps[1] < 2.2
        assert abs(float(ddim_sigma(sched, t, t - 1, eta)) ** 2 / wrong(eta, beta, 1 / 1000) - 1) > 0.2


@pytest.mark.validates("paths.edm_preconditioning")
def test_edm_preconditioning_matches_the_identity() -> None:
    sigma = torch.logspace(-3, 2, 11, dtype=torch.float64)
    for sigma_data in (0.5, 1.0, 1.7):
        c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, sigma_data)
        ref = {k: torch.as_tensor(sp.lambdify((d.sg, d.sd), v)(sigma.numpy(), sigma_data)) for k, v in d.edm_preconditioning.claim.items()}
        assert _close(c_skip, ref["c_skip"]) and _close(c_out, ref["c_out"]) and _close(c_in, ref["c_in"])
        assert _close(c_noise, sigma.log() / 4)
        for mutant in d.edm_preconditioning.mutants:
            (key, expr), = mutant.claim.items()
            ours = {"c_skip": c_skip, "c_out": c_out, "c_in": c_in}[key]
            assert _far(ours, torch.as_tensor(sp.lambdify((d.sg, d.sd), expr)(sigma.numpy(), sigma_data))), mutant.name
