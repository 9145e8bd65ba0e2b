"""Server-rendered pages: one Jinja2 environment over every domain's templates, in bokmål or English.

Texts are written in English in the templates (``{% trans %}`` / ``_()``); each domain keeps its
translations in ``vern/<domain>/locale/{nb,en}.po``. The catalogs are read with Babel at start-up -
no compiled files to forget. The language comes from the switcher (``?lang=nb|en`` on any page,
remembered in the ``vern_lang`` cookie), else that cookie, else the browser's ``Accept-Language``,
else the setting ``VERN_DEFAULT_LOCALE``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po
from babel.support import Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.routing import Match

import vern
from vern.errors import VernError

PACKAGE = Path(vern.__file__).resolve().parent
LOCALES = ("nb", "en")
LANG_COOKIE = "vern_lang"


class _Catalog(Translations):
    """Translations built from .po files in memory."""

    def __init__(self, messages: dict[str, str]) -> None:
        super().__init__()
        self._catalog = messages  # type: ignore[assignment]

    def merge_messages(self, more: dict[str, str]) -> None:
        self._catalog.update(more)


@lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> _Catalog:
    messages: dict[str, str] = {}
    for po in sorted(PACKAGE.glob(f"*/locale/{locale}.po")):
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=locale)
        for message in catalog:
            if (message.id and message.string and not message.fuzzy
                    and isinstance(message.id, str)):
                messages[message.id] = str(message.string)
    return _Catalog(messages)


def gettext(locale: str, message: str, **params: Any) -> str:
    text = translations(locale).gettext(message)
    return text % params if params else text


_NUMBER = re.compile(r"\d+")


def translate_message(locale: str, message: str) -> str:
    """A service message (``"must be at least 12 characters"``) in the page's language: the exact
    text, else the text with its numbers as ``%(n)s`` (``"must be at least %(n)s characters"``)."""
    catalog = translations(locale)
    text = catalog.gettext(message)
    if text != message:
        return text
    numbers = _NUMBER.findall(message)
    if len(numbers) == 1:
        pattern = _NUMBER.sub("%(n)s", message)
        text = catalog.gettext(pattern)
        if text != pattern:
            return text % {"n": numbers[0]}
    return message


def field_errors(exc: VernError | None) -> dict[str, str]:
    """Field name → message for a form, from an error's field list or a ``"field: message"``
    detail (as ``Conflict`` errors give)."""
    if exc is None:
        return {}
    found = {e.field: e.message for e in exc.errors}
    if not found and exc.detail:
        match = re.match(r"^([a-z_]+): (.+)$", exc.detail)
        if match:
            found[match.group(1)] = match.group(2)
    return found


@lru_cache(maxsize=1)
def _nav_entries() -> tuple[tuple[str, str, Any], ...]:
    """Every domain's ``NAV`` list, the console's own first."""
    from vern.web import _domain_modules

    modules = _domain_modules("routes")
    modules.sort(key=lambda m: (m.__name__ != "vern.console.routes", m.__name__))
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
    from vern.accounts import service
    from vern.db import Scope

    database = request.app.state.db
    with database.transaction(Scope.system("console layout")) as session:
        orgs = service.switchable_orgs(session, caller.user.id)
        layout["orgs"] = [{"id": o.id, "name": o.name, "kind": o.kind} for o in orgs]
        current = next((o for o in layout["orgs"] if o["id"] == actor.org_id), None)
        layout["current_org"] = current
        layout["user_name"] = str(caller.user.name)
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
    env.filters["msg"] = lambda message: translate_message(locale, str(message))
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
        from vern.accounts.deps import ANON_CSRF_COOKIE

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


def render_error(request: Request, exc: VernError) -> HTMLResponse:
    response = render(request, "error.html", {"error": exc}, status=exc.status)
    response.headers["X-Vern-Error"] = exc.code
    retry = getattr(exc, "retry_after", None)
    if retry is not None:
        response.headers["Retry-After"] = str(retry)
    return response
