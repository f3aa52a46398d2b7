r"""Data sets the book trains on, all generated here or shipped inside a pip package (nothing downloaded).

* :func:`load_digits`: scikit-learn's bundled 8x8 handwritten digits (1797 images), as tensors, scaled to
  ``[0, 1]`` or binarised, with a fixed seeded train/test split;
* :func:`two_moons` and :func:`checkerboard`: the 2-D toy sets of the flow and flow-matching literature.
  Their densities are not Gaussian mixtures; for data whose density is known exactly use
  :mod:`gencode.distributions` (``eight_gaussians``, ``mixture_1d``).
"""

from __future__ import annotations

import math

import torch

__all__ = ["checkerboard", "load_digits", "two_moons"]


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")


def load_digits(
    split: str = "train",
    *,
    binarize: bool = False,
    threshold: float = 0.5,
    test_fraction: float = 0.2,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""scikit-learn's 8x8 digits as ``(images, labels)``.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``; the split is a seeded permutation, the same on every
            machine.
        binarize: if true, pixels are ``1.0`` where the scaled intensity exceeds ``threshold``, else ``0.0``.
        threshold: binarisation threshold in ``(0, 1)``.
        test_fraction: fraction of the 1797 images held out as the test split, in ``(0, 1)``.
        seed: seed of the split's permutation.
        device: device of the tensors (``None``: torch's default).
        dtype: floating dtype of the images (``None``: torch's default).

    Returns:
        ``images`` of shape ``(N, 64)`` with values in ``[0, 1]`` (intensities ``0..16`` divided by 16), and
        ``labels`` of shape ``(N,)`` (``int64``, the digit 0-9).

    Example:
        >>> x, y = load_digits("all", binarize=True)
        >>> x.shape, y.shape, sorted(x.unique().tolist())
        (torch.Size([1797, 64]), torch.Size([1797]), [0.0, 1.0])
    """
    from sklearn.datasets import load_digits as _sk_digits

    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if not 0 < float(threshold) < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if not 0 < float(test_fraction) < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    bunch = _sk_digits()
    dtype = torch.get_default_dtype() if dtype is None else dtype
    images = torch.as_tensor(bunch.data, dtype=dtype) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    if binarize:
        images = (images > threshold).to(dtype)
    if split != "all":
        perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
        n_test = int(round(test_fraction * len(images)))
        idx = perm[:n_test] if split == "test" else perm[n_test:]
        images, labels = images[idx], labels[idx]
    return images.to(device), labels.to(device)


def two_moons(
    n: int,
    noise: float = 0.05,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""``n`` points from two interleaved half circles with Gaussian jitter of standard deviation ``noise``.

    Upper moon: :math:`(\cos\theta, \sin\theta)`; lower moon: :math:`(1 - \cos\theta, \tfrac12 - \sin\theta)`,
    :math:`\theta \sim U[0, \pi]`, each moon with probability 1/2; the set is then centred at the origin.

    Example:
        >>> two_moons(5, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 2])
    """
    _check_n(n)
    if not float(noise) >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    dtype = torch.get_default_dtype() if dtype is None else dtype
    device = torch.device("cpu") if device is None and generator is None else (device or generator.device)
    u = torch.rand(n, generator=generator, device=device, dtype=dtype)
    upper = torch.rand(n, generator=generator, device=device, dtype=dtype) < 0.5
    theta = math.pi * u
    x = torch.where(upper, torch.cos(theta), 1 - torch.cos(theta)) - 0.5
    y = torch.where(upper, torch.sin(theta), 0.5 - torch.sin(theta)) - 0.25
    points = torch.stack([x, y], dim=-1)
    return points + noise * torch.randn(n, 2, generator=generator, device=device, dtype=dtype)


def checkerboard(
    n: int,
    *,
    squares: int = 4,
    side: float = 4.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""``n`` points uniform on the dark squares of a ``squares`` x ``squares`` checkerboard of side ``side``
    centred at the origin. Its density is :math:`2 / \text{side}^2` on the dark squares and 0 elsewhere
    (``squares`` even), so the optimal negative log-likelihood is :math:`\log(\text{side}^2 / 2)`.

    Example:
        >>> checkerboard(4, generator=torch.Generator().manual_seed(0)).abs().max() <= 2.0
        tensor(True)
    """
    _check_n(n)
    if isinstance(squares, bool) or not isinstance(squares, int) or squares < 2 or squares % 2:
        raise ValueError(f"squares must be an even int >= 2, got {squares!r}")
    if not float(side) > 0:
        raise ValueError(f"side must be > 0, got {side}")
    dtype = torch.get_default_dtype() if dtype is None else dtype
    device = torch.device("cpu") if device is None and generator is None else (device or generator.device)
    cell = side / squares
    row = torch.randint(0, squares, (n,), generator=generator, device=device)
    # on each row, the dark columns are those with (row + col) even
    col = 2 * torch.randint(0, squares // 2, (n,), generator=generator, device=device) + row % 2
    u = torch.rand(n, 2, generator=generator, device=device, dtype=dtype)
    corner = torch.stack([col, row], dim=-1).to(dtype) * cell - side / 2
    return corner + cell * u
