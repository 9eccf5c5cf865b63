"""Escalation packet, KB article and reply drafts: without a model, with the real adapter on the fake API."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from integrations.anthropic_model import AnthropicModel
from tests.fakes.anthropic import FakeAnthropic
from triage import drafts
from triage.grading import grade
from triage.models import (
    Confidence,
    Evidence,
    EvidenceStatus,
    Finding,
    Identifiers,
    Intake,
    KnownBug,
    ReportMode,
    Sdk,
    SourceStatus,
    Ticket,
    TicketSummary,
    TriageReport,
    Urgency,
)

OK = EvidenceStatus.ok
INTERNAL_URL = "https://us.posthog.com/project/1/person/user_8f3a2c"


def example(ticket_id: int) -> Ticket:
    text = resources.files("triage").joinpath(f"examples/{ticket_id}.json").read_text(encoding="utf-8")
    return Ticket.model_validate(json.loads(text))


def flags_report(language: str = "en", ticket_id: int = 48291, **kw: object) -> TriageReport:
    evidence = [
        Evidence(
            id="E1",
            source="posthog_mcp",
            status=OK,
            first_party=True,
            internal=True,
            subject="person:user_8f3a2c",
            title="Person user_8f3a2c",
            summary="plan=enterprise set 2s after flag call",
            url=INTERNAL_URL,
        ),
        Evidence(
            id="E2",
            source="github",
            status=OK,
            title="Flags stale right after identify()",
            url="https://github.com/PostHog/posthog-js/issues/1234",
            data={
                "repo": "PostHog/posthog-js",
                "issue_state": "closed",
                "fix_pr_url": "https://github.com/PostHog/posthog-js/pull/1240",
                "fix_merged": True,
                "fixed_in": "1.161.0",
                "exact_match": True,
            },
        ),
        Evidence(id="E3", source="docs", status=EvidenceStatus.error, summary="502"),
    ]
    ticket = example(ticket_id)
    base: dict[str, object] = {
        "ticket": TicketSummary.of(ticket),
        "mode": ReportMode.llm,
        "summary": "Person properties arrive after the flag call; posthog-js bug fixed in 1.161.0.",
        "product_area": "feature_flags",
        "intake": Intake(
            product_area="feature_flags",
            language=language,
            urgency=Urgency.p2,
            identifiers=Identifiers(
                flag_keys=["new-checkout-flow"],
                distinct_ids=["user_8f3a2c"],
                sdks=[Sdk(name="posthog-js", version="1.160.0", package="posthog-js")],
            ),
            symptom_keywords=["flag false after identify"],
        ),
        "evidence": evidence,
        "sources": [SourceStatus(source=s, status=OK) for s in ("posthog_mcp", "github", "docs")],
        "root_cause": Finding(
            statement="Flags evaluated before identify() properties land (E1, E2)",
            confidence=Confidence.confirmed,
            evidence_ids=["E1", "E2"],
        ),
        "known_bug": KnownBug(
            issue_url="https://github.com/PostHog/posthog-js/issues/1234",
            title="Flags stale right after identify()",
            fix_merged=True,
            fixed_in="1.161.0",
            exact_match=True,
            evidence_ids=["E2"],
        ),
        "ruled_out": ["Flag misconfiguration (E1)"],
        "next_steps": ["Ask the customer to upgrade posthog-js"],
        "questions_for_customer": ["Which browser?"],
    }
    base.update(kw)
    return grade(TriageReport(**base))  # type: ignore[arg-type]


# ---------------------------------------------------------------- escalation packet


async def test_packet_without_model() -> None:
    report = flags_report()
    packet = await drafts.escalation_packet(report, example(48291), None)
    assert packet.title.startswith("#48291 Feature flags")
    assert "SDK: posthog-js 1.160.0" in packet.environment
    assert any("Flag keys: new-checkout-flow" in e for e in packet.environment)
    assert any("isFeatureEnabled('new-checkout-flow')" in s for s in packet.reproduction_steps)
    assert not any(
        "Scale plan" in s for s in packet.reproduction_steps
    )  # agent's internal note is not a repro step
    assert not any(s.startswith(("Hi team", "Thanks")) for s in packet.reproduction_steps)
    assert [e.id for e in packet.evidence] == ["E1", "E2"]  # ok rows, with links
    assert packet.evidence[0].url == INTERNAL_URL  # the packet is internal: internal links are fine
    assert packet.owner_team == "team-feature-flags"  # from the playbook
    assert packet.urgency == Urgency.p2
    assert packet.ruled_out == ["Flag misconfiguration (E1)"]
    assert packet.suspected_component == "Flags stale right after identify()"
    assert "Acme Analytics" in packet.impact
    assert packet.root_cause is not None and packet.known_bug is not None


async def test_packet_without_ticket() -> None:
    packet = await drafts.escalation_packet(flags_report(), None, None)
    assert packet.reproduction_steps == [] and packet.ticket.id == 48291


async def test_packet_with_model(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.push_json(
        {
            "title": "<!channel> posthog-js flags stale after identify()",
            "summary": "Flags evaluate before properties land (E1, E77).",
            "impact": "All enterprise users of Acme on checkout.",
            "reproduction_steps": ["Call identify()", "Check isFeatureEnabled immediately"],
            "suspected_component": "posthog-js flags loader",
        }
    )
    report = flags_report()
    packet = await drafts.escalation_packet(report, example(48291), model)
    assert packet.title == "posthog-js flags stale after identify()"
    assert "E77" not in packet.summary and "E1" in packet.summary
    assert packet.reproduction_steps == ["Call identify()", "Check isFeatureEnabled immediately"]
    assert packet.evidence == [e for e in report.evidence if e.status == OK]  # evidence comes from the report
    assert packet.owner_team == "team-feature-flags"
    prompt = FakeAnthropic.prompt_of(fake.last_body())
    assert "<ticket_data>" in prompt and "<evidence>" in prompt


async def test_packet_model_failure_falls_back(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.server_error()
    packet = await drafts.escalation_packet(flags_report(), example(48291), model)
    assert packet.title.startswith("#48291")


# ---------------------------------------------------------------- KB article


async def test_kb_without_model_is_public() -> None:
    kb = await drafts.kb_article(flags_report(), None)
    assert kb.title == "Flags stale right after identify()"
    assert kb.affected_versions == "posthog-js versions before 1.161.0"
    assert kb.resolution_steps[0] == "Upgrade posthog-js to 1.161.0 or later."
    assert INTERNAL_URL not in kb.related_links
    assert "https://github.com/PostHog/posthog-js/issues/1234" in kb.related_links
    blob = kb.model_dump_json()
    assert "E1" not in blob and "E2" not in blob and INTERNAL_URL not in blob


async def test_kb_with_model_strips_internal(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.push_json(
        {
            "title": "Feature flags false right after identify()",
            "problem": f"Flags return false; see {INTERNAL_URL} (E1).",
            "symptoms": ["isFeatureEnabled false after identify()"],
            "cause": "A race in posthog-js 1.160.0 <@U123>",
            "resolution_steps": ["Upgrade to posthog-js 1.161.0 or later (E2)"],
            "affected_versions": "posthog-js 1.160.0",
        }
    )
    kb = await drafts.kb_article(flags_report(), model)
    blob = kb.model_dump_json()
    assert INTERNAL_URL not in blob and "E1" not in blob and "E2" not in blob and "<@" not in blob
    assert kb.resolution_steps == ["Upgrade to posthog-js 1.161.0 or later"]
    prompt = FakeAnthropic.prompt_of(fake.last_body())
    assert INTERNAL_URL not in prompt  # internal evidence is not even offered for a public article


# ---------------------------------------------------------------- reply


async def test_reply_without_model_uses_report_draft_sanitised() -> None:
    report = flags_report(customer_reply_draft=f"Hi Jane, we looked at {INTERNAL_URL} and E1.")
    reply = await drafts.reply_draft(report, None)
    assert reply.language == "en"
    assert INTERNAL_URL not in reply.body and "E1" not in reply.body


async def test_spanish_reply_without_model() -> None:
    report = flags_report(language="es", ticket_id=48317, customer_reply_draft="")
    reply = await drafts.reply_draft(report, None)
    assert reply.language == "es"
    assert reply.body.startswith("Hola Lucía:")
    assert "posthog-js 1.161.0" in reply.body  # the released fix, in Spanish
    assert "Parece un problema conocido" in reply.body


@pytest.mark.parametrize(
    ("lang", "hello"), [("de", "Hallo"), ("fr", "Bonjour"), ("pt-BR", "Olá"), ("xx", "Hi")]
)
async def test_reply_templates_per_language(lang: str, hello: str) -> None:
    report = flags_report(language=lang, customer_reply_draft="", known_bug=None)
    reply = await drafts.reply_draft(report, None)
    assert reply.body.startswith(hello)


async def test_reply_with_model_never_cites_internal(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.push_json(
        {"body": f"Hola Lucía: según {INTERNAL_URL} (E1) y E2, actualiza a posthog-js 1.161.0. <!here>"}
    )
    report = flags_report(language="es", ticket_id=48317)
    reply = await drafts.reply_draft(report, model)
    assert reply.language == "es"
    assert reply.body.startswith("Hola Lucía") and "según" in reply.body  # the model's text
    assert INTERNAL_URL not in reply.body and "E1" not in reply.body and "E2" not in reply.body
    assert "<!here>" not in reply.body
    body = fake.last_body()
    prompt = FakeAnthropic.prompt_of(body)
    assert "in this language: es" in prompt
    assert INTERNAL_URL not in prompt


async def test_reply_model_failure_falls_back(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.overloaded()
    report = flags_report(language="es", ticket_id=48317, customer_reply_draft="")
    reply = await drafts.reply_draft(report, model)
    assert reply.body.startswith("Hola Lucía:")
