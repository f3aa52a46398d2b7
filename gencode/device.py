"""Device choice, seeding and input checks shared by every module of ``gencode``.

Models never name a device: they take it from their inputs (``x.device``). Only entry points (the
book's chapters, the tests) ask :func:`default_device` where to put fresh tensors. The environment
variable ``GENCODE_DEVICE`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...) overrides the automatic choice,
so the same chapter runs on a laptop and on a GPU machine unchanged.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["ENV_VAR", "as_tensor", "check_finite", "default_device", "seed_everything"]

ENV_VAR = "GENCODE_DEVICE"


def default_device() -> torch.device:
    """The device on which entry points create tensors.

    ``$GENCODE_DEVICE`` when set and non-empty, else ``"cuda"`` when CUDA is available, else ``"cpu"``.

    Returns:
        The chosen ``torch.device``.

    Raises:
        ValueError: if ``GENCODE_DEVICE`` does not name a valid torch device.

    Example:
        >>> default_device().type in {"cpu", "cuda", "mps", "xpu"}
        True
    """
    name = os.environ.get(ENV_VAR, "").strip()
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as err:  # torch reports an unknown device string as RuntimeError
        raise ValueError(f"{ENV_VAR}={name!r} is not a valid torch device: {err}") from err


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device).

    Args:
        seed: a non-negative integer.

    Returns:
        A fresh CPU ``torch.Generator`` seeded with ``seed``, for code that takes an explicit generator.

    Raises:
        TypeError: if ``seed`` is not an ``int``.
        ValueError: if ``seed`` is negative.

    Example:
        >>> g = seed_everything(0)
        >>> a = torch.randn(3, generator=g)
        >>> bool(torch.equal(a, torch.randn(3, generator=seed_everything(0))))
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # NumPy's legacy seed only accepts 32 bits
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.cuda.manual_seed_all(seed)  # explicit; a no-op without CUDA
    return torch.Generator().manual_seed(seed)


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise if ``x`` holds a NaN or an infinity.

    This reads one boolean back to the host, so it synchronises with the device: use it on inputs at
    API boundaries (constructors, one-off calls), not inside training or sampling loops.

    Args:
        name: the argument's name, used in the error message.
        x: the tensor to check.

    Raises:
        ValueError: naming ``name`` if ``x`` is not finite everywhere.

    Example:
        >>> check_finite("x", torch.tensor([0.0, float("nan")]))
        Traceback (most recent call last):
        ...
        ValueError: x contains NaN or infinite values
    """
    if x.is_floating_point() or x.is_complex():
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or infinite values")


def as_tensor(
    name: str,
    x: torch.Tensor | float | list | np.ndarray,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Convert ``x`` to a finite floating-point tensor, naming ``name`` if that fails.

    Args:
        name: the argument's name, used in error messages.
        x: a tensor, number, nested list or NumPy array.
        device: target device; ``None`` keeps the tensor's device (CPU for non-tensors).
        dtype: target floating dtype; ``None`` keeps a floating tensor's dtype and otherwise uses
            ``torch.get_default_dtype()``.

    Returns:
        The tensor on ``device`` with ``dtype``.

    Raises:
        TypeError: if ``x`` cannot be converted to a tensor.
        ValueError: if ``x`` holds NaN or infinite values.

    Example:
        >>> as_tensor("w", [1, 2], dtype=torch.float64)
        tensor([1., 2.], dtype=torch.float64)
        >>> float(as_tensor("w", [0.1], dtype=torch.float64)[0]) == 0.1  # no float32 rounding
        True
    """
    try:
        # Python numbers and lists are converted straight to ``dtype`` (no float32 detour, which would
        # round 0.1 before a float64 cast); tensors and arrays keep their dtype until the cast below.
        direct = dtype if dtype is not None and not isinstance(x, (torch.Tensor, np.ndarray)) else None
        t = torch.as_tensor(x, device=device, dtype=direct)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} cannot be converted to a tensor: {err}") from err
    if dtype is None:
        dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
    t = t.to(dtype=dtype)
    check_finite(name, t)
    return t
