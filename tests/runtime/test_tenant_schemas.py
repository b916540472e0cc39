"""``--schema``: a tenant's schema (PostgreSQL) or database (MariaDB) as a first-class target,
on the suite's real servers. Every command works inside the tenant and nowhere else: the
tables, the version table and the ledger land there, ``public`` (or the URL's database) is
untouched, the lock is the tenant's own, names are quoted."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import mypkg
from mypkg.migrate.database import locks
from tests.conftest import Cli
from tests.servers.postgresql import PostgresServer, client, database_name

HEAD = mypkg.heads()[0]
FIRST = mypkg.history()[0].revision
#: Quotes, a semicolon and SQL of its own: harmless as a schema name, never pasted into SQL.
ODD = 'we"ird; DROP TABLE canary;--'


def pg(server: PostgresServer, url: str) -> psycopg.Connection:
    return psycopg.connect(host=str(server.socket_dir), user=server.user, dbname=database_name(url), autocommit=True)


def tables_in(server: PostgresServer, url: str, schema: str) -> set[str]:
    with pg(server, url) as conn:
        return {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))}


def versions_in(server: PostgresServer, url: str, schema: str) -> list[str]:
    with pg(server, url) as conn:
        return [row[0] for row in conn.execute(
            psycopg.sql.SQL("SELECT version_num FROM {}.alembic_version").format(psycopg.sql.Identifier(schema)))]


class TestPostgresqlSchemas:
    def test_upgrade_builds_the_tenant_only_and_odd_names_are_quoted(
        self, cli: Cli, pg_server: PostgresServer, postgresql_url: str
    ) -> None:
        with pg(pg_server, postgresql_url) as conn:
            conn.execute("CREATE TABLE public.canary (id int)")
        for schema in ("tenant_a", ODD):
            done = cli("--url", postgresql_url, "--schema", schema, "upgrade")
            assert done.returncode == 0, done.stderr
        expected = {"my_table", "note", "alembic_version", "mypkg_migration_ledger"}
        assert tables_in(pg_server, postgresql_url, "tenant_a") == expected
        assert tables_in(pg_server, postgresql_url, ODD) == expected
        assert tables_in(pg_server, postgresql_url, "public") == {"canary"}  # nothing leaked, nothing dropped
        assert versions_in(pg_server, postgresql_url, ODD) == [HEAD]
        status = cli("--url", postgresql_url, "--schema", "tenant_b", "status", "--json")
        assert status.returncode == 1 and json.loads(status.stdout)["current"] == []
        with pg(pg_server, postgresql_url) as conn:  # reading a tenant never creates it
            assert "tenant_b" not in {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace")}

    def test_every_command_reads_the_tenant_not_public(
        self, cli: Cli, pg_server: PostgresServer, postgresql_url: str
    ) -> None:
        # public one revision in, the tenant at head: each answer is the tenant's.
        assert cli("--url", postgresql_url, "upgrade", FIRST).returncode == 0
        assert cli("--url", postgresql_url, "--schema", ODD, "upgrade").returncode == 0
        for fast in ({}, {"MYPKG_NO_FASTPATH": "1"}):
            state = cli("--url", postgresql_url, "--schema", ODD, "status", "--json", **fast)
            assert state.returncode == 0, (fast, state.stderr)
            assert json.loads(state.stdout)["current"] == [HEAD]
            assert "schema=we%22ird" in json.loads(state.stdout)["database"]
            assert cli("--url", postgresql_url, "--schema", ODD, "current", **fast).stdout.split()[0] == HEAD
            noop = cli("--url", postgresql_url, "--schema", ODD, "upgrade", **fast)
            assert noop.returncode == 0 and f"nothing to do, at {HEAD}" in noop.stdout, noop
        assert cli("--url", postgresql_url, "--schema", ODD, "check").returncode == 0
        assert cli("--url", postgresql_url, "--schema", ODD, "verify").returncode == 0
        applied = cli("--url", postgresql_url, "--schema", ODD, "history", "--applied", "--json")
        assert {row["revision"] for row in json.loads(applied.stdout)["rows"]} == {r.revision for r in mypkg.history()}
        back = cli("--url", postgresql_url, "--schema", ODD, "downgrade", "-1")
        assert back.returncode == 0, back.stderr
        assert versions_in(pg_server, postgresql_url, "public") == [FIRST]  # untouched throughout
        assert cli("--url", postgresql_url, "--schema", ODD, "check").returncode == 1  # not at head

    def test_stamp_compares_the_tenant_schema(self, cli: Cli, pg_server: PostgresServer, postgresql_url: str) -> None:
        assert cli("--url", postgresql_url, "--schema", "tenant_a", "upgrade").returncode == 0
        with pg(pg_server, postgresql_url) as conn:
            conn.execute("DROP TABLE tenant_a.alembic_version")  # a tenant built by hand, say
        refused = cli("--url", postgresql_url, "stamp", "head")  # public is empty: not head's schema
        assert refused.returncode == 1 and "does not have the schema of head" in refused.stderr
        stamped = cli("--url", postgresql_url, "--schema", "tenant_a", "stamp", "head")
        assert stamped.returncode == 0, stamped.stderr
        assert versions_in(pg_server, postgresql_url, "tenant_a") == [HEAD]

    def test_a_failed_revision_is_recorded_in_the_tenants_ledger(
        self, cli: Cli, pg_server: PostgresServer, postgresql_url: str
    ) -> None:
        """The failure row is written after the rollback, in a transaction of its own: that
        transaction too runs in the tenant, never in public's ledger."""
        assert cli("--url", postgresql_url, "upgrade").returncode == 0  # public has a ledger of its own
        assert cli("--url", postgresql_url, "--schema", "tenant_a", "upgrade").returncode == 0
        with pg(pg_server, postgresql_url) as conn:
            conn.execute("DELETE FROM tenant_a.alembic_version")  # its tables stay: the first revision fails
        failed = cli("--url", postgresql_url, "--schema", "tenant_a", "upgrade")
        assert failed.returncode == 1
        assert f"revision {FIRST}" in failed.stderr and "schema=tenant_a is at base (empty)" in failed.stderr
        with pg(pg_server, postgresql_url) as conn:
            outcomes = {schema: [row[0] for row in conn.execute(psycopg.sql.SQL(
                "SELECT outcome FROM {}.mypkg_migration_ledger ORDER BY id").format(psycopg.sql.Identifier(schema)))]
                for schema in ("public", "tenant_a")}
        assert outcomes["tenant_a"][-1] == "failed" and "failed" not in outcomes["public"]

    def test_the_lock_is_per_schema(self, cli: Cli, pg_server: PostgresServer, postgresql_url: str) -> None:
        with pg(pg_server, postgresql_url) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (locks.advisory_lock_key("tenant_a"),))
            other = cli("--url", postgresql_url, "--schema", "tenant_b", "upgrade", "--lock-timeout", "1")
            assert other.returncode == 0, other.stderr  # another tenant migrates beside it
            blocked = cli("--url", postgresql_url, "--schema", "tenant_a", "upgrade", "--lock-timeout", "1")
            assert blocked.returncode == 1 and "could not take the migration lock" in blocked.stderr
            assert "schema=tenant_a" in blocked.stderr
        assert tables_in(pg_server, postgresql_url, "tenant_a") == set()  # waited, changed nothing

    def test_offline_sql_goes_to_the_tenant(
        self, cli: Cli, pg_server: PostgresServer, postgresql_url: str, tmp_path: Path
    ) -> None:
        sql = cli("--url", postgresql_url, "--schema", ODD, "upgrade", "--sql", "base:head")
        assert sql.returncode == 0, sql.stderr
        assert sql.stdout.startswith('CREATE SCHEMA IF NOT EXISTS "we""ird; DROP TABLE canary;--";\n'
                                     'SET search_path TO "we""ird; DROP TABLE canary;--", "extensions";')
        (tmp_path / "tenant.sql").write_text(sql.stdout)
        applied = client(pg_server, "psql", postgresql_url, "-v", "ON_ERROR_STOP=1", "-f", str(tmp_path / "tenant.sql"))
        assert applied.returncode == 0, applied.stderr
        assert versions_in(pg_server, postgresql_url, ODD) == [HEAD]
        assert tables_in(pg_server, postgresql_url, "public") == set()
        assert cli("--url", postgresql_url, "--schema", ODD, "check").returncode == 0


