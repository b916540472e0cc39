"""Fleets of tenant schemas, built for real: 500 schemas in one PostgreSQL database read at
once, a hundred of them and three with odd names upgraded by two fleets at once, 20 tenant
databases on MariaDB, through ``--schemas PATTERN --url``."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import mypkg
import mypkg.fleet
from tests.fleet.test_fleet import HEAD, fleet
from tests.servers.postgresql import PostgresServer, database_name

REVISIONS = sorted(rev.revision for rev in mypkg.history())
_calls = itertools.count(1)
FIRST = mypkg.history()[0].revision
TENANTS = 500
ODD = ['tenant_"quoted"', "tenant_; DROP TABLE canary;--", "tenant_É"]


def pg(server: PostgresServer, url: str) -> psycopg.Connection:
    return psycopg.connect(host=str(server.socket_dir), user=server.user, dbname=database_name(url), autocommit=True)


def sessions(server: PostgresServer, url: str) -> int:
    """Sessions ever established to the database (pg_stat_database, PostgreSQL 14+), not
    counting this function's own: between two calls, the difference is what ran between."""
    with pg(server, url) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
    with pg(server, url) as conn:
        # A session's statistics reach the shared counters as its backend exits, before it
        # leaves pg_stat_activity (a client's disconnect returns earlier: a loaded machine
        # made a fixed pause too short). Autocommit: each query a fresh snapshot.
        deadline = time.monotonic() + 60
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid()").fetchone()[0]:
            assert time.monotonic() < deadline, "sessions still open after 60 s"
            time.sleep(0.05)
        counted = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]
    return counted - 2 * next(_calls)  # each call's two sessions (the reader's is counted by the next call)


@pytest.fixture(scope="module")
def tenants(pg_server: PostgresServer) -> Iterator[tuple[str, list[str]]]:
    """One database: ``public`` with a table of its own, 500 empty tenant schemas and three
    with odd names, and ``other`` (not a tenant)."""
    url = pg_server.create_database()
    names = [f"tenant_{i:04}" for i in range(TENANTS)] + ODD
    with pg(pg_server, url) as conn:
        conn.execute("CREATE TABLE public.canary (id int)")
        for name in [*names, "other"]:
            conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(name)))
    try:
        yield url, names
    finally:
        pg_server.drop_database(url)


def applied_everywhere(server: PostgresServer, url: str, names: list[str]) -> dict[str, list[str]]:
    """Each schema's applied ledger rows, sorted: each revision once means none ran twice."""
    found = {}
    with pg(server, url) as conn:
        for name in names:
            found[name] = sorted(row[0] for row in conn.execute(psycopg.sql.SQL(
                "SELECT revision FROM {}.mypkg_migration_ledger WHERE outcome = 'applied'").format(
                psycopg.sql.Identifier(name))))
    return found


