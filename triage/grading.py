"""Grading: code, after the model, decides how sure a report may sound (DESIGN.md "Grading rules").

`grade(report, links)` is pure: it returns a new report and appends short `grading_notes` (shown in the
thread). The rules, exactly as enforced here:

1. Citable rows are the evidence rows whose source is in the report's source list, which comes from the
   research *plan*. A citation of any other id is removed. A finding left without citations is dropped;
   a root cause left without citations becomes `suspected`.
2. `confirmed` needs a cited `ok` row that is first-party data (not docs) *about this ticket*: its
   `subject` names an identifier of the ticket (flag key, distinct id/person/email, error issue or
   fingerprint, survey, event, session, SDK and version, or "person:requester" for a look-up scoped to the
   ticket's requester). Or: the cited exact known bug's merged fix is released
   in a version newer than the customer's. Anything else is at most `likely`; `likely` needs at least
   one cited `ok` row, else `suspected`. Suspected prompt injection: only first-party data confirms.
3. When most rows or sources failed, nothing is above `likely` and the summary says so.
4. The known bug is a choice among cited GitHub rows: its facts are copied from that row
   (`triage.known_bug`); with no such row there is no known bug.
5. Every model-written sentence is held to the grade: certainty words above the root cause's grade are
   rewritten (`triage.prose`), "no need to escalate" goes when escalation is needed, ruled-out items
   must cite a row that answered, uncited next steps may not state facts, every URL passes the link
   policy (`triage.links`), and the customer reply states no cause below `likely` and carries nothing
   internal (tool names, internal URLs, person properties, versions nobody reported).
6. A suspected root cause (or none) means escalation with a human verifying.
"""

from __future__ import annotations

from collections.abc import Iterable

from triage.drafts import template_reply
from triage.known_bug import choose_known_bug, fix_applies
from triage.links import LinkPolicy, default_policy
from triage.models import (
    Confidence,
    Escalation,
    Evidence,
    EvidenceStatus,
    Finding,
    Intake,
    KnownBug,
    ReportMode,
    TriageReport,
)
from triage.prose import (
    customer_text,
    drop_sentences,
    inline_refs,
    internal_text,
    known_versions,
    remove_escalation_denials,
    remove_evidence_refs,
    states_fact,
    strip_slack_markup,
)

HUMAN_VERIFICATION = "root cause needs human verification"
MOSTLY_FAILED_NOTE = "Most research sources failed, so confidence is capped at Likely."
INJECTION_NOTE = (
    "The ticket contains text that looks like instructions to the bot (suspected prompt injection); "
    "it was treated as data and confidence is capped at Likely unless first-party data confirms."
)
DOCS_SOURCES = frozenset({"docs"})

# subject kind → the ticket identifiers it may name (an unknown kind may name any identifier)
_SUBJECT_FIELDS: dict[str, tuple[str, ...]] = {
    "flag_key": ("flag_keys",),
    "flag": ("flag_keys",),
    "distinct_id": ("distinct_ids", "person_ids", "emails"),
    "person": ("distinct_ids", "person_ids", "emails"),
    "email": ("emails", "distinct_ids"),
    "error_issue": ("fingerprints", "error_messages"),
    "fingerprint": ("fingerprints",),
    "error": ("error_messages", "fingerprints"),
    "error_message": ("error_messages",),
    "survey": ("survey_ids",),
    "event": ("event_names",),
    "session": ("distinct_ids", "urls", "person_ids"),
}
# "person:requester": a look-up scoped to the ticket's requester (its email or ids from the ticket)
REQUESTER = "requester"


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


def subject_is_ticket(subject: str, intake: Intake) -> bool:
    """Does a row's subject ("kind:value") name an identifier of this ticket?"""
    kind, sep, value = subject.partition(":")
    if not sep or not value.strip():
        return False
    kind, value = kind.strip().lower(), value.strip().casefold()
    ids = intake.identifiers
    if kind == "sdk":
        name, _, version = value.partition("@")
        return any(
            name in {s.name.casefold(), (s.package or "").casefold()}
            and (not version or (s.version or "").casefold().lstrip("v") == version.lstrip("v"))
            for s in ids.sdks
        )
    if kind == "person" and value == REQUESTER:
        return bool(intake.requester_email or intake.requester_ids)
    fields = _SUBJECT_FIELDS.get(kind, ())
    return any(value == str(v).strip().casefold() for name in fields for v in getattr(ids, name))


