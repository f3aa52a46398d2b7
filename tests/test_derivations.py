"""Every registered identity is proved and every mutant is refuted by the same check.

Also tests the checking machinery itself: an inconclusive check is a failure, a display form that
differs from the claim is a failure, and ``python -m derivations`` exits 1 when a mutant survives.
"""

from __future__ import annotations

import json

import pytest
import sympy as sp

import derivations
from derivations import REGISTRY, Check, Identity, Mutant, Status, equal, sym
from derivations.__main__ import main
from derivations.core import GaussianFactor, gaussian_expectation, gaussian_moment, gaussian_product_residuals

IDENTITIES = list(REGISTRY)
MUTANTS = [(i, m) for i in IDENTITIES for m in i.mutants]


@pytest.mark.parametrize("identity", IDENTITIES, ids=lambda i: i.id)
def test_identity_is_proved(identity: Identity) -> None:
    cert = identity.check_claim()
    assert cert.status is Status.PROVED, f"{identity.id}: {cert.status.value}, residual {cert.residual}"
    assert cert.passed


@pytest.mark.parametrize("identity,mutant", MUTANTS, ids=lambda x: getattr(x, "id", None) or x.name)
def test_mutant_is_refuted(identity: Identity, mutant: Mutant) -> None:
    cert = identity.check_mutant(mutant)
    assert cert.status is Status.REFUTED, f"{identity.id}/{mutant.name} survived: {cert.status.value}"
    # the witness is a point where the residual is visibly non-zero
    assert cert.witness is not None and float(cert.witness["residual"]) != 0.0


@pytest.mark.parametrize("identity", IDENTITIES, ids=lambda i: i.id)
def test_identity_metadata(identity: Identity) -> None:
    assert identity.latex and "$" not in identity.latex
    # a control character (a "\b" of "\bigl" in a non-raw string becomes a backspace) breaks MathJax
    assert not [c for c in identity.latex if ord(c) < 32 and c not in "\n\t"], identity.latex
    assert identity.assumptions
    assert identity.mutants


def test_the_four_ddpm_identities_are_registered() -> None:
    assert {"ddpm.forward.marginal", "ddpm.posterior", "ddpm.posterior.mean_eps",
            "ddpm.forward.score"} <= set(REGISTRY.ids())


# --- the machinery ---------------------------------------------------------------------------

x = sym("x_test", real=True)


def _identity(check: Check, claim: dict, mutant_claim: dict, display=None) -> Identity:
    return Identity(id="test.tmp", title="t", chapter="none", claim=claim, check=check,
                    template="$f", assumptions=("none",),
                    mutants=(Mutant("m", mutant_claim, "wrong"),), display=display)


def test_inconclusive_is_a_failure() -> None:
    # sin^2 + cos^2 - 1 is zero, but cancel() cannot see it: the check must not call it proved.
    ident = _identity(equal({"f": sp.sin(x) ** 2 + sp.cos(x) ** 2}, "cancel only"),
                      {"f": sp.Integer(1)}, {"f": sp.Integer(2)})
    cert = ident.check_claim()
    assert cert.status is Status.INCONCLUSIVE and not cert.passed
    assert not ident.verify().verified


def test_display_form_must_equal_claim() -> None:
    ident = _identity(equal({"f": 2 * x}, "cancel"), {"f": 2 * x}, {"f": 3 * x},
                      display={"f": sp.Mul(3, x, evaluate=False)})
    cert = ident.check_claim()
    assert not cert.passed and cert.status is Status.REFUTED


def test_refutation_respects_domains() -> None:
    # 1/(1 - u) - 1/(1 - u) evaluated inside (0, 1) never divides by zero; a mutant is refuted there
    u = sym("u_test", (0, 1), positive=True)
    chk = equal({"f": 1 / (1 - u)}, "cancel")
    verdict = chk({"f": 1 / (1 + u)})
    assert verdict.status is Status.REFUTED
    assert 0 < sp.Rational(verdict.witness["u_test"]) < 1


def test_gaussian_moments_match_closed_forms() -> None:
    m, v = sp.symbols("m v", positive=True)
    assert sp.expand(gaussian_moment(3, m, v) - (m**3 + 3 * m * v)) == 0
    assert sp.expand(gaussian_expectation((x - m) ** 2, x, m, v) - v) == 0
    with pytest.raises(ValueError, match="k must be"):
        gaussian_moment(-1, m, v)


def test_gaussian_product_residuals_detect_wrong_variance() -> None:
    m, v = sp.symbols("m v", positive=True)
    same = gaussian_product_residuals([GaussianFactor(x, m, v)], [GaussianFactor(x, m, v)])
    assert all(sp.cancel(r) == 0 for r in same)
    wrong = gaussian_product_residuals([GaussianFactor(x, m, v)], [GaussianFactor(x, m, 2 * v)])
    assert any(sp.cancel(r) != 0 for r in wrong)
    with pytest.raises(ValueError, match="total power"):
        gaussian_product_residuals([GaussianFactor(x, m, v)], [])


def test_identity_needs_a_mutant() -> None:
    with pytest.raises(ValueError, match="at least one mutant"):
        Identity(id="t", title="t", chapter="c", claim={"f": x}, check=equal({"f": x}, "c"),
                 template="$f", assumptions=("a",), mutants=())


# --- the command line ------------------------------------------------------------------------

def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in rows} == set(REGISTRY.ids())
    for r in rows:
        assert {"id", "title", "chapter", "status", "method", "seconds", "mutants"} <= set(r)
        assert r["status"] == "verified"
        assert all(m["refuted"] is True for m in r["mutants"])


def test_cli_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "ddpm.posterior" in out and "identities verified" in out


def test_cli_exits_1_when_a_mutant_survives(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    registry = derivations.Registry()
    registry.add(_identity(equal({"f": 2 * x}, "cancel"), {"f": 2 * x}, {"f": x + x}))
    monkeypatch.setattr(derivations, "REGISTRY", registry)
    assert main([]) == 1
    assert "SURVIVED" in capsys.readouterr().out
