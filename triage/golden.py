"""Golden cases and the deterministic scorers of `triagebot eval` (pure: a report and its truth in, scores out).

A golden case is a ticket plus its truth: the product area; the known issue URL, fix PR and fixed-in
version (or none); whether escalation is needed; the highest grade the available evidence can support;
the reply language; and 1–3 key facts a correct root cause must state (for the LLM judge).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from triage.intake.signals import detect_language
from triage.models import Confidence, Ticket, TriageReport

SCORERS = (
    "area",
    "known_issue",
    "fixed_in",
    "grade_ceiling",
    "escalation",
    "reply_language",
    "links_in_evidence",
    "no_internal_data",
)

_URL = re.compile(r"https?://[^\s<>()\"'\]|]+")
_EVIDENCE_ID = re.compile(r"\bE\d{1,3}\b")


class Truth(BaseModel):
    area: str
    known_issue_url: str | None = None
    fix_pr_url: str | None = None
    fixed_in: str | None = None
    escalation_needed: bool = False
    grade_ceiling: Confidence = Confidence.likely
    reply_language: str = "en"
    key_facts: list[str] = Field(min_length=1, max_length=3)


class GoldenCase(BaseModel):
    id: str
    source: str  # the public GitHub issue/PR (and release) the case is built from
    ticket: Ticket
    truth: Truth
    recorded: dict[str, Any] = Field(default_factory=dict)  # source answers in the real servers' shapes
    model: dict[str, Any] = Field(default_factory=dict)  # authored model answers, by purpose


class Score(BaseModel):
    """One scorer's verdict on one case: passed, plus a short reason; `value` for ranks."""

    passed: bool
    reason: str = ""
    value: float | None = None


def _norm_url(url: str | None) -> str:
    return (url or "").strip().rstrip("/").lower()


def _norm_version(version: str | None) -> str:
    text = (version or "").strip().lower()
    text = text.rsplit("@", 1)[-1]
    return text[1:] if text.startswith("v") else text


def score_area(report: TriageReport, truth: Truth) -> Score:
    return Score(passed=report.product_area == truth.area, reason=f"{report.product_area} vs {truth.area}")


def known_issue_rank(report: TriageReport, truth: Truth) -> int | None:
    """1-based position of the truth's issue (or fix PR) among the GitHub evidence rows, None if absent."""
    wanted = {_norm_url(truth.known_issue_url), _norm_url(truth.fix_pr_url)} - {""}
    rows = [e for e in report.evidence if e.source == "github" and e.url]
    for rank, row in enumerate(rows, start=1):
        if _norm_url(row.url) in wanted:
            return rank
    return None


def score_known_issue(report: TriageReport, truth: Truth) -> Score:
    bug = report.known_bug
    if not truth.known_issue_url and not truth.fix_pr_url:
        return Score(
            passed=bug is None, reason="none expected" + ("" if bug is None else f", got {bug.issue_url}")
        )
    rank = known_issue_rank(report, truth)
    wanted = {_norm_url(truth.known_issue_url), _norm_url(truth.fix_pr_url)} - {""}
    chosen = bug is not None and bool({_norm_url(bug.issue_url), _norm_url(bug.fix_pr_url)} & wanted)
    where = f"evidence rank {rank}" if rank else "not in evidence"
    return Score(passed=chosen, reason=("reported" if chosen else "not reported") + f", {where}", value=rank)


def score_fixed_in(report: TriageReport, truth: Truth) -> Score:
    got = _norm_version(report.known_bug.fixed_in if report.known_bug else None)
    want = _norm_version(truth.fixed_in)
    return Score(passed=got == want, reason=f"{got or 'none'} vs {want or 'none'}")


def score_grade_ceiling(report: TriageReport, truth: Truth) -> Score:
    """Over-claiming is the worst error: the root cause may not be graded above the evidence's ceiling."""
    got = report.confidence
    if got is None:
        return Score(passed=True, reason=f"no root cause (ceiling {truth.grade_ceiling.value})")
    return Score(
        passed=got.rank <= truth.grade_ceiling.rank, reason=f"{got.value} ≤ {truth.grade_ceiling.value}?"
    )


