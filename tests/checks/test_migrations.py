"""The shipped revisions, checked by pytest-alembic and by a stairway with data,
on SQLite and PostgreSQL (the ``alembic_engine`` fixture is parametrised by dialect)."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pytest_alembic import runner
from pytest_alembic.config import Config
from pytest_alembic.tests import (  # noqa: F401 - collected as tests here
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from pytest_alembic.tests.experimental import (
    test_all_models_register_on_metadata as all_models_register_on_metadata,
)
from pytest_alembic.tests.experimental import (
    test_downgrade_leaves_no_trace as downgrade_leaves_no_trace,
)

import mypkg
from mypkg.migrate.database import connections as database
from mypkg.migrate.database.ledger import RUNNER_TABLES
from mypkg.migrate.history import scripts
from mypkg.models import metadata


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Here on MariaDB too: pytest-alembic's checks and the stairway on all three databases."""
    return request.getfixturevalue(f"{request.param}_url")


def _value(column: sa.Column[Any], counter: int, parents: dict[str, list[Any]]) -> Any:
    """A value a real application could store in ``column``, unique per call."""
    for fk in column.foreign_keys:
        return parents[fk.column.table.name][0]
    python_type = column.type.python_type
    if python_type is int:
        return counter
    if python_type is str:
        length = getattr(column.type, "length", None) or 40
        return f"v{counter}-{column.name}"[:length]
    if python_type is datetime.datetime:
        return datetime.datetime(2026, 1, 1) + datetime.timedelta(seconds=counter)
    if python_type is bool:
        return counter % 2 == 0
    raise NotImplementedError(f"no sample value for {column.type!r}")


def _insert_a_row_everywhere(
    connection: sa.Connection, counter: itertools.count[int]
) -> dict[tuple[str, Any], dict[str, Any]]:
    """Insert one row into every table of the reflected schema, parents first."""
    reflected = sa.MetaData()
    reflected.reflect(connection)
    inserted: dict[tuple[str, Any], dict[str, Any]] = {}
    parents: dict[str, list[Any]] = {}
    for table in reflected.sorted_tables:
        if table.name in RUNNER_TABLES:  # the runner's, not the schema's
            continue
        row = {
            column.name: _value(column, next(counter), parents)
            for column in table.columns
            if not column.primary_key
        }
        key = connection.execute(table.insert().values(row)).inserted_primary_key[0]
        parents.setdefault(table.name, []).append(key)
        inserted[(table.name, key)] = row
    return inserted


def test_all_models_register_on_metadata(sqlite_url: str) -> None:
    """Every model module under mypkg.models is imported by env.py's bare import.

    A question of imports, not of dialects: run once, on SQLite (pytest-alembic's
    subprocess also cannot take a URL with a %-escaped socket path).
    """
    engine = database.create_engine(sqlite_url, for_migrations=True)
    config = Config.from_raw_config(scripts.make_config())
    try:
        with runner(config=config, engine=engine) as alembic_runner:
            # Its automatic detection also picks mypkg.models.base, a module, not a package.
            all_models_register_on_metadata(alembic_runner, model_package="mypkg.models")
    finally:
        engine.dispose()


def _autocommit_revisions() -> list[str]:
    """Revisions that commit mid-way (CREATE INDEX CONCURRENTLY on PostgreSQL)."""
    return [
        rev.revision
        for rev in scripts.script_directory().walk_revisions()
        if "autocommit_block" in Path(rev.path).read_text()
    ]


# pytest-alembic's version undoes each step with a savepoint, which DDL on MySQL/MariaDB
# commits away; there, test_each_downgrade_restores_the_previous_schema pins the same promise.
@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_downgrade_leaves_no_trace(alembic_engine: sa.Engine, db_url: str) -> None:
    """pytest-alembic's check, which runs each cycle inside a savepoint.

    An autocommit block cannot run inside a savepoint, so on PostgreSQL those
    revisions are left to test_each_downgrade_restores_the_previous_schema below.
    """
    skip = _autocommit_revisions() if db_url.startswith("postgresql") else []
    config = dataclasses.replace(Config.from_raw_config(scripts.make_config()), skip_revisions=skip)
    with runner(config=config, engine=alembic_engine) as alembic_runner:
        downgrade_leaves_no_trace(alembic_runner)


def _schema(url: str) -> dict[str, Any]:
    engine = database.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {
            table: {
                "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                "indexes": sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
                "unique": sorted(u["name"] for u in inspector.get_unique_constraints(table)),
                "foreign_keys": sorted(f["name"] or "" for f in inspector.get_foreign_keys(table)),
            }
            for table in inspector.get_table_names()
            if table not in RUNNER_TABLES
        }
    finally:
        engine.dispose()


def test_each_downgrade_restores_the_previous_schema(db_url: str) -> None:
    """Without savepoints, so revisions with autocommit blocks are checked too."""
    for revision in mypkg.history():
        before = _schema(db_url)
        mypkg.upgrade(db_url, revision.revision)
        assert _schema(db_url) != before, f"{revision.revision} changed nothing"
        mypkg.downgrade(db_url, "-1")
        assert _schema(db_url) == before, f"{revision.revision} downgrade left a trace"
        mypkg.upgrade(db_url, revision.revision)


class TestStairway:
    """Data written at each revision survives every upgrade after it."""

    def test_rows_inserted_at_each_revision_survive_to_head(self, db_url: str) -> None:
        revisions = [rev.revision for rev in mypkg.history()]
        counter = itertools.count(1)
        rows: dict[tuple[str, Any], dict[str, Any]] = {}
        engine = database.create_engine(db_url)
        try:
            for revision in revisions:
                mypkg.upgrade(db_url, revision)
                assert mypkg.current(db_url) == (revision,)
                with engine.begin() as connection:
                    rows.update(_insert_a_row_everywhere(connection, counter))
            with engine.connect() as connection:
                for (table_name, key), values in rows.items():
                    table = metadata.tables[table_name]
                    found = connection.execute(
                        sa.select(table).where(table.primary_key.columns.values()[0] == key)
                    ).mappings().one()
                    for column, value in values.items():
                        assert found[column] == value, (table_name, key, column)
                # Rows written before display_name existed were backfilled from name.
                first = connection.execute(
                    sa.select(metadata.tables["my_table"]).order_by("id")
                ).mappings().first()
                assert first is not None and first["display_name"] == first["name"]
        finally:
            engine.dispose()
        assert len(rows) >= len(revisions)

    def test_full_downgrade_then_upgrade_round_trips(self, db_url: str) -> None:
        head = mypkg.heads()
        mypkg.upgrade(db_url)
        mypkg.downgrade(db_url, "base", confirm_base=True)
        assert mypkg.current(db_url) == ()
        mypkg.upgrade(db_url)
        assert mypkg.current(db_url) == head
        assert mypkg.check(db_url) == []
