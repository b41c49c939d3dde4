import pytest

from coherex.llm.pricing import cost_usd, price_for


def test_known_model_cost_per_million_tokens():
    cost, known = cost_usd("gpt-4o-mini", 1_000_000, 1_000_000)
    assert known
    assert cost == pytest.approx(0.15 + 0.60)


def test_dated_snapshot_costs_like_its_base_model():
    assert price_for("gpt-4o-mini-2024-07-18") == price_for("gpt-4o-mini")
    assert price_for("gpt-4.1-nano-2025-04-14") == price_for("gpt-4.1-nano")


def test_mini_is_not_priced_as_the_big_model():
    assert price_for("gpt-4.1-mini") != price_for("gpt-4.1")


def test_unknown_model_costs_zero_and_is_flagged():
    assert cost_usd("llama3.2:3b", 5000, 500) == (0.0, False)
