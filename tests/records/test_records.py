"""Records of processing: assembled from references, checked for every Art. 30 field, exported."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import Personas
from tests.records.helpers import fill_registry, fill_vendor
from vern.core.db import Database, Scope
from vern.core.errors import InvalidInput
from vern.records import documents, service


def _fields(missing: list[service.Missing]) -> list[str]:
    return [m.field for m in missing]


def test_an_empty_vendor_is_told_every_missing_mandatory_field(db: Database, personas: Personas) -> None:
    fields = _fields(documents.check(db))
    assert "30(1)(a) contact details of the data protection officer" in fields
    assert "30(1)(b) at least one processing activity" in fields
    assert "30(1)(g) technical and organisational measures" in fields
    assert "30(2)(b) categories of processing (publish the product data map)" in fields
    assert "30(2)(d) technical and organisational measures" in fields


def test_the_record_is_complete_when_every_reference_is_there(db: Database, personas: Personas) -> None:
    fill_vendor(db, personas)
    assert documents.check(db) == []


def test_an_activity_takes_its_facts_from_purposes_maps_and_registry(db: Database,
                                                                     personas: Personas) -> None:
    fill_vendor(db, personas)
    controller, processor = documents.full_record(db, personas.vendor)
    activity = controller["activities"][0]
    assert activity["purposes"][0]["legal_basis"] == "f"
    assert "user.contact.email" in activity["data_categories"]  # Vern's own newsletter table
    assert any(r.startswith("newsletter: 2 years") for r in activity["retention"])
    assert activity["transfers"] == [{"recipient": "Postbud Inc.", "countries": ["US"],
                                      "safeguard": "scc"}]
    assert controller["officers"]["dpo"]["email"] == "personvern@solstrand.example.com"
    assert controller["officers"]["complaint"]["name"] == "Datatilsynet"
    names = {c["name"] for c in processor["controllers"]}
    assert names == {"Fjellheim barnehage", "Havbris skole"}
    fjellheim = next(c for c in processor["controllers"] if c["name"] == "Fjellheim barnehage")
    assert fjellheim["contacts"] == {"privacy": ["alice.aasen@fjellheim.example.com"]}
    assert {"Fjorddrift AS", "Postbud Inc."} == set(fjellheim["subprocessors"])
    assert any(c["table"] == "users" for c in processor["categories"])


def test_a_missing_transfer_safeguard_and_a_retired_purpose_are_named(db: Database,
                                                                      personas: Personas) -> None:
    fill_vendor(db, personas)
    from vern.consent import service as consent

    with db.transaction(Scope.tenant(personas.vendor)) as session:
        consent.retire_purpose(session, key="newsletter", actor_user_id=None)
    controller, _ = documents.full_record(db, personas.vendor)
    # A retired purpose still names its legal basis in the record (it was in use).
    assert controller["activities"][0]["purposes"][0]["key"] == "newsletter"
    rec = {**controller, "activities": [{**controller["activities"][0], "purposes": [],
                                          "transfers": [{"recipient": "X", "countries": ["US"],
                                                         "safeguard": ""}]}]}
    fields = _fields(service.check_controller(rec))
    assert "30(1)(b) purposes of the processing" in fields
    assert "30(1)(e) safeguard for the transfer to X" in fields


@pytest.mark.parametrize(("field", "change"), [
    ("purpose_keys.0", {"purpose_keys": ("nope",)}),
    ("systems.0", {"systems": ("crm-that-is-not-mapped",)}),
    ("own_tables.0", {"own_tables": ("no_such_table",)}),
    ("subjects.0", {"subjects": ("aliens",)}),
    ("subprocessors.0", {"subprocessors": ("not-an-id",)}),
])
def test_an_entry_naming_something_unknown_is_refused_naming_the_field(
        db: Database, personas: Personas, field: str, change: dict[str, tuple[str, ...]]) -> None:
    fill_vendor(db, personas)
    data = {"key": "website", "name_nb": "Nettside", "name_en": "Website", **change}
    with db.transaction(Scope.tenant(personas.vendor)) as session, pytest.raises(InvalidInput) as caught:
        service.create_entry(session, org_id=personas.vendor, actor_user_id=None,
                             data=service.EntryInput(**data))  # type: ignore[arg-type]
    assert caught.value.errors[0].field == field


def test_the_record_exports_as_json_csv_html_and_pdf(db: Database, personas: Personas) -> None:
    fill_vendor(db, personas)
    data = json.loads(documents.export(db, controller="vendor", fmt="json", locale="nb"))
    assert [r["article"] for r in data["records"]] == ["30(1)", "30(2)"]
    rows = list(csv.reader(io.StringIO(documents.export(db, controller="vendor", fmt="csv",
                                                         locale="en").decode())))
    assert ["controller", "Solstrand Læring AS", "activity", "newsletter", "purposes",
            "newsletter (f)"] in rows
    page = documents.export(db, controller="vendor", fmt="html", locale="nb").decode()
    assert "Protokoll over behandlingsaktiviteter" in page and "Datatilsynet" in page
    assert documents.export(db, controller="vendor", fmt="pdf", locale="en").startswith(b"%PDF")
    one = json.loads(documents.export(db, controller=personas.tenant_b, fmt="json", locale="nb"))
    assert [c["name"] for c in one["records"][0]["controllers"]] == ["Havbris skole"]
    every = json.loads(documents.export(db, controller="customers", fmt="json", locale="nb"))
    assert every["article"] == "30(2)" and len(every["subprocessors"]) == 2
    assert sorted(c["name"] for c in every["controllers"]) == ["Fjellheim barnehage", "Havbris skole"]
    with pytest.raises(InvalidInput):
        documents.export(db, controller="customers", fmt="pdf", locale="nb")


def test_registry_only_vendor_lacks_its_activities(db: Database, personas: Personas) -> None:
    fill_registry(db)
    fields = _fields(documents.check(db))
    assert "30(1)(a) contact details of the data protection officer" not in fields
    assert "30(1)(b) at least one processing activity" in fields


def test_the_customers_contract_dates_are_in_its_record_in_every_format(
        db: Database, personas: Personas) -> None:
    import shutil
    import subprocess
    from datetime import date

    from tests import services
    from vern.vendor import service as vendor

    fill_vendor(db, personas)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        vendor.set_customer_profile(session, personas.tenant_a, org_number=None,
                                    contract_start=date(2025, 8, 1), contract_end=date(2028, 7, 31))
    one = json.loads(documents.export(db, controller=personas.tenant_a, fmt="json", locale="nb"))
    [controller] = one["records"][0]["controllers"]
    assert (controller["contract_start"], controller["contract_end"]) == ("2025-08-01", "2028-07-31")
    every = json.loads(documents.export(db, controller="customers", fmt="json", locale="nb"))
    other = next(c for c in every["controllers"] if c["org_id"] == personas.tenant_b)
    assert (other["contract_start"], other["contract_end"]) == ("", "")
    rows = list(csv.reader(io.StringIO(documents.export(db, controller=personas.tenant_a, fmt="csv",
                                                         locale="nb").decode())))
    assert ["processor", "Solstrand Læring AS", "controllers", personas.tenant_a, "contract_end",
            "2028-07-31"] in rows
    page = documents.export(db, controller=personas.tenant_a, fmt="html", locale="nb").decode()
    assert "2025-08-01–2028-07-31" in page
    pdf = documents.export(db, controller=personas.tenant_a, fmt="pdf", locale="en")
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        services.unavailable("poppler-utils (pdftotext) is not installed")
    text = subprocess.run([pdftotext, "-", "-"], input=pdf, capture_output=True,  # noqa: S603
                          check=True).stdout.decode()
    assert "2025-08-01–2028-07-31" in text
