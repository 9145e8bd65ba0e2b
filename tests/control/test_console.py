"""The internal control pages: four-eyes in forms, evidence through the upload form, texts in
bokmål."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.conftest import Personas
from tests.control.helpers import make_task
from vern.core.db import Database

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


def _csrf(client: Any) -> str:
    return str(client.headers["X-CSRF-Token"])


def test_pages_render_in_bokmal(db: Database, personas: Personas, login: Any) -> None:
    make_task(db, personas, title="Risk assessment", due_on=date.today() - timedelta(days=2))
    dave = login(personas.dave)
    page = dave.get("/console/control?lang=nb")
    assert page.status_code == 200
    assert "Internkontroll" in page.text and "Risikovurdering" in page.text
    assert "Forfalt" in page.text or "frist" in page.text
    for path, text in [("/console/control/risks", "Risikoregister"),
                       ("/console/control/changes", "Endringsforespørsler"),
                       ("/console/control/personnel", "Taushetserklæring"),
                       ("/console/control/media", "Serienummer"),
                       ("/console/control/frameworks/nsm-grunnprinsipper",
                        "Kartlegg enheter og programvare")]:
        res = dave.get(path)
        assert res.status_code == 200 and text in res.text, path


def test_the_author_cannot_approve_a_change_in_the_console(db: Database, personas: Personas,
                                                          login: Any) -> None:
    dave, erik = login(personas.dave), login(personas.erik)
    res = dave.post("/console/control/changes", data={
        "csrf_token": _csrf(dave), "title": "Oppgrader PostgreSQL til 17.2",
        "description": "Mindre versjon", "risk": "Kort nedetid", "rollback": "Gjenopprett"},
        follow_redirects=False)
    assert res.status_code == 303
    path = res.headers["location"]
    assert "another person must approve" in dave.get(path + "?lang=en").text
    own = dave.post(path + "/approve?lang=en", data={"csrf_token": _csrf(dave)})
    assert own.status_code == 403
    assert "cannot approve it" in own.text
    ok = erik.post(path + "/approve", data={"csrf_token": _csrf(erik), "note": "Ok"},
                   follow_redirects=False)
    assert ok.status_code == 303
    assert "godkjent" in erik.get(path + "?lang=nb").text


def test_evidence_upload_and_two_person_deletion_in_the_console(
        db: Database, personas: Personas, login: Any) -> None:
    task_id = make_task(db, personas, due_on=date.today())
    dave, erik = login(personas.dave), login(personas.erik)
    url = f"/console/control/tasks/{task_id}/evidence"
    bad = dave.post(url, data={"csrf_token": _csrf(dave)},
                    files={"file": ("bilde.png", b"GIF89a", "image/png")})
    assert bad.status_code == 422
    nul_title = dave.post(url, data={"csrf_token": _csrf(dave), "title": "a\x00b"},
                          files={"file": ("bilde.png", PNG, "image/png")})
    assert nul_title.status_code == 422 and "title" in nul_title.text
    ok = dave.post(url, data={"csrf_token": _csrf(dave), "title": "Skjermbilde"},
                   files={"file": ("bilde.png", PNG, "image/png")}, follow_redirects=False)
    assert ok.status_code == 303
    evidence = dave.get(f"/api/v1/control/tasks/{task_id}").json()["evidence"]
    [ev] = evidence
    assert ev["size"] == len(PNG)
    assert dave.get(f"/console/control/download/evidence/{ev['id']}").content == PNG
    dave.post(f"/console/control/evidence/{ev['id']}/delete-request",
              data={"csrf_token": _csrf(dave), "reason": "Feil bilde"})
    page = dave.get(f"/console/control/tasks/{task_id}?lang=en").text
    assert "Approve deletion" not in page  # not offered to the person who asked
    assert "Approve deletion" in erik.get(f"/console/control/tasks/{task_id}?lang=en").text
    own = dave.post(f"/console/control/evidence/{ev['id']}/delete-approve",
                    data={"csrf_token": _csrf(dave)})
    assert own.status_code == 403
    done = erik.post(f"/console/control/evidence/{ev['id']}/delete-approve",
                     data={"csrf_token": _csrf(erik)}, follow_redirects=False)
    assert done.status_code == 303
    assert dave.get(f"/console/control/download/evidence/{ev['id']}").status_code == 404


def test_a_dpia_is_started_written_and_versioned_in_the_console(
        db: Database, personas: Personas, login: Any) -> None:
    erik = login(personas.erik)
    started = erik.post("/console/control/dpias", data={
        "csrf_token": _csrf(erik), "processing": "Læringsanalyse for elever"},
        follow_redirects=False)
    assert started.status_code == 303, started.text
    edit = started.headers["location"]
    assert edit.startswith("/console/control/dpias/") and edit.endswith("/edit")
    dpia_path = edit.removesuffix("/edit")
    form = erik.get(edit + "?lang=nb")
    assert form.status_code == 200
    assert "Grunnleggende prinsipper" in form.text
    assert 'name="risks.illegitimate_access.severity"' in form.text

    saved = erik.post(dpia_path, data={
        "csrf_token": _csrf(erik), "context.overview": "Analyse av elevenes progresjon",
        "risks.illegitimate_access.severity": "3", "risks.illegitimate_access.likelihood": "2",
        "risks.illegitimate_access.measures": "Tilgangsstyring per skole",
        "validation.decision": "accepted_with_actions"}, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == dpia_path
    api = erik.get("/api/v1" + dpia_path.removeprefix("/console")).json()
    assert api["version"] == 2 and api["versions"] == [2, 1]
    assert api["content"]["context"]["overview"] == "Analyse av elevenes progresjon"
    assert api["content"]["risks"]["illegitimate_access"] == {
        "impacts": "", "threats": "", "sources": "", "measures": "Tilgangsstyring per skole",
        "severity": 3, "likelihood": 2}
    assert api["content"]["validation"]["decision"] == "accepted_with_actions"
    again = erik.get(edit)
    assert "Analyse av elevenes progresjon" in again.text and 'value="3"' in again.text

    bad = erik.post(dpia_path + "?lang=en", data={
        "csrf_token": _csrf(erik), "risks.unwanted_change.severity": "sju"})
    assert bad.status_code == 422 and "content.risks.unwanted_change.severity" in bad.text
    too_high = erik.post(dpia_path, data={
        "csrf_token": _csrf(erik), "risks.unwanted_change.likelihood": "7"})
    assert too_high.status_code == 422
    assert erik.get("/api/v1" + dpia_path.removeprefix("/console")).json()["version"] == 2

    # A customer's administrator has no internal control to write in.
    alice = login(personas.alice)
    assert alice.get(edit).status_code in (403, 404)
    assert alice.post(dpia_path, data={"csrf_token": _csrf(alice)}).status_code in (403, 404)
