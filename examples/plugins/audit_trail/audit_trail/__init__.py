"""audit-trail: an example plugin of mypkg. Its revisions are in ``versions/``; its models'
``metadata`` tells ``alembic revision --autogenerate`` in the core's source tree to leave
its tables alone."""

from .models import metadata

__all__ = ["metadata"]
