"""The real AnthropicModel (anthropic SDK, httpx2) against the local fake Messages API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from pydantic import BaseModel

from integrations.anthropic_model import AnthropicModel, output_schema, price_for, usage_of
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.http import free_port
from triage.protocols import LanguageModel, LanguageModelError


class Verdict(BaseModel):
    answer: str
    score: int
    tags: list[str] = []


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key="sk-ant-test") as server:
        yield server  # type: ignore[misc]


def make(fake: FakeAnthropic, **kw: object) -> AnthropicModel:
    opts: dict[str, object] = {
        "base_url": fake.url,
        "synthesis_model": "claude-sonnet-5-5",
        "intake_model": "claude-haiku-5-5",
        "max_retries": 2,
        "timeout_s": 10,
    }
    opts.update(kw)
    return AnthropicModel("sk-ant-test", **opts)  # type: ignore[arg-type]


@pytest.fixture
async def model(fake: FakeAnthropic) -> AsyncIterator[AnthropicModel]:
    m = make(fake)
    yield m
    await m.aclose()


async def test_is_a_language_model(model: AnthropicModel) -> None:
    assert isinstance(model, LanguageModel)


async def test_structured_output_parsed_and_request_shape(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.push_json({"answer": "yes", "score": 3, "tags": ["a"]})
    result = await model.complete(
        purpose="synthesis",
        system=["static rules", "playbook"],
        prompt="<ticket_data>x</ticket_data>",
        output_type=Verdict,
        max_tokens=500,
    )
    assert result.output == Verdict(answer="yes", score=3, tags=["a"])
    assert result.model == "claude-sonnet-5-5"
    call = fake.message_calls()[-1]
    assert call.headers["Authorization"] == "Bearer sk-ant-test"
    body = call.json()
    assert body["model"] == "claude-sonnet-5-5"
    assert body["max_tokens"] == 500
    assert "temperature" not in body and "tool_choice" not in body
    fmt = body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert fmt["schema"] == output_schema(Verdict)
    assert sorted(fmt["schema"]["required"]) == ["answer", "score", "tags"]
    assert fmt["schema"]["additionalProperties"] is False
    system = body["system"]
    assert [b["text"] for b in system] == ["static rules", "playbook"]
    assert "cache_control" not in system[0]
    assert system[-1]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"] == [{"role": "user", "content": "<ticket_data>x</ticket_data>"}]


async def test_intake_purpose_uses_intake_model(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.push_json({"answer": "a", "score": 1, "tags": []})
    result = await model.complete(purpose="intake", system=["s"], prompt="p", output_type=Verdict)
    assert result.model == "claude-haiku-5-5"
    assert fake.last_body()["model"] == "claude-haiku-5-5"


async def test_usage_and_cost_with_cache(fake: FakeAnthropic, model: AnthropicModel) -> None:
    system = ["x" * 8000]
    fake.push_json({"answer": "a", "score": 1, "tags": []}, times=2)
    first = await model.complete(purpose="synthesis", system=system, prompt="p" * 400, output_type=Verdict)
    second = await model.complete(purpose="synthesis", system=system, prompt="p" * 400, output_type=Verdict)
    assert first.usage.calls == 1
    assert first.usage.cache_creation_tokens == 2000 and first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == 2000 and second.usage.cache_creation_tokens == 0
    assert first.usage.input_tokens == 100
    # sonnet 5.5: $2 in, $2.50 5m write, $0.20 read, $10 out per MTok
    out = first.usage.output_tokens
    assert first.usage.cost_usd == pytest.approx((100 * 2 + 2000 * 2.5 + out * 10) / 1e6)
    assert second.usage.cost_usd == pytest.approx((100 * 2 + 2000 * 0.2 + out * 10) / 1e6)
    assert second.usage.cost_usd < first.usage.cost_usd


def test_price_table() -> None:
    assert price_for("claude-sonnet-5-5") is not None
    assert price_for("claude-haiku-4-5-20251001") == price_for("claude-haiku-4-5")
    assert price_for("claude-sonnet-5-5-20270101") == price_for("claude-sonnet-5-5")
    assert price_for("claude-sonnet-5-5").output == 10.0  # type: ignore[union-attr]
    assert price_for("claude-haiku-5-5", 150_000).input == 0.50  # type: ignore[union-attr]  # long-prompt tier
    assert price_for("claude-unknown-9") is None
    raw = SimpleNamespace(
        input_tokens=1000, output_tokens=50, cache_read_input_tokens=10, cache_creation_input_tokens=5
    )
    unknown = usage_of("my-proxy-model", raw)
    assert unknown.cost_usd == 0.0
    assert (
        unknown.input_tokens,
        unknown.output_tokens,
        unknown.cache_read_tokens,
        unknown.cache_creation_tokens,
    ) == (
        1000,
        50,
        10,
        5,
    )


async def test_retries_on_429_and_529_then_success(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.rate_limited(retry_after=0.01).overloaded(retry_after=0.01)
    fake.push_json({"answer": "ok", "score": 2, "tags": []})
    result = await model.complete(purpose="synthesis", system=["s"], prompt="p", output_type=Verdict)
    assert result.output.answer == "ok"
    calls = fake.message_calls()
    assert len(calls) == 3
    assert [c.headers.get("x-stainless-retry-count") for c in calls] == ["0", "1", "2"]


async def test_retry_after_is_honoured(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.rate_limited(retry_after=0.4)
    fake.push_json({"answer": "ok", "score": 2, "tags": []})
    t0 = time.perf_counter()
    await model.complete(purpose="synthesis", system=["s"], prompt="p", output_type=Verdict)
    assert time.perf_counter() - t0 >= 0.35  # waited at least what the server asked for


async def test_retries_exhausted_raise_language_model_error(
    fake: FakeAnthropic, model: AnthropicModel
) -> None:
    for _ in range(3):
        fake.overloaded()
    with pytest.raises(LanguageModelError) as info:
        await model.complete(
            purpose="synthesis", system=["s"], prompt="SECRET TICKET TEXT", output_type=Verdict
        )
    assert "529" in str(info.value)
    assert "SECRET" not in str(info.value)
    assert "\n" not in str(info.value)
    assert len(fake.message_calls()) == 3


@pytest.mark.parametrize(
    ("status", "expected"),
    [(500, "500"), (400, "400"), (429, "429"), (413, "413")],
)
async def test_status_errors_mapped(fake: FakeAnthropic, status: int, expected: str) -> None:
    fake.push_error(status, message="something went wrong")
    m = make(fake, max_retries=0)
    try:
        with pytest.raises(LanguageModelError) as info:
            await m.complete(purpose="synthesis", system=["s"], prompt="customer secret", output_type=Verdict)
    finally:
        await m.aclose()
    assert expected in str(info.value)
    assert "customer secret" not in str(info.value)


async def test_wrong_key_is_authentication_error(fake: FakeAnthropic) -> None:
    m = AnthropicModel("sk-wrong", base_url=fake.url, synthesis_model="claude-sonnet-5-5", intake_model="x")
    try:
        with pytest.raises(LanguageModelError, match="ANTHROPIC_API_KEY"):
            await m.complete(purpose="synthesis", system=["s"], prompt="p", output_type=Verdict)
    finally:
        await m.aclose()
    assert len(fake.message_calls()) == 1  # 401 is not retried


async def test_connection_error_mapped() -> None:
    m = AnthropicModel(
        "k",
        base_url=f"http://127.0.0.1:{free_port()}",
        synthesis_model="claude-sonnet-5-5",
        intake_model="x",
        max_retries=0,
        timeout_s=5,
    )
    try:
        with pytest.raises(LanguageModelError, match="could not reach"):
            await m.complete(purpose="synthesis", system=["s"], prompt="p", output_type=Verdict)
    finally:
        await m.aclose()


async def test_invalid_json_gets_one_repair(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.push_text("Sure! Here is the report: {not json")
    fake.push_json({"answer": "fixed", "score": 1, "tags": []})
    result = await model.complete(purpose="synthesis", system=["s"], prompt="p", output_type=Verdict)
    assert result.output.answer == "fixed"
    assert result.usage.calls == 2
    repair = fake.last_body()["messages"]
    assert [m["role"] for m in repair] == ["user", "assistant", "user"]
    assert "not valid JSON" in repair[-1]["content"]


async def test_schema_mismatch_twice_is_error(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.push_json({"answer": "x"})  # score missing
    fake.push_text("still not json")
    with pytest.raises(LanguageModelError, match="invalid structured output"):
        await model.complete(purpose="synthesis", system=["s"], prompt="p", output_type=Verdict)
    assert len(fake.message_calls()) == 2


async def test_refusal_is_error(fake: FakeAnthropic, model: AnthropicModel) -> None:
    fake.push_json({"answer": "", "score": 0, "tags": []}, stop_reason="refusal")
    with pytest.raises(LanguageModelError, match="declined"):
        await model.complete(purpose="synthesis", system=["s"], prompt="p", output_type=Verdict)


async def test_fake_accepts_x_api_key_and_rejects_temperature(fake: FakeAnthropic) -> None:
    fake.push_json({"answer": "a", "score": 1, "tags": []})
    body = {"model": "claude-sonnet-5-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{fake.url}/v1/messages", json=body, headers={"x-api-key": "sk-ant-test"}
        ) as resp:
            assert resp.status == 200
            data = await resp.json()
            assert data["usage"]["input_tokens"] >= 1
        async with http.post(
            f"{fake.url}/v1/messages", json={**body, "temperature": 0}, headers={"x-api-key": "sk-ant-test"}
        ) as resp:
            assert resp.status == 400
        async with http.post(f"{fake.url}/v1/messages", json=body, headers={"x-api-key": "nope"}) as resp:
            assert resp.status == 401


def test_prices_are_data_with_a_date_and_a_file_overrides_them(tmp_path: Path) -> None:
    from integrations.model_prices import PriceTable, bundled_prices
    from triage.protocols import ConfigError

    assert bundled_prices().read_on.isoformat() == "2026-12-01"
    own = tmp_path / "prices.yaml"
    own.write_text(
        'read_on: "2027-01-15"\nmodels:\n'
        "  claude-sonnet-5-5: {input: 1.0, cache_write_5m: 1.25, cache_read: 0.1, output: 4.0}\n"
    )
    table = PriceTable.load(own)
    assert table.read_on.isoformat() == "2027-01-15" and table.price_for("claude-haiku-5-5") is None
    raw = type("U", (), {"input_tokens": 1_000_000, "output_tokens": 1_000_000})()
    assert usage_of("claude-sonnet-5-5", raw, table).cost_usd == 5.0
    assert usage_of("claude-sonnet-5-5", raw).cost_usd == 12.0  # the bundled table: 2 + 10
    own.write_text("read_on: yesterday\nmodels: {}\n")
    with pytest.raises(ConfigError, match="MODEL_PRICES_FILE"):
        PriceTable.load(own)


def test_model_prices_file_setting_reaches_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import Settings
    from bot.wiring import build_model

    own = tmp_path / "prices.yaml"
    own.write_text('read_on: "2027-01-15"\nmodels: {}\n')
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("MODEL_PRICES_FILE", str(own))
    model = build_model(Settings())
    assert isinstance(model, AnthropicModel) and model.prices.read_on.isoformat() == "2027-01-15"
