"""API keys with three scopes, each including the one before: `user` (detect, verify, swap,
gallery identify/verify/read), `enroll` (also gallery enrolment and deletion) and `admin`
(also model load/unload).

Keys come from FACEGATE_API_KEYS ("scope:key,scope:key") and/or a mounted file
(FACEGATE_API_KEYS_FILE, one "scope:key" per line, # comments). Only SHA-256 digests are
kept in memory, and a presented key is compared against every digest in constant time.
Authentication is off only when FACEGATE_AUTH_DISABLED=true, with a warning at start.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.errors import Forbidden, Unauthenticated

Scope = Literal["user", "enroll", "admin"]
SCOPES: tuple[Scope, ...] = ("user", "enroll", "admin")
# What each scope is needed for, in the 403 message.
_NEEDED_FOR: dict[Scope, str] = {
    "user": "this",
    "enroll": "gallery enrolment and deletion",
    "admin": "model management",
}


class AuthConfigError(Exception):
    """The API key configuration is unusable; the message says how to fix it."""


@dataclass(frozen=True)
class ApiKeys:
    """Digests of the configured keys and their scopes."""

    entries: tuple[tuple[bytes, Scope], ...]
    disabled: bool = False

    def scope_of(self, presented: str) -> Scope | None:
        """The scope of a presented key, or None; compares with every digest in constant time."""
        digest = hashlib.sha256(presented.encode()).digest()
        found: Scope | None = None
        for stored, scope in self.entries:
            matches = hmac.compare_digest(digest, stored)
            if matches and (found is None or SCOPES.index(scope) > SCOPES.index(found)):
                found = scope
        return found

    def authorize(self, presented: str | None, needed: Scope) -> None:
        """Raise 401 for a missing or unknown key, 403 for a key without the scope."""
        if self.disabled:
            return
        if not presented:
            raise Unauthenticated(
                "missing API key: send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'"
            )
        scope = self.scope_of(presented)
        if scope is None:
            raise Unauthenticated("unknown API key")
        if SCOPES.index(scope) < SCOPES.index(needed):
            raise Forbidden(
                f"this API key lacks the '{needed}' scope needed for {_NEEDED_FOR[needed]}"
            )


def parse_entries(text: str, source: str) -> list[tuple[bytes, Scope]]:
    """Parse "scope:key" entries separated by commas or newlines (# starts a comment)."""
    entries: list[tuple[bytes, Scope]] = []
    # Comments end at the end of their line, so they are removed before splitting on commas.
    items = [item for raw in text.splitlines() for item in raw.split("#", 1)[0].split(",")]
    for item in items:
        line = item.strip()
        if not line:
            continue
        scope, sep, key = line.partition(":")
        if not sep or scope.strip() not in SCOPES or not key.strip():
            raise AuthConfigError(
                f"{source}: entries look like 'user:<key>', 'enroll:<key>' or 'admin:<key>'; got a malformed one"
            )
        if len(key.strip()) < 16:
            raise AuthConfigError(f"{source}: API keys must be at least 16 characters")
        entries.append((hashlib.sha256(key.strip().encode()).digest(), scope.strip()))  # type: ignore[arg-type]
    return entries


def load_api_keys(keys: str, keys_file: Path | None, disabled: bool) -> ApiKeys:
    """Build ApiKeys from the settings; refuses to run open unless explicitly disabled."""
    entries = parse_entries(keys, "FACEGATE_API_KEYS")
    if keys_file is not None:
        try:
            entries += parse_entries(keys_file.read_text(), str(keys_file))
        except OSError as exc:
            raise AuthConfigError(f"cannot read API keys file {keys_file}: {exc}") from exc
    if disabled:
        return ApiKeys((), disabled=True)
    if not entries:
        raise AuthConfigError(
            "no API keys configured: set FACEGATE_API_KEYS='user:<key>,admin:<key>' or "
            "FACEGATE_API_KEYS_FILE, or FACEGATE_AUTH_DISABLED=true for a trusted network"
        )
    return ApiKeys(tuple(entries))


def presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    """The key from X-API-Key, else from 'Authorization: Bearer <key>'."""
    if x_api_key:
        return x_api_key
    if authorization:
        kind, _, value = authorization.partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
    return None
