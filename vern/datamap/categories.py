"""The data categories Vern knows, for its own database and for the vendors' product databases.

A dotted vocabulary in the spirit of the Fideslang taxonomy, with Norwegian identifiers added.
``system.*`` is not personal data; everything under ``user.*`` is.
"""

from __future__ import annotations

CATEGORIES: dict[str, str] = {
    "system.id": "Technical identifier of a row, not tied to a person by itself",
    "system.reference": "Reference to another row (may point at a person's row)",
    "system.timestamp": "Time of a technical event",
    "system.config": "Configuration, names of organisations, roles, flags",
    "system.crypto": "Keys, hashes and proofs that protect other data",
    "system.metric": "Aggregated counts with no link to a person",
    "user.name": "A person's name",
    "user.contact.email": "E-mail address",
    "user.contact.phone": "Telephone number",
    "user.contact.address": "Postal address or postcode",
    "user.date_of_birth": "Date of birth",
    "user.government_id.national_id": "Norwegian national identity number or D-number",
    "user.financial.bank_account": "Bank account number",
    "user.financial": "Invoices, payments and other financial records",
    "user.credential": "Password hashes, MFA secrets, tokens, API keys: erased, never disclosed",
    "user.identifier": "Identifier of a person (user id, pseudonymous subject id, keyed hash)",
    "user.network.ip": "IP address, full or truncated",
    "user.device.user_agent": "Browser and device description",
    "user.behaviour": "What a person did: sign-ins, page views, actions",
    "user.consent": "Choices about consent and objection",
    "user.content": "Free text and files a person wrote",
    "user.education": "Courses, enrolments, results",
    "user.health": "Health data (Art. 9 special category)",
    "user.child": "Data about a child",
    "user.workplace": "Job, role and organisation of a person",
    "user.request": "A data subject request and its handling",
    "user.incident": "Deviation and breach reports that may concern a person",
}

RETENTION_RULES: dict[str, str] = {
    "account-lifetime": "Kept while the account or organisation exists; erased with it",
    "session-lifetime": "Kept until the session ends (idle 1 h, absolute 24 h)",
    "until-used-or-expired": "Deleted when used or when it expires",
    "audit-retention": "Kept for the audit retention period (setting, default 12 months)",
    "request-plus-5y": "Kept five years after the request was closed, as proof of compliance",
    "consent-history": "Kept while the purpose exists plus five years, as proof of consent",
    "key-lifetime": "Kept until the person is erased; destroying it shreds their data",
    "stats-raw": "Raw events kept for the short statistics period (setting)",
    "stats-aggregate": "Aggregates without personal data, kept indefinitely",
    "salt-48h": "Deleted 48 hours after its day",
    "throttle-window": "Deleted when the lock window has passed",
    "legal-5y": "Kept five years (bokføringsloven § 13)",
    "permanent-config": "Configuration, not personal data; kept while in use",
    # control (vern/control): the vendor's internal control records
    "internal-control": "Kept while the vendor operates the service plus five years, as proof "
                        "of internal control; supplier staff's names are shredded when they end",
    # incidents (vern/incidents): deviations and breaches
    "incident-plus-5y": "Kept five years after the deviation was closed (Art. 33(5) documentation)",
}


# The same rules, machine-readable (enforced by ``vern.retention``): how many days a row is kept
# after the column its table names (``retention_after`` in datamap.yaml), what happens then, why,
# and the legal minimum below which a vendor may not set the period. ``days`` None: not
# time-limited (kept while in use, or applied by the domain itself: ``enforced_by``).
RETENTION_POLICIES: dict[str, dict[str, object]] = {
    "account-lifetime": {"days": None, "action": "delete", "legal_minimum_days": 0,
                         "legal_reason": "Art. 5(1)(e): needed while the account exists"},
    "session-lifetime": {"days": 2, "action": "delete", "legal_minimum_days": 1,
                         "legal_reason": "Art. 5(1)(e): a session ends within 24 hours"},
    "until-used-or-expired": {"days": 1, "action": "delete", "legal_minimum_days": 0,
                              "legal_reason": "Art. 5(1)(e): of no use once used or expired"},
    "audit-retention": {"days": None, "action": "delete", "legal_minimum_days": 0,
                        "legal_reason": "Art. 32: security logs for the audit period",
                        "enforced_by": "audit.retention"},
    "request-plus-5y": {"days": 1826, "action": "delete", "legal_minimum_days": 1096,
                        "legal_reason": "Art. 5(2) accountability; claims expire after three "
                                        "years (foreldelsesloven § 2)"},
    "consent-history": {"days": 1826, "action": "delete", "legal_minimum_days": 1096,
                        "legal_reason": "Art. 7(1) proof of consent; claims expire after three "
                                        "years (foreldelsesloven § 2)"},
    "key-lifetime": {"days": None, "action": "delete", "legal_minimum_days": 0,
                     "legal_reason": "Art. 17: destroyed when the person is erased"},
    "stats-raw": {"days": None, "action": "delete", "legal_minimum_days": 0,
                  "legal_reason": "Art. 5(1)(e): raw events only until aggregated",
                  "enforced_by": "stats.retention"},
    "stats-aggregate": {"days": None, "action": "delete", "legal_minimum_days": 0,
                        "legal_reason": "Not personal data"},
    "salt-48h": {"days": 2, "action": "delete", "legal_minimum_days": 2,
                 "legal_reason": "Art. 5(1)(c): a day's visitors cannot be linked after it",
                 "enforced_by": "stats.purge"},
    "throttle-window": {"days": 1, "action": "delete", "legal_minimum_days": 0,
                        "legal_reason": "Art. 5(1)(e): of no use after the lock window"},
    "legal-5y": {"days": 1826, "action": "delete", "legal_minimum_days": 1826,
                 "legal_reason": "bokføringsloven § 13: five years"},
    "permanent-config": {"days": None, "action": "delete", "legal_minimum_days": 0,
                         "legal_reason": "Configuration, not personal data"},
    # applied by ``vern.retention`` through ``vern.control.service.expire_records``: each record
    # five years after its own end (a closed task, a completion, an implemented change …)
    "internal-control": {"days": 1826, "action": "delete", "legal_minimum_days": 1096,
                         "legal_reason": "Art. 5(2) and 32(1)(d): proof of internal control while "
                                         "the service runs and five years after; claims expire "
                                         "after three years (foreldelsesloven § 2)"},
    # applied through ``vern.incidents.service.expire_closed``: never an open incident
    "incident-plus-5y": {"days": 1826, "action": "delete", "legal_minimum_days": 1096,
                         "legal_reason": "Art. 33(5): the documentation of a breach, five years "
                                         "after it was closed; claims expire after three years "
                                         "(foreldelsesloven § 2)"},
}


def is_personal(category: str) -> bool:
    return category.startswith("user.")
