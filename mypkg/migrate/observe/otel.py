"""OpenTelemetry traces and metrics (the ``otel`` extra; docs/observability.md).

A span per command, a child span per revision, per lock wait and per backfill (a fleet: a
span per target), with OpenTelemetry's database attributes (``db.system``,
``db.system.name``, ``db.namespace``, ``server.address``) and the revision's; metrics:
revisions applied and failed (counters), revision duration and lock wait (histograms).

The command line turns it on when any ``OTEL_*`` variable is set (and not
``OTEL_SDK_DISABLED=true``): the SDK is configured from the standard variables (exporter,
endpoint, headers, timeout, service name, resource attributes) and joined to a deploy
pipeline's trace through ``TRACEPARENT``. A program calling the API that has imported
OpenTelemetry gets the spans and metrics in its own providers, under its current span.
Without the extra, or without those variables, nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

import os

from ..identity import COMMAND, PACKAGE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The instrumentation scope, and the prefix of the metrics' names (``mypkg.migrate.*``).
SCOPE = COMMAND.replace("-", ".")
#: Attributes of a revision's span.
REVISION = f"{PACKAGE}.revision"


def wanted(environ: Any = os.environ) -> bool:
    """Some ``OTEL_*`` variable is set, and the SDK is not disabled: one pass over the
    environment, nothing imported (the fast path pays only this)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(name.startswith("OTEL_") for name in environ)


def installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("opentelemetry.sdk") is not None
    except (ImportError, ValueError):
        return False


