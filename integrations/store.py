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

Schema: the tables are in `integrations.store_schema`, migrated with Alembic
(`integrations.schema_migrations`): `from_url` brings the database to the newest revision (or, with
`migrate=False`, refuses to run against an older one) and always refuses a newer one.

Privacy: ticket text (subject, description, comments) is never written to `audit_log` or `evidence`;
the only copy of anything derived from a ticket is the report JSON the team already sees in Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import (
    Column,
    Engine,
    Table,
    and_,
    case,
    create_engine,
    delete,
    event,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, RowMapping, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from integrations import store_pace, store_stats
from integrations.schema_migrations import LOCK_NAMESPACE, prepare_schema
from integrations.store_schema import (
    artefacts,
    audit_log,
    cursors,
    draft_outcomes,
    evidence,
    feedback_table,
    leases,
    model_calls,
    seen_keys,
    threads,
    ticket_state,
    triage_runs,
)
from triage.metering import ModelCall
from triage.models import TriageReport
from triage.redaction import storable
from triage.store import (
    Artefact,
    AuditEntry,
    Claim,
    Feedback,
    Outbox,
    RunRecord,
    RunStatus,
    ThreadRef,
    TicketState,
    UsageStats,
)

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///triagebot.db"
TICKET_LOCK_POLL_S = 0.2  # how often a replica waiting for a ticket's advisory lock tries again

T = TypeVar("T")

# ---------------------------------------------------------------- helpers


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def normalize_database_url(url: str) -> str:
    """Default to SQLite; route every PostgreSQL URL to the psycopg 3 driver."""
    url = (url or "").strip() or DEFAULT_DATABASE_URL
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _try_advisory_lock(conn: Connection, key: dict[str, int]) -> bool:
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:ns, :key)"), key).scalar())


def _end(conn: Connection) -> None:
    """Roll back and return the connection (releases transaction-scoped advisory locks)."""
    try:
        conn.rollback()
    finally:
        conn.close()


def _run_record(row: RowMapping) -> RunRecord:
    report: TriageReport | None = None
    if row["report_json"]:
        try:
            report = TriageReport.model_validate_json(row["report_json"])
        except ValidationError:
            log.warning("run %s: stored report does not match the current schema", row["run_id"])
    return RunRecord(
        run_id=row["run_id"],
        ticket_id=row["ticket_id"],
        ticket_version=row["ticket_version"],
        trigger=row["trigger"],
        status=RunStatus(row["status"]),
        attempts=row["attempts"],
        owner=row["owner"] or "",
        report=report,
        error=row["error"] or "",
        channel=row["channel"],
        thread_ts=row["thread_ts"],
        created_at=_aware(row["created_at"]),
        updated_at=_aware(row["updated_at"]),
    )


def _artefact(row: RowMapping) -> Artefact:
    return Artefact(
        run_id=row["run_id"],
        kind=row["kind"],
        status=row["status"],
        ref=row["ref"] or "",
        content=row["content"] or "",
    )


def _report_columns(report: TriageReport) -> dict[str, Any]:
    """The report JSON and the columns denormalised from it (dashboards, stats)."""
    return {
        "report_json": report.model_dump_json(),
        "mode": report.mode.value,
        "product_area": report.product_area,
        "confidence": report.confidence.value if report.confidence else None,
        "fetch_ms": report.timings.fetch_ms,
        "intake_ms": report.timings.intake_ms,
        "research_ms": report.timings.research_ms,
        "synthesis_ms": report.timings.synthesis_ms,
        "total_ms": report.timings.total_ms,
        "llm_calls": report.usage.calls,
        "input_tokens": report.usage.input_tokens,
        "output_tokens": report.usage.output_tokens,
        "cache_read_tokens": report.usage.cache_read_tokens,
        "cache_creation_tokens": report.usage.cache_creation_tokens,
        "cost_usd": report.usage.cost_usd,
        "escalation_needed": int(report.escalation.needed),
    }


