"""A report stored but not (fully) posted when its replica died is posted once, by whoever takes the run over.

On SQLite and PostgreSQL, against the fake Slack Web API on 127.0.0.1: replica A stores the report
(the run's outbox) and dies; replica B takes the run over with a higher fencing token and posts what
is left into the existing thread, without triaging again (a message Slack took but the database did
not count is found in the thread by its metadata); A, waking up, posts nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery import REPORT_RUN, deliver_claim
from bot.fenced_run import FencedRun, Superseded
from bot.intake_queue import TriageQueue
from bot.outbox import post_outbox
from bot.slack_runtime import runtime_for
from bot.wiring import Services
from integrations.store import SqlStore
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.slack_support import TRIAGE_CHANNEL, SlackHarness, example, seed_ticket
from tests.store_support import age_heartbeat
from tests.waits import WAIT_S
from triage.models import TicketSummary, TriageReport
from triage.store import Claim, Outbox, RunStatus, TicketState

FLAGS = 48291


class Died(Exception):
    """The replica's process ends here: nothing after this point runs."""


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


async def test_takeover_posts_only_what_is_left_and_the_stale_owner_posts_nothing(
    slack: FakeSlack, stores: tuple[SqlStore, SqlStore]
) -> None:
    a, b = stores
    client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
    claim = await a.claim_run(41, "v1", "webhook", stale_after_s=60)
    run_id = claim.run.run_id
    mine = FencedRun(client, a, run_id, claim.token)
    card = await mine.post("C1", {"text": "researching"})
    await mine.set_thread("C1", card)
    outbox = Outbox(
        channel="C1",
        thread_ts=card,
        ticket_ref="#41",
        messages=[{"text": f"part {i}"} for i in (1, 2, 3)],
        card={"text": "final card"},
        ticket_state=TicketState(ticket_id=41, public_customer_comments=1, extra={REPORT_RUN: run_id}),
    )
    await mine.stage(TriageReport(run_id=run_id, ticket=TicketSummary(id=41)), outbox)

    real_sent = a.outbox_sent

    async def dies_before_counting_the_second(rid: str, sent: int, *, token: int) -> bool:
        if sent == 2:
            raise Died  # Slack has part 2, the database does not know it
        return await real_sent(rid, sent, token=token)

    a.outbox_sent = dies_before_counting_the_second  # type: ignore[method-assign]
    with pytest.raises(Died):
        await post_outbox(a, mine, outbox)
    a.outbox_sent = real_sent  # type: ignore[method-assign]
    assert [m.text for m in slack.thread("C1", card)] == ["part 1", "part 2"]
    stored = await b.get_outbox(run_id)
    assert stored is not None and stored.sent == 1

    # A stopped heart-beating; B takes the run over with the next fencing token
    await age_heartbeat(b, run_id, 3600)
    taken = await b.claim_run(41, "v1", "poll", stale_after_s=60)
    assert taken.owned and taken.resumed and taken.token == claim.token + 1

    # A wakes up and carries on where it was: refused before its first Slack call
    before = len(slack.api_calls)
    with pytest.raises(Superseded):
        await post_outbox(a, mine, stored)
    assert len(slack.api_calls) == before
    assert not await a.outbox_sent(run_id, 3, token=claim.token)  # the store refuses its writes too
    assert not await a.complete_run(run_id, token=claim.token)

    theirs = FencedRun(client, b, run_id, taken.token)
    await post_outbox(b, theirs, stored, read_back=True)  # reads the thread: part 2 is there already
    assert [m.text for m in slack.thread("C1", card)] == ["part 1", "part 2", "part 3"]
    assert len(slack.calls_to("conversations.replies")) == 1
    assert len(slack.top_level("C1")) == 1 and slack.messages[card].text == "final card"
    done = await b.get_run(run_id)
    assert done is not None and done.status is RunStatus.done and done.owner == "replica-b"
    assert await b.get_outbox(run_id) is None  # dropped: nobody posts it again
    state = await b.get_ticket_state(41)
    assert state is not None and state.extra[REPORT_RUN] == run_id
    again = await a.claim_run(41, "v1", "poll", stale_after_s=60)
    assert not again.owned  # done is done
    with pytest.raises(Superseded):  # and the old token stays refused
        await mine.post("C1", {"text": "late"}, thread_ts=card)


# ---------------------------------------------------------------- through the delivery and the queue


def _services(slack: FakeSlack, zd: FakeZendesk, tmp_path: Path, url: str, replica: str) -> Services:
    overrides = {"database_url": url, "replica_id": replica, "run_stale_after_seconds": 60}
    return SlackHarness(slack, zd, tmp_path / "unused.db", overrides).build_services()


async def test_a_replica_dying_after_storing_the_report_is_posted_once_by_the_next_owner(
    slack: FakeSlack, db_url: str, tmp_path: Path
) -> None:
    with FakeZendesk() as zd:
        seed_ticket(zd, example(FLAGS))
        a = _services(slack, zd, tmp_path, db_url, "replica-a")
        b = _services(slack, zd, tmp_path, db_url, "replica-b")
        try:
            await _die_after_store_then_take_over(slack, a, b)
        finally:
            await a.aclose()
            await b.aclose()


