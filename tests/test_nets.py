"""gencode.nets: the time embedding's formula and the MLP's contract."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gencode.nets import MLP, SinusoidalTimeEmbedding


def test_embedding_formula(device: torch.device, dtype: torch.dtype) -> None:
    emb = SinusoidalTimeEmbedding(6, max_period=100.0)
    t = torch.tensor([0.0, 0.25, 3.0, 999.0], device=device, dtype=dtype)
    e = emb(t)
    assert e.shape == (4, 6) and e.dtype == dtype and e.device.type == device.type
    # written out: omega_i = 100^(-i/3), features [sin(omega_i t)]_i then [cos(omega_i t)]_i
    omega = torch.tensor([100.0 ** (-i / 3) for i in range(3)], device=device, dtype=dtype)
    expected = torch.cat([torch.sin(t[:, None] * omega), torch.cos(t[:, None] * omega)], -1)
    torch.testing.assert_close(e, expected)
    # each (sin, cos) pair lies on the unit circle, so every feature is bounded by 1
    torch.testing.assert_close(e[:, :3] ** 2 + e[:, 3:] ** 2, torch.ones(4, 3, device=device, dtype=dtype))


def test_embedding_separates_times_and_accepts_ints_and_scalars() -> None:
    emb = SinusoidalTimeEmbedding(32)
    e = emb(torch.linspace(0.0, 1.0, 11))
    dist = torch.cdist(e, e) + torch.eye(11)
    assert dist.min() > 1e-3  # distinct times, distinct embeddings
    steps = emb(torch.arange(1000))
    assert steps.dtype == torch.get_default_dtype() and steps.abs().max() <= 1.0
    assert torch.cdist(steps, steps).add(torch.eye(1000)).min() > 1e-3
    assert emb(torch.tensor(0.5)).shape == (32,)


@pytest.mark.parametrize("dim", [0, 3, -2, 2.0])
def test_embedding_rejects_bad_dim(dim: object) -> None:
    with pytest.raises(ValueError, match="dim"):
        SinusoidalTimeEmbedding(dim)  # type: ignore[arg-type]


def test_embedding_rejects_matrix_t() -> None:
    with pytest.raises(ValueError, match=r"\bt\b"):
        SinusoidalTimeEmbedding(4)(torch.zeros(2, 3))


def test_mlp_shapes(device: torch.device, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 3, device=device, dtype=dtype)
    plain = MLP(3, 2, hidden=16, depth=2).to(device, dtype)
    assert plain(x).shape == (5, 2) and plain(x, t=None).shape == (5, 2)
    assert sum(isinstance(m, nn.Linear) for m in plain.net) == 3  # depth hidden layers + output layer
    timed = MLP(3, 4, hidden=16, depth=1, time_dim=8, activation=nn.Tanh).to(device, dtype)
    out_vec = timed(x, torch.full((5,), 0.3, device=device, dtype=dtype))
    out_scalar = timed(x, 0.3)  # a Python float broadcasts over the batch
    assert out_vec.shape == (5, 4) and out_vec.dtype == dtype
    torch.testing.assert_close(out_scalar, out_vec)
    torch.testing.assert_close(timed(x, torch.tensor(0.3)), out_vec)  # a CPU scalar tensor moves to x
    assert not torch.allclose(timed(x, 0.9), out_vec)  # the output depends on t


def test_mlp_rejects_bad_inputs() -> None:
    plain, timed = MLP(3, 2, hidden=8, depth=1), MLP(3, 2, hidden=8, depth=1, time_dim=4)
    x = torch.zeros(5, 3)
    cases = [
        ("x", lambda: plain(torch.zeros(5, 4))),
        ("x", lambda: plain(torch.zeros(3))),
        ("t", lambda: plain(x, 0.5)),  # no time input
        ("t", lambda: timed(x)),  # time input missing
        ("t", lambda: timed(x, torch.zeros(4))),  # wrong batch
        ("t", lambda: timed(x, torch.zeros(5, 1))),
        ("depth", lambda: MLP(3, 2, depth=0)),
        ("in_dim", lambda: MLP(0, 2)),
        ("dim", lambda: MLP(3, 2, time_dim=5)),
    ]
    for name, call in cases:
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            call()


def test_mlp_gradients_flow_to_every_parameter() -> None:
    net = MLP(2, 1, hidden=8, depth=2, time_dim=4)
    net(torch.randn(6, 2), torch.rand(6)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    assert math.isfinite(sum(float(p.grad.sum()) for p in net.parameters()))
