"""Slack's per-channel posting pace is one pace for all replicas: reserved in the store, kept by the client.

On SQLite and PostgreSQL: the slot arithmetic (GCRA) on a fixed clock, concurrent reservations from
two replicas never sharing a slot, and the runtime's real client (slack-sdk's AsyncWebClient with its
retry handlers) posting into the fake Slack Web API on 127.0.0.1 from two replicas at the pace of one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.delivery import triage_ticket
from bot.slack_pacing import ChannelPacer, PacedWebClient
from bot.slack_runtime import runtime_for
from bot.wiring import Services
from integrations.store import SqlStore
from integrations.store_pace import reserve_slot
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.slack_support import TRIAGE_CHANNEL, SlackHarness, example, seed_ticket

T0 = 1_800_000_000.0  # a fixed "now" (Unix seconds)
FLAGS = 48291


async def test_two_replicas_share_one_pace_per_channel(stores: tuple[SqlStore, SqlStore]) -> None:
    a, b = stores
    waits = [reserve_slot(s.engine, "C1", 1.0, 3, now=T0) for s in (a, b, a, b, a)]
    assert waits == [0.0, 0.0, 0.0, 1.0, 2.0]  # a burst of 3, then one a second, whoever posts
    assert reserve_slot(b.engine, "C2", 1.0, 3, now=T0) == 0.0  # another channel has its own pace
    assert reserve_slot(a.engine, "C1", 1.0, 3, now=T0 + 0.5) == pytest.approx(2.5)
    # after a quiet spell the burst is available again
    assert [reserve_slot(b.engine, "C1", 1.0, 3, now=T0 + 60) for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


async def test_concurrent_reservations_never_share_a_slot(stores: tuple[SqlStore, SqlStore]) -> None:
    a, b = stores
    jobs = [asyncio.to_thread(reserve_slot, s.engine, "C9", 1.0, 1, T0) for s in (a, b) * 8]
    waits = sorted(await asyncio.gather(*jobs))
    assert waits == [float(i) for i in range(16)]  # 16 messages, 16 distinct one-second slots


def _replica(slack: FakeSlack, zd: FakeZendesk, tmp_path: Path, url: str, name: str) -> Services:
    overrides = {
        "database_url": url,
        "replica_id": name,
        "slack_post_interval_seconds": 30.0,  # long, so the waits are unmistakable (nobody sleeps them)
        "slack_post_burst": 2,
    }
    return SlackHarness(slack, zd, tmp_path / "unused.db", overrides).build_services()


async def test_the_runtime_client_of_each_replica_posts_at_the_shared_pace(
    db_url: str, tmp_path: Path
) -> None:
    with FakeSlack() as slack, FakeZendesk() as zd:
        replicas = [_replica(slack, zd, tmp_path, db_url, name) for name in ("replica-a", "replica-b")]
        waited: list[float] = []

        async def record(delay: float) -> None:
            waited.append(delay)  # what the pacer would sleep (the test does not wait 2 minutes)

        try:
            clients = []
            for svc in replicas:
                client = runtime_for(svc).client
                assert isinstance(client, PacedWebClient) and client.pacer is not None
                assert client.retry_handlers  # slack-sdk's 429 / connection retry handlers, as they are
                client.pacer.sleep = record
                clients.append(client)
            slack.fail_once["chat.postMessage"] = (429, 0)  # Slack still says 429 once: slack-sdk retries
            for i in range(3):
                await clients[0].chat_postMessage(channel="C1", text=f"a{i}")
                await clients[1].chat_postMessage(channel="C1", text=f"b{i}")
            await clients[1].chat_postMessage(channel="C2", text="elsewhere")
        finally:
            for svc in replicas:
                await svc.aclose()

    assert sorted(m.text for m in slack.top_level("C1")) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert len(slack.calls_to("chat.postMessage")) == 8  # 7 messages + the retried 429
    assert len(waited) == 4  # the first two of C1 (the burst) and C2's only message did not wait
    # one pace for both replicas: 30 s apart from the third message on (minus the seconds the test took)
    for n, delay in enumerate(waited, start=1):
        assert 30 * n - 10 < delay <= 30 * n


async def test_a_store_that_fails_does_not_stop_posting() -> None:
    class Down:
        asked = 0

        async def reserve_post_slot(self, channel: str, interval_s: float, burst: int) -> float:
            self.asked += 1
            raise ConnectionError("database unreachable")

    down = Down()
    assert await ChannelPacer(down, 1.0, 1).wait("C1") == 0.0  # posts unpaced (logged), not an error
    assert await ChannelPacer(down, 0.0, 1).wait("C1") == 0.0  # SLACK_POST_INTERVAL_SECONDS=0: off
    assert down.asked == 1


async def test_a_run_waiting_for_its_posting_slot_keeps_heart_beating(tmp_path: Path) -> None:
    """In a burst a card may wait minutes for its slot: the run must not look dead meanwhile."""
    with FakeSlack() as slack, FakeZendesk() as zd:
        seed_ticket(zd, example(FLAGS))
        overrides = {
            "run_stale_after_seconds": 2.0,
            "slack_post_interval_seconds": 30.0,
            "slack_post_burst": 1,
        }
        svc = SlackHarness(slack, zd, tmp_path / "beat.db", overrides).build_services()
        try:
            client = runtime_for(svc).client
            assert isinstance(client, PacedWebClient) and client.pacer is not None
            await svc.store.reserve_post_slot(TRIAGE_CHANNEL, 30.0, 1)  # the channel is busy: the card waits
            stale_while_waiting: list[list[str]] = []

            async def wait_a_while(delay: float) -> None:
                assert delay > 20
                await asyncio.sleep(2.6)  # longer than a stale period (the shortest allowed: 2 s)
                stale_while_waiting.append([r.run_id for r in await svc.store.stale_runs(2.0)])
                client.pacer.interval_s = 0  # the rest of the triage posts at once

            client.pacer.sleep = wait_a_while
            result = await triage_ticket(svc, FLAGS, trigger="slash")
        finally:
            await svc.aclose()
    assert stale_while_waiting == [[]]  # heart-beating all along: no replica would have taken it over
    assert result.status == "done"
