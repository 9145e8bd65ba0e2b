"""Consent: the banner's public endpoints, the consent API for the vendor's product, the console.

Public (``/c/…``, client address truncated before anything runs, see ``vern.stats.public``):
the banner script and style, each organisation's banner configuration, consent posts, the cookie
declaration, notices, and the newsletter's subscribe/confirm/unsubscribe pages.
API (``/api/v1/consent/…``): purposes, notices, decisions and history per subject, recording and
withdrawing through the product, the change feed, newsletter customers (the decisions, the
product's hot read, are answered by ``vern.consent.decisions``).
Console: ``/console/consent``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts.deps import (
    ANON_CSRF_COOKIE,
    TenantDB,
    anon_csrf_token,
    check_anon_csrf,
    require,
)
from vern.accounts.models import Organisation
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.consent import newsletter, service
from vern.consent.decisions import OneHopRoute, api_decisions
from vern.consent.models import KINDS, LEGAL_BASES, Purpose
from vern.consent.service import Choice, PurposeInput
from vern.consent.texts import banner_texts, bases
from vern.console.templating import LOCALES, environment, pick_locale, render
from vern.core import inputs
from vern.core import responses as openapi
from vern.core.db import Database, Scope
from vern.core.errors import Conflict, InvalidInput, NotFound, VernError
from vern.core.inputs import AwareMoment, Int32, Key, Value
from vern.notify.service import deliver_pending
from vern.stats.ingest import ingestor_for
from vern.stats.public import public_route, serve_asset

STATIC = Path(__file__).resolve().parent / "static"
CORS = {"Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin"}
BANNER_METHODS = ("banner-accept", "banner-reject", "banner-save", "banner-withdraw", "gpc")
MAX_BANNER_POST = 4096

router = APIRouter(tags=["consent"])
pages = APIRouter(include_in_schema=False)
NAV = [("/console/consent", "Consent", Perm.CONSENT_READ)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _org(database: Database, slug: str) -> tuple[str, str, str]:
    """(id, slug, name) of an active organisation, by its public slug."""
    with database.transaction(Scope.system("consent: organisation by slug")) as session:
        row = session.execute(
            select(Organisation.id, Organisation.slug, Organisation.name)
            .where(Organisation.slug == slug, Organisation.disabled_at.is_(None))
        ).first()
    if row is None:
        raise NotFound(detail="no such organisation")
    return row.id, row.slug, row.name


def _lang(request: Request, given: str | None) -> str:
    return given if given in LOCALES else pick_locale(request)


def render_public(request: Request, template: str, context: dict[str, Any], *,
                  status: int = 200) -> Response:
    """A page for the vendor's website visitors, in the language they chose (``?lang=``)."""
    locale = context["lang"]
    html = environment(locale).get_template(template).render({"locale": locale, **context})
    response = HTMLResponse(html, status_code=status)
    anon = getattr(request.state, "set_anon_csrf", None)
    if anon:
        response.set_cookie(ANON_CSRF_COOKIE, anon, httponly=True, samesite="strict",
                            secure=request.app.state.settings.is_production, path="/")
    response.headers["Cache-Control"] = "no-store"
    return response


def _banner_purposes(session: Session) -> list[Purpose]:
    return [p for p in service.list_purposes(session) if p.in_banner or p.kind == "necessary"]


# -- public: the banner --------------------------------------------------------------------------


@public_route(router, "/c/vern-consent.js", methods=["GET"],
              responses=openapi.answers("text/javascript"))
def banner_script(request: Request) -> Response:
    """The cookie banner's script: put it on every page of the website (it asks first and blocks
    until asked)."""
    return serve_asset(request, STATIC / "vern-consent.js", "text/javascript")


@public_route(router, "/c/vern-consent.css", methods=["GET"],
              responses=openapi.answers("text/css"))
