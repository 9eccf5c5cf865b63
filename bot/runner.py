"""`triagebot run`: the whole bot in one process and one event loop.

    Slack          HTTP mode (`--http`, or no SLACK_APP_TOKEN): POST /slack/events, GET /healthz
                   Socket Mode (SLACK_APP_TOKEN set, no `--http`): a WebSocket to Slack, no public URL
    Zendesk poll   APScheduler job every ZENDESK_POLL_SECONDS (0 = off) → TriageQueue.submit, only on
                   the replica holding the poll lease (`bot.poll_lease`; it moves within one interval)
    Zendesk hook   POST /zendesk/webhook (HTTP mode only) → fetch → filters → TriageQueue.submit
    TriageQueue    claims (ticket, version) once, runs `bot.delivery.deliver_claim` under
                   TRIAGE_CONCURRENCY, heartbeats its runs and takes over runs whose process died
                   (at start-up and every min(60 s, RUN_STALE_AFTER_SECONDS / 2))
    housekeeping   daily prune of old de-duplication keys

`/triage` and Re-run use `bot.delivery.triage_ticket` (they answer the invoker); they claim the same
(ticket, version) key, so a poll, a webhook and a `/triage` arriving together make one run.

Shutdown (SIGTERM/SIGINT): stop the scheduler, stop accepting requests, wait up to
SHUTDOWN_DRAIN_SECONDS for running work, then cancel what is left — those runs stay "running" in the
store and are resumed exactly once after the next start.

`start_bot` returns a `RunningBot` (tests and embedding); `run_bot` is the blocking CLI entry point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.delivery import deliver_claim, heartbeat_interval, recovery_interval
from bot.intake_filters import TicketFilter
from bot.intake_queue import TriageQueue, ticket_dispatcher
from bot.poll_lease import PollLease
from bot.poller import JOB_ID as POLL_JOB_ID
from bot.poller import ZendeskPoller
from bot.settings import Settings, secret
from bot.slack_runtime import runtime_for
from bot.zendesk_webhook import WEBHOOK_PATH, webhook_route
from triage.protocols import ConfigError
from triage.store import Claim

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.http_server import HttpServer
    from bot.wiring import Services

log = logging.getLogger(__name__)

PRUNE_JOB_ID = "prune-seen-keys"
PRUNE_EVERY_H = 24
SEEN_KEYS_TTL_S = 7 * 24 * 3600.0  # de-duplication keys (Slack event retries) are only needed for minutes


def http_mode(settings: Settings, http: bool) -> bool:
    """HTTP when asked for, or when there is no app-level token for Socket Mode."""
    return http or not settings.slack_app_token


def check_settings(settings: Settings, *, http: bool) -> None:
    """Raise ConfigError with one clear line for what `triagebot run` cannot start without."""
    if not settings.slack_bot_token:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set (Slack app → OAuth & Permissions → Bot User OAuth Token, xoxb-…)"
        )
    if http_mode(settings, http) and not settings.slack_signing_secret:
        raise ConfigError(
            "SLACK_SIGNING_SECRET is not set (Slack app → Basic Information → Signing Secret); "
            "HTTP mode needs it — or set SLACK_APP_TOKEN for Socket Mode"
        )
    if not settings.triage_channel:
        raise ConfigError(
            "TRIAGE_CHANNEL is not set (the id of the channel reports are posted to, e.g. C0123456789)"
        )


@dataclass
class RunningBot:
    """A started bot. `url` is the HTTP base URL ("" in Socket Mode)."""

    services: Services
    queue: TriageQueue
    scheduler: AsyncIOScheduler
    poller: ZendeskPoller | None = None
    poll_lease: PollLease | None = None
    http_server: HttpServer | None = None
    socket_handler: AsyncSocketModeHandler | None = None
    recovered_at_start: int = 0
    drain_timeout_s: float = 20.0
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return self.http_server.url if self.http_server is not None else ""

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Graceful stop: no new work, drain up to `drain_timeout` s, cancel the rest, close.

        `drain_timeout=0` stops abruptly: running triages are cancelled where they are and stay
        "running" in the store, to be resumed by the next start (what a killed process leaves behind).
        """
        if self._stopped:
            return
        self._stopped = True
        timeout = self.drain_timeout_s if drain_timeout is None else max(0.0, drain_timeout)
        rt = runtime_for(self.services)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)  # cancels a poll in progress (its page is re-read later)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down via call_soon
        if self.poll_lease is not None and timeout > 0:
            await self.poll_lease.release()  # another replica takes over polling at its next try
        if timeout == 0:
            await self.queue.aclose(0)
            await rt.drain(0)
        if self.socket_handler is not None:
            with contextlib.suppress(Exception):
                await self.socket_handler.close_async()
            await rt.drain(timeout)
        if self.http_server is not None:
            # stop accepting, then drain acknowledged work (bounded) — while queued triages drain too
            await asyncio.gather(self.http_server.stop(), self.queue.drain(timeout))
        await self.queue.aclose(timeout)
        await rt.drain(0)
        await self.services.aclose()
        log.info("triagebot stopped")