class TestUsage:
    @pytest.mark.parametrize(("url", "schema", "says"), [
        ("sqlite:///app.db", "tenant_a", "SQLite tenant is a file of its own"),
        ("postgresql://u@/db", "", "--schema is empty"),
        ("postgresql://u@/db", "x" * 64, "give 1 to 63 bytes"),
        ("postgresql://u@/db?schema=tenant_b", "tenant_a", "differ: give one"),
        ("postgresql://u@/db?schema=tenant_a", "tenant_b", "differ: give one"),
        ("mysql+pymysql://u@127.0.0.1:1/db", "x" * 65, "give 1 to 64 bytes"),
    ])
    def test_bad_schema_is_one_line_and_exit_2(self, cli: Cli, url: str, schema: str, says: str) -> None:
        result = cli("--url", url, "--schema", schema, "status")
        assert result.returncode == 2, result
        assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr


    def test_the_same_schema_in_the_url_and_in_the_option_is_one_schema(self, cli: Cli) -> None:
        """A deploy that sets both to the same tenant is not refused as "differ" (offline
        SQL: no server needed to tell)."""
        result = cli("--url", "postgresql://u@127.0.0.1:1/db?schema=tenant_a", "--schema", "tenant_a",
                     "upgrade", "--sql", "base:head")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith('CREATE SCHEMA IF NOT EXISTS "tenant_a";\n'
                                        'SET search_path TO "tenant_a", "extensions";')