def banner_style(request: Request) -> Response:
    """The cookie banner's style sheet."""
    return serve_asset(request, STATIC / "vern-consent.css", "text/css")


@public_route(router, "/c/public.css", methods=["GET"],
              responses=openapi.answers("text/css"))
def public_style(request: Request) -> Response:
    """The style of Vern's own public pages (declaration, notices, newsletter), served here rather
    than from /static so that these requests too are recorded with a truncated address."""
    return serve_asset(request, STATIC / "public.css", "text/css")


@public_route(router, "/c/{consent_org}/config", methods=["GET"])
def banner_config(request: Request, consent_org: str, lang: str | None = None) -> Response:
    """What the banner shows: the purposes with cookies, the cookie policy's version (a new
    version asks again) and the words in the visitor's language."""
    database: Database = request.app.state.db
    org_id, slug, name = _org(database, consent_org)
    locale = _lang(request, lang)
    base = request.app.state.settings.base_url
    with database.transaction(Scope.tenant(org_id)) as session:
        notice = service.current_notice(session, "cookie")
        purposes = [{
            "key": p.key, "kind": p.kind, "name": p.name(locale), "description": p.description(locale),
            "required": p.kind == "necessary", "cookies": [c["name"] for c in p.cookies],
        } for p in _banner_purposes(session)]
    texts = banner_texts(locale, name)
    body = {
        "org": slug, "lang": locale, "version": notice.version if notice else 0,
        "purposes": purposes, "texts": texts,
        "policy_url": f"{base}/c/{slug}/cookies?lang={locale}", "post": f"{base}/c/{slug}/consent",
    }
    return JSONResponse(body, headers={**CORS, "Cache-Control": "no-cache"})


class BannerPost(Strict):
    subject: str = Field(min_length=8, max_length=80)
    version: Int32
    choices: dict[Key, bool] = Field(max_length=50)
    method: Literal["banner-accept", "banner-reject", "banner-save", "banner-withdraw", "gpc"]


def _refuse(database: Database, reason: str, exc: VernError) -> Response:
    ingestor_for(database).reject("banner", reason)
    return JSONResponse(exc.problem(), status_code=exc.status, headers={**CORS, "X-Vern-Error": reason},
                        media_type="application/problem+json")


@public_route(router, "/c/{consent_org}/consent", methods=["POST"], status_code=201)
async def banner_consent(request: Request, consent_org: str) -> Response:
    """A choice made in the banner, sent as text/plain JSON (no CORS preflight). Refused whole
    and counted when anything is wrong; otherwise one record per purpose."""
    database: Database = request.app.state.db
    body = await request.body()
    if len(body) > MAX_BANNER_POST:
        return _refuse(database, "too-large", InvalidInput.on("body", "too large"))
    try:
        post = BannerPost.model_validate(inputs.loads(body))
    except InvalidInput as exc:  # too deep, NUL, lone surrogate, number beyond 64 bits
        reason = exc.errors[0].code if exc.errors else "not-json"
        if reason != "not-json":
            return _refuse(database, reason, exc)
        post = None
    except (ValueError, ValidationError):
        post = None
    if post is None:
        return _refuse(database, "bad-shape", InvalidInput.on("body", "not a banner choice"))
    try:
        org_id, _slug, _name = _org(database, consent_org)
    except NotFound as exc:
        return _refuse(database, "unknown-org", exc)
    try:
        with database.transaction(Scope.tenant(org_id)) as session:
            rows = _record_banner(session, org_id, post)
    except VernError as exc:
        return _refuse(database, exc.code, exc)
    return JSONResponse({"recorded": len(rows)}, status_code=201, headers=CORS)


