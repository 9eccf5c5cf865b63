"""What the model costs, and the daily budget.

- `MeteredModel` wraps any `LanguageModel` and records every successful call (run, purpose, model,
  tokens, cache hits, cost) through a sink — the store's `model_calls` table in production — so
  triages, drafts and follow-ups are all counted, whichever code path made the call.
- `run_context(run_id, kind)` names the run and the kind of work (triage, packet, kb, reply, followup)
  the calls inside it belong to (a context variable, so concurrent runs never mix).
- `DailyBudget`: once the day's (UTC) model spend reaches `TRIAGE_DAILY_BUDGET_USD`, `paused()` returns a
  one-line note and the engine swaps the model for a `PausedModel`, whose every call fails with that
  note: new triages become evidence-only with the note as their visible reason, drafts and follow-ups
  fall back to their evidence-only versions. The next UTC day the spend starts at 0 again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel

from triage.models import Usage
from triage.protocols import LanguageModel, LanguageModelError, ModelResult

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class CallContext:
    run_id: str = ""
    kind: str = ""  # triage | packet | kb | reply | followup | eval
    # ids and enums only (ticket id, area, playbook, mode): analytics attaches them to each model call
    properties: dict[str, object] = field(default_factory=dict)


_context: ContextVar[CallContext | None] = ContextVar("triage_model_call_context", default=None)


@contextlib.contextmanager
def run_context(run_id: str, kind: str, **properties: object) -> Iterator[CallContext]:
    """Model calls made inside belong to `run_id` / `kind` (with `properties` for analytics)."""
    ctx = CallContext(run_id=run_id, kind=kind, properties=dict(properties))
    token = _context.set(ctx)
    try:
        yield ctx
    finally:
        _context.reset(token)


def annotate(**properties: object) -> None:
    """Add properties to the current run context (e.g. the product area once intake has chosen it)."""
    ctx = current_context()
    _context.set(CallContext(ctx.run_id, ctx.kind, {**ctx.properties, **properties}))


def current_context() -> CallContext:
    return _context.get() or CallContext()


@dataclass(frozen=True)
class ModelCall:
    run_id: str
    kind: str
    purpose: str
    model: str
    usage: Usage
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


CallSink = Callable[[ModelCall], Awaitable[None]]


class MeteredModel:
    """A `LanguageModel` that records each call's usage and cost; everything else is the inner model's."""

    def __init__(self, inner: LanguageModel, sink: CallSink) -> None:
        self.inner = inner
        self.sink = sink

    def __getattr__(self, name: str) -> object:  # check(), aclose(), model_for() … of the inner model
        return getattr(self.inner, name)

    async def complete(
        self, *, purpose: str, system: list[str], prompt: str, output_type: type[T], max_tokens: int = 4096
    ) -> ModelResult[T]:
        result = await self.inner.complete(
            purpose=purpose, system=system, prompt=prompt, output_type=output_type, max_tokens=max_tokens
        )
        ctx = current_context()
        try:
            await self.sink(ModelCall(ctx.run_id, ctx.kind, purpose, result.model, result.usage))
        except Exception:
            log.warning("could not record model usage for run %s", ctx.run_id or "-")
        return result


class PausedModel:
    """Stands in for the model while it is paused: every call fails with the reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def complete(
        self, *, purpose: str, system: list[str], prompt: str, output_type: type[T], max_tokens: int = 4096
    ) -> ModelResult[T]:
        raise LanguageModelError(self.reason)


def utc_day_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class DailyBudget:
    """`limit_usd` per UTC day; `spent_since(start)` sums the recorded model cost since `start`."""

    limit_usd: float
    spent_since: Callable[[datetime], Awaitable[float]]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def paused(self) -> str:
        """'' while under budget, else the one-line note shown wherever the model would have been used."""
        if self.limit_usd <= 0:
            return ""
        now = self.clock()
        start = utc_day_start(now)
        try:
            spent = await self.spent_since(start)
        except Exception:
            log.warning("could not read today's model spend; not enforcing the budget for this call")
            return ""
        if spent < self.limit_usd:
            return ""
        resumes = start + timedelta(days=1)
        return (
            f"daily budget reached (${spent:.2f} of ${self.limit_usd:.2f} spent today); "
            f"the model resumes at {resumes:%Y-%m-%d %H:%M} UTC"
        )
