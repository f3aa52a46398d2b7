r"""Oracle models: the exact score, noise predictor, denoiser and velocity of Gaussian-mixture data.

Every Gaussian diffusion, score-matching and flow-matching chapter corrupts data :math:`x_0 \sim p_0` as

.. math::
    x = a\, x_0 + s\, \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I),

with a *signal scale* :math:`a` and a *noise standard deviation* :math:`s` that depend on the time
(DDPM: :math:`a = \sqrt{\bar\alpha_t}, s = \sqrt{1 - \bar\alpha_t}`; VE: :math:`a = 1, s = \sigma_t`;
flow matching with noise at 0 and data at 1: :math:`a = t, s = 1 - t`). When :math:`p_0` is a Gaussian
mixture, the law :math:`p_{a,s}` of :math:`x` is again one (:meth:`GaussianMixture.noised`), so the
quantities that networks are trained to estimate are known exactly:

* the score :math:`\nabla_x \log p_{a,s}(x)`;
* the optimal noise predictor :math:`\mathbb{E}[\varepsilon \mid x] = -s\, \nabla_x \log p_{a,s}(x)`;
* the optimal denoiser (Tweedie) :math:`\mathbb{E}[x_0 \mid x] = \bigl(x + s^2 \nabla_x \log p_{a,s}(x)\bigr) / a`;
* the optimal velocity of a path with derivatives :math:`\dot a, \dot s`:
  :math:`\mathbb{E}[\dot a x_0 + \dot s \varepsilon \mid x] = \dot a\, \mathbb{E}[x_0 \mid x] + \dot s\, \mathbb{E}[\varepsilon \mid x]`.

Samplers are tested on these oracles first (their output must match :math:`p_0`, independently of any
training); trained networks are then compared with them. The time convention of each chapter maps its
time to :math:`(a, s)` in that chapter's module; this module only speaks of :math:`(a, s)`.
"""

from __future__ import annotations

import math

import torch

from .distributions import GaussianMixture
from .paths import eps_from_score_at, velocity_from_eps_at, x0_from_eps_at

__all__ = ["MixtureOracle"]


def _scalar(name: str, value: float | torch.Tensor) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got shape {tuple(value.shape)}")
        value = float(value)
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


class MixtureOracle:
    r"""Exact posterior quantities of Gaussian-mixture data corrupted as :math:`a x_0 + s \varepsilon`.

    Args:
        data: the data distribution :math:`p_0`.

    The arguments ``scale`` (:math:`a`) and ``noise_std`` (:math:`s`) are Python numbers or one-element
    tensors shared by the whole batch (samplers step every sample at the same time). Results have the
    shape, device and dtype of ``x``.

    Example:
        >>> from gencode.distributions import Gaussian
        >>> oracle = MixtureOracle(Gaussian.isotropic(torch.zeros(1, dtype=torch.float64), 1.0))
        >>> x = torch.tensor([[2.0]], dtype=torch.float64)
        >>> oracle.denoise(x, scale=1.0, noise_std=1.0)  # E[x0 | x] = x / 2 for N(0, 1) data
        tensor([[1.]], dtype=torch.float64)
    """

    def __init__(self, data: GaussianMixture) -> None:
        if not isinstance(data, GaussianMixture):
            raise TypeError(f"data must be a GaussianMixture, got {type(data).__name__}")
        self.data = data

    def marginal(self, scale: float | torch.Tensor, noise_std: float | torch.Tensor) -> GaussianMixture:
        r"""The law :math:`p_{a,s}` of :math:`a x_0 + s \varepsilon`, a Gaussian mixture."""
        return self.data.noised(_scalar("noise_std", noise_std), _scalar("scale", scale))

    def _on(self, x: torch.Tensor) -> GaussianMixture:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError("x must be a floating-point torch.Tensor")
        if x.device != self.data.device or x.dtype != self.data.dtype:
            self.data = self.data.to(x.device, x.dtype)
        return self.data

    def score(self, x: torch.Tensor, scale: float | torch.Tensor, noise_std: float | torch.Tensor) -> torch.Tensor:
        r"""The exact score :math:`\nabla_x \log p_{a,s}(x)`, shape of ``x``."""
        self._on(x)
        return self.marginal(scale, noise_std).score(x)

    def noise(self, x: torch.Tensor, scale: float | torch.Tensor, noise_std: float | torch.Tensor) -> torch.Tensor:
        r"""The optimal noise predictor :math:`\mathbb{E}[\varepsilon \mid x] = -s \nabla_x \log p_{a,s}(x)`."""
        s = _scalar("noise_std", noise_std)
        if s <= 0:
            raise ValueError(f"noise_std must be > 0 for the noise predictor, got {s}")
        return eps_from_score_at(self.score(x, scale, s), s)

    def denoise(self, x: torch.Tensor, scale: float | torch.Tensor, noise_std: float | torch.Tensor) -> torch.Tensor:
        r"""The optimal denoiser (Tweedie's formula) :math:`\mathbb{E}[x_0 \mid x] = (x + s^2 \nabla \log p_{a,s}(x)) / a`."""
        a, s = _scalar("scale", scale), _scalar("noise_std", noise_std)
        if a == 0:
            raise ValueError("scale must be non-zero for the denoiser (x carries no signal at a = 0)")
        return x0_from_eps_at(x, self.noise(x, a, s), a, s)

    def velocity(
        self,
        x: torch.Tensor,
        scale: float | torch.Tensor,
        noise_std: float | torch.Tensor,
        dscale: float | torch.Tensor,
        dnoise_std: float | torch.Tensor,
    ) -> torch.Tensor:
        r"""The optimal velocity :math:`\dot a\, \mathbb{E}[x_0 \mid x] + \dot s\, \mathbb{E}[\varepsilon \mid x]`
        of the path :math:`x_\tau = a(\tau) x_0 + s(\tau) \varepsilon` (the marginal velocity field that
        flow matching regresses on), with :math:`\dot a` = ``dscale`` and :math:`\dot s` = ``dnoise_std``.

        At :math:`s = 0` the field is :math:`(\dot a / a) x`; at :math:`a = 0` it is
        :math:`\dot a\, \mathbb{E}[x_0] + (\dot s / s) x`.
        """
        a, s = _scalar("scale", scale), _scalar("noise_std", noise_std)
        da, ds = _scalar("dscale", dscale), _scalar("dnoise_std", dnoise_std)
        if a == 0 and s == 0:
            raise ValueError("scale and noise_std cannot both be 0")
        data = self._on(x)
        if s == 0:
            return (da / a) * x
        if a == 0:
            return da * data.mean + (ds / s) * x
        return velocity_from_eps_at(x, self.noise(x, a, s), a, s, da, ds)
