"""Settings: pydantic-settings from the environment and `.env`.

Every external endpoint is a setting, so the bot runs against EU hosts, GitHub Enterprise and local
test servers. `deploy/.env.example` lists every variable; the README has the table.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from triage.protocols import ConfigError

CsvList = Annotated[list[str], NoDecode]


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class ExtraMcpServer(BaseModel):
    """An extra read-only MCP server (MCP_SERVERS, a JSON list)."""

    name: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    allowed_tools: list[str] = Field(default_factory=list)  # the read allowlist for this server
    # tool name → argument template; "{query}" is replaced by the ticket's symptom query
    calls: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    triage_channel: str = ""
    slack_allowed_channels: CsvList = Field(default_factory=list)
    slack_allowed_users: CsvList = Field(default_factory=list)
    slack_allowed_usergroups: CsvList = Field(default_factory=list)
    slack_allow_shared_channels: bool = False
    slack_triage_shared_messages: bool = False  # "Triage this message" on Slack Connect messages
    slack_followup_any_reply: bool = False
    slack_update_interval_seconds: float = 1.0
    # chat.postMessage pace per channel, shared by all replicas (bot/slack_pacing.py); 0 turns it off
    slack_post_interval_seconds: float = 1.0
    slack_post_burst: int = 3  # messages that may go at once before the pace applies

    # --- Zendesk
    zendesk_url: str = ""  # https://acme.zendesk.com (wins over the subdomain)
    zendesk_subdomain: str = ""
    zendesk_email: str = ""
    zendesk_api_token: SecretStr | None = None
    zendesk_oauth_token: SecretStr | None = None
    zendesk_webhook_secret: SecretStr | None = None
    zendesk_writeback: bool = False
    zendesk_workers: int = 4
    zendesk_timeout_seconds: float = 30.0
    zendesk_poll_seconds: int = 0
    zendesk_poll_lookback_minutes: int = 0
    zendesk_filter_statuses: CsvList = Field(default_factory=lambda: ["new", "open"])
    zendesk_filter_priorities: CsvList = Field(default_factory=list)
    zendesk_filter_tags_include: CsvList = Field(default_factory=list)
    zendesk_filter_tags_exclude: CsvList = Field(default_factory=list)
    zendesk_filter_groups: CsvList = Field(default_factory=list)
    zendesk_filter_brands: CsvList = Field(default_factory=list)
    zendesk_filter_forms: CsvList = Field(default_factory=list)
    zendesk_filter_via: CsvList = Field(default_factory=list)
    zendesk_retriage_on_reply: bool = True

    # --- Anthropic
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    triage_model: str = "claude-sonnet-5-5"
    triage_intake_model: str = "claude-haiku-5-5"
    # a YAML price table replacing the bundled one (integrations/data/model_prices.yaml; same shape)
    model_prices_file: str = ""
    anthropic_max_retries: int = 3
    anthropic_timeout_seconds: float = 120.0
    # where the model runs: the Anthropic API, Amazon Bedrock or Google Vertex AI (see docs/readme/providers.md)
    triage_llm_provider: Literal["anthropic", "bedrock", "vertex"] = "anthropic"
    triage_llm_region: str = ""  # Bedrock: AWS region (eu-central-1); Vertex: europe-west1, "eu", "global"
    triage_llm_base_url: str = ""  # Bedrock/Vertex endpoint override (VPC endpoint, proxy, test fake)
    triage_llm_project_id: str = ""  # Vertex: Google Cloud project (else from the credentials)
    triage_structured_output: bool = (
        True  # false: the schema goes into the prompt (Vertex without the policy)
    )
    triage_prompt_caching: bool = True
    # once the model spend of the UTC day reaches this, new triages are evidence-only until midnight UTC
    triage_daily_budget_usd: float = Field(default=0.0, ge=0.0)  # 0 = no budget

    # --- self-monitoring in PostHog LLM analytics (off unless the project key is set)
    posthog_analytics_api_key: SecretStr | None = None  # a project key, phc_…
    posthog_analytics_host: str = "https://us.i.posthog.com"  # EU: https://eu.i.posthog.com
    posthog_analytics_privacy_mode: bool = True  # no prompt or response content leaves

    # --- PostHog MCP and extra MCP servers
    posthog_mcp_url: str = "https://mcp.posthog.com/mcp"
    posthog_api_key: SecretStr | None = None
    posthog_project_id: str = ""
    # Zendesk organization id or name → "<project id>" or "<project id>@us|@eu" (JSON object), for companies
    # with a PostHog project per customer. Only this configuration routes a ticket to a project.
    posthog_org_projects: dict[str, str] = Field(default_factory=dict)
    posthog_mcp_extra_allowed_tools: CsvList = Field(default_factory=list)
    mcp_servers: list[ExtraMcpServer] = Field(default_factory=list)

    # --- GitHub and package registries
    github_token: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    github_search_concurrency: int = 2
    # one `search_type=semantic` query per ticket (github.com only; turn off for GitHub Enterprise Server)
    github_semantic_search: bool = True
    npm_registry_url: str = "https://registry.npmjs.org"
    pypi_url: str = "https://pypi.org"

    # --- storage, playbooks, behaviour
    database_url: str = "sqlite:///triagebot.db"
    # migrate the database at start-up; false = refuse to start until `triagebot db upgrade` ran
    database_auto_migrate: bool = True
    # this process's name in the runs table, the poll lease and the logs; empty = host:pid
    replica_id: str = ""
    playbooks_dir: str = ""
    # extra URL prefixes model-written text may link to (besides evidence URLs, the profile's docs and the
    # SDK catalogue's repos and package pages); an entry ending in "$" allows that one page only
    link_allowlist: CsvList = Field(default_factory=list)
    redact_emails: bool = True
    redact_phones: bool = True
    # days a report, its evidence, drafts, feedback and follow-up history are kept (0 = forever)
    retention_days: int = Field(default=90, ge=0)
    research_deadline_seconds: float = 45.0
    source_timeout_seconds: float = 15.0
    source_max_retries: int = 2
    triage_concurrency: int = 4
    # a running triage whose heartbeat is older than this is taken over (crash recovery); heartbeats are
    # sent every min(30 s, this / 4), recovery checks every min(60 s, this / 2)
    run_stale_after_seconds: float = Field(default=180.0, ge=2.0)
    shutdown_drain_seconds: float = Field(default=20.0, ge=0.0)
    log_level: str = "INFO"

    @field_validator("posthog_project_id")
    @classmethod
    def _numeric_posthog_project(cls, value: str) -> str:
        from integrations.posthog_mcp import validate_project_id

        try:
            return validate_project_id(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("posthog_org_projects")
    @classmethod
    def _org_projects(cls, value: dict[str, str]) -> dict[str, str]:
        from integrations.posthog_mcp import US_URL, parse_org_projects

        try:
            parse_org_projects(value, US_URL)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    _csv_fields = field_validator(
        "slack_allowed_channels",
        "slack_allowed_users",
        "slack_allowed_usergroups",
        "zendesk_filter_statuses",
        "zendesk_filter_priorities",
        "zendesk_filter_tags_include",
        "zendesk_filter_tags_exclude",
        "zendesk_filter_groups",
        "zendesk_filter_brands",
        "zendesk_filter_forms",
        "zendesk_filter_via",
        "posthog_mcp_extra_allowed_tools",
        "link_allowlist",
        mode="before",
    )(_csv)

    @property
    def zendesk_base_url(self) -> str:
        if self.zendesk_url:
            return self.zendesk_url.rstrip("/")
        if self.zendesk_subdomain:
            return f"https://{self.zendesk_subdomain}.zendesk.com"
        return ""

    @property
    def zendesk_configured(self) -> bool:
        return bool(self.zendesk_base_url and (self.zendesk_api_token or self.zendesk_oauth_token))

    @property
    def model_configured(self) -> bool:
        """Bedrock and Vertex take credentials from the cloud's own chain; the Anthropic API needs a key."""
        return self.triage_llm_provider != "anthropic" or self.anthropic_api_key is not None

    @property
    def slack_configured(self) -> bool:
        return bool(self.slack_bot_token)


def secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value else ""
