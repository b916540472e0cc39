"""The events of a run, for whoever listens (docs/observability.md, "Events").

The machinery calls :func:`emit` at each step: a command starts, waits for the migration
lock, starts a revision, applies it... Listeners turn them into a terminal's lines
(:mod:`.observe.console`), JSON logs (:mod:`.observe.jsonlog`) and OpenTelemetry spans
and metrics (:mod:`.observe.otel`). With nobody listening an event costs one look at an empty list, and a
listener's failure never decides a migration.

Standard library only, nothing imported: the fast path emits too.
"""

from __future__ import annotations

import contextlib
import time

TYPE_CHECKING = False  # every start-up pays for what this module imports: not typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    Listener = Callable[[str, dict[str, Any]], None]

#: Every event, with the fields it carries besides ``time`` (docs/observability.md).
COMMAND_START = "command.start"  #: command, target
COMMAND_END = "command.end"  #: command, target, seconds, exit_code, error
LOCK_WAIT = "lock.wait"  #: target, holder, timeout: another migrator holds the lock
LOCK_ACQUIRED = "lock.acquired"  #: target, seconds (waited; 0 when free)
REVISION_START = "revision.start"  #: revision, message, direction, plugin
REVISION_APPLIED = "revision.applied"  #: revision, message, direction, plugin, seconds (committed)
REVISION_REVERTED = "revision.reverted"  #: the same, for a downgrade's step
REVISION_FAILED = "revision.failed"  #: revision, direction, seconds, error (rolled back or partial)
RETRY = "revision.retry"  #: revision, attempt, attempts, pause, reason
BACKFILL = "backfill.progress"  #: revision, table, done, total, seconds
TARGET_END = "target.end"  #: fleet: target, outcome, seconds, before, after, error

EVENTS = (COMMAND_START, COMMAND_END, LOCK_WAIT, LOCK_ACQUIRED, REVISION_START, REVISION_APPLIED,
          REVISION_REVERTED, REVISION_FAILED, RETRY, BACKFILL, TARGET_END)

_listeners: list[Listener] = []
#: Commands open: the API's functions tell their own start only when no caller (the CLI,
#: a fleet) already told one.
_open: list[str] = []


def emit(event: str, **fields: Any) -> None:
    """Tell every listener; ``fields`` are plain values (text, numbers, lists of text)."""
    if not _listeners:
        return
    fields["time"] = time.time()
    for listener in tuple(_listeners):
        try:
            listener(event, fields)
        except Exception:  # noqa: BLE001 - telling never decides a migration
            import logging

            logging.getLogger(__name__).warning("a listener of %s failed", event, exc_info=True)


def applied(entry: Any, on_applied: Callable[[Any], None] | None) -> None:
    """A revision committed (an :class:`~.results.AppliedRevision`): the event, then the
    caller's callback, whose failure (printing to a closed pipe) never fails a migration."""
    emit(REVISION_APPLIED if entry.direction == "upgrade" else REVISION_REVERTED, revision=entry.revision,
         message=entry.message, direction=entry.direction, plugin=entry.plugin, seconds=entry.seconds)
    if on_applied is not None:
        try:
            on_applied(entry)
        except Exception:  # noqa: BLE001 - a reporting failure never fails a migration
            import logging

            logging.getLogger(__name__).warning("on_applied failed", exc_info=True)


def handoff(target: str) -> dict[str, str]:
    """What a worker process needs to carry on the listeners' story of ``target`` (a fleet's
    target handed to a worker): a trace context, from each listener that keeps one."""
    carried: dict[str, str] = {}
    for listener in tuple(_listeners):
        give = getattr(listener, "handoff", None)
        if give is None:
            continue
        try:
            carried.update(give(target))
        except Exception:  # noqa: BLE001 - telling never decides a migration
            import logging

            logging.getLogger(__name__).warning("a listener's handoff of %s failed", target, exc_info=True)
    return carried


def listening() -> bool:
    return bool(_listeners)


def command_open() -> bool:
    """A command told its start and has not ended (the API's functions run inside the CLI's)."""
    return bool(_open)


@contextlib.contextmanager
def listeners(*added: Listener) -> Iterator[None]:
    """``added`` hear every event emitted inside the block."""
    _listeners.extend(added)
    try:
        yield
    finally:
        for listener in added:
            with contextlib.suppress(ValueError):
                _listeners.remove(listener)


@contextlib.contextmanager
def only(*heard: Listener) -> Iterator[None]:
    """Inside the block, ``heard`` and no other listener: work that is not the command's own
    (``plan``'s runs on a scratch copy) stays out of its log, console and traces."""
    saved = _listeners[:]
    _listeners[:] = list(heard)
    try:
        yield
    finally:
        _listeners[:] = saved


@contextlib.contextmanager
def command(name: str, target: Callable[[], str | None] | str | None = None) -> Iterator[dict[str, Any]]:
    """``command.start``, then ``command.end`` with its seconds, exit code and error, unless
    a command is already open (the CLI's around the API's). ``target``: the masked URL, or a
    function giving it, called only when someone listens. The block may set ``exit_code``
    and ``error`` in the dict it gets (the CLI, which turns errors into exit codes itself)."""
    outcome: dict[str, Any] = {}
    if _open or not _listeners:
        _open.append(name)
        try:
            yield outcome
        finally:
            _open.pop()
        return
    shown = target() if callable(target) else target
    _open.append(name)
    emit(COMMAND_START, command=name, target=shown)
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        yield outcome
    except BaseException as exc:
        error = exc
        raise
    finally:
        _open.pop()
        emit(COMMAND_END, command=name, target=shown, seconds=time.perf_counter() - started,
             exit_code=outcome.get("exit_code", _exit_code(error)),
             error=outcome.get("error", None if error is None else describe(error)))


def _exit_code(error: BaseException | None) -> int:
    if error is None:
        return 0
    code = getattr(error, "exit_code", None)
    if code is not None:
        return int(code)
    from .errors import ExitCode

    if isinstance(error, KeyboardInterrupt):
        return int(ExitCode.TERMINATED if type(error).__name__ == "Terminated" else ExitCode.INTERRUPTED)
    return int(ExitCode.FAILURE)


def describe(error: BaseException) -> str:
    """The one line a user reads for ``error``."""
    text = str(error)
    return text if getattr(error, "exit_code", None) is not None or not text else f"{type(error).__name__}: {text}"