def _record_banner(session: Session, org_id: str, post: BannerPost) -> list[Any]:
    notice = service.current_notice(session, "cookie")
    if (notice.version if notice else 0) != post.version:
        raise Conflict(detail="the cookie policy has changed; ask again")
    optional = {p.key for p in _banner_purposes(session) if p.kind != "necessary"}
    if set(post.choices) != optional:
        raise InvalidInput.on("choices", "give a choice for every purpose in the banner")
    previous = service.latest(session, post.subject)
    choices = []
    for key, yes in sorted(post.choices.items()):
        was = previous.get(key)
        if yes:
            choices.append(Choice(key, "granted"))
        else:
            choices.append(Choice(key, "withdrawn" if was and was.choice == "granted" else "denied"))
    return service.record_choices(session, org_id=org_id, subject=post.subject, choices=choices,
                                  method=post.method, notice=post.version)


@public_route(pages, "/c/{consent_org}/cookies", methods=["GET"])
def cookie_declaration(request: Request, consent_org: str, lang: str | None = None) -> Response:
    """The cookie declaration, generated from the organisation's purposes."""
    database: Database = request.app.state.db
    org_id, slug, name = _org(database, consent_org)
    locale = _lang(request, lang)
    with database.transaction(Scope.tenant(org_id)) as session:
        purposes = [p for p in service.list_purposes(session) if p.cookies or p.in_banner]
        notice = service.current_notice(session, "cookie")
        return render_public(request, "consent/cookies.html", {
            "org_name": name, "slug": slug, "lang": locale, "purposes": purposes, "notice": notice,
            "bases": bases(locale),
        })


@public_route(pages, "/c/{consent_org}/notice/{notice_kind}", methods=["GET"])
def notice_page(request: Request, consent_org: str, notice_kind: str,
                version: Int32 | None = None, lang: str | None = None) -> Response:
    database: Database = request.app.state.db
    org_id, slug, name = _org(database, consent_org)
    locale = _lang(request, lang)
    with database.transaction(Scope.tenant(org_id)) as session:
        notice = (service.notice_version(session, notice_kind, version) if version is not None
                  else service.current_notice(session, notice_kind))
        if notice is None:
            raise NotFound(detail="no such notice")
        versions = [n.version for n in service.list_notices(session) if n.kind == notice_kind]
        return render_public(request, "consent/notice.html", {
            "org_name": name, "slug": slug, "lang": locale, "notice": notice, "versions": versions,
        })


# -- public: newsletter ----------------------------------------------------------------------------


@public_route(pages, "/c/{consent_org}/newsletter", methods=["GET"])
def newsletter_form(request: Request, consent_org: str, lang: str | None = None) -> Response:
    database: Database = request.app.state.db
    _org_id, slug, name = _org(database, consent_org)
    return render_public(request, "consent/newsletter.html", {
        "org_name": name, "slug": slug, "lang": _lang(request, lang), "step": "form",
        "csrf_token": anon_csrf_token(request),
    })


@public_route(pages, "/c/{consent_org}/newsletter", methods=["POST"],
              dependencies=[Depends(check_anon_csrf)])
def newsletter_subscribe(request: Request, consent_org: str,
                         email: Annotated[str, Form(max_length=254)],
                         lang: Annotated[str, Form(max_length=2)] = "nb") -> Response:
    """First step of the double opt-in: only a confirmation mail is sent."""
    database: Database = request.app.state.db
    org_id, slug, name = _org(database, consent_org)
    settings = request.app.state.settings
    locale = _lang(request, lang)
    with database.transaction(Scope.tenant(org_id)) as session:
        newsletter.subscribe(session, org_id=org_id, org_slug=slug, org_name=name,
                             secret=settings.secret_bytes, base_url=settings.base_url, email=email,
                             locale=locale)
    deliver_pending(database)
    return render_public(request, "consent/newsletter.html", {
        "org_name": name, "slug": slug, "lang": locale, "step": "sent"})


