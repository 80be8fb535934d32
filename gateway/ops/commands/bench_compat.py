"""`facegate bench-compat`: throughput of InsightFace-REST's /extract against /v1/detect/batch.

Starts the embedded Triton on the synthetic models and `facegate gateway` with
FACEGATE_COMPAT=ifr (what `facegate bench` starts, plus the compat routes and long
Triton/request deadlines), then sends batches as InsightFace-REST's benchmark does: 64
images per /extract request, msgpack both ways with the raw JPEG bytes (its client's
default). The same images also go as JSON (base64) and through /v1/detect/batch (16 per
request, multipart) for comparison. Every answer is checked: each image ok with the
planted number of faces.
"""

from __future__ import annotations

import argparse
import base64
import logging
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgpack
from tqdm import tqdm

log = logging.getLogger(__name__)

IFR_BATCH = 64  # InsightFace-REST's benchmark default (images per request)
V1_BATCH = 16  # /v1/detect/batch's default limit
TIMEOUT_S = 600.0
# Throughput, not deadlines, is measured: on a busy CPU host a 16-image group's recognizer
# chunks can wait in Triton's queue past the 10 s default per-call deadline.
GATEWAY_ENV = {
    "FACEGATE_COMPAT": "ifr",
    "FACEGATE_TRITON_TIMEOUT_S": "300",
    "FACEGATE_REQUEST_TIMEOUT_S": "600",
}


class BenchCompatError(Exception):
    """The benchmark cannot run or saw a wrong answer; the message says what to do."""


