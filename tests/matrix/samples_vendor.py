"""Sample values for the vendor registry's path parameters."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import Personas
from tests.matrix.samples import Sample
from vern.core.config import Settings
from vern.core.db import Database, Scope, new_id, utcnow
from vern.vendor import service as vendor


def subprocessor_key(db: Database, personas: Personas, settings: Settings) -> Sample:
    """The vendor's own register: known to its staff, belongs to no tenant."""
    key = "matrix-" + new_id()[-12:]
    with db.transaction(Scope.system("matrix sample sub-processor")) as session:
        vendor.save_subprocessor(session, vendor.SubprocessorInput(
            key=key, name="Fjordhall Drift AS", service="Drift", data_categories=("user.name",),
            storage_locations=("NO",), all_customers=False, customer_ids=(personas.tenant_b,)),
            actor_user_id=None)
    return Sample(key, None)


def system_key(db: Database, personas: Personas, settings: Settings) -> Sample:
    key = "matrix-" + new_id()[-12:]
    with db.transaction(Scope.system("matrix sample system")) as session:
        vendor.save_system(session, vendor.SystemInput(key=key, name="Kundedatabase",
                                                       storage_locations=("NO",)),
                           actor_user_id=None)
    return Sample(key, None)


def measure_key(db: Database, personas: Personas, settings: Settings) -> Sample:
    key = "matrix-" + new_id()[-12:]
    with db.transaction(Scope.system("matrix sample measure")) as session:
        vendor.save_measure(session, vendor.MeasureInput(key=key, category="technical",
                                                         title_nb="Kryptering",
                                                         title_en="Encryption"),
                            actor_user_id=None)
    return Sample(key, None)


def officer_role(db: Database, personas: Personas, settings: Settings) -> Sample:
    return Sample("dpo", None)


def contact_id(db: Database, personas: Personas, settings: Settings) -> Sample:
    """A contact tenant A named: reached by vendor staff through the customer's id."""
    with db.transaction(Scope.system("matrix sample contact")) as session:
        found = vendor.add_contact(session, personas.tenant_a, kind="breach", name="Berit Brudd",
                                   email="brudd@fjellheim.example.com", actor_user_id=None)
    return Sample(found, None)


def maintenance_id(db: Database, personas: Personas, settings: Settings) -> Sample:
    start = utcnow() + timedelta(days=3)
    with db.transaction(Scope.system("matrix sample maintenance")) as session:
        view, _ = vendor.schedule_maintenance(session, vendor.MaintenanceInput(
            title_nb="Vedlikehold", title_en="Maintenance", starts_at=start,
            ends_at=start + timedelta(hours=1), all_customers=False,
            customer_ids=(personas.tenant_b,)), actor_user_id=None)
    return Sample(view.id, None)


def notice_id(db: Database, personas: Personas, settings: Settings) -> Sample:
    """Tenant A's Art. 28(2) notice: another customer gets 404."""
    key = "matrix-" + new_id()[-12:]
    with db.transaction(Scope.system("matrix sample notice")) as session:
        vendor.save_subprocessor(session, vendor.SubprocessorInput(
            key=key, name="Nordlys Support AS", service="Kundestøtte",
            data_categories=("user.name",), storage_locations=("SE",), all_customers=False,
            customer_ids=(personas.tenant_a,)), actor_user_id=None)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        return Sample(vendor.customer_notices(session)[0].id, personas.tenant_a)


SAMPLES = {
    "subprocessor_key": subprocessor_key,
    "system_key": system_key,
    "measure_key": measure_key,
    "officer_role": officer_role,
    "contact_id": contact_id,
    "maintenance_id": maintenance_id,
    "notice_id": notice_id,
}
