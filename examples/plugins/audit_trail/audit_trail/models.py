"""The plugin's tables, as its revisions build them."""

import sqlalchemy as sa

metadata = sa.MetaData()

audit_event = sa.Table(
    "audit_event",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("my_table_id", sa.Integer, sa.ForeignKey("my_table.id", ondelete="CASCADE"), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("actor", sa.String(100)),
    sa.Index("ix_audit_event_my_table_id", "my_table_id"),
)
