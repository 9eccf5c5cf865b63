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
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from integrations.mcp_capabilities import McpCapabilitySource, capability_tools, load_capabilities
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
from triage.playbooks import BUNDLED_DIR
from triage.protocols import ConfigError

US_URL = "https://mcp.posthog.com/mcp"
EU_URL = "https://mcp-eu.posthog.com/mcp"
SOURCE_NAME = "posthog_mcp"
USER_AGENT = "triagebot/0.1 (read-only triage; +mcp)"
CREDENTIAL = "POSTHOG_API_KEY"


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


class PostHogMcpSource(McpCapabilitySource):
    """`ResearchSource` over the PostHog MCP server (read tools only)."""

    def __init__(
        self,
        url: str = US_URL,
        api_key: str = "",
        *,
        project_id: str = "",
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
        allowed = sorted(
            capability_tools(self.capabilities) | {t.strip() for t in extra_allowed_tools if t.strip()}
        )
        writes = [t for t in allowed if (spec := self.contract.get(t)) is not None and not spec.read_only]
        if writes:
            raise ConfigError(f"PostHog MCP: not read-only, refusing to allow: {', '.join(writes)}")
        self.url = server_url(url or US_URL, allowed)
        factory: ClientFactory
        status = HttpStatus()
        if server is not None:  # a PostHogLikeServer, or any MCP server object
            factory = inprocess_client_factory(
                getattr(server, "server", server), timeout_s=timeout_s, mode=mode
            )
        else:
            if not api_key:
                raise ConfigError(f"{CREDENTIAL} is not set (a personal API key with the MCP Server preset)")
            headers = posthog_headers(api_key, self.project_id)
            factory = http_client_factory(self.url, headers, timeout_s=timeout_s, mode=mode, status=status)
        self.client = McpToolClient(
            self.name,
            factory,
            ReadOnlyGuard.of(allowed),
            timeout_s=timeout_s,
            max_retries=max_retries,
            concurrency=concurrency,
            backoff_s=backoff_s,
            credential=CREDENTIAL,
            max_rate_limit_wait_s=max_rate_limit_wait_s,
            http_status=status,
        )