def database_attributes(target: str | None) -> dict[str, Any]:
    """``db.system``/``db.system.name``, ``db.namespace``, ``server.address``/``port`` of a
    masked URL (the semantic conventions' names; a schema: ``database|schema``)."""
    from urllib.parse import unquote, urlsplit  # here: every start imports this module

    if not target:
        return {}
    parts = urlsplit(target)
    scheme = parts.scheme.split("+")[0]
    system = {"postgres": "postgresql", "mariadb": "mariadb"}.get(scheme, scheme)
    attributes: dict[str, Any] = {"db.system": system, "db.system.name": system}
    if scheme == "sqlite":
        path = target.split("://", 1)[-1] if "://" in target else ""
        path = path[1:] if path.startswith("/") else path  # sqlite:///relative, sqlite:////absolute
        attributes["db.namespace"] = unquote(path.split("?")[0]) or ":memory:"
        return attributes
    namespace = unquote(parts.path.lstrip("/"))
    schema = next((value for key, _, value in (p.partition("=") for p in parts.query.split("&"))
                   if key == "schema"), None)
    if namespace:
        attributes["db.namespace"] = f"{namespace}|{unquote(schema)}" if schema else namespace
    try:
        if parts.hostname:
            attributes["server.address"] = parts.hostname
        if parts.port:
            attributes["server.port"] = parts.port
    except ValueError:
        pass
    return attributes


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class Telemetry:
    """Listens to events (:mod:`..events`) and turns them into spans and metrics."""

    def __init__(self, tracer_provider: Any, meter_provider: Any, *, parent: Any = None,
                 owned: bool = False) -> None:
        from .. import version

        self.tracer_provider, self.meter_provider, self.owned = tracer_provider, meter_provider, owned
        self.tracer = tracer_provider.get_tracer(SCOPE, version.package_version())
        meter = meter_provider.get_meter(SCOPE, version.package_version())
        self.applied = meter.create_counter(f"{SCOPE}.revisions.applied", unit="{revision}",
                                            description="revisions applied or reverted")
        self.failed = meter.create_counter(f"{SCOPE}.revisions.failed", unit="{revision}",
                                           description="revisions that failed (rolled back, or partial)")
        self.duration = meter.create_histogram(f"{SCOPE}.revision.duration", unit="s",
                                               description="time a revision took, to its commit")
        self.lock_wait = meter.create_histogram(f"{SCOPE}.lock.wait", unit="s",
                                                description="time waited for the migration lock")
        self.parent = parent  #: the context the command's span starts in (TRACEPARENT, the caller's)
        self.command: Any = None
        self.attributes: dict[str, Any] = {}
        self.revision: Any = None
        self.lock: tuple[Any, float] | None = None
        self.backfills: dict[str, Any] = {}
        self.targets: dict[str, Any] = {}  #: a fleet's targets handed to workers, by identity

    # --- spans -------------------------------------------------------------------------

    def _child(self, name: str, at: float, attributes: dict[str, Any]) -> Any:
        from opentelemetry import trace

        context = trace.set_span_in_context(self.command) if self.command is not None else self.parent
        return self.tracer.start_span(name, context=context, start_time=_ns(at), attributes=attributes)

    def _end(self, span: Any, at: float, error: str | None = None) -> None:
        if span is None:
            return
        if error:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=_ns(at))

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        handler = getattr(self, "_on_" + event.replace(".", "_"), None)
        if handler is not None:
            handler(fields)

    def _on_command_start(self, fields: dict[str, Any]) -> None:
        self.attributes = database_attributes(fields.get("target"))
        self.command = self.tracer.start_span(
            f"{COMMAND} {fields['command']}", context=self.parent, start_time=_ns(fields["time"]),
            attributes={**self.attributes, f"{PACKAGE}.command": fields["command"]},
        )

    def _on_command_end(self, fields: dict[str, Any]) -> None:
        at = fields["time"]
        self._end_revision(at, fields.get("error") or "the command ended")
        if self.lock is not None:  # it never came: the lock timeout
            span, started = self.lock
            self.lock_wait.record(at - started, self.attributes)
            self._end(span, at, fields.get("error") or "the command ended")
            self.lock = None
        if self.command is not None:
            self.command.set_attribute("process.exit.code", fields.get("exit_code", 0))
            self._end(self.command, at, fields.get("error"))
            self.command = None

    def _on_lock_wait(self, fields: dict[str, Any]) -> None:
        span = self._child("migration lock wait", fields["time"],
                           {**self.attributes, f"{PACKAGE}.lock.holder": fields["holder"],
                            f"{PACKAGE}.lock.timeout": fields["timeout"]})
        self.lock = (span, fields["time"])

    def _on_lock_acquired(self, fields: dict[str, Any]) -> None:
        self.lock_wait.record(fields["seconds"], self.attributes)
        if self.lock is not None:
            self._end(self.lock[0], fields["time"])
            self.lock = None

    def _on_revision_start(self, fields: dict[str, Any]) -> None:
        self._end_revision(fields["time"], "started again")
        attributes = {**self.attributes, REVISION: fields["revision"], f"{REVISION}.direction": fields["direction"]}
        if fields.get("message"):
            attributes[f"{REVISION}.message"] = fields["message"]
        if fields.get("plugin"):
            attributes[f"{REVISION}.plugin"] = fields["plugin"]
        if fields.get("phase"):  # pre or post: which half of a rolling deploy ran it
            attributes[f"{REVISION}.phase"] = fields["phase"]
        self.revision = self._child(f"{fields['direction']} {fields['revision']}", fields["time"], attributes)

    def _on_revision_applied(self, fields: dict[str, Any]) -> None:
        labels = {**self.attributes, f"{REVISION}.direction": fields["direction"]}
        self.applied.add(1, labels)
        self.duration.record(fields["seconds"], labels)
        self._end_revision(fields["time"])

    _on_revision_reverted = _on_revision_applied

    def _on_revision_failed(self, fields: dict[str, Any]) -> None:
        labels = {**self.attributes, f"{REVISION}.direction": fields["direction"]}
        self.failed.add(1, labels)
        self.duration.record(fields["seconds"], labels)
        if self.revision is not None:
            self.revision.add_event("exception", {"exception.message": fields["error"]})
        self._end_revision(fields["time"], fields["error"])

    def _on_revision_retry(self, fields: dict[str, Any]) -> None:
        if self.revision is not None:
            self.revision.add_event("retry", {"attempt": fields["attempt"], "reason": fields["reason"]})
        self._end_revision(fields["time"], f"rolled back for retry {fields['attempt']}: {fields['reason']}")

    def _on_backfill_progress(self, fields: dict[str, Any]) -> None:
        if "batch" in fields:  # a background worker's batch: a span of its own, under the command's
            self._end(self._child(f"backfill batch {fields['table']}", fields["time"] - fields["batch_seconds"], {
                **self.attributes, REVISION: fields["revision"], "db.collection.name": fields["table"],
                f"{PACKAGE}.backfill.batch": fields["batch"], f"{PACKAGE}.backfill.rows": fields["done"],
                f"{PACKAGE}.backfill.total": fields["total"]}), fields["time"])
            return
        span = self.backfills.get(fields["table"])
        if span is None:
            from opentelemetry import trace

            context = trace.set_span_in_context(self.revision) if self.revision is not None else None
            span = self.backfills[fields["table"]] = self.tracer.start_span(
                f"backfill {fields['table']}", context=context, start_time=_ns(fields["time"] - fields["seconds"]),
                attributes={**self.attributes, REVISION: fields["revision"], "db.collection.name": fields["table"]})
        span.set_attribute(f"{PACKAGE}.backfill.rows", fields["done"])
        span.set_attribute(f"{PACKAGE}.backfill.total", fields["total"])
        if fields.get("finished"):
            self._end(self.backfills.pop(fields["table"]), fields["time"])

    def handoff(self, target: str) -> dict[str, str]:
        """A fleet hands ``target`` to a worker: its span starts now, and the worker's own
        spans (its command, its revisions) go under it, by the trace context returned."""
        import time

        from opentelemetry import propagate, trace

        span = self.targets[target] = self._child(f"target {target}", time.time(), self._target_attributes(target))
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    def _on_target_end(self, fields: dict[str, Any]) -> None:
        span = self.targets.pop(fields["target"], None)
        if span is None:  # answered without a worker (many schemas read at once): after the fact
            span = self._child(f"target {fields['target']}", fields["time"] - fields["seconds"],
                               self._target_attributes(fields["target"]))
        span.set_attribute(f"{PACKAGE}.outcome", fields["outcome"])
        self._end(span, fields["time"], fields.get("error") if fields["outcome"] == "failed" else None)

    @staticmethod
    def _target_attributes(target: str) -> dict[str, Any]:
        return {**database_attributes(target), f"{PACKAGE}.target": target}

    def _end_revision(self, at: float, error: str | None = None) -> None:
        for table in list(self.backfills):
            self._end(self.backfills.pop(table), at, error)
        self._end(self.revision, at, error)
        self.revision = None

    def close(self) -> None:
        """Export what is left (the command line's own providers; a caller's stay theirs).
        Bounded by the exporters' timeout (``OTEL_EXPORTER_OTLP_TIMEOUT``, default 10 s)."""
        if self.owned:
            self.tracer_provider.shutdown()
            self.meter_provider.shutdown()


