"""The fast path answers exactly what the full path answers, or steps aside.

Compared in-process (the same ``Status`` value) and through the command (the same exit
code, stdout and stderr with ``MYPKG_NO_FASTPATH=1`` and without), at every revision,
at base, behind, ahead (a revision this package does not ship), before the ledger
existed and on a database that does not exist yet, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import mypkg
from mypkg.migrate import commands as api
from mypkg.migrate.database import connections as database
from mypkg.migrate.fast import answers as fastpath
from mypkg.migrate.history import scripts
from tests.conftest import Cli
from tests.runtime.test_api import REVISIONS

READ_COMMANDS = (("status",), ("status", "--json"), ("current",), ("current", "--json"))


def _both_ways(cli: Cli, url: str, *args: str) -> None:
    fast = cli("--url", url, *args)
    full = cli("--url", url, *args, MYPKG_NO_FASTPATH="1")
    assert (fast.returncode, fast.stdout, fast.stderr) == (full.returncode, full.stdout, full.stderr)


def _set_version(url: str, revision: str) -> None:
    engine = database.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    engine.dispose()


@pytest.mark.parametrize("index", range(len(REVISIONS)))
def test_same_status_at_every_revision(cli: Cli, db_url: str, index: int) -> None:
    mypkg.upgrade(db_url, REVISIONS[index])
    fast = fastpath.status(db_url)
    assert fast is not None, "the fast path should answer here"
    assert fast == api.status(db_url)
    for args in READ_COMMANDS:
        _both_ways(cli, db_url, *args)


def test_same_status_at_base_after_a_full_downgrade(cli: Cli, db_url: str) -> None:
    mypkg.upgrade(db_url)
    mypkg.downgrade(db_url, "base", confirm_base=True)
    fast = fastpath.status(db_url)
    assert fast is not None and fast.current == ()
    assert fast == api.status(db_url)
    for args in READ_COMMANDS:
        _both_ways(cli, db_url, *args)


def test_ahead_of_this_package_steps_aside_and_the_error_is_the_same(cli: Cli, db_url: str) -> None:
    mypkg.upgrade(db_url)
    _set_version(db_url, "f00dfeed1234")
    assert fastpath.status(db_url) is None
    for args in (*READ_COMMANDS, ("upgrade",)):
        _both_ways(cli, db_url, *args)
    assert cli("--url", db_url, "status").returncode == 1


def test_database_that_does_not_exist_yet(cli: Cli, sqlite_url: str) -> None:
    assert fastpath.status(sqlite_url) is None
    for args in READ_COMMANDS:
        _both_ways(cli, sqlite_url, *args)


def test_a_damaged_file_behind_sqlites_header_is_told_as_the_full_path_tells_it(
    cli: Cli, tmp_path: Path
) -> None:
    """The header is SQLite's, the rest is not: the fast path steps aside on SQLite's error
    ("file is not a database") and the full path says it in its words, for every read."""
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)
    url = f"sqlite:///{damaged}"
    for args in (*READ_COMMANDS, ("upgrade",)):
        _both_ways(cli, url, *args)
    refused = cli("--url", url, "status")
    assert refused.returncode == 1 and refused.stderr == f"mypkg-migrate: error: {url} is not a SQLite database\n"


# What the fast path must not import: the full path's libraries, and the standard
# library's slow starters (dataclasses pulls in inspect; argparse's default formatter,
# shutil; importlib.resources, tempfile and shutil: only a source tree, which has no
# built manifest, looks its scripts up that way).
HEAVY_MODULES = ("sqlalchemy", "alembic", "mako", "psycopg", "dataclasses", "inspect")
#: What no start-up needs, each measured (``-X importtime``) on a no-op: telemetry's module
#: (urllib.parse, 1.5 ms) unless an OTEL_* variable is set; typing (2 ms) and the result
#: types (2 ms) unless a Status is built (status, current); importlib.resources, tempfile and
#: zipfile (5 ms) outside a source tree.
NOT_AT_START = ("mypkg.migrate.observe.otel", "urllib", "tempfile", "zipfile", "importlib.resources")
NOT_FOR_A_NO_OP = (*NOT_AT_START, "typing", "mypkg.migrate.results")


def imported_by_fast_path(python: str, url: str, command: str, heavy: tuple[str, ...], **run: object) -> list[str]:
    """Run ``mypkg-migrate --url URL COMMAND`` in a fresh interpreter: the heavy modules
    it imported (``heavy`` names packages, or modules by their full names). On PostgreSQL,
    psycopg is one of them: libpq is read through ctypes."""
    probe = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "from mypkg.migrate.cli import main\n"
        f"code = main(['--url', {url!r}, {command!r}])\n"
        f"print(json.dumps([code, sorted({{n for m in set(sys.modules) - before if sys.modules[m] is not None "
        f"for n in (m, m.split('.')[0])}} & set({heavy!r}))]))\n"
    )
    result = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60, **run)  # type: ignore[call-overload]
    assert result.returncode == 0, result.stderr
    *output, last = result.stdout.strip().splitlines()
    code, imported = json.loads(last)
    assert code == 0, result.stdout
    if command == "upgrade":
        assert "nothing to do" in output[0], result.stdout
    return imported


@pytest.mark.parametrize("command", ["status", "current", "upgrade"])
def test_the_fast_path_imports_nothing_it_does_not_need(db_url: str, command: str) -> None:
    mypkg.upgrade(db_url)
    assert imported_by_fast_path(sys.executable, db_url, command, HEAVY_MODULES) == []


def test_a_real_upgrade_does_not_import_pygments(sqlite_url: str) -> None:
    # Mako would import it, when installed, only to colour HTML tracebacks. Installed
    # here (pytest needs it), so the test below cannot pass for want of it.
    assert importlib.util.find_spec("pygments") is not None
    probe = (
        "import sys\n"
        "from mypkg.migrate.cli import main\n"
        f"code = main(['--url', {sqlite_url!r}, '-q', 'upgrade'])\n"
        "print(code, 'mako.exceptions' in sys.modules, 'pygments' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["0", "True", "False"], result.stderr
    assert mypkg.status(sqlite_url).at_head


class TestNoOpUpgrade:
    def test_at_head_the_fast_path_says_nothing_to_do(self, cli: Cli, db_url: str) -> None:
        mypkg.upgrade(db_url)
        assert fastpath.nothing_to_upgrade(db_url) is not None
        _both_ways(cli, db_url, "upgrade")
        assert "nothing to do" in cli("--url", db_url, "upgrade").stdout

    def test_behind_it_steps_aside(self, db_url: str) -> None:
        mypkg.upgrade(db_url, REVISIONS[-2])
        assert fastpath.nothing_to_upgrade(db_url) is None

    def test_without_a_ledger_it_steps_aside_so_the_ledger_gets_created(self, cli: Cli, db_url: str) -> None:
        from alembic import command

        engine = database.create_engine(db_url, for_migrations=True)
        with engine.connect() as connection:
            command.upgrade(scripts.make_config(connection=connection), "head")
            connection.commit()
        engine.dispose()
        assert fastpath.status(db_url) is not None
        assert fastpath.nothing_to_upgrade(db_url) is None
        assert cli("--url", db_url, "upgrade").returncode == 0
        assert fastpath.nothing_to_upgrade(db_url) is not None  # the full path made the ledger

    def test_a_checksum_mismatch_goes_to_the_full_path_which_refuses(self, cli: Cli, db_url: str) -> None:
        mypkg.upgrade(db_url)
        engine = database.create_engine(db_url)
        with engine.begin() as connection:
            connection.execute(sa.text(
                "UPDATE mypkg_migration_ledger SET checksum = 'abc' WHERE revision = :r"
            ), {"r": REVISIONS[0]})
        engine.dispose()
        assert fastpath.nothing_to_upgrade(db_url) is None
        refused = cli("--url", db_url, "upgrade")
        assert refused.returncode == 1 and "--ignore-checksums" in refused.stderr
        _both_ways(cli, db_url, "upgrade")


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///mypkg.db",
        "sqlite:////tmp/some dir/app.db",
        "postgresql://app:s3cret@db.example:5433/app?sslmode=require&application_name=web",
        "postgresql+psycopg://app@/app?host=/var/run/postgresql",
        "postgresql://app@[::1]:5432/app",
        "postgresql://app@/app?schema=" + "t" * 63,  # PostgreSQL's longest name: still answered here
    ],
)
def test_urls_are_split_and_masked_as_sqlalchemy_does(url: str) -> None:
    from mypkg.migrate.database import settings

    parsed = fastpath.parse(url)
    assert parsed is not None
    expected = settings.parse_url(url)
    assert parsed.masked == settings.mask(expected)
    assert "s3cret" not in parsed.masked
    assert parsed.dialect == expected.get_backend_name()
    if parsed.dialect == "postgresql":
        assert parsed.parts["username"] == expected.username
        assert (parsed.parts["ipv4host"] or parsed.parts["ipv6host"]) == expected.host
        assert parsed.query == dict(expected.query)
        assert parsed.schema == expected.query.get("schema")


@pytest.mark.parametrize("url", ["mysql://u@h/d", "sqlite:///file:x.db?mode=ro&uri=true", "postgresql://u%40x@h/d",
                                 "postgresql://u@h:70000/d", "postgresql://u@h:0/d", "postgresql://u@h:65536/d",
                                 "sqlite:///x.db?timeout=5", "sqlite://u@/x.db", "sqlite://host/x.db",
                                 "postgresql://u@h/d?schema=" + "\u00e9" * 32,  # 64 bytes: the full path explains
                                 "postgresql://u@h/d?sslmode=disable&sslmode=require"])  # twice: SQLAlchemy keeps both
def test_urls_it_does_not_handle_go_to_the_full_path(url: str) -> None:
    assert fastpath.parse(url) is None


def test_argparse_looks_for_a_translation_catalog_once_not_per_string(sqlite_url: str) -> None:
    """gettext searches again on every call when there is no catalog: ~60 searches, 6 to
    10 ms of every start, unless the parser hands argparse one translation."""
    mypkg.upgrade(sqlite_url)
    probe = (
        "import gettext, sys\n"
        "calls = []\n"
        "find = gettext.find\n"
        "gettext.find = lambda *a, **k: calls.append(a) or find(*a, **k)\n"
        "from mypkg.migrate.cli import main\n"
        "code = main(['--url', sys.argv[1], 'status'])\n"
        "print(code, len(calls))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, sqlite_url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    code, searches = result.stdout.split()[-2:]
    assert code == "0" and int(searches) <= 1


def test_a_ledger_that_went_down_and_up_again_still_takes_the_fast_path(db_url: str) -> None:
    """Rows reverted, stamped or realigned are not a backfill under way: only ``backfilling`` is."""
    mypkg.upgrade(db_url)
    mypkg.downgrade(db_url, "-1")
    mypkg.upgrade(db_url)
    mypkg.stamp(db_url, "head")
    assert {row.outcome for row in mypkg.applied_history(db_url)} >= {"applied", "reverted", "stamped"}
    assert imported_by_fast_path(sys.executable, db_url, "upgrade", HEAVY_MODULES) == []


def test_a_version_table_holding_a_head_and_its_ancestor_is_never_nothing_to_do(cli: Cli, sqlite_url: str) -> None:
    """Every revision is applied, yet the rows overlap (a hand edit): the fast path steps aside
    and the upgrade is refused in Alembic's words, exit 2, as on the full path."""
    import sqlite3

    mypkg.upgrade(sqlite_url)
    with contextlib.closing(sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))) as db:
        db.execute("INSERT INTO alembic_version VALUES (?)", (mypkg.history()[-2].revision,))
        db.commit()
    fast, full = cli("--url", sqlite_url, "upgrade"), cli("--url", sqlite_url, "upgrade", MYPKG_NO_FASTPATH="1")
    assert (fast.returncode, fast.stdout, fast.stderr) == (full.returncode, full.stdout, full.stderr)
    assert fast.returncode == 2 and "overlaps" in fast.stderr, fast.stderr
