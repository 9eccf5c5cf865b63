"""A guarded, reusable MCP client (official `mcp` 2.x SDK) shared by every MCP research source.

One seam: a `ClientFactory` — a callable taking the client's notification handler and returning an async
context manager that yields a connected `mcp.Client`. `http_client_factory` builds one over streamable HTTP (headers on our own
`httpx2.AsyncClient`); `inprocess_client_factory` wraps an in-process server object (`triagebot demo`,
tests). Everything else — discovery, the read-only guard, timeouts, retries, concurrency, reconnects,
result classification, rate limits, re-checking annotations after `notifications/tools/list_changed` —
is shared. Tool results are returned as text (+ `structuredContent`); decoding them is the caller's job
(`integrations/mcp_decode.py`), because only the caller knows which format a tool answers in.

Lifecycle: the session is opened lazily on first use and reused by every call of the process. It is
held open by a small owner task (the SDK's anyio task groups must be entered and exited by the same
task, while calls come from many tasks). A connection failure closes it; the next attempt reconnects.
`aclose()` ends it. Nothing here raises out of `call()`: every outcome is a `ToolOutcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
from mcp import Client, MCPError
from mcp.client.session import IncomingMessage, MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.types import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    REQUEST_TIMEOUT,
    CallToolResult,
    Implementation,
    TextContent,
    Tool,
    ToolListChangedNotification,
)

from integrations.http import tls_context
from integrations.mcp_guard import ReadOnlyGuard
from triage.models import Evidence, EvidenceStatus, ResearchTask

log = logging.getLogger(__name__)
T = TypeVar("T")

ClientFactory = Callable[[MessageHandlerFnT | None], AbstractAsyncContextManager[Client]]

CLIENT_INFO = Implementation(name="triagebot", version="0.1.0")
MAX_EXCERPT = 1500
MAX_QUERY = 500
MAX_LIST_PAGES = 50
# PostHog's `PostHogRateLimitError` text (services/mcp/src/lib/errors.ts); the server never retries itself.
RATE_LIMITED = re.compile(r"rate limit exceeded \(429\)|too many requests|\b429\b", re.IGNORECASE)
RETRY_AFTER = re.compile(r"retry after (\d+) seconds?", re.IGNORECASE)


# ---------------------------------------------------------------- factories (the one seam)


@dataclass
class HttpStatus:
    """The last HTTP error status the MCP endpoint answered (the SDK turns it into a generic MCP error)."""

    last_error: int | None = None

    async def record(self, response: httpx2.Response) -> None:
        if response.status_code >= 400:
            self.last_error = response.status_code


def http_client_factory(
    url: str,
    headers: Mapping[str, str],
    *,
    timeout_s: float = 15.0,
    mode: str = "auto",
    status: HttpStatus | None = None,
) -> ClientFactory:
    """Streamable HTTP. Headers (bearer token, pins) ride on our own httpx2 client.

    The HTTP read timeout is kept well above the MCP per-call timeout, so a slow tool ends as an MCP
    REQUEST_TIMEOUT for that call only, instead of an HTTP error that would tear the transport down.
    """
    http_timeout = httpx2.Timeout(
        timeout=timeout_s, connect=min(10.0, timeout_s), read=max(60.0, timeout_s * 4)
    )

    @asynccontextmanager
    async def open_client(message_handler: MessageHandlerFnT | None = None) -> AsyncIterator[Client]:
        hooks = {"response": [status.record]} if status is not None else {}
        async with httpx2.AsyncClient(
            headers=dict(headers),
            timeout=http_timeout,
            follow_redirects=False,
            event_hooks=hooks,
            verify=tls_context(),  # one per process: a new client would load the CA bundle again
        ) as http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(
                transport,
                read_timeout_seconds=timeout_s,
                mode=mode,
                client_info=CLIENT_INFO,
                message_handler=message_handler,
            ) as client:
                yield client

    return open_client


def inprocess_client_factory(server: Any, *, timeout_s: float = 15.0, mode: str = "auto") -> ClientFactory:
    """An in-process server (`MCPServer` or low-level `Server`): the real MCP protocol, no sockets."""

    def open_client(message_handler: MessageHandlerFnT | None = None) -> AbstractAsyncContextManager[Client]:
        return Client(
            server,
            read_timeout_seconds=timeout_s,
            mode=mode,
            client_info=CLIENT_INFO,
            message_handler=message_handler,
        )

    return open_client


# ---------------------------------------------------------------- outcomes


@dataclass
class ToolOutcome:
    """What happened to one guarded tool call. `status` uses the evidence vocabulary."""

    tool: str
    status: EvidenceStatus
    text: str = ""  # joined text content
    structured: Any = None  # structuredContent, when the tool sent it
    error: str = ""  # one line: why refused / failed / timed out / rate limited
    latency_ms: int = 0
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.status is EvidenceStatus.ok


class _Retryable(Exception):
    """A transient failure (connection, 5xx, closed session): retry, maybe after reconnecting."""

    def __init__(self, message: str, *, reconnect: bool) -> None:
        super().__init__(message)
        self.reconnect = reconnect


def describe_error(exc: BaseException) -> str:
    """One line for an exception, unwrapping the ExceptionGroups anyio raises."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.message}"
    if isinstance(exc, _Retryable):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _classify(exc: Exception) -> _Retryable | MCPError | Exception:
    inner: BaseException = exc
    while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
        inner = inner.exceptions[0]
    if isinstance(inner, MCPError):
        if inner.code == REQUEST_TIMEOUT:
            return inner
        if inner.code == CONNECTION_CLOSED or "session terminated" in inner.message.lower():
            return _Retryable(describe_error(inner), reconnect=True)
        if inner.code == INTERNAL_ERROR:  # the transport's stand-in for HTTP 5xx
            return _Retryable(describe_error(inner), reconnect=False)
        return inner
    if isinstance(inner, httpx2.HTTPError | OSError | EOFError | ConnectionError | TimeoutError):
        return _Retryable(describe_error(inner), reconnect=True)
    if isinstance(inner, Exception) and type(inner).__module__.startswith("anyio"):
        return _Retryable(describe_error(inner), reconnect=True)  # closed/broken streams
    return exc


