"""Access control: allowed users, user groups and channels; Slack Connect fails closed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import AccessControl
from bot.settings import Settings
from formatting.actions import ACTION_PACKET, FEEDBACK_BLOCK, FEEDBACK_INPUT, VIEW_FEEDBACK
from formatting.limits import validate_view
from tests.fakes.slack import BOT_USER_ID, FakeSlack
from tests.slack_support import TRIAGE_CHANNEL, slack_harness


async def test_allowed_users_and_usergroups(tmp_path: Path) -> None:
    async with slack_harness(tmp_path, slack_allowed_users="W111", slack_allowed_usergroups="S0SUPPORT") as h:
        h.slack.usergroups["S0SUPPORT"] = ["W222"]
        await h.command("48291", user="W999", name="stranger")
        refused = await h.wait_response("stranger")
        assert "not allowed" in refused["text"]
        await h.idle()
        assert await h.svc.store.latest_run(48291) is None
        assert h.slack.calls_to("chat.postMessage") == []

        await h.command("48302", user="W222", name="member")  # via the user group
        assert (await h.wait_response("member"))["text"].startswith("Triaging #48302")
        await h.command("48291", user="W111", name="listed")  # listed by id
        assert (await h.wait_response("listed"))["text"].startswith("Triaging #48291")
        await h.command("48317", user="W998", name="stranger2")
        assert "not allowed" in (await h.wait_response("stranger2"))["text"]
        await h.idle()
        # membership is cached briefly: one lookup for several checks
        assert len(h.slack.calls_to("usergroups.users.list")) == 1

        run = await h.svc.store.latest_run(48291)
        assert run is not None
        await h.action(ACTION_PACKET, run.run_id, user="W999", name="btn")
        assert "not allowed" in (await h.wait_response("btn"))["text"]
        await h.idle()
        assert await h.svc.store.get_artefact(run.run_id, "packet") is None

        before = len(h.slack.messages)
        event = {
            "type": "app_mention",
            "user": "W999",
            "text": f"<@{BOT_USER_ID}> why?",
            "ts": "1700009400.000001",
            "thread_ts": run.thread_ts,
            "channel": TRIAGE_CHANNEL,
        }
        await h.event(event)
        await h.idle()
        assert len(h.slack.messages) == before  # no answer…
        eph = h.slack.calls_to("chat.postEphemeral")
        assert (
            eph and eph[-1].params["user"] == "W999" and "not allowed" in eph[-1].params["text"]
        )  # …but told why


async def test_allowed_channels_for_the_command(tmp_path: Path) -> None:
    async with slack_harness(tmp_path, slack_allowed_channels="C0SUPPORT") as h:
        await h.command("48291", channel="C0RANDOM", name="random")
        assert "not enabled in this channel" in (await h.wait_response("random"))["text"]
        await h.command("48291", channel=TRIAGE_CHANNEL, name="triage")  # the triage channel always works
        assert (await h.wait_response("triage"))["text"].startswith("Triaging #48291")
        await h.idle()
        assert {m.channel for m in h.slack.messages.values()} == {TRIAGE_CHANNEL}


async def test_slack_connect_is_refused_unless_allowed(tmp_path: Path) -> None:
    async with slack_harness(tmp_path) as h:
        h.slack.shared_channels.add(TRIAGE_CHANNEL)
        await h.command("48291", name="shared")
        reply = await h.wait_response("shared")
        assert "Slack Connect" in reply["text"] and "SLACK_ALLOW_SHARED_CHANNELS" in reply["text"]
        await h.idle()
        assert h.slack.calls_to("chat.postMessage") == []

        await h.restart(slack_allow_shared_channels=True)
        await h.command("48291", name="allowed")
        assert (await h.wait_response("allowed"))["text"].startswith("Triaging")
        await h.idle()


async def test_events_from_shared_channels_are_ignored(tmp_path: Path) -> None:
    async with slack_harness(tmp_path) as h:
        run = await h.run_to_done(48291)
        before = len(h.slack.messages)
        event = {
            "type": "app_mention",
            "user": "W222",
            "text": f"<@{BOT_USER_ID}> what now?",
            "ts": "1700009500.000001",
            "thread_ts": run.thread_ts,
            "channel": TRIAGE_CHANNEL,
        }
        await h.event(event, shared=True)
        await h.idle()
        assert len(h.slack.messages) == before
        assert h.slack.calls_to("chat.postEphemeral") == []
        # the same question from the workspace itself is answered
        await h.event({**event, "ts": "1700009500.000002"})
        await h.idle()
        assert len(h.slack.messages) == before + 1
        assert "💬" in json.dumps(list(h.slack.messages.values())[-1].blocks, ensure_ascii=False)


async def test_channel_check_fails_closed(tmp_path: Path) -> None:
    async with slack_harness(tmp_path) as h:
        h.slack.errors["conversations.info"] = "missing_scope"
        await h.command("48291", name="scope")
        reply = await h.wait_response("scope")
        assert "channels:read" in reply["text"] and "missing_scope" in reply["text"]
        await h.idle()
        assert h.slack.calls_to("chat.postMessage") == []


async def test_modal_submission_from_a_stranger_is_refused_in_the_modal(tmp_path: Path) -> None:
    async with slack_harness(tmp_path, slack_allowed_users="W111") as h:
        run = await h.run_to_done(48291)
        sent = await h.view_submission(
            VIEW_FEEDBACK, run.run_id, {FEEDBACK_BLOCK: {FEEDBACK_INPUT: "wrong"}}, user="W999"
        )
        body = sent.json()
        assert body["response_action"] == "update"
        assert validate_view(body["view"]) == []
        assert "not allowed" in json.dumps(body["view"])
        await h.idle()
        assert await h.svc.store.feedback_for_run(run.run_id) == []


@pytest.mark.parametrize(
    ("status", "content_type", "text", "reason"),
    [
        (502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>", "HTTP 502"),
        (405, "text/plain", "405: Method Not Allowed", "HTTP 405"),
        (200, "text/plain", "upstream connect error", "AttributeError"),
        (500, "application/json", '{"ok": false, "err', "HTTP 500"),
        (200, "application/json", '{"ok": false, "error": "channel_not_found"}', "channel_not_found"),
    ],
)
async def test_non_json_slack_errors_give_a_clear_refusal(
    status: int, content_type: str, text: str, reason: str
) -> None:
    slack = FakeSlack().start()
    slack.raw_errors["conversations.info"] = (status, content_type, text)
    slack.raw_errors["usergroups.users.list"] = (status, content_type, text)
    client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
    settings = Settings(_env_file=None, slack_bot_token="xoxb-test", slack_allowed_usergroups="S1")  # type: ignore[call-arg]
    access = AccessControl(settings, client)
    try:
        decision = await access.check_delivery_channel(TRIAGE_CHANNEL)
        assert not decision.allowed and reason in decision.reason
        assert "conversations.info" in decision.reason
        assert not await access.user_allowed("W1")  # the group cannot be read: fail closed
    finally:
        slack.stop()
