"""Helpers for the book's notebooks: glue registered identities so chapters display the checked
expressions themselves.

In a chapter::

    from derivations.book import glue_identities
    glue_identities("ddpm.posterior")

and in its markdown::

    ```{glue:math} ddpm.posterior
    :label: eq-ddpm-posterior
    ```
    {verified}`ddpm.posterior`
"""

from __future__ import annotations

from .core import REGISTRY


def glue_identities(*ids: str) -> None:
    """Glue each identity's LaTeX under its id (``{glue:math}`` needs a ``text/latex`` output)."""
    from IPython.display import Math
    from myst_nb import glue

    for identity_id in ids:
        glue(identity_id, Math(REGISTRY[identity_id].latex), display=False)


def glue_chapter(chapter: str) -> list[str]:
    """Glue every identity registered for a chapter; returns their ids."""
    ids = [i.id for i in REGISTRY.by_chapter(chapter)]
    glue_identities(*ids)
    return ids
