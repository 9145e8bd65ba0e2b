"""Roles and what they may do. The one table every authorisation decision is read from.

Vendor staff hold their role in the vendor organisation. When they switch into a customer's
organisation (to support it or answer a data subject request) they act with the permissions listed
under ``VENDOR_IN_TENANT`` - never more than their job needs - and only while an access grant the
customer's administrator approved is in force (``vern.access``); without one, ``NO_GRANT``.
"""

from __future__ import annotations

from enum import StrEnum

from vern.core.i18n import N_


class OrgKind(StrEnum):
    VENDOR = "vendor"  # the processor that runs Vern
    TENANT = "tenant"  # a customer organisation (the controller)


class Role(StrEnum):
    OWNER = "owner"
    SECURITY_OFFICER = "security_officer"
    PRIVACY_OFFICER = "privacy_officer"
    SUPPORT = "support"
    AUDITOR = "auditor"
    TENANT_ADMIN = "tenant_admin"
    MEMBER = "member"


VENDOR_ROLES = frozenset(
    {Role.OWNER, Role.SECURITY_OFFICER, Role.PRIVACY_OFFICER, Role.SUPPORT, Role.AUDITOR}
)
TENANT_ROLES = frozenset({Role.TENANT_ADMIN, Role.MEMBER})
# Who must use MFA (OWASP ASVS 5.0 L2 6.3.3: privileged users).
MFA_REQUIRED = VENDOR_ROLES | {Role.TENANT_ADMIN}
# access: roles whose grant needs a second person's approval and that access reviews list.
PRIVILEGED_ROLES = VENDOR_ROLES | {Role.TENANT_ADMIN}


class Perm(StrEnum):
    SELF = "self"  # read and change one's own account
    ORG_READ = "org.read"
    USERS_READ = "users.read"
    USERS_MANAGE = "users.manage"
    TOKENS_MANAGE = "tokens.manage"
    TENANTS_READ = "tenants.read"
    TENANTS_MANAGE = "tenants.manage"
    METRICS_READ = "metrics.read"
    AUDIT_READ = "audit.read"
    AUDIT_READ_ALL = "audit.read_all"  # every organisation's trail (vendor context only)
    AUDIT_INGEST = "audit.ingest"
    RIGHTS_READ = "rights.read"
    RIGHTS_MANAGE = "rights.manage"
    RIGHTS_APPROVE = "rights.approve"
    DATAMAP_MANAGE = "datamap.manage"
    CONSENT_READ = "consent.read"
    CONSENT_MANAGE = "consent.manage"
    STATS_READ = "stats.read"
    STATS_MANAGE = "stats.manage"
    # vendor registry (vern/vendor)
    VENDOR_READ = "vendor.read"  # the vendor's registry (vendor context only)
    VENDOR_MANAGE = "vendor.manage"  # sub-processors, measures, systems, officers, customers, maintenance
    VENDOR_NOTICES = "vendor.notices"  # a customer's sub-processor notices: read and object
    # control: the vendor's internal control (vern/control)
    CONTROL_READ = "control.read"  # tasks, risks, DPIAs, changes, personnel, media, mappings
    CONTROL_WORK = "control.work"  # complete tasks and add evidence
    CONTROL_MANAGE = "control.manage"  # everything else, including four-eyes approvals
    # -- backup and offboarding domains (issue 19) --
    BACKUP_READ = "backup.read"  # backup state, runs and restore drills (vendor context)
    OFFBOARDING_READ = "offboarding.read"
    OFFBOARDING_MANAGE = "offboarding.manage"  # request, approve, run a contract's end
    OFFBOARDING_CONFIRM = "offboarding.confirm"  # a customer's admin: delete before the notice ends
    OFFBOARDING_EXPORT = "offboarding.export"  # a customer's admin: download their own export
    # -- retention (vern/retention) --
    RETENTION_READ = "retention.read"  # rules, plan, runs, legal holds (vendor only)
    RETENTION_MANAGE = "retention.manage"  # run, set periods, create and release holds
    # records of processing, agreements and the trust page (vern/records, vern/trust)
    RECORDS_READ = "records.read"
    RECORDS_MANAGE = "records.manage"
    TRUST_MANAGE = "trust.manage"  # the vendor's files shared with customers
    TRUST_READ = "trust.read"  # a customer's own trust page
    AGREEMENT_SIGN = "agreement.sign"  # a customer's administrator signs its agreement
    # incidents: the deviation and breach register (vendor), notices (customer), posture page
    INCIDENTS_READ = "incidents.read"
    INCIDENTS_MANAGE = "incidents.manage"
    INCIDENTS_NOTICES = "incidents.notices"
    POSTURE_READ = "posture.read"
    # access: access requests, privileged role grants, reviews, vendor access grants
    ACCESS_REQUEST = "access.request"  # ask for a role for oneself
    ACCESS_MANAGE = "access.manage"  # decide requests and grants, run access reviews
    ACCESS_VENDOR = "access.vendor"  # vendor staff ask a customer for access to its data


