"""The external services' latencies for throughput benches, and the local fakes that apply them.

Nothing here was measured from this machine (it has no route to the real services); each number is a
public measurement or a network round trip, chosen before the bench ran and not tuned to its result.

Model (Anthropic Messages API, non-streaming, as `AnthropicModel` calls it): a call takes
time-to-first-token + output tokens ÷ output speed. Output tokens are those of the answer actually
served: the recorded answers for the bundled tickets (`integrations/recorded/anthropic_messages.json`,
the offline demo's), ≈ 80–100 tokens for the intake refinement and ≈ 650–820 for a synthesis.
- Sonnet-class synthesis: TTFT 1.0–2.5 s, 50–80 output tokens/s. Artificial Analysis lists Claude
  Sonnet 4.5 at ≈ 63 tokens/s and ≈ 1.8 s TTFT on its short prompt; ours carry ≈ 7k input tokens.
  → 9–19 s per synthesis.
- Haiku-class intake refinement: TTFT 0.4–1.0 s, 100–180 output tokens/s (Claude Haiku 4.5 is quoted at
  ≈ 150 tokens/s; Anthropic's "reducing latency" guide names it the fastest model). → ≈ 0.9–1.9 s.

SaaS REST APIs, from a server in a cloud region (TLS sessions kept alive, so one round trip plus the
service's own work per call):
- Slack Web API (`chat.postMessage`, `chat.update`, …): 0.1–0.3 s per call.
- Zendesk Support API (ticket, comments, users through zenpy): 0.1–0.3 s per request.
- GitHub REST: 0.1–0.3 s per call; `GET /search/issues` (the slowest endpoint, a full-text search) adds
  0.15–0.9 s, so a search takes 0.25–1.2 s.
- npm / PyPI (CDN-served JSON): 0.05–0.15 s.
PostgreSQL is the real local server: no latency is added (in production it is ≈ 1 ms away).

Not modelled: rate limits. The fakes never answer 429, so a bench measures the bot's own capacity.
In production GitHub search (30 requests/min per token, shared by every replica) and the model's
requests and tokens per minute cap the whole deployment; see the README's sizing notes.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Any

import httpx2
from aiohttp import web

from integrations.anthropic_replay import load_recording, replay_handler
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.http import Handler
from tests.fakes.registries import RegistryFake
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.replica_support import GatedGitHub

Range = tuple[float, float]

SYNTHESIS_TTFT_S: Range = (1.0, 2.5)
SYNTHESIS_TOKENS_PER_S: Range = (50.0, 80.0)
INTAKE_TTFT_S: Range = (0.4, 1.0)
INTAKE_TOKENS_PER_S: Range = (100.0, 180.0)
SLACK_S: Range = (0.1, 0.3)
ZENDESK_S: Range = (0.1, 0.3)
GITHUB_S: Range = (0.1, 0.3)
GITHUB_SEARCH_EXTRA_S: Range = (0.15, 0.9)
REGISTRY_S: Range = (0.05, 0.15)


@dataclass
class Delayed:
    """Mixin for a `FakeServer`: every request waits a uniform draw from `latency_s` before it is served."""

    latency_s: Range = (0.0, 0.0)
    seed: int = 0
    _delay_rng: random.Random | None = None

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._delay_rng is None:
            self._delay_rng = random.Random(self.seed)
        await asyncio.sleep(self._delay_rng.uniform(*self.latency_s))
        return await super()._record(request, handler)  # type: ignore[misc]


@dataclass
class SlowSlack(Delayed, FakeSlack):
    latency_s: Range = SLACK_S


@dataclass
class SlowZendesk(Delayed, FakeZendesk):
    latency_s: Range = ZENDESK_S


@dataclass
class SlowRegistry(Delayed, RegistryFake):
    latency_s: Range = REGISTRY_S


@dataclass
class SlowGitHub(Delayed, GatedGitHub):
    """Every call `GITHUB_S`; a search waits `GITHUB_SEARCH_EXTRA_S` more (GatedGitHub's search latency)."""

    latency_s: Range = GITHUB_S
    search_latency_s: Range = GITHUB_SEARCH_EXTRA_S

    def __post_init__(self) -> None:
        self.release.set()


def recorded_answer() -> Any:
    """The fake model's answer function: the demo's recorded answer for the request (citations resolved
    against the request's evidence table), through the production replay code. Its text is the output."""
    handle = replay_handler(load_recording())

    def answer(body: dict[str, Any]) -> str:
        request = httpx2.Request("POST", "http://replay/v1/messages", content=json.dumps(body).encode())
        response = handle(request)
        if response.status_code != 200:
            raise LookupError(f"no recorded answer for this request: {response.text[:200]}")
        message = response.json()
        return "".join(b.get("text", "") for b in message["content"] if b.get("type") == "text")

    return answer


@dataclass
class TimedAnthropic(FakeAnthropic):
    """The fake Messages API: recorded answers, each after TTFT + its output tokens ÷ output speed."""

    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)
        if self.default is None:
            self.default = recorded_answer()

    def latency(self, model: str, output_tokens: int) -> float:
        fast = "haiku" in model
        ttft = self._rng.uniform(*(INTAKE_TTFT_S if fast else SYNTHESIS_TTFT_S))
        speed = self._rng.uniform(*(INTAKE_TOKENS_PER_S if fast else SYNTHESIS_TOKENS_PER_S))
        return ttft + output_tokens / speed

    async def _messages(self, request: web.Request) -> web.Response:
        response = await super()._messages(request)
        if response.status == 200 and isinstance(response.body, bytes):
            message = json.loads(response.body)
            await asyncio.sleep(self.latency(str(message["model"]), int(message["usage"]["output_tokens"])))
        return response
