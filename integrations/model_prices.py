"""Model prices as data: `integrations/data/model_prices.yaml` (or the file `MODEL_PRICES_FILE` names).

The file says when its numbers were read (`read_on`); `price_for` picks the longest listed model id that
the (canonical) model id equals or starts with followed by "-", and the long-prompt tier when it applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triage.protocols import ConfigError

BUNDLED_PRICES = Path(__file__).parent / "data" / "model_prices.yaml"


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    cache_write_5m: float
    cache_read: float
    output: float
    cache_write_1h: float | None = None  # default: 2 × input

    @property
    def write_1h(self) -> float:
        return self.cache_write_1h if self.cache_write_1h is not None else 2 * self.input


class _PriceRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0)
    cache_write_5m: float = Field(ge=0)
    cache_read: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write_1h: float | None = Field(default=None, ge=0)

    def price(self) -> Price:
        return Price(self.input, self.cache_write_5m, self.cache_read, self.output, self.cache_write_1h)


class _LongPrompt(_PriceRow):
    above_tokens: int = Field(gt=0)


class _ModelRow(_PriceRow):
    long_prompt: _LongPrompt | None = None


class _PriceFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    read_on: date
    models: dict[str, _ModelRow]


@dataclass(frozen=True)
class PriceTable:
    read_on: date
    prices: dict[str, Price]
    long_prompt: dict[str, tuple[int, Price]]
    source: str

    @classmethod
    def load(cls, path: Path | str | None = None) -> PriceTable:
        file = Path(path) if path else BUNDLED_PRICES
        try:
            raw: Any = yaml.safe_load(file.read_text(encoding="utf-8"))
            parsed = _PriceFile.model_validate(raw)
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"MODEL_PRICES_FILE {file} is invalid: {first}") from exc
        return cls(
            read_on=parsed.read_on,
            prices={name: row.price() for name, row in parsed.models.items()},
            long_prompt={
                name: (row.long_prompt.above_tokens, row.long_prompt.price())
                for name, row in parsed.models.items()
                if row.long_prompt is not None
            },
            source=str(file),
        )

    def price_for(self, model: str, prompt_tokens: int = 0) -> Price | None:
        """The price of `model` (an Anthropic model id), or None when the table does not list it."""
        best = ""
        for prefix in self.prices:
            if (model == prefix or model.startswith(prefix + "-")) and len(prefix) > len(best):
                best = prefix
        if not best:
            return None
        tier = self.long_prompt.get(best)
        if tier and prompt_tokens > tier[0]:
            return tier[1]
        return self.prices[best]


@lru_cache(maxsize=1)
def bundled_prices() -> PriceTable:
    return PriceTable.load()
