"""``gencode.consistency`` against the registered identities (``derivations.consistency``) and the oracle.

* the boundary condition ``f(x, eps) = x`` holds exactly for any network (untrained, any dtype);
* the teacher step is the PF ODE written with the denoiser, compared with the oracle score, and the
  reference consistency function (an ODE solve with the oracle) equals the closed form of Gaussian data;
* a model distilled from the oracle's PF ODE samples the data in one step: its energy distance to the
  data is reported against the finite-sample floor.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch

from derivations import consistency as d
from gencode.consistency import (
    ConsistencyDistillation,
    ConsistencyModel,
    ConsistencyTraining,
    karras_times,
    ode_consistency_function,
    oracle_denoiser,
    teacher_step,
)
from gencode.distributions import Gaussian, GaussianMixture
from gencode.oracle import MixtureOracle
from gencode.train import fit
from gencode.two_sample import energy_distance, mode_check, sample_floor


def _gaussian(device: torch.device, mu=(1.0, -0.5), s: float = 0.7) -> Gaussian:
    return Gaussian.isotropic(torch.tensor(mu, dtype=torch.float64, device=device), s)


def _mixture(device: torch.device) -> GaussianMixture:
    """Two unequal 2-D components: the distillation test's data."""
    means = torch.tensor([[-1.0, 0.5], [1.0, -0.5]], dtype=torch.float64)
    covs = torch.tensor([[[0.1, 0.0], [0.0, 0.1]], [[0.2, 0.05], [0.05, 0.1]]], dtype=torch.float64)
    return GaussianMixture(torch.tensor([0.4, 0.6], dtype=torch.float64), means, covs).to(device)


