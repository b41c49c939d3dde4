"""E-mail the platform sends itself (approval requests), through the operator's SMTP server.

`COHEREX_SMTP_URL` names it: `smtp://user:password@mail.example.com:587` (STARTTLS; required
whenever a password is given, so a password never crosses the network in clear) or
`smtps://…:465` (TLS from the first byte); `smtp://host:25` without a password may stay plain (a
relay on the same host). `COHEREX_SMTP_FROM` is the sender (default `Coherex <coherex@HOST>`,
HOST from `COHEREX_PUBLIC_URL`). The server is the operator's own infrastructure, like the
database, so it does not pass the egress guard that team endpoints pass.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

from coherex.errors import BackendError, UserError
from coherex.settings import Settings, get_settings

_TIMEOUT = 15.0
_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


def check_addresses(raw: str | list[str]) -> list[str]:
    """The addresses of `--email` (comma-separated or a list), each checked, or a UserError."""
    items = raw if isinstance(raw, list) else raw.split(",")
    out = [a.strip() for a in items if a.strip()]
    bad = [a for a in out if not _ADDRESS.match(a)]
    if bad or not out:
        raise UserError(
            f"{', '.join(bad) or 'nothing'} is not an e-mail address.",
            hint="Give addresses like ops@example.com, comma-separated for several.",
        )
    return out


def configured(settings: Settings | None = None) -> bool:
    return (settings or get_settings()).smtp_url is not None


def require_configured(settings: Settings | None = None) -> None:
    if not configured(settings):
        raise UserError(
            "E-mail is sent through the platform's SMTP server, and COHEREX_SMTP_URL is not set.",
            hint="Set COHEREX_SMTP_URL (e.g. smtp://user:password@mail.example.com:587) and "
            "COHEREX_SMTP_FROM for the web and worker processes, then try again.",
        )


async def send(to: list[str], subject: str, text: str, *, settings: Settings | None = None) -> None:
    """Send one plain-text message. Raises BackendError with what went wrong (never the password)."""
    s = settings or get_settings()
    require_configured(s)
    message = EmailMessage()
    message["From"] = _sender(s)
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=parseaddr(message["From"])[1].rpartition("@")[2] or None)
    message.set_content(text)
    await asyncio.to_thread(_deliver, s.smtp_url.get_secret_value(), message)


def _sender(s: Settings) -> str:
    if s.smtp_from:
        return s.smtp_from
    host = urlsplit(s.public_url or "").hostname or "localhost"
    return formataddr(("Coherex", f"coherex@{host}"))


def _deliver(url: str, message: EmailMessage) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise UserError(
            "COHEREX_SMTP_URL must look like smtp://user:password@host:587 or smtps://user:password@host:465."
        )
    implicit_tls = parts.scheme == "smtps"
    port = parts.port or (465 if implicit_tls else 587)
    where = f"the SMTP server {parts.hostname}:{port} (COHEREX_SMTP_URL)"
    context = ssl.create_default_context()
    try:
        if implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(parts.hostname, port, timeout=_TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(parts.hostname, port, timeout=_TIMEOUT)
        with client:
            client.ehlo()
            if not implicit_tls:
                if client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
                elif parts.password:
                    raise BackendError(
                        f"{where} does not offer STARTTLS, so the password was not sent and no mail "
                        "went out.",
                        hint="Use smtps:// (port 465) or a server with STARTTLS.",
                    )
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
    except smtplib.SMTPAuthenticationError:
        raise BackendError(f"{where} refused the user name or password.") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise BackendError(f"{where} refused the recipients {', '.join(exc.recipients)}.") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise BackendError(f"Sending mail through {where} failed: {type(exc).__name__}: {exc}") from None
