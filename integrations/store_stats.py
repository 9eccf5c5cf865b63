"""The usage query behind `triagebot stats` and the Home tab (one portable read over four tables).

Rows of the window are read and bucketed by UTC day in Python, so SQLite and PostgreSQL give the same
answer without dialect-specific date functions (a window is days of triage, not millions of rows).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from integrations.store_schema import draft_outcomes, feedback_table, model_calls, triage_runs
from triage.store import DayStats, RunStatus, UsageStats

OUTCOMES = ("reply_copied", "reply_posted", "packet_opened", "kb_opened")


def _day(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d")


def window_start(days: int, now: datetime | None = None) -> datetime:
    """Midnight UTC `days - 1` days ago: `days=1` is today."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=max(1, days) - 1)


def model_cost_since(conn: Connection, since: datetime) -> float:
    total = conn.execute(
        select(func.coalesce(func.sum(model_calls.c.cost_usd), 0.0)).where(model_calls.c.created_at >= since)
    ).scalar_one()
    return float(total or 0.0)


def usage_stats(conn: Connection, days: int, now: datetime | None = None) -> UsageStats:
    since = window_start(days, now)
    stats = UsageStats(days=max(1, days), since=since)
    per_day: dict[str, DayStats] = {}
    for i in range(stats.days):
        key = _day(since + timedelta(days=i))
        per_day[key] = DayStats(day=key)

    done_runs: set[str] = set()
    grades: Counter[str] = Counter()
    runs = conn.execute(
        select(
            triage_runs.c.run_id,
            triage_runs.c.created_at,
            triage_runs.c.mode,
            triage_runs.c.confidence,
            triage_runs.c.escalation_needed,
        ).where(triage_runs.c.created_at >= since, triage_runs.c.status == RunStatus.done.value)
    )
    for run_id, created, mode, confidence, escalation in runs:
        day = per_day.setdefault(_day(created), DayStats(day=_day(created)))
        day.triages += 1
        done_runs.add(run_id)
        stats.triages += 1
        if mode == "evidence_only":
            day.evidence_only += 1
            stats.evidence_only += 1
        grades[confidence or "none"] += 1
        stats.escalations += 1 if escalation else 0
    stats.grades = dict(grades)

    by_kind: defaultdict[str, float] = defaultdict(float)
    calls = conn.execute(
        select(
            model_calls.c.created_at,
            model_calls.c.kind,
            model_calls.c.input_tokens,
            model_calls.c.output_tokens,
            model_calls.c.cache_read_tokens,
            model_calls.c.cache_creation_tokens,
            model_calls.c.cost_usd,
        ).where(model_calls.c.created_at >= since)
    )
    for created, kind, tokens_in, tokens_out, cache_read, cache_write, cost in calls:
        day = per_day.setdefault(_day(created), DayStats(day=_day(created)))
        day.cost_usd += cost
        day.model_calls += 1
        stats.model_calls += 1
        stats.cost_usd += cost
        by_kind[kind or "other"] += cost
        stats.input_tokens += tokens_in
        stats.output_tokens += tokens_out
        stats.cache_read_tokens += cache_read
        stats.cache_creation_tokens += cache_write
    stats.cost_by_kind = {k: round(v, 6) for k, v in sorted(by_kind.items())}
    stats.cost_usd = round(stats.cost_usd, 6)
    for day in per_day.values():
        day.cost_usd = round(day.cost_usd, 6)
    stats.per_day = [per_day[k] for k in sorted(per_day)]

    votes = conn.execute(
        select(feedback_table.c.vote, func.count())
        .where(feedback_table.c.created_at >= since)
        .group_by(feedback_table.c.vote)
    )
    for vote, count in votes:
        if vote == "up":
            stats.votes_up = int(count)
        elif vote == "down":
            stats.votes_down = int(count)

    outcomes: Counter[str] = Counter()
    used: set[str] = set()
    for run_id, outcome in conn.execute(
        select(draft_outcomes.c.run_id, draft_outcomes.c.outcome).where(draft_outcomes.c.created_at >= since)
    ):
        outcomes[outcome] += 1
        if run_id in done_runs:
            used.add(run_id)
    stats.outcomes = {k: outcomes.get(k, 0) for k in OUTCOMES}
    stats.runs_with_outcome = len(used)
    return stats
