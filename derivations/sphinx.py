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

import ast
import hashlib
import json
import re
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

ERRATA = "book/errata"
"""Docname of the generated errata appendix."""

# The marker, then (looked ahead, not consumed, so stacked markers all match) the decorated test.
_VALIDATES = re.compile(
    r"@pytest\.mark\.validates\((?P<ids>[^)]*)\)(?=\s*\n(?:\s*@[^\n]*\n)*\s*def (?P<test>test_\w+))")


def scan_validations(tests_dir: Path) -> dict[str, list[str]]:
    """Map identity id -> numeric tests marked ``@pytest.mark.validates("id", ...)``.

    The tests are found by reading the test files (no test is run), so the verification page can
    say where each identity's code is validated.
    """
    found: dict[str, list[str]] = {}
    for path in sorted(tests_dir.glob("test_*.py")):
        for m in _VALIDATES.finditer(path.read_text()):
            for identity_id in re.findall(r"[\"']([^\"']+)[\"']", m.group("ids")):
                found.setdefault(identity_id, []).append(f"tests/{path.name}::{m.group('test')}")
    return found


def scan_peers(tests_dir: Path) -> list[dict]:
    """Every test marked ``@pytest.mark.peer("library API", "agreement", "identity id", ...)``.

    The marker says that the test compares the project's code with a peer library on the same
    inputs; the agreement is the tolerance the test asserts (``"to 1e-12"``), and the ids are the
    registered identities whose code the comparison concerns (none for a numerical scheme with no
    identity of its own).  Read from the test files with :mod:`ast`; no test is run.
    """
    found: list[dict] = []
    for path in sorted(tests_dir.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute)
                        and deco.func.attr == "peer" and ast.unparse(deco.func.value) == "pytest.mark"):
                    args = [ast.literal_eval(a) for a in deco.args]
                    if len(args) < 2 or not all(isinstance(a, str) for a in args):
                        raise ValueError(f"tests/{path.name}::{node.name}: peer marker needs "
                                         "(library, agreement, *identity ids) as strings")
                    found.append({"peer": args[0], "agreement": args[1], "ids": args[2:],
                                  "test": f"tests/{path.name}::{node.name}"})
    return found


def verified_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{verified}`ddpm.posterior```: a mark linking to the identity's verification entry."""
    identity_id = text.strip()
    if identity_id not in REGISTRY.ids():
        msg = inliner.reporter.error(f"unknown identity {identity_id!r} in {{verified}}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    ref = pending_xref("", refdomain="std", reftype="ref", reftarget=anchor(identity_id),
                       refexplicit=True, refwarn=True)
    identity = REGISTRY[identity_id]
    scope = identity.scope.value if identity.scope else "undeclared"
    symbol = "\u2248" if scope == "numeric" else "\u2714"
    ref += nodes.inline("", f"{symbol} {identity.mark}: {identity_id}",
                        classes=["verified-mark", f"scope-{scope}"])
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


def _scope_words(row: dict) -> str:
    scope = row.get("scope") or "undeclared"
    return scope if scope == "general" else f"{scope}: {_cell(row.get('instance', ''))}"


def _peer_words(p: dict) -> str:
    return f"{p['peer']} {p['agreement']} (`{p['test']}`)"


def render_page(rows: list[dict], validations: dict[str, list[str]] | None = None,
                peers: list[dict] | None = None) -> str:
    """The verification page as MyST markdown."""
    validations = validations or {}
    peers = peers or []
    n_num = len({t for tests in validations.values() for t in tests})
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
        f"{seconds:.2f} s of checking in all; {n_num} numeric tests validate the reference code "
        "against these identities** (they run in the test suite, `make test`).  Mutants seen in "
        "the literature or in the source notes are collected in the {doc}`errata appendix "
        "</book/errata>`.",
        "",
        "**Scope.** Each identity says what its proof covers: *general* (proved exactly as the "
        "page states it: undefined SymPy functions for \"any density\", symbolic dimensions or "
        "an induction for \"every D\"), *instance* (proved for the named special case only), or "
        "*numeric* (computations that agree; not a proof).  "
        + ", ".join(f"**{sum(r.get('scope') == s for r in rows)} {s}**"
                    for s in ("general", "instance", "numeric")) + ".",
        "",
        f"**Peer libraries.** {len(peers)} tests compare the reference code with the libraries "
        "people use (diffusers, Meta's flow_matching, torchsde, torchdiffeq, POT) on the same "
        "inputs; each agreement is listed below and under the identity it concerns.",
        "",
        "| Peer | Agreement | Identities | Test |",
        "| --- | --- | --- | --- |",
        *(f"| {_cell(p['peer'])} | {_cell(p['agreement'])} | "
          + (", ".join(f"{{ref}}`{i} <{anchor(i)}>`" for i in p["ids"]) or "(a numerical scheme)")
          + f" | `{p['test']}` |" for p in peers),
        "",
        "| Identity | Chapter | Status | Scope | Mutants refuted | Numeric tests | Seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        refuted = sum(m["refuted"] for m in r["mutants"])
        mark = "\u2714 verified" if r["status"] == "verified" else "\u2718 FAILED"
        lines.append(
            f"| {{ref}}`{r['id']} <{anchor(r['id'])}>` | {{doc}}`/book/{r['chapter']}` | {mark} | "
            f"{_scope_words(r)} | "
            f"{refuted}/{len(r['mutants'])} | {len(validations.get(r['id'], []))} | {r['seconds']:.3f} |")
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
            f"- **Scope:** {_scope_words(r)}",
            f"- **Method:** {r['method']}",
            "- **Assumptions:** " + "; ".join(f"`{a}`" for a in r["assumptions"]),
            "- **Code validated by:** " + (", ".join(f"`{t}`" for t in validations.get(r["id"], []))
                                           or "no numeric test (a statement about the math only)"),
            *(["- **Agrees with peers:** " + "; ".join(_peer_words(p) for p in peers if r["id"] in p["ids"])]
              if any(r["id"] in p["ids"] for p in peers) else []),
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


