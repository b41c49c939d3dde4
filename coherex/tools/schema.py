"""Small builders for the JSON Schemas of tool parameters."""

from __future__ import annotations

from typing import Any


def params(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """An object schema; no other keys allowed (a model's invented argument is refused)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def integer(description: str, minimum: int = 1, maximum: int = 100, **extra: Any) -> dict[str, Any]:
    return {"type": "integer", "description": description, "minimum": minimum, "maximum": maximum, **extra}


def strings(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "description": description}


def obj(**properties: Any) -> dict[str, Any]:
    """An output schema (what a tool returns)."""
    return {"type": "object", "properties": properties}
