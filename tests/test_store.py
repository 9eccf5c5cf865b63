"""SqlStore against real databases: SQLite (a temp file) and the local PostgreSQL (a schema per test)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select, update

from integrations.store import SqlStore, audit_log, cursors, evidence, normalize_database_url, triage_runs
from tests.store_support import age_heartbeat
from triage.models import (
    Confidence,
    Evidence,
    EvidenceStatus,
    Finding,
    ReportMode,
    TicketSummary,
    Timings,
    TriageReport,
    Usage,
)
from triage.store import Artefact, AuditEntry, Feedback, RunStatus, Store, ThreadRef, TicketState

SECRET_TICKET_TEXT = "MY-PRIVATE-TICKET-TEXT-7731"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    s = await SqlStore.connect(db_url)
    try:
        yield s
    finally:
        await s.close()


def make_report(ticket_id: int = 48291, run_id: str = "") -> TriageReport:
    return TriageReport(
        run_id=run_id,
        ticket=TicketSummary(
            id=ticket_id, url=f"https://demo.zendesk.com/agent/tickets/{ticket_id}", subject="Flags"
        ),
        mode=ReportMode.llm,
        summary="Flag evaluated before identify; fixed in posthog-js 1.161.0.",
        root_cause=Finding(
            statement="Race between identify and flags", confidence=Confidence.likely, evidence_ids=["E1"]
        ),
        evidence=[
            Evidence(
                id="E1",
                source="github",
                tool="search_issues",
                status=EvidenceStatus.ok,
                title="Flags false after identify",
                url="https://github.com/PostHog/posthog-js/issues/1",
                summary="closed, fixed by #2",
                latency_ms=120,
            ),
            Evidence(
                id="E2",
                source="posthog_mcp",
                tool="feature-flag-get-definition",
                status=EvidenceStatus.timeout,
                latency_ms=15000,
                first_party=True,
            ),
        ],
        timings=Timings(fetch_ms=10, intake_ms=20, research_ms=3000, synthesis_ms=4000, total_ms=7030),
        usage=Usage(calls=2, input_tokens=1000, output_tokens=300, cache_read_tokens=800, cost_usd=0.0123),
    )


def test_url_normalisation() -> None:
    assert normalize_database_url("") == "sqlite:///triagebot.db"
    assert normalize_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


async def test_is_a_store(store: SqlStore, db_url: str) -> None:
    assert isinstance(store, Store)
    expected = "sqlite" if db_url.startswith("sqlite") else "postgresql+psycopg"
    assert store.engine.url.drivername == expected


async def test_run_round_trip(store: SqlStore) -> None:
    claim = await store.claim_run(48291, "2026-11-18T10:02:00+00:00", "slash")
    assert claim.owned and not claim.resumed
    run = claim.run
    assert run.status is RunStatus.running and run.attempts == 1 and run.trigger == "slash"
    assert run.created_at is not None and run.created_at.tzinfo is not None

    assert await store.heartbeat(run.run_id, run.attempts)
    assert await store.set_run_thread(run.run_id, "C123", "1700000000.000100", token=run.attempts)
    report = make_report(run_id=run.run_id)
    assert await store.finish_run(run.run_id, report, token=run.attempts)

    got = await store.get_run(run.run_id)
    assert got is not None and got.status is RunStatus.done
    assert got.report == report
    assert got.channel == "C123" and got.thread_ts == "1700000000.000100"
    assert TriageReport.model_validate_json(got.report.model_dump_json()) == report

    latest = await store.latest_run(48291)
    assert latest is not None and latest.run_id == run.run_id
    assert await store.latest_run(1) is None
    assert await store.get_run("nope") is None

    rows = await store.evidence_for_run(run.run_id)
    assert [(r["evidence_id"], r["status"]) for r in rows] == [("E1", "ok"), ("E2", "timeout")]

    # a done run is final: a second finish (or a late fail) is refused and changes nothing
    assert not await store.finish_run(run.run_id, report, token=run.attempts)
    assert not await store.fail_run(run.run_id, "late", token=run.attempts)
    assert len(await store.evidence_for_run(run.run_id)) == 2

    # a done run is never re-claimed
    again = await store.claim_run(48291, "2026-11-18T10:02:00+00:00", "poll", stale_after_s=0)
    assert not again.owned and again.run.run_id == run.run_id and again.run.report == report


async def test_twenty_concurrent_claims_one_owner(store: SqlStore) -> None:
    claims = await asyncio.gather(*[store.claim_run(7, "v1", "poll") for _ in range(20)])
    owners = [c for c in claims if c.owned]
    assert len(owners) == 1
    assert {c.run.run_id for c in claims} == {owners[0].run.run_id}


async def test_concurrent_claims_from_threads_and_replicas(store: SqlStore, db_url: str) -> None:
    replica = await SqlStore.connect(db_url)  # a second process/replica on the same database
    results: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def worker(i: int) -> None:
        target = store if i % 2 else replica
        barrier.wait()
        claim = asyncio.run(target.claim_run(8, "v1", "webhook"))
        with lock:
            results.append(claim.owned)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    await replica.close()
    assert len(results) == 20
    assert results.count(True) == 1


async def test_stale_run_is_taken_over_once(store: SqlStore) -> None:
    first = await store.claim_run(9, "v1", "poll", stale_after_s=60)
    assert first.owned
    # a live owner (fresh heartbeat) keeps it
    assert not (await store.claim_run(9, "v1", "slash", stale_after_s=60)).owned
    assert await store.stale_runs(60) == []

    await age_heartbeat(store, first.run.run_id, 3600)  # the owner crashed an hour ago
    stale = await store.stale_runs(60)
    assert [r.run_id for r in stale] == [first.run.run_id]

    claims = await asyncio.gather(*[store.claim_run(9, "v1", "slash", stale_after_s=60) for _ in range(20)])
    owners = [c for c in claims if c.owned]
    assert len(owners) == 1
    assert owners[0].resumed and owners[0].run.attempts == 2 and owners[0].run.trigger == "slash"
    assert owners[0].run.run_id == first.run.run_id
    assert await store.stale_runs(60) == []


async def test_failed_run_can_be_reclaimed(store: SqlStore) -> None:
    first = await store.claim_run(10, "v1", "poll")
    assert await store.fail_run(first.run.run_id, "SourceUnavailable: zendesk down", token=first.token)
    failed = await store.get_run(first.run.run_id)
    assert failed is not None and failed.status is RunStatus.failed and "zendesk down" in failed.error

    retry = await store.claim_run(10, "v1", "rerun")
    assert retry.owned and retry.resumed and retry.run.attempts == 2
    assert retry.run.status is RunStatus.running and retry.run.error == ""
    assert not (await store.claim_run(10, "v1", "rerun")).owned


async def test_versions_are_distinct_runs(store: SqlStore) -> None:
    a = await store.claim_run(11, "v1", "poll")
    b = await store.claim_run(11, "v2", "poll")
    assert a.owned and b.owned and a.run.run_id != b.run.run_id
    latest = await store.latest_run(11)
    assert latest is not None and latest.run_id == b.run.run_id


async def test_one_thread_per_ticket(store: SqlStore) -> None:
    assert await store.get_thread(5) is None
    results = await asyncio.gather(
        *[store.set_thread(ThreadRef(ticket_id=5, channel="C1", thread_ts=f"1.{i}")) for i in range(10)]
    )
    assert results.count(True) == 1
    ref = await store.get_thread(5)
    assert ref is not None and ref.channel == "C1"
    assert await store.ticket_for_thread("C1", ref.thread_ts) == 5
    assert await store.ticket_for_thread("C1", "nope") is None
    assert not await store.set_thread(ThreadRef(ticket_id=5, channel="C2", thread_ts="9.9"))

    run = (await store.claim_run(6, "v1", "slash")).run
    assert await store.set_run_thread(run.run_id, "C9", "2.0", token=run.attempts)
    assert await store.ticket_for_thread("C9", "2.0") == 6


async def test_artefact_idempotency(store: SqlStore) -> None:
    run = (await store.claim_run(12, "v1", "slash")).run
    claims = await asyncio.gather(*[store.claim_artefact(run.run_id, "packet") for _ in range(10)])
    assert [owned for owned, _ in claims].count(True) == 1
    assert all(a.status == "pending" for _, a in claims)

    await store.complete_artefact(run.run_id, "packet", ref="https://slack/p1", content="packet text")
    owned, existing = await store.claim_artefact(run.run_id, "packet")
    assert not owned
    assert existing == Artefact(
        run_id=run.run_id, kind="packet", status="done", ref="https://slack/p1", content="packet text"
    )
    await store.release_artefact(run.run_id, "packet")  # a done artefact is not released
    assert not (await store.claim_artefact(run.run_id, "packet"))[0]

    owned, _ = await store.claim_artefact(run.run_id, "kb")
    assert owned
    await store.release_artefact(run.run_id, "kb")  # the draft failed: allow a retry
    owned, _ = await store.claim_artefact(run.run_id, "kb")
    assert owned


async def test_feedback_one_vote_per_user(store: SqlStore) -> None:
    await store.add_feedback(Feedback(run_id="r1", user_id="U1", vote="up"))
    await store.add_feedback(Feedback(run_id="r1", user_id="U2", vote="up"))
    await store.add_feedback(Feedback(run_id="r1", user_id="U1", vote="down", comment="wrong area"))
    votes = {f.user_id: (f.vote, f.comment) for f in await store.feedback_for_run("r1")}
    assert votes == {"U1": ("down", "wrong area"), "U2": ("up", "")}


async def test_seen_keys(store: SqlStore) -> None:
    results = await asyncio.gather(*[store.mark_seen("slack:event:Ev123") for _ in range(10)])
    assert results.count(True) == 1
    assert await store.mark_seen("slack:event:Ev124")
    assert await store.prune_seen(3600) == 0
    assert await store.prune_seen(-1) == 2
    assert await store.mark_seen("slack:event:Ev123")


async def test_cursors(store: SqlStore) -> None:
    assert await store.get_cursor("zendesk:incremental") is None
    await store.set_cursor("zendesk:incremental", "MTU3NjYxMzUzOS4wfHw0NTF8")
    await store.set_cursor("zendesk:incremental", "next-cursor")
    assert await store.get_cursor("zendesk:incremental") == "next-cursor"
    await asyncio.gather(*[store.set_cursor("other", str(i)) for i in range(10)])
    assert await store.get_cursor("other") in {str(i) for i in range(10)}


async def test_ticket_state(store: SqlStore) -> None:
    assert await store.get_ticket_state(1) is None
    state = TicketState(ticket_id=1, public_customer_comments=2, last_version="v2", extra={"lang": "es"})
    await store.set_ticket_state(state)
    assert await store.get_ticket_state(1) == state
    state2 = state.model_copy(update={"public_customer_comments": 3, "extra": {}})
    await store.set_ticket_state(state2)
    assert await store.get_ticket_state(1) == state2


async def test_audit_holds_no_ticket_text(store: SqlStore) -> None:
    run = (await store.claim_run(13, "v1", "slash")).run
    entries = [
        AuditEntry(run_id=run.run_id, source="posthog_mcp", tool="execute-sql", status="ok", latency_ms=80),
        AuditEntry(run_id=run.run_id, source="github", tool="search_issues", status="error", latency_ms=5),
    ]
    await store.record_audit(entries)
    await store.record_audit([])
    got = await store.audit_for_run(run.run_id)
    assert [(e.source, e.tool, e.status, e.latency_ms) for e in got] == [
        ("posthog_mcp", "execute-sql", "ok", 80),
        ("github", "search_issues", "error", 5),
    ]
    assert all(e.created_at is not None for e in got)

    # the schema has nowhere to put ticket text …
    def columns() -> dict[str, set[str]]:
        insp = inspect(store.engine)
        return {t: {c["name"] for c in insp.get_columns(t)} for t in ("audit_log", "evidence")}

    cols = await asyncio.to_thread(columns)
    assert cols["audit_log"] == {"id", "run_id", "source", "tool", "status", "latency_ms", "created_at"}
    assert not cols["evidence"] & {"body", "description", "subject", "comment", "excerpt", "query"}

    # … and a finished run's ticket text does not leak into the audit or evidence rows
    report = make_report(ticket_id=13, run_id=run.run_id)
    report.ticket.subject = SECRET_TICKET_TEXT
    report.evidence[0].excerpt = SECRET_TICKET_TEXT
    report.evidence[0].query = SECRET_TICKET_TEXT
    await store.finish_run(run.run_id, report, token=run.attempts)

    def dump() -> str:
        with store.engine.connect() as conn:
            return repr(conn.execute(select(audit_log)).all()) + repr(conn.execute(select(evidence)).all())

    assert SECRET_TICKET_TEXT not in await asyncio.to_thread(dump)


async def test_reports_reload_after_restart(db_url: str) -> None:
    first = await SqlStore.connect(db_url)
    run = (await first.claim_run(14, "v1", "cli")).run
    report = make_report(ticket_id=14, run_id=run.run_id)
    await first.finish_run(run.run_id, report, token=run.attempts)
    await first.set_thread(ThreadRef(ticket_id=14, channel="C1", thread_ts="3.0"))
    await first.set_cursor("c", "x")
    await first.close()

    second = await SqlStore.connect(db_url)  # create_all on an existing schema is a no-op
    try:
        got = await second.get_run(run.run_id)
        assert got is not None and got.report == report and got.status is RunStatus.done
        assert await second.ticket_for_thread("C1", "3.0") == 14
        assert await second.get_cursor("c") == "x"
        assert not (await second.claim_run(14, "v1", "poll")).owned
    finally:
        await second.close()


async def test_in_memory_sqlite_works_across_threads() -> None:
    store = await SqlStore.connect("sqlite://")
    try:
        claims = await asyncio.gather(*[store.claim_run(1, "v", "cli") for _ in range(10)])
        assert [c.owned for c in claims].count(True) == 1
    finally:
        await store.close()


async def test_a_superseded_owner_is_fenced_out_of_every_write(db_url: str) -> None:
    a = await SqlStore.connect(db_url, replica="replica-a")
    b = await SqlStore.connect(db_url, replica="replica-b")
    try:
        old = await a.claim_run(77, "v1", "poll", stale_after_s=60)
        assert old.owned and old.token == 1 and old.run.owner == "replica-a"
        await age_heartbeat(a, old.run.run_id, 120)  # replica a stalls past the stale period
        new = await b.claim_run(77, "v1", "poll", stale_after_s=60)
        assert new.owned and new.resumed and new.token == 2 and new.run.run_id == old.run.run_id
        assert new.run.owner == "replica-b"

        run_id = old.run.run_id
        # the stalled owner wakes up: every write under its token is refused and changes nothing
        assert not await a.holds_run(run_id, old.token)
        assert not await a.heartbeat(run_id, old.token)
        assert not await a.set_run_thread(run_id, "C-old", "1.0", token=old.token)
        assert not await a.finish_run(run_id, make_report(77, run_id), token=old.token)
        assert not await a.fail_run(run_id, "late failure", token=old.token)
        current = await b.get_run(run_id)
        assert current is not None and current.status is RunStatus.running and current.thread_ts is None
        assert await b.evidence_for_run(run_id) == []

        # the new owner's writes go through
        assert await b.holds_run(run_id, new.token)
        assert await b.set_run_thread(run_id, "C1", "2.0", token=new.token)
        assert await b.finish_run(run_id, make_report(77, run_id), token=new.token)
        done = await a.get_run(run_id)
        assert done is not None and done.status is RunStatus.done and done.thread_ts == "2.0"
    finally:
        await a.close()
        await b.close()


async def test_ticket_lock_serialises_one_ticket_across_stores(db_url: str) -> None:
    """Two stores = two replicas on PostgreSQL (advisory lock); on SQLite one store is one process."""
    a = await SqlStore.connect(db_url)
    b = await SqlStore.connect(db_url) if a.dialect == "postgresql" else a
    order: list[str] = []
    entered = {name: asyncio.Event() for name in "abc"}
    release = {name: asyncio.Event() for name in "abc"}

    async def work(store: SqlStore, name: str, ticket_id: int) -> None:
        async with store.ticket_lock(ticket_id):
            order.append(f"{name}:in")
            entered[name].set()
            await release[name].wait()
            order.append(f"{name}:out")

    try:
        first = asyncio.create_task(work(a, "a", 5))
        await entered["a"].wait()
        second = asyncio.create_task(work(b, "b", 5))
        other = asyncio.create_task(work(b, "c", 6))  # another ticket is not blocked by a
        await entered["c"].wait()
        release["c"].set()
        await other
        assert not entered["b"].is_set()  # the same ticket: b waits for a
        release["a"].set()
        release["b"].set()
        await asyncio.gather(first, second)
        assert order.index("a:out") < order.index("b:in")
    finally:
        await a.close()
        if b is not a:
            await b.close()


async def test_lease_has_one_holder_and_moves_when_it_expires(store: SqlStore) -> None:
    # the same holder asking twice at once (the lease job and the poll job at start-up) holds it
    assert await asyncio.gather(*[store.acquire_lease("first", "r1", ttl_s=60) for _ in range(4)]) == [1] * 4
    assert await store.acquire_lease("poller", "r1", ttl_s=60) == 1
    assert await store.acquire_lease("poller", "r2", ttl_s=60) is None  # r1 holds it
    assert await store.acquire_lease("poller", "r1", ttl_s=60) == 1  # renewal keeps the token
    assert await store.lease_holder("poller") == ("r1", 1)
    # r1 dies: its lease expires and the next try by anybody takes it, with a new token
    assert await store.acquire_lease("poller", "r1", ttl_s=-1) == 1
    assert await store.lease_holder("poller") is None
    taken = await asyncio.gather(*[store.acquire_lease("poller", f"r{i}", ttl_s=60) for i in range(2, 8)])
    assert sorted(t for t in taken if t is not None) == [2]
    # a graceful stop hands it over at once
    holder = (await store.lease_holder("poller") or ("", 0))[0]
    await store.release_lease("poller", holder)
    assert await store.acquire_lease("poller", "r9", ttl_s=60) == 3


async def test_retention_purges_old_reports_evidence_drafts_and_followups(store: SqlStore) -> None:
    old_claim, new_claim = await store.claim_run(21, "v1", "slash"), await store.claim_run(22, "v1", "slash")
    old, new = old_claim.run, new_claim.run
    running = (await store.claim_run(23, "v1", "slash")).run
    for claim in (old_claim, new_claim):
        run = claim.run
        assert await store.finish_run(run.run_id, make_report(run_id=run.run_id), token=claim.token)
        await store.record_audit([AuditEntry(run_id=run.run_id, source="github", tool="t", status="ok")])
        await store.claim_artefact(run.run_id, "packet")
        await store.complete_artefact(run.run_id, "packet", ref="x", content="draft text")
        await store.add_feedback(Feedback(run_id=run.run_id, user_id="U1", vote="up", comment="ok"))
    await store.set_cursor("followup:C1:1.1", '[["q", "a"]]')
    await store.set_cursor("zendesk:incremental", "keep-me")
    long_ago = datetime.now(UTC) - timedelta(days=100)
    with store.engine.begin() as conn:  # age the first run, the running one and every cursor
        conn.execute(
            update(triage_runs)
            .where(triage_runs.c.run_id.in_([old.run_id, running.run_id]))
            .values(updated_at=long_ago, created_at=long_ago)
        )
        conn.execute(update(audit_log).where(audit_log.c.run_id == old.run_id).values(created_at=long_ago))
        conn.execute(update(cursors).values(updated_at=long_ago))

    counts = await store.purge_older_than(90 * 86400)

    assert counts["triage_runs"] == 1 and counts["followups"] == 1
    assert counts["evidence"] == 2 and counts["artefacts"] == 1 and counts["feedback"] == 1
    assert await store.get_run(old.run_id) is None
    assert await store.evidence_for_run(old.run_id) == [] and await store.audit_for_run(old.run_id) == []
    assert await store.feedback_for_run(old.run_id) == []
    assert await store.get_run(running.run_id) is not None  # a run in progress is never purged
    kept = await store.get_run(new.run_id)
    assert kept is not None and kept.report is not None and await store.evidence_for_run(new.run_id)
    assert await store.get_cursor("followup:C1:1.1") is None
    assert await store.get_cursor("zendesk:incremental") == "keep-me"  # not a follow-up history
