"""`concierge keys rotate`: re-encrypt the CRM under the new key, recompute the lookup digests.

Rotation, step by step (docs/SECURITY.md):
1. generate a new Fernet key and put it FIRST in CRM_ENCRYPTION_KEY, the old one after it
   (`new,old`): from then on new writes use the new key and old data still decrypts;
2. restart the processes, then run `concierge keys rotate`: every encrypted column of every table
   is decrypted with whichever key opens it and written back under the new key (MultiFernet.rotate),
   one table at a time, in batches;
3. drop the old key from CRM_ENCRYPTION_KEY and restart.
The lookup digests (sensitive tag values, guests.phone_index) are keyed by CRM_INDEX_KEY, which
does not change, so lookups keep working throughout; `rotate` recomputes them anyway, which is
also how a database written before CRM_INDEX_KEY existed moves onto it.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, text

log = logging.getLogger(__name__)

BATCH = 500


def _model_modules() -> None:
    """Import every module that declares models, so the registry lists every encrypted column."""
    import importlib

    for name in ("bot.crm.models", "bot.wecom.models", "bot.paging.models"):
        importlib.import_module(name)


def encrypted_columns() -> list[tuple[str, str]]:
    """(table, column) of every EncryptedText column the models declare."""
    from bot.crm.crypto import EncryptedText
    from bot.crm.models import Base

    _model_modules()
    found = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EncryptedText):
                found.append((table.name, column.name))
    return found


def rotate(engine, *, dry_run: bool = False) -> dict:
    """Re-encrypt and re-index; returns {"table.column": rows rewritten, ...}."""
    from cryptography.fernet import InvalidToken

    from bot.crm.crypto import CRMKeyError, current_fernet

    fernet = current_fernet()
    counts: dict[str, int] = {}
    for table, column in encrypted_columns():
        rewritten = 0
        with engine.begin() as conn:
            rows = conn.execute(
                text(f'SELECT id, "{column}" FROM "{table}" ' f'WHERE "{column}" IS NOT NULL')
            ).all()
            for start in range(0, len(rows), BATCH):
                try:
                    updates = [
                        {"id": row_id, "v": fernet.rotate(token.encode("ascii")).decode("ascii")}
                        for row_id, token in rows[start : start + BATCH]
                    ]
                except InvalidToken:
                    raise CRMKeyError(
                        f"{table}.{column}: a value no key in CRM_ENCRYPTION_KEY "
                        "opens (keep the old key after the new one while "
                        "rotating); nothing in this table was changed"
                    ) from None
                if not dry_run and updates:
                    conn.execute(
                        text(f'UPDATE "{table}" SET "{column}" = :v WHERE id = :id'), updates
                    )
                rewritten += len(updates)
        counts[f"{table}.{column}"] = rewritten
    counts.update(reindex(engine, dry_run=dry_run))
    return counts


def reindex(engine, *, dry_run: bool = False) -> dict:
    """Recompute the lookup digests from the decrypted values under CRM_INDEX_KEY."""
    from sqlalchemy.orm import Session

    from bot.bookings.phone import phone_index
    from bot.crm import models as m
    from bot.crm.crypto import blind_index

    changed = {"preference_tags.value": 0, "guests.phone_index": 0}
    with Session(engine, future=True) as s, s.begin():
        for tag in s.execute(
            select(m.PreferenceTag).where(
                m.PreferenceTag.category.in_(sorted(m.SENSITIVE_TAG_CATEGORIES)),
                m.PreferenceTag.secret_value.is_not(None),
            )
        ).scalars():
            digest = blind_index(tag.secret_value)
            if tag.value != digest:
                changed["preference_tags.value"] += 1
                if not dry_run:
                    tag.value = digest
        for guest in s.execute(select(m.Guest).where(m.Guest.phone.is_not(None))).scalars():
            digest = phone_index(guest.phone)
            if guest.phone_index != digest:
                changed["guests.phone_index"] += 1
                if not dry_run:
                    guest.phone_index = digest
        if dry_run:
            s.rollback()
    return changed
