"""Tools: the tool-provider port (port.py), the one list of providers (registry.py) and the
built-in providers (providers/). See port.py for what a provider implements."""
