"""Intake state of `SqlStore`: de-duplication keys, cursors, and what the intake last saw of a ticket.

- `seen_keys`: `mark_seen` (first time only) and `seen_within` (first time in a window, atomic
  across replicas: an INSERT, or a compare-and-swap on an expired row);
- `cursors`: the Zendesk incremental-export cursor, follow-up histories;
- `ticket_state`: public customer comments and version last seen (re-triage on customer replies).
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from integrations.store_base import StoreBase, utcnow
from integrations.store_schema import cursors, seen_keys, ticket_state
from triage.store import TicketState


class IntakeStateStore(StoreBase):
    """De-duplication keys, cursors and what the intake last saw of each ticket."""

    async def mark_seen(self, key: str) -> bool:
        def do() -> bool:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(seen_keys).values(key=key[:255], created_at=utcnow()))
            except IntegrityError:
                return False
            return True

        return await self._call(do)

    async def seen_within(self, key: str, window_s: float) -> bool:
        """True the first time `key` is seen in a window of `window_s` seconds (insert, or a
        compare-and-swap on an expired row), False for a repeat inside the window."""
        key = key[:255]

        def do() -> bool:
            now = utcnow()
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(seen_keys).values(key=key, created_at=now))
                return True
            except IntegrityError:
                pass
            with self.engine.begin() as conn:
                renewed = conn.execute(
                    update(seen_keys)
                    .where(seen_keys.c.key == key, seen_keys.c.created_at < now - timedelta(seconds=window_s))
                    .values(created_at=now)
                )
                return bool(renewed.rowcount)

        return await self._call(do)

    async def prune_seen(self, older_than_s: float) -> int:
        """Not in the protocol: forget de-duplication keys older than `older_than_s` (returns the count)."""

        def do(conn: Connection) -> int:
            cutoff = utcnow() - timedelta(seconds=older_than_s)
            return int(conn.execute(delete(seen_keys).where(seen_keys.c.created_at < cutoff)).rowcount)

        return await self._call(self._write, do)

    async def get_cursor(self, name: str) -> str | None:
        def do(conn: Connection) -> str | None:
            value = conn.execute(select(cursors.c.value).where(cursors.c.name == name)).scalar_one_or_none()
            return None if value is None else str(value)

        return await self._call(self._read, do)

    async def set_cursor(self, name: str, value: str) -> None:
        await self._call(self._upsert, cursors, cursors.c.name, name, {"value": value})

    async def get_ticket_state(self, ticket_id: int) -> TicketState | None:
        def do(conn: Connection) -> TicketState | None:
            row = (
                conn.execute(select(ticket_state).where(ticket_state.c.ticket_id == ticket_id))
                .mappings()
                .first()
            )
            if row is None:
                return None
            return TicketState(
                ticket_id=row["ticket_id"],
                public_customer_comments=row["public_customer_comments"],
                last_version=row["last_version"] or "",
                extra=json.loads(row["extra_json"] or "{}"),
            )

        return await self._call(self._read, do)

    async def set_ticket_state(self, state: TicketState) -> None:
        await self._call(
            self._upsert,
            ticket_state,
            ticket_state.c.ticket_id,
            state.ticket_id,
            {
                "public_customer_comments": state.public_customer_comments,
                "last_version": state.last_version,
                "extra_json": json.dumps(state.extra, sort_keys=True),
            },
        )
