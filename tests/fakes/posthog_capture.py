"""A fake PostHog capture endpoint: `POST /batch/` (and the AI lane `POST /i/v0/ai/batch/`).

Request shape from posthog-python 7.x (`posthog/request.py` `post` / `batch_post`, `posthog/consumer.py`):
JSON `{"batch": [event, …], "api_key": "phc_…", "sent_at": ISO-8601, …}`, `Content-Type: application/json`,
gzip-compressed with `Content-Encoding: gzip` when the client has `gzip=True`. Each event carries
`event`, `distinct_id`, `properties`, `timestamp` and `uuid`. A missing or wrong `api_key` gets 401 the
way the capture service answers an invalid token; success is 200 `{"status": "Ok"}`.
"""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.http import FakeServer, json_response


@dataclass
class FakePostHogCapture(FakeServer):
    api_key: str = "phc_test_project_key"
    events: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/batch/", self._batch)
        app.router.add_post("/i/v0/ai/batch/", self._batch)

    async def _batch(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        try:
            body = json.loads(raw)
        except ValueError:
            return json_response({"type": "validation_error", "detail": "Malformed request data"}, status=400)
        if body.get("api_key") != self.api_key:
            return json_response(
                {
                    "type": "authentication_error",
                    "code": "invalid_api_key",
                    "detail": "Project API key invalid.",
                },
                status=401,
            )
        batch = body.get("batch")
        if not isinstance(batch, list):
            return json_response({"type": "validation_error", "detail": "batch must be a list"}, status=400)
        for event in batch:
            if not isinstance(event, dict) or not event.get("event") or "properties" not in event:
                return json_response({"type": "validation_error", "detail": "invalid event"}, status=400)
        with self._lock:
            self.events.extend(batch)
        return json_response({"status": "Ok"})

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("event") == name]
