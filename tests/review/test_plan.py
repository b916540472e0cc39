"""``plan``: what an upgrade will do, seen on a scratch copy of the real servers: PostgreSQL's
lock levels as its sessions hold them, rewrites, the target's table sizes, lint, a verdict;
``plan --out`` and ``upgrade --plan``, refused after a script edit and after another
migrator moved the database; SQLite's batch rebuilds and MariaDB's copying ALTERs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.checks.test_roundtrip import CHANGE, GADGET, change, project
from tests.conftest import Cli
from tests.observe.test_json_output import valid
from tests.runtime.test_api import HEAD

TO_BIGINT = change('    op.alter_column("gadget", "weight", type_=sa.BigInteger, existing_type=sa.Integer)',
                   '    op.alter_column("gadget", "weight", type_=sa.Integer, existing_type=sa.BigInteger)')
INDEX = change('    op.create_index("ix_gadget_weight", "gadget", ["weight"])',
               '    op.drop_index("ix_gadget_weight", "gadget")')
INDEX_CONCURRENTLY = change(
    '    with op.get_context().autocommit_block():\n'
    '        op.create_index("ix_gadget_weight", "gadget", ["weight"], postgresql_concurrently=True)',
    '    with op.get_context().autocommit_block():\n'
    '        op.drop_index("ix_gadget_weight", "gadget", postgresql_concurrently=True)')
ROWS = 2000


def engine_for(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def gadgets_with_rows(cli: Cli, url: str, *, analyze: bool = True) -> None:
    """The gadget table at its revision, with rows, as production has it."""
    done = cli("--url", url, "upgrade", GADGET)
    assert done.returncode == 0, done.stderr
    engine = engine_for(url)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO gadget (id, label, weight) VALUES (:id, :label, :weight)"),
                           [{"id": n, "label": f"g{n}", "weight": n} for n in range(1, ROWS + 1)])
    if analyze and url.startswith("postgresql"):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE gadget")
    engine.dispose()


def planned(done: object) -> dict:
    assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    return valid(json.loads(done.stdout), "plan")  # type: ignore[attr-defined]


def schemas(url: str) -> set[str]:
    engine = engine_for(url)
    with engine.connect() as connection:
        found = set(connection.scalars(sa.text("SELECT nspname FROM pg_namespace")))
    engine.dispose()
    return found


def test_int_to_bigint_on_a_table_with_rows_rewrites_it_under_access_exclusive(
        source_copy: Path, postgresql_url: str) -> None:
    cli = project(source_copy, TO_BIGINT)
    gadgets_with_rows(cli, postgresql_url)
    before = schemas(postgresql_url)
    plan = planned(cli("--url", postgresql_url, "plan", "--json"))
    (rev,) = plan["revisions"]
    assert (plan["current"], rev["revision"], plan["verdict"]) == ([GADGET], CHANGE, "blocking")
    assert rev["locks"] == {"gadget": "AccessExclusiveLock"} and rev["rewrites"] == ["gadget"]
    (statement,) = rev["statements"]
    assert statement["sql"] == "ALTER TABLE gadget ALTER COLUMN weight TYPE BIGINT"
    assert statement["locks"] == {"gadget": "AccessExclusiveLock"} and statement["rewrites"] == ["gadget"]
    size = rev["tables"]["gadget"]
    assert size["rows"] == ROWS and size["estimated"] and size["bytes"] > 8192 * 4
    assert rev["why"].startswith(f"rewrites gadget (~{ROWS:,} rows, ") and "AccessExclusiveLock" in rev["why"]
    # lint's findings on it, squawk's among them (the suite installs it): retyping a column.
    assert "changing-column-type" in {finding["rule"] for finding in rev["lint"]}, rev["lint"]
    # The database was only read: still at its revision, the column still an integer, no scratch left.
    engine = engine_for(postgresql_url)
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT data_type FROM information_schema.columns "
                                         "WHERE table_name = 'gadget' AND column_name = 'weight'")) == "integer"
        assert connection.scalar(sa.text("SELECT version_num FROM alembic_version")) == GADGET
    engine.dispose()
    assert schemas(postgresql_url) == before


def test_a_table_never_analyzed_is_counted_and_the_text_says_the_verdict(source_copy: Path, postgresql_url: str) -> None:
    cli = project(source_copy, TO_BIGINT)
    gadgets_with_rows(cli, postgresql_url, analyze=False)
    plan = planned(cli("--url", postgresql_url, "plan", "--json"))
    assert plan["revisions"][0]["tables"]["gadget"]["rows"] == ROWS
    assert plan["revisions"][0]["tables"]["gadget"]["estimated"] is False
    text = cli("--url", postgresql_url, "plan")
    assert text.returncode == 0, text.stderr
    assert f"  verdict: blocking: rewrites gadget ({ROWS:,} rows, " in text.stdout
    assert "      gadget AccessExclusiveLock; rewrites gadget\n" in text.stdout
    assert text.stdout.splitlines()[-1].endswith(f"at {GADGET}, to head: 1 revision(s) pending; verdict: blocking")
    for gate, code in (("fails", 0), ("blocking", 1), ("brief", 1)):  # a CI gate: this verdict or worse
        assert cli("--url", postgresql_url, "plan", "--fail-on", gate, "-q").returncode == code, gate


def test_an_index_blocks_writes_and_one_built_concurrently_does_not(source_copy: Path, postgresql_url: str) -> None:
    cli = project(source_copy, INDEX)
    gadgets_with_rows(cli, postgresql_url)
    (rev,) = planned(cli("--url", postgresql_url, "plan", "--json"))["revisions"]
    assert rev["locks"] == {"gadget": "ShareLock"} and rev["rewrites"] == []
    assert rev["verdict"] == "blocking" and rev["why"].startswith("builds an index on gadget")
    concurrently = project(source_copy, INDEX_CONCURRENTLY)
    (rev,) = planned(concurrently("--url", postgresql_url, "plan", "--json"))["revisions"]
    (statement,) = rev["statements"]
    assert statement["sql"] == "CREATE INDEX CONCURRENTLY ix_gadget_weight ON gadget (weight)"
    assert statement["outside_transaction"] is True
    assert statement["locks"] == {"gadget": "ShareUpdateExclusiveLock"}
    assert (rev["verdict"], rev["rewrites"]) == ("ok", [])


def test_an_index_dropped_concurrently_is_named_with_its_table(source_copy: Path, postgresql_url: str) -> None:
    """DROP INDEX CONCURRENTLY names the index alone: its table is looked up before it runs."""
    cli = project(source_copy, change(
        '    with op.get_context().autocommit_block():\n'
        '        op.drop_index("ix_note_my_table_id", "note", postgresql_concurrently=True)',
        '    op.create_index("ix_note_my_table_id", "note", ["my_table_id"])'))
    assert cli("--url", postgresql_url, "upgrade", GADGET).returncode == 0
    (rev,) = planned(cli("--url", postgresql_url, "plan", "--json"))["revisions"]
    (statement,) = rev["statements"]
    assert statement["sql"] == "DROP INDEX CONCURRENTLY ix_note_my_table_id"
    assert statement["locks"] == {"note": "ShareUpdateExclusiveLock"} and statement["outside_transaction"]
    assert rev["verdict"] == "ok"


def test_the_shipped_history_a_brief_widening_a_blocking_unique_constraint_an_online_index(
        cli: Cli, postgresql_url: str) -> None:
    """The varchar widening takes AccessExclusiveLock and rewrites nothing (roundtrip --report's
    reading); the unique constraint builds its index over the rows under that lock; the index
    built CONCURRENTLY makes nothing wait."""
    assert cli("--url", postgresql_url, "upgrade", "1c639967c1b5").returncode == 0
    engine = engine_for(postgresql_url)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO my_table (id, name, display_name) SELECT g, 'n' || g, 'd' || g "
                                   "FROM generate_series(1, 3000) g"))
    engine.dispose()
    widen, unique, index = planned(cli("--url", postgresql_url, "plan", "--json"))["revisions"]
    assert widen["locks"] == {"my_table": "AccessExclusiveLock"} and widen["rewrites"] == []
    assert widen["verdict"] == "brief" and "--statement-lock-timeout" in widen["why"]
    assert unique["verdict"] == "blocking" and unique["why"].startswith("builds an index on my_table (3,000 rows")
    assert "its reads and writes wait" in unique["why"]
    assert index["verdict"] == "ok" and index["locks"] == {"note": "ShareUpdateExclusiveLock"}


def test_a_not_null_column_without_a_default_fails_on_rows_the_empty_copy_does_not_have(
        source_copy: Path, postgresql_url: str) -> None:
    """The scratch copy has no rows, so the ALTER goes through there; the plan says it will
    not where there are rows, and the real upgrade agrees."""
    cli = project(source_copy, change('    op.add_column("gadget", sa.Column("grams", sa.Integer, nullable=False))',
                                      '    op.drop_column("gadget", "grams")'))
    gadgets_with_rows(cli, postgresql_url)
    (rev,) = planned(cli("--url", postgresql_url, "plan", "--json"))["revisions"]
    assert rev["verdict"] == "fails" and rev["why"].startswith("adds a NOT NULL column without a default to gadget")
    upgraded = cli("--url", postgresql_url, "upgrade")
    assert upgraded.returncode == 1 and "grams" in upgraded.stderr and "null" in upgraded.stderr.lower()


@pytest.mark.parametrize(("sql", "mode", "verdict"), [
    ("ALTER TABLE t ADD CONSTRAINT fk_t_u FOREIGN KEY(u) REFERENCES u (id)", "ShareRowExclusiveLock", "blocking"),
    ("ALTER TABLE t ADD CONSTRAINT fk_t_u FOREIGN KEY(u) REFERENCES u (id) NOT VALID", "ShareRowExclusiveLock", "brief"),
    ("ALTER TABLE t ALTER COLUMN c SET NOT NULL", "AccessExclusiveLock", "blocking"),
    ("ALTER TABLE t ADD CONSTRAINT uq_t_c UNIQUE USING INDEX ix_t_c", "AccessExclusiveLock", "brief"),
    ("UPDATE t SET c = 1", "RowExclusiveLock", "ok"),
    ("ALTER TABLE t VALIDATE CONSTRAINT fk_t_u", "ShareUpdateExclusiveLock", "ok"),
    ("ALTER TABLE t ADD COLUMN price NUMERIC(10, 2) NOT NULL", "AccessExclusiveLock", "fails"),
    ("ALTER TABLE t ADD COLUMN price NUMERIC(10, 2) DEFAULT '0' NOT NULL", "AccessExclusiveLock", "brief"),
    ("ALTER TABLE t ADD COLUMN n INTEGER NOT NULL GENERATED ALWAYS AS IDENTITY", "AccessExclusiveLock", "brief"),
    ("ALTER TABLE t ADD CONSTRAINT ck_t_c CHECK (c IS NOT NULL) NOT VALID", "AccessExclusiveLock", "brief"),
])
def test_each_statement_kind_weighs_as_the_lock_and_the_work_it_does(sql: str, mode: str, verdict: str) -> None:
    from mypkg.migrate.results import PlannedStatement, TableSize
    from mypkg.migrate.review.verdict import judge

    found, why = judge("postgresql", [PlannedStatement(sql, {"t": mode}, ())], {"t": mode}, (), {"t"},
                       {"t": TableSize(10, 8192)})
    assert found == verdict, why
    empty, _why = judge("postgresql", [PlannedStatement(sql, {"t": mode}, ())], {"t": mode}, (), {"t"},
                        {"t": TableSize(0, 8192)})
    assert empty == ("brief" if verdict in ("blocking", "fails") else verdict)  # an empty table: nothing to wait for


def test_a_tenant_schema_is_planned_in_its_own_schema(cli: Cli, postgresql_url: str) -> None:
    tenant = 'tenant "q"; x'
    assert cli("--url", postgresql_url, "--schema", tenant, "upgrade", "1c639967c1b5").returncode == 0
    plan = planned(cli("--url", postgresql_url, "--schema", tenant, "plan", "--json"))
    assert plan["current"] == ["1c639967c1b5"] and [r["revision"] for r in plan["revisions"]][-1] == HEAD
    assert plan["revisions"][0]["locks"] == {"my_table": "AccessExclusiveLock"}
    assert plan["revisions"][0]["tables"]["my_table"]["rows"] == 0
    assert not any(name.startswith("mypkg_plan") for name in schemas(postgresql_url))


def test_the_plan_file_applies_exactly_what_was_reviewed(source_copy: Path, postgresql_url: str, tmp_path: Path) -> None:
    cli = project(source_copy, TO_BIGINT)
    gadgets_with_rows(cli, postgresql_url)
    path = tmp_path / "reviewed" / "plan.json"
    path.parent.mkdir()
    done = cli("--url", postgresql_url, "plan", "--out", str(path), "--markdown")
    assert done.returncode == 0, done.stderr
    assert "| `9a0000000002` change gadget | **blocking** | gadget: AccessExclusiveLock | gadget |" in done.stdout
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # a copy readable by no more users than the data
    assert json.loads(path.read_text())["revisions"][0]["revision"] == CHANGE
    applied = cli("--url", postgresql_url, "upgrade", "--plan", str(path), "--json")
    assert applied.returncode == 0, applied.stderr
    assert [step["revision"] for step in json.loads(applied.stdout)["applied"]] == [CHANGE]


def test_a_plan_is_refused_after_a_script_edit_and_after_another_migrator_moved_the_database(
        source_copy: Path, postgresql_url: str, tmp_path: Path) -> None:
    cli = project(source_copy, TO_BIGINT)
    gadgets_with_rows(cli, postgresql_url)
    path = tmp_path / "plan.json"
    assert cli("--url", postgresql_url, "plan", "--out", str(path)).returncode == 0
    script = next((source_copy / "alembic" / "versions").glob(f"*{CHANGE}*.py"))
    reviewed = script.read_text()
    script.write_text(reviewed.replace("sa.BigInteger, existing_type", "sa.Numeric, existing_type", 1))
    edited = cli("--url", postgresql_url, "upgrade", "--plan", str(path))
    assert edited.returncode == 1 and edited.stderr.count("\n") == 1, edited.stderr
    assert f"the script of {CHANGE} changed since the plan" in edited.stderr and "nothing run" in edited.stderr
    script.write_text(reviewed)
    # Another migrator moves the database on after the review: the plan no longer holds.
    assert cli("--url", postgresql_url, "upgrade").returncode == 0
    assert cli("--url", postgresql_url, "downgrade", "-1").returncode == 0  # back at GADGET...
    assert cli("--url", postgresql_url, "downgrade", "-1").returncode == 0  # ...and one further
    moved = cli("--url", postgresql_url, "upgrade", "--plan", str(path))
    assert moved.returncode == 1 and moved.stderr.count("\n") == 1, moved.stderr
    assert f"was made at {GADGET}" in moved.stderr and f"is at {HEAD}" in moved.stderr
    engine = engine_for(postgresql_url)
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT version_num FROM alembic_version")) == HEAD  # nothing run
    engine.dispose()


def test_a_plan_is_refused_when_the_revision_went_on_by_a_migration_between(
        source_copy: Path, sqlite_url: str, tmp_path: Path) -> None:
    """Checked under the migration lock: a plan made at HEAD for GADGET and CHANGE, the database
    since moved to GADGET by another migrator: CHANGE alone is no longer what was reviewed.
    Once there, the plan has nothing to run: a deploy run again is no failure."""
    cli = project(source_copy, INDEX)
    assert cli("--url", sqlite_url, "upgrade", HEAD).returncode == 0
    path = tmp_path / "plan.json"
    assert cli("--url", sqlite_url, "plan", "--out", str(path), "-q").returncode == 0
    for choosing in (["--baseline", HEAD], ["--phase", "pre"], ["--only", "mypkg"], ["--without", "audit"]):
        both = cli("--url", sqlite_url, "upgrade", "--plan", str(path), *choosing)  # the plan chooses the revisions
        assert both.returncode == 2 and "--plan runs the revisions the plan reviewed" in both.stderr, (choosing, both.stderr)
    assert cli("--url", sqlite_url, "upgrade", GADGET).returncode == 0
    moved = cli("--url", sqlite_url, "upgrade", "--plan", str(path))
    assert moved.returncode == 1 and f"is at {GADGET} (another migrator moved it)" in moved.stderr, moved.stderr
    assert cli("--url", sqlite_url, "upgrade").returncode == 0
    again = cli("--url", sqlite_url, "upgrade", "--plan", str(path))
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr


def test_sqlite_batch_rebuild_of_a_table_with_rows_blocks_writers(cli: Cli, sqlite_url: str) -> None:
    assert cli("--url", sqlite_url, "upgrade", "cdc55a093c1f").returncode == 0
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO my_table (id, name, display_name) VALUES (:id, :n, :n)"),
                           [{"id": n, "n": f"n{n}"} for n in range(1, 501)])
        connection.execute(sa.text("INSERT INTO note (id, my_table_id, body) VALUES (:id, :id, 'b')"),
                           [{"id": n} for n in range(1, 101)])
    engine.dispose()
    plan = planned(cli("--url", sqlite_url, "plan", "--json"))
    rebuild, index = plan["revisions"]
    assert index["verdict"] == "blocking" and index["why"].startswith("builds an index on note (100 rows, ")
    assert "CONCURRENTLY" not in index["why"]  # PostgreSQL's way out; SQLite has none
    assert rebuild["rewrites"] == ["my_table"] and rebuild["verdict"] == "blocking"
    assert rebuild["locks"] == {"my_table": "database write lock"}  # batch mode's temporary copy left out
    assert rebuild["tables"]["my_table"]["rows"] == 500
    assert rebuild["tables"]["my_table"]["bytes"] >= 4096  # dbstat: the table's pages and its indexes'
    text = cli("--url", sqlite_url, "plan")
    assert "  CREATE TABLE _alembic_tmp_my_table ( id INTEGER NOT NULL, " in text.stdout
    assert max(len(line) for line in text.stdout.splitlines() if line.startswith("  CREATE")) == 2 + 160


def test_mariadb_a_copying_alter_is_a_rebuild(source_copy: Path, mysql_url: str) -> None:
    cli = project(source_copy, TO_BIGINT)
    gadgets_with_rows(cli, mysql_url)
    plan = planned(cli("--url", mysql_url, "plan", "--json"))
    (rev,) = plan["revisions"]
    assert plan["dialect"] == "mysql" and rev["rewrites"] == ["gadget"] and rev["verdict"] == "blocking"
    assert rev["locks"] == {"gadget": "metadata lock"} and rev["tables"]["gadget"]["bytes"] > 0
    assert any(note.startswith("MySQL and MariaDB: each DDL statement's lock") for note in plan["notes"])
    markdown = cli("--url", mysql_url, "plan", "--markdown")
    assert markdown.returncode == 0 and f"at `{GADGET}`, to `head`." in markdown.stdout


def test_nothing_pending_an_empty_database_and_bad_input(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    empty = planned(cli("--url", sqlite_url, "plan", "--json"))
    assert empty["current"] == [] and empty["verdict"] == "ok" and "the database is empty" in empty["notes"][0]
    assert {rev["verdict"] for rev in empty["revisions"]} == {"ok"}
    assert not any(note.startswith("MySQL") for note in empty["notes"])
    markdown = cli("--url", sqlite_url, "plan", "--markdown")
    assert markdown.returncode == 0 and "(sqlite) at an empty database, to `head`." in markdown.stdout
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # read, never created
    logged = cli("--url", sqlite_url, "--log-format", "json", "plan")
    events = [json.loads(line)["event"] for line in logged.stderr.splitlines()]
    assert events == ["command.start", "command.end"], logged.stderr  # the scratch copy's runs are not the command's
    assert cli("--url", sqlite_url, "upgrade", "cdc55a093c1f").returncode == 0
    read_only = planned(cli("--url", sqlite_url + "?mode=ro", "plan", "--json"))  # plan only reads it
    logged = cli("--url", sqlite_url, "--log-format", "json", "plan")  # its copy built up to there: not logged
    assert [json.loads(line)["event"] for line in logged.stderr.splitlines()] == ["command.start", "command.end"]
    assert [rev["revision"] for rev in read_only["revisions"]][-1] == HEAD
    assert cli("--url", sqlite_url, "upgrade").returncode == 0
    done = cli("--url", sqlite_url, "plan")
    assert done.returncode == 0 and done.stdout.endswith("nothing pending; verdict: ok\n"), done.stdout
    unknown = cli("--url", sqlite_url, "plan", "zzz")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    (tmp_path / "not-a-plan.json").write_text("{}")
    for bad in (str(tmp_path / "missing.json"), str(tmp_path / "not-a-plan.json")):
        refused = cli("--url", sqlite_url, "upgrade", "--plan", bad)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    both = cli("--url", sqlite_url, "upgrade", HEAD, "--plan", str(tmp_path / "not-a-plan.json"))
    assert both.returncode == 2


def test_a_fleet_applies_a_plan_made_on_one_tenant_and_refuses_the_tenant_elsewhere(
        cli: Cli, postgresql_url: str, tmp_path: Path) -> None:
    """Planned on one tenant at the middle revision; three tenants there take it, one behind
    is refused (its row), one at head has nothing to run; run again, nothing runs twice."""
    middle, behind = "1c639967c1b5", "6e3de03981af"
    for number, at in enumerate([middle, middle, middle, behind, HEAD]):
        assert cli("--url", postgresql_url, "--schema", f"tenant_{number}", "upgrade", at).returncode == 0
    path = tmp_path / "plan.json"
    assert cli("--url", postgresql_url, "--schema", "tenant_0", "plan", "--out", str(path), "-q").returncode == 0
    done = cli("--url", postgresql_url, "fleet", "upgrade", "--schemas", "tenant_*", "--plan", str(path), "--json")
    assert done.returncode == 1, done.stderr
    rows = {row["target"].rpartition("schema=")[2]: row for row in json.loads(done.stdout)["targets"]}
    assert {name: row["outcome"] for name, row in rows.items()} == {
        "tenant_0": "migrated", "tenant_1": "migrated", "tenant_2": "migrated", "tenant_3": "failed",
        "tenant_4": "unchanged"}
    assert f"was made at {middle}" in rows["tenant_3"]["error"] and f"is at {behind}" in rows["tenant_3"]["error"]
    assert rows["tenant_3"]["after"] == [] and {rows[f"tenant_{n}"]["after"][0] for n in range(3)} == {HEAD}
    again = cli("--url", postgresql_url, "fleet", "upgrade", "--schemas", "tenant_[0-2]", "--plan", str(path), "--json")
    assert again.returncode == 0 and {row["outcome"] for row in json.loads(again.stdout)["targets"]} == {"unchanged"}
    assert cli("--url", postgresql_url, "--schema", "tenant_3", "current").stdout.split()[0] == behind
    wrong = cli("--url", postgresql_url, "fleet", "status", "--schemas", "tenant_*", "--plan", str(path))
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1


EXTENSION_INDEX = change(
    '    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")\n'
    '    op.create_index("ix_gadget_label_trgm", "gadget", ["label"], postgresql_using="gin",\n'
    '                    postgresql_ops={"label": "gin_trgm_ops"})',
    '    op.drop_index("ix_gadget_label_trgm", "gadget")')


def test_an_extension_the_database_has_in_public_is_there_for_the_scratch_copy(
        source_copy: Path, postgresql_url: str) -> None:
    """prefect's history on the corpus: pg_trgm in public, an index using its operator class.
    The scratch copy is a database of its own holding the target's extensions (a schema
    beside public could not see it without seeing the real tables too)."""
    cli = project(source_copy, EXTENSION_INDEX)
    gadgets_with_rows(cli, postgresql_url)
    engine = engine_for(postgresql_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE EXTENSION pg_trgm")
        databases = set(connection.scalars(sa.text("SELECT datname FROM pg_database")))
    (rev,) = planned(cli("--url", postgresql_url, "plan", "--json"))["revisions"]
    assert rev["verdict"] == "blocking" and rev["locks"] == {"gadget": "ShareLock"}, rev
    with engine.begin() as connection:
        assert set(connection.scalars(sa.text("SELECT datname FROM pg_database"))) == databases  # dropped
    engine.dispose()
    assert cli("--url", postgresql_url, "upgrade").returncode == 0
    drift = cli("--url", postgresql_url, "drift")  # its scratch copy needs the extension too
    assert drift.returncode == 0 and drift.stdout.endswith(f"no drift from the schema {CHANGE} builds\n"), drift.stderr


def test_a_revision_shipped_after_the_review_is_not_run_with_it(source_copy: Path, sqlite_url: str,
                                                                  tmp_path: Path) -> None:
    """The database where the plan was made, but the package now ships one revision more."""
    cli = project(source_copy, INDEX)
    assert cli("--url", sqlite_url, "upgrade", GADGET).returncode == 0
    path = tmp_path / "plan.json"
    assert cli("--url", sqlite_url, "plan", "--out", str(path), "-q").returncode == 0
    later = (source_copy / "alembic" / "versions" / f"9999_{CHANGE}_change_gadget.py").read_text()
    later = later.replace(f'revision = "{CHANGE}"', 'revision = "9a0000000003"').replace(
        f'down_revision = "{GADGET}"', f'down_revision = "{CHANGE}"').replace("ix_gadget_weight", "ix_gadget_weight_2")
    (source_copy / "alembic" / "versions" / "9999_9a0000000003_later.py").write_text(later)
    refused = cli("--url", sqlite_url, "upgrade", "--plan", str(path))
    assert refused.returncode == 1, refused.stderr
    assert f"would run {CHANGE}, 9a0000000003; the plan {path} reviewed {CHANGE}; nothing run" in refused.stderr


def test_without_squawk_the_plan_says_only_the_own_lint_rules_ran(source_copy: Path, postgresql_url: str,
                                                                  tmp_path: Path) -> None:
    """A venv without the optional squawk: the plan still comes, with a note saying so."""
    import subprocess
    import sys

    cli = project(source_copy, TO_BIGINT)
    gadgets_with_rows(cli, postgresql_url)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    site = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    env.update(PYTHONPATH=os.pathsep.join([str(source_copy), site]), PATH="/usr/bin:/bin")
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "mypkg", "--url", postgresql_url, "plan", "--json"],
                          cwd=source_copy, env=env, capture_output=True, text=True, timeout=180)
    plan = planned(done)
    assert any("squawk is not installed" in note for note in plan["notes"]), plan["notes"]
    assert "changing-column-type" not in {f["rule"] for f in plan["revisions"][0]["lint"]}
    assert plan["revisions"][0]["verdict"] == "blocking"  # the plan's own reading does not need it


def test_a_never_analyzed_table_up_to_64_megabytes_is_counted(source_copy: Path, postgresql_url: str) -> None:
    """Autovacuum off for the table: its reltuples stays -1 (never analyzed); at a few MB it
    is counted exactly."""
    cli = project(source_copy, TO_BIGINT)
    assert cli("--url", postgresql_url, "upgrade", GADGET).returncode == 0
    engine = engine_for(postgresql_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE gadget SET (autovacuum_enabled = false)")
        connection.exec_driver_sql("INSERT INTO gadget (id, label, weight) "
                                   "SELECT g, repeat('x', 60) || g, g FROM generate_series(1, 30000) g")
    engine.dispose()
    (rev,) = planned(cli("--url", postgresql_url, "plan", "--json"))["revisions"]
    size = rev["tables"]["gadget"]
    assert size["bytes"] > 2 * 1024 * 1024 and size == {"rows": 30000, "bytes": size["bytes"], "estimated": False}


SQLITE_REBUILD_TO_A_LOWER_PAGE = (
    '    op.create_table("junk", sa.Column("id", sa.Integer, primary_key=True))\n'
    '    op.create_table("gadget2", sa.Column("id", sa.Integer, primary_key=True), sa.Column("weight", sa.Integer))\n'
    '    op.drop_table("junk")',
    '    op.drop_table("gadget2")')


def test_a_sqlite_rebuild_whose_copy_lands_on_a_lower_page_is_still_a_rewrite(source_copy: Path, sqlite_url: str) -> None:
    """The dropped table's page is free below gadget2's: batch mode's copy takes it. A
    rewrite is storage that changed, not storage that grew."""
    versions = source_copy / "alembic" / "versions"
    (versions / f"9999_{GADGET}_create_gadget.py").write_text(change(*SQLITE_REBUILD_TO_A_LOWER_PAGE).replace(
        CHANGE, GADGET).replace(f'down_revision = "{GADGET}"', f'down_revision = "{HEAD}"').replace(
        f"Revises: {GADGET}", f"Revises: {HEAD}"))
    (versions / f"9999_{CHANGE}_change_gadget.py").write_text(change(
        '    with op.batch_alter_table("gadget2") as batch:\n        batch.alter_column("weight", type_=sa.BigInteger)',
        "    pass").replace('"gadget"', '"gadget2"'))
    cli = Cli(source_copy, {"PYTHONPATH": str(source_copy)})
    assert cli("--url", sqlite_url, "upgrade", GADGET).returncode == 0
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO gadget2 (id, weight) VALUES (1, 2), (2, 3)")
    engine.dispose()
    (rev,) = planned(cli("--url", sqlite_url, "plan", "--json"))["revisions"]
    assert rev["rewrites"] == ["gadget2"] and rev["verdict"] == "blocking", rev
    renamed = rev["statements"][-1]  # the copy renamed into place: where the statement sees it
    assert renamed["sql"] == "ALTER TABLE _alembic_tmp_gadget2 RENAME TO gadget2" and renamed["rewrites"] == ["gadget2"]


def test_an_asyncpg_url_is_planned_as_the_sync_one(source_copy: Path, postgresql_url: str) -> None:
    """prefect's URL on the corpus (postgresql+asyncpg://): the catalog reads' parameters
    typed by asyncpg the way the server infers them."""
    cli = project(source_copy, TO_BIGINT)
    gadgets_with_rows(cli, postgresql_url)
    asyncpg = postgresql_url.replace("postgresql+psycopg://", "postgresql+asyncpg://", 1)
    (rev,) = planned(cli("--url", asyncpg, "plan", "--json"))["revisions"]
    assert rev["tables"]["gadget"]["rows"] == ROWS and rev["tables"]["gadget"]["bytes"] > 0
    assert rev["verdict"] == "blocking" and rev["rewrites"] == ["gadget"]
    drift = cli("--url", asyncpg, "drift")  # drift on it too (it was never bridged)
    assert drift.returncode == 0 and drift.stdout.endswith(f"no drift from the schema {GADGET} builds\n"), drift.stderr


def test_a_revision_that_fails_on_the_copy_is_planned_as_failing_and_nothing_after_it(
        source_copy: Path, sqlite_url: str) -> None:
    cli = project(source_copy, change('    op.execute("INSERT INTO no_such_table VALUES (1)")', "    pass"))
    assert cli("--url", sqlite_url, "upgrade", HEAD).returncode == 0
    plan = planned(cli("--url", sqlite_url, "plan", "--json"))
    created, failing = plan["revisions"]
    assert (created["revision"], created["verdict"], created["created"]) == (GADGET, "ok", ["gadget"])
    assert (failing["revision"], failing["verdict"], plan["verdict"]) == (CHANGE, "fails", "fails")
    assert failing["why"].startswith("fails on a copy of the schema: ") and "no_such_table" in failing["why"]
    assert f"the revisions after {CHANGE} are not planned: it fails before them" in plan["notes"]
    assert cli("--url", sqlite_url, "current").stdout.split()[0] == HEAD  # the database untouched


def test_a_role_without_createdb_plans_and_drifts_in_a_scratch_schema(source_copy: Path, postgresql_url: str) -> None:
    """The database's owner, no CREATEDB: the scratch copy is a schema in its database
    (dropped afterwards), for plan and drift alike."""
    import uuid

    role = f"planner_{uuid.uuid4().hex[:8]}"
    name = sa.engine.make_url(postgresql_url).database
    engine = engine_for(postgresql_url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
        connection.exec_driver_sql(f'ALTER DATABASE "{name}" OWNER TO "{role}"')
        connection.exec_driver_sql(f'ALTER SCHEMA public OWNER TO "{role}"')
    engine.dispose()
    as_role = postgresql_url.replace("postgres@", f"{role}@", 1)
    cli = project(source_copy, TO_BIGINT)
    gadgets_with_rows(cli, as_role)
    (rev,) = planned(cli("--url", as_role, "plan", "--json"))["revisions"]
    assert rev["locks"] == {"gadget": "AccessExclusiveLock"} and rev["rewrites"] == ["gadget"]
    assert cli("--url", as_role, "drift").returncode == 0
    # A new tenant's schema: the scratch schema the runner makes is not the first revision's work.
    fresh = planned(cli("--url", as_role, "--schema", "tenant_new", "plan", "--json"))
    assert fresh["revisions"][0]["statements"][0]["sql"].startswith("CREATE TABLE my_table"), fresh["revisions"][0]
    assert not any(found.startswith("mypkg_") for found in schemas(postgresql_url))  # every scratch schema dropped
    engine = engine_for(postgresql_url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        assert not connection.scalar(sa.text("SELECT count(*) FROM pg_database WHERE datname LIKE 'mypkg%'"))
        connection.exec_driver_sql(f'ALTER DATABASE "{name}" OWNER TO postgres')
        connection.exec_driver_sql("ALTER SCHEMA public OWNER TO postgres")
        connection.exec_driver_sql(f'REASSIGN OWNED BY "{role}" TO postgres')
        connection.exec_driver_sql(f'DROP OWNED BY "{role}"')
        connection.exec_driver_sql(f'DROP ROLE "{role}"')
    engine.dispose()


def test_a_table_locked_by_another_session_is_sized_unknown_within_the_lock_timeout(
        source_copy: Path, postgresql_url: str) -> None:
    """An application's ALTER holds gadget: the plan's size read waits --lock-timeout, no
    longer, tells the size unknown, and weighs it as rows."""
    import time

    cli = project(source_copy, TO_BIGINT)
    gadgets_with_rows(cli, postgresql_url)
    engine = engine_for(postgresql_url)
    with engine.connect() as holder:
        holder.exec_driver_sql("LOCK TABLE gadget IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        done = cli("--url", postgresql_url, "plan", "--json", "--lock-timeout", "1")
        took = time.monotonic() - started
        holder.rollback()
    engine.dispose()
    (rev,) = planned(done)["revisions"]
    assert rev["tables"]["gadget"]["bytes"] is None and rev["verdict"] == "blocking"
    assert took < 20, took  # bounded: one second per read, not the holder's whole transaction


def test_through_a_transaction_pooler_the_plan_reads_the_locks_of_its_own_session(
        source_copy: Path, postgresql_url: str, pg_server: object) -> None:
    """pgbouncer in transaction mode: each statement's lock is read in the same transaction,
    so on the same server session; the scratch database is reached through the pooler too."""
    from tests.servers.pgbouncer import PgBouncer
    from tests.servers.postgresql import database_name

    cli = project(source_copy, TO_BIGINT)
    gadgets_with_rows(cli, postgresql_url)
    bouncer = PgBouncer(pg_server, "transaction").start()  # type: ignore[arg-type]
    try:
        pooled = bouncer.url(database_name(postgresql_url))
        (rev,) = planned(cli("--url", pooled, "plan", "--json"))["revisions"]
        assert rev["locks"] == {"gadget": "AccessExclusiveLock"} and rev["rewrites"] == ["gadget"]
        assert rev["tables"]["gadget"]["rows"] == ROWS and rev["verdict"] == "blocking"
        path = Path(str(source_copy)) / "plan.json"
        assert cli("--url", pooled, "plan", "--out", str(path), "-q").returncode == 0
        applied = cli("--url", pooled, "upgrade", "--plan", str(path))
        assert applied.returncode == 0, applied.stderr
        # The pooler kept server sessions open on each scratch database: dropped all the same.
        engine = engine_for(postgresql_url)
        with engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT count(*) FROM pg_database WHERE datname LIKE 'mypkg%'")) == 0
        engine.dispose()
    finally:
        bouncer.stop()


@pytest.mark.parametrize(("rows", "size", "estimated", "shown"), [
    (3000, 253952, True, "~3,000 rows, 248.0 kB"),
    (12, 512, False, "12 rows, 512 bytes"),
    (None, 5 * 1024 ** 3, False, "5.0 GB"),
    (7, None, False, "7 rows"),
    (None, None, False, "size unknown"),
])
def test_sizes_read_as_people_write_them(rows: int | None, size: int | None, estimated: bool, shown: str) -> None:
    from mypkg.migrate.results import TableSize
    from mypkg.migrate.review.verdict import size_text

    assert size_text(TableSize(rows, size, estimated)) == shown


def test_a_rolling_deploy_is_planned_and_applied_phase_by_phase(source_copy: Path, sqlite_url: str,
                                                                 tmp_path: Path) -> None:
    """plan --phase pre: what runs while the old release still serves; its file applies that
    phase alone; then plan --phase post for the rest."""
    from tests.runtime.test_phases import add

    add(source_copy, "b0000000e001", HEAD)
    add(source_copy, "b0000000c001", "b0000000e001", phase="post")
    cli = Cli(source_copy, {"PYTHONPATH": str(source_copy)})
    assert cli("--url", sqlite_url, "upgrade", HEAD).returncode == 0
    pre, post = tmp_path / "pre.json", tmp_path / "post.json"
    first = planned(cli("--url", sqlite_url, "plan", "--phase", "pre", "--out", str(pre), "--json"))
    assert (first["phase"], [rev["revision"] for rev in first["revisions"]]) == ("pre", ["b0000000e001"])
    everything = planned(cli("--url", sqlite_url, "plan", "--json"))
    assert [rev["revision"] for rev in everything["revisions"]] == ["b0000000e001", "b0000000c001"]
    applied = cli("--url", sqlite_url, "upgrade", "--plan", str(pre))
    assert applied.returncode == 0, applied.stderr
    assert cli("--url", sqlite_url, "current").stdout.split()[0] == "b0000000e001"  # the pre phase alone
    second = planned(cli("--url", sqlite_url, "plan", "--phase", "post", "--out", str(post), "--json"))
    assert [rev["revision"] for rev in second["revisions"]] == ["b0000000c001"] and second["revisions"][0]["phase"] == "post"
    assert cli("--url", sqlite_url, "upgrade", "--plan", str(post)).returncode == 0
    assert cli("--url", sqlite_url, "current").stdout.split()[0] == "b0000000c001"
    text = cli("--url", sqlite_url, "plan", "--phase", "pre")
    assert text.stdout.endswith("to head (--phase pre): nothing pending; verdict: ok\n"), text.stdout
    assert cli("--url", sqlite_url, "plan", HEAD, "--phase", "pre").returncode == 2


def test_a_plan_to_a_revision_short_of_head_applies_up_to_it(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    assert cli("--url", sqlite_url, "upgrade", "1c639967c1b5").returncode == 0
    path = tmp_path / "plan.json"
    assert cli("--url", sqlite_url, "plan", "cdc55a093c1f", "--out", str(path), "-q").returncode == 0
    applied = cli("--url", sqlite_url, "upgrade", "--plan", str(path))
    assert applied.returncode == 0, applied.stderr
    assert cli("--url", sqlite_url, "current").stdout.split()[0] == "cdc55a093c1f"  # not head
