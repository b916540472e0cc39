"""``python -m mypkg``: the same as ``mypkg-migrate``."""

import sys

from .cli import main

sys.exit(main())