_TENANT_COMMON = {Perm.SELF, Perm.ORG_READ}

# Permissions in one's own organisation.
IN_OWN_ORG: dict[Role, frozenset[Perm]] = {
    Role.OWNER: frozenset(
        _TENANT_COMMON
        | {
            Perm.USERS_READ, Perm.USERS_MANAGE, Perm.TOKENS_MANAGE, Perm.TENANTS_READ,
            Perm.TENANTS_MANAGE, Perm.METRICS_READ, Perm.AUDIT_READ, Perm.AUDIT_READ_ALL,
            Perm.AUDIT_INGEST, Perm.RIGHTS_READ, Perm.RIGHTS_MANAGE, Perm.RIGHTS_APPROVE,
            Perm.DATAMAP_MANAGE, Perm.CONSENT_READ, Perm.CONSENT_MANAGE, Perm.STATS_READ,
            Perm.STATS_MANAGE,
        }
    ),
    Role.SECURITY_OFFICER: frozenset(
        _TENANT_COMMON
        | {
            Perm.USERS_READ, Perm.USERS_MANAGE, Perm.TOKENS_MANAGE, Perm.TENANTS_READ,
            Perm.TENANTS_MANAGE, Perm.METRICS_READ, Perm.AUDIT_READ, Perm.AUDIT_READ_ALL,
            Perm.AUDIT_INGEST, Perm.DATAMAP_MANAGE,
        }
    ),
    Role.PRIVACY_OFFICER: frozenset(
        _TENANT_COMMON
        | {
            Perm.USERS_READ, Perm.TENANTS_READ, Perm.RIGHTS_READ, Perm.RIGHTS_MANAGE,
            Perm.RIGHTS_APPROVE, Perm.DATAMAP_MANAGE, Perm.CONSENT_READ, Perm.CONSENT_MANAGE,
            Perm.STATS_READ,
        }
    ),
    Role.SUPPORT: frozenset(_TENANT_COMMON | {Perm.USERS_READ, Perm.TENANTS_READ}),
    Role.AUDITOR: frozenset(
        _TENANT_COMMON
        | {Perm.USERS_READ, Perm.TENANTS_READ, Perm.AUDIT_READ, Perm.AUDIT_READ_ALL,
           Perm.METRICS_READ}
    ),
    Role.TENANT_ADMIN: frozenset(
        _TENANT_COMMON
        | {
            Perm.USERS_READ, Perm.USERS_MANAGE, Perm.TOKENS_MANAGE, Perm.AUDIT_READ,
            Perm.AUDIT_INGEST, Perm.RIGHTS_READ, Perm.RIGHTS_MANAGE, Perm.RIGHTS_APPROVE,
            Perm.CONSENT_READ, Perm.CONSENT_MANAGE, Perm.STATS_READ, Perm.STATS_MANAGE,
        }
    ),
    Role.MEMBER: frozenset(_TENANT_COMMON),
}

