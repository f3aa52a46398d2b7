"""``gencode.guidance`` against the registered guidance identities (``derivations.guidance``).

Guided samplers are tested on the exact oracles of a labelled Gaussian mixture: at scale 1 they
must reproduce the conditional law, and the mass on the requested class must grow with the scale.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch

from derivations import guidance as g
from gencode.diffusion import NoiseSchedule, ancestral_sample, linear_beta_schedule, oracle_noise_predictor
from gencode.distributions import GaussianMixture, mixture_1d
from gencode.guidance import LabelledMixture, cfg_noise, classifier_guided_noise, oracle_guided_predictor
from gencode.oracle import MixtureOracle
from gencode.two_sample import energy_distance, mode_check, sample_floor



def _schedule(device: torch.device) -> NoiseSchedule:
    # 100 steps reaching alphabar_T = 2.0e-5, as close to noise as DDPM's 1000 steps (4.0e-5)
    return NoiseSchedule(linear_beta_schedule(100, 1e-3, 0.2)).to(device)


def _labelled_2d(device: torch.device) -> LabelledMixture:
    """Three classes in 2-D: class 0 has two components, classes 1 and 2 one each."""
    means = torch.tensor([[-2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, -2.0]], dtype=torch.float64, device=device)
    cov = 0.15 * torch.eye(2, dtype=torch.float64, device=device).expand(4, 2, 2)
    weights = torch.tensor([0.2, 0.2, 0.3, 0.3], dtype=torch.float64, device=device)
    return LabelledMixture(GaussianMixture(weights, means, cov), torch.tensor([0, 0, 1, 2]))


@pytest.mark.validates("guidance.cfg")
def test_cfg_noise_matches_registry(device: torch.device, generator: torch.Generator) -> None:
    eps_c, eps_u = (torch.randn(50, 2, generator=generator, device=device, dtype=torch.float64) for _ in range(2))
    gamma = 2.5
    f = sp.lambdify((g.s_u, g.s_c, g.gamma), g.cfg.claim["guided"], "numpy")
    got = cfg_noise(eps_c, eps_u, gamma)
    np.testing.assert_allclose(got.cpu().numpy(), f(eps_u.cpu().numpy(), eps_c.cpu().numpy(), gamma), rtol=1e-14)
    for mutant in g.cfg.mutants:
        if "guided" in mutant.claim:
            bad = sp.lambdify((g.s_u, g.s_c, g.gamma), mutant.claim["guided"], "numpy")
            assert np.abs(got.cpu().numpy() - bad(eps_u.cpu().numpy(), eps_c.cpu().numpy(), gamma)).max() > 0.1


@pytest.mark.validates("guidance.classifier_noise", "guidance.cfg")
def test_cfg_score_identity_at_every_noise_level(device: torch.device, generator: torch.Generator) -> None:
    """(1 - gamma) eps(x) + gamma eps(x, y) = eps(x) - gamma s grad log p(y | x): exact oracles."""
    data = _labelled_2d(device)
    sched = _schedule(device)
    x = 2.5 * torch.randn(300, 2, generator=generator, device=device, dtype=torch.float64)
    f = sp.lambdify((g.eps_u, g.gamma, g.alphabar_t, g.g_), g.classifier_noise.claim["eps"], "numpy")
    for t in (1, 10, 50, 100):
        cfg = oracle_guided_predictor(sched, data, 1, 3.0, "cfg")(x, t)
        clf = oracle_guided_predictor(sched, data, 1, 3.0, "classifier")(x, t)
        torch.testing.assert_close(cfg, clf, rtol=1e-9, atol=1e-9)  # float64, scores up to ~1e2
        abar = float(sched.alphas_cumprod[t])
        eps_u = oracle_noise_predictor(sched, MixtureOracle(data.mixture))(x, t)
        grad = data.classifier_grad(x, 1, math.sqrt(abar), math.sqrt(1 - abar))
        want = f(eps_u.cpu().numpy(), 3.0, abar, grad.cpu().numpy())
        np.testing.assert_allclose(clf.cpu().numpy(), want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(classifier_guided_noise(eps_u, grad, math.sqrt(1 - abar), 3.0), clf)


@pytest.mark.validates("guidance.classifier_noise")
@pytest.mark.parametrize("gamma", [1.0, 3.0])
def test_noisy_classifier_guidance_has_the_exact_scale(device: torch.device, generator: torch.Generator,
                                                        gamma: float) -> None:
    """NoisyClassifier.guided_predictor with the exact noisy classifier in place of its network is the
    oracle's classifier-guided predictor, and the CFG one: the scale gamma sqrt(1 - alphabar_t) is
    taken at the step t the sampler asks for.

    Broken on purpose to see it fail: the standard deviation at t - 1 (off by up to 30% at t = 2..10),
    1 - alphabar_t for its square root, or gamma left out of the classifier term: each moves the
    prediction by more than 1e-3, far above float64 rounding.
    """
    from gencode.guidance import NoisyClassifier

    data = _labelled_2d(device)
    sched = _schedule(device)
    abar = sched.alphas_cumprod

    class ExactClassifier(NoisyClassifier):
        def log_prob(self, xt: torch.Tensor, t) -> torch.Tensor:
            a = float(abar[int(t)])
            return data.classifier_log_prob(xt, math.sqrt(a), math.sqrt(1 - a))

    clf = ExactClassifier(sched, dim=2, num_classes=3).to(device)
    uncond = oracle_noise_predictor(sched, MixtureOracle(data.mixture))
    x = 2.5 * torch.randn(200, 2, generator=generator, device=device, dtype=torch.float64)
    guided = clf.guided_predictor(uncond, 0, gamma)
    exact = oracle_guided_predictor(sched, data, 0, gamma, "classifier")
    cfg = oracle_guided_predictor(sched, data, 0, gamma, "cfg")
    for t in (2, 5, 10, 40, 100):
        got = guided(x, t)
        torch.testing.assert_close(got, exact(x, t), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got, cfg(x, t), rtol=1e-9, atol=1e-9)  # two exact routes, float64


@pytest.mark.validates("guidance.cfg")
def test_classifier_gradient_is_difference_of_scores(device: torch.device, generator: torch.Generator) -> None:
    """guidance.bayes on the oracle: grad log p(y | x) = s(x, y) - s(x) at each noise level."""
    data = _labelled_2d(device)
    x = 2 * torch.randn(100, 2, generator=generator, device=device, dtype=torch.float64)
    for a, s in [(1.0, 0.3), (0.6, 0.8), (0.05, 0.999)]:
        diff = (MixtureOracle(data.class_mixture(0)).score(x, a, s) - MixtureOracle(data.mixture).score(x, a, s))
        torch.testing.assert_close(data.classifier_grad(x, 0, a, s), diff, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
@pytest.mark.validates("guidance.cfg")
def test_guided_sampling_on_the_oracle(device: torch.device) -> None:
    data = _labelled_2d(device)
    sched = _schedule(device)
    gen = torch.Generator(device=device).manual_seed(0)
    n, y = 500, 0
    target = data.class_mixture(y)
    fractions = []
    for gamma in (0.0, 1.0, 4.0):
        x = ancestral_sample(sched, oracle_guided_predictor(sched, data, y, gamma),
                             torch.randn(n, 2, generator=gen, device=device, dtype=torch.float64), "beta", gen)
        probs = data.classifier_log_prob(x, 1.0, 1e-3).exp()[:, y]  # class of each sample, at noise ~0
        fractions.append(float(probs.mean()))
        if gamma == 1.0:  # the exact conditional law, pooled and component by component
            floor = sample_floor(lambda m: target.sample(m, generator=gen), n)
            assert float(energy_distance(x, target.sample(n, generator=gen))) < floor.threshold()
            modes = mode_check(x, target, generator=gen)
            assert modes.passed(k=4), modes.worst()
    # gamma = 0 samples p(x): class 0 has mass 0.4 (binomial standard error sqrt(.24/500) ~ 0.022)
    assert abs(fractions[0] - 0.4) < 5 * math.sqrt(0.24 / n)
    assert fractions[1] > 0.97 and fractions[2] >= fractions[1]


@pytest.mark.slow
@pytest.mark.validates("guidance.cfg")
def test_cfg_does_not_sample_the_tilted_law(device: torch.device) -> None:
    """Bradley and Nakkiran: with gamma = 3 the CFG sampler's law differs from p(x|y)^3 p(x)^-2 / Z."""
    mixture = mixture_1d([0.5, 0.5], [-1.0, 1.0], [0.7, 0.7], dtype=torch.float64, device=device)
    data = LabelledMixture(mixture, torch.tensor([0, 1]))
    sched = _schedule(device)
    gen = torch.Generator(device=device).manual_seed(1)
    n, gamma = 2000, 3.0
    x = ancestral_sample(sched, oracle_guided_predictor(sched, data, 1, gamma),
                         torch.randn(n, 1, generator=gen, device=device, dtype=torch.float64), "beta", gen)
    # the tilted law on a fine grid, sampled by inverting its CDF
    grid = torch.linspace(-6, 8, 20001, dtype=torch.float64, device=device)
    log_t = gamma * data.class_mixture(1).log_prob(grid[:, None]) + (1 - gamma) * mixture.log_prob(grid[:, None])
    cdf = torch.cumsum(torch.softmax(log_t, 0), 0)

    def tilted(m: int) -> torch.Tensor:
        u = torch.rand(m, generator=gen, device=device, dtype=torch.float64)
        return grid[torch.searchsorted(cdf, u).clamp(max=grid.numel() - 1)][:, None]

    floor = sample_floor(tilted, n)
    assert float(energy_distance(x, tilted(n))) > 5 * floor.threshold()


