"""Generative adversarial networks: the optimal discriminator and the Jensen-Shannon divergence.

Goodfellow et al. (2014) train a discriminator ``D`` against a generator whose samples have
density ``q``; the data have density ``p``.  For a fixed generator the discriminator maximises

    V(D, G) = E_p[log D(x)] + E_q[log(1 - D(x))] = int [p(x) log D(x) + q(x) log(1 - D(x))] dx,

and since ``D(x)`` may be chosen separately at every ``x``, everything reduces to the pointwise
function ``f(D) = p log D + q log(1 - D)`` of one number ``D`` in ``(0, 1)``, where ``p, q > 0``
are the two densities at that point.  Registered below:

1. ``gan.optimal_discriminator``: ``D* = p / (p + q)`` is a stationary point of ``f`` and ``f`` is
   strictly concave (its second derivative is a negative sum of positive terms);
2. ``gan.discriminator_gap``: ``f(D*) - f(D) = (p + q) KL(Bern(D*) || Bern(D))``, non-negative by
   Gibbs' inequality, so ``D*`` is the global maximiser (the source notes' practice problem);
3. ``gan.value_at_optimum``: ``f(D*) = -(p + q)/2 log 4 + 2 j(p, q)`` with
   ``j = 1/2 p log(p/m) + 1/2 q log(q/m)``, ``m = (p + q)/2``, the integrand of JS; integrating
   (``int p = int q = 1``) gives ``V(D*, G) = -log 4 + 2 JS(p || q)``;
4. ``gan.global_optimum``: at ``q = p`` the optimal discriminator is ``1/2`` and the value
   ``-log 4``;
5. ``gan.generator_gradients``: with ``D = sigmoid(a)``, the gradients in the logit ``a`` of the
   saturating loss ``log(1 - D)`` and the non-saturating loss ``-log D`` are ``-D`` and
   ``-(1 - D)``: the first vanishes when the discriminator rejects the samples (``D -> 0``);
6. ``gan.noisy_mixture``: ``log(eps p + (1 - eps) r) = log p + log eps + log(1 + (1-eps) r/(eps p))``,
   whose last term is non-negative: a model that is 99 % noise loses at most ``log 100`` nats of
   likelihood per sample (the likelihood-free motivation).

Logarithms are normalised by ``expand_log(force=True, factor=True)`` on arguments that are
products and quotients of positive symbols, after which ``cancel`` is a complete zero test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from .core import Claim, Check, Identity, LogGap, Mutant, Status, Verdict, expand_known, register, split_logs, sym
from .diffusion import _frac, _mul  # unevaluated products for display forms

p = sym("p", positive=True)  # data density at a point
q = sym("q", positive=True)  # generator density at the same point
D = sym("D", (0, 1), positive=True)  # discriminator output at that point
D_bar = sym("Dbar", (0, 1), positive=True)  # 1 - D, positive since D < 1
a = sym("a", real=True)  # discriminator logit, D = sigmoid(a)
u = sym("u", positive=True)  # exp(-a)
eps = sym("epsilon", (0, 1), positive=True)  # weight of the data in a noisy mixture
eps_bar = sym("epsbar", (0, 1), positive=True)  # 1 - epsilon
r = sym("r", positive=True)  # noise density at a point

f_pointwise = p * sp.log(D) + q * sp.log(1 - D)
"""The pointwise discriminator objective ``p log D + q log(1 - D)``."""

D_star = p / (p + q)
m = (p + q) / 2
DS = sp.Symbol("D^*", positive=True)  # a name for D* in displayed formulas
M = sp.Symbol("m", positive=True)  # a name for the midpoint density in displayed formulas
NAMES = {DS: D_star, M: m}
"""Definitions of the names used in display forms."""

ASSUMPTIONS = (
    "p > 0 and q > 0 are the data and generator densities at one point x",
    "D = D(x) in (0, 1) is chosen separately at every x",
)


def _logs_equal(derived: dict[str, sp.Expr], method: str) -> Check:
    """Like :func:`equal`, with logarithms split after the display names are replaced."""
    def residuals(claim: Claim) -> list[sp.Expr]:
        return [split_logs((derived[k] - claim[k]).doit().xreplace(NAMES)) for k in derived]

    return Check(method, residuals, definitions=NAMES)


@dataclass(frozen=True)
class EqualityAndBound(Check):
    """An equality ``part = derived`` (the residuals, checked as by :class:`Check`, which refutes a
    wrong claim at a random point) followed by the bound ``bound(claim) >= 0``: ``bound(claim)``
    must equal ``certificate``, an expression non-negative by construction (:class:`LogGap` of
    positives, logarithms of numbers above 1, positive weights)."""

    bound: Callable[[Claim], sp.Expr] | None = None
    certificate: Callable[[Claim], sp.Expr] | None = None

    def __call__(self, claim: Claim, seed: int = 0) -> Verdict:
        verdict = super().__call__(claim, seed)
        if verdict.status is not Status.PROVED:
            return verdict
        cert = self.certificate(claim)
        if cert.is_nonnegative is not True:  # decided before the definitions (1 - D = Dbar > 0) are applied
            raise ValueError(f"certificate {cert} is not non-negative by construction")
        cert = self.substitute(cert)
        rest = sp.cancel(sp.together(split_logs(expand_known(self.substitute(self.bound(claim)) - cert))))
        if rest != 0:
            return Verdict(Status.INCONCLUSIVE, self.method, str(rest)[:160])
        return Verdict(Status.PROVED, self.method + "; bound = certificate >= 0")


# ---------------------------------------------------------------------------------------------
# 1. The stationary point and the curvature.


def _optimal_residuals(claim: Claim) -> list[sp.Expr]:
    return [
        sp.diff(f_pointwise, D).xreplace({D: claim["D"]}),  # f'(D*) = 0
        sp.diff(f_pointwise, D, 2) - claim["curvature"],
    ]


optimal_discriminator = register(Identity(
    id="gan.optimal_discriminator",
    title="The optimal discriminator is p / (p + q)",
    chapter="gan",
    claim={"D": D_star, "curvature": -p / D**2 - q / (1 - D) ** 2},
    check=Check("f'(D*) = 0 by differentiation and cancel; f'' computed and compared", _optimal_residuals),
    template=(r"\frac{\partial f}{\partial D}\Big|_{D = D^*} = 0 \ \text{ at } \ D^* = $D, \qquad "
              r"\frac{\partial^2 f}{\partial D^2} = $curvature < 0"),
    assumptions=ASSUMPTIONS + ("f(D) = p log D + q log(1 - D)",),
    mutants=(
        Mutant("swapped", {"D": q / (p + q)},
               r"The densities exchanged: $q/(p+q)$ is the probability that $x$ is *generated*."),
        Mutant("ratio", {"D": p / q}, r"The density ratio $p/q$, which is not even in $(0, 1)$."),
        Mutant("curvature_sign", {"curvature": -p / D**2 + q / (1 - D) ** 2},
               r"A sign slip in the second derivative of $\log(1 - D)$."),
    ),
    references=("goodfellow2014generative",),
    code=("gencode.gan.optimal_discriminator",),
    display={"D": _frac(p, p + q)},
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 2. The gap to the optimum is a Bernoulli KL: D* is the global maximiser.


def _bernoulli_kl(s: sp.Expr, t: sp.Expr) -> sp.Expr:
    """KL(Bern(s) || Bern(t))."""
    return s * sp.log(s / t) + (1 - s) * sp.log((1 - s) / (1 - t))


discriminator_gap = register(Identity(
    id="gan.discriminator_gap",
    title="The discriminator's shortfall is a Bernoulli KL divergence",
    chapter="gan",
    claim={"gap": (p + q) * _bernoulli_kl(D_star, D)},
    check=EqualityAndBound(
        "expand_log(force, factor); cancel; the gap equals p g(D/D*) + q g((1-D)/(1-D*)) with "
        "g(u) = u - 1 - log u >= 0",
        _logs_equal({"gap": f_pointwise.xreplace({D: D_star}) - f_pointwise}, "").residuals,
        definitions=NAMES | {D_bar: 1 - D}, bound=lambda c: c["gap"],
        certificate=lambda c: p * LogGap(D * (p + q) / p) + q * LogGap(D_bar * (p + q) / q)),
    template=(r"f(D^*) - f(D) = $gap \;\ge\; 0"),
    assumptions=ASSUMPTIONS + ("D* = p / (p + q)",
                               "log u <= u - 1 for u > 0, with equality only at u = 1 (Gibbs)"),
    mutants=(
        Mutant("no_mass_factor", {"gap": _bernoulli_kl(D_star, D)},
               "The factor p + q dropped."),
        Mutant("reversed_kl", {"gap": (p + q) * _bernoulli_kl(D, D_star)},
               r"The Bernoulli KL taken the other way round, $\mathrm{KL}(\mathrm{Bern}(D) \,\|\, \mathrm{Bern}(D^*))$."),
    ),
    references=("goodfellow2014generative",),
    scope="general",
    display={"gap": _mul(p + q, sp.Add(
        _mul(DS, sp.log(_frac(DS, D))),
        _mul(1 - DS, sp.log(_frac(1 - DS, 1 - D))), evaluate=False))},
))

# ---------------------------------------------------------------------------------------------
# 3. The value at the optimum: -log 4 + 2 JS, pointwise.

js_integrand = (p * sp.log(p / m) + q * sp.log(q / m)) / 2
"""The Jensen-Shannon integrand ``1/2 p log(p/m) + 1/2 q log(q/m)`` (natural logarithms)."""




value_at_optimum = register(Identity(
    id="gan.value_at_optimum",
    title="At the optimal discriminator the GAN value is -log 4 + 2 JS (pointwise)",
    chapter="gan",
    claim={"value": -(p + q) / 2 * sp.log(4) + 2 * js_integrand},
    check=_logs_equal({"value": f_pointwise.xreplace({D: D_star})},
                      "substitute D*; expand_log(force, factor); cancel"),
    template=r"p \log D^* + q \log(1 - D^*) = $value",
    assumptions=ASSUMPTIONS + ("m = (p + q) / 2; natural logarithms (nats)",),
    mutants=(
        Mutant("kl_p_m_twice", {"value": -(p + q) / 2 * sp.log(4) + 2 * (p * sp.log(p / m))},
               r"The JS integrand written with $\mathrm{KL}(p \,\|\, m)$ twice, "
               r"$\tfrac12 p\log\frac{p}{m} + \tfrac12 p \log\frac{p}{m}$, instead of once for $p$ and once for $q$.",
               source="Lil'Log, \"From GAN to WGAN\" (2017; an earlier revision of the JS expansion)"),
        Mutant("log2_not_log4", {"value": -(p + q) / 2 * sp.log(2) + 2 * js_integrand},
               r"The constant $-\log 2$ instead of $-\log 4 = -2 \log 2$."),
        Mutant("bits", {"value": -(p + q) / 2 * sp.log(4) + 2 * js_integrand / sp.log(2)},
               r"JS measured in bits (base-2 logarithms) inside a formula whose other terms are in nats."),
    ),
    references=("goodfellow2014generative", "weng2017gan"),
    code=("gencode.gan.discriminator_value",),
    scope="general",
    display={"value": sp.Add(-_mul(_frac(p + q, 2), sp.log(4, evaluate=False)),
                             _mul(2, sp.Add(_mul(sp.Rational(1, 2), p, sp.log(_frac(p, M))),
                                            _mul(sp.Rational(1, 2), q, sp.log(_frac(q, M))),
                                            evaluate=False)), evaluate=False)},
))


# ---------------------------------------------------------------------------------------------
# 4. The global optimum of the game.


def _global_residuals(claim: Claim) -> list[sp.Expr]:
    same = {q: p}
    # integrate the pointwise value over x: int p dx = 1 turns "c * p" into "c"
    value_density = split_logs(f_pointwise.xreplace({D: D_star}).xreplace(same))
    return [claim["D"] - D_star.xreplace(same), split_logs(claim["value"] * p - value_density)]


global_optimum = register(Identity(
    id="gan.global_optimum",
    title="At p_g = p_data the optimal discriminator is 1/2 and the value is -log 4",
    chapter="gan",
    claim={"D": sp.Rational(1, 2), "value": -sp.log(4)},
    check=Check("substitute q = p; expand_log; the integrand is (value) * p, and int p = 1",
                _global_residuals),
    template=r"q = p \;\Longrightarrow\; D^* = $D \quad\text{and}\quad V(D^*, G) = $value",
    assumptions=ASSUMPTIONS + ("int p(x) dx = 1",),
    mutants=(
        Mutant("value_zero", {"value": sp.Integer(0)},
               "The value at the optimum taken to be 0, as if JS were the whole objective."),
        Mutant("value_minus_log2", {"value": -sp.log(2)}, r"$-\log 2$ instead of $-\log 4$."),
        Mutant("D_one", {"D": sp.Integer(1)}, "A discriminator that is sure every sample is real."),
    ),
    references=("goodfellow2014generative",),
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 5. Saturating and non-saturating generator losses.

_sigmoid = 1 / (1 + sp.exp(-a))


def _gradient_residuals(claim: Claim) -> list[sp.Expr]:
    sat = sp.diff(sp.log(1 - _sigmoid), a)
    nonsat = sp.diff(-sp.log(_sigmoid), a)
    back = {sp.exp(-a): u}
    d_of_u = 1 / (1 + u)
    return [(sat - claim["saturating"].xreplace({D: _sigmoid})).xreplace(back).xreplace({D: d_of_u}),
            (nonsat - claim["nonsaturating"].xreplace({D: _sigmoid})).xreplace(back)]


generator_gradients = register(Identity(
    id="gan.generator_gradients",
    title="Gradients of the saturating and non-saturating generator losses in the logit",
    chapter="gan",
    claim={"saturating": -D, "nonsaturating": -(1 - D)},
    check=Check("differentiate in the logit a with D = 1/(1 + e^{-a}); write u = e^{-a}; cancel",
                _gradient_residuals),
    template=(r"\frac{\partial}{\partial a} \log\bigl(1 - D\bigr) = $saturating, \qquad "
              r"\frac{\partial}{\partial a} \bigl(-\log D\bigr) = $nonsaturating, \qquad D = \sigma(a)"),
    assumptions=("D = sigmoid(a) = 1 / (1 + exp(-a)), a real",),
    mutants=(
        Mutant("swapped", {"saturating": -(1 - D), "nonsaturating": -D},
               "The two gradients exchanged (the saturating loss would then be the healthy one)."),
        Mutant("sigmoid_derivative", {"saturating": -D * (1 - D)},
               r"The derivative of $\sigma$ itself, $D(1 - D)$, in place of the derivative of the log."),
    ),
    references=("goodfellow2014generative",),
    code=("gencode.gan.generator_loss",),
    scope="general",
    display={"nonsaturating": sp.Mul(-1, 1 - D, evaluate=False)},
))

# ---------------------------------------------------------------------------------------------
# 6. A noisy model keeps a high likelihood.

noisy_mixture = register(Identity(
    id="gan.noisy_mixture",
    title="A model that is mostly noise loses at most log(1/eps) nats of likelihood",
    chapter="gan",
    claim={"value": sp.log(p) + sp.log(eps) + sp.log(1 + (1 - eps) * r / (eps * p))},
    check=EqualityAndBound(
        "expand_log(force) of the factored argument; cancel; the last term is the log of a number above 1",
        _logs_equal({"value": sp.log(sp.factor(eps * p + (1 - eps) * r))}, "").residuals,
        definitions=NAMES | {eps_bar: 1 - eps}, bound=lambda c: c["value"] - sp.log(p) - sp.log(eps),
        certificate=lambda c: sp.log(1 + eps_bar * r / (eps * p))),
    template=r"\log\bigl(\epsilon\, p + (1 - \epsilon)\, r\bigr) = $value \;\ge\; \log p + \log \epsilon",
    assumptions=("p > 0 data density, r > 0 noise density at a point", "0 < epsilon < 1"),
    mutants=(
        Mutant("no_eps", {"value": sp.log(p) + sp.log(1 + (1 - eps) * r / (eps * p))},
               r"The $\log\epsilon$ penalty forgotten."),
        Mutant("eps_inside", {"value": sp.log(p) + sp.log(eps) + sp.log(1 + (1 - eps) * r / p)},
               r"The ratio in the last term not divided by $\epsilon$."),
    ),
    references=("theis2016note",),
    scope="general",
    display={"value": sp.Add(sp.log(p), sp.log(eps), sp.log(1 + _frac(_mul(1 - eps, r), _mul(eps, p))),
                             evaluate=False)},
))

# ---------------------------------------------------------------------------------------------
# 7. The GAN as an f-GAN (Nowozin, Cseke and Tomioka 2016).
#
# The variational form of divergences.f.variational, sup_T E_p T - E_q f*(T) <= D_f(p || q), with
# the generator f(u) = u log u - (u + 1) log((u + 1)/2) (twice JS's, so D_f = 2 JS), its conjugate
# f*(s) = -log(2 - e^s) on s < log 2, and the critic written through the discriminator,
# T = log(2 D), D = sigmoid(v) in (0, 1): T < log 2 always, so any logit v is admissible.

uu = sym("u", positive=True)  # the density ratio p/q
vv = sym("v", positive=True)  # a second ratio, s = f'(v)
s_ = sym("s", real=True)
f_gan = uu * sp.log(uu) - (uu + 1) * sp.log((uu + 1) / 2)
"""The generator of the original GAN's f-divergence (2 JS)."""


