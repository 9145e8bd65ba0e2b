"""The seeds' internal control tasks as a catalogue a vendor loads with ``vern control seed``, the
trainings every staff member needs, and the frameworks controls are mapped to (YAML files in
``vern/control/frameworks/``: add a file, or requirements to a file, to extend them)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from vern.core.i18n import N_

FRAMEWORK_DIR = Path(__file__).resolve().parent / "frameworks"


@dataclass(frozen=True)
class CatalogueTask:
    key: str
    title: str
    description: str
    recurrence: str
    mappings: tuple[tuple[str, str], ...]


ISO = "iso27001-2022"
NSM = "nsm-grunnprinsipper"


def _maps(iso: str, nsm: str) -> tuple[tuple[str, str], ...]:
    return tuple((ISO, r) for r in iso.split()) + tuple((NSM, r) for r in nsm.split())


CATALOGUE: tuple[CatalogueTask, ...] = (
    CatalogueTask("risk_assessment", N_("Risk assessment"),
                  N_("Assess the risks to the confidentiality, integrity and availability of "
                     "personal data and the services, and update the risk register."),
                  "yearly", _maps("5.7 5.9", "1.1 1.2 1.3")),
    CatalogueTask("security_audit", N_("Security audit"),
                  N_("Audit that the security measures are in place and work as described."),
                  "yearly", _maps("5.35 5.36", "3.1")),
    CatalogueTask("management_review", N_("Management review"),
                  N_("Management reviews the internal control, the risk picture, deviations and "
                     "the measures."),
                  "yearly", _maps("5.1 5.4", "1.1")),
    CatalogueTask("change_review", N_("Configuration change review"),
                  N_("Review that production configuration changes were approved by a second "
                     "person and documented."),
                  "quarterly", _maps("8.9 8.32", "2.3 2.10")),
    CatalogueTask("contingency_test", N_("Contingency plan test"),
                  N_("Test the contingency plans and record what was learnt."),
                  "yearly", _maps("5.29 5.30", "4.1")),
    CatalogueTask("deviation_review", N_("Deviation handling review"),
                  N_("Review registered deviations, their handling and the lessons learnt."),
                  "quarterly", _maps("5.24 5.25 5.26 5.27 6.8", "4.2 4.3 4.4")),
    CatalogueTask("access_review", N_("Access control review"),
                  N_("Review who has access, in particular privileged access, and remove what "
                     "is no longer needed."),
                  "quarterly", _maps("5.15 5.18 8.2", "1.3 2.6")),
    CatalogueTask("document_security", N_("Document security"),
                  N_("Check that documents are classified, stored and shared as the routines "
                     "say."),
                  "yearly", _maps("5.12 5.13 5.33 5.37", "2.7")),
    CatalogueTask("restore_drill", N_("Restore drill"),
                  N_("Restore a backup into a separate environment and verify the result."),
                  "yearly", _maps("8.13", "2.9")),
    CatalogueTask("penetration_test", N_("Penetration test"),
                  N_("Have the service tested by penetration testers and follow up the findings."),
                  "yearly", _maps("8.8 8.29", "3.1 3.4")),
)

# Trainings every staff member with access has completed within the last year.
REQUIRED_TRAININGS: tuple[str, ...] = (N_("Information security"), N_("Privacy and data protection"))


@dataclass(frozen=True)
class Requirement:
    id: str
    title: str
    title_nb: str | None
    group: str
    group_title: str
    group_title_nb: str | None

    def title_in(self, locale: str) -> str:
        return (self.title_nb if locale == "nb" and self.title_nb else self.title)

    def group_in(self, locale: str) -> str:
        return (self.group_title_nb if locale == "nb" and self.group_title_nb
                else self.group_title)


@dataclass(frozen=True)
class Framework:
    key: str
    name: str
    requirements: tuple[Requirement, ...]

    def get(self, requirement: str) -> Requirement | None:
        return next((r for r in self.requirements if r.id == requirement), None)


def _load(path: Path) -> Framework:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    reqs = []
    for group in data["groups"]:
        for req in group["requirements"]:
            reqs.append(Requirement(str(req["id"]), str(req["title"]), req.get("title_nb"),
                                    str(group["id"]), str(group["title"]), group.get("title_nb")))
    return Framework(str(data["key"]), str(data["name"]), tuple(reqs))


@lru_cache(maxsize=1)
def frameworks() -> dict[str, Framework]:
    """Every framework file, by key (files sorted by name; a later file with the same key adds
    its requirements to the earlier one)."""
    found: dict[str, Framework] = {}
    for path in sorted(FRAMEWORK_DIR.glob("*.yaml")):
        fw = _load(path)
        if fw.key in found:
            known = found[fw.key]
            extra = tuple(r for r in fw.requirements if known.get(r.id) is None)
            fw = Framework(fw.key, known.name, known.requirements + extra)
        found[fw.key] = fw
    return found


# Values shown by label on pages (statuses, kinds, DPIA field names), for ``make messages``.
LABELS = (
    N_("yearly"), N_("quarterly"), N_("monthly"), N_("once"),
    N_("illegitimate_access"), N_("unwanted_change"), N_("disappearance"),
    N_("low"), N_("medium"), N_("high"),
    N_("planned"), N_("in_progress"), N_("done"),
    N_("pending"), N_("approved"), N_("rejected"), N_("implemented"), N_("filed"),
    N_("clear"), N_("purge"), N_("destroy"),
    N_("audit_checkpoint"), N_("rights_request"), N_("change_request"), N_("breach"),
    N_("access_review"), N_("document"), N_("other"),
    N_("overview"), N_("processing"), N_("responsibilities"), N_("standards"), N_("data"),
    N_("lifecycle"), N_("supporting_assets"), N_("purposes"), N_("legal_basis"),
    N_("minimisation"), N_("accuracy"), N_("retention"), N_("information"), N_("consent"),
    N_("access_portability"), N_("rectification_erasure"), N_("restriction_objection"),
    N_("processors"), N_("transfers"), N_("measures"), N_("impacts"), N_("threats"),
    N_("sources"), N_("severity"), N_("likelihood"), N_("action_plan"), N_("dpo_opinion"),
    N_("data_subjects_opinion"), N_("decision"), N_("accepted"), N_("accepted_with_actions"),
    N_("refused"),
)
