"""A revision's start, for people: in a log, ``applying REV  message`` before each
revision (a long index build shows what runs before it commits, as Flyway's "Migrating
schema" and Alembic's "Running upgrade" do); on a terminal, a revision still running after
a second shows ``running REV  message (Ns)`` on stderr, rewritten each second and wiped
when it ends (the ``applied`` line follows on stdout)."""

from __future__ import annotations

from .. import events
from ..identity import COMMAND

TYPE_CHECKING = False  # every start-up pays for what this module imports: not typing
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from typing import Any, TextIO

#: A revision shorter than this shows no running line on a terminal.
RUNNING_AFTER = 1.0


def label(fields: dict[str, Any]) -> str:
    plugin = fields.get("plugin")
    return f"{fields['revision']}  {fields.get('message') or ''}{f'  [{plugin}]' if plugin else ''}".rstrip()


class Console:
    """Listens to revision events. ``line`` prints a progress line on stdout (the
    command's :class:`~..cli.output.Output`); ``terminal``, where the running line goes when
    it is a terminal (stderr), else None."""

    def __init__(self, line: Callable[[str], None] | None, terminal: TextIO | None,
                 *, after: float = RUNNING_AFTER) -> None:
        self.line = line
        self.terminal = terminal
        self.after = after
        self.stop: threading.Event | None = None
        self.drawn = False

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        if event == events.REVISION_START:
            if self.line is not None:
                self.line(f"{'applying' if fields['direction'] == 'upgrade' else 'reverting'} {label(fields)}")
            if self.terminal is not None:
                self._start_ticking(label(fields))
        elif event in (events.REVISION_APPLIED, events.REVISION_FAILED, events.COMMAND_END, events.BACKFILL):
            self._stop_ticking()  # a backfill draws its own progress line

    def _start_ticking(self, text: str) -> None:
        import threading
        import time

        self._stop_ticking()
        stop = self.stop = threading.Event()
        started = time.monotonic()

        def tick() -> None:
            wait = self.after
            while not stop.wait(wait):
                seconds = time.monotonic() - started
                self._draw(f"\r{COMMAND}: running {text} ({seconds:.0f}s)\033[K")
                self.drawn = True
                wait = 1.0 - (seconds % 1.0)  # on the second

        threading.Thread(target=tick, name="running-line", daemon=True).start()

    def _stop_ticking(self) -> None:
        if self.stop is not None:
            self.stop.set()
            self.stop = None
        if self.drawn:
            self._draw("\r\033[K")  # the line is wiped: the result line takes its place
            self.drawn = False

    def _draw(self, text: str) -> None:
        try:
            assert self.terminal is not None
            self.terminal.write(text)
            self.terminal.flush()
        except (OSError, ValueError):  # a closed terminal never stops a migration
            pass


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False
