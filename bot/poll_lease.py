"""`PollLease`: exactly one replica polls Zendesk at a time, through a lease in the store.

Zendesk's incremental export allows about 10 requests a minute per account; every replica polling
would spend that budget N times. So every replica runs the lease job, but only the holder polls:

    every ZENDESK_POLL_SECONDS / 3   acquire_lease("zendesk-poller", REPLICA_ID, ttl = 2/3 of the interval)
                                     the holder renews it; the others take it once it expired
    poll job (every interval)        polls only while `holds()`, which renews the lease; it is asked
                                     again before each page's cursor is stored, so a holder that lost
                                     the lease mid-poll stops there

If the holder dies, its lease expires at most 2/3 of an interval after its last renewal and another
replica's next try (every 1/3) takes it: the poller moves within one poll interval. The new holder
polls at once. A graceful stop releases the lease so another replica takes it at its next try.
The lease's token grows with every change of holder; the log line of each poll names it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from triage.store import Store

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)

LEASE_NAME = "zendesk-poller"
JOB_ID = "zendesk-poll-lease"


class PollLease:
    def __init__(self, store: Store, holder: str, poll_seconds: float) -> None:
        self.store = store
        self.holder = holder
        self.ttl_s = poll_seconds * 2 / 3
        self.renew_every_s = poll_seconds / 3
        self.token: int | None = None

    async def renew(self) -> bool:
        """Take or renew the lease; True while this replica holds it. Store errors count as not held."""
        try:
            token = await self.store.acquire_lease(LEASE_NAME, self.holder, self.ttl_s)
        except Exception as exc:
            log.warning("Zendesk poll lease: store error (%s); not polling until it answers", exc)
            token = None
        if token != self.token:
            if token is not None:
                log.info(
                    "Zendesk poll lease acquired by %s (token %d): this replica polls", self.holder, token
                )
            else:
                log.info(
                    "Zendesk poll lease (token %s) is held elsewhere: this replica does not poll", self.token
                )
        self.token = token
        return token is not None

    async def holds(self) -> bool:
        """The poller's gate: renew and answer whether this replica may poll (and store its cursor)."""
        held = await self.renew()
        if held:
            log.debug("Zendesk poll by %s under lease token %s", self.holder, self.token)
        return held

    async def release(self) -> None:
        if self.token is None:
            return
        try:
            await self.store.release_lease(LEASE_NAME, self.holder)
            log.info("Zendesk poll lease released by %s", self.holder)
        except Exception as exc:
            log.warning("could not release the Zendesk poll lease: %s", exc)
        self.token = None

    def schedule(self, scheduler: AsyncIOScheduler, poll_job_id: str) -> None:
        """The lease job; when this replica becomes the holder, the poll job runs at once."""

        started = False

        async def job() -> None:
            nonlocal started
            had = self.token is not None
            took_over = await self.renew() and not had and started  # at start-up the poll job runs anyway
            started = True
            if took_over and scheduler.get_job(poll_job_id) is not None:
                scheduler.modify_job(poll_job_id, next_run_time=datetime.now(UTC))

        scheduler.add_job(
            job,
            "interval",
            seconds=self.renew_every_s,
            id=JOB_ID,
            name="Zendesk poll lease",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(self.renew_every_s)),
            next_run_time=datetime.now(UTC),
        )