# ---------------------------------------------------------------- the held-open session


class _Connection:
    """One open `Client`, owned by a background task until `close()` or a transport failure."""

    def __init__(self, factory: ClientFactory, message_handler: MessageHandlerFnT | None = None) -> None:
        self._factory = factory
        self._message_handler = message_handler
        self._stop = asyncio.Event()
        self._ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._own(), name="mcp-connection")
        self.failure = ""

    @property
    def alive(self) -> bool:
        return not self._task.done() and not self._stop.is_set()

    async def _own(self) -> None:
        try:
            async with self._factory(self._message_handler) as client:
                self._ready.set_result(client)
                await self._stop.wait()
        except BaseException as exc:  # the owner must never leak an exception into the loop
            self.failure = describe_error(exc)
            if not self._ready.done():
                self._ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(self.failure))
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.debug("MCP connection ended: %s", self.failure)
        finally:
            if not self._ready.done():
                self._ready.set_exception(RuntimeError("connection closed"))

    async def client(self, timeout_s: float) -> Client:
        try:
            return await asyncio.wait_for(asyncio.shield(self._ready), timeout_s)
        except TimeoutError:
            await self.close()
            raise TimeoutError(f"connect timed out after {timeout_s:g}s") from None

    async def close(self) -> None:
        self._stop.set()
        if not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
        if self._ready.done() and not self._ready.cancelled():
            self._ready.exception()  # mark retrieved


# ---------------------------------------------------------------- the guarded client


