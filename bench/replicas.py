"""Benchmark: a burst of tickets on 1 and on 3 `triagebot run --http` replicas sharing one PostgreSQL.

Each replica is a real OS process (`python -m bot.cli run --http`) running the production pipeline:
Zendesk fetch (zenpy), intake refinement and synthesis through `AnthropicModel`, GitHub and npm/PyPI
research, the Slack card and report, fencing and the per-ticket advisory lock. The fakes run in this
process on 127.0.0.1 at the latencies of `bench/latency.py`, where each number's source is given:
the model answers with the demo's recorded answers after time-to-first-token + output tokens ÷ output
speed (intake ≈ 0.9–1.9 s, synthesis ≈ 9–19 s), GitHub search 0.25–1.2 s and other GitHub calls
0.1–0.3 s, Slack and Zendesk 0.1–0.3 s per call, npm/PyPI 0.05–0.15 s. No fake rate-limits.

The replicas share one posting pace per Slack channel (`bot/slack_pacing.py`: after a burst of 3, one
chat.postMessage per second per channel, what Slack allows). Each ticket posts two messages into
TRIAGE_CHANNEL (its card and its report), so at the default pace all replicas together deliver at
most ≈ 30 tickets/min into one channel however many run. `--slack-post-interval 0` lifts the pace to
measure what the replicas themselves can do.

The burst arrives as signed Zendesk webhooks spread round-robin over the replicas (what a load
balancer does), all at once. Polling is off: a poll burst is claimed and worked by the one replica
that holds the poll lease.

Prints, per replica count: time until every report was posted, triages/min and the speed-up, whether
every ticket got exactly one run, one parent card and one report, model-written reports (not
evidence-only), peak RSS per replica (VmHWM), the most PostgreSQL connections the replicas held at once
(pg_stat_activity, by application_name), CPU seconds per triage (all replicas) and this process's CPU
share, the load average; then the median phase times of one triage. Target: 3 replicas ≥ 2.5× the
throughput of 1 at the same TRIAGE_CONCURRENCY.

    .venv/bin/python bench/replicas.py [--tickets 300] [--concurrency 8] [--replicas 1 3] [--repeat 1]
                                       [--slack-post-interval SECONDS]

Needs PostgreSQL at 127.0.0.1:5432 (database `test`, trust auth); each run uses a throw-away schema.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
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

from bench.latency import SlowGitHub, SlowRegistry, SlowSlack, SlowZendesk, TimedAnthropic
from integrations.store import create_store_engine
from integrations.store_schema import model_calls, triage_runs
from tests.fakes.http import free_port
from tests.replica_support import (
    LATEST_NPM,
    LATEST_PYPI,
    Fakes,
    Replica,
    healthy,
    parent_counts,
    process_cpu_seconds,
    report_counts,
    seed,
    send_webhook,
    start_replicas,
    until,
)

PG = "postgresql://postgres@127.0.0.1:5432/test"
FIRST_ID = 70_000
PHASES = ("intake_ms", "research_ms", "synthesis_ms", "total_ms")


@dataclass
class Result:
    replicas: int
    seconds: float
    per_min: float
    exactly_once: bool
    llm_reports: int
    model_calls: int
    searches: int
    slack_posts: int
    rss_mb: list[float]
    pg_connections: int
    replica_cpu_s: float
    bench_cpu_share: float
    load: tuple[float, float, float]
    phases_ms: dict[str, float]


async def run_burst(n_replicas: int, args: argparse.Namespace, workdir: Path) -> Result:
    schema = f"triagebot_bench_{uuid.uuid4().hex[:10]}"
    app = f"triagebot-bench-{schema[-10:]}"
    admin = psycopg.connect(PG, autocommit=True)
    admin.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{PG}?options=-csearch_path%3D{schema}&application_name={app}"

    fakes = Fakes(
        slack=SlowSlack(seed=1),
        zendesk=SlowZendesk(seed=2),
        github=SlowGitHub(seed=3),
        registry=SlowRegistry(seed=4, npm=LATEST_NPM, pypi=LATEST_PYPI),
        model=TimedAnthropic(seed=5),
    ).start()
    slack, github = fakes.slack, fakes.github
    ids = [FIRST_ID + i for i in range(args.tickets)]
    for ticket_id in ids:
        seed(fakes.zendesk, ticket_id, seconds_ago=60)

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
    replicas = [Replica(f"bench-{i}", free_port(), workdir / f"{schema}-{i}.log") for i in range(n_replicas)]
    engine = create_store_engine(url)
    peak_connections = 0
    try:
        await start_replicas(
            replicas,
            fakes,
            url,
            workdir,
            log_level="WARNING",
            triage_concurrency=str(args.concurrency),
            zendesk_workers=str(args.concurrency),
            slack_update_interval_seconds="1",
            run_stale_after_seconds="120",
            **pace_settings(args),
        )
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

        cpu_before = [r.cpu_seconds() for r in replicas]
        bench_before = process_cpu_seconds(os.getpid())
        searches_before = len(github.calls("/search/issues"))
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
        replica_cpu = sum(r.cpu_seconds() - b for r, b in zip(replicas, cpu_before, strict=True))
        bench_share = (process_cpu_seconds(os.getpid()) - bench_before) / seconds
        searches = len(github.calls("/search/issues")) - searches_before
        posts = sum(1 for call in list(slack.api_calls) if call.method == "chat.postMessage")
        load = os.getloadavg()
        rss = [r.peak_rss_mb() for r in replicas]
        await asyncio.sleep(1.0)  # a late duplicate would show up now

        with engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(select(triage_runs)).mappings()]
            calls = int(conn.execute(select(func.count()).select_from(model_calls)).scalar_one())
        runs = Counter(int(r["ticket_id"]) for r in rows)
        expected = Counter(ids)
        once = runs == expected and report_counts(slack) == expected and parent_counts(slack) == expected
        phases = {p: statistics.median(float(r[p] or 0) for r in rows) for p in PHASES}
        return Result(
            replicas=n_replicas,
            seconds=seconds,
            per_min=len(ids) / seconds * 60,
            exactly_once=once,
            llm_reports=sum(1 for r in rows if r["mode"] == "llm"),
            model_calls=calls,
            searches=searches,
            slack_posts=posts,
            rss_mb=rss,
            pg_connections=peak_connections,
            replica_cpu_s=replica_cpu,
            bench_cpu_share=bench_share,
            load=load,
            phases_ms=phases,
        )
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))
        await session.close()
        engine.dispose()
        fakes.stop()
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def pace_settings(args: argparse.Namespace) -> dict[str, str]:
    """SLACK_POST_INTERVAL_SECONDS when given (0 lifts the shared channel pace); else the bot's default."""
    if args.slack_post_interval is None:
        return {}
    return {"slack_post_interval_seconds": str(args.slack_post_interval)}


