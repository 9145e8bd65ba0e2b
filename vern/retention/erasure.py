"""An erasure request also erases the person in Vern itself (Art. 17): every domain that holds
something of them is asked, through its service function, in the caller's transaction.

What each domain does (crypto-shredding where a field is sealed, see ``vern.core.crypto``):

* consent: the newsletter subscription ends and its key is destroyed (the address and every
  queued mail to it become unreadable); consent records stay as proof, under a random pseudonym,
  without address or user agent;
* audit: the key of the product actor's personal fields is destroyed; the records, their hashes
  and the tree stay, so the trail still verifies;
* rights: the keys of the person's earlier, closed requests are destroyed; the erasure request's
  own key goes when its details' keep time has passed (a retention rule), after the person has
  been told.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from vern.audit.service import erase_actor, record
from vern.consent.newsletter import erase_person as erase_consent
from vern.core.config import get_settings
from vern.rights.expiry import forget_subject_requests
from vern.rights.identities import subject_ref


def erase_in_vern(session: Session, *, org_id: str, identities: dict[str, Any],
                  request_id: str | None) -> dict[str, int]:
    """Erase the person named by ``identities`` (as a rights request holds them) from Vern's own
    data of ``org_id``. Idempotent: a second call finds nothing left to do. Returns counts."""
    secret = get_settings().secret_bytes
    email = str(identities.get("email") or "").strip().casefold()
    user_id = str(identities.get("user_id") or "").strip()
    consent = erase_consent(session, org_id=org_id, secret=secret,
                            emails=[email] if email else [],
                            subjects=[user_id] if user_id else [])
    audit_keys = erase_actor(session, org_id=org_id, actor_refs=[r for r in (user_id, email) if r])
    requests = 0
    clean = {k: str(v) for k, v in identities.items() if v}
    if clean:
        requests = forget_subject_requests(session, org_id=org_id, subject_ref=subject_ref(clean),
                                           keep_request_id=request_id)
    counts = {**consent, "audit_keys_destroyed": audit_keys, "earlier_requests_shredded": requests}
    record(session, "retention.person_erased", org_id=org_id,
           resource=f"erasure_in_vern:{request_id}" if request_id else None,
           details={"new": counts})
    return counts
