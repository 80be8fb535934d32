"""Fair sharing under attack: one key floods and holds slow uploads, another must still be served.

Against a running gateway, with two API keys:
1. idle: key B makes sequential detects; its median latency is the yardstick;
2. attack, for `duration_s`: key A opens `slow_uploads` uploads that trickle a few bytes a
   second (never finishing their body) and floods detect from `flood_workers` workers, while
   key B goes on with sequential detects;
3. the slow uploads are then waited for, each until the gateway answers or closes it (bounded
   by `slow_bound_s` from its start).

The verdict compares B's p95 under attack with B's own idle p50 from the same run, so a
machine busy with other work moves both. Pure asyncio + httpx; nothing here starts a server.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

SLOW_BODY_BYTES = 1_000_000
TRICKLE_BYTES = 16
TRICKLE_PERIOD_S = 1.0


@dataclass(frozen=True)
class FairnessOptions:
    url: str
    key_a: str
    key_b: str
    image: bytes
    duration_s: float = 30.0
    slow_uploads: int = 100
    flood_workers: int = 16
    idle_calls: int = 20
    slow_bound_s: float = 90.0
    ratio_bound: float = 8.0


@dataclass
class FairnessResult:
    idle_ms: list[float] = field(default_factory=list)
    attack_ms: list[float] = field(default_factory=list)
    b_statuses: Counter[str] = field(default_factory=Counter)
    flood_statuses: Counter[str] = field(default_factory=Counter)
    slow_outcomes: Counter[str] = field(default_factory=Counter)
    slow_longest_s: float = 0.0
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def idle_p50_ms(self) -> float:
        return statistics.median(self.idle_ms)

    @property
    def attack_p95_ms(self) -> float:
        return statistics.quantiles(self.attack_ms, n=20, method="inclusive")[-1]

    @property
    def ratio(self) -> float:
        return self.attack_p95_ms / self.idle_p50_ms

    def summary(self) -> str:
        load = ", ".join(f"{v:.2f}" for v in self.load_average)
        return (
            f"key B: idle p50 {self.idle_p50_ms:.1f} ms, under attack p95 "
            f"{self.attack_p95_ms:.1f} ms ({self.ratio:.2f}x), {len(self.attack_ms)} calls, "
            f"statuses {dict(self.b_statuses)}; key A flood statuses "
            f"{dict(self.flood_statuses)}; slow uploads {dict(self.slow_outcomes)}, the "
            f"longest open {self.slow_longest_s:.1f} s; load average {load}"
        )


def _multipart_head(boundary: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()


async def _slow_upload(options: FairnessOptions) -> tuple[str, float]:
    """One upload that never completes its body; (how it ended, seconds it stayed open)."""
    parts = urlsplit(options.url)
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    except OSError as exc:
        return f"connect {type(exc).__name__}", 0.0
    boundary = "facegateslowupload"
    head = (
        f"POST /v1/detect HTTP/1.1\r\nHost: {parts.netloc}\r\nX-API-Key: {options.key_a}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {SLOW_BODY_BYTES}\r\n\r\n"
    ).encode()
    outcome = "still open"
    try:
        writer.write(head + _multipart_head(boundary))
        await writer.drain()
        status_line = asyncio.ensure_future(reader.readline())
        deadline = started + options.slow_bound_s
        while time.monotonic() < deadline:
            done, _ = await asyncio.wait({status_line}, timeout=TRICKLE_PERIOD_S)
            if done:
                line = status_line.result()
                outcome = line.split()[1].decode() if line.split()[1:] else "closed"
                break
            try:
                writer.write(b"\xff" * TRICKLE_BYTES)
                await writer.drain()
            except OSError:
                outcome = "closed"
                break
        else:
            status_line.cancel()
    except OSError:
        outcome = "closed"
    finally:
        writer.close()
    return outcome, time.monotonic() - started


async def _detect(http: httpx.AsyncClient, key: str, image: bytes) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        response = await http.post(
            "/v1/detect", files={"image": ("a.png", image)}, headers={"X-API-Key": key}
        )
        outcome = str(response.status_code)
    except httpx.HTTPError as exc:
        outcome = f"transport {type(exc).__name__}"
    return outcome, (time.perf_counter() - started) * 1000


async def run_fairness(options: FairnessOptions) -> FairnessResult:
    """The scenario above; the result holds every latency and outcome."""
    result = FairnessResult()
    limits = httpx.Limits(max_connections=options.flood_workers + 8)
    async with httpx.AsyncClient(base_url=options.url, timeout=120, limits=limits) as http:
        await _detect(http, options.key_b, options.image)  # warm-up
        for _ in range(options.idle_calls):
            outcome, ms = await _detect(http, options.key_b, options.image)
            result.b_statuses[f"idle {outcome}"] += 1
            result.idle_ms.append(ms)
        slow = [asyncio.ensure_future(_slow_upload(options)) for _ in range(options.slow_uploads)]
        end = time.monotonic() + options.duration_s

        async def flood() -> None:
            while time.monotonic() < end:
                outcome, _ = await _detect(http, options.key_a, options.image)
                result.flood_statuses[outcome] += 1
                if outcome != "200":
                    await asyncio.sleep(0.01)  # a refused flood still comes back at once

        async def second_key() -> None:
            while time.monotonic() < end:
                outcome, ms = await _detect(http, options.key_b, options.image)
                result.b_statuses[outcome] += 1
                result.attack_ms.append(ms)

        await asyncio.gather(*(flood() for _ in range(options.flood_workers)), second_key())
        result.load_average = os.getloadavg()
        for outcome, open_s in await asyncio.gather(*slow):
            result.slow_outcomes[outcome] += 1
            result.slow_longest_s = max(result.slow_longest_s, open_s)
    return result


def verdict(result: FairnessResult, options: FairnessOptions) -> list[str]:
    """What failed ([] when the run passed)."""
    failures = []
    if set(result.b_statuses) - {"200", "idle 200"}:
        failures.append(f"key B got {dict(result.b_statuses)}, not only 200")
    if result.ratio > options.ratio_bound:
        failures.append(
            f"key B's p95 is {result.ratio:.1f}x its idle p50 (bound {options.ratio_bound:g}x)"
        )
    if result.slow_outcomes.get("still open"):
        failures.append(
            f"{result.slow_outcomes['still open']} slow uploads still open after "
            f"{options.slow_bound_s:.0f} s"
        )
    return failures
