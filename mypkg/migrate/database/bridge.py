"""Async drivers (``postgresql+asyncpg://``, the URL an asyncio application already has):
the runner is sync code, so a command on such a URL runs inside SQLAlchemy's greenlet bridge
(what ``AsyncConnection.run_sync`` does), on an event loop of its own. Engines for those URLs
are the async engine's sync face (:func:`.connections.create_engine`)."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from ..errors import UsageError
from ..identity import PACKAGE

Function = TypeVar("Function")


def names_async_driver(target: Any) -> bool:
    """Whether ``target`` (a URL, None for the configured one, an engine or connection)
    reaches its database through an async driver."""
    dialect = getattr(target, "dialect", None)
    if dialect is not None:
        return bool(getattr(dialect, "is_async", False))
    if hasattr(target, "get_dialect"):  # a parsed URL
        return bool(getattr(target.get_dialect(), "is_async", False))
    if hasattr(getattr(target, "url", None), "get_dialect"):  # a resolved Database
        return bool(getattr(target.url.get_dialect(), "is_async", False))
    if target is not None and not isinstance(target, str):
        return False
    from .settings import ASYNC_DRIVERS, resolve_url_string

    try:
        text = target if target is not None else resolve_url_string()
    except UsageError:
        return False  # the command says what is wrong with it
    scheme = text.partition("://")[0]
    return "+" in scheme and scheme.rpartition("+")[2] in ASYNC_DRIVERS


def _in_bridge() -> bool:
    try:
        import greenlet
    except ImportError:
        return False
    return bool(getattr(greenlet.getcurrent(), "__sqlalchemy_greenlet_provider__", False))


def for_async_drivers(function: Function) -> Function:
    """``function(target, ...)`` run in the greenlet bridge when ``target`` names an async
    driver, unless it already runs there (a command calling another).

    :raises UsageError: called from a running event loop (the application's own): it needs
        one of its own, so from async code it is called in a thread.
    """

    @functools.wraps(function)  # type: ignore[arg-type]
    def run(*args: Any, **kwargs: Any) -> Any:
        return call(args[0] if args else kwargs.get("target"), function, *args, **kwargs)

    return run  # type: ignore[return-value]


def call(target: Any, function: Any, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``, in the greenlet bridge when ``target`` (a URL, a
    resolved database, an engine) names an async driver; see :func:`for_async_drivers`."""
    if not names_async_driver(target) or _in_bridge():
        return function(*args, **kwargs)
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        name = getattr(function, "__name__", "the call")
        raise UsageError(f"{name}() on an async driver's URL runs an event loop of its own: from async "
                         f"code, call it in a thread: await asyncio.to_thread({PACKAGE}.{name}, url, ...)")
    from sqlalchemy.util.concurrency import greenlet_spawn

    return asyncio.run(greenlet_spawn(function, *args, **kwargs))
