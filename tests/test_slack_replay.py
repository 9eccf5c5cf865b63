"""Idempotent clicks: a replayed signed Re-run (or slash command) does not start a second paid run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import func, select

from bot.listeners.replay import replay_key
from formatting.actions import ACTION_RERUN
from integrations.store import SqlStore, triage_runs
from tests.slack_support import TRIAGE_CHANNEL, SlackHarness, slack_harness

FORM = "application/x-www-form-urlencoded"


def _click(h: SlackHarness, run_id: str, message_ts: str, user: str = "W111") -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "alice", "name": "alice", "team_id": "T111"},
        "api_app_id": "A111",
        "token": "legacy",
        "trigger_id": "111.222.abc",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": TRIAGE_CHANNEL},
        "team": {"id": "T111", "domain": "acme"},
        "channel": {"id": TRIAGE_CHANNEL, "name": "escalations"},
        "message": {"type": "message", "ts": message_ts, "text": "card"},
        "response_url": h.slack.response_url(f"click-{user}"),
        "actions": [
            {
                "type": "button",
                "action_id": ACTION_RERUN,
                "block_id": "b1",
                "value": run_id,
                "action_ts": str(time.time()),
            }
        ],
    }
    return "payload=" + quote(json.dumps(payload))


def _runs(store: SqlStore, ticket_id: int) -> int:
    with store.engine.connect() as conn:
        query = select(func.count()).select_from(triage_runs).where(triage_runs.c.ticket_id == ticket_id)
        return int(conn.execute(query).scalar_one())


async def test_replayed_rerun_click_starts_one_run(tmp_path: Path) -> None:
    async with slack_harness(tmp_path) as h:
        run = await h.run_to_done(48291)
        store = h.svc.store
        assert isinstance(store, SqlStore) and _runs(store, 48291) == 1
        body = _click(h, run.run_id, str(run.thread_ts))
        first = await h.post(body, FORM)
        replays = [await h.post(body, FORM) for _ in range(3)]  # the same signed bytes, again
        double = await h.post(_click(h, run.run_id, str(run.thread_ts)), FORM)  # a new action_ts
        assert [s.status for s in (first, *replays, double)] == [200] * 5
        await h.idle()
        assert _runs(store, 48291) == 2  # the original and ONE re-run
        other_user = await h.post(_click(h, run.run_id, str(run.thread_ts), user="W222"), FORM)
        assert other_user.status == 200
        await h.idle()
        assert _runs(store, 48291) == 3  # a different person's click is a different request


async def test_seen_within_is_a_window(tmp_path: Path) -> None:
    store = await SqlStore.connect(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        assert await store.seen_within("click:a", 300)
        assert not await store.seen_within("click:a", 300)
        assert await store.seen_within("click:a", -1)  # the window has passed: counted again, once
        assert not await store.seen_within("click:a", 300)
    finally:
        await store.close()


def test_replay_keys() -> None:
    click = {
        "type": "block_actions",
        "user": {"id": "W1"},
        "container": {"message_ts": "1.2", "channel_id": "C1"},
        "actions": [{"action_id": "triage_rerun", "action_ts": "9"}],
    }
    assert replay_key(click) == "click:triage_rerun:C1:1.2:W1"
    assert replay_key({"command": "/triage", "trigger_id": "t1"}) == "command:t1"
    assert replay_key({"type": "message_action", "trigger_id": "t2"}) == "message_action:t2"
    assert replay_key({"type": "event_callback"}) is None
    assert replay_key({"type": "block_actions", "actions": ["x"]}) is None
    packet = {**click, "actions": [{"action_id": "triage_packet"}]}
    assert replay_key(packet) is None  # claimed once per run by its own artefact
