"""A new built-in provider as a test adds one: this module, and one line in the registry list
(`registry.use([*registry.BUILTIN, weather_provider.PROVIDER])`)."""

from __future__ import annotations

from typing import Any

from coherex.spec.catalogue import ToolInfo
from coherex.tools.port import Provider, ToolCall, ToolFailed, ToolResult, action
from coherex.tools.schema import params, string

FORECASTS = {"Paris": ("sunny", 21), "Oslo": ("snow", -3)}


@action(
    ToolInfo(
        "weather.forecast",
        "weather",
        "Tomorrow's weather for a city.",
        parameters=params({"city": string("the city")}, ["city"]),
    )
)
async def forecast(call: ToolCall, args: dict[str, Any]) -> ToolResult:
    if args["city"] not in FORECASTS:
        raise ToolFailed(f"No forecast for {args['city']!r}; known: {', '.join(FORECASTS)}.")
    sky, degrees = FORECASTS[args["city"]]
    return ToolResult(
        f"{args['city']} tomorrow: {sky}, {degrees} °C",
        data={"sky": sky, "c": degrees},
        images=[("image/png", MAP_PNG)],  # drawn in the chat; the model reads a one-line note
    )


#: a 1×1 PNG: what the chat draws under the forecast step
MAP_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8ffff3f0005fe02fea7d6a4560000000049454e44ae426082"
)


PROVIDER = Provider("weather", (forecast,))
