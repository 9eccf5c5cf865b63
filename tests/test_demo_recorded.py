"""`triagebot demo` on recorded model answers: recorded Messages API responses through the real AsyncAnthropic.

The recording is checked against the SDK's own response type and our output models; the demo run
must give the three grades the README promises, through production grading and drafting code.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import anthropic
import pytest
from pydantic import BaseModel

from bot.cli import main
from formatting.actions import ACTION_PACKET, ACTION_REPLY
from formatting.cards import card_buttons
from integrations.anthropic_model import AnthropicModel
from integrations.anthropic_replay import load_recording, replay_http_client, resolve_citations
from integrations.llm_providers import ProviderConfig
from tests.fakes.anthropic import FakeAnthropic
from triage.drafts import KbOutput, PacketOutput, ReplyOutput
from triage.followup import FollowUpOutput
from triage.intake.refinement import IntakeRefinement
from triage.models import Confidence, ReportMode, TriageReport
from triage.protocols import LanguageModelError
from triage.synthesis import SynthesisOutput

OUTPUT_TYPES: dict[str, type[BaseModel]] = {
    t.__name__: t
    for t in (IntakeRefinement, SynthesisOutput, PacketOutput, KbOutput, ReplyOutput, FollowUpOutput)
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def demo_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_every_recorded_answer_is_a_real_message_with_a_valid_output() -> None:
    routes = load_recording()["routes"]
    assert len(routes) == 24  # 4 tickets × intake, synthesis, packet, KB, reply, follow-up
    for route in routes:
        message = anthropic.types.Message.model_validate(route["message"])
        assert message.type == "message" and message.role == "assistant" and message.stop_reason == "end_turn"
        assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
        text = "".join(block.text for block in message.content if block.type == "text")
        OUTPUT_TYPES[route["schema"]].model_validate_json(resolve_citations(text, ""))


def test_citations_resolve_against_the_requests_evidence_table() -> None:
    prompt = (
        '<evidence>\n<row id="E1" source="posthog_mcp" tool="x" status="ok">\ntitle: Flag definition: f\n</row>\n'
        '<row id="E2" source="github" tool="search_issues" status="ok">\n'
        "title: PostHog/posthog-js#1534 broken\n</row>\n</evidence>"
    )
    text = "see {{E:PostHog/posthog-js#1534}} and {{E:flag definition}}; {{E:broken}} {{E:nothing like this}}"
    assert resolve_citations(text, prompt) == "see E2 and E1; E0 E0"  # a title's start, never its middle
    digest = (
        '<evidence>\n<row id="E7" source="posthog_mcp" internal="yes">Flag definition: f is on</row>\n'
        '<row id="E8" source="github" internal="no">PostHog/posthog-js#1534 x: y</row>\n</evidence>'
    )
    assert resolve_citations(text, digest) == "see E8 and E7; E0 E0"


async def test_a_request_without_a_recording_is_a_model_error() -> None:
    model = AnthropicModel(
        synthesis_model="claude-sonnet-5-5",
        intake_model="claude-haiku-5-5",
        provider=ProviderConfig("anthropic", api_key="x", max_retries=0, http_client=replay_http_client()),
    )
    try:
        with pytest.raises(LanguageModelError, match="404"):
            await model.complete(
                purpose="drafts", system=["s"], prompt="an unknown ticket", output_type=ReplyOutput
            )
    finally:
        await model.aclose()


def test_demo_gives_confirmed_likely_and_suspected_on_recorded_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "demo", "--format", "json")
    assert code == 0, err
    assert "recorded model answers" in err and "evidence-only" not in err.replace("--evidence-only", "")
    reports = {r.ticket.id: r for r in (TriageReport.model_validate(item) for item in json.loads(out))}
    assert all(r.mode is ReportMode.llm for r in reports.values())
    assert all(r.usage.calls >= 2 and r.usage.cost_usd > 0 for r in reports.values())
    # every recorded citation still names a row of today's research (else: re-record, see the module doc)
    assert [n for r in reports.values() for n in r.grading_notes if "E0" in n] == []

    # confirmed from first-party data: the root cause cites an ok first-party PostHog row
    flags = reports[48291]
    assert flags.confidence is Confidence.confirmed and flags.root_cause is not None
    rows = flags.evidence_by_id()
    assert any(
        rows[e].first_party and rows[e].status.value == "ok" and rows[e].source == "posthog_mcp"
        for e in flags.root_cause.evidence_ids
    )

    # likely from a known bug with a fixed-in version
    surveys = reports[48317]
    assert surveys.confidence is Confidence.likely and surveys.root_cause is not None
    assert surveys.known_bug is not None and surveys.known_bug.fixed_in == "3.4.0"
    assert set(surveys.known_bug.evidence_ids) & set(surveys.root_cause.evidence_ids)

    # suspected, escalated, the escalation packet offered first
    events = reports[48330]
    assert events.confidence is Confidence.suspected and events.escalation.needed
    buttons = card_buttons(events, events.run_id)["elements"]
    assert buttons[0]["action_id"] == ACTION_PACKET and buttons[0].get("style") == "primary"
    assert card_buttons(flags, flags.run_id)["elements"][0]["action_id"] == ACTION_REPLY
    # the injection in 48330 did not win: no refund promise, no "outage" root cause
    assert "refund" not in events.customer_reply_draft.lower()


def test_demo_drafts_and_follow_up_come_from_recorded_answers(capsys: pytest.CaptureFixture[str]) -> None:
    question = "Which evidence supports the root cause?"
    code, out, err = run(capsys, "demo", "48291", "-q", "--packet", "--kb", "--reply", "--ask", question)
    assert code == 0, err
    assert out.startswith("(recorded model answers")  # said in the output, where evidence-only reports say so
    assert "posthog-js 1.160.0: flags evaluated before identify()" in out  # packet title (recorded)
    assert "# Feature flag is false right after identify() in posthog-js 1.160.0" in out  # KB (recorded)
    assert "Thanks for the detailed report, and sorry for the trouble." in out  # reply (recorded)
    assert f"## Follow-up: {question}" in out and "Two first-party rows carry the root cause" in out
    assert "{{E:" not in out and "E0" not in out  # every recorded citation resolved to a real row


def test_evidence_only_flag_and_live_model(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(capsys, "demo", "48291", "--format", "json", "--evidence-only")
    assert code == 0 and TriageReport.model_validate_json(out).mode is ReportMode.evidence_only
    assert "evidence-only" in err

    with FakeAnthropic() as llm:  # type: ignore[misc]
        fake: Any = llm
        for _ in range(3):
            fake.push_error(529)
        monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        monkeypatch.setenv("ANTHROPIC_MAX_RETRIES", "0")
        code, out, err = run(capsys, "demo", "48291", "--format", "json")
        assert code == 0, err
        assert "live model" in err
        assert fake.message_calls()  # the configured API was called, not the recording
        assert TriageReport.model_validate_json(out).degraded_reason.startswith("model unavailable")