# control: the vendor's internal control, in the vendor's own organisation only (vern/control).
_CONTROL_ALL = frozenset({Perm.CONTROL_READ, Perm.CONTROL_WORK, Perm.CONTROL_MANAGE})
IN_OWN_ORG[Role.OWNER] = IN_OWN_ORG[Role.OWNER] | _CONTROL_ALL
IN_OWN_ORG[Role.SECURITY_OFFICER] = IN_OWN_ORG[Role.SECURITY_OFFICER] | _CONTROL_ALL
IN_OWN_ORG[Role.PRIVACY_OFFICER] = IN_OWN_ORG[Role.PRIVACY_OFFICER] | _CONTROL_ALL
IN_OWN_ORG[Role.SUPPORT] = IN_OWN_ORG[Role.SUPPORT] | {Perm.CONTROL_READ, Perm.CONTROL_WORK}
IN_OWN_ORG[Role.AUDITOR] = IN_OWN_ORG[Role.AUDITOR] | {Perm.CONTROL_READ}
# -- backup and offboarding domains (issue 19): vendor staff in their own organisation; a
# customer's administrator confirms an early deletion of their own organisation.
for _role, _extra in {
    Role.OWNER: {Perm.BACKUP_READ, Perm.OFFBOARDING_READ, Perm.OFFBOARDING_MANAGE},
    Role.SECURITY_OFFICER: {Perm.BACKUP_READ, Perm.OFFBOARDING_READ, Perm.OFFBOARDING_MANAGE},
    Role.PRIVACY_OFFICER: {Perm.OFFBOARDING_READ, Perm.OFFBOARDING_MANAGE},
    Role.AUDITOR: {Perm.BACKUP_READ, Perm.OFFBOARDING_READ},
    Role.TENANT_ADMIN: {Perm.OFFBOARDING_CONFIRM, Perm.OFFBOARDING_EXPORT},
}.items():
    IN_OWN_ORG[_role] = IN_OWN_ORG[_role] | _extra
# -- retention (vern/retention): the vendor's own data, so vendor roles only --
for _role, _perms in ((Role.OWNER, {Perm.RETENTION_READ, Perm.RETENTION_MANAGE}),
                      (Role.SECURITY_OFFICER, {Perm.RETENTION_READ, Perm.RETENTION_MANAGE}),
                      (Role.PRIVACY_OFFICER, {Perm.RETENTION_READ, Perm.RETENTION_MANAGE}),
                      (Role.AUDITOR, {Perm.RETENTION_READ})):
    IN_OWN_ORG[_role] = IN_OWN_ORG[_role] | _perms
# records of processing, agreements and the trust page (vern/records, vern/trust)
_RECORDS: dict[Role, frozenset[Perm]] = {
    Role.OWNER: frozenset({Perm.RECORDS_READ, Perm.RECORDS_MANAGE, Perm.TRUST_MANAGE}),
    Role.SECURITY_OFFICER: frozenset({Perm.RECORDS_READ, Perm.TRUST_MANAGE}),
    Role.PRIVACY_OFFICER: frozenset({Perm.RECORDS_READ, Perm.RECORDS_MANAGE, Perm.TRUST_MANAGE}),
    Role.AUDITOR: frozenset({Perm.RECORDS_READ}),
    Role.TENANT_ADMIN: frozenset({Perm.TRUST_READ, Perm.AGREEMENT_SIGN}),
    Role.MEMBER: frozenset({Perm.TRUST_READ}),
}
IN_OWN_ORG = {role: perms | _RECORDS.get(role, frozenset()) for role, perms in IN_OWN_ORG.items()}
# incidents: vendor staff keep the register (the auditor reads it); a customer's admin reads and
# acknowledges the notices sent to their organisation. Never granted inside a customer.
_INCIDENTS: dict[Role, frozenset[Perm]] = {
    Role.OWNER: frozenset({Perm.INCIDENTS_READ, Perm.INCIDENTS_MANAGE, Perm.POSTURE_READ}),
    Role.SECURITY_OFFICER: frozenset({Perm.INCIDENTS_READ, Perm.INCIDENTS_MANAGE,
                                      Perm.POSTURE_READ}),
    Role.PRIVACY_OFFICER: frozenset({Perm.INCIDENTS_READ, Perm.INCIDENTS_MANAGE,
                                     Perm.POSTURE_READ}),
    Role.AUDITOR: frozenset({Perm.INCIDENTS_READ, Perm.POSTURE_READ}),
    Role.TENANT_ADMIN: frozenset({Perm.INCIDENTS_NOTICES}),
}
for _role, _incident_perms in _INCIDENTS.items():
    IN_OWN_ORG[_role] = IN_OWN_ORG[_role] | _incident_perms
