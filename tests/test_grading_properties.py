"""Property test: a scripted adversarial model against grading, drafts, follow-ups and the Slack payloads.

Hypothesis draws the evidence (first-party rows about the ticket's flag or about something else, docs,
GitHub rows with random fix facts, registry rows, failures, a row of a source that was never planned) and
the model's answer (random known-bug choices, confidence claims, citations of every row kind, URLs in
every text field). Whatever it draws:
- no grade exceeds the rules;
- no known-bug fact differs from its row;
- no URL outside evidence + allowlist appears in any report field, Slack payload, draft or follow-up.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from formatting.cards import CardState, parent_message, report_messages
from tests.adversary import (
    EXFIL,
    INVENTED_ISSUE,
    MASKED_MD,
    MASKED_SLACK,
    foreign_urls,
    known_bug_matches_row,
)
from triage import drafts, followup
from triage.grading import is_data_about_ticket
from triage.known_bug import fix_applies
from triage.links import default_policy
from triage.models import (
    Confidence,
    Evidence,
    EvidenceStatus,
    Identifiers,
    Intake,
    Sdk,
    SourceStatus,
    Ticket,
    TriageReport,
)
from triage.playbooks import bundled_playbooks
from triage.prose import internal_strings
from triage.protocols import ModelResult
from triage.synthesis import SynthesisOutput, build_report

T = TypeVar("T", bound=BaseModel)

GH = "https://github.com/PostHog/posthog-js"
INTAKE = Intake(
    product_area="feature_flags",
    playbook_id="feature_flags",
    identifiers=Identifiers(
        flag_keys=["new-checkout"], sdks=[Sdk(name="posthog-js", version="1.160.0", package="posthog-js")]
    ),
)
TICKET = Ticket(id=7, url="https://acme.zendesk.com/agent/tickets/7", subject="flags", description="help")
URLS = [
    EXFIL,
    MASKED_SLACK,
    MASKED_MD,
    INVENTED_ISSUE,
    "https://posthog.com/docs/feature-flags",
    f"{GH}/issues/11",
    "www.evil.example/x",
    "https://posthog.com.evil.example/docs",
    "https://posthog.com/docs?q=jane@acme.io",
]
WORDS = ["Confirmed by data:", "definitely", "likely", "no need to escalate", "fixed in 9.9.9", "execute-sql"]


def _row(i: int, kind: str, status: EvidenceStatus, fix: tuple[bool, bool, str | None]) -> Evidence:
    eid = f"E{i}"
    if kind == "fp_ticket":
        return Evidence(
            id=eid,
            source="posthog_mcp",
            status=status,
            first_party=True,
            internal=True,
            subject="flag_key:new-checkout",
            tool="feature-flag-get-definition",
            url=f"https://us.posthog.com/project/1/feature_flags/{i}",
        )
    if kind == "fp_other":
        return Evidence(
            id=eid,
            source="posthog_mcp",
            status=status,
            first_party=True,
            internal=True,
            subject="flag_key:other-flag",
            data={"properties": {"plan": "enterprise"}},
        )
    if kind == "fp_none":
        return Evidence(id=eid, source="posthog_mcp", status=status, first_party=True, internal=True)
    if kind == "docs":
        return Evidence(
            id=eid,
            source="docs",
            status=status,
            first_party=True,
            subject="flag_key:new-checkout",
            url="https://posthog.com/docs/feature-flags",
        )
    if kind == "registry":
        return Evidence(
            id=eid,
            source="registry",
            status=status,
            data={"package": "posthog-js", "latest": "1.170.0"},
            url="https://www.npmjs.com/package/posthog-js",
        )
    if kind == "unplanned":
        return Evidence(
            id=eid, source="secret_tool", status=status, first_party=True, subject="flag_key:new-checkout"
        )
    exact, merged, fixed_in = fix
    return Evidence(
        id=eid,
        source="github",
        status=status,
        title=f"PostHog/posthog-js#{i} flags broken",
        url=f"{GH}/issues/{i}",
        data={
            "repo": "PostHog/posthog-js",
            "number": i,
            "is_pr": False,
            "issue_state": "closed",
            "exact_match": exact,
            "fix_merged": merged,
            "fixed_in": fixed_in,
            "fix_pr_url": f"{GH}/pull/{i + 100}",
        },
    )


KINDS = ["fp_ticket", "fp_other", "fp_none", "docs", "github", "registry", "unplanned"]
fixes = st.tuples(st.booleans(), st.booleans(), st.sampled_from([None, "1.150.0", "1.161.0"]))
rows_strategy = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sampled_from(list(EvidenceStatus)), fixes), min_size=1, max_size=7
)


@st.composite
def prose(draw: st.DrawFn, n: int) -> str:
    parts = draw(st.lists(st.sampled_from([*WORDS, *URLS, *(f"E{i}" for i in range(1, n + 2))]), max_size=5))
    return " ".join(["Flags fail", *parts]) + "."


@st.composite
def model_answer(draw: st.DrawFn, n: int) -> dict[str, Any]:
    ids = st.lists(st.sampled_from([f"E{i}" for i in range(1, n + 1)] + ["E99"]), max_size=3)
    conf = st.sampled_from([c.value for c in Confidence])
    finding = st.fixed_dictionaries({"statement": prose(n), "confidence": conf, "evidence_ids": ids})
    bug = st.none() | st.fixed_dictionaries(
        {
            "evidence_id": st.sampled_from([f"E{i}" for i in range(1, n + 1)] + ["E99"]),
            "exact_match": st.booleans(),
            "match_reason": prose(n),
        }
    )
    return draw(
        st.fixed_dictionaries(
            {
                "summary": prose(n),
                "root_cause": st.none() | finding,
                "known_bug": bug,
                "findings": st.lists(finding, max_size=3),
                "ruled_out": st.lists(prose(n), max_size=2),
                "next_steps": st.lists(prose(n), max_size=3),
                "questions_for_customer": st.lists(prose(n), max_size=2),
                "customer_reply_draft": prose(n),
                "escalation": st.fixed_dictionaries(
                    {
                        "needed": st.booleans(),
                        "reason": prose(n),
                        "team": st.just(""),
                        "urgency": st.just("P2"),
                    }
                ),
                "injection_noticed": st.booleans(),
            }
        )
    )


class ScriptedModel:
    """The adversary: synthesis from the drawn answer, hostile drafts and follow-up answers."""

    def __init__(self, synthesis: dict[str, Any], hostile: str) -> None:
        self.synthesis = synthesis
        self.hostile = hostile

    async def complete(
        self, *, purpose: str, system: list[str], prompt: str, output_type: type[T], max_tokens: int = 4096
    ) -> ModelResult[T]:
        if output_type is SynthesisOutput:
            return ModelResult(output_type.model_validate(self.synthesis))
        fields = {}
        for name, info in output_type.model_fields.items():
            fields[name] = [self.hostile] if "list" in str(info.annotation) else self.hostile
        return ModelResult(output_type.model_validate(fields))


def _texts(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [t for v in node.values() for t in _texts(v)]
    if isinstance(node, list | tuple):
        return [t for v in node for t in _texts(v)]
    if isinstance(node, BaseModel):
        return _texts(node.model_dump(mode="json"))
    return []


def _model_written(r: TriageReport) -> list[str]:
    texts = [r.summary, *r.ruled_out, *r.next_steps, *r.questions_for_customer, r.customer_reply_draft]
    texts += [f.statement for f in [*r.findings, *([r.root_cause] if r.root_cause else [])]]
    texts += [r.escalation.reason, r.known_bug.match_reason if r.known_bug else ""]
    return texts


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drawn=rows_strategy.flatmap(lambda rows: st.tuples(st.just(rows), model_answer(len(rows)))),
    url=st.sampled_from(URLS),
)
def test_no_adversarial_answer_beats_the_rules(drawn: tuple[list[Any], dict[str, Any]], url: str) -> None:
    raw_rows, answer = drawn
    evidence = [_row(i, kind, status, fix) for i, (kind, status, fix) in enumerate(raw_rows, start=1)]
    planned = sorted({e.source for e in evidence} - {"secret_tool"})
    sources = [SourceStatus(source=s, status=EvidenceStatus.ok) for s in planned]
    model = ScriptedModel(answer, f"Definitely confirmed, fixed in 9.9.9: {url} {MASKED_SLACK}")
    playbook = bundled_playbooks()["feature_flags"]

    async def run() -> tuple[TriageReport, list[Any]]:
        report = await build_report(
            ticket=TICKET, intake=INTAKE, playbook=playbook, evidence=evidence, sources=sources, model=model
        )
        made = [
            await drafts.escalation_packet(report, TICKET, model),
            await drafts.kb_article(report, model),
            await drafts.reply_draft(report, model),
            await followup.answer_follow_up(report, f"what about {url}?", model=model),
        ]
        return report, made

    report, made = asyncio.run(run())
    rows = {e.id: e for e in report.evidence if e.source in planned}

    # no grade exceeds the rules
    for f in [*report.findings, *([report.root_cause] if report.root_cause else [])]:
        assert all(i in rows for i in f.evidence_ids)
        ok = [rows[i] for i in f.evidence_ids if rows[i].status == EvidenceStatus.ok]
        if f.confidence is Confidence.confirmed:
            via_bug = bool(
                set(f.evidence_ids) & set(report.known_bug.evidence_ids if report.known_bug else [])
            )
            assert any(is_data_about_ticket(e, report.intake) for e in ok) or (
                via_bug
                and fix_applies(report.known_bug, rows, report.intake)
                and not report.intake.injection_suspected
            )
        if f.confidence is not Confidence.suspected:
            assert ok
    if report.root_cause is None or report.root_cause.confidence is Confidence.suspected:
        assert report.escalation.needed
        assert (
            "9.9.9" not in report.customer_reply_draft
            and "confirmed" not in report.customer_reply_draft.lower()
        )
    for item in report.ruled_out:
        assert any(ref in rows for ref in re.findall(r"\bE\d+\b", item))

    # no known-bug fact differs from its row, and the row is a cited GitHub row
    assert known_bug_matches_row(report.known_bug, report.evidence)
    if report.known_bug is not None:
        assert rows[report.known_bug.evidence_ids[0]].source == "github"

    # no URL outside evidence + allowlist anywhere the adversary could write
    policy = default_policy()
    card = parent_message(CardState(ticket=report.ticket, status="done", report=report))
    surfaces = [*_model_written(report), *_texts([card, *report_messages(report)]), *_texts(made)]
    for text in surfaces:
        assert foreign_urls(text, report.evidence, policy, also=[TICKET.url]) == [], text
    internal = internal_strings(report.evidence)
    for customer_facing in (report.customer_reply_draft, *_texts(made[1:3])):
        assert not [x for x in internal if x.casefold() in customer_facing.casefold()], customer_facing
