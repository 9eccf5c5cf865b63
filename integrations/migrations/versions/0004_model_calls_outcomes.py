"""Cost and outcomes: every model call (`model_calls`), draft outcomes, and the escalation decision per run.

- `model_calls`: one row per successful model call of a triage, draft or follow-up (tokens, cache
  hits, cost) — the daily budget and `triagebot stats` read it.
- `draft_outcomes`: reply copied / posted as a note, packet / KB opened (one row per click).
- `triage_runs.escalation_needed`: denormalised from the report, for the escalation rate.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_calls",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("kind", sa.String(16), nullable=False, server_default=""),
        sa.Column("purpose", sa.String(32), nullable=False, server_default=""),
        sa.Column("model", sa.String(128), nullable=False, server_default=""),
        sa.Column("input_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cache_read_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cache_creation_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_model_calls_created", "model_calls", ["created_at"])
    op.create_index("ix_model_calls_run", "model_calls", ["run_id"])
    op.create_table(
        "draft_outcomes",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_draft_outcomes_created", "draft_outcomes", ["created_at"])
    with op.batch_alter_table("triage_runs") as batch:
        batch.add_column(sa.Column("escalation_needed", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("triage_runs") as batch:
        batch.drop_column("escalation_needed")
    op.drop_index("ix_draft_outcomes_created", table_name="draft_outcomes")
    op.drop_table("draft_outcomes")
    op.drop_index("ix_model_calls_run", table_name="model_calls")
    op.drop_index("ix_model_calls_created", table_name="model_calls")
    op.drop_table("model_calls")