# access: who asks, decides and reviews in their own organisation.
_ACCESS_IN_OWN_ORG: dict[Role, frozenset[Perm]] = {
    Role.OWNER: frozenset({Perm.ACCESS_REQUEST, Perm.ACCESS_MANAGE, Perm.ACCESS_VENDOR}),
    Role.SECURITY_OFFICER: frozenset({Perm.ACCESS_REQUEST, Perm.ACCESS_MANAGE, Perm.ACCESS_VENDOR}),
    Role.PRIVACY_OFFICER: frozenset({Perm.ACCESS_REQUEST, Perm.ACCESS_VENDOR}),
    Role.SUPPORT: frozenset({Perm.ACCESS_REQUEST, Perm.ACCESS_VENDOR}),
    Role.AUDITOR: frozenset({Perm.ACCESS_REQUEST, Perm.ACCESS_VENDOR}),
    Role.TENANT_ADMIN: frozenset({Perm.ACCESS_REQUEST, Perm.ACCESS_MANAGE}),
    Role.MEMBER: frozenset({Perm.ACCESS_REQUEST}),
}
IN_OWN_ORG = {role: perms | _ACCESS_IN_OWN_ORG[role] for role, perms in IN_OWN_ORG.items()}

# Permissions of vendor staff after switching into a customer's organisation.
VENDOR_IN_TENANT: dict[Role, frozenset[Perm]] = {
    Role.OWNER: frozenset(_TENANT_COMMON | {Perm.USERS_READ, Perm.AUDIT_READ, Perm.RIGHTS_READ}),
    Role.SECURITY_OFFICER: frozenset(_TENANT_COMMON | {Perm.USERS_READ, Perm.AUDIT_READ}),
    Role.PRIVACY_OFFICER: frozenset(
        _TENANT_COMMON
        | {Perm.USERS_READ, Perm.RIGHTS_READ, Perm.RIGHTS_MANAGE, Perm.RIGHTS_APPROVE,
           Perm.CONSENT_READ}
    ),
    Role.SUPPORT: frozenset(_TENANT_COMMON | {Perm.USERS_READ}),
    Role.AUDITOR: frozenset(_TENANT_COMMON | {Perm.AUDIT_READ}),
}

# vendor registry (vern/vendor): who reads and keeps it, and who answers its notices.
for _role, _added in {
    Role.OWNER: {Perm.VENDOR_READ, Perm.VENDOR_MANAGE},
    Role.SECURITY_OFFICER: {Perm.VENDOR_READ, Perm.VENDOR_MANAGE},
    Role.PRIVACY_OFFICER: {Perm.VENDOR_READ, Perm.VENDOR_MANAGE},
    Role.SUPPORT: {Perm.VENDOR_READ},
    Role.AUDITOR: {Perm.VENDOR_READ},
    Role.TENANT_ADMIN: {Perm.VENDOR_NOTICES},
}.items():
    IN_OWN_ORG[_role] = IN_OWN_ORG[_role] | _added

# Roles that may exist in each kind of organisation.
ROLES_FOR_KIND: dict[OrgKind, frozenset[Role]] = {
    OrgKind.VENDOR: VENDOR_ROLES,
    OrgKind.TENANT: TENANT_ROLES,
}


# access: vendor staff inside a customer's organisation without an approved grant in force.
NO_GRANT: frozenset[Perm] = frozenset({Perm.SELF})


def permissions(
    role: Role, *, org_kind: OrgKind, home: bool, granted: bool = False
) -> frozenset[Perm]:
    """What ``role`` may do in an organisation of ``org_kind``; ``home`` is False for vendor
    staff acting inside a customer's organisation, and ``granted`` says whether the customer
    approved an access grant for them that is in force now (without one they may only reach
    their own account)."""
    if home:
        return IN_OWN_ORG[role]
    if org_kind is OrgKind.TENANT and role in VENDOR_ROLES:
        return VENDOR_IN_TENANT[role] if granted else NO_GRANT
    return frozenset()

# Role names as people read them (translated where shown).
ROLE_LABELS = {
    Role.OWNER: N_("Owner"),
    Role.SECURITY_OFFICER: N_("Security officer"),
    Role.PRIVACY_OFFICER: N_("Privacy officer"),
    Role.SUPPORT: N_("Support"),
    Role.AUDITOR: N_("Auditor"),
    Role.TENANT_ADMIN: N_("Administrator"),
    Role.MEMBER: N_("Member"),
}
ROLE_ORDER = list(ROLE_LABELS)
