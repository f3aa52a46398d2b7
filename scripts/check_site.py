"""Post-build checks of the website in ``_build/html`` (run by ``make book``).

Fails (exit 1) if any page shows a Python traceback or a notebook error, if an HTML id is used
twice on a page, or if a chapter lacks the glued, numbered equations and verified marks of the
identities registered for it.
"""

from __future__ import annotations

import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

from derivations import REGISTRY

SITE = Path(__file__).resolve().parents[1] / "_build" / "html"
TRACEBACK_MARKERS = ("Traceback (most recent call last)", "ansi-red-fg", "output traceback")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: Counter[str] = Counter()
        self.marks = 0
        self.numbered_math = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids[a["id"]] += 1
        classes = (a.get("class") or "").split()
        if tag == "span" and "verified" in classes:
            self.marks += 1
        if tag == "span" and "eqno" in classes:
            self.numbered_math += 1


def main() -> int:
    if not SITE.exists():
        print(f"no site at {SITE}")
        return 1
    problems = []
    pages = sorted(SITE.rglob("*.html"))
    for page in pages:
        text = page.read_text(errors="replace")
        rel = page.relative_to(SITE)
        for marker in TRACEBACK_MARKERS:
            if marker in text:
                problems.append(f"{rel}: contains {marker!r}")
        parsed = _Page()
        parsed.feed(text)
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
    for p in problems:
        print("site check:", p)
    print(f"site check: {len(pages)} pages, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
