"""The demo's mail sink: an SMTP server on loopback that keeps what it receives in memory.

``vern demo`` starts one and points ``VERN_SMTP_URL`` at it, so the demo's mail (the portal's
e-mail codes, download links, notices) really travels over SMTP, from the web process, the CLI
and ``vern worker`` alike. The vendor's staff read it on the console page ``/console/mail``
(demo only). Nothing is written to disk; the newest ``MAX_KEPT`` messages are kept.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

MAX_KEPT = 200


@dataclass(frozen=True)
class Received:
    at: datetime
    sender: str
    to: list[str]
    subject: str
    body: str


class _Handler:
    def __init__(self, kept: deque[Received], lock: threading.Lock) -> None:
        self._kept = kept
        self._lock = lock

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        raw = envelope.original_content or envelope.content or b""
        msg = message_from_bytes(raw if isinstance(raw, bytes) else raw.encode(), policy=policy.default)
        body = ""
        if isinstance(msg, EmailMessage):
            part = msg.get_body(preferencelist=("plain",))
            if part is not None:
                body = str(part.get_content())
        item = Received(datetime.now(UTC), str(envelope.mail_from or ""),
                        [str(r) for r in envelope.rcpt_tos], str(msg.get("Subject", "")), body)
        with self._lock:
            self._kept.append(item)
        return "250 Message accepted for delivery"


class MailSink:
    """An SMTP server on ``127.0.0.1:port`` (0: any free port) keeping the messages it gets."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", **server_options: Any) -> None:
        """``server_options`` go to aiosmtpd's server (``tls_context``, ``authenticator`` …)."""
        if port == 0:
            port = _free_port(host)
        self._lock = threading.Lock()
        self._kept: deque[Received] = deque(maxlen=MAX_KEPT)
        self._controller = Controller(_Handler(self._kept, self._lock), hostname=host, port=port,
                                      ready_timeout=10, **server_options)
        self.host = host

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def messages(self) -> list[Received]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._kept))

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


_running: MailSink | None = None


def install(sink: MailSink | None) -> None:
    global _running  # noqa: PLW0603 - one sink per demo process
    _running = sink


def running() -> MailSink | None:
    return _running