def test_guidance_bad_input(device: torch.device) -> None:
    data = _labelled_2d(device)
    with pytest.raises(ValueError, match="gamma"):
        cfg_noise(torch.zeros(2, 2), torch.zeros(2, 2), -1.0)
    with pytest.raises(ValueError, match="same shape"):
        cfg_noise(torch.zeros(2, 2), torch.zeros(2, 3), 1.0)
    with pytest.raises(ValueError, match="y must be"):
        data.class_mixture(3)
    with pytest.raises(ValueError, match="labels"):
        LabelledMixture(data.mixture, torch.tensor([0, 0, 2, 2]))
    with pytest.raises(TypeError, match="mixture"):
        LabelledMixture("mixture", torch.tensor([0]))
    with pytest.raises(ValueError, match="kind"):
        oracle_guided_predictor(_schedule(device), data, 0, 1.0, kind="free")


def _trained(cls, device: torch.device, steps: int):
    """(labelled data in float64, the same in float32, schedule, model trained on it with ``fit``):
    the chapter's budget (book/guidance.md), a 128-wide MLP with EMA weights and a cosine schedule."""
    from gencode.guidance import labelled_batches
    from gencode.train import fit

    data = _labelled_2d(device)
    data32 = LabelledMixture(data.mixture.to(dtype=torch.float32), data.labels)
    sched = NoiseSchedule(linear_beta_schedule(100, 1e-3, 0.2, dtype=torch.float32)).to(device)
    from gencode.diffusion import early_step_probs

    torch.manual_seed(0)
    from gencode.guidance import ConditionalDDPM

    # half of the denoiser's steps from the ten least noisy ones; the classifier keeps uniform steps
    extra = {"step_probs": early_step_probs(sched.T)} if cls is ConditionalDDPM else {}
    model = cls(sched, dim=2, num_classes=3, hidden=128, **extra).to(device)
    fit(model.loss, model, labelled_batches(data32), steps=steps, batch_size=512, lr=3e-3, lr_schedule="cosine",
        ema_decay=0.995)
    return data, data32, sched, model


