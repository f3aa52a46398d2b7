"""Sphinx extension: the verification page and the "verified" mark of glued identities.

* The role ``{verified}`id``` renders a mark that links to the identity's entry on the
  verification page (a cross-reference, so ``sphinx-build -n`` fails on an unknown id).
* At ``config-inited`` the extension checks every registered identity and writes
  ``book/verification.md``: totals, then one entry per identity with its chapter (linked), its
  statement, method, time and mutants.  The report is cached in ``_build/.verification`` under a
  hash of the ``derivations`` sources, so a rebuild with unchanged derivations checks nothing,
  and the page is rewritten only when its text changes (Sphinx then re-reads only that page).
  A failed identity or a surviving mutant is reported as a Sphinx warning: with ``-W`` the build
  fails.

Enable it with ``sphinx: extra_extensions: [derivations.sphinx]`` in ``_config.yml``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

from .core import REGISTRY, anchor

logger = logging.getLogger(__name__)

PAGE = "book/verification"
"""Docname of the generated verification page (relative to the book root)."""


def verified_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{verified}`ddpm.posterior```: a mark linking to the identity's verification entry."""
    identity_id = text.strip()
    if identity_id not in REGISTRY.ids():
        msg = inliner.reporter.error(f"unknown identity {identity_id!r} in {{verified}}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    ref = pending_xref("", refdomain="std", reftype="ref", reftarget=anchor(identity_id),
                       refexplicit=True, refwarn=True)
    ref += nodes.inline("", f"\u2714 verified: {identity_id}", classes=["verified-mark"])
    container = nodes.inline("", "", classes=["verified"])
    container += ref
    return [container], []


def _source_hash() -> str:
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load_report(cache_dir: Path) -> list[dict]:
    """The report of every identity, from the cache when the derivations are unchanged."""
    cache = cache_dir / f"report-{_source_hash()}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    from . import verify_all

    rows = [r.as_dict() for r in verify_all()]
    cache_dir.mkdir(parents=True, exist_ok=True)
    for old in cache_dir.glob("report-*.json"):
        old.unlink()
    cache.write_text(json.dumps(rows, indent=1))
    return rows


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_page(rows: list[dict]) -> str:
    """The verification page as MyST markdown."""
    n_mut = sum(len(r["mutants"]) for r in rows)
    n_ref = sum(m["refuted"] for r in rows for m in r["mutants"])
    n_ok = sum(r["status"] == "verified" for r in rows)
    seconds = sum(r["seconds"] + sum(m["seconds"] for m in r["mutants"]) for r in rows)
    lines = [
        "(verification)=",
        "# Verification status",
        "",
        "This page is generated when the book is built: every identity registered in "
        "`derivations/` is checked with SymPy, and so is every *mutant*, a wrong variant that "
        "the same check must refute.  A check proves an identity when its normalised residual "
        "is exactly zero, and refutes a mutant by exhibiting a rational point of the declared "
        "domain where the residual is non-zero.  Run `python -m derivations` to reproduce it.",
        "",
        f"**{n_ok} of {len(rows)} identities verified; {n_ref} of {n_mut} mutants refuted; "
        f"{seconds:.2f} s of checking in all.**  The numeric validations of the code against "
        "these identities run in the test suite (`make test`).",
        "",
        "| Identity | Chapter | Status | Mutants refuted | Seconds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        refuted = sum(m["refuted"] for m in r["mutants"])
        mark = "\u2714 verified" if r["status"] == "verified" else "\u2718 FAILED"
        lines.append(
            f"| {{ref}}`{r['id']} <{anchor(r['id'])}>` | {{doc}}`/book/{r['chapter']}` | {mark} | "
            f"{refuted}/{len(r['mutants'])} | {r['seconds']:.3f} |")
    for r in rows:
        lines += [
            "",
            f"({anchor(r['id'])})=",
            f"## `{r['id']}`",
            "",
            f"{r['title']}.  Stated in {{doc}}`/book/{r['chapter']}`.",
            "",
            "```{math}",
            r["latex"],
            "```",
            "",
            f"- **Status:** {r['status']} ({r['check']}) in {r['seconds']:.3f} s",
            f"- **Method:** {r['method']}",
            "- **Assumptions:** " + "; ".join(f"`{a}`" for a in r["assumptions"]),
            "",
            "| Mutant | What is wrong | Seen in | Refuted | Witness |",
            "| --- | --- | --- | --- | --- |",
        ]
        for m in r["mutants"]:
            witness = m["witness"] or {}
            shown = ", ".join(f"{k} = {v}" for k, v in witness.items() if k != "residual")
            if "residual" in witness:
                shown += f"; residual {witness['residual']}"
            lines.append(
                f"| `{m['name']}` | {_cell(m['description'])} | {_cell(m['source'] or '(constructed)')} "
                f"| {'yes' if m['refuted'] else '**no**'} | {_cell(shown)} |")
    return "\n".join(lines) + "\n"


def write_page(app: Sphinx, config: Config) -> None:
    rows = load_report(Path(app.outdir).parent / ".verification")
    for r in rows:
        if r["status"] != "verified":
            logger.warning(f"identity {r['id']} failed verification: {r['check']}")
    page = Path(app.srcdir) / f"{PAGE}.md"
    text = render_page(rows)
    if not page.exists() or page.read_text() != text:
        page.write_text(text)


def unique_ids(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Make HTML ids unique within a page.

    sphinx-proof and sphinx-exercise give every proof, and the content of every theorem,
    exercise and solution, the same id (``proof``, ``proof-content``, ...); repeated ids are
    invalid HTML and break in-page links.  Later occurrences get a numbered suffix.
    """
    seen: set[str] = set()
    for node in doctree.findall(nodes.Element):
        ids = node.get("ids", [])
        for k, ident in enumerate(ids):
            if ident in seen:
                n = 2
                while f"{ident}-{n}" in seen:
                    n += 1
                ids[k] = f"{ident}-{n}"
            seen.add(ids[k])


def setup(app: Sphinx) -> dict:
    app.add_role("verified", verified_role)
    app.connect("doctree-resolved", unique_ids)
    app.connect("config-inited", write_page, priority=100)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
