"""Where the model runs: the Anthropic API, Amazon Bedrock or Google Vertex AI (`TRIAGE_LLM_PROVIDER`).

All three go through the anthropic SDK's own clients (`AsyncAnthropic`, `AsyncAnthropicBedrock`,
`AsyncAnthropicVertex`), so requests, retries, errors and response types are the same everywhere; the
SDK rewrites the path (`/model/{id}/invoke` on Bedrock, `…/publishers/anthropic/models/{id}:rawPredict`
on Vertex) and moves `model` out of the body. A company that must keep EU ticket data in the EU picks a
Bedrock or Vertex region there (`TRIAGE_LLM_REGION`, e.g. `eu-central-1` or `europe-west1`).

With PostHog LLM analytics configured, the same clients come from `posthog.ai.anthropic` (its wrappers
subclass the SDK clients and add `posthog_*` keyword arguments to `messages.create`).

What each provider supports (sources in docs/readme/providers.md):
- structured output (`output_config.format`): Anthropic API yes; Bedrock yes on the `bedrock-runtime`
  InvokeModel path the SDK uses (Claude 4.5+); Vertex only for some models and only when the org policy
  `constraints/vertexai.allowedPartnerModelFeatures` allows `structured_outputs` — otherwise 400
  "output_config.format: Extra inputs are not permitted". `TRIAGE_STRUCTURED_OUTPUT=false` sends the
  schema as an instruction instead (the adapter validates and repairs either way).
- prompt caching (`cache_control`): all three.
- token counting: Anthropic API and Vertex; the SDK refuses it for Bedrock, so `check` sends a
  1-token message there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import anthropic

from triage.protocols import ConfigError

Provider = Literal["anthropic", "bedrock", "vertex"]
PROVIDERS: tuple[str, ...] = ("anthropic", "bedrock", "vertex")
DEFAULT_BASE_URL = "https://api.anthropic.com"


@dataclass(frozen=True)
class ProviderConfig:
    provider: str = "anthropic"
    api_key: str = ""  # Anthropic API key, or a Bedrock API key (else the AWS credential chain)
    base_url: str = ""  # empty: the provider's default endpoint for the region
    region: str = ""  # Bedrock: AWS region; Vertex: region, "eu", "us" or "global"
    project_id: str = ""  # Vertex: Google Cloud project (else from the credentials)
    access_token: str = ""  # Vertex: a ready OAuth token (else application default credentials)
    max_retries: int = 3
    timeout_s: float = 120.0
    http_client: Any = None  # an httpx2.AsyncClient for the SDK (the demo's recorded answers); None = default

    @property
    def label(self) -> str:
        where = f" {self.region}" if self.region else ""
        return f"{self.provider}{where}"


def build_client(config: ProviderConfig, posthog_client: Any | None = None) -> Any:
    """The SDK client for `config.provider`; the PostHog-wrapped one when `posthog_client` is given."""
    common: dict[str, Any] = {"max_retries": config.max_retries, "timeout": config.timeout_s}
    if config.base_url:
        common["base_url"] = config.base_url
    if config.http_client is not None:
        common["http_client"] = config.http_client
    if posthog_client is not None:
        from posthog.ai import anthropic as wrapped

        common["posthog_client"] = posthog_client
        classes = (wrapped.AsyncAnthropic, wrapped.AsyncAnthropicBedrock, wrapped.AsyncAnthropicVertex)
    else:
        classes = (anthropic.AsyncAnthropic, anthropic.AsyncAnthropicBedrock, anthropic.AsyncAnthropicVertex)
    plain, bedrock, vertex = classes
    try:
        if config.provider == "anthropic":
            if not config.api_key:
                raise ConfigError("ANTHROPIC_API_KEY is not set")
            common.setdefault("base_url", DEFAULT_BASE_URL)
            return plain(api_key=config.api_key, **common)
        if config.provider == "bedrock":
            return bedrock(
                aws_region=config.region or None,
                api_key=config.api_key or None,
                **common,
            )
        if config.provider == "vertex":
            kwargs: dict[str, Any] = dict(common)
            if config.region:
                kwargs["region"] = config.region
            if config.project_id:
                kwargs["project_id"] = config.project_id
            if config.access_token:
                kwargs["access_token"] = config.access_token
            return vertex(**kwargs)
    except ValueError as exc:  # the SDK's own "no region was given" etc.
        raise ConfigError(f"TRIAGE_LLM_PROVIDER={config.provider}: {exc}") from exc
    raise ConfigError(f"TRIAGE_LLM_PROVIDER must be one of {', '.join(PROVIDERS)}, not {config.provider!r}")


_GEO_PREFIX = re.compile(r"^(?:(?:us|eu|apac|global|us-gov|jp|au)\.)?(?:anthropic\.)?")
_BEDROCK_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")


def canonical_model_id(model: str) -> str:
    """The Anthropic model id behind a provider id (for prices and reports).

    `eu.anthropic.claude-sonnet-4-5-20250929-v1:0` (a Bedrock inference profile) →
    `claude-sonnet-4-5-20250929`; `claude-sonnet-4-5@20250929` (Vertex) → `claude-sonnet-4-5-20250929`.
    """
    text = model.strip()
    if text.startswith("arn:"):
        text = text.rsplit("/", 1)[-1]
    text = _GEO_PREFIX.sub("", text, count=1)
    text = _BEDROCK_SUFFIX.sub("", text)
    return text.replace("@", "-")
