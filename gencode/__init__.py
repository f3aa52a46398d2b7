"""PyTorch reference implementations of the book's generative models.

Every model takes its device from its inputs; :func:`default_device` picks one for entry points
(``GENCODE_DEVICE`` overrides it). The package namespace holds the shared foundations below (one
import line per module, in dependency order); each model family is a module imported by name, so a
chapter loads only what it uses:

* data and truth: ``distributions`` (Gaussian mixtures with exact densities and scores),
  ``oracle`` (exact scores, denoisers and velocities of noised mixtures), ``datasets`` (digits, 2-D
  toys), ``two_sample`` (energy distance, sliced Wasserstein, finite-sample floors);
* Part I: ``divergences``, ``density``; Part II: ``autoregressive``, ``flows``, ``vae``;
* Part III: ``gan``, ``wgan``, ``metrics``; Part IV: ``ebm``, ``langevin``, ``score_matching``,
  ``diffusion``, ``guidance``; Part V: ``sde``, ``ode``, ``probability_flow``, ``cnf``,
  ``flow_matching``, ``consistency``.
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
