"""``drift``: a database against the schema its applied revision builds, on SQLite,
PostgreSQL (a tenant's schema too) and MariaDB, at head and at a middle revision, for each
kind of hand change (an index added, a constraint or an index dropped, a column's type
changed, an extra table, a column added); ``fleet drift`` over tenants, three of them drifted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

import mypkg
from tests.conftest import Cli
from tests.observe.test_json_output import valid
from tests.servers.postgresql import PostgresServer, client

HEAD, MIDDLE = "1341fe34ff84", "cdc55a093c1f"


def by_hand(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
    engine.dispose()


def changes(dialect: str, at: str) -> tuple[list[str], list[str]]:
    """Hand changes for ``dialect`` at revision ``at`` and the drift lines each must give."""
    made = ["CREATE INDEX ix_by_hand ON note (body(20))" if dialect == "mysql" else "CREATE INDEX ix_by_hand ON note (body)",
            "CREATE TABLE audit_by_hand (id INTEGER PRIMARY KEY)"]
    told = ["extra index note.ix_by_hand", "extra table audit_by_hand"]
    if at == HEAD and dialect == "mysql":  # its foreign key needs that index there: the unique one goes
        made.append("ALTER TABLE my_table DROP INDEX uq_my_table_display_name")
        told.append("missing ")
    elif at == HEAD:  # the index 1341fe34ff84 made, dropped
        made.append("DROP INDEX ix_note_my_table_id")
        told.append("missing index note.ix_note_my_table_id")
    if dialect == "postgresql":
        made.append("ALTER TABLE my_table ALTER COLUMN name TYPE VARCHAR(20)")
        told.append("modify_type my_table.name: database VARCHAR(length=20), revision VARCHAR(length=")
    elif dialect == "mysql":
        made.append("ALTER TABLE my_table MODIFY name VARCHAR(20) NOT NULL")
        told.append("modify_type my_table.name: database VARCHAR(length=20), revision VARCHAR(length=")
    else:
        made.append("ALTER TABLE my_table ADD COLUMN added_by_hand INTEGER")
        told.append("extra column my_table.added_by_hand")
    return made, told


@pytest.mark.parametrize("at", [HEAD, MIDDLE])
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_each_kind_of_hand_change_is_drift_at_head_and_at_a_middle_revision(
        cli: Cli, dialect: str, at: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(f"{dialect}_url")
    mypkg.upgrade(url, at)
    clean = cli("--url", url, "drift")
    assert clean.returncode == 0 and clean.stdout.endswith(f"no drift from the schema {at} builds\n"), clean.stdout
    made, told = changes(dialect, at)
    by_hand(url, *made)
    found = cli("--url", url, "drift")
    assert found.returncode == 1, found.stderr
    lines = [line.removeprefix("drift: ") for line in found.stdout.splitlines() if line.startswith("drift: ")]
    assert len(lines) == len(told), lines
    for expected in told:
        assert any(line.startswith(expected) for line in lines), (expected, lines)
    as_json = valid(json.loads(cli("--url", url, "drift", "--json").stdout), "drift")
    assert as_json["drifted"] is True and as_json["current"] == [at] and sorted(as_json["differences"]) == sorted(lines)
    assert mypkg.current(url) == (at,)  # drift writes nothing


def test_an_empty_database_drifts_by_every_table_it_holds(cli: Cli, sqlite_url: str) -> None:
    assert cli("--url", sqlite_url, "drift").returncode == 0  # no file yet: nothing to differ
    by_hand(sqlite_url, "CREATE TABLE stray (id INTEGER PRIMARY KEY)")
    found = cli("--url", sqlite_url, "drift")
    assert found.returncode == 1 and "drift: extra table stray" in found.stdout and " at base: " in found.stdout


def test_a_tenant_schema_is_compared_in_its_own_schema(cli: Cli, postgresql_url: str) -> None:
    mypkg.upgrade(postgresql_url)  # public at head, untouched
    tenant = f"{postgresql_url}&schema=tenant_a"
    mypkg.upgrade(tenant)
    assert cli("--url", postgresql_url, "--schema", "tenant_a", "drift").returncode == 0
    by_hand(postgresql_url, "CREATE INDEX ix_by_hand ON tenant_a.note (body)")
    found = cli("--url", postgresql_url, "--schema", "tenant_a", "drift")
    assert found.returncode == 1 and "drift: extra index note.ix_by_hand" in found.stdout
    assert cli("--url", postgresql_url, "drift").returncode == 0  # public is not the tenant


def test_a_fleet_of_fifty_tenants_names_the_three_that_drifted(cli: Cli, postgresql_url: str, pg_server: PostgresServer,
                                                              tmp_path: Path) -> None:
    tenants = [f"tenant_{i:02d}" for i in range(50)]
    sql = cli("--url", postgresql_url, "--schema", "placeholder", "upgrade", "--sql", "base:head").stdout
    script = tmp_path / "tenants.sql"  # the offline SQL of each, through psql (its autocommit blocks)
    script.write_text("".join(sql.replace("placeholder", tenant) for tenant in tenants))
    built = client(pg_server, "psql", postgresql_url, "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script))
    assert built.returncode == 0, built.stderr
    by_hand(postgresql_url, "CREATE INDEX ix_by_hand ON tenant_07.note (body)", "DROP TABLE tenant_21.note",
            "ALTER TABLE tenant_42.my_table ALTER COLUMN name TYPE TEXT")
    found = cli("--url", postgresql_url, "fleet", "drift", "--schemas", "tenant_*", "--jobs", "2", "--json")
    assert found.returncode == 1, found.stderr
    report = valid(json.loads(found.stdout), "fleet")
    drifted = {row["target"].rsplit("schema=", 1)[1]: row["error"] for row in report["targets"]
               if row["outcome"] == "drifted"}
    assert sorted(drifted) == ["tenant_07", "tenant_21", "tenant_42"]
    assert "extra index note.ix_by_hand" in drifted["tenant_07"] and "missing table note" in drifted["tenant_21"]
    assert "modify_type my_table.name" in drifted["tenant_42"]
    assert report["summary"]["drifted"] == 3 and report["summary"]["unchanged"] == 47


def test_an_expression_index_sorted_desc_is_no_drift_until_it_changes(source_copy: Path, postgresql_url: str) -> None:
    """prefect's ``coalesce(start_time, expected_start_time) DESC`` on the corpus: SQLAlchemy's
    reflection drops the DESC that Alembic's keeps, so autogenerate's compare reported it
    missing and extra at once; the server's own definitions are compared instead."""
    from tests.checks.test_roundtrip import CHANGE, change, project

    cli = project(source_copy, change(
        '    op.create_index("ix_gadget_weight_desc", "gadget", [sa.text("coalesce(weight, 0) DESC")])',
        '    op.drop_index("ix_gadget_weight_desc", "gadget")'))
    assert cli("--url", postgresql_url, "upgrade").returncode == 0
    clean = cli("--url", postgresql_url, "drift")
    assert clean.returncode == 0 and clean.stdout.endswith(f"no drift from the schema {CHANGE} builds\n"), clean.stdout
    by_hand(postgresql_url, "DROP INDEX ix_gadget_weight_desc",
            "CREATE INDEX ix_gadget_weight_desc ON gadget (coalesce(weight, 0))")  # the same name, ascending
    drifted = cli("--url", postgresql_url, "drift")
    assert drifted.returncode == 1, drifted.stdout
    assert ("drift: changed index gadget.ix_gadget_weight_desc: database CREATE INDEX ix_gadget_weight_desc ON gadget "
            "USING btree (COALESCE(weight, 0)), revision CREATE INDEX ix_gadget_weight_desc ON gadget USING btree "
            "(COALESCE(weight, 0) DESC)\n") in drifted.stdout


def test_drift_builds_its_scratch_copy_through_the_checkpoint(tmp_path: Path) -> None:
    """A history whose first script no longer imports (a helper since removed): an upgrade
    goes through the checkpoint, and so does drift's scratch copy; a replay from base could
    not be built at all."""
    from tests.checks.test_checkpoints import mig, shipped_project

    root = shipped_project(tmp_path / "project")
    assert mig(root, "checkpoint", "78a2efaef9ac").returncode == 0
    (first,) = (root / "alembic" / "versions").glob("*4a14b7b9f9d6*.py")
    first.write_text(first.read_text() + "\nimport a_helper_module_since_removed  # noqa\n")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    assert mig(root, "--url", url, "upgrade").returncode == 0
    done = mig(root, "--url", url, "drift")
    assert done.returncode == 0 and done.stdout.endswith(f"no drift from the schema {HEAD} builds\n"), done.stderr
    by_hand(url, "CREATE INDEX ix_by_hand ON note (body)")
    assert "drift: extra index note.ix_by_hand" in mig(root, "--url", url, "drift").stdout
