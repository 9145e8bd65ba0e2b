"""The router every console page of the accounts domain registers on: the sign-in and account
pages (``vern.accounts.pages``), the pages for people and customers (``userpages``), API tokens
(``tokenpages``) and the e-mailed links (``linkpages``). The accounts routes module hands it to
the application as ``pages``."""

from __future__ import annotations

from fastapi import APIRouter

pages = APIRouter(tags=["accounts"], include_in_schema=False)
