"""The plumbing every part of `SqlStore` shares: the engine, worker-thread calls, transactions, upserts.

The engine is synchronous; every public store method runs its work in a worker thread via `_call`
(`asyncio.to_thread`), so the event loop never blocks on the database. An in-memory SQLite database
is one shared connection, so calls to it are serialised. Times are UTC (`utcnow`; `aware` fixes the
naive datetimes SQLite hands back).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Column, Engine, Table, insert, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def default_replica_id() -> str:
    """`host:pid`: unique per process, readable in the runs table and the logs."""
    return f"{socket.gethostname()}:{os.getpid()}"


class StoreBase:
    """The engine and how every store method reaches it (the parts of `SqlStore` build on this)."""

    def __init__(self, engine: Engine, *, replica: str = "") -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.replica = replica or default_replica_id()  # recorded as the owner of the runs it claims
        # An in-memory SQLite database is one shared connection (StaticPool): serialise access to it.
        self._lock: threading.Lock | None = threading.Lock() if isinstance(engine.pool, StaticPool) else None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._lock is None:
            return await asyncio.to_thread(fn, *args)
        lock = self._lock

        def locked() -> T:
            with lock:
                return fn(*args)

        return await asyncio.to_thread(locked)

    def _read(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            return fn(conn)

    def _write(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return fn(conn)

    def _upsert(self, table: Table, key_col: Column[Any], key: Any, values: dict[str, Any]) -> None:
        """Portable upsert: UPDATE, else INSERT, and UPDATE again if a concurrent INSERT won."""
        values = {**values, "updated_at": utcnow()}
        for _ in range(3):
            with self.engine.begin() as conn:
                if conn.execute(update(table).where(key_col == key).values(**values)).rowcount:
                    return
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(table).values({key_col.name: key, **values}))
                return
            except IntegrityError:
                continue
        raise RuntimeError(f"could not upsert {table.name} {key!r}")
