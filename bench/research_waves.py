"""Benchmark: research wave 1 overlaps the intake model; wave 2 runs the model's extra queries.

Each triage runs through the real `TriageEngine` with a simulated intake model (answers after
`intake` seconds with 2-4 English search queries), a simulated research source (wave-1 tasks sleep a
random latency from a realistic range; each model query becomes a wave-2 task with its own latency) and
a simulated synthesis call (sleeps, then fails, so the report is evidence-only; its measured time is
used). Prints per scenario end-to-end ÷ critical path, where

    critical path = max(intake model, slowest wave-1 task) + slowest wave-2 task + synthesis

and, for comparison, what the old sequential order would have taken (intake, then all research, then
synthesis). Target: ratio ≤ 1.05.

    .venv/bin/python bench/research_waves.py [--triages 20] [--scale 0.2] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from triage.engine import TriageConfig, TriageEngine
from triage.intake import IntakeRefinement
from triage.models import Evidence, EvidenceStatus, Intake, ResearchTask, Ticket, Usage
from triage.playbooks import Playbook, bundled_playbooks
from triage.protocols import LanguageModelError, ModelResult

T = TypeVar("T", bound=BaseModel)

# (name, intake model s, wave-1 task latencies s (low, high), wave-1 tasks, wave-2 s (low, high), synthesis s)
SCENARIOS = [
    ("model slower than research", 3.0, (0.3, 1.5), 8, (0.4, 1.2), 6.0),
    ("research slower than model", 1.2, (0.5, 4.0), 10, (0.4, 1.2), 6.0),
    ("both about equal", 2.0, (0.4, 2.0), 8, (0.3, 1.0), 5.0),
]


class SimSource:
    name = "github"

    def __init__(self, wave1: list[float], wave2: tuple[float, float], rng: random.Random) -> None:
        self.wave1, self.wave2, self.rng = wave1, wave2, rng
        self.wave2_latencies: list[float] = []

    def plan(self, intake: Intake, playbook: Playbook) -> list[ResearchTask]:
        tasks = [
            ResearchTask(key=f"w1:{i}", source=self.name, tool="search", arguments={"delay": d})
            for i, d in enumerate(self.wave1)
        ]
        for i, query in enumerate(intake.search_queries):
            delay = self.rng.uniform(*self.wave2)
            self.wave2_latencies.append(delay)
            tasks.append(
                ResearchTask(
                    key=f"w2:{i}", source=self.name, tool="search", arguments={"delay": delay, "q": query}
                )
            )
        return tasks

    async def execute(self, task: ResearchTask) -> list[Evidence]:
        await asyncio.sleep(float(task.arguments["delay"]))
        return [Evidence(source=self.name, status=EvidenceStatus.ok, title=task.key)]


class SimModel:
    def __init__(self, intake_s: float, synthesis_s: float, queries: int) -> None:
        self.intake_s, self.synthesis_s, self.queries = intake_s, synthesis_s, queries

    async def complete(
        self, *, purpose: str, system: list[str], prompt: str, output_type: type[T], max_tokens: int = 4096
    ) -> ModelResult[T]:
        if purpose == "intake":
            await asyncio.sleep(self.intake_s)
            answer: Any = IntakeRefinement(
                product_area="surveys",
                search_queries=[f"survey not shown variant {w}" for w in "abcd"[: self.queries]],
            )
            return ModelResult(output=answer, usage=Usage(calls=1), model="sim")
        await asyncio.sleep(self.synthesis_s)
        raise LanguageModelError("simulated synthesis: evidence-only report")


async def one(scenario: tuple[Any, ...], scale: float, rng: random.Random) -> tuple[float, float, float]:
    _, intake_s, w1, n1, w2, synth_s = scenario
    wave1 = [rng.uniform(*w1) * scale for _ in range(n1)]
    source = SimSource(wave1, (w2[0] * scale, w2[1] * scale), rng)
    model = SimModel(intake_s * scale, synth_s * scale, rng.randint(2, 4))
    engine = TriageEngine(
        tickets=None,
        sources=[source],
        model=model,
        playbooks=bundled_playbooks(),
        config=TriageConfig(research_deadline_s=60, task_timeout_s=60),
    )
    ticket = Ticket(
        id=1, subject="Survey not shown again", description="The survey does not show after close."
    )
    t0 = time.perf_counter()
    report = await engine.triage(ticket)
    total = time.perf_counter() - t0
    synthesis = report.timings.synthesis_ms / 1000
    critical = max(intake_s * scale, max(wave1)) + max(source.wave2_latencies, default=0.0) + synthesis
    sequential = intake_s * scale + max([*wave1, *source.wave2_latencies]) + synthesis
    return total, critical, sequential


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--triages", type=int, default=20)
    parser.add_argument("--scale", type=float, default=0.2, help="multiply every simulated latency")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the simulated synthesis failure logs once per triage
    rng = random.Random(args.seed)
    print(f"{args.triages} triages per scenario, latencies × {args.scale}\n")
    print("| scenario | median e2e ÷ critical path | max e2e ÷ critical path | sequential ÷ critical path |")
    print("|---|---|---|---|")
    for scenario in SCENARIOS:
        ratios, seq = [], []
        for _ in range(args.triages):
            total, critical, sequential = await one(scenario, args.scale, rng)
            ratios.append(total / critical)
            seq.append(sequential / critical)
        print(
            f"| {scenario[0]} | {statistics.median(ratios):.3f} | {max(ratios):.3f} | "
            f"{statistics.median(seq):.2f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
