"""Standard (CommonMark/GFM) Markdown for reports, escalation packets and KB article drafts.

Used for the CLI's ``--format markdown`` and for the files uploaded to Slack (KB draft, full report).
Untrusted text is sanitized (control characters dropped) and Markdown-significant characters are
backslash-escaped, so input cannot create links, images, HTML, tables cells or headings. Broadcast
words (``@here``/``@channel``/``@everyone``) get a zero-width joiner; other ``@`` are left intact so
package names such as ``@posthog/react`` stay copyable. Code blocks use a fence longer than any
backtick run in their content, so the content is shown verbatim (broadcast words aside) and cannot
close the fence.
"""

from __future__ import annotations

import re

from formatting.escape import ZWJ, is_safe_url, link_target, one_line, sanitize
from triage.models import (
    Confidence,
    EscalationPacket,
    Evidence,
    Finding,
    KbArticle,
    KnownBug,
    ReportMode,
    TicketSummary,
    TriageReport,
)

_INLINE_ESCAPES = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|~!#"})
_BLOCK_START_RE = re.compile(r"^(\s*)([-+=]|\d+[.)])(?=\s|$)")
_BROADCAST_RE = re.compile(r"@(here|channel|everyone)", re.IGNORECASE)

CONFIDENCE_MD = {
    Confidence.confirmed: "🎯 Confirmed by data",
    Confidence.likely: "🤔 Likely",
    Confidence.suspected: "❓ Suspected",
}
STATUS_MD = {
    "ok": "✅ ok",
    "empty": "⚪ empty",
    "error": "❌ error",
    "timeout": "⏱️ timeout",
    "refused": "🚫 refused",
    "rate_limited": "🐢 rate limited",
}


def _broadcasts(text: str) -> str:
    return _BROADCAST_RE.sub(lambda m: "@" + ZWJ + m.group(1), text)


def md_inline(text: str) -> str:
    """Untrusted text as one line of literal Markdown."""
    return _broadcasts(one_line(sanitize(text)).translate(_INLINE_ESCAPES))


def md_block(text: str) -> str:
    """Untrusted multi-line text as literal Markdown paragraphs (line breaks kept)."""
    lines = []
    for raw in sanitize(text).strip().split("\n"):
        line = raw.strip().translate(_INLINE_ESCAPES)
        line = _BLOCK_START_RE.sub(lambda m: m.group(1) + "\\" + m.group(2), line)
        lines.append(line)
    # two trailing spaces would be invisible; a blank line between paragraphs is kept as is
    return _broadcasts("\n".join(lines))


def md_code(text: str, info: str = "text") -> str:
    """A fenced code block that shows `text` verbatim."""
    body = sanitize(text).strip("\n")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{_broadcasts(body)}\n{fence}"


def md_link(url: str | None, label: str) -> str:
    """``[label](<url>)`` for a safe http(s) URL; otherwise the label and the URL as literal text."""
    text = md_inline(label) or md_inline(url or "")
    if url and is_safe_url(url):
        return f"[{text}](<{link_target(url)}>)"
    if url:
        return f"{text} ({md_inline(url)})"
    return text


def _cell(text: str, limit: int = 300) -> str:
    value = md_inline(text[: limit * 2])
    return value if len(value) <= limit else value[: limit - 1].rstrip("\\") + "…"


def _cites(ids: list[str]) -> str:
    return f" \\[{', '.join(md_inline(i) for i in ids)}\\]" if ids else ""


def _finding(f: Finding) -> str:
    return f"**{CONFIDENCE_MD[f.confidence]}** — {md_inline(f.statement)}{_cites(f.evidence_ids)}"


def _ticket_line(t: TicketSummary, extra: list[str]) -> str:
    parts = [md_link(t.url, f"Ticket {t.ref}")]
    if t.priority:
        parts.append(f"Priority: {md_inline(t.priority)}")
    if t.organization:
        parts.append(f"Org: {md_inline(t.organization)}")
    if t.requester:
        parts.append(f"Requester: {md_inline(t.requester)}")
    return " · ".join(parts + extra)


def _known_bug(bug: KnownBug) -> str:
    parts = [md_link(bug.issue_url, bug.title or bug.issue_url)]
    if bug.state:
        parts.append(f"state: {md_inline(bug.state)}")
    if bug.fix_pr_url:
        parts.append(f"fix: {md_link(bug.fix_pr_url, 'PR')}" + (" (merged)" if bug.fix_merged else ""))
    if bug.fixed_in:
        parts.append(f"fixed in **{md_inline(bug.fixed_in)}**")
    if bug.exact_match:
        parts.append("exact match")
    return " · ".join(parts) + _cites(bug.evidence_ids)


def _evidence_table(evidence: list[Evidence]) -> list[str]:
    rows = ["| ID | Status | Source | Finding | Link |", "|---|---|---|---|---|"]
    for ev in evidence:
        finding = (
            ev.title + (f" — {ev.summary}" if ev.summary else "") if ev.title else ev.summary or ev.excerpt
        )
        if ev.internal:
            finding += " (internal)"
        rows.append(
            f"| {_cell(ev.id)} | {STATUS_MD.get(ev.status.value, ev.status.value)} | {_cell(ev.source, 60)}"
            f" | {_cell(finding)} | {md_link(ev.url, 'link') if ev.url else ''} |"
        )
    return rows


def _bullets(items: list[str], numbered: bool = False, check: bool = False) -> list[str]:
    out = []
    for i, item in enumerate(items, start=1):
        marker = f"{i}." if numbered else ("- [ ]" if check else "-")
        out.append(f"{marker} {md_inline(item)}")
    return out


