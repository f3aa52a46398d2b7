"""Peer parity: the project's schedules, samplers, paths, couplings and solvers agree with the
libraries people use, on the same inputs, in float64.

Peers (test dependencies pinned in ``pyproject.toml`` and ``constraints.txt``): diffusers
(``DDPMScheduler``, ``DDIMScheduler``, the VP SDE scheduler), Meta's ``flow_matching``
(``AffineProbPath`` with ``CondOTScheduler``), ``torchsde`` (Euler-Maruyama) and ``torchdiffeq``
(Euler, Heun).  Exact OT couplings (scipy's assignment solver in the project) are compared with
POT's network simplex in ``tests/test_flow_matching.py``.

Index conventions, mapped explicitly:

* the project indexes DDPM steps ``t = 1..T`` with ``alphabar_0 = 1`` stored at index 0;
  diffusers indexes ``0..T-1``: project ``t`` is diffusers ``t - 1``;
* DDIM: the project's ``ddim_timesteps(T, n)`` runs ``T, T - T/n, ..., 0``; diffusers'
  ``"trailing"`` spacing runs ``T - 1, ..., T/n - 1`` and steps to ``t - T/n`` (``-1`` means
  ``alphabar = 1`` with ``set_alpha_to_one``), the same grid shifted by one; diffusers' default
  ``"leading"`` spacing is a different grid (``0, T/n, ...``, never reaching ``T - 1``), which the
  last test shows;
* diffusers stores betas in float32: schedules are compared to float32 rounding, and the
  formulas that use them (cumulative products, posterior variances, steps) are compared after
  handing diffusers the project's float64 betas, to 1e-12.

Every comparison is also run against a broken copy of the project's formula (a coefficient moved
by one part in 10^6, an index shifted by one) to show that the test can fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gencode.diffusion import NoiseSchedule, ancestral_sample
from gencode.flow_matching import FlowPath
from gencode.ode import odeint
from gencode.probability_flow import ddim_step, ddim_timesteps
from gencode.sde import VPSDE, euler_maruyama

F64 = torch.float64
# float64 agreement between two implementations of one formula: a few ulps of values of order 1,
# accumulated over at most 1000 sequential steps (each rounding ~1e-16): 1e-12 leaves a margin.
TOL64 = 1e-12


def _diffusers_ddpm(schedule: NoiseSchedule, **config):
    """A diffusers DDPMScheduler holding the project's float64 schedule (index t -> t - 1)."""
    from diffusers import DDPMScheduler

    # diffusers clips the predicted x_0 to [-1, 1] by default (an image-data convention); the
    # project does not, so clipping is switched off to compare the formulas themselves.
    sched = DDPMScheduler(num_train_timesteps=schedule.T, clip_sample=False, **config)
    sched.betas = schedule.betas[1:].clone()
    sched.alphas = 1.0 - sched.betas
    sched.alphas_cumprod = torch.cumprod(sched.alphas, dim=0)
    sched.one = torch.tensor(1.0, dtype=F64)
    return sched


@pytest.mark.peer("diffusers DDPMScheduler betas (linear, squaredcos_cap_v2)", "to float32 rounding (relative 1e-6)", "ddpm.schedule.cosine")
@pytest.mark.parametrize("kind", ["linear", "squaredcos_cap_v2"])
def test_ddpm_betas_agree_with_diffusers_to_float32(kind: str) -> None:
    from diffusers import DDPMScheduler

    ours = NoiseSchedule.linear(1000) if kind == "linear" else NoiseSchedule.cosine(1000)
    theirs = DDPMScheduler(num_train_timesteps=1000, beta_schedule=kind)
    # diffusers rounds betas to float32 (relative rounding 2^-24 = 6e-8); the linear schedule is
    # built by torch.linspace in float32, which adds a few ulps: relative 1e-6 bounds both.
    np.testing.assert_allclose(ours.betas[1:].numpy(), theirs.betas.double().numpy(), rtol=1e-6, atol=0)


