"""The 2015 diffusion bound (``derivations.diffusion_2015``) against forward paths simulated by gencode.

K is estimated two ways on 1-D data with second moment 1: directly, as the average of
``log pi(x_T) + sum_t log p(x_{t-1} | x_t) - log q(x_t | x_{t-1})`` over forward paths, and from the
entropy form of ``dpm2015.bound`` (posterior KLs in closed form, entropies analytic).
"""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch
from torch.distributions import Normal, kl_divergence

from derivations import diffusion_2015 as d
from gencode.diffusion import NoiseSchedule, linear_beta_schedule
from gencode.distributions import mixture_1d


@pytest.fixture
def setting(device: torch.device):
    # second moment 0.5 * (0.8^2 + 0.6^2) * 2 = 1: the prior's cross-entropy is the same at every t
    data = mixture_1d([0.5, 0.5], [-0.8, 0.8], [0.6, 0.6], dtype=torch.float64, device=device)
    sched = NoiseSchedule(linear_beta_schedule(6, 0.05, 0.5)).to(device)
    # an arbitrary linear-Gaussian reverse model for t >= 2: mean k_t x_t + d_t, variance s_t
    k = torch.tensor([0.0, 0.0, 0.9, 0.8, 0.7, 0.75, 0.5], dtype=torch.float64, device=device)
    dd = torch.tensor([0.0, 0.0, 0.1, -0.05, 0.0, 0.2, 0.0], dtype=torch.float64, device=device)
    s = torch.tensor([1.0, 1.0, 0.1, 0.2, 0.3, 0.35, 0.5], dtype=torch.float64, device=device)
    return data, sched, k, dd, s


def _reverse(sched: NoiseSchedule, k, dd, s, t: int, x_t: torch.Tensor) -> Normal:
    if t == 1:  # the edge-effect kernel (dpm2015.edge)
        return Normal(sched.alphas[1].sqrt() * x_t, sched.betas[1].sqrt())
    return Normal(k[t] * x_t + dd[t], s[t].sqrt())


@pytest.mark.validates("dpm2015.edge")
def test_edge_choice_is_gaussian_reverse_kernel_of_standard_data(device: torch.device) -> None:
    """dpm2015.edge by simulation: for x_0 ~ N(0, 1), x_0 | x_1 is N(sqrt(alpha_1) x_1, beta_1)."""
    sched = NoiseSchedule(linear_beta_schedule(3, 0.2, 0.4)).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    n = 200_000
    x0 = torch.randn(n, generator=gen, device=device, dtype=torch.float64)[:, None]
    x1 = sched.q_step(x0, 1, generator=gen)
    slope = float((x0 * x1).mean() / x1.square().mean())
    resid = float((x0 - slope * x1).var())
    # standard errors ~ 1/sqrt(n) for the slope and var sqrt(2/n) for the variance; 5 of them
    a = math.sqrt(float(sched.alphas[1]))
    mean = sp.lambdify((d.a, d.x1), d.edge.claim["mean"])(a, 1.0)  # the coefficient of x_1
    variance = sp.lambdify(d.a, d.edge.claim["variance"])(a)
    assert abs(slope - mean) < 5 / math.sqrt(n)
    assert abs(resid / variance - 1) < 5 * math.sqrt(2 / n)
    assert abs(float(sched.reverse_variance("beta")[1]) - variance) < 1e-15


def test_bound_entropy_form_matches_path_average(device: torch.device, setting) -> None:
    data, sched, k, dd, s = setting
    gen = torch.Generator(device=device).manual_seed(1)
    n, T = 100_000, sched.T
    path = [data.sample(n, generator=gen)]
    for t in range(1, T + 1):
        path.append(sched.q_step(path[-1], t, generator=gen))
    # K directly: log pi(x_T) + sum_t [log p(x_{t-1} | x_t) - log q(x_t | x_{t-1})]
    direct = Normal(0.0, 1.0).log_prob(path[T]).sum(-1)
    for t in range(1, T + 1):
        direct += _reverse(sched, k, dd, s, t, path[t]).log_prob(path[t - 1]).sum(-1)
        direct -= Normal(sched.alphas[t].sqrt() * path[t - 1], sched.betas[t].sqrt()).log_prob(path[t]).sum(-1)
    # K in entropy form: -sum_{t>=2} D_t + sum_{t>=2} (H_t - H_{t-1}) - H_p(X_T)
    entropy = lambda t: 0.5 * math.log(2 * math.pi * math.e * (1 - float(sched.alphas_cumprod[t])))
    form = torch.full_like(direct, sum(entropy(t) - entropy(t - 1) for t in range(2, T + 1))
                           - 0.5 * math.log(2 * math.pi * math.e))
    kl_sum = torch.zeros_like(direct)
    for t in range(2, T + 1):
        post = sched.q_posterior(path[0], path[t], t)
        kl_sum += kl_divergence(Normal(post.mean, post.std), _reverse(sched, k, dd, s, t, path[t])).sum(-1)
    diff = direct - (form - kl_sum)  # mean zero by dpm2015.bound
    se = float(diff.std()) / math.sqrt(n)
    assert abs(float(diff.mean())) < 5 * se  # five standard errors
    # The comparison has teeth: the mutant with the KL terms' sign flipped is off by 2 E[sum D_t],
    # far more than five standard errors for this (deliberately imperfect) model.
    assert 2 * float(kl_sum.mean()) > 20 * se
