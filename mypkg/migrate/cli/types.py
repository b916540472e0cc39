"""Argument types of the command line: each turns a word into a value, or into one usage
error line (argparse's ArgumentTypeError)."""

from __future__ import annotations

import argparse


def seconds(value: str) -> float:
    """A finite number of seconds, zero or more."""
    import math

    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"not a finite number of seconds: {value!r}")
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value!r}")
    return number


def positive_seconds(value: str) -> float:
    number = seconds(value)
    if number == 0:
        raise argparse.ArgumentTypeError(f"must be more than zero: {value!r}")
    return number


def lock_seconds(value: str) -> float:
    """Seconds PostgreSQL's lock_timeout can hold (1 ms to its maximum)."""
    from ..database.settings import statement_lock_timeout_ms
    from ..errors import UsageError

    number = seconds(value)
    try:
        statement_lock_timeout_ms(number)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--statement-lock-timeout ")) from None
    return number


def not_blank(value: str) -> str:
    """An empty value is an unset variable in a CI script (``--to-version "$RELEASE"``), not
    "no version": refused as an empty --url is."""
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty (an unset variable?): give a version")
    return value


def count(value: str) -> int:
    """A whole number, at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value!r}")
    return number


def count_or_zero(value: str) -> int:
    return 0 if value.strip() == "0" else count(value)
