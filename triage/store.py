"""The Store protocol: everything that must survive a restart lives behind it.

State lives in the store, never in process memory, so a button click or a thread reply can land on
any replica after a restart. The SQLAlchemy implementation is `integrations.store.SqlStore`.

Fencing: a run's lease carries a token, its attempt number (`Claim.token`), incremented whenever
another claimer takes the run over. Every write of a run passes the token and is refused (returns
False, changes nothing) when it is stale, so a stalled owner that wakes up after a takeover cannot
overwrite the new owner's work; it stops quietly.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from triage.models import TriageReport


class RunStatus(StrEnum):
    running = "running"
    done = "done"
    failed = "failed"


class RunRecord(BaseModel):
    run_id: str
    ticket_id: int
    ticket_version: str
    trigger: str  # "slash" | "poll" | "webhook" | "cli" | "rerun" | "retriage"
    status: RunStatus
    attempts: int = 1  # the fencing token
    owner: str = ""  # the replica that holds (or last held) the run
    report: TriageReport | None = None
    error: str = ""
    channel: str | None = None  # the Slack thread this run reports into
    thread_ts: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Claim(BaseModel):
    """Result of claim_run. `owned` = the caller must do the work; otherwise `run` is the existing run."""

    owned: bool
    run: RunRecord
    resumed: bool = False  # owned because a previous owner crashed (stale heartbeat)

    @property
    def token(self) -> int:
        """The fencing token every write of this run must carry."""
        return self.run.attempts


class ThreadRef(BaseModel):
    ticket_id: int
    channel: str
    thread_ts: str  # ts of the parent message


class Artefact(BaseModel):
    run_id: str
    kind: str  # "packet" | "kb" | "reply" | "reply_note" …
    status: str = "pending"  # pending | done
    ref: str = ""  # a permalink / message ts / file id to link to
    content: str = ""


class Feedback(BaseModel):
    run_id: str
    user_id: str
    vote: str  # "up" | "down"
    comment: str = ""
    created_at: datetime | None = None


class AuditEntry(BaseModel):
    run_id: str = ""
    source: str
    tool: str = ""
    status: str
    latency_ms: int = 0
    created_at: datetime | None = None


class TicketState(BaseModel):
    """What the intake last saw of a ticket (for re-triage on customer replies)."""

    ticket_id: int
    public_customer_comments: int = 0
    last_version: str = ""
    extra: dict[str, str] = Field(default_factory=dict)


class Outbox(BaseModel):
    """A finished run's Slack writes, stored with its report before the first of them is made.

    While a run has an outbox it is "stored, not yet posted": still `running` under its fencing token,
    so if its replica dies the run goes stale and whoever takes it over (a higher token) posts what is
    left from here instead of triaging again. `sent` counts the thread messages already posted.
    """

    channel: str
    thread_ts: str  # the parent card; the messages go into its thread
    ticket_ref: str = ""  # "#123", for the error text when a message cannot be posted
    messages: list[dict[str, Any]] = Field(default_factory=list)  # thread replies, in order
    card: dict[str, Any] | None = None  # the final parent card (chat.update of thread_ts)
    ticket_state: TicketState | None = None  # recorded once everything is posted
    sent: int = 0


@runtime_checkable
class Store(Protocol):
    # --- runs (claim once on (ticket_id, ticket_version))
    async def claim_run(
        self, ticket_id: int, ticket_version: str, trigger: str, *, stale_after_s: float = 600.0
    ) -> Claim: ...
    # fenced writes: False (and nothing written) when `token` is no longer the run's attempt number
    async def heartbeat(self, run_id: str, token: int) -> bool: ...
    async def finish_run(self, run_id: str, report: TriageReport, *, token: int) -> bool: ...
    async def fail_run(self, run_id: str, error: str, *, token: int) -> bool: ...
    async def set_run_thread(self, run_id: str, channel: str, thread_ts: str, *, token: int) -> bool: ...
    async def holds_run(self, run_id: str, token: int) -> bool: ...  # still ours and running?
    # the outbox: store the report and what to post (the run stays running), count what was posted,
    # then complete the run (done; the outbox is dropped)
    async def stage_report(
        self, run_id: str, report: TriageReport, outbox: Outbox, *, token: int
    ) -> bool: ...
    async def outbox_sent(self, run_id: str, sent: int, *, token: int) -> bool: ...
    async def get_outbox(self, run_id: str) -> Outbox | None: ...
    async def complete_run(self, run_id: str, *, token: int) -> bool: ...
    async def get_run(self, run_id: str) -> RunRecord | None: ...
    async def latest_run(self, ticket_id: int) -> RunRecord | None: ...
    async def stale_runs(self, stale_after_s: float) -> list[RunRecord]: ...

    # --- work on one ticket, one at a time across replicas
    def ticket_lock(self, ticket_id: int) -> AbstractAsyncContextManager[None]: ...

    # --- named leases (one Zendesk poller): the token while `holder` holds it, else None
    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> int | None: ...
    async def release_lease(self, name: str, holder: str) -> None: ...

    # --- one Slack thread per ticket
    async def get_thread(self, ticket_id: int) -> ThreadRef | None: ...
    async def set_thread(self, ref: ThreadRef) -> bool: ...  # False if the ticket already had one
    async def ticket_for_thread(self, channel: str, thread_ts: str) -> int | None: ...

    # --- artefacts (escalation packet, KB draft …): claim_artefact is the idempotency guard
    async def claim_artefact(self, run_id: str, kind: str) -> tuple[bool, Artefact]: ...
    async def complete_artefact(self, run_id: str, kind: str, ref: str, content: str = "") -> None: ...
    async def release_artefact(self, run_id: str, kind: str) -> None: ...  # after a failure, allow a retry

    # --- feedback, audit, de-duplication, cursors, ticket state
    async def add_feedback(self, feedback: Feedback) -> None: ...
    async def record_audit(self, entries: list[AuditEntry]) -> None: ...
    async def audit_for_run(self, run_id: str) -> list[AuditEntry]: ...
    async def mark_seen(self, key: str) -> bool: ...  # True the first time a key is seen
    # True unless the key was seen within the last `window_s` seconds (then it is refreshed only once the
    # window has passed); atomic across replicas
    async def seen_within(self, key: str, window_s: float) -> bool: ...
    async def get_cursor(self, name: str) -> str | None: ...
    async def set_cursor(self, name: str, value: str) -> None: ...
    async def get_ticket_state(self, ticket_id: int) -> TicketState | None: ...
    async def set_ticket_state(self, state: TicketState) -> None: ...
    async def close(self) -> None: ...


class DayStats(BaseModel):
    day: str  # YYYY-MM-DD (UTC)
    triages: int = 0
    evidence_only: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0


class UsageStats(BaseModel):
    """`triagebot stats` and the Slack Home tab: what triage did and cost over the last `days` UTC days."""

    days: int
    since: datetime
    per_day: list[DayStats] = Field(default_factory=list)
    triages: int = 0
    evidence_only: int = 0
    grades: dict[str, int] = Field(default_factory=dict)  # confirmed / likely / suspected / none
    escalations: int = 0
    cost_usd: float = 0.0
    cost_by_kind: dict[str, float] = Field(default_factory=dict)  # triage / packet / kb / reply / followup
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    votes_up: int = 0
    votes_down: int = 0
    outcomes: dict[str, int] = Field(
        default_factory=dict
    )  # reply_copied / reply_posted / packet_opened / kb_opened
    runs_with_outcome: int = 0  # reports whose drafts someone used

    @property
    def escalation_rate(self) -> float:
        return self.escalations / self.triages if self.triages else 0.0

    @property
    def acceptance_rate(self) -> float:
        return self.runs_with_outcome / self.triages if self.triages else 0.0

    @property
    def cache_hit_rate(self) -> float:
        """Share of prompt tokens read from the prompt cache."""
        total = self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens
        return self.cache_read_tokens / total if total else 0.0

    @property
    def cost_per_triage(self) -> float:
        return self.cost_by_kind.get("triage", 0.0) / self.triages if self.triages else 0.0
