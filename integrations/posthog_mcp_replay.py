"""A PostHog-like MCP server built from the pinned contract, serving a recorded demo project.

Used by `triagebot demo` (served in-process through the real MCP protocol) and by the tests (served over
streamable HTTP by `tests/fakes/mcp_server.py`). It is derived from the real server, not from memory:

- it lists exactly the tools of `integrations/contracts/posthog_mcp.json` — names, `inputSchema`,
  annotations — and hides the tools whose scopes the key lacks (like the real server does);
- it validates arguments the way the real server's zod schemas do: wrong types and missing required fields
  are an `isError` result (`Error: [tool]: …`), unknown keys are stripped, not rejected;
- it answers in the real formats (`services/mcp/src/lib/response.ts` → `formatResponse`): TOON via the
  official `toon-format` package with `query` values spliced back in as pretty JSON, list rows trimmed to
  the fields the real tool keeps (`pickResponseFields`), `_posthogUrl` links, the `execute-sql` pipe table
  (`SQLResultsFormatter`) and `docs-search` as `{content: markdown}`;
- API failures look like the real ones (`services/mcp/src/lib/errors.ts`): a 404 `Request failed` body,
  `PostHog API rate limit exceeded (429) … Retry after N seconds.`, `Missing PostHog API scope: '…'`;
- `x-posthog-read-only: true|1` / `?readonly=true|1` list only `readOnlyHint` tools; `?tools=` narrows the
  list (`services/mcp/src/lib/request-properties.ts`). In-process (the demo) there are no headers, so every
  tool is listed and triagebot's own guard is what stops the write tools.

The demo project's data (`integrations/recorded/posthog_mcp.json`) is what the PostHog *API* returns; this
module applies the MCP layer on top. Tests can inject faults (`fail_next`), restrict scopes, change a
tool's annotations (the server then sends `notifications/tools/list_changed`), or add extra tools.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mcp.server.lowlevel import Server
from mcp.types import (
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
)
from toon_format import encode as toon_encode

from integrations.mcp_contract import (
    Contract,
    argument_errors,
    posthog_contract,
    without_additional_properties,
)

RECORDED_PATH = Path(__file__).parent / "recorded" / "posthog_mcp.json"
APP_HOST = "https://us.posthog.com"
NULL_MARKER = "(null)"

Handler = Callable[[dict[str, Any]], Any]
ExtraHandler = Callable[[dict[str, Any]], Awaitable[str]]


class ApiError(Exception):
    """A PostHog API failure, rendered the way `handleToolError` renders it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass
class ToolCall:
    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)


def load_recorded(path: Path | str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path or RECORDED_PATH).read_text(encoding="utf-8"))
    return data


# ---------------------------------------------------------------- the real server's formatting, in Python


def format_response(data: Any) -> str:
    """`formatResponse`: strings pass through; objects are TOON with `query` values as pretty JSON."""
    if isinstance(data, str):
        return data
    queries: dict[str, str] = {}

    def protect(obj: Any) -> Any:
        if isinstance(obj, list):
            return [protect(v) for v in obj]
        if isinstance(obj, dict):
            out = {}
            for key, value in obj.items():
                if key == "query" and value is not None:
                    placeholder = f"__QUERY_PLACEHOLDER_{len(queries)}__"
                    queries[placeholder] = json.dumps(value, indent=2, ensure_ascii=False)
                    out[key] = placeholder
                else:
                    out[key] = protect(value)
            return out
        return obj

    text = toon_encode(protect(data))
    for placeholder, value in queries.items():
        text = text.replace(placeholder, value, 1)
    return text


