"""A new database or tenant at a checkpointed head, installed through the driver alone
(mypkg/migrate/fast/install.py): what it leaves is what the full path leaves (SQLite's
schema text and rows, pg_dump), it never imports SQLAlchemy, Alembic or psycopg, and it
steps aside for everything the full path must do (a table already there, a migrator
holding the lock, an edited checkpoint, a convention mismatch). Racing migrators of both
paths install it once; a failing statement leaves nothing; a transaction pooler needs no
lease; a long-lived process installs tenant after tenant loading nothing more.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from mypkg.migrate.fast import install
from mypkg.migrate.history import checkpoints
from tests.checks.test_checkpoints import SHIPPED, SHIPPED_HEAD, _pg_dump, shipped_project
from tests.servers.pgbouncer import PgBouncer
from tests.servers.postgresql import PostgresServer, client

HEAVY = ("sqlalchemy", "alembic", "psycopg")
#: A tenant name that must be quoted: a quote and a semicolon.
ODD = 'new "tenant"; x'


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, pg_server: PostgresServer) -> Path:
    """The shipped history with a checkpoint at its head, for SQLite and PostgreSQL."""
    root = shipped_project(tmp_path_factory.mktemp("fresh") / "project")
    wrote = run(root, "checkpoint", SHIPPED_HEAD, "--replay-on", pg_server.url())
    assert wrote.returncode == 0, wrote.stderr
    return root


def run(root: Path, *args: str, imports: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
    """``mypkg-migrate`` of the checkout at ``root``; ``imports``: with ``-X importtime``
    (what it imported is :func:`imported`; stderr keeps the rest)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    done = subprocess.run([sys.executable, *(["-X", "importtime"] if imports else []), "-m", "mypkg", *args],
                          cwd=root, capture_output=True, text=True, timeout=300,
                          env={**clean, "PYTHONPATH": str(root), **env})
    if imports:
        done.imported = {line.split("|")[-1].strip().split(".")[0]  # type: ignore[attr-defined]
                         for line in done.stderr.splitlines() if line.startswith("import time:")}
        done.stderr = "".join(line + "\n" for line in done.stderr.splitlines() if not line.startswith("import time:"))
    return done


def without_timing(text: str, *places: str) -> str:
    for place in places:
        text = text.replace(place, "PLACE")
    return re.sub(r"\(\d+ ms\)", "(N ms)", text)


def sqlite_view(path: Path) -> dict:
    """SQLite's own text of the schema, every row, the ledger without its clock."""
    with sqlite3.connect(path) as db:
        schema = list(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid"))
        rows = {name: sorted(map(repr, db.execute(f'SELECT * FROM "{name}"')))
                for kind, name, _, _ in schema if kind == "table" and name != "mypkg_migration_ledger"}
        ledger = list(db.execute("SELECT id, revision, direction, checksum, package_version, outcome, detail, plugin "
                                 "FROM mypkg_migration_ledger"))
    return {"schema": schema, "rows": rows, "ledger": ledger}


def pg_view(server: PostgresServer, schema: str) -> dict:
    quoted = '"' + schema.replace('"', '""') + '"'
    dump = _pg_dump(server, server.url(), "-n", quoted, "--exclude-table-data", "*.mypkg_migration_ledger")
    with psycopg.connect(host=str(server.socket_dir), user=server.user, dbname="postgres") as connection:
        ledger = connection.execute(
            f"SELECT id, revision, direction, checksum, package_version, outcome, detail, plugin, "
            f"finished_at >= started_at, duration_ms >= 0 FROM {quoted}.mypkg_migration_ledger").fetchall()
    return {"dump": dump.replace(quoted, "SCHEMA").replace(schema, "SCHEMA"), "ledger": ledger}


def pg_tables(server: PostgresServer, schema: str) -> list[str]:
    with psycopg.connect(host=str(server.socket_dir), user=server.user, dbname="postgres") as connection:
        return [row[0] for row in connection.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
            (schema,))]


