"""Three real `triagebot run --http` processes on one PostgreSQL database: exactly once, nothing lost.

The fakes (Slack, Zendesk, GitHub, npm/PyPI) run in this process on 127.0.0.1; the replicas are
separate OS processes with polling (every 2 s) and the webhook on. Reports are evidence-only (no
model), so a triage is Zendesk + research + Slack. The fake GitHub holds every search until the test
lets go, which pins each first-wave triage in its research phase: that is where one replica is
killed with SIGKILL.

    wave 1   6 tickets: /triage twice and the webhook twice per ticket, each at a random replica,
             all at once, while the poller also finds them
    kill -9  a replica that owns a running triage (its card is posted, research is pending)
    wave 2   a poll burst: 8 more tickets that only the poller sees
    then     every ticket: one parent card, one report, one run row; the killed replica's runs
             were resumed elsewhere; each poll-lease token had one holder and tokens only grew;
             a follow-up and a button click on a report are served by another replica than the
             one that triaged it

Skipped when PostgreSQL is not reachable. Bounded: every wait has a deadline. Start-up is mostly
imports (seconds on an idle machine); RUN_STALE_AFTER_SECONDS is 15 so that a replica starved of CPU
on a loaded machine is not mistaken for a dead one (fencing would keep that correct, only slower).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from formatting.actions import ACTION_PACKET
from integrations.store import create_store_engine
from integrations.store_schema import triage_runs
from tests.fakes.http import free_port
from tests.fakes.slack import BOT_USER_ID
from tests.pg_support import pg_schema
from tests.replica_support import (
    Fakes,
    Replica,
    ReplicaClient,
    healthy,
    parent_counts,
    report_counts,
    seed,
    send_webhook,
    start_replicas,
    until,
)
from tests.slack_support import TRIAGE_CHANNEL

pytestmark = pytest.mark.postgres

WAVE_1 = list(range(9101, 9107))
WAVE_2 = list(range(9201, 9209))
POLL_RE = re.compile(r"^(\S+ \S+) DEBUG bot\.poll_lease: Zendesk poll by (\S+) under lease token (\d+)")


class Cluster:
    def __init__(self, fakes: Fakes, url: str) -> None:
        self.slack, self.zendesk, self.github = fakes.slack, fakes.zendesk, fakes.github
        self.database_url = url
        self.replicas: list[Replica] = []
        self.session = aiohttp.ClientSession()

    def rows(self) -> list[dict[str, Any]]:
        engine = create_store_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return [dict(r) for r in conn.execute(select(triage_runs)).mappings()]
        finally:
            engine.dispose()


@pytest.fixture
def database_url() -> Iterator[str]:
    with pg_schema("triagebot_replicas") as url:
        yield url


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    fakes = Fakes().start()
    c = Cluster(fakes, database_url)
    c.replicas = [Replica(f"replica-{i}", free_port(), tmp_path / f"replica-{i}.log") for i in range(3)]
    for replica in c.replicas:
        replica.client = ReplicaClient(
            fakes.slack, fakes.zendesk, tmp_path / "unused.db", session=c.session, base=replica.url
        )
    try:
        await start_replicas(
            c.replicas,
            fakes,
            database_url,
            tmp_path,
            log_level="DEBUG",  # the poll lease logs each poll's token at DEBUG
            slack_update_interval_seconds="0.5",
            zendesk_poll_seconds="2",
            zendesk_poll_lookback_minutes="10",
            triage_concurrency="4",
            run_stale_after_seconds="15",
            shutdown_drain_seconds="2",
            research_deadline_seconds="60",
            source_timeout_seconds="60",
        )
        yield c
    finally:
        fakes.github.release.set()
        await asyncio.gather(*(r.stop() for r in c.replicas))
        await c.session.close()
        fakes.stop()


async def test_three_replicas_triage_every_ticket_exactly_once(cluster: Cluster) -> None:
    c, rng = cluster, random.Random(13)
    await until(lambda: healthy(c.session, c.replicas), 180, "three healthy replicas")

    # ---- wave 1: /triage and webhooks for the same tickets at random replicas, with polling on
    for ticket_id in WAVE_1:
        seed(c.zendesk, ticket_id, seconds_ago=30)
    sends: list[Awaitable[Any]] = []
    for ticket_id in WAVE_1:
        for _ in range(2):
            client = rng.choice(c.replicas).client
            assert client is not None
            sends.append(client.command(str(ticket_id)))
            sends.append(send_webhook(c.session, rng.choice(c.replicas), ticket_id))
    rng.shuffle(sends)
    answers = [a if isinstance(a, int) else a.status for a in await asyncio.gather(*sends)]
    assert set(answers) <= {200, 202}, answers

    def running_with_card() -> list[dict[str, Any]]:
        return [
            r for r in c.rows() if r["status"] == "running" and r["thread_ts"] and r["ticket_id"] in WAVE_1
        ]

    # cards are posted and research is held: those triages are mid-flight (the others wait for one of
    # the TRIAGE_CONCURRENCY slots of the replica that claimed them)
    await until(lambda: len(running_with_card()) >= 3, 60, "wave-1 cards posted while research is held")

    # ---- kill -9 a replica in the middle of a triage
    victim = next(r for r in c.replicas if r.name == running_with_card()[0]["owner"])
    victim_runs = {r["run_id"] for r in c.rows() if r["owner"] == victim.name and r["status"] == "running"}
    assert victim.proc is not None
    victim.proc.kill()
    await victim.proc.wait()
    c.github.release.set()

    # ---- wave 2: a poll burst only the poller sees
    for ticket_id in WAVE_2:
        seed(c.zendesk, ticket_id, seconds_ago=5)
    everything = WAVE_1 + WAVE_2

    def all_reported() -> bool:
        done = {r["ticket_id"] for r in c.rows() if r["status"] == "done"}
        reports = report_counts(c.slack)
        return done >= set(everything) and all(reports[t] >= 1 for t in everything)

    try:
        await until(all_reported, 150, "every ticket reported")
    except AssertionError as exc:
        state = sorted(
            (r["ticket_id"], r["status"], r["attempts"], r["owner"], r["error"][:80]) for r in c.rows()
        )
        raise AssertionError(f"{exc}; runs: {state}; reports: {report_counts(c.slack)}") from None
    await asyncio.sleep(1.0)  # a late duplicate would show up now

    # ---- exactly once, nothing lost
    rows = c.rows()
    assert Counter(r["ticket_id"] for r in rows) == Counter(everything)  # one run per ticket version
    assert all(r["status"] == "done" for r in rows)
    assert report_counts(c.slack) == Counter(everything)
    assert parent_counts(c.slack) == Counter(everything)
    resumed = [r for r in rows if r["run_id"] in victim_runs]
    assert resumed and all(r["attempts"] >= 2 and r["owner"] != victim.name for r in resumed)

    # ---- one poller at a time: every lease token had one holder, and tokens only grew
    polls: list[tuple[str, str, int]] = []
    for replica in c.replicas:
        for line in replica.log.read_text(errors="replace").splitlines():
            if m := POLL_RE.match(line):
                polls.append((m.group(1), m.group(2), int(m.group(3))))
    assert polls, "no poll was logged"
    holders: dict[int, set[str]] = {}
    for _, holder, token in polls:
        holders.setdefault(token, set()).add(holder)
    assert all(len(h) == 1 for h in holders.values()), holders
    tokens_in_time = [token for _, _, token in sorted(polls)]
    assert tokens_in_time == sorted(tokens_in_time)

    # ---- a follow-up and a button click served by a replica that did not triage the ticket
    alive = {r.name: r for r in c.replicas if r.alive}
    run = next(r for r in rows if r["owner"] in alive and r["ticket_id"] in WAVE_1)
    other = next(r for name, r in alive.items() if name != run["owner"])
    assert other.client is not None

    def thread() -> list[str]:
        return [
            m.text + json.dumps(m.blocks, ensure_ascii=False)
            for m in c.slack.thread(TRIAGE_CHANNEL, run["thread_ts"])
        ]

    mention = {
        "type": "app_mention",
        "user": "W222",
        "text": f"<@{BOT_USER_ID}> which evidence supports this?",
        "ts": f"{time.time():.6f}",
        "thread_ts": run["thread_ts"],
        "channel": TRIAGE_CHANNEL,
        "channel_type": "channel",
    }
    assert (await other.client.event(mention)).status == 200
    await until(lambda: any("💬" in m for m in thread()), 30, "the follow-up answer from another replica")
    assert (
        await other.client.action(ACTION_PACKET, run["run_id"], message_ts=run["thread_ts"])
    ).status == 200
    await until(
        lambda: any("Escalation packet" in m for m in thread()), 30, "the packet from another replica"
    )
