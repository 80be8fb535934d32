"""`facegate gallery bench-http`: what identify from an image adds to detect+embed.

Against a running gateway (same process, same models, same image): POST /v1/detect?embed=true
and POST /v1/collections/{c}/identify, alternated request by request so both see the same
machine, with a synthetic gallery of the given size bulk-loaded into a collection the gateway
created (so it carries the gateway's recognizer). The figure is the ratio of the p50s.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

import httpx
import numpy as np

from gateway.ops.bench.gallery_data import make_gallery
from gateway.storage import bulk

WARMUP_REQUESTS = 10
REQUEST_TIMEOUT_S = 120.0


class GalleryHttpBenchError(Exception):
    """The gateway refused a step; the message says what to do."""


@dataclass(frozen=True)
class HttpBenchOptions:
    gateway_url: str
    api_key: str
    database_url: str
    image: bytes
    faces: int = 100_000
    requests: int = 200
    distribution: str = "clustered"
    faces_per_subject: int = 5
    seed: int = 0
    keep: bool = False


@dataclass(frozen=True)
class HttpBenchResult:
    gallery_faces: int
    faces_in_image: int
    requests: int
    detect_p50_ms: float
    detect_p95_ms: float
    identify_p50_ms: float
    identify_p95_ms: float

    @property
    def ratio(self) -> float:
        return self.identify_p50_ms / self.detect_p50_ms


def _say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _checked(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 400:
        raise GalleryHttpBenchError(
            f"{what} answered {response.status_code}: {response.text[:300]} (an admin or "
            "enroll key is needed to create the collection; the image must show a face)"
        )
    return response


def _load_gallery(http: httpx.Client, options: HttpBenchOptions, collection: str) -> None:
    if http.get(f"/v1/collections/{collection}").status_code == 200:
        _checked(http.delete(f"/v1/collections/{collection}"), "DELETE the old bench collection")
    _checked(http.post("/v1/collections", json={"name": collection}), "POST /v1/collections")
    per_subject = options.faces_per_subject if options.distribution == "clustered" else 1
    data = make_gallery(options.distribution, options.faces, 1, per_subject, options.seed)
    subjects = [f"s{int(s):07d}" for s in data.face_subjects]
    chunk = max(1, 20_000 // per_subject) * per_subject
    for lo in range(0, options.faces, chunk):
        bulk.copy_faces(
            options.database_url, collection, subjects[lo : lo + chunk], data.faces[lo : lo + chunk]
        )
        _say(f"  loaded {min(lo + chunk, options.faces)}/{options.faces} faces")
    index_s = bulk.build_index(options.database_url, collection)
    _say(f"  index built in {index_s:.1f} s")


def bench_identify_http(options: HttpBenchOptions) -> HttpBenchResult:
    """Load the gallery, then time detect+embed and identify on the same image, alternated."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one log line per request
    collection = f"bench-http-{options.faces}"
    headers = {"X-API-Key": options.api_key}
    with httpx.Client(
        base_url=options.gateway_url, headers=headers, timeout=REQUEST_TIMEOUT_S
    ) as http:
        _load_gallery(http, options, collection)
        files = {"image": ("image", options.image)}

        def detect() -> int:
            body = _checked(
                http.post("/v1/detect", params={"embed": "true"}, files=files), "detect"
            ).json()
            return len(body["faces"])

        def identify() -> int:
            body = _checked(
                http.post(f"/v1/collections/{collection}/identify", files=files), "identify"
            ).json()
            return len(body["faces"])

        for _ in range(WARMUP_REQUESTS):
            faces = detect()
            if faces == 0 or identify() != faces:
                raise GalleryHttpBenchError("the detector finds no face in the image: pick another")
        timings: dict[str, list[float]] = {"detect": [], "identify": []}
        for i in range(options.requests):
            # Alternate which goes first, so neither always follows the other.
            order = (("detect", detect), ("identify", identify))
            for name, call in order if i % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                call()
                timings[name].append((time.perf_counter() - started) * 1000)
            if (i + 1) % 50 == 0:
                _say(f"  {i + 1}/{options.requests} request pairs")
        if not options.keep:
            _checked(http.delete(f"/v1/collections/{collection}"), "DELETE the bench collection")
    return HttpBenchResult(
        options.faces,
        faces,
        options.requests,
        float(np.percentile(timings["detect"], 50)),
        float(np.percentile(timings["detect"], 95)),
        float(np.percentile(timings["identify"], 50)),
        float(np.percentile(timings["identify"], 95)),
    )


def http_report_lines(result: HttpBenchResult) -> list[str]:
    """The result as text lines."""
    return [
        f"gallery               {result.gallery_faces} faces; {result.faces_in_image} face(s) "
        f"in the image; {result.requests} alternated request pairs",
        f"detect?embed=true     p50 {result.detect_p50_ms:7.2f} ms  p95 {result.detect_p95_ms:7.2f} ms",
        f"identify              p50 {result.identify_p50_ms:7.2f} ms  "
        f"p95 {result.identify_p95_ms:7.2f} ms",
        f"identify / detect     {result.ratio:.3f} (p50 ratio; goal <= 1.05)",
    ]
