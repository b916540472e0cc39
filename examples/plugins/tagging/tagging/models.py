"""The plugin's table, as its revision builds it."""

import sqlalchemy as sa

metadata = sa.MetaData()

event_tag = sa.Table(
    "event_tag",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("audit_event_id", sa.Integer, sa.ForeignKey("audit_event.id", ondelete="CASCADE"), nullable=False),
    sa.Column("tag", sa.String(40), nullable=False),
)
