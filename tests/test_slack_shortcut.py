"""'Triage this message' and the paste modal, through the real Bolt app in HTTP mode against the fake Slack."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from formatting.actions import (
    ACTION_RERUN,
    PASTE_BLOCK,
    PASTE_INPUT,
    PASTE_TICKET_BLOCK,
    PASTE_TICKET_INPUT,
    SHORTCUT_TRIAGE_MESSAGE,
    VIEW_PASTE,
)
from formatting.limits import validate_view
from tests.slack_support import TRIAGE_CHANNEL, SlackHarness, slack_harness
from triage.models import is_pasted, pasted_ticket_id
from triage.store import RunStatus

SUPPORT = "C0SUPPORT"
QUESTION = (
    "Hi! Since we upgraded posthog-js to 1.160.0 our feature flag new-checkout-flow is false for "
    "enterprise users &amp; we lose sales. Docs: <https://posthog.com/docs/feature-flags|flags docs>"
)


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[SlackHarness]:
    async with slack_harness(tmp_path) as harness:
        harness.slack.add_user("W222", "Jane Customer", "jane")
        yield harness


def _replies(h: SlackHarness, channel: str, ts: str) -> list[str]:
    return [m.text for m in h.slack.thread(channel, ts)]


async def test_message_without_a_link_is_triaged_as_a_pasted_ticket(h: SlackHarness) -> None:
    ts = h.slack.add_message(SUPPORT, QUESTION, "W222")
    sent = await h.message_shortcut({"ts": ts, "user": "W222", "text": QUESTION}, name="sc")
    assert sent.status == 200 and sent.body == ""
    await h.idle()

    ticket_id = pasted_ticket_id(f"slack:T111:{SUPPORT}:{ts}")
    run = await h.svc.store.latest_run(ticket_id)
    assert run is not None and run.status == RunStatus.done and run.report is not None
    report = run.report
    assert is_pasted(report.ticket.id) and report.ticket.requester == "Jane Customer"
    assert report.ticket.url.startswith(
        f"https://acme.slack.com/archives/{SUPPORT}/p"
    )  # the card links the source
    assert report.product_area == "feature_flags"
    assert "new-checkout-flow" in report.intake.identifiers.flag_keys  # entities and <url|label> were decoded

    # the report went to the escalations channel, never to the source channel's top level
    parents = h.slack.top_level(TRIAGE_CHANNEL)
    assert len(parents) == 1 and report.ticket.ref in parents[0].text
    assert all(m.channel in (TRIAGE_CHANNEL, SUPPORT) for m in h.slack.messages.values())
    assert [m for m in h.slack.top_level(SUPPORT) if m.ts != ts] == []
    parent_blocks = json.dumps(parents[0].blocks)
    assert ACTION_RERUN not in parent_blocks  # a pasted ticket cannot be re-fetched
    # …and the source message got a threaded reply linking to the report thread
    (reply,) = _replies(h, SUPPORT, ts)
    assert report.ticket.ref in reply and f"archives/{TRIAGE_CHANNEL}/p" in reply and "<@W111>" in reply

    # the same message again: the same pasted ticket, its existing thread
    await h.message_shortcut({"ts": ts, "user": "W222", "text": QUESTION})
    await h.idle()
    assert len(h.slack.top_level(TRIAGE_CHANNEL)) == 1
    assert "already triaged" in _replies(h, SUPPORT, ts)[-1]


async def test_message_with_a_zendesk_link_triages_that_ticket(h: SlackHarness) -> None:
    text = f"Customer escalated this one: <{h.zendesk.url}/agent/tickets/48291|#48291> please look"
    ts = h.slack.add_message(SUPPORT, text, "W333")
    await h.message_shortcut({"ts": ts, "user": "W333", "text": text})
    await h.idle()
    run = await h.svc.store.latest_run(48291)
    assert run is not None and run.status == RunStatus.done
    assert h.zendesk.calls("/api/v2/tickets/48291.json")
    (reply,) = _replies(h, SUPPORT, ts)
    assert "#48291" in reply and f"archives/{TRIAGE_CHANNEL}/p" in reply


async def test_when_the_bot_cannot_reply_in_the_source_channel_the_clicker_gets_an_ephemeral_note(
    h: SlackHarness,
) -> None:
    ts = h.slack.add_message(SUPPORT, QUESTION, "W222")
    h.slack.not_member.add(SUPPORT)
    await h.message_shortcut({"ts": ts, "user": "W222", "text": QUESTION}, name="eph")
    note = await h.wait_response("eph")
    await h.idle()
    assert note["response_type"] == "ephemeral" and "Triaging pasted-" in note["text"]
    assert f"archives/{TRIAGE_CHANNEL}/p" in note["text"]
    assert _replies(h, SUPPORT, ts) == []


async def test_slack_connect_messages_are_refused_unless_allowed_and_never_answered_there(
    tmp_path: Path,
) -> None:
    async with slack_harness(tmp_path) as h:
        shared = "C0EXT"
        h.slack.shared_channels.add(shared)
        ts = h.slack.add_message(shared, QUESTION, "W222")
        await h.message_shortcut({"ts": ts, "user": "W222", "text": QUESTION}, channel=shared, name="ext")
        refused = await h.wait_response("ext")
        await h.idle()
        assert "Slack Connect" in refused["text"] and "SLACK_TRIAGE_SHARED_MESSAGES" in refused["text"]
        assert h.slack.calls_to("chat.postMessage") == []

        await h.restart(slack_triage_shared_messages=True)
        await h.message_shortcut({"ts": ts, "user": "W222", "text": QUESTION}, channel=shared, name="ext2")
        note = await h.wait_response("ext2")
        await h.idle()
        assert "Triaging pasted-" in note["text"]
        assert len(h.slack.top_level(TRIAGE_CHANNEL)) == 1
        assert [m for m in h.slack.messages.values() if m.channel == shared and m.ts != ts] == []


async def test_the_shortcut_is_under_the_same_access_control_as_the_command(tmp_path: Path) -> None:
    async with slack_harness(tmp_path, slack_allowed_users="W111", slack_allowed_channels=SUPPORT) as h:
        ts = h.slack.add_message(SUPPORT, QUESTION, "W222")
        await h.message_shortcut({"ts": ts, "user": "W222", "text": QUESTION}, user="W999", name="who")
        assert "not allowed" in (await h.wait_response("who"))["text"]
        other = h.slack.add_message("C0RANDOM", QUESTION, "W222")
        await h.message_shortcut(
            {"ts": other, "user": "W222", "text": QUESTION}, channel="C0RANDOM", name="where"
        )
        assert "not enabled in this channel" in (await h.wait_response("where"))["text"]
        await h.idle()
        assert h.slack.calls_to("chat.postMessage") == []


async def test_bare_triage_opens_the_paste_modal_and_its_submission_triages_the_text(h: SlackHarness) -> None:
    sent = await h.command("", name="bare")
    assert sent.status == 200 and sent.body == ""
    await h.idle()
    (opened,) = h.slack.calls_to("views.open")
    view = opened.params["view"]
    assert view["callback_id"] == VIEW_PASTE and validate_view(view) == []
    assert json.loads(view["private_metadata"]) == {"channel": SUPPORT}

    # nothing filled in / a bad ticket id: errors under the fields, nothing runs
    empty = await h.view_submission(VIEW_PASTE, view["private_metadata"], {PASTE_BLOCK: {PASTE_INPUT: "  "}})
    assert empty.json()["response_action"] == "errors" and PASTE_BLOCK in empty.json()["errors"]
    bad = await h.view_submission(
        VIEW_PASTE, view["private_metadata"], {PASTE_TICKET_BLOCK: {PASTE_TICKET_INPUT: "banana"}}
    )
    assert PASTE_TICKET_BLOCK in bad.json()["errors"]

    pasted = "Session recordings are blank since we tightened our CSP; posthog-js 1.150.1 behind a proxy."
    sent = await h.view_submission(
        VIEW_PASTE,
        view["private_metadata"],
        {PASTE_BLOCK: {PASTE_INPUT: pasted}, PASTE_TICKET_BLOCK: {PASTE_TICKET_INPUT: ""}},
    )
    assert sent.json()["response_action"] == "update"
    await h.idle()
    updates = [v for v in h.slack.views if v["op"] == "update"]
    assert updates and "Triaging pasted-" in json.dumps(updates[-1]["view"])
    assert f"archives/{TRIAGE_CHANNEL}/p" in json.dumps(updates[-1]["view"])
    parent = h.slack.top_level(TRIAGE_CHANNEL)[0]
    assert "pasted-" in parent.text
    ticket_id = await h.svc.store.ticket_for_thread(TRIAGE_CHANNEL, parent.ts)
    assert ticket_id is not None and is_pasted(ticket_id)
    run = await h.svc.store.latest_run(ticket_id)
    assert run is not None and run.status == RunStatus.done and run.report is not None
    assert run.report.product_area == "session_replay"

    # a ticket id alone triages that Zendesk ticket
    await h.view_submission(
        VIEW_PASTE, view["private_metadata"], {PASTE_TICKET_BLOCK: {PASTE_TICKET_INPUT: "#48302"}}
    )
    await h.idle()
    run = await h.svc.store.latest_run(48302)
    assert run is not None and run.status == RunStatus.done
    assert "#48302" in json.dumps([v for v in h.slack.views if v["op"] == "update"][-1]["view"])


def test_the_manifest_declares_the_shortcut_the_home_tab_and_their_scopes() -> None:
    manifest = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "deploy" / "slack-manifest.yaml").read_text()
    )
    features = manifest["features"]
    (shortcut,) = [s for s in features["shortcuts"] if s["callback_id"] == SHORTCUT_TRIAGE_MESSAGE]
    assert (
        shortcut["type"] == "message" and len(shortcut["name"]) <= 24 and len(shortcut["description"]) <= 150
    )
    assert features["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {"users:read", "channels:read", "groups:read", "commands"} <= set(
        manifest["oauth_config"]["scopes"]["bot"]
    )
