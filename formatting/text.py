"""Plain text for the terminal: the CLI's ``--format text`` report and its live progress lines.

All untrusted text is sanitized first: control characters (ESC included, so no ANSI escape
injection), lone surrogates and bidi overrides are dropped. Column widths account for wide (CJK,
emoji) and zero-width characters.
"""

from __future__ import annotations

import textwrap
import unicodedata

from formatting.escape import one_line, sanitize
from triage.models import Confidence, EvidenceStatus, ReportMode, TriageReport
from triage.protocols import ProgressEvent

WIDTH = 100
CONFIDENCE_TEXT = {
    Confidence.confirmed: "Confirmed by data",
    Confidence.likely: "Likely",
    Confidence.suspected: "Suspected",
}
STATUS_MARK = {"ok": "✓", "empty": "·", "error": "✗", "timeout": "⏱", "refused": "⊘", "rate_limited": "⧗"}


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch) or ch in "\u200b\u200c\u200d\ufe0f":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    return sum(_char_width(ch) for ch in text)


def _clip_width(text: str, width: int) -> str:
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = _char_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def _line(text: str) -> str:
    return one_line(sanitize(text))


def _wrap(text: str, indent: str = "  ") -> list[str]:
    out: list[str] = []
    for para in sanitize(text).strip().split("\n"):
        para = one_line(para)
        out.extend(
            textwrap.wrap(para, WIDTH - len(indent), initial_indent=indent, subsequent_indent=indent) or [""]
        )
    return out


def _list(items: list[str], numbered: bool = False) -> list[str]:
    out: list[str] = []
    for i, item in enumerate(items, start=1):
        marker = f"{i}. " if numbered else "- "
        wrapped = textwrap.wrap(_line(item), WIDTH - 2 - len(marker)) or [""]
        out.append(f"  {marker}{wrapped[0]}")
        out.extend(f"  {' ' * len(marker)}{w}" for w in wrapped[1:])
    return out


def _cites(ids: list[str]) -> str:
    return f" [{', '.join(_line(i) for i in ids)}]" if ids else ""


def report_text(report: TriageReport) -> str:
    """A compact, terminal-friendly rendering of a report (no colours, aligned evidence table)."""
    t = report.ticket
    out = [f"{t.ref}  {_line(t.subject)}"]
    if t.url:
        out.append(f"  {_line(t.url)}")
    meta = [x for x in (_line(t.priority or ""), _line(t.organization), report.product_area_label) if x]
    meta.append(f"mode {report.mode.value}")
    out.append("  " + " · ".join(meta))
    if report.mode is ReportMode.evidence_only:
        reason = f": {_line(report.degraded_reason)}" if report.degraded_reason else ""
        out.append(f"  ! Evidence only — no model{reason}")
    if report.summary:
        out += ["", "What's going on", *_wrap(report.summary)]
    out.append("")
    if report.root_cause:
        rc = report.root_cause
        out.append(f"Root cause  [{CONFIDENCE_TEXT[rc.confidence]}]{_cites(rc.evidence_ids)}")
        out += _wrap(rc.statement)
    else:
        out.append("Root cause  [not determined — needs a human]")
    if report.known_bug:
        bug = report.known_bug
        bits = [x for x in (_line(bug.state), f"fixed in {_line(bug.fixed_in)}" if bug.fixed_in else "") if x]
        if bug.fix_pr_url:
            bits.append("fix merged" if bug.fix_merged else "fix open")
        out += ["", f"Known bug   {_line(bug.title)}" + (f" ({', '.join(bits)})" if bits else "")]
        out.append(f"  {_line(bug.issue_url)}")
    if report.findings:
        out += ["", "Findings"]
        out += [
            f"  - [{CONFIDENCE_TEXT[f.confidence]}] {_line(f.statement)}{_cites(f.evidence_ids)}"
            for f in report.findings
        ]
    if report.evidence:
        out += ["", "Evidence"]
        rows = [("ID", "STATUS", "SOURCE", "FINDING")]
        for ev in report.evidence:
            finding = ev.summary or ev.excerpt
            if ev.title:
                finding = ev.title + (f" — {finding}" if finding else "")
            status = f"{STATUS_MARK.get(ev.status.value, '?')} {ev.status.value}"
            rows.append((_line(ev.id[:40]), status, _line(ev.source[:40]), _line(finding[: WIDTH * 2])))
        widths = [min(max(display_width(r[i]) for r in rows), cap) for i, cap in enumerate((8, 10, 16))]
        rest = max(20, WIDTH - 2 - sum(widths) - 6)
        for n, row in enumerate(rows):
            cells = [_pad(_clip_width(row[i], widths[i]), widths[i]) for i in range(3)]
            out.append(("  " + "  ".join([*cells, _clip_width(row[3], rest)])).rstrip())
            ev = report.evidence[n - 1] if n else None
            if ev is not None and ev.url:
                out.append(" " * (2 + sum(widths) + 6) + _clip_width(_line(ev.url[: WIDTH * 2]), rest))
    if report.ruled_out:
        out += ["", "Checked and ruled out", *_list(report.ruled_out)]
    if report.next_steps:
        out += ["", "Next steps", *_list(report.next_steps, numbered=True)]
    if report.checklist:
        out += ["", "Checklist", *_list(report.checklist)]
    if report.questions_for_customer:
        out += ["", "Questions for the customer", *_list(report.questions_for_customer)]
    if report.customer_reply_draft.strip():
        out += ["", f"Draft reply ({_line(report.intake.language)})"]
        out += [f"  | {line}" for line in sanitize(report.customer_reply_draft).strip().split("\n")]
    esc = report.escalation
    out.append("")
    if esc.needed:
        team = f" to {_line(esc.team)}" if esc.team else ""
        out.append(
            f"Escalation  needed{team} ({esc.urgency.value})"
            + (f": {_line(esc.reason)}" if esc.reason else "")
        )
    else:
        out.append("Escalation  not needed" + (f": {_line(esc.reason)}" if esc.reason else ""))
    failed = [s for s in report.sources if s.status.failed or s.failed]
    if failed:
        out.append("Failed      " + ", ".join(f"{_line(s.source)} ({s.status.value})" for s in failed))
    u, tm = report.usage, report.timings
    out.append(
        f"Usage       {u.input_tokens:,} in / {u.output_tokens:,} out tokens · ${u.cost_usd:.4f}"
        f" · research {tm.research_ms / 1000:.1f}s · synthesis {tm.synthesis_ms / 1000:.1f}s"
        f" · total {tm.total_ms / 1000:.1f}s"
    )
    return "\n".join(out) + "\n"


def progress_line(event: ProgressEvent) -> str:
    """One line of live progress for the CLI (no trailing newline)."""
    stamp = f"[{event.elapsed_ms / 1000:6.1f}s]"
    what = _line(event.description or event.task_key)
    source = _line(event.source)
    counter = f" {event.done}/{event.total}" if event.total else ""
    if event.kind == "phase":
        return f"{stamp} ▸ {_line(event.phase)}{counter}"
    if event.kind == "task_started":
        return f"{stamp}   … {source}: {what}"
    if event.kind == "task_finished":
        status = _line(event.status)
        mark = STATUS_MARK.get(status, "?")
        failed = status in {s.value for s in EvidenceStatus if s.failed}
        return f"{stamp}   {mark} {source}: {what} ({status}){counter}" + (" !" if failed else "")
    if event.kind == "done":
        return f"{stamp} ✓ done{counter}"
    return f"{stamp} {_line(event.kind)} {what}".rstrip()