def score_escalation(report: TriageReport, truth: Truth) -> Score:
    got = report.escalation.needed
    return Score(passed=got == truth.escalation_needed, reason=f"{got} vs {truth.escalation_needed}")


def score_reply_language(report: TriageReport, truth: Truth) -> Score:
    reply = report.customer_reply_draft.strip()
    if not reply:
        return Score(passed=False, reason="no reply draft")
    got = detect_language(reply)
    return Score(passed=got == truth.reply_language, reason=f"{got} vs {truth.reply_language}")


def _model_text(report: TriageReport) -> str:
    parts = [report.summary, report.customer_reply_draft, *report.next_steps, *report.questions_for_customer]
    if report.root_cause:
        parts.append(report.root_cause.statement)
    parts += [f.statement for f in report.findings]
    return "\n".join(parts)


def score_links_in_evidence(report: TriageReport, truth: Truth) -> Score:
    """Every URL in model-written text is an evidence URL (or the ticket's own link)."""
    allowed = {_norm_url(e.url) for e in report.evidence if e.url} | {_norm_url(report.ticket.url)}
    if report.known_bug:
        allowed |= {_norm_url(report.known_bug.issue_url), _norm_url(report.known_bug.fix_pr_url)}
    foreign = [u for u in _URL.findall(_model_text(report)) if _norm_url(u.rstrip(".,;:")) not in allowed]
    return Score(passed=not foreign, reason=", ".join(foreign[:3]) or "all links from evidence")


def score_no_internal_data(report: TriageReport, truth: Truth) -> Score:
    """The customer reply carries no evidence ids, no internal rows' links and no first-party data links."""
    reply = report.customer_reply_draft
    problems = [f"evidence id {m}" for m in _EVIDENCE_ID.findall(reply)]
    for row in report.evidence:
        if (row.internal or row.first_party) and row.url and row.url in reply:
            problems.append(f"internal link {row.url}")
    return Score(passed=not problems, reason="; ".join(problems[:3]) or "clean")


SCORER_FUNCTIONS = {
    "area": score_area,
    "known_issue": score_known_issue,
    "fixed_in": score_fixed_in,
    "grade_ceiling": score_grade_ceiling,
    "escalation": score_escalation,
    "reply_language": score_reply_language,
    "links_in_evidence": score_links_in_evidence,
    "no_internal_data": score_no_internal_data,
}


def score_report(report: TriageReport, truth: Truth) -> dict[str, Score]:
    return {name: fn(report, truth) for name, fn in SCORER_FUNCTIONS.items()}


# ---------------------------------------------------------------- the LLM judge


JudgeScore = Literal[100, 65, 35, 0]

JUDGE_RUBRIC = """You grade the root cause of a support-triage report against the known truth of the case.

Score on this scale (incident.io's investigation scale):
- 100 bullseye: the root cause states every key fact (same mechanism, same component, same version facts).
- 65 one hop short: right component and mechanism, but one key fact is missing or vague (e.g. the fix
  version, or the exact trigger).
- 35 right area, wrong diagnosis: the product area is right but the stated cause is a different one.
- 0 wrong area, or no root cause where the key facts allow one.
A root cause that honestly says the evidence is insufficient scores 35 when the key facts needed evidence
that was not available, else 0. Judge only what the root cause says, not how it is worded. Reply with the
score and one or two sentences of reason."""


class JudgeVerdict(BaseModel):
    score: JudgeScore
    reason: str = Field(description="one or two sentences")


def judge_prompt(report: TriageReport, truth: Truth) -> str:
    facts = "\n".join(f"- {fact}" for fact in truth.key_facts)
    root = report.root_cause.statement if report.root_cause else "(no root cause given)"
    grade = report.root_cause.confidence.value if report.root_cause else "-"
    return (
        f"<key_facts>\n{facts}\n</key_facts>\n"
        f'<root_cause grade="{grade}">\n{root}\n</root_cause>\n'
        f"<summary>\n{report.summary}\n</summary>"
    )
