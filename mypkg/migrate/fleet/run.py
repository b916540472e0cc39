"""Running a fleet: every target in worker processes, bounded, each failure its own.

Alembic is not safe across threads, so workers are processes (``--jobs``), each loading the
package, SQLAlchemy and the revision graph once and then taking target after target: the
cost of a target is its own work, not a Python start. A target already at the revision is
answered by the fast path, without Alembic. Every target is migrated by the same run loop
as ``mypkg-migrate upgrade``, under its own migration lock: two fleets over the same targets
(overlapping shards, a rerun beside a straggler) still apply each revision once. The state
lives in the targets: a fleet stopped half way is resumed by running it again.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .. import events
from ..errors import MigrateError, UsageError
from .targets import Target

#: Every outcome a target can have, in the order reports list them.
OUTCOMES = ("migrated", "unchanged", "at head", "ready", "behind", "drifted", "failed", "not started")
#: Outcomes that mean a target is where the fleet was asked to take it (``ready``: status
#: --phase pre, every pre-deploy revision applied).
REACHED = frozenset({"migrated", "unchanged", "at head", "ready"})
ACTIONS = ("upgrade", "downgrade", "status", "backfill", "drift")


class Row(NamedTuple):
    """One target's result, as the report and ``--json`` show it."""

    target: str  #: its identity: the URL with secrets masked
    before: tuple[str, ...]
    after: tuple[str, ...]
    outcome: str  #: migrated, unchanged, at head, ready, behind, drifted, failed, not started
    seconds: float
    error: str | None = None


class FleetResult(NamedTuple):
    action: str
    revision: str
    rows: list[Row]
    #: Why no new target was started before the end (--max-failures, --canary), if so.
    stopped: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        """Every target reached the revision (``status``: every target at head)."""
        return all(row.outcome in REACHED for row in self.rows)

    def count(self, *outcomes: str) -> int:
        return sum(row.outcome in outcomes for row in self.rows)


def run(
    action: str,
    targets: Sequence[Target],
    revision: str = "head",
    *,
    jobs: int = 2,
    max_failures: int | None = None,
    canary: int = 0,
    options: dict[str, Any] | None = None,
    on_row: Callable[[Row], None] | None = None,
) -> FleetResult:
    """Take every target to ``revision`` (or read its status), ``jobs`` at a time.

    :param max_failures: after this many failed targets, start no new one.
    :param canary: migrate this many targets first; if any fails, start no other.
    :param options: per-target options for :func:`.commands.upgrade`/``downgrade``
        (lock_timeout, statement_lock_timeout, busy_timeout, confirm_base, phase: ``pre`` or
        ``post``, for ``upgrade`` and ``status``, docs/deploying.md; plan: a reviewed plan's
        file, for ``upgrade``, docs/reviewing.md); for ``backfill`` (each
        target's queued background backfills run to the end, :func:`mypkg.batch.run_background`):
        pause, batch_seconds, replicas, max_replica_lag, max_wait.
    :raises UsageError: an unknown action, jobs below 1, a negative bound.
    """
    import concurrent.futures as futures
    import multiprocessing

    if action not in ACTIONS:
        raise UsageError(f"fleet {action}: the actions are {', '.join(ACTIONS)}")
    if jobs < 1 or canary < 0 or (max_failures is not None and max_failures < 1):
        raise UsageError("--jobs and --max-failures must be at least 1, --canary at least 0")
    started = time.perf_counter()
    def tell_row(row: Row) -> None:  # a span per target (docs/observability.md), then the caller
        events.emit(events.TARGET_END, target=row.target, outcome=row.outcome, seconds=row.seconds,
                    before=list(row.before), after=list(row.after), error=row.error)
        if on_row is not None:
            on_row(row)

    rows: dict[str, Row] = {}
    failures = 0
    stopped: str | None = None
    queue = list(targets)
    if action in ("upgrade", "status"):  # many schemas of one PostgreSQL database: one query for them all
        from .bulk import answer

        rows.update(answer(action, revision, queue, Row, (options or {}).get("phase")))
        for row in rows.values():
            tell_row(row)
        queue = [found for found in queue if found.identity not in rows]
    # spawn: a worker starts clean (no connection, lock or signal state inherited).
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(max_workers=min(jobs, max(len(queue), 1)), mp_context=context,
                                     initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        waves = [queue[:canary], queue[canary:]] if canary else [queue]  # the canary's, then the rest
        for number, wave in enumerate(waves):
            if stopped:
                break
            waiting = list(reversed(wave))
            running: dict[futures.Future[Row], Target] = {}
            while waiting or running:
                while waiting and len(running) < jobs and not stopped:
                    carried = events.handoff(waiting[-1].identity)  # its span starts here
                    try:
                        future = pool.submit(migrate_one, action, waiting[-1], revision, options or {}, carried)
                    except futures.process.BrokenProcessPool:  # a worker was killed (out of memory...)
                        stopped = "a worker process died: no new target was started"
                        # Handed off, never run: its span ends now, as not started.
                        events.emit(events.TARGET_END, target=waiting[-1].identity, outcome="not started",
                                    seconds=0.0, before=[], after=[], error=stopped)
                        break
                    running[future] = waiting.pop()
                if not running:
                    break
                done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    found = running.pop(future)
                    try:
                        row = future.result()
                    except Exception as exc:  # noqa: BLE001 - its worker died (the pool is broken then)
                        row = Row(found.identity, (), (), "failed", 0.0, f"the worker process died: {exc}")
                        stopped = stopped or "a worker process died: no new target was started"
                    rows[found.identity] = row
                    if row.outcome == "failed":
                        failures += 1
                        if max_failures is not None and failures >= max_failures and not stopped:
                            stopped = f"{failures} target(s) failed (--max-failures {max_failures})"
                    tell_row(row)
            if canary and number == 0 and failures and not stopped:
                stopped = f"the canary failed ({failures} of {len(wave)} target(s), --canary {canary})"
    for found in targets:
        if found.identity not in rows:
            rows[found.identity] = Row(found.identity, (), (), "not started", 0.0, stopped)
    ordered = [rows[found.identity] for found in targets]
    return FleetResult(action, revision, ordered, stopped, time.perf_counter() - started)


def die_with_parent(parent: int) -> None:
    """In each worker: end when the fleet's process ends, however it ends. An orchestrator's
    SIGKILL after its grace period leaves no handler to stop the workers, which would go on
    migrating and hold the fleet's stdout and stderr open (a caller waiting for EOF hangs).
    Linux: the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); everywhere:
    a thread that sees the worker re-parented. A target cut off mid-revision is rolled back
    by its database (or, on MySQL, recorded as partial), as when the node is lost."""
    import signal
    import threading

    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)  # the parent is gone: nothing left to report to

    if os.getppid() != parent:  # it died before the death signal was armed
        os._exit(1)
    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def migrate_one(action: str, found: Target, revision: str, options: dict[str, Any],
                carried: dict[str, str] | None = None) -> Row:
    """One target, in a worker: its failure is its row, never the fleet's. ``carried``: the
    fleet's trace context for it (its spans go under the target's)."""
    from ..observe import otel

    with otel.continued(carried or {}):
        return _migrate_one(action, found, revision, options)


