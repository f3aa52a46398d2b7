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


@pytest.fixture(scope="session", autouse=True)
def _one_intraop_thread(device: torch.device):
    """Run the suite's CPU work on one intra-op thread, and restore the setting afterwards.

    The tests train and sample tiny models on batches of a few thousand low-dimensional points;
    with several threads, synchronisation costs more than the work. Measured on the 2-core build
    machine under load: an oracle score call took 115 ms with 2 threads and 2 ms with 1, and 300
    steps of a 32-wide MLP 36 s and 0.9 s. The chapters make the same choice on CPU.
    """
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
