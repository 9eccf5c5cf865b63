"""`triagebot check`: one OK/FAIL line per configured integration, each bounded by a timeout."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from bot.settings import Settings, secret

CHECK_TIMEOUT_S = 15.0

Check = tuple[str, Callable[[], Awaitable[str]]]


async def _call_check(obj: object) -> str:
    check = getattr(obj, "check", None)
    if not callable(check):
        return "configured"
    result = check()
    if inspect.isawaitable(result):
        result = await result
    return str(result or "ok")


def _checks(settings: Settings) -> list[Check]:
    from bot import wiring

    checks: list[Check] = []

    async def store() -> str:
        from integrations.schema_migrations import head_revision
        from integrations.store import SqlStore

        st = SqlStore.from_url(
            settings.database_url, migrate=settings.database_auto_migrate
        )  # as `run` would
        try:
            await st.get_cursor("__check__")
        finally:
            await st.close()
        return f"{settings.database_url.split('://', 1)[0]}, schema revision {head_revision()}"

    checks.append(("database", store))

    if settings.slack_configured:

        async def slack() -> str:
            from slack_sdk.web.async_client import AsyncWebClient

            client = AsyncWebClient(token=secret(settings.slack_bot_token), base_url=settings.slack_api_url)
            resp = await client.auth_test()
            channel = settings.triage_channel or "TRIAGE_CHANNEL not set"
            return f"team {resp.get('team')}, bot {resp.get('user')}, channel {channel}"

        checks.append(("slack", slack))

    zendesk = wiring.build_zendesk(settings)
    if zendesk is not None:

        async def zd() -> str:
            try:
                return await _call_check(zendesk)
            finally:
                await zendesk.aclose()

        checks.append(("zendesk", zd))

    model = wiring.build_model(settings)
    if model is not None:

        async def llm() -> str:
            try:
                return await _call_check(model)
            finally:
                await model.aclose()  # type: ignore[attr-defined]

        checks.append((settings.triage_llm_provider, llm))

    for source in wiring.build_sources(settings):

        async def src_check(src: object = source) -> str:
            try:
                return await _call_check(src)
            finally:
                closer = getattr(src, "aclose", None)
                if callable(closer):
                    await closer()

        checks.append((source.name, src_check))
    return checks


async def run_checks(settings: Settings) -> list[tuple[str, bool, str]]:
    async def one(name: str, fn: Callable[[], Awaitable[str]]) -> tuple[str, bool, str]:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                return name, True, await fn()
        except TimeoutError:
            return name, False, f"no answer within {CHECK_TIMEOUT_S:g} s"
        except Exception as exc:
            return name, False, f"{type(exc).__name__}: {str(exc)[:200]}"

    return list(await asyncio.gather(*(one(n, f) for n, f in _checks(settings))))
