"""Recorded Anthropic Messages API answers for the offline demo, served to the real `AsyncAnthropic`.

`replay_http_client(recording)` is an `httpx2.AsyncClient` whose transport answers `POST /v1/messages`
from a recording; the demo passes it to the SDK client (`ProviderConfig.http_client`), so requests,
response parsing (`anthropic.types.Message`), usage and cost, structured-output validation, the
repair turn, grading and drafting all run through production code. Only the HTTP hop is replaced.

The recording (`integrations/recorded/anthropic_messages.json`):

    {"routes": [
        {"name": "48291 synthesis",
         "schema": "SynthesisOutput",            # the title of output_config.format.schema (or of the
                                                  # schema sent as a system instruction)
         "prompt_contains": ["new-checkout-flow returns false"],   # all must be in the user messages
         "message": {...}}                        # a Messages API response body (type "message")
    ]}

Evidence ids differ from run to run as research plans change, so a recorded answer cites evidence by
the start of the row's title instead of its number: `{{E:PostHog/posthog-js#1534}}` becomes the id of
the first evidence row in the request whose title starts with `PostHog/posthog-js#1534`, the way the
model reads the table it was given. A fragment that starts no title becomes `E0`, an id no report has,
so grading drops the claim: a recording that no longer fits the research shows up as a weaker report
(and a failing test) instead of a citation of some other row.

A request no route answers gets the API's 404 error body (`not_found_error`); the adapter turns it
into `LanguageModelError`, and the pipeline degrades as it does for any model failure.
"""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from typing import Any

import httpx2

from triage.prompting import rows_in_prompt

RECORDING = "anthropic_messages.json"
_PLACEHOLDER = re.compile(r"\{\{E:([^{}]+)\}\}")


def load_recording(name: str = RECORDING) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (resources.files("integrations") / "recorded" / name).read_text("utf-8")
    )
    return data


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _schema_title(body: dict[str, Any]) -> str:
    schema = ((body.get("output_config") or {}).get("format") or {}).get("schema") or {}
    if schema.get("title"):
        return str(schema["title"])
    match = re.search(r'"title":\s*"([A-Za-z0-9_]+)"', _text_of(body.get("system")))
    return match.group(1) if match else ""


def evidence_titles(prompt: str) -> list[tuple[str, str]]:
    """(id, title) of every evidence row in a prompt: the synthesis/follow-up table's `title: …` line, or
    the drafting digest's one line (`Title: summary url`, matched by its start)."""
    return [
        (row.id, row.field("title") or (row.lines[0] if row.lines else "")) for row in rows_in_prompt(prompt)
    ]


def resolve_citations(text: str, prompt: str) -> str:
    """Replace each `{{E:fragment}}` with the id of the first evidence row whose TITLE starts with the fragment."""
    rows = evidence_titles(prompt)

    def find(match: re.Match[str]) -> str:
        fragment = match.group(1).strip().lower()
        for eid, title in rows:
            if title.lower().startswith(fragment):
                return eid
        return "E0"

    return _PLACEHOLDER.sub(find, text)


def _route_for(routes: list[dict[str, Any]], schema: str, prompt: str) -> dict[str, Any] | None:
    lowered = prompt.lower()
    for route in routes:
        if route.get("schema") and route["schema"] != schema:
            continue
        if all(str(needle).lower() in lowered for needle in route.get("prompt_contains") or []):
            return route
    return None


def _error(status: int, kind: str, message: str) -> httpx2.Response:
    return httpx2.Response(status, json={"type": "error", "error": {"type": kind, "message": message}})


def replay_handler(recording: dict[str, Any]) -> Any:
    routes: list[dict[str, Any]] = list(recording.get("routes") or [])

    def handle(request: httpx2.Request) -> httpx2.Response:
        if request.method != "POST" or not request.url.path.endswith("/v1/messages"):
            return _error(404, "not_found_error", f"no recording for {request.method} {request.url.path}")
        try:
            body = json.loads(request.content or b"{}")
        except ValueError:
            return _error(400, "invalid_request_error", "request body is not JSON")
        prompt = "\n".join(
            _text_of(m.get("content")) for m in body.get("messages") or [] if m.get("role") == "user"
        )
        route = _route_for(routes, _schema_title(body), prompt)
        if route is None:
            return _error(404, "not_found_error", "no recorded answer for this request")
        message = copy.deepcopy(route["message"])
        for block in message.get("content") or []:
            if block.get("type") == "text":
                block["text"] = resolve_citations(str(block.get("text", "")), prompt)
        return httpx2.Response(
            200, json=message, headers={"request-id": f"req_replay_{message.get('id', '')}"}
        )

    return handle


def replay_http_client(recording: dict[str, Any] | None = None) -> httpx2.AsyncClient:
    """An httpx2 client for `AsyncAnthropic(http_client=…)` that answers from the recording."""
    return httpx2.AsyncClient(transport=httpx2.MockTransport(replay_handler(recording or load_recording())))
