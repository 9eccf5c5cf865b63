"""The parallel research runner.

Every task of a plan starts at once; each runs under its own timeout, and the whole plan under an
overall deadline. A task that raises, times out or misses the deadline becomes an evidence row with
that status, so research always returns and a report is always produced. Wall time is close to the
slowest task, never the sum.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Mapping, Sequence

from triage.models import Evidence, EvidenceStatus, ResearchTask, SourceStatus
from triage.protocols import ProgressCallback, ProgressEvent, ResearchSource

MAX_EVIDENCE_PER_TASK = 8


async def emit(progress: ProgressCallback | None, event: ProgressEvent) -> None:
    """Call a progress callback (sync or async); a failing callback never breaks research."""
    if progress is None:
        return
    try:
        result = progress(event)
        if inspect.isawaitable(result):
            await result
    except Exception:
        pass


def _failure(task: ResearchTask, status: EvidenceStatus, message: str, latency_ms: int) -> Evidence:
    return Evidence(
        task_key=task.key,
        source=task.source,
        tool=task.tool,
        query=_query_text(task),
        status=status,
        title=task.description or f"{task.source}: {task.tool}",
        summary=message,
        latency_ms=latency_ms,
        first_party=task.first_party,
    )


def _query_text(task: ResearchTask) -> str:
    if not task.arguments:
        return ""
    parts = [f"{k}={v}" for k, v in task.arguments.items()]
    return ", ".join(parts)[:300]


async def _run_one(
    task: ResearchTask,
    source: ResearchSource | None,
    task_timeout_s: float,
    started_at: float,
    progress: ProgressCallback | None,
    counter: list[int],
    total: int,
) -> list[Evidence]:
    await emit(
        progress,
        ProgressEvent(
            kind="task_started",
            phase="research",
            task_key=task.key,
            source=task.source,
            description=task.description,
            total=total,
        ),
    )
    t0 = time.perf_counter()
    if source is None:
        rows = [_failure(task, EvidenceStatus.error, f"no research source named {task.source!r}", 0)]
    else:
        try:
            async with asyncio.timeout(task_timeout_s):
                rows = list(await source.execute(task))
        except TimeoutError:
            ms = int((time.perf_counter() - t0) * 1000)
            rows = [_failure(task, EvidenceStatus.timeout, f"no answer within {task_timeout_s:g} s", ms)]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ms = int((time.perf_counter() - t0) * 1000)
            rows = [_failure(task, EvidenceStatus.error, f"{type(exc).__name__}: {str(exc)[:200]}", ms)]
    ms = int((time.perf_counter() - t0) * 1000)
    if not rows:
        rows = [_failure(task, EvidenceStatus.empty, "no results", ms)]
    fixed: list[Evidence] = []
    for row in rows[:MAX_EVIDENCE_PER_TASK]:
        fixed.append(
            row.model_copy(
                update={
                    "task_key": task.key,
                    "source": row.source or task.source,
                    "tool": row.tool or task.tool,
                    "query": row.query or _query_text(task),
                    "latency_ms": row.latency_ms or ms,
                    "first_party": row.first_party or task.first_party,
                }
            )
        )
    elapsed_ms = int((time.perf_counter() - started_at) * 1000)
    await _task_finished(progress, task, _task_status(fixed), elapsed_ms, counter, total)
    return fixed


async def _task_finished(
    progress: ProgressCallback | None,
    task: ResearchTask,
    status: EvidenceStatus,
    elapsed_ms: int,
    counter: list[int],
    total: int,
) -> None:
    """Count a finished task and tell the progress callback."""
    counter[0] += 1
    await emit(
        progress,
        ProgressEvent(
            kind="task_finished",
            phase="research",
            task_key=task.key,
            source=task.source,
            description=task.description,
            status=status.value,
            elapsed_ms=elapsed_ms,
            done=counter[0],
            total=total,
        ),
    )


def _task_status(rows: Sequence[Evidence]) -> EvidenceStatus:
    statuses = {r.status for r in rows}
    for status in (
        EvidenceStatus.ok,
        EvidenceStatus.empty,
        EvidenceStatus.refused,
        EvidenceStatus.rate_limited,
        EvidenceStatus.timeout,
    ):
        if status in statuses:
            return status
    return EvidenceStatus.error


async def run_research(
    tasks: Sequence[ResearchTask],
    sources: Mapping[str, ResearchSource],
    *,
    deadline_s: float,
    task_timeout_s: float,
    progress: ProgressCallback | None = None,
) -> list[Evidence]:
    """Run every task concurrently; return evidence in plan order with ids E1…En."""
    started = time.perf_counter()
    counter = [0]
    total = len(tasks)
    pending = [
        asyncio.create_task(
            _run_one(task, sources.get(task.source), task_timeout_s, started, progress, counter, total),
            name=f"research:{task.key}",
        )
        for task in tasks
    ]
    if pending:
        _, not_done = await asyncio.wait(pending, timeout=deadline_s)
        for straggler in not_done:
            straggler.cancel()
        if not_done:
            await asyncio.gather(*not_done, return_exceptions=True)
    results: list[Evidence] = []
    deadline_ms = int(deadline_s * 1000)
    for task, handle in zip(tasks, pending, strict=True):
        if handle.cancelled():
            rows = [
                _failure(
                    task,
                    EvidenceStatus.timeout,
                    f"cut by the research deadline ({deadline_s:g} s)",
                    deadline_ms,
                )
            ]
            await _task_finished(progress, task, EvidenceStatus.timeout, deadline_ms, counter, total)
        else:
            exc = handle.exception()
            if exc is not None:  # only a bug in _run_one could get here
                rows = [_failure(task, EvidenceStatus.error, f"{type(exc).__name__}: {exc}", 0)]
            else:
                rows = handle.result()
        results.extend(rows)
    return [row.model_copy(update={"id": f"E{i}"}) for i, row in enumerate(results, start=1)]


def _signature(task: ResearchTask) -> tuple[str, str, str]:
    return (task.source, task.tool, json.dumps(task.arguments, sort_keys=True, default=str))


def new_tasks(done: Sequence[ResearchTask], planned: Sequence[ResearchTask]) -> list[ResearchTask]:
    """The planned tasks not already run (same source, tool and arguments), with keys unique across both:
    research wave 2 is what the refined intake adds to the rules' wave 1."""
    seen = {_signature(t) for t in done}
    keys = {t.key for t in done}
    out: list[ResearchTask] = []
    for task in planned:
        signature = _signature(task)
        if signature in seen:
            continue
        seen.add(signature)
        key, n = task.key, 2
        while key in keys:
            key, n = f"{task.key}#{n}", n + 1
        keys.add(key)
        out.append(task if key == task.key else task.model_copy(update={"key": key}))
    return out


def summarize_sources(
    tasks: Sequence[ResearchTask], evidence: Sequence[Evidence], also: Sequence[str] = ()
) -> list[SourceStatus]:
    """One status line per source of the plan (in plan order), plus `also` (sources whose planning failed).

    The list comes from the plan, not from the rows: a row of any other source is not counted here, and
    grading refuses citations of it (grading rule 1).
    """
    order: list[str] = []
    for name in [*(task.source for task in tasks), *also]:
        if name not in order:
            order.append(name)
    out: list[SourceStatus] = []
    for name in order:
        rows = [r for r in evidence if r.source == name]
        ok = sum(1 for r in rows if r.status in (EvidenceStatus.ok, EvidenceStatus.empty))
        failed = sum(1 for r in rows if r.status.failed)
        status = _task_status(rows) if rows else EvidenceStatus.empty
        if rows and failed == len(rows):
            status = _task_status(rows)
        out.append(
            SourceStatus(
                source=name,
                status=status,
                count=len(rows),
                ok=ok,
                failed=failed,
                latency_ms=max((r.latency_ms for r in rows), default=0),
            )
        )
    return out
