"""Two-sample distances and data sets."""

from __future__ import annotations

import math

import pytest
import torch

from gencode.datasets import checkerboard, load_digits, two_moons
from gencode.two_sample import energy_distance, sample_floor, sliced_wasserstein

F64 = torch.float64


def test_energy_distance_of_gaussian_shift_matches_closed_form() -> None:
    # 1-D N(0,1) vs N(d,1): 2 E|X-Y| - E|X-X'| - E|Y-Y'| with X-Y ~ N(-d, 2) and X-X' ~ N(0, 2):
    # E|N(m, v)| = sqrt(2v/pi) exp(-m^2/(2v)) + m (1 - 2 Phi(-m/sqrt v)).
    g = torch.Generator().manual_seed(0)
    d, n = 1.0, 4000
    v = 2.0
    fold = math.sqrt(2 * v / math.pi) * math.exp(-d * d / (2 * v)) + d * math.erf(d / math.sqrt(2 * v))
    exact = 2 * fold - 2 * math.sqrt(2 * v / math.pi)
    est = energy_distance(torch.randn(n, 1, generator=g, dtype=F64), d + torch.randn(n, 1, generator=g, dtype=F64))
    # U-statistics with n = 4000: standard error of order 1/sqrt(n) * O(1) ~ 0.02; 0.05 is 2.5 SE.
    assert abs(float(est) - exact) < 0.05


@pytest.mark.parametrize("n,m", [(8, 8), (6, 11)])
def test_energy_distance_is_unbiased_for_one_law(n: int, m: int) -> None:
    # Two samples of one law: the U-statistic's expectation is exactly 0.  Averaged over many small
    # repetitions it stays within five standard errors of 0.  The V-statistic (within-sample means
    # over all n^2 pairs, diagonal included) would average E|X - X'| (1/n + 1/m) ~ 0.28 for n = m = 8
    # in 1-D, about forty standard errors away, and fails this test.
    g = torch.Generator().manual_seed(n + m)
    reps = 4000
    values = torch.stack([energy_distance(torch.randn(n, 1, generator=g, dtype=F64),
                                          torch.randn(m, 1, generator=g, dtype=F64)) for _ in range(reps)])
    se = float(values.std()) / math.sqrt(reps)
    assert abs(float(values.mean())) < 5 * se
    v_bias = (2 / math.sqrt(math.pi)) * (1 / n + 1 / m)  # E|X - X'| = 2/sqrt(pi) for N(0, 1)
    assert v_bias > 20 * se  # the test would see the biased version


def test_sliced_wasserstein_of_a_shift() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3000, 2, generator=g, dtype=F64)
    shift = torch.tensor([3.0, 0.0], dtype=F64)
    sw = sliced_wasserstein(x, x + shift, n_projections=4000, generator=g)
    # identical point sets shifted: W2 along theta is |theta . shift|; E[(theta_1)^2] = 1/2 in 2-D
    assert abs(float(sw) - 3.0 / math.sqrt(2)) < 0.05  # 4000 directions: MC error ~ 0.02


def test_floor_separates_equal_from_different_laws() -> None:
    g = torch.Generator().manual_seed(2)
    floor = sample_floor(lambda n: torch.randn(n, 2, generator=g), 500, reps=20)
    same = energy_distance(torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g))
    wrong = energy_distance(torch.randn(500, 2, generator=g), 1.3 * torch.randn(500, 2, generator=g))
    assert float(same) < floor.threshold()
    assert float(wrong) > floor.threshold()  # a 30% wrong scale is detected at n = 500


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="same dimension"):
        energy_distance(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="x must"):
        energy_distance(torch.zeros(3), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein(torch.zeros(3, 2), torch.zeros(3, 2), n_projections=0)
    with pytest.raises(ValueError, match="reps"):
        sample_floor(lambda n: torch.zeros(n, 1), 3, reps=1)
    with pytest.raises(ValueError, match="split"):
        load_digits("validation")
    with pytest.raises(ValueError, match="squares"):
        checkerboard(3, squares=3)
    with pytest.raises(ValueError, match="n must"):
        two_moons(0)


def test_digits_split_is_a_partition() -> None:
    train, ytr = load_digits("train")
    test, yte = load_digits("test")
    assert len(train) + len(test) == 1797 and len(test) == round(0.2 * 1797)
    assert float(train.max()) == 1.0 and float(train.min()) == 0.0
    # the same seed gives the same split
    torch.testing.assert_close(load_digits("test")[0], test)


def test_checkerboard_is_uniform_on_dark_squares() -> None:
    x = checkerboard(20000, generator=torch.Generator().manual_seed(3), dtype=F64)
    cell = ((x + 2.0) // 1.0).long()
    assert bool(((cell[:, 0] + cell[:, 1]) % 2 == 0).all())  # only dark squares
    counts = torch.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16)
    dark = counts[counts > 0]
    assert len(dark) == 8
    # multinomial counts with p = 1/8: sd = sqrt(20000 * 1/8 * 7/8) ~ 47; 5 sd = 235
    assert float((dark - 2500).abs().max()) < 235


def test_two_moons_is_centred() -> None:
    x = two_moons(20000, noise=0.0, generator=torch.Generator().manual_seed(4), dtype=F64)
    # x-mean: E[cos] = 0 on each moon, so the moons' x-means are 0 and 1, centred to 0 (MC sd ~ 0.006).
    assert float(x.mean(0).abs().max()) < 0.03


def test_mode_check_passes_on_the_target_and_catches_weight_and_spread_errors() -> None:
    from gencode.distributions import GaussianMixture, eight_gaussians
    from gencode.two_sample import mode_check

    g = torch.Generator().manual_seed(3)
    target = eight_gaussians(std=0.2, dtype=torch.float64)
    # 10 independent draws of the target itself: with k = 4 standard errors over 8 weights and
    # 16 variances, a false alarm has probability well under 1e-3 per draw.
    assert all(mode_check(target.sample(3000, g), target, generator=g).passed() for _ in range(10))
    # one mode missing (its weight moved to the others)
    w = torch.full((8,), 1 / 7, dtype=torch.float64)
    w[0] = 0.0
    missing = GaussianMixture(w.clamp_min(1e-12), target.means, target.covariances)
    chk = mode_check(missing.sample(3000, g), target, generator=g)
    assert not chk.passed() and chk.worst()[0] > 4
    # spread 20% too large in every mode, weights right: the variance test sees it
    wide = GaussianMixture(target.weights, target.means, 1.44 * target.covariances)
    chk = mode_check(wide.sample(3000, g), target, generator=g)
    assert not chk.passed() and chk.worst()[1] > 4


def test_mode_check_rejects_bad_input() -> None:
    from gencode.distributions import eight_gaussians
    from gencode.two_sample import mode_check

    target = eight_gaussians(dtype=torch.float64)
    with pytest.raises(ValueError, match="x must have shape"):
        mode_check(torch.zeros(10, 3), target)
    with pytest.raises(ValueError, match="NaN"):
        mode_check(torch.full((10, 2), float("nan")), target)
