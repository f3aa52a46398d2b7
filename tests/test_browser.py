"""Open every page of the built site in headless Chromium and check what a reader would see.

Fails on a MathJax error, a broken image, a Python traceback, a console error or uncaught page
error, a failed request, or a page missing from the navigation.  Saves a screenshot of the DDPM
chapter in light and in dark mode (``_build/screenshots/``) and checks that the math has enough
contrast with the background in both.

Needs ``_build/html`` (``make book``) and Chromium (Debian's ``chromium``).  Without them the test
is skipped, unless ``REQUIRE_BROWSER=1`` (set by ``make browser-test`` and ``.ci/run``), which
turns the skip into a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api as playwright  # a test dependency (pyproject [test])

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("REQUIRE_BROWSER") == "1"
# Flags this machine needs: no sandbox as root, and no background connections (none can leave).
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SKIP_PAGES = {"genindex.html", "search.html", "prf-prf.html", "index.html"}  # generated, not content

def _missing() -> str | None:
    if CHROMIUM is None:
        return "Chromium is not installed (apt-get install chromium)"
    if not (SITE / "book" / "index.html").exists():
        return "no built site in _build/html (run make book)"
    return None


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    reason = _missing()
    if reason:
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output readable
        pass


@pytest.fixture(scope="module")
def browser(base_url: str):
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def _pages() -> list[str]:
    return sorted(str(p.relative_to(SITE)) for p in SITE.rglob("*.html")
                  if p.name not in SKIP_PAGES and "_static" not in p.parts and "_sources" not in p.parts)


def _open(browser, url: str, color_scheme: str = "light"):
    page = browser.new_page(color_scheme=color_scheme, viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.goto(url, wait_until="load")
    if page.evaluate("!!document.querySelector('script[src*=\"mathjax\"]')"):  # pages with math
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise",
                               timeout=30_000)
        page.evaluate("MathJax.startup.promise")
    return page, problems


def test_every_page_renders_cleanly(browser, base_url: str) -> None:
    pages = _pages()
    assert "book/ddpm.html" in pages
    failures = []
    for rel in pages:
        page, problems = _open(browser, f"{base_url}/{rel}")
        if page.locator("mjx-merror").count():
            problems.append("MathJax error: " + page.locator("mjx-merror").first.inner_text())
        tex_left = page.evaluate(
            "[...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length")
        if tex_left:
            problems.append(f"{tex_left} math elements not typeset")
        broken = page.evaluate(
            "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
        problems += [f"broken image {src}" for src in broken]
        if "Traceback (most recent call last)" in page.inner_text("body"):
            problems.append("Python traceback on the page")
        page.close()
        failures += [f"{rel}: {p}" for p in problems]
    assert not failures, "\n".join(failures)


def test_every_page_is_in_the_navigation(browser, base_url: str) -> None:
    page, problems = _open(browser, f"{base_url}/book/index.html")
    hrefs = page.evaluate("[...document.querySelectorAll('.bd-docs-nav a')].map(a => a.href)")
    page.close()
    linked = {h.split("#")[0].replace(base_url + "/", "") for h in hrefs}
    missing = [rel for rel in _pages() if rel != "book/index.html" and rel not in linked]
    assert not missing, f"pages missing from the navigation: {missing}"
    assert not problems, problems


def _luminance(rgb: str) -> float:
    r, g, b = (int(v) / 255 for v in rgb[rgb.index("(") + 1: rgb.index(")")].split(",")[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_chapter_screenshot_and_math_contrast(browser, base_url: str, mode: str) -> None:
    page, problems = _open(browser, f"{base_url}/book/ddpm.html", color_scheme=mode)
    assert page.evaluate("document.documentElement.dataset.theme") == mode
    colors = page.evaluate("""() => {
        const m = document.querySelector('mjx-container');
        let e = m, bg = 'rgba(0, 0, 0, 0)';
        while (e && (bg === 'rgba(0, 0, 0, 0)' || bg === 'transparent')) {
            bg = getComputedStyle(e).backgroundColor; e = e.parentElement; }
        return [getComputedStyle(m).color, bg];
    }""")
    fg, bg = (_luminance(c) for c in colors)
    contrast = (max(fg, bg) + 0.05) / (min(fg, bg) + 0.05)
    # WCAG AA asks 4.5:1 for body text; the math must be at least as readable.
    assert contrast >= 4.5, f"{mode}: math colour {colors[0]} on {colors[1]}: contrast {contrast:.1f}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"ddpm-{mode}.png"), full_page=False)
    page.close()
    assert not problems, problems
