"""A small client for the vendor's product: may this person's data be processed?

from vern.rights.client import RightsClient
rights = RightsClient("https://vern.example.com", token="vt_…")
if rights.check(email="kari.nordmann@example.com").restricted:
    ...  # store only; do not otherwise process (Art. 18)
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Flags:
    restricted: bool
    objections: tuple[str, ...]
    withdrawals: tuple[str, ...]

    def objects_to(self, purpose: str) -> bool:
        return "*" in self.objections or purpose in self.objections

    def withdrew(self, purpose: str) -> bool:
        return "*" in self.withdrawals or purpose in self.withdrawals


class RightsClient:
    def __init__(
        self, base_url: str, token: str, *, timeout: float = 5.0, http: httpx.Client | None = None
    ) -> None:
        """``http`` lets the caller bring its own client (connection pool, proxies, tests)."""
        self._http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._headers = {"Authorization": f"Bearer {token}"}

    def check(
        self,
        *,
        email: str | None = None,
        user_id: str | None = None,
        phone: str | None = None,
        national_id: str | None = None,
    ) -> Flags:
        identities = {
            k: v
            for k, v in {
                "email": email,
                "user_id": user_id,
                "phone": phone,
                "national_id": national_id,
            }.items()
            if v
        }
        res = self._http.post("/api/v1/rights/check", json={"identities": identities}, headers=self._headers)
        res.raise_for_status()
        body = res.json()
        return Flags(bool(body["restricted"]), tuple(body["objections"]), tuple(body["withdrawals"]))

    def close(self) -> None:
        self._http.close()
