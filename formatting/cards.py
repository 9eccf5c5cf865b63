"""Block Kit payloads for Slack: the live parent card, the report thread, drafts, modals.

Pure functions: models in, ``dict`` payloads out (``{"text": ..., "blocks": [...]}`` for messages,
a view ``dict`` for modals). Every untrusted string (ticket, model output, evidence) goes through
`formatting.escape`; every mrkdwn text object is ``verbatim`` (no auto-linking / auto-mentions);
every message carries a plain fallback ``text``; every payload passes `formatting.limits`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

from formatting.actions import (
    ACTION_FEEDBACK_DOWN,
    ACTION_FEEDBACK_UP,
    ACTION_KB,
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
from formatting.escape import (
    clip,
    clip_mrkdwn,
    link,
    one_line,
    plain_text,
    safe_inline,
    safe_mrkdwn,
    sanitize,
    slack_len,
    split_mrkdwn,
)
from formatting.limits import (
    BUTTON_TEXT_MAX,
    BUTTON_VALUE_MAX,
    CONTEXT_ELEMENTS_MAX,
    HEADER_TEXT_MAX,
    INPUT_HINT_MAX,
    INPUT_LABEL_MAX,
    MESSAGE_BLOCKS_MAX,
    MESSAGE_TEXT_BUDGET,
    MODAL_PRIVATE_METADATA_MAX,
    MODAL_TITLE_MAX,
    PLACEHOLDER_MAX,
    PLAIN_TEXT_INPUT_MAX,
    SECTION_TEXT_MAX,
    TEXT_OBJECT_MAX,
)
from triage.models import (
    Confidence,
    EscalationPacket,
    Evidence,
    EvidenceStatus,
    Finding,
    FollowUpAnswer,
    KbArticle,
    KnownBug,
    ReplyDraft,
    ReportMode,
    TicketSummary,
    TriageReport,
    Usage,
    is_pasted,
)

CardStatus = Literal["queued", "researching", "synthesizing", "done", "failed"]

CONFIDENCE_BADGE: dict[Confidence, tuple[str, str]] = {
    Confidence.confirmed: ("🎯", "Confirmed by data"),
    Confidence.likely: ("🤔", "Likely"),
    Confidence.suspected: ("❓", "Suspected"),
}
STATUS_EMOJI: dict[EvidenceStatus, str] = {
    EvidenceStatus.ok: "✅",
    EvidenceStatus.empty: "⚪",
    EvidenceStatus.error: "❌",
    EvidenceStatus.timeout: "⏱️",
    EvidenceStatus.refused: "🚫",
    EvidenceStatus.rate_limited: "🐢",
}
PRIORITY_EMOJI = {"urgent": "🔴", "high": "🟠", "normal": "🟡", "low": "🟢"}
EVIDENCE_ONLY = "Evidence only — no model"

# Pass with every chat.postMessage / chat.postEphemeral of these payloads (never set link_names or
# parse="full"): bot messages quoting ticket text must not unfurl.
SEND_OPTIONS: dict[str, bool] = {"unfurl_links": False, "unfurl_media": False}

LIST_CAP = 50  # items shown per list in the thread; the rest is counted
ITEM_MAX = 600  # characters per list item
CODE_MAX = 2900  # a draft reply shown in a code block (fences included < 3000)


class CardState(BaseModel):
    """Everything the live parent card shows; rebuilt and re-rendered on each progress update."""

    ticket: TicketSummary
    run_id: str = ""
    status: CardStatus = "queued"
    product_area: str = ""  # label, e.g. "Feature flags & experiments"
    sources_done: list[str] = Field(default_factory=list)
    sources_pending: list[str] = Field(default_factory=list)
    elapsed_s: float = 0.0
    error: str = ""
    report: TriageReport | None = None
    thread_url: str = ""
    ticket_url: str = ""  # built from settings; falls back to ticket.url


# ---------------------------------------------------------------- block primitives


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip_mrkdwn(text, TEXT_OBJECT_MAX), "verbatim": True}


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": plain_text(text, limit), "emoji": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(clip_mrkdwn(text, SECTION_TEXT_MAX))}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": _plain(text, HEADER_TEXT_MAX)}


def _context(*texts: str) -> dict[str, Any]:
    elements = [_mrkdwn(t) for t in texts if t.strip()][:CONTEXT_ELEMENTS_MAX]
    return {"type": "context", "elements": elements or [_mrkdwn("-")]}


def _button(
    label: str, action_id: str, value: str, *, style: str | None = None, a11y: str = ""
) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": _plain(label, BUTTON_TEXT_MAX),
        "action_id": action_id,
    }
    if value:
        button["value"] = clip(value, BUTTON_VALUE_MAX, marker="")
    if style:
        button["style"] = style
    if a11y:
        button["accessibility_label"] = plain_text(a11y, BUTTON_TEXT_MAX)
    return button


def _size(block: dict[str, Any]) -> int:
    """Characters of text a block carries (for the per-message soft budget)."""
    total = 0
    stack: list[Any] = [block]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "text" and isinstance(value, str):
                    total += slack_len(value)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return total


class _Pager:
    """Packs blocks into messages: <= 50 blocks and <= MESSAGE_TEXT_BUDGET characters each.

    One block per page is held back for the "part n/m" marker or the truncation note.
    """

    def __init__(self, *, max_messages: int | None = None) -> None:
        self.pages: list[list[dict[str, Any]]] = [[]]
        self.sizes: list[int] = [0]
        self.max_messages = max_messages
        self.truncated = False

    def add(self, block: dict[str, Any]) -> None:
        if self.truncated:
            return
        size = _size(block)
        page = self.pages[-1]
        full = len(page) >= MESSAGE_BLOCKS_MAX - 1 or self.sizes[-1] + size > MESSAGE_TEXT_BUDGET - 400
        if page and full:
            if self.max_messages is not None and len(self.pages) >= self.max_messages:
                self.truncated = True
                return
            self.pages.append([])
            self.sizes.append(0)
        self.pages[-1].append(block)
        self.sizes[-1] += size

    def text(self, text: str) -> None:
        """A composed mrkdwn text of any length: split into sections at line boundaries."""
        for chunk in split_mrkdwn(text, SECTION_TEXT_MAX):
            self.add(_section(chunk))

    def lines(self, lines: Iterable[str], heading: str = "") -> None:
        """Pack lines into as few sections as fit (each <= 3000), heading first."""
        buf = heading
        for line in lines:
            for piece in split_mrkdwn(line, SECTION_TEXT_MAX):
                if buf and slack_len(buf) + 1 + slack_len(piece) > SECTION_TEXT_MAX:
                    self.add(_section(buf))
                    buf = piece
                else:
                    buf = f"{buf}\n{piece}" if buf else piece
        if buf.strip():
            self.add(_section(buf))

    def messages(self, fallback: Callable[[int, int], str], part_label: str = "") -> list[dict[str, Any]]:
        pages = [p for p in self.pages if p] or [[_section("-")]]
        total = len(pages)
        out: list[dict[str, Any]] = []
        for i, page in enumerate(pages, start=1):
            blocks = list(page)
            if total > 1 and i > 1:
                blocks.insert(0, _context(f"_{part_label} · part {i}/{total}_"))
            if self.truncated and i == total:
                blocks.append(_context("_… clipped to fit one Slack message_"))
            text = clip(fallback(i, total), 3000)
            out.append({"text": text if text.strip() else "Triage bot message", "blocks": blocks})
        return out

    def message(self, fallback: str) -> dict[str, Any]:
        return self.messages(lambda _i, _n: fallback)[0]


# ---------------------------------------------------------------- shared pieces


def _cites(ids: list[str]) -> str:
    if not ids:
        return ""
    shown = [safe_inline(i, 16) for i in ids[:12]]
    more = f" +{len(ids) - 12}" if len(ids) > 12 else ""
    return f" [{', '.join(shown)}{more}]"


def _names(names: list[str], cap: int = 6) -> str:
    shown = ", ".join(safe_inline(n, 40) for n in names[:cap])
    return shown + (f" +{len(names) - cap} more" if len(names) > cap else "")


def _badge(confidence: Confidence) -> str:
    emoji, label = CONFIDENCE_BADGE[confidence]
    return f"{emoji} _{label}_"


def grade_line(report: TriageReport) -> str:
    """The report's grade in one line (the card's first line after the ticket): the root cause's grade."""
    if report.root_cause is None:
        return "❓ *Not determined — needs a human*"
    emoji, label = CONFIDENCE_BADGE[report.root_cause.confidence]
    return f"{emoji} *{label}*"


