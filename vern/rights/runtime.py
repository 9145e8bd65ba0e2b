"""The Vern database for command-line use (with the keyring installed), opened once per command."""

from __future__ import annotations

from vern.core.cliutil import command_database
from vern.core.config import get_settings
from vern.core.db import Database


def vern_database() -> Database:
    return command_database()


def secret() -> bytes:
    """The vendor secret that keys identity hashes, HMAC erasure and pseudonyms."""

    return get_settings().secret_bytes
