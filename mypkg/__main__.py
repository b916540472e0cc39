"""``python -m mypkg``: the same as ``mypkg-migrate``."""

import sys

from .migrate.cli import main

sys.exit(main())
