r"""Latent-variable models trained by a bound on the likelihood: the VAE, VQ-VAE and SWAE.

One encoder/decoder family serves every model of the chapter:

* :class:`GaussianEncoder`: :math:`q_\phi(z \mid x) = \mathcal{N}(\mu_\phi(x), \operatorname{diag}\sigma_\phi^2(x))`;
* :class:`GaussianDecoder`: :math:`p_\theta(x \mid z) = \mathcal{N}(\mu_\theta(z), \sigma^2 \mathbf{I})`
  with a learnable or fixed :math:`\sigma`;
* :class:`BernoulliDecoder`: :math:`p_\theta(x \mid z) = \prod_d \mathrm{Bern}(x_d; \mathrm{sigmoid}(\ell_d(z)))`.

:class:`VAE` maximises the evidence lower bound

.. math::
    \mathcal{L}(x) = \mathbb{E}_{q_\phi(z \mid x)}[\log p_\theta(x \mid z)] - \beta\, \mathrm{KL}(q_\phi(z \mid x) \,\|\, \mathcal{N}(0, \mathbf{I}))

(:math:`\beta = 1` is the ELBO; other values give the beta-VAE), with the reparameterisation
:math:`z = \mu + \sigma \odot \epsilon` and the KL in closed form (``torch.distributions.kl_divergence``).
:meth:`VAE.log_likelihood` estimates :math:`\log p_\theta(x)` by importance sampling (the IWAE bound).
:class:`VQVAE` quantises a deterministic code to the nearest of :math:`K` codebook vectors with a
straight-through gradient; :class:`SWAE` replaces the KL by a sliced Wasserstein distance between the
codes and prior samples. :class:`LinearGaussianModel` is the linear-Gaussian latent-variable model
(probabilistic PCA), whose evidence, posterior and ELBO are closed-form; it is the reference the tests
compare trained linear VAEs with.

Every model exposes ``loss(x)`` for :func:`gencode.train.fit`, and takes its device and dtype from its
parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, MultivariateNormal, Normal, kl_divergence

from .nets import MLP
from .two_sample import sliced_wasserstein

__all__ = [
    "BernoulliDecoder",
    "ELBOTerms",
    "GaussianDecoder",
    "GaussianEncoder",
    "LinearGaussianModel",
    "Quantized",
    "SWAE",
    "VAE",
    "VQVAE",
    "FlowPriorVAE",
    "aggregate_kl_split",
    "gaussian_kl_split",
    "linear_vae",
    "mlp_vae",
]


def _check_batch(name: str, x: torch.Tensor, dim: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (B, {dim}), got {tuple(x.shape)}")


def _positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


# ---------------------------------------------------------------------------------------------
# The encoder/decoder family


class GaussianEncoder(nn.Module):
    r"""The amortised posterior :math:`q_\phi(z \mid x) = \mathcal{N}(\mu_\phi(x), \operatorname{diag} e^{\lambda_\phi(x)})`.

    Args:
        net: maps ``(B, D)`` to ``(B, 2 L)``: the means, then the log-variances :math:`\lambda`.
        data_dim: ``D``.
        latent_dim: ``L``.
    """

    def __init__(self, net: nn.Module, data_dim: int, latent_dim: int) -> None:
        super().__init__()
        _positive_int("data_dim", data_dim)
        _positive_int("latent_dim", latent_dim)
        self.net, self.data_dim, self.latent_dim = net, data_dim, latent_dim

    def forward(self, x: torch.Tensor) -> Normal:
        """The law ``q(z | x)``, a ``Normal`` of batch shape ``(B, L)``."""
        _check_batch("x", x, self.data_dim)
        mean, log_var = self.net(x).chunk(2, dim=-1)  # (B, L) each
        return Normal(mean, torch.exp(0.5 * log_var), validate_args=False)


class GaussianDecoder(nn.Module):
    r"""The likelihood :math:`p_\theta(x \mid z) = \mathcal{N}(\mu_\theta(z), \sigma^2 \mathbf{I})`.

    Args:
        net: maps ``(..., L)`` to ``(..., D)``, the mean :math:`\mu_\theta(z)`.
        data_dim: ``D``.
        sigma: initial (or fixed) noise standard deviation, > 0.
        learn_sigma: whether :math:`\log\sigma` is a parameter.
    """

    def __init__(self, net: nn.Module, data_dim: int, sigma: float = 1.0, learn_sigma: bool = True) -> None:
        super().__init__()
        _positive_int("data_dim", data_dim)
        if not float(sigma) > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.net, self.data_dim = net, data_dim
        log_sigma = torch.tensor(math.log(float(sigma)))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    @property
    def sigma(self) -> torch.Tensor:
        return self.log_sigma.exp()

    def forward(self, z: torch.Tensor) -> Independent:
        """The law ``p(x | z)``, batch shape ``z.shape[:-1]``, event shape ``(D,)``."""
        mean = self.net(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], self.data_dim)
        return Independent(Normal(mean, self.sigma.to(mean.dtype).expand_as(mean), validate_args=False), 1,
                           validate_args=False)

    def check_data(self, x: torch.Tensor) -> None:
        """Any real data are admissible (the shape is checked by the caller)."""


class BernoulliDecoder(nn.Module):
    r"""The likelihood :math:`p_\theta(x \mid z) = \prod_d \mathrm{Bern}(x_d;\ \mathrm{sigmoid}(\ell_d(z)))`.

    Its log-density is :math:`\sum_d x_d \ell_d - \log(1 + e^{\ell_d})` (``autoregressive.bernoulli_logit``), minus
    the binary cross-entropy with logits.

    Args:
        net: maps ``(..., L)`` to ``(..., D)``, the logits :math:`\ell(z)`.
        data_dim: ``D``.
    """

    def __init__(self, net: nn.Module, data_dim: int) -> None:
        super().__init__()
        _positive_int("data_dim", data_dim)
        self.net, self.data_dim = net, data_dim

    def forward(self, z: torch.Tensor) -> Independent:
        """The law ``p(x | z)``, batch shape ``z.shape[:-1]``, event shape ``(D,)``."""
        logits = self.net(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], self.data_dim)
        return Independent(Bernoulli(logits=logits, validate_args=False), 1, validate_args=False)

    def check_data(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless every entry of ``x`` is 0 or 1 (one host sync)."""
        if not bool(((x == 0) | (x == 1)).all()):
            raise ValueError("x must be binary (0 or 1) for a Bernoulli decoder; binarise the data first")


