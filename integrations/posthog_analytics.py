"""Self-monitoring with PostHog LLM analytics (optional; off unless `POSTHOG_ANALYTICS_API_KEY` is set).

What goes out, all tied to one trace whose id is the triage run id:
- `$ai_generation` for every model call, from `posthog.ai.anthropic`'s wrapped clients
  (`integrations.llm_providers.build_client`), with `posthog_trace_id` = run id and
  `posthog_properties` = the run's kind, ticket id, product area, playbook and mode;
- `$ai_span` per research task (source, tool, status, latency) and one `$ai_trace` for the run (grade,
  mode, escalation, evidence counts, cost);
- `$ai_metric` (`thumbs` = up/down) and `$ai_feedback` (the "what was wrong?" text, secrets redacted) for 👍/👎;
- `triage_draft_outcome` for reply copied / posted as a note, packet / KB opened.

Privacy mode is on by default (`POSTHOG_ANALYTICS_PRIVACY_MODE`): the SDK then drops prompts and
responses (`$ai_input`, `$ai_output_choices`) and summarises errors. Nothing here ever sends ticket text:
properties are ids, enums, counts and latencies. Events are batched by the SDK's consumer thread and
flushed on shutdown (`aclose`).

Event names and properties follow the posthog-python SDK (`posthog/ai/utils.py`,
`posthog/ai/openai_agents/processor.py`: `$ai_trace_id`, `$ai_span_id`, `$ai_parent_id`, `$ai_span_name`,
`$ai_latency` in seconds, `$ai_is_error`) and posthog-js `captureTraceFeedback` / `captureTraceMetric`
(`$ai_feedback_text`, `$ai_metric_name`, `$ai_metric_value`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from posthog import Client

from triage.metering import current_context
from triage.models import TriageReport
from triage.redaction import Redactor

log = logging.getLogger(__name__)

DISTINCT_ID = "triagebot"  # events describe the bot's work, not a person
FEEDBACK_CHARS = 500


class PostHogAnalytics:
    def __init__(
        self, api_key: str, host: str, *, privacy_mode: bool = True, client: Client | None = None
    ) -> None:
        self.privacy_mode = privacy_mode
        self.client = client or Client(
            project_api_key=api_key,
            host=host,
            privacy_mode=privacy_mode,
            disable_geoip=True,
            enable_exception_autocapture=False,
        )
        self._redactor = Redactor()

    # ------------------------------------------------------------ model calls (through the wrapped client)

    def call_kwargs(self) -> dict[str, Any]:
        """The `posthog_*` arguments for one `messages.create`, from the current run context."""
        ctx = current_context()
        props: dict[str, Any] = {"triage_kind": ctx.kind or "other", **ctx.properties}
        kwargs: dict[str, Any] = {
            "posthog_distinct_id": DISTINCT_ID,
            "posthog_properties": props,
            "posthog_privacy_mode": self.privacy_mode,
        }
        if ctx.run_id:
            kwargs["posthog_trace_id"] = ctx.run_id
        return kwargs

    # ------------------------------------------------------------ the run: spans and the trace

    def _capture(self, event: str, properties: dict[str, Any]) -> None:
        try:
            self.client.capture(event, distinct_id=DISTINCT_ID, properties=properties)
        except Exception:
            log.warning("analytics: could not queue %s", event)

    async def triage_finished(self, report: TriageReport) -> None:
        """One `$ai_span` per research task and the run's `$ai_trace`."""
        trace = report.run_id
        base = {
            "$ai_trace_id": trace,
            "ticket_id": report.ticket.id,
            "area": str(report.product_area),
            "playbook": report.intake.playbook_id,
            "mode": report.mode.value,
            "$process_person_profile": False,
        }
        for row in report.evidence:
            self._capture(
                "$ai_span",
                {
                    **base,
                    "$ai_span_id": str(uuid.uuid4()),
                    "$ai_parent_id": trace,
                    "$ai_span_name": f"{row.source}:{row.tool}",
                    "$ai_latency": row.latency_ms / 1000,
                    "$ai_is_error": row.status.failed,
                    "source": row.source,
                    "tool": row.tool,
                    "status": row.status.value,
                    "evidence_id": row.id,
                },
            )
        self._capture(
            "$ai_trace",
            {
                **base,
                "$ai_span_name": "triage",
                "$ai_trace_name": "triage",
                "$ai_latency": report.timings.total_ms / 1000,
                "$ai_is_error": report.mode.value != "llm",
                "grade": report.confidence.value if report.confidence else "none",
                "known_bug": report.known_bug is not None,
                "escalation_needed": report.escalation.needed,
                "evidence_rows": len(report.evidence),
                "evidence_failed": sum(1 for e in report.evidence if e.status.failed),
                "cost_usd": report.usage.cost_usd,
                "llm_calls": report.usage.calls,
            },
        )

    # ------------------------------------------------------------ what people did with it

    def feedback(self, run_id: str, vote: str, comment: str = "") -> None:
        """👍/👎 as `$ai_metric`; the "what was wrong?" text as `$ai_feedback` (secrets redacted, clipped)."""
        if vote:
            self._capture(
                "$ai_metric",
                {"$ai_trace_id": run_id, "$ai_metric_name": "thumbs", "$ai_metric_value": vote},
            )
        text = self._redactor.redact(comment).strip()[:FEEDBACK_CHARS]
        if text:
            self._capture("$ai_feedback", {"$ai_trace_id": run_id, "$ai_feedback_text": text})

    def outcome(self, run_id: str, outcome: str) -> None:
        self._capture("triage_draft_outcome", {"$ai_trace_id": run_id, "outcome": outcome})

    # ------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Flush what is queued and stop the consumer thread (blocking, so in a worker thread)."""
        try:
            await asyncio.to_thread(self.client.shutdown)
        except Exception:
            log.warning("analytics: flush on shutdown failed")
