"""The Colab notebooks that the "launch in Colab" buttons open (scripts/colab_notebooks.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import colab_notebooks as cn  # noqa: E402

CHAPTERS = cn.chapters()


def test_every_chapter_notebook_is_converted() -> None:
    assert any(p.name == "ddpm.md" for p in CHAPTERS)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_notebook_is_the_chapter_plus_setup(chapter: Path) -> None:
    nb = cn.colab_notebook(chapter, "0123abc")
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "code" and cn.SETUP_TAG in first.metadata["tags"]
    assert "@0123abc" in first.source and cn.repository_url() in first.source
    # the rest is the chapter itself, cell by cell
    original = jupytext.read(chapter)
    assert [c.source for c in nb.cells[1:]] == [c.source for c in original.cells]


def test_setup_installs_the_project_but_keeps_colabs_torch() -> None:
    reqs = cn.colab_requirements()
    names = {cn._name(r) for r in reqs}
    assert "torch" not in names  # Colab's CUDA build stays
    assert {"sympy", "myst-nb", "pot"} <= names
    assert "sympy==1.14.0" in reqs  # the pin that the identities were checked with


def test_setup_cell_does_nothing_outside_colab(monkeypatch) -> None:
    import subprocess

    calls = []
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda args, check: calls.append(args))
    exec(cn.setup_source("main"), {"__name__": "__main__"})
    assert calls == []


def test_setup_cell_installs_on_colab(monkeypatch) -> None:
    import subprocess

    calls = []
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(subprocess, "run", lambda args, check: calls.append(args))
    exec(cn.setup_source("abc"), {"__name__": "__main__"})
    assert len(calls) == 2 and calls[1][-1].endswith("@abc") and "--no-deps" in calls[1]
