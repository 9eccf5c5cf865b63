"""Benchmark: a burst of N new Zendesk tickets appearing in one poll.

Everything speaks real protocols on 127.0.0.1 and runs the bot's real code path: the poller reads the
fake Zendesk's cursor export through zenpy (`ZendeskTicketSource`), claims every matching ticket in a
real SqlStore (SQLite file) through `TriageQueue`, and each claim is delivered by the production
`bot.delivery.deliver_claim` under the concurrency limit: fetch the ticket through zenpy, decide
(triage / re-triage / skip), post the parent card on the fake Slack (slack-sdk, with its retry
handlers), run the real `TriageEngine` — intake refinement and synthesis through `AnthropicModel`
(anthropic SDK) against the fake Messages API, and a simulated research source — with live card
updates (≤ 1/s), finish the run, post the report into the thread and record the ticket state. The
fakes add realistic latencies (model 0.3–1.8 s, Slack 50–200 ms per call; research 0.4–1.2 s).

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

import re
from collections import Counter
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from bot.delivery import deliver_claim
from bot.intake_filters import TicketFilter
from bot.intake_queue import TriageQueue
from bot.poller import ZendeskPoller
from bot.settings import Settings
from bot.slack_runtime import runtime_for
from bot.wiring import Services, build_model, triage_config
from integrations.store import SqlStore, triage_runs
from integrations.zendesk import ZendeskTicketSource
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from triage.engine import TriageEngine
from triage.intake import IntakeRefinement
from triage.models import Evidence, EvidenceStatus, Intake, ResearchTask
from triage.playbooks import Playbook, load_playbooks, load_sdk_catalogue
from triage.store import Claim

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


class SimulatedResearch:
    """One research source standing in for the parallel research phase (see bench/research_parallelism.py)."""

    name = "github"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def plan(self, intake: Intake, playbook: Playbook) -> list[ResearchTask]:
        return [
            ResearchTask(key="github:search", source=self.name, tool="search_issues", description="issues")
        ]

    async def execute(self, task: ResearchTask) -> list[Evidence]:
        await asyncio.sleep(self.rng.uniform(*RESEARCH_S))
        return [
            Evidence(
                source=self.name,
                tool=task.tool,
                status=EvidenceStatus.ok,
                title="posthog-js#1234 isFeatureEnabled false after identify",
                url="https://github.com/PostHog/posthog-js/issues/1234",
            )
        ]


def model_answer(body: dict[str, Any]) -> dict[str, Any]:
    """The fake model's structured output: an intake refinement or a short synthesis."""
    if "haiku" in str(body.get("model", "")):
        return IntakeRefinement(product_area="feature_flags", language="en").model_dump(mode="json")
    return {"summary": "Flags evaluate false right after identify; likely the known posthog-js issue [E1]."}


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
    model_api = SlowAnthropic(default=model_answer)
    for fake in (zendesk, slack, model_api):
        fake.start()
    tmp = tempfile.TemporaryDirectory(prefix="burst-intake-")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token="xoxb-bench",
        slack_signing_secret="bench",
        slack_api_url=slack.api_url,
        triage_channel=CHANNEL,
        zendesk_url=zendesk.url,
        zendesk_email="admin@example.com",
        zendesk_api_token="t",
        zendesk_workers=4,
        anthropic_api_key=model_api.api_key,
        anthropic_base_url=model_api.url,
        database_url=f"sqlite:///{tmp.name}/bench.db",
        triage_concurrency=args.concurrency,
    )
    store = await SqlStore.connect(settings.database_url)
    source = ZendeskTicketSource(zendesk.url, email="admin@example.com", api_token="t", workers=4)
    engine = TriageEngine(
        tickets=source,
        sources=[SimulatedResearch(rng)],
        model=build_model(settings),
        playbooks=load_playbooks(None),
        sdk_catalogue=load_sdk_catalogue(None),
        config=triage_config(settings),
    )
    services = Services(
        settings=settings,
        engine=engine,
        store=store,
        zendesk=source,
        triage_slots=asyncio.Semaphore(args.concurrency),
    )
    runtime_for(services)  # the Slack client (slack-sdk with retry handlers) against the fake

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
    outcomes: Counter[str] = Counter()

    async def run(claim: Claim, trigger: str) -> None:
        t0 = time.monotonic()
        runs_started.append(claim.run.ticket_id)
        result = await deliver_claim(services, claim, trigger)
        outcomes[result.status] += 1
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

    def count_modes() -> dict[str, int]:
        with store.engine.connect() as conn:
            rows = conn.execute(select(triage_runs.c.mode, func.count()).group_by(triage_runs.c.mode))
            return {str(r[0]): int(r[1]) for r in rows}

    per_ticket = dict(await asyncio.to_thread(count_runs))
    modes = await asyncio.to_thread(count_modes)
    parents = slack.top_level(CHANNEL)
    parent_ids = [_ticket_of(m.text) for m in parents]
    reports = Counter(
        _ticket_of(m.text)
        for m in list(slack.messages.values())
        if m.thread_ts is not None and m.text.startswith("Triage report for #")
    )
    expected = {60_000 + i for i in range(args.tickets)}
    once = (
        set(per_ticket) == expected
        and all(n == 1 for n in per_ticket.values())
        and sorted(runs_started) == sorted(expected)
        and outcomes == Counter({"done": args.tickets})
        and len(parents) == args.tickets == len(set(parent_ids))
        and set(parent_ids) == expected
        and set(reports) == expected
        and all(n == 1 for n in reports.values())
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
    print(
        f"| Slack parent messages / reports in threads | {len(parents)} / {sum(reports.values())} for {args.tickets} tickets |"
    )
    print(f"| Slack Web API calls (post, update, permalink …) | {len(slack.api_calls)} |")
    print(f"| delivery outcomes / report modes | {dict(outcomes)} / {modes} |")
    print(f"| each ticket triaged exactly once | {'YES' if once else 'NO'} |")
    at4 = 4 / mean * 60 if mean else 0
    print(f"(at the default TRIAGE_CONCURRENCY=4 expect ≈ {at4:.0f} triages/min with these latencies)")

    await queue.aclose()
    await services.aclose()  # engine (zenpy pool, model client) and store
    for fake in (zendesk, slack, model_api):
        fake.stop()
    tmp.cleanup()
    return 0 if once and drained and rss <= 300 else 1


def _ticket_of(text: str) -> int:
    match = re.search(r"#(\d+)", text)
    return int(match.group(1)) if match else -1


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