def is_data_about_ticket(ev: Evidence, intake: Intake) -> bool:
    return (
        ev.status == EvidenceStatus.ok
        and ev.first_party
        and ev.source not in DOCS_SOURCES
        and subject_is_ticket(ev.subject, intake)
    )


class _Grader:
    def __init__(self, report: TriageReport, links: LinkPolicy) -> None:
        self.report = report
        self.links = links
        self.notes: list[str] = []
        planned = {s.source for s in report.sources}
        self.by_id: dict[str, Evidence] = {e.id: e for e in report.evidence if e.id and e.source in planned}
        unplanned = [e.id for e in report.evidence if e.id and e.source not in planned]
        self.unplanned = set(unplanned)
        self.citable = list(self.by_id.values())
        self.llm = report.mode == ReportMode.llm

    def note(self, text: str) -> None:
        self.notes.append(text)

    def valid(self, ids: Iterable[str], text: str = "", what: str = "") -> list[str]:
        """Rule 1: keep only ids of existing evidence from planned sources (inline refs count)."""
        wanted = _dedupe([*(i.strip() for i in ids), *inline_refs(text)])
        kept = [i for i in wanted if i in self.by_id]
        dropped = [i for i in wanted if i not in self.by_id]
        if dropped and what:
            unplanned = [i for i in dropped if i in self.unplanned]
            why = "evidence from a source that was never planned" if unplanned else "unknown evidence"
            self.note(f"{what}: removed citation(s) of {why} {', '.join(dropped)}")
        return kept

    def text(self, text: str, what: str, grade: Confidence | None = None) -> str:
        """Model prose: no Slack markup, only valid inline refs, certainty ≤ grade, links by policy."""
        out = remove_evidence_refs(strip_slack_markup(text or ""), keep=self.by_id)
        out, removed = internal_text(
            out, evidence=self.citable, links=self.links, grade=grade if self.llm else None
        )
        if removed:
            self.note(
                f"{what}: removed {removed} link(s) that are neither evidence nor on the link allowlist"
            )
        return out

    def public(self, text: str, what: str, grade: Confidence | None = None) -> str:
        """Text a customer may read (see `prose.customer_text`)."""
        out, notes = customer_text(
            text,
            evidence=self.citable,
            intake=self.report.intake,
            links=self.links,
            grade=grade if self.llm else None,
            model_written=self.llm,
        )
        for n in notes:
            self.note(f"{what}: {n}")
        return out

    def ok(self, ids: Iterable[str]) -> list[Evidence]:
        return [self.by_id[i] for i in ids if i in self.by_id and self.by_id[i].status == EvidenceStatus.ok]

    def bug_confirms(self, bug: KnownBug | None, ids: list[str]) -> bool:
        cited = [i for i in ids if bug is not None and i in bug.evidence_ids]
        return bool(cited) and fix_applies(bug, self.by_id, self.report.intake)

    def allowed(
        self, wanted: Confidence, ids: list[str], bug: KnownBug | None, ceiling: Confidence
    ) -> Confidence:
        ok_rows = self.ok(ids)
        intake = self.report.intake
        conf = wanted
        if conf == Confidence.confirmed:
            about_ticket = any(is_data_about_ticket(e, intake) for e in ok_rows)
            via_bug = self.bug_confirms(bug, ids) and not intake.injection_suspected
            if not (about_ticket or via_bug):
                conf = Confidence.likely
        if conf == Confidence.likely and not ok_rows:
            conf = Confidence.suspected
        return _cap(conf, ceiling)  # rule 3: most sources failed → nothing above likely

    def why(self, wanted: Confidence, ids: list[str], bug: KnownBug | None, failed: bool) -> str:
        ok_rows = self.ok(ids)
        intake = self.report.intake
        if not ok_rows:
            return "no cited evidence returned data"
        if wanted == Confidence.confirmed and not any(is_data_about_ticket(e, intake) for e in ok_rows):
            first_party = [e for e in ok_rows if e.first_party and e.source not in DOCS_SOURCES]
            if intake.injection_suspected and self.bug_confirms(bug, ids):
                return "suspected prompt injection: only first-party data about this ticket can confirm"
            if first_party:
                about = ", ".join(sorted({e.subject for e in first_party if e.subject}))
                if about:
                    return f"cited data is about {about}, not an identifier in this ticket"
                return "cited first-party data does not name which of the ticket's objects it looked up"
            if any(e.source in DOCS_SOURCES for e in ok_rows):
                return "docs never confirm"
            if bug is not None and any(i in bug.evidence_ids for i in ids):
                return "the known bug's released fix does not apply to the customer's version"
            return "no first-party data about this ticket or applicable released known-bug fix cited"
        if failed:
            return "most sources failed"
        return "not supported by cited evidence"


