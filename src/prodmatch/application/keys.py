"""API keys: made, listed and revoked here; checked by the API on every request.

A key reads `pm_<id>_<secret>`. Only a random salt and the SHA-256 of salt + secret are stored: the secret is shown
once, when the key is made. Keys are 256-bit random tokens, not passwords, so one salted hash is as strong as a slow
password hash here and keeps checking a request cheap. Scopes: "match" (queries and reads) and "admin" (also
writes and keys)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Literal

from prodmatch.composition import Catalog
from prodmatch.errors import NotFoundError
from prodmatch.stores.records import ApiKey

Scope = Literal["match", "admin"]
SCOPES: tuple[Scope, ...] = ("match", "admin")
_KEY = re.compile(r"^pm_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


def create_key(catalog: Catalog, scope: Scope, name: str = "") -> tuple[ApiKey, str]:
    """A new key with SCOPE: its stored record and the key itself (shown once, never stored)."""
    key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
    record = ApiKey(key_id, name, scope, salt, _digest(salt, secret), datetime.now(UTC), None)
    catalog.store.add_api_key(record)
    return record, f"pm_{key_id}_{secret}"


def list_keys(catalog: Catalog) -> list[ApiKey]:
    return catalog.store.api_keys()


def revoke_key(catalog: Catalog, key_id: str) -> None:
    if not catalog.store.revoke_api_key(key_id, datetime.now(UTC)):
        raise NotFoundError(f"no active API key with id {key_id!r}")


def split_key(text: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    found = _KEY.match(text.strip())
    return (found.group(1), found.group(2)) if found else None


def secret_matches(record: ApiKey, secret: str) -> bool:
    return hmac.compare_digest(record.digest, _digest(record.salt, secret))


def grants(record: ApiKey, scope: Scope) -> bool:
    """An admin key may do everything a match key may."""
    return record.scope == "admin" or record.scope == scope


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()
