r"""Guidance: sampling a diffusion model conditionally on a label, with and without a classifier.

For labelled data the conditional score splits by Bayes' rule (``guidance.bayes``),
:math:`\nabla \log p_t(x \mid y) = \nabla \log p_t(x) + \nabla \log p_t(y \mid x)`, and a guidance
scale :math:`\gamma` sharpens the classifier (``guidance.sharpening``). For a noise predictor
(:math:`\epsilon = -\sqrt{1 - \bar\alpha_t}\, s`):

* classifier guidance: :math:`\tilde\epsilon = \epsilon_\theta(x_t) - \gamma \sqrt{1 - \bar\alpha_t}\,
  \nabla_{x_t} \log p_t(y \mid x_t)` (``guidance.classifier_noise``);
* classifier-free guidance: :math:`\tilde\epsilon = (1 - \gamma)\, \epsilon_\theta(x_t) + \gamma\,
  \epsilon_\theta(x_t, y)` (``guidance.cfg``).

For a labelled Gaussian mixture (:class:`LabelledMixture`) every ingredient is exact at every noise
level: the conditional and unconditional noise predictors and the classifier
:math:`p_t(y \mid x_t)`, so guided samplers are tested on these oracles first.

References:
    Dhariwal, Nichol. Diffusion Models Beat GANs on Image Synthesis. 2021. arXiv:2105.05233.
    Ho, Salimans. Classifier-Free Diffusion Guidance. 2022. arXiv:2207.12598.
    Bradley, Nakkiran. Classifier-Free Guidance is a Predictor-Corrector. 2024. arXiv:2408.09000.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .diffusion import NoisePredictor, NoiseSchedule, check_step_probs, draw_steps, oracle_noise_predictor
from .distributions import GaussianMixture
from .nets import MLP
from .oracle import MixtureOracle
from .paths import eps_from_score_at

__all__ = ["ConditionalDDPM", "LabelledMixture", "NoisyClassifier", "cfg_noise", "classifier_guided_noise", "labelled_batches",
           "oracle_guided_predictor"]


def cfg_noise(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, gamma: float) -> torch.Tensor:
    """Classifier-free guidance, ``(1 - gamma) eps(x_t) + gamma eps(x_t, y)`` (``guidance.cfg``).

    ``gamma = 1`` is the conditional model; ``gamma = 0`` the unconditional one; ``gamma > 1``
    extrapolates.  (Ho and Salimans write ``(1 + w) eps(x_t, y) - w eps(x_t)`` with ``w = gamma - 1``.)

    Args:
        eps_cond: ``eps_theta(x_t, y)``, shape (B, D).
        eps_uncond: ``eps_theta(x_t)``, shape (B, D).
        gamma: the guidance scale.

    Example:
        >>> cfg_noise(torch.ones(1, 2), torch.zeros(1, 2), 3.0)
        tensor([[3., 3.]])
    """
    if eps_cond.shape != eps_uncond.shape:
        raise ValueError(f"eps_cond and eps_uncond must have the same shape, got "
                         f"{tuple(eps_cond.shape)} and {tuple(eps_uncond.shape)}")
    _check_gamma(gamma)
    return (1 - gamma) * eps_uncond + gamma * eps_cond


def classifier_guided_noise(eps_uncond: torch.Tensor, grad_log_classifier: torch.Tensor,
                            noise_std: float, gamma: float) -> torch.Tensor:
    """Classifier guidance, ``eps(x_t) - gamma sqrt(1 - alphabar_t) grad log p_t(y | x_t)`` (``guidance.classifier_noise``).

    Args:
        eps_uncond: ``eps_theta(x_t)``, shape (B, D).
        grad_log_classifier: ``grad_{x_t} log p_t(y | x_t)``, shape (B, D).
        noise_std: ``sqrt(1 - alphabar_t)``.
        gamma: the guidance scale.
    """
    if eps_uncond.shape != grad_log_classifier.shape:
        raise ValueError("eps_uncond and grad_log_classifier must have the same shape")
    _check_gamma(gamma)
    # the classifier's score, gamma-sharpened, read as noise: eps = -sigma * (gamma grad) (gencode.paths)
    return eps_uncond + eps_from_score_at(grad_log_classifier, gamma * noise_std)


def _check_gamma(gamma: float) -> None:
    if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not math.isfinite(gamma) or gamma < 0:
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")


class LabelledMixture:
    """A Gaussian mixture whose components carry class labels: ``p(x, y) = sum_{k: label k = y} w_k N_k(x)``.

    Args:
        mixture: the data distribution ``p(x)``.
        labels: the class of each component, an integer tensor of shape (K,) with values
            ``0, ..., C - 1``, each class present.

    Example:
        >>> from gencode.distributions import mixture_1d
        >>> lm = LabelledMixture(mixture_1d([0.5, 0.5], [-2.0, 2.0], [1.0, 1.0]), torch.tensor([0, 1]))
        >>> lm.num_classes, lm.class_mixture(1).mean
        (2, tensor([2.]))
    """

    def __init__(self, mixture: GaussianMixture, labels: torch.Tensor) -> None:
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
        labels = torch.as_tensor(labels)
        if labels.dtype.is_floating_point or labels.shape != (mixture.num_components,):
            raise ValueError(f"labels must be an integer tensor of shape ({mixture.num_components},)")
        labels = labels.to(device=mixture.device, dtype=torch.long)
        C = int(labels.max()) + 1
        if int(labels.min()) < 0 or set(labels.tolist()) != set(range(C)):
            raise ValueError("labels must take every value 0, ..., C - 1")
        self.mixture = mixture
        self.labels = labels  # (K,)
        self.num_classes = C
        self.onehot = torch.nn.functional.one_hot(labels, C).to(mixture.dtype)  # (K, C)

    @property
    def class_probs(self) -> torch.Tensor:
        """``p(y)``, shape (C,)."""
        return self.mixture.weights @ self.onehot

    def class_mixture(self, y: int) -> GaussianMixture:
        """``p(x | y)``: the components of class ``y`` with renormalised weights."""
        self._check_label(y)
        keep = self.labels == y
        m = self.mixture
        weights = m.weights[keep]
        return GaussianMixture(weights / weights.sum(), m.means[keep], m.covariances[keep])

    def _check_label(self, y: int) -> None:
        if isinstance(y, bool) or not isinstance(y, int) or not 0 <= y < self.num_classes:
            raise ValueError(f"y must be an int in 0..{self.num_classes - 1}, got {y!r}")

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` pairs ``(x, y)``: shapes (n, D) and (n,)."""
        k = torch.multinomial(self.mixture.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.mixture.dim, 1, generator=generator, device=self.mixture.device,
                        dtype=self.mixture.dtype)
        x = self.mixture.means[k] + (self.mixture.scale_tril[k] @ z).squeeze(-1)
        return x, self.labels[k]

    def classifier_log_prob(self, x: torch.Tensor, scale: float, noise_std: float) -> torch.Tensor:
        """The exact noisy classifier ``log p_t(y | x_t)`` for ``x_t = a x_0 + s eps``, shape (B, C)."""
        noised = self.mixture.to(x.device, x.dtype).noised(noise_std, scale)
        log_joint = noised.log_weights + noised.component_log_prob(x)  # (B, K)
        log_class = torch.logsumexp(log_joint.unsqueeze(-1) + torch.log(self.onehot.to(x.device, x.dtype)), dim=-2)
        return log_class - torch.logsumexp(log_joint, dim=-1, keepdim=True)

    def classifier_grad(self, x: torch.Tensor, y: int, scale: float, noise_std: float) -> torch.Tensor:
        """``grad_x log p_t(y | x)`` by autograd of :meth:`classifier_log_prob`, shape (B, D)."""
        self._check_label(y)
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.classifier_log_prob(x, scale, noise_std)[:, y].sum(), x)
        return grad