def _migrate_one(action: str, found: Target, revision: str, options: dict[str, Any]) -> Row:
    from .. import commands

    clock = time.perf_counter()
    try:
        if action == "status":
            from .bulk import status_outcome

            state = _fast_status(found.url) or commands.status(found.url)
            outcome = status_outcome(state, options.get("phase"))
            return Row(found.identity, state.current, state.current, outcome, time.perf_counter() - clock)
        if action == "upgrade" and revision in ("head", "heads"):
            state = _fast_nothing_to_do(found.url)
            if state is not None:  # at head already: one read, no Alembic
                return Row(found.identity, state.current, state.current, "unchanged", time.perf_counter() - clock)
        if action == "drift":  # its schema against the one its revision builds: unchanged or drifted
            found_drift = commands.drift(found.url)
            return Row(found.identity, found_drift.current, found_drift.current,
                       "drifted" if found_drift.drifted else "unchanged", time.perf_counter() - clock,
                       "; ".join(found_drift.differences) or None)
        if action == "backfill":
            from ...batch import run_background

            done = run_background(found.url, once=True, **_only(options, "pause", "batch_seconds", "replicas",
                                                                 "max_replica_lag", "max_wait"))
            return Row(found.identity, (), (), "migrated" if done else "unchanged", time.perf_counter() - clock)
        if action == "upgrade":
            result = commands.upgrade(found.url, revision, **_only(options, "lock_timeout",
                                      "statement_lock_timeout", "busy_timeout", "phase", "plan"))
        else:
            result = commands.downgrade(found.url, revision, **_only(options, "lock_timeout",
                                        "statement_lock_timeout", "busy_timeout", "confirm_base"))
        outcome = "migrated" if result.applied else "unchanged"
        return Row(found.identity, result.before, result.after, outcome, time.perf_counter() - clock)
    except (MigrateError, UsageError) as exc:
        return Row(found.identity, (), (), "failed", time.perf_counter() - clock, str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug or an environment problem: still this target's
        return Row(found.identity, (), (), "failed", time.perf_counter() - clock, f"{type(exc).__name__}: {exc}")


def _only(options: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: options[name] for name in names if options.get(name) is not None}


def _fast_status(url: str) -> Any:
    from ..fast import answers

    return answers.status(url) if answers.enabled() else None


def _fast_nothing_to_do(url: str) -> Any:
    from ..fast import answers

    return answers.nothing_to_upgrade(url) if answers.enabled() else None