def pick_fields(item: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """`pickResponseFields`: keep dotted paths (`properties.email`, `teams.*.id`) and nothing else."""
    out: dict[str, Any] = {}
    for path in paths:
        _copy_path(item, out, path.split("."))
    return out


def _copy_path(src: Any, dst: dict[str, Any], parts: list[str]) -> None:
    if not isinstance(src, dict) or parts[0] not in src:
        return
    head, rest = parts[0], parts[1:]
    value = src[head]
    if not rest:
        dst[head] = value
    elif rest[0] == "*" and isinstance(value, list):
        items = dst.setdefault(head, [{} for _ in value])
        for source_item, target in zip(value, items, strict=False):
            if len(rest) > 1:
                _copy_path(source_item, target, rest[1:])
    elif isinstance(value, dict):
        _copy_path(value, dst.setdefault(head, {}), rest)


def omit_fields(item: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    out = json.loads(json.dumps(item))
    for path in paths:
        *parents, last = path.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


def redact_url(url: Any) -> Any:
    """`redactResponseUrls`: keep scheme, host and path; drop query string and fragment."""
    if not isinstance(url, str) or "://" not in url:
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def sql_table(columns: list[str], rows: list[list[Any]]) -> str:
    """`SQLResultsFormatter.format()` (MCP: no result budget; JSON cells over 500 chars shortened)."""
    lines = ["|".join(columns)]
    for row in rows:
        lines.append("|".join(_sql_cell(cell) for cell in row))
    return "\n".join(lines)


def _sql_cell(cell: Any) -> str:
    if cell is None:
        return NULL_MARKER
    text = str(cell)
    if text == NULL_MARKER:
        return f'"{NULL_MARKER}"'
    if (isinstance(cell, dict | list) or text[:1] in "[{") and len(text) > 500:
        return text[:500] + "...truncated"
    return text


# ---------------------------------------------------------------- the server


class PostHogLikeServer:
    """The fake. `server` is the `mcp` low-level `Server` to serve (in-process or over HTTP)."""

    def __init__(
        self,
        data: dict[str, Any],
        contract: Contract,
        *,
        exclude_tools: tuple[str, ...] = (),
        page_size: int | None = None,
    ) -> None:
        self.data = data
        self.contract = contract
        self.page_size = page_size
        self.project_id = int(data.get("project", {}).get("id", 1))
        self.tools: dict[str, Tool] = {
            name: spec.as_mcp_tool() for name, spec in contract.tools.items() if name not in exclude_tools
        }
        self.extra: dict[str, ExtraHandler] = {}
        self.mutating: set[str] = set()  # extra tools that change data whatever their annotations say
        self.calls: list[ToolCall] = []
        self.scopes: set[str] | None = None  # None: the key has every scope
        self.fail_next: dict[str, deque[str]] = defaultdict(deque)  # tool → ["rate_limit:2", "garbage", …]
        self._tools_changed = False
        self._handlers: dict[str, Handler] = self._read_handlers()
        self.server: Server[Any] = Server(
            "posthog",
            version="contract",
            instructions="PostHog MCP (demo project from a recording, served through the pinned contract).",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    # ---- test controls

    @property
    def write_calls(self) -> list[ToolCall]:
        """Calls that changed (or could change) data and actually ran (must stay empty under triagebot)."""
        return [c for c in self.calls if c.tool in self.mutating or not _is_read_only(self.tools.get(c.tool))]

    def set_annotations(self, tool: str, **hints: bool) -> None:
        """Change a tool's annotations; the next answer carries `notifications/tools/list_changed`."""
        current = self.tools[tool]
        annotations = current.annotations.model_copy(update=hints) if current.annotations else None
        self.tools[tool] = current.model_copy(update={"annotations": annotations})
        self._tools_changed = True

    def add_extra_tool(self, tool: Tool, handler: ExtraHandler) -> None:
        """A tool outside the contract (slow tools, lying tools) for guard and timeout tests."""
        self.tools[tool.name] = tool
        self.extra[tool.name] = handler

    # ---- MCP handlers

    async def _list_tools(self, ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
        tools = [t for t in self.tools.values() if self._visible(t, ctx)]
        if not self.page_size:
            return ListToolsResult(tools=tools)
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + self.page_size
        return ListToolsResult(tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None)

    def _visible(self, tool: Tool, ctx: Any) -> bool:
        options = _request_options(ctx)
        if options["read_only"] and not _is_read_only(tool):
            return False
        if options["tools"] and tool.name not in options["tools"]:
            return False
        missing = self._missing_scopes(tool.name)
        return not missing

    def _missing_scopes(self, tool: str) -> list[str]:
        if self.scopes is None:
            return []
        return [s for s in self.contract.scopes_for(tool) if s not in self.scopes]

    async def _call_tool(self, ctx: Any, params: CallToolRequestParams) -> CallToolResult:
        name, arguments = params.name, dict(params.arguments or {})
        if self._tools_changed:
            self._tools_changed = False
            await ctx.session.send_tool_list_changed()
        tool = self.tools.get(name)
        if tool is None or not self._visible(tool, ctx):
            return _error(f"Tool {name} not found")
        if name in self.extra:
            self.calls.append(ToolCall(name, arguments))
            return _text(await self.extra[name](arguments))
        spec = self.contract.get(name)
        assert spec is not None
        problems = argument_errors(without_additional_properties(spec.input_schema), arguments)
        if problems:
            return _error(f"Error: [{name}]: Invalid input: {'; '.join(problems)}")
        known = spec.input_schema.get("properties") or {}
        arguments = {k: v for k, v in arguments.items() if k in known}  # zod strips unknown keys
        self.calls.append(ToolCall(name, arguments))
        fault = self.fail_next[name].popleft() if self.fail_next[name] else ""
        if fault:
            return self._fault(name, fault)
        try:
            result = self._handlers[name](arguments)
        except ApiError as exc:
            return _error(f"Error: [{name}]: {exc}")
        return _text(format_response(result))

    def _fault(self, name: str, fault: str) -> CallToolResult:
        kind, _, arg = fault.partition(":")
        if kind == "rate_limit":
            url = f"{APP_HOST}/api/projects/{self.project_id}/"
            return _error(
                f"Error: [{name}]: PostHog API rate limit exceeded (429) on GET {url}. Retry after {arg or 1} seconds."
            )
        if kind == "scope":
            return _error(
                f"Error: [{name}]: Missing PostHog API scope: '{arg}'\n\nYour Personal API key is missing the '{arg}' scope."
            )
        if kind == "garbage":
            return _text(arg or "<html><body>502 Bad Gateway</body></html>")
        raise ValueError(f"unknown fault {fault!r}")

    # ---- read tools over the recorded API data

    def _read_handlers(self) -> dict[str, Handler]:
        return {
            "feature-flag-get-definition-by-key": self._flag_by_key,
            "feature-flag-get-definition": lambda a: self._url(
                self._flag_by_id(a["id"]), "feature-flag-get-definition"
            ),
            "feature-flag-get-all": self._flags_list,
            "feature-flags-evaluation-reasons-retrieve": lambda a: self.data.get(
                "evaluation_reasons", {}
            ).get(a["distinct_id"], {}),
            "feature-flags-activity-retrieve": self._flag_activity,
            "persons-list": self._persons_list,
            "persons-retrieve": self._person,
            "execute-sql": self._sql,
            "query-error-tracking-issues-list": self._issues_list,
            "query-error-tracking-issue": self._issue,
            "query-error-tracking-issue-events": self._issue_events,
            "survey-get": lambda a: self._url(self._by_id("surveys", a["id"], "surveys"), "survey-get"),
            "surveys-get-all": self._surveys_list,
            "survey-stats": self._survey_stats,
            "query-session-recordings-list": self._recordings_list,
            "session-recording-get": self._recording,
            "health-issues-list": self._health_issues,
            "project-get": self._project,
            "organization-get": lambda a: self._shape("organization-get", self.data["organization"]),
            "docs-search": self._docs,
            "create-feature-flag": self._write,
            "update-feature-flag": self._write,
            "delete-feature-flag": self._write,
            "persons-property-set": self._write,
            "project-settings-update": self._write,
        }

    def _api_path(self, path: str) -> str:
        return f"/api/projects/{self.project_id}/{path}"

    def _not_found(self, path: str) -> ApiError:
        body = '{"type":"invalid_request","code":"not_found","detail":"Not found.","attr":null}'
        return ApiError(
            f"Request failed:\nPath: GET {self._api_path(path)}\nStatus Code: 404 (Not Found)\nError Message: {body}"
        )

    def _url(self, item: dict[str, Any], tool: str) -> dict[str, Any]:
        template = self.contract.tools[tool].result.get("url")
        if not template:
            return item
        path = template.format(**{k: item.get(k, "") for k in ("id", "key")}, issueId=item.get("id", ""))
        return {**item, "_posthogUrl": f"{APP_HOST}/project/{self.project_id}{path}"}

    def _shape(self, tool: str, item: dict[str, Any]) -> dict[str, Any]:
        result = self.contract.tools[tool].result
        if result.get("omit"):
            item = omit_fields(item, result["omit"])
        for key in result.get("redact_urls", []):
            if key in item:
                item = {**item, key: redact_url(item[key])}
        if result.get("fields"):
            item = pick_fields(item, result["fields"])
        return self._url(item, tool)

    def _page(self, tool: str, rows: list[dict[str, Any]], arguments: Mapping[str, Any]) -> dict[str, Any]:
        result = self.contract.tools[tool].result
        limit = int(arguments.get("limit") or 100)
        offset = int(arguments.get("offset") or 0)
        page = rows[offset : offset + limit]
        shaped = []
        for row in page:
            for key in result.get("redact_urls", []):
                if key in row:
                    row = {**row, key: redact_url(row[key])}
            if result.get("list_fields"):
                row = pick_fields(row, result["list_fields"])
            shaped.append(self._url(row, tool) if "url" in result else row)
        more = offset + limit < len(rows)
        return {"count": len(rows), "next": "…" if more else None, "previous": None, "results": shaped}

    def _by_id(self, collection: str, value: Any, path: str) -> dict[str, Any]:
        for item in self.data.get(collection, []):
            if str(item.get("id")) == str(value) or str(item.get("uuid", "")) == str(value):
                return dict(item)
        raise self._not_found(f"{path}/{value}/")

    def _flag_by_id(self, value: Any) -> dict[str, Any]:
        return self._by_id("feature_flags", value, "feature_flags")

    def _flag_by_key(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        key = str(arguments["key"]).strip()
        flags = [
            f
            for f in self.data.get("feature_flags", [])
            if str(f.get("key", "")).casefold() == key.casefold()
        ]
        exact = [f for f in flags if f.get("key") == key]
        match = exact[0] if exact else (flags[0] if len(flags) == 1 else None)
        if match is None:
            return {
                "found": False,
                "key": key,
                "message": f"No feature flag with key '{key}' exists in this project.",
            }
        return {**self._url(dict(match), "feature-flag-get-definition"), "found": True}

    def _flags_list(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        search = str(arguments.get("search") or "").casefold()
        rows = [
            f
            for f in self.data.get("feature_flags", [])
            if not search
            or search in str(f.get("key", "")).casefold()
            or search in str(f.get("name", "")).casefold()
        ]
        page = self._page("feature-flag-get-all", rows, arguments)
        return {**page, "_posthogUrl": f"{APP_HOST}/project/{self.project_id}/feature_flags"}

    def _flag_activity(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        flag = self._flag_by_id(arguments["id"])
        rows = self.data.get("flag_activity", {}).get(str(flag["id"]), [])
        limit = int(arguments.get("limit") or 10)
        return {"results": rows[:limit], "next": None, "previous": None, "total_count": len(rows)}

    def _persons_list(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        rows = list(self.data.get("persons", []))
        if arguments.get("distinct_id"):
            rows = [p for p in rows if arguments["distinct_id"] in p.get("distinct_ids", [])]
        if arguments.get("email"):
            rows = [p for p in rows if (p.get("properties") or {}).get("email") == arguments["email"]]
        if arguments.get("search"):
            term = str(arguments["search"]).casefold()
            rows = [
                p
                for p in rows
                if term in str((p.get("properties") or {}).get("email", "")).casefold()
                or term in p.get("distinct_ids", [])
            ]
        return self._page("persons-list", rows, arguments)

    def _person(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        return self._shape("persons-retrieve", self._by_id("persons", arguments["id"], "persons"))

    def _sql(self, arguments: Mapping[str, Any]) -> str:
        query = str(arguments["query"])
        for entry in self.data.get("sql", []):
            if entry["when"] in query:
                return sql_table(entry["columns"], entry["results"])
        columns = [part.rsplit(" AS ", 1)[-1].strip() for part in _select_list(query)]
        return sql_table(columns, [])

    def _issues_list(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        rows = list(self.data.get("error_issues", []))
        status = arguments.get("status", "active")
        if status != "all":
            rows = [r for r in rows if r.get("status") == status]
        if arguments.get("searchQuery"):
            term = str(arguments["searchQuery"]).casefold()
            rows = [r for r in rows if term in f"{r.get('name', '')} {r.get('description', '')}".casefold()]
        if arguments.get("fingerprint"):
            rows = [r for r in rows if arguments["fingerprint"] in r.get("fingerprints", [])]
        return self._page("query-error-tracking-issues-list", rows, {"limit": arguments.get("limit", 25)})

    def _issue(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        issue = self._by_id("error_issues", arguments["issueId"], "error_tracking/issues")
        issue.pop("fingerprints", None)
        return self._url(issue, "query-error-tracking-issue")

    def _issue_events(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        self._by_id("error_issues", arguments["issueId"], "error_tracking/issues")
        rows = self.data.get("error_events", {}).get(arguments["issueId"], [])
        return {"results": rows[: int(arguments.get("limit") or 1)]}

    def _surveys_list(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        term = str(arguments.get("search") or "").casefold()
        rows = [
            s
            for s in self.data.get("surveys", [])
            if not term
            or any(
                word in f"{s.get('name', '')} {s.get('description', '')}".casefold() for word in term.split()
            )
        ]
        return self._page("surveys-get-all", rows, arguments)

    def _survey_stats(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        self._by_id("surveys", arguments["id"], "surveys")
        return self.data.get("survey_stats", {}).get(arguments["id"]) or {"stats": {}, "rates": {}}

    def _recordings_list(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        rows = list(self.data.get("recordings", []))
        if arguments.get("person_uuid"):
            rows = [r for r in rows if (r.get("person") or {}).get("uuid") == arguments["person_uuid"]]
        if arguments.get("session_ids"):
            rows = [r for r in rows if r.get("id") in arguments["session_ids"]]
        rows = [omit_fields(r, ["person"]) for r in rows]
        page = self._page("query-session-recordings-list", rows, {"limit": arguments.get("limit", 50)})
        return {"results": page["results"], "has_next": page["next"] is not None}

    def _recording(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        return self._shape(
            "session-recording-get", self._by_id("recordings", arguments["id"], "session_recordings")
        )

    def _health_issues(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        rows = [r for r in self.data.get("health_issues", []) if not r.get("dismissed")]
        page = self._page("health-issues-list", rows, arguments)
        return {**page, "_posthogUrl": f"{APP_HOST}/project/{self.project_id}/health"}

    def _project(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        project = self.data["project"]
        if str(arguments["id"]) != str(project["id"]):
            raise self._not_found(f"../organizations/@current/projects/{arguments['id']}")
        return project

    def _docs(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        query = str(arguments["query"]).casefold()
        for entry in self.data.get("docs", []):
            if any(word in query for word in entry["when"]):
                return {"content": entry["content"]}
        return {"content": ""}

    def _write(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        return {"success": True, **arguments}


def _select_list(query: str) -> list[str]:
    head = query.split(" FROM ", 1)[0].removeprefix("SELECT ").strip()
    depth, current, parts = 0, "", []
    for ch in head:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p for p in [*parts, current] if p.strip()]


def _is_read_only(tool: Tool | None) -> bool:
    hints = tool.annotations if tool is not None else None
    return bool(hints and hints.read_only_hint is True)


def _request_options(ctx: Any) -> dict[str, Any]:
    """What the real server reads from the HTTP request: read-only switch and `?tools=`."""
    request = getattr(ctx, "request", None)
    if request is None:
        return {"read_only": False, "tools": set()}
    headers = getattr(request, "headers", {})
    query = getattr(request, "query_params", {})
    raw = headers.get("x-posthog-read-only") or query.get("readonly")
    tools = {t for t in (query.get("tools") or "").split(",") if t}
    return {"read_only": raw in ("true", "1"), "tools": tools}


def _text(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)])


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def build_posthog_like_server(
    data: dict[str, Any] | None = None,
    *,
    exclude_tools: tuple[str, ...] = (),
    page_size: int | None = None,
    contract: Contract | None = None,
) -> PostHogLikeServer:
    """The fake over the bundled recording (or `data`), serving the pinned contract."""
    return PostHogLikeServer(
        data if data is not None else load_recorded(),
        contract or posthog_contract(),
        exclude_tools=exclude_tools,
        page_size=page_size,
    )
