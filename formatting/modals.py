"""Modals that are not about one report: the paste modal of a bare `/triage`, and notices (an access
refusal, "triaging…", the link to the report) shown in place of a modal."""

from __future__ import annotations

from typing import Any

from formatting.actions import PASTE_BLOCK, PASTE_INPUT, PASTE_TICKET_BLOCK, PASTE_TICKET_INPUT, VIEW_PASTE
from formatting.escape import clip, clip_mrkdwn, plain_text
from formatting.limits import (
    INPUT_HINT_MAX,
    INPUT_LABEL_MAX,
    MODAL_CLOSE_MAX,
    MODAL_PRIVATE_METADATA_MAX,
    MODAL_SUBMIT_MAX,
    MODAL_TITLE_MAX,
    PLACEHOLDER_MAX,
    PLAIN_TEXT_INPUT_MAX,
    SECTION_TEXT_MAX,
)


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": plain_text(text, limit), "emoji": True}


def paste_modal(private_metadata: str, triage_channel: str) -> dict[str, Any]:
    """`/triage` with no arguments: paste the customer's message (required) and, optionally, a ticket id."""
    where = f"<#{triage_channel}>" if triage_channel else "the triage channel"
    return {
        "type": "modal",
        "callback_id": VIEW_PASTE,
        "private_metadata": clip(private_metadata, MODAL_PRIVATE_METADATA_MAX, marker=""),
        "title": _plain("Triage a message", MODAL_TITLE_MAX),
        "submit": _plain("Triage", MODAL_SUBMIT_MAX),
        "close": _plain("Cancel", MODAL_CLOSE_MAX),
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"The report is posted in {where}. Secrets and e-mail addresses are redacted "
                    "before anything else sees the text.",
                },
            },
            {
                "type": "input",
                "block_id": PASTE_BLOCK,
                "optional": True,
                "label": _plain("Paste the customer's message", INPUT_LABEL_MAX),
                "hint": _plain(
                    "A message, an e-mail or a chat transcript. Leave it empty to triage the Zendesk ticket below.",
                    INPUT_HINT_MAX,
                ),
                "element": {
                    "type": "plain_text_input",
                    "action_id": PASTE_INPUT,
                    "multiline": True,
                    "max_length": PLAIN_TEXT_INPUT_MAX,
                    "placeholder": _plain("Hi, since yesterday our feature flag…", PLACEHOLDER_MAX),
                },
            },
            {
                "type": "input",
                "block_id": PASTE_TICKET_BLOCK,
                "optional": True,
                "label": _plain("Zendesk ticket (optional)", INPUT_LABEL_MAX),
                "hint": _plain(
                    "Alone: triage that ticket. With a pasted message: the card links to the ticket.",
                    INPUT_HINT_MAX,
                ),
                "element": {
                    "type": "plain_text_input",
                    "action_id": PASTE_TICKET_INPUT,
                    "placeholder": _plain("48291 or a ticket URL", PLACEHOLDER_MAX),
                },
            },
        ],
    }


def notice_modal(title: str, text: str) -> dict[str, Any]:
    """A modal with one message and only a Close button (no submit)."""
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": plain_text(title, MODAL_TITLE_MAX), "emoji": True},
        "close": {"type": "plain_text", "text": plain_text("Close", MODAL_CLOSE_MAX), "emoji": True},
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": clip_mrkdwn(text, SECTION_TEXT_MAX), "verbatim": True},
            }
        ],
    }
