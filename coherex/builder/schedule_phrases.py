"""Schedule phrases in plain English → five-field cron, with a small grammar (no model).

    parse("every weekday at 9")          → Phrase(cron "0 9 * * 1-5")
    parse("each Monday morning")         → "0 9 * * 1"
    parse("every 15 minutes")            → "*/15 * * * *"
    parse("at 7:30", base="0 8 * * 1-5") → "30 7 * * 1-5"   (an edit keeps what it does not name)

What the grammar knows: intervals (every N minutes/hours, hourly, every half hour), days (daily,
every day, weekdays, weekends, day names and ranges "Monday to Friday", weekly, monthly, "on the
1st"), times ("at 9", "9am", "18:00", "6 pm", "8 in the evening", noon, midnight) and parts of the
day (morning 09:00, afternoon 14:00, evening 18:00, night 21:00). A time zone named in the text
(IANA name, UTC/GMT, or a zone's city: "Paris time") is found by `find_timezone`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import available_timezones

from croniter import croniter

_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "ten": 10,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty-five": 45,
    "sixty": 60,
}
_DAYS = {"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6}
_DAY_RE = r"(sun|mon|tue|tues|wed|thu|thur|thurs|fri|sat)(?:day|nesday|rsday|urday|sday)?s?"
_PARTS = {"morning": 9, "afternoon": 14, "evening": 18, "night": 21, "tonight": 21}
_MEASURE = re.compile(
    r"\b(daily|weekly|monthly|yearly|annual|hourly) (payments?|rates?|fees?|costs?|budgets?|salary|"
    r"income|interest|revenue|sales|active|users|average|totals?|volume|numbers|figures|spend"
    r"|spending|expenses|prices?)\b"
)
_NUM = r"(\d+|" + "|".join(sorted(_NUMBERS, key=len, reverse=True)) + r")"


@dataclass(frozen=True)
class Phrase:
    """What a phrase said; None where it said nothing (an edit keeps the old value there)."""

    minute: str | None = None
    hour: str | None = None
    dom: str | None = None
    dow: str | None = None
    #: a "every N minutes/hours" interval: the whole expression
    interval: str | None = None
    #: the phrase named a day (weekday, Monday, daily) but no time: the part of day, if any, chose it
    said: str = ""

    def cron(self, base: str | None = None) -> str:
        """The cron expression, the fields the phrase did not name taken from `base` (or a daily 09:00)."""
        if self.interval:
            return self.interval
        minute, hour, dom, month, dow = (base or "0 9 * * *").split()
        if "/" in minute or "/" in hour or hour == "*":  # an interval base: a time phrase replaces it
            minute, hour, dom, month, dow = "0", "9", "*", "*", dow if "/" not in dow else "*"
        if self.hour is not None:
            hour, minute = self.hour, self.minute or "0"
        if self.dow is not None:
            dow, dom = self.dow, "*"
        if self.dom is not None:
            dom, dow = self.dom, "*"
        expr = f"{minute} {hour} {dom} {month} {dow}"
        assert croniter.is_valid(expr), expr
        return expr


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word]


def _day(word: str) -> int:
    return next(v for k, v in _DAYS.items() if k.startswith(word[:3]))


def parse(text: str) -> Phrase | None:
    """The schedule the text asks for, or None when it names no time, day or interval."""
    t = " " + re.sub(r"\s+", " ", text.lower().replace("a.m.", "am").replace("p.m.", "pm")) + " "
    t = t.replace("o'clock", "").replace("–", "-")
    t = _MEASURE.sub(" ", t)  # "monthly payment", "daily active users": a measure, not a schedule
    # --- intervals
    if re.search(r"\bevery half[- ]hour\b|\bhalf[- ]hourly\b", t):
        return Phrase(interval="*/30 * * * *", said="every 30 minutes")
    if re.search(r"\bevery quarter[- ]hour\b", t):
        return Phrase(interval="*/15 * * * *", said="every 15 minutes")
    if m := re.search(rf"\bevery {_NUM}?\s*(minute|min|hour|hr)s?\b", t):
        n = _number(m.group(1)) if m.group(1) else 1
        if m.group(2).startswith("m"):
            if not 1 <= n <= 59:
                return None
            return Phrase(interval="* * * * *" if n == 1 else f"*/{n} * * * *", said=f"every {n} minutes")
        if not 1 <= n <= 23:
            return None
        return Phrase(interval="0 * * * *" if n == 1 else f"0 */{n} * * *", said=f"every {n} hours")
    if re.search(r"\bhourly\b", t):
        return Phrase(interval="0 * * * *", said="every hour")
    # --- days
    dow = dom = None
    if re.search(
        r"\b(week ?days?|working days?|business days?|workdays?)\b|\bmon(day)?s? ?(-|to|through|thru) "
        r"?fri(day)?s?\b",
        t,
    ):
        dow = "1-5"
    elif re.search(r"\bweekends?\b", t):
        dow = "0,6"
    elif m := re.search(rf"\b{_DAY_RE} ?(?:-|to|through|thru|until) ?{_DAY_RE}\b", t):
        a, b = _day(m.group(1)), _day(m.group(2))
        dow = f"{a}-{b}" if a < b else None
    if dow is None:
        named = sorted({_day(m.group(1)) for m in re.finditer(rf"\b{_DAY_RE}\b", t)})
        if named:
            dow = ",".join(str(d) for d in named)
    if dow is None:
        if re.search(
            r"\b(daily|every ?day|each day|nightly|every (morning|afternoon|evening|night)|each "
            r"(morning|afternoon|evening|night)|mornings|evenings)\b",
            t,
        ):
            dow = "*"
        elif re.search(r"\b(weekly|every week|each week|once a week)\b", t):
            dow = "1"
    if m := re.search(r"\b(?:on )?the (\d{1,2})(?:st|nd|rd|th)\b(?: of (?:the|each|every) month)?", t):
        if 1 <= int(m.group(1)) <= 28:
            dom = m.group(1)
    elif re.search(r"\b(monthly|every month|each month|once a month|first of (the|each|every) month)\b", t):
        dom = "1"
    # --- time of day
    hour = minute = None
    part = next((p for p in _PARTS if re.search(rf"\b{p}\b", t)), None)
    if re.search(r"\bnoon\b|\bmidday\b", t):
        hour, minute = 12, 0
    elif re.search(r"\bmidnight\b", t):
        hour, minute = 0, 0
    elif m := (
        re.search(r"\b(?:at|from|by|around) (\d{1,2})(?:[:.h](\d{2}))? ?(am|pm)?\b", t)
        or re.search(r"\b(\d{1,2})(?:[:.h](\d{2})) ?(am|pm)?\b", t)
        or re.search(r"\b(\d{1,2}) ?(am|pm)\b()", t)
        or re.search(r"\b(\d{1,2})()() in the (?:morning|afternoon|evening|night)\b", t)
    ):
        groups = m.groups()
        if len(groups) == 3 and groups[1] in ("am", "pm"):  # the third pattern: (hour, am/pm, "")
            groups = (groups[0], None, groups[1])
        hour, minute = int(groups[0]), int(groups[1] or 0)
        suffix = groups[2] or None
        if (
            suffix == "pm"
            and hour < 12
            or suffix is None
            and part in ("afternoon", "evening", "night")
            and hour < 12
        ):
            hour += 12
        elif suffix == "am" and hour == 12:
            hour = 0
        if not (0 <= hour <= 23 and 0 <= minute <= 59):
            return None
    elif part:
        hour, minute = _PARTS[part], 0
    if hour is None and dow is None and dom is None:
        return None
    return Phrase(
        minute=None if minute is None else str(minute),
        hour=None if hour is None else str(hour),
        dom=dom,
        dow=dow,
    )


def find_timezone(text: str) -> str | None:
    """An IANA time zone the text names ("Europe/Berlin", "UTC", "Paris time", "in Tokyo"), or None."""
    for m in re.finditer(r"\b([A-Za-z]+(?:/[A-Za-z_\-]+){1,2})\b", text):
        zone = _zones_lower().get(m.group(1).lower())
        if zone:
            return zone
    if re.search(r"\b(utc|gmt|zulu)\b", text.lower()):
        return "UTC"
    for m in re.finditer(r"\b([A-Z][a-z]+(?: [A-Z][a-z]+)?)\b", text):
        zone = _cities().get(m.group(1).lower().replace(" ", "_"))
        if zone:
            return zone
    return None


@lru_cache(maxsize=1)
def _zones_lower() -> dict[str, str]:
    return {z.lower(): z for z in available_timezones()}


@lru_cache(maxsize=1)
def _cities() -> dict[str, str]:
    """City part of a zone → the zone (Europe/Paris for "paris"); only the canonical Area/City zones."""
    out: dict[str, str] = {}
    for zone in sorted(available_timezones()):
        area, _, city = zone.partition("/")
        if (
            area in ("Europe", "America", "Asia", "Africa", "Australia", "Pacific", "Atlantic", "Indian")
            and city
            and "/" not in city
        ):
            out.setdefault(city.lower(), zone)
    return out