@public_route(pages, "/c/{consent_org}/newsletter/{newsletter_step}", methods=["GET"])
def newsletter_link(request: Request, consent_org: str, newsletter_step: str,
                    t: Annotated[str, Query(max_length=100)] = "",
                    lang: str | None = None) -> Response:
    """The page a mail link opens: one button that does the change (a POST), so that a mail
    scanner following links cannot confirm or unsubscribe anybody."""
    if newsletter_step not in ("confirm", "unsubscribe"):
        raise NotFound()
    database: Database = request.app.state.db
    _org_id, slug, name = _org(database, consent_org)
    return render_public(request, "consent/newsletter.html", {
        "org_name": name, "slug": slug, "lang": _lang(request, lang), "step": newsletter_step,
        "token": t})


@public_route(pages, "/c/{consent_org}/newsletter/{newsletter_step}", methods=["POST"])
def newsletter_act(request: Request, consent_org: str, newsletter_step: str,
                   t: Annotated[str, Form(max_length=100)] = "",
                   lang: Annotated[str, Form(max_length=2)] = "nb") -> Response:
    """Confirm (consent recorded) or unsubscribe (withdrawal or objection recorded). The token is
    the proof of the mailbox; also reached by mail clients' one-click unsubscribe (RFC 8058)."""
    if newsletter_step not in ("confirm", "unsubscribe"):
        raise NotFound()
    database: Database = request.app.state.db
    org_id, slug, name = _org(database, consent_org)
    with database.transaction(Scope.tenant(org_id)) as session:
        if newsletter_step == "confirm":
            newsletter.confirm(session, token=t)
        else:
            newsletter.unsubscribe(session, token=t)
    return render_public(request, "consent/newsletter.html", {
        "org_name": name, "slug": slug, "lang": _lang(request, lang),
        "step": newsletter_step + "ed"})




# -- API -----------------------------------------------------------------------------------------


class PurposeBody(Strict):
    key: str = Field(max_length=40)
    kind: str = Field(max_length=16)
    legal_basis: str = Field(max_length=1)
    name_nb: str = Field(max_length=200)
    name_en: str = Field(max_length=200)
    description_nb: str = Field(default="", max_length=4000)
    description_en: str = Field(default="", max_length=4000)
    data_categories: list[Key] = Field(default_factory=list, max_length=50)
    retention: str = Field(default="", max_length=300)
    cookies: list[dict[Key, Value]] = Field(default_factory=list, max_length=100)
    scripts: list[Value] = Field(default_factory=list, max_length=100)
    in_banner: bool = False


class NoticeBody(Strict):
    kind: Literal["privacy", "cookie"]
    title_nb: str = Field(max_length=200)
    title_en: str = Field(max_length=200)
    body_nb: str = Field(max_length=100_000)
    body_en: str = Field(max_length=100_000)


class RecordBody(Strict):
    choices: dict[Key, Literal["granted", "denied", "withdrawn", "objected"]] = Field(max_length=50)
    method: Literal["api", "form"] = "api"
    notice_version: Int32 | None = Field(default=None, ge=1)
    verified: bool = False


class WithdrawBody(Strict):
    purposes: list[Key] | None = Field(default=None, max_length=50)


class CustomerBody(Strict):
    email: str = Field(max_length=254)
    lang: Literal["nb", "en"] | None = None  # the language of notices owed to the subscriber


class IssueBody(Strict):
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=100_000)
    lang: Literal["nb", "en"] = "nb"


@router.get("/api/v1/consent/purposes")
def api_purposes(actor: Annotated[Actor, Depends(require(Perm.CONSENT_READ))],
                 db: TenantDB) -> dict[str, Any]:
    """The organisation's purposes of processing with their legal bases, cookies and scripts."""
    return {"purposes": [service.purpose_view(p) for p in service.list_purposes(db)]}


