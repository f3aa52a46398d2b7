r"""The book's one network: an MLP, optionally conditioned on time through a sinusoidal embedding.

Every model of the book that needs a function approximator (a score, a noise predictor, a velocity
field, a discriminator, an encoder) builds it from :class:`MLP`. Networks take their device and dtype
from their parameters and move the time input to the device and dtype of ``x``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["MLP", "SinusoidalTimeEmbedding"]


class SinusoidalTimeEmbedding(nn.Module):
    r"""Sinusoidal features of a time :math:`t` (a float in [0, 1] or an integer step).

    With :math:`h = \mathrm{dim}/2` and frequencies :math:`\omega_i = P^{-i/h}`, :math:`i = 0, \dots, h-1`
    (:math:`P` = ``max_period``),

    .. math::
        \mathrm{emb}(t) = \bigl[\sin(\omega_0 t), \dots, \sin(\omega_{h-1} t),
                                \cos(\omega_0 t), \dots, \cos(\omega_{h-1} t)\bigr].

    The periods range from :math:`2\pi` to :math:`2\pi P`; for times in [0, 1] most features vary
    slowly, which the trainable layer after the embedding (see :class:`MLP`) compensates for. Callers
    who want the DDPM convention pass integer steps (or ``1000 * t``).

    Args:
        dim: the embedding's size, even and >= 2.
        max_period: :math:`P > 0`, the longest period divided by :math:`2\pi`.

    Example:
        >>> SinusoidalTimeEmbedding(8)(torch.tensor([0.0, 0.5, 1.0])).shape
        torch.Size([3, 8])

    References:
        Vaswani et al., "Attention Is All You Need", 2017, arXiv:1706.03762 (section 3.5).
        Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models", 2020, arXiv:2006.11239.
    """

    def __init__(self, dim: int, max_period: float = 10000.0) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2 or dim % 2:
            raise ValueError(f"dim must be an even int >= 2, got {dim!r}")
        if not max_period > 0:
            raise ValueError(f"max_period must be > 0, got {max_period}")
        self.dim = dim
        self.max_period = float(max_period)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Embed ``t``.

        Args:
            t: times, shape ``(B,)`` or a scalar.

        Returns:
            Shape ``(B, dim)``, or ``(dim,)`` for a scalar ``t``.
        """
        t = torch.as_tensor(t)
        if t.ndim > 1:
            raise ValueError(f"t must be a scalar or have shape (B,), got {tuple(t.shape)}")
        if not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
        h = self.dim // 2
        i = torch.arange(h, device=t.device, dtype=t.dtype)  # (h,)
        omega = torch.exp(-math.log(self.max_period) * i / h)  # (h,): P^{-i/h}
        arg = t.unsqueeze(-1) * omega  # (B, h)
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)  # (B, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_period={self.max_period:g}"


class MLP(nn.Module):
    r"""A multilayer perceptron, optionally conditioned on time.

    Without time: :math:`f(x) = W_{L+1}\, \phi(\cdots \phi(W_1 x + b_1) \cdots) + b_{L+1}` with
    :math:`L` = ``depth`` hidden layers of width ``hidden`` and activation :math:`\phi`. With
    ``time_dim``, the input is :math:`[x, \phi(W_t\, \mathrm{emb}(t) + b_t)]`, the time embedding
    :class:`SinusoidalTimeEmbedding` followed by a trainable linear layer.

    Args:
        in_dim: size of ``x``.
        out_dim: size of the output.
        hidden: width of the hidden layers.
        depth: number of hidden layers, >= 1.
        time_dim: size of the time embedding; ``None`` for a network of ``x`` alone.
        activation: a constructor of the activation module, e.g. ``nn.SiLU``.

    Example:
        >>> net = MLP(2, 2, hidden=16, depth=2, time_dim=8)
        >>> net(torch.randn(5, 2), t=0.3).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: int = 128,
        depth: int = 3,
        time_dim: int | None = None,
        activation: Callable[[], nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        for name, value in [("in_dim", in_dim), ("out_dim", out_dim), ("hidden", hidden), ("depth", depth)]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.in_dim, self.out_dim, self.time_dim = in_dim, out_dim, time_dim
        self.time_embedding: nn.Module | None = None
        if time_dim is not None:
            emb = SinusoidalTimeEmbedding(time_dim)
            self.time_embedding = nn.Sequential(emb, nn.Linear(time_dim, time_dim), activation())
        widths = [in_dim + (time_dim or 0)] + [hidden] * depth
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), activation()]
        layers.append(nn.Linear(hidden, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float | None = None) -> torch.Tensor:
        """Evaluate the network.

        Args:
            x: inputs, shape ``(B, in_dim)``.
            t: times, a scalar or shape ``(B,)``; required iff ``time_dim`` was given. Moved to the
                device and dtype of ``x``.

        Returns:
            Shape ``(B, out_dim)``.
        """
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (B, {self.in_dim}), got {tuple(x.shape)}")
        if self.time_embedding is None:
            if t is not None:
                raise ValueError("t was given but this MLP has no time input (time_dim=None)")
            return self.net(x)
        if t is None:
            raise ValueError(f"t is required: this MLP has time_dim={self.time_dim}")
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype)
        if t.ndim == 0:
            t = t.expand(x.shape[0])  # (B,)
        elif t.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or have shape (B,) = ({x.shape[0]},), got {tuple(t.shape)}")
        return self.net(torch.cat([x, self.time_embedding(t)], dim=-1))  # (B, in_dim + time_dim) -> (B, out_dim)
