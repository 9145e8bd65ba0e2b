"""Statistics: the public beacon and its script, the API, and the console reports.

The beacon endpoint ``POST /s/e`` is the hottest public path: the web middleware hands it to
``beacon_fast`` directly (``FAST_PATHS``), without routing or dependency solving.

Public (``/s/…``, client address truncated before anything runs, see ``vern.stats.public``):
``GET /s/vern-stats.js`` and ``POST /s/e`` (one page view). API: ``/api/v1/stats/…``.
Console: ``/console/stats``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from vern.accounts.deps import TenantDB, require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.console.templating import gettext, pick_locale, render
from vern.core import responses as openapi
from vern.core.db import Scope, utcnow
from vern.core.errors import InvalidInput
from vern.core.inputs import Day, length_over
from vern.core.ip import truncate_ip
from vern.stats import report, service
from vern.stats.chart import metric_svg, series_svg
from vern.stats.ingest import Ingestor, Rejected, ingestor_for
from vern.stats.models import PublicReject, StatsSite
from vern.stats.public import RawPublicRoute, public_route, serve_asset

STATIC = Path(__file__).resolve().parent / "static"
CORS = {"Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin"}

router = APIRouter(tags=["stats"])
pages = APIRouter(include_in_schema=False)
NAV = [("/console/stats", "Statistics", Perm.STATS_READ)]


@public_route(router, "/s/vern-stats.js", methods=["GET"],
              responses=openapi.answers("text/javascript"))
def beacon_script(request: Request) -> Response:
    """The statistics script: counts a page view with the address cut to three groups, no cookies."""
    return serve_asset(request, STATIC / "vern-stats.js", "text/javascript")


CORS_RAW = [(b"access-control-allow-origin", b"*"), (b"cross-origin-resource-policy", b"cross-origin")]
BodyReader = Callable[[int], Awaitable[bytes | None]]


async def take_beacon(ingestor: Ingestor, truncated_ip: str, headers: Iterable[tuple[bytes, bytes]],
                      read: BodyReader) -> tuple[int, str | None]:
    """One beacon, whichever way it came in: (status, refusal reason or None).

    DNT or GPC: answered 204, nothing read, nothing kept. A declared or actual body over the
    limit: 413 before it is read whole. Anything malformed: 4xx, counted, nothing buffered."""
    user_agent = ""
    declared: bytes | None = None
    for name, value in headers:
        if name == b"user-agent":
            user_agent = value.decode("latin-1")
        elif name == b"content-length":
            declared = value
        elif name in (b"dnt", b"sec-gpc") and value.strip() == b"1":
            ingestor.skipped += 1
            return 204, None
    limit = ingestor.settings.max_beacon_bytes
    body = None
    if declared is None or (declared.isdigit() and not length_over(declared, limit)):
        body = await read(limit)
    if body is None:
        ingestor.reject("beacon", "too-large")
        return 413, "too-large"
    try:
        await ingestor.accept_async(body, truncated_ip, user_agent)
    except Rejected as exc:
        ingestor.reject("beacon", exc.reason)
        return exc.status, exc.reason
    return 204, None


async def beacon_fast(scope: MutableMapping[str, Any], receive: Any, send: Any,
                      client_ip: str) -> int:
    """``POST /s/e`` as a fast path of the web middleware (see ``vern.app.web``): the address is cut
    before anything else, then the beacon is taken. No routing, no dependencies, no record per
    request: the ingest writes one audit record per organisation and batch."""
    cut = truncate_ip(client_ip)
    del client_ip
    scope["client"] = (cut, 0)
    state = scope.setdefault("state", {})
    state["client_ip"] = state["audit_ip"] = cut

    async def read(limit: int) -> bytes | None:
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    status, reason = await take_beacon(ingestor_for(scope["app"].state.db), cut, scope["headers"],
                                       read)
    headers = CORS_RAW if reason is None else [*CORS_RAW, (b"x-vern-error", reason.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
    return status


FAST_PATHS = {("POST", "/s/e"): beacon_fast}


async def beacon(request: Request) -> Response:
    """One page view (``{"s": site, "u": path, "r": referrer}`` as text/plain, at most 2 KB).

    Served by the middleware's fast path (``beacon_fast``); this declaration is what the API
    description and the access-rule matrix see, and it answers the same through the router."""

    async def read(limit: int) -> bytes | None:
        body = await request.body()
        return None if len(body) > limit else body

    status, reason = await take_beacon(ingestor_for(request.app.state.db),
                                       request.scope["state"]["client_ip"],
                                       request.scope["headers"], read)
    headers = CORS if reason is None else {**CORS, "X-Vern-Error": reason}
    return Response(status_code=status, headers=headers)


public_route(router, "/s/e", methods=["POST"], route_class=RawPublicRoute, status_code=204,
             responses=openapi.bodiless(400, 404, 413))(beacon)


# -- API ---------------------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteBody(Strict):
    name: str = Field(max_length=200)
    domain: str = Field(max_length=253)


def _site_view(site: StatsSite) -> dict[str, object]:
    return {"id": site.id, "name": site.name, "domain": site.domain,
            "created_at": site.created_at.isoformat()}


@router.get("/api/v1/stats/sites")
def list_sites(actor: Annotated[Actor, Depends(require(Perm.STATS_READ))],
               db: TenantDB) -> dict[str, object]:
    """The organisation's websites counted in statistics."""
    return {"sites": [_site_view(s) for s in service.list_sites(db)]}