def _section(out: list[str], title: str, body: list[str] | str) -> None:
    out.append(f"## {title}")
    out.append("")
    out.extend([body] if isinstance(body, str) else body)
    out.append("")


def report_markdown(report: TriageReport) -> str:
    """The full triage report as a Markdown document."""
    t = report.ticket
    out = [f"# Triage report · {t.ref} — {md_inline(t.subject)}", ""]
    out.append(
        _ticket_line(t, [f"Area: {md_inline(report.product_area_label)}", f"Mode: {report.mode.value}"])
    )
    out.append("")
    if report.mode is ReportMode.evidence_only:
        reason = f" {md_inline(report.degraded_reason)}" if report.degraded_reason else ""
        out += [f"> ⚠️ **Evidence only — no model.**{reason}", ""]
    if report.summary:
        _section(out, "What's going on", md_block(report.summary))
    _section(
        out,
        "Root cause",
        _finding(report.root_cause) if report.root_cause else "❓ Not determined — needs a human.",
    )
    if report.known_bug:
        _section(out, "Known bug", _known_bug(report.known_bug))
    if report.findings:
        _section(out, "Findings", [f"- {_finding(f)}" for f in report.findings])
    if report.evidence:
        _section(out, "Evidence", _evidence_table(report.evidence))
    if report.ruled_out:
        _section(out, "Checked and ruled out", _bullets(report.ruled_out))
    if report.next_steps:
        _section(out, "Next steps", _bullets(report.next_steps, numbered=True))
    if report.checklist:
        _section(out, "Checklist", _bullets(report.checklist, check=True))
    if report.questions_for_customer:
        _section(out, "Questions for the customer", _bullets(report.questions_for_customer))
    if report.customer_reply_draft.strip():
        lang = md_inline(report.intake.language)
        _section(out, f"Draft reply to the customer ({lang})", md_code(report.customer_reply_draft))
    esc = report.escalation
    if esc.needed:
        team = f" to **{md_inline(esc.team)}**" if esc.team else ""
        escalation = f"🚨 Needed{team} · {esc.urgency.value}" + (
            f" — {md_inline(esc.reason)}" if esc.reason else ""
        )
    else:
        escalation = "✅ Not needed" + (f" — {md_inline(esc.reason)}" if esc.reason else "")
    _section(out, "Escalation", escalation)
    if report.sources:
        rows = ["| Source | Status | Items | Failed | Latency |", "|---|---|---|---|---|"]
        rows += [
            f"| {_cell(s.source, 60)} | {STATUS_MD.get(s.status.value, s.status.value)}"
            f" | {s.count} | {s.failed} | {s.latency_ms / 1000:.1f}s |"
            for s in report.sources
        ]
        _section(out, "Sources", rows)
    if report.grading_notes:
        _section(out, "Grading notes", _bullets(report.grading_notes))
    u, tm = report.usage, report.timings
    _section(
        out,
        "Usage and timings",
        [
            f"- Model: {u.calls} calls, {u.input_tokens:,} input / {u.output_tokens:,} output tokens"
            f" ({u.cache_read_tokens:,} cached), ${u.cost_usd:.4f}",
            f"- Timings: fetch {tm.fetch_ms} ms · intake {tm.intake_ms} ms · research {tm.research_ms} ms"
            f" · synthesis {tm.synthesis_ms} ms · total {tm.total_ms} ms",
            f"- Report v{report.version}" + (f" · run {md_inline(report.run_id)}" if report.run_id else ""),
        ],
    )
    return "\n".join(out).rstrip() + "\n"


def packet_markdown(packet: EscalationPacket) -> str:
    """The escalation packet as a Markdown document (paste into an engineering issue)."""
    t = packet.ticket
    out = [f"# Escalation: {md_inline(packet.title)}", ""]
    extra = [f"Urgency: {packet.urgency.value}"]
    if packet.owner_team:
        extra.append(f"Owner: {md_inline(packet.owner_team)}")
    if packet.suspected_component:
        extra.append(f"Component: {md_inline(packet.suspected_component)}")
    out += [_ticket_line(t, extra), ""]
    if packet.summary:
        _section(out, "Summary", md_block(packet.summary))
    if packet.impact:
        _section(out, "Impact", md_block(packet.impact))
    if packet.environment:
        _section(out, "Environment", _bullets(packet.environment))
    if packet.reproduction_steps:
        _section(out, "Reproduction", _bullets(packet.reproduction_steps, numbered=True))
    if packet.root_cause:
        _section(out, "Root cause", _finding(packet.root_cause))
    if packet.known_bug:
        _section(out, "Known bug", _known_bug(packet.known_bug))
    if packet.evidence:
        _section(out, "Evidence", _evidence_table(packet.evidence))
    if packet.ruled_out:
        _section(out, "Checked and ruled out", _bullets(packet.ruled_out))
    return "\n".join(out).rstrip() + "\n"


def kb_markdown(article: KbArticle) -> str:
    """A KB article draft as a Markdown file (uploaded to Slack for review)."""
    out = [f"# {md_inline(article.title)}", ""]
    _section(out, "Problem", md_block(article.problem) or "-")
    if article.symptoms:
        _section(out, "Symptoms", _bullets(article.symptoms))
    if article.cause:
        _section(out, "Cause", md_block(article.cause))
    if article.resolution_steps:
        _section(out, "Resolution", _bullets(article.resolution_steps, numbered=True))
    if article.affected_versions:
        _section(out, "Affected versions", md_inline(article.affected_versions))
    if article.related_links:
        _section(out, "Related links", [f"- {md_link(u, u)}" for u in article.related_links])
    return "\n".join(out).rstrip() + "\n"