Decoder = GaussianDecoder | BernoulliDecoder


# ---------------------------------------------------------------------------------------------
# The VAE


@dataclass
class ELBOTerms:
    """The two terms of the ELBO, per example.

    Attributes:
        reconstruction: Monte Carlo estimate of ``E_q[log p(x | z)]``, shape ``(B,)``.
        kl: ``KL(q(z | x) || p(z))`` in closed form, shape ``(B,)``.
        kl_per_dim: the KL of each latent coordinate, shape ``(B, L)``.
    """

    reconstruction: torch.Tensor  # (B,)
    kl: torch.Tensor  # (B,)
    kl_per_dim: torch.Tensor  # (B, L)

    @property
    def elbo(self) -> torch.Tensor:
        """``reconstruction - kl``, shape ``(B,)``."""
        return self.reconstruction - self.kl


class VAE(nn.Module):
    r"""Variational autoencoder with prior :math:`\mathcal{N}(0, \mathbf{I})`, optional :math:`\beta` and free bits.

    The training loss is

    .. math::
        -\frac{1}{B}\sum_b \mathbb{E}_{q}[\log p_\theta(x_b \mid z)]
        + \beta \sum_{j=1}^{L} \max\Bigl(\lambda,\ \frac{1}{B}\sum_b \mathrm{KL}_j(x_b)\Bigr)

    with :math:`\lambda` = ``free_bits`` (0: the plain (beta-)VAE; Kingma et al. 2016) and
    :math:`\mathrm{KL}_j` the KL of latent coordinate :math:`j`.

    Args:
        encoder: a :class:`GaussianEncoder`.
        decoder: a :class:`GaussianDecoder` or :class:`BernoulliDecoder`.
        beta: weight of the KL term, > 0.
        free_bits: per-coordinate KL floor :math:`\lambda \ge 0` in nats.

    References:
        Kingma, Welling, "Auto-Encoding Variational Bayes", 2014, arXiv:1312.6114.
        Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
        Framework", ICLR 2017.
        Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow", 2016,
        arXiv:1606.04934 (free bits).
        Burda, Grosse, Salakhutdinov, "Importance Weighted Autoencoders", 2016, arXiv:1509.00519.
    """

    def __init__(self, encoder: GaussianEncoder, decoder: Decoder, beta: float = 1.0, free_bits: float = 0.0) -> None:
        super().__init__()
        if not isinstance(encoder, GaussianEncoder):
            raise TypeError(f"encoder must be a GaussianEncoder, got {type(encoder).__name__}")
        if not isinstance(decoder, GaussianDecoder | BernoulliDecoder):
            raise TypeError(f"decoder must be a GaussianDecoder or BernoulliDecoder, got {type(decoder).__name__}")
        if decoder.data_dim != encoder.data_dim:
            raise ValueError(f"encoder and decoder data_dim differ: {encoder.data_dim} and {decoder.data_dim}")
        if not float(beta) > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        if not float(free_bits) >= 0:
            raise ValueError(f"free_bits must be >= 0, got {free_bits}")
        self.encoder, self.decoder = encoder, decoder
        self.beta, self.free_bits = float(beta), float(free_bits)

    @property
    def latent_dim(self) -> int:
        return self.encoder.latent_dim

    def check_data(self, x: torch.Tensor) -> None:
        """Raise on a wrong shape, or on non-binary data for a Bernoulli decoder (host sync: call once)."""
        _check_batch("x", x, self.encoder.data_dim)
        self.decoder.check_data(x)

    def prior(self, like: torch.Tensor) -> Normal:
        """``N(0, I)`` with the shape, device and dtype of ``like``."""
        return Normal(torch.zeros_like(like), torch.ones_like(like), validate_args=False)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p(z)` summed over the latent coordinates, shape ``z.shape[:-1]``."""
        return self.prior(z).log_prob(z).sum(-1)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of the prior, shape ``(n, L)``, on the parameters' device and dtype."""
        p = next(self.parameters())
        return torch.randn(n, self.latent_dim, generator=generator, device=p.device, dtype=p.dtype)

    def kl(self, q: Normal) -> torch.Tensor:
        r"""Per-coordinate :math:`\mathrm{KL}(q \,\|\, \mathcal{N}(0, 1))`, shape ``(B, L)`` (``divergences.kl.diag_standard``)."""
        return kl_divergence(q, self.prior(q.loc))

    def elbo_terms(self, x: torch.Tensor, n_samples: int = 1,
                   generator: torch.Generator | None = None) -> ELBOTerms:
        r"""The reconstruction term (Monte Carlo, reparameterised) and the KL term (closed form).

        ``z = mu + sigma * eps`` with ``eps ~ N(0, I)`` (``vae.reparam``): the estimate is differentiable
        in the encoder's parameters.

        Args:
            x: data, shape ``(B, D)``.
            n_samples: number of ``z`` per example averaged in the reconstruction term.
            generator: optional generator for ``eps`` (on ``x``'s device).
        """
        _positive_int("n_samples", n_samples)
        q = self.encoder(x)
        eps = torch.randn((n_samples, *q.loc.shape), generator=generator, device=x.device, dtype=x.dtype)
        z = q.loc + q.scale * eps  # (S, B, L)
        reconstruction = self.decoder(z).log_prob(x).mean(0)  # (B,)
        kl_per_dim = self.kl(q)  # (B, L)
        return ELBOTerms(reconstruction, kl_per_dim.sum(-1), kl_per_dim)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The negative (beta-weighted, free-bits) ELBO averaged over the batch: the training loss."""
        terms = self.elbo_terms(x)
        kl = terms.kl_per_dim.mean(0)  # (L,)
        if self.free_bits > 0:
            kl = kl.clamp(min=self.free_bits)
        return -terms.reconstruction.mean() + self.beta * kl.sum()

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, n_samples: int = 256,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Importance-sampled estimate of :math:`\log p_\theta(x)`, shape ``(B,)``.

        .. math::
            \log \frac{1}{K}\sum_{k=1}^{K} \frac{p_\theta(x, z_k)}{q_\phi(z_k \mid x)}, \qquad z_k \sim q_\phi(z \mid x).

        Its expectation is a lower bound (IWAE) that increases with :math:`K` to :math:`\log p_\theta(x)`;
        :math:`K = 1` is the ELBO.
        """
        _positive_int("n_samples", n_samples)
        q = self.encoder(x)
        eps = torch.randn((n_samples, *q.loc.shape), generator=generator, device=x.device, dtype=x.dtype)
        z = q.loc + q.scale * eps  # (K, B, L)
        log_w = (self.decoder(z).log_prob(x) + self.log_prior(z)
                 - q.log_prob(z).sum(-1))  # (K, B)
        return torch.logsumexp(log_w, dim=0) - math.log(n_samples)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, mean: bool = False) -> torch.Tensor:
        """``n`` draws of ``x`` (or of the decoder's mean, ``mean=True``), ``z ~ N(0, I)``, shape ``(n, D)``."""
        _positive_int("n", n)
        p = next(self.parameters())
        z = self.sample_prior(n, generator=generator)
        law = self.decoder(z)
        if mean:
            return law.mean
        if isinstance(law.base_dist, Normal):
            e = torch.randn(law.mean.shape, generator=generator, device=p.device, dtype=p.dtype)
            return law.mean + law.stddev * e
        return torch.bernoulli(law.mean, generator=generator)


def mlp_vae(data_dim: int, latent_dim: int, decoder: str = "gaussian", hidden: int = 64, depth: int = 2,
            beta: float = 1.0, free_bits: float = 0.0, sigma: float = 1.0) -> VAE:
    """A VAE whose encoder and decoder are :class:`gencode.nets.MLP` s.

    Args:
        data_dim: ``D``.
        latent_dim: ``L``.
        decoder: ``"gaussian"`` (learnable sigma, initialised at ``sigma``) or ``"bernoulli"``.
        hidden, depth: width and number of hidden layers of both MLPs.
        beta, free_bits: see :class:`VAE`.

    Example:
        >>> vae = mlp_vae(2, 2, hidden=16)
        >>> vae.loss(torch.randn(8, 2)).shape
        torch.Size([])
    """
    enc = GaussianEncoder(MLP(data_dim, 2 * latent_dim, hidden, depth), data_dim, latent_dim)
    net = MLP(latent_dim, data_dim, hidden, depth)
    if decoder == "gaussian":
        dec: Decoder = GaussianDecoder(net, data_dim, sigma=sigma)
    elif decoder == "bernoulli":
        dec = BernoulliDecoder(net, data_dim)
    else:
        raise ValueError(f"decoder must be 'gaussian' or 'bernoulli', got {decoder!r}")
    return VAE(enc, dec, beta=beta, free_bits=free_bits)


def linear_vae(data_dim: int, latent_dim: int, beta: float = 1.0) -> VAE:
    """A VAE with linear encoder (means and log-variances) and linear Gaussian decoder, learnable sigma.

    Its generative model is probabilistic PCA, so its optimum is known in closed form
    (:meth:`LinearGaussianModel.fit_ppca`).
    """
    enc = GaussianEncoder(nn.Linear(data_dim, 2 * latent_dim), data_dim, latent_dim)
    return VAE(enc, GaussianDecoder(nn.Linear(latent_dim, data_dim), data_dim), beta=beta)


class FlowPriorVAE(VAE):
    r"""A VAE whose prior is a learned normalizing flow :math:`p_\psi(z)` instead of :math:`\mathcal{N}(0, \mathbf{I})`.

    The KL term :math:`\mathrm{KL}(q(z \mid x) \,\|\, p_\psi)` has no closed form; it is estimated with the
    same reparameterised draws as the reconstruction term,
    :math:`\frac1S\sum_s \log q(z_s \mid x) - \log p_\psi(z_s)`, and the flow is trained jointly. Averaged
    over the data, the KL term is :math:`\mathrm{KL}(q_{\mathrm{agg}} \,\|\, p_\psi) + \mathcal{I}_q(x; z)`
    (``vae.surgery``); only the first term depends on the prior, and it vanishes when
    :math:`p_\psi = q_{\mathrm{agg}}` (``vae.surgery.prior``): a richer prior lowers the KL term without
    taking information out of the code.

    Args:
        encoder, decoder: as for :class:`VAE`.
        prior: a :class:`gencode.flows.Flow` on :math:`\mathbb{R}^L` (any object with ``log_prob((N, L))``,
            ``sample(n, generator=...)`` and parameters).
        beta: weight of the KL term.

    References:
        Tomczak, Welling, "VAE with a VampPrior", AISTATS 2018, arXiv:1705.07120.
        Chen et al., "Variational Lossy Autoencoder", ICLR 2017, arXiv:1611.02731 (autoregressive flow prior).
    """

    def __init__(self, encoder: GaussianEncoder, decoder: Decoder, prior: nn.Module, beta: float = 1.0) -> None:
        super().__init__(encoder, decoder, beta=beta)
        if getattr(prior, "dim", encoder.latent_dim) != encoder.latent_dim:
            raise ValueError(f"prior must live in dimension {encoder.latent_dim}, got {prior.dim}")
        self.prior_flow = prior

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return self.prior_flow.log_prob(z.reshape(-1, z.shape[-1])).reshape(z.shape[:-1])

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.prior_flow.sample(n, generator=generator)

    def elbo_terms(self, x: torch.Tensor, n_samples: int = 1,
                   generator: torch.Generator | None = None) -> ELBOTerms:
        """As :meth:`VAE.elbo_terms`, the KL term by Monte Carlo; ``kl_per_dim`` has one column (the KL to a
        flow prior does not split over coordinates)."""
        _positive_int("n_samples", n_samples)
        q = self.encoder(x)
        eps = torch.randn((n_samples, *q.loc.shape), generator=generator, device=x.device, dtype=x.dtype)
        z = q.loc + q.scale * eps  # (S, B, L)
        reconstruction = self.decoder(z).log_prob(x).mean(0)  # (B,)
        kl = (q.log_prob(z).sum(-1) - self.log_prior(z)).mean(0)  # (B,)
        return ELBOTerms(reconstruction, kl, kl.unsqueeze(-1))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        terms = self.elbo_terms(x)
        return -(terms.reconstruction - self.beta * terms.kl).mean()


def gaussian_kl_split(vae: VAE, x: torch.Tensor, n_samples: int = 1,
                      generator: torch.Generator | None = None) -> KLSplit:
    r"""ELBO surgery for a Gaussian encoder, by Monte Carlo over the aggregate posterior of a data set.

    With :math:`q_{\mathrm{agg}}(z) = \frac1n\sum_j q(z \mid x_j)` (an exact mixture of the ``n`` encoders)
    and :math:`z \sim q(z \mid x_i)`, every sample splits exactly as
    :math:`\log\frac{q(z \mid x_i)}{p(z)} = \log\frac{q_{\mathrm{agg}}(z)}{p(z)} + \log\frac{q(z \mid x_i)}{q_{\mathrm{agg}}(z)}`,
    whose averages estimate the average KL term, :math:`\mathrm{KL}(q_{\mathrm{agg}} \,\|\, p)` and
    :math:`\mathcal{I}_q(x; z)` (``vae.surgery``).

    Args:
        vae: a :class:`VAE` (its prior: :meth:`VAE.log_prior`).
        x: the data set, shape ``(n, D)``.
        n_samples: draws of ``z`` per data point.
        generator: random generator.

    Returns:
        A :class:`KLSplit` of 0-dim tensors, with the standard error of the marginal KL in
        ``marginal_kl_se`` (per-draw standard deviation over the square root of the number of draws).
    """
    _positive_int("n_samples", n_samples)
    with torch.no_grad():
        q = vae.encoder(x)
        eps = torch.randn((n_samples, *q.loc.shape), generator=generator, device=x.device, dtype=x.dtype)
        z = q.loc + q.scale * eps  # (S, n, L)
        log_q_own = q.log_prob(z).sum(-1)  # (S, n)
        # log q_agg(z) for every draw: a logsumexp over the n encoders, in chunks of draws
        flat = z.reshape(-1, z.shape[-1])  # (S n, L)
        log_agg = torch.cat([Normal(q.loc, q.scale).log_prob(chunk[:, None, :]).sum(-1).logsumexp(-1)
                             for chunk in flat.split(1024)]) - math.log(x.shape[0])
        log_agg = log_agg.reshape(z.shape[:-1])  # (S, n)
        log_p = vae.log_prior(z)  # (S, n)
        marginal = log_agg - log_p
        return KLSplit((log_q_own - log_p).mean(), marginal.mean(), (log_q_own - log_agg).mean(),
                       marginal.std() / math.sqrt(marginal.numel()))


# ---------------------------------------------------------------------------------------------
# The linear-Gaussian model


@dataclass
class LinearGaussianModel:
    r"""The linear-Gaussian latent-variable model (probabilistic PCA).

    .. math::
        p(z) = \mathcal{N}(0, \mathbf{I}_L), \qquad p(x \mid z) = \mathcal{N}(W z + b, \sigma^2 \mathbf{I}_D),

    so that :math:`p(x) = \mathcal{N}(b, W W^\top + \sigma^2 \mathbf{I})` and
    :math:`p(z \mid x) = \mathcal{N}(M^{-1} W^\top (x - b), \sigma^2 M^{-1})` with
    :math:`M = W^\top W + \sigma^2 \mathbf{I}` (``vae.lg.bayes`` in one dimension).

    Attributes:
        W: ``(D, L)``. b: ``(D,)``. sigma: a positive 0-dim tensor.

    References:
        Tipping, Bishop, "Probabilistic Principal Component Analysis", JRSS B, 1999.
    """

    W: torch.Tensor  # (D, L)
    b: torch.Tensor  # (D,)
    sigma: torch.Tensor  # ()

    def __post_init__(self) -> None:
        if self.W.ndim != 2 or self.b.shape != (self.W.shape[0],):
            raise ValueError(f"W must be (D, L) and b (D,), got {tuple(self.W.shape)} and {tuple(self.b.shape)}")
        self.sigma = torch.as_tensor(self.sigma, dtype=self.W.dtype, device=self.W.device)
        if not bool(self.sigma > 0):
            raise ValueError(f"sigma must be > 0, got {float(self.sigma)}")

    @property
    def data_dim(self) -> int:
        return self.W.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.W.shape[1]

    def _eye(self, n: int) -> torch.Tensor:
        return torch.eye(n, dtype=self.W.dtype, device=self.W.device)

    def evidence(self) -> MultivariateNormal:
        """The marginal ``p(x) = N(b, W W^T + sigma^2 I)``."""
        cov = self.W @ self.W.mT + self.sigma**2 * self._eye(self.data_dim)
        return MultivariateNormal(self.b, covariance_matrix=cov)

    def log_evidence(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(x)`, shape ``(B,)``."""
        _check_batch("x", x, self.data_dim)
        return self.evidence().log_prob(x)

    def beta_encoder(self, x: torch.Tensor, beta: float = 1.0) -> MultivariateNormal:
        r"""The Gaussian :math:`q` that maximises :math:`\mathbb{E}_q \log p(x \mid z) - \beta\,\mathrm{KL}(q \,\|\, p(z))`.

        Mean :math:`(W^\top W + \beta\sigma^2 I)^{-1} W^\top (x - b)`, covariance
        :math:`\beta\sigma^2 (W^\top W + \beta\sigma^2 I)^{-1}` (``vae.beta.encoder``); :math:`\beta = 1`
        is the posterior.
        """
        _check_batch("x", x, self.data_dim)
        if not float(beta) > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        M = self.W.mT @ self.W + beta * self.sigma**2 * self._eye(self.latent_dim)  # (L, L)
        mean = torch.linalg.solve(M, self.W.mT @ (x - self.b).mT).mT  # (B, L)
        return MultivariateNormal(mean, covariance_matrix=beta * self.sigma**2 * torch.linalg.inv(M))

    def posterior(self, x: torch.Tensor) -> MultivariateNormal:
        """The exact posterior ``p(z | x)``, batch shape ``(B,)``."""
        return self.beta_encoder(x, 1.0)

    def elbo(self, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> ELBOTerms:
        r"""The ELBO of :math:`q = \mathcal{N}(\text{mean}, \operatorname{diag}\text{var})` in closed form (``vae.elbo.terms``).

        Reconstruction :math:`\log \mathcal{N}(x; W m + b, \sigma^2 I) - \operatorname{tr}(W \operatorname{diag}(v) W^\top)/(2\sigma^2)`,
        KL :math:`\frac12\sum_j (m_j^2 + v_j - 1 - \log v_j)`.

        Args:
            x: ``(B, D)``; mean, var: ``(B, L)``.
        """
        _check_batch("x", x, self.data_dim)
        _check_batch("mean", mean, self.latent_dim)
        _check_batch("var", var, self.latent_dim)
        fit = Normal(mean @ self.W.mT + self.b, self.sigma).log_prob(x).sum(-1)  # (B,)
        spread = (var * self.W.square().sum(0)).sum(-1) / (2 * self.sigma**2)  # tr(W diag(v) W^T)/(2 s^2)
        kl_per_dim = 0.5 * (mean.square() + var - 1 - var.log())
        return ELBOTerms(fit - spread, kl_per_dim.sum(-1), kl_per_dim)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of ``x``, shape ``(n, D)``."""
        _positive_int("n", n)
        opts = {"generator": generator, "device": self.W.device, "dtype": self.W.dtype}
        z = torch.randn(n, self.latent_dim, **opts)
        return z @ self.W.mT + self.b + self.sigma * torch.randn(n, self.data_dim, **opts)

    @classmethod
    def from_vae(cls, vae: VAE) -> LinearGaussianModel:
        """The generative model of a :func:`linear_vae`."""
        net = vae.decoder.net
        if not isinstance(net, nn.Linear) or not isinstance(vae.decoder, GaussianDecoder):
            raise TypeError("vae must have a linear Gaussian decoder (see linear_vae)")
        return cls(net.weight.detach(), net.bias.detach(), vae.decoder.sigma.detach())

    @classmethod
    def fit_ppca(cls, x: torch.Tensor, latent_dim: int) -> LinearGaussianModel:
        r"""The maximum-likelihood model for data ``x`` (Tipping and Bishop 1999, eqs. 7-8).

        With the sample covariance :math:`S = U \Lambda U^\top` (eigenvalues decreasing):
        :math:`b = \bar x`, :math:`\sigma^2 = \frac{1}{D - L}\sum_{j > L} \lambda_j` and
        :math:`W = U_L (\Lambda_L - \sigma^2 I)^{1/2}` (up to a rotation of the latent space).
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            raise ValueError("x must be a tensor of shape (N, D)")
        _positive_int("latent_dim", latent_dim)
        if latent_dim >= x.shape[1]:
            raise ValueError(f"latent_dim must be < D = {x.shape[1]}, got {latent_dim}")
        b = x.mean(0)
        cov = (x - b).mT @ (x - b) / x.shape[0]
        lam, U = torch.linalg.eigh(cov)  # increasing
        lam, U = lam.flip(0), U.flip(1)
        sigma2 = lam[latent_dim:].mean()
        W = U[:, :latent_dim] * (lam[:latent_dim] - sigma2).clamp(min=0).sqrt()
        return cls(W, b, sigma2.sqrt())


# ---------------------------------------------------------------------------------------------
# ELBO surgery on discrete encoders


@dataclass
class KLSplit:
    """``average_kl = marginal_kl + mutual_information`` (``vae.surgery``), each a 0-dim tensor."""

    average_kl: torch.Tensor
    marginal_kl: torch.Tensor
    mutual_information: torch.Tensor
    marginal_kl_se: torch.Tensor | None = None  # Monte Carlo standard error, when estimated by sampling


def aggregate_kl_split(q: torch.Tensor, prior: torch.Tensor) -> KLSplit:
    r"""Split the average KL term of discrete encoders into marginal KL and mutual information.

    Args:
        q: ``q(z = k | x_i)``, shape ``(n, K)``, rows positive and summing to 1.
        prior: ``p(z = k)``, shape ``(K,)``, positive and summing to 1.

    Returns:
        :math:`\frac1n\sum_i \mathrm{KL}(q_i \| p)`, :math:`\mathrm{KL}(q_{\mathrm{agg}} \| p)` and
        :math:`\frac1n\sum_i \mathrm{KL}(q_i \| q_{\mathrm{agg}})`, each computed from its definition.
    """
    if q.ndim != 2 or prior.shape != (q.shape[1],):
        raise ValueError(f"q must be (n, K) and prior (K,), got {tuple(q.shape)} and {tuple(prior.shape)}")
    q_agg = q.mean(0)  # (K,)
    average = (q * (q.log() - prior.log())).sum(-1).mean()
    marginal = (q_agg * (q_agg.log() - prior.log())).sum()
    mutual = (q * (q.log() - q_agg.log())).sum(-1).mean()
    return KLSplit(average, marginal, mutual)


# ---------------------------------------------------------------------------------------------
# VQ-VAE


@dataclass
class Quantized:
    """The output of :meth:`VQVAE.quantize`.

    Attributes:
        z_q: the straight-through code ``z_e + sg[e_k - z_e]``: value ``e_k``, gradient to ``z_e``; ``(B, G, L)``.
        codes: the chosen indices ``k``, ``(B, G)``.
        codebook_loss: ``||sg[z_e] - e_k||^2`` summed over groups, ``(B,)``.
        commitment_loss: ``||z_e - sg[e_k]||^2`` summed over groups, ``(B,)``.
    """

    z_q: torch.Tensor
    codes: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor


class VQVAE(nn.Module):
    r"""Vector-quantised VAE: ``G`` groups of ``L``-dimensional codes, each snapped to one of ``K`` vectors.

    The posterior is one-hot and the prior uniform, so the KL term is the constant :math:`G \log K`
    (``vae.vq.kl``). The loss is :math:`-\log p(x \mid z_q) + \|\mathrm{sg}[z_e] - e\|^2 +
    \beta \|z_e - \mathrm{sg}[e]\|^2` with the straight-through estimator (``vae.vq.gradients``).

    Args:
        encoder: maps ``(B, D)`` to ``(B, G L)``, the codes ``z_e``.
        decoder: a :class:`GaussianDecoder` or :class:`BernoulliDecoder` on ``G L`` inputs.
        num_codes: ``K``. code_dim: ``L``. groups: ``G``.
        commitment: :math:`\beta > 0`.

    References:
        van den Oord, Vinyals, Kavukcuoglu, "Neural Discrete Representation Learning", 2017,
        arXiv:1711.00937.
    """

    def __init__(self, encoder: nn.Module, decoder: Decoder, num_codes: int, code_dim: int, groups: int = 1,
                 commitment: float = 0.25) -> None:
        super().__init__()
        for name, value in [("num_codes", num_codes), ("code_dim", code_dim), ("groups", groups)]:
            _positive_int(name, value)
        if not float(commitment) > 0:
            raise ValueError(f"commitment must be > 0, got {commitment}")
        self.encoder, self.decoder = encoder, decoder
        self.num_codes, self.code_dim, self.groups, self.commitment = num_codes, code_dim, groups, float(commitment)
        self.codebook = nn.Parameter(torch.randn(num_codes, code_dim) / math.sqrt(code_dim))  # (K, L)

    def quantize(self, z_e: torch.Tensor) -> Quantized:
        """Nearest codebook vector per group, with straight-through gradient and the two VQ losses."""
        if z_e.ndim != 2 or z_e.shape[1] != self.groups * self.code_dim:
            raise ValueError(f"z_e must have shape (B, {self.groups * self.code_dim}), got {tuple(z_e.shape)}")
        z = z_e.reshape(-1, self.groups, self.code_dim)  # (B, G, L)
        dist = (z.unsqueeze(-2) - self.codebook).square().sum(-1)  # (B, G, K)
        codes = dist.argmin(-1)  # (B, G)
        e = self.codebook[codes]  # (B, G, L)
        z_q = z + (e - z).detach()  # straight-through
        codebook_loss = (z.detach() - e).square().sum((-1, -2))
        commitment_loss = (z - e.detach()).square().sum((-1, -2))
        return Quantized(z_q, codes, codebook_loss, commitment_loss)

    def latent_loss(self, x: torch.Tensor, z_e: torch.Tensor) -> torch.Tensor:
        """The VQ-VAE loss per example given the encoder's output ``z_e``, shape ``(B,)``."""
        quant = self.quantize(z_e)
        nll = -self.decoder(quant.z_q.flatten(1)).log_prob(x)
        return nll + quant.codebook_loss + self.commitment * quant.commitment_loss

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The training loss averaged over the batch."""
        return self.latent_loss(x, self.encoder(x)).mean()

    @torch.no_grad()
    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(x \mid z_q) - G \log K`, shape ``(B,)``."""
        quant = self.quantize(self.encoder(x))
        return self.decoder(quant.z_q.flatten(1)).log_prob(x) - self.groups * math.log(self.num_codes)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means for ``n`` uniformly drawn codes, shape ``(n, D)``."""
        _positive_int("n", n)
        codes = torch.randint(self.num_codes, (n, self.groups), generator=generator, device=self.codebook.device)
        return self.decoder(self.codebook[codes].flatten(1)).mean


# ---------------------------------------------------------------------------------------------
# Sliced-Wasserstein autoencoder


class SWAE(nn.Module):
    r"""Sliced-Wasserstein autoencoder: a deterministic encoder whose codes are pushed towards the prior.

    Loss: :math:`-\frac1B\sum_b \log p(x_b \mid f(x_b)) + \lambda\, \mathrm{SW}_2^2(\{f(x_b)\}, \{z_b\})` with
    :math:`z_b \sim \mathcal{N}(0, \mathbf{I})` and the sliced distance of
    :func:`gencode.two_sample.sliced_wasserstein` (sorted projections).

    Args:
        encoder: maps ``(B, D)`` to ``(B, L)``.
        decoder: a :class:`GaussianDecoder` or :class:`BernoulliDecoder`.
        latent_dim: ``L``.
        lam: :math:`\lambda > 0`.
        n_projections: random directions per step.

    References:
        Kolouri, Pope, Martin, Rohde, "Sliced-Wasserstein Autoencoder: An Embarrassingly Simple
        Generative Model", ICLR 2019, arXiv:1804.01947.
    """

    def __init__(self, encoder: nn.Module, decoder: Decoder, latent_dim: int, lam: float = 10.0,
                 n_projections: int = 64) -> None:
        super().__init__()
        _positive_int("latent_dim", latent_dim)
        _positive_int("n_projections", n_projections)
        if not float(lam) > 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim, self.lam, self.n_projections = latent_dim, float(lam), n_projections

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction NLL plus ``lam`` times the squared sliced distance to prior samples."""
        z = self.encoder(x)  # (B, L)
        prior = torch.randn_like(z)
        sw2 = sliced_wasserstein(z, prior, self.n_projections).square()
        return -self.decoder(z).log_prob(x).mean() + self.lam * sw2

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means at ``n`` prior draws, shape ``(n, D)``."""
        _positive_int("n", n)
        p = next(self.parameters())
        z = torch.randn(n, self.latent_dim, generator=generator, device=p.device, dtype=p.dtype)
        return self.decoder(z).mean
