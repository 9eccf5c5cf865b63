"""The App Home tab, published on `app_home_opened` (tab "home").

It shows the viewer's recent triages (ticket, subject, grade, status, link to the thread) and the
workspace's last 7 days (triages, escalations, 👍/👎, model cost). Who triaged what is remembered per
user when a triage they asked for gets its thread (`remember`): a short list of run ids and thread
links in the store's cursor table (`home:<user id>`), the same store-backed pattern the thread
follow-ups use for their history, so the tab is the same on every replica and after a restart.
Status and grade are read from the runs themselves, so the list is always current.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.access import REFUSAL
from bot.delivery import DeliveryResult
from bot.listeners.common import Deps
from bot.slack_runtime import slack_error
from formatting.home import MAX_RECENT, HomeTriage, HomeWeek, home_view
from triage.models import ReportMode, ticket_ref
from triage.store import RunStatus

log = logging.getLogger(__name__)

WEEK_DAYS = 7
KEEP = MAX_RECENT


def _key(user: str) -> str:
    return f"home:{user}"


async def _entries(deps: Deps, user: str) -> list[dict[str, str]]:
    raw = await deps.store.get_cursor(_key(user))
    try:
        items = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [i for i in items if isinstance(i, dict) and i.get("run_id")] if isinstance(items, list) else []


async def remember(deps: Deps, user: str, result: DeliveryResult) -> None:
    """Put the run `user` asked for at the top of their Home tab list (never raises)."""
    if not user or not result.run_id:
        return
    try:
        items = [i for i in await _entries(deps, user) if i["run_id"] != result.run_id]
        items.insert(0, {"run_id": result.run_id, "thread_url": result.thread_url})
        await deps.store.set_cursor(_key(user), json.dumps(items[:KEEP]))
    except Exception as exc:
        log.warning("could not remember a triage for the Home tab: %s", type(exc).__name__)


async def recent_triages(deps: Deps, user: str) -> list[HomeTriage]:
    out: list[HomeTriage] = []
    for item in await _entries(deps, user):
        run = await deps.store.get_run(item["run_id"])
        if run is None:
            continue
        report = run.report
        out.append(
            HomeTriage(
                ticket=ticket_ref(run.ticket_id),
                subject=report.ticket.subject if report else "",
                status=run.status.value if isinstance(run.status, RunStatus) else str(run.status),
                grade=report.confidence if report else None,
                escalate=bool(report and report.escalation.needed),
                evidence_only=bool(report and report.mode is ReportMode.evidence_only),
                thread_url=item.get("thread_url", ""),
            )
        )
    return out


async def workspace_week(deps: Deps) -> HomeWeek | None:
    """The last 7 days from the store's usage query (the one behind `triagebot stats`)."""
    try:
        s = await deps.services.store.usage_stats(WEEK_DAYS)
    except Exception as exc:
        log.warning("usage stats for the Home tab failed: %s", type(exc).__name__)
        return None
    return HomeWeek(
        days=WEEK_DAYS,
        triages=s.triages,
        escalations=s.escalations,
        votes_up=s.votes_up,
        votes_down=s.votes_down,
        cost_usd=s.cost_usd,
    )


class HomeListeners:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def register(self, app: AsyncApp) -> None:
        app.event("app_home_opened")(self.on_home_opened)

    async def on_home_opened(self, event: dict[str, Any], context: Any) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        self.deps.rt.spawn(self.publish(str(event["user"]), bool(context.get("user_allowed"))), name="home")

    async def publish(self, user: str, allowed: bool) -> None:
        deps = self.deps
        if allowed:
            view = home_view(
                user,
                await recent_triages(deps, user),
                await workspace_week(deps),
                triage_channel=deps.settings.triage_channel,
            )
        else:
            view = home_view(user, [], None, note=REFUSAL)
        try:
            await deps.client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:
            log.warning("views.publish for %s failed: %s", user, slack_error(exc))
