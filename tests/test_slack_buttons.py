"""Report buttons and modals: artefacts once, idempotent clicks, restarts, write-back only when enabled."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from formatting.actions import (
    ACTION_FEEDBACK_DOWN,
    ACTION_FEEDBACK_UP,
    ACTION_KB,
    ACTION_OPEN_TICKET,
    ACTION_PACKET,
    ACTION_REPLY,
    ACTION_RERUN,
    FEEDBACK_BLOCK,
    FEEDBACK_INPUT,
    REPLY_BLOCK,
    REPLY_INPUT,
    VIEW_FEEDBACK,
    VIEW_REPLY,
)
from integrations.zendesk import note_marker
from tests.slack_support import TRIAGE_CHANNEL, SlackHarness, slack_harness
from triage.store import RunRecord, RunStatus


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[SlackHarness]:
    async with slack_harness(tmp_path) as harness:
        yield harness


def _thread_text(h: SlackHarness, run: RunRecord) -> list[str]:
    assert run.thread_ts
    return [m.text + json.dumps(m.blocks) for m in h.slack.thread(TRIAGE_CHANNEL, run.thread_ts)]


def _notes(h: SlackHarness, ticket_id: int) -> list[dict[str, object]]:
    return [r.json() for r in h.zendesk.calls(f"/api/v2/tickets/{ticket_id}.json", method="PUT")]


async def test_escalation_packet_once_then_link(h: SlackHarness) -> None:
    run = await h.run_to_done(48291)
    sent = await h.action(ACTION_PACKET, run.run_id, name="p1")
    assert sent.status == 200 and sent.elapsed_s < 2.5
    await h.idle()
    packets = [t for t in _thread_text(h, run) if "Escalation packet" in t]
    assert len(packets) >= 1
    n_messages = len(h.slack.messages)

    await h.action(ACTION_PACKET, run.run_id, name="p2")
    again = await h.wait_response("p2")
    assert again["text"].startswith(
        "Already posted in the thread → <https://acme.slack.com/archives/C0TRIAGE/p"
    )
    await h.idle()
    assert len(h.slack.messages) == n_messages  # nothing posted twice
    artefact = await h.svc.store.get_artefact(run.run_id, "packet")
    assert artefact is not None and artefact.status == "done"


async def test_kb_draft_uploads_markdown_and_works_after_restart(h: SlackHarness) -> None:
    run = await h.run_to_done(48291)
    await h.restart()  # a new process: everything the button needs comes from the store
    await h.action(ACTION_KB, run.run_id, name="kb1")
    await h.idle()
    assert len(h.slack.uploads) == 1
    content = next(iter(h.slack.uploads.values())).decode()
    assert content.startswith("#")  # a Markdown document
    complete = h.slack.calls_to("files.completeUploadExternal")[0].params
    assert complete["channel_id"] == TRIAGE_CHANNEL and complete["thread_ts"] == run.thread_ts
    assert any("KB draft" in t for t in _thread_text(h, run))

    await h.restart()
    await h.action(ACTION_KB, run.run_id, name="kb2")
    again = await h.wait_response("kb2")
    assert "Already posted" in again["text"]
    await h.idle()
    assert len(h.slack.uploads) == 1


async def test_reply_modal_without_writeback_shows_text_for_copying(h: SlackHarness) -> None:
    run = await h.run_to_done(48291)
    assert run.report is not None
    await h.action(ACTION_REPLY, run.run_id, name="r1")
    await h.idle()
    opened = h.slack.calls_to("views.open")
    assert len(opened) == 1
    view = opened[0].params["view"]
    assert view["callback_id"] == VIEW_REPLY and view["private_metadata"] == run.run_id
    assert "Nothing is sent" in json.dumps(view)

    sent = await h.view_submission(
        VIEW_REPLY, run.run_id, {REPLY_BLOCK: {REPLY_INPUT: "Hi Jane, <!here> we found it."}}
    )
    assert sent.status == 200
    await h.idle()
    assert _notes(h, 48291) == []  # write-back is off: nothing goes to Zendesk
    eph = h.slack.calls_to("chat.postEphemeral")
    assert len(eph) == 1 and eph[0].params["user"] == "W111" and eph[0].params["thread_ts"] == run.thread_ts
    dumped = json.dumps(eph[0].params["blocks"])
    assert "ZENDESK_WRITEBACK" in dumped and "&lt;!here&gt;" in dumped and "<!here>" not in dumped


async def test_reply_modal_with_writeback_adds_one_private_note(tmp_path: Path) -> None:
    async with slack_harness(tmp_path, zendesk_writeback=True) as h:
        run = await h.run_to_done(48291)
        await h.action(ACTION_REPLY, run.run_id, name="r1")
        await h.idle()
        assert "PRIVATE internal note" in json.dumps(h.slack.calls_to("views.open")[0].params["view"])

        empty = await h.view_submission(VIEW_REPLY, run.run_id, {REPLY_BLOCK: {REPLY_INPUT: "  "}})
        assert empty.json()["response_action"] == "errors"

        await h.view_submission(
            VIEW_REPLY, run.run_id, {REPLY_BLOCK: {REPLY_INPUT: "Hi Jane, fixed in 1.2.3."}}
        )
        await h.idle()
        notes = _notes(h, 48291)
        assert len(notes) == 1
        comment = notes[0]["ticket"]["comment"]  # type: ignore[index]
        assert comment["public"] is False
        assert comment["body"] == f"Hi Jane, fixed in 1.2.3.\n\n{note_marker(run.run_id)}"
        assert any("private internal note" in t for t in _thread_text(h, run))

        await h.view_submission(VIEW_REPLY, run.run_id, {REPLY_BLOCK: {REPLY_INPUT: "again"}})
        await h.idle()
        assert len(_notes(h, 48291)) == 1  # a double submit does not add a second note
        assert "already added" in h.slack.calls_to("chat.postEphemeral")[-1].params["text"]


async def test_feedback_votes_and_comment_are_stored(h: SlackHarness) -> None:
    run = await h.run_to_done(48291)
    await h.action(ACTION_FEEDBACK_UP, run.run_id, user="W111", name="up")
    assert "Thanks" in (await h.wait_response("up"))["text"]
    await h.action(ACTION_FEEDBACK_DOWN, run.run_id, user="W222", name="down")
    await h.idle()
    modal = h.slack.calls_to("views.open")[-1].params["view"]
    assert modal["callback_id"] == VIEW_FEEDBACK and modal["private_metadata"] == run.run_id
    await h.view_submission(
        VIEW_FEEDBACK, run.run_id, {FEEDBACK_BLOCK: {FEEDBACK_INPUT: "wrong SDK"}}, user="W222"
    )
    await h.idle()
    votes = {(f.user_id, f.vote, f.comment) for f in await h.svc.store.feedback_for_run(run.run_id)}
    assert votes == {("W111", "up", ""), ("W222", "down", "wrong SDK")}


async def test_rerun_button_triages_again_in_the_same_thread(h: SlackHarness) -> None:
    run = await h.run_to_done(48291)
    await h.action(ACTION_RERUN, run.run_id, name="rr")
    await h.idle()
    latest = await h.svc.store.latest_run(48291)
    assert latest is not None and latest.run_id != run.run_id and latest.status == RunStatus.done
    assert latest.thread_ts == run.thread_ts
    assert len(h.slack.top_level(TRIAGE_CHANNEL)) == 1
    assert any("New triage run" in t for t in _thread_text(h, run))


async def test_unknown_run_and_link_button(h: SlackHarness) -> None:
    await h.action(ACTION_PACKET, "no-such-run", name="gone")
    assert "no longer available" in (await h.wait_response("gone"))["text"]
    sent = await h.action(ACTION_OPEN_TICKET, "", name="link")
    assert sent.status == 200
    await h.idle()
    assert h.responses_for("link") == []
    assert h.slack.calls_to("chat.postMessage") == []
