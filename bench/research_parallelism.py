"""Benchmark: research parallelism and orchestration overhead of the real engine.

N triages of the bundled example tickets run through `TriageEngine` with simulated research sources
(each task sleeps a random latency from a realistic range) and no model (evidence-only synthesis).
Prints, per triage, research wall time ÷ slowest task (target ≤ 1.10), the orchestration overhead
(total triage time minus the slowest task), and the process's peak RSS.

    .venv/bin/python bench/research_parallelism.py [--triages 50] [--tasks 12] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.wiring import BundledTicketSource
from triage.engine import TriageConfig, TriageEngine
from triage.models import Evidence, EvidenceStatus, Intake, ResearchTask
from triage.playbooks import Playbook, bundled_playbooks

LATENCY_RANGES = {  # seconds, roughly what the real services answer in
    "posthog_mcp": (0.15, 0.9),
    "github": (0.25, 1.2),
    "registry": (0.05, 0.3),
}


class SimulatedSource:
    def __init__(self, name: str, tasks: int, rng: random.Random) -> None:
        self.name = name
        self.tasks = tasks
        self.rng = rng
        self.slowest: dict[str, float] = {}

    def plan(self, intake: Intake, playbook: Playbook) -> list[ResearchTask]:
        lo, hi = LATENCY_RANGES[self.name]
        return [
            ResearchTask(
                key=f"{self.name}:{i}",
                source=self.name,
                tool="simulated",
                arguments={"delay": round(self.rng.uniform(lo, hi), 3)},
                description=f"simulated {self.name} query {i}",
            )
            for i in range(self.tasks)
        ]

    async def execute(self, task: ResearchTask) -> list[Evidence]:
        await asyncio.sleep(float(task.arguments["delay"]))
        return [
            Evidence(source=self.name, status=EvidenceStatus.ok, title=task.description, summary="simulated")
        ]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(triages: int, tasks_per_source: int, concurrency: int) -> None:
    rng = random.Random(42)
    sources = [SimulatedSource(name, tasks_per_source, rng) for name in LATENCY_RANGES]
    tickets = BundledTicketSource()
    engine = TriageEngine(
        tickets=tickets,
        sources=sources,
        model=None,
        playbooks=bundled_playbooks(),
        config=TriageConfig(research_deadline_s=30, task_timeout_s=10),
    )
    ids = tickets.ids()
    ratios: list[float] = []
    overheads: list[float] = []
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        ticket = await tickets.get_ticket(ids[i % len(ids)])
        async with slots:
            t0 = time.perf_counter()
            report = await engine.triage(ticket)
            total = time.perf_counter() - t0
        slowest = max(float(e.latency_ms) for e in report.evidence) / 1000
        research = report.timings.research_ms / 1000
        ratios.append(research / slowest)
        overheads.append((total - slowest) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(triages)))
    wall = time.perf_counter() - t0
    n_tasks = tasks_per_source * len(sources)

    def pct(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(q * len(values)))]

    print(f"{triages} triages × {n_tasks} research tasks, {concurrency} triages at once, wall {wall:.2f} s")
    print()
    print("| metric | median | p95 | max | target |")
    print("|---|---|---|---|---|")
    print(
        f"| research wall ÷ slowest task | {statistics.median(ratios):.3f} | {pct(ratios, 0.95):.3f} "
        f"| {max(ratios):.3f} | ≤ 1.10 |"
    )
    print(
        f"| orchestration overhead per triage (ms) | {statistics.median(overheads):.1f} "
        f"| {pct(overheads, 0.95):.1f} | {max(overheads):.1f} | — |"
    )
    print(f"| peak RSS (MB) | {peak_rss_mb():.0f} | | | — |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triages", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=6, help="tasks per simulated source")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.triages, args.tasks, args.concurrency))
