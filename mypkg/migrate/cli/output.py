"""What ``mypkg-migrate`` prints: progress and results on stdout (text or JSON), waits on
stderr. Printing never decides a migration: a closed or full stdout only stops it. A command
whose output *is* its result (status, history, verify...) fails when it cannot write it."""

from __future__ import annotations

import contextlib
import os
import sys

from ..identity import COMMAND as PROG

TYPE_CHECKING = False  # every start-up pays for what this module imports: not typing
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any


#: The version of every ``--json`` shape (docs/json/*.schema.json): raised when a key is
#: removed, renamed or changes meaning; new keys may come without it.
FORMAT = 1


class Output:
    def __init__(self, *, as_json: bool, quiet: bool, is_result: bool = False, command: str = "",
                 json_log: bool = False) -> None:
        self.as_json = as_json
        self.quiet = quiet
        self.command = command
        #: --log-format json: waits and progress are events on stderr, not text.
        self.json_log = json_log
        #: The output is the command's result (status, history...), not a migration's progress.
        self.is_result = is_result
        self.closed = False  #: stdout went away (a closed pipe, a full disk): stop printing
        #: Where results go: stdout as the command started (under --json and --sql the
        #: process's sys.stdout is then pointed at stderr, for whatever else prints).
        self.stream = sys.stdout

    def line(self, text: str = "") -> None:
        """A progress or result line. Printing never decides a migration: a reader that
        left (``| head -1``) or a full disk stops the printing, not the work. A result that
        cannot be written (a full disk) fails the command: exit 1, one line. Under ``--json``
        stdout holds the JSON result alone."""
        if self.quiet or self.closed or self.as_json:
            return
        self._write(text)

    def _write(self, text: str) -> None:
        try:
            print(text, file=self.stream, flush=True)
        except OSError as exc:
            self.closed = True
            with contextlib.suppress(OSError):
                sys.stdout = self.stream = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
            if isinstance(exc, BrokenPipeError):
                return  # the reader left on purpose (| head): nothing more to say
            if self.is_result:
                from ..errors import MigrateError

                raise MigrateError(f"cannot write the result to stdout ({exc.strerror})") from None
            with contextlib.suppress(OSError):
                print(f"{PROG}: cannot write to stdout ({exc.strerror}); carrying on without it",
                      file=sys.stderr, flush=True)

    def result(self, text: str) -> None:
        """A line of the result that -q does not silence (the problems ``verify`` found):
        written, or failing the command as :meth:`line` does."""
        if not self.closed:
            self._write(text)

    def waiting(self, text: str) -> None:
        """Progress while blocked (lock waits, retries): stderr, so stdout stays clean; under
        ``--log-format json`` the events say it."""
        if not self.quiet and not self.json_log:
            print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    def data(self, payload: dict[str, Any], text: Callable[[], None]) -> None:
        """The command's result: ``payload`` under ``--json`` (after ``format`` and
        ``command``: docs/json), else what ``text`` prints."""
        if self.as_json:
            import json

            if not self.closed:
                self._write(json.dumps({"format": FORMAT, "command": self.command, **payload}, indent=2))
        else:
            text()

    def error(self, message: str, exit_code: int, backup: str | None = None) -> None:
        """The one line a failure prints on stderr: JSON under ``--json`` (docs/json/error.schema.json);
        under ``--log-format json`` the ``command.end`` event carries it instead (with ``--json``
        as well, the error object still follows the events: what ``--json`` promises)."""
        if self.json_log and not self.as_json:
            return
        if self.as_json:
            import json

            text = json.dumps({"format": FORMAT, "command": self.command, "error": message, "exit_code": exit_code,
                               **({"backup": backup} if backup is not None else {})})
        else:
            text = f"{PROG}: error: {message}"
        with contextlib.suppress(OSError, ValueError):
            print(text, file=sys.stderr, flush=True)


def usage_error_line(text: str, *, command: str | None, as_json: bool, json_log: bool) -> str:
    """A usage error found while parsing, as the line stderr gets: the error object under
    ``--json``, a ``command.end`` event under ``--log-format json``, else plain text."""
    import json

    if as_json:
        return json.dumps({"format": FORMAT, "command": command, "error": text, "exit_code": 2}) + "\n"
    if json_log:
        import time

        from ..observe.jsonlog import timestamp

        return json.dumps({"time": timestamp(time.time()), "event": "command.end", "command": command,
                           "seconds": 0.0, "exit_code": 2, "error": text}) + "\n"
    return f"{PROG}: error: {text}\n"


def short(revisions: Sequence[str]) -> str:
    return ", ".join(revisions) if revisions else "base (empty database)"


def of_plugin(rev: Any) -> str:
    """``  [audit]`` after a plugin's revision (docs/plugins.md); nothing for the package's own."""
    return f"  [{rev.plugin}]" if rev.plugin else ""


def step_dict(step: Any) -> dict[str, Any]:
    """A revision an upgrade or downgrade ran (its seconds to the millisecond)."""
    return {"revision": step.revision, "message": step.message, "direction": step.direction,
            "plugin": step.plugin, "seconds": round(step.seconds, 3)}


def revision_dict(rev: Any) -> dict[str, Any]:
    return {
        "revision": rev.revision,
        "down_revisions": list(rev.down_revisions),
        "message": rev.message,
        "is_head": rev.is_head,
        "plugin": rev.plugin,
        "phase": rev.phase,
    }
