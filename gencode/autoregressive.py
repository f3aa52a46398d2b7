r"""Autoregressive models of binary vectors: MADE (a masked MLP, any variable order) and a small
PixelCNN (masked convolutions, raster order).

Both factorise a distribution over :math:`x \in \{0, 1\}^D` by the chain rule along an order
:math:`\pi` (``order[i]`` is the position of variable :math:`i`),

.. math::
    \log p(x) = \sum_{i=1}^{D} \log \mathrm{Bern}\bigl(x_i;\ \sigma(a_i(x_{\pi < \pi_i}))\bigr)
              = \sum_i \bigl[x_i a_i - \log(1 + e^{a_i})\bigr],

where the logit :math:`a_i` may depend only on the variables that come before :math:`i` in the order
(registered identities ``autoregressive.normalisation`` and ``autoregressive.bernoulli_logit``). One
network pass gives every conditional at once (training is parallel); sampling takes :math:`D` passes, one
variable at a time. :class:`MaskedMLP` is also the conditioner of the autoregressive flows in
:mod:`gencode.flows`.

References:
    Germain, Gregor, Murray, Larochelle, "MADE: Masked Autoencoder for Distribution Estimation", 2015,
    arXiv:1502.03509.
    van den Oord, Kalchbrenner, Kavukcuoglu, "Pixel Recurrent Neural Networks", 2016, arXiv:1601.06759.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MADE", "AutoregressiveBernoulli", "MaskedConv2d", "MaskedLinear", "MaskedMLP", "PixelCNN",
    "all_binary_vectors", "bernoulli_log_prob", "check_binary", "check_order",
]


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_i \log \mathrm{Bern}(x_i; \sigma(a_i)) = \sum_i [x_i a_i - \log(1 + e^{a_i})]`.

    Args:
        logits: :math:`a`, shape ``(B, D)``.
        x: binary values, shape ``(B, D)``.

    Returns:
        Shape ``(B,)``, in nats.

    Example:
        >>> bernoulli_log_prob(torch.zeros(1, 3), torch.tensor([[0.0, 1.0, 1.0]]))  # 3 fair coins
        tensor([-2.0794])
    """
    return (x * logits - F.softplus(logits)).sum(-1)