def test_the_runner_tables_are_written_as_sqlalchemy_and_alembic_write_them() -> None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.schema import CreateTable

    from mypkg.migrate.database import ledger

    for name, dialect in (("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())):
        assert install.ledger_ddl(name) == str(CreateTable(ledger.table()).compile(dialect=dialect)).strip()
        context = MigrationContext.configure(dialect=dialect, opts={"as_sql": True})
        assert install.VERSION_DDL == str(CreateTable(context._version).compile(dialect=dialect)).strip()


def test_a_new_sqlite_database_at_a_checkpointed_head_is_installed_as_the_full_path_installs_it(
        project: Path, tmp_path: Path) -> None:
    fast, full = tmp_path / "fast.db", tmp_path / "full.db"
    done = run(project, "--url", f"sqlite:///{fast}", "upgrade", imports=True)
    assert done.returncode == 0, done.stderr
    assert done.imported.isdisjoint(HEAVY), done.imported & set(HEAVY)  # type: ignore[attr-defined]
    assert done.stdout.splitlines()[0] == f"applying {SHIPPED_HEAD}  checkpoint of {len(SHIPPED)} revisions " \
                                          f"({SHIPPED_HEAD}.json)"
    replayed = run(project, "--url", f"sqlite:///{full}", "upgrade", MYPKG_NO_FASTPATH="1")
    assert replayed.returncode == 0, replayed.stderr
    assert without_timing(done.stdout, str(fast)) == without_timing(replayed.stdout, str(full))
    assert done.stderr == replayed.stderr == ""
    assert sqlite_view(fast) == sqlite_view(full)
    assert sqlite_view(fast)["ledger"][0][5] == "checkpoint"
    for path in (fast, full):
        assert run(project, "--url", f"sqlite:///{path}", "verify").returncode == 0
    # The JSON result too.
    as_json = run(project, "--url", f"sqlite:///{tmp_path / 'json.db'}", "upgrade", "--json")
    result = json.loads(as_json.stdout)
    assert result["before"] == [] and result["after"] == [SHIPPED_HEAD]
    assert [step["revision"] for step in result["applied"]] == [SHIPPED_HEAD]


def test_a_new_postgresql_tenant_at_a_checkpointed_head_is_installed_as_the_full_path_installs_it(
        project: Path, pg_server: PostgresServer) -> None:
    fast, full = f"{ODD} fast", f"{ODD} full"
    done = run(project, "--url", pg_server.url(), "--schema", fast, "upgrade", imports=True)
    assert done.returncode == 0, done.stderr
    assert done.imported.isdisjoint(HEAVY), done.imported & set(HEAVY)  # type: ignore[attr-defined]
    replayed = run(project, "--url", pg_server.url(), "--schema", full, "upgrade", MYPKG_NO_FASTPATH="1")
    assert replayed.returncode == 0, replayed.stderr
    assert "checkpoint of" in replayed.stdout  # the full path installed the same checkpoint
    from urllib.parse import quote_plus

    assert without_timing(done.stdout, quote_plus(fast)) == without_timing(replayed.stdout, quote_plus(full))
    mine, theirs = pg_view(pg_server, fast), pg_view(pg_server, full)
    assert mine == theirs
    assert "CREATE TABLE SCHEMA.note" in mine["dump"] and mine["ledger"][0][5] == "checkpoint"
    assert all(row[-2:] == (True, True) for row in mine["ledger"])
    assert "note" not in pg_tables(pg_server, "public")
    for schema in (fast, full):
        assert run(project, "--url", pg_server.url(), "--schema", schema, "verify").returncode == 0
        status = run(project, "--url", pg_server.url(), "--schema", schema, "status", "--json")
        assert json.loads(status.stdout)["at_head"] is True


def test_the_fast_install_steps_aside_for_what_only_the_full_path_does(project: Path, tmp_path: Path) -> None:
    import filelock

    # A table of the application's own: refused as the full path refuses it, nothing written.
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE mine (id INTEGER)")
    refused = run(project, "--url", f"sqlite:///{other}", "upgrade")
    assert refused.returncode == 1 and "but no version table" in refused.stderr
    assert refused.stderr == run(project, "--url", f"sqlite:///{other}", "upgrade", MYPKG_NO_FASTPATH="1").stderr
    # Another migrator holds the lock: waited for up to the bound, then the full path's words.
    held = tmp_path / "held.db"
    with filelock.FileLock(f"{held}.mypkg-migrate.lock"):
        waited = run(project, "--url", f"sqlite:///{held}", "upgrade", "--lock-timeout", "1")
    assert waited.returncode != 0 and "could not take the migration lock" in waited.stderr, waited.stderr
    assert not held.exists() or sqlite3.connect(held).execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    # Revisions after the checkpoint, or a target before it: the full path.
    partial = run(project, "--url", f"sqlite:///{tmp_path / 'partial.db'}", "upgrade", SHIPPED[3])
    assert "checkpoint of" not in partial.stdout and partial.stdout.count("applied ") == 4


def test_an_edited_checkpoint_or_another_convention_is_refused_before_anything_is_written(
        project: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("__pycache__"))
    base = root / "mypkg" / "models" / "base.py"
    original = base.read_text()
    base.write_text(original.replace("naming_convention=NAMING_CONVENTION", 'naming_convention={"pk": "pk_%(table_name)s"}'))
    refused = run(root, "--url", f"sqlite:///{tmp_path / 'convention.db'}", "upgrade")
    assert refused.returncode == 1 and "names constraints by another convention" in refused.stderr, refused.stderr
    assert not (tmp_path / "convention.db").exists()
    base.write_text(original)
    path = root / "alembic" / "checkpoints" / f"{SHIPPED_HEAD}.json"
    path.write_text(path.read_text().replace("CREATE TABLE", "CREATE  TABLE", 1))
    edited = run(root, "--url", f"sqlite:///{tmp_path / 'edited.db'}", "upgrade")
    assert edited.returncode == 1 and f"checkpoint {SHIPPED_HEAD}.json was changed after it was written" \
        in edited.stderr, edited.stderr


@pytest.fixture
def broken(project: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy whose checkpoint (its checksum recomputed: not a hand edit) ends with a
    statement every database refuses."""
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("__pycache__"))
    path = root / "alembic" / "checkpoints" / f"{SHIPPED_HEAD}.json"
    found = checkpoints.read(path)
    forms = {key: {**form, "after": [*form["after"], "CREATE TABLE note (id INTEGER)"]}
             for key, form in found.forms.items()}
    path.write_text(checkpoints.to_json(found.revision, forms, scripts=found.scripts))
    yield root


def test_a_statement_that_fails_leaves_the_new_database_empty(broken: Path, tmp_path: Path,
                                                                pg_server: PostgresServer) -> None:
    path = tmp_path / "failed.db"
    failed = run(broken, "--url", f"sqlite:///{path}", "upgrade")
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1, failed.stderr
    assert "could not be installed: table note already exists; nothing was changed" in failed.stderr
    assert sqlite3.connect(path).execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    schema = f"{ODD} failed"
    failed = run(broken, "--url", pg_server.url(), "--schema", schema, "upgrade")
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1, failed.stderr
    assert 'relation "note" already exists' in failed.stderr and "Traceback" not in failed.stderr
    with psycopg.connect(host=str(pg_server.socket_dir), user=pg_server.user, dbname="postgres") as connection:
        assert connection.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() == (0,)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_migrators_of_both_paths_racing_on_a_new_database_install_it_once(
        project: Path, tmp_path: Path, pg_server: PostgresServer, dialect: str) -> None:
    """Three through the fast path, three through the full path, started together: the
    sidecar's flock and filelock's, a transaction's advisory lock and a session's, exclude
    each other."""
    import threading

    url = f"sqlite:///{tmp_path / 'raced.db'}" if dialect == "sqlite" else f"{pg_server.url()}&schema=raced"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    barrier, results = threading.Barrier(6), []

    def migrate(fast: bool) -> None:
        env = {**clean, "PYTHONPATH": str(project), **({} if fast else {"MYPKG_NO_FASTPATH": "1"})}
        barrier.wait()
        results.append(subprocess.run([sys.executable, "-m", "mypkg", "--url", url, "upgrade", "--json"],
                                      cwd=project, env=env, capture_output=True, text=True, timeout=120))

    threads = [threading.Thread(target=migrate, args=(i % 2 == 0,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.returncode for r in results] == [0] * 6, [r.stderr for r in results]
    applied = [step for r in results for step in json.loads(r.stdout)["applied"]]
    assert len(applied) == 1 and applied[0]["revision"] == SHIPPED_HEAD
    ledger = run(project, "--url", url, "history", "--applied", "--json")
    assert [row["outcome"] for row in json.loads(ledger.stdout)["rows"]] == ["checkpoint"], ledger.stdout


def test_through_a_transaction_pooler_the_install_needs_no_lease(project: Path, pg_server: PostgresServer) -> None:
    bouncer = PgBouncer(pg_server, "transaction").start()
    try:
        done = run(project, "--url", bouncer.url("postgres"), "--schema", "pooled", "upgrade")
        assert done.returncode == 0, done.stderr
        assert "checkpoint of" in done.stdout
        again = run(project, "--url", bouncer.url("postgres"), "--schema", "pooled", "upgrade")
        assert again.returncode == 0 and "nothing to do" in again.stdout
    finally:
        bouncer.stop()
    assert "mypkg_migration_lease" not in pg_tables(pg_server, "pooled")  # one transaction: no lease taken
    held = client(pg_server, "psql", pg_server.url(), "-At", "-c", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    assert held.stdout.strip() == "0"


TENANTS = r"""
import json, sys, time
import mypkg
url, count = sys.argv[1], int(sys.argv[2])
report = {"messages": [], "modules": [], "seconds": []}
for i in range(count):
    began = time.perf_counter()
    result = mypkg.upgrade(url, schema=f"tenant_{i}")
    report["seconds"].append(time.perf_counter() - began)
    report["messages"].append([step.message for step in result.applied])
    report["modules"].append(len(sys.modules))
report["heavy"] = sorted(m for m in ("sqlalchemy", "alembic", "psycopg") if m in sys.modules)
print(json.dumps(report))
"""


def test_a_long_lived_process_installs_tenant_after_tenant_loading_nothing_more(
        project: Path, pg_server: PostgresServer) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    done = subprocess.run([sys.executable, "-c", TENANTS, pg_server.url(), "4"], cwd=project, capture_output=True,
                          text=True, timeout=120, env={**clean, "PYTHONPATH": str(project)})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert all(messages == [f"checkpoint of {len(SHIPPED)} revisions ({SHIPPED_HEAD}.json)"]
               for messages in report["messages"]), report["messages"]
    assert report["heavy"] == []
    assert len(set(report["modules"][1:])) == 1, report["modules"]  # the first tenant loaded all it needs
    for i in range(4):
        assert "note" in pg_tables(pg_server, f"tenant_{i}")


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_every_kind_of_value_and_every_counter_comes_in_as_the_full_path_brings_it(
        dialect: str, tmp_path: Path, pg_server: PostgresServer) -> None:
    """Enums, comments, identity and generated columns, bytes, a used sequence and one never
    used (its setval left out: the same state), rows: installed both ways, dumped by the
    database's own tool, and the next insert gets the same id."""
    from tests.checks.test_checkpoints import rich_history
    from tests.history import histories

    root = histories.project_with(tmp_path / "project", rich_history())
    checkpoint = "ri00000000b2"
    wrote = run(root, "checkpoint", checkpoint, *(["--replay-on", pg_server.url()] if dialect != "sqlite" else []))
    assert wrote.returncode == 0, wrote.stderr
    if dialect == "sqlite":
        fast, full = f"sqlite:///{tmp_path / 'fast.db'}", f"sqlite:///{tmp_path / 'full.db'}"
    else:
        fast, full = pg_server.create_database(), pg_server.create_database()
    done = run(root, "--url", fast, "upgrade", checkpoint, imports=True)
    assert done.returncode == 0 and "checkpoint of 2 revisions" in done.stdout, done.stderr
    assert done.imported.isdisjoint(HEAVY)  # type: ignore[attr-defined]
    replayed = run(root, "--url", full, "upgrade", checkpoint, MYPKG_NO_FASTPATH="1")
    assert replayed.returncode == 0 and "checkpoint of 2 revisions" in replayed.stdout, replayed.stderr
    dumps, next_ids = [], []
    for url in (fast, full):
        if dialect == "sqlite":
            with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
                dumps.append([line for line in db.iterdump() if "mypkg_migration_ledger" not in line])
                db.execute("INSERT INTO tag (name) VALUES ('next')")
                next_ids.append(db.execute("SELECT max(id) FROM tag").fetchone()[0])
        else:
            dumps.append(_pg_dump(pg_server, url))
            with psycopg.connect(host=str(pg_server.socket_dir), user=pg_server.user,
                                 dbname=url.split("@/")[1].split("?")[0]) as connection:
                next_ids.append(connection.execute("INSERT INTO tag (name) VALUES ('next') RETURNING id").fetchone()[0])
    assert dumps[0] == dumps[1]
    assert next_ids == [4, 4]  # c (3) was deleted: 4, not 3
    if dialect == "postgresql":
        assert "GENERATED ALWAYS AS IDENTITY" in dumps[0] and "\\\\x00ff6279746573" in dumps[0]


def test_the_schema_argument_is_the_urls_schema_parameter(postgresql_url: str) -> None:
    import sqlalchemy as sa

    import mypkg

    done = mypkg.upgrade(postgresql_url, schema="tenant_arg")
    assert done.database.endswith("schema=tenant_arg") and done.after == (SHIPPED_HEAD,)
    assert mypkg.status(f"{postgresql_url}&schema=tenant_arg").at_head
    with pytest.raises(mypkg.UsageError, match="--schema 'other' and the URL's schema='tenant_arg' differ"):
        mypkg.upgrade(f"{postgresql_url}&schema=tenant_arg", schema="other")
    engine = sa.create_engine(postgresql_url)
    try:
        with pytest.raises(mypkg.UsageError, match="schema= needs a URL"):
            mypkg.upgrade(engine, schema="tenant_arg")
    finally:
        engine.dispose()
    assert mypkg.upgrade(sa.engine.make_url(postgresql_url), schema="tenant_url").after == (SHIPPED_HEAD,)


def test_a_sequence_restarted_but_never_used_keeps_its_next_value(tmp_path: Path, pg_server: PostgresServer) -> None:
    """A sequence never called sits at its START but one restarted elsewhere does not: only the
    first needs no setval (the fast install leaves those out)."""
    from tests.history import histories

    body = ('op.create_table("ticket", sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.Text))\n'
            'op.create_table("label", sa.Column("id", sa.Integer, primary_key=True))\n'
            'if op.get_context().dialect.name == "postgresql":\n'
            '    op.execute("ALTER SEQUENCE ticket_id_seq RESTART WITH 100")')
    root = histories.project_with(tmp_path / "project", [histories.script("a.py", "sq000000000a", None, "tickets",
                                                                          body)])
    assert run(root, "checkpoint", "sq000000000a", "--replay-on", pg_server.url()).returncode == 0
    url = pg_server.create_database()
    done = run(root, "--url", url, "upgrade", imports=True)
    assert done.returncode == 0 and "checkpoint of 1 revisions" in done.stdout, done.stderr
    assert done.imported.isdisjoint(HEAVY)  # type: ignore[attr-defined]
    with psycopg.connect(host=str(pg_server.socket_dir), user=pg_server.user,
                         dbname=url.split("@/")[1].split("?")[0]) as connection:
        assert connection.execute("INSERT INTO ticket (note) VALUES ('x') RETURNING id").fetchone() == (100,)
        assert connection.execute("INSERT INTO label DEFAULT VALUES RETURNING id").fetchone() == (1,)


def test_a_database_in_use_is_never_write_locked_by_the_fast_install(project: Path, tmp_path: Path) -> None:
    """A database at a revision, an application holding its write lock: the fast install sees
    tables through a read and steps aside at once, so the one wait is the full path's, within
    its bound, in its words."""
    import time

    path = tmp_path / "busy.db"
    url = f"sqlite:///{path}"
    assert run(project, "--url", url, "upgrade", SHIPPED[-2]).returncode == 0
    application = sqlite3.connect(path, isolation_level=None)
    application.execute("BEGIN IMMEDIATE")
    try:
        began = time.monotonic()
        waited = run(project, "--url", url, "--busy-timeout", "1", "upgrade")
        elapsed = time.monotonic() - began
    finally:
        application.execute("ROLLBACK")
        application.close()
    assert waited.returncode == 1 and "locked" in waited.stderr and "checkpoint" not in waited.stderr, waited.stderr
    assert elapsed < 1 + 1.5, elapsed  # one bound, not two