@router.post("/api/v1/stats/sites", status_code=201)
def create_site(body: SiteBody, actor: Annotated[Actor, Depends(require(Perm.STATS_MANAGE))],
                db: TenantDB) -> dict[str, object]:
    """Add a website to count; the answer holds the tag to put on its pages."""
    site = service.create_site(db, org_id=actor.org_id, name=body.name, domain=body.domain,
                               actor_user_id=actor.user_id)
    return _site_view(site)


Period = Literal["day", "week", "month"]


def _range(days: int, until: date | None) -> tuple[date, date]:
    end = until or utcnow().date()
    if not 1 <= days <= report.MAX_DAYS:
        raise InvalidInput.on("days", "between 1 and %(n)s", n=report.MAX_DAYS)
    return end - timedelta(days=days - 1), end


@router.get("/api/v1/stats/sites/{stats_site}/report")
def site_report(stats_site: str, *, actor: Annotated[Actor, Depends(require(Perm.STATS_READ))],
                db: TenantDB, interval: Period = "day", days: Annotated[int, Query()] = 30,
                until: Day | None = None) -> dict[str, object]:
    """Aggregated page views of a site (visits, pages, referrers) for a period; never a single
    visitor."""
    site = service.get_site(db, stats_site)
    start, end = _range(days, until)
    return report.build(db, site.id, start, end, interval).as_dict()


@router.get("/api/v1/stats/sites/{stats_site}/export.csv", response_class=Response,
            responses=openapi.answers("text/csv"))
def site_export(stats_site: str, *, actor: Annotated[Actor, Depends(require(Perm.STATS_READ))],
                db: TenantDB, interval: Period = "day", days: Annotated[int, Query()] = 30,
                until: Day | None = None) -> Response:
    """The site's aggregated report as CSV."""
    site = service.get_site(db, stats_site)
    start, end = _range(days, until)
    text = report.to_csv(report.build(db, site.id, start, end, interval, top_n=100))
    name = f"stats-{site.domain}-{start}-{end}.csv"
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/api/v1/stats/rejects")
def rejects(actor: Annotated[Actor, Depends(require(Perm.METRICS_READ))],
            request: Request) -> dict[str, object]:
    """Refused public input (beacons and banner posts) per day and reason, all organisations."""
    database = request.app.state.db
    with database.transaction(Scope.system("stats rejects")) as session:
        rows = session.scalars(select(PublicReject).order_by(PublicReject.day.desc())).all()
        return {"rejects": [{"day": r.day, "endpoint": r.endpoint, "reason": r.reason,
                             "count": r.count} for r in rows]}


# -- console -----------------------------------------------------------------------------------


@pages.get("/console/stats")
def console_index(request: Request, actor: Annotated[Actor, Depends(require(Perm.STATS_READ))],
                  db: TenantDB) -> Response:
    return render(request, "stats/index.html", {
        "sites": service.list_sites(db), "can_manage": actor.can(Perm.STATS_MANAGE),
        "base_url": request.app.state.settings.base_url,
    })


@pages.post("/console/stats/sites")
def console_create_site(request: Request, name: Annotated[str, Form(max_length=200)],
                        domain: Annotated[str, Form(max_length=253)],
                        actor: Annotated[Actor, Depends(require(Perm.STATS_MANAGE))],
                        db: TenantDB) -> Response:
    site = service.create_site(db, org_id=actor.org_id, name=name, domain=domain,
                               actor_user_id=actor.user_id)
    return RedirectResponse(f"/console/stats/{site.id}", status_code=303)


@pages.get("/console/stats/{stats_site}")
def console_report(request: Request, stats_site: str, *,
                   actor: Annotated[Actor, Depends(require(Perm.STATS_READ))], db: TenantDB,
                   interval: Period = "day", days: Annotated[int, Query()] = 30) -> Response:
    site = service.get_site(db, stats_site)
    start, end = _range(days, None)
    rep = report.build(db, site.id, start, end, interval)
    locale = pick_locale(request)
    chart = series_svg(rep.series, title=gettext(locale, "Page views and visitors"),
                       pageviews_label=gettext(locale, "Page views"),
                       visitors_label=gettext(locale, "Visitors"))
    bounce = metric_svg(rep.series, [round(b.bounce_rate * 100, 1) for b in rep.series],
                        title=gettext(locale, "Bounce rate"), unit="%", chart_id="bounce")
    duration = metric_svg(rep.series, [b.avg_duration_s for b in rep.series],
                          title=gettext(locale, "Average visit"), unit="s", chart_id="duration")
    return render(request, "stats/report.html", {
        "site": site, "report": rep, "chart": chart, "bounce_chart": bounce,
        "duration_chart": duration, "interval": interval, "days": days,
        "base_url": request.app.state.settings.base_url,
    })
