"""The vendor's registry: validation refusals, Art. 28(2) notices to the affected customers only
(over a real SMTP server on loopback), the objection window, and the maintenance 24-hour rule."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import Personas
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import Conflict, InvalidInput, NotFound
from vern.notify import service as notify
from vern.notify.sink import MailSink
from vern.notify.transport import SmtpMailer, SmtpTarget
from vern.vendor import service as vendor
from vern.vendor.models import SubprocessorNotice

SENDER = "vern@solstrand.example.com"


def _sub(key: str = "driftsenter", **changes: object) -> vendor.SubprocessorInput:
    values: dict[str, object] = {
        "key": key, "name": "Fjordhall Drift AS", "service": "Drift av datasenter",
        "data_categories": ("user.name", "user.contact.email"), "storage_locations": ("NO",),
        "processing_locations": ("NO", "SE"), "agreement_date": date(2026, 1, 15)}
    values.update(changes)
    return vendor.SubprocessorInput(**values)  # type: ignore[arg-type]


def _field(exc: pytest.ExceptionInfo[InvalidInput]) -> str:
    return exc.value.errors[0].field


def _deliver(db: Database) -> list[object]:
    with MailSink() as sink:
        notify.deliver_pending(db, via=SmtpMailer(SmtpTarget.parse(sink.url), SENDER))
        return list(sink.messages())


def test_a_subprocessor_outside_the_eea_without_a_transfer_mechanism_is_refused_with_the_reason(
        db: Database, personas: Personas) -> None:
    with db.transaction(Scope.system("test")) as session, pytest.raises(InvalidInput) as exc:
        vendor.save_subprocessor(session, _sub(processing_locations=("NO", "US")),
                                 actor_user_id=None)
    assert _field(exc) == "transfer_mechanism"
    assert "US" in exc.value.errors[0].message and "outside the EU/EEA" in exc.value.errors[0].message
    with db.transaction(Scope.system("test")) as session:
        view, _ = vendor.save_subprocessor(
            session, _sub(processing_locations=("NO", "US"), transfer_mechanism="scc"),
            actor_user_id=None)
    assert view.outside_eea and view.transfer_mechanism == "scc"
    assert [(loc.country, loc.in_eea) for loc in view.processing_locations] == [
        ("NO", True), ("US", False)]


@pytest.mark.parametrize(("changes", "field"), [
    ({"storage_locations": ("XX",)}, "storage_locations.0"),
    ({"storage_locations": ("Norge",)}, "storage_locations.0"),
    ({"storage_locations": ()}, "storage_locations"),
    ({"transfer_mechanism": "handshake"}, "transfer_mechanism"),
    ({"data_categories": ()}, "data_categories"),
    ({"key": "Has Spaces"}, "key"),
    ({"all_customers": False, "customer_ids": ("nope",)}, "customer_ids.0"),
    ({"status": "retired"}, "status"),
])
def test_bad_subprocessor_input_names_the_field(db: Database, personas: Personas,
                                                changes: dict[str, object], field: str) -> None:
    with db.transaction(Scope.system("test")) as session, pytest.raises(InvalidInput) as exc:
        vendor.save_subprocessor(session, _sub(**changes), actor_user_id=None)
    assert _field(exc) == field


def test_inside_the_eea_no_mechanism_is_kept(db: Database, personas: Personas) -> None:
    with db.transaction(Scope.system("test")) as session:
        view, _ = vendor.save_subprocessor(session, _sub(transfer_mechanism="scc"),
                                           actor_user_id=None)
    assert view.transfer_mechanism is None and not view.outside_eea


def test_a_new_subprocessor_is_noticed_to_its_customers_only_over_smtp(
        db: Database, personas: Personas) -> None:
    """Serving tenant A only: A's admin gets the notice (bokmål), B gets nothing and sees none."""
    with db.transaction(Scope.system("test")) as session:
        _, told = vendor.save_subprocessor(
            session, _sub(all_customers=False, customer_ids=(personas.tenant_a,)),
            actor_user_id=None)
    assert told == 1
    mail = _deliver(db)
    assert [m.to for m in mail] == [[personas.alice.email]]  # type: ignore[attr-defined]
    assert "Fjordhall Drift AS" in mail[0].subject  # type: ignore[attr-defined]
    assert "/console/vendor/notices/" in mail[0].body  # type: ignore[attr-defined]
    with db.transaction(Scope.tenant(personas.tenant_b)) as session:
        assert vendor.customer_notices(session) == []
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        [notice] = vendor.customer_notices(session)
    assert notice.open and notice.summary["name"] == "Fjordhall Drift AS"
    assert notice.closes_at - notice.created_at == timedelta(days=30)


def test_registered_privacy_contacts_get_the_notice_instead_of_the_admins(
        db: Database, personas: Personas) -> None:
    with db.transaction(Scope.system("test")) as session:
        vendor.add_contact(session, personas.tenant_b, kind="privacy", name="Per Personvern",
                           email="personvern@havbris.example.com", locale="en",
                           actor_user_id=None)
        _, told = vendor.save_subprocessor(session, _sub(), actor_user_id=None)
    assert told == 2
    mail = {m.to[0]: m for m in _deliver(db)}  # type: ignore[attr-defined]
    assert set(mail) == {personas.alice.email, "personvern@havbris.example.com"}
    assert mail["personvern@havbris.example.com"].subject.startswith("New or changed sub-processor")
    assert mail[personas.alice.email].subject.startswith("Ny eller endret underdatabehandler")