def test_five_hundred_schemas_read_at_once_and_a_hundred_upgraded_by_two_fleets(
    pg_server: PostgresServer, tenants: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, names = tenants
    behind = fleet("--url", url, "status", "--schemas", "tenant_*", "--json", cwd=tmp_path)
    assert behind.returncode == 1  # all 503 read in two queries (the bulk read's chunks of 500)
    assert json.loads(behind.stdout)["summary"]["behind"] == len(names)

    # Two fleets at once over the same schemas (a hundred, and the odd names): each revision applied once.
    chosen = [name for name in names if name.startswith("tenant_00") or not name[len("tenant_")].isdigit()]
    patterns = ["--schemas", "tenant_00*", "--schemas", "tenant_[!0-9]*"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    from tests.conftest import command_prefix

    command = [*command_prefix(), "--url", url, "fleet", "upgrade", *patterns, "--jobs", "2", "--json"]
    both = [subprocess.Popen(command, cwd=tmp_path, env=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [process.communicate(timeout=900) for process in both]
    assert [process.returncode for process in both] == [0, 0], [err[-2000:] for _, err in outputs]
    summaries = [json.loads(out)["summary"] for out, _ in outputs]
    assert all(s["targets"] == len(chosen) == 103 and s["reached"] == len(chosen) for s in summaries)
    assert sum(s["migrated"] for s in summaries) >= len(chosen)  # every schema migrated by one or the other
    ledgers = applied_everywhere(pg_server, url, chosen)
    assert all(rows == REVISIONS for rows in ledgers.values()), {k: v for k, v in ledgers.items() if v != REVISIONS}
    with pg(pg_server, url) as conn:
        public = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        other = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname IN ('other', 'tenant_0499')").fetchone()[0]
    assert public == {"canary"} and other == 0  # nothing outside the patterns touched

    before = sessions(pg_server, url)
    status = fleet("--url", url, "status", *patterns, "--json", cwd=tmp_path)
    opened = sessions(pg_server, url) - before
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["summary"]["at_head"] == len(chosen)
    assert {row["after"][0] for row in report["targets"]} == {HEAD}
    assert opened == 2, opened  # one listing for both patterns, one session reading them all: never one per schema

    before = sessions(pg_server, url)
    noop = fleet("--url", url, "upgrade", *patterns, "--json", cwd=tmp_path)
    opened = sessions(pg_server, url) - before
    assert noop.returncode == 0, noop.stderr
    assert json.loads(noop.stdout)["summary"]["unchanged"] == len(chosen)
    assert opened == 2, opened  # nothing to do: the versions and ledgers read at once


def test_a_schema_at_an_unknown_revision_is_told_alone(pg_server: PostgresServer, tmp_path: Path) -> None:
    url = pg_server.create_database()
    try:
        for name in ("tenant_a", "tenant_b", "tenant_c"):
            assert mypkg.upgrade(f"{url}&schema={name}").after == (HEAD,)
        with pg(pg_server, url) as conn:
            conn.execute("UPDATE tenant_b.alembic_version SET version_num = 'feedfacecafe'")
        mypkg.downgrade(f"{url}&schema=tenant_c", "-1")
        status = fleet("--url", url, "status", "--schemas", "tenant_*", "--json", cwd=tmp_path)
        rows = {row["target"].rsplit("schema=", 1)[1]: row for row in json.loads(status.stdout)["targets"]}
        assert status.returncode == 1
        assert rows["tenant_a"]["outcome"] == "at head" and rows["tenant_c"]["outcome"] == "behind"
        assert rows["tenant_b"]["outcome"] == "failed" and "feedfacecafe" in rows["tenant_b"]["error"]

        # A no-op upgrade read at once still refuses what the full path refuses: an edited script.
        with pg(pg_server, url) as conn:
            conn.execute("UPDATE tenant_b.alembic_version SET version_num = %s", (HEAD,))
            conn.execute("UPDATE tenant_a.mypkg_migration_ledger SET checksum = 'edited' WHERE revision = %s",
                         (FIRST,))
        upgrade = fleet("--url", url, "upgrade", "--schemas", "tenant_*", "--json", cwd=tmp_path)
        rows = {row["target"].rsplit("schema=", 1)[1]: row for row in json.loads(upgrade.stdout)["targets"]}
        assert upgrade.returncode == 1
        assert rows["tenant_a"]["outcome"] == "failed" and "checksum" in rows["tenant_a"]["error"]
        assert (rows["tenant_b"]["outcome"], rows["tenant_c"]["outcome"]) == ("unchanged", "migrated")
    finally:
        pg_server.drop_database(url)


def test_twenty_mariadb_tenant_databases(mariadb_server, tmp_path: Path) -> None:  # noqa: ANN001
    url = mariadb_server.create_database()
    names = [f"fleet_tenant_{i:02}" for i in range(20)]
    try:
        with mariadb_server.connect() as conn, conn.cursor() as cursor:
            for name in names[:10]:  # half exist already, half are new tenants
                cursor.execute(f"CREATE DATABASE `{name}`")
        listed = mypkg.fleet.schemas(url, "fleet_tenant_*")
        assert len(listed) == 10  # only those that exist are listed
        # Overlapping patterns: one listing, each database once, in name order.
        assert mypkg.fleet.schemas(url, "fleet_tenant_0[0-4]", "fleet_tenant_0*") == listed
        result = mypkg.fleet.upgrade(listed + [f"{url}&schema={name}" for name in names[10:]], jobs=2)
        assert result.ok, [row.error for row in result.rows if row.error]
        assert len(result.rows) == 20 and {row.after for row in result.rows} == {(HEAD,)}
        status = fleet("--url", url, "status", "--schemas", "fleet_tenant_*", "--json", cwd=tmp_path)
        assert status.returncode == 0 and json.loads(status.stdout)["summary"]["at_head"] == 20
    finally:
        with mariadb_server.connect() as conn, conn.cursor() as cursor:
            for name in names:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        mariadb_server.drop_database(url)


@pytest.mark.parametrize("args, says", [
    (("status", "--schemas", "t_*", "--url", "sqlite:///x.db"), "--schemas is for PostgreSQL and MySQL/MariaDB"),
    (("status", "--schema", "t1", "--sqlite-glob", "x/*.db"), "fleet takes --schemas PATTERN"),
    (("status", "--schemas", "t_*", "--url", "postgresql://u@/db?schema=a"), "give the URL without schema="),
])
def test_bad_schema_fleets_are_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    result = fleet(*args, cwd=tmp_path)
    assert result.returncode == 2, result
    (line,) = result.stderr.strip().splitlines()
    assert says in line



def test_a_few_schemas_are_read_together_and_reported_as_each(pg_server: PostgresServer, tmp_path: Path) -> None:
    """Four schemas at head: ``fleet status`` opens two sessions (the list, the read), not one
    per schema; each row's time is its share; a schema whose ledger is gone goes the full
    way, which makes the ledger again; on a terminal the progress counts every row."""
    import pty

    from tests.conftest import command_prefix

    url = pg_server.create_database()
    try:
        for name in ("tenant_a", "tenant_b", "tenant_c", "tenant_d"):
            assert mypkg.upgrade(f"{url}&schema={name}").after == (HEAD,)
        before = sessions(pg_server, url)
        status = fleet("--url", url, "status", "--schemas", "tenant_*", "--json", cwd=tmp_path)
        opened = sessions(pg_server, url) - before
        report = json.loads(status.stdout)
        assert status.returncode == 0 and report["summary"]["at_head"] == 4
        assert opened == 2, opened
        assert sum(row["seconds"] for row in report["targets"]) <= report["summary"]["seconds"] + 0.01

        with pg(pg_server, url) as conn:
            conn.execute("DROP TABLE tenant_d.mypkg_migration_ledger")
        noop = fleet("--url", url, "upgrade", "--schemas", "tenant_*", "--json", cwd=tmp_path)
        assert noop.returncode == 0 and json.loads(noop.stdout)["summary"]["unchanged"] == 4
        with pg(pg_server, url) as conn:  # the full path ran there, and made its ledger again
            assert conn.execute("SELECT to_regclass('tenant_d.mypkg_migration_ledger') IS NOT NULL").fetchone()[0]

        # A step past head on schemas at head is no "unchanged" answer from the one read:
        # every target fails, as upgrade +1 alone does (no revision is there).
        past = fleet("--url", url, "upgrade", "+1", "--schemas", "tenant_*", "--json", cwd=tmp_path)
        report = json.loads(past.stdout)
        assert past.returncode == 1 and report["summary"]["failed"] == 4, report
        assert all("cannot upgrade to +1" in row["error"] for row in report["targets"]), report["targets"]
        controller, terminal = pty.openpty()
        base = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
        done = subprocess.run([*command_prefix(), "--url", url, "fleet", "status", "--schemas", "tenant_*"],
                              cwd=tmp_path, env=base, stdout=subprocess.PIPE, stderr=terminal, timeout=120)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        os.close(controller)
        assert done.returncode == 0
        assert b"fleet: 4 of 4 done, 0 failed" in shown, shown
    finally:
        pg_server.drop_database(url)
