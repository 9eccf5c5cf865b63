"""`TriageQueue`: the bounded, durable dispatcher behind polling, the webhook and `/triage`.

    submit(ticket_id, version, trigger)
        → store.claim_run(ticket_id, version)   the exactly-once point: a unique key on (ticket, version)
        → not owned: None (done, or running here or on another replica) — nothing happens
        → owned: run(claim, trigger) is scheduled under a Semaphore(concurrency)

A burst of hundreds of tickets therefore becomes hundreds of claimed rows and at most `concurrency`
triages at a time; Slack, Zendesk and the model never see a stampede. `submit` returns as soon as
the claim is written (one store write), so callers (the poller, the webhook) stay fast.

Crash safety: every run this process owns — waiting for a slot or running — is heartbeated every
`heartbeat_s` (one `store.heartbeat` per run), so no other replica takes it over. If the process
dies, the heartbeats stop; after `stale_after_s` the run is "stale" and `recover()` (at start-up and
every `recover_every_s`, on any replica) re-claims it with the same key — the store's compare-and-
swap makes exactly one claimer win — and runs it again with `claim.resumed=True`.

Fencing: a run's claim carries its token (the attempt number). A heartbeat the store refuses means
another replica took the run over (this process stalled past `stale_after_s`): the task is cancelled
and forgotten quietly — the new owner delivers it.

Failures: if `run` raises, the run is left to be retried through recovery (after `stale_after_s`)
until it has been attempted `max_attempts` times, then marked failed (`store.fail_run`). If `run`
returns but left the run "running" (it should call finish_run/fail_run itself), it is marked failed.
A failed run is taken over by the next claim of the same key (a re-read poll page, `/triage`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from pydantic import BaseModel

from bot.intake_filters import TicketFilter
from triage.models import Ticket
from triage.protocols import TicketNotFound
from triage.store import Claim, Store

log = logging.getLogger(__name__)

RunFn = Callable[[Claim, str], Awaitable[object]]
FetchVersion = Callable[[int], Awaitable[str]]


class QueueStats(BaseModel):
    submitted: int = 0  # submit() calls
    claimed: int = 0  # owned claims scheduled (including recovered ones)
    duplicates: int = 0  # submit() that found the (ticket, version) already claimed
    recovered: int = 0  # stale runs taken over by recover()
    superseded: int = 0  # runs another replica took over from us (heartbeat refused)
    completed: int = 0  # run() returned
    errors: int = 0  # run() raised
    waiting: int = 0  # scheduled, waiting for a slot
    running: int = 0  # inside run() now
    peak_running: int = 0


class TriageQueue:
    def __init__(
        self,
        store: Store,
        run: RunFn,
        *,
        concurrency: int,
        stale_after_s: float = 180,
        heartbeat_s: float = 30,
        max_attempts: int = 3,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if heartbeat_s <= 0 or heartbeat_s * 2 > stale_after_s:
            raise ValueError("heartbeat_s must be positive and at most half of stale_after_s")
        self.store = store
        self.concurrency = concurrency
        self.stale_after_s = stale_after_s
        self.heartbeat_s = heartbeat_s
        self.max_attempts = max(1, max_attempts)
        self.stats = QueueStats()
        self._run = run
        self._slots = asyncio.Semaphore(concurrency)
        self.fetch_slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}  # run_id → task, for runs this process owns
        self._tokens: dict[str, int] = {}  # run_id → fencing token of our claim
        self._superseded: set[str] = set()  # runs another replica took over (cancelled quietly)
        self._beat: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------ intake

    async def submit(self, ticket_id: int, version: str, trigger: str) -> Claim | None:
        """Claim (ticket_id, version) and schedule the run; None when somebody already has it."""
        if self._closed:
            raise RuntimeError("the triage queue is closed")
        self.stats.submitted += 1
        claim = await self.store.claim_run(ticket_id, version, trigger, stale_after_s=self.stale_after_s)
        if not claim.owned or claim.run.run_id in self._tasks:
            self.stats.duplicates += 1
            log.debug("ticket #%s %s already claimed (run %s)", ticket_id, version, claim.run.run_id)
            return None
        self._schedule(claim, trigger)
        return claim

    async def submit_unversioned(self, ticket_id: int, trigger: str, fetch: FetchVersion) -> Claim | None:
        """For triggers that only know the id (webhook, `/triage`): fetch the version, then submit.

        Fetches are bounded by the same concurrency as runs.
        """
        async with self.fetch_slots:
            version = await fetch(ticket_id)
        return await self.submit(ticket_id, version, trigger)

    # ------------------------------------------------------------ running

    def _schedule(self, claim: Claim, trigger: str) -> None:
        run_id = claim.run.run_id
        self.stats.claimed += 1
        self.stats.waiting += 1
        task = asyncio.get_running_loop().create_task(self._execute(claim, trigger), name=f"triage-{run_id}")
        self._tasks[run_id] = task
        self._tokens[run_id] = claim.token
        task.add_done_callback(self._forget)
        self._ensure_heartbeat()

    def _forget(self, task: asyncio.Task[None]) -> None:
        for run_id, known in list(self._tasks.items()):
            if known is task:
                del self._tasks[run_id]
                self._tokens.pop(run_id, None)
                self._superseded.discard(run_id)

    async def _execute(self, claim: Claim, trigger: str) -> None:
        run = claim.run
        started = False
        try:
            async with self._slots:
                started = True
                self.stats.waiting -= 1
                self.stats.running += 1
                self.stats.peak_running = max(self.stats.peak_running, self.stats.running)
                try:
                    await self._run(claim, trigger)
                finally:
                    self.stats.running -= 1
        except asyncio.CancelledError:
            if run.run_id in self._superseded:
                return  # taken over by another replica: it delivers the run, we say nothing
            # shutting down: the run stays "running" without heartbeats → recovered after a restart
            raise
        except Exception as exc:
            self.stats.errors += 1
            error = f"{type(exc).__name__}: {str(exc)[:500]}"
            if run.attempts < self.max_attempts:
                log.warning(
                    "triage of #%s (run %s, attempt %d/%d) failed: %s — retried after %.0fs",
                    run.ticket_id,
                    run.run_id,
                    run.attempts,
                    self.max_attempts,
                    error,
                    self.stale_after_s,
                )
                return  # no more heartbeats: recover() takes it over once it is stale
            log.error("triage of #%s (run %s) failed for good: %s", run.ticket_id, run.run_id, error)
            await self._fail_if_running(claim, error)
        else:
            self.stats.completed += 1
            await self._fail_if_running(claim, "the run ended without a result", unexpected=True)
        finally:
            if not started:
                self.stats.waiting -= 1

    async def _fail_if_running(self, claim: Claim, error: str, *, unexpected: bool = False) -> None:
        """Mark our run failed if it is still running under our token (a no-op once it was taken over)."""
        run_id = claim.run.run_id
        try:
            if await self.store.fail_run(run_id, error, token=claim.token) and unexpected:
                log.warning("run %s returned without finish_run/fail_run: marked it failed", run_id)
        except Exception:
            log.exception("could not record the failure of run %s", run_id)

    # ------------------------------------------------------------ heartbeats and recovery

    def _ensure_heartbeat(self) -> None:
        if self._beat is None or self._beat.done():
            self._beat = asyncio.get_running_loop().create_task(
                self._heartbeat_loop(), name="triage-heartbeat"
            )

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            await self.heartbeat_now()

    async def heartbeat_now(self) -> int:
        """Refresh every run this process owns (waiting or running); returns how many.

        A refused heartbeat (the token moved on: another replica took the run over) cancels the run.
        """
        beaten = 0
        for run_id, task in list(self._tasks.items()):
            token = self._tokens.get(run_id)
            if task.done() or token is None:
                continue
            try:
                held = await self.store.heartbeat(run_id, token)
            except Exception as exc:
                log.warning("heartbeat of run %s failed: %s", run_id, exc)
                continue
            if held:
                beaten += 1
            elif not task.done() and await self._taken_over(run_id, token):
                log.info("run %s was taken over by another replica; stopping it here", run_id)
                self.stats.superseded += 1
                self._superseded.add(run_id)
                task.cancel()
        return beaten

    async def _taken_over(self, run_id: str, token: int) -> bool:
        """A refused heartbeat means a takeover only if the token moved on (not: we finished the run)."""
        try:
            record = await self.store.get_run(run_id)
        except Exception as exc:
            log.warning("could not read run %s: %s", run_id, exc)
            return False
        return record is None or record.attempts != token

    async def recover(self) -> int:
        """Take over runs whose owner stopped heartbeating (crashed); returns how many were scheduled."""
        if self._closed:
            return 0
        recovered = 0
        for stale in await self.store.stale_runs(self.stale_after_s):
            if stale.run_id in self._tasks:
                continue
            claim = await self.store.claim_run(
                stale.ticket_id, stale.ticket_version, stale.trigger, stale_after_s=self.stale_after_s
            )
            if not claim.owned or claim.run.run_id in self._tasks:
                continue  # another replica was faster
            log.info(
                "recovering run %s of #%s (%s, attempt %d)",
                claim.run.run_id,
                claim.run.ticket_id,
                claim.run.trigger,
                claim.run.attempts,
            )
            self.stats.recovered += 1
            recovered += 1
            self._schedule(claim, stale.trigger)
        return recovered

    async def start(self, *, recover_every_s: float | None = 60.0) -> int:
        """Recover crashed runs now, then every `recover_every_s` (None = only now). Returns the count."""
        found = await self.recover()
        if recover_every_s and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.get_running_loop().create_task(
                self._recovery_loop(recover_every_s), name="triage-recovery"
            )
        return found

    async def _recovery_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.recover()
            except Exception as exc:  # a store hiccup must not end recovery for good
                log.warning("run recovery failed: %s", exc)

    # ------------------------------------------------------------ shutdown

    @property
    def in_flight(self) -> int:
        return sum(1 for t in self._tasks.values() if not t.done())

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 - the shutdown API takes a bound
        """Wait (bounded) until every scheduled run finished; True if none is left."""
        deadline = time.monotonic() + timeout
        while True:
            pending = [t for t in self._tasks.values() if not t.done()]
            if not pending:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.wait(pending, timeout=remaining)

    async def aclose(self, drain_timeout: float = 0.0) -> None:
        """Stop taking work; optionally drain; cancel what is left (it is recovered after a restart)."""
        if drain_timeout > 0:
            await self.drain(drain_timeout)
        self._closed = True
        runs = [t for t in self._tasks.values() if not t.done()]
        tasks = [t for t in (self._recovery, *runs) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._beat
        if runs:
            log.info("triage queue closed with %d run(s) unfinished; they resume after a restart", len(runs))


def ticket_dispatcher(
    queue: TriageQueue,
    get_ticket: Callable[[int], Awaitable[Ticket]],
    ticket_filter: TicketFilter | None = None,
) -> Callable[[int, str], Coroutine[Any, Any, Claim | None]]:
    """A `dispatch(ticket_id, trigger)` for triggers that only carry an id (the webhook).

    Fetches the ticket (its `version_key` is the claim key, identical to the poller's
    `version_of(updated_at)` for the same state), applies the intake filter, then submits. Never
    raises: it runs in the background after the webhook answered; problems are logged. A ticket the
    webhook could not fetch is still picked up by the poller when polling is on.
    """

    async def dispatch(ticket_id: int, trigger: str) -> Claim | None:
        try:
            async with queue.fetch_slots:
                ticket = await get_ticket(ticket_id)
        except TicketNotFound:
            log.info("%s for #%s: the ticket does not exist (deleted?)", trigger, ticket_id)
            return None
        except Exception as exc:
            log.warning("%s for #%s: could not fetch the ticket: %s", trigger, ticket_id, exc)
            return None
        if ticket_filter is not None:
            ok, why = ticket_filter.matches(ticket)
            if not ok:
                log.info("%s for #%s skipped by the intake filters: %s", trigger, ticket_id, why)
                return None
        try:
            return await queue.submit(ticket.id, ticket.version_key, trigger)
        except Exception:
            log.exception("%s for #%s: could not queue the triage", trigger, ticket_id)
            return None

    return dispatch
