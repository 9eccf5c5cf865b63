"""Grading: code, after the model, decides how sure a report may sound (DESIGN.md "Grading rules").

`grade(report)` is pure: it returns a new report and appends human-readable `grading_notes`.

1. Citations of evidence ids that do not exist (or whose source was not queried) are removed. A finding
   left without citations is dropped; a root cause left without citations becomes `suspected`.
   A known bug whose citations are all invalid is dropped.
2. `confirmed` needs a cited evidence row with status ok from a first-party source, or an exact
   known-bug match whose fix is merged and released (`fixed_in`), cited by the statement, with ok
   evidence. Otherwise it drops to `likely`; `likely` needs at least one cited ok row, else `suspected`.
3. When most sources failed, nothing is above `likely` and the summary says so.
4. Only queried sources can be cited (see 1).
5. A suspected root cause (or none, in evidence-only mode) means escalation with a human verifying.

Also: Slack markup in model text becomes plain text, and a reply draft never cites internal evidence.
A ticket with suspected prompt injection caps at `likely` unless first-party data confirms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from triage.models import (
    Confidence,
    Escalation,
    Evidence,
    EvidenceStatus,
    Finding,
    KnownBug,
    ReportMode,
    TriageReport,
)

HUMAN_VERIFICATION = "root cause needs human verification"
MOSTLY_FAILED_NOTE = "Most research sources failed, so confidence is capped at Likely."
INJECTION_NOTE = (
    "The ticket contains text that looks like instructions to the bot (suspected prompt injection); "
    "it was treated as data and confidence is capped at Likely unless first-party data confirms."
)

_EVIDENCE_REF = re.compile(r"\bE(\d{1,4})\b")
_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^|>\s]*)\|([^>]*)>")
_SLACK_BARE_LINK = re.compile(r"<((?:https?|mailto):[^>\s]*)>")
_SLACK_USER = re.compile(r"<@([A-Z0-9]+)(?:\|([^>]*))?>")
_SLACK_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_SLACK_SPECIAL = re.compile(r"<!([a-z^A-Z0-9_-]+)(?:\|([^>]*))?>")
_EMPTY_BRACKETS = re.compile(r"\s*[\(\[]\s*(?:,\s*)*[\)\]]")
_DANGLING_SEPARATORS = re.compile(r"([\(\[])\s*(?:,\s*)+|(?:\s*,)+\s*([\)\]])")


# ---------------------------------------------------------------- text hygiene


def strip_slack_markup(text: str) -> str:
    """Turn Slack control sequences into plain text (links keep their label and URL)."""
    if not text or "<" not in text:
        return text
    out = _SLACK_LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    out = _SLACK_BARE_LINK.sub(lambda m: m.group(1), out)
    out = _SLACK_USER.sub(lambda m: m.group(2) or f"user {m.group(1)}", out)
    out = _SLACK_CHANNEL.sub(lambda m: f"#{m.group(2)}" if m.group(2) else f"channel {m.group(1)}", out)
    out = _SLACK_SPECIAL.sub("", out)
    return re.sub(r"[ \t]{2,}", " ", out).strip()


def _tidy(text: str) -> str:
    out = _DANGLING_SEPARATORS.sub(lambda m: m.group(1) or m.group(2) or "", text)
    out = _EMPTY_BRACKETS.sub("", out)
    out = re.sub(r"[ \t]{2,}", " ", out)
    out = re.sub(r" +([.,])", r"\1", out)  # not ";:?!" — French puts a space before those
    return out.strip()


def remove_evidence_refs(text: str, keep: Iterable[str] = ()) -> str:
    """Remove inline references like "E7" except those in `keep`."""
    allowed = set(keep)
    if not text:
        return text
    changed = False

    def repl(m: re.Match[str]) -> str:
        nonlocal changed
        if m.group(0) in allowed:
            return m.group(0)
        changed = True
        return ""

    out = _EVIDENCE_REF.sub(repl, text)
    return _tidy(out) if changed else out


def inline_refs(text: str) -> list[str]:
    return [m.group(0) for m in _EVIDENCE_REF.finditer(text or "")]


def sanitize_reply(text: str, evidence: Iterable[Evidence]) -> str:
    """A customer reply cites no evidence ids, no internal URLs and no Slack markup."""
    out = strip_slack_markup(text or "")
    for ev in evidence:
        if ev.internal and ev.url:
            out = out.replace(ev.url, "")
    out = remove_evidence_refs(out)
    return _tidy(out) if out != text else out


# ---------------------------------------------------------------- helpers


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _cap(conf: Confidence, ceiling: Confidence) -> Confidence:
    return conf if conf.rank <= ceiling.rank else ceiling


def mostly_failed(report: TriageReport) -> tuple[bool, str]:
    """Rule 3: more than half of the evidence rows, or of the sources, failed."""
    rows = report.evidence
    failed_rows = sum(1 for e in rows if e.status.failed)
    if rows and failed_rows * 2 > len(rows):
        return True, f"{failed_rows} of {len(rows)} research queries failed"
    srcs = report.sources
    failed_srcs = sum(1 for s in srcs if s.status.failed)
    if srcs and failed_srcs * 2 > len(srcs):
        return True, f"{failed_srcs} of {len(srcs)} sources failed"
    return False, ""


class _Grader:
    def __init__(self, report: TriageReport) -> None:
        self.report = report
        self.notes: list[str] = []
        queried = {s.source for s in report.sources}
        self.by_id: dict[str, Evidence] = {}
        for ev in report.evidence:
            if ev.id and ev.source in queried:
                self.by_id[ev.id] = ev

    def note(self, text: str) -> None:
        self.notes.append(text)

    def valid(self, ids: Iterable[str], text: str = "", what: str = "") -> list[str]:
        """Rule 1 & 4: keep only ids of existing evidence from queried sources (inline refs count)."""
        wanted = _dedupe([*(i.strip() for i in ids), *inline_refs(text)])
        kept = [i for i in wanted if i in self.by_id]
        dropped = [i for i in wanted if i not in self.by_id]
        if dropped and what:
            self.note(f"{what}: removed citation(s) of unknown or unqueried evidence {', '.join(dropped)}")
        return kept

    def clean(self, text: str) -> str:
        return remove_evidence_refs(strip_slack_markup(text), keep=self.by_id)

    def ok(self, ids: Iterable[str]) -> list[Evidence]:
        return [self.by_id[i] for i in ids if i in self.by_id and self.by_id[i].status == EvidenceStatus.ok]

    def known_bug_confirms(self, bug: KnownBug | None, ids: list[str]) -> bool:
        if bug is None or not (bug.exact_match and bug.fix_merged and bug.fixed_in):
            return False
        cited_bug_ids = [i for i in ids if i in bug.evidence_ids]
        return bool(self.ok(cited_bug_ids))

    def allowed(
        self, wanted: Confidence, ids: list[str], bug: KnownBug | None, ceiling: Confidence
    ) -> Confidence:
        ok_rows = self.ok(ids)
        first_party = any(e.first_party for e in ok_rows)
        injection = self.report.intake.injection_suspected
        conf = wanted
        if conf == Confidence.confirmed:
            via_bug = self.known_bug_confirms(bug, ids) and not injection
            if not (first_party or via_bug):
                conf = Confidence.likely
        if conf == Confidence.likely and not ok_rows:
            conf = Confidence.suspected
        return _cap(conf, ceiling)  # rule 3: most sources failed → nothing above likely


def grade(report: TriageReport) -> TriageReport:
    """Apply the grading rules; returns a new report (the input is not modified)."""
    g = _Grader(report)
    failed, failed_why = mostly_failed(report)
    ceiling = Confidence.likely if failed else Confidence.confirmed
    if report.intake.injection_suspected:
        g.note(INJECTION_NOTE)

    # known bug: citations first (it may justify confirmed statements)
    bug = report.known_bug
    if bug is not None:
        bug_ids = g.valid(bug.evidence_ids, what="known bug")
        if not bug_ids:
            g.note("known bug dropped: it cites no existing evidence")
            bug = None
        else:
            bug = bug.model_copy(update={"evidence_ids": bug_ids, "title": strip_slack_markup(bug.title)})
            if bug.exact_match and not g.ok(bug_ids):
                g.note("known bug: marked exact match but none of its evidence returned data; not exact")
                bug = bug.model_copy(update={"exact_match": False})

    # root cause
    root = report.root_cause
    if root is not None:
        ids = g.valid(root.evidence_ids, root.statement, what="root cause")
        statement = g.clean(root.statement)
        if not statement:
            g.note("root cause dropped: empty statement")
            root = None
        else:
            if not ids:
                conf = Confidence.suspected
                if root.confidence != Confidence.suspected:
                    g.note("root cause cites no existing evidence: set to Suspected")
            else:
                conf = g.allowed(root.confidence, ids, bug, ceiling)
                if conf != root.confidence and conf.rank < root.confidence.rank:
                    g.note(
                        f"root cause: {root.confidence.value} → {conf.value} "
                        f"({_why(g, root.confidence, ids, bug, failed)})"
                    )
            root = Finding(statement=statement, confidence=conf, evidence_ids=ids)

    # findings
    findings: list[Finding] = []
    for idx, f in enumerate(report.findings, start=1):
        ids = g.valid(f.evidence_ids, f.statement, what=f"finding {idx}")
        statement = g.clean(f.statement)
        if not ids:
            g.note(f"finding {idx} dropped: it cites no existing evidence")
            continue
        if not statement:
            continue
        conf = g.allowed(f.confidence, ids, bug, ceiling)
        if conf.rank < f.confidence.rank:
            g.note(
                f"finding {idx}: {f.confidence.value} → {conf.value} "
                f"({_why(g, f.confidence, ids, bug, failed)})"
            )
        findings.append(Finding(statement=statement, confidence=conf, evidence_ids=ids))

    # summary (rule 3) and text hygiene
    summary = g.clean(report.summary) or _fallback_summary(report)
    if failed:
        g.note(f"most sources failed ({failed_why}); confidence capped at Likely")
        if MOSTLY_FAILED_NOTE not in summary:
            summary = f"{summary} {MOSTLY_FAILED_NOTE} ({failed_why}.)"

    escalation = report.escalation.model_copy(update={"reason": strip_slack_markup(report.escalation.reason)})
    needs_human = (root is not None and root.confidence == Confidence.suspected) or (
        root is None and report.mode == ReportMode.evidence_only
    )
    if needs_human:
        escalation = _escalate(escalation)

    reply = sanitize_reply(report.customer_reply_draft, report.evidence)
    if reply != report.customer_reply_draft:
        g.note("reply draft: removed evidence references, internal links or Slack markup")

    notes = _dedupe([*report.grading_notes, *g.notes])
    return report.model_copy(
        update={
            "summary": summary,
            "root_cause": root,
            "known_bug": bug,
            "findings": findings,
            "ruled_out": [t for t in (g.clean(x) for x in report.ruled_out) if t],
            "next_steps": [t for t in (g.clean(x) for x in report.next_steps) if t],
            "questions_for_customer": [
                t
                for t in (strip_slack_markup(remove_evidence_refs(x)) for x in report.questions_for_customer)
                if t
            ],
            "customer_reply_draft": reply,
            "escalation": escalation,
            "grading_notes": notes,
        }
    )


def _escalate(escalation: Escalation) -> Escalation:
    reason = escalation.reason.strip()
    if HUMAN_VERIFICATION not in reason:
        reason = f"{HUMAN_VERIFICATION}; {reason}" if reason else HUMAN_VERIFICATION
    return escalation.model_copy(update={"needed": True, "reason": reason})


def _why(g: _Grader, wanted: Confidence, ids: list[str], bug: KnownBug | None, failed: bool) -> str:
    ok_rows = g.ok(ids)
    if not ok_rows:
        return "no cited evidence returned data"
    if wanted == Confidence.confirmed and not any(e.first_party for e in ok_rows):
        if g.report.intake.injection_suspected:
            return "suspected prompt injection: only first-party data can confirm"
        return "no first-party data or released exact known-bug fix cited"
    if failed:
        return "most sources failed"
    return "not supported by cited evidence"


def _fallback_summary(report: TriageReport) -> str:
    ok = sum(1 for e in report.evidence if e.status == EvidenceStatus.ok)
    return (
        f"Ticket #{report.ticket.id} ({report.product_area_label}): {ok} of {len(report.evidence)} "
        "research queries returned data."
    )
