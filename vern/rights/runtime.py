"""The Vern database for command-line use (with the keyring installed), opened once per process."""

from __future__ import annotations

from functools import lru_cache

from vern.core.cliutil import open_database, settings_or_exit
from vern.core.config import get_settings
from vern.core.db import Database


@lru_cache(maxsize=1)
def vern_database() -> Database:

    return open_database(settings_or_exit())


def secret() -> bytes:
    """The vendor secret that keys identity hashes, HMAC erasure and pseudonyms."""

    return get_settings().secret_bytes