def _evidence_rows(run_id: str, report: TriageReport) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run_id,
            "evidence_id": e.id,
            "source": e.source,
            "tool": e.tool,
            "status": e.status.value,
            "title": e.title,
            "url": e.url,
            "latency_ms": e.latency_ms,
            "summary": e.summary,
            "first_party": int(e.first_party),
        }
        for e in report.evidence
    ]


class SqlStore:
    """The Store over SQLAlchemy. Build it with `SqlStore.from_url(url)` or `await SqlStore.connect(url)`."""

    def __init__(self, engine: Engine, *, replica: str = "") -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.replica = replica or default_replica_id()  # recorded as the owner of the runs it claims
        # An in-memory SQLite database is one shared connection (StaticPool): serialise access to it.
        self._lock: threading.Lock | None = threading.Lock() if isinstance(engine.pool, StaticPool) else None
        self._ticket_locks: dict[int, _LocalLock] = {}

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

    # ------------------------------------------------------------ plumbing

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._lock is None:
            return await asyncio.to_thread(fn, *args)
        lock = self._lock

        def locked() -> T:
            with lock:
                return fn(*args)

        return await asyncio.to_thread(locked)

    def _read(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            return fn(conn)

    def _write(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return fn(conn)

    # ------------------------------------------------------------ runs

    async def claim_run(
        self, ticket_id: int, ticket_version: str, trigger: str, *, stale_after_s: float = 600.0
    ) -> Claim:
        return await self._call(self._claim_run, ticket_id, ticket_version, trigger, stale_after_s)

    def _claim_run(self, ticket_id: int, ticket_version: str, trigger: str, stale_after_s: float) -> Claim:
        for _ in range(5):
            now = _now()
            row = {
                "run_id": uuid.uuid4().hex,
                "ticket_id": ticket_id,
                "ticket_version": ticket_version,
                "trigger": trigger,
                "status": RunStatus.running.value,
                "attempts": 1,
                "owner": self.replica,
                "error": "",
                "heartbeat_at": now,
                "created_at": now,
                "updated_at": now,
            }
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(triage_runs).values(**row))
                return Claim(owned=True, run=self._get_run(row["run_id"]) or RunRecord(**row))
            except IntegrityError:
                pass  # somebody owns (or owned) this ticket version

            existing = self._find_run(ticket_id, ticket_version)
            if existing is None:
                continue  # the row vanished between our INSERT and SELECT: try again
            run_id, status, attempts, heartbeat_at = existing
            cutoff = _now() - timedelta(seconds=stale_after_s)
            stale = status == RunStatus.running.value and (_aware(heartbeat_at) or now) < cutoff
            if not (stale or status == RunStatus.failed.value):
                return Claim(owned=False, run=self._require_run(run_id))

            # Take over a crashed (stale) or failed run: compare-and-swap on `attempts`, so among
            # concurrent claimers exactly one UPDATE matches.
            taken_at = _now()
            with self.engine.begin() as conn:
                result = conn.execute(
                    update(triage_runs)
                    .where(
                        triage_runs.c.run_id == run_id,
                        triage_runs.c.attempts == attempts,
                        or_(
                            triage_runs.c.status == RunStatus.failed.value,
                            and_(
                                triage_runs.c.status == RunStatus.running.value,
                                triage_runs.c.heartbeat_at < cutoff,
                            ),
                        ),
                    )
                    .values(
                        status=RunStatus.running.value,
                        attempts=attempts + 1,
                        owner=self.replica,
                        trigger=trigger,
                        error="",
                        heartbeat_at=taken_at,
                        updated_at=taken_at,
                    )
                )
                taken = result.rowcount == 1
            return Claim(owned=taken, resumed=taken, run=self._require_run(run_id))
        raise RuntimeError(f"could not claim ticket {ticket_id} version {ticket_version}")

    def _find_run(self, ticket_id: int, ticket_version: str) -> tuple[str, str, int, datetime] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    triage_runs.c.run_id,
                    triage_runs.c.status,
                    triage_runs.c.attempts,
                    triage_runs.c.heartbeat_at,
                ).where(
                    triage_runs.c.ticket_id == ticket_id,
                    triage_runs.c.ticket_version == ticket_version,
                )
            ).first()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def _get_run(self, run_id: str) -> RunRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(triage_runs).where(triage_runs.c.run_id == run_id)).mappings().first()
        return None if row is None else _run_record(row)

    def _require_run(self, run_id: str) -> RunRecord:
        run = self._get_run(run_id)
        if run is None:
            raise RuntimeError(f"run {run_id} disappeared")
        return run

    @staticmethod
    def _fenced(run_id: str, token: int) -> Any:
        """The WHERE clause of every write of a run: still running, and still under this token."""
        return and_(
            triage_runs.c.run_id == run_id,
            triage_runs.c.attempts == token,
            triage_runs.c.status == RunStatus.running.value,
        )

    async def heartbeat(self, run_id: str, token: int) -> bool:
        def do(conn: Connection) -> bool:
            now = _now()
            result = conn.execute(
                update(triage_runs)
                .where(self._fenced(run_id, token))
                .values(heartbeat_at=now, updated_at=now)
            )
            return result.rowcount == 1

        return await self._call(self._write, do)

    async def holds_run(self, run_id: str, token: int) -> bool:
        def do(conn: Connection) -> bool:
            found = conn.execute(select(triage_runs.c.run_id).where(self._fenced(run_id, token))).first()
            return found is not None

        return await self._call(self._read, do)

    async def finish_run(self, run_id: str, report: TriageReport, *, token: int) -> bool:
        """Store the report and end the run (done) in one write: for runs that post nothing more."""
        return await self._store_report(run_id, report, token, {"status": RunStatus.done.value})

    async def stage_report(self, run_id: str, report: TriageReport, outbox: Outbox, *, token: int) -> bool:
        """Store the report and its outbox; the run stays running until `complete_run` (see `Outbox`)."""
        extra = {"outbox_json": outbox.model_dump_json(exclude={"sent"}), "outbox_sent": outbox.sent}
        return await self._store_report(run_id, report, token, extra)

    async def _store_report(
        self, run_id: str, report: TriageReport, token: int, extra: dict[str, Any]
    ) -> bool:
        report = storable(report)  # no person properties in the report JSON or the evidence table
        values = {**_report_columns(report), **extra}

        def do(conn: Connection) -> bool:
            now = _now()
            result = conn.execute(
                update(triage_runs)
                .where(self._fenced(run_id, token))
                .values(**values, error="", heartbeat_at=now, updated_at=now)
            )
            if result.rowcount != 1:
                return False
            conn.execute(delete(evidence).where(evidence.c.run_id == run_id))
            if report.evidence:
                conn.execute(insert(evidence), _evidence_rows(run_id, report))
            return True

        return await self._call(self._write, do)

    async def outbox_sent(self, run_id: str, sent: int, *, token: int) -> bool:
        """Record that the first `sent` outbox messages are posted (fenced)."""

        def do(conn: Connection) -> bool:
            result = conn.execute(
                update(triage_runs)
                .where(self._fenced(run_id, token), triage_runs.c.outbox_json.is_not(None))
                .values(outbox_sent=sent, updated_at=_now())
            )
            return result.rowcount == 1

        return await self._call(self._write, do)

    async def get_outbox(self, run_id: str) -> Outbox | None:
        """The outbox of a run that is stored but not yet completely posted (None otherwise)."""

        def do(conn: Connection) -> Outbox | None:
            row = conn.execute(
                select(triage_runs.c.outbox_json, triage_runs.c.outbox_sent).where(
                    triage_runs.c.run_id == run_id,
                    triage_runs.c.status == RunStatus.running.value,
                    triage_runs.c.outbox_json.is_not(None),
                )
            ).first()
            if row is None:
                return None
            try:
                outbox = Outbox.model_validate_json(row[0])
            except ValidationError:
                log.warning("run %s: stored outbox does not match the current schema", run_id)
                return None
            return outbox.model_copy(update={"sent": int(row[1])})

        return await self._call(self._read, do)

    async def complete_run(self, run_id: str, *, token: int) -> bool:
        """Everything of the outbox is posted: the run is done and the outbox dropped (fenced)."""

        def do(conn: Connection) -> bool:
            now = _now()
            result = conn.execute(
                update(triage_runs)
                .where(self._fenced(run_id, token))
                .values(status=RunStatus.done.value, outbox_json=None, heartbeat_at=now, updated_at=now)
            )
            return result.rowcount == 1

        return await self._call(self._write, do)

    async def fail_run(self, run_id: str, error: str, *, token: int) -> bool:
        def do(conn: Connection) -> bool:
            result = conn.execute(
                update(triage_runs)
                .where(self._fenced(run_id, token))
                .values(status=RunStatus.failed.value, error=error[:4000], updated_at=_now())
            )
            return result.rowcount == 1

        return await self._call(self._write, do)

    async def set_run_thread(self, run_id: str, channel: str, thread_ts: str, *, token: int) -> bool:
        def do(conn: Connection) -> bool:
            result = conn.execute(
                update(triage_runs)
                .where(self._fenced(run_id, token))
                .values(channel=channel, thread_ts=thread_ts, updated_at=_now())
            )
            return result.rowcount == 1

        return await self._call(self._write, do)

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._call(self._get_run, run_id)

    async def latest_run(self, ticket_id: int) -> RunRecord | None:
        def do(conn: Connection) -> RunRecord | None:
            row = (
                conn.execute(
                    select(triage_runs)
                    .where(triage_runs.c.ticket_id == ticket_id)
                    .order_by(triage_runs.c.created_at.desc(), triage_runs.c.updated_at.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
            return None if row is None else _run_record(row)

        return await self._call(self._read, do)

    async def stale_runs(self, stale_after_s: float) -> list[RunRecord]:
        def do(conn: Connection) -> list[RunRecord]:
            cutoff = _now() - timedelta(seconds=stale_after_s)
            rows = conn.execute(
                select(triage_runs)
                .where(
                    triage_runs.c.status == RunStatus.running.value,
                    triage_runs.c.heartbeat_at < cutoff,
                )
                .order_by(triage_runs.c.heartbeat_at)
            ).mappings()
            return [_run_record(r) for r in rows]

        return await self._call(self._read, do)

    async def evidence_for_run(self, run_id: str) -> list[dict[str, Any]]:
        """The evidence index rows of a finished run (not in the protocol; for reporting and tests)."""

        def do(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                select(evidence).where(evidence.c.run_id == run_id).order_by(evidence.c.id)
            ).mappings()
            return [dict(r) for r in rows]

        return await self._call(self._read, do)

    # ------------------------------------------------------------ threads

    async def get_thread(self, ticket_id: int) -> ThreadRef | None:
        def do(conn: Connection) -> ThreadRef | None:
            row = conn.execute(select(threads).where(threads.c.ticket_id == ticket_id)).mappings().first()
            if row is None:
                return None
            return ThreadRef(ticket_id=row["ticket_id"], channel=row["channel"], thread_ts=row["thread_ts"])

        return await self._call(self._read, do)

    async def set_thread(self, ref: ThreadRef) -> bool:
        def do() -> bool:
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(threads).values(
                            ticket_id=ref.ticket_id,
                            channel=ref.channel,
                            thread_ts=ref.thread_ts,
                            created_at=_now(),
                        )
                    )
            except IntegrityError:
                return False
            return True

        return await self._call(do)

    async def ticket_for_thread(self, channel: str, thread_ts: str) -> int | None:
        def do(conn: Connection) -> int | None:
            found = conn.execute(
                select(threads.c.ticket_id).where(
                    threads.c.channel == channel, threads.c.thread_ts == thread_ts
                )
            ).scalar_one_or_none()
            if found is not None:
                return int(found)
            # a run may report into a thread that is not the ticket's canonical one
            found = conn.execute(
                select(triage_runs.c.ticket_id)
                .where(triage_runs.c.channel == channel, triage_runs.c.thread_ts == thread_ts)
                .limit(1)
            ).scalar_one_or_none()
            return None if found is None else int(found)

        return await self._call(self._read, do)

    # ------------------------------------------------------------ artefacts

    async def claim_artefact(self, run_id: str, kind: str) -> tuple[bool, Artefact]:
        def do() -> tuple[bool, Artefact]:
            for _ in range(5):
                now = _now()
                try:
                    with self.engine.begin() as conn:
                        conn.execute(
                            insert(artefacts).values(
                                run_id=run_id,
                                kind=kind,
                                status="pending",
                                ref="",
                                content="",
                                created_at=now,
                                updated_at=now,
                            )
                        )
                    return True, Artefact(run_id=run_id, kind=kind)
                except IntegrityError:
                    pass
                with self.engine.connect() as conn:
                    row = (
                        conn.execute(
                            select(artefacts).where(artefacts.c.run_id == run_id, artefacts.c.kind == kind)
                        )
                        .mappings()
                        .first()
                    )
                if row is not None:
                    return False, _artefact(row)
            raise RuntimeError(f"could not claim artefact {kind} of run {run_id}")

        return await self._call(do)

    async def complete_artefact(self, run_id: str, kind: str, ref: str, content: str = "") -> None:
        def do() -> None:
            now = _now()
            with self.engine.begin() as conn:
                result = conn.execute(
                    update(artefacts)
                    .where(artefacts.c.run_id == run_id, artefacts.c.kind == kind)
                    .values(status="done", ref=ref, content=content, updated_at=now)
                )
                if result.rowcount:
                    return
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(artefacts).values(
                            run_id=run_id,
                            kind=kind,
                            status="done",
                            ref=ref,
                            content=content,
                            created_at=now,
                            updated_at=now,
                        )
                    )
            except IntegrityError:  # raced with a claim: the update now finds the row
                with self.engine.begin() as conn:
                    conn.execute(
                        update(artefacts)
                        .where(artefacts.c.run_id == run_id, artefacts.c.kind == kind)
                        .values(status="done", ref=ref, content=content, updated_at=now)
                    )

        await self._call(do)

    async def release_artefact(self, run_id: str, kind: str) -> None:
        def do(conn: Connection) -> None:
            conn.execute(
                delete(artefacts).where(
                    artefacts.c.run_id == run_id, artefacts.c.kind == kind, artefacts.c.status == "pending"
                )
            )

        await self._call(self._write, do)

    async def get_artefact(self, run_id: str, kind: str) -> Artefact | None:
        """Not in the protocol: read an artefact without claiming it."""

        def do(conn: Connection) -> Artefact | None:
            row = (
                conn.execute(select(artefacts).where(artefacts.c.run_id == run_id, artefacts.c.kind == kind))
                .mappings()
                .first()
            )
            return None if row is None else _artefact(row)

        return await self._call(self._read, do)

    # ------------------------------------------------------------ feedback, audit

    async def add_feedback(self, feedback: Feedback) -> None:
        """One vote per user per run: a second vote replaces the first."""

        fb = feedback

        def do() -> None:
            created = fb.created_at or _now()
            values = {"vote": fb.vote, "comment": fb.comment, "created_at": created}
            for _ in range(3):
                with self.engine.begin() as conn:
                    result = conn.execute(
                        update(feedback_table)
                        .where(feedback_table.c.run_id == fb.run_id, feedback_table.c.user_id == fb.user_id)
                        .values(**values)
                    )
                    if result.rowcount:
                        return
                try:
                    with self.engine.begin() as conn:
                        conn.execute(
                            insert(feedback_table).values(run_id=fb.run_id, user_id=fb.user_id, **values)
                        )
                    return
                except IntegrityError:
                    continue

        await self._call(do)

    async def feedback_for_run(self, run_id: str) -> list[Feedback]:
        """Not in the protocol: the votes on a run."""

        def do(conn: Connection) -> list[Feedback]:
            rows = conn.execute(
                select(feedback_table).where(feedback_table.c.run_id == run_id).order_by(feedback_table.c.id)
            ).mappings()
            return [
                Feedback(
                    run_id=r["run_id"],
                    user_id=r["user_id"],
                    vote=r["vote"],
                    comment=r["comment"] or "",
                    created_at=_aware(r["created_at"]),
                )
                for r in rows
            ]

        return await self._call(self._read, do)

    async def record_audit(self, entries: list[AuditEntry]) -> None:
        if not entries:
            return
        rows = [
            {
                "run_id": e.run_id,
                "source": e.source,
                "tool": e.tool,
                "status": e.status,
                "latency_ms": e.latency_ms,
                "created_at": e.created_at or _now(),
            }
            for e in entries
        ]

        def do(conn: Connection) -> None:
            conn.execute(insert(audit_log), rows)

        await self._call(self._write, do)

    async def audit_for_run(self, run_id: str) -> list[AuditEntry]:
        def do(conn: Connection) -> list[AuditEntry]:
            rows = conn.execute(
                select(audit_log).where(audit_log.c.run_id == run_id).order_by(audit_log.c.id)
            ).mappings()
            return [
                AuditEntry(
                    run_id=r["run_id"],
                    source=r["source"],
                    tool=r["tool"],
                    status=r["status"],
                    latency_ms=r["latency_ms"],
                    created_at=_aware(r["created_at"]),
                )
                for r in rows
            ]

        return await self._call(self._read, do)

    # ------------------------------------------------------------ model cost, draft outcomes, stats

    async def record_model_call(self, call: ModelCall) -> None:
        """Not in the protocol: one model call's usage and cost (see `triage.metering`)."""
        u = call.usage
        row = {
            "run_id": call.run_id[:64],
            "kind": call.kind[:16],
            "purpose": call.purpose[:32],
            "model": call.model[:128],
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_tokens": u.cache_read_tokens,
            "cache_creation_tokens": u.cache_creation_tokens,
            "cost_usd": u.cost_usd,
            "created_at": call.created_at,
        }

        def do(conn: Connection) -> None:
            conn.execute(insert(model_calls).values(**row))

        await self._call(self._write, do)

    async def model_cost_since(self, since: datetime) -> float:
        """Not in the protocol: USD spent on the model since `since` (the daily budget reads it)."""
        return await self._call(self._read, lambda conn: store_stats.model_cost_since(conn, since))

    async def record_outcome(self, run_id: str, outcome: str, user_id: str = "") -> None:
        """Not in the protocol: a draft outcome (reply_copied, reply_posted, packet_opened, kb_opened)."""

        def do(conn: Connection) -> None:
            conn.execute(
                insert(draft_outcomes).values(
                    run_id=run_id, outcome=outcome[:32], user_id=user_id[:64], created_at=_now()
                )
            )

        await self._call(self._write, do)

    async def usage_stats(self, days: int = 7, now: datetime | None = None) -> UsageStats:
        """Not in the protocol: triages, cost, grades, escalations, votes and draft use per UTC day."""
        return await self._call(self._read, lambda conn: store_stats.usage_stats(conn, days, now))

    # ------------------------------------------------------------ de-duplication, cursors

    async def mark_seen(self, key: str) -> bool:
        def do() -> bool:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(seen_keys).values(key=key[:255], created_at=_now()))
            except IntegrityError:
                return False
            return True

        return await self._call(do)

    async def seen_within(self, key: str, window_s: float) -> bool:
        """True the first time `key` is seen in a window of `window_s` seconds (insert, or a
        compare-and-swap on an expired row), False for a repeat inside the window."""
        key = key[:255]

        def do() -> bool:
            now = _now()
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(seen_keys).values(key=key, created_at=now))
                return True
            except IntegrityError:
                pass
            with self.engine.begin() as conn:
                renewed = conn.execute(
                    update(seen_keys)
                    .where(seen_keys.c.key == key, seen_keys.c.created_at < now - timedelta(seconds=window_s))
                    .values(created_at=now)
                )
                return bool(renewed.rowcount)

        return await self._call(do)

    async def prune_seen(self, older_than_s: float) -> int:
        """Not in the protocol: forget de-duplication keys older than `older_than_s` (returns the count)."""

        def do(conn: Connection) -> int:
            cutoff = _now() - timedelta(seconds=older_than_s)
            return int(conn.execute(delete(seen_keys).where(seen_keys.c.created_at < cutoff)).rowcount)

        return await self._call(self._write, do)

    async def purge_older_than(self, older_than_s: float) -> dict[str, int]:
        """Not in the protocol: retention (RETENTION_DAYS). Deletes finished runs (their reports) not
        updated within `older_than_s`, with their evidence rows, audit rows, drafts (artefacts) and feedback,
        audit rows older than that, and follow-up histories (`followup:*`) not touched since.
        Returns the deleted row counts per table."""

        def do(conn: Connection) -> dict[str, int]:
            cutoff = _now() - timedelta(seconds=older_than_s)
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

    async def get_cursor(self, name: str) -> str | None:
        def do(conn: Connection) -> str | None:
            value = conn.execute(select(cursors.c.value).where(cursors.c.name == name)).scalar_one_or_none()
            return None if value is None else str(value)

        return await self._call(self._read, do)

    async def set_cursor(self, name: str, value: str) -> None:
        await self._call(self._upsert, cursors, cursors.c.name, name, {"value": value})

    def _upsert(self, table: Table, key_col: Column[Any], key: Any, values: dict[str, Any]) -> None:
        """Portable upsert: UPDATE, else INSERT, and UPDATE again if a concurrent INSERT won."""
        values = {**values, "updated_at": _now()}
        for _ in range(3):
            with self.engine.begin() as conn:
                if conn.execute(update(table).where(key_col == key).values(**values)).rowcount:
                    return
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(table).values({key_col.name: key, **values}))
                return
            except IntegrityError:
                continue
        raise RuntimeError(f"could not upsert {table.name} {key!r}")

    # ------------------------------------------------------------ per-ticket lock

    @contextlib.asynccontextmanager
    async def ticket_lock(self, ticket_id: int) -> AsyncIterator[None]:
        """Work on one ticket, one at a time: in this process, and on PostgreSQL across replicas.

        PostgreSQL: a transaction-scoped advisory lock `(LOCK_NAMESPACE + 1, ticket_id mod 2³¹)` on a
        connection held for the duration (a collision of two ticket ids only makes them wait for each
        other). It is taken with `pg_try_advisory_xact_lock` every TICKET_LOCK_POLL_S, so a waiting
        replica never blocks a worker thread; ending the transaction (or losing the connection)
        releases it. SQLite: the in-process lock alone (one process per SQLite file).
        """
        entry = self._ticket_locks.get(ticket_id)
        if entry is None:
            entry = self._ticket_locks[ticket_id] = _LocalLock()
        entry.users += 1
        try:
            async with entry.lock:
                if self.dialect != "postgresql":
                    yield
                    return
                conn = await asyncio.to_thread(self.engine.connect)
                try:
                    key = {"ns": LOCK_NAMESPACE + 1, "key": ticket_id % 2**31}
                    while True:
                        if await asyncio.to_thread(_try_advisory_lock, conn, key):
                            break
                        await asyncio.sleep(TICKET_LOCK_POLL_S)
                    yield
                finally:
                    await asyncio.to_thread(_end, conn)
        finally:
            entry.users -= 1
            if entry.users == 0 and self._ticket_locks.get(ticket_id) is entry:
                del self._ticket_locks[ticket_id]

    # ------------------------------------------------------------ leases

    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> int | None:
        """Take or renew the lease `name` for `ttl_s`: its token while `holder` holds it, else None.

        The holder renews; anybody takes it once it expired (the holder died or stopped renewing).
        The token grows whenever the holder changes, so a stale holder can tell it lost the lease.
        """

        def do() -> int | None:
            for _ in range(2):  # the second round: a concurrent first INSERT (maybe our own) won
                now = _now()
                expires = now + timedelta(seconds=ttl_s)
                with self.engine.begin() as conn:
                    result = conn.execute(
                        update(leases)
                        .where(
                            leases.c.name == name, or_(leases.c.holder == holder, leases.c.expires_at < now)
                        )
                        .values(
                            token=case((leases.c.holder == holder, leases.c.token), else_=leases.c.token + 1),
                            holder=holder,
                            expires_at=expires,
                            updated_at=now,
                        )
                    )
                    if result.rowcount == 1:
                        return int(
                            conn.execute(select(leases.c.token).where(leases.c.name == name)).scalar_one()
                        )
                try:
                    with self.engine.begin() as conn:
                        conn.execute(
                            insert(leases).values(
                                name=name, holder=holder, token=1, expires_at=expires, updated_at=now
                            )
                        )
                    return 1
                except IntegrityError:
                    continue
            return None  # somebody else holds it

        return await self._call(do)

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up now (graceful shutdown), so another replica takes it at its next try."""

        def do(conn: Connection) -> None:
            conn.execute(
                update(leases)
                .where(leases.c.name == name, leases.c.holder == holder)
                .values(expires_at=_now() - timedelta(seconds=1), updated_at=_now())
            )

        await self._call(self._write, do)

    async def lease_holder(self, name: str) -> tuple[str, int] | None:
        """Not in the protocol: the current (holder, token) of a lease that has not expired."""

        def do(conn: Connection) -> tuple[str, int] | None:
            row = conn.execute(
                select(leases.c.holder, leases.c.token).where(
                    leases.c.name == name, leases.c.expires_at >= _now()
                )
            ).first()
            return None if row is None else (str(row[0]), int(row[1]))

        return await self._call(self._read, do)

    # ------------------------------------------------------------ Slack posting pace

    async def reserve_post_slot(self, channel: str, interval_s: float, burst: int) -> float:
        """Not in the protocol: reserve the channel's next chat.postMessage slot, shared by all
        replicas (`integrations.store_pace`); returns the seconds to wait before posting."""
        return await self._call(store_pace.reserve_slot, self.engine, channel, interval_s, burst)

    # ------------------------------------------------------------ ticket state

    async def get_ticket_state(self, ticket_id: int) -> TicketState | None:
        def do(conn: Connection) -> TicketState | None:
            row = (
                conn.execute(select(ticket_state).where(ticket_state.c.ticket_id == ticket_id))
                .mappings()
                .first()
            )
            if row is None:
                return None
            return TicketState(
                ticket_id=row["ticket_id"],
                public_customer_comments=row["public_customer_comments"],
                last_version=row["last_version"] or "",
                extra=json.loads(row["extra_json"] or "{}"),
            )

        return await self._call(self._read, do)

    async def set_ticket_state(self, state: TicketState) -> None:
        await self._call(
            self._upsert,
            ticket_state,
            ticket_state.c.ticket_id,
            state.ticket_id,
            {
                "public_customer_comments": state.public_customer_comments,
                "last_version": state.last_version,
                "extra_json": json.dumps(state.extra, sort_keys=True),
            },
        )


def default_replica_id() -> str:
    """`host:pid`: unique per process, readable in the runs table and the logs."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _LocalLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


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