def _exact_guided(data: LabelledMixture, y: int, gamma: float, n: int, reps: int, gen: torch.Generator):
    """One large run of the exact guided sampler, split into the floor's pieces and a reference.

    The floor of a two-component law is dominated by the binomial fluctuation of the component
    counts, and its threshold estimated from 10 repetitions varied by a factor 10 between runs
    (0.005 to 0.05 at n = 600); the tests use 30 repetitions."""
    sched = _schedule(data.mixture.device)
    x = ancestral_sample(sched, oracle_guided_predictor(sched, data, y, gamma),
                         torch.randn((2 * reps + 1) * n, 2, generator=gen, device=data.mixture.device,
                                     dtype=torch.float64), "beta", gen)
    pieces = iter(x.split(n))
    floor = sample_floor(lambda m: next(pieces), n, reps=reps)
    return floor, next(pieces), x


@pytest.mark.slow
@pytest.mark.validates("guidance.cfg")
def test_trained_cfg_model_reproduces_the_exact_guided_sampler(device: torch.device) -> None:
    from gencode.guidance import ConditionalDDPM

    data, data32, sched, model = _trained(ConditionalDDPM, device, 2000)
    gen = torch.Generator(device=device).manual_seed(2)
    n = 600
    target = data.class_mixture(0)
    for gamma in (1.0, 3.0):
        floor, reference, exact = _exact_guided(data, 0, gamma, n, 30, gen)
        x = ancestral_sample(sched, model.guided_predictor(0, gamma), torch.randn(n, 2, generator=gen, device=device),
                             "beta", gen).double()
        ed = float(energy_distance(x, reference))
        # Training budget: 2000 steps.  The book's goal for a trained sampler: within 1.5 times the
        # floor threshold of the exact guided sampler's law (measured -0.2 to 0.6 times over sampling
        # seeds with the chapter's threshold).
        assert ed < 1.5 * floor.threshold(), (gamma, ed, floor.threshold())
        modes = mode_check(x, target, reference=exact)
        assert float(modes.weight_z.abs().max()) < 4, modes.weight_z
        # Within-component variance: measured 0.99 and 1.10 times the exact sampler's at this budget
        # (0.5 to 0.65 without early_step_probs, which this bound rejects); 1.6 leaves room for
        # other devices and seeds.
        ratio = float(modes.variances.mean() / modes.ref_variances.mean())
        assert 0.7 < ratio < 1.6, (gamma, ratio)
    # the null label gives the unconditional model: about 40% of its samples are of class 0
    x_u = ancestral_sample(sched, model.guided_predictor(0, 0.0), torch.randn(n, 2, generator=gen, device=device),
                           "beta", gen)
    frac = float(data.classifier_log_prob(x_u.double(), 1.0, 1e-3).exp()[:, 0].mean())
    assert abs(frac - 0.4) < 0.1  # binomial s.e. 0.02 plus training error


