"""The triage engine: fetch → redact → intake → plan → parallel research → synthesis → grading.

It talks to the outside only through the protocols in `triage.protocols`; it knows nothing about
Slack or any SDK. Delivery (CLI, Slack) drives it and listens to its progress events.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from triage import drafts, followup
from triage.intake import refine_intake, rule_intake
from triage.links import LinkPolicy
from triage.metering import DailyBudget, PausedModel, annotate, run_context
from triage.models import (
    EscalationPacket,
    Evidence,
    EvidenceStatus,
    FollowUpAnswer,
    Intake,
    KbArticle,
    ReplyDraft,
    ResearchTask,
    Ticket,
    TriageReport,
)
from triage.playbooks import (
    Playbook,
    SdkSpec,
    Vocabulary,
    bundled_vocabulary,
    load_sdk_catalogue,
    playbook_for_area,
)
from triage.protocols import (
    ConfigError,
    LanguageModel,
    ProgressCallback,
    ProgressEvent,
    ResearchSource,
    TicketSource,
)
from triage.redaction import Redactor, lookup_scope
from triage.requester import requester_scope
from triage.research import emit, new_tasks, run_research, summarize_sources
from triage.store import AuditEntry
from triage.synthesis import build_report

log = logging.getLogger(__name__)

AuditSink = Callable[[list[AuditEntry]], Awaitable[None]]
RunObserver = Callable[[TriageReport], Awaitable[None]]  # told about every finished report (analytics)

MAX_FOLLOWUP_TASKS = 3


@dataclass(frozen=True)
class TriageConfig:
    research_deadline_s: float = 45.0
    task_timeout_s: float = 15.0
    start_timeout_s: float = 20.0
    redact_emails: bool = True
    redact_phones: bool = True


def _ms(since: float) -> int:
    return int((time.perf_counter() - since) * 1000)


def _report_props(report: TriageReport) -> dict[str, object]:
    """Ids and enums of a report for analytics (never its text)."""
    return {
        "ticket_id": report.ticket.id,
        "area": report.product_area,
        "playbook": report.intake.playbook_id,
        "mode": report.mode.value,
        "grade": report.confidence.value if report.confidence else "none",
    }


class TriageEngine:
    def __init__(
        self,
        *,
        tickets: TicketSource | None,
        sources: Sequence[ResearchSource],
        model: LanguageModel | None,
        playbooks: dict[str, Playbook],
        config: TriageConfig | None = None,
        sdk_catalogue: list[SdkSpec] | None = None,
        vocabulary: Vocabulary | None = None,
        audit: AuditSink | None = None,
        budget: DailyBudget | None = None,
        observer: RunObserver | None = None,
        links: LinkPolicy | None = None,
    ) -> None:
        self.tickets = tickets
        self.sources = list(sources)
        self.sources_by_name = {s.name: s for s in self.sources}
        self.model = model
        self.playbooks = playbooks
        self.config = config or TriageConfig()
        self.sdk_catalogue = sdk_catalogue if sdk_catalogue is not None else load_sdk_catalogue()
        self.vocabulary = vocabulary or bundled_vocabulary()
        self.audit = audit
        self.budget = budget
        self.observer = observer
        self.links = links or LinkPolicy.from_profile(catalogue=self.sdk_catalogue)
        self.redactor = Redactor(emails=self.config.redact_emails, phones=self.config.redact_phones)
        self._started = False

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Let sources that need it discover their tools once (bounded; a failure is not fatal)."""
        if self._started:
            return
        self._started = True
        starters = [s.start() for s in self.sources if callable(getattr(s, "start", None))]
        awaitables = [a for a in starters if inspect.isawaitable(a)]
        if awaitables:
            try:
                async with asyncio.timeout(self.config.start_timeout_s):
                    results = await asyncio.gather(*awaitables, return_exceptions=True)
            except TimeoutError:
                log.warning("research sources did not finish start-up in %ss", self.config.start_timeout_s)
                return
            for result in results:
                if isinstance(result, BaseException):
                    log.warning("a research source failed to start: %s", type(result).__name__)

    async def aclose(self) -> None:
        for item in [*self.sources, self.tickets, self.model]:
            closer = getattr(item, "aclose", None)
            if callable(closer):
                try:
                    result = closer()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.debug("close failed for %s", type(item).__name__)

    # ------------------------------------------------------------ the model, or why it is paused

    async def model_paused(self) -> str:
        """'' when the model may be used now, else why not (the daily budget is spent)."""
        if self.model is None or self.budget is None:
            return ""
        return await self.budget.paused()

    async def _active_model(self) -> LanguageModel | None:
        paused = await self.model_paused()
        return PausedModel(paused) if paused else self.model

    # ------------------------------------------------------------ the pipeline

    async def fetch(self, ticket_id: int) -> Ticket:
        if self.tickets is None:
            raise ConfigError(
                "no ticket source configured: set ZENDESK_URL (or ZENDESK_SUBDOMAIN) and credentials"
            )
        return self.redactor.redact_ticket(await self.tickets.get_ticket(ticket_id))

    def _plan(self, intake: Intake, playbook: Playbook) -> tuple[list[ResearchTask], list[Evidence]]:
        tasks: list[ResearchTask] = []
        failures: list[Evidence] = []
        seen: set[str] = set()
        for source in self.sources:
            try:
                planned = source.plan(intake, playbook)
            except Exception as exc:
                failures.append(
                    Evidence(
                        source=source.name,
                        tool="plan",
                        status=EvidenceStatus.error,
                        title=f"{source.name}: planning failed",
                        summary=f"{type(exc).__name__}: {str(exc)[:200]}",
                    )
                )
                continue
            for task in planned:
                key = task.key
                n = 2
                while key in seen:
                    key = f"{task.key}#{n}"
                    n += 1
                seen.add(key)
                tasks.append(task if key == task.key else task.model_copy(update={"key": key}))
        return tasks, failures

    async def triage(
        self, ticket: Ticket, *, run_id: str = "", progress: ProgressCallback | None = None
    ) -> TriageReport:
        run_id = run_id or uuid.uuid4().hex
        with run_context(run_id, "triage", ticket_id=ticket.id):
            report = await self._triage(ticket, run_id, progress)
        if self.observer is not None:
            try:
                await self.observer(report)
            except Exception:
                log.warning("run observer failed for run %s", run_id)
        return report

    async def _triage(self, ticket: Ticket, run_id: str, progress: ProgressCallback | None) -> TriageReport:
        t_total = time.perf_counter()
        await self.start()
        model = await self._active_model()

        # intake layer 1: only the redacted ticket (a no-op when `fetch` already redacted it); identifiers
        # come from it, and the only email research may look up is the requester's token (triage.redaction)
        t0 = time.perf_counter()
        await emit(progress, ProgressEvent(kind="phase", phase="intake"))
        clean = self.redactor.redact_ticket(ticket)
        base = rule_intake(clean, self.playbooks, self.sdk_catalogue, vocabulary=self.vocabulary)
        base.identifiers.emails = self.redactor.lookup_emails(clean, base.identifiers.emails)
        # the requester's email as the token, never the raw address
        base = base.model_copy(update=requester_scope(clean, clean, base.identifiers))
        refining = asyncio.create_task(refine_intake(model, clean, base, self.playbooks))

        # research wave 1: everything the rules plan, at once, while the intake model runs
        t_research = time.perf_counter()
        wave1, plan_failures = self._plan(base, self._playbook_of(base))
        await emit(progress, ProgressEvent(kind="phase", phase="research", total=len(wave1)))
        with lookup_scope(clean.requester_lookup):  # a task copies the context when it is created
            running = asyncio.create_task(
                run_research(
                    wave1,
                    self.sources_by_name,
                    deadline_s=self.config.research_deadline_s,
                    task_timeout_s=self.config.task_timeout_s,
                    progress=progress,
                )
            )
        try:
            intake, intake_usage = await refining
        except BaseException:
            running.cancel()
            raise
        intake = intake.model_copy(update=requester_scope(clean, clean, intake.identifiers))
        playbook = self._playbook_of(intake)
        annotate(
            area=intake.product_area, playbook=playbook.id, mode="llm" if self.model else "evidence_only"
        )
        intake_ms = _ms(t0)

        # wave 2: what the model's answer adds (its English search queries, a corrected area's checks)
        wave2: list[ResearchTask] = []
        if intake.refined_by_model:
            planned, failures = self._plan(intake, playbook)
            wave2 = new_tasks(wave1, planned)
            failed = {e.source for e in plan_failures}
            plan_failures += [e for e in failures if e.source not in failed]
        second: list[Evidence] = []
        if wave2:
            remaining = self.config.research_deadline_s - (time.perf_counter() - t_research)
            with lookup_scope(clean.requester_lookup):
                second = await run_research(
                    wave2,
                    self.sources_by_name,
                    deadline_s=max(0.5, remaining),
                    task_timeout_s=self.config.task_timeout_s,
                    progress=progress,
                )
        evidence = [*await running, *second, *plan_failures]
        # what a source returned (person properties, error messages …) passes the same redaction
        evidence = [
            self.redactor.redact_evidence(e).model_copy(update={"id": f"E{i}"})
            for i, e in enumerate(evidence, start=1)
        ]
        sources = summarize_sources([*wave1, *wave2], evidence, also=[f.source for f in plan_failures])
        research_ms = _ms(t_research)

        # synthesis + grading (evidence-only without a model)
        t0 = time.perf_counter()
        await emit(progress, ProgressEvent(kind="phase", phase="synthesis"))
        report = await build_report(
            ticket=clean,
            intake=intake,
            playbook=playbook,
            evidence=evidence,
            sources=sources,
            model=model,
            run_id=run_id,
            links=self.links,
        )
        synthesis_ms = _ms(t0)

        timings = report.timings.model_copy(
            update={
                "intake_ms": intake_ms,
                "research_ms": research_ms,
                "synthesis_ms": synthesis_ms,
                "total_ms": _ms(t_total),
            }
        )
        report = report.model_copy(
            update={"run_id": run_id, "timings": timings, "usage": intake_usage.add(report.usage)}
        )
        report = self.redactor.redact_report(report)  # model-written text too, before Slack or the store
        await self._audit(run_id, evidence, report)
        await emit(progress, ProgressEvent(kind="done", phase="done", elapsed_ms=timings.total_ms))
        return report

    async def run(self, ticket_id: int, *, progress: ProgressCallback | None = None) -> TriageReport:
        t0 = time.perf_counter()
        await emit(progress, ProgressEvent(kind="phase", phase="fetch"))
        ticket = await self.fetch(ticket_id)
        fetch_ms = _ms(t0)
        report = await self.triage(ticket, progress=progress)
        timings = report.timings.model_copy(
            update={"fetch_ms": fetch_ms, "total_ms": report.timings.total_ms + fetch_ms}
        )
        return report.model_copy(update={"timings": timings})

    async def _audit(self, run_id: str, evidence: list[Evidence], report: TriageReport) -> None:
        if self.audit is None:
            return
        entries = [
            AuditEntry(
                run_id=run_id, source=e.source, tool=e.tool, status=e.status.value, latency_ms=e.latency_ms
            )
            for e in evidence
        ]
        if report.usage.calls:
            entries.append(
                AuditEntry(
                    run_id=run_id,
                    source="anthropic",
                    tool=f"messages x{report.usage.calls}",
                    status="ok" if report.mode.value == "llm" else "error",
                    latency_ms=report.timings.synthesis_ms,
                )
            )
        try:
            await self.audit(entries)
        except Exception:
            log.warning("audit write failed for run %s", run_id)

    # ------------------------------------------------------------ drafts and follow-ups

    async def escalation_packet(self, report: TriageReport, ticket: Ticket | None = None) -> EscalationPacket:
        clean = self.redactor.redact_ticket(ticket) if ticket else None
        with run_context(report.run_id, "packet", **_report_props(report)):
            return await drafts.escalation_packet(report, clean, await self._active_model(), links=self.links)

    async def kb_article(self, report: TriageReport) -> KbArticle:
        with run_context(report.run_id, "kb", **_report_props(report)):
            return await drafts.kb_article(report, await self._active_model(), links=self.links)

    async def reply_draft(self, report: TriageReport) -> ReplyDraft:
        with run_context(report.run_id, "reply", **_report_props(report)):
            return await drafts.reply_draft(report, await self._active_model(), links=self.links)

    async def follow_up(
        self, report: TriageReport, question: str, history: Sequence[tuple[str, str]] = ()
    ) -> FollowUpAnswer:
        question = self.redactor.redact(question)
        extra: list[Evidence] = []
        if followup.wants_more_research(question):
            extra = await self._extra_research(report)
        with run_context(report.run_id, "followup", **_report_props(report)):
            return await followup.answer_follow_up(
                report,
                question,
                model=await self._active_model(),
                history=list(history),
                extra_evidence=extra,
                links=self.links,
            )

    def _playbook_of(self, intake: Intake) -> Playbook:
        return self.playbooks.get(intake.playbook_id) or playbook_for_area(
            self.playbooks, intake.product_area
        )

    async def _extra_research(self, report: TriageReport) -> list[Evidence]:
        """A few fresh read-only calls from the same plan (first-party data first) for a follow-up."""
        playbook = self._playbook_of(report.intake)
        tasks, _ = self._plan(report.intake, playbook)
        tasks.sort(key=lambda t: not t.first_party)
        chosen = tasks[:MAX_FOLLOWUP_TASKS]
        rows = await run_research(
            chosen,
            self.sources_by_name,
            deadline_s=min(self.config.research_deadline_s, 20.0),
            task_timeout_s=self.config.task_timeout_s,
        )
        offset = len(report.evidence)
        return [r.model_copy(update={"id": f"E{offset + i}"}) for i, r in enumerate(rows, start=1)]
