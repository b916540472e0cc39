"""Fleets over a world built for real: 200 SQLite files, 20 PostgreSQL databases and 5 MariaDB
databases on the suite's servers, a target that accepts and never answers (127.0.0.1), shard
processes as a Kubernetes Indexed Job runs them, a fleet killed half way, two fleets at once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mypkg
from tests.conftest import command_prefix
from tests.runtime.test_deploys import SilentServer

HEAD = mypkg.heads()[0]
REVISIONS = [rev.revision for rev in mypkg.history()]
SECRET = "s3cret"


def fleet(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    return subprocess.run([*command_prefix(), "fleet", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def sqlite_files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"tenant_{i:04}.db" for i in range(count)]
    for path in paths:
        path.touch()  # an empty file: a new tenant's database
    return paths


def version(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


def applied_once(path: Path) -> bool:
    """Each revision has exactly one 'applied' ledger row: none ran twice."""
    with sqlite3.connect(path) as connection:
        rows = [row[0] for row in connection.execute(
            "SELECT revision FROM mypkg_migration_ledger WHERE outcome = 'applied'")]
    return sorted(rows) == sorted(REVISIONS)


class TestSqliteFleet:
    """200 files through --sqlite-glob."""

    def test_upgrade_status_and_a_rerun_that_costs_one_read_each(self, tmp_path: Path) -> None:
        paths = sqlite_files(tmp_path / "data", 200)
        done = fleet("upgrade", "--sqlite-glob", "data/*.db", "--jobs", "2", "--json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["summary"]["targets"] == 200 and report["summary"]["migrated"] == 200
        assert {row["outcome"] for row in report["targets"]} == {"migrated"}
        assert all(version(path) == [HEAD] and applied_once(path) for path in paths)

        status = fleet("status", "--sqlite-glob", "data/*.db", "--json", cwd=tmp_path)
        assert status.returncode == 0
        assert json.loads(status.stdout)["summary"]["at_head"] == 200
        again = fleet("upgrade", "--sqlite-glob", "data/*.db", cwd=tmp_path)
        assert again.returncode == 0
        assert again.stdout.strip().splitlines()[-1].startswith("fleet upgrade head: 200 target(s): 200 unchanged")

    def test_status_names_the_targets_behind_and_exits_1(self, tmp_path: Path) -> None:
        paths = sqlite_files(tmp_path / "data", 6)
        for path in paths[:4]:
            mypkg.upgrade(f"sqlite:///{path}")
        status = fleet("status", "--sqlite-glob", "data/*.db", cwd=tmp_path)
        assert status.returncode == 1
        behind = [line for line in status.stdout.splitlines() if line.startswith("behind")]
        assert len(behind) == 2 and str(paths[4]) in behind[0] + behind[1]

    def test_a_failing_target_fails_alone_and_max_failures_stops_new_ones(self, tmp_path: Path) -> None:
        paths = sqlite_files(tmp_path / "data", 12)
        for path in paths[1:4]:  # another application's tables, no version table: refused
            with sqlite3.connect(path) as connection:
                connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
        isolated = fleet("upgrade", "--sqlite-glob", "data/*.db", "--json", cwd=tmp_path)
        assert isolated.returncode == 1
        summary = json.loads(isolated.stdout)["summary"]
        assert (summary["migrated"], summary["failed"], summary["not_started"]) == (9, 3, 0)

        for path in paths:  # afresh: empty again, the three foreign ones kept
            if path not in paths[1:4]:
                path.unlink()
                path.touch()
        bounded = fleet("upgrade", "--sqlite-glob", "data/*.db", "--jobs", "1", "--max-failures", "2", "--json",
                        cwd=tmp_path)
        assert bounded.returncode == 1
        report = json.loads(bounded.stdout)
        assert report["summary"]["failed"] == 2 and report["summary"]["not_started"] == 9
        assert "--max-failures 2" in report["summary"]["stopped"]
        assert [row["outcome"] for row in report["targets"][:3]] == ["migrated", "failed", "failed"]

    def test_a_canary_that_fails_starts_no_other_target(self, tmp_path: Path) -> None:
        paths = sqlite_files(tmp_path / "data", 10)
        with sqlite3.connect(paths[2]) as connection:
            connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
        result = fleet("upgrade", "--sqlite-glob", "data/*.db", "--canary", "3", cwd=tmp_path)
        assert result.returncode == 1
        assert "the canary failed (1 of 3 target(s), --canary 3)" in result.stdout
        assert [path.stat().st_size for path in paths[3:]] == [0] * 7  # never started: still empty
        ok = fleet("upgrade", "--sqlite-glob", "data/tenant_000[013-9].db", "--canary", "3", cwd=tmp_path)
        assert ok.returncode == 0, ok.stdout + ok.stderr

    def test_two_fleets_at_once_apply_each_revision_once(self, tmp_path: Path) -> None:
        paths = sqlite_files(tmp_path / "data", 60)
        base = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
        command = [*command_prefix(), "fleet", "upgrade", "--sqlite-glob", "data/*.db", "--jobs", "2"]
        both = [subprocess.Popen(command, cwd=tmp_path, env=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(2)]
        outputs = [process.communicate(timeout=600) for process in both]
        assert [process.returncode for process in both] == [0, 0], outputs
        assert all(version(path) == [HEAD] and applied_once(path) for path in paths)

    def test_a_fleet_killed_half_way_is_finished_by_a_rerun(self, tmp_path: Path) -> None:
        paths = sqlite_files(tmp_path / "data", 80)
        base = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
        process = subprocess.Popen([*command_prefix(), "fleet", "upgrade", "--sqlite-glob", "data/*.db", "--jobs", "1"],
                                   cwd=tmp_path, env=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            done = sum(1 for path in paths if path.stat().st_size and _at_head(path))
            if done >= 10:
                break
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)  # the fleet and its workers, as a node lost
        process.communicate(timeout=60)
        finished = sum(_at_head(path) for path in paths)
        assert 10 <= finished < 80
        rerun = fleet("upgrade", "--sqlite-glob", "data/*.db", "--json", cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stderr
        summary = json.loads(rerun.stdout)["summary"]
        assert summary["unchanged"] >= finished - 1 and summary["migrated"] + summary["unchanged"] == 80
        assert all(version(path) == [HEAD] and applied_once(path) for path in paths)


def _at_head(path: Path) -> bool:
    try:
        return version(path) == [HEAD]
    except sqlite3.Error:
        return False


@pytest.fixture
def server_targets(pg_server, mariadb_server, tmp_path: Path) -> Iterator[tuple[Path, list[str], SilentServer]]:  # noqa: ANN001
    postgresql = [pg_server.create_database() for _ in range(20)]
    mysql = [mariadb_server.create_database() for _ in range(5)]
    silent = SilentServer()
    lines = ["# tenants: PostgreSQL databases, MariaDB databases, and one that never answers", ""]
    lines += postgresql + mysql
    lines.append(postgresql[0] + "   # the same database twice: one target")
    lines.append(f"postgresql://app:{SECRET}@127.0.0.1:{silent.port}/silent")
    path = tmp_path / "tenants.txt"
    path.write_text("\n".join(lines) + "\n")
    try:
        yield path, postgresql + mysql, silent
    finally:
        silent.close()
        for url in postgresql:
            pg_server.drop_database(url)
        for url in mysql:
            mariadb_server.drop_database(url)


def test_a_fleet_of_server_databases_with_one_that_never_answers(server_targets, tmp_path: Path) -> None:  # noqa: ANN001
    path, urls, silent = server_targets
    started = time.monotonic()
    result = fleet("--connect-timeout", "2", "upgrade", "--targets", str(path), "--jobs", "2", "--json", cwd=tmp_path)
    assert time.monotonic() - started < 120
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["summary"]["targets"] == 26 and report["summary"]["migrated"] == 25
    (failed,) = [row for row in report["targets"] if row["outcome"] == "failed"]
    assert failed["target"] == f"postgresql://app:***@127.0.0.1:{silent.port}/silent"
    assert "timeout" in failed["error"].lower() and failed["seconds"] < 15
    assert SECRET not in result.stdout + result.stderr
    assert all(mypkg.current(url) == (HEAD,) for url in urls)
    log = fleet("--connect-timeout", "2", "status", "--targets", str(path), cwd=tmp_path)
    assert log.returncode == 1
    assert [line for line in log.stderr.splitlines() if "failed" in line] != []


def test_shards_as_an_indexed_job_runs_them_cover_every_target_once(tmp_path: Path) -> None:
    """Three pods: JOB_COMPLETION_INDEX set as the Job controller sets it, and the argument
    the manifest gives (Kubernetes expands $(JOB_COMPLETION_INDEX) in args)."""
    sqlite_files(tmp_path / "data", 90)
    base = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    pods = [subprocess.Popen(["sh", "-c", " ".join([*command_prefix(), "fleet", "upgrade", "--sqlite-glob", "'data/*.db'",
                                                   "--shard", '"$JOB_COMPLETION_INDEX/3"', "--json"])],
                             cwd=tmp_path, env={**base, "JOB_COMPLETION_INDEX": str(index)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for index in range(3)]
    reports = []
    for pod in pods:
        out, err = pod.communicate(timeout=600)
        assert pod.returncode == 0, err
        reports.append(json.loads(out))
    taken = [row["target"] for report in reports for row in report["targets"]]
    assert len(taken) == len(set(taken)) == 90  # every target, exactly once
    assert all(report["targets"] for report in reports)  # each pod had work
    assert [report["summary"]["shard"] for report in reports] == ["0/3", "1/3", "2/3"]


@pytest.mark.parametrize("args, says", [
    (("upgrade",), "fleet needs targets"),
    (("upgrade", "--sqlite-glob", "x/*.db", "--shard", "3/3"), "--shard 3/3: I must be at least 0 and below N"),
    (("upgrade", "--sqlite-glob", "x/*.db", "--shard=-1/3"), "--shard -1/3: I must be at least 0 and below N"),
    (("upgrade", "--sqlite-glob", "x/*.db", "--shard", "two"), "--shard takes I/N"),
    (("downgrade", "--sqlite-glob", "x/*.db"), "fleet downgrade needs a revision"),
    (("downgrade", "base", "--sqlite-glob", "x/*.db"), "confirm with --yes"),
    (("upgrade", "--sqlite-glob", "x/*.db", "--jobs", "0"), "--jobs: must be at least 1"),
    (("upgrade", "nope", "--sqlite-glob", "x/*.db"), "unknown revision 'nope'"),
])
def test_bad_fleet_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    result = fleet(*args, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert says in line


def test_a_malformed_targets_line_is_named_before_anything_runs(tmp_path: Path) -> None:
    good = sqlite_files(tmp_path / "data", 1)[0]
    (tmp_path / "tenants.txt").write_text(f"sqlite:///{good}\n\nnot a url at all\n")
    result = fleet("upgrade", "--targets", "tenants.txt", cwd=tmp_path)
    assert result.returncode == 2
    assert "--targets tenants.txt, line 3: malformed database URL" in result.stderr
    assert good.stat().st_size == 0  # nothing ran


def test_the_python_api_returns_the_rows(tmp_path: Path) -> None:
    import mypkg.fleet

    paths = sqlite_files(tmp_path / "data", 8)
    urls = [f"sqlite:///{path}" for path in paths]
    result = mypkg.fleet.upgrade(urls + urls[:2], jobs=2)
    assert result.ok and len(result.rows) == 8
    assert {row.outcome for row in result.rows} == {"migrated"} and all(row.after == (HEAD,) for row in result.rows)
    assert all(0 < row.seconds <= result.seconds for row in result.rows)  # each its own time, within the fleet's
    shards = [mypkg.fleet.status(urls, shard=(index, 2)) for index in range(2)]
    assert sorted(row.target for shard in shards for row in shard.rows) == sorted(urls)
    assert all(shard.ok for shard in shards)


def test_a_targets_shard_is_the_documented_hash_so_releases_agree(tmp_path: Path) -> None:
    """docs/fleets.md gives the rule: the first 8 bytes of sha256(identity), big-endian,
    modulo N. Pods of two releases must split a fleet the same way, so the rule is computed
    here from the docs' words, independently of the code, and every target must sit where it
    says; the identity hides the password, so a rotated secret does not move a target."""
    import hashlib

    import mypkg.fleet

    paths = sqlite_files(tmp_path / "data", 40)
    urls = [f"sqlite:///{path}" for path in paths]

    def documented(identity: str, count: int) -> int:
        return int(hashlib.sha256(identity.encode()).hexdigest()[:16], 16) % count

    for count in (3, 5):
        for index in range(count):
            taken = [row.target for row in mypkg.fleet.status(urls, shard=(index, count)).rows]
            assert sorted(taken) == sorted(url for url in urls if documented(url, count) == index)
    from mypkg.migrate.fleet.targets import target

    rotated = [target(f"postgresql://app:{secret}@127.0.0.1:5432/tenant_7") for secret in ("old", "new")]
    assert rotated[0].identity == rotated[1].identity == "postgresql://app:***@127.0.0.1:5432/tenant_7"
    assert rotated[0].shard(7) == rotated[1].shard(7) == documented(rotated[0].identity, 7)


def test_a_pool_broken_between_two_targets_ends_the_handed_off_ones_story_as_not_started(tmp_path: Path) -> None:
    """A worker dies while idle (an OOM kill between two targets): the next target is handed
    to the pool (its span starts) but the pool refuses it. Its end is told all the same, as
    not started, so no span stays open; nothing else starts. The worker is killed from the
    fleet's row callback, which runs between one target's end and the next one's start."""
    import multiprocessing
    import signal as signals

    from mypkg.migrate import events
    from mypkg.migrate.fleet import run, targets

    urls = [f"sqlite:///{path}" for path in sqlite_files(tmp_path / "data", 4)]
    told: list[tuple[str, str, dict]] = []

    class Recorder:
        def __call__(self, event: str, fields: dict) -> None:
            if event == events.TARGET_END:
                told.append(("end", fields["target"], fields))

        def handoff(self, target: str) -> dict[str, str]:
            told.append(("handoff", target, {}))
            return {}

    def kill_the_idle_worker(row: run.Row) -> None:
        if row.outcome == "migrated":
            for worker in multiprocessing.active_children():
                os.kill(worker.pid, signals.SIGKILL)
                worker.join(30)
            time.sleep(0.5)  # the pool's own thread marks it broken on the worker's exit

    with events.listeners(Recorder()):
        result = run.run("upgrade", [targets.target(url) for url in urls], jobs=1, on_row=kill_the_idle_worker)
    assert [row.outcome for row in result.rows] == ["migrated", "not started", "not started", "not started"]
    assert result.stopped == "a worker process died: no new target was started"
    assert [(kind, target) for kind, target, _ in told] == [
        ("handoff", urls[0]), ("end", urls[0]), ("handoff", urls[1]), ("end", urls[1])]
    ended = told[-1][2]
    assert (ended["outcome"], ended["seconds"], ended["error"]) == ("not started", 0.0, result.stopped)


