"""Extra read-only MCP servers (setting MCP_SERVERS): any MCP server, same guard as PostHog.

Each server entry names a read allowlist and the calls to make per ticket: tool → argument template, where
the string "{query}" is replaced by the ticket's symptom query. A call whose tool is not on the server's
allowlist, is not offered by the server, or is not annotated read-only/non-destructive is refused (never sent)
and shows up in the report as a `refused` evidence row.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from integrations.mcp_capabilities import result_rows
from integrations.mcp_client import (
    ClientFactory,
    McpSourceLifecycle,
    McpToolClient,
    ToolOutcome,
    bounded,
    describe_error,
    fill_template,
    http_client_factory,
    inprocess_client_factory,
    outcome_evidence,
)
from integrations.mcp_decode import Unparseable, decode_result
from integrations.mcp_guard import ReadOnlyGuard
from integrations.posthog_summaries import posthog_url
from triage.models import Evidence, EvidenceStatus, Intake, ResearchTask
from triage.protocols import ConfigError

if TYPE_CHECKING:
    from triage.playbooks import Playbook

log = logging.getLogger(__name__)


def symptom_query(intake: Intake, playbook: Playbook) -> str:
    """A short search query for a ticket: symptom keywords, else the first error message, else the area."""
    query = " ".join(intake.symptom_keywords[:6]).strip()
    if not query and intake.identifiers.error_messages:
        query = intake.identifiers.error_messages[0]
    if not query and playbook.docs_queries:
        query = playbook.docs_queries[0]
    return query.strip()[:200]


class McpServerConfig(Protocol):
    """The shape of one MCP_SERVERS entry (`bot.settings.ExtraMcpServer`), without importing bot/."""

    @property
    def name(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def allowed_tools(self) -> Sequence[str]: ...
    @property
    def calls(self) -> Mapping[str, Mapping[str, Any]]: ...


class ExtraMcpSource(McpSourceLifecycle):
    """`ResearchSource` for one extra MCP server; `name` is the server's name from MCP_SERVERS.

    Pass either explicit parameters or one MCP_SERVERS entry: `ExtraMcpSource(entry, timeout_s=...)`.
    """

    def __init__(
        self,
        name: str | McpServerConfig,
        url: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        allowed_tools: Sequence[str] = (),
        calls: Mapping[str, Mapping[str, Any]] | None = None,
        timeout_s: float = 15.0,
        max_retries: int = 2,
        concurrency: int = 4,
        server: object | None = None,
        first_party: bool = False,
        mode: str = "auto",
        backoff_s: float = 0.5,
    ) -> None:
        if not isinstance(name, str):
            config = name
            name, url = config.name, url or config.url
            headers = headers if headers is not None else config.headers
            allowed_tools = allowed_tools or tuple(config.allowed_tools)
            calls = calls if calls is not None else config.calls
        if not name or ":" in name:
            raise ConfigError(f"MCP_SERVERS: server name {name!r} must be non-empty and contain no ':'")
        if server is None and not url:
            raise ConfigError(f"MCP_SERVERS: server {name!r} has no url")
        self.name = name
        self.url = url
        self.calls = {tool: dict(template) for tool, template in (calls or {}).items()}
        self.first_party = first_party
        factory: ClientFactory = (
            inprocess_client_factory(server, timeout_s=timeout_s, mode=mode)
            if server is not None
            else http_client_factory(url, dict(headers or {}), timeout_s=timeout_s, mode=mode)
        )
        self.client = McpToolClient(
            name,
            factory,
            ReadOnlyGuard.of(allowed_tools),
            timeout_s=timeout_s,
            max_retries=max_retries,
            concurrency=concurrency,
            backoff_s=backoff_s,
        )

    def plan(self, intake: Intake, playbook: Playbook) -> list[ResearchTask]:
        query = symptom_query(intake, playbook)
        if not query:
            return []
        return [
            ResearchTask(
                key=f"{self.name}:{tool}",
                source=self.name,
                tool=tool,
                arguments=fill_template(template, {"query": query}),
                description=f"{self.name}: {tool} for '{query}'",
                first_party=self.first_party,
            )
            for tool, template in self.calls.items()
        ]

    async def execute(self, task: ResearchTask) -> list[Evidence]:
        try:
            outcome = await self.client.call(task.tool, task.arguments)
            return [self._evidence(task, outcome)]
        except Exception as exc:  # never raise out of execute
            log.exception("%s: task %s failed", self.name, task.key)
            return [
                Evidence(
                    task_key=task.key,
                    source=self.name,
                    tool=task.tool,
                    status=EvidenceStatus.error,
                    title=f"{self.name}: {task.tool}",
                    summary=f"internal error: {describe_error(exc)}",
                )
            ]

    def _evidence(self, task: ResearchTask, outcome: ToolOutcome) -> Evidence:
        title = f"{self.name}: {task.tool}"
        if not outcome.ok:
            return outcome_evidence(task, outcome, title=title, internal=True)
        try:
            value = decode_result(outcome.text, outcome.structured).value
        except Unparseable:  # another server may answer in prose: that is an answer, shown as text
            value = None
        rows = result_rows(value) if value is not None else None
        if rows:
            names = [str(r.get("title") or r.get("name") or r.get("id") or "") for r in rows[:3]]
            summary = f"{len(rows)} result(s): " + "; ".join(n for n in names if n)
            url = posthog_url(rows[0])
        elif rows == []:
            return outcome_evidence(
                task, outcome, title=title, summary="no results", internal=True, status=EvidenceStatus.empty
            )
        else:
            first = outcome.text.strip().splitlines()[0] if outcome.text.strip() else ""
            summary, url = first, posthog_url(value)
        # Unknown servers may hold internal data: never quote them to the customer.
        return outcome_evidence(
            task, outcome, title=title, summary=bounded(summary, 400), url=url, internal=True
        )
