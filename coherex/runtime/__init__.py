"""The agent runtime: runs one execution of a spec version and records every step."""

from coherex.errors import QuotaExceeded
from coherex.runtime.engine import ConcurrencyLimited, RetryLater, Runtime, check_inputs
from coherex.runtime.events import EventListener

__all__ = ["ConcurrencyLimited", "EventListener", "QuotaExceeded", "RetryLater", "Runtime", "check_inputs"]
