"""The admission rules one by one: global cap, per-key share, per-key rate, draining."""

from __future__ import annotations

import pytest

from gateway.admission import Admission, RateLimit, parse_rate_limits
from gateway.auth import ANONYMOUS, COMPAT, Caller
from gateway.errors import KeyOverloaded, Overloaded, RateLimited, ShuttingDown

A = Caller("app-a", "user")
B = Caller("app-b", "user")
ENROLLER = Caller("importer", "enroll")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _fill(admission: Admission, caller: Caller, count: int) -> None:
    for _ in range(count):
        assert admission.refusal(caller) is None
        admission.acquire(caller)


def test_the_global_cap_holds_for_every_key() -> None:
    admission = Admission(4, 60, per_key_in_flight=3)
    _fill(admission, A, 2)
    _fill(admission, B, 2)
    refusal = admission.refusal(Caller("app-c", "user"))
    assert type(refusal) is Overloaded and refusal.retry_after_s == 1


def test_one_key_gets_its_share_and_the_others_still_get_slots() -> None:
    admission = Admission(64, 60, per_key_in_flight=8)
    _fill(admission, A, 8)
    refusal = admission.refusal(A)
    assert isinstance(refusal, KeyOverloaded) and refusal.status_code == 429
    assert refusal.retry_after_s == 1
    assert admission.refusal(B) is None
    admission.release(A)
    assert admission.refusal(A) is None
    assert admission.by_key == {"app-a": 7} and admission.in_flight == 7


def test_no_share_when_off_and_none_for_the_keyless_callers() -> None:
    _fill(Admission(64, 60, per_key_in_flight=None), A, 20)
    _fill(Admission(64, 60, per_key_in_flight=2), Caller(ANONYMOUS, "admin"), 20)
    _fill(Admission(64, 60, per_key_in_flight=2), Caller(COMPAT, "user"), 20)


def test_a_rate_limit_refuses_beyond_the_burst_with_the_wait_until_the_next_token() -> None:
    clock = Clock()
    admission = Admission(64, 60, rate_limits={"app-a": RateLimit(0.5, 2)}, clock=clock)
    assert admission.refusal(A) is None and admission.refusal(A) is None  # the burst
    refusal = admission.refusal(A)
    assert isinstance(refusal, RateLimited) and refusal.retry_after_s == 2
    assert admission.refusal(B) is None  # B has no limit
    clock.now += 2.0  # one token at 0.5/s
    assert admission.refusal(A) is None
    assert isinstance(admission.refusal(A), RateLimited)


def test_the_most_specific_rate_limit_applies_and_each_key_has_its_own_bucket() -> None:
    limits = parse_rate_limits("*=100, scope:enroll=1, app-a=2:2")
    admission = Admission(64, 60, rate_limits=limits, clock=Clock())
    assert [admission.refusal(A) is None for _ in range(3)] == [True, True, False]
    assert [admission.refusal(ENROLLER) is None for _ in range(2)] == [True, False]
    other_enroller = Caller("importer-2", "enroll")
    assert admission.refusal(other_enroller) is None  # its own bucket, same limit
    assert all(admission.refusal(B) is None for _ in range(50))  # '*' = 100/s


def test_draining_comes_first() -> None:
    admission = Admission(64, 60, draining=True)
    assert isinstance(admission.refusal(A), ShuttingDown)


@pytest.mark.parametrize(
    "text", ["app=", "=5", "app=0", "app=-1", "scope:root=5", "app=5:0", "a b=5", "app=fast"]
)
def test_malformed_rate_limits_are_refused_with_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        parse_rate_limits(text)


def test_rate_limit_forms() -> None:
    assert parse_rate_limits("") == {}
    assert parse_rate_limits("*=2.5,x=10:40") == {"*": RateLimit(2.5, 3), "x": RateLimit(10, 40)}
