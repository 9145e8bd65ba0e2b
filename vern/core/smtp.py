"""The SMTP server named by ``VERN_SMTP_URL``: its parts, checked when the settings are read
(``vern.core.config``), and an open connection to it for the outbox's transport
(``vern.notify.transport``)."""

from __future__ import annotations

import ipaddress
import smtplib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

TIMEOUT = 20.0
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None

    @property
    def tls(self) -> bool:
        return self.implicit_tls or self.starttls

    @classmethod
    def parse(cls, url: str, *, password_file: Path | None = None) -> SmtpTarget:
        """The target of ``url``; ``ValueError`` naming ``VERN_SMTP_URL`` when it is wrong."""
        name = "VERN_SMTP_URL"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{name}: not a URL ({exc})") from None
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"{name}: use smtp://host:port or smtps://host:port, not {parts.scheme}://")
        if not parts.hostname:
            raise ValueError(f"{name}: the URL names no host")
        query = parse_qs(parts.query)
        unknown = set(query) - {"starttls", "cafile"}
        if unknown:
            raise ValueError(f"{name}: unknown option {sorted(unknown)[0]!r} (starttls, cafile)")
        implicit = parts.scheme == "smtps"
        starttls = query.get("starttls", ["0"])[-1].lower() in _TRUE
        if implicit and starttls:
            raise ValueError(f"{name}: smtps:// is already TLS; drop ?starttls=1")
        password = unquote(parts.password) if parts.password else None
        if password_file is not None:
            try:
                password = password_file.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ValueError(
                    f"VERN_SMTP_PASSWORD_FILE: cannot read {password_file}: {exc.strerror}"
                ) from None
        user = unquote(parts.username) if parts.username else None
        if password and not user:
            raise ValueError(f"{name}: a password needs a user name (smtp://user:pass@host)")
        target = cls(
            host=parts.hostname,
            port=port or (465 if implicit else 587 if starttls else 25),
            implicit_tls=implicit,
            starttls=starttls,
            user=user,
            password=password,
            cafile=query.get("cafile", [None])[-1],
        )
        if user and not target.tls and not _loopback(target.host):
            raise ValueError(
                f"{name}: the password would cross the network in clear; use smtps:// or "
                "?starttls=1 (only a loopback server may be used without TLS)"
            )
        return target

    def describe(self) -> str:
        """The target without the password, for `vern check` and logs."""
        security = "implicit TLS" if self.implicit_tls else "STARTTLS" if self.starttls else "no TLS"
        who = f"{self.user}@" if self.user else ""
        return f"smtp {who}{self.host}:{self.port} ({security})"

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)

    def connect(self) -> smtplib.SMTP:
        """An open, greeted, (STARTTLS-ed and) signed-in connection."""
        smtp: smtplib.SMTP
        if self.implicit_tls:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=TIMEOUT, context=self._context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT)
        try:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
