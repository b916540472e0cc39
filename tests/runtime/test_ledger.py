"""Beyond Alembic: the ledger, checksums, release targets, safe baseline, SQLite backup."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import mypkg
from mypkg.migrate.database import connections as database
from mypkg.migrate.database import ledger
from mypkg.migrate.errors import MigrateError
from mypkg.migrate.history import manifest, scripts
from mypkg.models import metadata
from mypkg.releases import RELEASES
from tests.conftest import Cli
from tests.runtime.test_api import FAILING_REVISION, HEAD, REVISIONS, run_copy

SHIPPED = manifest.load()


def _ledger(cli: Cli, url: str) -> list[dict]:
    result = cli("--url", url, "history", "--applied", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["rows"]


class TestLedger:
    def test_rows_after_upgrade_and_downgrade(self, cli: Cli, db_url: str) -> None:
        before = dt.datetime.now(dt.timezone.utc)
        assert cli("--url", db_url, "upgrade").returncode == 0
        assert cli("--url", db_url, "downgrade", "-1").returncode == 0
        rows = _ledger(cli, db_url)
        assert [(r["revision"], r["direction"], r["outcome"]) for r in rows] == [
            *[(rev, "upgrade", "applied") for rev in REVISIONS],
            (HEAD, "downgrade", "reverted"),
        ]
        for row in rows:
            assert row["checksum"] == SHIPPED.by_id[row["revision"]].sha256
            assert row["package_version"] == mypkg.__version__
            started = dt.datetime.fromisoformat(row["started_at"])
            finished = dt.datetime.fromisoformat(row["finished_at"])
            assert started.utcoffset() == dt.timedelta(0)
            assert before - dt.timedelta(seconds=1) <= started <= finished
            assert row["duration_ms"] >= 0
            # In milliseconds, and the time the row itself spans.
            assert row["duration_ms"] == round((finished - started).total_seconds() * 1000, 1)  # to a tenth
        text = cli("--url", db_url, "history", "--applied")
        assert text.stdout.count(" applied ") == len(REVISIONS) and "reverted" in text.stdout

    def test_a_failed_revision_is_recorded_and_its_work_is_not(self, source_copy: Path, db_url: str) -> None:
        versions = source_copy / "alembic" / "versions"
        (versions / "9999_0badf00d0001_fails.py").write_text(FAILING_REVISION.format(parent=HEAD))
        assert run_copy(source_copy, "--url", db_url, "upgrade").returncode == 1
        rows = json.loads(run_copy(source_copy, "--url", db_url, "history", "--applied", "--json").stdout)["rows"]
        assert [r["outcome"] for r in rows] == ["applied"] * len(REVISIONS) + ["failed"]
        failed = rows[-1]
        assert failed["revision"] == "0badf00d0001" and failed["direction"] == "upgrade"
        assert "deliberate failure after DDL" in failed["detail"]
        assert failed["checksum"] == manifest.parse_script(versions / "9999_0badf00d0001_fails.py").sha256

    def test_a_database_migrated_before_the_ledger_gets_it(self, cli: Cli, db_url: str) -> None:
        from alembic import command

        engine = database.create_engine(db_url, for_migrations=True)
        with engine.connect() as connection:  # plain Alembic: no ledger
            command.upgrade(scripts.make_config(connection=connection), REVISIONS[2])
            connection.commit()
            assert not ledger.exists(connection)
        engine.dispose()
        assert _ledger(cli, db_url) == []
        assert cli("--url", db_url, "verify").returncode == 0
        up = cli("--url", db_url, "upgrade")
        assert up.returncode == 0, up.stderr
        assert [r["revision"] for r in _ledger(cli, db_url)] == REVISIONS[3:]


EDITED = "\n# edited after it was applied somewhere\n"


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare (CI's Debian has it)")
def test_a_realignment_where_no_user_name_is_known_is_recorded_by_uid(source_copy: Path, tmp_path: Path) -> None:
    """A bare container runs as a uid that no passwd entry names, without $USER: getpass
    cannot name anyone. The realignment is still recorded, by uid. (unshare maps this
    process to uid 12345 in a user namespace of its own; no entry names it.)"""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    assert run_copy(source_copy, "--url", url, "upgrade").returncode == 0
    script = next((source_copy / "alembic" / "versions").glob(f"*_{REVISIONS[1]}_*.py"))
    script.write_text(script.read_text() + EDITED)
    env = {k: v for k, v in os.environ.items()
           if k not in ("USER", "LOGNAME", "LNAME", "USERNAME") and not k.startswith("MYPKG_")}
    realigned = subprocess.run(
        ["unshare", "--user", "--map-user=12345", "--map-group=12345", sys.executable, "-m", "mypkg",
         "--url", url, "repair", "--checksums"],
        cwd=source_copy, env={**env, "PYTHONPATH": str(source_copy)}, capture_output=True, text=True, timeout=120)
    assert realigned.returncode == 0, realigned.stderr
    row = mypkg.applied_history(url)[-1]
    assert (row.revision, row.outcome) == (REVISIONS[1], "realigned")
    assert row.detail.startswith(f"checksum realigned by uid 12345@{socket.gethostname()}; was "), row.detail


class TestChecksums:
    def test_an_edited_script_fails_verify_and_blocks_upgrade(self, source_copy: Path, db_url: str) -> None:
        assert run_copy(source_copy, "--url", db_url, "upgrade", REVISIONS[-2]).returncode == 0
        assert run_copy(source_copy, "--url", db_url, "verify").returncode == 0
        script = next((source_copy / "alembic" / "versions").glob(f"*_{REVISIONS[1]}_*.py"))
        script.write_text(script.read_text() + EDITED)

        verify = run_copy(source_copy, "--url", db_url, "verify")
        assert verify.returncode == 1
        assert REVISIONS[1] in verify.stdout and script.name in verify.stdout and "mismatch" in verify.stdout
        as_json = json.loads(run_copy(source_copy, "--url", db_url, "verify", "--json").stdout)
        assert as_json["ok"] is False
        assert [(p["revision"], p["kind"]) for p in as_json["problems"]] == [(REVISIONS[1], "mismatch")]
        recorded, now = SHIPPED.by_id[REVISIONS[1]].sha256, hashlib.sha256(script.read_bytes()).hexdigest()
        assert as_json["problems"][0]["detail"] == (
            f"{script.name} changed since it was applied (recorded sha256 {recorded[:12]}…, shipped {now[:12]}…)"
        )

        refused = run_copy(source_copy, "--url", db_url, "upgrade")
        assert refused.returncode == 1
        assert REVISIONS[1] in refused.stderr and "--ignore-checksums" in refused.stderr
        assert mypkg.current(db_url) == (REVISIONS[-2],)

        forced = run_copy(source_copy, "--url", db_url, "upgrade", "--ignore-checksums")
        assert forced.returncode == 0, forced.stderr
        assert f"applied  {HEAD}" in forced.stdout

    def test_repair_checksums_accepts_an_edited_script_for_good_and_records_who(
        self, source_copy: Path, db_url: str
    ) -> None:
        """Flyway's repair: after a release edits an applied script (a comment), one recorded
        decision instead of --ignore-checksums on every run."""
        assert run_copy(source_copy, "--url", db_url, "upgrade").returncode == 0
        script = next((source_copy / "alembic" / "versions").glob(f"*_{REVISIONS[1]}_*.py"))
        script.write_text(script.read_text() + EDITED)
        refused = run_copy(source_copy, "--url", db_url, "upgrade")
        assert refused.returncode == 1 and "repair --checksums" in refused.stderr

        nothing = run_copy(source_copy, "--url", db_url, "repair", REVISIONS[0], "--checksums")
        assert nothing.returncode == 2 and "nothing to realign" in nothing.stderr
        realigned = run_copy(source_copy, "--url", db_url, "repair", "--checksums")
        assert realigned.returncode == 0, realigned.stderr
        assert realigned.stdout.splitlines() == [f"realigned {REVISIONS[1]}: the shipped script is now the one recorded"]
        row = mypkg.applied_history(db_url)[-1]
        old, new = SHIPPED.by_id[REVISIONS[1]].sha256, hashlib.sha256(script.read_bytes()).hexdigest()
        assert (row.revision, row.direction, row.outcome, row.checksum) == (REVISIONS[1], "repair", "realigned", new)
        assert row.detail.startswith("checksum realigned by ") and row.detail.endswith(f"; was {old[:12]}")

        for command in (["verify"], ["upgrade"], ["status"]):  # the fast path's no-op upgrade too
            result = run_copy(source_copy, "--url", db_url, *command)
            assert result.returncode == 0, (command, result.stderr)
        again = run_copy(source_copy, "--url", db_url, "repair", "--checksums")
        assert again.returncode == 0 and "nothing to realign" in again.stdout

    def test_an_unknown_revision_fails_verify(self, cli: Cli, db_url: str) -> None:
        mypkg.upgrade(db_url)
        engine = database.create_engine(db_url)
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeed1234'"))
        engine.dispose()
        verify = cli("--url", db_url, "verify")
        assert verify.returncode == 1 and "f00dfeed1234  unknown revision" in verify.stdout

    def test_source_tree_manifest_matches_the_scripts(self) -> None:
        assert SHIPPED.heads == tuple(mypkg.heads())
        assert [rev.revision for rev in SHIPPED.ordered()] == REVISIONS
        for rev in mypkg.history():
            entry = SHIPPED.by_id[rev.revision]
            assert entry.down_revisions == rev.down_revisions and entry.message == rev.message


class TestReleases:
    def test_every_release_head_exists_and_this_version_maps_to_head(self) -> None:
        assert RELEASES, "the release map is empty"
        for version, revision in RELEASES.items():
            assert revision in SHIPPED, f"release {version} names a revision that is not shipped"
        assert RELEASES[mypkg.__version__] == HEAD

    @pytest.mark.parametrize("version", sorted(RELEASES))
    def test_upgrade_and_downgrade_to_every_release(self, cli: Cli, db_url: str, version: str) -> None:
        up = cli("--url", db_url, "upgrade", "--to-version", version)
        assert up.returncode == 0, up.stderr
        assert mypkg.current(db_url) == (RELEASES[version],)
        mypkg.downgrade(db_url, "base", confirm_base=True)
        mypkg.upgrade(db_url)
        down = cli("--url", db_url, "downgrade", "--to-version", version)
        assert down.returncode == 0, down.stderr
        assert mypkg.current(db_url) == (RELEASES[version],)

    def test_unknown_version_is_a_usage_error(self, cli: Cli) -> None:
        result = cli("upgrade", "--to-version", "9.9.9")
        assert result.returncode == 2 and "unknown mypkg version '9.9.9'" in result.stderr
        assert not (cli.cwd / "mypkg.db").exists()

    def test_between_two_releases_online_and_offline(self, source_copy: Path, tmp_path: Path) -> None:
        """A next release (0.2.0, one test-only revision) in a copy of the sources."""
        versions = source_copy / "alembic" / "versions"
        fixed = FAILING_REVISION.format(parent=HEAD).replace(
            '    raise RuntimeError("deliberate failure after DDL")\n', ""
        )
        (versions / "9999_0badf00d0001_next.py").write_text(fixed)
        releases = source_copy / "mypkg" / "releases.py"
        releases.write_text(releases.read_text().replace(
            f'"0.1.0": "{HEAD}",', f'"0.1.0": "{HEAD}",\n    "0.2.0": "0badf00d0001",'
        ))
        online = f"sqlite:///{tmp_path / 'online.db'}"
        assert run_copy(source_copy, "--url", online, "upgrade", "--to-version", "0.1.0").returncode == 0
        assert mypkg.current(online) == (HEAD,)
        up = run_copy(source_copy, "--url", online, "upgrade", "--to-version", "0.2.0")
        assert up.returncode == 0 and "applied  0badf00d0001" in up.stdout
        down = run_copy(source_copy, "--url", online, "downgrade", "--to-version", "0.1.0")
        assert down.returncode == 0 and mypkg.current(online) == (HEAD,)

        # Offline: the SQL from 0.1.0 to 0.2.0, applied to a database at 0.1.0.
        sql = run_copy(source_copy, "--url", online, "upgrade", "--sql", "--from-version", "0.1.0",
                       "--to-version", "0.2.0")
        assert sql.returncode == 0, sql.stderr
        assert "CREATE TABLE half_done" in sql.stdout and "CREATE TABLE my_table" not in sql.stdout
        offline = tmp_path / "offline.db"
        mypkg.upgrade(f"sqlite:///{offline}")
        with sqlite3.connect(offline) as connection:
            connection.executescript(sql.stdout)
            assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("0badf00d0001",)]
            assert connection.execute("SELECT count(*) FROM half_done").fetchone() == (0,)


class TestSafeBaseline:
    def test_stamp_compares_the_schema_first(self, cli: Cli, db_url: str) -> None:
        engine = database.create_engine(db_url)
        metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(sa.text("DROP INDEX ix_note_my_table_id"))
        engine.dispose()
        with pytest.raises(MigrateError, match=r"does not have the schema of head: 1 difference\(s\): add_index"):
            mypkg.stamp(db_url, "head")
        assert mypkg.current(db_url) == ()
        engine = database.create_engine(db_url)
        try:  # refused: nothing written, not even the ledger
            assert not ({"mypkg_migration_ledger", "alembic_version"} & set(sa.inspect(engine).get_table_names()))
        finally:
            engine.dispose()
        # The schema does match the revision before the index: stamping that works.
        assert mypkg.stamp(db_url, REVISIONS[-2]).after == (REVISIONS[-2],)
        forced = cli("--url", db_url, "stamp", "head", "--force")
        assert forced.returncode == 0, forced.stderr
        rows = _ledger(cli, db_url)
        assert [(r["revision"], r["outcome"], r["detail"]) for r in rows] == [
            (REVISIONS[-2], "stamped", None),
            (HEAD, "stamped", "forced"),
        ]


class TestBackup:
    def test_backup_holds_the_rows_before_the_upgrade(self, cli: Cli, tmp_path: Path) -> None:
        path = tmp_path / "mypkg.db"
        cli("upgrade", REVISIONS[0])
        with sqlite3.connect(path) as connection:
            connection.executemany("INSERT INTO my_table (name) VALUES (?)", [("ada",), ("grace",)])
        result = cli("upgrade", "--backup")
        assert result.returncode == 0, result.stderr
        shown = re.search(r"^backup: (.+)$", result.stdout, flags=re.M)
        assert shown, result.stdout
        backup = cli.cwd / shown.group(1)
        assert backup.parent == path.parent and backup.name.startswith("mypkg.db.")
        with sqlite3.connect(backup) as copy:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert copy.execute("SELECT name FROM my_table ORDER BY id").fetchall() == [("ada",), ("grace",)]
            assert copy.execute("SELECT version_num FROM alembic_version").fetchall() == [(REVISIONS[0],)]
        assert mypkg.current(f"sqlite:///{path}") == (HEAD,)
        # Before anything changed: the copy has no display_name column yet.
        with sqlite3.connect(backup) as copy:
            columns = {row[1] for row in copy.execute("PRAGMA table_info(my_table)")}
        assert "display_name" not in columns

    def test_a_failed_upgrade_names_its_backup_in_the_error_line_and_the_json_error(self, source_copy: Path,
                                                                                     tmp_path: Path) -> None:
        """The backup is wanted exactly when the upgrade fails: the one error line names it,
        and ``--json``'s error object carries it."""
        import json

        from tests.history import histories

        failing = histories.script("9999_bad00000000a_fails.py", "bad00000000a", HEAD, "test only: fails",
                                   upgrade='op.add_column("note", sa.Column("x", sa.Integer))\n'
                                           'raise RuntimeError("the revision fails")')
        (source_copy / "alembic" / "versions" / failing.filename).write_text(failing.text)
        cli = Cli(source_copy, {"PYTHONPATH": str(source_copy)})
        for number, args in enumerate((("upgrade", "--backup"), ("upgrade", "--backup", "--json"))):
            path = tmp_path / f"app{number}.db"
            mypkg.upgrade(f"sqlite:///{path}")
            done = cli("--url", f"sqlite:///{path}", *args)
            assert done.returncode == 1, done.stderr
            (line,) = done.stderr.strip().splitlines()
            if "--json" in args:
                from tests.observe.test_json_output import valid

                error = valid(json.loads(line), "error")
                backup, message = Path(error["backup"]), error["error"]
            else:
                message = line
                backup = Path(re.search(r"is backed up at (\S+)$", line).group(1))
            assert "the revision fails" in message and f"is backed up at {backup}" in message
            assert backup.is_file() and backup.name.startswith(f"app{number}.db.")
            with sqlite3.connect(backup) as copy:
                assert copy.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
            assert mypkg.current(f"sqlite:///{path}") == (HEAD,)  # the failed revision rolled back

    @pytest.mark.parametrize("mode", [0o600, 0o640])
    def test_a_backup_is_readable_by_no_more_users_than_the_database(self, tmp_path: Path, mode: int) -> None:
        """Under the usual umask (022) a new file is 0644: a 0600 database's backup must not be."""
        import os
        import stat
        import subprocess

        from tests.conftest import command_prefix

        path = tmp_path / "app.db"
        mypkg.upgrade(f"sqlite:///{path}", REVISIONS[0])
        os.chmod(path, mode)
        group = 65534 if os.geteuid() == 0 else path.stat().st_gid  # root: a group not its own
        if os.geteuid() == 0:
            os.chown(path, -1, group)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
        result = subprocess.run([*command_prefix(), "--url", f"sqlite:///{path}", "upgrade", "--backup"],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                                preexec_fn=lambda: os.umask(0o022))
        assert result.returncode == 0, result.stderr
        (backup,) = tmp_path.glob("app.db.*.bak")
        status = backup.stat()
        assert stat.S_IMODE(status.st_mode) == mode
        assert status.st_gid == group
        assert not list(tmp_path.glob("*.partial"))

    def test_backup_on_postgresql_is_a_usage_error(self, cli: Cli, postgresql_url: str) -> None:
        result = cli("--url", postgresql_url, "upgrade", "--backup")
        assert result.returncode == 2 and "pg_dump" in result.stderr
        assert mypkg.current(postgresql_url) == ()


