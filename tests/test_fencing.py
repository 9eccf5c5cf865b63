"""Fencing: once another replica took a run over, the stalled owner writes nothing (Slack or store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import update

from bot.fenced_run import FencedRun, Superseded
from bot.intake_queue import TriageQueue
from integrations.store import SqlStore
from integrations.store_schema import triage_runs
from tests.fakes.slack import FakeSlack
from tests.waits import WAIT_S
from triage.models import TicketSummary, TriageReport
from triage.store import Claim, RunStatus


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    url = f"sqlite:///{tmp_path / 'fence.db'}"
    a = await SqlStore.connect(url, replica="replica-a")
    b = await SqlStore.connect(url, replica="replica-b")
    yield a, b
    await a.close()
    await b.close()


def _stall(store: SqlStore, run_id: str) -> None:
    """The owner's heartbeat stopped long ago (a GC pause, a frozen VM, a partition)."""
    with store.engine.begin() as conn:
        conn.execute(
            update(triage_runs)
            .where(triage_runs.c.run_id == run_id)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(hours=1))
        )


def _report(run_id: str) -> TriageReport:
    return TriageReport(run_id=run_id, ticket=TicketSummary(id=31))


async def test_stalled_owner_writes_nothing_after_a_takeover(
    slack: FakeSlack, stores: tuple[SqlStore, SqlStore]
) -> None:
    a, b = stores
    client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
    old = await a.claim_run(31, "v1", "poll", stale_after_s=60)
    mine = FencedRun(client, a, old.run.run_id, old.token)
    card = await mine.post("C1", {"text": "card"})
    await mine.set_thread("C1", card)
    await mine.update("C1", card, {"text": "researching"})

    _stall(a, old.run.run_id)
    new = await b.claim_run(31, "v1", "poll", stale_after_s=60)
    assert new.owned and new.token == old.token + 1
    before = len(slack.api_calls)

    for write in (
        mine.post("C1", {"text": "report"}, thread_ts=card),
        mine.update("C1", card, {"text": "done"}),
        mine.delete("C1", card),
        mine.post_error("C1", card, "failed"),
        mine.set_thread("C2", "9.9"),
        mine.finish(_report(old.run.run_id)),
        mine.fail("late"),
    ):
        with pytest.raises(Superseded):
            await write
    assert not await mine.heartbeat()
    assert len(slack.api_calls) == before  # not one Slack call
    run = await b.get_run(old.run.run_id)
    assert run is not None and run.status is RunStatus.running and run.owner == "replica-b"

    theirs = FencedRun(client, b, new.run.run_id, new.token)
    await theirs.post("C1", {"text": "report"}, thread_ts=card)
    await theirs.finish(_report(new.run.run_id))
    await theirs.post("C1", {"text": "after finish: still ours"}, thread_ts=card)
    assert [m.text for m in slack.thread("C1", card)][-2:] == ["report", "after finish: still ours"]


async def test_queue_stops_a_run_another_replica_took_over_quietly(stores: tuple[SqlStore, SqlStore]) -> None:
    a, b = stores
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(claim: Claim, trigger: str) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # a triage that never ends here
        except asyncio.CancelledError:
            cancelled.set()
            raise

    queue = TriageQueue(a, slow, concurrency=1, stale_after_s=60, heartbeat_s=1)
    claim = await queue.submit(32, "v1", "webhook")
    assert claim is not None
    await started.wait()
    assert await queue.heartbeat_now() == 1
    _stall(a, claim.run.run_id)
    taken = await b.claim_run(32, "v1", "poll", stale_after_s=60)
    assert taken.owned
    assert await queue.heartbeat_now() == 0  # refused: the run is cancelled here
    await asyncio.wait_for(cancelled.wait(), WAIT_S)
    assert await queue.drain(WAIT_S)
    assert queue.stats.superseded == 1 and queue.stats.errors == 0
    run = await b.get_run(claim.run.run_id)
    assert run is not None and run.status is RunStatus.running and run.owner == "replica-b"  # untouched
    await queue.aclose()


async def test_queue_keeps_a_run_that_it_finished_itself(stores: tuple[SqlStore, SqlStore]) -> None:
    """After finish_run the heartbeat is refused (the run is done), but the report is still being posted."""
    a, _ = stores
    finished, posted = asyncio.Event(), asyncio.Event()
    release = asyncio.Event()

    async def run(claim: Claim, trigger: str) -> None:
        assert await a.finish_run(claim.run.run_id, _report(claim.run.run_id), token=claim.token)
        finished.set()
        await release.wait()  # posting the report into the thread
        posted.set()

    queue = TriageQueue(a, run, concurrency=1, stale_after_s=60, heartbeat_s=1)
    assert await queue.submit(33, "v1", "webhook") is not None
    await finished.wait()
    assert await queue.heartbeat_now() == 0  # refused: done …
    release.set()
    await asyncio.wait_for(posted.wait(), WAIT_S)  # … but not cancelled
    assert queue.stats.superseded == 0
    await queue.aclose()
