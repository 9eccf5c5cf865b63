"""Benchmark: a burst of tickets on 1 and on 3 `triagebot run --http` replicas sharing one PostgreSQL.

Each replica is a real OS process (`python -m bot.cli run --http`); the fakes run in this process on
127.0.0.1 with realistic latencies: the Anthropic Messages API (intake 0.3–0.7 s, synthesis 0.8–1.8 s,
scripted answers through the real `AnthropicModel`), GitHub search 0.25–1.2 s, Slack 50–200 ms per
call; Zendesk and npm/PyPI answer at once. The burst arrives as signed Zendesk webhooks spread
round-robin over the replicas (what a load balancer does), all at once. Polling is off: a poll burst
is claimed and worked by the one replica that holds the poll lease.

Prints, per replica count: time until every report was posted, triages/min, exactly-once (one run,
one parent card and one report per ticket), peak RSS per replica (VmHWM) and the most PostgreSQL
connections the replicas held at once (pg_stat_activity, by application_name). Target: 3 replicas
≥ 2.5× the throughput of 1 at the same TRIAGE_CONCURRENCY.

    .venv/bin/python bench/replicas.py [--tickets 300] [--concurrency 8] [--replicas 1 3]

Needs PostgreSQL at 127.0.0.1:5432 (database `test`, trust auth); each run uses a throw-away schema.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import psycopg
from sqlalchemy import func, select

from bench.burst_intake import SlowAnthropic, SlowSlack, model_answer
from integrations.store import create_store_engine
from integrations.store_schema import triage_runs
from tests.fakes.http import free_port
from tests.fakes.registries import RegistryFake
from tests.fakes.zendesk import FakeZendesk
from tests.replica_support import (
    GatedGitHub,
    Replica,
    healthy,
    parent_counts,
    replica_env,
    report_counts,
    seed,
    send_webhook,
    until,
)
from tests.slack_support import ZD_EMAIL, ZD_TOKEN

PG = "postgresql://postgres@127.0.0.1:5432/test"
FIRST_ID = 70_000


@dataclass
class Result:
    replicas: int
    seconds: float
    per_min: float
    exactly_once: bool
    rss_mb: list[float]
    pg_connections: int


async def run_burst(n_replicas: int, args: argparse.Namespace, workdir: Path) -> Result:
    schema = f"triagebot_bench_{uuid.uuid4().hex[:10]}"
    app = f"triagebot-bench-{schema[-10:]}"
    admin = psycopg.connect(PG, autocommit=True)
    admin.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{PG}?options=-csearch_path%3D{schema}&application_name={app}"

    slack, zendesk = SlowSlack(), FakeZendesk()
    model = SlowAnthropic(default=model_answer)
    github = GatedGitHub(latency_s=(0.25, 1.2))
    github.release.set()
    registry = RegistryFake(npm={"posthog-js": "1.165.0"}, pypi={"posthog": "3.7.4"})
    for fake in (slack, zendesk, model, github, registry):
        fake.start()
    zendesk.accept_token(ZD_EMAIL, ZD_TOKEN)
    ids = [FIRST_ID + i for i in range(args.tickets)]
    for ticket_id in ids:
        seed(zendesk, ticket_id, seconds_ago=60)

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
    replicas = [Replica(f"bench-{i}", free_port(), workdir / f"{schema}-{i}.log") for i in range(n_replicas)]
    engine = create_store_engine(url)
    peak_connections = 0
    try:
        for replica in replicas:
            env = replica_env(
                replica.name,
                slack=slack,
                zendesk=zendesk,
                github=github,
                registry=registry,
                database_url=url,
                anthropic_api_key=model.api_key,
                anthropic_base_url=model.url,
                anthropic_max_retries="0",
                log_level="WARNING",
                triage_concurrency=str(args.concurrency),
                zendesk_workers=str(args.concurrency),
                slack_update_interval_seconds="1",
                run_stale_after_seconds="120",
            )
            await replica.start(env, workdir)
        await until(lambda: healthy(session, replicas), 300, "healthy replicas")

        def done() -> int:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        select(func.count()).select_from(triage_runs).where(triage_runs.c.status == "done")
                    ).scalar_one()
                )

        def connections() -> int:
            row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,))
            return int(row.fetchone()[0])  # type: ignore[index]

        started = time.monotonic()
        gate = asyncio.Semaphore(64)

        async def fire(i: int, ticket_id: int) -> int:
            async with gate:
                return await send_webhook(session, replicas[i % n_replicas], ticket_id)

        statuses = await asyncio.gather(*(fire(i, t) for i, t in enumerate(ids)))
        assert set(statuses) == {202}, Counter(statuses)
        deadline = started + args.timeout
        while await asyncio.to_thread(done) < len(ids) or sum(report_counts(slack).values()) < len(ids):
            peak_connections = max(peak_connections, await asyncio.to_thread(connections))
            if time.monotonic() > deadline:
                raise SystemExit(f"{n_replicas} replica(s): not finished after {args.timeout}s")
            await asyncio.sleep(0.5)
        seconds = time.monotonic() - started
        rss = [r.peak_rss_mb() for r in replicas]
        await asyncio.sleep(1.0)  # a late duplicate would show up now

        with engine.connect() as conn:
            runs = Counter(int(r[0]) for r in conn.execute(select(triage_runs.c.ticket_id)))
        expected = Counter(ids)
        once = runs == expected and report_counts(slack) == expected and parent_counts(slack) == expected
        return Result(n_replicas, seconds, len(ids) / seconds * 60, once, rss, peak_connections)
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))
        await session.close()
        engine.dispose()
        for fake in (slack, zendesk, model, github, registry):
            fake.stop()
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for key in ("ZENPY_FORCE_NETLOC", "ZENPY_FORCE_SCHEME"):
        os.environ.pop(key, None)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        for n in args.replicas:
            print(
                f"… {args.tickets} tickets on {n} replica(s), TRIAGE_CONCURRENCY={args.concurrency}",
                file=sys.stderr,
            )
            results.append(await run_burst(n, args, Path(tmp)))
    base = results[0].per_min
    print(
        f"\n{args.tickets}-ticket webhook burst, TRIAGE_CONCURRENCY={args.concurrency} per replica, PostgreSQL\n"
    )
    print(
        "| replicas | time until every report posted | triages/min | speed-up | exactly once | peak RSS per replica | PostgreSQL connections (peak) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        rss = ", ".join(f"{m:.0f}" for m in r.rss_mb)
        print(
            f"| {r.replicas} | {r.seconds:.1f} s | {r.per_min:.0f} | {r.per_min / base:.2f}× | "
            f"{'yes' if r.exactly_once else 'NO'} | {rss} MB | {r.pg_connections} |"
        )
    ok = all(r.exactly_once for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--timeout", type=float, default=900.0)
    sys.exit(asyncio.run(main(parser.parse_args())))
