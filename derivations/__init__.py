"""SymPy derivations of the book: every identity it states, registered with its check and mutants.

Importing the package registers every topic module's identities in :data:`REGISTRY`.
``python -m derivations`` prints the verification report.
"""

import importlib
import pkgutil

from .core import (
    REGISTRY,
    Certificate,
    Check,
    Identity,
    Mutant,
    Registry,
    Report,
    Scope,
    Status,
    anchor,
    equal,
    register,
    sym,
)

__all__ = [
    "REGISTRY", "Certificate", "Check", "Identity", "Mutant", "Registry", "Report", "Scope", "Status",
    "anchor", "equal", "register", "sym", "verify_all",
]


# Importing a topic module registers its identities.  Every module of the package except the
# infrastructure below is a topic module, so adding a topic is adding a file.
_INFRASTRUCTURE = {"core", "book", "sphinx", "__main__", "indexed_sums"}
TOPICS = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _INFRASTRUCTURE)
for _name in TOPICS:
    importlib.import_module(f"{__name__}.{_name}")


def verify_all(ids: list[str] | None = None) -> list[Report]:
    """Check every registered identity (or those named) and all their mutants."""
    items = [REGISTRY[i] for i in ids] if ids else list(REGISTRY)
    return [identity.verify() for identity in items]
