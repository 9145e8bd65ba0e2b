"""The pages before sign-in that work by e-mail: asking for a link to choose a new password, and
the reset and invitation links themselves."""

from __future__ import annotations

from typing import Any

from fastapi import BackgroundTasks, Depends, Request
from fastapi.responses import Response

from vern.accounts import flows
from vern.accounts.deps import DatabaseDep, SettingsDep, anon_csrf_token, check_anon_csrf, public
from vern.accounts.models import User
from vern.accounts.pagerouter import pages
from vern.accounts.signin import check_reset_email, reset_rate_limit, send_reset_later, set_session_cookie
from vern.console.forms import DEFAULT_NEXT, form_data, redirect
from vern.console.templating import pick_locale, render
from vern.core.db import Scope
from vern.core.errors import InvalidInput, Locked, RateLimited, VernError

# -- forgotten password, reset and invitation links (before sign-in) ----------------------------


async def _anon_form(request: Request) -> dict[str, str]:
    """The form of a page shown before sign-in, after its double-submit CSRF check."""
    await check_anon_csrf(request)
    return await form_data(request)


def _anon_page(request: Request, template: str, ctx: dict[str, Any], status: int = 200
               ) -> Response:

    anon_csrf_token(request)
    response = render(request, template, ctx, status=status)
    error = ctx.get("error")
    if isinstance(error, VernError) and status >= 400:
        response.headers["X-Vern-Error"] = error.code
    if isinstance(error, RateLimited | Locked):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@pages.get("/password/forgot", dependencies=[Depends(public)])
def forgot_form(request: Request) -> Response:
    """Ask for a link to choose a new password."""
    return _anon_page(request, "accounts/password_forgot.html", {"email": "", "sent": False})


@pages.post("/password/forgot", dependencies=[Depends(public)])
async def forgot_submit(request: Request, background: BackgroundTasks, db: DatabaseDep,
                        settings: SettingsDep) -> Response:
    """The same answer whether or not the address has an account; the work is done after the
    answer is sent."""
    try:
        form = await _anon_form(request)
    except VernError as exc:
        return _anon_page(request, "accounts/password_forgot.html",
                          {"email": "", "sent": False, "error": exc}, status=403)
    email = form.get("email", "").strip()[:254]
    ctx: dict[str, Any] = {"email": email, "sent": False}
    try:
        email = check_reset_email(email)
        await reset_rate_limit(request, settings, email)
    except InvalidInput as exc:
        return _anon_page(request, "accounts/password_forgot.html", {**ctx, "error": exc}, 422)
    except RateLimited as exc:
        return _anon_page(request, "accounts/password_forgot.html", {**ctx, "error": exc}, 429)
    background.add_task(send_reset_later, db, settings, email, pick_locale(request))
    return _anon_page(request, "accounts/password_forgot.html", {"email": "", "sent": True})


LINK_PAGES = {
    "reset": {"template": "accounts/password_reset.html", "action": "/password/reset"},
    "invite": {"template": "accounts/invitation.html", "action": "/invitation"},
}


def _link_page(request: Request, purpose: str, token: str, *, user: User | None,
               error: VernError | None = None, errors: dict[str, str] | None = None,
               status: int = 200) -> Response:
    ctx: dict[str, Any] = {"token": token if user is not None else "", "valid": user is not None,
                           "name": str(user.name) if user is not None else "",
                           "email": str(user.email) if user is not None else "",
                           "error": error, "action": LINK_PAGES[purpose]["action"]}
    if errors is not None:
        ctx["errors"] = errors
    return _anon_page(request, LINK_PAGES[purpose]["template"], ctx, status)


def _link_user(db: Any, settings: Any, purpose: str, token: str) -> User | None:

    try:
        with db.transaction(Scope.system("check link"), keep_on=(InvalidInput,)) as session:
            user = flows.check_link(session, settings, token=token, purpose=purpose)
            session.expunge(user)
            return user
    except InvalidInput:
        return None


def _link_form(purpose: str) -> Any:
    def show(request: Request, db: DatabaseDep, settings: SettingsDep,
             token: str = "") -> Response:
        user = _link_user(db, settings, purpose, token[:200])
        return _link_page(request, purpose, token[:200], user=user,
                          status=200 if user is not None else 400)

    return show


pages.add_api_route("/password/reset", _link_form("reset"), methods=["GET"],
                         dependencies=[Depends(public)], name="password_reset_form")
pages.add_api_route("/invitation", _link_form("invite"), methods=["GET"],
                         dependencies=[Depends(public)], name="invitation_form")


async def _link_password(request: Request, purpose: str, db: Any, settings: Any
                         ) -> tuple[str, str] | Response:
    """(token, new password) from a link's form, or the page again with what is wrong."""
    try:
        form = await _anon_form(request)
    except VernError as exc:
        return _link_page(request, purpose, "", user=None, error=exc, status=403)
    token = form.get("token", "")[:200]
    new = form.get("new_password", "")[:4096]
    repeat = form.get("new_password_repeat", "")[:4096]
    errors: dict[str, str] = {}
    if not new:
        errors["new_password"] = "Choose a new password"  # noqa: S105 - a form message, not a password
    elif new != repeat:
        # S105 is wrong here: a form message, not a password
        errors["new_password_repeat"] = "The two new passwords are not the same"  # noqa: S105
    if errors:
        user = _link_user(db, settings, purpose, token)
        return _link_page(request, purpose, token, user=user, errors=errors,
                          status=422 if user is not None else 400)
    return token, new


def _link_refused(request: Request, purpose: str, exc: InvalidInput, db: Any, settings: Any,
                  *, token: str) -> Response:
    mapped = {("new_password" if e.field == "password" else e.field): e.message
              for e in exc.errors}
    user = None if "token" in mapped else _link_user(db, settings, purpose, token)
    return _link_page(request, purpose, token, user=user, error=exc, errors=mapped,
                      status=422 if user is not None else 400)


@pages.post("/password/reset", dependencies=[Depends(public)])
async def reset_submit(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    """Choose a new password from a reset link; every session of the account ends."""

    got = await _link_password(request, "reset", db, settings)
    if isinstance(got, Response):
        return got
    token, new = got
    try:
        with db.transaction(Scope.system("password reset"), keep_on=(InvalidInput,)) as session:
            flows.reset_password(session, settings, token=token, password=new)
    except InvalidInput as exc:
        return _link_refused(request, "reset", exc, db, settings, token=token)
    return redirect("/login?done=password-reset")


@pages.post("/invitation", dependencies=[Depends(public)])
async def invitation_submit(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    """Accept an invitation: choose a password, be signed in, set up two-step sign-in when the
    role requires it."""

    got = await _link_password(request, "invite", db, settings)
    if isinstance(got, Response):
        return got
    token, new = got
    try:
        with db.transaction(Scope.system("accept invitation"),
                            keep_on=(InvalidInput,)) as session:
            result = flows.accept_invitation(session, settings, token=token, password=new)
            session.flush()
            must_enrol, needs_mfa = result.must_enrol_mfa, result.needs_mfa
    except InvalidInput as exc:
        return _link_refused(request, "invite", exc, db, settings, token=token)
    target = ("/login/mfa" if needs_mfa else "/console/account/mfa" if must_enrol
              else DEFAULT_NEXT)
    response = redirect(target)
    set_session_cookie(response, settings, result.token)
    return response