@pytest.mark.peer("diffusers DDPMScheduler alphas_cumprod and both posterior variances", "to 1e-12 relative", "ddpm.forward.marginal", "ddpm.posterior")
@pytest.mark.validates("ddpm.forward.marginal", "ddpm.posterior")
@pytest.mark.parametrize("make", [NoiseSchedule.linear, NoiseSchedule.cosine], ids=["linear", "cosine"])
def test_ddpm_cumprod_and_posterior_variances_agree_with_diffusers(make) -> None:
    ours = make(1000).to(F64)
    theirs = _diffusers_ddpm(ours)
    np.testing.assert_allclose(ours.alphas_cumprod[1:].numpy(), theirs.alphas_cumprod.numpy(), rtol=TOL64, atol=0)
    for t in (1, 2, 10, 500, 999, 1000):
        small = theirs._get_variance(t - 1, variance_type="fixed_small")
        large = theirs._get_variance(t - 1, variance_type="fixed_large")
        if t > 1:  # diffusers clamps beta_tilde_1 = 0 to 1e-20 before taking logs elsewhere
            assert abs(float(ours.posterior_variance[t] - small)) <= TOL64 * float(small)
        assert abs(float(ours.betas[t] - large)) <= TOL64 * float(large)


def _ddpm_step_ours(schedule: NoiseSchedule, x: torch.Tensor, eps: torch.Tensor, t: int,
                    noise: torch.Tensor, variance: str) -> torch.Tensor:
    mean = schedule.posterior_mean_from_noise(x, eps, t)
    sigma = schedule.reverse_variance(variance)[t].sqrt()
    return mean if t == 1 else mean + sigma * noise


@pytest.mark.peer("diffusers DDPMScheduler.step (fixed_small, fixed_large)", "to 1e-12", "ddpm.posterior.mean_eps")
@pytest.mark.validates("ddpm.posterior.mean_eps")
@pytest.mark.parametrize("variance,diffusers_type", [("beta_tilde", "fixed_small"), ("beta", "fixed_large")])
def test_one_ddpm_step_agrees_with_diffusers(variance: str, diffusers_type: str) -> None:
    ours = NoiseSchedule.linear(1000).to(F64)
    theirs = _diffusers_ddpm(ours, variance_type=diffusers_type)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(64, 3, generator=g, dtype=F64), torch.randn(64, 3, generator=g, dtype=F64)
    for t in (1000, 500, 2, 1):
        seed = 100 + t
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
        mine = _ddpm_step_ours(ours, x, eps, t, noise, variance)
        out = theirs.step(eps, t - 1, x, generator=torch.Generator().manual_seed(seed)).prev_sample
        assert float((mine - out).abs().max()) < TOL64


@pytest.mark.peer("diffusers DDPMScheduler, a whole 1000-step trajectory", "to 1e-11", "ddpm.posterior.mean_eps")
def test_ddpm_trajectory_of_1000_steps_agrees_with_diffusers() -> None:
    ours = NoiseSchedule.linear(1000).to(F64)
    theirs = _diffusers_ddpm(ours, variance_type="fixed_large")
    # the exact noise predictor for N(0, I) data, E[eps | x_t] = sqrt(1 - alphabar_t) x_t, keeps the
    # trajectory bounded, so an absolute tolerance means what it says
    predictor = lambda x, t: ours.sqrt_one_minus_alphas_cumprod[t] * x
    x_T = torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    mine = ancestral_sample(ours, predictor, x_T, variance="beta", generator=torch.Generator().manual_seed(2))
    # diffusers draws its noise from the generator at every step, including t = 0 (diffusers'
    # index of the project's t = 1), where it is drawn but not added; the project draws none at
    # t = 1, so the two draw the same numbers in the same order for t = T, ..., 2.
    g = torch.Generator().manual_seed(2)
    x = x_T
    for t in range(1000, 0, -1):
        x = theirs.step(predictor(x, t), t - 1, x, generator=g).prev_sample
    # 1000 steps, each contracting (|coefficients| <= 1 + O(beta)): rounding stays ~1e-13
    assert float((mine - x).abs().max()) < 1e-11


