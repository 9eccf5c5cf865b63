"""`SqlStore`: the `triage.store.Store` protocol over SQLAlchemy 2.x (SQLite by default, PostgreSQL by URL).

One schema for both databases, written with SQLAlchemy Core: claims are "INSERT and catch
IntegrityError" plus compare-and-swap UPDATEs, so they are atomic on SQLite and on PostgreSQL (READ
COMMITTED) alike, and any number of replicas can share one PostgreSQL database. Replicas also rely on:
fenced run writes (`attempts` is the fencing token; a stale token writes nothing), the per-ticket
lock (a PostgreSQL advisory lock — the one dialect-specific statement — or an in-process lock on
SQLite) and named leases (`leases`: one Zendesk poller).

The engine is synchronous; every public method runs its work in a worker thread via
`asyncio.to_thread`, so the event loop never blocks on the database. SQLite runs in WAL mode with a
busy timeout; every write transaction starts with its write, so SQLite writers queue instead of
failing with "database is locked".

One module per concept, joined by `SqlStore` here (with construction, the engine and retention):
`store_runs` (claims, fenced run writes, the report outbox), `store_reports` (threads, artefacts,
feedback, audit, cost), `store_intake` (de-duplication keys, cursors, ticket state),
`store_coordination` (ticket lock, leases, Slack posting pace), on `store_base` (the plumbing).

Schema: the tables are in `integrations.store_schema`, migrated with Alembic
(`integrations.schema_migrations`): `from_url` brings the database to the newest revision (or, with
`migrate=False`, refuses to run against an older one) and always refuses a newer one.

Privacy: ticket text (subject, description, comments) is never written to `audit_log` or `evidence`;
the only copy of anything derived from a ticket is the report JSON the team already sees in Slack.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, or_, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import StaticPool

from integrations.schema_migrations import prepare_schema
from integrations.store_base import utcnow
from integrations.store_coordination import CoordinationStore
from integrations.store_intake import IntakeStateStore
from integrations.store_reports import ReportsStore
from integrations.store_runs import RunsStore
from integrations.store_schema import artefacts, audit_log, cursors, evidence, feedback_table, triage_runs
from triage.store import RunStatus

__all__ = [
    "DEFAULT_DATABASE_URL",
    "SqlStore",
    "audit_log",
    "create_store_engine",
    "cursors",
    "evidence",
    "normalize_database_url",
    "triage_runs",
]

DEFAULT_DATABASE_URL = "sqlite:///triagebot.db"


def normalize_database_url(url: str) -> str:
    """Default to SQLite; route every PostgreSQL URL to the psycopg 3 driver."""
    url = (url or "").strip() or DEFAULT_DATABASE_URL
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class SqlStore(RunsStore, ReportsStore, IntakeStateStore, CoordinationStore):
    """The Store over SQLAlchemy. Build it with `SqlStore.from_url(url)` or `await SqlStore.connect(url)`.

    One class per concept, joined here: runs (`store_runs`), what they left behind (`store_reports`),
    intake state (`store_intake`), replica coordination (`store_coordination`), on `store_base`.
    """

    # ------------------------------------------------------------ construction

    @classmethod
    def from_url(
        cls, url: str = DEFAULT_DATABASE_URL, *, echo: bool = False, migrate: bool = True, replica: str = ""
    ) -> SqlStore:
        """Create the engine and prepare the schema (blocking; call at start-up or use `connect`).

        `migrate=False` refuses (SchemaError) a database that needs a migration instead of running it.
        """
        engine = create_store_engine(url, echo=echo)
        try:
            prepare_schema(engine, upgrade=migrate)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, replica=replica)

    @classmethod
    async def connect(
        cls, url: str = DEFAULT_DATABASE_URL, *, echo: bool = False, migrate: bool = True, replica: str = ""
    ) -> SqlStore:
        return await asyncio.to_thread(cls.from_url, url, echo=echo, migrate=migrate, replica=replica)

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.dispose)

    # ------------------------------------------------------------ retention

    async def purge_older_than(self, older_than_s: float) -> dict[str, int]:
        """Not in the protocol: retention (RETENTION_DAYS). Deletes finished runs (their reports) not
        updated within `older_than_s`, with their evidence rows, audit rows, drafts (artefacts) and feedback,
        audit rows older than that, and follow-up histories (`followup:*`) not touched since.
        Returns the deleted row counts per table."""

        def do(conn: Connection) -> dict[str, int]:
            cutoff = utcnow() - timedelta(seconds=older_than_s)
            old = select(triage_runs.c.run_id).where(
                triage_runs.c.updated_at < cutoff, triage_runs.c.status != RunStatus.running.value
            )
            counts: dict[str, int] = {}
            for table in (evidence, artefacts, feedback_table):
                counts[table.name] = int(conn.execute(delete(table).where(table.c.run_id.in_(old))).rowcount)
            counts[audit_log.name] = int(
                conn.execute(
                    delete(audit_log).where(or_(audit_log.c.run_id.in_(old), audit_log.c.created_at < cutoff))
                ).rowcount
            )
            counts["followups"] = int(
                conn.execute(
                    delete(cursors).where(cursors.c.name.like("followup:%"), cursors.c.updated_at < cutoff)
                ).rowcount
            )
            counts[triage_runs.name] = int(
                conn.execute(
                    delete(triage_runs).where(
                        triage_runs.c.updated_at < cutoff, triage_runs.c.status != RunStatus.running.value
                    )
                ).rowcount
            )
            return counts

        return await self._call(self._write, do)


def create_store_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for SQLite (WAL, busy timeout, usable from worker threads) or PostgreSQL (psycopg 3)."""
    url = normalize_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        memory = database in ("", ":memory:") or "mode=memory" in str(parsed.query)
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
        if memory:
            engine = create_engine(url, echo=echo, connect_args=connect_args, poolclass=StaticPool)
        else:
            engine = create_engine(url, echo=echo, connect_args=connect_args, pool_size=10, max_overflow=20)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)
