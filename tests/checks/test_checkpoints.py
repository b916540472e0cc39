"""Checkpoints: written at several points of real-shaped histories, installed into empty
databases in one step, proven equal to the replay on SQLite, PostgreSQL and MariaDB
(compared by tools that are not the checkpoint's own: SQLite's schema text and rows,
pg_dump, mariadb-dump); databases before a checkpoint still replay; retiring; hand edits.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.history import histories
from tests.servers.postgresql import PostgresServer, client

SHIPPED_HEAD = "1341fe34ff84"
#: The shipped history, oldest first.
SHIPPED = ["4a14b7b9f9d6", "6e3de03981af", "1c639967c1b5", "cdc55a093c1f", "78a2efaef9ac", SHIPPED_HEAD]


def shipped_project(root: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "mypkg", root / "mypkg", ignore=ignore)
    shutil.copytree(REPO / "alembic", root / "alembic", ignore=ignore)
    shutil.copy(REPO / "alembic.ini", root / "alembic.ini")
    return root


def project(root: Path, name: str) -> Path:
    if name == "shipped":
        return shipped_project(root)
    return histories.project_with(root, histories.CORPUS[name]())


def mig(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m mypkg`` (the command as ``mypkg-migrate``) in the checkout at ``root``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    return subprocess.run([sys.executable, "-m", "mypkg", *args], cwd=root, capture_output=True, text=True,
                          timeout=300, env={**clean, "PYTHONPATH": str(root), **env})


def python(root: Path, code: str, *args: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=root, capture_output=True, text=True,
                          timeout=600, env={**clean, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# Run in a checkout: checkpoints at points of its history order, every promise measured
# with SQLite's own view of the schema (sqlite_master's text) and rows.
SQLITE_PROOF = r"""
import json, sqlite3, sys, tempfile
from pathlib import Path
import mypkg
from mypkg.migrate.checks.checkpoint import differences, write
from mypkg.migrate.history import checkpoints, graph
from mypkg.migrate.database.ledger import RUNNER_TABLES

def view(path):
    db = sqlite3.connect(path)
    schema = sorted((t, n, s) for t, n, tbl, s in db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
                    if tbl not in RUNNER_TABLES and s is not None)
    rows = {n: sorted(map(repr, db.execute(f'SELECT * FROM "{n}"'))) for t, n, s in schema if t == "table"}
    version = sorted(r[0] for r in db.execute("SELECT version_num FROM alembic_version"))
    db.close()
    return {"schema": schema, "rows": rows, "version": version}

