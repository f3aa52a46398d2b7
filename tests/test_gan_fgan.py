"""The GAN as an f-GAN, and the non-saturating loss as KL - 2 JS (Arjovsky and Bottou 2017).

Quadrature: 4000 composite Gauss-Legendre nodes on [-14, 14] (``gencode.divergences``' own rule), for smooth
Gaussian-tailed integrands; its error is far below the 1e-9 used.  Closed forms in float64 to 1e-12.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch
from torch.distributions import Normal

from derivations import gan as dg
from gencode.divergences import _nodes, js_quadrature, kl_quadrature
from gencode.distributions import mixture_1d
from gencode.gan import discriminator_value, fgan_objective, nonsaturating_loss_at_optimum

QUAD = 1e-9  # see the module docstring


@pytest.mark.validates("gan.fgan")
def test_fgan_objective_is_the_gan_value_plus_log4(device, generator) -> None:
    g = torch.Generator().manual_seed(11)  # CPU stream, deterministic on any device
    real = 3 * torch.randn(1000, generator=g, dtype=torch.float64).to(device)
    fake = 3 * torch.randn(700, generator=g, dtype=torch.float64).to(device)
    got = fgan_objective(real, fake)
    assert float(got) == pytest.approx(float(discriminator_value(real, fake)) + math.log(4), rel=1e-12, abs=1e-12)
    # against the registered conjugate and critic, lambdified, at each sample
    conj = sp.lambdify(dg.s_, dg.fgan.claim["conjugate"], "numpy")
    critic = sp.lambdify(dg.D, dg.fgan.claim["critic"], "numpy")
    d_real, d_fake = (torch.sigmoid(t).cpu().numpy() for t in (real, fake))
    ref = critic(d_real).mean() - conj(critic(d_fake)).mean()
    assert float(got) == pytest.approx(ref, rel=1e-10)
    # the refuted conjugate (the table's, for the generator without f(1) = 0) gives another number
    wrong = sp.lambdify(dg.s_, dg.fgan.mutants[0].claim["conjugate"], "numpy")
    assert abs(critic(d_real).mean() - np.mean(wrong(critic(d_fake) - math.log(2))) - ref) > 0.1


@pytest.mark.validates("gan.fgan")
def test_fgan_objective_at_the_optimal_critic_is_twice_js(device) -> None:
    x, w = _nodes(-14.0, 14.0, 4000, device, torch.float64)
    p, q = Normal(torch.tensor(0.0, dtype=torch.float64, device=device), 1.0), Normal(1.5, 0.7)
    logit = p.log_prob(x) - q.log_prob(x)  # D* = sigmoid(log p - log q)
    # E_p T - E_q f*(T) by quadrature, with T = log 2 - softplus(-v) and f*(T) = -log 2 + softplus(v)
    t = math.log(2) - torch.nn.functional.softplus(-logit)
    conj = -math.log(2) + torch.nn.functional.softplus(logit)
    bound = (w * p.log_prob(x).exp() * t).sum() - (w * q.log_prob(x).exp() * conj).sum()
    assert float(bound) == pytest.approx(2 * float(js_quadrature(p.log_prob, q.log_prob, -14, 14, 4000, device=device)),
                                         abs=QUAD)


def test_fgan_bad_input() -> None:
    with pytest.raises(ValueError, match="fake_logits"):
        fgan_objective(torch.zeros(3), torch.zeros(0))
    with pytest.raises(ValueError, match="x and weights"):
        nonsaturating_loss_at_optimum(lambda x: x, lambda x: x, torch.zeros(3), torch.zeros(4))


@pytest.mark.validates("gan.nonsaturating_kl_js")
def test_nonsaturating_loss_is_kl_minus_two_js_by_quadrature(device) -> None:
    x, w = _nodes(-14.0, 14.0, 4000, device, torch.float64)
    mix = mixture_1d(torch.tensor([0.4, 0.6], dtype=torch.float64, device=device),
                     torch.tensor([-2.0, 2.0], dtype=torch.float64, device=device),
                     torch.tensor([0.5, 0.8], dtype=torch.float64, device=device))
    log_p = lambda z: mix.log_prob(z[:, None])  # noqa: E731
    for mean, std in ((0.3, 1.0), (2.0, 0.6), (-1.0, 2.0)):
        log_q = Normal(torch.tensor(mean, dtype=torch.float64, device=device), std).log_prob
        loss = float(nonsaturating_loss_at_optimum(log_p, log_q, x, w))
        kl = float(kl_quadrature(log_q, log_p, -14, 14, 4000, device=device))
        js = float(js_quadrature(log_p, log_q, -14, 14, 4000, device=device))
        lp, lq = log_p(x), log_q(x)
        e_p_log_d = float((w * lp.exp() * (lp - torch.logaddexp(lp, lq))).sum())
        assert loss == pytest.approx(kl - 2 * js + math.log(4) + e_p_log_d, abs=QUAD)
        # the refuted variant with -JS instead of -2 JS is off by JS, far above the quadrature error
        assert abs(loss - (kl - js + math.log(4) + e_p_log_d)) > 100 * QUAD


@pytest.mark.validates("gan.nonsaturating_kl_js")
def test_gradient_with_the_discriminator_frozen_is_that_of_kl_minus_two_js(device) -> None:
    """With D* fixed at theta_0, d/dtheta E_{q_theta}[-log D*] = d/dtheta [KL(q_theta || p) - 2 JS(p, q_theta)]
    at theta_0 (the E_p log D* term does not move). Central differences, step 1e-4: truncation error
    O(h^2 f''') ~ 1e-8, rounding 1e-16/1e-4 ~ 1e-12; tolerance 1e-6."""
    x, w = _nodes(-14.0, 14.0, 4000, device, torch.float64)
    p = Normal(torch.tensor(0.0, dtype=torch.float64, device=device), 1.0)
    theta0, h = 1.2, 1e-4
    q0 = Normal(torch.tensor(theta0, dtype=torch.float64, device=device), 1.0)
    log_d_frozen = p.log_prob(x) - torch.logaddexp(p.log_prob(x), q0.log_prob(x))

    def frozen_loss(th: float) -> float:
        q = Normal(torch.tensor(th, dtype=torch.float64, device=device), 1.0)
        return float((w * q.log_prob(x).exp() * -log_d_frozen).sum())

    def kl_minus_2js(th: float) -> float:
        q = Normal(torch.tensor(th, dtype=torch.float64, device=device), 1.0)
        return float(kl_quadrature(q.log_prob, p.log_prob, -14, 14, 4000, device=device)
                     - 2 * js_quadrature(p.log_prob, q.log_prob, -14, 14, 4000, device=device))

    g1 = (frozen_loss(theta0 + h) - frozen_loss(theta0 - h)) / (2 * h)
    g2 = (kl_minus_2js(theta0 + h) - kl_minus_2js(theta0 - h)) / (2 * h)
    assert g1 == pytest.approx(g2, abs=1e-6)
    assert g1 > 0  # moving the generator away from the data (larger theta) raises the loss
