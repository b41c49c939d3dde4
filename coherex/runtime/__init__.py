"""The agent runtime: runs one execution of a spec version and records every step."""

from coherex.runtime.engine import QuotaExceeded, Runtime, check_inputs
from coherex.runtime.events import EventListener, redact

__all__ = ["EventListener", "QuotaExceeded", "Runtime", "check_inputs", "redact"]