async def _die_after_store_then_take_over(slack: FakeSlack, a: Services, b: Services) -> None:
    triages: list[str] = []
    for svc in (a, b):
        real = svc.engine.triage

        async def counted(*args: Any, _real: Any = real, _who: str = svc.store.replica, **kw: Any) -> Any:
            triages.append(_who)
            return await _real(*args, **kw)

        svc.engine.triage = counted  # type: ignore[method-assign]

    staged = asyncio.Event()
    real_stage = a.store.stage_report

    async def stage_then_die(*args: Any, **kw: Any) -> bool:
        assert await real_stage(*args, **kw)
        staged.set()
        await asyncio.Event().wait()  # the process is killed here (the task is cancelled below)
        return True  # pragma: no cover

    a.store.stage_report = stage_then_die  # type: ignore[method-assign]

    ticket = await a.engine.fetch(FLAGS)
    claim = await a.store.claim_run(FLAGS, ticket.version_key, "webhook", stale_after_s=60)
    dying = asyncio.get_running_loop().create_task(deliver_claim(a, claim, "webhook"))
    await asyncio.wait_for(staged.wait(), WAIT_S)
    dying.cancel()  # kill -9: no heartbeat, no post, nothing more from replica A
    await asyncio.gather(dying, return_exceptions=True)

    run_id = claim.run.run_id
    (card,) = slack.top_level(TRIAGE_CHANNEL)
    assert slack.thread(TRIAGE_CHANNEL, card.ts) == []  # the report is stored, not posted
    outbox = await b.store.get_outbox(run_id)
    assert outbox is not None and outbox.sent == 0 and outbox.thread_ts == card.ts

    await age_heartbeat(b.store, run_id, 3600)

    async def run(c: Claim, trigger: str) -> object:
        return await deliver_claim(b, c, trigger)

    queue = TriageQueue(b.store, run, concurrency=1, stale_after_s=60, heartbeat_s=1)
    try:
        assert await queue.recover() == 1
        assert await queue.drain(WAIT_S)
    finally:
        await queue.aclose()

    assert triages == ["replica-a"]  # triaged once: the new owner posted the stored report
    assert len(slack.top_level(TRIAGE_CHANNEL)) == 1  # the same card, no second parent
    posted = slack.thread(TRIAGE_CHANNEL, card.ts)
    assert [m.text for m in posted] == [str(m.get("text")) for m in outbox.messages]
    assert outbox.card is not None and slack.messages[card.ts].text == outbox.card["text"]
    done = await b.store.get_run(run_id)
    assert done is not None and done.status is RunStatus.done
    assert done.attempts == claim.token + 1 and done.owner == "replica-b" and done.report is not None
    state = await b.store.get_ticket_state(FLAGS)
    assert state is not None and state.extra[REPORT_RUN] == run_id

    # replica A's client (a stalled process waking up) is refused before any Slack call
    stale = FencedRun(runtime_for(a).client, a.store, run_id, claim.token)
    before = len(slack.api_calls)
    with pytest.raises(Superseded):
        await post_outbox(a.store, stale, outbox)
    assert len(slack.api_calls) == before


async def test_a_thread_that_cannot_be_read_back_falls_back_to_the_stored_count(
    slack: FakeSlack, stores: tuple[SqlStore, SqlStore]
) -> None:
    a, b = stores
    client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
    claim = await a.claim_run(42, "v1", "webhook", stale_after_s=60)
    run_id = claim.run.run_id
    mine = FencedRun(client, a, run_id, claim.token)
    card = await mine.post("C1", {"text": "researching"})
    outbox = Outbox(channel="C1", thread_ts=card, messages=[{"text": "part 1"}, {"text": "part 2"}])
    await mine.stage(TriageReport(run_id=run_id, ticket=TicketSummary(id=42)), outbox)
    await age_heartbeat(b, run_id, 3600)
    taken = await b.claim_run(42, "v1", "poll", stale_after_s=60)
    slack.errors["conversations.replies"] = "missing_scope"  # an app installed without channels:history
    await post_outbox(b, FencedRun(client, b, run_id, taken.token), outbox, read_back=True)
    assert [m.text for m in slack.thread("C1", card)] == ["part 1", "part 2"]  # posted from the count
    done = await b.get_run(run_id)
    assert done is not None and done.status is RunStatus.done


async def test_a_card_posted_but_not_recorded_is_adopted_by_the_next_owner(
    slack: FakeSlack, db_url: str, tmp_path: Path
) -> None:
    with FakeZendesk() as zd:
        seed_ticket(zd, example(FLAGS))
        a = _services(slack, zd, tmp_path, db_url, "replica-a")
        b = _services(slack, zd, tmp_path, db_url, "replica-b")
        try:

            async def posted_then_died(*args: Any, **kw: Any) -> bool:
                raise Died  # the card is in Slack, the database never hears of it

            a.store.set_thread = posted_then_died  # type: ignore[method-assign]
            ticket = await a.engine.fetch(FLAGS)
            claim = await a.store.claim_run(FLAGS, ticket.version_key, "webhook", stale_after_s=60)
            with pytest.raises(Died):
                await deliver_claim(a, claim, "webhook")
            (lost,) = slack.top_level(TRIAGE_CHANNEL)
            assert await b.store.get_thread(FLAGS) is None

            await age_heartbeat(b.store, claim.run.run_id, 3600)

            async def run(c: Claim, trigger: str) -> object:
                return await deliver_claim(b, c, trigger)

            queue = TriageQueue(b.store, run, concurrency=1, stale_after_s=60, heartbeat_s=1)
            try:
                assert await queue.recover() == 1
                assert await queue.drain(WAIT_S)
            finally:
                await queue.aclose()
        finally:
            await a.aclose()
            await b.aclose()

    assert [m.ts for m in slack.top_level(TRIAGE_CHANNEL)] == [lost.ts]  # one card: the lost one, adopted
    thread = await b.store.get_thread(FLAGS)
    assert thread is not None and thread.thread_ts == lost.ts
    assert slack.thread(TRIAGE_CHANNEL, lost.ts)  # the report went into its thread
    done = await b.store.get_run(claim.run.run_id)
    assert done is not None and done.status is RunStatus.done and done.thread_ts == lost.ts
