"""The fast path: the same answers as the full path, without SQLAlchemy; libpq."""
