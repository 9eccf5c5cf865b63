"""Thread follow-ups: one answer per question, whatever Slack delivers (mention + message, retries)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.slack import BOT_ID, BOT_USER_ID
from tests.slack_support import TRIAGE_CHANNEL, SlackHarness, slack_harness
from triage.store import RunRecord


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[SlackHarness]:
    async with slack_harness(tmp_path) as harness:
        yield harness


def reply(run: RunRecord, ts: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "user": "W222",
        "text": text,
        "ts": ts,
        "thread_ts": run.thread_ts,
        "parent_user_id": BOT_USER_ID,
        "channel": TRIAGE_CHANNEL,
        "channel_type": "channel",
        **extra,
    }


def answers(h: SlackHarness, run: RunRecord) -> list[str]:
    assert run.thread_ts
    return [
        m.text
        for m in h.slack.thread(TRIAGE_CHANNEL, run.thread_ts)
        if "💬" in json.dumps(m.blocks, ensure_ascii=False)
    ]


async def test_mention_delivered_twice_and_retried_is_answered_once(h: SlackHarness) -> None:
    run = await h.run_to_done(48291)
    before = len(h.slack.messages)
    question = f"<@{BOT_USER_ID}> which evidence supports the root cause?"
    mention = reply(run, "1700009000.000100", question, type="app_mention")
    message = reply(run, "1700009000.000100", question)
    r1 = await h.event(mention, event_id="Ev1")
    r2 = await h.event(message, event_id="Ev2")
    r3 = await h.event(mention, event_id="Ev1", retry_num=1)
    assert [r.status for r in (r1, r2, r3)] == [200, 200, 200]
    await h.idle()
    assert len(h.slack.messages) == before + 1
    assert len(answers(h, run)) == 1
    # a second, different question is answered too, with the history kept in the store
    await h.event(reply(run, "1700009001.000100", f"<@{BOT_USER_ID}> and what should we ask the customer?"))
    await h.idle()
    assert len(answers(h, run)) == 2
    history = await h.svc.store.get_cursor(f"followup:{TRIAGE_CHANNEL}:{run.thread_ts}")
    assert history is not None and len(json.loads(history)) == 2


async def test_bots_self_subtypes_and_plain_replies_are_ignored(h: SlackHarness) -> None:
    run = await h.run_to_done(48291)
    before = len(h.slack.messages)
    q = f"<@{BOT_USER_ID}> hello?"
    await h.event(reply(run, "1700009100.000001", q, bot_id="B0OTHER", user="U0OTHER"))  # another bot
    await h.event(reply(run, "1700009100.000002", q, user=BOT_USER_ID, bot_id=BOT_ID))  # ourselves
    await h.event(reply(run, "1700009100.000003", q, subtype="message_changed"))
    await h.event(reply(run, "1700009100.000004", "thanks all, looking into it"))  # no mention
    await h.event(reply(run, "1700009100.000005", q, thread_ts="1600000000.000001"))  # another thread
    top = reply(run, "1700009100.000006", q)
    top.pop("thread_ts")
    await h.event(top)  # top-level mention, not in a report thread
    await h.idle()
    assert len(h.slack.messages) == before


async def test_any_reply_setting_answers_replies_without_a_mention(tmp_path: Path) -> None:
    async with slack_harness(tmp_path, slack_followup_any_reply=True) as h:
        run = await h.run_to_done(48291)
        await h.event(reply(run, "1700009200.000001", "is this a known bug?"))
        await h.event(reply(run, "1700009200.000001", "is this a known bug?"), retry_num=1)
        await h.idle()
        assert len(answers(h, run)) == 1


async def test_followup_survives_a_restart(h: SlackHarness) -> None:
    run = await h.run_to_done(48291)
    await h.restart()
    q = f"<@{BOT_USER_ID}> what is the fix?"
    await h.event(reply(run, "1700009300.000001", q, type="app_mention"))
    await h.idle()
    await h.restart()
    await h.event(reply(run, "1700009300.000001", q))  # the `message` twin arrives after a restart
    await h.idle()
    assert len(answers(h, run)) == 1
