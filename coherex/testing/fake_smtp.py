"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts, for tests of the
mail the platform sends (coherex/mail.py speaks SMTP to it as to any server)."""

from __future__ import annotations

import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Self

from coherex.store.embedded import free_port


class FakeSMTP:
    def __init__(self):
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []  # the envelope's RCPT TO of each message
        self._lock = threading.Lock()
        self._controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        from aiosmtpd.controller import Controller

        self._controller = Controller(_Keep(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._controller is not None:
            self._controller.stop()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            return list(self.messages)


class _Keep:
    def __init__(self, server: FakeSMTP):
        self.server = server

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's hook name
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self.server._lock:
            self.server.messages.append(message)
            self.server.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted"
