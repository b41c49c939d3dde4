"""Data sources and integrations: the vault, source types, OAuth2, and the tools agents call.

The public surface (everything else is internal):

    from coherex.integrations import invoke_tool, add_source, list_sources, check_source, remove_source
"""

from coherex.integrations.vault import install_log_redaction

install_log_redaction()

from coherex.integrations.service import (  # noqa: E402
    IntegrationError,
    add_source,
    check_source,
    invoke_tool,
    list_sources,
    remove_source,
    rotate_key,
)

__all__ = [
    "IntegrationError",
    "add_source",
    "invoke_tool",
    "list_sources",
    "remove_source",
    "rotate_key",
    "check_source",
]