def grade(report: TriageReport, links: LinkPolicy | None = None) -> TriageReport:
    """Apply the grading rules; returns a new report (the input is not modified)."""
    g = _Grader(report, links or default_policy())
    failed, failed_why = mostly_failed(report)
    ceiling = Confidence.likely if failed else Confidence.confirmed
    if report.intake.injection_suspected:
        g.note(INJECTION_NOTE)

    # known bug first (it may justify confirmed statements): a cited GitHub row, facts from the row
    bug, bug_notes = choose_known_bug(report.known_bug, g.by_id)
    if report.known_bug is not None:
        g.valid(report.known_bug.evidence_ids, what="known bug")
    for n in bug_notes:
        g.note(n)

    # root cause
    root = report.root_cause
    if root is not None:
        ids = g.valid(root.evidence_ids, root.statement, what="root cause")
        if not ids:
            conf = Confidence.suspected
            if root.confidence != Confidence.suspected:
                g.note("root cause cites no existing evidence: set to Suspected")
        else:
            conf = g.allowed(root.confidence, ids, bug, ceiling)
            if conf.rank < root.confidence.rank:
                g.note(
                    f"root cause: {root.confidence.value} → {conf.value} "
                    f"({g.why(root.confidence, ids, bug, failed)})"
                )
        statement = g.text(root.statement, "root cause", conf)
        if not statement:
            g.note("root cause dropped: empty statement")
            root = None
        else:
            root = Finding(statement=statement, confidence=conf, evidence_ids=ids)

    # the grade every other sentence is held to
    grade_of_text = root.confidence if root is not None else Confidence.suspected

    if bug is not None and bug.match_reason:
        bug = bug.model_copy(update={"match_reason": g.text(bug.match_reason, "known bug", grade_of_text)})

    # findings
    findings: list[Finding] = []
    for idx, f in enumerate(report.findings, start=1):
        ids = g.valid(f.evidence_ids, f.statement, what=f"finding {idx}")
        if not ids:
            g.note(f"finding {idx} dropped: it cites no existing evidence")
            continue
        conf = g.allowed(f.confidence, ids, bug, ceiling)
        if conf.rank < f.confidence.rank:
            g.note(
                f"finding {idx}: {f.confidence.value} → {conf.value} ({g.why(f.confidence, ids, bug, failed)})"
            )
        statement = g.text(f.statement, f"finding {idx}", conf)
        if statement:
            findings.append(Finding(statement=statement, confidence=conf, evidence_ids=ids))

    # escalation (rule 6) before the prose that might deny it
    escalation = report.escalation.model_copy(
        update={"reason": g.text(report.escalation.reason, "escalation reason", grade_of_text)}
    )
    if root is None or root.confidence == Confidence.suspected:
        escalation = _escalate(escalation)

    model_summary = report.summary.split(MOSTLY_FAILED_NOTE, 1)[0].strip()  # a re-grade re-adds the note
    summary = g.text(model_summary, "summary", grade_of_text)
    if g.llm:
        summary, dropped = drop_sentences(summary, versions=known_versions(report.intake, g.citable))
        if dropped:
            g.note(
                f"summary: removed {dropped} sentence(s) naming a version that neither ticket nor evidence has"
            )
    if escalation.needed and g.llm:
        summary = remove_escalation_denials(summary)
    summary = summary or _fallback_summary(report)
    if failed:
        g.note(f"most sources failed ({failed_why}); confidence capped at Likely")
        summary = f"{summary} {MOSTLY_FAILED_NOTE} ({failed_why}.)"

    notes = _dedupe([*report.grading_notes, *g.notes])
    graded = report.model_copy(
        update={
            "summary": summary,
            "root_cause": root,
            "known_bug": bug,
            "findings": findings,
            "ruled_out": _ruled_out(g, report.ruled_out, grade_of_text),
            "next_steps": _next_steps(g, report.next_steps, grade_of_text),
            "questions_for_customer": [
                t
                for t in (g.public(x, "questions", grade_of_text) for x in report.questions_for_customer)
                if t
            ],
            "escalation": escalation,
        }
    )
    reply = _customer_reply(g, graded)
    return graded.model_copy(
        update={"customer_reply_draft": reply, "grading_notes": _dedupe([*notes, *g.notes])}
    )


