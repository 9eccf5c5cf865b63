"""How `SqlStore` coordinates replicas: the per-ticket lock, named leases, the Slack posting pace.

- `ticket_lock`: work on one ticket one at a time, in this process and (PostgreSQL) across replicas,
  with a transaction-scoped advisory lock — the one dialect-specific statement of the store;
- `acquire_lease` / `release_lease` / `lease_holder`: named leases with a token that grows whenever
  the holder changes (the Zendesk poller);
- `reserve_post_slot`: Slack's per-channel posting pace, one for all replicas (`integrations.store_pace`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine, case, insert, or_, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from integrations import store_pace
from integrations.schema_migrations import LOCK_NAMESPACE
from integrations.store_base import StoreBase, utcnow
from integrations.store_schema import leases

TICKET_LOCK_POLL_S = 0.2  # how often a replica waiting for a ticket's advisory lock tries again


def _try_advisory_lock(conn: Connection, key: dict[str, int]) -> bool:
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:ns, :key)"), key).scalar())


def _end(conn: Connection) -> None:
    """Roll back and return the connection (releases transaction-scoped advisory locks)."""
    try:
        conn.rollback()
    finally:
        conn.close()


@dataclass
class _LocalLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class CoordinationStore(StoreBase):
    """The per-ticket lock, named leases and the shared Slack posting pace."""

    def __init__(self, engine: Engine, *, replica: str = "") -> None:
        super().__init__(engine, replica=replica)
        self._ticket_locks: dict[int, _LocalLock] = {}

    @contextlib.asynccontextmanager
    async def ticket_lock(self, ticket_id: int) -> AsyncIterator[None]:
        """Work on one ticket, one at a time: in this process, and on PostgreSQL across replicas.

        PostgreSQL: a transaction-scoped advisory lock `(LOCK_NAMESPACE + 1, ticket_id mod 2³¹)` on a
        connection held for the duration (a collision of two ticket ids only makes them wait for each
        other). It is taken with `pg_try_advisory_xact_lock` every TICKET_LOCK_POLL_S, so a waiting
        replica never blocks a worker thread; ending the transaction (or losing the connection)
        releases it. SQLite: the in-process lock alone (one process per SQLite file).
        """
        entry = self._ticket_locks.get(ticket_id)
        if entry is None:
            entry = self._ticket_locks[ticket_id] = _LocalLock()
        entry.users += 1
        try:
            async with entry.lock:
                if self.dialect != "postgresql":
                    yield
                    return
                conn = await asyncio.to_thread(self.engine.connect)
                try:
                    key = {"ns": LOCK_NAMESPACE + 1, "key": ticket_id % 2**31}
                    while True:
                        if await asyncio.to_thread(_try_advisory_lock, conn, key):
                            break
                        await asyncio.sleep(TICKET_LOCK_POLL_S)
                    yield
                finally:
                    await asyncio.to_thread(_end, conn)
        finally:
            entry.users -= 1
            if entry.users == 0 and self._ticket_locks.get(ticket_id) is entry:
                del self._ticket_locks[ticket_id]

    # ------------------------------------------------------------ leases

    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> int | None:
        """Take or renew the lease `name` for `ttl_s`: its token while `holder` holds it, else None.

        The holder renews; anybody takes it once it expired (the holder died or stopped renewing).
        The token grows whenever the holder changes, so a stale holder can tell it lost the lease.
        """

        def do() -> int | None:
            for _ in range(2):  # the second round: a concurrent first INSERT (maybe our own) won
                now = utcnow()
                expires = now + timedelta(seconds=ttl_s)
                with self.engine.begin() as conn:
                    result = conn.execute(
                        update(leases)
                        .where(
                            leases.c.name == name, or_(leases.c.holder == holder, leases.c.expires_at < now)
                        )
                        .values(
                            token=case((leases.c.holder == holder, leases.c.token), else_=leases.c.token + 1),
                            holder=holder,
                            expires_at=expires,
                            updated_at=now,
                        )
                    )
                    if result.rowcount == 1:
                        return int(
                            conn.execute(select(leases.c.token).where(leases.c.name == name)).scalar_one()
                        )
                try:
                    with self.engine.begin() as conn:
                        conn.execute(
                            insert(leases).values(
                                name=name, holder=holder, token=1, expires_at=expires, updated_at=now
                            )
                        )
                    return 1
                except IntegrityError:
                    continue
            return None  # somebody else holds it

        return await self._call(do)

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up now (graceful shutdown), so another replica takes it at its next try."""

        def do(conn: Connection) -> None:
            conn.execute(
                update(leases)
                .where(leases.c.name == name, leases.c.holder == holder)
                .values(expires_at=utcnow() - timedelta(seconds=1), updated_at=utcnow())
            )

        await self._call(self._write, do)

    async def lease_holder(self, name: str) -> tuple[str, int] | None:
        """Not in the protocol: the current (holder, token) of a lease that has not expired."""

        def do(conn: Connection) -> tuple[str, int] | None:
            row = conn.execute(
                select(leases.c.holder, leases.c.token).where(
                    leases.c.name == name, leases.c.expires_at >= utcnow()
                )
            ).first()
            return None if row is None else (str(row[0]), int(row[1]))

        return await self._call(self._read, do)

    # ------------------------------------------------------------ Slack posting pace

    async def reserve_post_slot(self, channel: str, interval_s: float, burst: int) -> float:
        """Not in the protocol: reserve the channel's next chat.postMessage slot, shared by all
        replicas (`integrations.store_pace`); returns the seconds to wait before posting."""
        return await self._call(store_pace.reserve_slot, self.engine, channel, interval_s, burst)