def subparser_init(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench-compat",
        help="throughput of InsightFace-REST's /extract (64-image batches) vs /v1/detect/batch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run it on an otherwise idle machine. Example: facegate bench-compat "
        "--requests 4 --concurrency 1,2",
    )
    parser.add_argument(
        "--profile", choices=("realistic", "tiny"), default="realistic", help="synthetic models"
    )
    parser.add_argument(
        "--requests", type=int, default=3, help="timed /extract requests per level (default 3)"
    )
    parser.add_argument(
        "--concurrency", default="1,2", help="client threads, comma list (default 1,2)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".facegate/bench"),
        help="where the synthetic models are built and reused (default .facegate/bench)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(func=cmd)


@dataclass(frozen=True)
class Row:
    route: str
    concurrency: int
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def cmd(args: argparse.Namespace) -> int:
    from gateway.ops.bench.images import bench_images
    from gateway.ops.bench.models import prepare_models
    from gateway.ops.bench.options import BenchError
    from gateway.ops.machine import describe_machine, load_average
    from gateway.ops.servers.stack import StackError, running_gateway

    try:
        levels = sorted({int(x) for x in args.concurrency.split(",") if x.strip()})
    except ValueError:
        levels = []
    if not levels or min(levels) < 1 or args.requests < 1:
        print(
            "error: --concurrency takes positive integers like 1,2; --requests >= 1",
            file=sys.stderr,
        )
        return 2
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    image = next(i for i in bench_images() if i.width == 640)
    machine = describe_machine()  # includes the load average at the start
    print("machine: " + "; ".join(f"{key}: {value}" for key, value in machine.items()))
    try:
        models = prepare_models(args.cache_dir, args.profile)
        with running_gateway(models.repository, models.label, GATEWAY_ENV) as gateway:
            rows = _run(gateway.url, gateway.api_key, image.jpeg, image.planted, levels, args)
    except (BenchError, BenchCompatError, StackError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"load average at end: {load_average()}")
    print(_table(rows, image.width, image.height, image.planted))
    return 0


def _run(
    url: str, api_key: str, jpeg: bytes, planted: int, levels: list[int], args: argparse.Namespace
) -> list[Row]:
    routes: dict[str, tuple[int, Callable[[httpx.Client], None]]] = {
        "/extract msgpack": (IFR_BATCH, lambda c: _extract(c, jpeg, planted, as_msgpack=True)),
        "/extract JSON": (IFR_BATCH, lambda c: _extract(c, jpeg, planted, as_msgpack=False)),
        "/v1/detect/batch": (V1_BATCH, lambda c: _v1_batch(c, jpeg, planted, api_key)),
    }
    total = sum(
        (args.requests * IFR_BATCH // batch) * level
        for batch, _ in routes.values()
        for level in levels
    )
    bar = tqdm(total=total, unit="req", disable=args.no_progress, file=sys.stderr)
    rows = []
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=TIMEOUT_S)
        http: httpx.Client = local.client
        return http

    try:
        for name, (batch, send) in routes.items():
            # The same number of images per route: v1 sends 4 requests per /extract one.
            per_thread = args.requests * IFR_BATCH // batch
            send(httpx.Client(base_url=url, timeout=TIMEOUT_S))  # warm-up, untimed
            for level in levels:
                bar.set_description(f"{name} c={level}")

                def worker(
                    _: int, send: Callable[[httpx.Client], None] = send, n: int = per_thread
                ) -> None:
                    for _ in range(n):
                        send(client())
                        bar.update(1)

                started = time.perf_counter()
                with ThreadPoolExecutor(level) as pool:
                    list(pool.map(worker, range(level)))
                seconds = time.perf_counter() - started
                rows.append(Row(name, level, per_thread * level * batch, seconds))
    finally:
        bar.close()
    return rows


def _check(statuses: list[tuple[str, int]], planted: int, route: str) -> None:
    wrong = [(status, faces) for status, faces in statuses if status != "ok" or faces != planted]
    if wrong:
        raise BenchCompatError(
            f"{route}: {len(wrong)} images answered wrongly (first: {wrong[0]}); "
            f"expected status ok with {planted} faces each"
        )


def _extract(client: httpx.Client, jpeg: bytes, planted: int, *, as_msgpack: bool) -> None:
    # The body InsightFace-REST's IFRClient.extract sends (mode 'data').
    fields = {"threshold": 0.6, "extract_embedding": True, "msgpack": as_msgpack}
    if as_msgpack:
        body = msgpack.dumps({"images": {"data": [jpeg] * IFR_BATCH}, **fields})
        headers = {"content-type": "application/msgpack", "accept": "application/x-msgpack"}
        response = client.post("/extract", content=body, headers=headers)
    else:
        encoded = base64.b64encode(jpeg).decode()
        response = client.post(
            "/extract", json={"images": {"data": [encoded] * IFR_BATCH}, **fields}
        )
    if response.status_code != 200:
        raise BenchCompatError(f"/extract answered {response.status_code}: {response.text[:300]}")
    answer = msgpack.loads(response.content) if as_msgpack else response.json()
    _check([(i["status"], len(i["faces"])) for i in answer["data"]], planted, "/extract")


def _v1_batch(client: httpx.Client, jpeg: bytes, planted: int, api_key: str) -> None:
    files = [("images", (f"{i}.jpg", jpeg, "image/jpeg")) for i in range(V1_BATCH)]
    response = client.post(
        "/v1/detect/batch",
        files=files,
        # The one 640 pass /extract makes, so both routes do the same detector work.
        params={"embed": "true", "threshold": "0.6", "det_sizes": "640"},
        headers={"X-API-Key": api_key},
    )
    if response.status_code != 200:
        raise BenchCompatError(
            f"/v1/detect/batch answered {response.status_code}: {response.text[:300]}"
        )
    _check(
        [("ok", len(r["faces"])) for r in response.json()["results"]], planted, "/v1/detect/batch"
    )


def _table(rows: list[Row], width: int, height: int, planted: int) -> str:
    lines = [
        f"Throughput on a {width}x{height} JPEG with {planted} planted faces, embeddings on "
        f"(images/s; /extract: {IFR_BATCH} images per request, /v1/detect/batch: {V1_BATCH})",
        "",
        "| route | concurrency | images | seconds | images/s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.route} | {r.concurrency} | {r.images} | {r.seconds:.1f} | {r.images_per_s:.2f} |"
        for r in rows
    ]
    return "\n".join(lines)
