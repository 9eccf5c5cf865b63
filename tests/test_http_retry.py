"""integrations/http.py: timeouts, retries, Retry-After / rate-limit reset, typed errors (local fake only)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from integrations.http import SourceHttpError, get_json, parse_retry_after, request_with_retries
from tests.fakes.github import GitHubFake
from tests.fakes.http import free_port


@pytest.fixture
def fake() -> Iterator[GitHubFake]:
    server = GitHubFake()
    with server:
        yield server


async def _get(url: str, **kwargs: object) -> httpx.Response:
    options: dict[str, object] = {"timeout_s": 5.0, "max_retries": 2, "backoff_s": 0.01}
    options.update(kwargs)
    async with httpx.AsyncClient() as client:
        return await request_with_retries(client, "GET", url, params={"q": "x"}, **options)  # type: ignore[arg-type]


async def test_success_returns_response(fake: GitHubFake) -> None:
    response = await _get(f"{fake.url}/search/issues")
    assert response.status_code == 200
    assert response.json()["items"] == []


async def test_429_retry_after_is_honoured(fake: GitHubFake) -> None:
    fake.fail("search", "429")
    response = await _get(f"{fake.url}/search/issues")
    assert response.status_code == 200
    assert len(fake.search_times) == 2
    assert fake.search_times[1] - fake.search_times[0] >= 0.9  # Retry-After: 1


async def test_403_rate_limit_waits_for_reset(fake: GitHubFake) -> None:
    fake.fail("search", "403")
    response = await _get(f"{fake.url}/search/issues")
    assert response.status_code == 200
    assert len(fake.search_times) == 2
    assert fake.search_times[1] - fake.search_times[0] >= 0.9  # waited for x-ratelimit-reset


async def test_retry_after_longer_than_cap_gives_up_at_once(fake: GitHubFake) -> None:
    fake.fail("search", "429-long")
    started = time.monotonic()
    with pytest.raises(SourceHttpError) as err:
        await _get(f"{fake.url}/search/issues", max_wait_s=20.0)
    assert err.value.kind == "rate_limited"
    assert err.value.retry_after_s == pytest.approx(120)
    assert "120" in str(err.value) and "20" in str(err.value)
    assert len(fake.search_times) == 1
    assert time.monotonic() - started < 5


async def test_500_retried_then_succeeds(fake: GitHubFake) -> None:
    fake.fail("search", "500")
    response = await _get(f"{fake.url}/search/issues")
    assert response.status_code == 200
    assert len(fake.search_times) == 2


async def test_500_gives_up_after_max_retries(fake: GitHubFake) -> None:
    fake.fail("search", "500", "500", "500", "500")
    with pytest.raises(SourceHttpError) as err:
        await _get(f"{fake.url}/search/issues", max_retries=2)
    assert err.value.kind == "http_error"
    assert err.value.status == 500
    assert len(fake.search_times) == 3


async def test_rate_limit_exhausted_is_rate_limited(fake: GitHubFake) -> None:
    fake.fail("search", "429", "429")
    with pytest.raises(SourceHttpError) as err:
        await _get(f"{fake.url}/search/issues", max_retries=1)
    assert err.value.kind == "rate_limited"
    assert len(fake.search_times) == 2


async def test_plain_403_and_404_are_not_retried(fake: GitHubFake) -> None:
    fake.fail("search", "403-plain")
    with pytest.raises(SourceHttpError) as err:
        await _get(f"{fake.url}/search/issues")
    assert (err.value.kind, err.value.status) == ("http_error", 403)
    assert len(fake.search_times) == 1
    with pytest.raises(SourceHttpError) as err:
        await _get(f"{fake.url}/repos/a/b/issues/1")
    assert (err.value.kind, err.value.status) == ("http_error", 404)


async def test_slow_answer_is_a_timeout(fake: GitHubFake) -> None:
    fake.fail("search", "slow")
    started = time.monotonic()
    with pytest.raises(SourceHttpError) as err:
        await _get(f"{fake.url}/search/issues", timeout_s=0.2)
    assert err.value.kind == "timeout"
    assert time.monotonic() - started < 0.9  # not retried: the fake sleeps 1 s
    assert len(fake.search_times) == 1


async def test_malformed_json_is_malformed(fake: GitHubFake) -> None:
    fake.fail("search", "malformed")
    async with httpx.AsyncClient() as client:
        with pytest.raises(SourceHttpError) as err:
            await get_json(client, f"{fake.url}/search/issues", timeout_s=5, max_retries=0)
        assert err.value.kind == "malformed"
        with pytest.raises(SourceHttpError) as err:
            await get_json(client, f"{fake.url}/search/issues?q=x", timeout_s=5, max_retries=0, expect=list)
        assert err.value.kind == "malformed"


async def test_connection_refused_is_retried_then_http_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/nothing"
    with pytest.raises(SourceHttpError) as err:
        await _get(url, max_retries=1)
    assert err.value.kind == "http_error"
    assert "connect" in str(err.value)


async def test_limiter_bounds_concurrency(fake: GitHubFake) -> None:
    fake.search_delay_s = 0.15
    limiter = asyncio.Semaphore(2)
    async with httpx.AsyncClient() as client:
        await asyncio.gather(
            *(
                request_with_retries(
                    client,
                    "GET",
                    f"{fake.url}/search/issues?q=x",
                    timeout_s=5,
                    max_retries=0,
                    limiter=limiter,
                )
                for _ in range(6)
            )
        )
    assert len(fake.search_times) == 6
    assert fake.max_in_flight == 2


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 11, 18, 12, 0, 0, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(date, now=now.timestamp()) == pytest.approx(30)
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past, now=now.timestamp()) == 0.0


async def test_mock_transport_seam() -> None:
    calls: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(503)
        return httpx.Response(200, json={"ok": True})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        body = await get_json(client, "https://example.invalid/x", timeout_s=1, max_retries=1, backoff_s=0.01)
    assert body == {"ok": True}
    assert len(calls) == 2
