"""Store helpers for tests: move a run's clock instead of sleeping past it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from integrations.store import SqlStore, triage_runs


async def age_heartbeat(store: SqlStore, run_id: str, seconds: float) -> None:
    """Set the run's last heartbeat `seconds` in the past, as if its owner had stalled that long."""

    def do() -> None:
        with store.engine.begin() as conn:
            conn.execute(
                update(triage_runs)
                .where(triage_runs.c.run_id == run_id)
                .values(heartbeat_at=datetime.now(UTC) - timedelta(seconds=seconds))
            )

    await asyncio.to_thread(do)
