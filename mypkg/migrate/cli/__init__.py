"""The command line: parsing (:mod:`.parser`), the handlers (:mod:`.handlers`, :mod:`.reads`), printing, signals.
May use everything below it; holds no logic a Python caller of :mod:`..commands` would miss.
"""

from .handlers import main

__all__ = ["main"]
