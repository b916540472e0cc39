"""mypkg: a database schema shipped as a package.

The schema is :mod:`mypkg.models` (the SQLAlchemy models), the revision scripts
(authored in ``alembic/`` at the source root, bundled as ``mypkg/migrations``) and
:mod:`mypkg.releases`. The machinery that ships and runs it is :mod:`mypkg.migrate`;
its typed API is re-exported here, and the ``mypkg-migrate`` command wraps it::

    import mypkg
    mypkg.upgrade("postgresql://app@db/app")   # at application start-up

Importing ``mypkg`` is cheap: the API and SQLAlchemy load on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False  # importing the package stays cheap: not even typing
if TYPE_CHECKING:
    from typing import Any

_API = (
    "upgrade",
    "downgrade",
    "current",
    "status",
    "wait_for_head",
    "history",
    "heads",
    "stamp",
    "check",
    "drift",
    "plan",
    "offline_sql",
    "verify",
    "applied_history",
    "repair",
    "realign_checksums",
    "checkpoint",
    "prove_checkpoints",
    "roundtrip",
    "MigrationResult",
    "AppliedRevision",
    "BackfillProgress",
    "Status",
    "RevisionInfo",
    "ChecksumProblem",
    "Drift",
    "Plan",
    "LedgerRow",
)
__all__ = [*_API, "MigrateError", "UsageError", "__version__"]

from .migrate.errors import MigrateError, UsageError  # noqa: E402


def __getattr__(name: str) -> Any:
    if name in _API:
        from .migrate import commands

        return getattr(commands, name)
    if name == "__version__":
        from .migrate.version import package_version

        return package_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