def _ruled_out(g: _Grader, items: list[str], grade_of_text: Confidence) -> list[str]:
    """A ruled-out item cites a row that answered (ok or empty), or it is dropped."""
    out: list[str] = []
    for idx, item in enumerate(items, start=1):
        ids = g.valid([], item)
        answered = [i for i in ids if g.by_id[i].status in (EvidenceStatus.ok, EvidenceStatus.empty)]
        if not answered:
            g.note(f"ruled-out item {idx} dropped: it cites no evidence that answered")
            continue
        text = g.text(item, "ruled out", grade_of_text)
        if text:
            out.append(text)
    return out


def _next_steps(g: _Grader, steps: list[str], grade_of_text: Confidence) -> list[str]:
    """A next step that states a fact must cite evidence; one that only says what to do needs none."""
    out: list[str] = []
    for idx, step in enumerate(steps, start=1):
        ids = g.valid([], step)
        text = g.text(step, "next steps", grade_of_text)
        if not text:
            continue
        if g.llm and not ids and states_fact(text):
            g.note(f"next step {idx} dropped: it states a fact without citing evidence")
            continue
        out.append(text)
    return out


def _customer_reply(g: _Grader, report: TriageReport) -> str:
    """The reply never states as fact what is graded below likely and carries nothing internal."""
    original = report.customer_reply_draft
    if not original.strip():
        return original
    root = report.root_cause
    if g.llm and (root is None or root.confidence == Confidence.suspected):
        g.note("reply draft: the root cause is not graded Likely or better, so the reply states no cause")
        return template_reply(
            language=report.intake.language,
            customer_name=report.ticket.requester,
            questions=report.questions_for_customer,
        )
    grade_of_text = root.confidence if root is not None else Confidence.likely
    out = g.public(original, "reply draft", grade_of_text)
    if out != original.strip() and not any(n.startswith("reply draft") for n in g.notes):
        g.note("reply draft: removed evidence references, internal links or Slack markup")
    return out


def _escalate(escalation: Escalation) -> Escalation:
    reason = escalation.reason.strip()
    if HUMAN_VERIFICATION not in reason:
        reason = f"{HUMAN_VERIFICATION}; {reason}" if reason else HUMAN_VERIFICATION
    return escalation.model_copy(update={"needed": True, "reason": reason})


def _fallback_summary(report: TriageReport) -> str:
    ok = sum(1 for e in report.evidence if e.status == EvidenceStatus.ok)
    return (
        f"Ticket #{report.ticket.id} ({report.product_area_label}): {ok} of {len(report.evidence)} "
        "research queries returned data."
    )
