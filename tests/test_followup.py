"""Follow-up answers grounded in the stored report, with and without a model."""

from __future__ import annotations

import pytest

from integrations.anthropic_model import AnthropicModel
from tests.fakes.anthropic import FakeAnthropic
from triage.followup import answer_follow_up, rank_evidence, wants_more_research
from triage.models import (
    Confidence,
    Evidence,
    EvidenceStatus,
    Finding,
    ReportMode,
    SourceStatus,
    TicketSummary,
    TriageReport,
)

OK = EvidenceStatus.ok


def stored_report() -> TriageReport:
    evidence = [
        Evidence(
            id="E1",
            source="posthog_mcp",
            tool="feature-flag-get-definition",
            status=OK,
            first_party=True,
            title="Flag new-checkout-flow definition",
            summary="active; release condition plan = enterprise 100%",
        ),
        Evidence(
            id="E2",
            source="github",
            tool="search_issues",
            status=OK,
            title="isFeatureEnabled false right after identify()",
            summary="fixed in posthog-js 1.161.0",
            url="https://github.com/PostHog/posthog-js/issues/1234",
        ),
        Evidence(
            id="E3",
            source="registry",
            tool="npm_latest",
            status=OK,
            title="posthog-js latest version 1.170.2",
        ),
    ]
    return TriageReport(
        ticket=TicketSummary(id=48291, subject="flag false for enterprise users"),
        mode=ReportMode.llm,
        summary="Flags evaluated before identify() properties land.",
        evidence=evidence,
        sources=[SourceStatus(source=e.source, status=OK) for e in evidence],
        root_cause=Finding(
            statement="Race after identify()", confidence=Confidence.likely, evidence_ids=["E2"]
        ),
    )


async def test_without_model_lists_relevant_evidence() -> None:
    answer = await answer_follow_up(stored_report(), "what is the release condition of the flag?", model=None)
    assert "not configured" in answer.answer
    assert answer.evidence_ids[0] == "E1"
    assert "E1 posthog_mcp (ok)" in answer.answer
    assert answer.usage.calls == 0


async def test_without_model_no_match_says_so() -> None:
    answer = await answer_follow_up(stored_report(), "zzz qqq", model=None)
    assert answer.evidence_ids == [] and "no evidence row matches" in answer.answer


def test_rank_evidence_by_overlap() -> None:
    ranked = rank_evidence("latest posthog-js version on npm?", stored_report().evidence)
    assert ranked[0][1].id == "E3"


async def test_with_model_grounded_and_only_existing_ids(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.push_json(
        {
            "answer": "The fix is in 1.161.0 (E2); the flag itself is fine (E1, E9). <!channel>",
            "evidence_ids": ["E2", "E9", "E1"],
        }
    )
    # (question, answer) turns as bot/followups.py stores them; a long question is not cut to a label
    long_question = "why is new-checkout-flow false for the enterprise users of Acme since Monday?"
    history = [(long_question, "see the root cause")]
    answer = await answer_follow_up(stored_report(), "Which version fixes it?", model=model, history=history)
    assert answer.evidence_ids == ["E2", "E1"]
    assert "E9" not in answer.answer and "<!channel>" not in answer.answer
    assert answer.usage.calls == 1
    body = fake.last_body()
    prompt = FakeAnthropic.prompt_of(body)
    assert "<evidence>" in prompt and '<row id="E2" source="github"' in prompt
    assert "<question>\nWhich version fixes it?\n</question>" in prompt
    thread = prompt[prompt.index("<thread>") : prompt.index("</thread>")]
    assert f"<earlier_question>\n{long_question}\n</earlier_question>" in thread
    assert "<earlier_answer>\nsee the root cause\n</earlier_answer>" in thread
    assert body["model"] == "claude-sonnet-5-5"


@pytest.mark.parametrize(
    ("grade", "kept", "gone"),
    [
        (Confidence.likely, ["likely"], ["confirmed", "definitely"]),
        (None, ["possibly"], ["confirmed", "definitely"]),  # no root cause: suspected
        (Confidence.confirmed, ["confirmed", "definitely"], []),
    ],
)
async def test_model_answer_is_no_surer_than_the_root_cause(
    fake: FakeAnthropic, model: AnthropicModel, grade: Confidence | None, kept: list[str], gone: list[str]
) -> None:
    report = stored_report()
    root = report.root_cause.model_copy(update={"confidence": grade}) if grade and report.root_cause else None
    report = report.model_copy(update={"root_cause": root})
    fake.push_json(
        {"answer": "It is confirmed by data: identify() definitely races (E2).", "evidence_ids": ["E2"]}
    )
    answer = await answer_follow_up(report, "is it the race?", model=model)
    for word in kept:
        assert word in answer.answer.lower(), answer.answer
    for word in gone:
        assert word not in answer.answer.lower(), answer.answer


async def test_extra_evidence_is_numbered_and_citable(fake: FakeAnthropic, model: AnthropicModel) -> None:
    extra = [
        Evidence(
            id="E2", source="registry", status=OK, title="posthog-js 1.171.0 released today"
        ),  # collides
        Evidence(id="", source="github", status=OK, title="new issue"),
    ]
    fake.push_json({"answer": "Latest is 1.171.0 (E4).", "evidence_ids": ["E4"]})
    answer = await answer_follow_up(
        stored_report(), "check the latest version", model=model, extra_evidence=extra
    )
    assert [e.id for e in answer.extra_evidence] == ["E4", "E5"]
    assert answer.evidence_ids == ["E4"]
    assert '<row id="E4" source="registry"' in FakeAnthropic.prompt_of(fake.last_body())


async def test_model_failure_answers_from_evidence(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.server_error()
    answer = await answer_follow_up(stored_report(), "github issue for identify?", model=model)
    assert "unavailable" in answer.answer and "E2" in answer.evidence_ids


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("can you check the flag again?", True),
        ("look up the latest version of posthog-js", True),
        ("what about person 0193f2aa-7c1e-4b2f-9d55-2f1e8c3a9b10?", True),
        ("does `beta-dashboard` behave the same?", True),
        ("is 1.161.0 the fix?", True),
        ("why do you think this is a race?", False),
        ("thanks, that helps", False),
        ("", False),
    ],
)
def test_wants_more_research(question: str, expected: bool) -> None:
    assert wants_more_research(question) is expected
