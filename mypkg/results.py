"""What the API returns: plain, immutable values, cheap to import.

Kept apart from :mod:`mypkg.api` so that the fast path (:mod:`mypkg.fastpath`) can
build the very same :class:`Status` without importing the API's dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing itself is not imported on the fast path
if TYPE_CHECKING:
    from typing import Literal


@dataclass(frozen=True)
class AppliedRevision:
    """One revision run against the database, in one transaction."""

    revision: str
    message: str
    direction: Literal["upgrade", "downgrade"]
    seconds: float


@dataclass(frozen=True)
class MigrationResult:
    """What an upgrade or downgrade did."""

    database: str  #: the URL, password masked
    before: tuple[str, ...]
    after: tuple[str, ...]
    applied: list[AppliedRevision] = field(default_factory=list)
    backup: str | None = None  #: the SQLite backup file written first, if asked for


@dataclass(frozen=True)
class ChecksumProblem:
    """An applied revision whose shipped script no longer matches what ran."""

    revision: str
    kind: Literal["mismatch", "missing script", "unknown revision"]
    detail: str


@dataclass(frozen=True)
class RevisionInfo:
    revision: str
    down_revisions: tuple[str, ...]
    message: str
    is_head: bool


@dataclass(frozen=True)
class Status:
    """Where a database stands against the revisions this package ships."""

    database: str
    current: tuple[str, ...]
    heads: tuple[str, ...]
    applied: list[RevisionInfo]
    pending: list[RevisionInfo]

    @property
    def at_head(self) -> bool:
        return not self.pending and set(self.current) == set(self.heads)
