"""Incidents: the vendor's deviation and breach register, the clocks, notices to customers, the
customers' own notices, and the posture page.

API under ``/api/v1/incidents/…`` (and ``/api/v1/posture``); console under
``/console/incidents/…`` and ``/console/posture``. The register's routes are the vendor's (their
permissions exist only in the vendor's own organisation) and run in a system scope named for the
register, since notices are rows of the customers they go to; the customer's routes run in the
customer's own scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from vern.accounts.deps import DatabaseDep, TenantDB, require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor, list_tenants
from vern.console.templating import pick_locale, render
from vern.core import responses as openapi
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import InvalidInput, VernError
from vern.core.inputs import AwareMoment, Int64
from vern.incidents import overview, service
from vern.incidents.models import EXEMPTIONS, PHASES, RISKS
from vern.notify.service import deliver_pending

router = APIRouter(tags=["incidents"])
pages = APIRouter(include_in_schema=False)
NAV = [
    ("/console/posture", "Posture", Perm.POSTURE_READ),
    ("/console/incidents", "Deviations and breaches", Perm.INCIDENTS_READ),
    ("/console/incidents/notices", "Breach notices", Perm.INCIDENTS_NOTICES),
]
OSLO = ZoneInfo("Europe/Oslo")

Reader = Annotated[Actor, Depends(require(Perm.INCIDENTS_READ))]
Manager = Annotated[Actor, Depends(require(Perm.INCIDENTS_MANAGE))]
Customer = Annotated[Actor, Depends(require(Perm.INCIDENTS_NOTICES))]
PostureReader = Annotated[Actor, Depends(require(Perm.POSTURE_READ))]
Text = Annotated[str, Field(max_length=service.MAX_TEXT)]
Line = Annotated[str, Field(max_length=200)]


def register_session(database: Database) -> AbstractContextManager[Session]:
    """The vendor's register: one transaction with a system scope (its notices are the
    customers' rows); every look-up in the service is limited to the actor's own incidents."""
    return database.transaction(Scope.system("incidents: the vendor's register"))


def _register_db(database: DatabaseDep) -> Iterator[Session]:
    with register_session(database) as session:
        yield session


RegisterDB = Annotated[Session, Depends(_register_db, scope="function")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IncidentBody(Strict):
    title: Line
    personal_data: bool = False
    risk: Literal["none", "risk", "high"] = "risk"
    occurred_from: AwareMoment | None = None
    occurred_to: AwareMoment | None = None
    discovered_at: AwareMoment | None = None
    aware_at: AwareMoment | None = None
    what_happened: Text = ""
    how_happened: Text = ""
    data_categories: list[Line] = Field(default_factory=list, max_length=service.MAX_LIST)
    subject_categories: list[Line] = Field(default_factory=list, max_length=service.MAX_LIST)
    subjects_approx: Int64 | None = None
    records_approx: Int64 | None = None
    consequences: Text = ""
    measures_taken: Text = ""
    measures_proposed: Text = ""
    data_location: Text = ""
    contact: Text = ""
    vendor_is_controller: bool = False
    customers: list[Annotated[str, Field(max_length=36)]] = Field(default_factory=list,
                                                                  max_length=5000)


class ChangeBody(Strict):
    title: Line | None = None
    personal_data: bool | None = None
    risk: Literal["none", "risk", "high"] | None = None
    occurred_from: AwareMoment | None = None
    occurred_to: AwareMoment | None = None
    discovered_at: AwareMoment | None = None
    aware_at: AwareMoment | None = None
    what_happened: Text | None = None
    how_happened: Text | None = None
    data_categories: list[Line] | None = Field(default=None, max_length=service.MAX_LIST)
    subject_categories: list[Line] | None = Field(default=None, max_length=service.MAX_LIST)
    subjects_approx: Int64 | None = None
    records_approx: Int64 | None = None
    consequences: Text | None = None
    measures_taken: Text | None = None
    measures_proposed: Text | None = None
    data_location: Text | None = None
    contact: Text | None = None
    vendor_is_controller: bool | None = None


class CustomersBody(Strict):
    customers: list[Annotated[str, Field(max_length=36)]] = Field(min_length=1, max_length=5000)


class NoticeBody(Strict):
    phase: Literal["initial", "update", "final"] = "initial"
    customers: list[Annotated[str, Field(max_length=36)]] | None = Field(default=None,
                                                                         max_length=5000)


class AuthorityBody(Strict):
    reported_at: AwareMoment
    reference: Line = ""
    late_reason: Text = ""


class ToldBody(Strict):
    told_at: AwareMoment


class ExemptionBody(Strict):
    exemption: Literal["a", "b", "c"]
    reason: Text


class CloseBody(Strict):
    cause: Text
    lessons: Text


def _input(body: IncidentBody) -> service.IncidentInput:
    data = body.model_dump(exclude={"customers"})
    return service.IncidentInput(**data)


def _detail(session: Session, actor: Actor, inc_id: str) -> dict[str, Any]:
    inc = service.get_incident(session, actor, inc_id)
    names = service.org_names(session, {c.customer_id for c in service.customers_of(session, inc.id)})
    return {
        **service.incident_view(inc),
        "customers": [{"customer_id": c.customer_id, "name": names.get(c.customer_id, ""),
                       "notice_hours": c.notice_hours, "due_at": service._json(c.due_at),
                       "notified_at": service._json(c.notified_at)}
                      for c in service.customers_of(session, inc.id)],
        "clocks": [service.clock_view(c) for c in service.clocks(session, actor, incident_id=inc.id)],
        "notices": [service.vendor_notice_view(n)
                    for n in service.notices_of_incident(session, inc.id)],
        "timeline": service.full_timeline(session, inc),
    }


# -- API: the vendor's register -------------------------------------------------------------------


@router.get("/api/v1/incidents")
def api_list(actor: Reader, db: RegisterDB,
             status: Annotated[Literal["open", "closed", "all"], Query()] = "open",
             limit: Annotated[int, Query(ge=1, le=1000)] = 200,
             offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> dict[str, Any]:
    """The register, newest first."""
    rows = service.list_incidents(db, actor, status=None if status == "all" else status,
                                  limit=limit, offset=offset)
    return {"incidents": [service.incident_view(i) for i in rows]}


@router.post("/api/v1/incidents", status_code=201)
def api_register(actor: Manager, db: RegisterDB, body: IncidentBody) -> dict[str, Any]:
    """Register a deviation; with ``personal_data`` a breach, which needs ``aware_at``."""
    inc = service.register(db, actor, _input(body), body.customers)
    return _detail(db, actor, inc.id)


@router.get("/api/v1/incidents/clocks")
def api_clocks(actor: Reader, db: RegisterDB) -> dict[str, Any]:
    """Every clock of the open breaches, the most urgent first."""
    return {"now": utcnow().isoformat(),
            "clocks": [service.clock_view(c) for c in service.clocks(db, actor)]}


# -- API: the customer's notices ------------------------------------------------------------------


@router.get("/api/v1/incidents/notices")
def api_customer_notices(request: Request, actor: Customer, db: TenantDB) -> dict[str, Any]:
    """The breach notices sent to the caller's organisation, newest first."""
    return {"notices": [service.notice_view(n) for n in service.customer_notices(db)]}


