"""Sending mail through an SMTP server (standard library ``smtplib``), configured from
``ORB_SMTP_*`` variables. The password is read from the environment when the settings
are built and is never logged, repeated in an error or shown in a repr."""

from __future__ import annotations

import contextlib
import os
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr

TIMEOUT_SECONDS = 30


class MailError(RuntimeError):
    """The server refused a mail or could not be reached; the message names the server,
    never the credentials."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str  # From: "Example Cloud Billing <billing@example.com>"
    starttls: bool = False
    user: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def from_env(cls) -> SmtpSettings:
        """ORB_SMTP_HOST, ORB_SMTP_PORT (default 25, 587 with STARTTLS), ORB_SMTP_FROM,
        ORB_SMTP_STARTTLS (true/false), ORB_SMTP_USER, ORB_SMTP_PASSWORD."""
        missing = [v for v in ("ORB_SMTP_HOST", "ORB_SMTP_FROM") if not os.environ.get(v)]
        if missing:
            raise ValueError(f"{' and '.join(missing)} must be set to send dunning notices")
        starttls = os.environ.get("ORB_SMTP_STARTTLS", "false").strip().lower()
        if starttls not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"ORB_SMTP_STARTTLS must be true or false, not {starttls!r}")
        tls = starttls in ("true", "1", "yes")
        port = os.environ.get("ORB_SMTP_PORT", "587" if tls else "25")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"ORB_SMTP_PORT must be a TCP port, not {port!r}")
        return cls(host=os.environ["ORB_SMTP_HOST"], port=int(port),
                   sender=os.environ["ORB_SMTP_FROM"], starttls=tls,
                   user=os.environ.get("ORB_SMTP_USER", ""),
                   password=os.environ.get("ORB_SMTP_PASSWORD", ""))

    @property
    def domain(self) -> str:
        """The sender address's domain, for Message-IDs."""
        return parseaddr(self.sender)[1].rpartition("@")[2] or "orb.invalid"


class SmtpMailer:
    """One connection per run, opened on the first mail; a context manager."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpMailer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            self._smtp = None

    def send(self, message: EmailMessage) -> None:
        where = f"{self.settings.host}:{self.settings.port}"
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            refused = self._smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            self._smtp = None
            raise MailError(f"SMTP server {where} did not take {message['Message-ID']}: "
                            f"{type(exc).__name__}: {_safe(exc)}") from None
        if refused:
            raise MailError(f"SMTP server {where} refused {', '.join(refused)} "
                            f"for {message['Message-ID']}")

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.settings.host, self.settings.port, timeout=TIMEOUT_SECONDS)
        if self.settings.starttls:
            smtp.starttls()
        if self.settings.user:
            smtp.login(self.settings.user, self.settings.password)
        return smtp


def _safe(exc: BaseException) -> str:
    # an authentication error echoes the server's reply, never what we sent; keep it short
    return str(exc)[:200]
