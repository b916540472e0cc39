"""For the test suites of projects built on mypkg: a pytest plugin, loaded by its entry point
(``pytest11``) wherever the package is installed, as pytest-alembic's is.

    def test_every_revision_keeps_its_rows(migration_roundtrip):
        assert migration_roundtrip() == []                         # a temporary SQLite file
        assert migration_roundtrip("postgresql://me@localhost/scratch_empty") == []

Each finding names the revision, the table, the column and one row (docs/roundtrip.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable


@pytest.fixture
def migration_roundtrip() -> Callable[..., list[Any]]:
    """``check(url=None, revision_range=None, rows=20)``: round-trip the revisions on an empty
    database (None: a temporary SQLite file); the findings, empty when every row was kept."""

    def check(url: str | None = None, revision_range: str | None = None, rows: int = 20) -> list[Any]:
        from .migrate.checks.roundtrip import roundtrip

        return roundtrip(url, revision_range, rows=rows).findings

    return check
