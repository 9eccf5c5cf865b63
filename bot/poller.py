"""`ZendeskPoller`: scheduled polling of Zendesk's cursor-based incremental ticket export.

One poll:
    cursor = store.get_cursor(name)             (None on the very first start)
    page   = first start ? export(start_time = now − look-back) : export(cursor)
    loop:  for every ticket on the page that passes the intake filters → dispatch(id, version, "poll")
           store.set_cursor(name, page.after_cursor)        ← after EACH page, after its dispatches
           stop at end_of_stream (caught up) or after `max_pages_per_poll` pages

Poison-proof: a record the adapter could not parse (an invalid `updated_at`, a missing id) and a
*deleted* ticket (the export includes them, `status: "deleted"`) are skipped with one log line and a
stored skip record (`<cursor name>:skipped:<id>:<generated_timestamp>` in the store's cursors, value =
the reason and the time), and the cursor moves on: one bad record never stalls polling.

Exactly once: a crash between dispatching a page and persisting its cursor re-reads at most that
page; the re-dispatched tickets hit their existing claims on (ticket_id, version) downstream
(`TriageQueue.submit` → `store.claim_run`) and nothing runs twice. Tickets changed while the bot was
down are caught up from the stored cursor — no gap. Before the export returned its first cursor the
start time is persisted too (`<name>:start_time`), so even an empty first poll never moves the start.

Dispatch contract: `dispatch(ticket_id, version, trigger)` only enqueues (claims + schedules) and
returns quickly. If it raises (the store is down), the poll stops WITHOUT persisting that page's
cursor: the next poll re-reads the page and the claims de-duplicate what was already dispatched.

Replicas: with a `gate` (the `bot.poll_lease.PollLease`), a poll runs only while the gate says this
replica holds the poll lease, and the gate is asked again before each page's cursor is stored: one
replica polls at a time.

Zendesk limits: the incremental export needs an ADMIN's credentials (403 otherwise; logged with a
clear message) and allows 10 requests/minute per account (30 with the High Volume add-on). Each page
is one request of up to 1000 tickets; pages are spaced `page_interval_s` apart (default 6 s = 10/min)
and one poll reads at most `max_pages_per_poll` pages — the rest is read by the next poll. A 429 is
waited out per Retry-After by the Zendesk adapter; 5xx/network errors end the poll (cursor kept at the
last finished page) and the next interval retries. Errors never stop the scheduler.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from bot.intake_filters import TicketFilter
from integrations.zendesk import IncrementalPage, SkippedRecord
from triage.protocols import ConfigError, SourceUnavailable
from triage.store import Store

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)

TRIGGER = "poll"
DELETED = "deleted in Zendesk"
JOB_ID = "zendesk-poll"

PollDispatch = Callable[[int, str, str], Awaitable[object]]
PollGate = Callable[[], Awaitable[bool]]


def version_of(updated_at: datetime | None) -> str:
    """The claim key of a ticket state: identical to `triage.models.Ticket.version_key`.

    Both the export row and the fetched ticket parse Zendesk's `updated_at` string with pydantic,
    so the same state yields the same datetime and the same isoformat.
    """
    return updated_at.isoformat() if updated_at else "v0"


class IncrementalSource(Protocol):
    async def incremental_page(
        self, *, cursor: str | None = None, start_time: int | None = None, per_page: int | None = None
    ) -> IncrementalPage: ...


class PollStats(BaseModel):
    pages: int = 0
    seen: int = 0  # tickets on the pages read
    matched: int = 0  # passed the filters
    dispatched: int = 0  # handed to dispatch() successfully
    skipped: int = 0  # rejected by the filters (status, tags …)
    poisoned: int = 0  # records that failed to parse, and deleted tickets: skipped with a stored record
    cursor: str | None = None  # the cursor persisted last
    caught_up: bool = False  # reached end_of_stream
    first_start: bool = False  # started from start_time (no stored cursor)
    duration_s: float = 0.0


class ZendeskPoller:
    def __init__(
        self,
        zendesk: IncrementalSource,
        store: Store,
        ticket_filter: TicketFilter,
        dispatch: PollDispatch,
        *,
        lookback_minutes: int = 0,
        cursor_name: str = "zendesk:incremental",
        max_pages_per_poll: int = 50,
        page_interval_s: float = 6.0,
        per_page: int | None = None,
        clock: Callable[[], float] = time.time,
        gate: PollGate | None = None,
    ) -> None:
        self.zendesk = zendesk
        self.store = store
        self.filter = ticket_filter
        self.dispatch = dispatch
        self.lookback_minutes = max(0, lookback_minutes)
        self.cursor_name = cursor_name
        self.start_name = f"{cursor_name}:start_time"
        self.max_pages_per_poll = max(1, max_pages_per_poll)
        self.page_interval_s = max(0.0, page_interval_s)
        self.per_page = per_page
        self.clock = clock
        self.gate = gate
        self.last_stats: PollStats | None = None
        self.last_error: str = ""
        self._lock = asyncio.Lock()  # never two polls at once in this process

    async def _first_page(self, stats: PollStats) -> IncrementalPage:
        cursor = await self.store.get_cursor(self.cursor_name)
        if cursor:
            return await self.zendesk.incremental_page(cursor=cursor)
        stats.first_start = True
        stored = await self.store.get_cursor(self.start_name)
        if stored and stored.isdigit():
            start_time = int(stored)
        else:
            start_time = int(self.clock() - self.lookback_minutes * 60)
            await self.store.set_cursor(self.start_name, str(start_time))
            log.info(
                "Zendesk polling: first start, reading tickets changed since %s (look-back %d min)",
                datetime.fromtimestamp(start_time, UTC).isoformat(timespec="seconds"),
                self.lookback_minutes,
            )
        return await self.zendesk.incremental_page(start_time=start_time, per_page=self.per_page)

    async def _skip(self, record: SkippedRecord, stats: PollStats) -> None:
        stats.poisoned += 1
        level = logging.INFO if record.reason == DELETED else logging.WARNING
        log.log(level, "poll: export record #%s skipped: %s", record.ticket_id or "?", record.reason)
        key = f"{self.cursor_name}:skipped:{record.ticket_id or '?'}:{record.generated_timestamp or '?'}"
        value = {"reason": record.reason, "at": datetime.now(UTC).isoformat(timespec="seconds")}
        await self.store.set_cursor(key, json.dumps(value))

    async def poll_once(self) -> PollStats:
        """Read the export until caught up (or the page cap); raises on Zendesk/store errors."""
        async with self._lock:
            stats = PollStats()
            started = time.monotonic()
            try:
                page = await self._first_page(stats)
                while True:
                    stats.pages += 1
                    for record in page.skipped:
                        stats.seen += 1
                        await self._skip(record, stats)
                    for ticket in page.tickets:
                        stats.seen += 1
                        if ticket.status == "deleted":
                            deleted = SkippedRecord(
                                ticket_id=ticket.id,
                                generated_timestamp=ticket.generated_timestamp,
                                reason=DELETED,
                            )
                            await self._skip(deleted, stats)
                            continue
                        ok, why = self.filter.matches(ticket)
                        if not ok:
                            stats.skipped += 1
                            log.debug("poll: #%s skipped: %s", ticket.id, why)
                            continue
                        stats.matched += 1
                        # raises → the poll stops here and this page's cursor is NOT persisted
                        await self.dispatch(ticket.id, version_of(ticket.updated_at), TRIGGER)
                        stats.dispatched += 1
                    if self.gate is not None and not await self.gate():
                        log.info("Zendesk polling: the poll lease moved to another replica; stopping here")
                        break  # this page's cursor is not stored: the new holder re-reads it (claims de-dup)
                    if page.after_cursor:
                        await self.store.set_cursor(self.cursor_name, page.after_cursor)
                        stats.cursor = page.after_cursor
                    if page.end_of_stream:
                        stats.caught_up = True
                        break
                    if not page.after_cursor:
                        log.warning("Zendesk export page without after_cursor: stopping this poll")
                        break
                    if stats.pages >= self.max_pages_per_poll:
                        log.info(
                            "Zendesk polling: %d pages read, the rest follows next poll (10 requests/min)",
                            stats.pages,
                        )
                        break
                    if self.page_interval_s:
                        await asyncio.sleep(self.page_interval_s)
                    page = await self.zendesk.incremental_page(cursor=page.after_cursor)
            finally:
                stats.duration_s = round(time.monotonic() - started, 3)
                self.last_stats = stats
            return stats

    async def run_job(self) -> PollStats | None:
        """The scheduled job: one poll, every error logged (never raised) and retried next interval."""
        if self.gate is not None and not await self.gate():
            return None  # another replica holds the poll lease
        try:
            stats = await self.poll_once()
        except asyncio.CancelledError:
            # shutdown cancels a poll in flight: the cursor saved after the last whole page is where the
            # next poll (on any replica) resumes, and claims make a repeated page harmless
            log.info("Zendesk poll stopped by shutdown; the next poll resumes from the saved cursor")
            return None
        except ConfigError as exc:
            self.last_error = str(exc)
            if "403" in str(exc):
                log.error(
                    "Zendesk polling: access denied (HTTP 403). The incremental export is for admins only: "
                    "use an admin's ZENDESK_EMAIL/ZENDESK_API_TOKEN (or an OAuth token of an admin). %s",
                    exc,
                )
            else:
                log.error("Zendesk polling: configuration problem: %s", exc)
            return None
        except SourceUnavailable as exc:
            self.last_error = str(exc)
            log.warning("Zendesk polling failed (%s); retrying at the next interval", exc)
            return None
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("Zendesk polling failed; retrying at the next interval")
            return None
        self.last_error = ""
        level = logging.INFO if stats.dispatched or stats.first_start else logging.DEBUG
        log.log(
            level,
            "Zendesk poll: %d page(s), %d ticket(s) seen, %d matched, %d dispatched, %d skipped, "
            "%d unreadable or deleted%s (%.1fs)",
            stats.pages,
            stats.seen,
            stats.matched,
            stats.dispatched,
            stats.skipped,
            stats.poisoned,
            "" if stats.caught_up else ", more pending",
            stats.duration_s,
        )
        return stats

    def schedule(self, scheduler: AsyncIOScheduler, seconds: int, *, run_now: bool = True) -> None:
        """Add the interval job (APScheduler 3.x): one instance at a time, missed runs coalesced."""
        if seconds <= 0:
            raise ValueError("ZENDESK_POLL_SECONDS must be positive to schedule polling")
        extra: dict[str, Any] = {"next_run_time": datetime.now(UTC)} if run_now else {}
        scheduler.add_job(
            self.run_job,
            "interval",
            seconds=seconds,
            id=JOB_ID,
            name="Zendesk incremental export poll",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, seconds),
            **extra,
        )
        log.info("Zendesk polling every %ds; filters: %s", seconds, self.filter.describe())
