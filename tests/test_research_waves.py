"""Research wave 1 (the rules' plan) runs while the intake model thinks; wave 2 runs what its answer adds
(its English search queries), cleaned of customer identifiers."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from pydantic import BaseModel

from tests.waits import WAIT_S
from triage.engine import TriageEngine
from triage.intake import IntakeRefinement, intake_prompt, rule_intake
from triage.intake.refinement import model_queries
from triage.models import Evidence, EvidenceStatus, Identifiers, Intake, ResearchTask, Ticket, Usage
from triage.playbooks import Playbook, bundled_playbooks
from triage.protocols import LanguageModelError, ModelResult
from triage.research import new_tasks

T = TypeVar("T", bound=BaseModel)


class SearchSource:
    """Plans one rules search, plus one search per model query; records the order things happen in."""

    name = "github"

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.started = asyncio.Event()

    def plan(self, intake: Intake, playbook: Playbook) -> list[ResearchTask]:
        tasks = [ResearchTask(key="github:rules", source=self.name, tool="search", arguments={"q": "survey"})]
        tasks += [
            ResearchTask(key=f"github:model:{i}", source=self.name, tool="search", arguments={"q": q})
            for i, q in enumerate(intake.search_queries, start=1)
        ]
        return tasks

    async def execute(self, task: ResearchTask) -> list[Evidence]:
        self.log.append(f"search {task.arguments['q']}")
        self.started.set()
        return [Evidence(source=self.name, status=EvidenceStatus.ok, title=str(task.arguments["q"]))]


class GatedModel:
    """The intake answer is only given once research has started: proves wave 1 does not wait for it."""

    def __init__(self, source: SearchSource, log: list[str]) -> None:
        self.source = source
        self.log = log

    async def complete(
        self, *, purpose: str, system: list[str], prompt: str, output_type: type[T], max_tokens: int = 4096
    ) -> ModelResult[T]:
        if purpose != "intake":
            raise LanguageModelError("no synthesis in this test")
        await asyncio.wait_for(self.source.started.wait(), timeout=WAIT_S)
        self.log.append("intake model answered")
        answer: Any = IntakeRefinement(
            product_area="surveys",
            search_queries=["survey not shown after close", "survey for jane@acme.io", "survey new-checkout"],
        )
        return ModelResult(output=answer, usage=Usage(calls=1), model="m")


async def test_wave_one_runs_while_the_intake_model_thinks_and_wave_two_adds_its_queries() -> None:
    log: list[str] = []
    source = SearchSource(log)
    engine = TriageEngine(
        tickets=None, sources=[source], model=GatedModel(source, log), playbooks=bundled_playbooks()
    )
    ticket = Ticket(
        id=7,
        subject="La encuesta no aparece otra vez",
        description="Después de cerrarla, la encuesta no vuelve a aparecer. Flag new-checkout activo.",
    )
    report = await engine.triage(ticket)

    assert log == ["search survey", "intake model answered", "search survey not shown after close"]
    assert report.intake.refined_by_model and report.intake.search_queries == ["survey not shown after close"]
    assert [e.id for e in report.evidence] == ["E1", "E2"]
    assert [e.title for e in report.evidence] == ["survey", "survey not shown after close"]


def test_the_intake_prompt_shows_the_code_symbols_for_the_queries() -> None:
    ticket = Ticket(
        id=1, subject="displaySurvey", description="posthog.displaySurvey() shows the survey once"
    )
    base = rule_intake(ticket, bundled_playbooks())
    assert "code_symbols: displaySurvey" in intake_prompt(ticket, base)


def test_model_queries_are_cleaned_of_customer_identifiers() -> None:
    base = Intake(
        identifiers=Identifiers(
            flag_keys=["beta-banner"],
            distinct_ids=["user_8f3a2c"],
            event_names=["checkout_done", "$pageview"],
        )
    )
    queries = [
        "  isFeatureEnabled returns undefined  ",
        "beta-banner flag false",
        "user_8f3a2c missing events",
        "checkout_done not captured",
        "$pageview missing after navigation",
        "https://us.posthog.com/project/1 broken",
        "repo:PostHog/posthog-js survey",
        "survey",
        "isFeatureEnabled returns undefined",
        "one two three four five six seven eight nine ten eleven",
    ]
    assert model_queries(queries, base) == [
        "isFeatureEnabled returns undefined",
        "$pageview missing after navigation",
    ]


def test_wave_two_holds_only_new_tasks_with_unique_keys() -> None:
    def t(key: str, q: str) -> ResearchTask:
        return ResearchTask(key=key, source="github", tool="search", arguments={"q": q})

    done = [t("a", "x"), t("b", "y")]
    assert [(x.key, x.arguments["q"]) for x in new_tasks(done, [t("a", "x"), t("a", "z"), t("c", "z")])] == [
        ("a#2", "z")
    ]