@dataclass
class McpToolClient:
    """Guarded MCP tool calls for one server. Safe to share across concurrent tasks of one loop."""

    name: str
    factory: ClientFactory
    guard: ReadOnlyGuard
    timeout_s: float = 15.0
    max_retries: int = 2
    concurrency: int = 4
    backoff_s: float = 0.5
    rediscover_after_s: float = 30.0
    credential: str = ""  # the setting that holds the key, named in auth failures ("POSTHOG_API_KEY")
    max_rate_limit_wait_s: float = 10.0  # one wait per Retry-After, only when it fits in this budget
    http_status: HttpStatus | None = None  # set with the HTTP factory's `status`, to name auth failures

    tools: dict[str, Tool] | None = field(default=None, init=False)  # None until discovery succeeds
    discovery_error: str = field(default="", init=False)
    connects: int = field(default=0, init=False)  # how many sessions were opened (for tests and logs)
    _conn: _Connection | None = field(default=None, init=False, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _lock: asyncio.Lock | None = field(default=None, init=False, repr=False)
    _discover_lock: asyncio.Lock | None = field(default=None, init=False, repr=False)
    _sem: asyncio.Semaphore | None = field(default=None, init=False, repr=False)
    _last_discovery_failure: float = field(default=0.0, init=False, repr=False)
    _tools_stale: bool = field(default=False, init=False, repr=False)  # tools/list_changed was announced
    rechecks: int = field(default=0, init=False)  # how many times tools were re-listed after a change

    # ---- loop-bound state (a source object may outlive one event loop, e.g. across tests)

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        self._conn = None  # a connection from another loop cannot be used (or closed) here
        self._lock = asyncio.Lock()
        self._discover_lock = asyncio.Lock()
        self._sem = asyncio.Semaphore(max(1, self.concurrency))

    async def _client(self, attempt: _Attempt) -> Client:
        self._bind_loop()
        assert self._lock is not None
        async with self._lock:
            if self._conn is None or not self._conn.alive:
                self._conn = _Connection(self.factory, self._on_message)
                self.connects += 1
            conn = self._conn
        attempt.conn = conn
        return await conn.client(self.timeout_s)

    async def _drop(self, conn: _Connection | None = None) -> None:
        """Close `conn` (default: the current one) unless another task already replaced it."""
        current = self._conn
        if current is None or (conn is not None and conn is not current):
            if conn is not None:
                await conn.close()
            return
        self._conn = None
        await current.close()

    async def aclose(self) -> None:
        """Close the session (if any). The client stays usable: the next call reconnects."""
        if self._loop is asyncio.get_running_loop():
            await self._drop()
        self._conn = None

    # ---- discovery

    async def start(self) -> bool:
        """Connect and list the server's tools (paginated). Never raises; False when it failed."""
        self._bind_loop()
        assert self._discover_lock is not None
        async with self._discover_lock:
            if self.tools is not None:
                return True
            if (
                self._last_discovery_failure
                and time.monotonic() - self._last_discovery_failure < self.rediscover_after_s
            ):
                return False
            try:
                self.tools = await self._with_retries(self._list_all_tools)
                self.discovery_error = ""
                log.info("%s: %d tools discovered", self.name, len(self.tools))
                return True
            except Exception as exc:
                reason = describe_error(exc)
                self.discovery_error = f"could not connect to the {self.name} MCP server: {reason}"
                auth = _auth_failure(exc) or (self.http_status.last_error if self.http_status else None)
                if auth == 401:
                    key = self.credential or "the API key"
                    self.discovery_error = (
                        f"the {self.name} MCP server rejected {key} (HTTP 401 Unauthorized)"
                    )
                elif auth == 403:
                    key = self.credential or "the API key"
                    self.discovery_error = f"the {self.name} MCP server refused {key} (HTTP 403): the key lacks a scope or project access"
                self._last_discovery_failure = time.monotonic()
                log.warning("%s", self.discovery_error)
                return False

    async def _list_all_tools(self, attempt: _Attempt) -> dict[str, Tool]:
        client = await self._client(attempt)
        found: dict[str, Tool] = {}
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            for tool in page.tools:
                found[tool.name] = tool
            cursor = page.next_cursor
            if not cursor:
                break
        return found

    def has_tool(self, name: str) -> bool:
        return self.tools is not None and name in self.tools

    @property
    def tools_stale(self) -> bool:
        """The server announced a changed tool list; the next call re-lists tools first."""
        return self._tools_stale

    async def _on_message(self, message: IncomingMessage) -> None:
        """Server notifications: `tools/list_changed` makes the next call re-list tools and re-check the guard."""
        if isinstance(message, ToolListChangedNotification):
            log.info("%s: the server announced a changed tool list", self.name)
            self._tools_stale = True

    async def _recheck_tools(self) -> None:
        """Re-list tools after a change announcement, so annotations are re-checked before the next use."""
        self._tools_stale = False
        self.rechecks += 1
        try:
            self.tools = await self._with_retries(self._list_all_tools)
        except Exception as exc:
            log.warning("%s: re-listing tools failed: %s", self.name, describe_error(exc))
            self.tools = {}  # nothing is trusted until the list can be read again
            self._tools_stale = True

    # ---- calls

    async def call(self, tool: str, arguments: Mapping[str, Any] | None = None) -> ToolOutcome:
        """Run one tool through the guard. Never raises (cancellation excepted)."""
        started = time.monotonic()

        def done(status: EvidenceStatus, **kw: Any) -> ToolOutcome:
            return ToolOutcome(tool=tool, status=status, latency_ms=_ms(started), **kw)

        if not self.guard.is_allowlisted(tool):  # refused before any network traffic
            return done(EvidenceStatus.refused, error=f"tool {tool!r} is not on the read allowlist")
        self._bind_loop()
        if self.tools is None and not await self.start():
            return done(EvidenceStatus.error, error=self.discovery_error)
        if self._tools_stale:
            await self._recheck_tools()
        assert self.tools is not None
        refusal = self.guard.check(tool, self.tools)
        if refusal:
            return done(EvidenceStatus.refused, error=refusal)

        args = dict(arguments or {})
        attempts = 0
        waited = False

        async def send(attempt: _Attempt) -> CallToolResult:
            nonlocal attempts
            attempts += 1
            assert self._sem is not None
            async with self._sem:
                client = await self._client(attempt)
                return await client.call_tool(tool, args, read_timeout_seconds=self.timeout_s)

        while True:
            try:
                result = await self._with_retries(send)
            except MCPError as exc:
                if exc.code == REQUEST_TIMEOUT:
                    return done(
                        EvidenceStatus.timeout,
                        error=f"{tool} timed out after {self.timeout_s:g}s",
                        attempts=attempts,
                    )
                if RATE_LIMITED.search(exc.message):
                    return done(EvidenceStatus.rate_limited, error=describe_error(exc), attempts=attempts)
                return done(EvidenceStatus.error, error=describe_error(exc), attempts=attempts)
            except Exception as exc:
                reason = describe_error(exc)
                if attempts > 1:
                    reason += f" (after {attempts} attempts)"
                return done(EvidenceStatus.error, error=reason, attempts=attempts)
            outcome = _outcome_of(tool, result, started, attempts)
            if outcome.status is not EvidenceStatus.error or not RATE_LIMITED.search(outcome.text):
                return outcome
            wait = _retry_after(outcome.text)
            if waited or wait is None or wait > self.max_rate_limit_wait_s:
                after = f"; retry after {wait:g} s" if wait is not None else ""
                return done(
                    EvidenceStatus.rate_limited,
                    text=outcome.text,
                    error=f"{tool} was rate limited by the server (429){after}",
                    attempts=attempts,
                )
            log.info("%s: %s rate limited; waiting %gs (Retry-After) once", self.name, tool, wait)
            await asyncio.sleep(wait)
            waited = True

    async def _with_retries(self, fn: Callable[[_Attempt], Awaitable[T]]) -> T:
        """Retry transient failures (connection errors, 5xx) with exponential backoff; never tool errors."""
        for number in range(self.max_retries + 1):
            attempt = _Attempt()
            try:
                return await fn(attempt)
            except Exception as exc:
                kind = _classify(exc)
                if not isinstance(kind, _Retryable):
                    raise kind from None
                if kind.reconnect:
                    await self._drop(attempt.conn)
                if number >= self.max_retries:
                    raise kind from None
                delay = min(self.backoff_s * 2**number, 8.0) * random.uniform(0.75, 1.0)
                log.info("%s: %s; retry %d in %.2fs", self.name, kind, number + 1, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class _Attempt:
    conn: _Connection | None = None


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _outcome_of(tool: str, result: CallToolResult, started: float, attempts: int) -> ToolOutcome:
    text = "\n".join(block.text for block in result.content if isinstance(block, TextContent)).strip()
    if result.is_error:
        message = " ".join(text.split()) if text else "the tool reported an error"
        return ToolOutcome(
            tool,
            EvidenceStatus.error,
            text=text,
            error=message[:300],
            latency_ms=_ms(started),
            attempts=attempts,
        )
    return ToolOutcome(
        tool,
        EvidenceStatus.ok,
        text=text,
        structured=result.structured_content,
        latency_ms=_ms(started),
        attempts=attempts,
    )


def _retry_after(text: str) -> float | None:
    found = RETRY_AFTER.search(text)
    return float(found.group(1)) if found else None


def _auth_failure(exc: BaseException) -> int | None:
    """401 or 403 when the connection failed because the server refused the credential."""
    seen: list[BaseException] = [exc]
    while seen:
        current = seen.pop()
        if isinstance(current, BaseExceptionGroup):
            seen.extend(current.exceptions)
            continue
        response = getattr(current, "response", None)
        status = getattr(response, "status_code", None)
        if status in (401, 403):
            return int(status)
        if current.__cause__ is not None:
            seen.append(current.__cause__)
    return None


# ---------------------------------------------------------------- evidence helpers


def bounded(value: Any, limit: int = MAX_EXCERPT) -> str:
    """Compact JSON (or text) cut to `limit` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def outcome_evidence(
    task: ResearchTask,
    outcome: ToolOutcome,
    *,
    title: str,
    summary: str = "",
    url: str | None = None,
    data: dict[str, Any] | None = None,
    internal: bool = False,
    status: EvidenceStatus | None = None,
) -> Evidence:
    """One evidence row for a tool outcome. Failed outcomes carry their reason as the summary."""
    final = status or outcome.status
    if final.failed or not summary:
        summary = summary if (summary and not final.failed) else (outcome.error or final.value)
    excerpt = (
        ""
        if final.failed
        else bounded(outcome.structured if outcome.structured is not None else outcome.text)
    )
    return Evidence(
        task_key=task.key,
        source=task.source,
        tool=outcome.tool,
        query=bounded(task.arguments, MAX_QUERY) if task.arguments else "",
        status=final,
        title=title,
        summary=summary,
        url=url,
        excerpt=excerpt,
        latency_ms=outcome.latency_ms,
        first_party=task.first_party,
        internal=internal,
        data=data or {},
    )


def fill_template(value: Any, replacements: Mapping[str, str]) -> Any:
    """Replace `{name}` placeholders in every string of a JSON-like template."""
    if isinstance(value, str):
        for key, repl in replacements.items():
            value = value.replace("{" + key + "}", repl)
        return value
    if isinstance(value, list):
        return [fill_template(v, replacements) for v in value]
    if isinstance(value, dict):
        return {k: fill_template(v, replacements) for k, v in value.items()}
    return value


class McpSourceLifecycle:
    """start / aclose / check / discovery_error, shared by every MCP-backed research source."""

    client: McpToolClient

    async def start(self) -> bool:
        """Discover the server's tools once. Never raises; False when the server could not be reached."""
        return await self.client.start()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def check(self) -> str:
        """For `triagebot check`: connect, list tools, and say how many pass the read-only guard."""
        if not await self.start() or self.client.tools is None:
            raise RuntimeError(self.discovery_error or "could not connect")
        permitted = self.client.guard.permitted(self.client.tools)
        return f"{len(self.client.tools)} tools offered, {len(permitted)} allowed (read-only)"

    @property
    def discovery_error(self) -> str:
        return self.client.discovery_error
