"""The parallel runner: wall ≈ slowest task, per-task timeout, overall deadline, failures as evidence."""

from __future__ import annotations

import asyncio
import time

from triage.models import Evidence, EvidenceStatus, Intake, ResearchTask
from triage.playbooks import Playbook
from triage.protocols import ProgressEvent
from triage.research import run_research, summarize_sources


class SleepySource:
    """A research source whose tasks sleep `arguments['delay']` seconds, then answer or fail."""

    def __init__(self, name: str = "sleepy") -> None:
        self.name = name
        self.running = 0
        self.max_running = 0

    def plan(self, intake: Intake, playbook: Playbook) -> list[ResearchTask]:
        return []

    async def execute(self, task: ResearchTask) -> list[Evidence]:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(float(task.arguments.get("delay", 0)))
            if task.arguments.get("raise"):
                raise RuntimeError("backend exploded")
            n = int(task.arguments.get("rows", 1))
            return [
                Evidence(source=self.name, status=EvidenceStatus.ok, title=f"{task.key} row {i}")
                for i in range(n)
            ]
        finally:
            self.running -= 1


def task(key: str, source: str = "sleepy", **arguments: object) -> ResearchTask:
    return ResearchTask(key=key, source=source, tool="t", arguments=dict(arguments), description=key)


async def test_tasks_run_concurrently_wall_close_to_slowest() -> None:
    src = SleepySource()
    delays = [0.3, 0.2, 0.25, 0.1, 0.3, 0.15]
    tasks = [task(f"t{i}", delay=d) for i, d in enumerate(delays)]
    t0 = time.perf_counter()
    evidence = await run_research(tasks, {"sleepy": src}, deadline_s=10, task_timeout_s=5)
    wall = time.perf_counter() - t0
    assert src.max_running == len(tasks)  # all started at once
    assert wall < 0.6 * sum(delays)  # nowhere near the sum (1.3 s)
    assert [e.id for e in evidence] == [f"E{i}" for i in range(1, 7)]
    assert [e.task_key for e in evidence] == [t.key for t in tasks]  # plan order, not finish order
    assert all(e.status is EvidenceStatus.ok for e in evidence)


async def test_per_task_timeout_and_exception_become_evidence() -> None:
    src = SleepySource()
    tasks = [task("slow", delay=5), task("boom", **{"raise": True}), task("fine", rows=2)]
    evidence = await run_research(tasks, {"sleepy": src}, deadline_s=10, task_timeout_s=0.2)
    by_key = {e.task_key: e for e in evidence}
    assert by_key["slow"].status is EvidenceStatus.timeout
    assert by_key["boom"].status is EvidenceStatus.error
    assert "backend exploded" in by_key["boom"].summary
    assert [e.status for e in evidence if e.task_key == "fine"] == [EvidenceStatus.ok] * 2
    assert len(evidence) == 4


async def test_overall_deadline_cuts_stragglers() -> None:
    src = SleepySource()
    tasks = [task("quick", delay=0.05), task("straggler", delay=30)]
    t0 = time.perf_counter()
    evidence = await run_research(tasks, {"sleepy": src}, deadline_s=0.3, task_timeout_s=60)
    assert time.perf_counter() - t0 < 5
    statuses = {e.task_key: e.status for e in evidence}
    assert statuses == {"quick": EvidenceStatus.ok, "straggler": EvidenceStatus.timeout}
    assert "deadline" in evidence[1].summary


async def test_unknown_source_and_empty_result() -> None:
    src = SleepySource()
    tasks = [task("ghost", source="nope"), task("empty", rows=0)]
    evidence = await run_research(tasks, {"sleepy": src}, deadline_s=2, task_timeout_s=1)
    assert [e.status for e in evidence] == [EvidenceStatus.error, EvidenceStatus.empty]


async def test_progress_callback_sync_async_and_failing() -> None:
    src = SleepySource()
    tasks = [task(f"t{i}", delay=0.01) for i in range(3)]
    seen: list[ProgressEvent] = []

    async def on_event(event: ProgressEvent) -> None:
        seen.append(event)

    await run_research(tasks, {"sleepy": src}, deadline_s=2, task_timeout_s=1, progress=on_event)
    assert [e.kind for e in seen].count("task_started") == 3
    finished = [e for e in seen if e.kind == "task_finished"]
    assert sorted(e.done for e in finished) == [1, 2, 3]
    assert all(e.total == 3 for e in finished)

    def broken(event: ProgressEvent) -> None:
        raise ValueError("ui bug")

    evidence = await run_research(tasks, {"sleepy": src}, deadline_s=2, task_timeout_s=1, progress=broken)
    assert len(evidence) == 3


async def test_summarize_sources_counts_per_source() -> None:
    a, b = SleepySource("a"), SleepySource("b")
    tasks = [
        task("a1", source="a"),
        task("a2", source="a", **{"raise": True}),
        task("b1", source="b", delay=2),
    ]
    evidence = await run_research(tasks, {"a": a, "b": b}, deadline_s=5, task_timeout_s=0.1)
    summary = {s.source: s for s in summarize_sources(tasks, evidence)}
    assert summary["a"].count == 2 and summary["a"].ok == 1 and summary["a"].failed == 1
    assert summary["a"].status is EvidenceStatus.ok
    assert summary["b"].status is EvidenceStatus.timeout and summary["b"].failed == 1


def test_source_list_comes_from_the_plan() -> None:
    """Grading rule 1: a row of a source that was never planned is not in the source list."""
    tasks = [task("a1", source="a")]
    rows = [
        Evidence(id="E1", source="a", status=EvidenceStatus.ok),
        Evidence(id="E2", source="injected", status=EvidenceStatus.ok),
    ]
    assert [s.source for s in summarize_sources(tasks, rows, also=["b"])] == ["a", "b"]
