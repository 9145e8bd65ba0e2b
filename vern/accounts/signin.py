"""Sign-in and password-reset steps shared by the API (``vern.accounts.routes``) and the console
pages (``vern.accounts.pages``): rate limits, the session and device cookies, the reset request."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request, Response

from vern.accounts import flows, service
from vern.accounts.deps import DatabaseDep, SettingsDep, session_cookie_name
from vern.console.templating import pick_locale
from vern.core.config import Settings
from vern.core.crypto import blind_index
from vern.core.db import Scope
from vern.core.errors import InvalidInput, RateLimited, VernError
from vern.core.ratelimit import Limiter, network_of

log = logging.getLogger(__name__)


async def signin_rate_limit(request: Request, settings: SettingsDep) -> None:
    """Per source network (/64 for IPv6), on top of the sign-in locks (DoS protection for
    Argon2id). With the shared storage down it falls back to a per-process limit: the locks
    that stop guessing are in the database and stay shared (docs/security.md)."""
    limiter: Limiter = request.app.state.limiter
    network = network_of(getattr(request.state, "client_ip", None))
    verdict = await limiter.hit(settings.rate_limit_signin, "signin", network)
    if not verdict.allowed:
        raise RateLimited(retry_after=verdict.retry_after)


def device_cookie_name(settings: Settings) -> str:
    return "__Host-vern_device" if settings.is_production else "vern_device"


def set_device_cookie(response: Response, settings: Settings, user_id: str) -> None:
    """After a complete sign-in (password, and the second step when the account has one)."""
    response.set_cookie(
        device_cookie_name(settings),
        service.new_device_cookie(settings, user_id),
        max_age=int(service.DEVICE_COOKIE_MAX_AGE.total_seconds()),
        httponly=True,
        secure=settings.is_production,
        samesite="strict",
        path="/",
    )


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        session_cookie_name(settings),
        token,
        max_age=settings.session_absolute_hours * 3600,
        httponly=True,
        secure=settings.is_production,
        samesite="lax",
        path="/",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(session_cookie_name(settings), path="/", secure=settings.is_production,
                           httponly=True, samesite="lax")


def signin(db: DatabaseDep, settings: Settings, request: Request, email: str,
           password: str) -> service.SignIn:
    # A refused sign-in still commits its failure counters, locks and audit records.
    with db.transaction(Scope.system("sign-in"), keep_on=(VernError,)) as session:
        result = service.authenticate(
            session, settings, email=email, password=password,
            source_ip=getattr(request.state, "client_ip", None),
            device_cookie=request.cookies.get(device_cookie_name(settings)),
        )
        session.flush()
        session.expunge_all()
    return result


RESET_ANSWER = ("If an account uses this address, a link to choose a new password is on its way. "
                "It works once and expires soon.")


async def reset_rate_limit(request: Request, settings: Settings, email: str) -> None:
    """Per source network and per address typed in (as a keyed hash, so the limiter's storage
    holds no address). Both apply whether or not the address has an account."""
    limiter: Limiter = request.app.state.limiter
    network = network_of(getattr(request.state, "client_ip", None))
    checks = [
        (settings.rate_limit_reset_source, "reset-src", network),
        (settings.rate_limit_reset_address, "reset-addr",
         blind_index(settings.secret_bytes, email, "reset-address")),
    ]
    for limit, kind, key in checks:
        verdict = await limiter.hit(limit, kind, key)
        if not verdict.allowed:
            raise RateLimited(retry_after=verdict.retry_after)


def check_reset_email(email: str) -> str:
    email = email.strip()
    if not service.EMAIL_RE.match(email) or len(email) > 254:
        raise InvalidInput.on("email", "is not a valid e-mail address")
    return email


def send_reset_later(database: Any, settings: Settings, email: str, locale: str | None) -> None:
    """The reset's work, after the answer is sent: the answer's content and timing do not
    depend on whether the address has an account. A failure is logged without the address."""
    try:
        with database.transaction(Scope.system("password reset request")) as session:
            flows.request_password_reset(session, settings, email=email, locale=locale)
    except Exception as exc:  # noqa: BLE001 - nobody is waiting for this answer
        log.warning("password reset request failed: %s", type(exc).__name__)


def locale_of(request: Request) -> str:
    return pick_locale(request)
