"""Run ``vern …`` inside the test process, as an operator would from a shell: the arguments,
the environment's ``VERN_*`` settings and standard input go in, the exit code and both output
streams come out. It goes through the same Typer application ``python -m vern.app.cli`` starts,
so a test proves the same thing a subprocess would, seconds faster, and its lines count in the
coverage figure. What a command installs for the process (the key ring, the mail transport, the
cached settings, the environment) is put back afterwards, so the next test sees what it set up
itself.

Tests that need a separate process for what they prove (a crash, signals, the module's entry
point) keep ``subprocess``.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass

from typer.testing import CliRunner

from vern.core import crypto
from vern.core.config import forget_settings
from vern.notify import service as notify


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def _installed_keyring() -> crypto.KeyRing | None:
    try:
        return crypto.keyring()
    except crypto.KeyUnavailable:
        return None


def vern(args: list[str], env: Mapping[str, str], stdin: str | None = None) -> Ran:
    """``vern ARGS`` run with ``env`` as its environment: what differs from this process's is set
    for the command, and a ``VERN_*`` variable missing from ``env`` is hidden from it."""
    from vern.app.cli import app

    changes: dict[str, str | None] = {k: None for k in os.environ if k.startswith("VERN_") and k not in env}
    changes |= {k: v for k, v in env.items() if os.environ.get(k) != v}
    ring, mailer, environ = _installed_keyring(), notify.mailer(), dict(os.environ)
    forget_settings()
    try:
        result = CliRunner().invoke(app, args, input=stdin, env=changes, catch_exceptions=True)
    finally:
        # A command may set variables for what it starts (`vern demo` sets VERN_ENV, VERN_PORT).
        os.environ.clear()
        os.environ.update(environ)
        forget_settings()
        crypto.install_keyring(ring)
        notify.install_mailer(mailer)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return Ran(result.exit_code, result.stdout, stderr)
