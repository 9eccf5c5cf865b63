"""TriageQueue: claim-once at enqueue, bounded concurrency, heartbeats and crash recovery.

Real SqlStore on SQLite files; a "restart" is a new store object and a new queue on the same file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.intake_queue import TriageQueue
from integrations.store import SqlStore
from tests.store_support import age_heartbeat
from tests.waits import WAIT_S
from triage.models import TicketSummary, TriageReport
from triage.store import Claim, RunStatus


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'intake.db'}"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    s = await SqlStore.connect(db_url)
    yield s
    await s.close()


STALE_S = 60.0  # a run is stale after this; tests age the heartbeat instead of waiting it out


def report(claim: Claim) -> TriageReport:
    return TriageReport(run_id=claim.run.run_id, ticket=TicketSummary(id=claim.run.ticket_id))


class Recorder:
    """A `run` that records calls, honours a gate and finishes the run in the store."""

    def __init__(self, store: SqlStore, *, delay: float = 0.0, gate: asyncio.Event | None = None) -> None:
        self.store = store
        self.delay = delay
        self.gate = gate
        self.calls: list[tuple[int, str, bool, str]] = []
        self.active = 0
        self.peak = 0
        self.started = asyncio.Event()

    async def __call__(self, claim: Claim, trigger: str) -> None:
        self.calls.append((claim.run.ticket_id, claim.run.ticket_version, claim.resumed, trigger))
        self.active += 1
        self.peak = max(self.peak, self.active)
        self.started.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        await self.store.finish_run(claim.run.run_id, report(claim), token=claim.token)


async def wait_until(predicate: Callable[[], bool | Awaitable[bool]], within: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_twenty_concurrent_submits_one_run(store: SqlStore) -> None:
    run = Recorder(store, delay=0.05)
    queue = TriageQueue(store, run, concurrency=4)
    triggers = ["slash"] * 18 + ["poll", "webhook"]
    claims = await asyncio.gather(*(queue.submit(48291, "2026-01-05T10:00:00+00:00", t) for t in triggers))
    assert sum(c is not None for c in claims) == 1
    assert await queue.drain(WAIT_S)
    assert len(run.calls) == 1
    assert queue.stats.duplicates == 19
    latest = await store.latest_run(48291)
    assert latest is not None and latest.status is RunStatus.done
    # a finished version is never run again, also not by a new queue ("restart")
    again = TriageQueue(store, run, concurrency=4)
    assert await again.submit(48291, "2026-01-05T10:00:00+00:00", "poll") is None
    assert await again.recover() == 0
    await queue.aclose()
    await again.aclose()
    assert len(run.calls) == 1


async def test_concurrency_bound_and_burst_queues(store: SqlStore) -> None:
    run = Recorder(store, delay=0.15)
    queue = TriageQueue(store, run, concurrency=3)
    for i in range(12):
        assert await queue.submit(1000 + i, "v1", "poll") is not None
    # submit returned for all twelve before most could run: they queue, not stampede
    assert queue.stats.waiting + queue.stats.running == 12 - queue.stats.completed
    assert await queue.drain(WAIT_S)
    assert run.peak == 3 == queue.stats.peak_running
    assert sorted(c[0] for c in run.calls) == [1000 + i for i in range(12)]
    await queue.aclose()


async def test_kill_and_restart_recovers_exactly_once(db_url: str, store: SqlStore) -> None:
    gate = asyncio.Event()  # never set: the first process "dies" mid-triage
    first = Recorder(store, gate=gate)
    queue1 = TriageQueue(store, first, concurrency=2, stale_after_s=STALE_S, heartbeat_s=0.1)
    claim = await queue1.submit(48302, "v7", "webhook")
    assert claim is not None
    await asyncio.wait_for(first.started.wait(), WAIT_S)
    await queue1.aclose()  # the process is gone: no finish, no more heartbeats
    running = await store.latest_run(48302)
    assert running is not None and running.status is RunStatus.running

    # restart: two fresh replicas (new store objects on the same database) recover concurrently
    stores = [await SqlStore.connect(db_url), await SqlStore.connect(db_url)]
    seconds = [Recorder(s) for s in stores]
    queues = [
        TriageQueue(s, r, concurrency=2, stale_after_s=STALE_S, heartbeat_s=0.1)
        for s, r in zip(stores, seconds, strict=True)
    ]
    assert [await q.recover() for q in queues] == [0, 0]  # not stale yet: heartbeat was recent
    await age_heartbeat(store, claim.run.run_id, 2 * STALE_S)  # time passes: the dead owner's run goes stale
    found = await asyncio.gather(*(q.recover() for q in queues))
    assert sorted(found) == [0, 1]
    for q in queues:
        assert await q.drain(WAIT_S)
    calls = [c for r in seconds for c in r.calls]
    assert calls == [(48302, "v7", True, "webhook")]
    done = await store.get_run(claim.run.run_id)
    assert done is not None and done.status is RunStatus.done and done.attempts == 2
    assert [await q.recover() for q in queues] == [0, 0]
    for q, s in zip(queues, stores, strict=True):
        await q.aclose()
        await s.close()


async def test_heartbeats_keep_live_run_from_being_stolen(db_url: str, store: SqlStore) -> None:
    gate = asyncio.Event()
    owner = Recorder(store, gate=gate)
    queue = TriageQueue(store, owner, concurrency=1, stale_after_s=0.6, heartbeat_s=0.1)
    # one running and one waiting for the single slot: both must stay ours
    await queue.submit(1, "v1", "poll")
    await queue.submit(2, "v1", "poll")
    await asyncio.wait_for(owner.started.wait(), WAIT_S)

    other_store = await SqlStore.connect(db_url)
    thief = Recorder(other_store)
    other = TriageQueue(other_store, thief, concurrency=2, stale_after_s=0.6, heartbeat_s=0.1)
    for _ in range(8):  # 1.6 s: well past stale_after_s
        await asyncio.sleep(0.2)
        assert await other.recover() == 0
        assert await other.submit(1, "v1", "slash") is None
        assert await other.submit(2, "v1", "slash") is None
    gate.set()
    assert await queue.drain(WAIT_S)
    assert thief.calls == []
    assert [c[0] for c in owner.calls] == [1, 2]
    await other.aclose()
    await queue.aclose()
    await other_store.close()


async def test_failed_run_is_retried_through_recovery_then_given_up(store: SqlStore) -> None:
    attempts: list[int] = []

    async def flaky(claim: Claim, trigger: str) -> None:
        attempts.append(claim.run.attempts)
        if claim.run.ticket_id == 1 and claim.run.attempts == 1:
            raise RuntimeError("model overloaded")
        if claim.run.ticket_id == 2:
            raise RuntimeError("always broken")
        await store.finish_run(claim.run.run_id, report(claim), token=claim.token)

    queue = TriageQueue(store, flaky, concurrency=2, stale_after_s=0.4, heartbeat_s=0.1, max_attempts=2)
    await queue.submit(1, "v1", "poll")
    await queue.submit(2, "v1", "poll")
    assert await queue.drain(WAIT_S)

    async def settled() -> bool:
        await queue.recover()
        await queue.drain(WAIT_S)
        r1, r2 = await store.latest_run(1), await store.latest_run(2)
        return bool(r1 and r2 and r1.status is RunStatus.done and r2.status is RunStatus.failed)

    await wait_until(settled)
    r2 = await store.latest_run(2)
    assert r2 is not None and "always broken" in r2.error and r2.attempts == 2
    assert queue.stats.errors == 3
    await queue.aclose()


async def test_run_that_returns_without_finishing_is_marked_failed(store: SqlStore) -> None:
    async def forgetful(claim: Claim, trigger: str) -> None:
        return None

    queue = TriageQueue(store, forgetful, concurrency=1)
    claim = await queue.submit(9, "v1", "poll")
    assert claim is not None
    assert await queue.drain(WAIT_S)
    run = await store.get_run(claim.run.run_id)
    assert run is not None and run.status is RunStatus.failed and "without a result" in run.error
    await queue.aclose()


async def test_submit_unversioned_and_validation(store: SqlStore) -> None:
    run = Recorder(store)
    queue = TriageQueue(store, run, concurrency=2)
    fetched: list[int] = []

    async def fetch(ticket_id: int) -> str:
        fetched.append(ticket_id)
        return "2026-01-05T10:00:00+00:00"

    results = await asyncio.gather(*(queue.submit_unversioned(5, "webhook", fetch) for _ in range(5)))
    assert sum(r is not None for r in results) == 1 and fetched == [5] * 5
    assert await queue.drain(WAIT_S)
    await queue.aclose()
    with pytest.raises(RuntimeError):
        await queue.submit(6, "v", "poll")
    with pytest.raises(ValueError):
        TriageQueue(store, run, concurrency=1, stale_after_s=10, heartbeat_s=6)
    with pytest.raises(ValueError):
        TriageQueue(store, run, concurrency=0)