@pytest.mark.peer("diffusers DDIMScheduler, trailing spacing, 50 steps, eta 0 and 1", "to 1e-12", "ddim.update", "ddim.variance")
@pytest.mark.validates("ddim.update")
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_50_steps_agree_with_diffusers_trailing(eta: float) -> None:
    from diffusers import DDIMScheduler

    ours = NoiseSchedule.linear(1000).to(F64)
    theirs = DDIMScheduler(num_train_timesteps=1000, set_alpha_to_one=True, timestep_spacing="trailing",
                           clip_sample=False)
    theirs.alphas_cumprod = ours.alphas_cumprod[1:].clone()
    theirs.final_alpha_cumprod = torch.tensor(1.0, dtype=F64)
    theirs.set_timesteps(50)
    times = ddim_timesteps(1000, 50)
    assert [t - 1 for t in times[:-1]] == theirs.timesteps.tolist()  # the index map, checked
    predictor = lambda x, t: torch.sin(x) * (t / 1000)
    x = y = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    g = torch.Generator().manual_seed(4)
    for t, s in zip(times[:-1], times[1:]):
        noise = torch.randn(x.shape, generator=g, dtype=F64)
        x = ddim_step(ours, x, predictor(x, t), t, s, eta, noise=noise)
        y = theirs.step(predictor(y, t), t - 1, y, eta=eta, variance_noise=noise).prev_sample
    assert float((x - y).abs().max()) < TOL64


def test_diffusers_leading_spacing_is_a_different_grid() -> None:
    from diffusers import DDIMScheduler

    theirs = DDIMScheduler(num_train_timesteps=1000, timestep_spacing="leading")
    theirs.set_timesteps(50)
    ours = [t - 1 for t in ddim_timesteps(1000, 50)[:-1]]
    assert theirs.timesteps.tolist() != ours and int(theirs.timesteps[0]) == 980 and ours[0] == 999


@pytest.mark.peer("diffusers ScoreSdeVpScheduler.step_pred", "to 1e-12", "sde.reverse")
def test_reverse_vp_sde_step_agrees_with_diffusers_score_sde_vp() -> None:
    from diffusers.schedulers.deprecated.scheduling_sde_vp import ScoreSdeVpScheduler

    theirs = ScoreSdeVpScheduler(num_train_timesteps=1000, beta_min=0.1, beta_max=20.0)
    theirs.set_timesteps(1000)
    sde = VPSDE(0.1, 20.0)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    eps_model = lambda x, t: torch.tanh(x)
    for t in (1.0, 0.5, 0.01):
        tt = torch.tensor([t], dtype=F64)
        # diffusers passes the noise prediction and divides by the kernel std: score = -eps / std
        out, _ = theirs.step_pred(eps_model(x, t), x, tt, generator=torch.Generator().manual_seed(6))
        score = lambda y, s: -eps_model(y, s) / sde.marginal_std(s)
        mine = euler_maruyama(lambda y, s: sde.reverse_drift(y, s, score), sde.diffusion, x, [t, t - 1e-3],
                              generator=torch.Generator().manual_seed(6)).x
        assert float((mine - out).abs().max()) < TOL64


class _GivenIncrements:
    """A Brownian motion for torchsde whose increments on a fixed grid are given."""

    def __init__(self, times: list[float], increments: torch.Tensor) -> None:
        self.times, self.increments = times, increments
        self.shape, self.dtype, self.device = increments.shape[1:], increments.dtype, increments.device
        self.levy_area_approximation = "none"

    def __call__(self, ta, tb=None, return_U=False, return_A=False):  # noqa: ARG002
        ia = min(range(len(self.times)), key=lambda i: abs(self.times[i] - float(ta)))
        ib = min(range(len(self.times)), key=lambda i: abs(self.times[i] - float(tb)))
        return self.increments[ia:ib].sum(0)