def check_binary(name: str, x: torch.Tensor, dim: int) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``x`` has shape ``(B, dim)`` and values in ``{0, 1}``.

    One host sync: call it at API boundaries, not inside training loops.
    """
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (B, {dim}), got {tuple(x.shape)}")
    if bool(((x != 0) & (x != 1)).any()):
        raise ValueError(f"{name} must be binary (values 0 and 1 only)")


def check_order(order: Sequence[int] | torch.Tensor | None, dim: int) -> torch.Tensor:
    """``order`` as a long tensor, validated as a permutation of ``0..dim-1`` (``None``: the identity)."""
    if order is None:
        return torch.arange(dim)
    order = torch.as_tensor(order).long().cpu()
    if order.shape != (dim,) or not torch.equal(order.sort().values, torch.arange(dim)):
        raise ValueError(f"order must be a permutation of 0..{dim - 1}, got {order.tolist()}")
    return order


def all_binary_vectors(d: int, **kwargs) -> torch.Tensor:
    """Every vector of ``{0, 1}^d``, shape ``(2^d, d)`` (keyword arguments go to ``torch.tensor``).

    Example:
        >>> all_binary_vectors(2)
        tensor([[0., 0.],
                [0., 1.],
                [1., 0.],
                [1., 1.]])
    """
    if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= 24:
        raise ValueError(f"d must be an int in [1, 24], got {d!r}")
    codes = torch.arange(2**d)
    bits = (codes.unsqueeze(-1) >> torch.arange(d - 1, -1, -1)) & 1
    kwargs.setdefault("dtype", torch.get_default_dtype())
    return bits.to(**kwargs)


# ------------------------------------------------------------------------------------------ MADE


class MaskedLinear(nn.Linear):
    """``y = (W * M) x + b`` with a fixed binary mask ``M`` of shape ``(out, in)``."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MaskedMLP(nn.Module):
    r"""An MLP whose output block ``k`` for variable ``i`` depends only on the variables before ``i``.

    Degrees (Germain et al., section 4): input :math:`i` has degree :math:`m(i) = \pi_i + 1`; hidden unit
    :math:`k` of every layer gets degree :math:`1 + (k \bmod (D - 1))`; a hidden unit sees the units of
    the previous layer with degree :math:`\le` its own, and output :math:`i` sees the hidden units with
    degree :math:`< m(i)`. Every path from input :math:`j` to output :math:`i` then has
    :math:`m(j) < m(i)`: the output for variable :math:`i` is a function of :math:`x_{\pi < \pi_i}`.

    Args:
        dim: :math:`D`.
        hidden: widths of the hidden layers (each >= ``dim - 1`` so that every degree occurs).
        out_per_dim: number :math:`K` of outputs per variable (1 for a Bernoulli logit, 2 for a shift
            and a log-scale).
        order: permutation :math:`\pi` (``order[i]`` = position of variable ``i``); ``None``: ``0..D-1``.
        activation: constructor of the activation module.

    Example:
        >>> net = MaskedMLP(3, hidden=(8,), out_per_dim=2, order=[2, 0, 1])
        >>> net(torch.zeros(5, 3)).shape
        torch.Size([5, 2, 3])
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (128,), out_per_dim: int = 1,
                 order: Sequence[int] | torch.Tensor | None = None,
                 activation: Callable[[], nn.Module] = nn.ReLU) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be an int >= 1, got {dim!r}")
        if isinstance(out_per_dim, bool) or not isinstance(out_per_dim, int) or out_per_dim < 1:
            raise ValueError(f"out_per_dim must be an int >= 1, got {out_per_dim!r}")
        if not hidden or any(h < max(1, dim - 1) for h in hidden):
            raise ValueError(f"hidden must be a non-empty list of widths >= dim - 1 = {dim - 1}, got {hidden}")
        self.dim, self.out_per_dim = dim, out_per_dim
        self.register_buffer("order", check_order(order, dim))
        degrees = [self.order + 1]  # (D,)
        for h in hidden:
            degrees.append(1 + torch.arange(h) % max(1, dim - 1))
        layers: list[nn.Module] = []
        for d_in, d_out in zip(degrees[:-1], degrees[1:]):
            layers += [MaskedLinear((d_out[:, None] >= d_in[None, :]).float()), activation()]
        out_degrees = (self.order + 1).repeat(out_per_dim)  # (K * D,)
        layers.append(MaskedLinear((out_degrees[:, None] > degrees[-1][None, :]).float()))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape ``(B, D)`` to ``(B, K, D)``: entry ``[:, k, i]`` depends on ``x[:, j]`` only if
        ``order[j] < order[i]``."""
        return self.net(x).unflatten(-1, (self.out_per_dim, self.dim))


class AutoregressiveBernoulli(nn.Module, abc.ABC):
    r"""A distribution on :math:`\{0, 1\}^D` from logits that respect an order (the subclass gives them).

    Subclasses set ``self.dim``, register a buffer ``order`` and implement :meth:`logits`.
    """

    dim: int
    order: torch.Tensor

    @abc.abstractmethod
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits :math:`a_i(x_{\\pi < \\pi_i})`, shape ``(B, D)``."""
        ...

    def log_prob(self, x: torch.Tensor, validate: bool = True) -> torch.Tensor:
        r""":math:`\log p(x) = \sum_i [x_i a_i - \log(1 + e^{a_i})]`, shape ``(B,)``, in nats.

        Args:
            x: binary data, shape ``(B, D)``.
            validate: check that ``x`` is binary (one host sync); the training loss skips it.

        Raises:
            ValueError: naming ``x`` if its shape is wrong or it is not binary.
        """
        if validate:
            check_binary("x", x, self.dim)
        return bernoulli_log_prob(self.logits(x), x)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The negative log-likelihood per vector, in nats (the minibatch mean); for :func:`gencode.train.fit`."""
        return -self.log_prob(x, validate=False).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Ancestral sampling: :math:`D` passes, the :math:`t`-th draws the variable with ``order == t``.

        Args:
            n: number of samples.
            generator: optional ``torch.Generator`` on the model's device.

        Returns:
            Binary samples, shape ``(n, D)``, on the device and dtype of the parameters.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        p = next(self.parameters())
        x = torch.zeros(n, self.dim, device=p.device, dtype=p.dtype)
        for i in torch.argsort(self.order).tolist():  # variables in the order they are generated
            prob = torch.sigmoid(self.logits(x)[:, i])
            x[:, i] = torch.bernoulli(prob, generator=generator)
        return x


