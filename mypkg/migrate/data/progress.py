"""A data migration's progress on stderr: rows done of total, rate and time left.

On a terminal, one line rewritten in place; in a log (a pipe, a file, a CI job), a
line every few seconds and the last one, so a log shows steady progress without a
line per batch.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TextIO

from ..identity import COMMAND

if TYPE_CHECKING:
    from ..results import BackfillProgress

#: Seconds between lines when stderr is not a terminal.
LOG_INTERVAL = 5.0


def describe(progress: BackfillProgress) -> str:
    """``backfill note (rev): 1,200,000 of 2,000,000 rows (60%), 85,000 rows/s, 9s left``"""
    share = progress.done / progress.total if progress.total else 1.0
    text = (f"backfill {progress.table} ({progress.revision}): {progress.done:,} of {progress.total:,} rows "
            f"({share:.0%})")
    if progress.rate:
        text += f", {progress.rate:,.0f} rows/s"
    if progress.eta is not None and progress.done < progress.total:
        text += f", {_duration(progress.eta)} left"
    return text


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class StderrProgress:
    """A progress callback for :func:`mypkg.batch.backfill` that writes to ``stream``."""

    def __init__(self, stream: TextIO, *, interval: float = LOG_INTERVAL) -> None:
        self.stream = stream
        self.interval = interval
        self.terminal = _isatty(stream)
        self.last_line = 0.0
        self.pending: BackfillProgress | None = None
        self.width = 0

    def __call__(self, progress: BackfillProgress) -> None:
        text = f"{COMMAND}: {describe(progress)}"
        if self.terminal:
            padding = " " * max(0, self.width - len(text))
            self.width = len(text)
            self._write(f"\r{text}{padding}")
            return
        now = time.monotonic()
        if now - self.last_line >= self.interval:  # the first batch, then every few seconds
            self.last_line = now
            self._write(text + "\n")
            self.pending = None
        else:
            self.pending = progress  # logged by finish() if nothing newer is

    def finish(self) -> None:
        """The backfill ended: end the terminal's line, or log the last figures."""
        if self.terminal and self.width:
            self._write("\n")
            self.width = 0
        elif self.pending is not None:
            self._write(f"{COMMAND}: {describe(self.pending)}\n")
            self.pending = None

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed stderr never stops a data migration
            pass


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False
