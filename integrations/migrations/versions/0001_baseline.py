"""Baseline: the schema of the `schema_version` 1 store (before Alembic).

Databases created by that store (tables plus a `schema_meta` row) are stamped with this revision
instead of running it; see `integrations.schema_migrations`.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, **kw: object) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), **kw)  # type: ignore[arg-type]


def upgrade() -> None:
    op.create_table(
        "schema_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.create_table(
        "triage_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("ticket_id", sa.BigInteger, nullable=False),
        sa.Column("ticket_version", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("report_json", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("thread_ts", sa.String(64), nullable=True),
        _ts("heartbeat_at", nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.Column("mode", sa.String(16), nullable=True),
        sa.Column("product_area", sa.String(32), nullable=True),
        sa.Column("confidence", sa.String(16), nullable=True),
        sa.Column("fetch_ms", sa.Integer, nullable=True),
        sa.Column("intake_ms", sa.Integer, nullable=True),
        sa.Column("research_ms", sa.Integer, nullable=True),
        sa.Column("synthesis_ms", sa.Integer, nullable=True),
        sa.Column("total_ms", sa.Integer, nullable=True),
        sa.Column("llm_calls", sa.Integer, nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=True),
        sa.Column("output_tokens", sa.Integer, nullable=True),
        sa.Column("cache_read_tokens", sa.Integer, nullable=True),
        sa.Column("cache_creation_tokens", sa.Integer, nullable=True),
        sa.Column("cost_usd", sa.Float, nullable=True),
        sa.UniqueConstraint("ticket_id", "ticket_version", name="uq_triage_runs_ticket_version"),
    )
    op.create_index("ix_triage_runs_ticket_created", "triage_runs", ["ticket_id", "created_at"])
    op.create_index("ix_triage_runs_status_heartbeat", "triage_runs", ["status", "heartbeat_at"])
    op.create_table(
        "evidence",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("evidence_id", sa.String(16), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=True),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("first_party", sa.Integer, nullable=False),
    )
    op.create_index("ix_evidence_run_id", "evidence", ["run_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        _ts("created_at", nullable=False),
    )
    op.create_index("ix_audit_log_run_id", "audit_log", ["run_id"])
    op.create_table(
        "threads",
        sa.Column("ticket_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("thread_ts", sa.String(64), nullable=False),
        _ts("created_at", nullable=False),
    )
    op.create_index("ix_threads_channel_ts", "threads", ["channel", "thread_ts"])
    op.create_table(
        "artefacts",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("vote", sa.String(8), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        _ts("created_at", nullable=False),
        sa.UniqueConstraint("run_id", "user_id", name="uq_feedback_run_user"),
    )
    op.create_table(
        "seen_keys",
        sa.Column("key", sa.String(255), primary_key=True),
        _ts("created_at", nullable=False),
    )
    op.create_index("ix_seen_keys_created_at", "seen_keys", ["created_at"])
    op.create_table(
        "cursors",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        _ts("updated_at", nullable=False),
    )
    op.create_table(
        "ticket_state",
        sa.Column("ticket_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("public_customer_comments", sa.Integer, nullable=False),
        sa.Column("last_version", sa.String(64), nullable=False),
        sa.Column("extra_json", sa.Text, nullable=False),
        _ts("updated_at", nullable=False),
    )


def downgrade() -> None:
    for table in (
        "ticket_state",
        "cursors",
        "seen_keys",
        "feedback",
        "artefacts",
        "threads",
        "audit_log",
        "evidence",
        "triage_runs",
        "schema_meta",
    ):
        op.drop_table(table)
