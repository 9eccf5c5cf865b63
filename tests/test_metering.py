"""Cost recording, the daily budget and `triagebot stats`, through build_services, the store and the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.settings import Settings
from bot.wiring import BundledTicketSource, Services, build_services, replay_sources
from formatting.stats import stats_text
from integrations.anthropic_model import AnthropicModel
from tests.fakes.anthropic import FakeAnthropic
from tests.test_cli import synthesis_citing
from triage.intake import IntakeRefinement
from triage.metering import DailyBudget, utc_day_start
from triage.models import ReportMode, TriageReport, Usage
from triage.store import Feedback

INTAKE = IntakeRefinement(product_area="feature_flags", language="en").model_dump(mode="json")


@pytest.fixture
async def services(tmp_path: Path, fake: FakeAnthropic) -> AsyncIterator[Services]:
    settings = Settings(anthropic_api_key=fake.api_key, anthropic_base_url=fake.url, anthropic_max_retries=0)
    model = AnthropicModel(
        fake.api_key, base_url=fake.url, synthesis_model="claude-sonnet-5-5", intake_model="claude-haiku-5-5"
    )
    svc = build_services(
        settings,
        tickets=BundledTicketSource(),
        sources=replay_sources(),
        model=model,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
    )
    yield svc
    await svc.aclose()


async def triage(svc: Services, ticket_id: int = 48291) -> TriageReport:
    ticket = await svc.engine.fetch(ticket_id)
    claim = await svc.store.claim_run(
        ticket.id, f"{ticket.version_key}#{datetime.now(UTC).timestamp()}", "cli"
    )
    report = await svc.engine.triage(ticket, run_id=claim.run.run_id)
    await svc.store.finish_run(claim.run.run_id, report, token=claim.token)
    return report


async def test_every_call_of_triage_draft_and_followup_is_recorded(
    services: Services, fake: FakeAnthropic
) -> None:
    fake.push_json(INTAKE).push_json(synthesis_citing("E1"))
    report = await triage(services)
    assert report.mode is ReportMode.llm
    fake.push_json({"body": "Hola", "language": "es"})
    await services.engine.reply_draft(report)

    stats = await services.store.usage_stats(1)
    assert stats.triages == 1 and stats.model_calls == 3
    assert set(stats.cost_by_kind) == {"triage", "reply"}
    # the triage's calls add up to exactly what the report says it cost
    assert stats.cost_by_kind["triage"] == pytest.approx(report.usage.cost_usd)
    assert stats.input_tokens > 0 and stats.cache_creation_tokens > 0
    assert stats.grades == {report.confidence.value if report.confidence else "none": 1}


async def test_budget_spent_makes_new_triages_evidence_only_until_midnight(
    services: Services, fake: FakeAnthropic
) -> None:
    now = [datetime.now(UTC)]  # the store stamps runs with the real clock, so the budget's day is today
    services.engine.budget = DailyBudget(0.001, services.store.model_cost_since, clock=lambda: now[0])
    fake.push_json(INTAKE).push_json(synthesis_citing("E1"))
    first = await triage(services)
    assert first.mode is ReportMode.llm and first.usage.cost_usd >= 0.001  # this run spent the budget

    served = len(fake.message_calls())
    second = await triage(services, 48302)
    assert second.mode is ReportMode.evidence_only
    assert "daily budget reached" in second.degraded_reason and "00:00 UTC" in second.degraded_reason
    assert len(fake.message_calls()) == served  # no model call while paused
    # buttons that need the model know why
    assert "daily budget reached" in await services.engine.model_paused()
    packet = await services.engine.escalation_packet(second)
    assert packet.title and len(fake.message_calls()) == served

    # the next UTC day (counted from after every stored run): the spend starts at 0 again
    now[0] = utc_day_start(datetime.now(UTC)) + timedelta(days=1, minutes=1)
    assert await services.engine.model_paused() == ""


async def test_stats_counts_votes_outcomes_and_escalations(services: Services, fake: FakeAnthropic) -> None:
    fake.push_json(INTAKE).push_json(synthesis_citing("E1"))
    report = await triage(services)
    await services.store.add_feedback(Feedback(run_id=report.run_id, user_id="U1", vote="up"))
    await services.store.add_feedback(Feedback(run_id=report.run_id, user_id="U2", vote="down", comment="x"))
    await services.store.record_outcome(report.run_id, "reply_copied", "U1")
    await services.store.record_outcome(report.run_id, "packet_opened", "U1")
    stats = await services.store.usage_stats(7)
    assert len(stats.per_day) == 7 and stats.per_day[-1].triages == 1
    assert (stats.votes_up, stats.votes_down) == (1, 1)
    assert stats.outcomes["reply_copied"] == 1 and stats.outcomes["packet_opened"] == 1
    assert stats.runs_with_outcome == 1 and stats.acceptance_rate == 1.0
    assert stats.escalations == int(report.escalation.needed)
    text = stats_text(stats)
    assert "👍 1  👎 1" in text and "draft acceptance  100%" in text


async def test_stats_window_excludes_older_days(services: Services) -> None:
    from triage.metering import ModelCall

    old = datetime.now(UTC) - timedelta(days=3)
    await services.store.record_model_call(
        ModelCall("r", "triage", "synthesis", "m", Usage(cost_usd=5.0), old)
    )
    await services.store.record_model_call(ModelCall("r", "triage", "synthesis", "m", Usage(cost_usd=1.0)))
    assert (await services.store.usage_stats(1)).cost_usd == 1.0
    assert (await services.store.usage_stats(4)).cost_usd == 6.0


def test_stats_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    code = main(["stats", "--days", "3", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    payload: dict[str, Any] = json.loads(out)
    assert payload["days"] == 3 and len(payload["per_day"]) == 3 and payload["triages"] == 0
    code = main(["stats"])
    out, _ = capsys.readouterr()
    assert code == 0 and "grade mix" in out and "cost per triage" in out
    assert main(["stats", "--days", "0"]) == 2


def test_budget_setting_wires_a_budget(tmp_path: Path) -> None:
    settings = Settings(triage_daily_budget_usd=5, anthropic_api_key="k", database_url="sqlite://")
    svc = build_services(settings, tickets=None, sources=[])
    try:
        assert svc.engine.budget is not None and svc.engine.budget.limit_usd == 5
    finally:
        asyncio.run(svc.aclose())