@router.get("/api/v1/incidents/notices/{breach_notice_id}")
def api_customer_notice(breach_notice_id: str, actor: Customer, db: TenantDB) -> dict[str, Any]:
    """One notice sent to the caller's organisation, as sent (bokmål and English)."""
    return service.notice_view(service.customer_notice(db, breach_notice_id))


@router.post("/api/v1/incidents/notices/{breach_notice_id}/acknowledge")
def api_acknowledge(breach_notice_id: str, actor: Customer, db: TenantDB) -> dict[str, Any]:
    """The customer's admin confirms the notice was received."""
    return service.notice_view(service.acknowledge(db, actor, breach_notice_id))


# -- API: one incident ----------------------------------------------------------------------------


@router.get("/api/v1/incidents/{incident_id}")
def api_detail(incident_id: str, actor: Reader, db: RegisterDB) -> dict[str, Any]:
    """The incident with its customers, clocks, notices and timeline."""
    return _detail(db, actor, incident_id)


@router.patch("/api/v1/incidents/{incident_id}")
def api_change(incident_id: str, *, actor: Manager, db: RegisterDB,
               body: ChangeBody) -> dict[str, Any]:
    """Change fields (only those given); the timeline keeps old and new values."""
    service.update(db, actor, incident_id, body.model_dump(exclude_unset=True))
    return _detail(db, actor, incident_id)