def render_errata(rows: list[dict]) -> str:
    """The errata appendix: every mutant with a source, beside the correct statement."""
    lines = [
        "(errata)=",
        "# Errata: mistakes the checks refute",
        "",
        "Derivations in papers, blog posts and lecture notes contain mistakes, and some of them are "
        "copied from one text to the next.  Each mistake below was seen in the source named, is "
        "registered in `derivations/` as a *mutant* of the correct identity, and is refuted by the "
        "same check that proves the identity: the residual of the wrong statement is non-zero at "
        "the rational point shown.  Most sources have since been corrected; they are named so a "
        "reader who meets the wrong form can recognise it.  This page is generated from the "
        "registry when the book is built.",
        "",
    ]
    count = sum(1 for r in rows for m in r["mutants"] if m["source"])
    lines += [f"**{count} mistakes are listed.**", ""]
    for r in rows:
        for m in r["mutants"]:
            if not m["source"]:
                continue
            witness = dict(m["witness"] or {})
            residual = witness.pop("residual", "?")
            point = ", ".join(f"`{k} = {v}`" for k, v in witness.items())
            lines += [
                f"(errata-{anchor(r['id'])[len('verify-'):]}-{m['name'].replace('_', '-')})=",
                f"## {r['title']}: `{m['name']}`",
                "",
                f"**Seen in:** {m['source']}.  **What is wrong:** {m['description']}",
                "",
                "The wrong statement:",
                "",
                "```{math}",
                m["latex"],
                "```",
                "",
                f"The correct statement ({{ref}}`{r['id']} <{anchor(r['id'])}>`, "
                f"stated in {{doc}}`/book/{r['chapter']}`):",
                "",
                "```{math}",
                r["latex"],
                "```",
                "",
                f"**Refuted** ({'yes' if m['refuted'] else 'NO'}) by the check *{r['method']}*: "
                f"at {point} the residual is {residual}.",
                "",
            ]
    return "\n".join(lines) + "\n"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def theme_defaults(app: Sphinx, config: Config) -> None:
    """An explicit default colour mode for the theme's templates (``html_context``), without
    which the theme logs a console error on a reader's first visit."""
    config.html_context = {"default_mode": "auto", **(config.html_context or {})}


def write_page(app: Sphinx, config: Config) -> None:
    rows = load_report(Path(app.outdir).parent / ".verification")
    for r in rows:
        if r["status"] != "verified":
            logger.warning(f"identity {r['id']} failed verification: {r['check']}")
    validations = scan_validations(Path(app.srcdir) / "tests")
    for identity_id in sorted(set(validations) - {r["id"] for r in rows}):
        logger.warning(f"tests mark validates({identity_id!r}), which is not a registered identity")
    peers = scan_peers(Path(app.srcdir) / "tests")
    for identity_id in sorted({i for p in peers for i in p["ids"]} - {r["id"] for r in rows}):
        logger.warning(f"tests mark peer(..., {identity_id!r}), which is not a registered identity")
    _write_if_changed(Path(app.srcdir) / f"{PAGE}.md", render_page(rows, validations, peers))
    _write_if_changed(Path(app.srcdir) / f"{ERRATA}.md", render_errata(rows))


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


def dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Drop repeated ``<script>`` entries (sphinx-thebe adds its inline configuration twice,
    which redeclares a ``const`` and is a console error in every page)."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = (getattr(script, "filename", str(script)) or "",  # None and "" both mean inline
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def colab_links(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Point the theme's "launch in Colab" button at the page's generated ``.ipynb``.

    The theme links the page's source, a MyST ``.md`` that Colab cannot open. The publishing
    workflow writes each chapter as a notebook with an install cell (``scripts/colab_notebooks.py``)
    and pushes them to the branch ``colab_notebooks_branch``; the button opens that notebook.
    """
    repo = app.config.html_theme_options.get("repository_url", "").rstrip("/")
    m = re.match(r"https://github\.com/(?P<org>[^/]+)/(?P<repo>[^/]+)$", repo)
    if not m:
        return
    url = (f"https://colab.research.google.com/github/{m['org']}/{m['repo']}/blob/"
           f"{app.config.colab_notebooks_branch}/{pagename}.ipynb")
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []) if isinstance(group, dict) else []:
            if isinstance(button, dict) and button.get("text") == "Colab":
                button["url"] = url


def offline_linkcheck(app: Sphinx, config: Config) -> None:
    """Without ``LINKCHECK_EXTERNAL=1`` the linkcheck builder skips external links (the build
    machine has no network); internal references and local files are still checked."""
    import os

    if os.environ.get("LINKCHECK_EXTERNAL") != "1":
        config.linkcheck_ignore = [*config.linkcheck_ignore, r"^https?://", r"^mailto:"]


def setup(app: Sphinx) -> dict:
    app.add_config_value("colab_notebooks_branch", "notebooks", "html")
    app.connect("html-page-context", colab_links, priority=502)  # after the theme adds the buttons (501)
    app.connect("html-page-context", dedupe_scripts, priority=100)  # emit_firstresult may stop early
    app.add_role("verified", verified_role)
    app.connect("doctree-resolved", unique_ids)
    app.connect("config-inited", write_page, priority=100)
    app.connect("config-inited", theme_defaults)
    app.connect("config-inited", offline_linkcheck)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