def _fprime_split(f: sp.Expr, var: sp.Symbol) -> sp.Expr:
    e = split_logs(sp.diff(f, var))
    logs = sum((t_ for t_ in sp.Add.make_args(e) if t_.has(sp.log)), sp.Integer(0))
    return logs + sp.cancel(e - logs)


def _fgan_residuals(c: Claim) -> list[sp.Expr]:
    fp = _fprime_split(f_gan, uu)
    conj_at = c["conjugate"].xreplace({s_: fp.xreplace({uu: vv})})
    conj = split_logs(sp.expand_power_exp(sp.expand(conj_at - (vv * fp - f_gan).xreplace({uu: vv}))))
    critic = c["critic"]
    objective = p * critic - q * c["conjugate"].xreplace({s_: critic})
    at_optimum = critic.xreplace({D: D_star}) - fp.xreplace({uu: p / q})  # T(D*) = f'(p/q)
    return [conj, split_logs(sp.expand_power_exp(objective - c["objective"]).xreplace({D_bar: 1 - D})),
            split_logs(at_optimum)]


fgan = register(Identity(
    id="gan.fgan",
    title="The GAN value function is the variational form of 2 JS (f-GAN)",
    chapter="gan",
    claim={"conjugate": -sp.log(2 - sp.exp(s_)), "critic": sp.log(2 * D),
           "objective": p * sp.log(D) + q * sp.log(1 - D) + (p + q) * sp.log(2)},
    check=Check(
        "f*(f'(v)) = v f'(v) - f(v) for every v > 0 (f' maps (0, oo) onto (-oo, log 2)); at each point "
        "p T - q f*(T) with T = log(2D) equals the claimed objective; T at D* = p/(p + q) equals f'(p/q); "
        "logarithms split; cancel",
        _fgan_residuals),
    template=(r"f(u) = u \log u - (u + 1) \log\frac{u + 1}{2}:\quad f^*(s) = $conjugate\ (s < \log 2), \quad "
              r"T = $critic, \quad p\,T - q\,f^*(T) = $objective"),
    assumptions=ASSUMPTIONS + ("D = sigmoid(v) for a logit v, so T = log(2D) < log 2 lies in dom f*",
                               "int p = int q = 1, so the last term integrates to log 4"),
    mutants=(
        Mutant("nowozin_conjugate_of_the_other_generator", {"conjugate": -sp.log(1 - sp.exp(s_))},
               r"$-\log(1 - e^s)$ is the conjugate of $u\log u - (u + 1)\log(u + 1)$ (the table's generator, "
               r"whose divergence is $2\,\JS - \log 4$), not of the generator with $f(1) = 0$ used here."),
        Mutant("critic_without_two", {"critic": sp.log(D)},
               r"$T = \log D$: the objective then picks up $-q\log(1 + \ldots)$ terms and is not the GAN value."),
        Mutant("objective_without_constant", {"objective": p * sp.log(D) + q * sp.log(1 - D)},
               r"The constant $\log 4$ dropped: the variational bound is $V(D, G) + \log 4$, not $V(D, G)$."),
    ),
    references=("nowozin2016fgan", "nguyen2010estimating", "goodfellow2014generative"),
    code=("gencode.gan.fgan_objective",),
    scope="general",
))

