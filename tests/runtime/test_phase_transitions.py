"""``mypkg.phases``: a column renamed and a column's type changed across a rolling deploy,
on real SQLite, PostgreSQL and MariaDB. Between the pre-deploy and the post-deploy revision,
triggers keep both columns in step whichever release writes; the post-deploy step leaves the
new schema alone; each step's downgrade gives back the schema and the rows it found."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import mypkg
import mypkg.phases
from tests.runtime.test_api import run_copy

HEAD = mypkg.heads()[0]

COUNTER = f'''"""a counter table"""
from alembic import op
import sqlalchemy as sa

revision = "f0000000a001"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("counter", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("hits", sa.Integer, nullable=False))


def downgrade() -> None:
    op.drop_table("counter")
'''

EXPAND = '''"""body becomes content; counter.hits becomes a bigint (expand)"""
import sqlalchemy as sa
from mypkg.phases import change_column_type, rename_column, undo_change_column_type, undo_rename_column

revision = "f0000000a002"
down_revision = "f0000000a001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    rename_column("note", "body", "content", batch_size=2)
    change_column_type("counter", "hits", sa.BigInteger(), batch_size=2)


def downgrade() -> None:
    undo_change_column_type("counter", "hits")
    undo_rename_column("note", "body", "content")
'''

CONTRACT = '''"""body and the int hits gone (contract)"""
import sqlalchemy as sa
from mypkg.phases import (complete_change_column_type, complete_rename_column, undo_complete_change_column_type,
                          undo_complete_rename_column)

revision = "f0000000a003"
down_revision = "f0000000a002"
branch_labels = None
depends_on = None
phase = "post"


def upgrade() -> None:
    complete_rename_column("note", "body", "content")
    complete_change_column_type("counter", "hits")


def downgrade() -> None:
    undo_complete_change_column_type("counter", "hits", sa.Integer(), batch_size=2)
    undo_complete_rename_column("note", "body", "content", batch_size=2)
'''


@pytest.fixture
def history(source_copy: Path) -> Path:
    versions = source_copy / "alembic" / "versions"
    for name, text in (("a001_counter", COUNTER), ("a002_expand", EXPAND), ("a003_contract", CONTRACT)):
        (versions / f"9999_{name}.py").write_text(text)
    return source_copy


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def any_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def engine(any_url: str) -> Iterator[sa.Engine]:
    from mypkg.migrate.database.connections import create_engine

    made = create_engine(any_url)
    try:
        yield made
    finally:
        made.dispose()


def run(history: Path, url: str, *args: str) -> None:
    done = run_copy(history, "--url", url, *args)
    assert done.returncode == 0, done.stderr


def columns(engine: sa.Engine, table: str) -> dict[str, tuple[str, bool]]:
    """name -> (type's class name, nullable), from a fresh inspector."""
    return {c["name"]: (type(c["type"]).__name__.upper(), c["nullable"]) for c in sa.inspect(engine).get_columns(table)}


def triggers(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        elif engine.dialect.name == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            sql = "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
        return [row[0] for row in conn.exec_driver_sql(sql)]


def execute(engine: sa.Engine, *statements: str) -> list[tuple]:
    with engine.begin() as conn:
        for statement in statements:
            result = conn.execute(sa.text(statement))
        return list(result) if result.returns_rows else []


def test_a_rename_and_a_type_change_across_a_deploy(history: Path, any_url: str, engine: sa.Engine) -> None:
    run(history, any_url, "upgrade", "f0000000a001")
    execute(engine, "INSERT INTO my_table (id, name, display_name) VALUES (1, 'a', 'a')",
            *[f"INSERT INTO note (id, my_table_id, body) VALUES ({i}, 1, 'old {i}')" for i in range(1, 6)],
            *[f"INSERT INTO counter (id, hits) VALUES ({i}, {i * 10})" for i in range(1, 6)])

    run(history, any_url, "upgrade", "--phase", "pre")
    note = columns(engine, "note")
    assert note["body"][1] and note["content"][1]  # both accept NULL while two releases write
    assert execute(engine, "SELECT count(*) FROM note WHERE content = body")[0][0] == 5  # backfilled
    retyped = mypkg.phases.shadow_column("hits")
    assert execute(engine, f"SELECT count(*) FROM counter WHERE {retyped} = hits")[0][0] == 5
    # The old release writes body, the new one content: each sees the other's rows.
    execute(engine, "INSERT INTO note (id, my_table_id, body) VALUES (10, 1, 'by N')",
            "INSERT INTO note (id, my_table_id, content) VALUES (11, 1, 'by N+1')",
            "UPDATE note SET body = 'edited by N' WHERE id = 1",
            "UPDATE note SET content = 'edited by N+1' WHERE id = 2",
            "INSERT INTO counter (id, hits) VALUES (10, 7)", "UPDATE counter SET hits = 99 WHERE id = 1")
    rows = dict((r[0], (r[1], r[2])) for r in execute(engine, "SELECT id, body, content FROM note"))
    assert rows[10] == ("by N", "by N") and rows[11] == ("by N+1", "by N+1")
    assert rows[1] == ("edited by N", "edited by N") and rows[2] == ("edited by N+1", "edited by N+1")
    assert execute(engine, f"SELECT hits, {retyped} FROM counter WHERE id IN (1, 10) ORDER BY id") == [(99, 99), (7, 7)]
    assert triggers(engine)

    run(history, any_url, "upgrade", "--phase", "post")
    note, counter = columns(engine, "note"), columns(engine, "counter")
    assert "body" not in note and note["content"][1] is False  # NOT NULL, as body was
    assert set(counter) == {"id", "hits"} and counter["hits"] == ("BIGINT", False)
    assert triggers(engine) == []
    assert execute(engine, "SELECT content FROM note WHERE id = 11") == [("by N+1",)]
    execute(engine, "INSERT INTO counter (id, hits) VALUES (11, 5000000000)")  # past an int

    # Each step's downgrade: the contract undone (both columns in step again), then the expand.
    execute(engine, "DELETE FROM counter WHERE id = 11")
    run(history, any_url, "downgrade", "f0000000a002")
    assert execute(engine, "SELECT body, content FROM note WHERE id = 11") == [("by N+1", "by N+1")]
    execute(engine, "INSERT INTO note (id, my_table_id, content) VALUES (12, 1, 'again')")
    assert execute(engine, "SELECT body FROM note WHERE id = 12") == [("again",)]
    # The old release may run again: its rows name body alone (content accepts NULL until
    # its trigger fills it, after the NOT NULL check on SQLite).
    execute(engine, "INSERT INTO note (id, my_table_id, body) VALUES (13, 1, 'old again')")
    assert execute(engine, "SELECT content FROM note WHERE id = 13") == [("old again",)]
    run(history, any_url, "downgrade", "f0000000a001")
    note, counter = columns(engine, "note"), columns(engine, "counter")
    assert "content" not in note and note["body"][1] is False
    assert set(counter) == {"id", "hits"} and counter["hits"][1] is False and counter["hits"][0] == "INTEGER"
    assert triggers(engine) == []
    assert execute(engine, "SELECT hits FROM counter WHERE id = 1") == [(99,)]


def test_lint_notes_that_the_transitions_read_the_database(history: Path) -> None:
    """Offline there is no column to read the type of: a note naming why, not a finding that
    the revision cannot run anywhere."""
    import json

    done = run_copy(history, "lint", "--json")
    payload = json.loads(done.stdout)
    notes = {(n["revision"], n["direction"]): n["reason"] for n in payload["not_checkable"]}
    for key in (("f0000000a002", "upgrade"), ("f0000000a003", "upgrade"), ("f0000000a003", "downgrade")):
        assert "reads the table's columns and triggers from the database" in notes[key], notes
    assert not [f for f in payload["findings"] if f["revision"].startswith("f0000000a")], payload["findings"]
