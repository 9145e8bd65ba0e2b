"""Password hashing and policy, TOTP, recovery codes and token hashing.

Password rules follow NIST SP 800-63B 3.1.1.2: a minimum length (12 by default), at least 64
characters accepted, no composition rules, and refusal of common or breached passwords (the 30,000
most common passwords, ``common-passwords.txt`` beside this module) and of context words (the
user's name, e-mail and organisation). Hashing is Argon2id at or above OWASP's minimum
(19 MiB, 2 iterations, parallelism 1); a hash made with older parameters is re-made at sign-in.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import secrets
import time
from functools import lru_cache
from pathlib import Path

import pyotp
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from vern.core.config import Settings
from vern.core.errors import InvalidInput

TOTP_STEP = 30
TOTP_DIGITS = 6
RECOVERY_CODES = 10


@lru_cache(maxsize=4)
def _hasher(memory_kib: int, time_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_kib,
        parallelism=parallelism,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


def hasher(settings: Settings) -> PasswordHasher:
    return _hasher(settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism)


def hash_password(settings: Settings, password: str) -> str:
    return hasher(settings).hash(password)


# A valid hash to verify against when the account does not exist, so that timing does not tell
# whether an e-mail address has an account.
_DUMMY: dict[tuple[int, int, int], str] = {}


def verify_password(settings: Settings, stored: str | None, password: str) -> bool:
    h = hasher(settings)
    if stored is None:
        key = (settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism)
        if key not in _DUMMY:
            _DUMMY[key] = h.hash(secrets.token_hex(16))
        stored = _DUMMY[key]
        with contextlib.suppress(VerificationError, InvalidHashError):
            h.verify(stored, password)
        return False
    try:
        return h.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(settings: Settings, stored: str) -> bool:
    return hasher(settings).check_needs_rehash(stored)


COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt")


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    """The list's passwords: the lines after its header (which ends at the first empty line)."""
    text = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8")
    return frozenset(line for line in text.split("\n\n", 1)[1].splitlines() if line)


def _context_words(context: list[str]) -> set[str]:
    words: set[str] = set()
    for item in context:
        for part in re.split(r"[^\w]+", item.casefold()):
            if len(part) >= 4:
                words.add(part)
    return words


def check_password(settings: Settings, password: str, *, context: list[str]) -> None:
    """Raise ``InvalidInput`` on field ``password`` naming the rule that refused it."""
    length = len(password)
    if length < settings.password_min_length:
        raise InvalidInput.on(
            "password", "must be at least %(n)s characters", "too-short", n=settings.password_min_length
        )
    if length > settings.password_max_length:
        raise InvalidInput.on(
            "password", "must be at most %(n)s characters", "too-long", n=settings.password_max_length
        )
    folded = password.casefold()
    if folded in _common_passwords() or _repetitive(folded):
        raise InvalidInput.on("password", "is too common or too easy to guess", "common")
    for word in _context_words(context):
        if word in folded:
            raise InvalidInput.on(
                "password", "must not contain your name, e-mail or organisation", "context"
            )


def _repetitive(password: str) -> bool:
    """One short unit repeated (aaaaaaaaaaaa, abcabcabcabc) or a common password repeated."""
    for size in range(1, 5):
        unit = password[:size]
        if unit * (len(password) // size) == password[: size * (len(password) // size)] and (
            len(password) - size * (len(password) // size) < size
        ):
            return True
    for size in range(4, len(password) // 2 + 1):
        if len(password) % size == 0 and password[:size] * (len(password) // size) == password:
            return password[:size] in _common_passwords()
    return False


# -- TOTP (RFC 6238) ----------------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32(32)


def totp_uri(secret: str, account: str, issuer: str = "Vern") -> str:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP).provisioning_uri(
        name=account, issuer_name=issuer
    )


def totp_now(secret: str, at: float | None = None) -> str:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP).at(at or time.time())


def totp_match(secret: str, code: str, *, last_step: int | None, at: float | None = None) -> int | None:
    """The time step the code belongs to (current ±1), or None. A step at or before ``last_step``
    is refused, so a code is never accepted twice."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == TOTP_DIGITS):
        return None
    now = at if at is not None else time.time()
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP)
    current = int(now // TOTP_STEP)
    for step in (current - 1, current, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.at(step * TOTP_STEP), code):
            return step
    return None


# -- recovery codes and tokens --------------------------------------------------------------------


def new_recovery_codes() -> list[str]:
    return [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]


def normalise_recovery_code(code: str) -> str:
    return code.strip().lower().replace(" ", "")


def token_hash(token: str) -> str:
    """Session cookies, API tokens and recovery codes are high-entropy: SHA-256 is enough."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


# -- device cookies ---------------------------------------------------------------------------------
# OWASP, "Slow down online guessing attacks with device cookies": a browser that has signed in to
# an account before carries a signed cookie naming that account (by id, never the e-mail), and
# its sign-in attempts are counted in their own bucket instead of the account's shared one.

DEVICE_COOKIE_VERSION = "d1"
_DEVICE_CONTEXT = b"vern-device-cookie\x00"


def _device_signature(secret: bytes, body: str) -> str:
    mac = hmac.new(secret, _DEVICE_CONTEXT + body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def new_device_cookie(secret: bytes, user_id: str, issued_at: int) -> str:
    """``d1.<user id>.<nonce>.<issued, Unix seconds>.<HMAC-SHA-256 signature>``."""
    body = f"{DEVICE_COOKIE_VERSION}.{user_id}.{secrets.token_urlsafe(16)}.{issued_at}"
    return f"{body}.{_device_signature(secret, body)}"


def device_cookie_nonce(
    secret: bytes, value: str | None, user_id: str, *, now: int, max_age: int
) -> str | None:
    """The nonce of a valid, unexpired device cookie issued for ``user_id``, or None."""
    if not value or len(value) > 200:
        return None
    parts = value.split(".")
    if len(parts) != 5 or parts[0] != DEVICE_COOKIE_VERSION or not parts[3].isdigit():
        return None
    body = ".".join(parts[:4])
    if not hmac.compare_digest(parts[4], _device_signature(secret, body)):
        return None
    issued = int(parts[3])
    if parts[1] != user_id or issued > now + 60 or now - issued > max_age:
        return None
    return parts[2]
