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


#: IN-list CHECKs on varchar columns, as real histories write them (an Enum that is no
#: native type, a hand-written CHECK): pg_get_constraintdef's text of these does not parse
#: back into the same expression.
IN_LIST_CHECKS = """
op.create_table(
    "job",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("state", sa.Enum("QUEUED", "RUNNING", "DONE", name="job_state", native_enum=False,
                               create_constraint=True), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("tags", sa.ARRAY(sa.String(10)) if op.get_context().dialect.name == "postgresql" else sa.String(10)),
    sa.CheckConstraint("kind IN ('import', 'export') AND kind <> ''", name="ck_job_kind"),
)
"""


def project(root: Path, name: str) -> Path:
    if name == "shipped":
        return shipped_project(root)
    if name == "in_list_checks":
        return histories.project_with(root, [histories.script("a.py", "c0000000000a", None, "in-list checks",
                                                              IN_LIST_CHECKS, 'op.drop_table("job")')])
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
import time
began = time.perf_counter()
result = mypkg.upgrade(f"sqlite:///{fresh}")
report["fresh_elapsed"] = time.perf_counter() - began
deepest = max(points, key=lambda rev: len(graph.ancestors((rev,))))
report["deepest"] = deepest
report["fresh_used"] = result.applied[0].message
report["fresh_first"] = result.applied[0].revision
report["fresh_seconds"] = result.applied[0].seconds
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
    assert 0 < report["fresh_seconds"] <= report["fresh_elapsed"]  # its own duration, as every revision's
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
    assert lines[:4] == ["applying 78a2efaef9ac  checkpoint of 5 revisions (78a2efaef9ac.json)",
                         lines[1], f"applying {SHIPPED_HEAD}  index note my_table_id", lines[3]]
    assert lines[1].startswith("applied  78a2efaef9ac  checkpoint of 5 revisions (78a2efaef9ac.json)")
    assert lines[3].startswith(f"applied  {SHIPPED_HEAD}  index note my_table_id")
    # --no-checkpoint replays every revision.
    replay = mig(root, "--url", f"sqlite:///{tmp_path / 'replay.db'}", "upgrade", "--no-checkpoint")
    assert replay.returncode == 0 and replay.stdout.count("applied ") == len(SHIPPED)
    # Below the checkpoint, or at a revision already: no checkpoint.
    partial = mig(root, "--url", f"sqlite:///{tmp_path / 'partial.db'}", "upgrade", "cdc55a093c1f")
    assert "checkpoint of" not in partial.stdout and partial.stdout.count("applied ") == 4
    # A database with a table of its own is not empty: it is refused as before, not overwritten.
    import sqlite3

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE mine (id INTEGER)").connection.commit()
    refused = mig(root, "--url", f"sqlite:///{other}", "upgrade")
    assert refused.returncode == 1 and "but no version table" in refused.stderr


