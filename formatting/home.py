"""The App Home tab: the viewer's recent triages and the workspace's last days (views.publish payload).

Everything user- or ticket-written (subjects) is escaped; the view stays inside Block Kit's Home tab
limits (100 blocks, 3000 characters per text) whatever the data, because lists are capped here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from formatting.escape import link, safe_inline
from formatting.limits import MODAL_BLOCKS_MAX as HOME_BLOCKS_MAX
from formatting.limits import SECTION_TEXT_MAX
from triage.models import Confidence

MAX_RECENT = 15  # a few blocks each → far below the 100-block limit
GRADE_BADGE = {
    Confidence.confirmed: "🎯 Confirmed",
    Confidence.likely: "🤔 Likely",
    Confidence.suspected: "❓ Suspected",
}
STATUS_BADGE = {"running": "⏳ running", "failed": "⚠️ failed", "done": "✅ done"}


@dataclass
class HomeTriage:
    """One of the viewer's triages."""

    ticket: str  # "#48291" or "pasted-…"
    subject: str
    status: str  # running | done | failed
    grade: Confidence | None = None
    escalate: bool = False
    evidence_only: bool = False
    thread_url: str = ""


@dataclass
class HomeWeek:
    """The workspace over the last `days` days."""

    days: int
    triages: int
    escalations: int
    votes_up: int
    votes_down: int
    cost_usd: float


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_TEXT_MAX], "verbatim": True}}


def _context(text: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": text[:SECTION_TEXT_MAX], "verbatim": True}],
    }


def _triage_line(t: HomeTriage) -> str:
    title = f"{safe_inline(t.ticket, 40)} {safe_inline(t.subject, 150)}"
    head = link(t.thread_url, title, label_limit=200) if t.thread_url else title
    parts = [STATUS_BADGE.get(t.status, safe_inline(t.status, 20))]
    if t.status == "done":
        parts.append(GRADE_BADGE[t.grade] if t.grade else "no root cause")
        if t.evidence_only:
            parts.append("evidence only")
        if t.escalate:
            parts.append("🚨 escalate")
    return f"*{head}*\n{' · '.join(parts)}"


def home_view(
    user_id: str, recent: list[HomeTriage], week: HomeWeek | None, *, triage_channel: str = "", note: str = ""
) -> dict[str, Any]:
    """The Home tab for `user_id`. `note` replaces the content (e.g. an access refusal)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Triage", "emoji": True}}
    ]
    if note:
        blocks.append(_section(note))
        return {"type": "home", "blocks": blocks}
    where = f"<#{triage_channel}>" if triage_channel else "the triage channel"
    blocks.append(
        _context(
            f"`/triage 48291` · `/triage` to paste a message · ⋮ → *Triage this message* on any message. "
            f"Reports go to {where}."
        )
    )
    blocks.append(
        {"type": "header", "text": {"type": "plain_text", "text": "Your recent triages", "emoji": True}}
    )
    if recent:
        for item in recent[:MAX_RECENT]:
            blocks.append(_section(_triage_line(item)))
        if len(recent) > MAX_RECENT:
            blocks.append(_context(f"…and {len(recent) - MAX_RECENT} older"))
    else:
        blocks.append(_section(f"<@{user_id}>, you have not triaged anything yet."))
    if week is not None:
        blocks.append({"type": "divider"})
        blocks.append(
            {
                "type": "header",
                "text": {"type": "plain_text", "text": f"Last {week.days} days", "emoji": True},
            }
        )
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*Triages*\n{week.triages}"},
                    {"type": "mrkdwn", "text": f"*Escalations*\n{week.escalations}"},
                    {"type": "mrkdwn", "text": f"*Feedback*\n👍 {week.votes_up} · 👎 {week.votes_down}"},
                    {"type": "mrkdwn", "text": f"*Model cost*\n${week.cost_usd:,.2f}"},
                ],
            }
        )
    return {"type": "home", "blocks": blocks[:HOME_BLOCKS_MAX]}