class TestLedgerTable:
    """The ledger's own DDL and values, which other tools and people read directly."""

    def test_its_columns_are_what_it_promises(self, db_url: str) -> None:
        engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as connection:
                ledger.ensure(connection)
                inspector = sa.inspect(connection)
                described = inspector.get_columns(ledger.TABLE)
                columns = {c["name"]: (str(c["type"]).upper(), c["nullable"]) for c in described}
                zoned = {c["name"] for c in described if getattr(c["type"], "timezone", False)}
                primary = inspector.get_pk_constraint(ledger.TABLE)["constrained_columns"]
        finally:
            engine.dispose()
        assert primary == ["id"]
        assert {name: kind.split(" ")[0] for name, (kind, _) in columns.items() if "VARCHAR" in kind} == {
            "revision": "VARCHAR(64)", "direction": "VARCHAR(16)", "checksum": "VARCHAR(64)",
            "package_version": "VARCHAR(64)", "outcome": "VARCHAR(16)", "plugin": "VARCHAR(64)",
        }
        assert {name for name, (_, nullable) in columns.items() if nullable} == {"checksum", "detail", "plugin"}
        if engine.dialect.name == "postgresql":  # SQLite has no time zone type: naive UTC text
            assert zoned == {"started_at", "finished_at"}

    def test_a_ledger_from_before_plugins_is_read_then_given_their_column(self, db_url: str) -> None:
        """Databases migrated by earlier releases: reading their ledger works as it is; the
        next run under the lock adds the column, and the rows stay."""
        engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as connection:
                old = sa.MetaData()
                sa.Table(ledger.TABLE, old, *[c._copy() for c in ledger.table().c if c.name != "plugin"])
                old.create_all(connection)
                connection.commit()
                assert not ledger.has_plugin_column(connection)
                connection.execute(sa.text(
                    f"INSERT INTO {ledger.TABLE} (revision, direction, package_version, started_at, finished_at, "
                    "duration_ms, outcome) VALUES ('r0', 'upgrade', '0.1.0', :t, :t, 1, 'applied')"),
                    {"t": ledger.stored(connection, ledger.now())})
                connection.commit()
                assert [(row.revision, row.plugin) for row in ledger.rows(connection)] == [("r0", None)]
                ledger.ensure(connection)
                assert ledger.has_plugin_column(connection)
                ledger.write(connection, revision="r1", direction="upgrade", checksum=None,
                             started_at=ledger.now(), outcome="applied")
                connection.commit()
                assert [(row.revision, row.plugin) for row in ledger.rows(connection)] == [("r0", None), ("r1", None)]
        finally:
            engine.dispose()

    def test_ids_grow_and_delete_removes_only_the_row_named(self, db_url: str) -> None:
        engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as connection:
                ledger.ensure(connection)
                for revision in ("r1", "r2", "r3"):
                    ledger.write(connection, revision=revision, direction="upgrade", checksum=None,
                                 started_at=ledger.now(), outcome="applied")
                connection.commit()
                ids = [row.id for row in ledger.rows(connection)]
                assert ids == sorted(ids) and len(set(ids)) == 3
                ledger.delete(connection, ids[1])
                connection.commit()
                assert [row.revision for row in ledger.rows(connection)] == ["r1", "r3"]
        finally:
            engine.dispose()

    def test_sqlite_keeps_naive_utc_text_as_sqlalchemy_writes_it(self, cli: Cli, sqlite_url: str) -> None:
        assert cli("--url", sqlite_url, "upgrade").returncode == 0
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as connection:
            stored = connection.execute(f"SELECT started_at, finished_at FROM {ledger.TABLE}").fetchall()
        pattern = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")
        assert stored and all(pattern.fullmatch(value) for row in stored for value in row), stored[:1]

    def test_postgresql_timestamps_are_utc_whatever_the_session_time_zone(self, cli: Cli, postgresql_url: str) -> None:
        before = dt.datetime.now(dt.timezone.utc)
        # A migrator whose session runs in New York time (PGTZ, as a server's default would).
        assert cli("--url", postgresql_url, "upgrade", PGTZ="America/New_York").returncode == 0
        after = dt.datetime.now(dt.timezone.utc)
        for row in _ledger(cli, postgresql_url):
            started = dt.datetime.fromisoformat(row["started_at"])
            assert before - dt.timedelta(seconds=1) <= started <= after, (started, before)
