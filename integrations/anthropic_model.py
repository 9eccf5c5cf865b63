"""`LanguageModel` over the Anthropic Messages API (anthropic 2.x; the Anthropic API, Bedrock or Vertex).

- One model per purpose: `intake` uses the cheap intake model, everything else the synthesis model.
- Structured output through `output_config.format` (JSON schema from the pydantic output type), or, where
  the provider refuses it (`structured_output=False`), the schema as the last system instruction; either
  way validated with pydantic; invalid JSON gets one repair turn, then `LanguageModelError`.
- The SDK client comes from `integrations.llm_providers` (provider, region, PostHog analytics wrapper).
- System blocks are sent as text blocks; the last one carries `cache_control` (static prompt first).
- Retries (429, 529, 5xx, connection errors, honouring `retry-after`) are the SDK's; every SDK error
  becomes a one-line `LanguageModelError` that never contains ticket text.
- Usage is reported with a cost from the price table (`integrations.model_prices`, a data file).
"""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar

import anthropic
from anthropic import transform_schema
from pydantic import BaseModel, ValidationError

from integrations.llm_providers import DEFAULT_BASE_URL, ProviderConfig, build_client, canonical_model_id
from integrations.model_prices import Price, PriceTable, bundled_prices
from triage.models import Usage
from triage.protocols import ConfigError, LanguageModelError, ModelResult

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)


def price_for(model: str, prompt_tokens: int = 0, prices: PriceTable | None = None) -> Price | None:
    """The price of `model` from the price table (Bedrock/Vertex ids are mapped first), or None."""
    return (prices or bundled_prices()).price_for(canonical_model_id(model), prompt_tokens)


def usage_of(model: str, raw: Any, prices: PriceTable | None = None) -> Usage:
    """Convert an SDK `Usage` into ours, with the cost (0 for a model the price table does not list)."""
    input_tokens = int(getattr(raw, "input_tokens", 0) or 0)
    output_tokens = int(getattr(raw, "output_tokens", 0) or 0)
    cache_read = int(getattr(raw, "cache_read_input_tokens", 0) or 0)
    cache_write = int(getattr(raw, "cache_creation_input_tokens", 0) or 0)
    write_1h = 0
    detail = getattr(raw, "cache_creation", None)
    if detail is not None:
        write_1h = int(getattr(detail, "ephemeral_1h_input_tokens", 0) or 0)
    write_5m = max(0, cache_write - write_1h)
    price = price_for(model, input_tokens + cache_read + cache_write, prices)
    cost = 0.0
    if price is not None:
        cost = (
            input_tokens * price.input
            + write_5m * price.cache_write_5m
            + write_1h * price.write_1h
            + cache_read * price.cache_read
            + output_tokens * price.output
        ) / 1_000_000
    return Usage(
        calls=1,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_creation_tokens=cache_write,
        cost_usd=round(cost, 6),
    )


def _require_all(schema: dict[str, Any]) -> dict[str, Any]:
    """Make every object property required (optional ones are nullable or have empty defaults).

    Structured outputs limit optional parameters; asking for every field is also what we want.
    """
    if schema.get("type") == "object" and isinstance(schema.get("properties"), dict):
        schema["required"] = list(schema["properties"])
        for sub in schema["properties"].values():
            if isinstance(sub, dict):
                _require_all(sub)
    for key in ("anyOf", "allOf"):
        for sub in schema.get(key, []) or []:
            if isinstance(sub, dict):
                _require_all(sub)
    if isinstance(schema.get("items"), dict):
        _require_all(schema["items"])
    for sub in (schema.get("$defs") or {}).values():
        if isinstance(sub, dict):
            _require_all(sub)
    return schema


