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


class Output:
    def __init__(self, *, as_json: bool, quiet: bool, is_result: bool = False) -> None:
        self.as_json = as_json
        self.quiet = quiet
        #: The output is the command's result (status, history...), not a migration's progress.
        self.is_result = is_result
        self.closed = False  #: stdout went away (a closed pipe, a full disk): stop printing

    def line(self, text: str = "") -> None:
        """A progress or result line. Printing never decides a migration: a reader that
        left (``| head -1``) or a full disk stops the printing, not the work. A result that
        cannot be written (a full disk) fails the command: exit 1, one line."""
        if self.quiet or self.closed:
            return
        self._write(text)

    def _write(self, text: str) -> None:
        try:
            print(text, flush=True)
        except OSError as exc:
            self.closed = True
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
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
        """Progress while blocked (lock waits, retries): stderr, so stdout stays clean."""
        if not self.quiet:
            print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    def data(self, payload: Any, text: Callable[[], None]) -> None:
        if self.as_json:
            import json

            if not self.closed:
                self._write(json.dumps(payload, indent=2))
        else:
            text()


def short(revisions: Sequence[str]) -> str:
    return ", ".join(revisions) if revisions else "base (empty database)"


def of_plugin(rev: Any) -> str:
    """``  [audit]`` after a plugin's revision (docs/plugins.md); nothing for the package's own."""
    return f"  [{rev.plugin}]" if rev.plugin else ""


def revision_dict(rev: Any) -> dict[str, Any]:
    return {
        "revision": rev.revision,
        "down_revisions": list(rev.down_revisions),
        "message": rev.message,
        "is_head": rev.is_head,
        "plugin": rev.plugin,
    }