@pytest.mark.peer("torchsde sdeint, Euler-Maruyama on the VP SDE, path by path", "to 1e-12")
def test_euler_maruyama_agrees_with_torchsde_pathwise() -> None:
    import torchsde
    from torchsde._brownian import BaseBrownian

    BaseBrownian.register(_GivenIncrements)
    sde = VPSDE(0.1, 20.0)

    class Forward(torch.nn.Module):
        noise_type, sde_type = "diagonal", "ito"

        def f(self, t, y):
            return sde.drift(y, float(t))

        def g(self, t, y):
            return sde.diffusion(float(t)).expand_as(y)

    K, n = 50, 16
    times = [k / K for k in range(K + 1)]
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(7), dtype=F64)
    mine = euler_maruyama(sde.drift, sde.diffusion, x0, times, generator=torch.Generator().manual_seed(8)).x
    g = torch.Generator().manual_seed(8)  # the same z_k, in the order euler_maruyama draws them
    increments = torch.stack([math.sqrt(1 / K) * torch.randn(n, 2, generator=g, dtype=F64) for _ in range(K)])
    bm = _GivenIncrements(times, increments)
    theirs = torchsde.sdeint(Forward(), x0, torch.tensor(times, dtype=F64), method="euler", dt=1 / K, bm=bm)[-1]
    assert float((mine - theirs).abs().max()) < TOL64


@pytest.mark.peer("torchdiffeq odeint, fixed-step euler and heun2", "to 1e-12")
@pytest.mark.parametrize("ours_method,theirs_method", [("euler", "euler"), ("heun", "heun2")])
def test_fixed_step_ode_solvers_agree_with_torchdiffeq(ours_method: str, theirs_method: str) -> None:
    import torchdiffeq

    f = lambda t, x: torch.stack([x[:, 1], -torch.sin(x[:, 0]) - 0.1 * t * x[:, 1]], dim=1)  # damped pendulum
    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(9), dtype=F64)
    mine = odeint(f, x0, 0.0, 2.0, method=ours_method, steps=40).x
    grid = torch.linspace(0.0, 2.0, 41, dtype=F64)
    theirs = torchdiffeq.odeint(f, x0, grid, method=theirs_method)[-1]
    assert float((mine - theirs).abs().max()) < TOL64


@pytest.mark.peer("Meta flow_matching AffineProbPath with CondOTScheduler: path, target, velocity conversions", "to 1e-12 (conversions 1e-10)", "fm.conditional_velocity")
@pytest.mark.validates("fm.conditional_velocity")
def test_flow_path_agrees_with_meta_flow_matching() -> None:
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import CondOTScheduler

    path = AffineProbPath(scheduler=CondOTScheduler())
    g = torch.Generator().manual_seed(10)
    x0, x1 = torch.randn(64, 2, generator=g, dtype=F64), torch.randn(64, 2, generator=g, dtype=F64)
    t = torch.rand(64, generator=g, dtype=F64)
    sample = path.sample(x_0=x0, x_1=x1, t=t)
    assert float((FlowPath.interpolate(x0, x1, t) - sample.x_t).abs().max()) < TOL64
    assert float(((x1 - x0) - sample.dx_t).abs().max()) < TOL64
    # the conversions from a velocity to the data and noise predictions, at t != 1/2
    v = torch.randn(64, 2, generator=g, dtype=F64)
    xt = sample.x_t
    tt = t.reshape(-1, 1)
    assert float((FlowPath.data_from_velocity(xt, t, v) - path.velocity_to_target(v, xt, tt)).abs().max()) < 1e-10
    assert float((FlowPath.noise_from_velocity(xt, t, v) - path.velocity_to_epsilon(v, xt, tt)).abs().max()) < 1e-10


def test_parity_tests_can_fail() -> None:
    # A formula broken by one part in a million is caught at the tolerance used above.
    ours = NoiseSchedule.linear(1000).to(F64)
    theirs = _diffusers_ddpm(ours, variance_type="fixed_large")
    broken = NoiseSchedule(ours.betas[1:] * (1 + 1e-6))
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(64, 3, generator=g, dtype=F64), torch.randn(64, 3, generator=g, dtype=F64)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    mine = _ddpm_step_ours(broken, x, eps, 500, noise, "beta")
    out = theirs.step(eps, 499, x, generator=torch.Generator().manual_seed(1)).prev_sample
    assert float((mine - out).abs().max()) > 1e3 * TOL64
    # an index off by one (project t read as diffusers t) is caught too
    off = theirs.step(eps, 500, x, generator=torch.Generator().manual_seed(1)).prev_sample
    assert float((_ddpm_step_ours(ours, x, eps, 500, noise, "beta") - off).abs().max()) > 1e3 * TOL64
