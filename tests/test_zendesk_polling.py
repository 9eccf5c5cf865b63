"""ZendeskPoller: real zenpy (ZendeskTicketSource) against the fake Zendesk, real SqlStore on SQLite.

A "restart" is a new ZendeskPoller + new SqlStore object + new TriageQueue on the same database file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.intake_filters import TicketFilter
from bot.intake_queue import TriageQueue
from bot.poller import ZendeskPoller, version_of
from integrations.store import SqlStore
from integrations.zendesk import FORCE_NETLOC, FORCE_SCHEME, ZendeskTicketSource
from tests.fakes.zendesk import FakeZendesk
from tests.waits import WAIT_S
from triage.models import TicketSummary, TriageReport
from triage.store import Claim

EMAIL = "admin@example.com"
TOKEN = "zd-admin-token"
EXPORT = "/api/v2/incremental/tickets/cursor.json"
CURSOR = "zendesk:incremental"
OPEN = TicketFilter.build(statuses=["new", "open"], tags_exclude=["spam"])


@pytest.fixture(autouse=True)
def _no_zenpy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FORCE_NETLOC, raising=False)
    monkeypatch.delenv(FORCE_SCHEME, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeZendesk]:
    server = FakeZendesk()
    server.accept_token(EMAIL, TOKEN)
    with server:
        yield server


@pytest.fixture
async def source(fake: FakeZendesk) -> AsyncIterator[ZendeskTicketSource]:
    src = ZendeskTicketSource(
        fake.url, email=EMAIL, api_token=TOKEN, workers=3, backoff_s=0.01, max_retries=1
    )
    yield src
    await src.aclose()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'poll.db'}"


def ago(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Triage:
    """The downstream `run`: fetches the ticket like the real triage and records (id, claimed version)."""

    def __init__(self, source: ZendeskTicketSource) -> None:
        self.source = source
        self.runs: list[tuple[int, str]] = []
        self.fetched_versions: dict[int, str] = {}
        self.ran = asyncio.Event()
        self.store: SqlStore | None = None

    async def __call__(self, claim: Claim, trigger: str) -> None:
        ticket = await self.source.get_ticket(claim.run.ticket_id)
        self.runs.append((claim.run.ticket_id, claim.run.ticket_version))
        self.fetched_versions[ticket.id] = ticket.version_key
        store = self.store
        assert store is not None
        await store.finish_run(
            claim.run.run_id,
            TriageReport(run_id=claim.run.run_id, ticket=TicketSummary.of(ticket)),
            token=claim.token,
        )
        self.ran.set()


class Process:
    """One bot process: store + queue + poller."""

    def __init__(
        self, store: SqlStore, triage: Triage, source: ZendeskTicketSource, **poller_kw: object
    ) -> None:
        triage.store = store
        self.store = store
        self.queue = TriageQueue(store, triage, concurrency=4)
        kw: dict[str, object] = {"lookback_minutes": 120, "page_interval_s": 0.0, **poller_kw}
        self.poller = ZendeskPoller(source, store, kw.pop("filter", OPEN), self.queue.submit, **kw)  # type: ignore[arg-type]

    async def stop(self) -> None:
        assert await self.queue.drain(WAIT_S)
        await self.queue.aclose()
        await self.store.close()


async def start(db_url: str, triage: Triage, source: ZendeskTicketSource, **kw: object) -> Process:
    return Process(await SqlStore.connect(db_url), triage, source, **kw)


async def test_new_tickets_picked_up_and_filters_respected(
    fake: FakeZendesk, source: ZendeskTicketSource, db_url: str
) -> None:
    fake.add_ticket(1, subject="flags", status="new", updated_at=ago(50))
    fake.add_ticket(2, subject="replay", status="open", updated_at=ago(49), tags=["replay"])
    fake.add_ticket(3, subject="done", status="solved", updated_at=ago(48))
    fake.add_ticket(4, subject="buy now", status="new", updated_at=ago(47), tags=["spam"])
    fake.add_ticket(5, subject="gone", status="deleted", updated_at=ago(46))
    fake.add_ticket(6, subject="too old", status="new", updated_at=ago(200))  # before the look-back
    triage = Triage(source)
    proc = await start(db_url, triage, source)

    stats = await proc.poller.poll_once()
    await proc.queue.drain(WAIT_S)

    assert (stats.pages, stats.seen, stats.matched, stats.dispatched, stats.skipped) == (1, 5, 2, 2, 2)
    assert stats.poisoned == 1  # the deleted ticket, with a stored skip record
    assert stats.first_start and stats.caught_up and stats.cursor
    assert sorted(t for t, _ in triage.runs) == [1, 2]
    # the claim key computed from the export row == the fetched ticket's version_key
    for ticket_id, version in triage.runs:
        assert version == triage.fetched_versions[ticket_id]
    first = fake.calls(EXPORT)[0]
    assert abs(int(first.query["start_time"]) - (time.time() - 120 * 60)) < 120
    # nothing changed: the next poll reads one page from the cursor and dispatches nothing
    again = await proc.poller.poll_once()
    assert (again.pages, again.dispatched, again.first_start) == (1, 0, False)
    assert fake.calls(EXPORT)[-1].query.get("cursor") == stats.cursor
    await proc.stop()


async def test_version_of_matches_ticket_version_key(fake: FakeZendesk, source: ZendeskTicketSource) -> None:
    fake.add_ticket(9, status="new", updated_at="2026-01-18T10:02:00Z")
    page = await source.incremental_page(start_time=0)
    row = next(t for t in page.tickets if t.id == 9)
    ticket = await source.get_ticket(9)
    assert version_of(row.updated_at) == ticket.version_key == "2026-01-18T10:02:00+00:00"
    assert version_of(None) == "v0"


async def test_cursor_after_each_page_and_resume_across_restart(
    fake: FakeZendesk, source: ZendeskTicketSource, db_url: str
) -> None:
    fake.incremental_page_size = 2
    for i in range(5):
        fake.add_ticket(100 + i, status="new", updated_at=ago(60 - i))
    triage = Triage(source)
    proc = await start(db_url, triage, source, max_pages_per_poll=2)
    cursor_seen_at_dispatch: dict[int, str | None] = {}
    submit = proc.queue.submit

    async def dispatch(ticket_id: int, version: str, trigger: str) -> object:
        cursor_seen_at_dispatch[ticket_id] = await proc.store.get_cursor(CURSOR)
        return await submit(ticket_id, version, trigger)

    proc.poller.dispatch = dispatch
    stats = await proc.poller.poll_once()
    assert (stats.pages, stats.dispatched, stats.caught_up) == (2, 4, False)
    # page 2 was dispatched only after page 1's cursor was persisted
    assert cursor_seen_at_dispatch[100] is None and cursor_seen_at_dispatch[101] is None
    page1_cursor = cursor_seen_at_dispatch[102]
    assert page1_cursor is not None and cursor_seen_at_dispatch[103] == page1_cursor
    assert await proc.store.get_cursor(CURSOR) == stats.cursor != page1_cursor
    await proc.stop()  # the bot goes down

    # while it is down: two new tickets, one customer reply on an already-triaged ticket
    fake.add_ticket(200, status="new", updated_at=ago(5))
    fake.add_ticket(201, status="open", updated_at=ago(4))
    fake.add_comment(101, "still broken", created_at=ago(3))

    proc2 = await start(db_url, triage, source, max_pages_per_poll=10)  # restart: new objects, same DB
    stats2 = await proc2.poller.poll_once()
    assert not stats2.first_start and stats2.caught_up
    assert fake.calls(EXPORT)[2].query.get("cursor") == stats.cursor  # resumed, not restarted
    await proc2.stop()

    ids = [t for t, _ in triage.runs]
    assert sorted(ids) == [100, 101, 101, 102, 103, 104, 200, 201]  # no gap
    assert len(set(triage.runs)) == len(triage.runs)  # no (ticket, version) twice
    versions_101 = [v for t, v in triage.runs if t == 101]
    assert versions_101[1] == triage.fetched_versions[101] != versions_101[0]


async def test_429_with_retry_after_during_a_poll(
    fake: FakeZendesk, source: ZendeskTicketSource, db_url: str
) -> None:
    fake.incremental_page_size = 2
    for i in range(4):
        fake.add_ticket(300 + i, status="new", updated_at=ago(30 - i))
    triage = Triage(source)
    proc = await start(db_url, triage, source)
    submit = proc.queue.submit
    armed = False

    async def dispatch(ticket_id: int, version: str, trigger: str) -> object:
        nonlocal armed
        if not armed:  # the NEXT export request (page 2) is rate limited once
            armed = True
            fake.fail(EXPORT, 429, retry_after=1)
        return await submit(ticket_id, version, trigger)

    proc.poller.dispatch = dispatch
    started = time.monotonic()
    stats = await proc.poller.poll_once()
    assert time.monotonic() - started >= 0.9  # waited per Retry-After
    assert (stats.pages, stats.dispatched, stats.caught_up) == (2, 4, True)
    assert len(fake.calls(EXPORT)) == 3  # page 1, the 429, page 2 again
    await proc.stop()
    assert sorted(t for t, _ in triage.runs) == [300, 301, 302, 303]


class CrashingStore(SqlStore):
    """The process dies right after dispatching a page, before its cursor is written."""

    crash_next_cursor = True

    async def set_cursor(self, name: str, value: str) -> None:
        if name == CURSOR and self.crash_next_cursor:
            self.crash_next_cursor = False
            raise RuntimeError("killed")
        await super().set_cursor(name, value)


async def test_crash_between_dispatch_and_cursor_rereads_page_without_second_run(
    fake: FakeZendesk, source: ZendeskTicketSource, db_url: str
) -> None:
    for i in range(3):
        fake.add_ticket(400 + i, status="new", updated_at=ago(20 - i))
    triage = Triage(source)
    proc = Process(await CrashingStore.connect(db_url), triage, source)
    with pytest.raises(RuntimeError, match="killed"):
        await proc.poller.poll_once()
    assert await proc.store.get_cursor(CURSOR) is None
    await proc.stop()
    assert len(triage.runs) == 3

    proc2 = await start(db_url, triage, source)
    stats = await proc2.poller.poll_once()
    assert (stats.pages, stats.dispatched) == (1, 3)  # the same page, read again …
    assert proc2.queue.stats.duplicates == 3  # … but every claim already existed
    assert await proc2.store.get_cursor(CURSOR) == stats.cursor
    await proc2.stop()
    assert sorted(t for t, _ in triage.runs) == [400, 401, 402]


async def test_dispatch_failure_stops_poll_and_keeps_page_cursor(
    fake: FakeZendesk, source: ZendeskTicketSource, db_url: str
) -> None:
    fake.incremental_page_size = 2
    for i in range(4):
        fake.add_ticket(500 + i, status="new", updated_at=ago(20 - i))
    triage = Triage(source)
    proc = await start(db_url, triage, source)
    submit = proc.queue.submit

    async def dispatch(ticket_id: int, version: str, trigger: str) -> object:
        if ticket_id == 503:
            raise ConnectionError("store is down")
        return await submit(ticket_id, version, trigger)

    proc.poller.dispatch = dispatch
    with pytest.raises(ConnectionError):
        await proc.poller.poll_once()
    assert proc.poller.last_stats is not None and proc.poller.last_stats.dispatched == 3
    page1 = await proc.store.get_cursor(CURSOR)
    assert page1 is not None

    proc.poller.dispatch = submit
    stats = await proc.poller.poll_once()
    assert (stats.pages, stats.dispatched) == (1, 2)  # page 2 again: 502 (dup) and 503
    await proc.stop()
    assert sorted(t for t, _ in triage.runs) == [500, 501, 502, 503]


async def test_empty_first_poll_keeps_the_start_time(
    fake: FakeZendesk, source: ZendeskTicketSource, db_url: str
) -> None:
    triage = Triage(source)
    now = [time.time()]
    proc = await start(db_url, triage, source, lookback_minutes=10, clock=lambda: now[0])

    class NoCursor:
        """An export that returns no cursor on an empty first page."""

        async def incremental_page(self, **kw: object) -> object:
            page = await source.incremental_page(**kw)  # type: ignore[arg-type]
            return page.model_copy(update={"after_cursor": None}) if not page.tickets else page

    proc.poller.zendesk = NoCursor()  # type: ignore[assignment]
    await proc.poller.poll_once()
    now[0] += 3600  # an hour later, still no cursor: the start must not move forward
    fake.add_ticket(600, status="new", updated_at=ago(8))
    stats = await proc.poller.poll_once()
    assert stats.first_start and stats.dispatched == 1
    starts = {c.query["start_time"] for c in fake.calls(EXPORT)}
    assert len(starts) == 1
    await proc.stop()


async def test_scheduled_job_survives_errors_and_403_is_explained(
    fake: FakeZendesk, source: ZendeskTicketSource, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_ticket(700, status="new", updated_at=ago(5))
    triage = Triage(source)
    proc = await start(db_url, triage, source)

    fake.fail(EXPORT, 403)
    with caplog.at_level(logging.ERROR, logger="bot.poller"):
        assert await proc.poller.run_job() is None
    assert "admins only" in caplog.text and "ZENDESK_API_TOKEN" in caplog.text

    fake.fail(EXPORT, 500, times=2)  # first scheduled poll fails after its retry; the next succeeds
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        proc.poller.schedule(scheduler, 1)
        job = scheduler.get_job("zendesk-poll")
        assert job is not None and job.max_instances == 1 and job.coalesce
        await asyncio.wait_for(triage.ran.wait(), WAIT_S)
    finally:
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0.05)
    assert [t for t, _ in triage.runs] == [700]
    assert proc.poller.last_error == ""
    await proc.stop()


async def test_poisoned_page_and_deleted_tickets_are_skipped_and_the_cursor_moves_on(
    fake: FakeZendesk, source: ZendeskTicketSource, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_ticket(1, subject="fine", status="new", updated_at=ago(50))
    bad = fake.add_ticket(2, subject="poison", status="new", updated_at=ago(49))
    bad["updated_at"] = "2026-13-45T99:99:99Z"  # the invalid updated_at seen in a real export
    idless = fake.add_ticket(3, subject="no id", status="new", updated_at=ago(48))
    fake.add_ticket(4, subject="fine too", status="open", updated_at=ago(47))
    fake.delete_ticket(5, subject="removed", updated_at=ago(46))
    fake.add_ticket(6, subject="last", status="new", updated_at=ago(45))
    idless["id"] = "3"  # a string id: not a ticket we can claim
    triage = Triage(source)
    proc = await start(db_url, triage, source)

    stats = await proc.poller.poll_once()
    await proc.queue.drain(15)

    assert sorted(t for t, _ in triage.runs) == [1, 4, 6]
    assert (stats.seen, stats.dispatched, stats.poisoned, stats.caught_up) == (6, 3, 3, True)
    assert await proc.store.get_cursor(CURSOR) == stats.cursor
    reasons = {
        name: json.loads(value or "{}")["reason"]
        for name in (
            f"{CURSOR}:skipped:2:{bad['generated_timestamp']}",
            f"{CURSOR}:skipped:?:{idless['generated_timestamp']}",
        )
        if (value := await proc.store.get_cursor(name))
    }
    assert len(reasons) == 2 and any("updated_at" in r for r in reasons.values())
    deleted = await proc.store.get_cursor(f"{CURSOR}:skipped:5:{fake.tickets[5]['generated_timestamp']}")
    assert deleted and json.loads(deleted)["reason"] == "deleted in Zendesk"
    assert "poison" not in caplog.text  # the reason names fields, never the ticket's text
    # the next poll does not re-read the poisoned page: nothing is skipped or run again
    again = await proc.poller.poll_once()
    assert (again.seen, again.poisoned, again.dispatched) == (0, 0, 0)
    await proc.stop()


async def test_shutdown_during_a_poll_is_one_info_line_not_a_traceback(
    fake: FakeZendesk, source: ZendeskTicketSource, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.poller")
    fake.add_ticket(1, subject="flags", status="new", updated_at=ago(50))
    proc = await start(db_url, Triage(source), source)
    entered = asyncio.Event()

    async def hangs() -> None:
        entered.set()
        await asyncio.Event().wait()  # a poll still in flight when the process stops

    proc.poller.poll_once = hangs  # type: ignore[method-assign]
    job = asyncio.create_task(proc.poller.run_job())
    await asyncio.wait_for(entered.wait(), WAIT_S)
    job.cancel()  # what the scheduler does to a running job at shutdown
    assert await job is None
    assert "stopped by shutdown" in caplog.text and "Traceback" not in caplog.text
    assert proc.poller.last_error == ""
    await proc.stop()
