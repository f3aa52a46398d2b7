"""gencode.device: the environment override, seeding, and input checks."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from gencode.device import ENV_VAR, as_tensor, check_finite, default_device, seed_everything


def test_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "cpu")
    assert default_device() == torch.device("cpu")
    monkeypatch.setenv(ENV_VAR, "cuda:1")  # a valid name is accepted even where that device is absent
    assert default_device() == torch.device("cuda", 1)


def test_default_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert default_device().type == expected


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu0"])
def test_invalid_env_raises(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(ENV_VAR, bad)
    with pytest.raises(ValueError, match=ENV_VAR):
        default_device()


def test_seed_everything_reproducible() -> None:
    def draw() -> tuple:
        g = seed_everything(123)
        return random.random(), np.random.rand(), torch.rand(3), torch.rand(3, generator=g)

    first, second = draw(), draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])
    assert not torch.equal(first[3], torch.rand(3, generator=seed_everything(124)))


@pytest.mark.parametrize("seed, err", [(-1, ValueError), (1.5, TypeError), ("0", TypeError), (True, TypeError)])
def test_seed_validation(seed: object, err: type[Exception]) -> None:
    with pytest.raises(err, match="seed"):
        seed_everything(seed)  # type: ignore[arg-type]


def test_check_finite_and_as_tensor(device: torch.device) -> None:
    check_finite("x", torch.zeros(3, device=device))
    check_finite("idx", torch.arange(3, device=device))  # integers are always finite
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="my_arg"):
            check_finite("my_arg", torch.tensor([0.0, bad], device=device))
    t = as_tensor("w", [1, 2], device=device, dtype=torch.float64)
    assert t.dtype == torch.float64 and t.device.type == device.type
    with pytest.raises(ValueError, match="w"):
        as_tensor("w", [1.0, float("nan")])
    with pytest.raises(TypeError, match="w"):
        as_tensor("w", object())