def _grade_text(report: TriageReport) -> str:
    return CONFIDENCE_BADGE[report.root_cause.confidence][1] if report.root_cause else "Not determined"


def _finding_line(finding: Finding, limit: int = ITEM_MAX) -> str:
    statement = safe_inline(finding.statement, limit)
    return f"{_badge(finding.confidence)} — {statement}{_cites(finding.evidence_ids)}"


def _ticket_title(ticket: TicketSummary, url: str, limit: int = 200) -> str:
    return f"*{link(url or ticket.url, f'{ticket.ref} {ticket.subject}', limit)}*"


def _ticket_meta(ticket: TicketSummary, area: str = "") -> str:
    parts: list[str] = []
    if ticket.priority:
        emoji = PRIORITY_EMOJI.get(ticket.priority.lower(), "⚪")
        parts.append(f"{emoji} {safe_inline(ticket.priority.capitalize(), 30)}")
    if ticket.organization:
        parts.append(f"🏢 {safe_inline(ticket.organization, 80)}")
    if area:
        parts.append(f"🧭 {safe_inline(area, 60)}")
    return " · ".join(parts)


def _evidence_row(ev: Evidence) -> str:
    emoji = STATUS_EMOJI.get(ev.status, "•")
    label = ev.title or ev.tool or ev.query or ev.source
    finding = ev.summary or ev.excerpt
    row = (
        f"{emoji} *{safe_inline(ev.id or '?', 16)}* {safe_inline(ev.source, 40)} · {link(ev.url, label, 120)}"
    )
    if finding:
        row += f" — {safe_inline(finding, 240)}"
    if ev.status.failed or ev.status is EvidenceStatus.empty:
        row += f" _({ev.status.value})_"
    if ev.internal:
        row += " 🔒 _internal_"
    return row