def from_environment(*, worker: bool = False) -> Telemetry:
    """The command line's providers, from the standard ``OTEL_*`` variables; the command's
    span joins ``TRACEPARENT``'s trace (``TRACESTATE`` too) when it is set. A fleet's
    ``worker``: a ``service.instance.id`` of its own (its counters a series apart), and
    silent about failed exports (the fleet's process says it)."""
    from opentelemetry import propagate
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    defaults = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: COMMAND}
    if SERVICE_NAME in defaults and "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        defaults = {}  # the resource attributes name the service: theirs wins
    if worker:
        import uuid

        defaults["service.instance.id"] = str(uuid.uuid4())
    resource = Resource.create(defaults)
    _one_line_for_the_sdks_complaints(silent=worker)
    tracer_provider = TracerProvider(resource=resource)
    for exporter in _exporters("OTEL_TRACES_EXPORTER", _span_exporter):
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    readers = [_reader(exporter) for exporter in _exporters("OTEL_METRICS_EXPORTER", _metric_exporter)]
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    carrier = {key: os.environ[name] for key, name in (("traceparent", "TRACEPARENT"), ("tracestate", "TRACESTATE"))
               if os.environ.get(name)}
    parent = propagate.extract(carrier) if carrier else None
    return Telemetry(tracer_provider, meter_provider, parent=parent, owned=True)


