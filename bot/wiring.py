"""The composition root: settings → adapters → engine. The only place that knows every part."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from bot.settings import Settings, secret
from integrations.anthropic_model import AnthropicModel
from integrations.extra_mcp import ExtraMcpSource
from integrations.github import GitHubSource
from integrations.llm_providers import ProviderConfig
from integrations.model_prices import PriceTable
from integrations.posthog_analytics import PostHogAnalytics
from integrations.posthog_mcp import PostHogMcpSource
from integrations.registries import RegistrySource
from integrations.store import SqlStore
from integrations.zendesk import ZendeskTicketSource
from triage.engine import TriageConfig, TriageEngine
from triage.links import LinkPolicy
from triage.metering import DailyBudget, MeteredModel
from triage.models import Ticket
from triage.playbooks import load_playbooks, load_sdk_catalogue, load_vocabulary
from triage.protocols import LanguageModel, ResearchSource, TicketNotFound, TicketSource
from triage.store import AuditEntry

EXAMPLES = "examples"


@dataclass
class Services:
    settings: Settings
    engine: TriageEngine
    store: SqlStore
    zendesk: ZendeskTicketSource | None = None
    triage_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))
    analytics: PostHogAnalytics | None = None

    async def aclose(self) -> None:
        await self.engine.aclose()
        if self.analytics is not None:
            await self.analytics.aclose()  # flush queued events
        await self.store.close()


def triage_config(settings: Settings) -> TriageConfig:
    return TriageConfig(
        research_deadline_s=settings.research_deadline_seconds,
        task_timeout_s=settings.source_timeout_seconds,
        redact_emails=settings.redact_emails,
        redact_phones=settings.redact_phones,
    )


def provider_config(settings: Settings) -> ProviderConfig:
    anthropic_api = settings.triage_llm_provider == "anthropic"
    return ProviderConfig(
        settings.triage_llm_provider,
        api_key=secret(settings.anthropic_api_key) if anthropic_api else "",
        base_url=settings.anthropic_base_url if anthropic_api else settings.triage_llm_base_url,
        region=settings.triage_llm_region,
        project_id=settings.triage_llm_project_id,
        max_retries=settings.anthropic_max_retries,
        timeout_s=settings.anthropic_timeout_seconds,
    )


def build_analytics(settings: Settings) -> PostHogAnalytics | None:
    if not settings.posthog_analytics_api_key:
        return None
    return PostHogAnalytics(
        secret(settings.posthog_analytics_api_key),
        settings.posthog_analytics_host,
        privacy_mode=settings.posthog_analytics_privacy_mode,
    )


def build_model(settings: Settings, analytics: PostHogAnalytics | None = None) -> LanguageModel | None:
    """The model on the configured provider, or None (evidence-only) when the Anthropic API has no key."""
    if not settings.model_configured:
        return None
    return AnthropicModel(
        analytics=analytics,
        synthesis_model=settings.triage_model,
        intake_model=settings.triage_intake_model,
        provider=provider_config(settings),
        structured_output=settings.triage_structured_output,
        prompt_caching=settings.triage_prompt_caching,
        prices=PriceTable.load(settings.model_prices_file or None),
    )


def build_sources(settings: Settings) -> list[ResearchSource]:
    sources: list[ResearchSource] = []
    if settings.posthog_api_key:
        sources.append(
            PostHogMcpSource(
                settings.posthog_mcp_url,
                secret(settings.posthog_api_key),
                project_id=settings.posthog_project_id,
                org_projects=settings.posthog_org_projects,
                extra_allowed_tools=settings.posthog_mcp_extra_allowed_tools,
                timeout_s=settings.source_timeout_seconds,
                max_retries=settings.source_max_retries,
                capabilities_dir=settings.playbooks_dir or None,
            )
        )
    for server in settings.mcp_servers:
        sources.append(
            ExtraMcpSource(
                server, timeout_s=settings.source_timeout_seconds, max_retries=settings.source_max_retries
            )
        )
    sources.append(
        GitHubSource(
            settings.github_api_url,
            secret(settings.github_token),
            search_concurrency=settings.github_search_concurrency,
            timeout_s=settings.source_timeout_seconds,
            max_retries=settings.source_max_retries,
            sdk_catalogue=load_sdk_catalogue(settings.playbooks_dir or None),
            semantic_search=settings.github_semantic_search,
        )
    )
    sources.append(
        RegistrySource(
            settings.npm_registry_url,
            settings.pypi_url,
            timeout_s=settings.source_timeout_seconds,
            max_retries=settings.source_max_retries,
        )
    )
    return sources


def build_zendesk(settings: Settings) -> ZendeskTicketSource | None:
    if not settings.zendesk_base_url:
        return None
    return ZendeskTicketSource(
        settings.zendesk_base_url,
        email=settings.zendesk_email,
        api_token=secret(settings.zendesk_api_token),
        oauth_token=secret(settings.zendesk_oauth_token),
        workers=settings.zendesk_workers,
        timeout_s=settings.zendesk_timeout_seconds,
    )


def _audit_sink(store: SqlStore) -> Any:
    async def sink(entries: list[AuditEntry]) -> None:
        await store.record_audit(entries)

    return sink


_FROM_SETTINGS: Any = object()


def build_services(
    settings: Settings,
    *,
    tickets: TicketSource | None = _FROM_SETTINGS,
    sources: list[ResearchSource] | None = None,
    model: LanguageModel | None = _FROM_SETTINGS,
    database_url: str | None = None,
) -> Services:
    """Services from settings; the keyword arguments replace one part (the demo and tests use them)."""
    store = SqlStore.from_url(
        database_url or settings.database_url,
        migrate=settings.database_auto_migrate,
        replica=settings.replica_id,
    )
    zendesk = build_zendesk(settings)
    playbooks_dir = settings.playbooks_dir or None
    analytics = build_analytics(settings)
    chosen = build_model(settings, analytics) if model is _FROM_SETTINGS else model
    budget = settings.triage_daily_budget_usd
    catalogue = load_sdk_catalogue(playbooks_dir)
    engine = TriageEngine(
        tickets=zendesk if tickets is _FROM_SETTINGS else tickets,
        sources=build_sources(settings) if sources is None else sources,
        # every call's tokens, cache hits and cost go to the store (budget, `triagebot stats`)
        model=MeteredModel(chosen, store.record_model_call) if chosen is not None else None,
        budget=DailyBudget(budget, store.model_cost_since) if budget > 0 else None,
        observer=analytics.triage_finished if analytics is not None else None,
        playbooks=load_playbooks(playbooks_dir),
        sdk_catalogue=catalogue,
        vocabulary=load_vocabulary(playbooks_dir),
        config=triage_config(settings),
        audit=_audit_sink(store),
        links=LinkPolicy.from_profile(playbooks_dir, extra=settings.link_allowlist, catalogue=catalogue),
    )
    return Services(
        settings=settings,
        engine=engine,
        store=store,
        zendesk=zendesk,
        triage_slots=asyncio.Semaphore(max(1, settings.triage_concurrency)),
        analytics=analytics,
    )


# ---------------------------------------------------------------- the offline demo


class BundledTicketSource:
    """The example tickets shipped in `triage/examples/` (used by `triagebot demo`)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder

    def ids(self) -> list[int]:
        return sorted(int(p.stem) for p in self._files())

    def _files(self) -> list[Any]:
        if self.folder is not None:
            return sorted(self.folder.glob("*.json"))
        root = resources.files("triage") / EXAMPLES
        return sorted((p for p in root.iterdir() if p.name.endswith(".json")), key=lambda p: p.name)

    async def get_ticket(self, ticket_id: int) -> Ticket:
        for path in self._files():
            if path.name == f"{ticket_id}.json":
                return Ticket.model_validate_json(path.read_text(encoding="utf-8"))
        raise TicketNotFound(ticket_id)