def test_a_change_customers_must_hear_of_notifies_again_an_audit_does_not(
        db: Database, personas: Personas) -> None:
    with db.transaction(Scope.system("test")) as session:
        vendor.save_subprocessor(session, _sub(), actor_user_id=None)
        vendor.record_subprocessor_audit(session, "driftsenter", audited_on=date(2026, 6, 1),
                                         result="passed", actor_user_id=None)
        view, told = vendor.save_subprocessor(session, _sub(agreement_date=date(2026, 2, 1)),
                                              actor_user_id=None)
        assert told == 0 and view.version == 1 and view.last_audit_result == "passed"
        view, told = vendor.save_subprocessor(session, _sub(processing_locations=("NO", "DK")),
                                              actor_user_id=None, objection_days=14)
        assert told == 2 and view.version == 2
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        newest = vendor.customer_notices(session)[0]
    assert newest.change == "changed" and newest.summary["changed_fields"] == ["processing_locations"]
    assert newest.closes_at - newest.created_at == timedelta(days=14)


def test_a_customer_objects_within_the_window_and_only_it_sees_its_objection(
        db: Database, personas: Personas) -> None:
    with db.transaction(Scope.system("test")) as session:
        vendor.save_subprocessor(session, _sub(), actor_user_id=None, objection_days=10)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        [a_notice] = vendor.customer_notices(session)
        with pytest.raises(InvalidInput) as exc:
            vendor.object_to_notice(session, a_notice.id, reason="  ",
                                    actor_user_id=personas.alice.user_id)
        assert _field(exc) == "reason"
        vendor.object_to_notice(session, a_notice.id, reason="Vi godtar ikke lagring i Sverige.",
                                actor_user_id=personas.alice.user_id)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session, pytest.raises(Conflict):
        vendor.object_to_notice(session, a_notice.id, reason="igjen",
                                actor_user_id=personas.alice.user_id)
    with db.transaction(Scope.tenant(personas.tenant_b)) as session:
        [b_notice] = vendor.customer_notices(session)
        assert b_notice.objected_at is None and b_notice.objection_reason is None
        with pytest.raises(NotFound):  # B never reaches A's notice
            vendor.customer_notice(session, a_notice.id)
        with pytest.raises(NotFound):
            vendor.object_to_notice(session, a_notice.id, reason="x", actor_user_id=None)
        late = utcnow() + timedelta(days=10, seconds=1)
        with pytest.raises(Conflict):
            vendor.object_to_notice(session, b_notice.id, reason="for sent",
                                    actor_user_id=personas.carol.user_id, now=late)
    with db.transaction(Scope.system("test")) as session:
        objected = vendor.notices_for_vendor(session, objected_only=True)
    assert [(n.tenant_id, name, n.objection_reason) for n, name in objected] == [
        (personas.tenant_a, "Fjellheim barnehage", "Vi godtar ikke lagring i Sverige.")]


def test_another_customers_scope_reads_no_profile_or_contacts(db: Database,
                                                               personas: Personas) -> None:
    with db.transaction(Scope.system("test")) as session:
        vendor.add_contact(session, personas.tenant_a, kind="breach", name="Berit Brudd",
                           email="brudd@fjellheim.example.com", actor_user_id=None)
    with db.transaction(Scope.tenant(personas.tenant_b)) as session:
        assert vendor.notice_recipients(session, personas.tenant_a, "breach") == []
        with pytest.raises(NotFound):
            vendor.customer_profile(session, personas.tenant_a)
    for scope in (Scope.tenant(personas.tenant_a), Scope.tenant(personas.vendor),
                  Scope.system("test")):
        with db.transaction(scope) as session:
            [r] = vendor.notice_recipients(session, personas.tenant_a, "breach")
            assert (r.name, r.email, r.locale) == ("Berit Brudd", "brudd@fjellheim.example.com", "nb")
            fallback = vendor.notice_recipients(session, personas.tenant_a, "security")
            assert [x.email for x in fallback] == [personas.alice.email]


def test_customer_profile_checks_org_number_contract_dates_and_defaults_to_24_hours(
        db: Database, personas: Personas) -> None:
    with db.transaction(Scope.system("test")) as session:
        profile = vendor.customer_profile(session, personas.tenant_a)
        assert profile.breach_notice_hours == 24 and profile.contract_start is None
        with pytest.raises(InvalidInput) as exc:
            vendor.set_customer_profile(session, personas.tenant_a, org_number="923609017",
                                        contract_start=None, contract_end=None)
        assert _field(exc) == "org_number"
        with pytest.raises(InvalidInput) as exc:
            vendor.set_customer_profile(session, personas.tenant_a, org_number="923609016",
                                        contract_start=date(2026, 5, 1),
                                        contract_end=date(2026, 4, 30))
        assert _field(exc) == "contract_end"
        with pytest.raises(InvalidInput) as exc:
            vendor.set_customer_profile(session, personas.tenant_a, org_number=None,
                                        contract_start=None, contract_end=None,
                                        breach_notice_hours=0)
        assert _field(exc) == "breach_notice_hours"
        vendor.set_customer_profile(session, personas.tenant_a, org_number="923 609 016",
                                    contract_start=date(2026, 1, 1), contract_end=date(2026, 1, 1),
                                    breach_notice_hours=12)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        profile = vendor.customer_profile(session, personas.tenant_a)
    assert (profile.org_number, profile.contract_end, profile.breach_notice_hours) == (
        "923609016", date(2026, 1, 1), 12)