def test_an_unexpected_error_in_one_target_is_that_targets_row_not_the_fleets(tmp_path: Path) -> None:
    """Not every error is a migration error: a name no file system can take (a lone
    surrogate) raises UnicodeEncodeError inside the worker. That target fails with it; the
    worker lives, and the other targets (a Latin-1 file name among them) are migrated."""
    import mypkg.fleet

    from mypkg.migrate.fleet.targets import target

    paths = sqlite_files(tmp_path / "data", 4)
    latin1 = os.fsdecode(os.fsencode(paths[1].parent) + b"/caf\xe9.db")  # "caf\udce9.db"
    odd = f"sqlite:///{latin1}"
    # A lone surrogate stands for no byte at all: no file system can be asked for that name.
    impossible = f"sqlite:///{paths[1].parent}/bad\ud800.db"
    result = mypkg.fleet.upgrade([f"sqlite:///{paths[0]}", odd, impossible, f"sqlite:///{paths[2]}"], jobs=1)
    assert result.stopped is None
    rows = {row.target: row for row in result.rows}
    shown = target(impossible).identity  # reported escaped, never a crash of the report
    assert shown.endswith("/data/bad\\ud800.db"), shown
    assert rows[shown].outcome == "failed" and rows[shown].error.startswith("UnicodeEncodeError: "), rows[shown]
    # A Latin-1 name (listed by Python as surrogates) is a file like any other: migrated, shown escaped.
    assert rows[target(odd).identity].outcome == "migrated" and target(odd).identity.endswith("/data/caf\\xe9.db")
    assert os.path.exists(latin1)
    assert [rows[f"sqlite:///{path}"].outcome for path in (paths[0], paths[2])] == ["migrated", "migrated"]