def _recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (resources.files("integrations") / "recorded" / name).read_text("utf-8")
    )
    return data


def replay_sources(
    timeout_s: float = 15.0, recordings: dict[str, dict[str, Any]] | None = None
) -> list[ResearchSource]:
    """The recorded source answers, served through the real adapters: PostHog MCP in-process over the
    MCP protocol, GitHub and the registries through an httpx transport. No network.

    `recordings` (`posthog_mcp`, `github`, `registries`) replaces the bundled demo recordings (golden cases).
    """
    from integrations.github.offline import github_replay_transport
    from integrations.http_replay import replay_transport
    from integrations.posthog_mcp_replay import build_posthog_like_server

    rec = recordings or {}

    def recorded(kind: str, name: str) -> dict[str, Any]:
        return rec[kind] if kind in rec else _recorded(name)

    return [
        PostHogMcpSource(
            "http://demo.invalid/mcp",
            "phx_demo",
            timeout_s=timeout_s,
            project_id="84512",  # the recorded demo project
            server=build_posthog_like_server(recorded("posthog_mcp", "posthog_mcp.json")),
        ),
        GitHubSource(
            "https://api.github.com",
            "",
            transport=github_replay_transport(recorded("github", "github.json")),
            timeout_s=timeout_s,
        ),
        RegistrySource(
            "https://registry.npmjs.org",
            "https://pypi.org",
            transport=replay_transport(recorded("registries", "registries.json")),
            timeout_s=timeout_s,
        ),
    ]


DemoModel = Literal["live", "recorded", "none"]


def demo_model_kind(settings: Settings, evidence_only: bool = False) -> DemoModel:
    """What answers the demo's model calls: the configured model, the recorded answers, or nothing."""
    if evidence_only:
        return "none"
    return "live" if settings.model_configured else "recorded"


def recorded_model(settings: Settings) -> LanguageModel:
    """The production adapter over the real AsyncAnthropic, answered by recorded Messages API responses."""
    from integrations.anthropic_replay import replay_http_client

    return AnthropicModel(
        synthesis_model=settings.triage_model,
        intake_model=settings.triage_intake_model,
        provider=ProviderConfig(
            "anthropic", api_key="recorded-demo", max_retries=0, http_client=replay_http_client()
        ),
    )


def build_demo_services(settings: Settings, database_url: str, *, evidence_only: bool = False) -> Services:
    """Everything offline: bundled tickets and recorded sources. The model: live with ANTHROPIC_API_KEY (or
    another configured provider), recorded answers without, none with `evidence_only`."""
    kind = demo_model_kind(settings, evidence_only)
    model: LanguageModel | None = None
    if kind == "recorded":
        model = recorded_model(settings)
    elif kind == "live":
        model = build_model(settings)
    return build_services(
        settings,
        tickets=BundledTicketSource(),
        sources=replay_sources(settings.source_timeout_seconds),
        model=model,
        database_url=database_url,
    )