@router.post("/api/v1/incidents/{incident_id}/customers")
def api_add_customers(incident_id: str, *, actor: Manager, db: RegisterDB,
                      body: CustomersBody) -> dict[str, Any]:
    """Add affected customers to a breach; each gets its notice clock from awareness."""
    service.add_customers(db, actor, incident_id, body.customers)
    return _detail(db, actor, incident_id)


@router.post("/api/v1/incidents/{incident_id}/notices", status_code=201)
def api_send_notices(request: Request, background: BackgroundTasks, incident_id: str, *,
                     actor: Manager, db: RegisterDB, body: NoticeBody) -> dict[str, Any]:
    """Send the notice (or an update) to every affected customer, or to those named; refused,
    naming the fields, when an Art. 33(3) item is missing."""
    sent = service.send_notices(db, actor, incident_id, phase=body.phase,
                                customer_ids=body.customers,
                                base_url=request.app.state.settings.base_url)
    background.add_task(deliver_pending, request.app.state.db)
    return {"notices": [{"id": s.notice_id, "customer_id": s.customer_id,
                         "recipients": s.recipients} for s in sent]}


@router.post("/api/v1/incidents/{incident_id}/authority-report")
def api_authority(incident_id: str, *, actor: Manager, db: RegisterDB,
                  body: AuthorityBody) -> dict[str, Any]:
    """The vendor, as controller, reported to Datatilsynet (after 72 hours: with reasons)."""
    service.report_to_authority(db, actor, incident_id, reported_at=body.reported_at,
                                reference=body.reference, late_reason=body.late_reason)
    return _detail(db, actor, incident_id)


@router.post("/api/v1/incidents/{incident_id}/subjects-told")
def api_subjects_told(incident_id: str, *, actor: Manager, db: RegisterDB,
                      body: ToldBody) -> dict[str, Any]:
    """Record when the people concerned were told of a high-risk breach (Art. 34)."""
    service.record_subjects_told(db, actor, incident_id, told_at=body.told_at)
    return _detail(db, actor, incident_id)


@router.post("/api/v1/incidents/{incident_id}/exemption")
def api_exemption(incident_id: str, *, actor: Manager, db: RegisterDB,
                  body: ExemptionBody) -> dict[str, Any]:
    """The Art. 34(3) exemption (a, b or c) and why it applies."""
    service.record_exemption(db, actor, incident_id, exemption=body.exemption, reason=body.reason)
    return _detail(db, actor, incident_id)


@router.post("/api/v1/incidents/{incident_id}/close")
def api_close(incident_id: str, actor: Manager, db: RegisterDB, body: CloseBody) -> dict[str, Any]:
    """The closing review: cause and lessons learned."""
    service.close(db, actor, incident_id, cause=body.cause, lessons=body.lessons)
    return _detail(db, actor, incident_id)


@router.get("/api/v1/incidents/{incident_id}/authority-form",
            responses=openapi.answers("application/json", "text/csv"))
