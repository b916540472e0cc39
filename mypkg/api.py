"""The typed API under its earlier name: ``from mypkg.api import upgrade`` keeps working.

It lives in :mod:`mypkg.migrate.commands`; new code imports it from ``mypkg``.
"""

from .migrate.commands import *  # noqa: F403
from .migrate.commands import __all__  # noqa: F401
