"""Named API keys: 'scope/name:key' entries, older 'scope:key' ones named by a short hash."""

from __future__ import annotations

import hashlib
import logging

import pytest

from gateway.auth import AuthConfigError, Caller, load_api_keys, parse_entries, unnamed_key_name
from gateway.errors import Forbidden, Unauthenticated

NAMED = "named-key-0123456789"
OLD = "older-key-0123456789"


def test_named_and_older_entries_side_by_side() -> None:
    keys = load_api_keys(f"enroll/reports-app:{NAMED},user:{OLD}", None, False)
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


def test_a_named_key_may_contain_a_colon() -> None:
    (entry,) = parse_entries("admin/ops:abc:0123456789abcdef", "test").entries
    assert entry.name == "ops"
    assert entry.digest == hashlib.sha256(b"abc:0123456789abcdef").digest()


def test_an_older_key_with_a_colon_that_is_no_name_stays_one_key() -> None:
    parsed = parse_entries("user:not a name:0123456789abcdef", "test")
    (entry,) = parsed.entries
    assert entry.digest == hashlib.sha256(b"not a name:0123456789abcdef").digest()
    assert not parsed.warnings


def test_an_older_key_that_reads_as_name_and_key_keeps_working_unnamed() -> None:
    """'user:team-a:<16+ characters>' was one key: it still is, and no part becomes a name.

    Failed on the first round's parser: 'team-a' became the name and the full key got 401.
    """
    old_key = "team-a:0123456789abcdefXYZ"
    keys = load_api_keys(f"user:{old_key}", None, False)
    caller = keys.authenticate(old_key)
    assert caller == Caller(unnamed_key_name(old_key), "user")
    # The first round's reading also keeps working, named by its own hash, never 'team-a'.
    tail = keys.authenticate("0123456789abcdefXYZ")
    assert tail == Caller(unnamed_key_name("0123456789abcdefXYZ"), "user")
    assert all("team-a" not in e.name and "0123" not in e.name for e in keys.entries)
    (warning,) = keys.warnings
    assert "FACEGATE_API_KEYS: entry 1 (user) reads two ways" in warning
    assert "user/<name>:<key>" in warning
    assert "team-a" not in warning and "0123456789abcdef" not in warning


def test_an_older_key_with_a_short_part_after_its_colon_starts() -> None:
    """'user:prefix123:shortsecret12' stopped the gateway ("at least 16") in the first round."""
    keys = load_api_keys("user:prefix123:shortsecret12", None, False)
    assert keys.authenticate("prefix123:shortsecret12").name == unnamed_key_name(
        "prefix123:shortsecret12"
    )
    assert len(keys.entries) == 1 and not keys.warnings
    with pytest.raises(Unauthenticated):
        keys.authenticate("shortsecret12")


def test_two_older_keys_with_one_prefix_both_start() -> None:
    keys = load_api_keys(
        "user:team-a:0123456789abcdefXYZ,enroll:team-a:fedcba9876543210XYZ", None, False
    )
    assert keys.authenticate("team-a:fedcba9876543210XYZ").scope == "enroll"
    assert len(keys.warnings) == 2


def test_one_name_for_two_keys_is_refused(tmp_path: object) -> None:
    with pytest.raises(AuthConfigError, match="'app' is given to two keys"):
        parse_entries(f"user/app:{NAMED},enroll/app:{OLD}", "FACEGATE_API_KEYS")
    # The same key listed with two scopes under its name is fine (the wider scope wins).
    keys = load_api_keys(f"user/app:{NAMED},enroll/app:{NAMED}", None, False)
    assert keys.authenticate(NAMED) == Caller("app", "enroll")


def test_a_named_key_shorter_than_16_characters_is_refused() -> None:
    with pytest.raises(AuthConfigError, match="at least 16"):
        parse_entries("user/app:short", "test")


def test_a_bad_name_is_refused_without_echoing_the_entry() -> None:
    with pytest.raises(AuthConfigError, match="entry 2: a key name is") as raised:
        parse_entries(f"user:{OLD}\nuser/not a name:{NAMED}", "test")
    assert NAMED not in str(raised.value)


def test_an_open_gateway_calls_everyone_anonymous() -> None:
    assert load_api_keys("", None, True).authenticate(None).name == "anonymous"


def test_the_gateway_warns_at_start_of_an_entry_that_reads_two_ways(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from gateway.app import create_app
    from gateway.config import Settings

    with caplog.at_level(logging.WARNING):
        create_app(Settings(triton_url="localhost:1", api_keys=f"user/app:{NAMED},user:a:{OLD}"))
    assert "entry 2 (user) reads two ways" in caplog.text
    assert "entry 1" not in caplog.text and OLD not in caplog.text
