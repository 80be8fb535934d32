"""p50 of /v1/detect at concurrency 1 per analysis option, against a running gateway.

Usage: scripts/analysis_costs.py URL [REQUESTS]. Start the gateway first, e.g.
`facegate serve --models synthetic --profile realistic --no-auth`. The image holds four
bright squares the synthetic detector finds (at 640 px; the realistic synthetic models are
NOT face models), so the per-face costs divide by 4.
"""

from __future__ import annotations

import statistics
import sys
import time

import cv2
import httpx
import numpy as np

SQUARES = [(160, 160, 128), (432, 128, 64), (480, 352, 128), (112, 384, 32)]
CASES = [
    ("det_sizes=640", {"det_sizes": "640"}),
    ("det_sizes=128,640", {"det_sizes": "128,640"}),
    ("det_sizes=128", {"det_sizes": "128"}),
    ("640 + attributes", {"det_sizes": "640", "attributes": "true"}),
    ("640 + liveness", {"det_sizes": "640", "liveness": "true"}),
    ("640 + pose", {"det_sizes": "640", "pose": "true"}),
    ("640 + dense_landmarks", {"det_sizes": "640", "dense_landmarks": "true"}),
    ("640 + quality", {"det_sizes": "640", "quality": "true"}),
]


def scene() -> bytes:
    img = np.full((480, 640, 3), 20, np.uint8)
    for cx, cy, side in SQUARES:
        half = side // 2
        img[cy - half : cy + half, cx - half : cx + half] = (235, 240, 250)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return bytes(buf.tobytes())


def p50_ms(
    http: httpx.Client, data: bytes, params: dict[str, str], requests: int
) -> tuple[float, dict[str, float]]:
    """p50 of the client-side latency and of each server-side stage (timings_ms)."""
    times: list[float] = []
    stages: dict[str, list[float]] = {}
    for index in range(requests + 3):  # 3 warm-up requests
        started = time.perf_counter()
        response = http.post("/v1/detect", params=params, files={"image": ("s.png", data)})
        response.raise_for_status()
        if index >= 3:
            times.append((time.perf_counter() - started) * 1000)
            for stage, value in response.json()["timings_ms"].items():
                stages.setdefault(stage, []).append(value)
    return statistics.median(times), {k: statistics.median(v) for k, v in stages.items()}


def main() -> None:
    url, requests = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25
    data = scene()
    with httpx.Client(base_url=url, timeout=120) as http:
        for name, params in CASES:
            total, stages = p50_ms(http, data, params, requests)
            detail = ", ".join(f"{k} {v:.1f}" for k, v in stages.items() if k != "total")
            sys.stdout.write(f"{name:20s} p50 {total:8.1f} ms  (stage p50s ms: {detail})\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
