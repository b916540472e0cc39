"""Which schema revision each release of mypkg ships as its head.

Operators think in package versions ("go back to what 1.2 had"), Alembic in revision
ids. Add a line here with every release (a test checks that each revision exists, and
that the version being built maps to the current head), then use
``mypkg-migrate upgrade --to-version X`` / ``downgrade --to-version X``, or offline SQL
between two releases: ``upgrade --sql --from-version A --to-version B``.
"""

from __future__ import annotations

from .migrate.errors import UsageError
from .migrate.identity import PACKAGE

RELEASES: dict[str, str] = {
    "0.1.0": "1341fe34ff84",
}


def revision_for(version: str) -> str:
    """The head revision release ``version`` shipped.

    :raises UsageError: a version not in :data:`RELEASES`.
    """
    try:
        return RELEASES[version]
    except KeyError:
        known = ", ".join(RELEASES) or "none"
        raise UsageError(f"unknown {PACKAGE} version {version!r}: releases with a schema: {known}") from None
