"""A fake Slack Web API (plus response_url, file upload and Socket Mode endpoints) on 127.0.0.1.

It answers like Slack: `ok`/`error` JSON with HTTP 200, `invalid_auth` without a bot token,
`invalid_blocks` when a payload breaks Block Kit limits (checked with `formatting.limits`), a 429 with
`Retry-After` for a method you choose (once), and it records every call with its parsed arguments
(form, query or JSON bodies alike) so tests can assert on what Slack received.

Point a client at it with `AsyncWebClient(token, base_url=fake.api_url)`; slash commands and buttons
should carry `fake.response_url(...)` so `respond()` lands here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from tests.fakes.http import FakeServer
from tests.waits import WAIT_S

BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
TEAM_ID = "T111"
_JSON_KEYS = ("blocks", "view", "attachments", "files", "metadata")


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    token: str
    at: float  # time.monotonic() when the call arrived


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    updates: int = 0
    params: dict[str, Any] = field(default_factory=dict)


def _parse_json_values(params: dict[str, Any]) -> dict[str, Any]:
    for key in _JSON_KEYS:
        value = params.get(key)
        if isinstance(value, str) and value[:1] in "[{":
            with contextlib.suppress(json.JSONDecodeError):
                params[key] = json.loads(value)
    return params


def _bool(value: Any) -> bool:
    return value in (True, "true", "1", 1, "True")


@dataclass
class FakeSlack(FakeServer):
    """The fake workspace. Configure before or while serving (all state is plain Python)."""

    api_calls: list[ApiCall] = field(default_factory=list)
    messages: dict[str, Message] = field(default_factory=dict)  # ts → message
    ephemerals: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)  # response_url posts
    uploads: dict[str, bytes] = field(default_factory=dict)  # file_id → bytes
    views: list[dict[str, Any]] = field(default_factory=list)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    shared_channels: set[str] = field(default_factory=set)  # Slack Connect channels
    not_member: set[str] = field(default_factory=set)  # channels the bot is not in: posting → not_in_channel
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # users.info: id → user object
    fail_once: dict[str, tuple[int, int]] = field(default_factory=dict)  # method → (status, retry_after)
    errors: dict[str, str] = field(default_factory=dict)  # method → error code, every call
    # method → (status, content type, body): what a proxy or load balancer in front of Slack answers
    # (an HTML 502 page, a text/plain 405), every call
    raw_errors: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    ws_messages: list[dict[str, Any]] = field(default_factory=list)  # what Socket Mode clients sent us
    ws_envelopes: list[dict[str, Any]] = field(default_factory=list)  # sent after `hello`
    validate: bool = True
    _ts: Any = field(default_factory=lambda: itertools.count(1))
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------ URLs

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str = "cmd") -> str:
        return f"{self.url}/response/{name}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/socket"

    # ------------------------------------------------------------ assertions helpers

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in list(self.api_calls) if c.method == method]

    def top_level(self, channel: str | None = None) -> list[Message]:
        return [
            m
            for m in list(self.messages.values())
            if m.thread_ts is None and (channel is None or m.channel == channel)
        ]

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        return [m for m in list(self.messages.values()) if m.channel == channel and m.thread_ts == thread_ts]

    def all_text(self, messages: list[Message]) -> str:
        return "\n".join(m.text + "\n" + json.dumps(m.blocks, ensure_ascii=False) for m in messages)

    # ------------------------------------------------------------ server

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{name}", self._response_url)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket", self._socket)

    def _next_ts(self) -> str:
        with self._lock:
            n = next(self._ts)
        return f"1700000{n:03d}.{n:06d}"

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids):06d}"

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        body = await request.read()
        ctype = request.headers.get("Content-Type", "")
        if body:
            if "json" in ctype:
                params.update(json.loads(body))
            elif "form" in ctype:
                params.update(dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)))
        return _parse_json_values(params)

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or str(params.get("token", ""))
        self.api_calls.append(ApiCall(method, params, token, time.monotonic()))
        if method in self.raw_errors:
            status, content_type, text = self.raw_errors[method]
            return web.Response(status=status, text=text, content_type=content_type)
        if method in self.fail_once:
            status, retry_after = self.fail_once.pop(method)
            headers = {"Retry-After": str(retry_after)} if status == 429 else {}
            return web.json_response({"ok": False, "error": "ratelimited"}, status=status, headers=headers)
        wanted = "xapp-" if method == "apps.connections.open" else "xoxb-"
        if not token.startswith(wanted):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if method in self.errors:
            return web.json_response({"ok": False, "error": self.errors[method]})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = handler(params)
        return web.json_response(result)

    # ------------------------------------------------------------ methods

    def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://acme.slack.com/",
            "team": "Acme",
            "user": "triagebot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _check_blocks(self, params: dict[str, Any]) -> dict[str, Any] | None:
        if not self.validate:
            return None
        from formatting.limits import validate_message

        payload = {k: params[k] for k in ("text", "blocks") if k in params}
        problems = validate_message(payload)
        if not params.get("text") and not params.get("blocks"):
            problems = [*problems, "no_text"]
        if problems:
            return {"ok": False, "error": "invalid_blocks", "errors": problems}
        return None

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.not_member:
            return {"ok": False, "error": "not_in_channel"}
        if (bad := self._check_blocks(params)) is not None:
            return bad
        ts = self._next_ts()
        thread_ts = params.get("thread_ts") or None
        msg = Message(
            channel, ts, str(params.get("text", "")), list(params.get("blocks") or []), thread_ts, 0, params
        )
        self.messages[ts] = msg
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "message": {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": ts, "text": msg.text},
        }

    def _m_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        """The channel's top-level messages, newest first, one page; `metadata` only with include_all_metadata.

        Shape from docs.slack.dev/reference/methods/conversations.history (`messages` newest first,
        `has_more`, `response_metadata.next_cursor`; argument `include_all_metadata`).
        """
        channel = str(params.get("channel", ""))
        with_metadata = _bool(params.get("include_all_metadata"))
        messages = []
        for m in sorted(self.top_level(channel), key=lambda m: float(m.ts), reverse=True):
            item: dict[str, Any] = {
                "type": "message",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "text": m.text,
                "ts": m.ts,
            }
            if with_metadata and isinstance(m.params.get("metadata"), dict):
                item["metadata"] = m.params["metadata"]
            messages.append(item)
        return {"ok": True, "messages": messages, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _m_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """The parent and its replies, oldest first, one page; `metadata` only with include_all_metadata.

        Shape from docs.slack.dev/reference/methods/conversations.replies (example response: `messages`
        with type/user/text/thread_ts/ts, `has_more`, `response_metadata.next_cursor`; argument
        `include_all_metadata`; error `thread_not_found`) and docs.slack.dev/messaging/message-metadata
        (`metadata: {event_type, event_payload}` as posted).
        """
        channel, ts = str(params.get("channel", "")), str(params.get("ts", ""))
        parent = self.messages.get(ts)
        if parent is None or parent.channel != channel:
            return {"ok": False, "error": "thread_not_found"}
        with_metadata = _bool(params.get("include_all_metadata"))
        replies = sorted(self.thread(channel, ts), key=lambda m: float(m.ts))
        messages = []
        for m in [parent, *replies]:
            item: dict[str, Any] = {
                "type": "message",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "text": m.text,
                "thread_ts": ts,
                "ts": m.ts,
            }
            if with_metadata and isinstance(m.params.get("metadata"), dict):
                item["metadata"] = m.params["metadata"]
            messages.append(item)
        return {"ok": True, "messages": messages, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        ts = str(params.get("ts", ""))
        msg = self.messages.get(ts)
        if msg is None or msg.channel != params.get("channel"):
            return {"ok": False, "error": "message_not_found"}
        if (bad := self._check_blocks(params)) is not None:
            return bad
        if "text" in params:
            msg.text = str(params["text"])
        if "blocks" in params:
            msg.blocks = list(params["blocks"] or [])
        msg.updates += 1
        return {"ok": True, "channel": msg.channel, "ts": ts, "text": msg.text}

    def _m_chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        ts = str(params.get("ts", ""))
        if self.messages.pop(ts, None) is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": params.get("channel"), "ts": ts}

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if (bad := self._check_blocks(params)) is not None:
            return bad
        self.ephemerals.append(params)
        return {"ok": True, "message_ts": self._next_ts()}

    def _m_chat_getPermalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        ts = str(params.get("message_ts", ""))
        msg = self.messages.get(ts)
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        link = f"https://acme.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        if msg.thread_ts:
            link += f"?thread_ts={msg.thread_ts}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _open_view(self, params: dict[str, Any], op: str) -> dict[str, Any]:
        view = params.get("view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        if self.validate:
            from formatting.limits import validate_view

            problems = validate_view(view)
            if problems:
                return {"ok": False, "error": "invalid_arguments", "errors": problems}
        view_id = str(params.get("view_id") or self._next_id("V"))
        self.views.append({"op": op, "id": view_id, **params})
        return {"ok": True, "view": {"id": view_id, **view}}

    def _m_views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        return self._open_view(params, "open")

    def _m_views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._open_view(params, "update")

    def _m_views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._open_view(params, "push")

    def _m_views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        """views.publish (Home tab): `user_id` + a `home` view; `invalid_arguments` when it breaks limits."""
        view = params.get("view")
        if not params.get("user_id") or not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        if self.validate:
            from formatting.limits import validate_home

            problems = validate_home(view)
            if problems:
                return {"ok": False, "error": "invalid_arguments", "errors": problems}
        view_id = self._next_id("V")
        self.views.append({"op": "publish", "id": view_id, **params})
        return {"ok": True, "view": {"id": view_id, "team_id": TEAM_ID, **view}}

    def _m_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = self._next_id("F")
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files") or []
        out = []
        for f in files:
            fid = f.get("id", "")
            if fid not in self.uploads:
                return {"ok": False, "error": "file_not_found"}
            out.append(
                {
                    "id": fid,
                    "title": f.get("title", ""),
                    "permalink": f"https://acme.slack.com/files/{BOT_USER_ID}/{fid}/file.md",
                }
            )
        return {"ok": True, "files": out}

    def _m_usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = str(params.get("usergroup", ""))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _m_users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """users.info: `{"ok", "user": {id, team_id, name, real_name, is_bot, profile{real_name, display_name}}}`."""
        user = self.users.get(str(params.get("user", "")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": user}

    def add_user(self, user_id: str, real_name: str, display_name: str = "") -> None:
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": (display_name or real_name).lower().replace(" ", "."),
            "deleted": False,
            "real_name": real_name,
            "is_bot": False,
            "profile": {"real_name": real_name, "display_name": display_name},
        }

    def add_message(self, channel: str, text: str, user: str, ts: str | None = None) -> str:
        """Seed a message someone wrote (so chat.getPermalink and threaded replies find it); returns its ts."""
        ts = ts or self._next_ts()
        self.messages[ts] = Message(channel, ts, text, [], None, 0, {"user": user})
        return ts

    def _m_conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        shared = channel in self.shared_channels
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": channel.lower(),
                "is_channel": True,
                "is_shared": shared,
                "is_ext_shared": shared,
                "is_org_shared": False,
                "is_pending_ext_shared": False,
            },
        }

    def _m_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.ws_url}

    # ------------------------------------------------------------ other endpoints

    async def _response_url(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read() or b"{}")
        body["_name"] = request.match_info["name"]
        self.responses.append(body)
        return web.json_response({"ok": True})

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        data = await request.read()
        self.uploads[file_id] = data
        return web.Response(text=f"OK - {len(data)}")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        await ws.send_json(
            {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A111"}, "debug_info": {}}
        )
        for envelope in list(self.ws_envelopes):
            await ws.send_json(envelope)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.ws_messages.append(json.loads(msg.data))
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
        return ws

    # ------------------------------------------------------------ waiting (from a test's event loop)

    async def wait_for(self, predicate: Any, within: float = WAIT_S, what: str = "condition") -> Any:
        deadline = time.monotonic() + within
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)
