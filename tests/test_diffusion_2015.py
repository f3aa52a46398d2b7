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


# ---------------------------------------------------------------------------------------------
# Binomial diffusion (gencode.binomial_diffusion) against dpm2015.binomial.*

from gencode.binomial_diffusion import BinomialDiffusion  # noqa: E402


def _binomial_chain(device: torch.device) -> BinomialDiffusion:
    betas = torch.linspace(0.02, 0.3, 12, dtype=torch.float64, device=device)
    return BinomialDiffusion(betas)


@pytest.mark.validates("dpm2015.binomial.marginal")
def test_binomial_marginal_against_iterated_chain(device: torch.device) -> None:
    """The chain run step by step from x_0 = 0 and x_0 = 1 against the registered marginal."""
    chain = _binomial_chain(device)
    n = 40_000
    x0 = torch.cat([torch.zeros(n), torch.ones(n)]).to(device=device, dtype=torch.float64)
    path_ = chain.trajectory(x0, generator=torch.Generator(device).manual_seed(0))  # (T + 1, 2n)
    claim = sp.lambdify((d.xb0, d.abar_t), d.binomial_marginal.claim["p"])
    wrong = sp.lambdify((d.xb0, d.abar_t), d.binomial_marginal.claim["p"].xreplace(
        {d.abar_t: sp.sqrt(d.abar_t)}))  # the sqrt_signal mutant
    worst, wrong_min = 0.0, float("inf")
    for t in range(1, chain.T + 1):
        abar = float(chain.alphas_cumprod[t])
        for half, bit in ((slice(0, n), 0.0), (slice(n, 2 * n), 1.0)):
            p = claim(bit, abar)
            assert abs(float(chain.q_prob(torch.tensor([bit], dtype=torch.float64, device=device), t)) - p) < 1e-15
            freq = float(path_[t, half].mean())
            se = (p * (1 - p) / n) ** 0.5  # binomial standard error of a frequency of n draws
            worst = max(worst, abs(freq - p) / se)
            if t >= 3:  # the mutant differs visibly once alphabar_t is away from 1
                wrong_min = min(wrong_min, abs(freq - wrong(bit, abar)) / se)
    # 24 comparisons: 4.5 standard errors bound all of them with probability > 0.9998
    assert worst < 4.5, worst
    assert wrong_min > 10, wrong_min


@pytest.mark.validates("dpm2015.binomial.posterior")
def test_binomial_posterior_against_chain_frequencies(device: torch.device) -> None:
    """Empirical P(x_{t-1} = 1 | x_t, x_0) of simulated chains against the registered posterior."""
    chain = _binomial_chain(device)
    n = 60_000
    x0 = torch.cat([torch.zeros(n), torch.ones(n)]).to(device=device, dtype=torch.float64)
    path_ = chain.trajectory(x0, generator=torch.Generator(device).manual_seed(1))
    claim = sp.lambdify((d.spin_t, d.spin_0, d.bt, d.g_prev), d.binomial_posterior.claim["p"])
    worst = 0.0
    for t in (2, 6, 12):
        for x0v in (0.0, 1.0):
            for xtv in (0.0, 1.0):
                mask = (x0 == x0v) & (path_[t] == xtv)
                m = int(mask.sum())
                p = claim(2 * xtv - 1, 2 * x0v - 1, float(chain.betas[t]), float(chain.alphas_cumprod[t - 1]))
                code = float(chain.posterior_prob(torch.tensor(xtv, dtype=torch.float64, device=device),
                                                  torch.tensor(x0v, dtype=torch.float64, device=device), t))
                assert abs(code - p) < 1e-14
                freq = float(path_[t - 1][mask].mean())
                se = (p * (1 - p) / m) ** 0.5
                worst = max(worst, abs(freq - p) / se)
    assert worst < 4.5, worst  # 12 comparisons: probability of a false alarm < 1e-4


@pytest.mark.validates("dpm2015.binomial.stationary")
def test_binomial_fair_coin_is_stationary(device: torch.device) -> None:
    chain = _binomial_chain(device)
    n = 200_000
    x = torch.bernoulli(torch.full((n,), 0.5, dtype=torch.float64, device=device),
                        generator=torch.Generator(device).manual_seed(2))
    final = chain.trajectory(x, generator=torch.Generator(device).manual_seed(3))[-1]
    assert abs(float(final.mean()) - 0.5) < 4.5 * (0.25 / n) ** 0.5  # binomial standard error


def test_binomial_rejects_bad_input(device: torch.device) -> None:
    with pytest.raises(ValueError, match="betas"):
        BinomialDiffusion(torch.tensor([0.1, 1.5], device=device))
    with pytest.raises(ValueError, match="betas"):
        BinomialDiffusion(torch.tensor([0.0, 0.5], device=device))
    chain = _binomial_chain(device)
    with pytest.raises(ValueError, match="t must"):
        chain.q_prob(torch.ones(2, dtype=torch.float64, device=device), 0)
    with pytest.raises(TypeError, match="x0"):
        chain.q_prob(torch.ones(2, dtype=torch.long, device=device), 1)
