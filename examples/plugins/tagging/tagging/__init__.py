"""tagging: an example plugin of mypkg that depends on another plugin (audit-trail)."""

from .models import metadata

__all__ = ["metadata"]
