"""How far behind the replicas are: what the background worker waits for between batches.

Read on each replica itself, with its own URL (``--replica``), the way its operators read it:

- PostgreSQL: 0 when all the WAL received is replayed, else the time since the last
  transaction replayed (``now() - pg_last_xact_replay_timestamp()``): while replay is
  paused or slow and the primary writes, it grows;
- MySQL, MariaDB: ``Seconds_Behind_Source`` (``Seconds_Behind_Master``) of ``SHOW REPLICA
  STATUS`` (``SHOW SLAVE STATUS`` before MySQL 8.0.22 and MariaDB 10.5.1); NULL when its SQL
  thread is stopped.

A replica that cannot be read (down, not a replica, lag unknown) counts as too far behind:
the work waits and says why, it never runs unthrottled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import MigrateError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


class Replicas:
    def __init__(self, urls: tuple[str, ...], max_lag: float | None, max_wait: float | None, poll: float,
                 on_wait: Callable[[str], None] | None) -> None:
        self.urls, self.max_lag, self.max_wait, self.poll, self.on_wait = urls, max_lag, max_wait, poll, on_wait
        self.engines: dict[str, Any] = {}
        self.connections: dict[str, Connection] = {}

    def wait_until_caught_up(self) -> None:
        """Return once every replica lags at most ``max_lag`` seconds.

        :raises MigrateError: they did not within ``max_wait`` seconds (nothing is lost: the
            next run goes on from the last batch)."""
        if not self.urls or self.max_lag is None:
            return
        started, told = time.monotonic(), None
        while True:
            behind = self.behind()
            if not behind:
                if told is not None and self.on_wait is not None:
                    self.on_wait("the replicas caught up: the backfill goes on")
                return
            said = "; ".join(text for _, text in behind)
            if told != [where for where, _ in behind] and self.on_wait is not None:
                self.on_wait(f"waiting between batches: {said} (the bound: {self.max_lag:g}s of lag)")
            told = [where for where, _ in behind]
            waited = time.monotonic() - started
            if self.max_wait is not None and waited >= self.max_wait:
                raise MigrateError(f"stopped after waiting {self.max_wait:g}s for the replicas ({said}); nothing "
                                   "was lost: every batch done is committed, the next run goes on after it")
            time.sleep(self.poll if self.max_wait is None else max(0.0, min(self.poll, self.max_wait - waited)))

    def behind(self) -> list[tuple[str, str]]:
        """(replica, why) of each replica too far behind, or that cannot be read."""
        from ..database.settings import mask_text

        found = []
        for url in self.urls:
            shown = mask_text(url)
            try:
                lag = self.lag(url)
            except Exception as exc:  # noqa: BLE001 - any failure to read it: wait, and say why
                from ..database.connections import first_line

                self._drop(url)
                found.append((shown, f"{shown} cannot be read ({first_line(exc)})"))
                continue
            if lag > self.max_lag:  # type: ignore[operator]
                found.append((shown, f"{shown} lags {lag:.1f}s"))
        return found

    def lag(self, url: str) -> float:
        """Seconds the replica at ``url`` is behind.

        :raises MigrateError: not a replica, or its lag is unknown."""
        connection = self._connection(url)
        try:
            if connection.dialect.name == "postgresql":
                recovering, lag = connection.exec_driver_sql(
                    "SELECT pg_is_in_recovery(), CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM "
                    "pg_last_wal_replay_lsn() THEN 0 ELSE EXTRACT(EPOCH FROM clock_timestamp() - "
                    "pg_last_xact_replay_timestamp()) END").one()
                if not recovering:
                    raise MigrateError("not a replica (pg_is_in_recovery() is false)")
            elif connection.dialect.name in ("mysql", "mariadb"):
                lag = _mysql_lag(connection)
            else:
                raise MigrateError(f"{connection.dialect.name} has no replicas to read")
        finally:
            connection.rollback()
        if lag is None:
            raise MigrateError("its lag is unknown (replay not started, or its SQL thread stopped)")
        return float(lag)

    def _connection(self, url: str) -> Connection:
        if url not in self.connections:
            from ..database.connections import create_engine

            self.engines[url] = engine = self.engines.get(url) or create_engine(url)
            self.connections[url] = engine.connect()
        return self.connections[url]

    def _drop(self, url: str) -> None:
        connection = self.connections.pop(url, None)
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001, S110 - a connection already lost
                pass

    def close(self) -> None:
        for url in list(self.connections):
            self._drop(url)
        for engine in self.engines.values():
            engine.dispose()


def _mysql_lag(connection: Connection) -> object:
    for statement in ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):
        try:
            row = connection.exec_driver_sql(statement).mappings().first()
        except Exception:  # noqa: BLE001 - the older spelling on older servers
            connection.rollback()
            continue
        if row is None:
            raise MigrateError("not a replica (SHOW REPLICA STATUS is empty)")
        return row.get("Seconds_Behind_Source", row.get("Seconds_Behind_Master"))
    raise MigrateError("SHOW REPLICA STATUS cannot be read (the REPLICATION CLIENT privilege?)")