order = [rev.revision for rev in mypkg.history()]
points = [order[len(order) // 2], order[-1]] if len(order) > 2 else [order[-1]]
tmp = Path(tempfile.mkdtemp())
replay = tmp / "replay.db"
mypkg.upgrade(f"sqlite:///{replay}", use_checkpoints=False)
expected = view(replay)
report = {"points": points, "differences": [], "fresh_used": None, "fresh_equal": None, "before": {}}
for point in points:
    write(point)
    report["differences"] += differences(next(c for c in checkpoints.shipped() if c.revision == point))
fresh = tmp / "fresh.db"
result = mypkg.upgrade(f"sqlite:///{fresh}")
deepest = max(points, key=lambda rev: len(graph.ancestors((rev,))))
report["deepest"] = deepest
report["fresh_used"] = result.applied[0].message
report["fresh_first"] = result.applied[0].revision
report["fresh_equal"] = view(fresh) == expected
report["ledger"] = [(row.revision, row.outcome) for row in mypkg.applied_history(f"sqlite:///{fresh}")]
# Every revision before the deepest checkpoint: a database there replays to head.
for rev in sorted(graph.ancestors((deepest,)) - {deepest}):
    path = tmp / f"at_{rev}.db"
    mypkg.upgrade(f"sqlite:///{path}", rev, use_checkpoints=False)
    done = mypkg.upgrade(f"sqlite:///{path}")
    report["before"][rev] = [view(path) == expected, any("checkpoint" in a.message for a in done.applied)]
report["verify"] = [p.kind for p in mypkg.verify(f"sqlite:///{fresh}")]
print(json.dumps(report))
"""


@pytest.mark.parametrize("name", ["shipped", *histories.CORPUS])
def test_a_checkpoint_installs_what_the_replay_builds_on_sqlite(name: str, tmp_path: Path) -> None:
    root = project(tmp_path / "project", name)
    report = python(root, SQLITE_PROOF)
    assert report["differences"] == []
    # The newest checkpoint the upgrade passes is the one installed, then the rest replays.
    assert report["fresh_first"] == report["deepest"]
    assert report["fresh_used"].startswith("checkpoint of ")
    assert report["fresh_equal"] is True
    assert report["ledger"][0] == [report["deepest"], "checkpoint"]
    assert all(outcome == "applied" for _, outcome in report["ledger"][1:])
    assert report["before"], "no revision before the checkpoint was tried"
    assert all(equal and not used for equal, used in report["before"].values()), report["before"]
    assert report["verify"] == []


def test_the_command_writes_a_checkpoint_and_upgrade_installs_it(tmp_path: Path) -> None:
    root = shipped_project(tmp_path / "project")
    wrote = mig(root, "checkpoint", "78a2")
    assert wrote.returncode == 0, wrote.stderr
    assert (root / "alembic" / "checkpoints" / "78a2efaef9ac.json").is_file()
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    done = mig(root, "--url", url, "upgrade")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("applied  78a2efaef9ac  checkpoint of 5 revisions (78a2efaef9ac.json)")
    assert lines[1].startswith(f"applied  {SHIPPED_HEAD}  index note my_table_id")
    # --no-checkpoint replays every revision.
    replay = mig(root, "--url", f"sqlite:///{tmp_path / 'replay.db'}", "upgrade", "--no-checkpoint")
    assert replay.returncode == 0 and replay.stdout.count("applied ") == len(SHIPPED)
    # Below the checkpoint, or at a revision already: no checkpoint.
    partial = mig(root, "--url", f"sqlite:///{tmp_path / 'partial.db'}", "upgrade", "cdc55a093c1f")
    assert "checkpoint" not in partial.stdout and partial.stdout.count("applied ") == 4
    # A database with a table of its own is not empty: it is refused as before, not overwritten.
    import sqlite3

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE mine (id INTEGER)").connection.commit()
    refused = mig(root, "--url", f"sqlite:///{other}", "upgrade")
    assert refused.returncode == 1 and "but no version table" in refused.stderr


def test_offline_sql_from_base_uses_the_checkpoint(tmp_path: Path) -> None:
    import sqlite3

    root = shipped_project(tmp_path / "project")
    assert mig(root, "checkpoint", "78a2efaef9ac").returncode == 0
    sql = mig(root, "--url", "sqlite:///x.db", "upgrade", "--sql")
    assert sql.returncode == 0, sql.stderr
    assert "-- checkpoint 78a2efaef9ac" in sql.stdout
    assert "Running upgrade 78a2efaef9ac -> 1341fe34ff84" in sql.stdout
    assert "Running upgrade  -> 4a14b7b9f9d6" not in sql.stdout
    # The script builds what the online run builds.
    scripted = tmp_path / "scripted.db"
    sqlite3.connect(scripted).executescript(sql.stdout)
    online = tmp_path / "online.db"
    assert mig(root, "--url", f"sqlite:///{online}", "upgrade").returncode == 0

    def schema(path: Path) -> list:
        db = sqlite3.connect(path)
        found = sorted(r for r in db.execute("SELECT type, name, sql FROM sqlite_master "
                                          " WHERE tbl_name NOT LIKE 'mypkg_%' AND tbl_name <> 'alembic_version'"))
        versions = list(db.execute("SELECT version_num FROM alembic_version"))
        return [found, versions]

    assert schema(scripted) == schema(online)
    without = mig(root, "--url", "sqlite:///x.db", "upgrade", "--sql", "--no-checkpoint")
    assert "Running upgrade  -> 4a14b7b9f9d6" in without.stdout and "-- checkpoint" not in without.stdout


def test_a_checkpoint_edited_by_hand_is_caught_by_verify_and_refused_by_upgrade(tmp_path: Path) -> None:
    root = shipped_project(tmp_path / "project")
    assert mig(root, "checkpoint", "78a2efaef9ac").returncode == 0
    installed = tmp_path / "installed.db"
    assert mig(root, "--url", f"sqlite:///{installed}", "upgrade").returncode == 0
    path = root / "alembic" / "checkpoints" / "78a2efaef9ac.json"
    path.write_text(path.read_text().replace("VARCHAR(100)", "VARCHAR(10)", 1))
    verify = mig(root, "--url", f"sqlite:///{installed}", "verify")
    assert verify.returncode == 1
    assert "edited checkpoint: 78a2efaef9ac.json was changed after it was written" in verify.stdout
    fresh = tmp_path / "fresh.db"
    refused = mig(root, "--url", f"sqlite:///{fresh}", "upgrade")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "checkpoint 78a2efaef9ac.json was changed after it was written" in refused.stderr
    assert not fresh.exists() or not _tables(fresh)  # nothing was written
    # An edit that recomputes the checksum is caught by the proof against the replay.
    payload = json.loads(path.read_text())
    from mypkg.migrate.history import checkpoints

    forms = payload["forms"]
    path.write_text(checkpoints.to_json(payload["revision"], forms))
    proof = python(root, "import json; from mypkg.migrate.checks.checkpoint import prove_all; print(json.dumps(prove_all()))")
    assert any("against the replay: statements" in line and "VARCHAR(10)" in line for line in proof), proof


def _tables(path: Path) -> list[str]:
    import sqlite3

    return [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def test_a_checkpoint_of_something_it_cannot_reproduce_is_refused_by_name(tmp_path: Path) -> None:
    root = histories.project_with(tmp_path / "project", [
        histories.script("a.py", "aa00000000a1", None, "table", 'op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))'),
        histories.script("b.py", "bb00000000b2", "aa00000000a1", "fts",
                         'op.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")'),
    ])
    refused = mig(root, "checkpoint", "bb00000000b2")
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("virtual table docs: a checkpoint cannot reproduce it (its shadow tables)")
    assert not (root / "alembic" / "checkpoints" / "bb00000000b2.json").exists()
    assert mig(root, "checkpoint", "head").returncode == 2  # one revision id, not a symbol


# --- PostgreSQL and MariaDB: compared by the servers' own dump tools ----------------------

SERVER_PROOF = r"""
import json, sys
import mypkg
from mypkg.migrate.checks.checkpoint import differences, write
from mypkg.migrate.history import checkpoints, graph

fresh, replay = sys.argv[1], sys.argv[2]
order = [rev.revision for rev in mypkg.history()]
point = order[len(order) // 2] if len(order) > 2 else order[-1]
path = write(point, [fresh])  # replayed into a scratch schema (database) of fresh's server
found = next(c for c in checkpoints.shipped() if c.revision == point)
report = {"point": point, "forms": sorted(found.forms), "differences": differences(found, fresh)}
report["fresh"] = [a.message.split(" (")[0] for a in mypkg.upgrade(fresh).applied][:1]
mypkg.upgrade(replay, use_checkpoints=False)
report["ledger"] = [row.outcome for row in mypkg.applied_history(fresh)][:1]
print(json.dumps(report))
"""


def _pg_dump(server: PostgresServer, url: str, *only: str) -> str:
    done = client(server, "pg_dump", url, "--no-owner", *(only or ("-T", "mypkg_migration_ledger*")))
    assert done.returncode == 0, done.stderr
    # pg_dump 15.14+ fences its output with a random key: not the schema. Rows come in the
    # order they sit on disk (an UPDATE moves one to the end): compared as a set.
    lines, block = [], None
    for line in done.stdout.splitlines():
        if line.startswith(("\\restrict", "\\unrestrict")):
            continue
        if block is not None and line == "\\.":
            lines += sorted(block)
            block = None
        if block is not None:
            block.append(line)
            continue
        lines.append(line)
        if line.startswith("COPY "):
            block = []
    return "\n".join(lines)


def _mariadb_dump(server, url: str) -> str:  # noqa: ANN001
    name = url.split("?")[0].rsplit("/", 1)[-1]
    done = subprocess.run(["mariadb-dump", "--skip-dump-date", "--skip-comments", "-S", str(server.socket), "-u", "root",
                           f"--ignore-table={name}.mypkg_migration_ledger", name],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("name", ["shipped", *histories.CORPUS])
def test_a_checkpoint_installs_what_the_replay_builds_on_postgresql(name: str, tmp_path: Path,
                                                                    pg_server: PostgresServer) -> None:
    root = project(tmp_path / "project", name)
    fresh, replay = pg_server.create_database(), pg_server.create_database()
    try:
        report = python(root, SERVER_PROOF, fresh, replay)
        assert report["forms"] == ["postgresql", "sqlite"]
        assert report["differences"] == []
        assert report["fresh"] == [f"checkpoint of {report['fresh'][0].split()[2]} revisions"]
        assert report["ledger"] == ["checkpoint"]
        installed, replayed = _pg_dump(pg_server, fresh), _pg_dump(pg_server, replay)
        assert "CREATE TABLE" in replayed
        assert installed == replayed
    finally:
        pg_server.drop_database(fresh)
        pg_server.drop_database(replay)


@pytest.mark.parametrize("name", ["shipped", *histories.CORPUS])
def test_a_checkpoint_installs_what_the_replay_builds_on_mariadb(name: str, tmp_path: Path, mariadb_server) -> None:  # noqa: ANN001
    root = project(tmp_path / "project", name)
    fresh, replay = mariadb_server.create_database(), mariadb_server.create_database()
    try:
        report = python(root, SERVER_PROOF, fresh, replay)
        assert report["forms"] == ["mariadb", "sqlite"]
        assert report["differences"] == []
        assert report["ledger"] == ["checkpoint"]
        installed, replayed = _mariadb_dump(mariadb_server, fresh), _mariadb_dump(mariadb_server, replay)
        assert "CREATE TABLE" in replayed
        assert installed == replayed
    finally:
        mariadb_server.drop_database(fresh)
        mariadb_server.drop_database(replay)


# --- retiring the scripts a released checkpoint replaces ------------------------------------


def _release(root: Path, releases: str) -> None:
    path = root / "mypkg" / "releases.py"
    text = path.read_text()
    path.write_text(re.sub(r"RELEASES: dict\[str, str\] = \{.*?\}", f"RELEASES: dict[str, str] = {{{releases}}}", text,
                           flags=re.S))


def test_retiring_removes_the_scripts_before_a_released_checkpoint(tmp_path: Path) -> None:
    import sqlite3

    root = shipped_project(tmp_path / "project")
    _release(root, '"0.1.0": "78a2efaef9ac"')
    assert mig(root, "checkpoint", "78a2efaef9ac").returncode == 0
    urls = {name: f"sqlite:///{tmp_path / name}.db" for name in ("before", "at", "head", "fresh")}
    assert mig(root, "--url", urls["before"], "upgrade", "cdc55a093c1f").returncode == 0
    assert mig(root, "--url", urls["at"], "upgrade", "78a2efaef9ac", "--no-checkpoint").returncode == 0
    assert mig(root, "--url", urls["head"], "upgrade", "--no-checkpoint").returncode == 0

    retired = mig(root, "checkpoint", "78a2efaef9ac", "--retire")
    assert retired.returncode == 0, retired.stderr
    versions = root / "alembic" / "versions"
    assert sorted(p.name.split("_")[4] for p in versions.glob("*.py")) == ["1341fe34ff84", "78a2efaef9ac"]
    assert "down_revision = None  # retired into its checkpoint; was ('cdc55a093c1f',)" in next(
        versions.glob("*78a2efaef9ac*")).read_text()
    # Plain alembic loads the shorter history.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    heads = subprocess.run([sys.executable, "-m", "alembic", "heads"], cwd=root, capture_output=True, text=True,
                           env={**clean, "PYTHONPATH": str(root)})
    assert heads.returncode == 0 and heads.stdout.startswith(SHIPPED_HEAD), heads.stderr
    # ... and refuses to run the checkpoint's revision alone on an empty database.
    empty = tmp_path / "alembic-empty.db"
    plain = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=root, capture_output=True,
                           text=True, env={**clean, "PYTHONPATH": str(root), "MYPKG_DATABASE_URL": f"sqlite:///{empty}"})
    assert plain.returncode != 0
    assert "were retired into its checkpoint: build an empty database with mypkg-migrate upgrade" in plain.stderr
    assert _tables(empty) in ([], ["mypkg_migration_ledger"])

    # A database at a retired revision: one line naming the release that can take it further.
    for command in ("upgrade", "status"):
        refused = mig(root, "--url", urls["before"], command)
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1
        assert ("is at revision cdc55a093c1f, retired" in refused.stderr
                and "upgrade it first with mypkg 0.1.0 (the last release that ships cdc55a093c1f)" in refused.stderr)
    # Databases at or past the checkpoint: verified (the script before the cut ran there), upgraded.
    for name in ("at", "head"):
        verify = mig(root, "--url", urls[name], "verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert mig(root, "--url", urls[name], "upgrade").returncode == 0
    assert mig(root, "--url", urls["fresh"], "upgrade").returncode == 0

    def schema(url: str) -> list:
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        return sorted(db.execute("SELECT type, name, sql FROM sqlite_master WHERE tbl_name NOT LIKE 'mypkg_%'"))

    assert schema(urls["fresh"]) == schema(urls["head"]) == schema(urls["at"])
    # The build's proof still holds: the checkpoint installs as written (its replay is gone).
    assert python(root, "import json; from mypkg.migrate.checks.checkpoint import prove_all; "
                        "print(json.dumps(prove_all()))") == []
    again = mig(root, "checkpoint", "78a2efaef9ac", "--retire")
    assert again.returncode == 2 and "retired already" in again.stderr


def test_retiring_is_refused_before_a_release_ships_the_checkpoint(tmp_path: Path) -> None:
    root = shipped_project(tmp_path / "project")
    _release(root, '"0.1.0": "cdc55a093c1f"')
    assert mig(root, "checkpoint", "78a2efaef9ac").returncode == 0
    refused = mig(root, "checkpoint", "78a2efaef9ac", "--retire")
    assert refused.returncode == 2
    assert "no release in the release map ships 78a2efaef9ac yet" in refused.stderr
    assert len(list((root / "alembic" / "versions").glob("*.py"))) == len(SHIPPED)
    missing = mig(root, "checkpoint", "cdc55a093c1f", "--retire")
    assert missing.returncode == 2 and "no checkpoint of cdc55a093c1f" in missing.stderr


# --- the wheel build proves every checkpoint ------------------------------------------------


@pytest.mark.slow
def test_the_wheel_ships_a_proven_checkpoint_and_refuses_an_edited_one(tmp_path: Path) -> None:
    import zipfile

    root = tmp_path / "project"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.db", "build", "dist"))
    assert mig(root, "checkpoint", "78a2efaef9ac").returncode == 0

    def build(out: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(root)],
                              capture_output=True, text=True, timeout=300)

    built = build(tmp_path / "good")
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = (tmp_path / "good").glob("*.whl")
    assert "mypkg/migrations/checkpoints/78a2efaef9ac.json" in zipfile.ZipFile(wheel).namelist()
    # Edited, with its checksum recomputed to match: the replay still tells.
    path = root / "alembic" / "checkpoints" / "78a2efaef9ac.json"
    payload = json.loads(path.read_text())
    sqlite = payload["forms"]["sqlite"]
    sqlite["statements"] = [s.replace("VARCHAR(100)", "VARCHAR(10)") for s in sqlite["statements"]]
    from mypkg.migrate.history import checkpoints

    path.write_text(checkpoints.to_json(payload["revision"], payload["forms"]))
    refused = build(tmp_path / "bad")
    assert refused.returncode != 0
    assert "checkpoint differs from the replay: 78a2efaef9ac.json against the replay: statements" in refused.stdout + refused.stderr
    assert not list((tmp_path / "bad").glob("*.whl")) if (tmp_path / "bad").exists() else True


# --- tenants, and a migrator killed while installing ------------------------------------


def test_a_tenant_schema_gets_the_checkpoint_in_its_own_schema(tmp_path: Path, pg_server: PostgresServer) -> None:
    root = shipped_project(tmp_path / "project")
    url = pg_server.create_database()
    try:
        assert mig(root, "checkpoint", "78a2efaef9ac", "--replay-on", url).returncode == 0
        first = mig(root, "--url", url, "--schema", "tenant_a", "upgrade")
        assert first.returncode == 0 and "checkpoint of 5 revisions" in first.stdout, first.stderr
        second = mig(root, "--url", url, "--schema", "tenant_b", "upgrade", "--no-checkpoint")
        assert second.returncode == 0 and "checkpoint" not in second.stdout
        dumps = [_pg_dump(pg_server, url, "-n", name, "-T", f"{name}.mypkg_migration_ledger*")
                 for name in ("tenant_a", "tenant_b")]
        assert "CREATE TABLE tenant_a.note" in dumps[0]
        assert dumps[0].replace("tenant_a", "tenant_b") == dumps[1]
        public = client(pg_server, "psql", url, "-Atc", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert public.stdout.strip() == "0"
    finally:
        pg_server.drop_database(url)


MANY_TABLES = """
for i in range(120):
    op.create_table(f"t{i:03}", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("parent_id", sa.Integer, sa.ForeignKey("t000.id") if i else None),
                    sa.Column("name", sa.String(40), server_default="x"))
op.bulk_insert(sa.table("t000", sa.column("id"), sa.column("name")), [{"id": n, "name": f"n{n}"} for n in range(1, 50)])
"""


def test_a_migrator_killed_while_installing_a_checkpoint_on_mariadb_leaves_a_database_the_next_run_finishes(
        tmp_path: Path, mariadb_server) -> None:  # noqa: ANN001
    """MySQL commits each CREATE TABLE: a kill part way leaves some tables, no revision.
    The next run drops what the install left (the database was empty) and installs again."""
    import signal
    import time

    root = histories.project_with(tmp_path / "project", [
        histories.script("a.py", "aa00000000a1", None, "many tables", MANY_TABLES),
        histories.script("b.py", "bb00000000b2", "aa00000000a1", "a column",
                         'op.add_column("t001", sa.Column("extra", sa.Integer))', 'op.drop_column("t001", "extra")'),
    ])
    replay = mariadb_server.create_database()
    try:
        assert mig(root, "checkpoint", "aa00000000a1", "--replay-on", replay).returncode == 0
        assert mig(root, "--url", replay, "upgrade", "--no-checkpoint").returncode == 0
        expected = _mariadb_dump(mariadb_server, replay)
    finally:
        mariadb_server.drop_database(replay)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    outcomes = []
    for moment in (1, 40, 110):  # killed once that many of its tables exist
        url = mariadb_server.create_database()
        name = url.split("?")[0].rsplit("/", 1)[-1]
        try:
            migrator = subprocess.Popen([sys.executable, "-m", "mypkg", "--url", url, "upgrade"], cwd=root,
                                        env={**clean, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
            left = 0
            with mariadb_server.connect(name) as connection, connection.cursor() as cursor:
                deadline = time.monotonic() + 60
                while migrator.poll() is None and left < moment and time.monotonic() < deadline:
                    cursor.execute("SELECT count(*) FROM information_schema.TABLES "
                                   "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 't%'")
                    left = cursor.fetchone()[0]
                migrator.send_signal(signal.SIGKILL)
                migrator.communicate(timeout=60)
                cursor.execute("SELECT count(*) FROM information_schema.TABLES "
                               "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 't%'")
                left = cursor.fetchone()[0]
            if 0 < left < 120:  # half installed: pending, with nothing for an operator to repair
                status = mig(root, "--url", url, "status")
                assert status.returncode == 1 and "repair" not in status.stdout + status.stderr, status.stdout
            again = mig(root, "--url", url, "upgrade")
            assert again.returncode == 0, (moment, again.stderr)
            assert _mariadb_dump(mariadb_server, url) == expected, moment
            outcomes.append(left)
        finally:
            mariadb_server.drop_database(url)
    assert any(0 < left < 120 for left in outcomes), outcomes


def test_lint_treats_a_checkpoint_as_a_revision(tmp_path: Path, pg_server: PostgresServer) -> None:
    root = shipped_project(tmp_path / "project")
    url = pg_server.create_database()
    try:
        assert mig(root, "checkpoint", "78a2efaef9ac", "--replay-on", url).returncode == 0
    finally:
        pg_server.drop_database(url)
    assert mig(root, "lint").returncode == 0  # the project's accepted findings hold for it too
    settings = root / "alembic" / "lint.toml"
    settings.write_text(settings.read_text().replace('    "prefer-text-field",\n', ""))
    linted = mig(root, "lint", "--json")
    assert linted.returncode == 1
    found = {(f["revision"], f["rule"]) for f in json.loads(linted.stdout)}
    assert ("checkpoint:78a2efaef9ac", "prefer-text-field") in found
    # ... the revisions that made those columns too, each under its own id.
    assert ("4a14b7b9f9d6", "prefer-text-field") in found
    settings.write_text(settings.read_text() + '\n[[ignore]]\nrevision = "checkpoint:78a2efaef9ac"\n'
                        'rule = "prefer-text-field"\nreason = "the columns of the revisions it replaces"\n')
    again = {(f["revision"], f["rule"]) for f in json.loads(mig(root, "lint", "--json").stdout)}
    assert ("checkpoint:78a2efaef9ac", "prefer-text-field") not in again and again
    # Outside the range linted, the checkpoint is too.
    assert not any(rev.startswith("checkpoint:") for rev, _ in {(f["revision"], f["rule"]) for f in json.loads(
        mig(root, "lint", "78a2efaef9ac:head", "--json").stdout)})
