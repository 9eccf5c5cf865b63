"""Modals that are not about one report: notices (e.g. an access refusal shown in place of a modal)."""

from __future__ import annotations

from typing import Any

from formatting.escape import clip_mrkdwn, plain_text
from formatting.limits import MODAL_CLOSE_MAX, MODAL_TITLE_MAX, SECTION_TEXT_MAX


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
