"""Bookings tests: the CRM fixtures (a real key; SQLite and PostgreSQL stores)."""

from __future__ import annotations

from tests.crm.conftest import crm_key, db_url, store  # noqa: F401  (fixtures)
