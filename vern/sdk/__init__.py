"""A small client for feeding the vendor's own product into Vern's audit trail.

    from vern.sdk import AuditClient, AuditMiddleware, WSGIAuditMiddleware

    audit = AuditClient("https://vern.example.com", token="vt_…")
    app = AuditMiddleware(app, audit)            # ASGI (Starlette, FastAPI, Django ASGI)
    wsgi_app = WSGIAuditMiddleware(wsgi_app, audit)  # WSGI (Flask, Django)
    audit.record("grade.changed", actor="user-17", resource="student:42")

Records are queued in memory and sent in batches by a background thread; the host's requests never
wait for Vern. Only the standard library is used.

Consent: ``ConsentClient(url, token).may_use(subject, purpose)`` asks whether the product may use
a purpose for a person now (see ``vern.sdk.consent``).
"""

from vern.sdk.client import AuditClient
from vern.sdk.consent import (
    ConsentClient,
    ConsentCookieMiddleware,
    ConsentError,
    WSGIConsentCookieMiddleware,
    expired_cookies,
)
from vern.sdk.middleware import AuditMiddleware, WSGIAuditMiddleware

__all__ = ["AuditClient", "AuditMiddleware", "ConsentClient", "ConsentCookieMiddleware", "ConsentError",
           "WSGIAuditMiddleware", "WSGIConsentCookieMiddleware", "expired_cookies"]