@router.post("/api/v1/consent/purposes", status_code=201)
def api_create_purpose(body: PurposeBody,
                       actor: Annotated[Actor, Depends(require(Perm.CONSENT_MANAGE))],
                       db: TenantDB) -> dict[str, Any]:
    """Add a purpose (key, names in bokmål and English, legal basis, cookies, scripts, retention)."""
    data = PurposeInput(**{**body.model_dump(), "data_categories": tuple(body.data_categories),
                           "cookies": tuple(body.cookies), "scripts": tuple(body.scripts)})
    purpose = service.create_purpose(db, org_id=actor.org_id, data=data, actor_user_id=actor.user_id)
    return service.purpose_view(purpose)


@router.get("/api/v1/consent/notices")
def api_notices(actor: Annotated[Actor, Depends(require(Perm.CONSENT_READ))],
                db: TenantDB) -> dict[str, Any]:
    """The published versions of the organisation's privacy notice and cookie policy."""
    return {"notices": [{"kind": n.kind, "version": n.version, "title_nb": n.title_nb,
                         "title_en": n.title_en, "published_at": n.published_at.isoformat()}
                        for n in service.list_notices(db)]}


@router.post("/api/v1/consent/notices", status_code=201)
def api_publish_notice(body: NoticeBody,
                       actor: Annotated[Actor, Depends(require(Perm.CONSENT_MANAGE))],
                       db: TenantDB) -> dict[str, Any]:
    """Publish a new version of a notice; consent that depends on it is asked for again."""
    notice = service.publish_notice(db, org_id=actor.org_id, actor_user_id=actor.user_id,
                                    **body.model_dump())
    return {"kind": notice.kind, "version": notice.version}


@router.get("/api/v1/consent/changes")
def api_changes(actor: Annotated[Actor, Depends(require(Perm.CONSENT_READ))], db: TenantDB,
                since: AwareMoment,
                limit: Annotated[int, Query(ge=1, le=1000)] = 1000) -> dict[str, Any]:
    """Every record after ``since`` (with its UTC offset): how a withdrawal or objection reaches
    the product."""
    return {"records": [service.record_view(r) for r in service.records_since(db, since, limit)]}


@router.post("/api/v1/consent/newsletter/customers", status_code=201)
def api_newsletter_customer(request: Request, body: CustomerBody,
                            actor: Annotated[Actor, Depends(require(Perm.CONSENT_MANAGE))],
                            db: TenantDB) -> dict[str, Any]:
    """A customer on legitimate interest (recorded), unless they objected before."""
    settings = request.app.state.settings
    sub, token = newsletter.add_customer(db, org_id=actor.org_id, secret=settings.secret_bytes,
                                         email=body.email, actor_user_id=actor.user_id,
                                         locale=body.lang)
    org = db.get(Organisation, actor.org_id)
    url = newsletter.optout_url(settings.base_url, org.slug, token) if token and org else None
    return {"subject": sub.subject, "status": sub.status, "unsubscribe_url": url}


@router.post("/api/v1/consent/newsletter/issues", status_code=201)
def api_newsletter_issue(request: Request, body: IssueBody, background: BackgroundTasks,
                         actor: Annotated[Actor, Depends(require(Perm.CONSENT_MANAGE))],
                         db: TenantDB) -> dict[str, Any]:
    """Send one issue to every subscriber whose latest record allows it (double opt-in or
    customer), each mail with its one-click opt-out link; delivered after the response."""
    count = _send_issue(request, db, actor, subject=body.subject, text=body.body, lang=body.lang)
    background.add_task(deliver_pending, request.app.state.db)
    return {"recipients": count}


def _send_issue(request: Request, db: Session, actor: Actor, *, subject: str, text: str,
                lang: str) -> int:
    settings = request.app.state.settings
    org = db.get(Organisation, actor.org_id)
    if org is None:
        raise NotFound()
    return newsletter.send_issue(db, org_id=org.id, org_slug=org.slug, org_name=org.name,
                                 base_url=settings.base_url, secret=settings.secret_bytes,
                                 subject=subject, body=text, locale=lang,
                                 actor_user_id=actor.user_id)


