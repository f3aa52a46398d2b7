"""PyTorch reference implementations of the book's generative models.

Every model takes its device from its inputs; :func:`default_device` picks one for entry points
(``GENCODE_DEVICE`` overrides it). One import line per module, in dependency order.
"""

from .device import as_tensor, check_finite, default_device, seed_everything
from .distributions import Gaussian, GaussianMixture, eight_gaussians, mixture_1d
from .nets import MLP, SinusoidalTimeEmbedding
from .train import TrainResult, fit
from .diffusion import GaussianParams, NoiseSchedule, cosine_beta_schedule, linear_beta_schedule

__all__ = [
    # device
    "as_tensor",
    "check_finite",
    "default_device",
    "seed_everything",
    # distributions
    "Gaussian",
    "GaussianMixture",
    "eight_gaussians",
    "mixture_1d",
    # nets
    "MLP",
    "SinusoidalTimeEmbedding",
    # train
    "TrainResult",
    "fit",
    # diffusion
    "GaussianParams",
    "NoiseSchedule",
    "cosine_beta_schedule",
    "linear_beta_schedule",
]
