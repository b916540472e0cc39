"""mypkg: a database schema shipped as a package.

The models live in :mod:`mypkg.models`; the migrations ship inside the package and
run through :mod:`mypkg.api` (re-exported here) or the ``mypkg-migrate`` command::

    import mypkg
    mypkg.upgrade("postgresql://app@db/app")   # at application start-up

Importing ``mypkg`` is cheap: the API and SQLAlchemy load on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False  # importing mypkg stays cheap: not even typing
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
    "offline_sql",
    "verify",
    "applied_history",
    "MigrationResult",
    "AppliedRevision",
    "Status",
    "RevisionInfo",
    "ChecksumProblem",
    "LedgerRow",
)
__all__ = [*_API, "MigrateError", "UsageError", "__version__"]

from .errors import MigrateError, UsageError  # noqa: E402


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "__version__":
        from ._version import package_version

        return package_version()
    raise AttributeError(f"module 'mypkg' has no attribute {name!r}")
