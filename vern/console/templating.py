"""Server-rendered pages: one Jinja2 environment over every domain's templates, in bokmål or English.

Texts are written in English in the templates (``_()``) and translated through Vern's one pair of
message catalogs (``vern.core.i18n``). The language comes from the switcher (``?lang=nb|en`` on any page,
remembered in the ``vern_lang`` cookie), else that cookie, else the browser's ``Accept-Language``,
else the setting ``VERN_DEFAULT_LOCALE``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.routing import Match

import vern
from vern.core import i18n
from vern.core.discover import domain_modules
from vern.core.errors import VernError
from vern.core.i18n import LOCALES, translations

PACKAGE = Path(vern.__file__).resolve().parent
LANG_COOKIE = "vern_lang"
# The CSRF cookie of forms shown before sign-in (checked by vern.accounts.deps).
ANON_CSRF_COOKIE = "vern_csrf"


def gettext(locale: str, message: str, **params: Any) -> str:
    return i18n.gettext(locale, message, **params)


def translate_message(locale: str, message: Any) -> str:
    """A service message (an error's detail or a field message) in the page's language."""
    template = getattr(message, "template", None)
    if template is not None:  # a FieldError or VernError: its template and values
        return i18n.error_text(locale, template, getattr(message, "params", None))
    return i18n.error_text(locale, str(message))


def field_errors(exc: VernError | None) -> dict[str, Any]:
    """Field name → message for a form, from an error's field list or a ``"field: message"``
    detail (as ``Conflict`` errors give); a message is translated by the ``msg`` filter."""
    if exc is None:
        return {}
    found: dict[str, Any] = {e.field: e for e in exc.errors}
    if not found and exc.detail:
        match = re.match(r"^([a-z_]+): (.+)$", exc.detail)
        if match:
            found[match.group(1)] = match.group(2)
    return found


@lru_cache(maxsize=1)
def _nav_entries() -> tuple[tuple[str, str, Any], ...]:
    """Every domain's ``NAV`` list, the accounts pages (overview, users, account) first."""
    modules = domain_modules("routes")
    modules.sort(key=lambda m: (m.__name__ != "vern.accounts.routes", m.__name__))
    return tuple(entry for module in modules for entry in getattr(module, "NAV", ()))


def nav_for(actor: Any) -> list[tuple[str, str]]:
    """(path, English label) of the pages the actor may open."""
    if actor is None:
        return []
    return [(path, label) for path, label, perm in _nav_entries() if perm in actor.perms]


def _lang_action(request: Request, signed_in: bool) -> str | None:
    """Where the language switcher (a GET form) goes: the page itself, unless the page is the
    answer to a POST to an address that has no GET page (then the start page)."""
    if request.method == "GET":
        return None
    scope = {**request.scope, "method": "GET"}
    for route in request.app.router.routes:
        match, _child = route.matches(scope)
        if match is Match.FULL:
            return None
    return "/console" if signed_in else "/login"


def _layout(request: Request) -> dict[str, Any]:
    """What the console layout shows around a page: who is signed in, in which organisation,
    where they may switch to, and the navigation."""
    caller = getattr(request.state, "caller", None)
    actor = getattr(caller, "actor", None)
    layout: dict[str, Any] = {"nav": [], "orgs": [], "current_org": None, "user_name": None,
                              "signed_in": False}
    signed_in = not (caller is None or getattr(caller, "via", None) != "session"
                     or caller.user is None)
    layout["lang_action"] = _lang_action(request, signed_in)
    if not signed_in or caller is None:
        return layout
    layout["signed_in"] = True
    if caller.mfa_pending or actor is None:
        return layout
    # The organisations to switch to and the person's name come from the accounts domain, which
    # the application wiring hands over (vern.app.web); the shell itself reads no domain.
    signed_in_layout = getattr(request.app.state, "signed_in_layout", None)
    if signed_in_layout is not None:
        layout.update(signed_in_layout(request, caller, actor))
    if not (caller.must_enrol_mfa or caller.password_expired):
        layout["nav"] = nav_for(actor)
    return layout


@lru_cache(maxsize=len(LOCALES))
def environment(locale: str) -> Environment:
    """One environment per language, so concurrent requests never share a catalog."""
    loaders = [FileSystemLoader(str(PACKAGE / "console" / "templates"))]
    loaders += [
        FileSystemLoader(str(path))
        for path in sorted(PACKAGE.glob("*/templates"))
        if path.parent.name != "console"
    ]
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.globals["LOCALES"] = LOCALES
    env.globals["LOCALE_NAMES"] = {"nb": "Norsk bokmål", "en": "English"}
    env.filters["msg"] = lambda message: translate_message(locale, message)
    env.filters["duration"] = lambda text: i18n.format_duration(str(text or ""), locale)
    env.filters["day"] = lambda value, form="long": i18n.format_day(value, locale, form)
    env.filters["number"] = lambda value: i18n.format_number(value, locale)
    return env


def pick_locale(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked in LOCALES:  # the language switcher (a GET form on every page)
        return asked
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LOCALES:
        return chosen
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith(("nb", "no", "nn")):
            return "nb"
        if tag.startswith("en"):
            return "en"
    settings = getattr(request.app.state, "settings", None)
    return getattr(settings, "default_locale", "nb")


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    locale = pick_locale(request)
    env = environment(locale)
    ctx: dict[str, Any] = {
        "request": request,
        "locale": locale,
        "caller": getattr(request.state, "caller", None),
        "actor": getattr(request.state, "actor", None),
        "csrf_token": _csrf_for(request),
        "here": request.url.path,
        **_layout(request),
    }
    ctx.update(context or {})
    if "errors" not in ctx:
        ctx["errors"] = field_errors(ctx.get("error")) if isinstance(ctx.get("error"), VernError) else {}
    html = env.get_template(template).render(ctx)
    response = HTMLResponse(html, status_code=status)
    anon = getattr(request.state, "set_anon_csrf", None)
    if anon:
        settings = request.app.state.settings
        response.set_cookie(ANON_CSRF_COOKIE, anon, httponly=True, samesite="strict",
                            secure=settings.is_production, path="/")
    if request.query_params.get("lang") in LOCALES:
        settings = request.app.state.settings
        response.set_cookie(LANG_COOKIE, locale, max_age=365 * 86400, httponly=True,
                            samesite="lax", secure=settings.is_production, path="/")
    response.headers["Cache-Control"] = "no-store"
    return response


def _csrf_for(request: Request) -> str | None:
    caller = getattr(request.state, "caller", None)
    auth_session = getattr(caller, "auth_session", None)
    if auth_session is not None:
        return str(auth_session.csrf_token)
    return getattr(request.state, "set_anon_csrf", None) or request.cookies.get("vern_csrf")


_PUBLIC_HOME = (
    (re.compile(r"^/p/([a-z0-9][a-z0-9-]{0,62})(?:/|$)"), "/p/{}/rights"),
    (re.compile(r"^/c/([a-z0-9][a-z0-9-]{0,62})/"), "/c/{}/cookies"),
)


def public_home(path: str) -> str | None:
    """The organisation's public page to go back to from an error on its portal or its cookie
    pages (a visitor there has no console to go back to); None elsewhere."""
    for pattern, home in _PUBLIC_HOME:
        match = pattern.match(path)
        if match:
            return home.format(match.group(1))
    return None


def render_error(request: Request, exc: VernError) -> HTMLResponse:
    context = {"error": exc, "public_home": public_home(request.url.path)}
    response = render(request, "error.html", context, status=exc.status)
    response.headers["X-Vern-Error"] = exc.code
    retry = getattr(exc, "retry_after", None)
    if retry is not None:
        response.headers["Retry-After"] = str(retry)
    return response