@contextlib.contextmanager
def dropped_after(server: object, *names: str) -> Iterator[None]:
    try:
        yield
    finally:
        with server.connect() as conn, conn.cursor() as cursor:  # type: ignore[attr-defined]
            for name in names:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name.replace('`', '``')}`")


class TestMariadbDatabases:
    ODD = 'we"ird`; DROP DATABASE x;--'

    def test_a_tenant_is_a_database_created_on_upgrade(self, cli: Cli, mariadb_server: object, mysql_url: str) -> None:
        with dropped_after(mariadb_server, "tenant_a", self.ODD):
            missing = cli("--url", mysql_url, "--schema", "tenant_a", "status")
            assert missing.returncode == 1 and "base (empty database)" in missing.stdout, missing.stderr
            with mariadb_server.connect() as conn, conn.cursor() as cursor:  # type: ignore[attr-defined]
                cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = 'tenant_a'")
                assert cursor.fetchone() is None  # reading never creates it
            for schema in ("tenant_a", self.ODD):
                done = cli("--url", mysql_url, "--schema", schema, "upgrade")
                assert done.returncode == 0, done.stderr
                assert cli("--url", mysql_url, "--schema", schema, "check").returncode == 0
            with mariadb_server.connect(self.ODD) as conn, conn.cursor() as cursor:  # type: ignore[attr-defined]
                cursor.execute("SELECT version_num FROM alembic_version")
                assert cursor.fetchall() == ((HEAD,),)
            base = cli("--url", mysql_url, "status", "--json")
            assert json.loads(base.stdout)["current"] == []  # the URL's own database untouched
            sql = cli("--url", mysql_url, "--schema", self.ODD, "upgrade", "--sql", "base:+1")
            assert sql.stdout.startswith("CREATE DATABASE IF NOT EXISTS `we\"ird``; DROP DATABASE x;--`;\n"
                                         "USE `we\"ird``; DROP DATABASE x;--`;")


#: A revision as prefect's 77ebcc9cf355 writes it: an extension, then an index through its
#: operator class, both unqualified.
TRIGRAM_REVISION = '''"""trigram search"""
from alembic import op

revision = "7e11a9700001"
down_revision = "{parent}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX ix_note_body_trgm ON note USING gin (body gin_trgm_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_note_body_trgm")
'''


