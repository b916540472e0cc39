"""What ``mypkg-migrate`` prints: progress and results on stdout (text or JSON), waits on
stderr. Printing never decides a migration: a closed or full stdout only stops it."""

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
    def __init__(self, *, as_json: bool, quiet: bool) -> None:
        self.as_json = as_json
        self.quiet = quiet
        self.closed = False  #: stdout went away (a closed pipe, a full disk): stop printing

    def line(self, text: str = "") -> None:
        """A progress or result line. Printing never decides a migration: a reader that
        left (``| head -1``) or a full disk stops the printing, not the work."""
        if self.quiet or self.closed:
            return
        try:
            print(text, flush=True)
        except OSError as exc:
            self.closed = True
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
            if not isinstance(exc, BrokenPipeError):
                with contextlib.suppress(OSError):
                    print(f"{PROG}: cannot write to stdout ({exc.strerror}); carrying on without it",
                          file=sys.stderr, flush=True)

    def waiting(self, text: str) -> None:
        """Progress while blocked (lock waits, retries): stderr, so stdout stays clean."""
        if not self.quiet:
            print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    def data(self, payload: Any, text: Callable[[], None]) -> None:
        if self.as_json:
            import json

            print(json.dumps(payload, indent=2))
        else:
            text()


def short(revisions: Sequence[str]) -> str:
    return ", ".join(revisions) if revisions else "base (empty database)"


def revision_dict(rev: Any) -> dict[str, Any]:
    return {
        "revision": rev.revision,
        "down_revisions": list(rev.down_revisions),
        "message": rev.message,
        "is_head": rev.is_head,
    }