@pytest.mark.slow
@pytest.mark.validates("guidance.classifier_noise")
def test_trained_noisy_classifier_agrees_with_the_exact_one(device: torch.device) -> None:
    from gencode.guidance import NoisyClassifier

    data, data32, sched, clf = _trained(NoisyClassifier, device, 1000)
    gen = torch.Generator(device=device).manual_seed(3)
    x0, _ = data32.sample(2000, gen)
    for t in (10, 40):
        xt = sched.q_sample(x0, t, generator=gen)
        abar = float(sched.alphas_cumprod[t])
        exact = data.classifier_log_prob(xt.double(), math.sqrt(abar), math.sqrt(1 - abar)).exp()
        with torch.no_grad():
            learned = clf.log_prob(xt, t).exp().double()
        # Training budget: 1000 steps.  Mean total-variation distance between the learned and the
        # exact class probabilities below 0.05 (measured about 0.01).
        assert float(0.5 * (learned - exact).abs().sum(-1).mean()) < 0.05
    # guiding the exact unconditional predictor with it reproduces the exact guided sampler (gamma = 3)
    uncond = oracle_noise_predictor(sched, MixtureOracle(data32.mixture))
    n = 600
    floor, reference, exact_x = _exact_guided(data, 0, 3.0, n, 30, gen)
    x = ancestral_sample(sched, clf.guided_predictor(uncond, 0, 3.0),
                         torch.randn(n, 2, generator=gen, device=device), "beta", gen).double()
    assert float(data.classifier_log_prob(x, 1.0, 1e-3).exp()[:, 0].mean()) > 0.95
    assert float(energy_distance(x, reference)) < 1.5 * floor.threshold()
    modes = mode_check(x, data.class_mixture(0), reference=exact_x)
    assert float(modes.weight_z.abs().max()) < 4, modes.weight_z
    ratio = float(modes.variances.mean() / modes.ref_variances.mean())
    assert 0.7 < ratio < 1.6, ratio  # measured 0.96 to 1.0 with the exact unconditional predictor
