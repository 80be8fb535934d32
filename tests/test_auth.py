"""Named API keys: 'scope:name:key' entries, older 'scope:key' ones named by a short hash."""

from __future__ import annotations

import hashlib

import pytest

from gateway.auth import AuthConfigError, Caller, load_api_keys, parse_entries, unnamed_key_name
from gateway.errors import Forbidden, Unauthenticated

NAMED = "named-key-0123456789"
OLD = "older-key-0123456789"


def test_named_and_older_entries_side_by_side() -> None:
    keys = load_api_keys(f"enroll:reports-app:{NAMED},user:{OLD}", None, False)
    assert keys.authenticate(NAMED) == Caller("reports-app", "enroll")
    older = keys.authenticate(OLD)
    assert older.scope == "user"
    assert older.name == "key-" + hashlib.sha256(OLD.encode()).hexdigest()[:8]
    assert older.name == unnamed_key_name(OLD) and OLD not in older.name
    assert keys.authorize(NAMED, "enroll").name == "reports-app"
    with pytest.raises(Forbidden):
        keys.authorize(OLD, "enroll")
    with pytest.raises(Unauthenticated):
        keys.authenticate("x" * 20)


def test_a_key_may_contain_a_colon_after_its_name() -> None:
    (entry,) = parse_entries("admin:ops:abc:0123456789abcdef", "test")
    assert entry.name == "ops"
    assert entry.digest == hashlib.sha256(b"abc:0123456789abcdef").digest()


def test_an_older_key_with_a_colon_that_is_no_name_stays_one_key() -> None:
    (entry,) = parse_entries("user:not a name:0123456789abcdef", "test")
    assert entry.digest == hashlib.sha256(b"not a name:0123456789abcdef").digest()


def test_one_name_for_two_keys_is_refused(tmp_path: object) -> None:
    with pytest.raises(AuthConfigError, match="'app' is given to two keys"):
        parse_entries(f"user:app:{NAMED},enroll:app:{OLD}", "FACEGATE_API_KEYS")
    # The same key listed with two scopes under its name is fine (the wider scope wins).
    keys = load_api_keys(f"user:app:{NAMED},enroll:app:{NAMED}", None, False)
    assert keys.authenticate(NAMED) == Caller("app", "enroll")


def test_a_named_key_shorter_than_16_characters_is_refused() -> None:
    with pytest.raises(AuthConfigError, match="at least 16"):
        parse_entries("user:app:short", "test")


def test_an_open_gateway_calls_everyone_anonymous() -> None:
    assert load_api_keys("", None, True).authenticate(None).name == "anonymous"