_worker: Telemetry | None = None


def continued(carried: dict[str, str]) -> Any:
    """In a fleet's worker process: the target's spans under the span the fleet started for
    it (``carried``, from :meth:`Telemetry.handoff`), exported from this process with the
    same ``OTEL_*`` configuration. The worker's providers are made once and export what is
    left when the worker exits (a multiprocessing finalizer: the pool's shutdown waits for
    it, bounded by the exporters' timeout). No ``OTEL_*`` variable here (a program that set
    OpenTelemetry up in code): the worker's spans are not made."""
    import contextlib

    from .. import events

    global _worker
    if not carried:
        return contextlib.nullcontext()
    if _worker is None:  # the worker's first target: whether to, and how, asked once
        if not wanted() or not installed():
            return contextlib.nullcontext()
        import multiprocessing.util

        _worker = from_environment(worker=True)
        multiprocessing.util.Finalize(None, _worker.close, exitpriority=10)
    from opentelemetry import propagate

    _worker.parent = propagate.extract(carried)
    return events.listeners(_worker)


def _one_line_for_the_sdks_complaints(*, silent: bool) -> None:
    """The SDK logs each failed export (spans, metrics, each retry) on stderr, a line each:
    the command's own processes say the first, once, as this command's one line, and no
    more (a collector that is down is one fact). A program's own logging is left alone."""
    import logging
    import sys

    class FirstOnly(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logger.removeHandler(self)
            logger.addHandler(logging.NullHandler())
            first = (record.getMessage().strip() or record.name).splitlines()[0]
            print(f"{COMMAND}: telemetry not exported: {first}", file=sys.stderr, flush=True)

    logger = logging.getLogger("opentelemetry")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler() if silent else FirstOnly(logging.WARNING))
    logger.propagate = False


def from_the_caller() -> Telemetry:
    """The API called by a program that set OpenTelemetry up: its global providers, its
    current span as the parent."""
    from opentelemetry import context, metrics, trace

    return Telemetry(trace.get_tracer_provider(), metrics.get_meter_provider(), parent=context.get_current())


class UnknownExporter(ValueError):
    pass


def _exporters(variable: str, make: Any) -> list[Any]:
    names = [name.strip() for name in os.environ.get(variable, "otlp").split(",") if name.strip()]
    return [make(name) for name in names if name != "none"]


def _protocol(signal: str) -> str:
    return (os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf")


def _span_exporter(name: str) -> Any:
    return _exporter("TRACES", name, "trace_exporter", "OTLPSpanExporter", "opentelemetry.sdk.trace.export",
                     "ConsoleSpanExporter")


def _metric_exporter(name: str) -> Any:
    return _exporter("METRICS", name, "metric_exporter", "OTLPMetricExporter", "opentelemetry.sdk.metrics.export",
                     "ConsoleMetricExporter")


def _exporter(signal: str, name: str, otlp_module: str, otlp_class: str, console_module: str,
              console_class: str) -> Any:
    """One signal's exporter as ``OTEL_<SIGNAL>_EXPORTER`` names it: otlp (over HTTP, or gRPC
    when the protocol says so and its package is installed) or console."""
    import importlib

    if name == "console":
        return getattr(importlib.import_module(console_module), console_class)()
    if name != "otlp":
        raise UnknownExporter(f"OTEL_{signal}_EXPORTER={name}: this command knows otlp, console and none")
    transport = "grpc" if _protocol(signal) == "grpc" else "http"
    module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{transport}.{otlp_module}")
    return getattr(module, otlp_class)()


def _reader(exporter: Any) -> Any:
    """Exported once, when the command ends (its provider's shutdown), not every minute."""
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return PeriodicExportingMetricReader(exporter, export_interval_millis=float(2**31))
