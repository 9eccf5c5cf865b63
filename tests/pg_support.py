"""The local PostgreSQL (127.0.0.1:5432, trust auth) for tests: a throw-away schema per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def pg_schema(prefix: str = "triagebot_test") -> Iterator[str]:
    """Create a fresh schema and yield a DATABASE_URL whose search_path is it; skip if PostgreSQL is down."""
    psycopg = pytest.importorskip("psycopg")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432/test ({exc.__class__.__name__})")
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            # plain postgresql:// on purpose: the store must route it to psycopg 3
            yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