@pytest.mark.validates("consistency.boundary")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_boundary_condition_is_exact(device: torch.device, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = ConsistencyModel(2, sigma_data=0.8, eps=0.002, T=20.0).to(device, dtype)
    x = torch.randn(64, 2, device=device, dtype=dtype) * 5
    assert torch.equal(model(x, model.eps), x)  # c_skip(eps) = 1 and c_out(eps) = 0 exactly
    assert not torch.allclose(model(x, 1.0), x)  # away from eps the network matters


@pytest.mark.validates("consistency.boundary")
def test_scalings_match_registry() -> None:
    model = ConsistencyModel(2, sigma_data=0.8, eps=0.002, T=20.0)
    t = np.linspace(0.002, 20.0, 57)
    syms = (d.t, d.eps, d.sigma_data)
    for part in ("c_skip", "c_out"):
        want = sp.lambdify(syms, d.boundary.claim[part], "numpy")(t, 0.002, 0.8)
        got = getattr(model, part)(torch.tensor(t, dtype=torch.float64)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)  # a few float64 roundings
        for m in d.boundary.mutants:  # each EDM scaling differs from the shifted one
            if part in m.claim:
                wrong = sp.lambdify(syms, m.claim[part], "numpy")(t, 0.002, 0.8)
                assert np.abs(got - wrong).max() > 1e-3


@pytest.mark.validates("consistency.pf_velocity")
def test_teacher_step_is_the_pf_ode_with_the_denoiser(device: torch.device) -> None:
    data = _mixture(device)
    oracle = MixtureOracle(data)
    x = data.noised(2.0).sample(256, generator=torch.Generator(device).manual_seed(1))
    t_from, t_to = 2.0, 1.7
    score = oracle.score(x, 1.0, t_from)
    velocity = sp.lambdify((d.x, d.DENOISER, d.t), d.pf_velocity.claim["velocity"])
    got = teacher_step(oracle_denoiser(oracle), x, t_from, t_to, heun=False)
    via_registry = x + (t_to - t_from) * velocity(x, oracle.denoise(x, 1.0, t_from), t_from)
    via_score = x + (t_to - t_from) * (-t_from * score)
    torch.testing.assert_close(got, via_registry, rtol=0, atol=1e-12)  # float64, |x| < 10
    torch.testing.assert_close(got, via_score, rtol=0, atol=1e-12)


@pytest.mark.validates("consistency.self_consistency", "consistency.pf_velocity")
def test_ode_consistency_function_matches_closed_form(device: torch.device) -> None:
    mu, s, eps = (1.0, -0.5), 0.7, 0.002
    data = _gaussian(device, mu, s)
    denoiser = oracle_denoiser(MixtureOracle(data))
    f = sp.lambdify((d.x, d.t, d.mu, d.s, d.eps), d.self_consistency.claim["f"])
    mu_t = torch.tensor(mu, dtype=torch.float64, device=device)
    gen = torch.Generator(device).manual_seed(2)
    errors = {}
    for t in (0.5, 20.0):
        x = mu_t + math.sqrt(s**2 + t**2) * torch.randn(200, 2, generator=gen, device=device, dtype=torch.float64)
        want = f(x, t, mu_t, s, eps)
        for steps in (8, 16):
            errors[t, steps] = float((ode_consistency_function(denoiser, x, t, eps, steps=steps) - want).abs().max())
        # the mutant (the denoiser) is far from the ODE's answer
        assert float((denoiser(x, t) - want).abs().max()) > 0.1
    for t in (0.5, 20.0):
        # Heun is second order: halving the step divides the error by ~4 (measured 3.8 to 4.4); its size
        # relative to the spread sqrt(s^2 + t^2) of x_t is below 1% at 16 Karras steps (measured 0.3%).
        assert errors[t, 16] < errors[t, 8] / 3
        assert errors[t, 16] < 0.01 * math.sqrt(s**2 + t**2)


@pytest.mark.validates("consistency.pf_velocity")
def test_batched_oracle_denoiser_matches_the_oracle(device: torch.device) -> None:
    data = _mixture(device)
    oracle = MixtureOracle(data)
    gen = torch.Generator(device).manual_seed(4)
    x = 3 * torch.randn(300, 2, generator=gen, device=device, dtype=torch.float64)
    t = torch.tensor([0.01, 0.5, 3.0], dtype=torch.float64, device=device).repeat(100)
    got = oracle_denoiser(oracle)(x, t)
    for level in (0.01, 0.5, 3.0):
        rows = t == level
        want = oracle.denoise(x[rows], scale=1.0, noise_std=level)
        torch.testing.assert_close(got[rows], want, rtol=0, atol=1e-12)  # float64: two formulas, |x| < 15


@pytest.mark.validates("consistency.ct_target")
def test_consistency_training_target_is_the_conditional_euler_step(device: torch.device) -> None:
    model = ConsistencyModel(2, sigma_data=0.8, T=20.0).to(device, torch.float64)
    ct = ConsistencyTraining(model, N=10, seed=3)
    x0 = torch.randn(128, 2, device=device, dtype=torch.float64)
    x_next, t_next, x_hat, t_now = ct.pairs(x0)
    z = (x_next - x0) / t_next[:, None]
    torch.testing.assert_close(x_hat, x0 + t_now[:, None] * z, rtol=0, atol=1e-12)
    for i in range(4):  # the same point as one Euler step with the one-sample denoiser D = x_0
        step = teacher_step(lambda x, t: x0[i:i + 1], x_next[i:i + 1], float(t_next[i]), float(t_now[i]),
                            heun=False)
        torch.testing.assert_close(step, x_hat[i:i + 1], rtol=0, atol=1e-10)  # divisions by t in float64
    assert bool((t_now < t_next).all())
    grid = karras_times(10, model.eps, model.T).to(device)
    assert bool(torch.isin(t_now, grid).all() and torch.isin(t_next, grid).all())


@pytest.mark.slow
@pytest.mark.validates("consistency.boundary", "consistency.pf_velocity")
def test_distilled_model_samples_the_data_in_one_step(device: torch.device) -> None:
    # the chapter's data, model and CPU budget (book/consistency.md)
    data = GaussianMixture(torch.tensor([0.5, 0.3, 0.2]), torch.tensor([[-1.5, 0.0], [1.0, 1.0], [1.0, -1.2]]),
                           torch.tensor([[[0.20, 0.05], [0.05, 0.10]], [[0.10, 0.0], [0.0, 0.30]],
                                         [[0.15, -0.05], [-0.05, 0.15]]])).to(device, torch.float64)
    data32 = data.to(device, torch.float32)
    sigma_data = float(data.covariance.diagonal().mean().sqrt())
    torch.manual_seed(0)
    model = ConsistencyModel(2, sigma_data=sigma_data, T=20.0).to(device)
    cd = ConsistencyDistillation(model, oracle_denoiser(MixtureOracle(data32)), N=12, ema=0.95, seed=0)
    steps = 6000 if device.type == "cuda" else 1800
    fit(cd.loss, model, data32.sample, steps=steps, batch_size=256, lr=1e-2, lr_schedule="cosine", seed=0,
        ema_decay=0.995)
    model.eval()
    n = 2000
    gen = torch.Generator(device).manual_seed(8)
    # against the true consistency function (the oracle's PF ODE, 32 Heun steps: error < 1% of the spread)
    xt = data.sample(1000, generator=gen) + 20.0 * torch.randn(1000, 2, generator=gen, device=device, dtype=torch.float64)
    with torch.no_grad():
        err = (model(xt.float(), 20.0).double()
               - ode_consistency_function(oracle_denoiser(MixtureOracle(data)), xt, 20.0, model.eps, steps=32)).norm(dim=1)
    # measured 8.8% of sigma_data on CPU (21% before EMA weights, N = 12 and 3x the steps)
    assert err.mean().item() < 0.15 * sigma_data, err.mean().item() / sigma_data
    ref = data.sample(n, generator=gen)
    floor = sample_floor(lambda m: data.sample(m, generator=gen), n, reps=20)
    untrained = ConsistencyModel(2, sigma_data=sigma_data, T=20.0).to(device, torch.float64)
    one = model.sample(n, generator=gen).double()
    two = model.sample(n, times=[1.0], generator=gen).double()
    d_one, d_two = float(energy_distance(one, ref)), float(energy_distance(two, ref))
    d_untrained = float(energy_distance(untrained.sample(n, generator=gen), ref))
    print(f"\none-step ED {d_one:.4f}, two-step ED {d_two:.4f}, untrained {d_untrained:.3f}, "
          f"floor threshold {floor.threshold():.4f}")
    # the book's goal for a trained sampler: within 1.5 times the floor threshold (measured 0.7 on CPU)
    assert d_one < 1.5 * floor.threshold()
    assert d_two < 1.5 * floor.threshold()
    assert d_one < 0.05 * d_untrained
    # per-mode weights within 4 standard errors; within-mode variances within a factor 2 of the data's.
    # Training budget: at 1800 CPU steps the widest mode is measured at 1.3 to 1.7 times the data's
    # (2.9 before EMA weights, N = 12 and 3x the steps), so the 4-standard-error variance test of
    # mode_check (about +-25% at 2000 samples) is not met everywhere; a smeared or collapsed mode
    # (ratio 2.9 or 0.02 for the untrained model) still fails this bound.
    for samples in (one, two):
        check = mode_check(samples, data, generator=gen)
        assert bool((check.weight_z.abs() <= 4).all()), check.weight_z
        ratio = check.variances / check.ref_variances
        assert bool(((ratio < 2) & (ratio > 0.5)).all()), ratio


# --- bad input -----------------------------------------------------------------------------------

def test_bad_input(device: torch.device) -> None:
    with pytest.raises(ValueError, match="sigma_data"):
        ConsistencyModel(2, sigma_data=0.0)
    with pytest.raises(ValueError, match="eps"):
        ConsistencyModel(2, sigma_data=1.0, eps=2.0, T=1.0)
    model = ConsistencyModel(2, sigma_data=1.0, T=10.0)
    with pytest.raises(ValueError, match="t must lie"):
        model(torch.zeros(3, 2), 0.0)
    with pytest.raises(ValueError, match="t must lie"):
        model(torch.zeros(3, 2), 11.0)
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(3, 2), torch.ones(2))
    with pytest.raises(ValueError, match="N must"):
        karras_times(1)
    with pytest.raises(ValueError, match="times must be > 0"):
        teacher_step(lambda x, t: x, torch.zeros(2, 2, dtype=torch.float64), 1.0, 0.0)
    with pytest.raises(ValueError, match="ema"):
        ConsistencyTraining(model, ema=1.0)
    with pytest.raises(TypeError, match="model"):
        ConsistencyTraining(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="oracle"):
        oracle_denoiser(None)
    with pytest.raises(ValueError, match="x0 must"):
        ConsistencyTraining(model).loss(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="times must lie"):
        model.sample(4, times=[10.0])
