"""`FencedRun`: every write of one triage run, each checked against the run's fencing token.

A run's lease carries a token, its attempt number (`Claim.token`); a replica that takes a stale run
over increments it. A stalled owner that wakes up afterwards must not post a second card or report,
nor overwrite the new owner's rows. So each write of a run goes through this one object:

    store writes      set_thread · stage · sent · complete · finish · fail · heartbeat
                      (the store refuses a stale token)
    Slack decisions   post · update · delete · post_error      (checked with `store.holds_run` first)

A refused write raises `Superseded`; the delivery catches it at the top and stops quietly: no error
message, no failed run (the new owner is working on it).

A finished report is posted through the run's outbox (`bot.outbox`): `stage` stores it with its
Slack writes while the run stays running, each posted message is counted (`sent`), and `complete`
ends the run. Every one of those posts is fenced like the rest, so when the owner dies in between,
the replica that takes the run over posts what is left and the stale owner posts nothing more.
Once `complete` (or `finish`, for runs that post nothing) succeeded the run is done under our token,
and a done run is never taken over, so writes after it need no check.

A check and the Slack call after it are not atomic: a takeover needs a heartbeat older than
RUN_STALE_AFTER_SECONDS, so the window is a stall of that length between the two lines below — the
fence makes a double post need two such coincidences instead of one stall.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_runtime import post_error, post_message, update_message
from triage.models import TriageReport
from triage.store import Outbox, Store

log = logging.getLogger(__name__)


class Superseded(Exception):
    """Another replica took this run over (its fencing token moved on): stop without writing."""

    def __init__(self, run_id: str, token: int) -> None:
        super().__init__(f"run {run_id} (token {token}) was taken over by another replica")
        self.run_id, self.token = run_id, token


class FencedRun:
    def __init__(self, client: AsyncWebClient, store: Store, run_id: str, token: int) -> None:
        self.client, self.store, self.run_id, self.token = client, store, run_id, token
        self.finished = False  # finish() succeeded: the run is ours for good

    # ------------------------------------------------------------ the one check

    async def check(self) -> None:
        """Raise Superseded unless this run is still ours (running under our token, or finished by us)."""
        if self.finished:
            return
        if not await self.store.holds_run(self.run_id, self.token):
            raise Superseded(self.run_id, self.token)

    def _refused(self, done: bool) -> None:
        if not done:
            raise Superseded(self.run_id, self.token)

    # ------------------------------------------------------------ store writes (fenced by the store)

    async def heartbeat(self) -> bool:
        return await self.store.heartbeat(self.run_id, self.token)

    async def set_thread(self, channel: str, thread_ts: str) -> None:
        self._refused(await self.store.set_run_thread(self.run_id, channel, thread_ts, token=self.token))

    async def finish(self, report: TriageReport) -> None:
        self._refused(await self.store.finish_run(self.run_id, report, token=self.token))
        self.finished = True

    async def stage(self, report: TriageReport, outbox: Outbox) -> None:
        self._refused(await self.store.stage_report(self.run_id, report, outbox, token=self.token))

    async def sent(self, count: int) -> None:
        self._refused(await self.store.outbox_sent(self.run_id, count, token=self.token))

    async def complete(self) -> None:
        self._refused(await self.store.complete_run(self.run_id, token=self.token))
        self.finished = True

    async def fail(self, error: str) -> None:
        self._refused(await self.store.fail_run(self.run_id, error, token=self.token))

    # ------------------------------------------------------------ Slack writes (checked first)

    async def post(self, channel: str, payload: dict[str, Any], *, thread_ts: str | None = None) -> str:
        await self.check()
        return await post_message(self.client, channel, payload, thread_ts=thread_ts)

    async def update(self, channel: str, ts: str, payload: dict[str, Any]) -> None:
        await self.check()
        await update_message(self.client, channel, ts, payload)

    async def delete(self, channel: str, ts: str) -> None:
        await self.check()
        await self.client.chat_delete(channel=channel, ts=ts)

    async def post_error(self, channel: str, thread_ts: str | None, text: str) -> None:
        """Show a failure in the thread (never raises, except Superseded)."""
        await self.check()
        await post_error(self.client, channel, thread_ts, text)
