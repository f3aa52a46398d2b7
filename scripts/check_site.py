"""Post-build checks of the website in ``_build/html`` (run by ``make book``).

Fails (exit 1) if any page shows a Python traceback or a notebook error, if an HTML id is used
twice on a page, or if a chapter lacks the glued, numbered equations and verified marks of the
identities registered for it, if an internal link or anchor is broken, or if a "launch in Colab"
button does not open the page's generated notebook (``scripts/colab_notebooks.py``).
"""

from __future__ import annotations

import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

from derivations import REGISTRY

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colab_notebooks import chapters  # noqa: E402

SITE = Path(__file__).resolve().parents[1] / "_build" / "html"
TRACEBACK_MARKERS = ("Traceback (most recent call last)", "ansi-red-fg", "output traceback")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: Counter[str] = Counter()
        self.links: list[str] = []
        self.marks = 0
        self.numbered_math = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids[a["id"]] += 1
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        classes = (a.get("class") or "").split()
        if tag == "span" and "verified" in classes:
            self.marks += 1
        if tag == "span" and "eqno" in classes:
            self.numbered_math += 1


def check_internal_links(pages: dict[Path, _Page]) -> list[str]:
    """Every internal link resolves to a file of the site, and its anchor to an id there.

    External links (with a scheme) are not followed: the build machine has no network.
    """
    problems = []
    for page, parsed in pages.items():
        for href in parsed.links:
            if ":" in href.split("#")[0] or href.startswith(("mailto:", "javascript:")):
                continue
            path, _, fragment = href.partition("#")
            target = (page.parent / path.split("?")[0]).resolve() if path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{page.relative_to(SITE.resolve())}: broken link {href}")
                continue
            if fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else None
                if ids is not None and fragment not in ids:
                    problems.append(f"{page.relative_to(SITE.resolve())}: missing anchor {href}")
    return problems


def check_colab_links(pages: dict[Path, _Page]) -> list[str]:
    """Each Colab button opens ``<page>.ipynb`` on the notebooks branch, and that notebook is one the
    publishing workflow writes (the page is a chapter notebook)."""
    root = SITE.resolve()
    notebooks = {str(p.relative_to(p.parents[1]).with_suffix("")) for p in chapters()}
    problems = []
    for page, parsed in pages.items():
        docname = str(page.relative_to(root).with_suffix(""))
        for href in parsed.links:
            if href.startswith("https://colab.research.google.com/"):
                if not href.endswith(f"/blob/notebooks/{docname}.ipynb"):
                    problems.append(f"{docname}: Colab link {href} is not the page's notebook")
                elif docname not in notebooks:
                    problems.append(f"{docname}: Colab link but no notebook is generated for it")
    return problems


def main() -> int:
    if not SITE.exists():
        print(f"no site at {SITE}")
        return 1
    problems = []
    pages = sorted(SITE.rglob("*.html"))
    parsed_pages: dict[Path, _Page] = {}
    for page in pages:
        text = page.read_text(errors="replace")
        rel = page.relative_to(SITE)
        for marker in TRACEBACK_MARKERS:
            if marker in text:
                problems.append(f"{rel}: contains {marker!r}")
        parsed = _Page()
        parsed.feed(text)
        parsed_pages[page.resolve()] = parsed
        dupes = [i for i, n in parsed.ids.items() if n > 1]
        if dupes:
            problems.append(f"{rel}: duplicate HTML ids {dupes[:5]}")
        chapter = page.stem if rel.parts[0] == "book" else None
        expected = len(REGISTRY.by_chapter(chapter)) if chapter else 0
        if expected:
            if parsed.marks < expected:
                problems.append(f"{rel}: {parsed.marks} verified marks for {expected} identities")
            if parsed.numbered_math < expected:
                problems.append(f"{rel}: {parsed.numbered_math} numbered equations for {expected} identities")
    problems += check_internal_links(parsed_pages)
    problems += check_colab_links(parsed_pages)
    for p in problems:
        print("site check:", p)
    print(f"site check: {len(pages)} pages, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
