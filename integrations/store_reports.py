"""What a run left behind in `SqlStore`: the ticket's Slack thread, artefacts, feedback, audit, cost.

- `threads`: the one Slack thread per ticket (the first `set_thread` wins);
- `artefacts`: escalation packet / KB draft / reply per run, claimed once (the idempotency guard of
  the buttons), completed or released after a failure;
- `feedback` (one vote per user per run), `audit_log` (every research call, no ticket text);
- `model_calls`, `draft_outcomes` and the stats over them (`integrations.store_stats`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from integrations import store_stats
from integrations.store_base import StoreBase, aware, utcnow
from integrations.store_schema import (
    artefacts,
    audit_log,
    draft_outcomes,
    feedback_table,
    model_calls,
    threads,
    triage_runs,
)
from triage.metering import ModelCall
from triage.store import Artefact, AuditEntry, Feedback, ThreadRef, UsageStats

log = logging.getLogger(__name__)


def _artefact(row: RowMapping) -> Artefact:
    return Artefact(
        run_id=row["run_id"],
        kind=row["kind"],
        status=row["status"],
        ref=row["ref"] or "",
        content=row["content"] or "",
    )


class ReportsStore(StoreBase):
    """Threads, artefacts, feedback, audit, model cost and draft outcomes."""

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
                            created_at=utcnow(),
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
                now = utcnow()
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
            now = utcnow()
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
            created = fb.created_at or utcnow()
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
                    created_at=aware(r["created_at"]),
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
                "created_at": e.created_at or utcnow(),
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
                    created_at=aware(r["created_at"]),
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
                    run_id=run_id, outcome=outcome[:32], user_id=user_id[:64], created_at=utcnow()
                )
            )

        await self._call(self._write, do)

    async def usage_stats(self, days: int = 7, now: datetime | None = None) -> UsageStats:
        """Not in the protocol: triages, cost, grades, escalations, votes and draft use per UTC day."""
        return await self._call(self._read, lambda conn: store_stats.usage_stats(conn, days, now))
