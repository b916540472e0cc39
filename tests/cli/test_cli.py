"""``mypkg-migrate`` run as a subprocess, on real SQLite files (and PostgreSQL where marked)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import mypkg
from mypkg.migrate.cli.handlers import COMMANDS
from tests.conftest import Cli

HEAD = mypkg.heads()[0]
REVISIONS = [rev.revision for rev in mypkg.history()]


def _version_of(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


class TestDefaultDatabase:
    """Without --url or $MYPKG_DATABASE_URL, the database is mypkg.db in the working directory."""

    def test_upgrade_creates_mypkg_db_at_head_and_prints_each_revision(
        self, cli: Cli, tmp_path: Path
    ) -> None:
        result = cli("upgrade")
        assert result.returncode == 0, result.stderr
        assert _version_of(tmp_path / "mypkg.db") == [HEAD]
        applied = [line for line in result.stdout.splitlines() if line.startswith("applied")]
        assert [line.split()[1] for line in applied] == REVISIONS
        assert all(line.endswith("ms)") for line in applied)
        assert "create initial tables" in applied[0]

    def test_second_upgrade_has_nothing_to_do(self, cli: Cli) -> None:
        cli("upgrade")
        result = cli("upgrade")
        assert result.returncode == 0
        assert "nothing to do" in result.stdout
        assert "applied" not in result.stdout

    def test_environment_variable_overrides_the_default(self, cli: Cli, tmp_path: Path) -> None:
        other = tmp_path / "other.db"
        result = cli("upgrade", MYPKG_DATABASE_URL=f"sqlite:///{other}")
        assert result.returncode == 0, result.stderr
        assert other.exists() and not (tmp_path / "mypkg.db").exists()

    def test_url_option_overrides_the_environment_variable(self, cli: Cli, tmp_path: Path) -> None:
        chosen, ignored = tmp_path / "chosen.db", tmp_path / "ignored.db"
        result = cli("--url", f"sqlite:///{chosen}", "upgrade", MYPKG_DATABASE_URL=f"sqlite:///{ignored}")
        assert result.returncode == 0, result.stderr
        assert chosen.exists() and not ignored.exists()

    def test_global_options_work_after_the_command_too(self, cli: Cli, tmp_path: Path) -> None:
        target = tmp_path / "after.db"
        assert cli("upgrade", "--url", f"sqlite:///{target}", "-q").stdout == ""
        assert _version_of(target) == [HEAD]


class TestCommands:
    def test_current_on_new_database_is_base_and_creates_nothing(self, cli: Cli, tmp_path: Path) -> None:
        result = cli("current")
        assert result.returncode == 0
        assert "base" in result.stdout
        assert not (tmp_path / "mypkg.db").exists()

    def test_current_json_after_upgrade(self, cli: Cli) -> None:
        cli("upgrade")
        payload = json.loads(cli("current", "--json").stdout)
        assert payload["current"] == [HEAD]
        assert payload["at_head"] is True
        assert payload["database"] == "sqlite:///mypkg.db"

    def test_status_exit_codes_follow_pending_revisions(self, cli: Cli) -> None:
        pending = cli("status")
        assert pending.returncode == 1
        assert f"pending:  {len(REVISIONS)} revision(s)" in pending.stdout
        cli("upgrade")
        at_head = cli("status", "--json")
        assert at_head.returncode == 0
        payload = json.loads(at_head.stdout)
        assert [rev["revision"] for rev in payload["applied"]] == REVISIONS
        assert payload["pending"] == []

    def test_status_wait_times_out_while_behind(self, cli: Cli) -> None:
        result = cli("status", "--wait", "1")
        assert result.returncode == 1
        assert "still 6 revision(s) behind head after 1s" in result.stderr.replace(
            f"still {len(REVISIONS)}", "still 6"
        )
        assert "waiting up to 1s" in result.stderr

    def test_status_wait_returns_once_another_process_migrates(self, cli: Cli, tmp_path: Path) -> None:
        import subprocess

        waiter = subprocess.Popen(
            [*cli.prefix, "status", "--wait", "60"],
            cwd=tmp_path, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert cli("upgrade").returncode == 0
        out, err = waiter.communicate(timeout=90)
        assert waiter.returncode == 0, err
        assert f"current:  {HEAD}" in out

    def test_history_lists_every_revision_oldest_first(self, cli: Cli) -> None:
        result = cli("history")
        assert result.returncode == 0
        lines = result.stdout.splitlines()
        assert lines[0].startswith("<base> -> ")
        assert [line.split(" -> ")[1].split(",")[0].split()[0] for line in lines] == REVISIONS
        payload = json.loads(cli("history", "--json").stdout)
        assert [rev["revision"] for rev in payload["revisions"]] == REVISIONS
        assert payload["revisions"][-1]["is_head"] is True

    def test_heads(self, cli: Cli) -> None:
        assert cli("heads").stdout.split() == [HEAD]
        assert json.loads(cli("heads", "--json").stdout)["heads"] == [HEAD]

    def test_downgrade_minus_one_then_upgrade(self, cli: Cli, tmp_path: Path) -> None:
        cli("upgrade")
        result = cli("downgrade", "-1")
        assert result.returncode == 0, result.stderr
        assert f"reverted {HEAD}" in result.stdout
        assert _version_of(tmp_path / "mypkg.db") == [REVISIONS[-2]]
        assert cli("upgrade").returncode == 0
        assert _version_of(tmp_path / "mypkg.db") == [HEAD]

    def test_downgrade_to_base_needs_yes(self, cli: Cli, tmp_path: Path) -> None:
        cli("upgrade")
        refused = cli("downgrade", "base")
        assert refused.returncode == 2
        assert "--yes" in refused.stderr
        assert _version_of(tmp_path / "mypkg.db") == [HEAD]
        done = cli("downgrade", "base", "--yes")
        assert done.returncode == 0, done.stderr
        assert _version_of(tmp_path / "mypkg.db") == []

    def test_upgrade_to_a_revision_prefix(self, cli: Cli, tmp_path: Path) -> None:
        result = cli("upgrade", REVISIONS[1][:6])
        assert result.returncode == 0, result.stderr
        assert _version_of(tmp_path / "mypkg.db") == [REVISIONS[1]]

    def test_stamp_refuses_a_schema_that_differs_unless_forced(self, cli: Cli, tmp_path: Path) -> None:
        refused = cli("stamp", REVISIONS[0])
        _assert_one_line_error(refused, 1, f"does not have the schema of {REVISIONS[0]}", "add_table my_table", "--force")
        assert mypkg.current(f"sqlite:///{tmp_path / 'mypkg.db'}") == ()
        result = cli("stamp", REVISIONS[0], "--force")
        assert result.returncode == 0, result.stderr
        assert _version_of(tmp_path / "mypkg.db") == [REVISIONS[0]]
        with sqlite3.connect(tmp_path / "mypkg.db") as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        assert "my_table" not in tables

    def test_check_passes_at_head_and_reports_drift(self, cli: Cli, tmp_path: Path) -> None:
        assert cli("check").returncode == 1  # not at head yet
        cli("upgrade")
        clean = cli("check")
        assert clean.returncode == 0, clean.stdout + clean.stderr
        with sqlite3.connect(tmp_path / "mypkg.db") as connection:
            connection.execute("CREATE TABLE stray (id INTEGER PRIMARY KEY)")
            connection.execute("DROP INDEX ix_note_my_table_id")
        drift = cli("check")
        assert drift.returncode == 1
        assert "2 difference(s)" in drift.stdout
        assert "remove_table stray" in drift.stdout
        assert "add_index" in drift.stdout and "ix_note_my_table_id" in drift.stdout

    def test_upgrade_sql_prints_ddl_and_touches_nothing(self, cli: Cli, tmp_path: Path) -> None:
        result = cli("upgrade", "--sql")
        assert result.returncode == 0, result.stderr
        assert "CREATE TABLE my_table" in result.stdout
        assert f"'{HEAD}'" in result.stdout
        assert not (tmp_path / "mypkg.db").exists()
        ranged = cli("upgrade", "--sql", f"{REVISIONS[2]}:{REVISIONS[3]}")
        assert "CREATE TABLE my_table" not in ranged.stdout
        assert "_alembic_tmp_my_table" in ranged.stdout  # batch mode, offline

    def test_offline_sql_applies_to_a_real_sqlite_database(self, cli: Cli, tmp_path: Path) -> None:
        script = cli("upgrade", "--sql").stdout
        offline = tmp_path / "offline.db"
        with sqlite3.connect(offline) as connection:
            connection.executescript(script)
        assert _version_of(offline) == [HEAD]
        assert cli("--url", f"sqlite:///{offline}", "check").returncode == 0

    def test_downgrade_sql_needs_a_range(self, cli: Cli) -> None:
        assert cli("downgrade", "--sql", "-1").returncode == 2
        result = cli("downgrade", "--sql", f"{HEAD}:{REVISIONS[-2]}")
        assert result.returncode == 0, result.stderr
        assert "DROP INDEX ix_note_my_table_id" in result.stdout

    def test_postgresql_offline_sql_masks_nothing_it_does_not_print(self, cli: Cli) -> None:
        result = cli("--url", "postgresql://app:s3cret@db.invalid/app", "upgrade", "--sql")
        assert result.returncode == 0, result.stderr
        assert "CREATE INDEX CONCURRENTLY" in result.stdout
        assert "s3cret" not in result.stdout + result.stderr

    @pytest.mark.parametrize("command", sorted(COMMANDS))
    def test_every_command_has_help_with_examples(self, cli: Cli, command: str) -> None:
        result = cli(command, "--help")
        assert result.returncode == 0
        assert "examples:" in result.stdout
        assert "--url" in result.stdout and "exit codes" in result.stdout

    def test_main_help_names_the_environment_variable_and_default(self, cli: Cli) -> None:
        result = cli("--help")
        assert "MYPKG_DATABASE_URL" in result.stdout and "sqlite:///mypkg.db" in result.stdout
        assert cli("--version").stdout.strip() == f"mypkg-migrate {mypkg.__version__}"

    def test_verbose_shows_alembic_log_quiet_shows_nothing(self, cli: Cli) -> None:
        assert "Running upgrade" in cli("-v", "upgrade", REVISIONS[0]).stderr
        assert cli("-q", "upgrade").stdout == ""


def _assert_one_line_error(result, code: int, *fragments: str) -> None:  # noqa: ANN001
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mypkg-migrate: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


class TestBadInput:
    """One line on stderr, a documented exit code, no traceback, the database untouched."""

    def test_malformed_url(self, cli: Cli) -> None:
        _assert_one_line_error(cli("--url", "not a url", "upgrade"), 2, "malformed database URL")

    def test_unknown_dialect(self, cli: Cli) -> None:
        _assert_one_line_error(cli("--url", "nosuchdb://x/y", "upgrade"), 2, "unknown database dialect")

    def test_missing_driver_names_pip_and_conda_packages(self, cli: Cli) -> None:
        result = cli("--url", "postgresql+psycopg2://app:s3cret@localhost/app", "upgrade")
        _assert_one_line_error(result, 1, "psycopg2", "pip install psycopg2-binary", "conda install")
        assert "s3cret" not in result.stderr

    def test_unreachable_server_masks_the_password(self, cli: Cli) -> None:
        result = cli("--url", "postgresql://app:s3cret@127.0.0.1:1/app", "upgrade")
        _assert_one_line_error(result, 1, "cannot connect to", "app:***@127.0.0.1:1/app")
        assert "s3cret" not in result.stderr

    def test_unreachable_server_with_verbose_shows_traceback_but_no_password(self, cli: Cli) -> None:
        result = cli("-v", "--url", "postgresql://app:s3cret@127.0.0.1:1/app", "upgrade")
        assert result.returncode == 1
        assert "Traceback" in result.stderr
        assert "s3cret" not in result.stderr

    def test_unknown_revision(self, cli: Cli, tmp_path: Path) -> None:
        cli("upgrade", REVISIONS[0])
        _assert_one_line_error(cli("upgrade", "deadbeef"), 2, "unknown revision 'deadbeef'")
        assert _version_of(tmp_path / "mypkg.db") == [REVISIONS[0]]

    def test_database_from_a_newer_package(self, cli: Cli, tmp_path: Path) -> None:
        cli("upgrade")
        with sqlite3.connect(tmp_path / "mypkg.db") as connection:
            connection.execute("UPDATE alembic_version SET version_num = 'f00dfeed1234'")
        for command in ("upgrade", "status", "downgrade"):
            args = (command, "-1") if command == "downgrade" else (command,)
            _assert_one_line_error(cli(*args), 1, "f00dfeed1234", "newer mypkg")
        assert _version_of(tmp_path / "mypkg.db") == ["f00dfeed1234"]

    def test_file_that_is_not_a_sqlite_database(self, cli: Cli, tmp_path: Path) -> None:
        (tmp_path / "mypkg.db").write_text("these are not the tables you are looking for\n")
        _assert_one_line_error(cli("upgrade"), 1, "is not a SQLite database")
        assert (tmp_path / "mypkg.db").read_text().startswith("these are not")

    def test_read_only_database(self, cli: Cli, tmp_path: Path) -> None:
        cli("upgrade", REVISIONS[0])
        path = tmp_path / "mypkg.db"
        # Root ignores file modes; SQLite's read-only open mode holds for everyone.
        result = cli("--url", f"sqlite:///file:{path}?mode=ro&uri=true", "upgrade")
        # Refused before anything is opened for writing: the URL itself says read-only.
        _assert_one_line_error(result, 2, "is opened read-only (mode=ro): this command writes")
        assert _version_of(path) == [REVISIONS[0]]
        # Reads work through the same URL, on the full path too (status never opens for writing).
        for fast in ({}, {"MYPKG_NO_FASTPATH": "1"}):
            status = cli("--url", f"sqlite:///{path}?mode=ro", "status", **fast)
            assert status.returncode == 1 and f"current:  {REVISIONS[0]}" in status.stdout, (fast, status.stderr)

    def test_missing_directory(self, cli: Cli, tmp_path: Path) -> None:
        result = cli("--url", f"sqlite:///{tmp_path}/no/such/dir/app.db", "upgrade")
        _assert_one_line_error(result, 1, "does not exist")
        assert not (tmp_path / "no").exists()

    def test_unknown_command_is_a_usage_error(self, cli: Cli) -> None:
        result = cli("migrate-everything")
        assert result.returncode == 2
        assert "Traceback" not in result.stderr

    def test_relative_downgrade_past_base(self, cli: Cli) -> None:
        _assert_one_line_error(cli("downgrade", "-1"), 2, "cannot downgrade to -1 from base")


class TestOnBothDatabases:
    """The command's whole life cycle, and its refusals, on SQLite and PostgreSQL."""

    def test_upgrade_status_downgrade_stamp_check(self, cli: Cli, db_url: str) -> None:
        up = cli("--url", db_url, "upgrade")
        assert up.returncode == 0, up.stderr
        assert [line.split()[1] for line in up.stdout.splitlines() if line.startswith("applied")] == REVISIONS
        assert cli("--url", db_url, "status").returncode == 0
        assert cli("--url", db_url, "check").returncode == 0
        down = cli("--url", db_url, "downgrade", "-1")
        assert down.returncode == 0 and f"reverted {HEAD}" in down.stdout
        behind = cli("--url", db_url, "status", "--json")
        assert behind.returncode == 1
        assert [r["revision"] for r in json.loads(behind.stdout)["pending"]] == [HEAD]
        assert cli("--url", db_url, "upgrade").returncode == 0
        base = cli("--url", db_url, "downgrade", "base", "--yes")
        assert base.returncode == 0 and base.stdout.count("reverted") == len(REVISIONS)
        assert mypkg.current(db_url) == ()
        # stamp's documented use: a database built by create_all() from the models.
        from mypkg.migrate.database import connections as database
        from mypkg.models import metadata

        engine = database.create_engine(db_url)
        metadata.create_all(engine)
        engine.dispose()
        assert cli("--url", db_url, "stamp", "head").returncode == 0
        assert json.loads(cli("--url", db_url, "current", "--json").stdout)["current"] == [HEAD]
        assert cli("--url", db_url, "check").returncode == 0

    def test_unknown_and_newer_revisions_change_nothing(self, cli: Cli, db_url: str) -> None:
        cli("--url", db_url, "upgrade", REVISIONS[0])
        _assert_one_line_error(cli("--url", db_url, "upgrade", "deadbeef"), 2, "unknown revision")
        assert mypkg.current(db_url) == (REVISIONS[0],)
        mypkg.stamp(db_url, REVISIONS[0])
        import sqlalchemy as sa

        from mypkg.migrate.database import connections as database

        engine = database.create_engine(db_url)
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeed1234'"))
        engine.dispose()
        _assert_one_line_error(cli("--url", db_url, "upgrade"), 1, "f00dfeed1234", "newer mypkg")
        assert mypkg.current(db_url) == ("f00dfeed1234",)


