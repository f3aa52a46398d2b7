"""The book and the registry agree.

* every file listed in ``_toc.yml`` exists (the verification page is generated at build time);
* every identity registered for a chapter is glued in that chapter, labelled, and followed by
  its ``{verified}`` mark;
* every display math block in ``book/`` (``{math}``, ``$$ ... $$``, amsmath environments; labelled
  or not) is either glued from the registry or allowlisted, by label, with a kind: ``definition``,
  ``notation``, or ``step <identity id>`` (an intermediate step of a named, glued result);
* every identity declares its scope (general, instance, numeric).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from derivations import REGISTRY
from derivations.sphinx import render_page, scan_peers, scan_validations

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
GENERATED = {"book/verification", "book/errata"}  # written by derivations.sphinx when the book is built

# Display equations that are not checked identities: definitions, notation and intermediate steps of
# a glued result.  One YAML file per chapter in tests/allowlist/ (label: "kind: reason"), so chapters
# never contend for one list.  Keep it short; its length is reported in the README.
ALLOWLIST = {
    label: reason
    for path in sorted((ROOT / "tests" / "allowlist").glob("*.yml"))
    for label, reason in (yaml.safe_load(path.read_text()) or {}).items()
}

FENCE = re.compile(r"^(`{3,}|:{3,})\{(?P<directive>[\w:-]+)\}[ \t]*(?P<arg>[^\n]*)\n(?P<body>.*?)^\1\s*$",
                   re.MULTILINE | re.DOTALL)
DOLLAR_LABEL = re.compile(r"\$\$\s*\((?P<label>[\w.-]+)\)")
# $$ ... $$ display blocks, with MyST's optional (label) after the closing $$.
DOLLAR_BLOCK = re.compile(r"\$\$(?P<body>.+?)\$\$(?:[ \t]*\((?P<label>[\w.-]+)\))?", re.DOTALL)
AMSMATH = re.compile(r"^[ \t]*\\begin\{(?P<env>equation|align|gather|multline|eqnarray|flalign|alignat)\*?\}"
                     r"(?P<body>.*?)\\end\{(?P=env)\*?\}", re.MULTILINE | re.DOTALL)
CODE_CELL = re.compile(r"^(`{3,})\{code-cell\}.*?^\1\s*$", re.MULTILINE | re.DOTALL)
KIND = re.compile(r"^(?P<kind>definition|notation|step (?P<id>[\w.]+)): \S")
VERIFIED = re.compile(r"\{verified\}`(?P<id>[^`]+)`")


def _toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        if "file" in node:
            files.append(node["file"])
        if "root" in node:
            files.append(node["root"])
        for value in node.values():
            files += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            files += _toc_files(item)
    return files


TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
TOC_FILES = list(dict.fromkeys(_toc_files(TOC)))
PAGES = sorted(p for p in BOOK.glob("*.md") if f"book/{p.stem}" not in GENERATED)  # chapters, not generated pages


def _equations(text: str) -> list[tuple[str, str | None, str | None, int]]:
    """(directive, glue key, label, end offset) of every math block in a MyST page."""
    out = []
    for m in FENCE.finditer(text):
        if m.group("directive") in {"math", "glue:math"}:
            label = re.search(r"^:label:\s*(\S+)", m.group("body"), re.MULTILINE)
            key = m.group("arg").strip() if m.group("directive") == "glue:math" else None
            out.append((m.group("directive"), key, label and label.group(1), m.end()))
        # equations nest inside theorems: look inside the body too
        out += [(d, k, lab, m.start("body") + end) for d, k, lab, end in _equations(m.group("body"))]
    return out


@pytest.mark.parametrize("docname", TOC_FILES)
def test_toc_file_exists(docname: str) -> None:
    assert docname in GENERATED or (ROOT / f"{docname}.md").exists(), f"{docname} is in _toc.yml but missing"


def test_chapters_of_identities_are_in_the_toc() -> None:
    for identity in REGISTRY:
        assert f"book/{identity.chapter}" in TOC_FILES, f"{identity.id}: chapter {identity.chapter} not in _toc.yml"


@pytest.mark.parametrize("identity", list(REGISTRY), ids=lambda i: i.id)
def test_identity_is_glued_in_its_chapter_with_its_mark(identity) -> None:
    text = (BOOK / f"{identity.chapter}.md").read_text()
    glued = [(key, label, end) for d, key, label, end in _equations(text) if key == identity.id]
    assert glued, f"{identity.id} is registered for {identity.chapter} but not glued there"
    for _, label, end in glued:
        assert label, f"glued {identity.id} has no :label:"
        following = text[end:end + 200]
        mark = VERIFIED.search(following)
        assert mark and mark.group("id") == identity.id, f"glued {identity.id} lacks its {{verified}} mark"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_labelled_equations_are_glued_or_allowlisted(page: Path) -> None:
    text = page.read_text()
    for directive, key, label, _ in _equations(text):
        if directive == "glue:math":
            assert key in REGISTRY.ids(), f"{page.name}: glued {key!r} is not a registered identity"
        elif label is not None:
            assert label in ALLOWLIST, f"{page.name}: labelled equation {label!r} is neither glued nor allowlisted"
    for m in DOLLAR_LABEL.finditer(text):
        assert m.group("label") in ALLOWLIST, f"{page.name}: $$-equation {m.group('label')!r} not allowlisted"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_verified_marks_name_registered_identities(page: Path) -> None:
    for m in VERIFIED.finditer(page.read_text()):
        assert m.group("id") in REGISTRY.ids(), f"{page.name}: {{verified}} of unknown {m.group('id')!r}"


def displays(text: str) -> list[tuple[str, str | None, str | None]]:
    """(kind, glue key, label) of every display math block of a MyST page, outside code cells.

    Kinds: ``glue`` (``{glue:math}``), ``math`` (a ``{math}`` fence), ``dollar`` (``$$ ... $$``)
    and ``amsmath`` (a bare ``\\begin{align}`` block).
    """
    text = CODE_CELL.sub("", text)
    out = [("glue" if d == "glue:math" else "math", key, label) for d, key, label, _ in _equations(text)]
    # fenced math is removed before looking for $$ and amsmath blocks, so nothing is counted twice
    rest = FENCE.sub(lambda m: "" if m.group("directive") in {"math", "glue:math"} else m.group(0), text)
    rest = re.sub(r"^(`{3,}|:{3,})\{(math|glue:math)\}.*?^\1\s*$", "", rest, flags=re.MULTILINE | re.DOTALL)
    out += [("dollar", None, m.group("label")) for m in DOLLAR_BLOCK.finditer(rest)]
    rest = DOLLAR_BLOCK.sub("", rest)
    out += [("amsmath", None, None) for _ in AMSMATH.finditer(rest)]
    return out


def unchecked_displays(page: Path) -> list[str]:
    """The displays of a page that are neither glued from the registry nor allowlisted."""
    bad = []
    for kind, key, label in displays(page.read_text()):
        if kind == "glue":
            if key not in REGISTRY.ids():
                bad.append(f"glued {key!r} is not a registered identity")
        elif label is None:
            bad.append(f"unlabelled {kind} display (label it and glue or allowlist it)")
        elif label not in ALLOWLIST:
            bad.append(f"{kind} display {label!r} is neither glued nor allowlisted")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_display_is_glued_or_allowlisted(page: Path) -> None:
    bad = unchecked_displays(page)
    assert not bad, f"{page.name}: {len(bad)} unchecked displays: {bad}"


def test_display_parser_sees_every_kind() -> None:
    text = ("```{code-cell} ipython3\nx = '$$a$$'\n```\n"
            "$$a = b$$ (eq-x)\n\n$$\nc\n$$\n\n```{math}\n:label: eq-y\nd\n```\n"
            "\\begin{align}\ne &= f\n\\end{align}\n"
            ":::{prf:theorem}\n```{glue:math} ddpm.posterior\n:label: eq-z\n```\n:::\n")
    assert sorted(displays(text), key=str) == sorted(
        [("dollar", None, "eq-x"), ("dollar", None, None), ("math", None, "eq-y"),
         ("amsmath", None, None), ("glue", "ddpm.posterior", "eq-z")], key=str)


@pytest.mark.parametrize("label", sorted(ALLOWLIST))
def test_allowlist_entry_names_its_kind(label: str) -> None:
    m = KIND.match(str(ALLOWLIST[label]))
    assert m, f"allowlist {label!r}: reason must start with 'definition: ', 'notation: ' or 'step <id>: '"
    if m.group("id"):
        assert m.group("id") in REGISTRY.ids(), f"allowlist {label!r} is a step of unknown {m.group('id')!r}"


@pytest.mark.parametrize("identity", list(REGISTRY), ids=lambda i: i.id)
def test_identity_declares_its_scope(identity) -> None:
    assert identity.scope is not None, f"{identity.id} declares no scope (general, instance or numeric)"


def test_readme_states_the_scope_counts_and_unchecked_displays() -> None:
    from derivations import Scope

    readme = (ROOT / "README.md").read_text()
    for scope in Scope:
        n = sum(i.scope is scope for i in REGISTRY)
        assert re.search(rf"\b{n} {scope.value}\b", readme), f"README must state '{n} {scope.value}'"
    n_bad = sum(len(unchecked_displays(p)) for p in PAGES)
    m = re.search(r"(\d+) unchecked result-displays", readme)
    assert m and int(m.group(1)) == n_bad, f"README must state '{n_bad} unchecked result-displays'"


def test_allowlist_entries_are_used() -> None:
    labels = {label for p in PAGES for _, _, label in displays(p.read_text())}
    assert set(ALLOWLIST) <= labels, f"stale allowlist entries: {set(ALLOWLIST) - labels}"


def test_coverage_parser_sees_the_equations() -> None:
    # The parser must find the nested glue blocks; otherwise the tests above would pass vacuously.
    text = (BOOK / "ddpm.md").read_text()
    keys = {key for _, key, _, _ in _equations(text) if key}
    assert {"ddpm.forward.marginal", "ddpm.posterior"} <= keys


def test_validation_markers_name_registered_identities() -> None:
    found = scan_validations(ROOT / "tests")
    assert found, "no test is marked @pytest.mark.validates"
    unknown = set(found) - set(REGISTRY.ids())
    assert not unknown, f"validates() names unknown identities {unknown}"


def test_every_identity_with_code_is_validated() -> None:
    # An identity that names its implementation in gencode must have a numeric test tying them.
    found = scan_validations(ROOT / "tests")
    implemented = [identity for identity in REGISTRY if identity.code]
    assert implemented, "no identity names its gencode implementation"
    for identity in implemented:
        assert found.get(identity.id), f"{identity.id} has no test marked validates({identity.id!r})"


@pytest.mark.parametrize("identity", list(REGISTRY), ids=lambda i: i.id)
def test_code_references_resolve(identity) -> None:
    import importlib

    for path in identity.code:
        parts = path.split(".")
        assert parts[0] == "gencode", f"{identity.id}: code reference {path!r} is not in gencode"
        obj, cut = importlib.import_module("gencode"), 1
        while cut < len(parts):  # the longest importable prefix is the module; the rest are attributes
            try:
                obj, cut = importlib.import_module(".".join(parts[: cut + 1])), cut + 1
            except ImportError:
                break
        for attr in parts[cut:]:
            assert hasattr(obj, attr), f"{identity.id}: code reference {path!r} does not resolve"
            obj = getattr(obj, attr)


def test_scan_sees_stacked_validation_markers(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(
        '@pytest.mark.validates("a")\n@pytest.mark.validates("b", "c")\n@pytest.mark.slow\ndef test_y():\n    pass\n')
    assert scan_validations(tmp_path) == {k: ["tests/test_x.py::test_y"] for k in "abc"}


def test_peer_markers_name_registered_identities_and_reach_the_page() -> None:
    peers = scan_peers(ROOT / "tests")
    # issue 14: diffusers, flow_matching, torchsde and torchdiffeq agreements are on the page
    assert {p["peer"].split()[0] for p in peers} >= {"diffusers", "Meta", "torchsde", "torchdiffeq"}
    unknown = {i for p in peers for i in p["ids"]} - set(REGISTRY.ids())
    assert not unknown, f"peer() names unknown identities {unknown}"
    row = {"id": "ddpm.posterior.mean_eps", "chapter": "ddpm", "title": "t", "latex": "x", "status": "verified",
           "check": "c", "seconds": 0.0, "scope": "general", "method": "m", "assumptions": [], "mutants": []}
    page = render_page([row], {}, peers)
    entry = page.split("## `ddpm.posterior.mean_eps`")[1]
    assert "**Agrees with peers:** diffusers DDPMScheduler.step" in entry


def test_scan_reads_peer_markers(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(
        '@pytest.mark.peer("lib F", "to 1e-9", "a", "b")\n@pytest.mark.slow\ndef test_y():\n    pass\n'
        '@pytest.mark.peer("lib G", "to 1e-3")\ndef test_z():\n    pass\n')
    assert scan_peers(tmp_path) == [
        {"peer": "lib F", "agreement": "to 1e-9", "ids": ["a", "b"], "test": "tests/test_x.py::test_y"},
        {"peer": "lib G", "agreement": "to 1e-3", "ids": [], "test": "tests/test_x.py::test_z"}]
    (tmp_path / "test_x.py").write_text('@pytest.mark.peer("lib F")\ndef test_y():\n    pass\n')
    with pytest.raises(ValueError, match="peer marker needs"):
        scan_peers(tmp_path)


def test_readme_states_the_allowlist_length() -> None:
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"allowlist currently holds (\d+) equations", readme)
    assert m, "README must state the allowlist's length"
    assert int(m.group(1)) == len(ALLOWLIST), f"README says {m.group(1)}, the allowlist holds {len(ALLOWLIST)}"


CHAPTERS = [f for f in TOC_FILES if f.startswith("book/") and f not in GENERATED
            and f not in {"book/index", "book/notation", "book/execution", "book/benchmarks", "book/bibliography"}]


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_has_exercises_with_solutions(docname: str) -> None:
    text = (ROOT / f"{docname}.md").read_text()
    exercises = re.findall(r"\{exercise\}[^\n]*\n:label: ([\w-]+)", text)
    solutions = re.findall(r"\{solution\} ([\w-]+)", text)
    assert len(exercises) >= 3, f"{docname}: {len(exercises)} labelled exercises, at least 3 expected"
    assert set(exercises) <= set(solutions), f"{docname}: exercises without a solution {set(exercises) - set(solutions)}"
    assert "This chapter is being written" not in text, f"{docname} is a placeholder"
