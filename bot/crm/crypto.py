"""Encryption at rest for sensitive columns (phone, ID/passport numbers, health and allergy notes).

PIPL asks for sensitive personal data to be encrypted at rest. We use `cryptography`'s Fernet
(AES-128-CBC + HMAC, already a Rasa dependency) through a SQLAlchemy `TypeDecorator`, so models
simply declare `Column(EncryptedText)` and callers never see ciphertext.

The key comes from CRM_ENCRYPTION_KEY (a Fernet key; several comma-separated keys rotate: the
first encrypts, all decrypt). Without it a clearly-named development key is derived and a warning
is logged once; with CONCIERGE_ENV=production and no key we refuse to run instead.

Generate a key with:
    python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import threading

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.types import Text, TypeDecorator

from bot.crm.runtime import is_production
from bot.settings import get_settings

log = logging.getLogger(__name__)

# Derived from a public string on purpose: anything encrypted with it is NOT protected.
_DEV_KEY_SEED = b"concierge-INSECURE-DEVELOPMENT-ONLY-crm-key"
DEVELOPMENT_KEY = base64.urlsafe_b64encode(hashlib.sha256(_DEV_KEY_SEED).digest()).decode()

_GENERATE_HINT = (
    'generate one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)

_warned_dev_key = False
_warn_lock = threading.Lock()


class CRMKeyError(RuntimeError):
    """The encryption key is missing (in production), malformed, or does not match the data."""


def _configured_key() -> str:
    """The key string in force: CRM_ENCRYPTION_KEY, or the development key (with one warning)."""
    global _warned_dev_key
    key = get_settings().crm_encryption_key
    if key:
        return key
    if is_production():
        raise CRMKeyError(
            "CRM_ENCRYPTION_KEY is not set and CONCIERGE_ENV=production: refusing to store "
            f"personal data with a development key; {_GENERATE_HINT}"
        )
    with _warn_lock:
        if not _warned_dev_key:
            _warned_dev_key = True
            log.warning(
                "CRM_ENCRYPTION_KEY is not set: using the INSECURE development key; "
                "set it before storing real guest data (%s)",
                _GENERATE_HINT,
            )
    return DEVELOPMENT_KEY


@functools.lru_cache(maxsize=8)
def _fernet_for(key_string: str) -> MultiFernet:
    keys = [k.strip() for k in key_string.split(",") if k.strip()]
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError) as exc:
        raise CRMKeyError(
            f"CRM_ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64 bytes); {_GENERATE_HINT}"
        ) from exc


def current_fernet() -> MultiFernet:
    """The cipher for the key currently configured (cheap: cached per key string)."""
    return _fernet_for(_configured_key())


def encrypt(plaintext: str) -> str:
    return current_fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return current_fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise CRMKeyError(
            "cannot decrypt a CRM column: CRM_ENCRYPTION_KEY differs from the key the data was "
            "written with (keep the old key after the new one, comma-separated, while rotating)"
        ) from exc


def _index_key() -> bytes:
    """CRM_INDEX_KEY: a key of its own, so rotating the encryption key leaves every digest (and
    so every lookup by them) as it was. Without it (development, and databases written before
    it existed) the primary encryption key, as before; production requires it (bot.preflight)."""
    key = get_settings().crm_index_key
    if key:
        return key.encode("utf-8")
    return _configured_key().split(",")[0].strip().encode("ascii")


def blind_index(value: str) -> str:
    """A keyed digest of `value`, for equality/uniqueness on data we otherwise only store
    encrypted (Fernet ciphertext differs on every write). Keyed by CRM_INDEX_KEY."""
    digest = hmac.new(_index_key(), value.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"hmac:{digest[:40]}"


class EncryptedText(TypeDecorator):
    """A text column whose value is Fernet-encrypted on the way in and decrypted on the way out.

    Stored as TEXT (the token is ASCII). Not searchable: look rows up by other columns.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"EncryptedText takes str, got {type(value).__name__}")
        return encrypt(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return decrypt(value)


class EncryptedJSON(TypeDecorator):
    """A JSON document stored as one Fernet token (TEXT): raw WeCom payloads and message bodies
    carry guests' words, so they are encrypted like the other copies of them."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        import json

        return encrypt(json.dumps(value, ensure_ascii=False))

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        import json

        return json.loads(decrypt(value))


def reset_for_tests() -> None:
    """Forget cached ciphers and the 'already warned' flag (tests change the environment)."""
    global _warned_dev_key
    _fernet_for.cache_clear()
    _warned_dev_key = False
