"""Generic MCP capability machinery: a playbook check → guarded tool calls → one evidence row.

Playbooks name *capabilities* (`flag_definition`, `sdk_versions` …); a capability map (YAML beside the
playbooks, `_mcp_capabilities.yaml`) says which tools can answer each one, with which argument template,
and which summariser reads the result. Nothing here knows PostHog: the PostHog source passes its contract,
its summarisers and its context (project id).

Every call's arguments are validated against the pinned input schema (or, for tools outside the contract,
the schema the server announced) before anything is sent. Failures never vanish into a log: an unknown
capability, a tool missing from `tools/list`, arguments the schema rejects and a result we cannot parse all
become visible evidence rows.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from integrations.mcp_client import McpSourceLifecycle, McpToolClient, ToolOutcome, bounded, describe_error
from integrations.mcp_contract import Contract, argument_errors
from integrations.mcp_decode import Decoded, Unparseable, decode_result
from triage.models import Evidence, EvidenceStatus, Intake, ResearchTask, Sdk
from triage.protocols import ConfigError
from triage.redaction import reveal

if TYPE_CHECKING:
    from triage.playbooks import McpCheck, Playbook

log = logging.getLogger(__name__)

CAPABILITIES_FILE = "_mcp_capabilities.yaml"
MAX_SUMMARY = 400


# ---------------------------------------------------------------- the capability map (data)


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    pick: dict[str, str] | None = None  # choose one row of a list result: field (dotted) = template
    then: Step | None = None

    def tools(self) -> list[str]:
        return [self.tool, *(self.then.tools() if self.then else [])]


class CapabilitySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    title: str
    summary: str  # summariser kind
    subject: str = ""
    first_party: bool = True
    needs: list[str] = Field(default_factory=list)
    value_pattern: str | None = None  # a regex whose first group is the value (e.g. a session id in a URL)
    # False for personal values (the requester's email): titles, progress lines and the stored query show
    # "the requester" instead, so the value never reaches a prompt, Slack or the store.
    show_value: bool = True
    candidates: list[Step]


def load_capabilities(
    directory: Path | str | None, *, bundled: Path, summarisers: Mapping[str, object]
) -> dict[str, CapabilitySpec]:
    """Load `_mcp_capabilities.yaml` from `directory` (a PLAYBOOKS_DIR), else the bundled one."""
    path = Path(directory) / CAPABILITIES_FILE if directory else bundled / CAPABILITIES_FILE
    if not path.is_file():
        path = bundled / CAPABILITIES_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        specs = {name: CapabilitySpec.model_validate({**body, "name": name}) for name, body in raw.items()}
    except (yaml.YAMLError, ValidationError, AttributeError, TypeError) as exc:
        raise ConfigError(f"MCP capability map {path} is invalid: {str(exc).splitlines()[0]}") from exc
    for spec in specs.values():
        if spec.summary not in summarisers:
            raise ConfigError(f"MCP capability {spec.name}: unknown summariser kind {spec.summary!r}")
        if not spec.candidates:
            raise ConfigError(f"MCP capability {spec.name}: no tool candidates")
    return specs


def capability_tools(specs: Mapping[str, CapabilitySpec]) -> frozenset[str]:
    """Every tool any capability may call: together they are the read allowlist."""
    return frozenset(tool for spec in specs.values() for step in spec.candidates for tool in step.tools())


# ---------------------------------------------------------------- summarising


@dataclass
class Digest:
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    url: str | None = None
    status: EvidenceStatus = EvidenceStatus.ok
    subject: str | None = None  # overrides the capability's subject template


@dataclass
class SummaryInput:
    """What a summariser sees: the identifier, the decoded result and the ticket's identifiers."""

    value: str | None
    decoded: Decoded
    intake: Intake
    tool: str

    @property
    def result(self) -> Any:
        return self.decoded.value


Summariser = Callable[[SummaryInput], Digest]


# ---------------------------------------------------------------- templates


_PLACEHOLDER = re.compile(r"\{([a-z_]+(?:\.[A-Za-z0-9_$.]+)?)\}")


def hogql_string(value: str) -> str:
    """A HogQL string literal (single-quoted, backslash escapes). Control characters are dropped."""
    clean = "".join(ch for ch in value if ch >= " ")
    return "'" + clean.replace("\\", "\\\\").replace("'", "\\'") + "'"


def dig(obj: Any, path: str) -> Any:
    """`a.b.c` through nested dicts; None when any step is missing."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def fill(template: Any, context: Mapping[str, Any]) -> Any:
    """Fill `{name}` placeholders. A string that is exactly one placeholder keeps the value's own type."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            return _lookup(context, whole.group(1))
        return _PLACEHOLDER.sub(lambda m: str(_lookup(context, m.group(1))), template)
    if isinstance(template, list):
        return [fill(v, context) for v in template]
    if isinstance(template, dict):
        return {k: fill(v, context) for k, v in template.items()}
    return template


