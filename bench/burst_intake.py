"""Benchmark: a burst of N new Zendesk tickets appearing in one poll.

Everything speaks real protocols on 127.0.0.1: the poller reads the fake Zendesk's cursor export through
zenpy (`ZendeskTicketSource`), claims every matching ticket in a real SqlStore (SQLite file) through
`TriageQueue`, and each triage — under the concurrency limit — fetches the ticket through zenpy,
opens a Slack thread on the fake Slack (slack-sdk), makes an intake call and a synthesis call to the
fake Anthropic API (anthropic SDK), waits a simulated research phase, finishes the run in the store
and posts the report into the thread. The fakes add realistic latencies (model 0.3–1.8 s, Slack
50–200 ms; research 0.4–1.2 s); one triage takes ~1.5–3.5 s.

Afterwards it polls again (nothing new) and replays the whole export from the start under a fresh
cursor (every ticket re-dispatched): both must start zero runs. Prints total time, triages/min, peak
RSS (the fakes run in this process too, so this is an upper bound) and the exactly-once check.

    .venv/bin/python bench/burst_intake.py [--tickets 500] [--concurrency 12] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anthropic
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select

from bot.intake_filters import TicketFilter
from bot.intake_queue import TriageQueue
from bot.poller import ZendeskPoller
from integrations.store import SqlStore, triage_runs
from integrations.zendesk import ZendeskTicketSource
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from triage.models import TicketSummary, TriageReport
from triage.store import Claim, ThreadRef

CHANNEL = "C0TRIAGE"
RESEARCH_S = (0.4, 1.2)
INTAKE_S = (0.3, 0.7)
SYNTHESIS_S = (0.8, 1.8)
SLACK_S = (0.05, 0.2)


@dataclass
class SlowAnthropic(FakeAnthropic):
    """The fake Messages API with model-like latency (intake model faster than synthesis)."""

    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random)

    async def _messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        lo, hi = INTAKE_S if "haiku" in str(body.get("model", "")) else SYNTHESIS_S
        await asyncio.sleep(self._rng.uniform(lo, hi))
        return await super()._messages(request)


@dataclass
class SlowSlack(FakeSlack):
    _rng: random.Random = field(default_factory=random.Random)

    async def _api(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self._rng.uniform(*SLACK_S))
        return await super()._api(request)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    rng = random.Random(args.seed)
    for key in ("ZENPY_FORCE_NETLOC", "ZENPY_FORCE_SCHEME"):
        os.environ.pop(key, None)
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"

    zendesk = FakeZendesk()
    slack = SlowSlack()
    model_api = SlowAnthropic(default="ok")
    for fake in (zendesk, slack, model_api):
        fake.start()
    tmp = tempfile.TemporaryDirectory(prefix="burst-intake-")
    store = await SqlStore.connect(f"sqlite:///{tmp.name}/bench.db")
    source = ZendeskTicketSource(zendesk.url, email="admin@example.com", api_token="t", workers=4)
    client = AsyncWebClient(token="xoxb-bench", base_url=slack.api_url)
    model = anthropic.AsyncAnthropic(api_key=model_api.api_key, base_url=model_api.url, max_retries=2)

    base = datetime.now(UTC) - timedelta(minutes=30)
    for i in range(args.tickets):
        stamp = (base + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        zendesk.add_ticket(
            60_000 + i,
            subject=f"Ticket {i}: feature flags return false",
            description="posthog-js 1.160: isFeatureEnabled false after identify " * 5,
            status="new",
            updated_at=stamp,
            requester=10_000 + i % 50,
        )

    durations: list[float] = []
    runs_started: list[int] = []

    async def run(claim: Claim, trigger: str) -> None:
        t0 = time.monotonic()
        run_id = claim.run.run_id
        runs_started.append(claim.run.ticket_id)
        ticket = await source.get_ticket(claim.run.ticket_id)
        parent = await client.chat_postMessage(
            channel=CHANNEL, text=f"Triaging #{ticket.id}: {ticket.subject}"
        )
        ts = str(parent["ts"])
        await store.set_thread(ThreadRef(ticket_id=ticket.id, channel=CHANNEL, thread_ts=ts))
        await store.set_run_thread(run_id, CHANNEL, ts)
        await model.messages.create(
            model="claude-haiku-5-5",
            max_tokens=512,
            messages=[{"role": "user", "content": f"Classify: {ticket.subject}\n{ticket.description}"}],
        )
        await asyncio.sleep(rng.uniform(*RESEARCH_S))  # parallel research (see bench/research_parallelism.py)
        await model.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=2048,
            messages=[{"role": "user", "content": f"Synthesise a report for #{ticket.id}"}],
        )
        report = TriageReport(run_id=run_id, ticket=TicketSummary.of(ticket), summary="simulated")
        await store.finish_run(run_id, report)
        await client.chat_postMessage(channel=CHANNEL, thread_ts=ts, text=f"Report for #{ticket.id}")
        await client.chat_update(channel=CHANNEL, ts=ts, text=f"#{ticket.id}: done")
        durations.append(time.monotonic() - t0)

    queue = TriageQueue(store, run, concurrency=args.concurrency)
    everything = TicketFilter.build(statuses=["new", "open"])
    poller = ZendeskPoller(source, store, everything, queue.submit, lookback_minutes=60, page_interval_s=0)

    started = time.monotonic()
    stats = await poller.poll_once()
    enqueued_s = time.monotonic() - started
    drained = await queue.drain(args.timeout)
    total_s = time.monotonic() - started

    again = await poller.poll_once()  # nothing new
    replay = ZendeskPoller(
        source,
        store,
        everything,
        queue.submit,
        lookback_minutes=60,
        cursor_name="bench:replay",
        page_interval_s=0,
    )
    replayed = await replay.poll_once()  # the whole export again: every claim exists already
    await queue.drain(30)

    def count_runs() -> list[tuple[int, int]]:
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(triage_runs.c.ticket_id, func.count()).group_by(triage_runs.c.ticket_id)
            )
            return [(int(r[0]), int(r[1])) for r in rows]

    per_ticket = dict(await asyncio.to_thread(count_runs))
    parents = slack.top_level(CHANNEL)
    parent_ids = [m.text.split(":")[0] for m in parents]
    expected = {60_000 + i for i in range(args.tickets)}
    once = (
        set(per_ticket) == expected
        and all(n == 1 for n in per_ticket.values())
        and sorted(runs_started) == sorted(expected)
        and len(parents) == args.tickets == len(set(parent_ids))
        and again.dispatched == 0
        and replayed.dispatched == args.tickets
        and queue.stats.duplicates == args.tickets
    )
    mean = statistics.mean(durations) if durations else 0.0
    rate = len(durations) / total_s * 60 if total_s else 0.0
    rss = peak_rss_mb()

    print(f"burst intake: {args.tickets} new tickets, one poll, TRIAGE_CONCURRENCY={args.concurrency}")
    print("| metric | value |")
    print("|---|---|")
    print(
        f"| poll + claim/enqueue all | {enqueued_s:.2f} s ({stats.pages} page, {stats.dispatched} claimed) |"
    )
    print(
        f"| total time until every report was posted | {total_s:.1f} s{'' if drained else ' (TIMED OUT)'} |"
    )
    print(f"| triages completed | {len(durations)} |")
    print(f"| throughput | {rate:.0f} triages/min |")
    print(f"| mean / p95 triage latency (in a slot) | {mean:.2f} s / {_p95(durations):.2f} s |")
    print(f"| ideal (concurrency / mean latency) | {args.concurrency / mean * 60 if mean else 0:.0f} /min |")
    print(f"| peak concurrent triages | {queue.stats.peak_running} (limit {args.concurrency}) |")
    print(f"| peak RSS (bench + all fakes in one process) | {rss:.0f} MB (target ≤ 300 MB) |")
    print(f"| re-poll / full replay dispatches → new runs | {again.dispatched} / {replayed.dispatched} → 0 |")
    print(f"| Slack parent messages | {len(parents)} for {args.tickets} tickets |")
    print(f"| each ticket triaged exactly once | {'YES' if once else 'NO'} |")
    at4 = 4 / mean * 60 if mean else 0
    print(f"(at the default TRIAGE_CONCURRENCY=4 expect ≈ {at4:.0f} triages/min with these latencies)")

    await queue.aclose()
    await model.close()
    await source.aclose()
    await store.close()
    for fake in (zendesk, slack, model_api):
        fake.stop()
    tmp.cleanup()
    return 0 if once and drained and rss <= 300 else 1


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--timeout", type=float, default=170.0, help="give up waiting after this many seconds"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
