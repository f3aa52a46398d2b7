"""A fixture for tests of small 2-D samplers and networks: run torch on one CPU thread.

The tensors are a few thousand 2-D points; on a shared CPU intra-op threads only add
synchronisation (measured: 7 ms per oracle score call with one thread, 100 ms with two under load).
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
