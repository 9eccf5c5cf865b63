"""PostHog LLM analytics: the real posthog SDK (and its anthropic wrapper) against a fake capture endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings
from bot.wiring import BundledTicketSource, build_services, replay_sources
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.posthog_capture import FakePostHogCapture
from tests.test_cli import synthesis_citing
from triage.intake import IntakeRefinement

INTAKE = IntakeRefinement(product_area="feature_flags", language="en").model_dump(mode="json")


@pytest.fixture
def capture() -> Iterator[FakePostHogCapture]:
    with FakePostHogCapture() as server:
        yield server  # type: ignore[misc]


def settings_for(fake: FakeAnthropic, capture: FakePostHogCapture, tmp_path: Path, **kw: Any) -> Settings:
    return Settings(
        anthropic_api_key=fake.api_key,
        anthropic_base_url=fake.url,
        anthropic_max_retries=0,
        posthog_analytics_api_key=capture.api_key,
        posthog_analytics_host=capture.url,
        database_url=f"sqlite:///{tmp_path / 'a.db'}",
        **kw,
    )


def ticket_phrases(ticket_id: int) -> list[str]:
    """Distinctive pieces of the ticket's own text that must never reach analytics."""
    ticket = json.loads((Path("triage/examples") / f"{ticket_id}.json").read_text())
    texts = [ticket["subject"], ticket["description"], *(c["body"] for c in ticket.get("comments", []))]
    return [t.strip()[:40] for t in texts if len(t.strip()) >= 20]


async def test_trace_generations_spans_feedback_outcomes_without_ticket_text(
    fake: FakeAnthropic, capture: FakePostHogCapture, tmp_path: Path
) -> None:
    fake.push_json(INTAKE).push_json(synthesis_citing("E1"))
    svc = build_services(
        settings_for(fake, capture, tmp_path), tickets=BundledTicketSource(), sources=replay_sources()
    )
    try:
        ticket = await svc.engine.fetch(48291)
        report = await svc.engine.triage(ticket, run_id="run-abc")
        fake.push_json({"body": "Hi, here is what happened.", "language": "en"})
        await svc.engine.reply_draft(report)
        assert svc.analytics is not None
        svc.analytics.feedback(
            "run-abc", "down", "Wrong area; token ghp_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ12"
        )
        svc.analytics.outcome("run-abc", "reply_copied")
    finally:
        await svc.aclose()  # flushes

    generations = capture.named("$ai_generation")
    assert len(generations) == 3  # intake, synthesis, reply draft
    for event in generations:
        props = event["properties"]
        assert props["$ai_trace_id"] == "run-abc"
        assert props["ticket_id"] == 48291 and props["$ai_provider"] == "anthropic"
        assert props["$ai_input_tokens"] > 0 and props["$ai_model"].startswith("claude-")
        # privacy mode: no prompt or response content
        assert props.get("$ai_input") is None and props.get("$ai_output_choices") is None
    kinds = [e["properties"]["triage_kind"] for e in generations]
    assert kinds == ["triage", "triage", "reply"]
    assert generations[1]["properties"]["area"] == "feature_flags"
    assert generations[2]["properties"]["grade"] == (report.confidence.value if report.confidence else "none")

    spans = capture.named("$ai_span")
    assert len(spans) == len(report.evidence) > 0
    assert {s["properties"]["$ai_parent_id"] for s in spans} == {"run-abc"}
    assert {s["properties"]["source"] for s in spans} >= {"github", "registry"}
    assert all(isinstance(s["properties"]["$ai_latency"], (int, float)) for s in spans)
    (trace,) = capture.named("$ai_trace")
    assert trace["properties"]["grade"] == (report.confidence.value if report.confidence else "none")
    assert trace["properties"]["mode"] == "llm" and trace["properties"]["playbook"] == "feature_flags"

    (metric,) = capture.named("$ai_metric")
    assert metric["properties"] == {
        **metric["properties"],
        "$ai_metric_value": "down",
        "$ai_trace_id": "run-abc",
    }
    (feedback,) = capture.named("$ai_feedback")
    assert feedback["properties"]["$ai_feedback_text"].startswith("Wrong area")
    assert "ghp_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ12" not in feedback["properties"]["$ai_feedback_text"]
    (outcome,) = capture.named("triage_draft_outcome")
    assert outcome["properties"]["outcome"] == "reply_copied"

    everything = json.dumps(capture.events)
    for phrase in ticket_phrases(48291):
        assert phrase not in everything, phrase


async def test_privacy_mode_off_sends_content(
    fake: FakeAnthropic, capture: FakePostHogCapture, tmp_path: Path
) -> None:
    fake.push_json(INTAKE).push_json(synthesis_citing("E1"))
    svc = build_services(
        settings_for(fake, capture, tmp_path, posthog_analytics_privacy_mode=False),
        tickets=BundledTicketSource(),
        sources=replay_sources(),
    )
    try:
        await svc.engine.triage(await svc.engine.fetch(48291), run_id="run-open")
    finally:
        await svc.aclose()
    generations = capture.named("$ai_generation")
    assert generations and all(g["properties"].get("$ai_input") for g in generations)


async def test_off_by_default_sends_nothing(
    fake: FakeAnthropic, capture: FakePostHogCapture, tmp_path: Path
) -> None:
    settings = Settings(anthropic_api_key=fake.api_key, anthropic_base_url=fake.url, database_url="sqlite://")
    fake.push_json(INTAKE).push_json(synthesis_citing("E1"))
    svc = build_services(settings, tickets=BundledTicketSource(), sources=replay_sources())
    try:
        assert svc.analytics is None
        await svc.engine.triage(await svc.engine.fetch(48291), run_id="run-off")
    finally:
        await svc.aclose()
    assert capture.requests == []
