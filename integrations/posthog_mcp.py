"""PostHog MCP research source: read-only first-party data about the customer's project.

Connects to the PostHog MCP server (US `https://mcp.posthog.com/mcp`, EU `https://mcp-eu.posthog.com/mcp`)
over streamable HTTP with a personal API key. Read-only on both sides:

- the server's own switch: header `x-posthog-read-only: true` and `?readonly=true` (the server then lists
  only `readOnlyHint` tools), and `?tools=` with our allowlist, so nothing else is even listed;
- triagebot's guard (`integrations/mcp_guard.py`): allowlist + annotations, re-checked when the server
  announces `notifications/tools/list_changed`.

`?mode=tools` / `x-posthog-mcp-mode: tools` pins one MCP tool per PostHog tool (not the `cli` wrapper), and
`x-posthog-project-id` pins the project; the server silently drops a non-numeric id, so we refuse one.
What each capability calls lives in `triage/playbooks/_mcp_capabilities.yaml`; the tools' schemas in
`integrations/contracts/posthog_mcp.json`; how results are read in `integrations/posthog_summaries.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from integrations.mcp_capabilities import McpCapabilitySource, Target, capability_tools, load_capabilities
from integrations.mcp_client import (
    ClientFactory,
    HttpStatus,
    McpToolClient,
    http_client_factory,
    inprocess_client_factory,
)
from integrations.mcp_contract import posthog_contract
from integrations.mcp_guard import ReadOnlyGuard
from integrations.posthog_summaries import SUMMARISERS
from triage.models import Intake
from triage.playbooks import BUNDLED_DIR
from triage.protocols import ConfigError

US_URL = "https://mcp.posthog.com/mcp"
EU_URL = "https://mcp-eu.posthog.com/mcp"
SOURCE_NAME = "posthog_mcp"
USER_AGENT = "triagebot/0.1 (read-only triage; +mcp)"
CREDENTIAL = "POSTHOG_API_KEY"
REGION_URLS = {"us": US_URL, "eu": EU_URL}


def validate_project_id(value: str | int | None) -> str:
    """The project pin must be numeric (the server ignores anything else and falls back to a default project)."""
    text = str(value or "").strip()
    if text and not re.fullmatch(r"\d+", text):
        raise ConfigError(
            f"POSTHOG_PROJECT_ID must be the numeric project id (the number in /project/<id>/ URLs), got {text!r}"
        )
    return text


def posthog_headers(api_key: str, project_id: str = "") -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {api_key}",
        "x-posthog-read-only": "true",  # the server lists only read-only tools (second line of defence)
        "x-posthog-mcp-mode": "tools",
        "User-Agent": USER_AGENT,
    }
    if project_id:
        headers["x-posthog-project-id"] = validate_project_id(project_id)
    return headers


def server_url(url: str, tools: Sequence[str]) -> str:
    """The endpoint with `mode=tools`, `readonly=true` and `tools=<allowlist>`, keeping other parameters."""
    parts = urlsplit(url)
    ours = {"mode", "readonly", "tools"}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ours]
    query += [("mode", "tools"), ("readonly", "true"), ("tools", ",".join(sorted(tools)))]
    return urlunsplit(parts._replace(query=urlencode(query, safe=",")))


def parse_org_projects(raw: Mapping[str, str], default_url: str) -> dict[str, tuple[str, str]]:
    """POSTHOG_ORG_PROJECTS: Zendesk organization id or name → "<project id>" or "<project id>@us|@eu".

    Returns organization (case-folded) → (project id, MCP URL). Only configuration decides which project a
    ticket's data is read from; a project id written in a ticket is a hint for a human, never an authorization.
    """
    routes: dict[str, tuple[str, str]] = {}
    for org, pin in raw.items():
        project, _, region = str(pin).strip().partition("@")
        if not re.fullmatch(r"\d+", project.strip()):
            raise ConfigError(
                f"POSTHOG_ORG_PROJECTS: organization {org!r} needs a numeric project id "
                f"(optionally @us or @eu), got {pin!r}"
            )
        project = project.strip()
        region = region.strip().lower()
        if region not in REGION_URLS and region:
            raise ConfigError(
                f"POSTHOG_ORG_PROJECTS: organization {org!r}: region must be us or eu, got {region!r}"
            )
        routes[str(org).strip().casefold()] = (project, REGION_URLS.get(region, default_url))
    return routes


class PostHogMcpSource(McpCapabilitySource):
    """`ResearchSource` over the PostHog MCP server (read tools only).

    One MCP session per (server URL, project). By default every ticket uses `project_id`; with `org_projects`
    (POSTHOG_ORG_PROJECTS) a ticket whose Zendesk organization is mapped is read from that project instead.
    """

    def __init__(
        self,
        url: str = US_URL,
        api_key: str = "",
        *,
        project_id: str = "",
        org_projects: Mapping[str, str] | None = None,
        extra_allowed_tools: Sequence[str] = (),
        timeout_s: float = 15.0,
        max_retries: int = 2,
        concurrency: int = 4,
        server: object | None = None,
        mode: str = "legacy",
        backoff_s: float = 0.5,
        max_rate_limit_wait_s: float = 10.0,
        capabilities_dir: Path | str | None = None,
    ) -> None:
        self.name = SOURCE_NAME
        self.contract = posthog_contract()
        self.summarisers = SUMMARISERS
        self.capabilities = load_capabilities(capabilities_dir, bundled=BUNDLED_DIR, summarisers=SUMMARISERS)
        self._planned = {}
        self.project_id = validate_project_id(project_id)
        self.context = {"project_id": self.project_id}
        self.allowed = sorted(
            capability_tools(self.capabilities) | {t.strip() for t in extra_allowed_tools if t.strip()}
        )
        writes = [
            t for t in self.allowed if (spec := self.contract.get(t)) is not None and not spec.read_only
        ]
        if writes:
            raise ConfigError(f"PostHog MCP: not read-only, refusing to allow: {', '.join(writes)}")
        if server is None and not api_key:
            raise ConfigError(f"{CREDENTIAL} is not set (a personal API key with the MCP Server preset)")
        self._base_url = url or US_URL
        self._api_key = api_key
        self._server = getattr(server, "server", server) if server is not None else None
        self._options = {
            "timeout_s": timeout_s,
            "max_retries": max_retries,
            "concurrency": concurrency,
            "backoff_s": backoff_s,
            "max_rate_limit_wait_s": max_rate_limit_wait_s,
            "mode": mode,
        }
        self.routes = parse_org_projects(org_projects or {}, self._base_url)
        self.url = server_url(self._base_url, self.allowed)
        self.client = self._build_client(self._base_url, self.project_id)
        self._clients: dict[tuple[str, str], McpToolClient] = {(self._base_url, self.project_id): self.client}

    def _build_client(self, base_url: str, project_id: str) -> McpToolClient:
        options = self._options
        factory: ClientFactory
        status = HttpStatus()
        if self._server is not None:  # a PostHogLikeServer (demo, tests), or any MCP server object
            factory = inprocess_client_factory(
                self._server, timeout_s=options["timeout_s"], mode=options["mode"]
            )
        else:
            headers = posthog_headers(self._api_key, project_id)
            factory = http_client_factory(
                server_url(base_url, self.allowed),
                headers,
                timeout_s=options["timeout_s"],
                mode=options["mode"],
                status=status,
            )
        return McpToolClient(
            self.name,
            factory,
            ReadOnlyGuard.of(self.allowed),
            timeout_s=options["timeout_s"],
            max_retries=options["max_retries"],
            concurrency=options["concurrency"],
            backoff_s=options["backoff_s"],
            credential=CREDENTIAL,
            max_rate_limit_wait_s=options["max_rate_limit_wait_s"],
            http_status=status,
        )

    def target(self, intake: Intake) -> Target:
        """The ticket's project: its Zendesk organization's mapped project, else the default pin."""
        for ref in intake.organization_refs:
            route = self.routes.get(ref.strip().casefold())
            if route is not None:
                project_id, base_url = route
                client = self._clients.get((base_url, project_id))
                if client is None:
                    client = self._clients[(base_url, project_id)] = self._build_client(base_url, project_id)
                return Target(client, {**self.context, "project_id": project_id})
        return Target(self.client, self.context)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def check(self) -> str:
        """For `triagebot check`: connect, list tools, and name the allowlisted tools the key does not get."""
        summary = await super().check()
        offered = self.client.tools or {}
        missing = [tool for tool in self.allowed if tool not in offered]
        if not missing:
            return summary
        scopes = sorted({scope for tool in missing for scope in self.contract.scopes_for(tool)})
        note = f"; not offered: {', '.join(missing)}"
        return summary + note + (f" (API key may lack scope {', '.join(scopes)})" if scopes else "")