def _maintenance(hours_ahead: float, **changes: object) -> vendor.MaintenanceInput:
    start = utcnow() + timedelta(hours=hours_ahead)
    values: dict[str, object] = {"title_nb": "Oppgradering av databasen",
                                 "title_en": "Database upgrade", "starts_at": start,
                                 "ends_at": start + timedelta(hours=2)}
    values.update(changes)
    return vendor.MaintenanceInput(**values)  # type: ignore[arg-type]


def test_maintenance_needs_24_hours_notice_unless_an_emergency_with_its_reason(
        db: Database, personas: Personas) -> None:
    with db.transaction(Scope.system("test")) as session:
        with pytest.raises(InvalidInput) as exc:
            vendor.schedule_maintenance(session, _maintenance(23.9), actor_user_id=None)
        assert _field(exc) == "starts_at" and "24 hours" in exc.value.errors[0].message
        with pytest.raises(InvalidInput) as exc:
            vendor.schedule_maintenance(session, _maintenance(2, emergency=True),
                                        actor_user_id=None)
        assert _field(exc) == "emergency_reason"
        with pytest.raises(InvalidInput) as exc:
            vendor.schedule_maintenance(session, _maintenance(30, ends_at=utcnow()),
                                        actor_user_id=None)
        assert _field(exc) == "ends_at"
        _, sent = vendor.schedule_maintenance(session, _maintenance(24.1), actor_user_id=None)
        assert sent == 2
        view, _ = vendor.schedule_maintenance(
            session, _maintenance(1, emergency=True, emergency_reason="Kritisk sikkerhetsfeil",
                                  all_customers=False, customer_ids=(personas.tenant_b,)),
            actor_user_id=None)
        assert view.emergency and view.emergency_reason == "Kritisk sikkerhetsfeil"
    mail = _deliver(db)
    assert sorted(m.to[0] for m in mail) == sorted(  # type: ignore[attr-defined]
        [personas.alice.email, personas.carol.email, personas.carol.email])
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        assert [m.title_en for m in vendor.list_maintenance(session, personas.tenant_a)] == [
            "Database upgrade"]
        assert len(vendor.list_maintenance(session)) == 2


def test_seed_loads_the_seed_measures_once(db: Database, personas: Personas) -> None:
    with db.transaction(Scope.system("test")) as session:
        added = vendor.seed_measures(session, actor_user_id=None)
        assert added >= 15
        assert vendor.seed_measures(session, actor_user_id=None) == 0
        keys = {m.key for m in vendor.list_measures(session)}
    assert {"encryption-in-transit", "encryption-at-rest", "access-control", "backups",
            "logging", "penetration-test", "training", "confidentiality-agreements"} <= keys


def test_officers_and_complaint_information(db: Database, personas: Personas) -> None:
    with db.transaction(Scope.system("test")) as session:
        with pytest.raises(InvalidInput) as exc:
            vendor.set_officer(session, role="dpo", name="Pia", email="pia", actor_user_id=None)
        assert _field(exc) == "email"
        vendor.set_officer(session, role="dpo", name="Pia Personvern",
                           email="personvernombud@solstrand.example.com", phone="+47 400 00 000",
                           actor_user_id=None)
        found = vendor.officers(session)
    assert found.dpo is not None and found.dpo.name == "Pia Personvern" and found.security is None
    assert found.complaint["name"] == "Datatilsynet"


def test_systems_outside_the_eea_need_a_mechanism(db: Database, personas: Personas) -> None:
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        with pytest.raises(InvalidInput) as exc:
            vendor.save_system(session, vendor.SystemInput(
                key="crm", name="CRM", storage_locations=("IE",), processing_locations=("IN",)),
                actor_user_id=None)
        assert _field(exc) == "transfer_mechanism"
        vendor.save_system(session, vendor.SystemInput(
            key="crm", name="CRM", storage_locations=("IE",), processing_locations=("IN",),
            transfer_mechanism="scc"), actor_user_id=None)
        [system] = vendor.list_systems(session)
    assert system.outside_eea and system.transfer_mechanism == "scc"


def test_notice_rows_are_tenant_scoped(db: Database, personas: Personas) -> None:
    with db.transaction(Scope.system("test")) as session:
        vendor.save_subprocessor(session, _sub(), actor_user_id=None)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        orgs = set(session.scalars(select(SubprocessorNotice.org_id)))
    assert orgs == {personas.tenant_a}