def pace_label(args: argparse.Namespace) -> str:
    if args.slack_post_interval is None:
        return "Slack channel pace at its default (SLACK_POST_INTERVAL_SECONDS=1, burst 3)"
    if args.slack_post_interval <= 0:
        return "Slack channel pace off (SLACK_POST_INTERVAL_SECONDS=0)"
    return f"SLACK_POST_INTERVAL_SECONDS={args.slack_post_interval:g}"


def print_tables(results: list[Result], args: argparse.Namespace) -> None:
    base = statistics.median(r.per_min for r in results if r.replicas == results[0].replicas)
    print(
        f"\n{args.tickets}-ticket webhook burst, TRIAGE_CONCURRENCY={args.concurrency} per replica, "
        f"PostgreSQL, {pace_label(args)}, {os.cpu_count()} CPU cores\n"
    )
    print(
        "| replicas | time until every report posted | triages/min | speed-up | exactly once "
        "| model-written reports | peak RSS per replica | PostgreSQL connections (peak) "
        "| CPU per triage (replicas) | bench process CPU | load average (1/5/15 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rss = ", ".join(f"{m:.0f}" for m in r.rss_mb)
        print(
            f"| {r.replicas} | {r.seconds:.1f} s | {r.per_min:.0f} | {r.per_min / base:.2f}× | "
            f"{'yes' if r.exactly_once else 'NO'} | {r.llm_reports}/{args.tickets} | {rss} MB | "
            f"{r.pg_connections} | {r.replica_cpu_s / args.tickets:.2f} s | {100 * r.bench_cpu_share:.0f} % | "
            f"{r.load[0]:.1f} / {r.load[1]:.1f} / {r.load[2]:.1f} |"
        )
    print("\nOne triage, median per run (from the runs table), and what the fakes served per triage:\n")
    print(
        "| replicas | intake | research | synthesis | engine total | model calls | GitHub searches | Slack posts |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        p = r.phases_ms
        print(
            f"| {r.replicas} | {p['intake_ms'] / 1000:.1f} s | "
            f"{p['research_ms'] / 1000:.1f} s | {p['synthesis_ms'] / 1000:.1f} s | {p['total_ms'] / 1000:.1f} s | "
            f"{r.model_calls / args.tickets:.1f} | {r.searches / args.tickets:.1f} | "
            f"{r.slack_posts / args.tickets:.1f} |"
        )


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for key in ("ZENPY_FORCE_NETLOC", "ZENPY_FORCE_SCHEME"):
        os.environ.pop(key, None)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        for _ in range(args.repeat):
            for n in args.replicas:
                print(
                    f"… {args.tickets} tickets on {n} replica(s), TRIAGE_CONCURRENCY={args.concurrency}",
                    file=sys.stderr,
                )
                results.append(await run_burst(n, args, Path(tmp)))
    print_tables(results, args)
    if args.repeat > 1:
        print(
            "\nMedian triages/min: "
            + ", ".join(
                f"{n} replica(s) {statistics.median(r.per_min for r in results if r.replicas == n):.0f}"
                for n in args.replicas
            )
        )
    ok = all(r.exactly_once and r.llm_reports == args.tickets for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--repeat", type=int, default=1, help="run each replica count this many times")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--slack-post-interval",
        type=float,
        default=None,
        help="SLACK_POST_INTERVAL_SECONDS for the replicas (0 = no shared channel pace; default: the bot's)",
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
