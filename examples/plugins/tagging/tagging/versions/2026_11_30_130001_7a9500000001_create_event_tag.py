"""create event_tag

Depends on the audit plugin's branch (its table audit_event): installing tagging needs
audit-trail, and audit@base is refused while tags is applied.

Revision ID: 7a9500000001
Revises:
Create Date: 2026-11-30 13:00:01
"""
import sqlalchemy as sa
from alembic import op

revision = "7a9500000001"
down_revision = None
branch_labels = ("tags",)
depends_on = "a0d17e000001"  # audit's "create audit_event"


def upgrade() -> None:
    op.create_table(
        "event_tag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audit_event_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(40), nullable=False),
        sa.ForeignKeyConstraint(["audit_event_id"], ["audit_event.id"], name="fk_event_tag_audit_event_id_audit_event",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_event_tag"),
    )


def downgrade() -> None:
    op.drop_table("event_tag")
