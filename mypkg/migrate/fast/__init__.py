"""The fast path: read-only answers (status, a no-op upgrade) without SQLAlchemy or Alembic,
over libpq, sqlite3 or PyMySQL. Beside runtime; uses settings, the manifest and the vocabulary.
"""