@pytest.mark.parametrize("command", [["upgrade", "--json"], ["history", "--json"], ["lint", "--json"],
                                     ["upgrade", "--sql"], ["lint"]])
def test_an_application_logging_to_stdout_leaves_the_result_alone_there(source_copy: Path, tmp_path: Path,
                                                                        command: list[str]) -> None:
    """zenml's import sets up logging to stdout, and its revisions import zenml: Alembic's
    "Running upgrade" lines then went into `--json`'s stdout, which no longer parsed. Under
    --json and --sql stdout holds the result alone; whatever else writes there goes to stderr."""
    import os
    import subprocess
    import sys

    from tests.history import histories
    from tests.runtime.test_api import HEAD

    noisy = histories.script(
        "9999_0b0150170001_noisy.py", "0b0150170001", HEAD, "test only: its application logs to stdout",
        upgrade='op.add_column("my_table", sa.Column("noted", sa.Integer))',
        downgrade='op.drop_column("my_table", "noted")')
    text = noisy.text.replace("import sqlalchemy as sa\n", "import sqlalchemy as sa\nimport noisy_application  # noqa: F401\n", 1)
    (source_copy / "alembic" / "versions" / noisy.filename).write_text(text)
    (source_copy / "noisy_application.py").write_text(
        "import logging, sys\n"
        "handler = logging.StreamHandler(sys.stdout)  # as zenml's logging set-up does\n"
        "logging.getLogger().addHandler(handler)\n"
        "logging.getLogger().setLevel(logging.INFO)\n"
        "print('application banner')\n")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    env = {**os.environ, "PYTHONPATH": str(source_copy)}
    env.pop("MYPKG_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "mypkg", "--url", url, *command], cwd=source_copy, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    if command == ["lint"]:  # text: nothing to keep apart, the application prints where it prints
        assert "application banner" in done.stdout
        return
    assert "application banner" in done.stderr and "application banner" not in done.stdout
    if "--json" in command:
        assert json.loads(done.stdout)["command"] == command[0]
    else:
        # Alembic's own "-- Running upgrade" comments are SQL; its log line is not.
        assert not any(line.startswith("Running upgrade") for line in done.stdout.splitlines())
        assert "ALTER TABLE my_table ADD COLUMN noted" in done.stdout


def test_progress_lines_reach_a_pipe_while_the_revision_still_runs(source_copy: Path, tmp_path: Path) -> None:
    """A deploy's log (a pipe, not a terminal) shows "applying REV" when the revision starts,
    not when the process ends: each line is flushed as it is printed."""
    import os
    import subprocess
    import sys
    import time

    from tests.history import histories
    from tests.runtime.test_api import HEAD

    gate = tmp_path / "gate"
    waits = histories.script(
        "9999_0b0f1a5e0001_waits.py", "0b0f1a5e0001", HEAD, "test only: waits for a file",
        upgrade=(f'import pathlib, time\nwhile not pathlib.Path({str(gate)!r}).exists():\n    time.sleep(0.05)'))
    (source_copy / "alembic" / "versions" / waits.filename).write_text(waits.text)
    env = {**os.environ, "PYTHONPATH": str(source_copy)}
    env.pop("MYPKG_DATABASE_URL", None)
    env.pop("PYTHONUNBUFFERED", None)  # a pipe is block-buffered, as in a deploy's log
    process = subprocess.Popen([sys.executable, "-m", "mypkg", "--url", f"sqlite:///{tmp_path / 'app.db'}",
                                "upgrade"], cwd=source_copy, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    import threading

    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("applying 0b0f1a5e0001" in line for line in seen):
            time.sleep(0.05)
        assert any("applying 0b0f1a5e0001" in line for line in seen), seen
        assert process.poll() is None  # read while the revision still waits
    finally:
        gate.touch()
        process.wait(timeout=60)
        reader.join(timeout=60)
        process.stdout.close()  # type: ignore[union-attr]
    assert process.returncode == 0
