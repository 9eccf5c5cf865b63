"""The store's tables (SQLAlchemy Core), one schema for SQLite and PostgreSQL.

This is the schema at the newest migration (`integrations/migrations/versions/`): a change here
needs a new Alembic revision, and `tests/test_migrations.py` fails while the two disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Autoincrement surrogate keys: BIGINT on PostgreSQL, INTEGER (rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


def ts(name: str, **kw: Any) -> Column[datetime]:
    return Column(name, DateTime(timezone=True), **kw)


metadata = MetaData()

triage_runs = Table(
    "triage_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("ticket_id", BigInteger, nullable=False),
    Column("ticket_version", String(64), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    # the fencing token: incremented on every takeover; every write of the run checks it
    Column("attempts", Integer, nullable=False, default=1),
    Column("owner", String(128), nullable=False, default="", server_default=""),  # replica holding it
    Column("report_json", Text, nullable=True),
    # "stored, not yet posted": the Slack writes of a finished report (triage.store.Outbox) while the
    # run is still running; `outbox_sent` thread messages of it are posted. NULL once the run is done.
    Column("outbox_json", Text, nullable=True),
    Column("outbox_sent", Integer, nullable=False, default=0, server_default="0"),
    Column("error", Text, nullable=False, default=""),
    Column("channel", String(64), nullable=True),
    Column("thread_ts", String(64), nullable=True),
    ts("heartbeat_at", nullable=False),
    ts("created_at", nullable=False),
    ts("updated_at", nullable=False),
    # denormalised from the report, for dashboards / SQL reporting
    Column("mode", String(16), nullable=True),
    Column("product_area", String(32), nullable=True),
    Column("confidence", String(16), nullable=True),
    Column("fetch_ms", Integer, nullable=True),
    Column("intake_ms", Integer, nullable=True),
    Column("research_ms", Integer, nullable=True),
    Column("synthesis_ms", Integer, nullable=True),
    Column("total_ms", Integer, nullable=True),
    Column("llm_calls", Integer, nullable=True),
    Column("input_tokens", Integer, nullable=True),
    Column("output_tokens", Integer, nullable=True),
    Column("cache_read_tokens", Integer, nullable=True),
    Column("cache_creation_tokens", Integer, nullable=True),
    Column("cost_usd", Float, nullable=True),
    Column("escalation_needed", Integer, nullable=True),
    UniqueConstraint("ticket_id", "ticket_version", name="uq_triage_runs_ticket_version"),
    Index("ix_triage_runs_ticket_created", "ticket_id", "created_at"),
    Index("ix_triage_runs_status_heartbeat", "status", "heartbeat_at"),
)

evidence = Table(
    "evidence",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False, index=True),
    Column("evidence_id", String(16), nullable=False),
    Column("source", String(64), nullable=False),
    Column("tool", String(128), nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("url", Text, nullable=True),
    Column("latency_ms", Integer, nullable=False, default=0),
    Column("summary", Text, nullable=False, default=""),
    Column("first_party", Integer, nullable=False, default=0),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False, default="", index=True),
    Column("source", String(64), nullable=False),
    Column("tool", String(128), nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("latency_ms", Integer, nullable=False, default=0),
    ts("created_at", nullable=False),
)

threads = Table(
    "threads",
    metadata,
    Column("ticket_id", BigInteger, primary_key=True, autoincrement=False),
    Column("channel", String(64), nullable=False),
    Column("thread_ts", String(64), nullable=False),
    ts("created_at", nullable=False),
    Index("ix_threads_channel_ts", "channel", "thread_ts"),
)

artefacts = Table(
    "artefacts",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("ref", Text, nullable=False, default=""),
    Column("content", Text, nullable=False, default=""),
    ts("created_at", nullable=False),
    ts("updated_at", nullable=False),
)

feedback_table = Table(
    "feedback",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("vote", String(8), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    ts("created_at", nullable=False),
    UniqueConstraint("run_id", "user_id", name="uq_feedback_run_user"),
)

seen_keys = Table(
    "seen_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    ts("created_at", nullable=False, index=True),
)

cursors = Table(
    "cursors",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("value", Text, nullable=False),
    ts("updated_at", nullable=False),
)

ticket_state = Table(
    "ticket_state",
    metadata,
    Column("ticket_id", BigInteger, primary_key=True, autoincrement=False),
    Column("public_customer_comments", Integer, nullable=False, default=0),
    Column("last_version", String(64), nullable=False, default=""),
    Column("extra_json", Text, nullable=False, default="{}"),
    ts("updated_at", nullable=False),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),  # e.g. "zendesk-poller"
    Column("holder", String(128), nullable=False),  # the replica id
    Column("token", Integer, nullable=False),  # incremented whenever the holder changes
    ts("expires_at", nullable=False),
    ts("updated_at", nullable=False),
)

# one row per successful model call (triage, drafts, follow-ups): the budget and `triagebot stats` read it
model_calls = Table(
    "model_calls",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False, server_default=""),
    Column("kind", String(16), nullable=False, server_default=""),
    Column("purpose", String(32), nullable=False, server_default=""),
    Column("model", String(128), nullable=False, server_default=""),
    Column("input_tokens", Integer, nullable=False, server_default="0"),
    Column("output_tokens", Integer, nullable=False, server_default="0"),
    Column("cache_read_tokens", Integer, nullable=False, server_default="0"),
    Column("cache_creation_tokens", Integer, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    ts("created_at", nullable=False),
    Index("ix_model_calls_created", "created_at"),
    Index("ix_model_calls_run", "run_id"),
)

# what people did with a report's drafts: reply_copied, reply_posted, packet_opened, kb_opened
draft_outcomes = Table(
    "draft_outcomes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("user_id", String(64), nullable=False, server_default=""),
    ts("created_at", nullable=False),
    Index("ix_draft_outcomes_created", "created_at"),
)

# Slack's chat.postMessage pace per channel, shared by all replicas (`integrations.store_pace`):
# the theoretical time (Unix seconds) of the channel's next message
slack_pace = Table(
    "slack_pace",
    metadata,
    Column("channel", String(64), primary_key=True),
    Column("next_at", Float, nullable=False),
    ts("updated_at", nullable=False),
)
