"""Every command's ``--json`` against its JSON Schema in ``docs/json/`` (one versioned shape per
command, ``format`` and ``command`` first), errors under ``--json`` as one JSON object on
stderr, and ``--log-format json`` parsed line by line for a run with a failure."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import referencing

import mypkg
from tests.conftest import REPO, Cli
from tests.runtime.test_api import FAILING_REVISION, HEAD, REVISIONS, run_copy

SCHEMAS = {path.name: json.loads(path.read_text()) for path in (REPO / "docs" / "json").glob("*.schema.json")}
REGISTRY = referencing.Registry().with_resources(
    (name, referencing.Resource.from_contents(schema)) for name, schema in SCHEMAS.items())


def valid(payload: object, shape: str) -> dict:
    """``payload`` validated against ``docs/json/<shape>.schema.json``; returned for more checks."""
    schema = SCHEMAS[f"{shape}.schema.json"]
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(payload)
    assert isinstance(payload, dict)
    return payload


def result(done: subprocess.CompletedProcess[str], shape: str, code: int = 0) -> dict:
    assert done.returncode == code, done.stderr
    return valid(json.loads(done.stdout), shape)


def error(done: subprocess.CompletedProcess[str], code: int) -> dict:
    """A failure under --json: nothing on stdout, one JSON object on stderr."""
    assert done.returncode == code and done.stdout == "", (done.stdout, done.stderr)
    (line,) = done.stderr.splitlines()
    found = valid(json.loads(line), "error")
    assert found["exit_code"] == code
    return found


def test_every_schema_is_a_valid_json_schema_and_every_command_has_one() -> None:
    for schema in SCHEMAS.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    commands = {"upgrade", "downgrade", "current", "status", "history", "heads", "stamp", "check", "verify",
                "repair", "checkpoint", "lint", "fleet", "roundtrip", "backfill", "drift", "plan"}
    assert {f"{name}.schema.json" for name in commands} | {"error.schema.json", "event.schema.json",
                                                           "common.schema.json"} == set(SCHEMAS)


def test_every_command_prints_its_documented_shape(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    up = result(cli("--url", sqlite_url, "upgrade", "--json"), "upgrade")
    assert (up["before"], up["after"], [step["revision"] for step in up["applied"]]) == ([], [HEAD], REVISIONS)
    assert all(step["seconds"] == round(step["seconds"], 3) for step in up["applied"])  # to the millisecond
    again = result(cli("--url", sqlite_url, "upgrade", "--json"), "upgrade")  # the fast path's answer
    assert (again["before"], again["after"], again["applied"]) == ([HEAD], [HEAD], [])
    assert result(cli("--url", sqlite_url, "current", "--json"), "current")["current"] == [HEAD]
    assert result(cli("--url", sqlite_url, "status", "--json"), "status")["at_head"] is True
    assert [r["revision"] for r in result(cli("history", "--json"), "history")["revisions"]] == REVISIONS
    rows = result(cli("--url", sqlite_url, "history", "--applied", "--json"), "history")["rows"]
    assert [row["revision"] for row in rows] == REVISIONS
    assert result(cli("heads", "--json"), "heads")["heads"] == [HEAD]
    assert result(cli("--url", sqlite_url, "verify", "--json"), "verify") == {
        "format": 1, "command": "verify", "ok": True, "problems": []}
    assert result(cli("--url", sqlite_url, "check", "--json"), "check")["ok"] is True
    assert result(cli("--url", sqlite_url, "repair", "--checksums", "--json"), "repair")["realigned"] == []
    down = result(cli("--url", sqlite_url, "downgrade", "-1", "--json"), "downgrade")
    assert [(s["revision"], s["direction"]) for s in down["applied"]] == [(HEAD, "downgrade")]
    behind = result(cli("--url", sqlite_url, "status", "--json"), "status", code=1)  # exit 1, the shape the same
    assert [rev["revision"] for rev in behind["pending"]] == [HEAD]
    # stamp refuses a schema that is not the revision's: an error object, the database unchanged.
    refused = error(cli("--url", sqlite_url, "stamp", HEAD, "--json"), 1)
    assert refused["command"] == "stamp" and HEAD in refused["error"]
    assert result(cli("--url", sqlite_url, "current", "--json"), "current")["current"] == [REVISIONS[-2]]
    stamped = result(cli("--url", sqlite_url, "stamp", REVISIONS[-2], "--json"), "stamp")
    assert stamped["after"] == [REVISIONS[-2]]
    fleet = result(cli("fleet", "status", "--sqlite-glob", str(tmp_path / "*.db"), "--json"), "fleet", code=1)
    assert [(row["outcome"], row["after"]) for row in fleet["targets"]] == [("behind", [REVISIONS[-2]])]
    roundtrip = result(cli("roundtrip", f"{REVISIONS[-2]}:head", "--report", "--json"), "roundtrip")
    assert [step["revision"] for step in roundtrip["steps"]] == [HEAD] and roundtrip["findings"] == []
    linting = cli("lint", "--json")
    assert linting.returncode in (0, 1), linting.stderr
    linted = valid(json.loads(linting.stdout), "lint")
    assert bool(linted["findings"]) == (linting.returncode == 1)


def test_errors_under_json_are_one_json_object(cli: Cli, sqlite_url: str) -> None:
    usage = error(cli("--url", sqlite_url, "--json", "downgrade", "--bogus"), 2)
    assert "--bogus" in usage["error"]
    both = error(cli("--url", sqlite_url, "upgrade", "--sql", "--json"), 2)
    assert both["error"] == "--sql prints the SQL itself, --json a result: give one"
    unknown = error(cli("--url", sqlite_url, "downgrade", "zzz", "--json"), 2)
    assert unknown["command"] == "downgrade" and "'zzz'" in unknown["error"]
    secret = "s3cr3t-pw"
    unreachable = error(cli("--url", f"postgresql://app:{secret}@127.0.0.1:1/app", "status", "--json",
                            "--connect-timeout", "2"), 1)
    assert secret not in unreachable["error"] and "***" in unreachable["error"]


def test_json_logs_tell_a_failed_run_line_by_line(source_copy: Path, sqlite_url: str) -> None:
    versions = source_copy / "alembic" / "versions"
    (versions / "9999_0badf00d0001_fails.py").write_text(FAILING_REVISION.format(parent=HEAD))
    done = run_copy(source_copy, "--url", sqlite_url, "--log-format", "json", "upgrade")
    assert done.returncode == 1 and done.stdout.count("applied ") == len(REVISIONS), done.stdout
    lines = [valid(json.loads(line), "event") for line in done.stderr.splitlines()]  # nothing but JSON
    told = [(line["event"], line.get("revision")) for line in lines]
    assert told == [("command.start", None), ("lock.acquired", None),
                    *[(event, rev) for rev in REVISIONS for event in ("revision.start", "revision.applied")],
                    ("revision.start", "0badf00d0001"), ("revision.failed", "0badf00d0001"), ("command.end", None)]
    assert {line["target"] for line in lines} == {sqlite_url}
    failed, end = lines[-2], lines[-1]
    assert "deliberate failure after DDL" in failed["error"] and failed["direction"] == "upgrade"
    assert (end["command"], end["exit_code"]) == ("upgrade", 1) and "0badf00d0001" in end["error"]
    assert end["seconds"] >= sum(line["seconds"] for line in lines if line["event"] == "revision.applied")
    # Nothing lost: the database is at the last good revision.
    assert mypkg.current(sqlite_url) == (HEAD,)
    by_env = Cli(source_copy, {"MYPKG_LOG_FORMAT": "json", "PYTHONPATH": str(source_copy)})("--url", sqlite_url, "upgrade")
    assert json.loads(by_env.stderr.splitlines()[-1])["event"] == "command.end"


@pytest.mark.parametrize("value", ["xml", "JSON "])
def test_an_unknown_log_format_is_a_usage_error(cli: Cli, sqlite_url: str, value: str) -> None:
    done = cli("--url", sqlite_url, "status", MYPKG_LOG_FORMAT=value)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "MYPKG_LOG_FORMAT" in done.stderr and "text, json" in done.stderr


def test_a_lock_wait_is_told_with_its_holder_and_its_end(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    """Another migrator holds the lock past the timeout: lock.wait names the holder, command.end the timeout."""
    import filelock

    from mypkg.migrate.database import locks

    with filelock.FileLock(str(locks.sidecar(tmp_path / "app.db"))):
        done = cli("--url", sqlite_url, "--log-format", "json", "upgrade", "--lock-timeout", "1")
    assert done.returncode == 1 and done.stdout == "", done.stdout
    lines = [valid(json.loads(line), "event") for line in done.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["command.start", "lock.wait", "command.end"]
    wait, end = lines[1], lines[2]
    assert wait["timeout"] == 1 and "app.db.mypkg-migrate.lock" in wait["holder"]
    assert end["exit_code"] == 1 and "within 1s" in end["error"] and end["seconds"] >= 1


@pytest.mark.parametrize(("args", "has_target"), [(("heads",), False), (("history",), False),
                                                  (("history", "--applied"), True), (("status",), True)])
def test_the_log_names_a_target_only_for_a_command_about_one_database(cli: Cli, sqlite_url: str,
                                                                      args: tuple[str, ...], has_target: bool) -> None:
    mypkg.upgrade(sqlite_url)
    done = cli("--url", sqlite_url, "--log-format", "json", *args)
    start = json.loads(done.stderr.splitlines()[0])
    assert start["event"] == "command.start" and start["target"] == (sqlite_url if has_target else None)


def test_a_log_of_a_command_without_a_target_gives_its_events_none(cli: Cli) -> None:
    """roundtrip works on a scratch database: its revision events carry no target key."""
    done = cli("--log-format", "json", "roundtrip", f"{REVISIONS[-2]}:head", "--rows", "2")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    revisions = [line for line in lines if line["event"].startswith("revision.")]
    assert revisions and all("target" not in line for line in revisions)


def test_a_backfills_progress_is_logged_every_five_seconds_not_per_batch() -> None:
    """The JSON log's own throttle, fed the events a long backfill emits."""
    import io

    from mypkg.migrate.observe.jsonlog import JsonLog

    stream = io.StringIO()
    log = JsonLog(stream)
    for at, done in ((100.0, 1), (104.5, 2), (105.1, 3), (109.9, 4), (110.2, 5), (110.3, 6)):
        log("backfill.progress", {"time": at, "revision": "r", "table": "t", "done": done, "total": 6, "seconds": 1.0,
                                  "finished": done == 6})
    assert [json.loads(line)["done"] for line in stream.getvalue().splitlines()] == [1, 3, 5, 6]