def test_an_empty_database_past_a_checkpoint_never_imports_the_scripts_before_it(tmp_path: Path) -> None:
    """What a checkpoint is for: an old script that no longer imports (a helper module since
    removed) does not stop a fresh install through the checkpoint, which reads the graph
    from the manifest and imports only the scripts after it. A database that must replay it
    still meets the error."""
    import sqlite3

    root = shipped_project(tmp_path / "project")
    assert mig(root, "checkpoint", "78a2efaef9ac").returncode == 0
    (first,) = (root / "alembic" / "versions").glob("*4a14b7b9f9d6*.py")
    first.write_text(first.read_text() + "\nimport a_helper_module_since_removed  # noqa\n")
    done = mig(root, "--url", f"sqlite:///{tmp_path / 'fresh.db'}", "upgrade")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("applying 78a2efaef9ac  checkpoint of 5 revisions")
    # Replaying it is one line naming the script and its error (Alembic imports lazily, deep in
    # the plan: it read "no revision is there", a usage error), and nothing written.
    replay = mig(root, "--url", f"sqlite:///{tmp_path / 'replay.db'}", "upgrade", "--no-checkpoint")
    assert replay.returncode == 1 and replay.stderr.count("\n") == 1, replay.stderr
    assert f"revision script {first.name} cannot be imported: ModuleNotFoundError: No module named " \
           "'a_helper_module_since_removed'; nothing was run" in replay.stderr
    assert "Traceback" not in replay.stderr
    assert sqlite3.connect(tmp_path / "replay.db").execute("SELECT name FROM sqlite_master").fetchall() == []


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
    # Both checksums shown to the same 12 characters, the declared one as the file says it.
    declared = json.loads(path.read_text())["checksum"]
    shown = re.search(r"its content's sha256 is ([0-9a-f]+)…, it declares ([0-9a-f]+)…", verify.stdout)
    assert shown and len(shown.group(1)) == 12 and shown.group(2) == declared[:12] != shown.group(1), verify.stdout
    # Caught whichever way the two checksums sort: an edit whose sha256 sorts the other way too.
    from mypkg.migrate.history.checkpoints import content_checksum

    edited = path.read_text()
    first_below = content_checksum("78a2efaef9ac", json.loads(edited)["forms"]) < declared
    for width in range(11, 100):
        other = edited.replace("VARCHAR(10)", f"VARCHAR({width})", 1)
        if (content_checksum("78a2efaef9ac", json.loads(other)["forms"]) < declared) != first_below:
            break
    path.write_text(other)
    again = mig(root, "--url", f"sqlite:///{installed}", "verify")
    assert again.returncode == 1 and "edited checkpoint: 78a2efaef9ac.json" in again.stdout, again.stdout
    path.write_text(edited)
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
    # The database installed from the checkpoint as it was: verify names the change.
    changed = mig(root, "--url", f"sqlite:///{installed}", "verify")
    assert changed.returncode == 1
    assert ("78a2efaef9ac  mismatch: checkpoint 78a2efaef9ac.json changed since it was installed here" in changed.stdout)
    # Which content was installed, which ships now: the ledger's checksum and the file's, to 12.
    import sqlite3

    (recorded,) = sqlite3.connect(installed).execute(
        "SELECT checksum FROM mypkg_migration_ledger WHERE outcome = 'checkpoint'").fetchone()
    shipped = json.loads(path.read_text())["checksum"]
    assert f"(recorded sha256 {recorded[:12]}…, shipped {shipped[:12]}…)" in changed.stdout, changed.stdout
    assert recorded[:12] != shipped[:12]
    table = next(st for st in forms["sqlite"]["statements"] if "VARCHAR(10)" in st).split()[2].strip('"')
    line = next(line for line in proof if "against the replay: statements" in line)
    assert line.startswith(f"78a2efaef9ac.json against the replay: statements, TABLE {table}: expected ")
    # Both cut just before the part that differs, which each shows.
    expected, found = line.split(": expected ", 1)[1].split(", found ")
    assert expected.startswith("…EGER NOT NULL, name VARCHAR(100) NOT NULL")
    assert found.startswith("…EGER NOT NULL, name VARCHAR(10) NOT NULL")


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
    done = subprocess.run(["mariadb-dump", "--skip-dump-date", "--skip-comments", "--hex-blob", "-S", str(server.socket), "-u", "root",
                           f"--ignore-table={name}.mypkg_migration_ledger", name],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("name", ["shipped", "labelled_branches", "naming_batch_data", "in_list_checks"])
def test_a_checkpoint_installs_what_the_replay_builds_on_postgresql(name: str, tmp_path: Path,
                                                                    pg_server: PostgresServer) -> None:
    root = project(tmp_path / "project", name)
    fresh, replay = pg_server.create_database(), pg_server.create_database()
    try:
        report = python(root, SERVER_PROOF, fresh, replay)
        assert report["forms"] == ["postgresql", "sqlite"]
        scratch = client(pg_server, "psql", fresh, "-Atc", "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'mypkg%'")
        assert scratch.stdout.strip() == "0"  # the replays' scratch schemas are gone
        assert report["differences"] == []
        assert report["fresh"] == [f"checkpoint of {report['fresh'][0].split()[2]} revisions"]
        assert report["ledger"] == ["checkpoint"]
        installed, replayed = _pg_dump(pg_server, fresh), _pg_dump(pg_server, replay)
        assert "CREATE TABLE" in replayed
        assert installed == replayed
    finally:
        pg_server.drop_database(fresh)
        pg_server.drop_database(replay)


@pytest.mark.parametrize("name", ["shipped", "labelled_branches"])
def test_a_checkpoint_installs_what_the_replay_builds_on_mariadb(name: str, tmp_path: Path, mariadb_server) -> None:  # noqa: ANN001
    root = project(tmp_path / "project", name)
    fresh, replay = mariadb_server.create_database(), mariadb_server.create_database()
    try:
        report = python(root, SERVER_PROOF, fresh, replay)
        assert report["forms"] == ["mariadb", "sqlite"]
        with mariadb_server.connect() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'mypkg%'")
            assert cursor.fetchone()[0] == 0  # the replays' scratch databases are gone
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
    _release(root, '"0.0.9": "cdc55a093c1f", "0.1.0": "78a2efaef9ac"')
    assert mig(root, "checkpoint", "78a2efaef9ac").returncode == 0
    urls = {name: f"sqlite:///{tmp_path / name}.db" for name in ("before", "at", "head", "fresh")}
    assert mig(root, "--url", urls["before"], "upgrade", "cdc55a093c1f").returncode == 0
    assert mig(root, "--url", urls["at"], "upgrade", "78a2efaef9ac", "--no-checkpoint").returncode == 0
    assert mig(root, "--url", urls["head"], "upgrade", "--no-checkpoint").returncode == 0

    retired = mig(root, "checkpoint", "78a2efaef9ac", "--retire")
    assert retired.returncode == 0, retired.stderr
    versions = root / "alembic" / "versions"
    assert sorted(p.name.split("_")[4] for p in versions.glob("*.py")) == ["1341fe34ff84", "78a2efaef9ac"]
    cut = next(versions.glob("*78a2efaef9ac*")).read_text()
    assert "down_revision = None  # retired into its checkpoint; was ('cdc55a093c1f',)" in cut
    # Only that line changed: the rest of the script as it was.
    original = next((REPO / "alembic" / "versions").glob("*78a2efaef9ac*")).read_text().splitlines()
    assert [line for line in cut.splitlines() if line not in original] == [
        "down_revision = None  # retired into its checkpoint; was ('cdc55a093c1f',)"]
    assert [line for line in original if line not in cut.splitlines()] == [
        "down_revision: Union[str, Sequence[str], None] = 'cdc55a093c1f'"]
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
    # A release whose head was retired is no bad release; one naming no revision ever is.
    releases = root / "mypkg" / "releases.py"
    releases.write_text(releases.read_text().replace('"0.0.9"', '"0.0.1": "deadbeef0000", "0.0.9"'))
    verify = mig(root, "--url", urls["fresh"], "verify", "--json")
    assert verify.returncode == 1
    assert [(p["revision"], p["kind"]) for p in json.loads(verify.stdout)["problems"]] == [("0.0.1", "bad release")]
    # The build's proof still holds: the checkpoint installs as written (its replay is gone).
    assert python(root, "import json; from mypkg.migrate.checks.checkpoint import prove_all; "
                        "print(json.dumps(prove_all()))") == []
    again = mig(root, "checkpoint", "78a2efaef9ac", "--retire")
    assert again.returncode == 2 and "retired already" in again.stderr
    # The sums the build checks follow the cut: the checkpoint revision's script as it is now.
    import hashlib

    recorded = json.loads((root / "alembic" / "checkpoints" / "78a2efaef9ac.json").read_text())["scripts"]
    cut_script = next((root / "alembic" / "versions").glob("*78a2efaef9ac*"))
    assert recorded["78a2efaef9ac"] == hashlib.sha256(cut_script.read_bytes()).hexdigest()
    assert "cdc55a093c1f" in recorded  # a retired script's sum stays, unchecked
    proved = mig(root, "checkpoint", "--prove")
    assert proved.returncode == 0, proved.stdout + proved.stderr


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


# --- the wheel build checks what it holds; --prove replays ----------------------------------


@pytest.mark.slow
def test_a_checkout_with_a_checkpoint_installs_with_build_isolation_and_the_build_refuses_a_stale_one(
        tmp_path: Path) -> None:
    """``pip install .`` in a fresh venv (pip's default build isolation: hatchling and
    nothing else) and the conda recipe's host environment (python, pip, hatchling, no
    isolation) both build a checkout holding a checkpoint; a script changed since the
    checkpoint was written is refused by the build; an edited form whose checksum was
    recomputed is caught by ``checkpoint --prove``."""
    import zipfile

    root = tmp_path / "project"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.db", "build", "dist"))
    assert mig(root, "checkpoint", "78a2efaef9ac").returncode == 0
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--quiet", "--disable-pip-version-check"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*args], capture_output=True, text=True, timeout=900, cwd=tmp_path)

    # The recipe's host environment: the build backend alone, no SQLAlchemy, no isolation.
    assert run(*pip, "install", "hatchling").returncode == 0
    host = run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp_path / "host"), str(root))
    assert host.returncode == 0, host.stderr[-2000:]
    assert run(str(venv / "bin" / "python"), "-c", "import sqlalchemy").returncode != 0  # the world claimed
    (wheel,) = (tmp_path / "host").glob("*.whl")
    assert "mypkg/migrations/checkpoints/78a2efaef9ac.json" in zipfile.ZipFile(wheel).namelist()
    # The README's command: pip install . with build isolation.
    installed = run(*pip, "install", str(root))
    assert installed.returncode == 0, installed.stderr[-2000:]
    (tmp_path / "run").mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_") and k != "PYTHONPATH"}
    up = subprocess.run([str(venv / "bin" / "mypkg-migrate"), "--url", f"sqlite:///{tmp_path / 'run' / 'app.db'}",
                         "upgrade"], cwd=tmp_path / "run", capture_output=True, text=True, env=clean, timeout=300)
    assert up.returncode == 0 and "checkpoint of 5 revisions" in up.stdout, up.stderr
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import mypkg.migrate.history.location as l; print(l.script_location())"],
                           cwd=tmp_path / "run", env=clean, capture_output=True, text=True)
    assert where.stdout.strip() == "mypkg:migrations", where.stderr
    # A new database at the checkpoint's revision: the installed package's driver alone (no
    # SQLAlchemy, no Alembic), its ledger row naming the installed version.
    at = tmp_path / "run" / "at.db"
    fresh = subprocess.run([str(venv / "bin" / "python"), "-X", "importtime", "-m", "mypkg", "--url", f"sqlite:///{at}",
                            "upgrade", "78a2efaef9ac"], cwd=tmp_path / "run", capture_output=True, text=True,
                           env=clean, timeout=300)
    assert fresh.returncode == 0 and "checkpoint of 5 revisions" in fresh.stdout, fresh.stderr[-2000:]
    loaded = {line.split("|")[-1].strip() for line in fresh.stderr.splitlines() if line.startswith("import time:")}
    assert {"sqlalchemy", "alembic", "importlib.metadata"}.isdisjoint(loaded), sorted(loaded)
    import sqlite3

    import mypkg

    assert sqlite3.connect(at).execute("SELECT outcome, package_version FROM mypkg_migration_ledger").fetchall() == \
        [("checkpoint", mypkg.__version__)]
    # That installed package, run inside the checkout: says why it cannot write there, and how.
    inside = subprocess.run([str(venv / "bin" / "mypkg-migrate"), "checkpoint", "1341fe34ff84"], cwd=root,
                            capture_output=True, text=True, env=clean, timeout=300)
    assert inside.returncode == 2 and inside.stderr.count("\n") == 1, inside.stderr
    assert "the mypkg imported is the installed package at " in inside.stderr
    assert "not this checkout's: install the checkout editable (pip install -e .) or run python -m mypkg" in inside.stderr
    from_root = subprocess.run([str(venv / "bin" / "python"), "-m", "mypkg", "checkpoint", "1341fe34ff84"], cwd=root,
                               capture_output=True, text=True, env=clean, timeout=300)
    assert from_root.returncode == 0, from_root.stderr
    (root / "alembic" / "checkpoints" / "1341fe34ff84.json").unlink()
    # A script the checkpoint covers, changed since: the build names it and ships nothing.
    script = next((root / "alembic" / "versions").glob("*cdc55a093c1f*"))
    script.write_text(script.read_text() + "\n# changed after the checkpoint\n")
    stale = run(*pip, "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "stale"), str(root))
    assert stale.returncode != 0
    assert "78a2efaef9ac.json is stale: the script of cdc55a093c1f changed since it was written" in stale.stderr
    assert not (tmp_path / "stale").exists() or not list((tmp_path / "stale").glob("*.whl"))
    verify = mig(root, "--url", f"sqlite:///{tmp_path / 'run' / 'app.db'}", "verify")
    assert verify.returncode == 1 and "78a2efaef9ac  stale checkpoint: 78a2efaef9ac.json is stale" in verify.stdout, verify.stdout
    assert mig(root, "checkpoint", "78a2efaef9ac").returncode == 0  # written again: builds again
    assert run(*pip, "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "again"), str(root)).returncode == 0
    # Edited, with its checksum recomputed to match: the build cannot tell; --prove can.
    path = root / "alembic" / "checkpoints" / "78a2efaef9ac.json"
    payload = json.loads(path.read_text())
    sqlite = payload["forms"]["sqlite"]
    sqlite["statements"] = [s.replace("VARCHAR(100)", "VARCHAR(10)") for s in sqlite["statements"]]
    from mypkg.migrate.history import checkpoints

    path.write_text(checkpoints.to_json(payload["revision"], payload["forms"], scripts=payload["scripts"]))
    proved = mig(root, "checkpoint", "--prove")
    assert proved.returncode == 1
    assert "78a2efaef9ac.json against the replay: statements, TABLE" in proved.stdout, proved.stdout + proved.stderr
    assert mig(root, "checkpoint", "--prove", "78a2efaef9ac").returncode == 2
    from tests.observe.test_json_output import valid

    as_json = mig(root, "checkpoint", "--prove", "--json")
    assert as_json.returncode == 1
    problems = valid(json.loads(as_json.stdout), "checkpoint")["problems"]
    assert problems == proved.stdout.strip().splitlines()


# --- tenants, and a migrator killed while installing ------------------------------------


def test_a_tenant_schema_gets_the_checkpoint_in_its_own_schema(tmp_path: Path, pg_server: PostgresServer) -> None:
    root = shipped_project(tmp_path / "project")
    url = pg_server.create_database()
    try:
        assert mig(root, "checkpoint", "78a2efaef9ac", "--replay-on", url).returncode == 0
        first = mig(root, "--url", url, "--schema", "tenant_a", "upgrade")
        assert first.returncode == 0 and "checkpoint of 5 revisions" in first.stdout, first.stderr
        second = mig(root, "--url", url, "--schema", "tenant_b", "upgrade", "--no-checkpoint")
        assert second.returncode == 0 and "checkpoint of" not in second.stdout
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
    for moment in (1, 60):  # killed once that many of its tables exist
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
            with mariadb_server.connect(name) as connection, connection.cursor() as cursor:
                cursor.execute("SELECT outcome FROM mypkg_migration_ledger")  # the killed install's row is gone
                assert "running" not in {row[0] for row in cursor.fetchall()}, moment
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
    found = {(f["revision"], f["rule"]) for f in json.loads(linted.stdout)["findings"]}
    assert ("checkpoint:78a2efaef9ac", "prefer-text-field") in found
    # ... the revisions that made those columns too, each under its own id.
    assert ("4a14b7b9f9d6", "prefer-text-field") in found
    settings.write_text(settings.read_text() + '\n[[ignore]]\nrevision = "checkpoint:78a2efaef9ac"\n'
                        'rule = "prefer-text-field"\nreason = "the columns of the revisions it replaces"\n')
    again = {(f["revision"], f["rule"]) for f in json.loads(mig(root, "lint", "--json").stdout)["findings"]}
    assert ("checkpoint:78a2efaef9ac", "prefer-text-field") not in again and again
    # Outside the range linted, the checkpoint is too.
    assert not any(rev.startswith("checkpoint:") for rev, _ in {(f["revision"], f["rule"]) for f in json.loads(
        mig(root, "lint", "78a2efaef9ac:head", "--json").stdout)["findings"]})


# --- what the corpus histories lack: enums, comments, identity and generated columns, --------
# --- reference rows of every kind of value --------------------------------------------------

RICH_TABLES = '''
kind = sa.Enum("draft", "it's live", name="post_kind")
op.create_table(
    "post",
    sa.Column("id", sa.Integer, sa.Identity(always=True, start=10, increment=5), primary_key=True),
    sa.Column("kind", kind, nullable=False, server_default="draft"),
    sa.Column("title", sa.String(80), nullable=False, comment="shown as it's written"),
    sa.Column("price", sa.Numeric(10, 2)),
    sa.Column("price_x2", sa.Numeric(12, 2), sa.Computed("price * 2")),
    sa.Column("payload", sa.LargeBinary),
    sa.Column("published", sa.DateTime),
    sa.Column("day", sa.Date),
    sa.Column("ratio", sa.Float),
    sa.CheckConstraint("price >= 0", name="price_positive"),
    comment="posts; the 'reference' ones ship with the schema",
)
op.create_index("ix_post_title_live", "post", ["title"], postgresql_where=sa.text("kind = 'it''s live'"))
op.create_table("tag", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20), unique=True),
                sqlite_autoincrement=True)
'''

RICH_ROWS = '''
import datetime, decimal
post = sa.table("post", sa.column("id", sa.Integer), sa.column("kind", sa.String), sa.column("title", sa.String),
                sa.column("price", sa.Numeric(10, 2)), sa.column("payload", sa.LargeBinary),
                sa.column("published", sa.DateTime), sa.column("day", sa.Date), sa.column("ratio", sa.Float))
bind = op.get_bind()
rows = [
    {"id": 10, "kind": "it's live", "title": "quote ' and \\\\ backslash", "price": decimal.Decimal("12.50"),
     "payload": b"\\x00\\xffbytes", "published": datetime.datetime(2026, 1, 2, 3, 4, 5, 678000),
     "day": datetime.date(2026, 1, 2), "ratio": 0.1},
    {"id": 15, "kind": "draft", "title": "nulls", "price": None, "payload": None, "published": None,
     "day": None, "ratio": None},
]
if bind.dialect.name == "postgresql":
    bind.execute(sa.text("INSERT INTO post (id, kind, title, price, payload, published, day, ratio) "
                         "OVERRIDING SYSTEM VALUE VALUES (:id, CAST(:kind AS post_kind), :title, :price, :payload, "
                         ":published, :day, :ratio)"), rows)
    bind.execute(sa.text("SELECT nextval(pg_get_serial_sequence('post', 'id'))"))
else:
    op.bulk_insert(post, rows)
op.bulk_insert(sa.table("tag", sa.column("name")), [{"name": "a"}, {"name": "b"}, {"name": "c"}])
bind.execute(sa.text("DELETE FROM tag WHERE name = 'c'"))
'''


def rich_history() -> list[histories.Script]:
    return [
        histories.script("a.py", "ri00000000a1", None, "rich tables", RICH_TABLES,
                         'op.drop_table("tag")\nop.drop_table("post")\nsa.Enum(name="post_kind").drop(op.get_bind(), checkfirst=True)'),
        histories.script("b.py", "ri00000000b2", "ri00000000a1", "reference rows", RICH_ROWS,
                         'op.execute("DELETE FROM tag")\nop.execute("DELETE FROM post")'),
        histories.script("c.py", "ri00000000c3", "ri00000000b2", "after the checkpoint",
                         'op.add_column("tag", sa.Column("colour", sa.String(10)))', 'op.drop_column("tag", "colour")'),
    ]


RICH_PROOF = r"""
import json, sys
import mypkg
from mypkg.migrate.checks.checkpoint import differences, write
from mypkg.migrate.history import checkpoints

fresh, replay = sys.argv[1], sys.argv[2]
write("ri00000000b2", [fresh] if not fresh.startswith("sqlite") else [])
found = checkpoints.shipped()[0]
report = {"differences": differences(found, None if fresh.startswith("sqlite") else fresh)}
if fresh.startswith("sqlite"):  # a counter edited (checksum recomputed): the proof tells
    import copy
    forms = copy.deepcopy(found.forms)
    forms["sqlite"]["sequences"] = [{"name": "tag", "value": 9}]
    found.path.write_text(checkpoints.to_json(found.revision, forms))
    checkpoints.shipped.cache_clear()
    report["edited"] = differences(checkpoints.shipped()[0])
    found.path.write_text(checkpoints.to_json(found.revision, found.forms))
    checkpoints.shipped.cache_clear()
report["first"] = mypkg.upgrade(fresh).applied[0].message.split(" (")[0]
mypkg.upgrade(replay, use_checkpoints=False)
# The next insert gets the id the replay's would: the sequences (identity, AUTOINCREMENT) came along.
import sqlalchemy as sa
for url in (fresh, replay):
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO tag (name) VALUES ('next')"))
        report.setdefault("next_ids", []).append(connection.execute(sa.text("SELECT max(id) FROM tag")).scalar())
    engine.dispose()
print(json.dumps(report))
"""


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_a_checkpoint_keeps_enums_comments_identity_generated_columns_and_every_kind_of_value(
        dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    import sqlite3

    root = histories.project_with(tmp_path / "project", rich_history())
    if dialect == "sqlite":
        fresh, replay = f"sqlite:///{tmp_path / 'fresh.db'}", f"sqlite:///{tmp_path / 'replay.db'}"
        server = None
    else:
        server = request.getfixturevalue("pg_server" if dialect == "postgresql" else "mariadb_server")
        fresh, replay = server.create_database(), server.create_database()
    try:
        report = python(root, RICH_PROOF, fresh, replay)
        assert report["differences"] == []
        if dialect == "sqlite":
            told = "sequences: expected [{'name': 'tag', 'value': 3}], found [{'name': 'tag', 'value': 9}]"
            assert report["edited"] == [f"ri00000000b2.json against the replay: {told}",
                                        f"installed from ri00000000b2.json against the replay: {told}"]
        assert report["first"] == "checkpoint of 2 revisions"
        assert report["next_ids"][0] == report["next_ids"][1] == 4  # c (3) was deleted: 4, not 3
        if dialect == "sqlite":
            def dump(url: str) -> str:
                db = sqlite3.connect(url.removeprefix("sqlite:///"))
                return "\n".join(line for line in db.iterdump() if "mypkg_migration_ledger" not in line)
            installed, replayed = dump(fresh), dump(replay)
        elif dialect == "postgresql":
            installed, replayed = _pg_dump(server, fresh), _pg_dump(server, replay)
            for needed in ("CREATE TYPE public.post_kind AS ENUM", "COMMENT ON TABLE public.post IS 'posts; the ''reference''",
                           "GENERATED ALWAYS AS IDENTITY", "GENERATED ALWAYS AS ((price * (2)::numeric)) STORED",
                           "WHERE (kind = 'it''s live'::public.post_kind)", "\\\\x00ff6279746573"):
                assert needed in replayed, needed
        else:
            installed, replayed = _mariadb_dump(server, fresh), _mariadb_dump(server, replay)
            assert "GENERATED ALWAYS AS" in replayed or "AS (`price` * 2)" in replayed
        assert installed == replayed
    finally:
        if server is not None:
            server.drop_database(fresh)
            server.drop_database(replay)


def test_retiring_is_refused_while_a_branch_outside_the_checkpoint_builds_on_a_retired_revision(tmp_path: Path) -> None:
    root = histories.project_with(tmp_path / "project", [
        histories.script("a.py", "aa00000000a1", None, "root", 'op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))'),
        histories.script("b.py", "bb00000000b2", "aa00000000a1", "main line", 'op.add_column("t", sa.Column("b", sa.Integer))'),
        histories.script("c.py", "cc00000000c3", "aa00000000a1", "a branch from the root", 'op.add_column("t", sa.Column("c", sa.Integer))',
                         labels=("side",)),
    ])
    _release(root, '"1.0.0": "bb00000000b2"')
    assert mig(root, "checkpoint", "bb00000000b2").returncode == 0
    refused = mig(root, "checkpoint", "bb00000000b2", "--retire")
    assert refused.returncode == 2
    assert refused.stderr.strip() == ("mypkg-migrate: error: cc00000000c3 builds on aa00000000a1, which the checkpoint of "
                                      "bb00000000b2 replaces but does not precede it: nothing was retired")
    assert len(list((root / "alembic" / "versions").glob("*.py"))) == 3


def test_a_dialect_without_a_form_replays_and_a_broken_checkpoint_file_is_named(tmp_path: Path,
                                                                              pg_server: PostgresServer) -> None:
    root = shipped_project(tmp_path / "project")
    assert mig(root, "checkpoint", "78a2efaef9ac").returncode == 0  # SQLite's form only
    url = pg_server.create_database()
    try:
        done = mig(root, "--url", url, "upgrade")
        assert done.returncode == 0, done.stderr
        assert "checkpoint of" not in done.stdout and done.stdout.count("applied ") == len(SHIPPED)
    finally:
        pg_server.drop_database(url)
    path = root / "alembic" / "checkpoints" / "78a2efaef9ac.json"
    path.write_text("{not json")
    broken = mig(root, "--url", f"sqlite:///{tmp_path / 'x.db'}", "upgrade")
    assert broken.returncode == 1
    assert broken.stderr.startswith("mypkg-migrate: error: 78a2efaef9ac.json: not a checkpoint file (JSONDecodeError")
    assert broken.stderr.count("\n") == 1
    path.write_text('{"format": 99}')
    newer = mig(root, "--url", f"sqlite:///{tmp_path / 'x.db'}", "upgrade")
    assert newer.returncode == 1
    assert newer.stderr == "mypkg-migrate: error: 78a2efaef9ac.json: format 99, expected 1\n"


def test_a_checkpoint_that_fails_part_way_on_mariadb_leaves_the_database_empty(tmp_path: Path, mariadb_server) -> None:  # noqa: ANN001
    """MySQL commits each CREATE TABLE: a statement that fails after some tables were made
    has them dropped again; one line, exit 1, the database empty and at no revision."""
    root = shipped_project(tmp_path / "project")
    url = mariadb_server.create_database()
    try:
        assert mig(root, "checkpoint", "78a2efaef9ac", "--replay-on", url).returncode == 0
        path = root / "alembic" / "checkpoints" / "78a2efaef9ac.json"
        good = path.read_text()
        payload = json.loads(good)
        payload["forms"]["mariadb"]["statements"].append("CREATE TABLE `broken` (id INT REFERENCES")
        from mypkg.migrate.history import checkpoints

        path.write_text(checkpoints.to_json(payload["revision"], payload["forms"]))
        failed = mig(root, "--url", url, "upgrade")
        assert failed.returncode == 1
        assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr
        name = url.split("?")[0].rsplit("/", 1)[-1]
        with mariadb_server.connect(name) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
            assert {row[0] for row in cursor.fetchall()} <= {"mypkg_migration_ledger", "alembic_version"}
            # The install's "running" row went with what it made: nothing awaits a repair.
            cursor.execute("SELECT outcome FROM mypkg_migration_ledger")
            assert "running" not in {row[0] for row in cursor.fetchall()}
        status = mig(root, "--url", url, "status")
        assert status.returncode == 1 and "repair" not in status.stdout + status.stderr
        path.write_text(good)
        fixed = mig(root, "--url", url, "upgrade")
        assert fixed.returncode == 0 and "checkpoint of 5 revisions" in fixed.stdout, fixed.stderr
    finally:
        mariadb_server.drop_database(url)


@pytest.mark.parametrize("name", ["0000aaaaaaaa", "ffffffffffff"])  # sorting before its revision, and after
def test_a_checkpoint_file_named_after_another_revision_is_refused(tmp_path: Path, name: str) -> None:
    root = shipped_project(tmp_path / "project")
    assert mig(root, "checkpoint", "78a2efaef9ac").returncode == 0
    folder = root / "alembic" / "checkpoints"
    (folder / "78a2efaef9ac.json").rename(folder / f"{name}.json")
    done = mig(root, "--url", f"sqlite:///{tmp_path / 'x.db'}", "upgrade")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().endswith(f"{name}.json holds the checkpoint of 78a2efaef9ac: "
                                        "name it 78a2efaef9ac.json"), done.stderr


BATCH_REBUILDS = """
op.create_table("account", sa.Column("id", sa.Integer, primary_key=True), sa.Column("code", sa.String(10)))
op.create_table(
    "ledger_entry",
    sa.Column("id", sa.Integer, primary_key=True),
    *[sa.Column(f"c{i}", sa.String(20), nullable=False) for i in range(8)],
    sa.Column("account_id", sa.Integer, sa.ForeignKey("account.id")),
    sa.Column("other_id", sa.Integer, sa.ForeignKey("account.id")),
    *[sa.UniqueConstraint(f"c{i}") for i in range(6)],
    sa.CheckConstraint("length(c6) > 0", name="ck_ledger_entry_c6_filled"),
    sa.CheckConstraint("length(c7) > 0", name="ck_ledger_entry_c7_filled"),
)
for i in range(6):
    op.create_index(f"ix_ledger_entry_c{i}_account", "ledger_entry", [f"c{i}", "account_id"])
with op.batch_alter_table("ledger_entry") as batch:  # rebuilds the table: constraints in set order
    batch.alter_column("c7", type_=sa.String(40))
"""


def test_a_checkpoint_of_batch_rebuilt_tables_is_proven_in_processes_with_other_hash_seeds(tmp_path: Path) -> None:
    """Batch mode writes the rebuilt table's constraints and indexes in set order, which
    differs per process: the proof compares canonical forms, so a checkpoint written in
    one process holds in every other."""
    root = histories.project_with(tmp_path / "project", [
        histories.script("a.py", "ba0000000001", None, "batch rebuilds", BATCH_REBUILDS, "pass")])
    written = mig(root, "checkpoint", "ba0000000001", PYTHONHASHSEED="1")
    assert written.returncode == 0, written.stderr
    statements = json.loads((root / "alembic" / "checkpoints" / "ba0000000001.json").read_text())["forms"]["sqlite"]["statements"]
    orders = set()
    for seed in ("2", "3", "4", "5"):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
        done = subprocess.run(
            [sys.executable, "-c", "import json, mypkg; from mypkg.migrate.checks.checkpoint import prove_all, "
             "_replay, scratch; from mypkg.migrate.database import connections, snapshot\n"
             "with scratch(None) as db:\n    form = _replay(db, 'ba0000000001', use_checkpoints=False)\n"
             "print(json.dumps([form['statements'], prove_all()]))"],
            cwd=root, capture_output=True, text=True, timeout=300,
            env={**clean, "PYTHONPATH": str(root), "PYTHONHASHSEED": seed})
        assert done.returncode == 0, done.stderr[-2000:]
        replayed, proof = json.loads(done.stdout.strip().splitlines()[-1])
        assert proof == [], (seed, proof)
        orders.add(json.dumps(replayed))
    # The world claimed: the replays really came out in other orders than the file's.
    assert orders - {json.dumps(statements)}, "every process wrote the same order: the test proves nothing"
