"""What the Chainlit chat needs beyond the builder: its data layer (threads in Postgres)."""

from coherex.chat.data_layer import CoherexDataLayer

__all__ = ["CoherexDataLayer"]
