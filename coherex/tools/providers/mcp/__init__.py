"""MCP servers as data sources (`type: mcp`): client (client.py), stdio in a sandbox box (box.py),
OAuth 2.1 with the vault (oauth.py), live sessions per run (pool.py) and the tool provider
(provider.py). The `mcp` SDK is imported only when a session opens."""
