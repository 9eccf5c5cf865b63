"""A fake Anthropic Messages API: `POST /v1/messages` with scripted answers.

Shapes follow the real API (anthropic 2.x, see shared/reference/anthropic-and-mcp.md §1.9):
- auth by `Authorization: Bearer <key>` (what the 2.x SDK sends) or `x-api-key: <key>`; else 401;
- answers are `message` objects with one text block holding the scripted JSON (structured output);
- usage is realistic: input tokens ≈ chars/4, and a system prefix marked with `cache_control` is
  written to the cache on first sight (`cache_creation_input_tokens`) and read afterwards
  (`cache_read_input_tokens`);
- scripted errors use the real error body `{"type": "error", "error": {"type": ..., "message": ...}}`
  and status codes (429 with `retry-after`, 529 overloaded, 500 …).
Every request is recorded by `FakeServer` (headers and JSON body) for assertions.

The same answers are served on the paths the SDK's cloud clients use (anthropic 2.15
`lib/bedrock/_client.py` and `lib/vertex/_client.py` `_prepare_options`): Amazon Bedrock
`POST /model/{model}/invoke` and Google Vertex AI
`POST /projects/{p}/locations/{r}/publishers/anthropic/models/{model}:rawPredict` (+ `count-tokens:rawPredict`).
There `model` is in the path, not the body, and the body carries `anthropic_version`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from tests.fakes.http import FakeServer, Recorded, json_response

Output = dict[str, Any] | list[Any] | str | BaseModel
Dynamic = Callable[[dict[str, Any]], Output]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}


@dataclass
class Reply:
    output: Output | Dynamic
    stop_reason: str = "end_turn"


@dataclass
class Failure:
    status: int
    error_type: str = ""
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return ""


@dataclass
class FakeAnthropic(FakeServer):
    api_key: str = "sk-ant-test"
    script: deque[Reply | Failure] = field(default_factory=deque)
    default: Output | Dynamic | None = None  # used when the script is empty
    _cached: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _served: int = 0

    # ------------------------------------------------------------ scripting

    def push_json(
        self, output: Output | Dynamic, *, stop_reason: str = "end_turn", times: int = 1
    ) -> FakeAnthropic:
        for _ in range(times):
            self.script.append(Reply(output, stop_reason))
        return self

    def push_text(self, text: str, *, stop_reason: str = "end_turn") -> FakeAnthropic:
        self.script.append(Reply(text, stop_reason))
        return self

    def push_error(
        self,
        status: int,
        *,
        error_type: str = "",
        message: str = "",
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> FakeAnthropic:
        extra = dict(headers or {})
        if retry_after is not None:
            extra["retry-after"] = str(retry_after)
        self.script.append(
            Failure(status, error_type or ERROR_TYPES.get(status, "api_error"), message, extra)
        )
        return self

    def rate_limited(self, retry_after: float = 0.01) -> FakeAnthropic:
        return self.push_error(
            429, message="Number of request tokens has exceeded your rate limit.", retry_after=retry_after
        )

    def overloaded(self, retry_after: float = 0.01) -> FakeAnthropic:
        return self.push_error(529, message="Overloaded", retry_after=retry_after)

    def server_error(self, retry_after: float = 0.01) -> FakeAnthropic:
        return self.push_error(500, message="Internal server error", retry_after=retry_after)

    # ------------------------------------------------------------ assertions

    def message_calls(self) -> list[Recorded]:
        return self.calls("/v1/messages", "POST")

    def bodies(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.message_calls()]

    def last_body(self) -> dict[str, Any]:
        calls = self.message_calls()
        assert calls, "no /v1/messages request was made"
        return calls[-1].json()

    @staticmethod
    def prompt_of(body: dict[str, Any]) -> str:
        """All user-message text of a request body."""
        return "\n".join(
            _text_of(m.get("content")) for m in body.get("messages", []) if m.get("role") == "user"
        )

    @staticmethod
    def system_of(body: dict[str, Any]) -> str:
        system = body.get("system", "")
        return system if isinstance(system, str) else _text_of(system)

    # ------------------------------------------------------------ server

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_post("/model/{model}/invoke", self._bedrock_invoke)
        app.router.add_post(
            "/projects/{project}/locations/{region}/publishers/anthropic/models/{spec}", self._vertex_predict
        )

    async def _platform_body(self, request: web.Request, model: str) -> dict[str, Any] | web.Response:
        """Bedrock/Vertex: `model` comes from the path and must not be in the body; `anthropic_version` must."""
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self._error(400, "invalid_request_error", "request body is not valid JSON")
        if "model" in body:
            return self._error(400, "invalid_request_error", "model: Extra inputs are not permitted")
        if not body.get("anthropic_version"):
            return self._error(400, "invalid_request_error", "anthropic_version: Field required")
        return {**body, "model": model}

    async def _bedrock_invoke(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}" and not auth.startswith("AWS4-HMAC-SHA256 "):
            return json_response(
                {"message": "The security token included in the request is invalid."}, status=403
            )
        body = await self._platform_body(request, request.match_info["model"])
        return body if isinstance(body, web.Response) else self._answer(body)

    async def _vertex_predict(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return self._error(401, "authentication_error", "Request had invalid authentication credentials.")
        model, _, specifier = request.match_info["spec"].partition(":")
        if specifier != "rawPredict":
            return self._error(404, "not_found_error", f"unknown method {specifier!r}")
        if model == "count-tokens":
            body = json.loads(await request.read())
            return json_response({"input_tokens": max(1, len(json.dumps(body)) // 4)})
        body = await self._platform_body(request, model)
        return body if isinstance(body, web.Response) else self._answer(body)

    def _error(
        self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_fake"}
        return json_response(body, status=status, headers={"request-id": "req_fake", **(headers or {})})

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return self._error(401, "authentication_error", "invalid x-api-key")
        body = await request.json()
        return json_response({"input_tokens": max(1, len(json.dumps(body)) // 4)})

    def _authorised(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] == self.api_key:
            return True
        return request.headers.get("x-api-key", "") == self.api_key

    async def _messages(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, "authentication_error", "invalid x-api-key")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self._error(400, "invalid_request_error", "request body is not valid JSON")
        return self._answer(body)

    def _answer(self, body: dict[str, Any]) -> web.Response:
        problem = self._validate(body)
        if problem:
            return self._error(400, "invalid_request_error", problem)
        with self._lock:
            item: Reply | Failure | None = self.script.popleft() if self.script else None
            if item is None and self.default is not None:
                item = Reply(self.default)
            self._served += 1
            serial = self._served
        if item is None:
            return self._error(400, "invalid_request_error", "fake: no scripted response left")
        if isinstance(item, Failure):
            return self._error(item.status, item.error_type, item.message or "error", item.headers)
        output = item.output(body) if callable(item.output) else item.output
        text = self._render(output)
        return json_response(
            {
                "id": f"msg_fake_{serial:04d}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": text}],
                "stop_reason": item.stop_reason,
                "stop_sequence": None,
                "usage": self._usage(body, text),
            },
            headers={"request-id": f"req_fake_{serial:04d}"},
        )

    @staticmethod
    def _render(output: Output) -> str:
        if isinstance(output, BaseModel):
            return output.model_dump_json()
        if isinstance(output, str):
            return output
        return json.dumps(output)

    @staticmethod
    def _validate(body: dict[str, Any]) -> str:
        for key in ("model", "max_tokens", "messages"):
            if key not in body:
                return f"{key}: Field required"
        if not body["messages"]:
            return "messages: at least one message is required"
        for key in ("temperature", "top_p", "top_k"):
            if key in body:
                return f"{key}: Extra inputs are not permitted"
        choice = body.get("tool_choice") or {}
        if choice.get("type") in ("any", "tool") and "5-5" in str(body["model"]):
            return "tool_choice: forced tool use is not supported on this model; use structured outputs"
        fmt = (body.get("output_config") or {}).get("format")
        if fmt is not None and (fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict)):
            return "output_config.format: expected {type: json_schema, schema: {...}}"
        return ""

    def _usage(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        system = body.get("system") or []
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
        # the cached prefix ends at the last block carrying cache_control
        last = max(
            (i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")), default=-1
        )
        prefix = "".join(str(b.get("text", "")) for b in blocks[: last + 1])
        rest = "".join(str(b.get("text", "")) for b in blocks[last + 1 :])
        message_text = "".join(_text_of(m.get("content")) for m in body.get("messages", []))
        cache_read = cache_write = 0
        if prefix:
            key = hashlib.sha256((str(body["model"]) + prefix).encode()).hexdigest()
            with self._lock:
                if key in self._cached:
                    cache_read = _tokens(prefix)
                else:
                    self._cached.add(key)
                    cache_write = _tokens(prefix)
        return {
            "input_tokens": _tokens(rest + message_text),
            "output_tokens": _tokens(text),
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": cache_write, "ephemeral_1h_input_tokens": 0},
            "service_tier": "standard",
        }
