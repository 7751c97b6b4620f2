"""Real hotels' bookings and who they belong to.

- `facts`: profile facts derived from a guest's bookings (stays, nights, spend, ...), for
  segments and touchpoints; kept current by every import and sync.
- `phone`: mobile numbers normalised, and their blind index for matching.
- `importer`: `concierge bookings import FILE` (CSV in UTF-8/BOM/GBK, XLSX; Chinese or English
  headers); `rows` turns one source row into a validated booking, shared with the sync endpoint.
- `identity`: tying a WeCom sender to a guest profile (conversation, advisor, externalcontact)
  and merging two profiles of one person.
"""