@router.post("/api/v1/consent/purposes/{purpose_key}/retire")
def api_retire_purpose(purpose_key: str,
                       actor: Annotated[Actor, Depends(require(Perm.CONSENT_MANAGE))],
                       db: TenantDB) -> dict[str, Any]:
    """A purpose no longer used: kept with its records (the proof), never allowed again."""
    return service.purpose_view(service.retire_purpose(db, key=purpose_key,
                                                       actor_user_id=actor.user_id))


# The product's hot read (vern.consent.decisions), registered in its place among the API routes.
router.add_api_route(
    "/api/v1/consent/{consent_subject}", api_decisions, methods=["GET"],
    route_class_override=OneHopRoute, dependencies=[Depends(require(Perm.CONSENT_READ))],
    openapi_extra={"parameters": [{"name": "purpose", "in": "query", "required": False,
                                   "schema": {"type": "string", "maxLength": 40}}]})


@router.get("/api/v1/consent/{consent_subject}/history")
def api_history(consent_subject: str,
                actor: Annotated[Actor, Depends(require(Perm.CONSENT_READ))],
                db: TenantDB) -> dict[str, Any]:
    """Every consent record of one subject (the proof kept on the server), oldest first."""
    service.check_subject(consent_subject)
    return {"subject": consent_subject,
            "records": [service.record_view(r) for r in service.history(db, consent_subject)]}


@router.post("/api/v1/consent/{consent_subject}", status_code=201)
def api_record(consent_subject: str, body: RecordBody,
               actor: Annotated[Actor, Depends(require(Perm.CONSENT_MANAGE))],
               db: TenantDB) -> dict[str, Any]:
    """Record choices made in the product (a form, a settings page)."""
    notice = body.notice_version
    if notice is None:
        current = service.current_notice(db, "privacy")
        notice = current.version if current else None
    rows = service.record_choices(
        db, org_id=actor.org_id, subject=consent_subject, method=body.method, notice=notice,
        choices=[Choice(k, v) for k, v in sorted(body.choices.items())],
        subject_kind="verified" if body.verified else "pseudonymous", actor_user_id=actor.user_id)
    return {"records": [service.record_view(r) for r in rows]}


@router.post("/api/v1/consent/{consent_subject}/withdraw")
def api_withdraw(consent_subject: str, body: WithdrawBody,
                 actor: Annotated[Actor, Depends(require(Perm.CONSENT_MANAGE))],
                 db: TenantDB) -> dict[str, Any]:
    """One call withdraws every consent (and objects to every legitimate interest) given, or the
    named purposes only."""
    service.check_subject(consent_subject)
    rows = service.withdraw(db, org_id=actor.org_id, subject=consent_subject,
                            purposes=body.purposes, method="api", actor_user_id=actor.user_id)
    return {"records": [service.record_view(r) for r in rows]}


# -- console ---------------------------------------------------------------------------------------


@pages.get("/console/consent")
def console_index(request: Request, actor: Annotated[Actor, Depends(require(Perm.CONSENT_READ))],
                  db: TenantDB) -> Response:
    org = db.get(Organisation, actor.org_id)
    sent = request.query_params.get("sent", "")
    return render(request, "consent/index.html", {
        "sent": int(sent) if sent.isdigit() and len(sent) <= 9 else None,
        "purposes": service.list_purposes(db, include_retired=True),
        "notices": service.list_notices(db), "can_manage": actor.can(Perm.CONSENT_MANAGE),
        "kinds": KINDS, "bases": LEGAL_BASES, "slug": org.slug if org else "",
        "base_url": request.app.state.settings.base_url,
    })


