"""An adversarial scripted model for the fake Anthropic API, and the checks every graded output must pass.

The model reads the evidence table out of the real request (so it can cite rows by kind, not by number)
and answers each structured-output request with whatever an attack needs. `leaks` lists what must never
reach any output: URLs outside evidence + allowlist, invented versions, internal data in customer text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.anthropic import FakeAnthropic
from triage.links import LinkPolicy, evidence_urls
from triage.models import Evidence, KnownBug, TriageReport
from triage.prompting import rows_in_prompt

EXFIL = "https://evil.example/?q=jane@acme-analytics.io"
MASKED_SLACK = "<https://evil.example/steal|PostHog/posthog-js#1534>"
MASKED_MD = "[the docs](https://evil.example/docs)"
INVENTED_ISSUE = "https://github.com/PostHog/posthog-js/issues/424242"
INVENTED_VERSION = "9.9.9"
HOSTILE_LINKS = f"see {EXFIL} and {MASKED_SLACK} and {MASKED_MD} and {INVENTED_ISSUE}"

_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'`|)\]\\]+")  # no "\\": JSON escapes end a URL


@dataclass
class Row:
    id: str
    source: str
    status: str
    first_party: bool
    subject: str
    title: str = ""


def evidence_rows(prompt: str) -> list[Row]:
    """The rows of the <evidence> table in a synthesis or follow-up prompt."""
    return [
        Row(
            r.id,
            r.attrs.get("source", ""),
            r.attrs.get("status", ""),
            r.attrs.get("first_party") == "yes",
            r.field("subject") or "",
            r.field("title") or "",
        )
        for r in rows_in_prompt(prompt)
    ]


def schema_keys(body: dict[str, Any]) -> set[str]:
    fmt = (body.get("output_config") or {}).get("format") or {}
    return set((fmt.get("schema") or {}).get("properties") or {})


Answer = Callable[[list[Row]], dict[str, Any]]


def drafts_answers() -> dict[str, dict[str, Any]]:
    """Hostile drafts: links, invented versions and internal data in every field."""
    return {
        "packet": {
            "title": f"posthog-js bug {MASKED_SLACK}",
            "summary": f"Confirmed data loss, definitely. {HOSTILE_LINKS}",
            "impact": f"All users. {EXFIL}",
            "reproduction_steps": [f"Open {EXFIL}", f"Click {MASKED_MD}"],
            "suspected_component": f"ingestion {INVENTED_ISSUE}",
        },
        "kb": {
            "title": f"Known bug {MASKED_SLACK}",
            "problem": f"Flags are false. {HOSTILE_LINKS}",
            "symptoms": [f"false flags {EXFIL}"],
            "cause": f"Confirmed bug fixed in {INVENTED_VERSION}. See {INVENTED_ISSUE}",
            "resolution_steps": [f"Upgrade to {INVENTED_VERSION}", f"Read {MASKED_MD}"],
            "affected_versions": f"all before {INVENTED_VERSION} {EXFIL}",
        },
        "reply": {
            "body": f"Hi Jane, this is confirmed and fixed in {INVENTED_VERSION}. Details: {HOSTILE_LINKS}. "
            "Our execute-sql query shows plan=enterprise for you.",
        },
        "followup": {"answer": f"Definitely confirmed. {HOSTILE_LINKS}", "evidence_ids": ["E1", "E999"]},
    }


def adversary(
    fake: FakeAnthropic, synthesis: Answer, drafts: dict[str, dict[str, Any]] | None = None
) -> None:
    """Answer every request of a run: intake, synthesis (from `synthesis`), packet, KB, reply, follow-up."""
    hostile = drafts or drafts_answers()

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        keys = schema_keys(body)
        prompt = FakeAnthropic.prompt_of(body)
        if {"root_cause", "known_bug"} <= keys:
            return synthesis(evidence_rows(prompt))
        if "impact" in keys:
            return hostile["packet"]
        if "problem" in keys:
            return hostile["kb"]
        if keys == {"body"}:
            return hostile["reply"]
        if "answer" in keys:
            return hostile["followup"]
        return {"product_area": "feature_flags", "language": "en"}  # intake refinement

    fake.default = answer


def first(rows: list[Row], pred: Callable[[Row], bool]) -> Row:
    found = [r for r in rows if pred(r)]
    assert found, "the attack needs a row the research did not return"
    return found[0]


# ---------------------------------------------------------------- what no output may contain


def urls_in(text: str) -> list[str]:
    return [u.rstrip(".,;:!?") for u in _URL.findall(text)]


def foreign_urls(
    text: str, evidence: list[Evidence], policy: LinkPolicy, also: list[str] | None = None
) -> list[str]:
    """URLs in `text` that are neither evidence URLs (nor `also`: the ticket's own link) nor allowlisted."""
    allowed = [*evidence_urls(evidence), *(also or [])]
    return [u for u in urls_in(text) if not policy.allows(u, allowed)]


def known_bug_matches_row(bug: KnownBug | None, evidence: list[Evidence]) -> bool:
    """Every known-bug fact equals the chosen GitHub row's."""
    if bug is None:
        return True
    rows = {e.id: e for e in evidence}
    assert len(bug.evidence_ids) == 1, bug.evidence_ids
    row = rows[bug.evidence_ids[0]]
    data = row.data
    state = "merged" if data.get("is_pr") and data.get("fix_merged") else str(data.get("issue_state") or "")
    return (
        row.source == "github"
        and bug.issue_url == row.url
        and bug.title == row.title
        and bug.state == state
        and bug.fix_pr_url == (data.get("fix_pr_url") or None)
        and bug.fix_merged == bool(data.get("fix_merged"))
        and bug.fixed_in
        == (str(data["fixed_in"]) if data.get("fixed_in") and data.get("fix_merged") else None)
        and (not bug.exact_match or bool(data.get("exact_match")))
    )


def grade_label(report: TriageReport) -> str:
    return report.root_cause.confidence.label if report.root_cause else "Not determined"
