"""The one exception type users see, and the exit codes it maps to.

The CLI turns a :class:`MigrateError` into one line on stderr and its exit code;
a Python caller catches it like any other exception.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit codes of ``mypkg-migrate``, documented in the README."""

    OK = 0
    #: A command failed, or ``status``/``check`` found the database behind or drifted.
    FAILURE = 1
    #: The command line was wrong: unknown option, malformed URL, unknown revision.
    USAGE = 2
    #: Ctrl-C (SIGINT), as shells report it (128 + 2): the running revision rolled back.
    INTERRUPTED = 130
    #: SIGTERM, as shells report it (128 + 15): the running revision rolled back.
    TERMINATED = 143


class MigrateError(Exception):
    """A failure explained in one line; nothing in the database was left half done."""

    exit_code: ExitCode = ExitCode.FAILURE


class UsageError(MigrateError):
    """The caller asked for something that cannot mean anything (bad URL, unknown revision)."""

    exit_code = ExitCode.USAGE


class CaptureError(MigrateError):
    """A schema holds something a checkpoint cannot reproduce (named in the message)."""