def _lookup(context: Mapping[str, Any], name: str) -> Any:
    if name.startswith("row."):
        return dig(context.get("row"), name[4:])
    if name not in context:
        raise KeyError(name)
    return context[name]


def pick_row(result: Any, pick: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first row of a list result (or the object itself) whose fields equal the filled templates.

    A field holding a list matches when it contains the value (`distinct_ids: "{value}"`). Strings compare
    case-insensitively (flag keys and emails are matched that way by the server too).
    """
    rows = result_rows(result)
    if rows is None:
        raise Unparseable("expected a list of rows to pick from")
    # the requester's email token is compared as the address the call was made with (triage.redaction)
    wanted = {path: reveal(fill(template, context)) for path, template in pick.items()}
    for row in rows:
        if all(_matches(dig(row, path), value) for path, value in wanted.items()):
            return row
    return None


def _matches(actual: Any, wanted: Any) -> bool:
    if isinstance(actual, list):
        return any(_matches(item, wanted) for item in actual)
    if isinstance(actual, str) and isinstance(wanted, str):
        return actual.casefold() == wanted.casefold()
    return actual == wanted


def result_rows(result: Any) -> list[dict[str, Any]] | None:
    """Rows of a list-shaped result: `{results: [...]}`, a bare list, or one object with an `id`/`key`."""
    if isinstance(result, list):
        return [r for r in result if isinstance(r, dict)]
    if isinstance(result, dict):
        for key in ("results", "data", "items"):
            if isinstance(result.get(key), list):
                return [r for r in result[key] if isinstance(r, dict)]
        if result.get("found") is False:
            return []
        if "id" in result or "key" in result:
            return [result]
    return None


# ---------------------------------------------------------------- the source


@dataclass(frozen=True)
class Target:
    """Where a ticket's calls go: the MCP client and the template context (e.g. its project id)."""

    client: McpToolClient
    context: Mapping[str, Any]


@dataclass
class _Run:
    """One executed chain: the last tool called, its arguments and the decoded result."""

    tool: str
    arguments: dict[str, Any]
    outcome: ToolOutcome | None = None
    decoded: Decoded | None = None
    row_missing: bool = False
    unparseable: str = ""  # why the result could not be read
    calls: list[str] = field(default_factory=list)


class McpCapabilitySource(McpSourceLifecycle):
    """Plan capability checks, resolve them against tools/list, run them guarded, summarise the results."""

    name: str
    client: McpToolClient
    capabilities: Mapping[str, CapabilitySpec]
    summarisers: Mapping[str, Summariser]
    contract: Contract | None = None
    context: dict[str, Any]
    _planned: dict[str, tuple[str, str | None, Intake]]

    def target(self, intake: Intake) -> Target:
        """The server (and context) for this ticket; one per source unless a subclass routes by customer."""
        return Target(self.client, self.context)

    # ---- planning

    def plan(self, intake: Intake, playbook: Playbook) -> list[ResearchTask]:
        tasks: list[ResearchTask] = []
        target = self.target(intake)
        for check in playbook.mcp_checks:
            spec = self.capabilities.get(check.capability)
            for value in self._values(check, spec, intake, playbook):
                shown = value if spec is None or spec.show_value else "requester"
                key = f"{self.name}:{check.capability}:{shown if value is not None else '-'}"
                if any(t.key == key for t in tasks):
                    continue
                self._planned[key] = (check.capability, value, intake)
                step = spec.candidates[0] if spec else None
                if spec is not None and target.client.tools is not None:
                    step = self._resolve(spec, target) or step
                title = self._title(spec, check.capability, value)
                tasks.append(
                    ResearchTask(
                        key=key,
                        source=self.name,
                        tool=step.tool if step else "",
                        arguments=self._masked(spec, self._arguments_or_empty(step, value, target), value),
                        description=f"{title} — {check.description}" if check.description else title,
                        first_party=spec.first_party if spec else False,
                    )
                )
        return tasks

    def _values(
        self, check: McpCheck, spec: CapabilitySpec | None, intake: Intake, playbook: Playbook
    ) -> list[str | None]:
        limit = max(0, check.limit)
        if check.identifier is None:
            return [None]
        if check.identifier == "symptom":
            return symptom_queries(intake, playbook, limit)
        raw = getattr(intake, check.identifier, None)
        if raw is None:
            raw = getattr(intake.identifiers, check.identifier, None)
        items = raw if isinstance(raw, list) else ([raw] if isinstance(raw, str) and raw else [])
        values: list[str | None] = []
        pattern = re.compile(spec.value_pattern) if spec and spec.value_pattern else None
        for item in items:
            text = (item.name if isinstance(item, Sdk) else str(item)).strip()
            if pattern is not None:
                found = pattern.search(text)
                text = found.group(1) if found else ""
            if text and text not in values:
                values.append(text)
        return values[:limit]

    def _title(self, spec: CapabilitySpec | None, name: str, value: str | None) -> str:
        title = spec.title if spec else name
        if spec is not None and not spec.show_value:
            return title
        return f"{title}: {bounded(value, 80)}" if value else title

    def _masked(
        self, spec: CapabilitySpec | None, arguments: dict[str, Any], value: str | None
    ) -> dict[str, Any]:
        """Planned arguments as shown before the call; a hidden value is replaced (the call refills it)."""
        if spec is None or spec.show_value or not value:
            return arguments
        masked: dict[str, Any] = json.loads(json.dumps(arguments).replace(value, "<requester>"))
        return masked

    def _query(self, spec: CapabilitySpec | None, arguments: Mapping[str, Any], value: str | None) -> str:
        """The call's arguments as stored text; a hidden value (the requester's email) is masked."""
        if not arguments:
            return ""
        text = bounded(dict(arguments), 500)
        if spec is not None and not spec.show_value and value:
            text = text.replace(value, "<requester>")
        return text

    def _arguments_or_empty(self, step: Step | None, value: str | None, target: Target) -> dict[str, Any]:
        if step is None:
            return {}
        try:
            filled = fill(step.arguments, self._context(value, None, target))
        except KeyError:
            return {}
        return filled if isinstance(filled, dict) else {}

    def _context(self, value: str | None, row: Any, target: Target | None = None) -> dict[str, Any]:
        context = dict(target.context if target else self.context)
        if value is not None:
            context["value"] = value
            context["value_hogql"] = hogql_string(value)
        context["row"] = row
        return context

    def _resolve(self, spec: CapabilitySpec, target: Target | None = None) -> Step | None:
        """The first candidate whose every tool the server offers."""
        tools = (target.client if target else self.client).tools or {}
        for step in spec.candidates:
            if all(tool in tools for tool in step.tools()):
                return step
        return None

    # ---- execution

    async def execute(self, task: ResearchTask) -> list[Evidence]:
        try:
            return [await self._execute(task)]
        except Exception as exc:  # never raise out of execute; cancellation still propagates
            log.exception("%s: task %s failed", self.name, task.key)
            return [self._row(task, EvidenceStatus.error, f"internal error: {describe_error(exc)}")]

    async def _execute(self, task: ResearchTask) -> Evidence:
        cap_name, value, intake = self._planned.get(task.key) or (*_split_key(task.key), Intake())
        spec = self.capabilities.get(cap_name)
        if spec is None:
            return self._row(task, EvidenceStatus.error, f"not available: unknown capability {cap_name!r}")
        target = self.target(intake)
        missing = [need for need in spec.needs if not target.context.get(need)]
        if missing:
            return self._row(
                task,
                EvidenceStatus.error,
                f"not available: {spec.title} needs {', '.join(missing)} configured",
            )
        client = target.client
        if client.tools is None and not await client.start():
            return self._row(task, EvidenceStatus.error, client.discovery_error or "could not connect")
        step = self._resolve(spec, target)
        if step is None:
            return self._row(
                task, EvidenceStatus.error, self._unavailable(spec, client), spec=spec, value=value
            )
        run = await self._run_chain(step, value, target)
        return self._evidence(task, spec, value, intake, run)

    def _unavailable(self, spec: CapabilitySpec, client: McpToolClient) -> str:
        tools = sorted({tool for step in spec.candidates for tool in step.tools()})
        absent = [tool for tool in tools if tool not in (client.tools or {})]
        scopes = sorted(
            {s for tool in absent for s in (self.contract.scopes_for(tool) if self.contract else ())}
        )
        message = f"not available on this server: {spec.name} (tools not in tools/list: {', '.join(absent)})"
        if scopes:
            message += f"; the API key may lack scope {', '.join(scopes)}"
        return message

    async def _run_chain(self, step: Step, value: str | None, target: Target) -> _Run:
        row: Any = None
        while True:
            context = self._context(value, row, target)
            try:
                arguments = fill(step.arguments, context)
            except KeyError as exc:
                run = _Run(step.tool, {})
                run.outcome = ToolOutcome(
                    step.tool, EvidenceStatus.error, error=f"no value for {{{exc.args[0]}}}"
                )
                return run
            run = _Run(step.tool, arguments)
            problems = self._argument_errors(step.tool, arguments, target.client)
            if problems:
                run.outcome = ToolOutcome(
                    step.tool,
                    EvidenceStatus.error,
                    error=f"arguments rejected by the pinned schema of {step.tool}: {'; '.join(problems[:3])}",
                )
                return run
            # the requester's email token becomes the address only inside the call (triage.redaction)
            run.outcome = await target.client.call(step.tool, reveal(arguments))
            if not run.outcome.ok:
                return run
            try:
                run.decoded = decode_result(run.outcome.text, run.outcome.structured, self._format(step.tool))
                if step.then is None:
                    return run
                row = pick_row(run.decoded.value, step.pick or {}, context)
            except Unparseable as exc:
                run.unparseable = str(exc)
                return run
            if row is None:
                run.row_missing = True
                return run
            step = step.then

    def _argument_errors(self, tool: str, arguments: Mapping[str, Any], client: McpToolClient) -> list[str]:
        pinned = self.contract.get(tool) if self.contract else None
        if pinned is not None:
            return argument_errors(pinned.input_schema, arguments)
        announced = (client.tools or {}).get(tool)
        schema = announced.input_schema if announced is not None else None
        return argument_errors(schema, arguments) if isinstance(schema, dict) and schema else []

    def _format(self, tool: str) -> str:
        pinned = self.contract.get(tool) if self.contract else None
        return str(pinned.result.get("format", "auto")) if pinned else "auto"

    def _evidence(
        self, task: ResearchTask, spec: CapabilitySpec, value: str | None, intake: Intake, run: _Run
    ) -> Evidence:
        done = task.model_copy(update={"tool": run.tool, "arguments": run.arguments})
        outcome = run.outcome
        assert outcome is not None
        if not outcome.ok:
            return self._row(
                done,
                outcome.status,
                outcome.error or outcome.status.value,
                spec=spec,
                value=value,
                latency_ms=outcome.latency_ms,
            )
        if run.unparseable:
            return self._row(
                done,
                EvidenceStatus.error,
                f"unparseable result from {run.tool}: {run.unparseable}",
                spec=spec,
                value=value,
                latency_ms=outcome.latency_ms,
            )
        if run.row_missing:
            digest = Digest(f"{spec.title}: nothing matches {value}", status=EvidenceStatus.empty)
        else:
            assert run.decoded is not None
            try:
                digest = self.summarisers[spec.summary](SummaryInput(value, run.decoded, intake, run.tool))
            except (Unparseable, KeyError, TypeError, ValueError, AttributeError) as exc:
                reason = (
                    str(exc) if isinstance(exc, Unparseable) else f"unexpected shape ({type(exc).__name__})"
                )
                return self._row(
                    done,
                    EvidenceStatus.error,
                    f"unparseable result from {run.tool}: {reason}",
                    spec=spec,
                    value=value,
                    latency_ms=outcome.latency_ms,
                )
        subject = digest.subject if digest.subject is not None else self._subject(spec, value)
        return Evidence(
            task_key=task.key,
            source=self.name,
            tool=run.tool,
            query=self._query(spec, run.arguments, value),
            subject=subject,
            status=digest.status,
            title=self._title(spec, spec.name, value),
            summary=bounded(digest.summary, MAX_SUMMARY),
            url=digest.url,
            excerpt="" if spec.first_party else bounded(run.decoded.value if run.decoded else outcome.text),
            latency_ms=outcome.latency_ms,
            first_party=spec.first_party,
            internal=spec.first_party,
            data=digest.data,
        )

    def _subject(self, spec: CapabilitySpec | None, value: str | None) -> str:
        if spec is None or not spec.subject:
            return ""
        try:
            return str(fill(spec.subject, self._context(value, None)))
        except KeyError:
            return ""

    def _row(
        self,
        task: ResearchTask,
        status: EvidenceStatus,
        summary: str,
        *,
        spec: CapabilitySpec | None = None,
        value: str | None = None,
        latency_ms: int = 0,
    ) -> Evidence:
        return Evidence(
            task_key=task.key,
            source=self.name,
            tool=task.tool,
            query=self._query(spec, task.arguments, value),
            subject=self._subject(spec, value),
            status=status,
            title=task.description.split(" — ")[0] if task.description else task.tool,
            summary=bounded(summary, MAX_SUMMARY),
            latency_ms=latency_ms,
            first_party=task.first_party,
            internal=task.first_party,
        )


def _split_key(key: str) -> tuple[str, str | None]:
    parts = key.split(":", 2)
    if len(parts) < 3:
        return "", None
    return parts[1], (None if parts[2] == "-" else parts[2])


def symptom_queries(intake: Intake, playbook: Playbook, limit: int) -> list[str | None]:
    """The symptom (keywords from the ticket) first, then the playbook's standing docs queries."""
    queries: list[str] = []
    symptom = " ".join(intake.symptom_keywords[:6]).strip()
    for query in [symptom, *intake.search_queries, *playbook.docs_queries]:
        query = query.strip()[:200]
        if query and query.casefold() not in (q.casefold() for q in queries):
            queries.append(query)
    return list(queries[:limit])
