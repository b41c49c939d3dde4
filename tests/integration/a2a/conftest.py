"""The A2A tests serve agents the way the MCP tests do: the same API server, worker and fake LLM."""

from tests.integration.mcp.conftest import api, served_env, worker  # noqa: F401 (fixtures)