def _build_services(settings: Settings) -> Services:
    from bot.wiring import build_services

    return build_services(settings)


async def start_bot(
    settings: Settings,
    *,
    http: bool,
    port: int,
    host: str,
    services: Services | None = None,
    health_port: int | None = None,
) -> RunningBot:
    """Start everything on the running loop and return at once. `services` overrides the wiring (tests)."""
    from bot.app import build_app

    use_http = http_mode(settings, http)
    check_settings(settings, http=use_http)
    services = services or _build_services(settings)
    started: list[Callable[[], Awaitable[None]]] = []
    try:
        rt = runtime_for(services)
        slack_app = build_app(services, socket_mode=not use_http)
        ticket_filter = TicketFilter.from_settings(settings)

        async def run(claim: Claim, trigger: str) -> object:
            return await deliver_claim(services, claim, trigger)

        queue = TriageQueue(
            services.store,
            run,
            concurrency=max(1, settings.triage_concurrency),
            stale_after_s=settings.run_stale_after_seconds,
            heartbeat_s=heartbeat_interval(settings),
        )
        started.append(lambda: queue.aclose(0))
        recovered = await queue.start(recover_every_s=recovery_interval(settings))
        if recovered:
            log.info("resuming %d triage run(s) interrupted by a previous stop or crash", recovered)

        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        poller, poll_lease = _schedule_jobs(settings, services, scheduler, queue, ticket_filter)
        scheduler.start()

        def stop_scheduler() -> Awaitable[None]:
            if scheduler.running:
                scheduler.shutdown(wait=False)
            return asyncio.sleep(0)

        started.append(stop_scheduler)

        bot = RunningBot(
            services=services,
            queue=queue,
            scheduler=scheduler,
            poller=poller,
            poll_lease=poll_lease,
            recovered_at_start=recovered,
            drain_timeout_s=settings.shutdown_drain_seconds,
        )
        if use_http:
            bot.http_server = await _start_http(
                settings, services, slack_app, queue, ticket_filter, rt.spawn, host=host, port=port
            )
        else:
            from bot.socket_mode import start_socket_mode

            if health_port is not None:
                # no Slack route: /healthz for container probes, and the Zendesk webhook
                bot.http_server = await _start_http(
                    settings, services, None, queue, ticket_filter, rt.spawn, host=host, port=health_port
                )
            elif services.zendesk is not None:
                log.info(
                    "Socket Mode: the Zendesk webhook (%s) needs an HTTP port (`--http`, or `--health-port`); "
                    "polling still runs",
                    WEBHOOK_PATH,
                )
            bot.socket_handler = await start_socket_mode(services, slack_app)
        log.info(
            "triagebot running: %s, TRIAGE_CHANNEL=%s, TRIAGE_CONCURRENCY=%d",
            f"HTTP on {bot.url}" if use_http else "Socket Mode",
            settings.triage_channel,
            queue.concurrency,
        )
        return bot
    except BaseException:
        for undo in reversed(started):
            with contextlib.suppress(Exception):
                await undo()
        await services.aclose()
        raise