class TestTenantsShareTheDatabasesExtensions:
    """An extension is the database's, once: created by the first tenant, every later tenant
    needs its operator class too. Before: the first tenant got pg_trgm in its own schema and
    the second failed (operator class "gin_trgm_ops" does not exist)."""

    @pytest.fixture
    def trigram_copy(self, source_copy: Path) -> Path:
        (source_copy / "alembic" / "versions" / "9999_7e11a9700001_trigram.py").write_text(
            TRIGRAM_REVISION.format(parent=HEAD))
        return source_copy

    def extension_schema(self, server: PostgresServer, url: str) -> str | None:
        with pg(server, url) as conn:
            row = conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
                               " WHERE e.extname = 'pg_trgm'").fetchone()
        return None if row is None else row[0]

    def test_every_tenant_sees_the_extension_the_first_one_created(
        self, trigram_copy: Path, pg_server: PostgresServer, postgresql_url: str
    ) -> None:
        from tests.runtime.test_api import run_copy

        for schema in ("tenant_a", ODD, "tenant_c"):
            done = run_copy(trigram_copy, "--url", postgresql_url, "--schema", schema, "upgrade")
            assert done.returncode == 0, (schema, done.stderr)
            assert versions_in(pg_server, postgresql_url, schema) == ["7e11a9700001"]
        assert self.extension_schema(pg_server, postgresql_url) == "extensions"
        assert tables_in(pg_server, postgresql_url, "public") == set()
        assert tables_in(pg_server, postgresql_url, "extensions") == set()  # its functions alone
        back = run_copy(trigram_copy, "--url", postgresql_url, "--schema", ODD, "downgrade", "-1")
        assert back.returncode == 0, back.stderr
        again = run_copy(trigram_copy, "--url", postgresql_url, "--schema", ODD, "upgrade")
        assert again.returncode == 0, again.stderr

    def test_a_schema_of_the_users_choice_and_none(
        self, trigram_copy: Path, pg_server: PostgresServer, postgresql_url: str
    ) -> None:
        from tests.runtime.test_api import run_copy

        named = run_copy(trigram_copy, "--url", postgresql_url, "--schema", "tenant_a",
                         "--extensions-schema", "shared ext", "upgrade")
        assert named.returncode == 0, named.stderr
        assert self.extension_schema(pg_server, postgresql_url) == "shared ext"
        with pg(pg_server, postgresql_url) as conn:
            conn.execute('DROP EXTENSION pg_trgm CASCADE; DROP SCHEMA "shared ext"; DROP SCHEMA tenant_a CASCADE')
        # None: the tenant's schema alone, as before; the first tenant takes the extension,
        # the second cannot see it (the failure this placement exists for).
        alone = [run_copy(trigram_copy, "--url", postgresql_url, "--schema", schema, "--extensions-schema", "",
                          "upgrade") for schema in ("tenant_a", "tenant_b")]
        assert alone[0].returncode == 0, alone[0].stderr
        assert self.extension_schema(pg_server, postgresql_url) == "tenant_a"
        assert alone[1].returncode == 1 and "gin_trgm_ops" in alone[1].stderr, alone[1].stderr
        assert versions_in(pg_server, postgresql_url, "tenant_b") == [HEAD]  # at its last good revision

    def test_offline_sql_places_it_alike(
        self, trigram_copy: Path, pg_server: PostgresServer, postgresql_url: str, tmp_path: Path
    ) -> None:
        from tests.runtime.test_api import run_copy

        for schema in ("tenant_a", "tenant_b"):
            sql = run_copy(trigram_copy, "--url", postgresql_url, "--schema", schema, "upgrade", "--sql", "base:head")
            assert sql.returncode == 0, sql.stderr
            assert f'SET search_path TO "{schema}", "extensions";' in sql.stdout
            script = tmp_path / f"{schema}.sql"
            script.write_text(sql.stdout)
            applied = client(pg_server, "psql", postgresql_url, "-v", "ON_ERROR_STOP=1", "-f", str(script))
            assert applied.returncode == 0, applied.stderr
            assert versions_in(pg_server, postgresql_url, schema) == ["7e11a9700001"]
        assert self.extension_schema(pg_server, postgresql_url) == "extensions"