def api_authority_form(incident_id: str, actor: Reader, db: RegisterDB,
                       format: Annotated[Literal["json", "csv"], Query()] = "json") -> Response:
    """The fields of Datatilsynet's breach form, for a controller's own report (JSON or CSV)."""
    inc = service.get_incident(db, actor, incident_id)
    name = f"breach-{inc.number}-datatilsynet"
    if format == "csv":
        return PlainTextResponse(service.authority_form_csv(inc), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return JSONResponse(service.authority_form(inc),
                        headers={"Content-Disposition": f'inline; filename="{name}.json"'})


@router.get("/api/v1/incidents/{incident_id}/subject-letter")
def api_subject_letter(incident_id: str, actor: Reader, db: RegisterDB,
                       lang: Annotated[Literal["nb", "en"], Query()] = "nb") -> Response:
    """The Art. 34 letter to the people concerned (high risk only), as plain text."""
    inc = service.get_incident(db, actor, incident_id)
    return PlainTextResponse(service.subject_letter(inc, lang))


# -- API: posture ----------------------------------------------------------------------------------


def _posture(database: Database, actor: Actor, locale: str) -> dict[str, Any]:
    now = utcnow()
    with database.transaction(Scope.system("posture: the vendor's view across customers")) as s:
        items = overview.gather(s, now, locale)
        warnings = service.recent_warnings(s, actor, limit=10)
        warning_rows = [{"clock": w.clock, "level": w.level, "incident_id": w.incident_id,
                         "customer_id": w.customer_id, "due_at": w.due_at,
                         "raised_at": w.raised_at} for w in warnings]
    return {"now": now, "items": items, "warnings": warning_rows}


@router.get("/api/v1/posture")
def api_posture(request: Request, actor: PostureReader, database: DatabaseDep,
                lang: Annotated[Literal["nb", "en"] | None, Query()] = None) -> dict[str, Any]:
    """Open items across the domains (breach clocks, due requests, and what other domains
    provide), overdue first."""
    found = _posture(database, actor, lang or "en")
    return {"now": found["now"].isoformat(),
            "items": [overview.item_view(i) for i in found["items"]]}


# -- console: posture ------------------------------------------------------------------------------


@pages.get("/console/posture")
def console_posture(request: Request, actor: PostureReader, database: DatabaseDep) -> Response:
    locale = pick_locale(request)
    found = _posture(database, actor, locale)
    found["items"] = [{**i, "due_text": service.moment_text(i["due_at"], locale)}
                      for i in found["items"]]
    return render(request, "incidents/posture.html", found)


# -- console: the customer's notices --------------------------------------------------------------


@pages.get("/console/incidents/notices")
def console_customer_notices(request: Request, actor: Customer, db: TenantDB) -> Response:
    return render(request, "incidents/notices.html", {"notices": service.customer_notices(db)})


@pages.get("/console/incidents/notices/{breach_notice_id}")
def console_customer_notice(request: Request, breach_notice_id: str, actor: Customer,
                            db: TenantDB) -> Response:
    notice = service.customer_notice(db, breach_notice_id)
    return render(request, "incidents/notice.html",
                  {"n": service.notice_view(notice, pick_locale(request)),
                   "acknowledged": notice.acknowledged_at})


@pages.post("/console/incidents/notices/{breach_notice_id}/acknowledge")
def console_acknowledge(request: Request, breach_notice_id: str, actor: Customer,
                        db: TenantDB) -> Response:
    service.acknowledge(db, actor, breach_notice_id)
    return RedirectResponse(f"/console/incidents/notices/{breach_notice_id}", status_code=303)


# -- console: the register ------------------------------------------------------------------------


@pages.get("/console/incidents")
def console_list(request: Request, actor: Reader, db: RegisterDB,
                 status: Annotated[Literal["open", "closed", "all"], Query()] = "open") -> Response:
    rows = service.list_incidents(db, actor, status=None if status == "all" else status)
    return render(request, "incidents/list.html", {
        "incidents": rows, "status": status, "can_manage": actor.can(Perm.INCIDENTS_MANAGE)})


def _form_context(db: Session, actor: Actor) -> dict[str, Any]:

    return {"customers": [(o.id, o.name) for o in list_tenants(db)], "risks": RISKS}


@pages.get("/console/incidents/new")
def console_new(request: Request, actor: Manager, db: RegisterDB) -> Response:
    return render(request, "incidents/new.html", {**_form_context(db, actor), "values": {},
                                                  "chosen": []})


def _moment(value: str, name: str) -> datetime | None:
    """A console time (``datetime-local``: Norwegian time) as UTC."""
    if not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput.on(name, "not a date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=OSLO)
    if not 1970 <= moment.year <= 9998:
        raise InvalidInput.on(name, "not a date and time")
    return moment.astimezone(ZoneInfo("UTC"))


def _number(value: str, name: str) -> int | None:
    if not value.strip():
        return None
    if not value.strip().isdigit() or len(value.strip()) > 12:
        raise InvalidInput.on(name, "must be a whole number")
    return int(value.strip())


def _lines(value: str) -> list[str]:
    return [v.strip() for v in value.replace("\r", "").replace(",", "\n").split("\n") if v.strip()]


FORM_TEXT = Annotated[str, Form(max_length=service.MAX_TEXT)]


@pages.post("/console/incidents")
async def console_register(request: Request, actor: Manager, database: DatabaseDep) -> Response:
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    chosen = [str(v) for v in form.getlist("customers")]
    try:
        for key, value in values.items():
            if len(value) > service.MAX_TEXT:
                raise InvalidInput.on(key, "at most %(n)s characters", n=service.MAX_TEXT)
        moments = {k: _moment(values.get(k, ""), k) for k in service.MOMENT_FIELDS}
        data = service.IncidentInput(
            title=values.get("title", ""), personal_data=values.get("personal_data") == "on",
            risk=values.get("risk", "risk"),
            occurred_from=moments["occurred_from"], occurred_to=moments["occurred_to"],
            discovered_at=moments["discovered_at"], aware_at=moments["aware_at"],
            what_happened=values.get("what_happened", ""),
            how_happened=values.get("how_happened", ""),
            consequences=values.get("consequences", ""),
            measures_taken=values.get("measures_taken", ""),
            measures_proposed=values.get("measures_proposed", ""),
            data_location=values.get("data_location", ""), contact=values.get("contact", ""),
            data_categories=_lines(values.get("data_categories", "")),
            subject_categories=_lines(values.get("subject_categories", "")),
            subjects_approx=_number(values.get("subjects_approx", ""), "subjects_approx"),
            records_approx=_number(values.get("records_approx", ""), "records_approx"),
            vendor_is_controller=values.get("vendor_is_controller") == "on")
        with register_session(database) as session:
            inc = service.register(session, actor, data, chosen)
            inc_id = inc.id
    except VernError as exc:
        with register_session(database) as session:
            context = _form_context(session, actor)
        return render(request, "incidents/new.html",
                      {**context, "error": exc, "values": values, "chosen": chosen}, status=422)
    return RedirectResponse(f"/console/incidents/{inc_id}", status_code=303)


@pages.get("/console/incidents/clocks")
def console_clocks(request: Request, actor: Reader, db: RegisterDB,
                   show: Annotated[Literal["running", "all"], Query()] = "running") -> Response:
    """The clocks still running (or, with ``show=all``, also those done) of the open breaches;
    the table refreshes itself every 30 seconds."""
    locale = pick_locale(request)
    found = service.clocks(db, actor)
    if show == "running":
        found = [c for c in found if c["state"] in ("overdue", "due_soon", "running")]
    return render(request, "incidents/clocks.html", {
        "clocks": [service.clock_texts(c, locale) for c in found], "show": show,
        "now": utcnow(),
        "warnings": service.recent_warnings(db, actor)})


@pages.get("/console/incidents/{incident_id}")
def console_detail(request: Request, incident_id: str, actor: Reader, db: RegisterDB) -> Response:
    detail = _detail(db, actor, incident_id)
    return render(request, "incidents/detail.html", {
        "i": detail, "can_manage": actor.can(Perm.INCIDENTS_MANAGE), "phases": PHASES,
        "exemptions": EXEMPTIONS, "risks": RISKS, "now": utcnow(),
        "exemption_text": service.EXEMPTION_TEXT,
        "clocks": [service.clock_texts(c, pick_locale(request))
                   for c in service.clocks(db, actor, incident_id=incident_id)],
        "edit_values": _edit_values(detail), **_form_context(db, actor)})


def _edit_values(detail: dict[str, Any]) -> dict[str, Any]:
    """The incident's values as the change form shows them (times in Norwegian time)."""
    values = dict(detail)
    for key in service.MOMENT_FIELDS:
        if detail[key]:
            local = datetime.fromisoformat(detail[key]).astimezone(OSLO)
            values[key] = local.strftime("%Y-%m-%dT%H:%M")
        else:
            values[key] = ""
    for key in ("data_categories", "subject_categories"):
        values[key] = "\n".join(detail[key])
    for key in ("subjects_approx", "records_approx"):
        values[key] = "" if detail[key] is None else str(detail[key])
    return values


def _back(incident_id: str) -> RedirectResponse:
    return RedirectResponse(f"/console/incidents/{incident_id}", status_code=303)


@pages.post("/console/incidents/{incident_id}/edit")
async def console_edit(request: Request, incident_id: str, actor: Manager,
                       database: DatabaseDep) -> Response:
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if len(value) > service.MAX_TEXT:
            raise InvalidInput.on(key, "at most %(n)s characters", n=service.MAX_TEXT)
        if key in service.MOMENT_FIELDS:
            changes[key] = _moment(value, key)
        elif key in ("subjects_approx", "records_approx"):
            changes[key] = _number(value, key)
        elif key in ("data_categories", "subject_categories"):
            changes[key] = _lines(value)
        elif key in ("title", "risk", *service.TEXT_FIELDS):
            changes[key] = value
    with register_session(database) as session:
        service.update(session, actor, incident_id, changes)
    return _back(incident_id)


@pages.post("/console/incidents/{incident_id}/customers")
def console_add_customers(request: Request, incident_id: str, *, actor: Manager, db: RegisterDB,
                          customers: Annotated[list[str], Form(max_length=5000)]) -> Response:
    service.add_customers(db, actor, incident_id, customers)
    return _back(incident_id)


@pages.post("/console/incidents/{incident_id}/notices")
def console_send_notices(request: Request, background: BackgroundTasks, incident_id: str, *,
                         actor: Manager, database: DatabaseDep,
                         phase: Annotated[Literal["initial", "update", "final"], Form()],
                         customers: Annotated[list[str] | None, Form(max_length=5000)] = None,
                         ) -> Response:
    with register_session(database) as session:
        service.send_notices(session, actor, incident_id, phase=phase, customer_ids=customers,
                             base_url=request.app.state.settings.base_url)
    background.add_task(deliver_pending, database)
    return _back(incident_id)


@pages.post("/console/incidents/{incident_id}/authority-report")
def console_authority(request: Request, incident_id: str, *, actor: Manager, db: RegisterDB,
                      reported_at: Annotated[str, Form(max_length=40)],
                      reference: Annotated[str, Form(max_length=200)] = "",
                      late_reason: FORM_TEXT = "") -> Response:
    moment = _moment(reported_at, "reported_at")
    if moment is None:
        raise InvalidInput.on("reported_at", "is required", "required")
    service.report_to_authority(db, actor, incident_id, reported_at=moment, reference=reference,
                                late_reason=late_reason)
    return _back(incident_id)


@pages.post("/console/incidents/{incident_id}/subjects-told")
def console_subjects_told(request: Request, incident_id: str, *, actor: Manager, db: RegisterDB,
                          told_at: Annotated[str, Form(max_length=40)]) -> Response:
    moment = _moment(told_at, "told_at")
    if moment is None:
        raise InvalidInput.on("told_at", "is required", "required")
    service.record_subjects_told(db, actor, incident_id, told_at=moment)
    return _back(incident_id)


@pages.post("/console/incidents/{incident_id}/exemption")
def console_exemption(request: Request, incident_id: str, *, actor: Manager, db: RegisterDB,
                      exemption: Annotated[str, Form(max_length=1)],
                      reason: FORM_TEXT) -> Response:
    service.record_exemption(db, actor, incident_id, exemption=exemption, reason=reason)
    return _back(incident_id)


@pages.post("/console/incidents/{incident_id}/close")
def console_close(request: Request, incident_id: str, *, actor: Manager, db: RegisterDB,
                  cause: FORM_TEXT, lessons: FORM_TEXT) -> Response:
    service.close(db, actor, incident_id, cause=cause, lessons=lessons)
    return _back(incident_id)
