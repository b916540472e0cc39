"""What the command does to its own process: signals, and one import it spares itself."""

from __future__ import annotations

import contextlib
import sys

TYPE_CHECKING = False  # every start-up pays for what this module imports: not typing
if TYPE_CHECKING:
    from typing import Any


def skip_template_highlighting() -> None:
    """Keep Mako from importing Pygments when Alembic imports Mako (30-50 ms).

    Alembic imports Mako for ``alembic revision``'s templates, and Mako imports Pygments,
    when installed, only to colour the HTML page of a template error. This command renders
    no template, so Mako takes the fallback it has for machines without Pygments. Done
    here, for this process only: the library API leaves an application's imports alone.
    """
    if "mako.exceptions" not in sys.modules:
        sys.modules.setdefault("mako.ext.pygmentplugin", None)  # type: ignore[arg-type]


class Terminated(KeyboardInterrupt):
    """SIGTERM (Kubernetes, systemd, docker stop): unwound like Ctrl-C, so the running
    revision rolls back and the migration lock is released."""


def terminate_like_interrupt() -> Any:
    """Install the SIGTERM handler; returns the one it replaced (None off the main thread)."""
    import signal

    def handler(signum: int, _frame: Any) -> None:
        signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        raise Terminated

    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        return signal.signal(signal.SIGTERM, handler)
    return None


def after_the_outcome(previous: Any, *, whole_process: bool) -> None:
    """The command's outcome is decided. As the whole process (the console script), a
    SIGTERM that lands now (an orchestrator stopping a finished pod) is ignored: it must not
    turn the outcome into a silent death by signal. Called from a program of its own, the
    caller's handler is put back."""
    import signal

    with contextlib.suppress(ValueError, TypeError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGTERM, signal.SIG_IGN if whole_process or previous is None else previous)