def _known_bug_line(bug: KnownBug, limit: int = 200) -> str:
    parts = [f"🐛 *Known bug:* {link(bug.issue_url, bug.title or 'issue', limit)}"]
    if bug.state:
        parts.append(safe_inline(bug.state, 20))
    if bug.fix_pr_url:
        parts.append(f"fix {link(bug.fix_pr_url, 'PR', 10)}" + (" (merged)" if bug.fix_merged else ""))
    if bug.fixed_in:
        parts.append(f"fixed in *{safe_inline(bug.fixed_in, 40)}*")
    if bug.exact_match:
        parts.append("exact match")
    return " · ".join(parts) + _cites(bug.evidence_ids)


def _capped(items: list[str], numbered: bool = False, bullet: str = "•") -> list[str]:
    lines = [
        f"{i}. {safe_inline(item, ITEM_MAX)}" if numbered else f"{bullet} {safe_inline(item, ITEM_MAX)}"
        for i, item in enumerate(items[:LIST_CAP], start=1)
    ]
    if len(items) > LIST_CAP:
        lines.append(f"_… and {len(items) - LIST_CAP} more (see the Markdown report)_")
    return lines


def _code_block(text: str) -> str:
    body = safe_mrkdwn(text[: CODE_MAX * 2]).replace("```", "`\u200b`\u200b`").strip("\n")
    return f"```\n{clip(body, CODE_MAX - 8)}\n```"


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.1f}s"


