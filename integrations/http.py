"""One place for outbound httpx calls made by the research sources (GitHub, npm, PyPI).

`request_with_retries` gives every call a hard per-call timeout and bounded retries with exponential
backoff + jitter for connection errors, 429, 5xx and GitHub's 403-with-rate-limit. It honours
`Retry-After` (seconds or an HTTP date) and `x-ratelimit-reset` when `x-ratelimit-remaining` is 0;
a rate limit that names neither (GitHub's *secondary* limit) means waiting at least a minute
(`MIN_RATE_LIMIT_WAIT_S`, GitHub's docs: "Otherwise, wait for at least one minute before retrying",
github/docs rate-limits page). It never waits longer than `max_wait_s` for one retry: a server asking
for more gets a clear `rate_limited` error (with `retry_after_s`) instead of stalling the research phase. Every failure is one `SourceHttpError`
whose `kind` says what went wrong.

The only seam is the `httpx.AsyncClient` the caller passes (tests point it at a local fake or give it a
transport). Callers that open a client per task pass `verify=tls_context()`: httpx otherwise builds a new
SSL context, loading the whole CA bundle, for every client (≈ 40 % of a replica's CPU in a burst).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

from triage.protocols import TriageError

ErrorKind = Literal["timeout", "rate_limited", "http_error", "malformed"]

DEFAULT_MAX_WAIT_S = 20.0
DEFAULT_BACKOFF_S = 0.5
MIN_RATE_LIMIT_WAIT_S = 60.0  # a rate limit without Retry-After / exhausted quota: wait ≥ 1 minute


class SourceHttpError(TriageError):
    """An outbound call failed after its retries. `kind`: timeout | rate_limited | http_error | malformed."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        url: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.status = status
        self.url = url
        self.retry_after_s = retry_after_s


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), built once per process."""
    return httpx.create_ssl_context()


@contextlib.asynccontextmanager
async def _held(limiter: asyncio.Semaphore | None) -> AsyncIterator[None]:
    if limiter is None:
        yield
        return
    async with limiter:
        yield


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _rate_limit_reset_wait(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    if headers.get("x-ratelimit-remaining", "").strip() != "0":
        return None
    reset = headers.get("x-ratelimit-reset")
    if not reset:
        return None
    try:
        reset_at = float(reset)
    except ValueError:
        return None
    current = time.time() if now is None else now
    return max(0.0, reset_at - current)


def _is_rate_limited(response: httpx.Response) -> bool:
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    headers = response.headers
    if headers.get("x-ratelimit-remaining", "").strip() == "0" or "retry-after" in headers:
        return True
    return b"rate limit" in response.content[:2000].lower()


def _label(url: str, service: str) -> str:
    return service or httpx.URL(url).host or url


async def request_with_retries(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float,
    max_retries: int,
    limiter: asyncio.Semaphore | None = None,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
    backoff_s: float = DEFAULT_BACKOFF_S,
    service: str = "",
) -> httpx.Response:
    """Send one request; return a response with status < 400 or raise `SourceHttpError`.

    `limiter` is held for each attempt (not during backoff sleeps). Read timeouts are not retried
    (a slow upstream would only eat the research deadline); connect errors/timeouts are.
    """
    name = _label(url, service)
    attempt = 0
    while True:
        try:
            async with _held(limiter), asyncio.timeout(timeout_s):
                response = await client.request(
                    method, url, params=params, headers=headers, timeout=timeout_s
                )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            if attempt >= max_retries:
                raise SourceHttpError(
                    "http_error", f"{name}: could not connect ({type(exc).__name__})", url=url
                ) from exc
            await asyncio.sleep(_backoff(attempt, backoff_s, max_wait_s))
            attempt += 1
            continue
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise SourceHttpError("timeout", f"{name}: no answer within {timeout_s:g} s", url=url) from exc
        except httpx.TransportError as exc:  # connection dropped, protocol error
            if attempt >= max_retries:
                raise SourceHttpError(
                    "http_error", f"{name}: connection failed ({type(exc).__name__})", url=url
                ) from exc
            await asyncio.sleep(_backoff(attempt, backoff_s, max_wait_s))
            attempt += 1
            continue

        status = response.status_code
        if status < 400:
            return response

        rate_limited = _is_rate_limited(response)
        retryable = rate_limited or status >= 500
        if not retryable:
            raise SourceHttpError("http_error", f"{name}: HTTP {status}", status=status, url=url)

        asked = parse_retry_after(response.headers.get("retry-after"))
        if asked is None and rate_limited:
            asked = _rate_limit_reset_wait(response.headers)
            if asked is None:  # a secondary limit that names no wait
                asked = MIN_RATE_LIMIT_WAIT_S
        kind: ErrorKind = "rate_limited" if rate_limited else "http_error"
        what = "rate limited" if rate_limited else f"HTTP {status}"
        if asked is not None and asked > max_wait_s:
            raise SourceHttpError(
                kind,
                f"{name}: {what}; server asks to wait {asked:.0f} s (more than the {max_wait_s:g} s cap)",
                status=status,
                url=url,
                retry_after_s=asked,
            )
        if attempt >= max_retries:
            raise SourceHttpError(
                kind,
                f"{name}: {what} after {attempt + 1} attempts",
                status=status,
                url=url,
                retry_after_s=asked,
            )
        wait = asked if asked is not None else _backoff(attempt, backoff_s, max_wait_s)
        await asyncio.sleep(wait)
        attempt += 1


def _backoff(attempt: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff with full-range jitter on top: base·2^attempt + U(0, base)."""
    return min(cap_s, base_s * (2**attempt) + random.uniform(0, base_s))


def json_body(response: httpx.Response, *, service: str = "") -> Any:
    """Decode a JSON body or raise `SourceHttpError(kind="malformed")`."""
    url = str(response.request.url) if response.request else ""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SourceHttpError(
            "malformed",
            f"{_label(url, service)}: response is not valid JSON",
            status=response.status_code,
            url=url,
        ) from exc


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float,
    max_retries: int,
    limiter: asyncio.Semaphore | None = None,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
    backoff_s: float = DEFAULT_BACKOFF_S,
    service: str = "",
    expect: type[dict[str, Any]] | type[list[Any]] | None = None,
) -> Any:
    """GET + JSON decode; `expect` (dict or list) checks the top-level shape (else `malformed`)."""
    response = await request_with_retries(
        client,
        "GET",
        url,
        params=params,
        headers=headers,
        timeout_s=timeout_s,
        max_retries=max_retries,
        limiter=limiter,
        max_wait_s=max_wait_s,
        backoff_s=backoff_s,
        service=service,
    )
    data = json_body(response, service=service)
    if expect is not None and not isinstance(data, expect):
        raise SourceHttpError(
            "malformed",
            f"{_label(url, service)}: expected a JSON {expect.__name__}, got {type(data).__name__}",
            status=response.status_code,
            url=url,
        )
    return data
