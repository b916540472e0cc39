"""Data migrations: batched backfills inside a revision, and the background ones a worker
runs beside the deploy (docs/background-backfills.md)."""
