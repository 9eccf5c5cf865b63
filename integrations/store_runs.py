"""Runs of `SqlStore`: claim once per (ticket id, ticket version), fenced writes, the report outbox.

A claim is "INSERT and catch IntegrityError" (the unique key on (ticket_id, ticket_version)); taking
over a stale or failed run is a compare-and-swap UPDATE on `attempts`, which is also the run's fencing
token: every write of a run (`_fenced`) matches run id, token and status running, so a stale token
writes nothing. A finished report is either stored and the run ended at once (`finish_run`), or stored
with its outbox while the run stays running (`stage_report` → `outbox_sent` … → `complete_run`,
see `bot.outbox`).

Privacy: the report JSON is made storable first (no person properties), and ticket text never goes
into `evidence`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from integrations.store_base import StoreBase, aware, utcnow
from integrations.store_schema import evidence, triage_runs
from triage.models import TriageReport
from triage.redaction import storable
from triage.store import Claim, Outbox, RunRecord, RunStatus

log = logging.getLogger(__name__)


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
        created_at=aware(row["created_at"]),
        updated_at=aware(row["updated_at"]),
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


class RunsStore(StoreBase):
    """Runs: claim once per (ticket, version), fenced writes, the report outbox, reads."""

    async def claim_run(
        self, ticket_id: int, ticket_version: str, trigger: str, *, stale_after_s: float = 600.0
    ) -> Claim:
        return await self._call(self._claim_run, ticket_id, ticket_version, trigger, stale_after_s)

    def _claim_run(self, ticket_id: int, ticket_version: str, trigger: str, stale_after_s: float) -> Claim:
        for _ in range(5):
            now = utcnow()
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
            cutoff = utcnow() - timedelta(seconds=stale_after_s)
            stale = status == RunStatus.running.value and (aware(heartbeat_at) or now) < cutoff
            if not (stale or status == RunStatus.failed.value):
                return Claim(owned=False, run=self._require_run(run_id))

            # Take over a crashed (stale) or failed run: compare-and-swap on `attempts`, so among
            # concurrent claimers exactly one UPDATE matches.
            taken_at = utcnow()
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
            now = utcnow()
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
            now = utcnow()
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
                .values(outbox_sent=sent, updated_at=utcnow())
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
            now = utcnow()
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
                .values(status=RunStatus.failed.value, error=error[:4000], updated_at=utcnow())
            )
            return result.rowcount == 1

        return await self._call(self._write, do)

    async def set_run_thread(self, run_id: str, channel: str, thread_ts: str, *, token: int) -> bool:
        def do(conn: Connection) -> bool:
            result = conn.execute(
                update(triage_runs)
                .where(self._fenced(run_id, token))
                .values(channel=channel, thread_ts=thread_ts, updated_at=utcnow())
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
            cutoff = utcnow() - timedelta(seconds=stale_after_s)
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
