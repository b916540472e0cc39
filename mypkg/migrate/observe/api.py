"""The API's commands tell their start and end (``command.start``/``command.end``) when
someone listens and no caller told them already: a program calling ``mypkg.upgrade()``
with OpenTelemetry set up gets a span per call, under its current span."""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import TYPE_CHECKING, Any, TypeVar

from .. import events
from ..database.target import resolve

if TYPE_CHECKING:
    from collections.abc import Callable

Function = TypeVar("Function", bound="Callable[..., Any]")


def told(function: Function) -> Function:
    name = function.__name__

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        if events.command_open():  # the command line's, or an outer call's
            return function(*args, **kwargs)
        target = args[0] if args else kwargs.get("target")
        with contextlib.ExitStack() as stack:
            if not events.listening() and "opentelemetry.trace" in sys.modules:
                from . import otel

                stack.enter_context(events.listeners(otel.from_the_caller()))
            stack.enter_context(events.command(name, lambda: resolve(target).masked))
            return function(*args, **kwargs)

    return run  # type: ignore[return-value]
