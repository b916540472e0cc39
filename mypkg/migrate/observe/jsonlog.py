"""``--log-format json``: every event one JSON object per line on stderr, for log
pipelines (Loki, CloudWatch, Elasticsearch) that parse lines rather than read them.

A line: ``{"time": "2026-11-30T12:00:00.123Z", "event": "revision.applied", "target":
"postgresql://app:***@db/app", "revision": "...", "direction": "upgrade", "seconds": 0.412}``;
the fields of each event are in docs/observability.md. Targets are masked where they are
emitted; seconds are rounded to the millisecond; a backfill's progress is told on its
first batch, every few seconds and at its end, not per batch.
"""

from __future__ import annotations

from .. import events

TYPE_CHECKING = False  # every start-up pays for what this module imports: not typing
if TYPE_CHECKING:
    from typing import Any, TextIO

#: Seconds between two backfill.progress lines of one table.
BACKFILL_INTERVAL = 5.0


def timestamp(seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-11-30T12:00:00.123Z``."""
    import time

    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1000):03d}Z"


class JsonLog:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.target: str | None = None
        self.last_backfill: dict[tuple[str, str], float] = {}

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        if event == events.COMMAND_START:
            self.target = fields.get("target")
        if event == events.BACKFILL and not self._tell_backfill(fields):
            return
        line: dict[str, Any] = {"time": timestamp(fields["time"]), "event": event}
        if self.target is not None and "target" not in fields:
            line["target"] = self.target
        for key, value in fields.items():
            if key != "time":
                line[key] = round(value, 3) if isinstance(value, float) else value
        self.write(line)

    def write(self, line: dict[str, Any]) -> None:
        import json

        try:
            self.stream.write(json.dumps(line, default=str) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed stderr never stops a migration
            pass

    def _tell_backfill(self, fields: dict[str, Any]) -> bool:
        key = (fields["revision"], fields["table"])
        last = self.last_backfill.get(key)
        finished = fields.get("finished") or fields["done"] >= fields["total"]
        if last is None or finished or fields["time"] - last >= BACKFILL_INTERVAL:
            self.last_backfill[key] = fields["time"]
            return True
        return False
