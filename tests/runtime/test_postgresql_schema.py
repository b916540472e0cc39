"""On PostgreSQL, three roads lead to the same schema: the online upgrade,
``metadata.create_all`` on the models, and the offline SQL applied with ``psql``.

Compared with the server's own ``pg_dump --schema-only``, normalised (comments, SET
lines and blank lines dropped); the version table is compared separately.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

import mypkg
from mypkg.migrate.database import connections as database
from mypkg.migrate.database.ledger import RUNNER_TABLES
from mypkg.models import metadata
from tests.conftest import Cli
from tests.servers.postgresql import PostgresServer, client

HEAD = mypkg.heads()[0]
#: Session settings and pg_dump's per-run random \restrict key: not part of the schema.
PG_DUMP_NOISE = ("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict ", "\\unrestrict ")


def schema_dump(server: PostgresServer, url: str) -> list[str]:
    dump = client(server, "pg_dump", url, "--schema-only", "--no-owner", "--no-privileges",
                  "--exclude-table=alembic_version", "--exclude-table=mypkg_migration_ledger*")
    assert dump.returncode == 0, dump.stderr
    lines = []
    for line in dump.stdout.splitlines():
        if not line.strip() or line.startswith(PG_DUMP_NOISE):
            continue
        lines.append(line.rstrip())
    assert any(re.match(r"CREATE TABLE public\.my_table", line) for line in lines)
    return lines


@pytest.fixture
def second_postgresql_url(pg_server: PostgresServer):  # noqa: ANN201
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


def test_upgrade_head_equals_create_all(
    pg_server: PostgresServer, postgresql_url: str, second_postgresql_url: str
) -> None:
    mypkg.upgrade(postgresql_url)
    engine = database.create_engine(second_postgresql_url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()
    assert schema_dump(pg_server, postgresql_url) == schema_dump(pg_server, second_postgresql_url)


def test_offline_sql_applies_with_psql_and_equals_the_online_upgrade(
    pg_server: PostgresServer, postgresql_url: str, second_postgresql_url: str, cli: Cli, tmp_path
) -> None:
    sql = cli("--url", second_postgresql_url, "upgrade", "--sql", "base:head")
    assert sql.returncode == 0, sql.stderr
    assert "CREATE INDEX CONCURRENTLY" in sql.stdout  # the autocommit block, outside BEGIN/COMMIT
    script = tmp_path / "upgrade.sql"
    script.write_text(sql.stdout)
    applied = client(pg_server, "psql", second_postgresql_url, "-v", "ON_ERROR_STOP=1",
                     "--no-psqlrc", "-q", "-f", str(script))
    assert applied.returncode == 0, applied.stderr
    assert "ERROR" not in applied.stderr

    mypkg.upgrade(postgresql_url)
    assert schema_dump(pg_server, second_postgresql_url) == schema_dump(pg_server, postgresql_url)
    assert mypkg.current(second_postgresql_url) == (HEAD,)


def test_offline_downgrade_sql_returns_to_an_empty_schema(
    pg_server: PostgresServer, postgresql_url: str, cli: Cli, tmp_path
) -> None:
    mypkg.upgrade(postgresql_url)
    sql = cli("--url", postgresql_url, "downgrade", "--sql", f"{HEAD}:base")
    assert sql.returncode == 0, sql.stderr
    script = tmp_path / "downgrade.sql"
    script.write_text(sql.stdout)
    applied = client(pg_server, "psql", postgresql_url, "-v", "ON_ERROR_STOP=1", "--no-psqlrc",
                     "-q", "-f", str(script))
    assert applied.returncode == 0, applied.stderr
    engine = database.create_engine(postgresql_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) <= RUNNER_TABLES
    finally:
        engine.dispose()
