"""How each quality component moves identification, against a running gateway.

Usage: scripts/quality_study.py URL [PEOPLE]. Start the gateway on the tiny synthetic models
first (`facegate serve --models synthetic --no-auth --no-gallery`): they are NOT face models;
a "person" is a textured bright square whose texture the tiny recognizer reads (as in
tests/gallery/people.py). Each person is enrolled once, sharp and large (side 128); probes of
every person are then degraded one way at a time (face side 64 or 32 px, Gaussian blur of
increasing sigma, both) and identified by cosine against the enrolments. Printed per
degradation: the mean of each quality component, top-1 identification and the mean margin
(genuine cosine minus the best impostor's). A second table enrols half of the people with a
degraded photo instead and probes everyone with a sharp 64 px photo: top-1 then shows what a
poor enrolment costs the gallery. docs/QUALITY.md quotes the output.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

import cv2
import httpx
import numpy as np
import numpy.typing as npt

CENTRE = (320, 320)


def person(seed: int, side: int, sigma: float) -> bytes:
    """A dark 640x640 PNG with person `seed`'s texture as a `side` px square, then blurred."""
    img = np.zeros((640, 640, 3), np.uint8)
    texture = np.random.default_rng(seed).integers(170, 256, (16, 16, 3), dtype=np.uint8)
    patch = cv2.resize(texture, (side, side), interpolation=cv2.INTER_NEAREST)
    cx, cy = CENTRE
    img[cy - side // 2 : cy + side // 2, cx - side // 2 : cx + side // 2] = patch
    if sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return bytes(buf.tobytes())


def emit(line: str = "") -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def face(http: httpx.Client, data: bytes) -> dict[str, Any] | None:
    response = http.post(
        "/v1/detect",
        params={"embed": "true", "quality": "true", "max_faces": 1, "det_sizes": "640"},
        files={"image": ("p.png", data)},
    )
    response.raise_for_status()
    faces = response.json()["faces"]
    return faces[0] if faces else None


def main() -> None:
    url = sys.argv[1]
    people = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    cases = [
        ("side 128", 128, 0.0),
        ("side 64", 64, 0.0),
        ("side 32", 32, 0.0),
        *[(f"side 128 blur {s}", 128, s) for s in (1.0, 2.0, 3.0, 4.0, 6.0)],
        *[(f"side 64 blur {s}", 64, s) for s in (1.0, 2.0, 3.0)],
        *[(f"side 32 blur {s}", 32, s) for s in (1.0, 2.0)],
    ]
    with httpx.Client(base_url=url, timeout=120) as http:
        enrolled: list[npt.NDArray[np.float32]] = []
        for p in range(people):
            found = face(http, person(1000 + p, 128, 0.0))
            assert found is not None, "the enrolment image must have a face"
            enrolled.append(np.asarray(found["embedding"], np.float32))
        gallery = np.stack(enrolled)
        emit("| probes | found | size | sharpness | norm | level | top-1 | margin |")
        emit("|---|---|---|---|---|---|---|---|")
        for name, side, sigma in cases:
            rows = []
            for p in range(people):
                found = face(http, person(1000 + p, side, sigma))
                if found is None:
                    continue
                sims = gallery @ np.asarray(found["embedding"], np.float32)
                impostor = float(np.max(np.delete(sims, p)))
                quality = found["quality"]
                assert isinstance(quality, dict)
                rows.append((quality, int(np.argmax(sims)) == p, float(sims[p]) - impostor))
            if not rows:
                emit(f"| {name} | 0 | | | | | | |")
                continue
            levels = {q["for_recognition"] for q, _, _ in rows}
            emit(
                f"| {name} | {len(rows)}/{people} "
                f"| {statistics.mean(q['size'] for q, _, _ in rows):.0f} "
                f"| {statistics.mean(q['sharpness'] for q, _, _ in rows):.1f} "
                f"| {statistics.mean(q['norm'] for q, _, _ in rows):.1f} "
                f"| {'/'.join(sorted(levels))} "
                f"| {sum(ok for _, ok, _ in rows) / len(rows):.2f} "
                f"| {statistics.mean(m for _, _, m in rows):.4f} |"
            )
        enrolment_table(http, people, gallery)


def enrolment_table(http: httpx.Client, people: int, gallery: npt.NDArray[np.float32]) -> None:
    probes = []
    for p in range(people):
        found = face(http, person(1000 + p, 64, 0.0))
        assert found is not None
        probes.append(np.asarray(found["embedding"], np.float32))
    emit()
    emit("| half the people enrolled with | their grade | sharpness | norm | top-1 (all probes) |")
    emit("|---|---|---|---|---|")
    for side, sigma in ((128, 0.0), (32, 0.0), (128, 2.0), (128, 3.0), (128, 6.0), (64, 3.0)):
        mixed = gallery.copy()
        rows = []
        for p in range(people // 2):
            found = face(http, person(1000 + p, side, sigma))
            assert found is not None
            mixed[p] = np.asarray(found["embedding"], np.float32)
            rows.append(found["quality"])
        hits = np.argmax(np.stack(probes) @ mixed.T, axis=1) == np.arange(people)
        emit(
            f"| side {side} blur {sigma} | {'/'.join(sorted({q['for_recognition'] for q in rows}))} "
            f"| {statistics.mean(q['sharpness'] for q in rows):.1f} "
            f"| {statistics.mean(q['norm'] for q in rows):.1f} | {hits.mean():.2f} |"
        )


if __name__ == "__main__":
    main()