# ---------------------------------------------------------------------------------------------
# 8. The non-saturating loss at the optimal discriminator (Arjovsky and Bottou 2017, Theorem 2.5).

from .divergences import AT_POINT, integral, m_, p as p_fn, pointwise, q as q_fn, x as x_  # noqa: E402

_pd, _pg = p_fn(x_), q_fn(x_)  # data and generator densities, any densities
_Dstar = _pd / (_pd + _pg)


def _nonsat_residuals(c: Claim) -> list[sp.Expr]:
    loss = integral(-_pg * sp.log(_Dstar))
    rhs = c["kl"] - 2 * c["js"] + c["rest"]
    # constants are integrals of (p + q)/2 (int p = int q = 1)
    body = pointwise(loss - rhs, AT_POINT)
    consts = sum((t_ for t_ in sp.Add.make_args(sp.expand(body)) if not t_.free_symbols), sp.Integer(0))
    body = body - consts + consts * (AT_POINT[_pd] + AT_POINT[_pg]) / 2
    return [split_logs(body)]


nonsaturating_kl_js = register(Identity(
    id="gan.nonsaturating_kl_js",
    title="The non-saturating loss at the optimal discriminator is KL(P_g || P_data) - 2 JS up to a constant",
    chapter="gan",
    claim={"kl": integral(_pg * sp.log(_pg / _pd)),
           "js": integral((_pd * sp.log(_pd / m_(x_)) + _pg * sp.log(_pg / m_(x_))) / 2),
           "rest": sp.log(4) + integral(_pd * sp.log(_Dstar))},
    check=Check(
        "integrands compared at each point (p(x), q(x) as positive symbols, m = (p + q)/2), constants written as "
        "integrals of (p + q)/2; logarithms split; cancel. Holds for any densities",
        _nonsat_residuals),
    template=(r"\E_{x \sim q}\big[-\log D^*(x)\big] = $kl - 2\,\Big[$js\Big] + $rest, \qquad "
              r"D^* = \frac{p}{p + q}"),
    assumptions=("p (data) and q (generator) are probability densities, positive where compared; m = (p + q)/2",
                 "D* is the optimal discriminator for the current generator; the last term does not depend on "
                 "the generator's parameters when D* is held fixed"),
    mutants=(
        Mutant("js_once", {"js": integral((_pd * sp.log(_pd / m_(x_)) + _pg * sp.log(_pg / m_(x_))) / 4)},
               r"$-\JS$ instead of $-2\,\JS$."),
        Mutant("forward_kl", {"kl": integral(_pd * sp.log(_pd / _pg))},
               r"$\KL(P_{\text{data}} \Vert P_g)$, the mode-covering direction, for $\KL(P_g \Vert P_{\text{data}})$."),
        Mutant("constant_log2", {"rest": sp.log(2) + integral(_pd * sp.log(_Dstar))}, r"$\log 2$ for $\log 4$."),
    ),
    references=("arjovsky2017towards", "goodfellow2014generative"),
    code=("gencode.gan.nonsaturating_loss_at_optimum",),
    scope="general",
))
