"""Who gets a request slot: the global cap, each key's share, each key's request rate.

Rules, checked in this order once the caller is known (its key authenticated from the
headers, before any of the body is read):

- draining: the process is shutting down (503 + Retry-After);
- the global cap: `max_in_flight` requests in flight per worker (429 overloaded);
- the key's share: `per_key_in_flight` requests of one key in flight (429 key_overloaded),
  so one key's flood or slow uploads leave slots for the others;
- the key's rate: a token bucket per key, when a limit covers it (429 rate_limited with
  the seconds until the next token).

Every 429 is sent after `refusal_pause_s` (no slot is held meanwhile).

Limits are written "TARGET=RATE" or "TARGET=RATE:BURST" (requests per second, burst
defaulting to the rate rounded up); TARGET is a key name, "scope:<scope>" for each key of
that scope, or "*" for every key. The most specific target applies; each key has its own
bucket. Callers without a key (everyone on an open gateway, the network-restricted
compatibility routes) have the global cap only: they are one name for many clients.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.auth import ANONYMOUS, COMPAT, SCOPES, Caller
from gateway.errors import FacegateError, KeyOverloaded, Overloaded, RateLimited, ShuttingDown

_LIMIT = re.compile(r"(\*|scope:\w+|[A-Za-z0-9._-]{1,64})\s*=\s*(\d+(?:\.\d+)?)(?::(\d+))?")


@dataclass(frozen=True)
class RateLimit:
    """rate_per_s tokens per second, at most burst of them saved up."""

    rate_per_s: float
    burst: int


def parse_rate_limits(text: str) -> dict[str, RateLimit]:
    """{target: limit} from "TARGET=RATE[:BURST]" entries separated by commas; ValueError names a bad one."""
    limits: dict[str, RateLimit] = {}
    for item in text.split(","):
        entry = item.strip()
        if not entry:
            continue
        found = _LIMIT.fullmatch(entry)
        if found is None:
            raise ValueError(
                f"rate limit {entry!r}: write NAME=RATE, scope:SCOPE=RATE or *=RATE, requests "
                "per second, optionally :BURST (e.g. '*=20,scope:enroll=5,reports=50:100')"
            )
        target, rate_text, burst_text = found.groups()
        if target.startswith("scope:") and target[6:] not in SCOPES:
            raise ValueError(f"rate limit {entry!r}: scopes are {', '.join(SCOPES)}")
        rate = float(rate_text)
        if rate <= 0:
            raise ValueError(f"rate limit {entry!r}: the rate must be above 0")
        burst = int(burst_text) if burst_text else max(1, math.ceil(rate))
        if burst < 1:
            raise ValueError(f"rate limit {entry!r}: the burst must be at least 1")
        limits[target] = RateLimit(rate, burst)
    return limits


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class Admission:
    """Limits applied to /v1/ requests (and `extra_paths`); `draining` is flipped on shutdown."""

    max_in_flight: int
    request_timeout_s: float
    draining: bool = False
    in_flight: int = 0
    # Exact paths outside /v1/ that count against the same limits (compatibility routes).
    extra_paths: frozenset[str] = frozenset()
    # None: no per-key share (only the global cap).
    per_key_in_flight: int | None = None
    # None: the body may take until the request deadline.
    body_timeout_s: float | None = None
    rate_limits: dict[str, RateLimit] = field(default_factory=dict)
    # A 429 waits this long before it is sent: a client that ignores Retry-After and asks
    # again at once (a flood) costs the event loop one refusal per pause per connection,
    # not thousands a second, which the other keys' requests would queue behind.
    refusal_pause_s: float = 0.0
    clock: Callable[[], float] = time.monotonic
    by_key: dict[str, int] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def refusal(self, caller: Caller) -> FacegateError | None:
        """Why `caller` gets no slot now (None: it may take one; take it with acquire)."""
        if self.draining:
            return ShuttingDown("the gateway is shutting down: retry", retry_after_s=5)
        if self.in_flight >= self.max_in_flight:
            return Overloaded("too many requests in flight: retry shortly", retry_after_s=1)
        if caller.name in (ANONYMOUS, COMPAT):
            return None
        cap = self.per_key_in_flight
        if cap is not None and self.by_key.get(caller.name, 0) >= cap:
            return KeyOverloaded(
                f"this API key has {cap} requests in flight already (its share): retry shortly",
                retry_after_s=1,
            )
        return self._take_token(caller)

    def _limit_for(self, caller: Caller) -> RateLimit | None:
        for target in (caller.name, f"scope:{caller.scope}", "*"):
            if target in self.rate_limits:
                return self.rate_limits[target]
        return None

    def _take_token(self, caller: Caller) -> FacegateError | None:
        limit = self._limit_for(caller)
        if limit is None:
            return None
        now = self.clock()
        bucket = self._buckets.setdefault(caller.name, _Bucket(float(limit.burst), now))
        bucket.tokens = min(
            float(limit.burst), bucket.tokens + (now - bucket.at) * limit.rate_per_s
        )
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        wait_s = math.ceil((1.0 - bucket.tokens) / limit.rate_per_s)
        return RateLimited(
            f"this API key is over its rate of {limit.rate_per_s:g} requests/s: "
            f"retry in {wait_s} s",
            retry_after_s=max(1, wait_s),
        )

    def acquire(self, caller: Caller) -> None:
        self.in_flight += 1
        self.by_key[caller.name] = self.by_key.get(caller.name, 0) + 1

    def release(self, caller: Caller) -> None:
        self.in_flight -= 1
        left = self.by_key[caller.name] - 1
        if left:
            self.by_key[caller.name] = left
        else:
            del self.by_key[caller.name]
