"""Data sources and integrations: the vault, source types, OAuth2, and the tools agents call.

The public surface (everything else is internal):

    from coherex.integrations import invoke_tool, add_source, list_sources, check_source, remove_source

Those names load `service` on first use: the tool providers import `integrations.base` while the
catalogue is built, and `coherex validate` needs none of the database side.
"""

from typing import Any

from coherex.integrations.vault import install_log_redaction

install_log_redaction()

__all__ = [
    "IntegrationError",
    "add_source",
    "check_source",
    "invoke_tool",
    "list_sources",
    "remove_source",
    "rotate_key",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from coherex.integrations import service

        return getattr(service, name)
    raise AttributeError(f"module 'coherex.integrations' has no attribute {name!r}")
