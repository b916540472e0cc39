"""Bad input, table-driven: a documented exit code, one line on stderr, no traceback, no
secret, and the database exactly as it was."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

import mypkg
from tests.conftest import Cli, command_prefix

SECRET = "s3cret"
REVISIONS = [rev.revision for rev in mypkg.history()]
DEAD_PG = f"postgresql://app:{SECRET}@127.0.0.1:1/app"


class Case(NamedTuple):
    args: tuple[str, ...]
    exit: int
    says: str  #: a phrase the one stderr line must contain
    env: dict[str, str] = {}


CASES: dict[str, Case] = {
    # --- the command line itself: exit 2 ---
    "unknown command": Case(("bogus",), 2, "invalid choice: 'bogus'"),
    "no command": Case((), 2, "required: COMMAND"),
    "only a global option": Case(("--json",), 2, "required: COMMAND"),
    "verbose and unknown command": Case(("-v", "bogus"), 2, "invalid choice"),
    "unknown option": Case(("upgrade", "--nope"), 2, "unrecognized arguments: --nope"),
    "extra argument": Case(("heads", "extra"), 2, "unrecognized arguments: extra"),
    "unknown revision": Case(("upgrade", "nope"), 2, "unknown revision 'nope'"),
    "a one-character prefix of two revisions": Case(("upgrade", "1"), 2, "ambiguous revision '1'"),
    "a hyphen, not a relative step": Case(("downgrade", "no-such-rev"), 2, "unknown revision 'no-such-rev'"),
    "upgrade backwards": Case(("upgrade", "-1"), 2, "upgrade -1 would go back 1 revision(s): use downgrade -1"),
    "downgrade forwards": Case(("downgrade", "+1"), 2, "downgrade +1 would go forward"),
    "upgrade past the head": Case(("upgrade", "+99"), 2, "cannot upgrade to +99"),
    "downgrade past base": Case(("downgrade", "-99"), 2, "cannot downgrade to -99"),
    "downgrade without revision": Case(("downgrade",), 2, "downgrade needs a revision"),
    "downgrade base without --yes": Case(("downgrade", "base"), 2, "confirm with --yes"),
    "unknown release": Case(("upgrade", "--to-version", "9.9"), 2, "unknown mypkg version '9.9'"),
    "revision and release": Case(("upgrade", "head", "--to-version", "0.1.0"), 2, "not both"),
    "downgrade revision and release": Case(("downgrade", "-1", "--to-version", "0.1.0"), 2, "not both"),
    "from-version online": Case(("upgrade", "--from-version", "0.1.0"), 2, "add --sql"),
    "from-version and range": Case(("upgrade", "--sql", "--from-version", "0.1.0", "base:head"), 2, "not both"),
    "offline downgrade without range": Case(("downgrade", "--sql", "-1"), 2, "needs a range FROM:TO"),
    "offline unknown revision": Case(("upgrade", "--sql", "nope:head"), 2, "unknown revision 'nope'"),
    "stamp without revision": Case(("stamp",), 2, "required: REV"),
    "stamp unknown revision": Case(("stamp", "nope"), 2, "unknown revision 'nope'"),
    "lock timeout nan": Case(("upgrade", "--lock-timeout", "nan"), 2, "not a finite number of seconds"),
    "lock timeout inf": Case(("upgrade", "--lock-timeout", "inf"), 2, "not a finite number of seconds"),
    "lock timeout negative": Case(("upgrade", "--lock-timeout", "-1"), 2, "must not be negative"),
    "lock timeout words": Case(("upgrade", "--lock-timeout", "soon"), 2, "not a number of seconds"),
    "stamp lock timeout nan": Case(("stamp", "head", "--lock-timeout", "nan"), 2, "not a finite number"),
    "wait nan": Case(("status", "--wait", "nan"), 2, "not a finite number of seconds"),
    "wait inf": Case(("status", "--wait", "inf"), 2, "not a finite number of seconds"),
    "wait negative": Case(("status", "--wait", "-1"), 2, "must not be negative"),
    "busy timeout nan": Case(("upgrade", "--busy-timeout", "nan"), 2, "not a finite number"),
    "busy timeout negative": Case(("downgrade", "-1", "--busy-timeout", "-1"), 2, "must not be negative"),
    "busy timeout on a read": Case(("status", "--busy-timeout", "soon"), 2, "not a number of seconds"),
    "busy timeout variable": Case(("status",), 2, "MYPKG_BUSY_TIMEOUT must be a number of seconds",
                                  {"MYPKG_BUSY_TIMEOUT": "-3"}),
    "statement lock timeout negative": Case(("upgrade", "--statement-lock-timeout", "-5"), 2, "must not be negative"),
    "connect timeout zero": Case(("--connect-timeout", "0", "status"), 2, "must be more than zero"),
    "connect timeout nan": Case(("--connect-timeout", "nan", "status"), 2, "not a finite number"),
    "connect timeout variable": Case(("status",), 2, "MYPKG_CONNECT_TIMEOUT must be a positive number",
                                     {"MYPKG_CONNECT_TIMEOUT": "later"}),
    "lease variable zero": Case(("status",), 2, "$MYPKG_LEASE must be a positive number of seconds, not '0'",
                                {"MYPKG_LEASE": "0"}),
    "log format variable": Case(("status",), 2, "MYPKG_LOG_FORMAT=yaml: the log formats are text, json",
                                {"MYPKG_LOG_FORMAT": "yaml"}),
    # --- the database URL: exit 2 ---
    "empty --url": Case(("--url", "", "status"), 2, "--url is empty"),
    "empty variable": Case(("status",), 2, "$MYPKG_DATABASE_URL is set but empty", {"MYPKG_DATABASE_URL": ""}),
    "blank migration variable": Case(("upgrade",), 2, "$MYPKG_MIGRATION_URL is set but empty",
                                     {"MYPKG_MIGRATION_URL": "  "}),
    "unknown dialect": Case(("--url", "foo://x", "current"), 2, "unknown database dialect 'foo'"),
    "not a URL": Case(("--url", "not a url", "current"), 2, "malformed database URL"),
    "unknown dialect with a host": Case(("--url", "vertica://u@127.0.0.1/db", "status"), 2,
                                        "unknown database dialect 'vertica'"),
    "port not a number": Case(("--url", f"postgresql://u:{SECRET}@127.0.0.1:abc/db", "status"), 2, "the port must be a number"),
    "port out of range": Case(("--url", f"postgresql://u:{SECRET}@127.0.0.1:99999/db", "status"), 2, "port 99999 is out of range"),
    "async driver": Case(("--url", "sqlite+aiosqlite:///x.db", "status"), 2,
                         "async driver 'sqlite+aiosqlite' is not supported: use postgresql+asyncpg:// or a sync driver"),
    "a SQLite parameter the driver cannot take": Case(("--url", "{db}?timeout=abc", "upgrade"), 2,
                                                     "timeout=abc is not a value the sqlite driver takes"),
    "a second SQLite parameter the driver cannot take": Case(
        ("--url", "{db}?mode=ro&timeout=1&check_same_thread=maybe", "status"), 2, "check_same_thread=maybe is not"),
    "a MySQL parameter the driver cannot take": Case(
        ("--url", f"mysql+pymysql://u:{SECRET}@127.0.0.1:1/db?connect_timeout=soon", "status"), 2,
        "connect_timeout=soon is not a value the mysql driver takes"),
    "backup of PostgreSQL": Case(("--url", DEAD_PG, "upgrade", "--backup"), 2, "--backup copies a SQLite file"),
    "downgrade backup of PostgreSQL": Case(("--url", DEAD_PG, "downgrade", "-1", "--backup"), 2, "--backup copies"),
    "read-only URL, upgrade": Case(("--url", "{db}?mode=ro", "upgrade"), 2, "opened read-only (mode=ro)"),
    "read-only URL, stamp": Case(("--url", "{db}?mode=ro", "stamp", "head"), 2, "opened read-only (mode=ro)"),
    # --- the database: exit 1 ---
    "missing directory, status": Case(("--url", "sqlite:///{tmp}/nodir/x.db", "status"), 1, "does not exist"),
    "missing directory, current": Case(("--url", "sqlite:///{tmp}/nodir/x.db", "current"), 1, "does not exist"),
    "missing directory, ledger": Case(("--url", "sqlite:///{tmp}/nodir/x.db", "history", "--applied"), 1, "does not exist"),
    "missing directory, upgrade": Case(("--url", "sqlite:///{tmp}/nodir/x.db", "upgrade"), 1, "does not exist"),
    "missing directory, a URL with a parameter shown as written": Case(
        ("--url", "sqlite:///{tmp}/nodir/x.db?timeout=5", "upgrade"), 1, "nodir/x.db?timeout=5)"),
    "not SQLite, status": Case(("--url", "{notsqlite}", "status"), 1, "is not a SQLite database"),
    "not SQLite, upgrade": Case(("--url", "{notsqlite}", "upgrade"), 1, "is not a SQLite database"),
    "SQLite's header, then damage, status": Case(("--url", "{damaged}", "status"), 1, "is not a SQLite database"),
    "SQLite's header, then damage, upgrade": Case(("--url", "{damaged}", "upgrade"), 1, "is not a SQLite database"),
    "server down, status": Case(("--url", DEAD_PG, "status"), 1, "cannot connect to postgresql+psycopg://app:***@"),
    "server down, upgrade": Case(("--url", DEAD_PG, "upgrade"), 1, "cannot connect to"),
    "password in the query": Case(("--url", f"postgresql://app@127.0.0.1:1/app?password={SECRET}", "status"), 1,
                                  "password=***"),
    "ssl password in the query": Case(
        ("--url", f"postgresql://app@127.0.0.1:1/app?sslpassword={SECRET}&password={SECRET}", "current", "--json"),
        1, "sslpassword=***"),
    "password in the variable": Case(("status",), 1, "cannot connect", {"MYPKG_DATABASE_URL": DEAD_PG}),
    "missing MySQL driver": Case(("--url", f"mysql://u:{SECRET}@127.0.0.1:1/db", "current"), 1, "pip install mysqlclient"),
    "check behind head": Case(("--url", "{db}", "check"), 1, "is not at head"),
    "stamp a different schema": Case(("--url", "{db}", "stamp", "head"), 1, "does not have the schema of head"),
    "foreign database": Case(("--url", "{foreign}", "upgrade"), 1, "but no version table"),
    "foreign database, wrong baseline": Case(("--url", "{foreign}", "upgrade", "--baseline", "head"), 1,
                                             "does not have the schema of head"),
    "foreign database, unknown baseline": Case(("--url", "{foreign}", "upgrade", "--baseline", "nope"), 2,
                                               "unknown revision 'nope'"),
    "newer database, upgrade": Case(("--url", "{newer}", "upgrade"), 1, "migrated by a newer mypkg"),
    "newer database, status": Case(("--url", "{newer}", "status"), 1, "migrated by a newer mypkg"),
    "newer database, downgrade": Case(("--url", "{newer}", "downgrade", "-1"), 1, "migrated by a newer mypkg"),
    "newer database, stamp": Case(("--url", "{newer}", "stamp", "head", "--force"), 1, "migrated by a newer mypkg"),
    # --- issue 24: the edges ---
    "empty --to-version": Case(("upgrade", "--to-version", ""), 2, "--to-version: is empty"),
    "blank --to-version, downgrade": Case(("downgrade", "--to-version", " "), 2, "--to-version: is empty"),
    "empty --from-version": Case(("upgrade", "--sql", "--from-version", "", "head"), 2, "--from-version: is empty"),
    "statement lock timeout below a millisecond": Case(("upgrade", "--statement-lock-timeout", "0.0004"), 2,
                                                       "must be between 0.001 and"),
    "statement lock timeout zero": Case(("upgrade", "--statement-lock-timeout", "0"), 2, "must be between 0.001"),
    "statement lock timeout past the server's": Case(("upgrade", "--statement-lock-timeout", "1e12"), 2,
                                                     "must be between 0.001 and 2147483.647"),
    "secret parameters by meaning": Case(
        ("--url", f"postgresql://app@127.0.0.1:1/app?private_key={SECRET}&auth={SECRET}&aws_access_key_id={SECRET}"
                  f"&key={SECRET}&client_credentials={SECRET}&apitoken={SECRET}", "status"), 1,
        "auth=***&aws_access_key_id=***"),
    "secret parameters by meaning, full path": Case(
        ("--url", f"postgresql://app@127.0.0.1:1/app?private_key={SECRET}&auth={SECRET}", "upgrade"), 1,
        "auth=***&private_key=***"),
    "offline upgrade that goes down": Case(("upgrade", "--sql", "head:base"), 2,
                                           "upgrade --sql head:base goes down: for that SQL, run downgrade --sql head:base"),
    "offline downgrade that goes up": Case(("downgrade", "--sql", "base:head"), 2,
                                           "goes up: for that SQL, run upgrade --sql base:head"),
    "offline upgrade between revisions backwards": Case(("upgrade", "--sql", f"{REVISIONS[1][:6]}:{REVISIONS[0][:6]}"),
                                                        2, "goes down"),
    "offline SQL with a backup": Case(("upgrade", "--sql", "--backup"), 2, "--sql runs none"),
    "past the head, relative to head": Case(("upgrade", "head+1"), 2, "cannot upgrade to head+1"),
    "head with a step that is not a number": Case(("upgrade", "head+x"), 2, "unknown revision 'head+x'"),
    "base with a sign and no step": Case(("downgrade", "base-"), 2, "unknown revision 'base-'"),
    "SQLite URL with two slashes": Case(("--url", "sqlite://app.db", "status"), 2, "a file needs three slashes"),
    "SQLite URL with two slashes, upgrade": Case(("--url", "sqlite://app.db", "upgrade"), 2, "three slashes"),
    "SQLite URL with a user": Case(("--url", f"sqlite://u:{SECRET}@//tmp/x.db", "status"), 2,
                                   "malformed SQLite URL 'sqlite://u:***@//tmp/x.db'"),
    "SQLite URL with a user alone": Case(("--url", "sqlite://me@/app.db", "status"), 2,
                                         "malformed SQLite URL 'sqlite://me@/app.db'"),
    "SQLite URL with a password alone": Case(("--url", f"sqlite://:{SECRET}@/app.db", "status"), 2,
                                             "malformed SQLite URL 'sqlite://:***@/app.db'"),
    "SQLite file is a directory": Case(("--url", "sqlite:///{tmp}", "upgrade"), 1, "is a directory, not a SQLite"),
    "SQLite file is a directory, status": Case(("--url", "sqlite:///{tmp}", "status"), 1, "is a directory"),
    "verify a missing file": Case(("--url", "sqlite:///{tmp}/typo.db", "verify"), 1,
                                  "typo.db does not exist: nothing was applied there to verify"),
    "blank version row, status": Case(("--url", "{blank}", "status"), 1, "holds an empty revision id"),
    "blank version row, current": Case(("--url", "{blank}", "current"), 1, "holds an empty revision id"),
    "blank version row, upgrade": Case(("--url", "{blank}", "upgrade"), 1, "stamp REV"),
    "blank version row, downgrade": Case(("--url", "{blank}", "downgrade", "-1"), 1, "holds an empty revision id"),
    # --- issue 42: inputs met on real deployments ---
    "blank --schema": Case(("--schema", "   ", "status"), 2, "--schema is blank"),
    "empty schema= in the URL": Case(("--url", "{db}?schema=", "status"), 2, "schema= is empty"),
    "empty schema= among others": Case(("--url", f"{DEAD_PG}?schema=&connect_timeout=1", "status"), 2,
                                       "schema= is empty"),
    "schema= of spaces": Case(("--url", f"{DEAD_PG}?schema=%20%20", "status"), 2, "blank, or spaces around it"),
    "schema= with a space around it": Case(("--url", f"{DEAD_PG}?schema=%20tenant_1", "upgrade"), 2,
                                           "blank, or spaces around it"),
    "a PostgreSQL connect_timeout in words": Case(
        ("--url", f"postgresql://u:{SECRET}@127.0.0.1:1/db?connect_timeout=abc", "status"), 2,
        "connect_timeout=abc is not a value the postgresql driver takes"),
    "a PostgreSQL keepalives_idle in words, full path": Case(
        ("--url", f"postgresql://u:{SECRET}@127.0.0.1:1/db?keepalives_idle=often", "upgrade"), 2,
        "keepalives_idle=often is not a value"),
    "upgrade base above base": Case(("upgrade", "base"), 2, "above base; to go back, use downgrade base"),
    "upgrade to an older revision": Case(("upgrade", REVISIONS[0][:8]), 2,
                                         f"past {REVISIONS[0]}; to go back, use downgrade {REVISIONS[0][:8]}"),
    "checkpoint replayed on SQLite": Case(("checkpoint", REVISIONS[-1], "--replay-on", "sqlite:///{tmp}/x.db"), 2,
                                          "give a PostgreSQL or MySQL/MariaDB server; SQLite is always replayed"),
    "checkpoint --prove with a revision": Case(("checkpoint", "--prove", REVISIONS[-1]), 2, "give no REV"),
    "checkpoint without a revision": Case(("checkpoint",), 2, "checkpoint needs REV (or --prove)"),
    "the lock file is a directory": Case(("--url", "{lockdir}", "upgrade"), 1,
                                         "lockdir.db.mypkg-migrate.lock cannot be opened (Is a directory)"),
    "a ledger timestamp edited by hand": Case(("--url", "{badtime}", "history", "--applied", "--json"), 1,
                                              "row 1: started_at 'yesterday' is not a timestamp"),
    "a ledger timestamp edited by hand, text": Case(("--url", "{badtime}", "history", "--applied"), 1,
                                                    "set it to one (YYYY-MM-DD HH:MM:SS, UTC)"),
    "a ledger timestamp edited by hand, verify": Case(("--url", "{badtime}", "verify"), 1,
                                                               "row 1: started_at 'yesterday'"),
    "a usage error under --log-format json": Case(("--log-format", "json", "upgrade", "--nope"), 2,
                                                  '"event": "command.end", "command": "upgrade"'),
    "a usage error under the json log variable": Case(("bogus",), 2, '"exit_code": 2',
                                                      {"MYPKG_LOG_FORMAT": "json"}),
    "a usage error under --log-format text": Case(("--log-format", "text", "upgrade", "--nope"), 2,
                                                  "mypkg-migrate: error: unrecognized arguments: --nope"),
    "--log-format text over the json variable": Case(("--log-format=text", "upgrade", "--nope"), 2,
                                                     "mypkg-migrate: error: unrecognized arguments: --nope",
                                                     {"MYPKG_LOG_FORMAT": "json"}),
    "a roundtrip range going down": Case(("roundtrip", "head:base"), 2, "the range goes down"),
    "an empty fleet": Case(("fleet", "status", "--sqlite-glob", "{tmp}/nothing-*.db"), 2, "fleet found no target"),
}


def snapshot(path: Path) -> str:
    """The database's content (schema and rows), or the file's bytes when not SQLite."""
    if not path.exists():
        return "absent"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            return "\n".join(connection.iterdump())
    except sqlite3.DatabaseError:
        return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-input")
    behind = root / "behind.db"
    mypkg.upgrade(f"sqlite:///{behind}", REVISIONS[-2])
    foreign = root / "foreign.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO customers (name) VALUES ('someone else''s data')")
    newer = root / "newer.db"
    mypkg.upgrade(f"sqlite:///{newer}")
    with sqlite3.connect(newer) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'f00dfeed9999'")
    blank = root / "blank.db"
    mypkg.upgrade(f"sqlite:///{blank}")
    with sqlite3.connect(blank) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ''")
    notsqlite = root / "notes.txt"
    notsqlite.write_text("not a database\n" * 10)
    damaged = root / "damaged.db"  # the fast path reads the header, then SQLite refuses the rest
    damaged.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)
    lockdir = root / "lockdir.db"  # behind head, its lock file's place taken by a directory
    mypkg.upgrade(f"sqlite:///{lockdir}", REVISIONS[-2])
    (root / "lockdir.db.mypkg-migrate.lock").unlink(missing_ok=True)  # the lock file upgrade left (it holds nothing)
    (root / "lockdir.db.mypkg-migrate.lock").mkdir()
    badtime = root / "badtime.db"
    mypkg.upgrade(f"sqlite:///{badtime}")
    with sqlite3.connect(badtime) as connection:
        connection.execute("UPDATE mypkg_migration_ledger SET started_at = 'yesterday' WHERE id = 1")
        connection.execute("UPDATE mypkg_migration_ledger SET finished_at = 'soon' WHERE id = 2")
    return {"db": behind, "foreign": foreign, "newer": newer, "blank": blank, "notsqlite": notsqlite,
            "damaged": damaged, "lockdir": lockdir, "badtime": badtime, "tmp": root}


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, databases: dict[str, Path], tmp_path: Path) -> None:
    case = CASES[name]
    values = {key: f"sqlite:///{path}" if key != "tmp" else str(path) for key, path in databases.items()}
    args = [arg.format(**values) for arg in case.args]
    if "--url" not in args and not any(key.endswith("_URL") for key in case.env):
        args = ["--url", values["db"], *args]  # the database every case must leave as it was
    files = [path for key, path in databases.items() if key != "tmp" and path.is_file()]
    before = {path: snapshot(path) for path in files}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    env.update(case.env)
    result = subprocess.run([*command_prefix(), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == case.exit, (args, result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert case.says in lines[0], lines[0]
    assert SECRET not in result.stdout + result.stderr
    assert {path: snapshot(path) for path in files} == before
    assert list(tmp_path.iterdir()) == []  # nothing created in the working directory either


def test_a_nul_in_a_url_is_refused_before_any_file_is_opened(tmp_path: Path) -> None:
    """argv cannot carry a NUL, a targets file or a caller can: the OS cuts a path at it, so
    SQLite would read (status said "behind") or write another file than the one named."""
    url = f"sqlite:///{tmp_path}/app.db\x00.old"
    for call in (mypkg.status, mypkg.upgrade):
        with pytest.raises(mypkg.UsageError, match=r"malformed database URL .*: it holds a NUL character$"):
            call(url)
    assert list(tmp_path.iterdir()) == []


def test_a_one_character_prefix_of_two_revisions_is_ambiguous_not_unknown(cli: Cli, sqlite_url: str) -> None:
    """Alembic resolves a prefix of any length that one revision starts with ("13"), and
    says "Can't locate" for one several start with ("1"): that is ambiguous, not unknown."""
    starting = sorted(rev for rev in (script.revision for script in mypkg.history()) if rev.startswith("1"))
    assert len(starting) == 2, starting  # the shipped history: 1341fe34ff84 and 1c639967c1b5
    result = cli("--url", sqlite_url, "upgrade", "1")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"ambiguous revision '1': it starts {', '.join(starting)}; give more characters" in result.stderr
    assert cli("--url", sqlite_url, "upgrade", starting[0][:2]).returncode == 0  # one revision starts so


def test_an_ambiguous_prefix_lists_the_candidates(tmp_path: Path) -> None:
    from tests.history import histories

    root = histories.project_with(tmp_path / "project", histories.old_merge(tail=3))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    result = subprocess.run([sys.executable, "-m", "mypkg", "--url", f"sqlite:///{tmp_path / 'x.db'}", "upgrade", "cc00000000"],
                            cwd=root, env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "ambiguous revision 'cc00000000': it starts cc0000000000, cc0000000002, cc0000000003" in line
    assert "give more characters" in line
    assert not (tmp_path / "x.db").exists()


def version_rows(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


def test_a_blank_version_row_is_left_by_a_checked_stamp_not_a_hand_edit(tmp_path: Path) -> None:
    path = tmp_path / "blank.db"
    mypkg.upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ''")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    stamp = subprocess.run([*command_prefix(), "--url", f"sqlite:///{path}", "stamp", "head"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120)
    assert stamp.returncode == 0, stamp.stderr
    assert version_rows(path) == [REVISIONS[-1]]
    assert mypkg.status(f"sqlite:///{path}").at_head


@pytest.mark.parametrize("command", [("upgrade",), ("downgrade", "-1")])
def test_a_version_row_holding_a_prefix_is_completed_not_doubled(tmp_path: Path, command: tuple[str, ...]) -> None:
    """Alembic accepts a unique prefix in the version table, then writes the next revision
    beside it: two rows, and every command failing after."""
    path = tmp_path / "prefix.db"
    mypkg.upgrade(f"sqlite:///{path}", REVISIONS[-2])
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (REVISIONS[-2][:4],))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    result = subprocess.run([*command_prefix(), "--url", f"sqlite:///{path}", *command], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = REVISIONS[-1] if command == ("upgrade",) else REVISIONS[-3]
    assert version_rows(path) == [expected]
    assert mypkg.current(f"sqlite:///{path}") == (expected,)


@pytest.mark.parametrize("seconds", [0, 0.0004, 1e12, float("nan")])
def test_the_api_refuses_a_statement_lock_timeout_postgresql_would_read_as_none(tmp_path: Path, seconds: float) -> None:
    path = tmp_path / "app.db"
    with pytest.raises(mypkg.UsageError, match="must be between 0.001"):
        mypkg.upgrade(f"sqlite:///{path}", statement_lock_timeout=seconds)
    assert not path.exists()


def test_a_statement_lock_timeout_is_rounded_up_to_whole_milliseconds() -> None:
    from mypkg.migrate.database.settings import statement_lock_timeout_ms

    assert [statement_lock_timeout_ms(s) for s in (0.001, 0.0011, 0.5, 5, 2_147_483.647)] == [1, 2, 500, 5000, 2_147_483_647]


@pytest.mark.parametrize("command, says", [
    (("verify",), None),
    (("status",), "current:  base (no database: {path} does not exist; upgrade creates it)"),
    (("current",), "base (no database: {path} does not exist; upgrade creates it)"),
    (("history", "--applied"), "the ledger is empty"),
])
@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_reading_a_missing_sqlite_file_never_creates_it_and_says_it_is_missing(
    tmp_path: Path, command: tuple[str, ...], says: str | None, relative: bool
) -> None:
    path = Path("typo.db") if relative else tmp_path / "typo.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    result = subprocess.run([*command_prefix(), "--url", f"sqlite:///{path}", *command], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert not (tmp_path / "typo.db").exists()
    if says is None:
        assert result.returncode == 1 and "does not exist" in result.stderr
    else:
        assert says.format(path=path) in result.stdout, result.stdout


@pytest.mark.parametrize("command", [("status",), ("status", "--json"), ("current",), ("history",),
                                     ("history", "--applied"), ("heads",), ("verify",), ("verify", "--json"),
                                     ("upgrade", "--sql", "base:head")])
def test_a_result_that_cannot_be_written_fails_the_command(tmp_path: Path, command: tuple[str, ...]) -> None:
    """A full disk (/dev/full): the output is the result, so losing it is a failure."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    mypkg.upgrade(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    with open("/dev/full", "w") as full:
        result = subprocess.run([*command_prefix(), "--url", url, *command], cwd=tmp_path, env=env,
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert ("cannot write the result to stdout (No space left on device)" in line
            or "cannot write the SQL to stdout (No space left on device): it is incomplete" in line), line


@pytest.mark.parametrize("command", [("upgrade",), ("downgrade", "-1")])
def test_a_full_stdout_never_stops_a_migration(tmp_path: Path, command: tuple[str, ...]) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    mypkg.upgrade(url, REVISIONS[-2] if command == ("upgrade",) else "head")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    with open("/dev/full", "w") as full:
        result = subprocess.run([*command_prefix(), "--url", url, *command], cwd=tmp_path, env=env,
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "carrying on without it" in result.stderr
    assert mypkg.current(url) == ((REVISIONS[-1],) if command == ("upgrade",) else (REVISIONS[-2],))


def test_check_and_verify_listings_that_cannot_be_written_fail_too(tmp_path: Path) -> None:
    """The lines after the first (the differences themselves) go through the same writer."""
    path = tmp_path / "app.db"
    url = f"sqlite:///{path}"
    mypkg.upgrade(url)
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE not_in_the_models (id INTEGER PRIMARY KEY)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    with open("/dev/full", "w") as full:
        result = subprocess.run([*command_prefix(), "--url", url, "check"], cwd=tmp_path, env=env,
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "cannot write the result to stdout (No space left on device)" in line


def test_under_both_json_flags_an_error_is_the_error_object_after_the_events(tmp_path: Path) -> None:
    """--json promises the error object; --log-format json, events: stderr holds both, every
    line JSON, the error object exactly once."""
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    result = subprocess.run([*command_prefix(), "--log-format", "json", "--json", "--url",
                             f"sqlite:///{tmp_path}/nodir/x.db", "status"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    errors = [line for line in lines if "format" in line]
    assert [(e["format"], e["command"], e["exit_code"]) for e in errors] == [(1, "status", 1)]
    assert errors[0]["error"] == f"directory {tmp_path}/nodir does not exist (database sqlite:///{tmp_path}/nodir/x.db)"
    assert [line["event"] for line in lines if "event" in line] == ["command.start", "command.end"]


def test_a_non_ascii_path_under_a_c_locale_works_and_prints(tmp_path: Path) -> None:
    """LANG=C without UTF-8 mode: Python reads the path's bytes as surrogates and writes
    ASCII. The database is created where named, every command answers, nothing crashes."""
    path = tmp_path / "café.db"
    env = {"PATH": os.environ["PATH"], "LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
           **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {})}
    for command in (("upgrade",), ("status",), ("current",), ("history", "--applied"), ("verify",)):
        result = subprocess.run([*command_prefix(), "--url", f"sqlite:///{path}", *command], cwd=tmp_path, env=env,
                                capture_output=True, timeout=120)
        assert result.returncode == 0, (command, result.stderr)
        assert b"Traceback" not in result.stderr and b"Error" not in result.stderr, result.stderr
    assert path.is_file() and mypkg.current(f"sqlite:///{path}") == (REVISIONS[-1],)
    assert Path(f"{path}.mypkg-migrate.lock").exists()
