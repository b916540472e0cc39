"""create audit_event

The plugin's first revision: the branch label is the plugin's name, and it depends on the
core revision that creates my_table (its foreign key's target).

Revision ID: a0d17e000001
Revises:
Create Date: 2026-11-30 12:00:01
"""
import sqlalchemy as sa
from alembic import op

revision = "a0d17e000001"
down_revision = None
branch_labels = ("audit",)
depends_on = "4a14b7b9f9d6"  # the core's "create initial tables" (my_table)


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("my_table_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.ForeignKeyConstraint(["my_table_id"], ["my_table.id"], name="fk_audit_event_my_table_id_my_table",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_event"),
    )
    op.create_index("ix_audit_event_my_table_id", "audit_event", ["my_table_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_event_my_table_id", table_name="audit_event")
    op.drop_table("audit_event")
