r"""The one training loop: minimise :math:`\mathbb{E}_{\text{batch}}[\ell(\text{batch})]` by stochastic gradients.

Nothing here knows about any model: a model exposes a loss ``loss_fn(batch) -> scalar`` and :func:`fit`
does the rest. The data stay on their device, losses are written into a preallocated device tensor, and
the host reads them back only every ``log_every`` steps for the progress bar (when shown) and once at the
end, so the loop does not stall the accelerator.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from tqdm import tqdm  # plain bar: tqdm.auto needs ipywidgets in notebooks

__all__ = ["TrainResult", "fit"]

DataSource = torch.Tensor | Callable[[int, torch.Generator], torch.Tensor]


@dataclass
class TrainResult:
    """What :func:`fit` returns.

    Attributes:
        losses: the loss at every step, shape ``(steps,)``, on the device of the loss.
        seconds: wall-clock time of the loop.
    """

    losses: torch.Tensor  # (steps,)
    seconds: float

    @property
    def final_loss(self) -> float:
        """Mean loss over the last 10% of the steps (at least one step), as a Python float."""
        n = max(1, math.ceil(0.1 * self.losses.numel()))
        return float(self.losses[-n:].mean())


def _positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _batch_seed(seed: int) -> int:
    """The seed of the batch generator: derived from ``seed`` but distinct from it.

    ``torch.manual_seed(seed)`` seeds the global generator that a loss draws its noise and times
    from; seeding the batch generator with the same number would make the two streams identical,
    so that, e.g., the mixture component of each data point (``multinomial``) and the time drawn
    for it in the loss were the same random numbers (found on the DDPM chapter: every point of
    modes 0-3 drew t <= 10).  A large odd multiplier (Knuth's MMIX LCG) separates them.
    """
    return (seed * 6364136223846793005 + 1442695040888963407) % (2**63)


def _make_optimizer(name: str, params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adam', 'adamw' or 'sgd', got {name!r}")


def fit(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    params: Iterable[nn.Parameter] | nn.Module,
    data: DataSource,
    *,
    steps: int,
    batch_size: int,
    lr: float = 1e-3,
    optimizer: Literal["adam", "adamw", "sgd"] = "adam",
    weight_decay: float = 0.0,
    grad_clip: float | None = None,
    seed: int = 0,
    progress: bool = False,
    log_every: int = 100,
    lr_schedule: Literal["cosine"] | None = None,
    ema_decay: float | None = None,
) -> TrainResult:
    r"""Minimise ``loss_fn`` over ``params`` with minibatches drawn from ``data``.

    At step :math:`i`: draw a batch :math:`B_i`, compute :math:`\ell_i = \texttt{loss\_fn}(B_i)`, take one
    optimiser step along :math:`\nabla \ell_i` (after clipping its norm to ``grad_clip``), record
    :math:`\ell_i`.

    Batches: when ``data`` is a tensor of shape ``(N, ...)``, ``batch_size`` rows are drawn uniformly with
    replacement by ``torch.randint`` with a generator on ``data``'s device seeded from ``seed`` (by a
    fixed map, so its stream differs from the global one); when
    ``data`` is a callable, the batch is ``data(batch_size, generator)`` with such a generator on the
    device of the first parameter (e.g. ``GaussianMixture.sample``). ``torch.manual_seed(seed)`` is also
    called before the loop, so dropout and any other global randomness are reproducible; initialising
    the model is the caller's job.

    Args:
        loss_fn: maps a batch to a scalar loss.
        params: the parameters to train, or a module (put in training mode for the loop, then restored).
        data: a tensor ``(N, ...)`` or a callable ``(batch_size, generator) -> batch``.
        steps: number of optimisation steps, >= 1.
        batch_size: batch size, >= 1.
        lr: learning rate, > 0.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        weight_decay: >= 0.
        grad_clip: maximal gradient norm, > 0, or ``None`` for no clipping.
        seed: seed of the batch generator and of torch's global generators.
        progress: show a tqdm progress bar.
        log_every: steps between updates of the progress bar's loss (one host sync each).
        lr_schedule: ``None`` (constant) or ``"cosine"`` (annealed from ``lr`` to 0 over ``steps``).
        ema_decay: if given, in ``[0, 1)``, an exponential moving average
            :math:`\bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta` of the parameters is kept
            on their device, and the parameters are replaced by it when the loop ends (the weights
            diffusion models sample with). The average is over the iterates after each step,
            zero-started and bias-corrected (divided by :math:`1 - d^{i}` after :math:`i` steps, as
            Adam's moments are), so a short run is not pulled towards zero or the initialisation.

    Returns:
        A :class:`TrainResult` with the losses of every step.

    Raises:
        ValueError: naming the argument that is out of range, or if the loss is not a scalar.
        FloatingPointError: if a loss was NaN or infinite (checked once, after the loop).

    Example:
        >>> w = nn.Parameter(torch.zeros(1))
        >>> res = fit(lambda b: ((b - w) ** 2).mean(), [w], torch.full((8, 1), 3.0), steps=200,
        ...           batch_size=4, lr=0.1)
        >>> round(w.item(), 3)
        3.0

    References:
        Kingma, Ba, "Adam: A Method for Stochastic Optimization", 2014, arXiv:1412.6980.
        Loshchilov, Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", 2016, arXiv:1608.03983.
    """
    _positive_int("steps", steps)
    _positive_int("batch_size", batch_size)
    _positive_int("log_every", log_every)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be finite and > 0, got {lr}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be finite and >= 0, got {weight_decay}")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip}")
    if ema_decay is not None and not (0.0 <= ema_decay < 1.0):
        raise ValueError(f"ema_decay must be in [0, 1) or None, got {ema_decay}")
    if lr_schedule not in (None, "cosine"):
        raise ValueError(f"lr_schedule must be None or 'cosine', got {lr_schedule!r}")
    module = params if isinstance(params, nn.Module) else None
    param_list = [p for p in (module.parameters() if module is not None else params) if p.requires_grad]
    if not param_list:
        raise ValueError("params contains no parameter that requires a gradient")
    opt = _make_optimizer(optimizer, param_list, lr, weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if lr_schedule == "cosine" else None

    if isinstance(data, torch.Tensor):
        if data.ndim < 1 or data.shape[0] < 1:
            raise ValueError(f"data must have shape (N, ...) with N >= 1, got {tuple(data.shape)}")
        generator = torch.Generator(device=data.device).manual_seed(_batch_seed(seed))

        def draw() -> torch.Tensor:
            idx = torch.randint(data.shape[0], (batch_size,), generator=generator, device=data.device)
            return data[idx]  # (batch_size, ...)
    elif callable(data):
        generator = torch.Generator(device=param_list[0].device).manual_seed(_batch_seed(seed))

        def draw() -> torch.Tensor:
            return data(batch_size, generator)
    else:
        raise ValueError(f"data must be a tensor or a callable (batch_size, generator) -> batch, got {type(data)}")

    # Bias-corrected EMA: a zero-started average divided by 1 - d^i, kept on the parameters' device.
    ema = [torch.zeros_like(p) for p in param_list] if ema_decay is not None else None
    torch.manual_seed(seed)
    was_training = module.training if module is not None else None
    if module is not None:
        module.train()
    losses: torch.Tensor | None = None
    start = time.perf_counter()
    bar = tqdm(range(steps), disable=not progress)
    try:
        for i in bar:
            loss = loss_fn(draw())
            if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
                shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
                raise ValueError(f"loss_fn must return a scalar tensor, got {shape}")
            if losses is None:
                losses = torch.empty(steps, dtype=loss.dtype, device=loss.device)  # (steps,)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(param_list, grad_clip)
            opt.step()
            if sched is not None:
                sched.step()
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(ema, [p.detach() for p in param_list], 1.0 - ema_decay)
            losses[i] = loss.detach()
            if progress and ((i + 1) % log_every == 0 or i + 1 == steps):
                bar.set_postfix(loss=f"{float(losses[max(0, i + 1 - log_every) : i + 1].mean()):.4g}")
    finally:
        bar.close()
        if module is not None:
            module.train(was_training)
    if ema is not None:
        with torch.no_grad():
            correction = 1.0 - ema_decay ** steps
            for p, avg in zip(param_list, ema, strict=True):
                p.copy_(avg / correction)
    finite = torch.isfinite(losses)
    if not bool(finite.all()):  # the one host sync of the loop
        first = int((~finite).nonzero()[0])
        raise FloatingPointError(
            f"the loss became NaN or infinite at step {first} (lr={lr}); try a smaller lr or grad_clip"
        )
    return TrainResult(losses=losses, seconds=time.perf_counter() - start)
