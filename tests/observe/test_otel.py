"""OpenTelemetry: the SDK's in-memory exporter in a program calling the API, and the command
line's OTLP/HTTP exporter against a receiver this test runs on 127.0.0.1; the caller's
trace joined through TRACEPARENT; nothing of OpenTelemetry imported without OTEL_* variables."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import mypkg
from tests.conftest import Cli
from tests.fast.test_fastpath import imported_by_fast_path
from tests.runtime.test_api import FAILING_REVISION, HEAD, REVISIONS

FAILING = "0badf00d0001"

#: A program that set OpenTelemetry up, with its own span around the call.
APPLICATION = '''
import json, sys
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

import mypkg

with trace.get_tracer("deploy").start_as_current_span("deploy"):
    try:
        mypkg.upgrade(sys.argv[1])
    except mypkg.MigrateError as exc:
        print("error:", exc, file=sys.stderr)
found = {}
for resource in reader.get_metrics_data().resource_metrics:
    for scope in resource.scope_metrics:
        for metric in scope.metrics:
            for point in metric.data.data_points:
                found.setdefault(metric.name, []).append(
                    [dict(point.attributes), getattr(point, "value", None), getattr(point, "count", None)])
print(json.dumps({
    "spans": [{"name": s.name, "id": s.context.span_id, "trace": s.context.trace_id,
               "parent": s.parent.span_id if s.parent else None, "status": s.status.status_code.name,
               "description": s.status.description, "attributes": dict(s.attributes)} for s in spans.get_finished_spans()],
    "metrics": found,
}))
'''


def test_a_program_with_opentelemetry_gets_a_span_per_revision_and_the_metrics(source_copy: Path,
                                                                               sqlite_url: str) -> None:
    (source_copy / "alembic" / "versions" / f"9999_{FAILING}_fails.py").write_text(FAILING_REVISION.format(parent=HEAD))
    (source_copy / "app.py").write_text(APPLICATION)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MYPKG_"))}
    done = subprocess.run([sys.executable, "app.py", sqlite_url], cwd=source_copy, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(source_copy)}, timeout=120)
    assert done.returncode == 0 and f"revision {FAILING} (" in done.stderr, done.stderr
    found = json.loads(done.stdout)
    spans = {span["name"]: span for span in found["spans"]}
    deploy, command = spans["deploy"], spans["mypkg-migrate upgrade"]
    assert command["parent"] == deploy["id"] and command["trace"] == deploy["trace"]  # under the caller's span
    told = done.stderr.strip().removeprefix("error: ")
    assert command["status"] == "ERROR" and command["description"] == told  # the error's own words
    assert command["attributes"] == {"db.system": "sqlite", "db.system.name": "sqlite",
                                     "db.namespace": sqlite_url.removeprefix("sqlite:///"),
                                     "mypkg.command": "upgrade", "process.exit.code": 1}
    revisions = [span for span in found["spans"] if span["name"].startswith("upgrade ")]
    assert [span["attributes"]["mypkg.revision"] for span in revisions] == [*REVISIONS, FAILING]
    assert {span["parent"] for span in revisions} == {command["id"]}
    assert [span["status"] for span in revisions] == ["UNSET"] * len(REVISIONS) + ["ERROR"]
    assert "deliberate failure after DDL" in revisions[-1]["description"]
    assert revisions[0]["attributes"]["mypkg.revision.message"] == "create initial tables"
    assert {span["attributes"]["mypkg.revision.phase"] for span in revisions} == {"pre"}  # a deploy's half
    assert revisions[0]["attributes"]["db.system"] == "sqlite"
    metrics = found["metrics"]
    assert [value for _, value, _ in metrics["mypkg.migrate.revisions.applied"]] == [len(REVISIONS)]
    assert [value for _, value, _ in metrics["mypkg.migrate.revisions.failed"]] == [1]
    assert [count for _, _, count in metrics["mypkg.migrate.revision.duration"]] == [len(REVISIONS) + 1]
    assert [count for _, _, count in metrics["mypkg.migrate.lock.wait"]] == [1]
    assert metrics["mypkg.migrate.revisions.applied"][0][0]["mypkg.revision.direction"] == "upgrade"


class Receiver(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: decodes what the exporters send, as a collector does."""

    received: list[tuple[str, object]]

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        kind = {"/v1/traces": ExportTraceServiceRequest, "/v1/metrics": ExportMetricsServiceRequest}[self.path]
        message = kind()
        message.ParseFromString(body)
        self.received.append((self.path, message))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, object]]]]:
    received: list[tuple[str, object]] = []
    handler = type("Handler", (Receiver,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def spans_of(received: list[tuple[str, object]]) -> tuple[dict[str, str], list]:
    """The resource's attributes and every span sent."""
    resource: dict[str, str] = {}
    spans = []
    for path, message in received:
        if path != "/v1/traces":
            continue
        for resource_spans in message.resource_spans:  # type: ignore[attr-defined]
            resource.update({a.key: a.value.string_value for a in resource_spans.resource.attributes})
            spans += [span for scope in resource_spans.scope_spans for span in scope.spans]
    return resource, spans


def attributes(span: object) -> dict[str, object]:
    return {a.key: (a.value.string_value or a.value.int_value) for a in span.attributes}  # type: ignore[attr-defined]


TRACE_ID, PARENT_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def test_the_command_exports_to_a_collector_and_joins_the_pipelines_trace(
        cli: Cli, sqlite_url: str, receiver: tuple[str, list[tuple[str, object]]]) -> None:
    endpoint, received = receiver
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "deploy-42",
           "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=staging",
           "TRACEPARENT": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    done = cli("--url", sqlite_url, "upgrade", **env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    resource, spans = spans_of(received)
    assert resource["service.name"] == "deploy-42" and resource["deployment.environment.name"] == "staging"
    (command,) = [span for span in spans if span.name == "mypkg-migrate upgrade"]
    assert (command.trace_id.hex(), command.parent_span_id.hex()) == (TRACE_ID, PARENT_ID)
    revisions = [span for span in spans if span.name.startswith("upgrade ")]
    assert [attributes(span)["mypkg.revision"] for span in revisions] == REVISIONS
    assert {span.parent_span_id for span in revisions} == {command.span_id}
    assert all(command.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano
               <= command.end_time_unix_nano for span in revisions)
    sums = {metric.name: sum(point.as_int for point in metric.sum.data_points)
            for path, message in received if path == "/v1/metrics"
            for rm in message.resource_metrics for sm in rm.scope_metrics  # type: ignore[attr-defined]
            for metric in sm.metrics if metric.HasField("sum")}
    assert sums == {"mypkg.migrate.revisions.applied": len(REVISIONS)}
    # The fast path's no-op upgrade is a span too, with nothing under it.
    received.clear()
    assert cli("--url", sqlite_url, "upgrade", **env).returncode == 0
    _, spans = spans_of(received)
    assert [span.name for span in spans] == ["mypkg-migrate upgrade"]


def test_a_fleet_is_one_trace_down_to_each_workers_revisions(cli: Cli, tmp_path: Path,
                                                              receiver: tuple[str, list[tuple[str, object]]]) -> None:
    """The fleet's span, a span per target under it, and under each target the worker's own
    spans (its upgrade, its revisions), exported by the worker process; the workers'
    counters each a series of its own (service.instance.id) that add up."""
    endpoint, received = receiver
    for name in ("a", "b", "c"):
        assert cli("--url", f"sqlite:///{tmp_path / name}.db", "upgrade", REVISIONS[0], "-q").returncode == 0
    assert cli("--url", f"sqlite:///{tmp_path / 'c'}.db", "upgrade", "-q").returncode == 0  # at head: no work
    done = cli("fleet", "upgrade", "--sqlite-glob", str(tmp_path / "*.db"), "--jobs", "2",
               OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, TRACEPARENT=f"00-{TRACE_ID}-{PARENT_ID}-01")
    # Nothing on stderr but the fleet's progress (a log: a line per tenth).
    assert done.returncode == 0 and [line for line in done.stderr.splitlines() if " done, " not in line] == [], done.stderr
    _, spans = spans_of(received)
    assert {span.trace_id.hex() for span in spans} == {TRACE_ID}
    (command,) = [span for span in spans if span.name == "mypkg-migrate fleet"]
    targets = {attributes(span)["mypkg.target"]: span for span in spans if span.name.startswith("target ")}
    assert {target: attributes(span)["mypkg.outcome"] for target, span in targets.items()} == {
        f"sqlite:///{tmp_path / 'a'}.db": "migrated", f"sqlite:///{tmp_path / 'b'}.db": "migrated",
        f"sqlite:///{tmp_path / 'c'}.db": "unchanged"}
    assert {span.parent_span_id for span in targets.values()} == {command.span_id}
    upgrades = [span for span in spans if span.name == "mypkg-migrate upgrade"]
    # One per target the workers migrated (the one at head is answered by one read, no span).
    assert sorted(span.parent_span_id for span in upgrades) == sorted(
        targets[f"sqlite:///{tmp_path / name}.db"].span_id for name in ("a", "b"))
    for upgrade in upgrades:
        under = [span for span in spans if span.parent_span_id == upgrade.span_id]
        assert [attributes(span)["mypkg.revision"] for span in under] == REVISIONS[1:]
        target = next(span for span in targets.values() if span.span_id == upgrade.parent_span_id)
        assert target.start_time_unix_nano <= upgrade.start_time_unix_nano <= upgrade.end_time_unix_nano \
            <= target.end_time_unix_nano
    applied: dict[str, int] = {}
    for path, message in received:
        if path != "/v1/metrics":
            continue
        for rm in message.resource_metrics:  # type: ignore[attr-defined]
            instance = next(a.value.string_value for a in rm.resource.attributes if a.key == "service.instance.id")
            for metric in (m for sm in rm.scope_metrics for m in sm.metrics):
                if metric.name == "mypkg.migrate.revisions.applied":
                    applied[instance] = max(applied.get(instance, 0), sum(p.as_int for p in metric.sum.data_points))
    assert sum(applied.values()) == 2 * (len(REVISIONS) - 1), applied


def test_a_listener_whose_handoff_fails_never_stops_a_fleet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Telling never decides a migration: a listener that cannot hand a target's context to
    its worker is logged, and every target is migrated."""
    import mypkg.fleet
    from mypkg.migrate import events

    class Broken:
        def __call__(self, event: str, fields: dict) -> None:
            pass

        def handoff(self, target: str) -> dict[str, str]:
            raise RuntimeError("no context to give")

    urls = [f"sqlite:///{tmp_path / name}.db" for name in ("a", "b")]
    with events.listeners(Broken()):
        result = mypkg.fleet.upgrade(urls, jobs=1)
    assert result.ok and [row.outcome for row in result.rows] == ["migrated", "migrated"]
    assert sum("handoff" in record.getMessage() for record in caplog.records) == 2


def test_an_exporter_that_cannot_reach_its_collector_never_fails_the_migration(cli: Cli, sqlite_url: str) -> None:
    with contextlib.closing(__import__("socket").socket()) as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there once closed
    done = cli("--url", sqlite_url, "upgrade", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
               OTEL_EXPORTER_OTLP_TIMEOUT="2")
    assert done.returncode == 0, done.stderr
    assert "upgraded from base" in done.stdout
    [line] = done.stderr.splitlines()  # the SDK's complaints (spans, metrics) as one line
    assert line.startswith("mypkg-migrate: telemetry not exported: "), done.stderr


def test_a_collector_that_never_answers_costs_a_fleet_one_line_and_its_bound(cli: Cli, tmp_path: Path) -> None:
    """A listener on 127.0.0.1 that accepts and never answers: the parent and each worker
    wait at most OTEL_EXPORTER_OTLP_TIMEOUT per export, and only the fleet's process says so."""
    import socket

    for name in ("a", "b", "c"):
        assert cli("--url", f"sqlite:///{tmp_path / name}.db", "upgrade", REVISIONS[0], "-q").returncode == 0
    with contextlib.closing(socket.socket()) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        done = cli("fleet", "upgrade", "--sqlite-glob", str(tmp_path / "*.db"), "--jobs", "2",
                   OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{silent.getsockname()[1]}",
                   OTEL_EXPORTER_OTLP_TIMEOUT="1", timeout=60)  # a wait without that bound fails here
    assert done.returncode == 0, done.stderr
    assert "3 migrated" in done.stdout
    [line] = [line for line in done.stderr.splitlines() if " done, " not in line]  # besides the progress
    assert line.startswith("mypkg-migrate: telemetry not exported: "), done.stderr


@pytest.mark.parametrize("command", ["upgrade", "status"])
def test_without_otel_variables_nothing_of_opentelemetry_is_imported(sqlite_url: str, command: str) -> None:
    mypkg.upgrade(sqlite_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    assert imported_by_fast_path(sys.executable, sqlite_url, command, ("opentelemetry",), env=env) == []
    full = subprocess.run([sys.executable, "-c", "import sys; from mypkg.migrate.cli import main; "
                           f"main(['--url', {sqlite_url!r}, 'downgrade', '-1', '-q']); "
                           "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"],
                          env={**env, "MYPKG_NO_FASTPATH": "1"}, capture_output=True, text=True, timeout=120)
    assert full.returncode == 0 and full.stdout.strip() == "[]", full.stderr


def test_a_lock_wait_is_a_span_with_its_holder(cli: Cli, sqlite_url: str, tmp_path: Path,
                                              receiver: tuple[str, list[tuple[str, object]]]) -> None:
    import filelock

    from mypkg.migrate.database import locks

    endpoint, received = receiver
    with filelock.FileLock(str(locks.sidecar(tmp_path / "app.db"))):
        done = cli("--url", sqlite_url, "upgrade", "--lock-timeout", "1", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    assert done.returncode == 1, done.stderr
    _, spans = spans_of(received)
    by_name = {span.name: span for span in spans}
    command, wait = by_name["mypkg-migrate upgrade"], by_name["migration lock wait"]
    assert wait.parent_span_id == command.span_id and wait.status.code == wait.status.STATUS_CODE_ERROR
    assert "app.db.mypkg-migrate.lock" in attributes(wait)["mypkg.lock.holder"]
    assert wait.end_time_unix_nano - wait.start_time_unix_nano >= 1_000_000_000
    assert "within 1s" in command.status.message


def test_a_tenants_spans_name_its_database_and_schema(cli: Cli, postgresql_url: str,
                                                      receiver: tuple[str, list[tuple[str, object]]]) -> None:
    endpoint, received = receiver
    done = cli("--url", postgresql_url, "--schema", "Tenant 7", "upgrade", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    assert done.returncode == 0, done.stderr
    _, spans = spans_of(received)
    (command,) = [span for span in spans if span.name == "mypkg-migrate upgrade"]
    database = urlsplit(postgresql_url).path.lstrip("/")
    found = attributes(command)
    assert (found["db.system"], found["db.system.name"], found["db.namespace"]) == (
        "postgresql", "postgresql", f"{database}|Tenant 7")
    assert "server.address" in found or "host=" in postgresql_url  # a unix socket has no address


def test_schemas_read_at_once_are_target_spans_timed_within_the_fleets(
        cli: Cli, postgresql_url: str, receiver: tuple[str, list[tuple[str, object]]]) -> None:
    """Many schemas of one database are answered by one read, without a worker: each still
    gets its span, from its share of the read's time, inside the fleet's span."""
    endpoint, received = receiver
    for schema in ("tenant_a", "tenant_b"):
        assert cli("--url", postgresql_url, "--schema", schema, "upgrade", "-q").returncode == 0
    received.clear()
    done = cli("--url", postgresql_url, "fleet", "status", "--schemas", "tenant_*", "--json",
               OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    assert done.returncode == 0, done.stderr
    seconds = {row["target"]: row["seconds"] for row in json.loads(done.stdout)["targets"]}
    _, spans = spans_of(received)
    (command,) = [span for span in spans if span.name == "mypkg-migrate fleet"]
    targets = [span for span in spans if span.name.startswith("target ")]
    assert sorted(attributes(span)["mypkg.target"] for span in targets) == sorted(seconds)
    for span in targets:
        assert command.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano \
            <= command.end_time_unix_nano
        took = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e9
        assert abs(took - seconds[attributes(span)["mypkg.target"]]) < 0.002, (took, seconds)


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://app:***@db.internal:6432/shop?schema=tenant_7",
     {"db.namespace": "shop|tenant_7", "server.address": "db.internal", "server.port": 6432}),
    ("mysql+pymysql://app@127.0.0.1/shop", {"db.namespace": "shop", "server.address": "127.0.0.1"}),
    ("sqlite:///relative.db", {"db.namespace": "relative.db"}),
    ("sqlite:////var/lib/app.db", {"db.namespace": "/var/lib/app.db"}),
    ("sqlite://", {"db.namespace": ":memory:"}),
])
def test_database_attributes_follow_the_semantic_conventions(url: str, expected: dict[str, object]) -> None:
    from mypkg.migrate.observe.otel import database_attributes

    system = url.split(":")[0].split("+")[0]
    assert database_attributes(url) == {"db.system": system, "db.system.name": system, **expected}


def test_the_api_functions_keep_their_names_signatures_and_docs_for_a_program() -> None:
    """Wrapped to tell their start and end, they still read as themselves (help(), IDEs)."""
    import inspect

    for function in (mypkg.upgrade, mypkg.downgrade, mypkg.stamp, mypkg.repair):
        assert function.__name__ in function.__qualname__ and function.__doc__
        assert "target" in inspect.signature(function).parameters
    assert list(inspect.signature(mypkg.upgrade).parameters)[:2] == ["target", "revision"]


def test_console_exporters_print_and_an_unknown_one_turns_telemetry_off_not_the_migration(
        cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    shown = cli("--url", sqlite_url, "upgrade", OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="console")
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    assert '"name": "mypkg-migrate upgrade"' in shown.stdout and "mypkg.migrate.revisions.applied" in shown.stdout
    other = f"sqlite:///{tmp_path / 'other.db'}"
    unknown = cli("--url", other, "upgrade", OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="zipkin")
    assert unknown.returncode == 0 and "upgraded from base" in unknown.stdout
    assert unknown.stderr == ("mypkg-migrate: OpenTelemetry is off: OTEL_METRICS_EXPORTER=zipkin: "
                              "this command knows otlp, console and none\n")


def test_each_batch_of_a_background_worker_is_a_span_under_its_command(
        tmp_path: Path, receiver: tuple[str, list[tuple[str, object]]]) -> None:
    from tests.data.test_background import B, mig, project

    endpoint, received = receiver
    url = f"sqlite:///{tmp_path / 'app.db'}"
    root = project(tmp_path / "project", 2500)
    assert mig(root, url, "upgrade", B).returncode == 0
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "PYTHONPATH": str(root)}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MYPKG_"))}
    done = subprocess.run([sys.executable, "-m", "mypkg", "--url", url, "backfill", "run", "--once"], cwd=root,
                          capture_output=True, text=True, timeout=120, env={**clean, **env})
    assert done.returncode == 0, done.stderr
    _, spans = spans_of(received)
    (command,) = [span for span in spans if span.name == "mypkg-migrate backfill"]
    batches = [span for span in spans if span.name == "backfill batch note"]
    assert [attributes(span)["mypkg.backfill.rows"] for span in batches] == [1000, 2000, 2500]
    assert {span.parent_span_id for span in batches} == {command.span_id}
    assert all(attributes(span)["mypkg.revision"] == B for span in batches)
