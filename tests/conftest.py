"""Shared pytest options and fixtures: the same numeric suite runs on any device.

``pytest --device cuda`` (or ``GENCODE_DEVICE=cuda``) runs the suite there; the default is
:func:`gencode.device.default_device`. Tests marked ``cuda`` are skipped where CUDA is absent.
"""

from __future__ import annotations

import pytest
import torch

from gencode.device import default_device


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        action="store",
        default=None,
        help="torch device for the numeric tests (default: gencode.device.default_device())",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> torch.device:
    """The device under test."""
    name = pytestconfig.getoption("--device")
    return torch.device(name) if name else default_device()


@pytest.fixture
def dtype() -> torch.dtype:
    """float64: most numeric tests compare against closed forms where precision is the point."""
    return torch.float64


@pytest.fixture
def generator(device: torch.device) -> torch.Generator:
    """A fresh generator on the device under test, seeded with 0."""
    return torch.Generator(device=device).manual_seed(0)
