"""Fleets from Python: one revision over many targets, as ``mypkg-migrate fleet`` does.

    import mypkg.fleet
    result = mypkg.fleet.upgrade(["postgresql://app@db/t1", "sqlite:///t2.db"], jobs=4)
    tenants = mypkg.fleet.schemas("postgresql://app@db/app", "tenant_*")  # ...?schema=tenant_1
    failed = [row for row in result.rows if row.outcome == "failed"]

Each function returns a :class:`~mypkg.migrate.fleet.run.FleetResult`: a row per target
(``target`` masked, ``before``, ``after``, ``outcome``, ``seconds``, ``error``) and ``ok``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .migrate.fleet.run import FleetResult, Row
from .migrate.fleet.targets import Target, in_shard, target, unique

__all__ = ["upgrade", "downgrade", "status", "schemas", "FleetResult", "Row"]


def schemas(url: str, *patterns: str) -> list[str]:
    """The URL (with ``schema=``) of every schema (PostgreSQL) or database (MySQL) of
    ``url``'s server whose name matches one of the globs ``patterns`` (every schema if none):
    targets for the functions below, each once.

        mypkg.fleet.upgrade(mypkg.fleet.schemas("postgresql://app@db/app", "tenant_*"))
    """
    from .migrate.fleet.targets import from_schemas

    return [found.url for found in from_schemas(url, *(patterns or ("*",)))]


def _targets(urls: Iterable[str], shard: tuple[int, int] | None) -> list[Target]:
    return in_shard(unique([target(url) for url in urls]), shard)


def upgrade(urls: Iterable[str], revision: str = "head", *, jobs: int = 2, shard: tuple[int, int] | None = None,
            max_failures: int | None = None, canary: int = 0, **options: Any) -> FleetResult:
    """Upgrade every target (``options``: lock_timeout, statement_lock_timeout, busy_timeout;
    ``phase="pre"`` or ``"post"``: a rolling deploy's phase, docs/deploying.md; ``plan``: a
    reviewed plan's file, docs/reviewing.md).

    :param shard: ``(I, N)``: only the targets of shard I of N (a stable hash of each).
    :raises UsageError: a URL that is not one, bad bounds. A target's failure is its row.
    """
    from .migrate.fleet.run import run

    return run("upgrade", _targets(urls, shard), revision, jobs=jobs, max_failures=max_failures,
               canary=canary, options=options)


def downgrade(urls: Iterable[str], revision: str, *, jobs: int = 2, shard: tuple[int, int] | None = None,
              max_failures: int | None = None, canary: int = 0, **options: Any) -> FleetResult:
    """Downgrade every target (``confirm_base=True`` for ``base``); see :func:`upgrade`."""
    from .migrate.fleet.run import run

    return run("downgrade", _targets(urls, shard), revision, jobs=jobs, max_failures=max_failures,
               canary=canary, options=options)


def status(urls: Iterable[str], *, jobs: int = 2, shard: tuple[int, int] | None = None,
           phase: str | None = None) -> FleetResult:
    """Every target's revision; ``ok`` when all are at head (``phase="pre"``: past every
    pre-deploy revision, outcome ``ready`` when post-deploy ones are pending)."""
    from .migrate.fleet.run import run

    return run("status", _targets(urls, shard), jobs=jobs, options={"phase": phase})