def output_schema(output_type: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent as `output_config.format.schema` for `output_type`."""
    return _require_all(transform_schema(output_type))


def _one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _error_message(exc: Exception, model: str) -> str:
    """One line, no request content: status, error type and the API's own short message."""
    if isinstance(exc, anthropic.APITimeoutError):
        return f"Anthropic API timed out ({model})"
    if isinstance(exc, anthropic.APIConnectionError):
        return f"could not reach the Anthropic API ({type(exc.__cause__ or exc).__name__})"
    if isinstance(exc, anthropic.AuthenticationError):
        return "Anthropic API rejected the credentials (401); check ANTHROPIC_API_KEY"
    if isinstance(exc, anthropic.PermissionDeniedError):
        return "Anthropic API denied access (403); check ANTHROPIC_API_KEY and the model"
    if isinstance(exc, anthropic.RateLimitError):
        return "Anthropic API rate limit (429) persisted after retries"
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        kind = getattr(exc, "type", None) or ""
        detail = getattr(exc, "api_message", None) or ""
        if status == 529:
            return "Anthropic API overloaded (529) after retries"
        parts = [f"Anthropic API error {status}"]
        if kind:
            parts.append(str(kind))
        text = " ".join(parts)
        return f"{text}: {_one_line(detail, 120)}" if detail else text
    if isinstance(exc, anthropic.AnthropicError):
        return f"Anthropic client error: {_one_line(str(exc), 120)}"
    return f"model call failed: {type(exc).__name__}"


class AnthropicModel:
    """Implements `triage.protocols.LanguageModel`."""

    def __init__(
        self,
        api_key: str = "",
        *,
        base_url: str = DEFAULT_BASE_URL,
        synthesis_model: str,
        intake_model: str,
        max_retries: int = 3,
        timeout_s: float = 120,
        provider: ProviderConfig | None = None,
        structured_output: bool = True,
        prompt_caching: bool = True,
        analytics: Any | None = None,  # integrations.posthog_analytics.PostHogAnalytics
        prices: PriceTable | None = None,
    ) -> None:
        self.provider = provider or ProviderConfig(
            "anthropic", api_key=api_key, base_url=base_url, max_retries=max_retries, timeout_s=timeout_s
        )
        self.synthesis_model = synthesis_model
        self.intake_model = intake_model
        self.structured_output = structured_output
        self.prompt_caching = prompt_caching
        self.analytics = analytics
        self.prices = prices or bundled_prices()
        try:
            self._client = build_client(self.provider, analytics.client if analytics is not None else None)
        except ConfigError as exc:
            raise LanguageModelError(str(exc)) from exc

    def model_for(self, purpose: str) -> str:
        return self.intake_model if purpose == "intake" else self.synthesis_model

    async def aclose(self) -> None:
        await self._client.close()

    async def check(self) -> str:
        """For `triagebot check`: reach the configured provider without generating a report.

        Anthropic and Vertex count the tokens of a tiny prompt; the SDK has no token counting for
        Bedrock, so there a one-token message is sent (it costs a few input tokens).
        """
        model = self.synthesis_model
        where = self.provider.label
        try:
            if self.provider.provider == "bedrock":
                message = await self._client.messages.create(
                    model=model, max_tokens=1, messages=[{"role": "user", "content": "ping"}]
                )
                return f"{model} reachable on {where} ({message.usage.input_tokens} input tokens)"
            counted = await self._client.messages.count_tokens(
                model=model, messages=[{"role": "user", "content": "ping"}]
            )
        except Exception as exc:
            raise LanguageModelError(_error_message(exc, model)) from exc
        return f"{model} reachable on {where} ({counted.input_tokens} tokens counted)"

    async def __aenter__(self) -> AnthropicModel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def system_blocks(self, system: list[str], schema: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Text blocks; the last static block carries the cache breakpoint (unless caching is off).

        Without structured output the schema travels as the last static instruction block.
        """
        texts = [text for text in system if text]
        if schema is not None and not self.structured_output:
            texts.append(
                "Reply with only one JSON object, no prose and no code fences, that matches this JSON "
                "schema:\n" + json.dumps(schema, separators=(",", ":"))
            )
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text} for text in texts]
        if blocks and self.prompt_caching:
            blocks[-1]["cache_control"] = {"type": "ephemeral"}
        return blocks

    async def _call(
        self,
        model: str,
        system: list[dict[str, Any]],
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        max_tokens: int,
    ) -> tuple[str, str, Usage]:
        kwargs: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": messages,
        }
        if self.structured_output:
            kwargs["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        if self.analytics is not None:  # the posthog.ai wrapper's trace id and properties for this call
            kwargs.update(self.analytics.call_kwargs())
        if system:
            kwargs["system"] = system
        try:
            message = await self._client.messages.create(**kwargs)
        except (anthropic.AnthropicError, ValueError) as exc:
            msg = _error_message(exc, model)
            log.warning("model call failed: %s", msg)
            raise LanguageModelError(msg) from exc
        usage = usage_of(model, message.usage, self.prices)
        if message.stop_reason == "refusal":
            raise LanguageModelError(f"the model declined to answer ({model})")
        text = "".join(getattr(block, "text", "") for block in message.content if block.type == "text")
        return text, str(message.stop_reason or ""), usage

    async def complete(
        self,
        *,
        purpose: str,
        system: list[str],
        prompt: str,
        output_type: type[T],
        max_tokens: int = 4096,
    ) -> ModelResult[T]:
        model = self.model_for(purpose)
        schema = output_schema(output_type)
        blocks = self.system_blocks(system, schema)
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        text, stop, usage = await self._call(model, blocks, messages, schema, max_tokens)
        try:
            return ModelResult(output=_parse(output_type, text), usage=usage, model=model)
        except ValueError as first:
            problem = _problem(first, stop)
            log.info("model output for %s was not valid (%s); asking once for a repair", purpose, problem)
        repair = [
            *messages,
            {"role": "assistant", "content": text or "(empty)"},
            {
                "role": "user",
                "content": (
                    f"Your previous answer could not be used: {problem}. Reply again with only one JSON "
                    "object that matches the required schema, no prose, no code fences."
                ),
            },
        ]
        text2, stop2, usage2 = await self._call(model, blocks, repair, schema, max_tokens)
        usage = usage.add(usage2)
        try:
            return ModelResult(output=_parse(output_type, text2), usage=usage, model=model)
        except ValueError as second:
            raise LanguageModelError(
                f"model returned invalid structured output twice ({_problem(second, stop2)})"
            ) from second


def _strip_fences(text: str) -> str:
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        if body.rstrip().endswith("```"):
            body = body.rstrip()[:-3]
    return body.strip()


def _parse(output_type: type[T], text: str) -> T:
    body = _strip_fences(text)
    if not body:
        raise ValueError("empty output")
    try:
        return output_type.model_validate_json(body)
    except ValidationError as exc:
        raise ValueError(_validation_summary(exc)) from exc


def _validation_summary(exc: ValidationError) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    if errors and errors[0].get("type") == "json_invalid":
        return "not valid JSON"
    parts = [
        f"{'.'.join(str(p) for p in e.get('loc', ())) or 'root'}: {e.get('msg', '')}" for e in errors[:3]
    ]
    return "schema mismatch: " + "; ".join(parts)


def _problem(exc: Exception, stop_reason: str) -> str:
    text = _one_line(str(exc), 200)
    if stop_reason == "max_tokens":
        text += " (output was cut off at max_tokens)"
    return text


def dumps_schema(output_type: type[BaseModel]) -> str:
    """The schema as JSON text (for debugging / `triagebot schema`)."""
    return json.dumps(output_schema(output_type), indent=2)
