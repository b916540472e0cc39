"""Who hears a command's events (docs/observability.md): the console's lines, the JSON log
(``--log-format json``), OpenTelemetry (any ``OTEL_*`` variable, with the ``otel`` extra)."""

from __future__ import annotations

import contextlib
import os
import sys

from ..errors import UsageError
from ..identity import COMMAND as PROG
from ..identity import LOG_FORMAT_VAR

TYPE_CHECKING = False  # every start-up pays for what this module imports: not typing
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from .output import Output

LOG_FORMATS = ("text", "json")
#: Commands that run revisions: they tell each one's start.
MIGRATIONS = frozenset({"upgrade", "downgrade"})
#: Commands about one database (the others: none, or a fleet of them).
ON_A_DATABASE = frozenset({"upgrade", "downgrade", "current", "status", "stamp", "check", "verify", "repair",
                           "backfill", "drift", "plan"})


def log_format(args: argparse.Namespace) -> str:
    """``--log-format``, else ``$MYPKG_LOG_FORMAT``, else text."""
    chosen = getattr(args, "log_format", None) or os.environ.get(LOG_FORMAT_VAR, "").strip() or "text"
    if chosen not in LOG_FORMATS:
        raise UsageError(f"{LOG_FORMAT_VAR}={chosen}: the log formats are {', '.join(LOG_FORMATS)}")
    return chosen


def target_of(args: argparse.Namespace) -> str | None:
    """The database the command works on, masked (no SQLAlchemy: the fast path's too)."""
    if args.command not in ON_A_DATABASE and not (args.command == "history" and getattr(args, "applied", False)):
        return None
    from ..database.settings import mask_text, resolve_url_string, with_schema

    try:  # --schema as the URL's schema= parameter, as the command itself takes it
        return mask_text(with_schema(resolve_url_string(args.url), args.schema if args.command != "fleet" else None))
    except Exception:  # noqa: BLE001 - the command itself says what is wrong with the URL
        return None


@contextlib.contextmanager
def listening(args: argparse.Namespace, out: Output) -> Iterator[None]:
    """The command's listeners, for the block; OpenTelemetry's exported when it ends."""
    from .. import events

    found: list[events.Listener] = []
    if out.json_log:
        from ..observe.jsonlog import JsonLog

        found.append(JsonLog(sys.stderr))
    elif args.command in MIGRATIONS and not out.quiet and not out.as_json:
        from ..observe.console import Console, is_terminal

        logged = not is_terminal(sys.stdout)
        found.append(Console(out.line if logged else None, sys.stderr if is_terminal(sys.stderr) else None))
    telemetry = _telemetry(out)
    if telemetry is not None:
        found.append(telemetry)
    try:
        with events.listeners(*found):
            yield
    finally:
        if telemetry is not None:
            telemetry.close()


def _telemetry(out: Output) -> object | None:
    if not any(name.startswith("OTEL_") for name in os.environ):  # every start: nothing imported
        return None
    from ..observe import otel

    if not otel.wanted():
        return None
    if not otel.installed():
        out.waiting(f"OTEL_* variables are set but OpenTelemetry is not installed: no traces or metrics; "
                    "pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http")
        return None
    try:
        return otel.from_environment()
    except (ImportError, ValueError) as exc:  # an exporter asked for but missing, an unknown one
        print(f"{PROG}: OpenTelemetry is off: {exc}", file=sys.stderr, flush=True)
        return None
