"""The end of a request's run: what the engine's claimed jobs come to.

``finish_job`` closes a run in the engine's transaction - done only when every database part is
done (an erasure then also erases the person in Vern, a read request's answer is stored and the
person is told), partly done naming the parts that failed, or "nobody found" for staff to
confirm. ``build_package`` makes a read request's answer before that transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, bindparam, update
from sqlalchemy.orm import Session

from vern.core.config import rights_settings
from vern.core.db import UTCDateTime, execute_fast, utcnow
from vern.core.i18n import N_, format_duration, gettext
from vern.datamap.model import DataMap
from vern.retention.erasure import erase_in_vern
from vern.rights.bookkeeping import book, book_mail
from vern.rights.connectors import REFUSED
from vern.rights.downloads import store_answer
from vern.rights.external import ANSWERS
from vern.rights.flags import FLAG_KINDS, add_flags
from vern.rights.models import Kind, RightsRequest, Status, Task
from vern.rights.packages import build_zip
from vern.rights.run_inputs import ENGINE_ROWS
from vern.rights.run_state import WRITE_KINDS
from vern.rights.staff_notices import GIVEN_UP_MAIL, request_link

DONE_MAIL = (
    N_("Your request has been handled"),
    N_("Your request (%(kind)s) to %(org)s has been handled.%(extra)s"),
)
LINK_TEXT = N_("\n\nDownload your data here (the link works for %(duration)s):\n%(link)s")
NOBODY_MAIL = (
    N_("Your request has been handled"),
    N_("Your request (%(kind)s) to %(org)s has been handled. We searched our systems and found "
       "no data about you."),
)

_T_REQUESTS: Any = RightsRequest.__table__
_T_TASKS: Any = Task.__table__
_FINISH = (
    update(_T_REQUESTS)
    .where(_T_REQUESTS.c.id == bindparam("w_id"))
    .values(
        status=bindparam("status"),
        summary=bindparam("summary", type_=JSON()),
        error=bindparam("error"),
        completed_at=bindparam("completed_at", type_=UTCDateTime()),
        heartbeat_at=bindparam("now", type_=UTCDateTime()),
        progress_done=_T_REQUESTS.c.progress_done + bindparam("moved"),
    )
).execution_options(cross_tenant=ENGINE_ROWS)


def finish_job(session: Session, job: Any) -> str:
    """Close a claimed run (``vern.rights.engine.Job``) in the caller's transaction: done only
    when every database part is done - then the answer of a read request is stored, the person
    is told and the rows found are forgotten; otherwise partial, naming the parts that failed."""
    if job.kind in FLAG_KINDS:
        add_flags(session, job.org_id, job.request_id, job.kind, job.subject.identities, job.purpose)
    parts = job.outcome
    summary = _summary(job, parts)
    now = utcnow()
    if not all(status == "done" for status, _f, _d, _e in parts.values()):
        return _finish_partial(session, job, summary, now)
    nobody = job.kind not in FLAG_KINDS and bool(parts) and summary["rows_found"] == 0
    if nobody:
        if not job.answer_nobody_found:
            return _nobody_found(session, job, summary, now)
        summary["searched"] = job.searched  # the customer answers "nobody found" without review
    return _finish_done(session, job, summary, now, nobody=nobody)


def _summary(job: Any, parts: dict[str, tuple[str, int, int, str | None]]) -> dict[str, Any]:
    """What the run did per database part (stored on the request), and what it kept."""
    summary: dict[str, Any] = {
        "databases": {
            name: {"status": status, "rows_found": found, "rows_done": rows_done, "error": error}
            for name, (status, found, rows_done, error) in sorted(parts.items())
        },
        "rows_found": sum(found for _s, found, _d, _e in parts.values()),
    }
    if parts and summary["rows_found"] == 0:
        summary["note"] = "the identities given match no one in the connected databases"
    kept = getattr(job, "kept", None)
    if kept:
        summary["kept"] = kept
    return summary


def _finish_partial(session: Session, job: Any, summary: dict[str, Any], now: datetime) -> str:
    """Some part failed: the request is partly done, retried automatically until its attempts
    are used up - then the staff who can act are told."""
    parts = job.outcome
    failed = sorted(name for name, (status, *_rest) in parts.items() if status == "failed")
    error = _failure_text(parts, failed)
    _close(session, job, Status.PARTIAL, summary, error=error, completed_at=None, now=now)
    attempt = job.attempts + 1  # this run's claim counted it
    last = attempt >= rights_settings().retry_max_attempts
    _audit_status(session, job, Status.PARTIAL, "rights.request.partial",
                  {"failed": failed, "attempt": attempt, "retried": not last})
    if last:
        _tell_staff_given_up(session, job, attempt, error)
    job.result = Status.PARTIAL.value
    return job.result


def _failure_text(parts: dict[str, tuple[str, int, int, str | None]], failed: list[str]) -> str:
    """The request's error: the systems that refused it (with their reason), then those that
    could not be reached."""
    refused = [n for n in failed if (parts[n][3] or "").startswith(REFUSED)]
    missed = [n for n in failed if n not in refused]
    said = [f"refused by {n}: {(parts[n][3] or '')[len(REFUSED):]}" for n in refused]
    if missed:
        said.append("not reached: " + ", ".join(missed))
    return "; ".join(said) if said else "incomplete"


def _finish_done(session: Session, job: Any, summary: dict[str, Any], now: datetime, *,
                 nobody: bool) -> str:
    """Every part is done: an erasure also erases the person in Vern, a read request's answer is
    stored, the plans' rows are forgotten and the person is told (``nobody``: that no data about
    them was found)."""
    parts = job.outcome
    if job.kind in WRITE_KINDS and summary["rows_found"] and not sum(d for _s, _f, d, _e in parts.values()):
        summary["note"] = "nothing was changed: every row found already holds what the request asks"
    if job.kind == Kind.ERASURE.value:
        summary["vern"] = _erase_in_vern(session, job.org_id, job.subject.identities, job.request_id)
    link = None
    if job.package is not None:
        link = store_answer(session, job, job.package)
    if job.stored:  # plans run from storage still hold the rows found; they are not kept
        session.connection().execute(
            update(_T_TASKS).where(_T_TASKS.c.request_id == job.request_id).values(plan=None)
        )
    _close(session, job, Status.DONE, summary, error=None, completed_at=now, now=now)
    _audit_status(session, job, Status.DONE, "rights.request.complete", {"rows_found": summary["rows_found"]})
    _tell(session, job, link, nobody=nobody)
    job.result = Status.DONE.value
    return job.result


def _close(session: Session, job: Any, status: Status, summary: dict[str, Any], *,
           error: str | None, completed_at: datetime | None, now: datetime) -> None:
    """Write the run's end on the request's row (one kept statement on the engine's connection)."""
    execute_fast(
        session.connection(),
        _FINISH,
        {
            "w_id": job.request_id,
            "status": status.value,
            "summary": summary,
            "error": error,
            "completed_at": completed_at,
            "now": now,
            "moved": job.moved,
        },
    )


def _erase_in_vern(session: Session, org_id: str, identities: dict[str, str],
                   request_id: str) -> dict[str, int]:
    return erase_in_vern(session, org_id=org_id, identities=identities, request_id=request_id)


def _nobody_found(session: Session, job: Any, summary: dict[str, Any], now: Any) -> str:
    """No row matched anywhere: not a silent "done". The request waits for staff, showing what
    was searched; the person is answered when staff confirm (``confirm_nobody_found``)."""
    summary["searched"] = getattr(job, "searched", {})
    _close(session, job, Status.NOBODY_FOUND, summary, error=None, completed_at=None, now=now)
    _audit_status(session, job, Status.NOBODY_FOUND, "rights.request.nobody_found", {"rows_found": 0})
    job.result = Status.NOBODY_FOUND.value
    return job.result


def _audit_status(session: Session, job: Any, status: Status, action: str, extra: dict[str, Any]) -> None:
    book(
        session,
        action,
        org_id=job.org_id,
        resource=f"rights_request:{job.request_id}",
        details={"old": {"status": Status.RUNNING.value}, "new": {"status": status.value, **extra}},
    )


def _tell(session: Session, job: Any, link: str | None, *, nobody: bool = False) -> None:
    email = job.subject.identities.get("email")
    if not email or job.channel == "api":
        return
    lang = job.locale
    days = format_duration(f"{rights_settings().download_days} days", lang)
    extra = gettext(lang, LINK_TEXT, duration=days, link=link) if link and not nobody else ""
    subject, body = NOBODY_MAIL if nobody else DONE_MAIL
    book_mail(
        session,
        key_id=job.key_id,
        to=email,
        kind="rights.done",
        org_id=job.org_id,
        subject=gettext(lang, subject),
        body=gettext(lang, body, kind=gettext(lang, job.kind), org=job.org_name, extra=extra),
    )


def build_package(data_map: DataMap, job: Any, rows: dict[str, dict[str, list[dict[str, Any]]]]) -> bytes:
    """The zip answering an access or portability request (built before any transaction)."""
    return build_zip(
        data_map,
        rows,
        external=ANSWERS.get().get(job.request_id),
        request_id=job.request_id,
        kind=job.kind,
        org_name=job.org_name,
        received=job.received_at,
        locale=job.locale,
    )


def _tell_staff_given_up(session: Session, job: Any, attempts: int, error: str) -> None:
    """The automatic retries are used up: tell the people who can act (in the finish's
    transaction, through the outbox)."""
    told = 0
    for key_id, email, locale in job.staff:
        lang = locale
        subject, body = GIVEN_UP_MAIL
        book_mail(
            session,
            key_id=key_id,
            to=email,
            kind="rights.retries_exhausted",
            org_id=job.org_id,
            subject=gettext(lang, subject),
            body=gettext(lang, body, kind=gettext(lang, job.kind), attempts=attempts, error=error,
                         link=request_link(job.request_id)),
        )
        told += 1
    book(
        session,
        "rights.request.retries_exhausted",
        org_id=job.org_id,
        resource=f"rights_request:{job.request_id}",
        outcome="failure",
        details={"new": {"attempts": attempts, "told": told}},
    )
