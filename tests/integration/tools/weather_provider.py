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
    return ToolResult(f"{args['city']} tomorrow: {sky}, {degrees} °C", data={"sky": sky, "c": degrees})


PROVIDER = Provider("weather", (forecast,))
