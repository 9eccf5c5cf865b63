"""Slack's per-channel posting pace, kept in the database so every replica keeps the same one.

Slack allows chat.postMessage about one message per second per channel, with short bursts above
that tolerated. Each replica that posts into a channel reserves the next slot with one atomic
statement on the channel's row (GCRA, the "virtual scheduling" form of a token bucket):

    UPDATE slack_pace SET next_at = max(next_at, now) + interval WHERE channel = :c RETURNING next_at

The message's own slot is `next_at - interval`; it may go `tolerance = (burst - 1) × interval` early,
so up to `burst` messages pass at once and after that one per interval, whichever replica sends them.
The caller sleeps for the returned delay. The row is locked by the UPDATE (PostgreSQL) or the write
lock (SQLite) for the duration of one statement, so concurrent reservations queue instead of
colliding. A channel's first message inserts its row (a concurrent insert falls back to the UPDATE).

Times are the replicas' own clocks (Unix time): a skew between two hosts shifts their slots by that
skew, so keep the hosts on NTP (Kubernetes nodes are).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import Engine, case, insert, update
from sqlalchemy.exc import IntegrityError

from integrations.store_schema import slack_pace


def reserve_slot(
    engine: Engine, channel: str, interval_s: float, burst: int, now: float | None = None
) -> float:
    """Reserve the channel's next posting slot; returns how many seconds to wait before posting."""
    channel = channel[:64]
    tolerance = max(0, burst - 1) * interval_s
    for _ in range(3):
        at = time.time() if now is None else now
        stamp = datetime.fromtimestamp(at, UTC)
        with engine.begin() as conn:
            next_at = conn.execute(
                update(slack_pace)
                .where(slack_pace.c.channel == channel)
                .values(
                    next_at=case((slack_pace.c.next_at > at, slack_pace.c.next_at), else_=at) + interval_s,
                    updated_at=stamp,
                )
                .returning(slack_pace.c.next_at)
            ).scalar_one_or_none()
        if next_at is not None:
            return max(0.0, float(next_at) - interval_s - tolerance - at)
        try:
            with engine.begin() as conn:
                conn.execute(
                    insert(slack_pace).values(channel=channel, next_at=at + interval_s, updated_at=stamp)
                )
            return 0.0
        except IntegrityError:
            continue  # another replica posted its first message into the channel at the same moment
    raise RuntimeError(f"could not reserve a posting slot in {channel}")