def _elapsed(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def _usage_line(usage: Usage) -> str:
    if not usage.calls and not usage.input_tokens:
        return "🧮 no model calls"
    cached = f" ({usage.cache_read_tokens:,} cached)" if usage.cache_read_tokens else ""
    return (
        f"🧮 {usage.input_tokens:,} in / {usage.output_tokens:,} out tokens{cached}"
        f" · {usage.calls} calls · ${usage.cost_usd:.4f}"
    )


def _escalate_first(report: TriageReport | None) -> bool:
    if report is None:
        return False
    return report.escalation.needed or report.root_cause is None or report.confidence is Confidence.suspected


def _sources_ok(report: TriageReport) -> str:
    if not report.sources:
        return ""
    ok = sum(1 for s in report.sources if s.status is EvidenceStatus.ok)
    return f"{ok}/{len(report.sources)} sources ok"


# ---------------------------------------------------------------- the parent card


def card_buttons(report: TriageReport | None, run_id: str) -> dict[str, Any]:
    """The actions block of a finished card. Packet first and primary when a human must look."""
    packet = _button("Escalation packet", ACTION_PACKET, run_id)
    kb = _button("KB article draft", ACTION_KB, run_id)
    reply = _button("Draft reply", ACTION_REPLY, run_id)
    rerun = _button("Re-run", ACTION_RERUN, run_id)
    up = _button("👍", ACTION_FEEDBACK_UP, run_id, a11y="Helpful")
    down = _button("👎", ACTION_FEEDBACK_DOWN, run_id, a11y="Not helpful")
    if _escalate_first(report):
        packet["style"] = "primary"
        elements = [packet, reply, kb, rerun, up, down]
    else:
        reply["style"] = "primary"
        elements = [reply, kb, packet, rerun, up, down]
    if report is not None and is_pasted(report.ticket.id):
        elements.remove(rerun)  # a pasted ticket cannot be fetched again: paste it again instead
    return {"type": "actions", "elements": elements}


def parent_message(state: CardState) -> dict[str, Any]:
    """One compact card for the triage channel, updated in place while the run progresses."""
    ticket, report = state.ticket, state.report
    area = state.product_area or (report.product_area_label if report else "")
    lines = [_ticket_title(ticket, state.ticket_url)]
    meta = _ticket_meta(ticket, area)
    if meta:
        lines.append(meta)
    run_id = state.run_id or (report.run_id if report else "")
    blocks: list[dict[str, Any]] = []
    footer: list[str] = []
    fallback_status: str

    if state.status == "failed":
        lines.append(f"⚠️ *Triage failed:* {safe_inline(state.error or 'unknown error', 500)}")
        fallback_status = "triage failed"
        blocks = [_section("\n".join(lines))]
        if not is_pasted(ticket.id):
            blocks.append({"type": "actions", "elements": [_button("Re-run", ACTION_RERUN, run_id)]})
        footer.append(f"⏱ {_elapsed(state.elapsed_s)}")
    elif state.status == "done" and report is not None:
        lines.append(grade_line(report))
        if report.mode is ReportMode.evidence_only:
            reason = f": {safe_inline(report.degraded_reason, 200)}" if report.degraded_reason else ""
            lines.append(f"⚠️ *{EVIDENCE_ONLY}*{reason}")
        if report.summary:
            lines.append(f"*What's going on:* {safe_inline(report.summary, 500)}")
        if report.root_cause:
            lines.append(f"*Root cause:* {_finding_line(report.root_cause, 400)}")
        else:
            lines.append("*Root cause:* ❓ _not determined — needs a human_")
        if report.known_bug:
            lines.append(_known_bug_line(report.known_bug, 120))
        if report.next_steps:
            steps = [f"{i}. {safe_inline(s, 200)}" for i, s in enumerate(report.next_steps[:2], start=1)]
            lines.append("*Next:* " + "   ".join(steps))
        if report.escalation.needed:
            team = f" to *{safe_inline(report.escalation.team, 60)}*" if report.escalation.team else ""
            lines.append(
                f"🚨 *Escalate*{team} · {report.escalation.urgency.value}"
                + (f" — {safe_inline(report.escalation.reason, 200)}" if report.escalation.reason else "")
            )
        blocks = [_section("\n".join(lines)), card_buttons(report, run_id)]
        footer.extend(x for x in (_sources_ok(report), f"⏱ {_seconds(report.timings.total_ms)}") if x)
        fallback_status = f"{_grade_text(report)}: {report.summary or 'triage done'}"
        if report.mode is ReportMode.evidence_only:
            fallback_status = f"{EVIDENCE_ONLY}. {fallback_status}"
    else:
        icon, label = {
            "queued": ("⏳", "Queued"),
            "researching": ("🔎", "Researching"),
            "synthesizing": ("🧠", "Writing the report"),
            "done": ("✅", "Done"),
        }[state.status]
        status = f"{icon} *{label}…*" if state.status != "done" else f"{icon} *{label}*"
        if state.sources_done:
            status += f" · ✅ {_names(state.sources_done)}"
        if state.sources_pending:
            status += f" · ⏳ {_names(state.sources_pending)}"
        status += f" · {_elapsed(state.elapsed_s)}"
        lines.append(status)
        fallback_status = label.lower()
        blocks = [_section("\n".join(lines))]

    if state.thread_url:
        footer.insert(0, f"🧵 {link(state.thread_url, 'Full report in thread')}")
    if footer:
        blocks.append(_context(" · ".join(footer)))
    fallback = f"{ticket.ref} {ticket.subject} — {fallback_status}"
    return {"text": safe_inline(fallback, 300), "blocks": blocks}


# ---------------------------------------------------------------- the report thread


def report_messages(report: TriageReport) -> list[dict[str, Any]]:
    """The full report for the card's thread, split into as many messages as it needs."""
    t = report.ticket
    pager = _Pager()
    pager.add(_header(f"Triage report · {t.ref}"))
    head = [_ticket_title(t, t.url), _ticket_meta(t, report.product_area_label)]
    pager.add(_section("\n".join(x for x in [*head, grade_line(report)] if x)))
    if report.mode is ReportMode.evidence_only:
        reason = f" {safe_inline(report.degraded_reason, 500)}" if report.degraded_reason else ""
        pager.add(_section(f"⚠️ *{EVIDENCE_ONLY}.*{reason} The findings below are the raw research results."))
    if report.summary:
        pager.text(f"*What's going on*\n{safe_mrkdwn(clip(report.summary, 8000))}")
    if report.root_cause:
        pager.text(f"*Root cause:* {_finding_line(report.root_cause, 2500)}")
    else:
        pager.add(_section("*Root cause:* ❓ _not determined — needs a human_"))
    if report.known_bug:
        pager.add(_section(_known_bug_line(report.known_bug)))
    if report.findings:
        lines = [_finding_line(f) for f in report.findings[:LIST_CAP]]
        if len(report.findings) > LIST_CAP:
            lines.append(f"_… and {len(report.findings) - LIST_CAP} more_")
        pager.lines(lines, "*Findings*")
    if report.evidence:
        pager.lines([_evidence_row(e) for e in report.evidence], f"*Evidence* — {len(report.evidence)} items")
    if report.ruled_out:
        pager.lines(_capped(report.ruled_out), "*Checked and ruled out*")
    if report.next_steps:
        pager.lines(_capped(report.next_steps, numbered=True), "*Next steps*")
    if report.checklist:
        pager.lines(_capped(report.checklist, bullet="☐"), "*Checklist*")
    if report.questions_for_customer:
        pager.lines(_capped(report.questions_for_customer, bullet="❔"), "*Questions for the customer*")
    if report.customer_reply_draft.strip():
        lang = safe_inline(report.intake.language, 10)
        note = (
            "" if slack_len(report.customer_reply_draft) < CODE_MAX - 50 else " _(clipped — use Draft reply)_"
        )
        pager.add(
            _section(
                f"*Draft reply to the customer* ({lang}){note}\n{_code_block(report.customer_reply_draft)}"
            )
        )
    pager.add(_section(_escalation_line(report)))
    failed = [s for s in report.sources if s.status.failed or s.failed]
    if failed:
        pager.lines(
            [
                f"{STATUS_EMOJI.get(s.status, '•')} {safe_inline(s.source, 60)} — {s.status.value}"
                f" · {s.failed} of {s.count} failed · {_seconds(s.latency_ms)}"
                for s in failed
            ],
            "*Failed sources*",
        )
    if report.grading_notes:
        pager.add(
            _context(*("📏 " + safe_inline(n, 300) for n in report.grading_notes[: CONTEXT_ELEMENTS_MAX - 1]))
        )
    tm = report.timings
    pager.add(
        _context(
            _usage_line(report.usage),
            f"⏱ fetch {_seconds(tm.fetch_ms)} · intake {_seconds(tm.intake_ms)}"
            f" · research {_seconds(tm.research_ms)} · synthesis {_seconds(tm.synthesis_ms)}"
            f" · total {_seconds(tm.total_ms)}",
            f"{safe_inline(report.mode.value, 20)} · v{report.version}"
            + (f" · run {safe_inline(report.run_id, 64)}" if report.run_id else ""),
        )
    )
    first = f"Triage report for {t.ref} ({_grade_text(report)}): {report.summary or t.subject}"
    if report.mode is ReportMode.evidence_only:
        first = f"Triage report for {t.ref} ({EVIDENCE_ONLY}): {report.summary or t.subject}"

    def fallback(i: int, n: int) -> str:
        return safe_inline(first, 300) if i == 1 else f"Triage report for {t.ref} (part {i} of {n})"

    return pager.messages(fallback, f"Triage report {t.ref}")


def _escalation_line(report: TriageReport) -> str:
    esc = report.escalation
    if not esc.needed:
        return "✅ *Escalation:* not needed" + (f" — {safe_inline(esc.reason, 500)}" if esc.reason else "")
    team = f" to *{safe_inline(esc.team, 80)}*" if esc.team else ""
    reason = f" — {safe_inline(esc.reason, 1000)}" if esc.reason else ""
    return f"🚨 *Escalation needed*{team} · {esc.urgency.value}{reason}"


# ---------------------------------------------------------------- drafts and follow-ups


def packet_messages(packet: EscalationPacket) -> list[dict[str, Any]]:
    """The escalation packet for engineering, posted in the thread."""
    t = packet.ticket
    pager = _Pager()
    pager.add(_header(f"Escalation packet · {t.ref}"))
    head = [f"*{safe_inline(packet.title, 300)}*", _ticket_title(t, t.url)]
    owner = [f"{packet.urgency.value}"]
    if packet.owner_team:
        owner.append(f"owner *{safe_inline(packet.owner_team, 80)}*")
    if packet.suspected_component:
        owner.append(f"component *{safe_inline(packet.suspected_component, 120)}*")
    head.append("🚨 " + " · ".join(owner))
    pager.add(_section("\n".join(head)))
    if packet.summary:
        pager.text(f"*Summary*\n{safe_mrkdwn(packet.summary)}")
    if packet.impact:
        pager.text(f"*Impact*\n{safe_mrkdwn(packet.impact)}")
    if packet.environment:
        pager.lines(_capped(packet.environment), "*Environment*")
    if packet.reproduction_steps:
        pager.lines(_capped(packet.reproduction_steps, numbered=True), "*Reproduction*")
    if packet.root_cause:
        pager.text(f"*Root cause:* {_finding_line(packet.root_cause, 2500)}")
    if packet.known_bug:
        pager.add(_section(_known_bug_line(packet.known_bug)))
    if packet.evidence:
        pager.lines([_evidence_row(e) for e in packet.evidence], f"*Evidence* — {len(packet.evidence)} items")
    if packet.ruled_out:
        pager.lines(_capped(packet.ruled_out), "*Checked and ruled out*")

    def fallback(i: int, n: int) -> str:
        if i == 1:
            return safe_inline(f"Escalation packet for {t.ref}: {packet.title}", 300)
        return f"Escalation packet for {t.ref} (part {i} of {n})"

    return pager.messages(fallback, f"Escalation packet {t.ref}")


def kb_preview_message(article: KbArticle, file_note: str = "") -> dict[str, Any]:
    """A one-message preview of a KB article draft (the full text goes up as a Markdown file)."""
    pager = _Pager(max_messages=1)
    pager.add(_header(f"KB draft: {article.title}"))
    pager.add(_section(f"*Problem*\n{safe_mrkdwn(clip(article.problem, 1200))}"))
    if article.symptoms:
        pager.lines([f"• {safe_inline(s, 200)}" for s in article.symptoms[:8]], "*Symptoms*")
    if article.cause:
        pager.add(_section(f"*Cause*\n{safe_mrkdwn(clip(article.cause, 1200))}"))
    if article.resolution_steps:
        steps = [f"{i}. {safe_inline(s, 300)}" for i, s in enumerate(article.resolution_steps[:10], start=1)]
        pager.lines(steps, "*Resolution*")
    if article.affected_versions:
        pager.add(_section(f"*Affected versions:* {safe_inline(article.affected_versions, 500)}"))
    if article.related_links:
        pager.lines([f"• {link(u, u, 120)}" for u in article.related_links[:8]], "*Related*")
    if file_note.strip():
        pager.add(_context(f"📎 {safe_inline(file_note, 500)}"))
    return pager.message(safe_inline(f"KB article draft: {article.title}", 300))


def followup_message(answer: FollowUpAnswer) -> dict[str, Any]:
    """The bot's answer to a question asked in the report thread."""
    pager = _Pager(max_messages=1)
    pager.text(f"💬 {safe_mrkdwn(clip(answer.answer, 9000))}")
    if answer.evidence_ids:
        pager.add(_context(f"Based on{_cites(answer.evidence_ids)}"))
    if answer.extra_evidence:
        rows = [_evidence_row(e) for e in answer.extra_evidence[:20]]
        if len(answer.extra_evidence) > 20:
            rows.append(f"_… and {len(answer.extra_evidence) - 20} more_")
        pager.lines(rows, "*New research*")
    if answer.usage.calls or answer.usage.input_tokens:
        pager.add(_context(_usage_line(answer.usage)))
    return pager.message(safe_inline(answer.answer or "Follow-up answer", 300))


def _same(a: str, b: str) -> bool:
    return one_line(a).casefold() == one_line(b).casefold()


def retriage_message(
    report: TriageReport, previous: TriageReport | None, customer_excerpt: str
) -> dict[str, Any]:
    """Posted in the thread when the customer replied and the ticket was triaged again."""
    pager = _Pager(max_messages=1)
    excerpt = safe_inline(customer_excerpt, 600)
    pager.add(_section(f"🔁 *Customer replied:* “{excerpt}”" if excerpt else "🔁 *Customer replied*"))
    changes: list[str] = []
    area = report.product_area_label
    if previous is None:
        changes.append("_No previous report to compare with._")
        changes.append(f"• Area: {safe_inline(area, 80)}")
    elif previous.product_area != report.product_area:
        changes.append(f"• Area: {safe_inline(previous.product_area_label, 80)} → *{safe_inline(area, 80)}*")
    else:
        changes.append(f"• Area: unchanged ({safe_inline(area, 80)})")
    new_rc, old_rc = report.root_cause, previous.root_cause if previous else None
    if new_rc is None:
        changes.append("• Root cause: ❓ _not determined_")
    elif previous is not None and old_rc is not None and _same(old_rc.statement, new_rc.statement):
        changes.append("• Root cause: unchanged")
    else:
        changes.append(
            f"• Root cause{' (new)' if previous is not None else ''}: {safe_inline(new_rc.statement, 500)}"
        )
    new_c, old_c = report.confidence, previous.confidence if previous else None
    if previous is not None and new_c != old_c:
        before = _badge(old_c) if old_c else "none"
        changes.append(f"• Confidence: {before} → {_badge(new_c) if new_c else 'none'}")
    elif new_c is not None:
        changes.append(f"• Confidence: {_badge(new_c)}" + (" (unchanged)" if previous is not None else ""))
    new_bug, old_bug = report.known_bug, previous.known_bug if previous else None
    if new_bug and (old_bug is None or old_bug.issue_url != new_bug.issue_url):
        changes.append(f"• Now matches a known bug: {_known_bug_line(new_bug, 120)}")
    elif old_bug and new_bug is None:
        changes.append(
            f"• No longer matches known bug {link(old_bug.issue_url, old_bug.title or 'issue', 120)}"
        )
    elif new_bug:
        changes.append(
            "• Known bug: unchanged"
            + (f", fixed in {safe_inline(new_bug.fixed_in, 40)}" if new_bug.fixed_in else "")
        )
    pager.lines(changes, "*What changed*")
    if report.mode is ReportMode.evidence_only:
        pager.add(_section(f"⚠️ *{EVIDENCE_ONLY}*"))
    if report.summary:
        pager.add(_section(f"*Now:* {safe_inline(report.summary, 800)}"))
    return pager.message(safe_inline(f"Customer replied on {report.ticket.ref}: {customer_excerpt}", 300))


def error_message(text: str) -> dict[str, Any]:
    """A short, escaped error notice (in a thread or as an ephemeral)."""
    body = safe_inline(text or "Something went wrong", 2000)
    return {"text": f"⚠️ {clip(body, 300)}", "blocks": [_section(f"⚠️ {body}")]}


def notice_message(text: str, emoji: str = "ℹ️") -> dict[str, Any]:
    """A short, escaped informational message (e.g. an ephemeral reply to a command)."""
    body = safe_inline(text or "-", 2000)
    return {"text": clip(f"{emoji} {body}", 300), "blocks": [_section(f"{emoji} {body}")]}


def ephemeral_text(text: str, limit: int = 3000) -> str:
    """Escaped one-line text for a plain ``respond(text=...)`` / ``chat.postEphemeral``."""
    return safe_inline(text, limit)


# ---------------------------------------------------------------- modals


def _modal(
    callback_id: str, run_id: str, title: str, submit: str, blocks: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": clip(run_id, MODAL_PRIVATE_METADATA_MAX, marker=""),
        "title": _plain(title, MODAL_TITLE_MAX),
        "submit": _plain(submit, MODAL_TITLE_MAX),
        "close": _plain("Cancel", MODAL_TITLE_MAX),
        "blocks": blocks,
    }


def reply_modal(run_id: str, reply: ReplyDraft, writeback_enabled: bool) -> dict[str, Any]:
    """The editable customer reply draft. With write-back it is posted as a PRIVATE internal note."""
    body = sanitize(reply.body).strip()
    initial = clip(body, PLAIN_TEXT_INPUT_MAX)
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": REPLY_INPUT,
        "multiline": True,
        "max_length": PLAIN_TEXT_INPUT_MAX,
    }
    if initial:
        element["initial_value"] = initial
    if writeback_enabled:
        hint = (
            "Submitting adds this text to the Zendesk ticket as a PRIVATE internal note — the customer does "
            "not see it. Review it, then send the public reply yourself."
        )
    else:
        hint = "Nothing is sent from here: copy the text into your reply in Zendesk."
    blocks: list[dict[str, Any]] = [
        {
            "type": "input",
            "block_id": REPLY_BLOCK,
            "label": _plain(f"Reply to the customer ({reply.language})", INPUT_LABEL_MAX),
            "hint": _plain(hint, INPUT_HINT_MAX),
            "element": element,
        }
    ]
    if initial != body:
        blocks.append(
            _context(f"✂️ The draft was longer than {PLAIN_TEXT_INPUT_MAX} characters and was clipped.")
        )
    submit = "Post internal note" if writeback_enabled else "Done"
    return _modal(VIEW_REPLY, run_id, "Draft reply", submit, blocks)


def feedback_modal(run_id: str) -> dict[str, Any]:
    """Asked after 👎: free text on what the report got wrong."""
    element = {
        "type": "plain_text_input",
        "action_id": FEEDBACK_INPUT,
        "multiline": True,
        "max_length": PLAIN_TEXT_INPUT_MAX,
        "placeholder": _plain("e.g. the root cause is wrong, a known bug was missed…", PLACEHOLDER_MAX),
    }
    blocks: list[dict[str, Any]] = [
        {
            "type": "input",
            "block_id": FEEDBACK_BLOCK,
            "label": _plain("What was wrong?", INPUT_LABEL_MAX),
            "element": element,
        }
    ]
    return _modal(VIEW_FEEDBACK, run_id, "Feedback", "Send", blocks)
