"""The CRM profile store: guests, bookings, preference tags, orders, tickets, handoffs, pages,
consents and the audit log.

Callers use `bot.crm.store.CRMStore` (plain frozen dataclasses in and out, no SQL, no ORM objects);
`bot.crm.db` builds engines and runs the Alembic migrations in `bot/crm/migrations`.
Importing this package connects to nothing.
"""
