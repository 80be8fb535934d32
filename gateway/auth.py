"""API keys with three scopes, each including the one before: `user` (detect, verify, swap,
gallery identify/verify/read), `enroll` (also gallery enrolment and deletion) and `admin`
(also model load/unload).

Keys come from FACEGATE_API_KEYS ("scope/name:key,scope:key") and/or a mounted file
(FACEGATE_API_KEYS_FILE, one entry per line, # comments). A key's name (letters, digits,
'.', '_', '-'; at most 64) is what logs, metrics, admission and the audit trail show; an
entry without one ("scope:key", the older form, whose key is all the text after the first
':') is named "key-" + the first 8 hex digits of the key's SHA-256. Only SHA-256 digests are
kept in memory, and a presented key is compared against every digest in constant time. Authentication is off only when
FACEGATE_AUTH_DISABLED=true, with a warning at start (every caller is then "anonymous").
"""

from __future__ import annotations

import hashlib
import hmac
import re
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


_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
ANONYMOUS = "anonymous"
# The keyless compatibility routes' callers (network-restricted) share this name.
COMPAT = "compat"


class AuthConfigError(Exception):
    """The API key configuration is unusable; the message says how to fix it."""


@dataclass(frozen=True)
class KeyEntry:
    """One configured key: the SHA-256 of the key, its scope and its name."""

    digest: bytes
    scope: Scope
    name: str


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: the key's name and scope (never the key)."""

    name: str
    scope: Scope


@dataclass(frozen=True)
class ApiKeys:
    """Digests of the configured keys, their scopes and names."""

    entries: tuple[KeyEntry, ...]
    disabled: bool = False
    # For the log at start: entries that read two ways (neither part of the key in them).
    warnings: tuple[str, ...] = ()

    def caller_of(self, presented: str) -> Caller | None:
        """The entry of a presented key (the widest scope if listed twice), or None.

        Compares with every digest in constant time.
        """
        digest = hashlib.sha256(presented.encode()).digest()
        found: KeyEntry | None = None
        for entry in self.entries:
            matches = hmac.compare_digest(digest, entry.digest)
            if matches and (found is None or SCOPES.index(entry.scope) > SCOPES.index(found.scope)):
                found = entry
        return None if found is None else Caller(found.name, found.scope)

    def scope_of(self, presented: str) -> Scope | None:
        """The scope of a presented key, or None."""
        caller = self.caller_of(presented)
        return None if caller is None else caller.scope

    def authenticate(self, presented: str | None) -> Caller:
        """The caller of a presented key; 401 for a missing or unknown one."""
        if self.disabled:
            return Caller(ANONYMOUS, "admin")
        if not presented:
            raise Unauthenticated(
                "missing API key: send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'"
            )
        caller = self.caller_of(presented)
        if caller is None:
            raise Unauthenticated("unknown API key")
        return caller

    def authorize(self, presented: str | None, needed: Scope) -> Caller:
        """The caller; 401 for a missing or unknown key, 403 for a key without the scope."""
        caller = self.authenticate(presented)
        scope = caller.scope
        if SCOPES.index(scope) < SCOPES.index(needed):
            raise Forbidden(
                f"this API key lacks the '{needed}' scope needed for {_NEEDED_FOR[needed]}"
            )
        return caller


def unnamed_key_name(key: str) -> str:
    """The name of a key given without one: a short hash of the key, stable across restarts."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class ParsedKeys:
    """The entries of one source, and a warning per entry that reads two ways."""

    entries: list[KeyEntry]
    warnings: list[str]


def parse_entries(text: str, source: str) -> ParsedKeys:
    """Parse "scope/name:key" or "scope:key" entries separated by commas or newlines.

    # starts a comment. In "scope:key" the whole text after the first ':' is the key, as it
    always was. One that also reads as the first round's "scope:name:key" (a valid name, then
    ':' and 16 or more characters) is accepted both ways, each key named by its hash (either
    part may be a secret), with a warning that names neither part.
    """
    entries: list[KeyEntry] = []
    warnings: list[str] = []
    # Comments end at the end of their line, so they are removed before splitting on commas.
    items = [item for raw in text.splitlines() for item in raw.split("#", 1)[0].split(",")]
    for position, item in enumerate((i.strip() for i in items if i.strip()), start=1):
        head, sep, key = item.partition(":")
        scope, slash, name = (part.strip() for part in head.partition("/"))
        if not sep or scope not in SCOPES or not key.strip():
            raise AuthConfigError(
                f"{source}: entries look like 'user/<name>:<key>' or 'user:<key>' (scopes user, "
                "enroll, admin); got a malformed one"
            )
        if slash and not _NAME.fullmatch(name):
            raise AuthConfigError(
                f"{source}: entry {position}: a key name is 1-64 letters, digits, '.', '_' or '-'"
            )
        key = key.strip()
        if len(key) < 16:
            raise AuthConfigError(f"{source}: API keys must be at least 16 characters")
        entries.append(_entry(key, scope, name if slash else unnamed_key_name(key)))
        first, colon, after = key.partition(":")
        if not slash and colon and _NAME.fullmatch(first.strip()) and len(after.strip()) >= 16:
            tail = _entry(after.strip(), scope, unnamed_key_name(after.strip()))
            entries.append(tail)
            warnings.append(
                f"{source}: entry {position} ({scope}) reads two ways, as an older "
                f"'{scope}:<key>' whose key holds ':' and as '{scope}:<name>:<key>'; both keys "
                f"are accepted, the whole text after '{scope}:' (named {entries[-2].name}) and "
                f"the text after its second ':' (named {tail.name}). Write "
                f"'{scope}/<name>:<key>' to keep one key under a name (SECURITY.md, upgrading)"
            )
    _check_names(entries, source)
    return ParsedKeys(entries, warnings)


def _entry(key: str, scope: str, name: str) -> KeyEntry:
    return KeyEntry(hashlib.sha256(key.encode()).digest(), scope, name)  # type: ignore[arg-type]


def _check_names(entries: list[KeyEntry], source: str) -> None:
    """A name stands for one key: two different keys under one name would blur the trail."""
    digests: dict[str, bytes] = {}
    for entry in entries:
        if digests.setdefault(entry.name, entry.digest) != entry.digest:
            raise AuthConfigError(f"{source}: the key name '{entry.name}' is given to two keys")


def load_api_keys(keys: str, keys_file: Path | None, disabled: bool) -> ApiKeys:
    """Build ApiKeys from the settings; refuses to run open unless explicitly disabled."""
    parsed = parse_entries(keys, "FACEGATE_API_KEYS")
    entries, warnings = parsed.entries, parsed.warnings
    if keys_file is not None:
        try:
            from_file = parse_entries(keys_file.read_text(), str(keys_file))
        except OSError as exc:
            raise AuthConfigError(f"cannot read API keys file {keys_file}: {exc}") from exc
        entries, warnings = entries + from_file.entries, warnings + from_file.warnings
        _check_names(entries, f"FACEGATE_API_KEYS and {keys_file}")
    if disabled:
        return ApiKeys((), disabled=True)
    if not entries:
        raise AuthConfigError(
            "no API keys configured: set FACEGATE_API_KEYS='user:<key>,admin:<key>' or "
            "FACEGATE_API_KEYS_FILE, or FACEGATE_AUTH_DISABLED=true for a trusted network"
        )
    return ApiKeys(tuple(entries), warnings=tuple(warnings))


def presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    """The key from X-API-Key, else from 'Authorization: Bearer <key>'."""
    if x_api_key:
        return x_api_key
    if authorization:
        kind, _, value = authorization.partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
    return None
