"""Alembic migrations: fresh databases, pre-Alembic `schema_version` databases, newer and older schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from bot.cli import main
from integrations.schema_migrations import SchemaError, current_revision, head_revision, prepare_schema
from integrations.schema_migrations import _config as migration_config
from integrations.store import SqlStore, create_store_engine
from integrations.store_schema import metadata
from triage.models import TicketSummary, TriageReport
from triage.store import Outbox, RunStatus

DATA = Path(__file__).parent / "data"


def _revision(url: str) -> str | None:
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    finally:
        engine.dispose()


def _diff(url: str) -> list[object]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))
    finally:
        engine.dispose()


def _create_legacy(url: str) -> None:
    """A database as the pre-Alembic store left it, with a finished run, a thread and a ticket state."""
    engine = create_store_engine(url)
    ddl = (DATA / f"store_v1_{engine.dialect.name}.sql").read_text()
    now = datetime.now(UTC).replace(microsecond=0)  # retention prunes by age: stamp rows with today
    try:
        with engine.begin() as conn:
            for statement in ddl.split(";"):
                body = "\n".join(ln for ln in statement.splitlines() if not ln.startswith("--")).strip()
                if body:
                    conn.execute(text(body))
            conn.execute(
                text(
                    "INSERT INTO triage_runs (run_id, ticket_id, ticket_version, trigger, status, attempts, "
                    "error, channel, thread_ts, heartbeat_at, created_at, updated_at) VALUES "
                    "('r1', 48291, 'v1', 'poll', 'done', 1, '', 'C1', '111.1', :t, :t, :t)"
                ),
                {"t": now},
            )
            conn.execute(
                text(
                    "INSERT INTO threads (ticket_id, channel, thread_ts, created_at) VALUES (48291, 'C1', '111.1', :t)"
                ),
                {"t": now},
            )
    finally:
        engine.dispose()


def test_fresh_database_matches_the_tables(db_url: str) -> None:
    store = SqlStore.from_url(db_url)
    store.engine.dispose()
    assert _revision(db_url) == head_revision()
    assert _diff(db_url) == []  # the migrations build exactly what integrations/store_schema.py declares


async def test_pre_alembic_database_is_stamped_and_upgraded_keeping_its_rows(db_url: str) -> None:
    _create_legacy(db_url)
    assert _revision(db_url) is None
    store = await SqlStore.connect(db_url)
    try:
        assert _revision(db_url) == head_revision()
        run = await store.latest_run(48291)
        assert run is not None and run.run_id == "r1" and run.thread_ts == "111.1"
        thread = await store.get_thread(48291)
        assert thread is not None and thread.thread_ts == "111.1"
        with store.engine.connect() as conn:
            assert not inspect(conn).has_table("schema_meta")
    finally:
        await store.close()
    assert _diff(db_url) == []


def test_db_upgrade_command_migrates_a_pre_alembic_database(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _create_legacy(db_url)
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert main(["db", "status"]) == 1
    assert main(["db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert "stamped as revision 0001" in out and f"to {head_revision()}" in out
    assert main(["db", "status"]) == 0
    assert main(["db", "upgrade"]) == 0
    assert "already at the newest revision" in capsys.readouterr().out


def test_start_up_refuses_a_newer_schema_and_says_why(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    SqlStore.from_url(db_url).engine.dispose()
    engine = create_store_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match=r"revision 9999.*newer triagebot has migrated this database"):
        prepare_schema(engine)
    with engine.connect() as conn:
        assert current_revision(conn) == "9999"  # nothing was changed
    engine.dispose()


def test_without_auto_migrate_an_old_schema_is_refused_until_db_upgrade(db_url: str) -> None:
    _create_legacy(db_url)
    with pytest.raises(SchemaError, match="triagebot db upgrade"):
        SqlStore.from_url(db_url, migrate=False)
    assert _revision(db_url) is None  # the refused start-up did not even stamp it
    SqlStore.from_url(db_url).engine.dispose()
    SqlStore.from_url(db_url, migrate=False).engine.dispose()  # up to date: starts


def test_run_refuses_a_newer_schema_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    SqlStore.from_url(url).engine.dispose()
    engine = create_store_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["demo", "--use-database-url", "--quiet", "48291"]) == 1
    err = capsys.readouterr().err
    assert "newer triagebot has migrated this database" in err and "Traceback" not in err


def _at_revision(url: str, revision: str) -> None:
    """A database as the triagebot that shipped `revision` left it."""
    engine = create_store_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(migration_config(conn), revision)
    finally:
        engine.dispose()


async def test_upgrade_from_0004_keeps_a_running_run_and_gives_it_an_empty_outbox(db_url: str) -> None:
    _at_revision(db_url, "0004")
    now = datetime.now(UTC).replace(microsecond=0)
    engine = create_store_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO triage_runs (run_id, ticket_id, ticket_version, trigger, status, attempts, owner, "
                "error, channel, thread_ts, heartbeat_at, created_at, updated_at) VALUES "
                "('r4', 48291, 'v1', 'poll', 'running', 2, 'old-replica', '', 'C1', '111.1', :t, :t, :t)"
            ),
            {"t": now},
        )
    engine.dispose()
    store = await SqlStore.connect(db_url)
    try:
        assert _revision(db_url) == head_revision()
        run = await store.get_run("r4")
        assert run is not None and run.status is RunStatus.running and run.attempts == 2
        assert await store.get_outbox("r4") is None  # nothing stored to post: a takeover triages it
        box = Outbox(channel="C1", thread_ts="111.1", messages=[{"text": "report"}])
        assert await store.stage_report(
            "r4", TriageReport(run_id="r4", ticket=TicketSummary(id=48291)), box, token=2
        )
        staged = await store.get_outbox("r4")
        assert staged is not None and staged.sent == 0 and staged.messages == [{"text": "report"}]
    finally:
        await store.close()
    assert _diff(db_url) == []
