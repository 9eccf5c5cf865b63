"""TRIAGE_LLM_PROVIDER: the SDK's own Bedrock and Vertex clients against the fake on their real paths."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from bot.checks import run_checks
from bot.settings import Settings
from bot.wiring import build_model
from integrations.anthropic_model import AnthropicModel, price_for
from integrations.llm_providers import ProviderConfig, canonical_model_id
from tests.fakes.anthropic import FakeAnthropic
from triage.protocols import LanguageModelError


class Verdict(BaseModel):
    answer: str
    score: int


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key="token-1") as server:
        yield server  # type: ignore[misc]


def bedrock(fake: FakeAnthropic, **kw: object) -> AnthropicModel:
    config = ProviderConfig("bedrock", api_key=fake.api_key, base_url=fake.url, region="eu-central-1")
    return AnthropicModel(
        synthesis_model="eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        intake_model="eu.anthropic.claude-haiku-4-5-20251001-v1:0",
        provider=config,
        **kw,  # type: ignore[arg-type]
    )


def vertex(fake: FakeAnthropic, **kw: object) -> AnthropicModel:
    config = ProviderConfig(
        "vertex",
        base_url=fake.url,
        region="europe-west1",
        project_id="acme-support",
        access_token=fake.api_key,
    )
    return AnthropicModel(
        synthesis_model="claude-sonnet-4-6", intake_model="claude-haiku-4-5@20251001", provider=config, **kw
    )  # type: ignore[arg-type]


async def test_bedrock_invoke_path_body_and_usage(fake: FakeAnthropic) -> None:
    fake.push_json({"answer": "yes", "score": 2})
    async with bedrock(fake) as model:
        result = await model.complete(purpose="synthesis", system=["rules"], prompt="p", output_type=Verdict)
    assert result.output == Verdict(answer="yes", score=2)
    (call,) = fake.calls("/model/eu.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke", "POST")
    body = call.json()
    assert "model" not in body and body["anthropic_version"]
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert call.headers["Authorization"] == "Bearer token-1"
    # priced as the Anthropic model behind the inference profile
    assert result.usage.cost_usd > 0


async def test_vertex_raw_predict_path_and_count_tokens_check(fake: FakeAnthropic) -> None:
    fake.push_json({"answer": "no", "score": 0})
    async with vertex(fake) as model:
        result = await model.complete(purpose="intake", system=["rules"], prompt="p", output_type=Verdict)
        status = await model.check()
    assert result.output.answer == "no"
    base = "/projects/acme-support/locations/europe-west1/publishers/anthropic/models/"
    assert fake.calls(base + "claude-haiku-4-5@20251001:rawPredict", "POST")
    assert fake.calls(base + "count-tokens:rawPredict", "POST")
    assert "reachable on vertex europe-west1" in status


async def test_bedrock_check_sends_one_token_message(fake: FakeAnthropic) -> None:
    fake.push_json({"answer": "x", "score": 1})
    async with bedrock(fake) as model:
        status = await model.check()
    (call,) = fake.calls("/model/eu.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke", "POST")
    assert call.json()["max_tokens"] == 1
    assert "reachable on bedrock eu-central-1" in status


async def test_without_structured_output_the_schema_is_an_instruction(fake: FakeAnthropic) -> None:
    fake.push_json({"answer": "yes", "score": 1})
    async with vertex(fake, structured_output=False, prompt_caching=False) as model:
        result = await model.complete(purpose="synthesis", system=["rules"], prompt="p", output_type=Verdict)
    assert result.output.score == 1
    (call,) = fake.calls(
        "/projects/acme-support/locations/europe-west1/publishers/anthropic/models/claude-sonnet-4-6:rawPredict",
        "POST",
    )
    body = call.json()
    assert "output_config" not in body
    assert '"score"' in body["system"][-1]["text"] and "cache_control" not in body["system"][-1]


async def test_bad_bedrock_credentials_are_one_line(fake: FakeAnthropic) -> None:
    config = ProviderConfig("bedrock", api_key="wrong", base_url=fake.url, region="eu-west-1", max_retries=0)
    async with AnthropicModel(synthesis_model="m", intake_model="m", provider=config) as model:
        with pytest.raises(LanguageModelError) as info:
            await model.complete(purpose="synthesis", system=[], prompt="p", output_type=Verdict)
    assert "403" in str(info.value) and "\n" not in str(info.value)


def test_vertex_without_region_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUD_ML_REGION", raising=False)
    with pytest.raises(LanguageModelError, match="TRIAGE_LLM_PROVIDER=vertex: No region"):
        AnthropicModel(synthesis_model="m", intake_model="m", provider=ProviderConfig("vertex"))


@pytest.mark.parametrize(
    ("provider_id", "canonical"),
    [
        ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929"),
        ("anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5-20251001"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5-20250929"),
        ("claude-sonnet-5-5", "claude-sonnet-5-5"),
        (
            "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/eu.anthropic.claude-opus-4-6-v1",
            "claude-opus-4-6",
        ),
    ],
)
def test_canonical_model_ids_price_like_the_anthropic_id(provider_id: str, canonical: str) -> None:
    assert canonical_model_id(provider_id) == canonical
    assert price_for(provider_id) == price_for(canonical) is not None


async def test_settings_pick_the_provider_and_check_names_it(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        triage_llm_provider="bedrock",
        triage_llm_region="eu-central-1",
        triage_llm_base_url=fake.url,
        triage_model="eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        database_url="sqlite://",
        github_api_url="http://127.0.0.1:9",
        npm_registry_url="http://127.0.0.1:9",
        pypi_url="http://127.0.0.1:9",
        source_max_retries=0,
    )
    assert settings.model_configured  # no ANTHROPIC_API_KEY needed
    model = build_model(settings)
    assert isinstance(model, AnthropicModel) and model.provider.provider == "bedrock"
    await model.aclose()
    fake.push_json({"answer": "x", "score": 1})
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", fake.api_key)  # the SDK's own Bedrock API-key variable
    results = {name: (ok, detail) for name, ok, detail in await run_checks(settings)}
    ok, detail = results["bedrock"]
    assert ok, detail
    assert "eu-central-1" in detail