class MADE(AutoregressiveBernoulli):
    r"""MADE: a Bernoulli autoregressive model whose logits come from one :class:`MaskedMLP`.

    Args:
        dim: :math:`D`.
        hidden: hidden widths of the masked MLP.
        order: the variable order (any permutation; ``None`` for ``0..D-1``).

    Example:
        >>> m = MADE(3, hidden=(16,), order=[1, 2, 0])
        >>> x = all_binary_vectors(3)
        >>> round(float(m.log_prob(x).exp().sum().detach()), 6)  # exactly normalised
        1.0

    References:
        Germain, Gregor, Murray, Larochelle, "MADE: Masked Autoencoder for Distribution Estimation", 2015,
        arXiv:1502.03509.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (256,),
                 order: Sequence[int] | torch.Tensor | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.net = MaskedMLP(dim, hidden, out_per_dim=1, order=order)
        self.order = self.net.order

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]  # (B, D)


# -------------------------------------------------------------------------------------- PixelCNN


class MaskedConv2d(nn.Conv2d):
    r"""A convolution that sees only the pixels before the centre in raster order.

    Mask type ``"A"`` (first layer) also hides the centre pixel; type ``"B"`` (later layers) shows it,
    since there the centre carries features of earlier pixels only.
    """

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int) -> None:
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.ones(kernel_size, kernel_size)
        c = kernel_size // 2
        mask[c, c + (mask_type == "B"):] = 0  # the centre (type A) and everything to its right
        mask[c + 1:] = 0  # every row below
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class PixelCNN(AutoregressiveBernoulli):
    r"""A small PixelCNN for binary images in raster order: one type-A masked convolution, residual
    type-B blocks, and a 1x1 convolution to one logit per pixel.

    Args:
        height: image height.
        width: image width.
        channels: feature channels.
        blocks: number of type-B layers.
        kernel_size: odd kernel size of the masked convolutions.

    Example:
        >>> m = PixelCNN(2, 2, channels=4, blocks=1, kernel_size=3)
        >>> round(float(m.log_prob(all_binary_vectors(4)).exp().sum().detach()), 6)
        1.0

    References:
        van den Oord, Kalchbrenner, Kavukcuoglu, "Pixel Recurrent Neural Networks", 2016, arXiv:1601.06759.
    """

    def __init__(self, height: int, width: int, channels: int = 32, blocks: int = 4, kernel_size: int = 5) -> None:
        super().__init__()
        for name, value in [("height", height), ("width", width), ("channels", channels)]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.height, self.width, self.dim = height, width, height * width
        self.register_buffer("order", torch.arange(self.dim))  # raster order
        self.first = MaskedConv2d("A", 1, channels, kernel_size)
        self.blocks = nn.ModuleList(MaskedConv2d("B", channels, channels, 3) for _ in range(blocks))
        self.out = nn.Conv2d(channels, 1, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.first(x.view(-1, 1, self.height, self.width)))  # (B, C, H, W)
        for conv in self.blocks:
            h = h + F.relu(conv(h))
        return self.out(h).flatten(1)  # (B, H * W)
