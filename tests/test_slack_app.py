"""The Slack app end to end: HTTP mode on a free port, real signed requests, fakes for every API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.listeners.commands import parse_command
from bot.slack_runtime import runtime_for
from bot.socket_mode import start_socket_mode
from formatting.actions import ACTION_PACKET, ACTION_RERUN
from formatting.limits import validate_message
from tests.slack_support import TRIAGE_CHANNEL, SlackHarness, sign, slack_harness
from triage.store import RunStatus


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[SlackHarness]:
    async with slack_harness(tmp_path) as harness:
        yield harness


def _action_ids(blocks: list[dict[str, Any]]) -> set[str]:
    return {
        el.get("action_id", "") for b in blocks if b.get("type") == "actions" for el in b.get("elements", [])
    }


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "ticket", "rerun"),
    [
        ("48291", 48291, False),
        ("#48291", 48291, False),
        ("  48291   --rerun", 48291, True),
        ("https://acme.zendesk.com/agent/tickets/48291", 48291, False),
        ("<https://acme.zendesk.com/agent/tickets/48291|ticket>", 48291, False),
        ("--rerun https://acme.zendesk.com/agent/tickets/48291/events", 48291, True),
    ],
)
def test_parse_ticket_refs(text: str, ticket: int, rerun: bool) -> None:
    parsed = parse_command(text)
    assert (parsed.ticket_id, parsed.rerun, parsed.error) == (ticket, rerun, "")


@pytest.mark.parametrize(
    "text", ["banana", "48291 48302", "#abc", "https://example.com/foo/48291", "<!channel>"]
)
def test_parse_garbage(text: str) -> None:
    parsed = parse_command(text)
    assert parsed.ticket_id is None and parsed.error
    assert "<!channel>" not in parsed.error  # user text is escaped in the usage reply


# ---------------------------------------------------------------- signatures


async def test_bad_stale_and_missing_signatures_get_401_and_start_nothing(h: SlackHarness) -> None:
    body = h.command_body("48291", name="sig")
    form = "application/x-www-form-urlencoded"
    bad = await h.post(body, form, signed=False, headers=sign(body, secret="wrong-secret"))
    stale = await h.post(body, form, signed=False, headers=sign(body, timestamp=int(time.time()) - 600))
    missing = await h.post(body, form, signed=False)
    tampered_headers = sign(body)
    tampered = await h.post(body.replace("48291", "48302"), form, signed=False, headers=tampered_headers)
    event = json.dumps({"type": "url_verification", "challenge": "c1", "token": "x"})
    bad_event = await h.post(event, "application/json", signed=False, headers=sign(event, secret="nope"))
    assert [r.status for r in (bad, stale, missing, tampered, bad_event)] == [401] * 5
    await asyncio.sleep(0.3)
    await h.idle()
    assert h.slack.api_calls == []
    assert h.slack.responses == []
    assert await h.svc.store.latest_run(48291) is None
    assert await h.svc.store.latest_run(48302) is None


async def test_url_verification(h: SlackHarness) -> None:
    sent = await h.post(
        json.dumps({"type": "url_verification", "challenge": "abc123", "token": "x"}), "application/json"
    )
    assert sent.status == 200
    assert "abc123" in sent.body


async def test_healthz(h: SlackHarness) -> None:
    assert h.session is not None and h.server is not None
    async with h.session.get(h.server.url + "/healthz") as resp:
        body = await resp.json()
    assert resp.status == 200
    assert body["ok"] is True and body["checks"]["store"] == "ok" and body["slack"] is True


# ---------------------------------------------------------------- /triage


async def test_help_and_garbage_answer_in_the_ack(h: SlackHarness) -> None:
    helped = await h.command("help")
    garbage = await h.command("please triage <!channel>")
    empty = await h.command("")
    assert helped.status == garbage.status == empty.status == 200
    assert "/triage 48291" in helped.json()["text"]
    assert garbage.json()["response_type"] == "ephemeral"
    assert "Usage" in garbage.json()["text"] and "<!channel>" not in garbage.json()["text"]
    assert empty.body == ""  # no arguments: the paste modal opens instead (tests/test_slack_shortcut.py)
    await h.idle()
    assert len(h.slack.calls_to("views.open")) == 1
    assert h.slack.calls_to("chat.postMessage") == []


async def test_happy_path_posts_parent_and_thread_and_updates_the_card(h: SlackHarness) -> None:
    sent = await h.command("#48291", name="happy")
    assert sent.status == 200 and sent.body == ""
    assert sent.elapsed_s < 2.5  # Slack's limit is 3 s; the benchmark measures the real number

    ephemeral = await h.wait_response("happy")
    assert ephemeral["response_type"] == "ephemeral"
    assert ephemeral["text"].startswith("Triaging #48291 → <https://acme.slack.com/archives/C0TRIAGE/p")
    await h.idle()

    parents = h.slack.top_level(TRIAGE_CHANNEL)
    assert len(parents) == 1
    parent = parents[0]
    thread = h.slack.thread(TRIAGE_CHANNEL, parent.ts)
    assert thread, "the report goes in the thread"
    assert "Triage report" in h.slack.all_text(thread)
    # the card was updated in place and ends with the buttons
    assert parent.updates >= 1
    assert {ACTION_PACKET, ACTION_RERUN} <= _action_ids(parent.blocks)
    assert "#48291" in parent.text
    # every message Slack accepted is valid, without unfurls or link_names
    posts = h.slack.calls_to("chat.postMessage")
    assert len(posts) == len(h.slack.messages)
    for call in posts:
        assert call.params["unfurl_links"] is False and call.params["unfurl_media"] is False
        assert "link_names" not in call.params
        assert call.params.get("text")
    for msg in h.slack.messages.values():
        assert validate_message({"text": msg.text, "blocks": msg.blocks}) == []

    run = await h.svc.store.latest_run(48291)
    assert run is not None and run.status == RunStatus.done and run.report is not None
    assert (run.channel, run.thread_ts) == (TRIAGE_CHANNEL, parent.ts)
    assert await h.svc.store.ticket_for_thread(TRIAGE_CHANNEL, parent.ts) == 48291


async def test_progress_updates_are_throttled(tmp_path: Path) -> None:
    async with slack_harness(tmp_path, slack_update_interval_seconds=5.0) as h:
        await h.run_to_done(48291)
        parent = h.slack.top_level(TRIAGE_CHANNEL)[0]
        # with a 5 s interval a fast run gets at most one progress update plus the final state
        assert 1 <= parent.updates <= 2
        assert {ACTION_PACKET} <= _action_ids(parent.blocks)


async def test_zendesk_url_form_and_unknown_ticket(h: SlackHarness) -> None:
    await h.command(f"{h.zendesk.url}/agent/tickets/99999", name="unknown")
    reply = await h.wait_response("unknown")
    assert "#99999 was not found" in reply["text"]
    await h.idle()
    assert h.slack.calls_to("chat.postMessage") == []
    assert await h.svc.store.latest_run(99999) is None


async def test_twenty_concurrent_commands_make_one_run_and_one_thread(h: SlackHarness) -> None:
    names = [f"c{i}" for i in range(20)]
    results = await asyncio.gather(*(h.command("48291", name=n) for n in names))
    assert all(r.status == 200 for r in results)
    await h.idle()
    replies = [await h.wait_response(n) for n in names]
    texts = [r["text"] for r in replies]
    assert sum(t.startswith("Triaging #48291") for t in texts) == 1
    assert all(("already" in t) for t in texts if not t.startswith("Triaging"))
    assert all("https://acme.slack.com/archives/C0TRIAGE/p" in t for t in texts)
    assert len(h.slack.top_level(TRIAGE_CHANNEL)) == 1
    reports = [
        m
        for m in h.slack.messages.values()
        if m.thread_ts and "Triage report" in m.text + json.dumps(m.blocks)
    ]
    assert len(reports) == 1


async def test_already_triaged_then_rerun_reuses_the_thread(h: SlackHarness) -> None:
    first = await h.run_to_done(48291)
    await h.command("48291", name="again")
    again = await h.wait_response("again")
    assert "already triaged" in again["text"] and "--rerun" in again["text"]

    await h.command("48291 --rerun", name="rerun")
    rerun = await h.wait_response("rerun")
    assert rerun["text"].startswith("Triaging #48291")
    await h.idle()
    assert len(h.slack.top_level(TRIAGE_CHANNEL)) == 1
    second = await h.svc.store.latest_run(48291)
    assert second is not None and second.run_id != first.run_id and second.status == RunStatus.done
    assert second.thread_ts == first.thread_ts
    thread = h.slack.thread(TRIAGE_CHANNEL, first.thread_ts)
    assert sum("Triage report" in h.slack.all_text([m]) for m in thread) == 2
    parent = h.slack.messages[first.thread_ts]
    assert second.run_id in json.dumps(parent.blocks)  # the card's buttons now point at the new run


async def test_zendesk_auth_error_names_the_setting(tmp_path: Path) -> None:
    async with slack_harness(tmp_path, zendesk_api_token="wrong-token") as h:
        await h.command("48291", name="auth")
        reply = await h.wait_response("auth")
        assert "ZENDESK_EMAIL/ZENDESK_API_TOKEN" in reply["text"]
        await h.idle()
        assert h.slack.calls_to("chat.postMessage") == []


async def test_missing_triage_channel_is_reported(tmp_path: Path) -> None:
    async with slack_harness(tmp_path, triage_channel="") as h:
        await h.command("48291", name="nochan")
        reply = await h.wait_response("nochan")
        assert "TRIAGE_CHANNEL" in reply["text"]


async def test_rate_limited_post_is_retried(h: SlackHarness) -> None:
    h.slack.fail_once["chat.postMessage"] = (429, 0)
    await h.command("48291", name="rl")
    await h.wait_response("rl")
    await h.idle()
    posts = h.slack.calls_to("chat.postMessage")
    assert posts[0].params["channel"] == posts[1].params["channel"] == TRIAGE_CHANNEL
    assert posts[0].params.get("blocks") == posts[1].params.get("blocks")  # the same call, sent again
    assert len(h.slack.top_level(TRIAGE_CHANNEL)) == 1


async def test_failure_after_the_ack_is_shown_in_the_thread(tmp_path: Path) -> None:
    class ExplodingModel:
        async def complete(self, **kwargs: Any) -> Any:
            raise RuntimeError("model backend exploded")

    async with slack_harness(tmp_path, model=ExplodingModel()) as h:
        await h.command("48291", name="boom")
        await h.wait_response("boom")
        await h.idle()
        run = await h.svc.store.latest_run(48291)
        assert run is not None
        parent = h.slack.top_level(TRIAGE_CHANNEL)[0]
        thread_text = h.slack.all_text(h.slack.thread(TRIAGE_CHANNEL, parent.ts))
        assert run.status == RunStatus.failed and "exploded" in run.error
        assert "failed" in thread_text and "exploded" in thread_text
        assert "failed" in parent.text
        assert ACTION_RERUN in _action_ids(parent.blocks)
        assert "failed" in h.responses_for("boom")[-1]["text"]


async def test_not_in_channel_is_reported(h: SlackHarness) -> None:
    h.slack.errors["chat.postMessage"] = "not_in_channel"
    await h.command("48291", name="nic")
    reply = await h.wait_response("nic")
    assert "not_in_channel" in reply["text"] and "/invite" in reply["text"]
    await h.idle()
    run = await h.svc.store.latest_run(48291)
    assert run is not None and run.status == RunStatus.failed  # a later /triage can take it over


async def test_restart_shuts_down_cleanly_and_keeps_state(h: SlackHarness) -> None:
    run = await h.run_to_done(48291)
    before = runtime_for(h.svc)
    await h.restart()
    # the old process drained its background work on shutdown
    assert before.closing and all(t.done() for t in before.tasks)
    await h.command("48291", name="after")
    reply = await h.wait_response("after")
    assert "already triaged" in reply["text"]
    assert run.thread_ts and run.thread_ts.replace(".", "") in reply["text"]
    # the reply is posted before its task returns: wait for the task instead of racing it
    await h.idle()
    assert runtime_for(h.svc) is not before and runtime_for(h.svc).tasks == set()


# ---------------------------------------------------------------- Socket Mode


async def test_socket_mode_runner_starts_against_a_fake(tmp_path: Path) -> None:
    async with slack_harness(tmp_path, slack_app_token="xapp-1-test") as h:
        envelope = {
            "envelope_id": "env-1",
            "type": "slash_commands",
            "accepts_response_payload": True,
            "payload": {
                "team_id": "T111",
                "channel_id": "C0SUPPORT",
                "user_id": "W111",
                "command": "/triage",
                "text": "help",
                "api_app_id": "A111",
                "response_url": h.slack.response_url("sock"),
                "trigger_id": "1.2.3",
            },
        }
        h.slack.ws_envelopes.append(envelope)
        handler = None
        try:
            handler = await start_socket_mode(h.svc)
            assert h.slack.calls_to("apps.connections.open")[0].token == "xapp-1-test"
            acked = await h.slack.wait_for(
                lambda: [m for m in h.slack.ws_messages if m.get("envelope_id") == "env-1"], what="socket ack"
            )
            assert "/triage 48291" in acked[0]["payload"]["text"]
        finally:
            if handler is not None:
                await handler.close_async()
