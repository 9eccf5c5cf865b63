"""Schema migrations with Alembic, used as a library (no alembic.ini, no `alembic` command needed).

    prepare_schema(engine, upgrade=True)   at start-up: bring the database to the newest revision,
                                           or refuse (SchemaError) when it cannot run against it
    upgrade(engine)                        `triagebot db upgrade`: apply what is missing, report it

States of a database:
- empty → every revision runs (0001 is the pre-Alembic schema);
- the pre-Alembic store (`schema_meta` row `schema_version` = 1, no `alembic_version`) → stamped
  0001 without touching its tables, then upgraded like any other;
- at an older revision → upgraded when allowed (DATABASE_AUTO_MIGRATE), else refused with the
  command that fixes it;
- at a revision this triagebot does not ship → refused: a newer triagebot migrated it and this one
  would write rows the newer schema does not expect. Nothing is changed.

Everything happens in one transaction; on PostgreSQL it first takes a transaction-scoped advisory
lock, so replicas starting together migrate once and the others see the result (PostgreSQL DDL is
transactional). SQLite is for one process.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import Connection

from triage.protocols import ConfigError

log = logging.getLogger(__name__)

LOCK_NAMESPACE = 0x7472_6961  # "tria": the first key of every advisory lock triagebot takes
MIGRATION_LOCK = 0  # second key of the migration lock (ticket locks use LOCK_NAMESPACE + 1)
LEGACY_REVISION = "0001"  # what a pre-Alembic `schema_version` 1 database is stamped with


class SchemaError(ConfigError):
    """The database schema does not fit this triagebot; the message says why and what to do."""


@dataclass(frozen=True)
class UpgradeResult:
    before: str | None  # None: an empty database
    after: str
    applied: tuple[str, ...]  # the revisions that ran, oldest first
    stamped_legacy: bool = False


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("integrations") / "migrations"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": LOCK_NAMESPACE, "key": MIGRATION_LOCK}
        )


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _legacy_version(conn: Connection) -> str | None:
    """The `schema_version` of a pre-Alembic store, or None when this is not one."""
    if not inspect(conn).has_table("schema_meta"):
        return None
    row = conn.execute(text("SELECT value FROM schema_meta WHERE key = 'schema_version'")).first()
    return None if row is None else str(row[0])


def _known(revision: str) -> bool:
    try:
        return script_directory().get_revision(revision) is not None
    except CommandError:
        return False


def _pending(before: str | None) -> tuple[str, ...]:
    script = script_directory()
    revisions = list(script.iterate_revisions(head_revision(), before))
    return tuple(r.revision for r in reversed(revisions))


def _too_new(found: str) -> SchemaError:
    return SchemaError(
        f"the database schema is at revision {found}, which this triagebot does not know (it knows up to "
        f"{head_revision()}): a newer triagebot has migrated this database. Run that newer version, or "
        "restore the backup taken before its upgrade; this version refuses to start so it never writes "
        "rows the newer schema does not expect"
    )


def prepare_schema(engine: Engine, *, upgrade: bool = True) -> UpgradeResult:
    """Make the database usable by this triagebot (see the module docstring); raises SchemaError."""
    head = head_revision()
    with engine.begin() as conn:
        _lock(conn)
        before = current_revision(conn)
        stamped = False
        if before is None:
            legacy = _legacy_version(conn)
            if legacy is not None:
                if legacy != "1":
                    raise SchemaError(
                        f"the database has a pre-Alembic schema_version {legacy} that this triagebot does "
                        "not know; only version 1 can be upgraded"
                    )
                command.stamp(_config(conn), LEGACY_REVISION)
                before, stamped = LEGACY_REVISION, True
                log.info("database: pre-Alembic schema_version 1 found, stamped revision %s", before)
        if before is not None and not _known(before):
            raise _too_new(before)
        applied = _pending(before) if before != head else ()
        if applied and not upgrade:
            raise SchemaError(
                f"the database schema is at revision {before or '(empty)'}, this triagebot needs {head}: run "
                "`triagebot db upgrade` (or set DATABASE_AUTO_MIGRATE=true to migrate at start-up)"
            )
        if applied:
            command.upgrade(_config(conn), "head")
            log.info("database migrated from %s to %s (%s)", before or "(empty)", head, ", ".join(applied))
    return UpgradeResult(before=before, after=head, applied=applied, stamped_legacy=stamped)
