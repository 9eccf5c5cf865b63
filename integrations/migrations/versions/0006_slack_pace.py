"""Slack posting pace shared by the replicas: one row per channel with its next message time.

`slack_pace.next_at` (Unix seconds, a float so both databases do the arithmetic the same way) is
moved forward atomically by each replica that posts into the channel (`integrations.store_pace`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_pace",
        sa.Column("channel", sa.String(64), primary_key=True),
        sa.Column("next_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("slack_pace")