def test_a_targets_file_that_cannot_be_read_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for path, reason in ((tmp_path / "missing.txt", "No such file or directory"), (tmp_path, "Is a directory")):
        result = fleet("status", "--targets", str(path), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr == f"mypkg-migrate: error: --targets {path}: {reason}\n"


def test_max_failures_below_one_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """Zero would stop the fleet before its first failure could be told: the API refuses it
    as the command line does."""
    import mypkg.fleet

    paths = sqlite_files(tmp_path / "data", 2)
    with pytest.raises(mypkg.UsageError, match="--max-failures must be at least 1"):
        mypkg.fleet.upgrade([f"sqlite:///{path}" for path in paths], max_failures=0)
    assert [path.stat().st_size for path in paths] == [0, 0]


def test_the_guides_indexed_job_manifest_shards_the_fleet() -> None:
    """The manifest in docs/fleets.md: an Indexed Job whose pods each take their shard."""
    import re
    import shlex

    import yaml

    from mypkg.migrate.cli.handlers import build_parser
    from tests.conftest import REPO

    (block,) = re.findall(r"```yaml\n(.*?)```", (REPO / "docs" / "fleets.md").read_text(), flags=re.S)
    job = yaml.safe_load(block)
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["backoffLimitPerIndex"] >= 1
    count = spec["completions"]
    assert spec["parallelism"] <= count and spec["template"]["spec"]["restartPolicy"] == "Never"
    (container,) = spec["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:2] == ["fleet", "upgrade"]
    assert args[args.index("--shard") + 1] == f"$(JOB_COMPLETION_INDEX)/{count}"
    # As Kubernetes expands it for pod 3, the arguments parse.
    expanded = [arg.replace("$(JOB_COMPLETION_INDEX)", "3") for arg in args]
    parsed = build_parser("fleet").parse_args(expanded)
    assert (parsed.shard, parsed.action) == (f"3/{count}", "upgrade")
    assert not any("password" in shlex.join(args).lower() or "@" in arg for arg in args)


def test_a_worker_killed_mid_target_fails_that_target_and_starts_no_other(source_copy: Path, tmp_path: Path) -> None:
    """A worker process dies (an OOM kill, here its own SIGKILL from a revision): the pool is
    broken; its target is failed, no new target starts, and the report still comes out."""
    from tests.history import histories

    killer = histories.script(
        "9999_5107dead0009_kill.py", "5107dead0009", HEAD, "test only: kills its process on one tenant",
        upgrade='import os, signal\nif "tenant_0002" in str(op.get_bind().engine.url):\n'
                '    os.kill(os.getpid(), signal.SIGKILL)')
    (source_copy / "alembic" / "versions" / killer.filename).write_text(killer.text)
    sqlite_files(tmp_path / "data", 6)
    base = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    result = subprocess.run([sys.executable, "-m", "mypkg", "fleet", "upgrade", "--sqlite-glob", str(tmp_path / "data" / "*.db"),
                             "--jobs", "1", "--json"], cwd=source_copy, env={**base, "PYTHONPATH": str(source_copy)},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    outcomes = {Path(row["target"]).name: row["outcome"] for row in report["targets"]}
    assert outcomes["tenant_0002.db"] == "failed"
    assert [outcomes[f"tenant_{i:04}.db"] for i in (0, 1)] == ["migrated", "migrated"]
    assert set(outcomes[f"tenant_{i:04}.db"] for i in (3, 4, 5)) == {"not started"}
    assert "a worker process died" in report["summary"]["stopped"]


def test_max_failures_one_stops_at_the_first_failure_and_every_row_knows_its_time(tmp_path: Path) -> None:
    import mypkg.fleet

    paths = sqlite_files(tmp_path / "data", 3)
    with sqlite3.connect(paths[0]) as connection:  # another application's tables: refused
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    result = mypkg.fleet.upgrade([f"sqlite:///{path}" for path in paths], jobs=1, max_failures=1)
    assert [row.outcome for row in result.rows] == ["failed", "not started", "not started"]
    assert result.stopped == "1 target(s) failed (--max-failures 1)"
    status = mypkg.fleet.status([f"sqlite:///{path}" for path in paths[1:]], jobs=1)
    # Each target's own time lies within the fleet's.
    assert all(0 <= row.seconds <= status.seconds for row in status.rows), (status.rows, status.seconds)


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_a_fleet_sigkilled_by_its_orchestrator_takes_its_workers_with_it(source_copy: Path, tmp_path: Path) -> None:
    """What an orchestrator sends after its grace period: SIGKILL to the fleet's process
    alone (no process group, no handler runs). Its workers, mid-revision, end with it: none
    is left migrating, and the fleet's stdout and stderr reach EOF at once."""
    from tests.history import histories

    slow = histories.script("9999_5107dead0010_slow.py", "5107dead0010", HEAD, "test only: a long revision",
                            upgrade='import pathlib, time\nop.create_table("slow", sa.Column("id", sa.Integer, primary_key=True))\n'
                                    'pathlib.Path(str(op.get_bind().engine.url.database) + ".running").touch()\n'
                                    'time.sleep(120)')
    (source_copy / "alembic" / "versions" / slow.filename).write_text(slow.text)
    paths = sqlite_files(tmp_path / "data", 4)
    base = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    process = subprocess.Popen([sys.executable, "-m", "mypkg", "fleet", "upgrade", "--sqlite-glob",
                                str(tmp_path / "data" / "*.db"), "--jobs", "2"], cwd=source_copy,
                               env={**base, "PYTHONPATH": str(source_copy)}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((tmp_path / "data").glob("*.running"))) < 2:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    workers = {pid for pid in _children(process.pid)
               if "multiprocessing" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")}
    assert len(workers) >= 2, workers  # the world claimed: workers mid-revision
    process.kill()
    started = time.monotonic()
    out, err = process.communicate(timeout=30)  # EOF on both pipes: no worker holds them
    assert time.monotonic() - started < 15
    ended = time.monotonic() + 15
    while time.monotonic() < ended and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "a worker outlived the fleet"
    # Cut off mid-revision: each database rolled back to the revision before it.
    def at(path: Path) -> list[str]:
        with sqlite3.connect(path) as connection:
            if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone():
                return []
        return version(path)

    assert all(at(path) in ([], [HEAD]) for path in paths), [at(path) for path in paths]
    assert sum(at(path) == [HEAD] for path in paths) >= 2


def test_no_target_is_an_error_unless_allowed(tmp_path: Path) -> None:
    """A glob with a typo, or an empty targets file, would pass CI silently: exit 2 naming
    what found nothing; --allow-empty for a fleet that may be empty; an empty shard of a
    fleet that has targets is no error."""
    (tmp_path / "empty.txt").write_text("# no tenant yet\n")
    for args in (("--sqlite-glob", "dta/*.db"), ("--targets", "empty.txt")):
        result = fleet("upgrade", *args, cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert f"fleet found no target ({args[0]} " in line and "--allow-empty" in line
        allowed = fleet("upgrade", *args, "--allow-empty", "--json", cwd=tmp_path)
        assert allowed.returncode == 0, allowed.stderr
        assert json.loads(allowed.stdout)["summary"]["targets"] == 0
    sqlite_files(tmp_path / "data", 1)
    shards = [fleet("status", "--sqlite-glob", "data/*.db", "--shard", f"{i}/2", "--json", cwd=tmp_path) for i in range(2)]
    assert sorted(json.loads(s.stdout)["summary"]["targets"] for s in shards) == [0, 1]
    # The shard with the (empty, so behind) file: 1; the empty shard: 0, not a usage error.
    assert {json.loads(s.stdout)["summary"]["targets"]: s.returncode for s in shards} == {1: 1, 0: 0}


def test_one_sqlite_file_spelled_two_ways_is_one_target(tmp_path: Path) -> None:
    path = sqlite_files(tmp_path / "d", 1)[0]
    (tmp_path / "link.db").symlink_to(path)
    (tmp_path / "tenants.txt").write_text("sqlite:///d/tenant_0000.db\nsqlite:///d/./tenant_0000.db\n"
                                          f"sqlite:///{tmp_path}/link.db\n")
    result = fleet("upgrade", "--targets", "tenants.txt", "--sqlite-glob", "d/*.db", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [row["target"] for row in report["targets"]] == [f"sqlite:///{path.resolve()}"]
    assert report["summary"]["migrated"] == 1 and applied_once(path)
    from mypkg.migrate.fleet.targets import target

    spellings = [f"sqlite:///{tmp_path}/d/tenant_0000.db", f"sqlite:///{tmp_path}/d/./tenant_0000.db",
                 f"sqlite:///{tmp_path}/link.db"]
    assert len({target(url).shard(7) for url in spellings}) == 1


def test_a_binary_targets_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "tenants.bin").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary")
    result = fleet("status", "--targets", "tenants.bin", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "--targets tenants.bin: not a text file of database URLs (UTF-8)" in line


def test_a_fleet_in_a_log_shows_its_progress_before_the_summary(tmp_path: Path) -> None:
    """stderr not a terminal (a CI log, kubectl logs): a progress line at each tenth."""
    sqlite_files(tmp_path / "data", 20)
    result = fleet("upgrade", "--sqlite-glob", "data/*.db", "--jobs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if " done, " in line]
    assert [line.split(": fleet: ")[1].split(" done")[0] for line in lines] == [f"{n} of 20" for n in range(2, 21, 2)]
    assert all(", 0 failed, " in line and line.endswith("s left") for line in lines)
    assert not [line for line in result.stderr.splitlines() if " failed: " in line]  # a line per failure only
    quiet = fleet("status", "--sqlite-glob", "data/*.db", "-q", cwd=tmp_path)
    assert quiet.stderr == ""


def test_a_revision_that_changes_its_own_module_runs_on_each_target_as_in_a_process_of_its_own(
        source_copy: Path, tmp_path: Path) -> None:
    """gnocchi's 34c517bcc2dd appends to a list at its module's top level while it runs,
    then drops each constraint listed. One alembic process per database never sees that;
    a fleet worker running target after target did: the second target dropped the first
    one's constraints again and failed. Each target now runs fresh copies of the scripts
    this process already ran, as a process of its own would; roundtrip's upgrade again too."""
    from tests.history import histories
    from tests.runtime.test_api import HEAD

    grows = histories.script(
        "9999_0bad9a0e0001_grows.py", "0bad9a0e0001", HEAD, "test only: grows a list of its module",
        upgrade=('TO_ADD.append("grown")\n'
                 'for name in TO_ADD:  # the second time in one process: "grown" twice\n'
                 '    op.add_column("my_table", sa.Column(name, sa.Integer))'),
        downgrade='op.drop_column("my_table", "grown")')
    text = grows.text.replace("\ndef upgrade", "\nTO_ADD = []\n\n\ndef upgrade", 1)
    (source_copy / "alembic" / "versions" / grows.filename).write_text(text)
    files = [tmp_path / f"tenant-{n}.db" for n in range(3)]
    listed = tmp_path / "targets.txt"
    listed.write_text("".join(f"sqlite:///{path}\n" for path in files))
    env = {**os.environ, "PYTHONPATH": str(source_copy)}
    env.pop("MYPKG_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "mypkg", "fleet", "upgrade", "--targets", str(listed), "--jobs", "1"],
                          cwd=source_copy, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(version(path) == ["0bad9a0e0001"] for path in files)
    trip = subprocess.run([sys.executable, "-m", "mypkg", "--url", f"sqlite:///{tmp_path / 'trip.db'}", "roundtrip",
                           f"{HEAD}:0bad9a0e0001", "--json"], cwd=source_copy, env=env, capture_output=True,
                          text=True, timeout=300)
    report = json.loads(trip.stdout)
    assert report["findings"] == [] and "upgrade again" in report["steps"][-1]["seconds"], trip.stdout