def oracle_guided_predictor(schedule: NoiseSchedule, data: LabelledMixture, y: int, gamma: float,
                            kind: str = "cfg") -> NoisePredictor:
    """An exact guided noise predictor for label ``y`` with scale ``gamma``.

    ``kind="cfg"`` combines the exact conditional and unconditional predictors (:func:`cfg_noise`);
    ``kind="classifier"`` adds the gradient of the exact noisy classifier to the unconditional
    predictor (:func:`classifier_guided_noise`).  The two are equal by ``guidance.cfg`` and
    ``guidance.bayes``; at ``gamma = 1`` both are the conditional predictor.
    """
    if kind not in ("cfg", "classifier"):
        raise ValueError(f"kind must be 'cfg' or 'classifier', got {kind!r}")
    _check_gamma(gamma)
    uncond = oracle_noise_predictor(schedule, MixtureOracle(data.mixture))
    cond = oracle_noise_predictor(schedule, MixtureOracle(data.class_mixture(y)))
    abar = schedule.alphas_cumprod.detach().cpu().double()

    def predict(x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        if kind == "cfg":
            return cfg_noise(cond(x, t), uncond(x, t), gamma)
        a = float(abar[int(t)])
        grad = data.classifier_grad(x, y, math.sqrt(a), math.sqrt(1 - a))
        return classifier_guided_noise(uncond(x, t), grad, math.sqrt(1 - a), gamma)

    return predict


# ---------------------------------------------------------------------------------------------
# Trained models: a conditional noise predictor with label dropout, and a noise-aware classifier


class ConditionalDDPM(nn.Module):
    """A noise predictor ``eps_theta(x_t, t, y)`` with a "no label" token, trained with label dropout.

    The label enters as a one-hot vector of length ``C + 1`` concatenated to ``x_t``; index ``C``
    is the null label, so ``eps_theta(x_t, t, null)`` is the unconditional model and one network
    serves classifier-free guidance.  Batches are ``(B, D + 1)`` tensors ``[x_0, y]`` (see
    :meth:`LabelledMixture.sample`), so :func:`gencode.train.fit` can draw them.

    Args:
        schedule: the noise schedule.
        dim: ``D``.
        num_classes: ``C``.
        p_uncond: probability of replacing a label by the null label during training.
        hidden, depth, time_dim: passed to :class:`gencode.nets.MLP`.
        step_probs: probabilities of the training steps, shape (T,)
            (:func:`gencode.diffusion.early_step_probs`); ``None`` draws them uniformly.

    References:
        Ho, Salimans. Classifier-Free Diffusion Guidance. 2022. arXiv:2207.12598 (Algorithm 1).
    """

    def __init__(self, schedule: NoiseSchedule, dim: int, num_classes: int, p_uncond: float = 0.2,
                 hidden: int = 64, depth: int = 2, time_dim: int = 16,
                 step_probs: torch.Tensor | None = None) -> None:
        super().__init__()
        if not 0 <= p_uncond <= 1:
            raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond}")
        self.schedule, self.dim, self.num_classes, self.p_uncond = schedule, dim, num_classes, p_uncond
        self.register_buffer("step_probs", check_step_probs(step_probs, schedule.T))  # (T,) or None
        self.net = MLP(dim + num_classes + 1, dim, hidden=hidden, depth=depth, time_dim=time_dim)

    def noise(self, xt: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor | int | None) -> torch.Tensor:
        """``eps_theta(x_t, t, y)``; ``y = None`` is the null label (the unconditional model)."""
        if y is None:
            y = self.num_classes
        y = torch.as_tensor(y, device=xt.device).expand(xt.shape[0])
        onehot = nn.functional.one_hot(y, self.num_classes + 1).to(xt.dtype)  # (B, C + 1)
        t = torch.as_tensor(t, device=xt.device).to(xt.dtype)
        return self.net(torch.cat([xt, onehot], dim=-1), t)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        """``L_simple`` with each label dropped (set to null) with probability ``p_uncond``."""
        x0, y = batch[:, : self.dim], batch[:, self.dim].long()
        y = torch.where(torch.rand(y.shape, device=y.device) < self.p_uncond, self.num_classes, y)
        t, _ = draw_steps(x0.shape[0], self.schedule.T, x0.device, self.step_probs)
        eps = torch.randn_like(x0)
        xt = self.schedule.q_sample(x0, t, noise=eps)
        return (eps - self.noise(xt, t, y)).square().sum(-1).mean()

    def guided_predictor(self, y: int, gamma: float) -> NoisePredictor:
        """The CFG predictor ``(1 - gamma) eps(x_t, t, null) + gamma eps(x_t, t, y)`` (:func:`cfg_noise`)."""
        _check_gamma(gamma)

        @torch.no_grad()
        def predict(x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
            return cfg_noise(self.noise(x, t, y), self.noise(x, t, None), gamma)

        return predict


class NoisyClassifier(nn.Module):
    """A classifier ``p_phi(y | x_t, t)`` of noised inputs, for classifier guidance.

    Trained by cross-entropy on ``x_t ~ q(x_t | x_0)`` at uniformly drawn steps (or from
    ``step_probs``, shape (T,)); its input gradient ``grad_{x_t} log p_phi(y | x_t, t)`` is taken by
    autograd.

    References:
        Dhariwal, Nichol. Diffusion Models Beat GANs on Image Synthesis. 2021. arXiv:2105.05233 (section 4).
    """

    def __init__(self, schedule: NoiseSchedule, dim: int, num_classes: int, hidden: int = 64,
                 depth: int = 2, time_dim: int = 16, step_probs: torch.Tensor | None = None) -> None:
        super().__init__()
        self.schedule, self.dim = schedule, dim
        self.register_buffer("step_probs", check_step_probs(step_probs, schedule.T))  # (T,) or None
        self.net = MLP(dim, num_classes, hidden=hidden, depth=depth, time_dim=time_dim)

    def log_prob(self, xt: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """``log p_phi(y | x_t, t)`` for every class, shape (B, C)."""
        t = torch.as_tensor(t, device=xt.device).to(xt.dtype)
        return torch.log_softmax(self.net(xt, t), dim=-1)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on noised inputs; ``batch = [x_0, y]`` of shape (B, D + 1)."""
        x0, y = batch[:, : self.dim], batch[:, self.dim].long()
        t, _ = draw_steps(x0.shape[0], self.schedule.T, x0.device, self.step_probs)
        xt = self.schedule.q_sample(x0, t)
        return nn.functional.nll_loss(self.log_prob(xt, t), y)

    def guided_predictor(self, uncond: NoisePredictor, y: int, gamma: float) -> NoisePredictor:
        """Classifier guidance of ``uncond`` towards ``y`` (:func:`classifier_guided_noise`)."""
        _check_gamma(gamma)
        std = self.schedule.sqrt_one_minus_alphas_cumprod

        def predict(x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(self.log_prob(xg, t)[:, y].sum(), xg)
            return classifier_guided_noise(uncond(x, t), grad, float(std[int(t)]), gamma)

        return predict


def labelled_batches(data: LabelledMixture):
    """``(batch_size, generator) -> [x, y]`` of shape (B, D + 1), the data source of :func:`gencode.train.fit`."""

    def draw(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        x, y = data.sample(n, generator)
        return torch.cat([x, y[:, None].to(x.dtype)], dim=-1)

    return draw
