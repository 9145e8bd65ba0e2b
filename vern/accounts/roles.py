"""Roles and what they may do. The one table every authorisation decision is read from.

Vendor staff hold their role in the vendor organisation. When they switch into a customer's
organisation (to support it or answer a data subject request) they act with the permissions listed
under ``VENDOR_IN_TENANT`` - never more than their job needs.
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

# Roles that may exist in each kind of organisation.
ROLES_FOR_KIND: dict[OrgKind, frozenset[Role]] = {
    OrgKind.VENDOR: VENDOR_ROLES,
    OrgKind.TENANT: TENANT_ROLES,
}


def permissions(role: Role, *, org_kind: OrgKind, home: bool) -> frozenset[Perm]:
    """What ``role`` may do in an organisation of ``org_kind``; ``home`` is False for vendor
    staff acting inside a customer's organisation."""
    if home:
        return IN_OWN_ORG[role]
    if org_kind is OrgKind.TENANT and role in VENDOR_ROLES:
        return VENDOR_IN_TENANT[role]
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