def _schedule_jobs(
    settings: Settings,
    services: Services,
    scheduler: AsyncIOScheduler,
    queue: TriageQueue,
    ticket_filter: TicketFilter,
) -> tuple[ZendeskPoller | None, PollLease | None]:
    store: Any = services.store
    prune = getattr(store, "prune_seen", None)
    if callable(prune):

        async def prune_seen() -> None:
            try:
                removed = await prune(SEEN_KEYS_TTL_S)
                log.info("pruned %d old de-duplication key(s)", removed)
            except Exception as exc:
                log.warning("pruning de-duplication keys failed: %s", exc)
            purge = getattr(store, "purge_older_than", None)
            if settings.retention_days and callable(purge):
                try:
                    counts = await purge(settings.retention_days * 86400.0)
                    log.info("retention (%d days): purged %s", settings.retention_days, counts)
                except Exception as exc:
                    log.warning("retention purge failed: %s", exc)

        scheduler.add_job(
            prune_seen,
            "interval",
            hours=PRUNE_EVERY_H,
            id=PRUNE_JOB_ID,
            name="prune de-duplication keys; retention purge (RETENTION_DAYS)",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC) + timedelta(minutes=5),
        )

    if services.zendesk is None or not settings.zendesk_configured:
        log.warning(
            "Zendesk is not configured (ZENDESK_URL or ZENDESK_SUBDOMAIN, and ZENDESK_EMAIL + "
            "ZENDESK_API_TOKEN or ZENDESK_OAUTH_TOKEN): polling and the webhook are off; /triage needs it too"
        )
        return None, None
    if settings.zendesk_poll_seconds <= 0:
        log.info("Zendesk polling is off (ZENDESK_POLL_SECONDS=0); tickets arrive by webhook or /triage only")
        return None, None
    lease = PollLease(services.store, services.store.replica, settings.zendesk_poll_seconds)
    poller = ZendeskPoller(
        services.zendesk,
        services.store,
        ticket_filter,
        queue.submit,
        lookback_minutes=settings.zendesk_poll_lookback_minutes,
        gate=lease.holds,
    )
    poller.schedule(scheduler, settings.zendesk_poll_seconds)
    lease.schedule(scheduler, POLL_JOB_ID)
    return poller, lease


async def _start_http(
    settings: Settings,
    services: Services,
    slack_app: Any,
    queue: TriageQueue,
    ticket_filter: TicketFilter,
    spawn: Callable[..., object],
    *,
    host: str,
    port: int,
) -> HttpServer:
    from bot.http_server import build_web_app, start_http

    routes: list[web.RouteDef] = []
    if services.zendesk is not None:
        webhook_secret = secret(settings.zendesk_webhook_secret)
        if not webhook_secret:
            log.warning(
                "ZENDESK_WEBHOOK_SECRET is not set: %s answers 503 until it is (polling is unaffected)",
                WEBHOOK_PATH,
            )
        dispatch = ticket_dispatcher(queue, services.zendesk.get_ticket, ticket_filter)
        routes.append(webhook_route(webhook_secret or None, dispatch, spawn))
    app = build_web_app(
        services, slack_app, extra_routes=routes, drain_timeout_s=settings.shutdown_drain_seconds
    )
    try:
        return await start_http(app, host=host, port=port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (use --port)") from exc


async def _serve(settings: Settings, *, http: bool, port: int, host: str, health_port: int | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        bot = await start_bot(settings, http=http, port=port, host=host, health_port=health_port)
        try:
            await stop.wait()
            log.info("shutting down (waiting up to %.0fs for running triages)", bot.drain_timeout_s)
        finally:
            await bot.stop()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return 0


def run_bot(settings: Settings, *, http: bool, port: int, host: str, health_port: int | None = None) -> int:
    """Run until SIGTERM/SIGINT. Missing settings raise ConfigError (the CLI prints one line)."""
    check_settings(settings, http=http_mode(settings, http))
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # APScheduler logs every job run at INFO; the poller logs what matters itself
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return asyncio.run(_serve(settings, http=http, port=port, host=host, health_port=health_port))


__all__ = ["POLL_JOB_ID", "PRUNE_JOB_ID", "RunningBot", "check_settings", "run_bot", "start_bot"]
