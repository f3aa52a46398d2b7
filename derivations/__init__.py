"""SymPy derivations of the book: every identity it states, registered with its check and mutants.

Importing the package registers every topic module's identities in :data:`REGISTRY`.
``python -m derivations`` prints the verification report.
"""

from . import diffusion  # noqa: F401  (registers the DDPM identities)
from .core import (
    REGISTRY,
    Certificate,
    Check,
    Identity,
    Mutant,
    Registry,
    Report,
    Status,
    anchor,
    equal,
    register,
    sym,
)

__all__ = [
    "REGISTRY", "Certificate", "Check", "Identity", "Mutant", "Registry", "Report", "Status",
    "anchor", "equal", "register", "sym", "verify_all",
]


def verify_all(ids: list[str] | None = None) -> list[Report]:
    """Check every registered identity (or those named) and all their mutants."""
    items = [REGISTRY[i] for i in ids] if ids else list(REGISTRY)
    return [identity.verify() for identity in items]