@pages.post("/console/consent/purposes")
def console_create_purpose(
    request: Request, *, actor: Annotated[Actor, Depends(require(Perm.CONSENT_MANAGE))], db: TenantDB,
    key: Annotated[str, Form(max_length=40)], kind: Annotated[str, Form(max_length=16)],
    legal_basis: Annotated[str, Form(max_length=1)], name_nb: Annotated[str, Form(max_length=200)],
    name_en: Annotated[str, Form(max_length=200)],
    description_nb: Annotated[str, Form(max_length=4000)] = "",
    description_en: Annotated[str, Form(max_length=4000)] = "",
    retention: Annotated[str, Form(max_length=300)] = "",
    cookies: Annotated[str, Form(max_length=4000)] = "",
    data_categories: Annotated[str, Form(max_length=2000)] = "",
    scripts: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """``cookies``: one per line, ``name | provider | duration``; ``data_categories`` separated by
    commas; ``scripts`` one address per line."""
    parsed = []
    for line in cookies.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if parts and parts[0]:
            parsed.append({"name": parts[0], "provider": parts[1] if len(parts) > 1 else "",
                           "duration": parts[2] if len(parts) > 2 else ""})
    data = PurposeInput(key=key, kind=kind, legal_basis=legal_basis, name_nb=name_nb,
                        name_en=name_en, description_nb=description_nb,
                        description_en=description_en, retention=retention, cookies=tuple(parsed),
                        data_categories=tuple(c.strip() for c in data_categories.split(",")
                                              if c.strip()),
                        scripts=tuple(x.strip() for x in scripts.splitlines() if x.strip()),
                        in_banner=bool(parsed) and kind != "necessary")
    service.create_purpose(db, org_id=actor.org_id, data=data, actor_user_id=actor.user_id)
    return RedirectResponse("/console/consent", status_code=303)


@pages.post("/console/consent/purposes/{purpose_key}/retire")
def console_retire_purpose(request: Request, purpose_key: str, *,
                           actor: Annotated[Actor, Depends(require(Perm.CONSENT_MANAGE))],
                           db: TenantDB) -> Response:
    service.retire_purpose(db, key=purpose_key, actor_user_id=actor.user_id)
    return RedirectResponse("/console/consent", status_code=303)


@pages.post("/console/consent/newsletter")
def console_newsletter_issue(
    request: Request, background: BackgroundTasks, *,
    actor: Annotated[Actor, Depends(require(Perm.CONSENT_MANAGE))], db: TenantDB,
    subject: Annotated[str, Form(max_length=200)], body: Annotated[str, Form(max_length=100_000)],
    lang: Annotated[Literal["nb", "en"], Form()] = "nb",
) -> Response:
    count = _send_issue(request, db, actor, subject=subject, text=body, lang=lang)
    background.add_task(deliver_pending, request.app.state.db)
    return RedirectResponse(f"/console/consent?sent={count}", status_code=303)


@pages.post("/console/consent/notices")
def console_publish_notice(
    request: Request, *, actor: Annotated[Actor, Depends(require(Perm.CONSENT_MANAGE))], db: TenantDB,
    kind: Annotated[str, Form(max_length=16)], title_nb: Annotated[str, Form(max_length=200)],
    title_en: Annotated[str, Form(max_length=200)], body_nb: Annotated[str, Form(max_length=100_000)],
    body_en: Annotated[str, Form(max_length=100_000)],
) -> Response:
    service.publish_notice(db, org_id=actor.org_id, kind=kind, title_nb=title_nb, title_en=title_en,
                           body_nb=body_nb, body_en=body_en, actor_user_id=actor.user_id)
    return RedirectResponse("/console/consent", status_code=303)


@pages.get("/console/consent/subject")
def console_subject(request: Request, actor: Annotated[Actor, Depends(require(Perm.CONSENT_READ))],
                    db: TenantDB, subject: Annotated[str, Query(max_length=80)] = "") -> Response:
    records = service.history(db, service.check_subject(subject)) if subject else []
    decisions = service.decisions(db, subject) if subject else {}
    return render(request, "consent/subject.html", {
        "subject": subject, "records": records, "decisions": decisions})
