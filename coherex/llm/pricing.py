"""What a call costs: USD per 1M input / output tokens for OpenAI models.

Prices are OpenAI's published standard-tier list prices (text tokens, no cached-input or batch
discounts); edit this table when they change. A dated snapshot (`gpt-4o-mini-2024-07-18`) costs
what its base model costs. A model not listed costs 0 and is flagged (`ChatResult.price_known`),
so a dashboard can show "unknown" instead of a wrong number.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Price(NamedTuple):
    input_per_m: float
    output_per_m: float


PRICES: dict[str, Price] = {
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "o4-mini": Price(1.10, 4.40),
    "o3": Price(2.00, 8.00),
    "o3-mini": Price(1.10, 4.40),
    "o1": Price(15.00, 60.00),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
}

_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def price_for(model: str) -> Price | None:
    name = model.strip().lower()
    return PRICES.get(name) or PRICES.get(_SNAPSHOT.sub("", name))


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> tuple[float, bool]:
    """(cost, price_known). Unknown models cost 0 with price_known False."""
    price = price_for(model)
    if price is None:
        return 0.0, False
    cost = (prompt_tokens * price.input_per_m + completion_tokens * price.output_per_m) / 1_000_000
    return cost, True
