"""Fair sharing under attack: one key floods and holds slow uploads, another must still be served.

Against a running gateway, with two API keys:
1. idle: key B makes sequential detects, half before the attack and half after it; their
   median latency is the yardstick;
2. attack, for `duration_s`: key A opens `slow_uploads` uploads that trickle a few bytes a
   second (never finishing their body) and floods detect from `flood_workers` workers, while
   key B goes on with sequential detects;
3. the slow uploads are then waited for, each until the gateway answers or closes it (bounded
   by `slow_bound_s` from its start); key A runs in a process of its own.

The verdict compares B's p95 under attack with B's own idle p50 from the same run, so a
machine busy with other work moves both. Pure asyncio + httpx; nothing here starts a server.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
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


@dataclass(frozen=True)
class _AttackOutcome:
    flood: dict[str, int]
    slow: dict[str, int]
    slow_longest_s: float


async def _attack(options: FairnessOptions) -> _AttackOutcome:
    """Key A: the slow uploads and the flood, for duration_s; then the uploads' ends."""
    flood_statuses: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=options.flood_workers)
    async with httpx.AsyncClient(base_url=options.url, timeout=120, limits=limits) as http:
        slow = [asyncio.ensure_future(_slow_upload(options)) for _ in range(options.slow_uploads)]
        end = time.monotonic() + options.duration_s

        async def flood() -> None:
            while time.monotonic() < end:
                outcome, _ = await _detect(http, options.key_a, options.image)
                flood_statuses[outcome] += 1
                if outcome != "200":
                    await asyncio.sleep(0.01)  # ignores Retry-After: back at once

        await asyncio.gather(*(flood() for _ in range(options.flood_workers)))
        ends: Counter[str] = Counter()
        longest = 0.0
        for outcome, open_s in await asyncio.gather(*slow):
            ends[outcome] += 1
            longest = max(longest, open_s)
    return _AttackOutcome(dict(flood_statuses), dict(ends), longest)


def _attacker_process(options: FairnessOptions, conn: Connection) -> None:
    conn.send("ready")
    conn.send(asyncio.run(_attack(options)))


async def _idle_calls(
    http: httpx.AsyncClient, options: FairnessOptions, count: int, result: FairnessResult
) -> None:
    for _ in range(count):
        outcome, ms = await _detect(http, options.key_b, options.image)
        result.b_statuses[f"idle {outcome}"] += 1
        result.idle_ms.append(ms)


async def run_fairness(options: FairnessOptions) -> FairnessResult:
    """The scenario above; the result holds every latency and outcome.

    Key A runs in a process of its own, as an attacker on another machine would: its
    client's CPU work does not slow key B's client in this process.
    """
    result = FairnessResult()
    async with httpx.AsyncClient(base_url=options.url, timeout=120) as http:
        await _detect(http, options.key_b, options.image)  # warm-up
        await _idle_calls(http, options, options.idle_calls // 2, result)
        ours, theirs = multiprocessing.get_context("spawn").Pipe()
        attacker = multiprocessing.get_context("spawn").Process(
            target=_attacker_process, args=(options, theirs), name="fairness-attacker"
        )
        attacker.start()
        try:
            if not await asyncio.to_thread(ours.poll, 60) or ours.recv() != "ready":
                raise RuntimeError("the attacking process did not start")
            end = time.monotonic() + options.duration_s
            while time.monotonic() < end:
                outcome, ms = await _detect(http, options.key_b, options.image)
                result.b_statuses[outcome] += 1
                result.attack_ms.append(ms)
            result.load_average = os.getloadavg()
            if not await asyncio.to_thread(ours.poll, options.slow_bound_s + 60):
                raise RuntimeError("the attacking process did not report")
            attack: _AttackOutcome = ours.recv()
        finally:
            attacker.join(timeout=10)
            if attacker.is_alive():
                attacker.kill()
        # Idle again after the attack: the yardstick spans the run, so a machine that got
        # busier (or quieter) with other work meanwhile moves it as much as the attack figures.
        await _idle_calls(http, options, options.idle_calls - options.idle_calls // 2, result)
    result.flood_statuses.update(attack.flood)
    result.slow_outcomes.update(attack.slow)
    result.slow_longest_s = attack.slow_longest_s
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
