"""Write every chapter as a Jupyter notebook that runs on Colab.

The chapters are MyST markdown notebooks, which Colab cannot open. This script converts each chapter
listed in ``_toc.yml`` (those with jupytext front matter) to ``.ipynb`` with jupytext and puts one
setup cell first: on Colab it installs this project's packages from GitHub at the commit the site was
built from (``--ref``), keeping Colab's own PyTorch build (with CUDA) instead of the CPU pin; anywhere
else it does nothing. The publishing workflow pushes the result to the ``notebooks`` branch, which is
where the book's "launch in Colab" buttons point (``derivations.sphinx`` rewrites them).

    python scripts/colab_notebooks.py --out _build/notebooks --ref <commit>
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
SETUP_TAG = "colab-setup"


def repository_url() -> str:
    """The GitHub URL in ``_config.yml`` (``repository.url``)."""
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].strip().lower()


def colab_requirements() -> list[str]:
    """The project's runtime dependencies except ``torch`` (Colab brings its own CUDA build), plus
    ``myst-nb`` from the book extra (the chapters glue their equations and numbers with it)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [d for d in project["dependencies"] if _name(d) != "torch"]
    return deps + [d for d in project["optional-dependencies"]["book"] if _name(d) == "myst-nb"]


def setup_source(ref: str) -> str:
    """The first cell of every notebook: installs the packages on Colab, a no-op elsewhere."""
    package = f"verified-generative-models @ git+{repository_url()}@{ref}"
    return "\n".join([
        "# Setup for Colab: install this book's packages at the commit this page was built from.",
        "# Outside Colab this cell does nothing (locally, `make book` has installed everything).",
        "import subprocess",
        "import sys",
        "",
        'if "google.colab" in sys.modules:',
        f"    requirements = {colab_requirements()!r}",
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *requirements], check=True)',
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", {package!r}], check=True)',
    ])


def chapters() -> list[Path]:
    """The chapter files of ``_toc.yml`` that are notebooks (jupytext front matter)."""
    files: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    paths = [ROOT / f"{f}.md" for f in files]
    return [p for p in paths if p.exists() and "jupytext:" in p.read_text().split("\n---", 1)[0]]


def colab_notebook(chapter: Path, ref: str) -> nbformat.NotebookNode:
    """The chapter as a notebook, with the setup cell first."""
    nb = jupytext.read(chapter)
    cell = nbformat.v4.new_code_cell(setup_source(ref))
    cell.metadata["tags"] = [SETUP_TAG]
    nb.cells.insert(0, cell)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "notebooks")
    parser.add_argument("--ref", default="main", help="git commit or branch the notebooks install from")
    args = parser.parse_args(argv)
    for chapter in chapters():
        nb = colab_notebook(chapter, args.ref)
        nbformat.validate(nb)
        target = args.out / chapter.relative_to(ROOT).with_suffix(".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        print(target.relative_to(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
